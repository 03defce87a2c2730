//! Resend's email API, from its public reference: `POST /emails` with `Authorization: Bearer
//! re_…` and `{from, to, subject, html|text, reply_to?, cc?, bcc?}` answers `200 {"id"}`; a
//! missing or bad key is 401 (missing) or 403 (invalid), a bad body 422, each as
//! `{"statusCode", "name", "message"}`; over the rate limit (2/s by default), 429 with
//! `ratelimit-*` and `retry-after` headers. Accepted messages are kept for tests, which read
//! them at `GET /_sim/resend/emails`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::{Sim, Verdict};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/emails", web::post().to(send))
        .route("/_sim/resend/emails", web::get().to(sent));
}

fn error(status: StatusCode, name: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "statusCode": status.as_u16(), "name": name, "message": message
    }))
}

/// `to` is a string or a list of up to 50 strings, each an address.
fn recipients(to: &Value) -> Option<Vec<String>> {
    let list: Vec<String> = match to {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()?,
        _ => return None,
    };
    (!list.is_empty() && list.len() <= 50 && list.iter().all(|a| a.contains('@'))).then_some(list)
}

async fn send(sim: web::Data<Sim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let key = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(key) = key else {
        return error(StatusCode::UNAUTHORIZED, "missing_api_key", "Missing API key in the authorization header. Include the following header in your request: Authorization: Bearer YOUR_API_KEY");
    };
    if !key.starts_with("re_") || key.len() < 10 {
        return error(
            StatusCode::FORBIDDEN,
            "validation_error",
            "API key is invalid",
        );
    }
    let (latency, verdict) = sim.gate("resend", &key, req.path());
    tokio::time::sleep(latency).await;
    if let Verdict::RateLimited { retry_after } = verdict {
        return HttpResponse::TooManyRequests()
            .insert_header(("ratelimit-limit", "2"))
            .insert_header(("ratelimit-remaining", "0"))
            .insert_header(("ratelimit-reset", "1"))
            .insert_header(("retry-after", retry_after.unwrap_or(1).to_string()))
            .json(json!({ "statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests. You can only make 2 requests per second. See rate limit response headers for more information. Or contact support to increase rate limit." }));
    }
    let Ok(email) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "Invalid JSON body",
        );
    };
    for field in ["from", "subject"] {
        if !email[field].is_string() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing_required_field",
                &format!("The `{field}` field is missing."),
            );
        }
    }
    let Some(to) = recipients(&email["to"]) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.");
    };
    if !email["html"].is_string() && !email["text"].is_string() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_required_field",
            "Missing `html` or `text` field.",
        );
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut stored = email.clone();
    stored["id"] = json!(id);
    stored["to"] = json!(to);
    sim.state().resend_emails.push(stored);
    HttpResponse::Ok().json(json!({ "id": id }))
}

async fn sent(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": sim.state().resend_emails }))
}
