//! Shopify, from its public references: the OAuth authorization-code grant and webhook
//! subscriptions of the Admin REST API. Shops live under `/shopify/{shop}` (point
//! `BIZ__PROVIDERS__SHOPIFY_API_BASE` at `http://sim/shopify/{shop}`).
//!
//! - `GET /admin/oauth/authorize?client_id&scope&redirect_uri&state` stands for the merchant
//!   approving the app: 302 to `redirect_uri` with `code`, `hmac`, `host`, `shop`, `state` and
//!   `timestamp`, `hmac` being the hex HMAC-SHA256, under the app's client secret, of the other
//!   parameters sorted and joined as `k=v&…` (Shopify's documented scheme). An unknown client is
//!   400.
//! - `POST /admin/oauth/access_token {client_id, client_secret, code}` (JSON or form): 200
//!   `{"access_token": "shpat_…", "scope"}`; a wrong secret, unknown or used code 400
//!   `{"error": "invalid_request", "error_description"}`. Codes work once.
//! - `POST /admin/api/{version}/webhooks.json` with `X-Shopify-Access-Token`:
//!   `{"webhook": {topic, address, format}}` → 201 `{"webhook": {id, topic, address, …}}`; a bad
//!   token 401 `{"errors": "[API] Invalid API key or access token (unrecognized login or wrong
//!   password)"}`; a missing field 422 `{"errors": {"field": ["can't be blank"]}}`.
//! - Tests read what was registered at `GET /_sim/shopify/webhooks`.
//! - The REST resources the sync reads are in [`rest`], the store behind them in [`data`], and
//!   the test controls (store contents, changes with their webhooks) in `control`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use ring::hmac;
use serde_json::{json, Value};

use crate::Sim;

mod control;
pub mod data;
pub mod rest;

pub use control::body_hmac;

pub fn configure(cfg: &mut web::ServiceConfig) {
    rest::configure(cfg);
    control::configure(cfg);
    cfg.route(
        "/shopify/{shop}/admin/oauth/authorize",
        web::get().to(authorize),
    )
    .route(
        "/shopify/{shop}/admin/oauth/access_token",
        web::post().to(access_token),
    )
    .route(
        "/shopify/{shop}/admin/api/{version}/webhooks.json",
        web::post().to(create_webhook),
    )
    .route("/_sim/shopify/webhooks", web::get().to(webhooks));
}

