//! Stripe's REST API (https://docs.stripe.com/api), as far as the product reads it.
//!
//! Wire format as documented: secret key by `Authorization: Bearer` or HTTP Basic (key as user
//! name); list objects `{object: "list", url, has_more, data}` newest first, paged with `limit`
//! (1–100, default 10), `starting_after` and `ending_before`, filtered by `created[gt|gte|lt|lte]`;
//! errors `{error: {type, code?, message, param?}}` with a `Request-Id` header on every answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine;
use serde_json::{json, Value};

use crate::{FaultKind, Sim, Verdict};

mod connect;
mod data;
mod webhooks;

pub use data::{event, Dataset, NOW};
pub use webhooks::signature;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The specific routes first: actix matches in order.
    webhooks::configure(cfg);
    connect::configure(cfg);
    cfg.route("/v1/{resource}", web::get().to(list_objects))
        .route("/v1/{resource}/{id}", web::get().to(get_object));
}

/// The list endpoints served, with the object name used in errors.
const RESOURCES: [(&str, &str); 10] = [
    ("customers", "customer"),
    ("products", "product"),
    ("prices", "price"),
    ("coupons", "coupon"),
    ("subscriptions", "subscription"),
    ("invoices", "invoice"),
    ("charges", "charge"),
    ("payment_intents", "payment_intent"),
    ("refunds", "refund"),
    ("events", "event"),
];

fn objects<'a>(data: &'a Dataset, resource: &str) -> Option<&'a Vec<Value>> {
    Some(match resource {
        "customers" => &data.customers,
        "products" => &data.products,
        "prices" => &data.prices,
        "coupons" => &data.coupons,
        "subscriptions" => &data.subscriptions,
        "invoices" => &data.invoices,
        "charges" => &data.charges,
        "payment_intents" => &data.payment_intents,
        "refunds" => &data.refunds,
        "events" => &data.events,
        _ => return None,
    })
}

/// One Stripe account's objects, generated from the seed. Lists are kept newest first.
fn request_id() -> String {
    let mut rng = fastrand::Rng::new();
    data::id("req", &mut rng)
}

fn respond(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.insert_header(("Request-Id", request_id()));
    builder
}

fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> HttpResponse {
    let mut body = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        body["code"] = json!(code);
        body["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    if let Some(param) = param {
        body["param"] = json!(param);
    }
    respond(status).json(json!({ "error": body }))
}

/// The secret key from `Authorization: Bearer sk_…` or Basic auth with the key as user name.
fn api_key(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get("Authorization")?.to_str().ok()?;
    if let Some(token) = header.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let basic = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_owned())
}

fn masked(key: &str) -> String {
    let visible = key.len().saturating_sub(4);
    let prefix: String = key.chars().take(8).collect();
    format!(
        "{prefix}{}{}",
        "*".repeat(visible.saturating_sub(8)),
        &key[visible..]
    )
}

/// Authenticates, then applies the simulator's rate limit and faults. `Ok` means serve the request.
fn admit(
    sim: &Sim,
    req: &HttpRequest,
) -> Result<(std::time::Duration, Option<FaultKind>), HttpResponse> {
    let Some(key) = api_key(req) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            None,
        ));
    };
    let well_formed = ["sk_test_", "sk_live_", "rk_test_", "rk_live_"]
        .iter()
        .any(|p| key.starts_with(p))
        && key.len() >= 16;
    let allowed = {
        let state = sim.state();
        state.config.stripe.api_keys.is_empty() || state.config.stripe.api_keys.contains(&key)
    };
    if !well_formed || !allowed {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            &format!("Invalid API Key provided: {}", masked(&key)),
            None,
        ));
    }
    let (latency, verdict) = sim.gate("stripe", &key, req.path());
    match verdict {
        Verdict::Serve => Ok((latency, None)),
        Verdict::RateLimited { retry_after } => Err(rate_limited(retry_after)),
        Verdict::Fault(FaultKind::Status429) => {
            let retry_after = sim.fault_config().and_then(|f| f.retry_after_seconds);
            Err(rate_limited(retry_after))
        }
        Verdict::Fault(kind) => Ok((latency, Some(kind))),
    }
}

fn rate_limited(retry_after: Option<u64>) -> HttpResponse {
    let mut builder = respond(StatusCode::TOO_MANY_REQUESTS);
    builder.insert_header(("Stripe-Should-Retry", "true"));
    if let Some(seconds) = retry_after {
        builder.insert_header(("Retry-After", seconds.to_string()));
    }
    builder.json(json!({ "error": {
        "type": "invalid_request_error",
        "code": "rate_limit",
        "message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        "doc_url": "https://stripe.com/docs/error-codes/rate-limit"
    }}))
}

