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
}

impl AppState {
    pub async fn conn(&self) -> Result<PooledConn, ApiError> {
        Ok(db::conn(&self.pool).await?)
    }
}
