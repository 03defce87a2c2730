//! Stripe's REST API through async-stripe's generated requests (`stripe-core`, `stripe-billing`,
//! `stripe-product`, `stripe-misc`): list endpoints paged with `limit` and `starting_after`,
//! errors read from `{error: {type, code, message}}` and sorted as Stripe's error-handling guide
//! says (429 and `lock_timeout` 409s are retried; `Stripe-Should-Retry` overrides when present).
//!
//! The transport is ours: [`StripeClient`] implements async-stripe's [`StripeClientTrait`] over
//! our `reqwest` client, because async-stripe's own client keeps no connections alive and hides
//! the response headers (`Retry-After`, `Stripe-Should-Retry`) our pacing and retry schedule
//! need. Lists are read as raw JSON and stored verbatim: metrics are computed from Stripe's own
//! objects at our pinned API version, not from a typed model of another version.

use bytes::Bytes;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use stripe_client_core::{
    CustomizedStripeRequest, RequestBuilder, StripeClient as StripeClientTrait, StripeClientErr,
    StripeMethod, StripeRequest,
};

use crate::{retry_after, Pacer, ProviderError};

/// The API version we read objects in; pinned so Stripe's upgrades do not change field shapes
/// under us.
pub const API_VERSION: &str = "2024-06-20";

/// Stripe's maximum page size.
pub const PAGE_LIMIT: u32 = 100;

/// The resources a backfill reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Customers,
    Prices,
    Subscriptions,
    Invoices,
    Charges,
    PaymentIntents,
    Refunds,
}

impl Resource {
    /// The order a backfill walks them in: customers and prices before the subscriptions that
    /// refer to them.
    pub const BACKFILL_ORDER: [Resource; 7] = [
        Resource::Customers,
        Resource::Prices,
        Resource::Subscriptions,
        Resource::Invoices,
        Resource::Charges,
        Resource::PaymentIntents,
        Resource::Refunds,
    ];

    /// Stripe's name for it, as in `/v1/{name}`; also our checkpoints' key.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Customers => "customers",
            Resource::Prices => "prices",
            Resource::Subscriptions => "subscriptions",
            Resource::Invoices => "invoices",
            Resource::Charges => "charges",
            Resource::PaymentIntents => "payment_intents",
            Resource::Refunds => "refunds",
        }
    }

    /// One page's request, newest first, after `starting_after`.
    fn list_request(self, starting_after: Option<&str>) -> RequestBuilder {
        use stripe_billing::invoice::ListInvoice;
        use stripe_billing::subscription::{ListSubscription, ListSubscriptionStatus};
        use stripe_core::charge::ListCharge;
        use stripe_core::customer::ListCustomer;
        use stripe_core::payment_intent::ListPaymentIntent;
        use stripe_core::refund::ListRefund;
        use stripe_product::price::ListPrice;

        macro_rules! page {
            ($list:expr) => {{
                let mut list = $list.limit(PAGE_LIMIT);
                if let Some(after) = starting_after {
                    list = list.starting_after(after);
                }
                list.build()
            }};
        }
        match self {
            Resource::Customers => page!(ListCustomer::new()),
            // With their tiers: events carry subscriptions' prices without them, and tiered MRR
            // needs them (docs/METRICS.md).
            Resource::Prices => page!(ListPrice::new().expand(vec!["data.tiers".to_owned()])),
            Resource::Subscriptions => page!(ListSubscription::new()
                .status(ListSubscriptionStatus::All)
                .expand(vec![
                    "data.items.data.price.tiers".to_owned(),
                    "data.discounts".to_owned(),
                ])),
            Resource::Invoices => page!(ListInvoice::new()),
            Resource::Charges => page!(ListCharge::new()),
            Resource::PaymentIntents => page!(ListPaymentIntent::new()),
            Resource::Refunds => page!(ListRefund::new()),
        }
    }
}

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

impl StripeClientErr for ProviderError {
    fn deserialize_err(msg: impl std::fmt::Display) -> Self {
        ProviderError::Transient(format!("sent a body we cannot read: {msg}"))
    }
}

impl StripeClientTrait for StripeClient {
    type Err = ProviderError;

    fn execute(
        &self,
        req: CustomizedStripeRequest,
    ) -> impl std::future::Future<Output = Result<Bytes, ProviderError>> + Send {
        let (request, config) = req.into_pieces();
        async move {
            self.send(request, config.account_id.as_ref().map(|a| a.as_str()))
                .await
        }
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
        is_test_key(self.key.expose_secret())
    }

    /// One page of `/v1/events` newer than `ending_before` (the page just above it in Stripe's
    /// newest-first order); walk on with the page's first id.
    pub async fn events_newer_than(&self, ending_before: &str) -> Result<Page, ProviderError> {
        let request = stripe_core::event::ListEvent::new()
            .limit(PAGE_LIMIT)
            .ending_before(ending_before)
            .build();
        self.page(request).await
    }