/// Shopify's signature over query parameters: sorted `k=v` joined with `&`, `%`/`&` (and `=`
/// in keys) escaped, without `hmac` and `signature`.
pub fn query_hmac(params: &[(String, String)], secret: &str) -> String {
    let escape = |s: &str, key: bool| {
        let out = s.replace('%', "%25").replace('&', "%26");
        if key {
            out.replace('=', "%3D")
        } else {
            out
        }
    };
    let mut pairs: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .map(|(k, v)| format!("{}={}", escape(k, true), escape(v, false)))
        .collect();
    pairs.sort();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, pairs.join("&").as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn oauth_error(description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .json(json!({ "error": "invalid_request", "error_description": description }))
}

async fn authorize(
    sim: web::Data<Sim>,
    shop: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let shop = shop.into_inner();
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let app = sim.state().config.shopify.clone();
    if get("client_id").as_deref() != Some(app.client_id.as_str()) {
        return oauth_error("Oauth error invalid_request: The client_id is not valid");
    }
    let (Some(redirect_uri), Some(state)) = (get("redirect_uri"), get("state")) else {
        return oauth_error("Oauth error invalid_request: redirect_uri and state are required");
    };
    let mut rng = fastrand::Rng::new();
    let code: String = (0..32)
        .map(|_| char::from_digit(rng.u32(..16), 16).unwrap_or('0'))
        .collect();
    sim.state()
        .shopify_codes
        .push((shop.clone(), code.clone(), get("scope").unwrap_or_default()));
    let mut params = vec![
        ("code".to_owned(), code),
        ("host".to_owned(), base64_host(&shop)),
        ("shop".to_owned(), shop),
        ("state".to_owned(), state),
        ("timestamp".to_owned(), sim_now().to_string()),
    ];
    let signature = query_hmac(&params, &app.client_secret);
    params.push(("hmac".to_owned(), signature));
    let Ok(mut url) = reqwest::Url::parse(&redirect_uri) else {
        return oauth_error("Oauth error invalid_request: redirect_uri is not a URL");
    };
    url.query_pairs_mut().extend_pairs(params);
    HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .finish()
}

fn sim_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Shopify's `host`: base64 of `admin.shopify.com/store/{name}`.
fn base64_host(shop: &str) -> String {
    use base64::Engine;
    let name = shop.trim_end_matches(".myshopify.com");
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(format!("admin.shopify.com/store/{name}"))
}

async fn access_token(
    sim: web::Data<Sim>,
    req: HttpRequest,
    shop: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let shop = shop.into_inner();
    let form: Value = if req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(&String::from_utf8_lossy(&body));
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    };
    let app = sim.state().config.shopify.clone();
    if form["client_id"] != app.client_id.as_str()
        || form["client_secret"] != app.client_secret.as_str()
    {
        return oauth_error("Oauth error invalid_request: The client credentials are not valid");
    }
    let code = form["code"].as_str().unwrap_or_default().to_owned();
    let issued = {
        let mut state = sim.state();
        let at = state
            .shopify_codes
            .iter()
            .position(|(s, c, _)| *s == shop && *c == code);
        at.map(|i| state.shopify_codes.remove(i))
    };
    let Some((_, _, scope)) = issued else {
        return oauth_error(
            "Oauth error invalid_request: The authorization code was not found or was already used",
        );
    };
    let token = format!("shpat_{}", uuid::Uuid::new_v4().simple());
    sim.state().shopify_tokens.push((shop, token.clone()));
    HttpResponse::Ok().json(json!({ "access_token": token, "scope": scope }))
}

/// `a=b&c=d` as pairs, percent-decoded.
fn serde_urlencoded_pairs(body: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn create_webhook(
    sim: web::Data<Sim>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let (shop, version) = path.into_inner();
    let token = req
        .headers()
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let known = sim
        .state()
        .shopify_tokens
        .iter()
        .any(|(s, t)| *s == shop && *t == token);
    if !known {
        return HttpResponse::build(StatusCode::UNAUTHORIZED).json(json!({
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }));
    }
    let hook = &body["webhook"];
    for field in ["topic", "address"] {
        if !hook[field].is_string() {
            return HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY)
                .json(json!({ "errors": { field: ["can't be blank"] } }));
        }
    }
    let now = chrono_like_now();
    let created = {
        let mut state = sim.state();
        let id = 1_000_000 + state.shopify_webhooks.len() as u64;
        let w = json!({
            "id": id, "address": hook["address"], "topic": hook["topic"], "created_at": now,
            "updated_at": now, "format": hook["format"].as_str().unwrap_or("json"), "fields": [],
            "metafield_namespaces": [], "api_version": version, "shop": shop
        });
        state.shopify_webhooks.push(w.clone());
        w
    };
    HttpResponse::Created().json(json!({ "webhook": created }))
}

/// An ISO 8601 instant, as Shopify writes them.
fn chrono_like_now() -> String {
    let secs = sim_now();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}-00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn webhooks(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": sim.state().shopify_webhooks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_signature_matches_shopifys_documented_example() {
        // From Shopify's "Verify a request" guide.
        let params: Vec<(String, String)> = [
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            (
                "hmac",
                "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf",
            ),
            ("shop", "some-shop.myshopify.com"),
            ("state", "0.6784241404160823"),
            ("timestamp", "1337178173"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            query_hmac(&params, "hush"),
            "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
        );
    }
}
