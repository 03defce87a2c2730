//! Keeping a run's lease while it is worked on.
//!
//! A background task renews the lease every third of its length. If a renewal finds the run no
//! longer ours (the lease lapsed while this process stalled and another worker took it), it
//! cancels the run's token so the work stops at the next page. Dropping the keeper stops the
//! renewals, so a job cancelled by its timeout lets its lease lapse and the sweeper resumes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use biz_core::db::{self, sync_runs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::SyncContext;

pub struct LeaseKeeper {
    /// Cancelled on shutdown or when the lease is lost: the work stops at the next page.
    pub stop: CancellationToken,
    lost: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    pub fn start(ctx: &Arc<SyncContext>, run_id: Uuid) -> Self {
        let stop = ctx.shutdown.child_token();
        let lost = Arc::new(AtomicBool::new(false));
        let every = Duration::from_secs(ctx.settings.jobs.lease_seconds.max(3) / 3);
        let task = tokio::spawn({
            let ctx = ctx.clone();
            let stop = stop.clone();
            let lost = lost.clone();
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    let renewed = match db::conn(&ctx.pool).await {
                        Ok(mut conn) => {
                            sync_runs::renew_lease(
                                &mut conn,
                                run_id,
                                &ctx.worker_id,
                                ctx.lease_seconds(),
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    match renewed {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(sync_run.id = %run_id, "lease lost: another worker holds the run; stopping");
                            lost.store(true, Ordering::SeqCst);
                            stop.cancel();
                            return;
                        }
                        // The database is away: keep trying; if it stays away the lease lapses
                        // and the page writes (which check the lease) fail anyway.
                        Err(e) => {
                            tracing::warn!(sync_run.id = %run_id, error = %e, "lease renewal failed")
                        }
                    }
                }
            }
        });
        LeaseKeeper { stop, lost, task }
    }

    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
