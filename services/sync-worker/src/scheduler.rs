//! Scheduled incremental syncs. Each tick claims the integrations whose `next_sync_at` passed and
//! moves it one interval on, in one statement with `FOR UPDATE SKIP LOCKED`: with several
//! replicas ticking, each due integration is claimed by exactly one. An integration that still
//! has a queued or running run gets no second one (the run table allows one).

use std::sync::Arc;

use biz_core::db::{self, integrations, sync_runs};
use biz_core::jobs::{SyncIntegration, SyncMode};
use chrono::Utc;

use crate::context::SyncContext;

pub async fn tick(ctx: Arc<SyncContext>) -> anyhow::Result<()> {
    let mut conn = db::conn(&ctx.pool).await?;
    let due = integrations::claim_due(&mut conn, 100).await?;
    for integration in due {
        tracing::info!(
            integration.id = %integration.id,
            slot = %integration.slot.to_rfc3339(),
            "scheduled sync claimed"
        );
        let (run, created) = sync_runs::create_or_existing(
            &mut conn,
            integration.organization_id,
            integration.id,
            SyncMode::Incremental.as_str(),
            "schedule",
            ctx.settings.jobs.max_attempts,
        )
        .await?;
        if !created {
            tracing::debug!(integration.id = %integration.id, "scheduled sync skipped: a run is active");
            continue;
        }
        let job = SyncIntegration {
            integration_id: integration.id,
            mode: SyncMode::Incremental,
            sync_run_id: run.id,
        };
        // A failed push leaves the run queued and never enqueued: the sweeper pushes it.
        if ctx.producer.push(job).await.is_ok() {
            sync_runs::mark_enqueued(&mut conn, run.id, Utc::now()).await?;
        }
        tracing::info!(integration.id = %integration.id, sync_run.id = %run.id, "scheduled sync queued");
    }
    Ok(())
}
