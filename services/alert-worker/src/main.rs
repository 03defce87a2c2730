//! `alert-worker`: evaluates alert rules and sends notifications.
//!
//! It consumes its apalis queues over Redis (see docs/JOBS.md) and serves `/healthz`, `/readyz`
//! and `/metrics` on `BIZ__WORKER__ADDR`. SIGTERM stops it.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runtime = worker_runtime::Runtime::start("alert-worker").await?;
    worker_runtime::shutdown_signal().await;
    tracing::info!(ops.port = runtime.ops_port, "alert-worker stopped");
    Ok(())
}
