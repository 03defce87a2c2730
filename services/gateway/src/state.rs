//! What every handler can reach.

use std::sync::Arc;

use biz_core::crypto::KeyRing;
use biz_core::db::{self, PooledConn};
use biz_core::jobs::{JobMetrics, Producer};
use biz_core::settings::Settings;

use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: db::Pool,
    pub redis: redis::Client,
    /// Credential envelope keys (integration tokens, webhook secrets, TOTP seeds).
    pub keys: Arc<KeyRing>,
    /// Pushes jobs to the workers' queues.
    pub producer: Producer,
    pub metrics: JobMetrics,
    /// For provider calls made while answering (checking credentials on connect).
    pub http: connectors::HttpClient,
    pub webhook_secrets: Arc<SecretCache>,
    /// Pushes stored webhook events to the queue in batches, off the request path.
    pub webhook_queue: crate::enqueuer::Enqueuer,
    /// Stores verified webhook events with group commits.
    pub event_writer: crate::event_writer::EventWriter,
    pub limiter: Arc<crate::rate_limit::Limiter>,
    pub rate_limit_metrics: crate::rate_limit::RateLimitMetrics,
    /// `rate_limit.trusted_proxies`, parsed.
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
}

/// Integrations' webhook endpoint secrets, kept for a short while. An endpoint's secret never
/// changes (reconnecting makes a new integration), so the only staleness is a disconnect taking
/// up to `TTL` to stop accepting events, which are then stored and applied as before it.
#[derive(Default)]
pub struct SecretCache {
    entries: std::sync::Mutex<
        std::collections::HashMap<uuid::Uuid, (std::time::Instant, uuid::Uuid, String)>,
    >,
}

impl SecretCache {
    const TTL: std::time::Duration = std::time::Duration::from_secs(30);
    const MAX: usize = 10_000;

    pub fn get(&self, integration: uuid::Uuid) -> Option<(uuid::Uuid, String)> {
        let entries = self.entries.lock().ok()?;
        let (at, org, secret) = entries.get(&integration)?;
        (at.elapsed() < Self::TTL).then(|| (*org, secret.clone()))
    }

    pub fn put(&self, integration: uuid::Uuid, organization: uuid::Uuid, secret: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::MAX {
                entries.clear();
            }
            entries.insert(
                integration,
                (std::time::Instant::now(), organization, secret.to_owned()),
            );
        }
    }

    pub fn forget(&self, integration: uuid::Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&integration);
        }
    }
}

impl AppState {
    pub async fn conn(&self) -> Result<PooledConn, ApiError> {
        Ok(db::conn(&self.pool).await?)
    }
}