/// Answers with `body` after the latency, unless the gate chose a fault that changes the answer.
async fn serve(
    sim: &Sim,
    latency: std::time::Duration,
    fault: Option<FaultKind>,
    body: Value,
) -> HttpResponse {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => respond(StatusCode::OK).json(body),
        Some(FaultKind::Slow) => {
            let slow = sim.fault_config().map(|f| f.slow_ms).unwrap_or(3000);
            tokio::time::sleep(std::time::Duration::from_millis(slow)).await;
            respond(StatusCode::OK).json(body)
        }
        Some(FaultKind::Truncated) => {
            let text = body.to_string();
            let cut = text.len() / 2;
            respond(StatusCode::OK)
                .content_type("application/json")
                .body(text.as_bytes()[..cut].to_vec())
        }
        Some(FaultKind::Malformed) => respond(StatusCode::OK)
            .content_type("application/json")
            .body("<html><body>502 Bad Gateway</body></html>"),
        Some(FaultKind::Status503) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            None,
            "Stripe is temporarily unavailable. Please try again.",
            None,
        ),
        Some(FaultKind::Status500 | FaultKind::Status429) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            None,
            "An unknown error occurred",
            None,
        ),
    }
}

fn invalid_param(param: &str, message: &str) -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        None,
        message,
        Some(param),
    )
}

/// A request's query, where keys may repeat (`expand[]`, `types[]`).
struct Params(Vec<(String, String)>);

/// Stripe takes an array parameter as `key[]=a&key[]=b` or, as its own libraries send it,
/// `key[0]=a&key[1]=b`: both are read as `key[]`.
pub(crate) fn array_keys(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            let indexed = k.strip_suffix(']').and_then(|rest| {
                let (name, index) = rest.rsplit_once('[')?;
                (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| format!("{name}[]"))
            });
            (indexed.unwrap_or(k), v)
        })
        .collect()
}

impl Params {
    fn new(pairs: Vec<(String, String)>) -> Self {
        Params(array_keys(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `expand[]` names `path` (with or without the list's `data.` prefix).
    fn expands(&self, path: &str) -> bool {
        self.all("expand[]")
            .iter()
            .any(|e| *e == path || e.strip_prefix("data.") == Some(path))
    }
}

/// Stripe leaves out a price's `tiers` and a subscription's discount objects unless asked.
fn shape(object: &Value, params: &Params) -> Value {
    let mut o = object.clone();
    match o["object"].as_str() {
        Some("price") if !params.expands("tiers") => {
            if let Some(m) = o.as_object_mut() {
                m.remove("tiers");
            }
        }
        Some("subscription") => {
            if !params.expands("items.data.price.tiers") {
                for item in o["items"]["data"].as_array_mut().into_iter().flatten() {
                    if let Some(m) = item["price"].as_object_mut() {
                        m.remove("tiers");
                    }
                }
            }
            if params.expands("discounts") && o["discount"].is_object() {
                o["discounts"] = json!([o["discount"].clone()]);
            }
        }
        // An event carries its object as a plain retrieve would show it: nothing expanded.
        Some("event") => o["data"]["object"] = shape(&o["data"]["object"], &Params(Vec::new())),
        _ => {}
    }
    o
}

/// Pages `items` (newest first) as Stripe's list endpoints do.
/// Where each object sits in its list, by id, so that a page after (or before) a cursor is
/// found without scanning the whole list: walking a 70,000-object list stays linear. Built per
/// list on first use and cleared whenever the data set changes.
#[derive(Default)]
pub struct Positions(std::collections::HashMap<String, std::collections::HashMap<String, usize>>);

impl Positions {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    fn of(&mut self, resource: &str, items: &[Value]) -> &std::collections::HashMap<String, usize> {
        self.0.entry(resource.to_owned()).or_insert_with(|| {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, o)| Some((o["id"].as_str()?.to_owned(), i)))
                .collect()
        })
    }
}

/// Which objects a list's filters keep.
type Keep<'p> = Box<dyn Fn(&Value) -> bool + 'p>;

fn filters<'p>(resource: &str, params: &'p Params) -> Result<Vec<Keep<'p>>, HttpResponse> {
    let mut keep: Vec<Keep<'p>> = Vec::new();
    for (op, test) in [
        (
            "created[gt]",
            (|c: i64, v: i64| c > v) as fn(i64, i64) -> bool,
        ),
        ("created[gte]", |c, v| c >= v),
        ("created[lt]", |c, v| c < v),
        ("created[lte]", |c, v| c <= v),
    ] {
        if let Some(raw) = params.get(op) {
            let bound: i64 = raw
                .parse()
                .map_err(|_| invalid_param(op, &format!("Invalid integer: {raw}")))?;
            keep.push(Box::new(move |o| {
                test(o["created"].as_i64().unwrap_or(0), bound)
            }));
        }
    }
    for field in [
        "customer",
        "charge",
        "payment_intent",
        "email",
        "subscription",
    ] {
        if let Some(want) = params.get(field) {
            keep.push(Box::new(move |o| o[field] == want));
        }
    }
    if resource == "subscriptions" {
        // Stripe lists subscriptions that are not canceled unless asked for a status or `all`.
        match params.get("status") {
            None => keep.push(Box::new(|o| o["status"] != "canceled")),
            Some("all") => {}
            Some(status) => keep.push(Box::new(move |o| o["status"] == status)),
        }
    }
    if resource == "events" {
        let mut types: Vec<&str> = params.all("types[]");
        types.extend(params.get("type"));
        if !types.is_empty() {
            keep.push(Box::new(move |o| {
                let t = o["type"].as_str().unwrap_or_default();
                types.iter().any(|want| match want.strip_suffix('*') {
                    Some(prefix) => t.starts_with(prefix),
                    None => t == *want,
                })
            }));
        }
    }
    Ok(keep)
}

