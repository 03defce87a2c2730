//! The alert tick. Every replica wakes each `scheduler_tick_seconds`, works out the current
//! period of `alert_interval_seconds`, and tries to claim it in `scheduler_ticks`; only the
//! replica whose insert wins queues the period's evaluations, so each tick is enqueued once
//! however many replicas run. A tick whose queueing fails (Redis away) is skipped: the next one
//! evaluates the same rules against fresher data.

use std::sync::Arc;

use biz_core::db::{self, integrations, scheduler};
use biz_core::jobs::{EvaluateAlerts, Job};
use chrono::Utc;

use crate::evaluate::AlertContext;

pub async fn tick(ctx: Arc<AlertContext>) -> anyhow::Result<()> {
    let period = i64::try_from(ctx.settings.jobs.alert_interval_seconds).unwrap_or(300);
    let slot = scheduler::slot(Utc::now(), period);
    let mut conn = db::conn(&ctx.pool).await?;
    if !scheduler::claim_tick(&mut conn, EvaluateAlerts::NAME, slot, &ctx.worker_id).await? {
        return Ok(());
    }
    let organizations = integrations::organizations_with_active(&mut conn).await?;
    tracing::info!(slot = %slot.to_rfc3339(), organizations = organizations.len(), "alert tick claimed");
    for organization_id in organizations {
        ctx.producer
            .push(EvaluateAlerts {
                organization_id,
                slot,
            })
            .await?;
    }
    // Ticks only guard against double queueing of recent periods.
    scheduler::prune(&mut conn, slot - chrono::Duration::days(2)).await?;
    Ok(())
}
