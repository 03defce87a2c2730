//! What every sync job needs, built once per process.

use std::sync::Arc;
use std::time::Duration;

use biz_core::crypto::KeyRing;
use biz_core::db;
use biz_core::jobs::{Backoff, JobMetrics, Producer};
use biz_core::settings::Settings;
use tokio_util::sync::CancellationToken;

pub struct SyncContext {
    pub settings: Arc<Settings>,
    pub pool: db::Pool,
    pub producer: Producer,
    pub metrics: JobMetrics,
    pub keys: Arc<KeyRing>,
    pub http: connectors::HttpClient,
    /// Holds leases in this process's name.
    pub worker_id: String,
    pub shutdown: CancellationToken,
}

impl SyncContext {
    pub fn new(rt: &worker_runtime::Runtime) -> Self {
        SyncContext {
            settings: rt.settings.clone(),
            pool: rt.pool.clone(),
            producer: rt.producer.clone(),
            metrics: rt.metrics.clone(),
            keys: rt.keys.clone(),
            http: connectors::http_client(Duration::from_secs(60)),
            worker_id: rt.worker_id.clone(),
            shutdown: rt.shutdown.clone(),
        }
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.settings.jobs.backoff_base_ms),
            max: Duration::from_millis(self.settings.jobs.backoff_max_ms),
        }
    }

    pub fn lease_seconds(&self) -> i32 {
        i32::try_from(self.settings.jobs.lease_seconds).unwrap_or(i32::MAX)
    }
}