fn list(
    items: &[Value],
    positions: &std::collections::HashMap<String, usize>,
    object: &str,
    resource: &str,
    params: &Params,
) -> Result<Value, HttpResponse> {
    let limit = match params.get("limit") {
        None => 10,
        Some(raw) => raw
            .parse::<usize>()
            .map_err(|_| invalid_param("limit", &format!("Invalid integer: {raw}")))?,
    };
    if !(1..=100).contains(&limit) {
        return Err(invalid_param(
            "limit",
            "This value must be greater than or equal to 1 and less than or equal to 100.",
        ));
    }
    let keep = filters(resource, params)?;
    let kept = |o: &&Value| keep.iter().all(|k| k(o));
    let position = |param: &str, id: &str| {
        positions
            .get(id)
            .copied()
            .filter(|i| kept(&&items[*i]))
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such {object}: '{id}'"),
                    Some(param),
                )
            })
    };
    // One more than a page tells whether there is more.
    let (page, has_more): (Vec<&Value>, bool) = if let Some(before) = params.get("ending_before") {
        let end = position("ending_before", before)?;
        let mut newer: Vec<&Value> = items[..end]
            .iter()
            .rev()
            .filter(kept)
            .take(limit + 1)
            .collect();
        let has_more = newer.len() > limit;
        newer.truncate(limit);
        newer.reverse();
        (newer, has_more)
    } else {
        let start = match params.get("starting_after") {
            Some(after) => position("starting_after", after)? + 1,
            None => 0,
        };
        let mut older: Vec<&Value> = items[start.min(items.len())..]
            .iter()
            .filter(kept)
            .take(limit + 1)
            .collect();
        let has_more = older.len() > limit;
        older.truncate(limit);
        (older, has_more)
    };
    let data: Vec<Value> = page.into_iter().map(|o| shape(o, params)).collect();
    Ok(
        json!({ "object": "list", "url": format!("/v1/{resource}"), "has_more": has_more, "data": data }),
    )
}

fn unknown_url(req: &HttpRequest) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        &format!("Unrecognized request URL (GET: {}).", req.path()),
        None,
    )
}

async fn list_objects(
    sim: web::Data<Sim>,
    req: HttpRequest,
    resource: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let Some((_, object)) = RESOURCES.iter().find(|(r, _)| *r == resource.as_str()) else {
        return unknown_url(&req);
    };
    let (latency, fault) = match admit(&sim, &req) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let params = Params::new(query.into_inner());
    let body = {
        let mut guard = sim.state();
        let state = &mut *guard;
        let items = objects(&state.stripe, &resource)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let positions = state.stripe_positions.of(&resource, items);
        list(items, positions, object, &resource, &params)
    };
    match body {
        Ok(body) => serve(&sim, latency, fault, body).await,
        Err(response) => response,
    }
}

