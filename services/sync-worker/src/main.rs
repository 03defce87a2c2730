//! `sync-worker`: pulls provider data into PostgreSQL.
//!
//! It consumes the `sync_integration` queue over Redis (apalis), and runs two loops beside it:
//! the scheduler (due integrations get an incremental run) and the sweeper (runs whose job was
//! lost, or whose worker died, are pushed again). PostgreSQL's `sync_runs` is the record of
//! truth; see docs/JOBS.md. `/healthz`, `/readyz` and `/metrics` are served on
//! `BIZ__WORKER__ADDR`. SIGTERM: no new jobs; running syncs hand their run back at the next page.

mod consumer;
mod context;
mod lease;
mod rollups;
mod run;
mod scheduler;
mod shopify;
mod shopify_events;
mod stripe;
mod sweeper;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use context::SyncContext;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rt = worker_runtime::Runtime::start("sync-worker").await?;
    let ctx = Arc::new(SyncContext::new(&rt));
    let jobs = &rt.settings.jobs;

    let sweep = tokio::spawn(worker_runtime::every(
        "sweeper",
        Duration::from_secs(jobs.sweep_interval_seconds),
        rt.shutdown.clone(),
        {
            let ctx = ctx.clone();
            move || sweeper::sweep(ctx.clone())
        },
    ));
    let schedule = tokio::spawn(worker_runtime::every(
        "scheduler",
        Duration::from_secs(jobs.scheduler_tick_seconds),
        rt.shutdown.clone(),
        {
            let ctx = ctx.clone();
            move || scheduler::tick(ctx.clone())
        },
    ));

    let rollups = tokio::spawn(worker_runtime::every(
        "rollups",
        std::time::Duration::from_secs(2),
        rt.shutdown.clone(),
        {
            let ctx = ctx.clone();
            move || rollups::tick(ctx.clone())
        },
    ));

    consumer::run(&rt, ctx).await;
    let _ = tokio::join!(sweep, schedule, rollups);
    tracing::info!(worker.id = %rt.worker_id, "sync-worker stopped");
    Ok(())
}
