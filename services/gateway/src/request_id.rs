//! A request id and a span for every HTTP call.
//!
//! The id comes from a well-formed incoming `X-Request-Id` or is generated, is echoed in the
//! response header, and is reachable from error bodies through a task-local (error responses are
//! built inside the handler's future, which runs within the scope set here).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The current request's id, or "unknown" outside a request.
pub fn current() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn incoming(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(HEADER)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| v.to_owned())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = incoming(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "http.request",
        request_id = %id,
        http.method = %req.method(),
        http.path = %req.path(),
        http.status = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = REQUEST_ID
        .scope(id.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            span.record("http.status", status);
            span.record("duration_ms", duration_ms);
            span.in_scope(|| {
                if status >= 500 {
                    tracing::warn!(http.status = status, duration_ms, "request served");
                } else {
                    tracing::info!(http.status = status, duration_ms, "request served");
                }
            });
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(HeaderName::from_static(HEADER), v);
            }
            Ok(res)
        }
        Err(e) => {
            span.in_scope(|| tracing::warn!(error = %e, duration_ms, "request failed"));
            Err(e)
        }
    }
}
