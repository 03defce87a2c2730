//! Stripe Connect OAuth (https://docs.stripe.com/connect/oauth-reference), standard accounts:
//! `GET /oauth/authorize` approves at once (the simulated user always clicks "Connect") and
//! redirects to `redirect_uri` with `code` and `state`, or with `error=access_denied` when the
//! query carries `deny=1`; `POST /oauth/token` exchanges a code once, authenticated with the
//! platform's secret key, for the connected account's key and id.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::data::id;
use crate::Sim;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/authorize", web::get().to(authorize))
        .route("/oauth/token", web::post().to(token));
}

async fn authorize(sim: web::Data<Sim>, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let (Some(redirect), Some(client_id)) = (get("redirect_uri"), get("client_id")) else {
        return HttpResponse::BadRequest().json(json!({ "error": "invalid_request", "error_description": "redirect_uri and client_id are required" }));
    };
    if !client_id.starts_with("ca_") || get("response_type").as_deref() != Some("code") {
        return HttpResponse::BadRequest().json(json!({ "error": "invalid_request", "error_description": "Invalid client_id or response_type" }));
    }
    let state = get("state").unwrap_or_default();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let location = if get("deny").as_deref() == Some("1") {
        format!("{redirect}{sep}error=access_denied&error_description=The+user+denied+your+request&state={state}")
    } else {
        let code = id("ac", &mut fastrand::Rng::new());
        sim.state().stripe_oauth_codes.push(code.clone());
        format!(
            "{redirect}{sep}code={code}&scope={}&state={state}",
            get("scope").unwrap_or_else(|| "read_only".into())
        )
    };
    HttpResponse::Found()
        .insert_header(("Location", location))
        .finish()
}

async fn token(
    sim: web::Data<Sim>,
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let secret = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| get("client_secret"));
    if !secret.is_some_and(|s| s.starts_with("sk_")) {
        return HttpResponse::Unauthorized().json(
            json!({ "error": "invalid_client", "error_description": "No valid API key provided." }),
        );
    }
    if get("grant_type").as_deref() != Some("authorization_code") {
        return HttpResponse::BadRequest().json(json!({ "error": "unsupported_grant_type", "error_description": "Only authorization_code is supported here." }));
    }
    let code = get("code").unwrap_or_default();
    let known = {
        let mut state = sim.state();
        let before = state.stripe_oauth_codes.len();
        state.stripe_oauth_codes.retain(|c| *c != code);
        before != state.stripe_oauth_codes.len()
    };
    if !known {
        return HttpResponse::BadRequest().json(json!({ "error": "invalid_grant", "error_description": format!("Authorization code does not exist: {code}") }));
    }
    let mut rng = fastrand::Rng::new();
    HttpResponse::Ok().json(json!({
        "access_token": format!("sk_test_{}", &id("x", &mut rng)[2..]),
        "livemode": false,
        "refresh_token": id("rt", &mut rng),
        "scope": "read_only",
        "stripe_publishable_key": format!("pk_test_{}", &id("x", &mut rng)[2..]),
        "stripe_user_id": id("acct", &mut rng),
        "token_type": "bearer"
    }))
}