    /// The newest event, if any: where a backfill's incremental successor starts.
    pub async fn newest_event(&self) -> Result<Option<Value>, ProviderError> {
        let request = stripe_core::event::ListEvent::new().limit(1).build();
        Ok(self.page(request).await?.data.into_iter().next())
    }

    /// Registers a webhook endpoint for `url` receiving every event (`enabled_events[]=*`) in
    /// our API version. Returns the endpoint's id and its signing secret, which Stripe shows
    /// only now.
    pub async fn create_webhook_endpoint(
        &self,
        url: &str,
    ) -> Result<(String, String), ProviderError> {
        use stripe_misc::webhook_endpoint::{
            CreateWebhookEndpoint, CreateWebhookEndpointEnabledEvents,
        };
        let endpoint =
            CreateWebhookEndpoint::new(vec![CreateWebhookEndpointEnabledEvents::All], url)
                .api_version(stripe_shared::ApiVersion::V2024_06_20)
                .description("BizInsights")
                .send(self)
                .await?;
        match endpoint.secret {
            Some(secret) => Ok((endpoint.id.to_string(), secret)),
            None => Err(ProviderError::Transient(
                "a new webhook endpoint without its secret".into(),
            )),
        }
    }

    /// Removes a webhook endpoint (on disconnect). An endpoint already gone is fine.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), ProviderError> {
        match stripe_misc::webhook_endpoint::DeleteWebhookEndpoint::new(id)
            .send(self)
            .await
        {
            Ok(_) | Err(ProviderError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn page(&self, request: RequestBuilder) -> Result<Page, ProviderError> {
        let bytes = self.send(request, None).await?;
        let mut body: Value = serde_json::from_slice(&bytes)
            .map_err(|_| ProviderError::Transient("sent a body that is not JSON".into()))?;
        let data = match body.get_mut("data").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => return Err(ProviderError::Transient("a list without `data`".into())),
        };
        Ok(Page {
            data,
            has_more: body["has_more"].as_bool().unwrap_or(false),
        })
    }

    /// One page of a resource, newest first, after `starting_after`.
    #[tracing::instrument(skip(self), fields(provider = "stripe"))]
    pub async fn list(
        &self,
        resource: Resource,
        starting_after: Option<&str>,
    ) -> Result<Page, ProviderError> {
        self.page(resource.list_request(starting_after)).await
    }

    /// One cheap authenticated call: proves the key works and can read customers.
    pub async fn check_credentials(&self) -> Result<(), ProviderError> {
        let request = stripe_core::customer::ListCustomer::new().limit(1).build();
        self.send(request, None).await.map(|_| ())
    }

    /// Sends one request with the key, the pinned version and the pacing; returns the body of a
    /// success or the sorted error.
    async fn send(
        &self,
        request: RequestBuilder,
        account: Option<&str>,
    ) -> Result<Bytes, ProviderError> {
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
        let mut url = format!("{}/v1{}", self.base, request.path);
        if let Some(query) = request.query.as_deref().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(query);
        }
        let method = match request.method {
            StripeMethod::Get => reqwest::Method::GET,
            StripeMethod::Post => reqwest::Method::POST,
            StripeMethod::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .http
            .request(method, url)
            .bearer_auth(self.key.expose_secret())
            .header("Stripe-Version", API_VERSION);
        if let Some(account) = account {
            builder = builder.header("Stripe-Account", account);
        }
        if let Some(body) = request.body {
            builder = builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body);
        }
        let response = builder
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
            return Ok(bytes);
        }
        Err(classify(status, &headers, &bytes))
    }
}

/// Test-mode secret and restricted keys; everything else is paced as live.
fn is_test_key(key: &str) -> bool {
    key.starts_with("sk_test_") || key.starts_with("rk_test_")
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
    fn test_mode_keys_are_told_from_live_ones_for_pacing() {
        assert!(is_test_key("sk_test_51abc"));
        assert!(is_test_key("rk_test_51abc"));
        assert!(!is_test_key("sk_live_51abc"));
        assert!(!is_test_key("rk_live_51abc"));
    }

    #[test]
    fn list_requests_carry_stripes_own_parameters() {
        let r = Resource::Subscriptions.list_request(Some("sub_123"));
        assert_eq!(r.path, "/subscriptions");
        let q = r.query.unwrap();
        for part in [
            "limit=100",
            "starting_after=sub_123",
            "status=all",
            "expand[0]=data.items.data.price.tiers",
            "expand[1]=data.discounts",
        ] {
            assert!(q.contains(part), "{part} in {q}");
        }
        let p = Resource::Prices.list_request(None).query.unwrap();
        assert!(
            p.contains("expand[0]=data.tiers") && !p.contains("starting_after"),
            "{p}"
        );
    }

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
