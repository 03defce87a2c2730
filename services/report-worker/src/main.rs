//! `report-worker`: renders scheduled reports (PDF, Excel, CSV) and sends email.
//!
//! It consumes the `generate_report` and `send_email` queues over Redis (see docs/JOBS.md) and
//! serves `/healthz`, `/readyz` and `/metrics` on `BIZ__WORKER__ADDR`. SIGTERM stops it.

mod jobs;

use std::sync::Arc;

use biz_core::jobs::{GenerateReport, SendEmail};
use worker_runtime::Consumer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rt = worker_runtime::Runtime::start("report-worker").await?;
    let ctx = Arc::new(jobs::ReportContext::new(&rt));
    let reports = Consumer {
        label: "reports",
        concurrency: rt.settings.jobs.report_concurrency,
        batch_size: 1,
    }
    .run::<GenerateReport, _, _, _>(&rt, ctx.clone(), jobs::generate_report);
    let emails = Consumer {
        label: "email",
        concurrency: rt.settings.jobs.email_concurrency,
        batch_size: 10,
    }
    .run::<SendEmail, _, _, _>(&rt, ctx, jobs::send_email);
    tokio::join!(reports, emails);
    tracing::info!(worker.id = %rt.worker_id, "report-worker stopped");
    Ok(())
}
