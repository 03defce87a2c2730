//! The Admin REST API's `orders.json`, `products.json` and `customers.json`, as Shopify's
//! reference describes them:
//!
//! - `X-Shopify-Access-Token` must be a token this shop issued (401 otherwise).
//! - Cursor pagination: `limit` (default 50, at most 250); the next and previous pages are in
//!   the `Link` header as `<…?limit=…&page_info=…>; rel="next"`. A request with `page_info` may
//!   carry only `limit` and `fields`; anything else is 400. Results are in id order.
//! - Filters on the first page: `updated_at_min`, `created_at_min`, `since_id`, and for orders
//!   `status` (`open` by default, `closed`, `cancelled`, `any`).
//! - The leaky bucket: each shop and token has a bucket of `bucket_size` calls (40) leaking
//!   `leak_per_second` (2); every answer carries `X-Shopify-Shop-Api-Call-Limit: used/size`, and
//!   a call that would overflow it gets 429 with `Retry-After: 2.0` and Shopify's error body.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde_json::{json, Value};

use super::data::parse_timestamp;
use crate::{FaultKind, Sim, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Orders,
    Products,
    Customers,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Orders => "orders",
            Resource::Products => "products",
            Resource::Customers => "customers",
        }
    }
}

/// One shop's bucket: calls in it, as of `at`.
pub struct LeakyBucket {
    pub used: f64,
    pub at: Instant,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    for resource in [Resource::Orders, Resource::Products, Resource::Customers] {
        cfg.route(
            &format!(
                "/shopify/{{shop}}/admin/api/{{version}}/{}.json",
                resource.name()
            ),
            web::get().to(move |sim, req, path| list(sim, req, path, resource)),
        );
    }
}

fn unauthorized() -> HttpResponse {
    HttpResponse::build(StatusCode::UNAUTHORIZED).json(json!({
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }))
}

fn bad_request(field: &str, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "errors": { field: [message] } }))
}

/// Checks the token and takes a call from the shop's bucket. The call-limit header value on
/// success; the answer to send otherwise.
pub(super) fn admit(sim: &Sim, req: &HttpRequest, shop: &str) -> Result<String, HttpResponse> {
    let token = req
        .headers()
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut state = sim.state();
    if !state
        .shopify_tokens
        .iter()
        .any(|(s, t)| s == shop && *t == token)
    {
        return Err(unauthorized());
    }
    let (size, leak) = (
        state.config.shopify.bucket_size.max(1) as f64,
        state.config.shopify.leak_per_second.max(0.001),
    );
    let now = Instant::now();
    let bucket = state
        .shopify_buckets
        .entry(format!("{shop}:{token}"))
        .or_insert(LeakyBucket { used: 0.0, at: now });
    bucket.used = (bucket.used - now.duration_since(bucket.at).as_secs_f64() * leak).max(0.0);
    bucket.at = now;
    if bucket.used + 1.0 > size {
        let header = format!("{}/{}", size as u64, size as u64);
        return Err(HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
            .insert_header(("Retry-After", "2.0"))
            .insert_header(("X-Shopify-Shop-Api-Call-Limit", header))
            .json(json!({ "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service." })));
    }
    bucket.used += 1.0;
    let header = format!("{}/{}", bucket.used.ceil() as u64, size as u64);
    state.shopify_calls += 1;
    Ok(header)
}

