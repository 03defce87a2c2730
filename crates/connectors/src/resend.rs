//! Resend's email API: one message per `POST /emails`. Errors come as
//! `{"statusCode", "name", "message"}`; 429 carries `retry-after`.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::{retry_after, ProviderError};

#[derive(Clone)]
pub struct ResendClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl std::fmt::Debug for ResendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResendClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// One plain-text message.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
}

impl ResendClient {
    /// `base` is `BIZ__PROVIDERS__RESEND_API_BASE`.
    pub fn new(http: reqwest::Client, base: &str, key: SecretString) -> Self {
        ResendClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// Sends `email`; returns Resend's message id.
    pub async fn send(&self, email: &Email<'_>) -> Result<String, ProviderError> {
        let response = self
            .http
            .post(format!("{}/emails", self.base))
            .bearer_auth(self.key.expose_secret())
            .json(&json!({
                "from": email.from, "to": [email.to], "subject": email.subject, "text": email.text
            }))
            .send()
            .await
            .map_err(ProviderError::from_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        match status.as_u16() {
            200..=299 => body["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ProviderError::Transient("an answer without an id".into())),
            401 | 403 => Err(ProviderError::Unauthorized(message)),
            429 => Err(ProviderError::RateLimited {
                retry_after: retry_after(&headers),
            }),
            500..=599 => Err(ProviderError::Transient(message)),
            code => Err(ProviderError::Rejected {
                status: code,
                message,
            }),
        }
    }
}
