//! Provider API clients. Each speaks its provider's wire format against a base URL from the
//! settings (the real API, or the simulator), and sorts failures into [`ProviderError`] so the
//! job layer can decide between retrying, waiting and giving up.

mod error;
mod leaky_bucket;
mod pacer;
pub mod resend;
pub mod shopify;
pub mod stripe;

use std::time::Duration;

pub use error::{retry_after, ProviderError};
pub use leaky_bucket::LeakyBucket;
pub use pacer::Pacer;

/// The HTTP client type provider clients are built on.
pub type HttpClient = reqwest::Client;

/// The HTTP client every provider call goes through: bounded connect and total timeouts, so a
/// provider that hangs fails the attempt instead of holding a worker.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .user_agent(concat!("BizInsights/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}
