//! What `/_sim/config` sets. Every field has a default, so a test posts only what it changes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Added to every provider request.
    pub latency_ms: u64,
    /// Injected faults; none when absent.
    pub faults: Option<FaultConfig>,
    /// Per provider (`stripe`, `shopify`, …): a token bucket per credential.
    pub rate_limits: HashMap<String, RateLimit>,
    pub stripe: StripeConfig,
    pub shopify: ShopifyConfig,
}

/// The Shopify app the simulated shops know: its OAuth callbacks are signed with this secret,
/// and only this client may exchange codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopifyConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Orders in each generated store.
    pub orders: usize,
    /// The REST leaky bucket: calls it holds, and calls leaked per second (standard plans: 40
    /// and 2; Plus: 400 and 20).
    pub bucket_size: u32,
    pub leak_per_second: f64,
}

impl Default for ShopifyConfig {
    fn default() -> Self {
        ShopifyConfig {
            client_id: "sim-shopify-client-id".into(),
            client_secret: "sim-shopify-client-secret".into(),
            orders: 300,
            bucket_size: 40,
            leak_per_second: 2.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of matching requests that fail, 0.0 to 1.0.
    pub rate: f64,
    /// Seeds the draw, so the same configuration fails the same requests.
    pub seed: u64,
    /// Picked at random (from the same seed) for each failing request.
    pub kinds: Vec<FaultKind>,
    /// Only requests whose path starts with this.
    pub path_prefix: Option<String>,
    /// Stop injecting after this many faults.
    pub max: Option<u64>,
    /// How long a `slow` fault stalls before answering.
    pub slow_ms: u64,
    /// `Retry-After` on an injected 429.
    pub retry_after_seconds: Option<u64>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate: 0.0,
            seed: 1,
            kinds: vec![FaultKind::Status500],
            path_prefix: None,
            max: None,
            slow_ms: 3000,
            retry_after_seconds: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    #[serde(rename = "500")]
    Status500,
    #[serde(rename = "503")]
    Status503,
    #[serde(rename = "429")]
    Status429,
    /// Answers correctly after `slow_ms`.
    #[serde(rename = "slow")]
    Slow,
    /// A correct body cut off halfway.
    #[serde(rename = "truncated")]
    Truncated,
    /// 200 with a body that is not JSON.
    #[serde(rename = "malformed")]
    Malformed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    /// Bucket size; defaults to one second's worth.
    #[serde(default)]
    pub burst: Option<f64>,
    /// `Retry-After` on the 429, for providers that send one.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeConfig {
    /// Customers in the account.
    pub customers: usize,
    /// Accepted secret keys; empty accepts any well-formed `sk_`/`rk_` key.
    pub api_keys: Vec<String>,
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            customers: 120,
            api_keys: Vec::new(),
        }
    }
}