/// What a cursor remembers: the filters of the first page, where the page ended, and which way.
fn encode_cursor(filters: &Value, after: Option<i64>, before: Option<i64>) -> String {
    let raw = json!({ "f": filters, "a": after, "b": before }).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(page_info: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(page_info)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn matches(resource: Resource, object: &Value, filters: &Value) -> bool {
    let time = |k: &str| object[k].as_str().and_then(parse_timestamp);
    if let Some(min) = filters["updated_at_min"].as_i64() {
        if time("updated_at").is_none_or(|t| t < min) {
            return false;
        }
    }
    if let Some(min) = filters["created_at_min"].as_i64() {
        if time("created_at").is_none_or(|t| t < min) {
            return false;
        }
    }
    if let Some(since) = filters["since_id"].as_i64() {
        if object["id"].as_i64().is_none_or(|id| id <= since) {
            return false;
        }
    }
    if resource == Resource::Orders {
        let cancelled = object["cancelled_at"].is_string();
        let closed = object["closed_at"].is_string();
        match filters["status"].as_str().unwrap_or("open") {
            "any" => {}
            "cancelled" if !cancelled => return false,
            "closed" if !closed => return false,
            "open" if cancelled || closed => return false,
            _ => {}
        }
    }
    true
}

async fn list(
    sim: web::Data<Sim>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    resource: Resource,
) -> HttpResponse {
    let (shop, version) = path.into_inner();
    let call_limit = match admit(&sim, &req, &shop) {
        Ok(h) => h,
        Err(answer) => return answer,
    };
    let (latency, verdict) = sim.gate("shopify", &shop, req.path());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match verdict {
        Verdict::Fault(FaultKind::Status500) => {
            return HttpResponse::InternalServerError()
                .json(json!({ "errors": "Internal Server Error" }))
        }
        Verdict::Fault(FaultKind::Status503) => {
            return HttpResponse::ServiceUnavailable()
                .json(json!({ "errors": "Service Unavailable" }))
        }
        // An injected 429: as if another app's calls had filled the bucket.
        Verdict::Fault(FaultKind::Status429) => {
            return HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
                .insert_header(("Retry-After", "1.0"))
                .json(json!({ "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service." }))
        }
        _ => {}
    }
    let query: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let limit = match get("limit").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if (1..=250).contains(&n) => n,
        _ => return bad_request("limit", "Invalid value."),
    };
    let (filters, after, before) = if let Some(page_info) = get("page_info") {
        if query
            .iter()
            .any(|(k, _)| k != "page_info" && k != "limit" && k != "fields")
        {
            return bad_request(
                "page_info",
                "page_info cannot be combined with other filters; use only limit and fields",
            );
        }
        let Some(cursor) = decode_cursor(page_info) else {
            return bad_request("page_info", "Invalid value.");
        };
        (
            cursor["f"].clone(),
            cursor["a"].as_i64(),
            cursor["b"].as_i64(),
        )
    } else {
        let mut f = serde_json::Map::new();
        for key in ["updated_at_min", "created_at_min"] {
            if let Some(v) = get(key) {
                match parse_timestamp(v) {
                    Some(t) => f.insert(key.into(), json!(t)),
                    None => return bad_request(key, "Invalid value."),
                };
            }
        }
        if let Some(v) = get("since_id") {
            match v.parse::<i64>() {
                Ok(n) => f.insert("since_id".into(), json!(n)),
                Err(_) => return bad_request("since_id", "Invalid value."),
            };
        }
        if let Some(v) = get("status") {
            f.insert("status".into(), json!(v));
        }
        (Value::Object(f), None, None)
    };
    let (page, has_prev, has_next) = {
        let mut state = sim.state();
        let store = state.shopify_store(&shop);
        let all = match resource {
            Resource::Orders => &store.orders,
            Resource::Products => &store.products,
            Resource::Customers => &store.customers,
        };
        let matching: Vec<&Value> = all
            .iter()
            .filter(|o| matches(resource, o, &filters))
            .collect();
        let id = |o: &Value| o["id"].as_i64().unwrap_or(0);
        let (start, end) = if let Some(b) = before {
            let end = matching
                .iter()
                .position(|o| id(o) >= b)
                .unwrap_or(matching.len());
            (end.saturating_sub(limit), end)
        } else {
            let start = after
                .map(|a| {
                    matching
                        .iter()
                        .position(|o| id(o) > a)
                        .unwrap_or(matching.len())
                })
                .unwrap_or(0);
            (start, (start + limit).min(matching.len()))
        };
        let page: Vec<Value> = matching[start..end].iter().map(|o| (*o).clone()).collect();
        (page, start > 0, end < matching.len())
    };
    let base = format!(
        "{}://{}{}",
        req.connection_info().scheme(),
        req.connection_info().host(),
        req.path()
    );
    let mut links = Vec::new();
    let first = page.first().and_then(|o| o["id"].as_i64());
    let last = page.last().and_then(|o| o["id"].as_i64());
    if has_prev {
        let cursor = encode_cursor(&filters, None, first);
        links.push(format!(
            "<{base}?limit={limit}&page_info={cursor}>; rel=\"previous\""
        ));
    }
    if has_next {
        let cursor = encode_cursor(&filters, last, None);
        links.push(format!(
            "<{base}?limit={limit}&page_info={cursor}>; rel=\"next\""
        ));
    }
    let mut answer = HttpResponse::Ok();
    answer
        .insert_header(("X-Shopify-Shop-Api-Call-Limit", call_limit))
        .insert_header(("X-Shopify-API-Version", version));
    if !links.is_empty() {
        answer.insert_header(("Link", links.join(", ")));
    }
    answer.json(json!({ resource.name(): page }))
}
