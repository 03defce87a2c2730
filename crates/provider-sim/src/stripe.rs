//! Stripe's REST API (https://docs.stripe.com/api), as far as the product reads it.
//!
//! Wire format as documented: secret key by `Authorization: Bearer` or HTTP Basic (key as user
//! name); list objects `{object: "list", url, has_more, data}` newest first, paged with `limit`
//! (1–100, default 10), `starting_after` and `ending_before`, filtered by `created[gt|gte|lt|lte]`;
//! errors `{error: {type, code?, message, param?}}` with a `Request-Id` header on every answer.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine;
use serde_json::{json, Value};

use crate::config::StripeConfig;
use crate::{FaultKind, Sim, Verdict};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/customers", web::get().to(list_customers))
        .route("/v1/customers/{id}", web::get().to(get_customer));
}

/// One Stripe account's objects, generated from the seed. Lists are kept newest first.
pub struct Dataset {
    pub customers: Vec<Value>,
}

/// 2026-01-01T00:00:00Z: the newest object is created just before it.
const EPOCH: i64 = 1_767_225_600;
const FIRST_NAMES: [&str; 10] = [
    "Ada", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Goran", "Hana", "Iñigo", "Jun",
];
const LAST_NAMES: [&str; 8] = [
    "Lovelace", "Okafor", "Müller", "Nakamura", "Silva", "Novak", "Haddad", "Kowalski",
];

impl Dataset {
    pub fn generate(seed: u64, config: &StripeConfig) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5354_5249_5045);
        let mut created = EPOCH;
        let customers = (0..config.customers)
            .map(|i| {
                created -= rng.i64(300..7_200);
                let first = FIRST_NAMES[rng.usize(..FIRST_NAMES.len())];
                let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
                let currency = match rng.u8(..10) {
                    0..=5 => Value::from("usd"),
                    6 | 7 => Value::from("eur"),
                    8 => Value::from("gbp"),
                    _ => Value::Null,
                };
                json!({
                    "id": format!("cus_{}", stripe_suffix(&mut rng)),
                    "object": "customer",
                    "address": null,
                    "balance": 0,
                    "created": created,
                    "currency": currency,
                    "default_source": null,
                    "delinquent": rng.u8(..20) == 0,
                    "description": null,
                    "discount": null,
                    "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), i),
                    "invoice_prefix": format!("{:08X}", rng.u32(..)),
                    "invoice_settings": {
                        "custom_fields": null,
                        "default_payment_method": null,
                        "footer": null,
                        "rendering_options": null
                    },
                    "livemode": false,
                    "metadata": {},
                    "name": format!("{first} {last}"),
                    "phone": null,
                    "preferred_locales": [],
                    "shipping": null,
                    "tax_exempt": "none",
                    "test_clock": null
                })
            })
            .collect();
        Dataset { customers }
    }
}

/// Stripe ids end in 14 or more base62 characters.
fn stripe_suffix(rng: &mut fastrand::Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..14)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())] as char)
        .collect()
}

fn request_id() -> String {
    let mut rng = fastrand::Rng::new();
    format!("req_{}", stripe_suffix(&mut rng))
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

/// Pages `items` (newest first) as Stripe's list endpoints do.
fn list(
    items: &[Value],
    object: &str,
    url: &str,
    query: &HashMap<String, String>,
) -> Result<Value, HttpResponse> {
    let limit = match query.get("limit") {
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
    let mut filtered: Vec<&Value> = items.iter().collect();
    for (op, test) in [
        (
            "created[gt]",
            (|c: i64, v: i64| c > v) as fn(i64, i64) -> bool,
        ),
        ("created[gte]", |c, v| c >= v),
        ("created[lt]", |c, v| c < v),
        ("created[lte]", |c, v| c <= v),
    ] {
        if let Some(raw) = query.get(op) {
            let bound: i64 = raw
                .parse()
                .map_err(|_| invalid_param(op, &format!("Invalid integer: {raw}")))?;
            filtered.retain(|o| test(o["created"].as_i64().unwrap_or(0), bound));
        }
    }
    let position = |param: &str, id: &str| {
        filtered.iter().position(|o| o["id"] == id).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such {object}: '{id}'"),
                Some(param),
            )
        })
    };
    let (page, has_more): (Vec<&Value>, bool) = if let Some(after) = query.get("starting_after") {
        let start = position("starting_after", after)? + 1;
        let rest = &filtered[start.min(filtered.len())..];
        (
            rest.iter().take(limit).copied().collect(),
            rest.len() > limit,
        )
    } else if let Some(before) = query.get("ending_before") {
        let end = position("ending_before", before)?;
        let head = &filtered[..end];
        let from = head.len().saturating_sub(limit);
        (head[from..].to_vec(), from > 0)
    } else {
        (
            filtered.iter().take(limit).copied().collect(),
            filtered.len() > limit,
        )
    };
    Ok(json!({ "object": "list", "url": url, "has_more": has_more, "data": page }))
}

async fn list_customers(
    sim: web::Data<Sim>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let (latency, fault) = match admit(&sim, &req) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let body = {
        let state = sim.state();
        list(&state.stripe.customers, "customer", "/v1/customers", &query)
    };
    match body {
        Ok(body) => serve(&sim, latency, fault, body).await,
        Err(response) => response,
    }
}

async fn get_customer(
    sim: web::Data<Sim>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let (latency, fault) = match admit(&sim, &req) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let found = {
        let state = sim.state();
        state
            .stripe
            .customers
            .iter()
            .find(|c| c["id"] == id.as_str())
            .cloned()
    };
    match found {
        Some(customer) => serve(&sim, latency, fault, customer).await,
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such customer: '{id}'"),
            Some("id"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(page: &Value) -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_customers_newest_first() {
        let config = StripeConfig::default();
        let a = Dataset::generate(7, &config);
        let b = Dataset::generate(7, &config);
        let c = Dataset::generate(8, &config);
        assert_eq!(a.customers, b.customers);
        assert_ne!(a.customers, c.customers);
        assert_eq!(a.customers.len(), 120);
        let created: Vec<i64> = a
            .customers
            .iter()
            .map(|c| c["created"].as_i64().unwrap())
            .collect();
        assert!(
            created.windows(2).all(|w| w[0] > w[1]),
            "strictly newest first"
        );
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
        let mut query = HashMap::from([("limit".to_owned(), "100".to_owned())]);
        let mut seen = Vec::new();
        loop {
            let page = list(&data.customers, "customer", "/v1/customers", &query).unwrap();
            let page_ids = ids(&page);
            seen.extend(page_ids.clone());
            if !page["has_more"].as_bool().unwrap() {
                break;
            }
            query.insert("starting_after".into(), page_ids.last().unwrap().clone());
        }
        assert_eq!(seen.len(), 250);
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
        let q = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
        let err = list(
            &data.customers,
            "customer",
            "/v1/customers",
            &q("limit", "101"),
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = list(
            &data.customers,
            "customer",
            "/v1/customers",
            &q("starting_after", "cus_nope"),
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let page = list(
            &data.customers,
            "customer",
            "/v1/customers",
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(ids(&page).len(), 10, "Stripe's default page size");
    }

    #[test]
    fn keys_are_masked_in_errors() {
        assert_eq!(
            masked("sk_test_abcdefghijkl1234"),
            "sk_test_************1234"
        );
    }
}
