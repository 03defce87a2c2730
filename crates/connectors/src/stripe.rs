//! Stripe's REST API: list endpoints paged with `limit` and `starting_after`, errors read from
//! `{error: {type, code, message}}` and sorted as Stripe's error-handling guide says (429 and
//! `lock_timeout` 409s are retried; `Stripe-Should-Retry` overrides when present).

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{retry_after, Pacer, ProviderError};

/// The API version we read objects in; pinned so Stripe's upgrades do not change field shapes
/// under us.
pub const API_VERSION: &str = "2024-06-20";

/// Stripe's maximum page size.
pub const PAGE_LIMIT: u32 = 100;

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    pacer: Option<std::sync::Arc<Pacer>>,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// One page of a list endpoint.
#[derive(Debug, Clone)]
pub struct Page {
    pub data: Vec<Value>,
    pub has_more: bool,
}

impl Page {
    /// The id to pass as `starting_after` for the next page.
    pub fn last_id(&self) -> Option<&str> {
        self.data.last().and_then(|o| o["id"].as_str())
    }

    /// The id to pass as `ending_before` for the next (newer) page.
    pub fn first_id(&self) -> Option<&str> {
        self.data.first().and_then(|o| o["id"].as_str())
    }
}

impl StripeClient {
    /// `base` is `BIZ__PROVIDERS__STRIPE_API_BASE` (no trailing `/v1`).
    pub fn new(http: reqwest::Client, base: &str, key: SecretString) -> Self {
        StripeClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
            pacer: None,
        }
    }

    /// Paces requests to `rate` per second (Stripe allows 25 in test mode, 100 in live mode).
    pub fn with_rate_limit(mut self, rate: f64) -> Self {
        self.pacer = Some(std::sync::Arc::new(Pacer::per_second(rate)));
        self
    }

    /// Whether the key is a test-mode key (`sk_test_`, `rk_test_`).
    pub fn is_test_mode(&self) -> bool {
        let key = self.key.expose_secret();
        key.starts_with("sk_test_") || key.starts_with("rk_test_")
    }

    /// One page of `/v1/events` newer than `ending_before` (the page just above it in Stripe's
    /// newest-first order); walk on with the page's first id.
    pub async fn events_newer_than(&self, ending_before: &str) -> Result<Page, ProviderError> {
        let query = vec![
            ("limit", PAGE_LIMIT.to_string()),
            ("ending_before", ending_before.to_owned()),
        ];
        self.page("/v1/events", &query).await
    }

    /// The newest event, if any: where a backfill's incremental successor starts.
    pub async fn newest_event(&self) -> Result<Option<Value>, ProviderError> {
        let page = self
            .page("/v1/events", &[("limit", "1".to_owned())])
            .await?;
        Ok(page.data.into_iter().next())
    }

    /// Registers a webhook endpoint for `url` receiving every event (`enabled_events[]=*`).
    /// Returns the endpoint's id and its signing secret, which Stripe shows only now.
    pub async fn create_webhook_endpoint(
        &self,
        url: &str,
    ) -> Result<(String, String), ProviderError> {
        let form = [
            ("url", url),
            ("enabled_events[]", "*"),
            ("api_version", API_VERSION),
            ("description", "BizInsights"),
        ];
        let body = self
            .send(
                self.http
                    .post(format!("{}/v1/webhook_endpoints", self.base))
                    .form(&form),
            )
            .await?;
        match (body["id"].as_str(), body["secret"].as_str()) {
            (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
            _ => Err(ProviderError::Transient(
                "a webhook endpoint without id or secret".into(),
            )),
        }
    }

    /// Removes a webhook endpoint (on disconnect). An endpoint already gone is fine.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), ProviderError> {
        match self
            .send(
                self.http
                    .delete(format!("{}/v1/webhook_endpoints/{id}", self.base)),
            )
            .await
        {
            Ok(_) | Err(ProviderError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn page(&self, path: &str, query: &[(&str, String)]) -> Result<Page, ProviderError> {
        let body = self.get(path, query).await?;
        let data = match body.get("data") {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err(ProviderError::Transient("a list without `data`".into())),
        };
        Ok(Page {
            data,
            has_more: body["has_more"].as_bool().unwrap_or(false),
        })
    }

    /// One page of `/v1/{resource}`, newest first, after `starting_after`.
    #[tracing::instrument(skip(self, extra), fields(provider = "stripe"))]
    pub async fn list(
        &self,
        resource: &str,
        starting_after: Option<&str>,
        extra: &[(&str, String)],
    ) -> Result<Page, ProviderError> {
        let mut query: Vec<(&str, String)> = vec![("limit", PAGE_LIMIT.to_string())];
        if let Some(after) = starting_after {
            query.push(("starting_after", after.to_owned()));
        }
        query.extend(extra.iter().cloned());
        self.page(&format!("/v1/{resource}"), &query).await
    }

    /// One cheap authenticated call: proves the key works and can read customers.
    pub async fn check_credentials(&self) -> Result<(), ProviderError> {
        self.get("/v1/customers", &[("limit", "1".to_owned())])
            .await
            .map(|_| ())
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ProviderError> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// Sends with the key, the pinned version and the pacing; reads the body or the error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ProviderError> {
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
        let response = request
            .bearer_auth(self.key.expose_secret())
            .header("Stripe-Version", API_VERSION)
            .send()
            .await
            .map_err(ProviderError::from_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(ProviderError::from_transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|_| ProviderError::Transient("sent a body that is not JSON".into()));
        }
        Err(classify(status, &headers, &bytes))
    }
}

fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> ProviderError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    let message = error["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    let code = error["code"].as_str().unwrap_or_default();
    let should_retry = headers
        .get("Stripe-Should-Retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v == "true");
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Unauthorized(message),
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            retry_after: retry_after(headers),
        },
        _ if should_retry == Some(false) => ProviderError::Rejected {
            status: status.as_u16(),
            message,
        },
        _ if status.is_server_error() || should_retry == Some(true) || code == "lock_timeout" => {
            ProviderError::Transient(message)
        }
        _ => ProviderError::Rejected {
            status: status.as_u16(),
            message,
        },
    }
}

/// What Stripe Connect's token endpoint grants for an authorization code.
#[derive(Debug, Clone)]
pub struct ConnectGrant {
    /// The connected account's secret key, used as the API key for it.
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// `acct_…`: how platform webhooks name the account.
    pub stripe_user_id: String,
    pub scope: String,
    pub livemode: bool,
}

/// Exchanges a Connect OAuth `code` at `{connect_base}/oauth/token`, authenticated with the
/// platform's secret key.
pub async fn exchange_connect_code(
    http: &reqwest::Client,
    connect_base: &str,
    platform_secret: &SecretString,
    code: &str,
) -> Result<ConnectGrant, ProviderError> {
    let response = http
        .post(format!(
            "{}/oauth/token",
            connect_base.trim_end_matches('/')
        ))
        .bearer_auth(platform_secret.expose_secret())
        .form(&[("grant_type", "authorization_code"), ("code", code)])
        .send()
        .await
        .map_err(ProviderError::from_transport)?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(ProviderError::from_transport)?;
    if !status.is_success() {
        // OAuth errors: {"error": "invalid_grant", "error_description": "…"}.
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
    match (
        body["access_token"].as_str(),
        body["stripe_user_id"].as_str(),
    ) {
        (Some(token), Some(account)) => Ok(ConnectGrant {
            access_token: token.to_owned(),
            refresh_token: body["refresh_token"].as_str().map(str::to_owned),
            stripe_user_id: account.to_owned(),
            scope: body["scope"].as_str().unwrap_or_default().to_owned(),
            livemode: body["livemode"].as_bool().unwrap_or(false),
        }),
        _ => Err(ProviderError::Transient(
            "a token response without access_token or stripe_user_id".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn stripe_errors_are_sorted_as_stripe_documents() {
        let none = HeaderMap::new();
        let body = br#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****1234"}}"#;
        assert!(
            matches!(classify(StatusCode::UNAUTHORIZED, &none, body), ProviderError::Unauthorized(m) if m.contains("****1234"))
        );
        let mut retry = HeaderMap::new();
        retry.insert("Retry-After", HeaderValue::from_static("3"));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &retry, b"{}"),
            ProviderError::RateLimited { retry_after: Some(d) } if d.as_secs() == 3
        ));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &none, b"oops"),
            ProviderError::Transient(_)
        ));
        let lock =
            br#"{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"busy"}}"#;
        assert!(classify(StatusCode::CONFLICT, &none, lock).is_retryable());
        let missing = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_x'"}}"#;
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &none, missing),
            ProviderError::Rejected { status: 400, .. }
        ));
        let mut no = HeaderMap::new();
        no.insert("Stripe-Should-Retry", HeaderValue::from_static("false"));
        assert!(!classify(StatusCode::INTERNAL_SERVER_ERROR, &no, b"{}").is_retryable());
    }
}
