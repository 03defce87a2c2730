//! The report and email jobs. The pipeline delivers them; rendering reports and the email outbox
//! arrive with the reports feature, so until then a job names a report or message that does not
//! exist, and is logged and dropped rather than retried forever.

use std::sync::Arc;
use std::time::Instant;

use apalis::prelude::{BoxDynError, Data};
use biz_core::jobs::{GenerateReport, Job, JobMetrics, SendEmail};

pub struct ReportContext {
    pub metrics: JobMetrics,
}

impl ReportContext {
    pub fn new(rt: &worker_runtime::Runtime) -> Self {
        ReportContext {
            metrics: rt.metrics.clone(),
        }
    }
}

pub async fn generate_report(
    job: GenerateReport,
    ctx: Data<Arc<ReportContext>>,
) -> Result<(), BoxDynError> {
    let started = Instant::now();
    ctx.metrics.started(GenerateReport::NAME);
    tracing::warn!(report.id = %job.report_id, "no such report; job dropped");
    ctx.metrics.failed(GenerateReport::NAME, started.elapsed());
    Ok(())
}

pub async fn send_email(job: SendEmail, ctx: Data<Arc<ReportContext>>) -> Result<(), BoxDynError> {
    let started = Instant::now();
    ctx.metrics.started(SendEmail::NAME);
    tracing::warn!(outbox.id = %job.outbox_id, "no such outbox message; job dropped");
    ctx.metrics.failed(SendEmail::NAME, started.elapsed());
    Ok(())
}