async fn get_object(
    sim: web::Data<Sim>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let (resource, id) = path.into_inner();
    let Some((_, object)) = RESOURCES.iter().find(|(r, _)| *r == resource.as_str()) else {
        return unknown_url(&req);
    };
    let (latency, fault) = match admit(&sim, &req) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let params = Params::new(query.into_inner());
    let found = {
        let state = sim.state();
        objects(&state.stripe, &resource)
            .and_then(|items| items.iter().find(|o| o["id"] == id.as_str()))
            .map(|o| shape(o, &params))
    };
    match found {
        Some(o) => serve(&sim, latency, fault, o).await,
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such {object}: '{id}'"),
            Some("id"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StripeConfig;

    /// A list page, with the positions index built for this call.
    fn list(
        items: &[Value],
        object: &str,
        resource: &str,
        params: &Params,
    ) -> Result<Value, HttpResponse> {
        let mut positions = Positions::default();
        let index = positions.of(resource, items);
        super::list(items, index, object, resource, params)
    }

    fn ids(page: &Value) -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn indexed_and_bracketed_arrays_read_alike() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            array_keys(pairs(&[
                ("expand[0]", "data.tiers"),
                ("expand[1]", "data.discounts"),
                ("created[gte]", "5"),
                ("types[]", "charge.refunded"),
            ])),
            pairs(&[
                ("expand[]", "data.tiers"),
                ("expand[]", "data.discounts"),
                ("created[gte]", "5"),
                ("types[]", "charge.refunded"),
            ])
        );
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_same_seed_gives_the_same_account() {
        let config = StripeConfig::default();
        let a = Dataset::generate(7, &config);
        let b = Dataset::generate(7, &config);
        let c = Dataset::generate(8, &config);
        assert_eq!(a.customers, b.customers);
        assert_eq!(a.subscriptions, b.subscriptions);
        assert_ne!(a.customers, c.customers);
        assert_eq!(a.customers.len(), 120);
    }

    #[test]
    fn pages_walk_every_object_once() {
        let data = Dataset::generate(
            1,
            &StripeConfig {
                customers: 250,
                api_keys: vec![],
            },
        );
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let mut q = vec![("limit", "100")];
            if let Some(a) = &after {
                q.push(("starting_after", a));
            }
            let page = list(&data.customers, "customer", "customers", &params(&q)).unwrap();
            let page_ids = ids(&page);
            seen.extend(page_ids.clone());
            if !page["has_more"].as_bool().unwrap() {
                break;
            }
            after = page_ids.last().cloned();
        }
        let all: Vec<String> = data
            .customers
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, all);
    }

    #[test]
    fn bad_paging_parameters_are_stripe_errors() {
        let data = Dataset::generate(1, &StripeConfig::default());
        let err = list(
            &data.customers,
            "customer",
            "customers",
            &params(&[("limit", "101")]),
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = list(
            &data.customers,
            "customer",
            "customers",
            &params(&[("starting_after", "cus_nope")]),
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let page = list(&data.customers, "customer", "customers", &params(&[])).unwrap();
        assert_eq!(ids(&page).len(), 10, "Stripe's default page size");
    }

    #[test]
    fn subscriptions_hide_canceled_and_tiers_unless_asked() {
        let data = Dataset::generate(
            3,
            &StripeConfig {
                customers: 400,
                api_keys: vec![],
            },
        );
        let all = data.subscriptions.len();
        let canceled = data
            .subscriptions
            .iter()
            .filter(|s| s["status"] == "canceled")
            .count();
        let count = |q: &[(&str, &str)]| {
            let mut n = 0;
            let mut after: Option<String> = None;
            loop {
                let mut q: Vec<(&str, &str)> = q.to_vec();
                q.push(("limit", "100"));
                if let Some(a) = &after {
                    q.push(("starting_after", a));
                }
                let page = list(
                    &data.subscriptions,
                    "subscription",
                    "subscriptions",
                    &params(&q),
                )
                .unwrap();
                n += page["data"].as_array().unwrap().len();
                if !page["has_more"].as_bool().unwrap() {
                    return n;
                }
                after = ids(&page).last().cloned();
            }
        };
        assert!(canceled > 0);
        assert_eq!(count(&[]), all - canceled);
        assert_eq!(count(&[("status", "all")]), all);
        let tiered = data
            .subscriptions
            .iter()
            .find(|s| s["items"]["data"][0]["price"]["billing_scheme"] == "tiered")
            .unwrap();
        let plain = shape(tiered, &params(&[]));
        assert!(plain["items"]["data"][0]["price"].get("tiers").is_none());
        let expanded = shape(
            tiered,
            &params(&[("expand[]", "data.items.data.price.tiers")]),
        );
        assert!(expanded["items"]["data"][0]["price"]["tiers"].is_array());
    }

    #[test]
    fn events_filter_by_type_with_wildcards() {
        let data = Dataset::generate(
            3,
            &StripeConfig {
                customers: 400,
                api_keys: vec![],
            },
        );
        let page = list(
            &data.events,
            "event",
            "events",
            &params(&[("type", "customer.*"), ("limit", "100")]),
        )
        .unwrap();
        assert!(page["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"].as_str().unwrap().starts_with("customer.")));
    }

    #[test]
    fn keys_are_masked_in_errors() {
        assert_eq!(
            masked("sk_test_abcdefghijkl1234"),
            "sk_test_************1234"
        );
    }
}
