//! Evaluating an organisation's alert rules for one tick.
//!
//! The job pipeline delivers one `EvaluateAlerts` per organisation and tick. The rules
//! themselves (thresholds, comparisons, notifications) arrive with the alerts feature; until
//! then an evaluation has no rules to check and records that it ran.

use std::sync::Arc;
use std::time::Instant;

use apalis::prelude::{BoxDynError, Data};
use biz_core::db;
use biz_core::jobs::{EvaluateAlerts, Job, JobMetrics, Producer};
use biz_core::settings::Settings;

pub struct AlertContext {
    pub settings: Arc<Settings>,
    pub pool: db::Pool,
    pub producer: Producer,
    pub metrics: JobMetrics,
    pub worker_id: String,
}

impl AlertContext {
    pub fn new(rt: &worker_runtime::Runtime) -> Self {
        AlertContext {
            settings: rt.settings.clone(),
            pool: rt.pool.clone(),
            producer: rt.producer.clone(),
            metrics: rt.metrics.clone(),
            worker_id: rt.worker_id.clone(),
        }
    }
}

pub async fn handle(job: EvaluateAlerts, ctx: Data<Arc<AlertContext>>) -> Result<(), BoxDynError> {
    let started = Instant::now();
    ctx.metrics.started(EvaluateAlerts::NAME);
    tracing::info!(
        organization.id = %job.organization_id,
        slot = %job.slot.to_rfc3339(),
        rules = 0,
        "alert evaluation ran"
    );
    ctx.metrics
        .succeeded(EvaluateAlerts::NAME, started.elapsed());
    Ok(())
}
