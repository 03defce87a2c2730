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

/// The Admin REST resources the sync reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Orders,
    Products,
    Customers,
}

impl Resource {
    /// Walk order for a backfill: customers and products before the orders that name them.
    pub const ALL: [Resource; 3] = [Resource::Customers, Resource::Products, Resource::Orders];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Orders => "orders",
            Resource::Products => "products",
            Resource::Customers => "customers",
        }
    }
}

/// Where a list request starts: the first page with its filters, or a `page_info` cursor
/// from the previous page's `Link` header (Shopify takes no other filter with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    First {
        updated_at_min: Option<chrono::DateTime<chrono::Utc>>,
    },
    PageInfo(String),
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    /// The next page's `page_info`, if there is one.
    pub next: Option<String>,
    /// The shop's clock when it answered (the `Date` header).
    pub date: Option<chrono::DateTime<chrono::Utc>>,
}

/// Page size: Shopify's maximum.
pub const PAGE_LIMIT: u32 = 250;
/// 429s waited out inside one call (each a correction of our bucket estimate) before the call
/// fails as rate-limited and the run backs off as a whole.
const MAX_429_WAITS: u32 = 5;

/// A shop's Admin REST API at a pinned version, paced by the shop's leaky bucket.
#[derive(Debug, Clone)]
pub struct ShopifyClient {
    http: reqwest::Client,
    base: String,
    version: String,
    token: SecretString,
    bucket: std::sync::Arc<crate::LeakyBucket>,
    /// Whether Shopify answering at another version than ours was logged already.
    version_warned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ShopifyClient {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        version: &str,
        token: SecretString,
        bucket_size: u32,
        leak_per_second: f64,
    ) -> Self {
        ShopifyClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            version: version.to_owned(),
            token,
            bucket: std::sync::Arc::new(crate::LeakyBucket::new(bucket_size, leak_per_second)),
            version_warned: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Shopify serves a version it no longer supports as its oldest supported one, and says so
    /// in `X-Shopify-API-Version`: the pinned setting is then due for an update.
    fn check_version(&self, headers: &reqwest::header::HeaderMap) {
        let served = headers
            .get("x-shopify-api-version")
            .and_then(|v| v.to_str().ok());
        if let Some(served) = served.filter(|s| *s != self.version) {
            if !self
                .version_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    requested = %self.version,
                    served,
                    "Shopify answered at another API version; update providers.shopify_api_version"
                );
            }
        }
    }

    /// One page of `resource`, all statuses (orders default to `open` only), oldest id first.
    pub async fn list(&self, resource: Resource, cursor: &Cursor) -> Result<Page, ProviderError> {
        let url = format!(
            "{}/admin/api/{}/{}.json",
            self.base,
            self.version,
            resource.name()
        );
        let mut query: Vec<(&str, String)> = vec![("limit", PAGE_LIMIT.to_string())];
        match cursor {
            Cursor::PageInfo(info) => query.push(("page_info", info.clone())),
            Cursor::First { updated_at_min } => {
                if resource == Resource::Orders {
                    query.push(("status", "any".into()));
                }
                if let Some(t) = updated_at_min {
                    query.push((
                        "updated_at_min",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ));
                }
            }
        }
        let mut waits = 0;
        loop {
            self.bucket.acquire().await;
            let response = self
                .http
                .get(&url)
                .query(&query)
                .header("X-Shopify-Access-Token", self.token.expose_secret())
                .send()
                .await
                .map_err(ProviderError::from_transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            if let Some(limit) = headers
                .get("x-shopify-shop-api-call-limit")
                .and_then(|v| v.to_str().ok())
            {
                self.bucket.observe(limit).await;
            }
            if status.as_u16() == 429 {
                // A correction, not a failure: the bucket was fuller than we knew.
                self.bucket.overflowed().await;
                let wait = retry_after(&headers).unwrap_or(std::time::Duration::from_secs(2));
                waits += 1;
                if waits > MAX_429_WAITS {
                    return Err(ProviderError::RateLimited {
                        retry_after: Some(wait),
                    });
                }
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    "Shopify 429; waiting as told"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let body: Value = match response.json().await {
                Ok(v) => v,
                Err(_) if status.is_success() => {
                    return Err(ProviderError::Transient("sent an unreadable body".into()))
                }
                Err(_) => Value::Null,
            };
            if status.is_success() {
                self.check_version(&headers);
            }
            return match status.as_u16() {
                200..=299 => Ok(Page {
                    items: body[resource.name()].as_array().cloned().ok_or_else(|| {
                        ProviderError::Transient(format!("a page without `{}`", resource.name()))
                    })?,
                    next: next_page_info(&headers),
                    date: headers
                        .get(reqwest::header::DATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                        .map(|t| t.with_timezone(&chrono::Utc)),
                }),
                401 | 403 => Err(ProviderError::Unauthorized(body["errors"].to_string())),
                500..=599 => Err(ProviderError::Transient(format!("HTTP {status}"))),
                code => Err(ProviderError::Rejected {
                    status: code,
                    message: body["errors"].to_string(),
                }),
            };
        }
    }
}

/// The `page_info` of the `rel="next"` link in a `Link` header.
pub fn next_page_info(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        if !rel.contains("rel=\"next\"") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let parsed = reqwest::Url::parse(url).ok()?;
        let info = parsed
            .query_pairs()
            .find(|(k, _)| k == "page_info")
            .map(|(_, v)| v.into_owned());
        info
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    #[test]
    fn the_next_cursor_is_read_from_the_link_header() {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_static(
            "<https://shop.myshopify.com/admin/api/2025-07/orders.json?limit=250&page_info=prev123>; rel=\"previous\", <https://shop.myshopify.com/admin/api/2025-07/orders.json?limit=250&page_info=next456>; rel=\"next\"",
        ));
        assert_eq!(next_page_info(&headers).as_deref(), Some("next456"));
        headers.insert(LINK, HeaderValue::from_static(
            "<https://shop.myshopify.com/admin/api/2025-07/orders.json?limit=250&page_info=prev123>; rel=\"previous\"",
        ));
        assert_eq!(next_page_info(&headers), None);
    }
}
