//! The sweeper: PostgreSQL is the record of truth, so whatever Redis lost is found here.
//!
//! Every `sweep_interval_seconds` it pushes again (a) queued runs that are due but were not
//! taken within `requeue_after_seconds` of being queued (their job was lost: Redis restarted
//! without persistence, or the push failed), and (b) running runs whose lease lapsed (their
//! worker died). The claim in the same statement marks them enqueued, so several sweepers split
//! the work and a run is not pushed on every sweep. Duplicate jobs are harmless: claiming a run
//! is atomic.

use std::sync::Arc;

use biz_core::db::{self, sync_runs, webhook_events};
use biz_core::jobs::{Job, ProcessWebhookEvent, SyncIntegration, SyncMode};

use crate::context::SyncContext;

pub async fn sweep(ctx: Arc<SyncContext>) -> anyhow::Result<()> {
    let jobs = &ctx.settings.jobs;
    let mut conn = db::conn(&ctx.pool).await?;
    let stalled = sync_runs::claim_stalled(
        &mut conn,
        i32::try_from(jobs.requeue_after_seconds).unwrap_or(i32::MAX),
        ctx.lease_seconds(),
        100,
    )
    .await?;
    for run in stalled {
        let job = SyncIntegration {
            integration_id: run.integration_id,
            mode: SyncMode::parse(&run.mode).unwrap_or(SyncMode::Incremental),
            sync_run_id: run.id,
        };
        match ctx.producer.push(job).await {
            Ok(()) => {
                ctx.metrics.requeued(SyncIntegration::NAME);
                tracing::info!(sync_run.id = %run.id, "stalled sync run pushed to the queue again");
            }
            Err(e) => {
                sync_runs::clear_enqueued(&mut conn, run.id).await?;
                anyhow::bail!("queue unavailable: {e}");
            }
        }
    }
    // Webhook events stored but never queued (Redis was away), or whose job was lost.
    let events = webhook_events::claim_stalled(
        &mut conn,
        i32::try_from(jobs.requeue_after_seconds).unwrap_or(i32::MAX),
        500,
    )
    .await?;
    for event in events {
        if let Err(e) = ctx
            .producer
            .push(ProcessWebhookEvent {
                event_row_id: event.id,
            })
            .await
        {
            anyhow::bail!("queue unavailable: {e}");
        }
        ctx.metrics.requeued(ProcessWebhookEvent::NAME);
    }
    Ok(())
}
