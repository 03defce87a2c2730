//! `alert-worker`: evaluates alert rules and sends notifications.
//!
//! It consumes the `evaluate_alerts` queue and runs the alert scheduler: every
//! `alert_interval_seconds` one evaluation per organisation is queued, by whichever replica
//! claims the tick first (see docs/JOBS.md). `/healthz`, `/readyz` and `/metrics` are served on
//! `BIZ__WORKER__ADDR`. SIGTERM stops it.

mod evaluate;
mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use biz_core::jobs::EvaluateAlerts;
use worker_runtime::Consumer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rt = worker_runtime::Runtime::start("alert-worker").await?;
    let ctx = Arc::new(evaluate::AlertContext::new(&rt));
    let schedule = tokio::spawn(worker_runtime::every(
        "alert-scheduler",
        Duration::from_secs(rt.settings.jobs.scheduler_tick_seconds),
        rt.shutdown.clone(),
        {
            let ctx = ctx.clone();
            move || scheduler::tick(ctx.clone())
        },
    ));
    Consumer {
        label: "alerts",
        concurrency: rt.settings.jobs.alert_concurrency,
        batch_size: 10,
    }
    .run::<EvaluateAlerts, _, _, _>(&rt, ctx, evaluate::handle)
    .await;
    let _ = schedule.await;
    tracing::info!(worker.id = %rt.worker_id, "alert-worker stopped");
    Ok(())
}
