//! Keeping metric rollups current: organisations marked dirty by syncs and webhooks are
//! recomputed from their first affected day, a few at a time, by whichever replica claims them.

use std::sync::Arc;

use biz_core::db;
use biz_core::metrics::rollup;

use crate::context::SyncContext;

pub async fn tick(ctx: Arc<SyncContext>) -> anyhow::Result<()> {
    let mut conn = db::conn(&ctx.pool).await?;
    for dirty in rollup::claim_dirty(&mut conn, 10).await? {
        let started = std::time::Instant::now();
        match rollup::recompute(&mut conn, dirty.organization_id, dirty.dirty_from).await {
            Ok(rows) => tracing::info!(
                organization.id = %dirty.organization_id,
                from = %dirty.dirty_from,
                rows,
                took_ms = started.elapsed().as_millis() as u64,
                "metric rollups recomputed"
            ),
            Err(e) => {
                // Put it back so the next tick tries again.
                rollup::mark_dirty(&mut conn, dirty.organization_id, dirty.dirty_from).await?;
                anyhow::bail!("recomputing rollups: {e}");
            }
        }
    }
    Ok(())
}
