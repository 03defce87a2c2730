//! Shopify's OAuth token exchange and Admin REST API calls, against `base` (the shop's URL, from
//! `BIZ__PROVIDERS__SHOPIFY_API_BASE` with `{shop}` replaced).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::{retry_after, ProviderError};

/// The shop's base URL from the settings' template.
pub fn shop_base(template: &str, shop: &str) -> String {
    template
        .replace("{shop}", shop)
        .trim_end_matches('/')
        .to_owned()
}

/// What the token endpoint grants.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: String,
    pub scope: String,
}

/// Exchanges an authorization `code` at `{base}/admin/oauth/access_token`.
pub async fn exchange_code(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    client_secret: &SecretString,
    code: &str,
) -> Result<Grant, ProviderError> {
    let response = http
        .post(format!("{base}/admin/oauth/access_token"))
        .json(&json!({ "client_id": client_id, "client_secret": client_secret.expose_secret(), "code": code }))
        .send()
        .await
        .map_err(ProviderError::from_transport)?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error_description"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("the code was refused")
            .to_owned();
        return Err(if status.is_server_error() {
            ProviderError::Transient(message)
        } else {
            ProviderError::Rejected {
                status: status.as_u16(),
                message,
            }
        });
    }
    match body["access_token"].as_str() {
        Some(token) => Ok(Grant {
            access_token: token.to_owned(),
            scope: body["scope"].as_str().unwrap_or_default().to_owned(),
        }),
        None => Err(ProviderError::Transient(
            "a token answer without access_token".into(),
        )),
    }
}

/// Subscribes `address` to `topic` (JSON payloads) through the Admin API at `version`.
pub async fn create_webhook(
    http: &reqwest::Client,
    base: &str,
    version: &str,
    token: &SecretString,
    topic: &str,
    address: &str,
) -> Result<i64, ProviderError> {
    let response = http
        .post(format!("{base}/admin/api/{version}/webhooks.json"))
        .header("X-Shopify-Access-Token", token.expose_secret())
        .json(&json!({ "webhook": { "topic": topic, "address": address, "format": "json" } }))
        .send()
        .await
        .map_err(ProviderError::from_transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match status.as_u16() {
        200..=299 => body["webhook"]["id"]
            .as_i64()
            .ok_or_else(|| ProviderError::Transient("a webhook answer without an id".into())),
        401 | 403 => Err(ProviderError::Unauthorized(body["errors"].to_string())),
        429 => Err(ProviderError::RateLimited {
            retry_after: retry_after(&headers),
        }),
        500..=599 => Err(ProviderError::Transient(format!("HTTP {status}"))),
        code => Err(ProviderError::Rejected {
            status: code,
            message: body["errors"].to_string(),
        }),
    }
}
