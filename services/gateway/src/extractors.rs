//! How actix' own extractor failures become our error body: malformed JSON is 400, JSON of the
//! wrong shape is 422, an unparsable path id is 404 (no such resource), a bad query is 422.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, HttpRequest};

use crate::error::ApiError;

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req: &HttpRequest| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::validation("invalid_body", e.to_string())
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
        other => ApiError::bad_request("invalid_body", other.to_string()),
    }
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err: PathError, _req| ApiError::NotFound.into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        ApiError::validation("invalid_query", err.to_string()).into()
    })
}

/// Reads a raw body of at most `limit` bytes. A declared `Content-Length` over the limit is
/// refused before a byte is read; a chunked body, as soon as it passes the limit. Used where
/// the raw bytes matter (webhook signatures), so nothing is computed over an oversized body.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Anything no route matched.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A JSON body that may be left out entirely (`POST …/sync` with no body). actix' own
/// `Option<Json<T>>` turns a bad body into `None`, silently ignoring it; this answers a bad body
/// with the same 400/422 as a required one.
pub fn optional_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        if e.is_data() {
            ApiError::validation("invalid_body", e.to_string())
        } else {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
    })
}
