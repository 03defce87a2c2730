//! The apalis consumer of `sync_integration.v1`.
//!
//! The worker is named after this process start (and a generation), never reused: apalis finds
//! a dead worker's in-flight jobs by its name and refuses a name still registered. If the
//! monitor ends with an error while we are not shutting down (Redis went away and the worker
//! gave up, apalis #492), it is rebuilt under a new generation after a pause, instead of the
//! process sitting idle.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::RedisStorage;
use biz_core::jobs::{queue_config, SyncIntegration};

use crate::context::SyncContext;
use crate::run;

pub async fn run(rt: &worker_runtime::Runtime, ctx: Arc<SyncContext>) {
    let settings = rt.settings.clone();
    let jobs = &settings.jobs;
    for generation in 0u32.. {
        // Sync jobs are long: fetch one at a time per free slot rather than a batch that would
        // sit in this worker's in-flight set while other workers are idle.
        let config = queue_config::<SyncIntegration>(&settings.redis, jobs).batch_size(1);
        let storage = RedisStorage::<SyncIntegration>::new(rt.queue.clone()).with_config(config);
        let name = format!("{}-sync-g{generation}", rt.worker_id);
        let (concurrency, timeout) = (
            jobs.sync_concurrency,
            Duration::from_secs(jobs.job_timeout_seconds),
        );
        let ctx = ctx.clone();
        let monitor = Monitor::new()
            .register(move |restart| {
                WorkerBuilder::new(format!("{name}-r{restart}"))
                    .backend(storage.clone())
                    .data(ctx.clone())
                    .concurrency(concurrency)
                    .timeout(timeout)
                    .catch_panic()
                    .build(run::handle)
            })
            .shutdown_timeout(rt.grace());
        let result = monitor.run_with_signal(rt.stop_signal()).await;
        if rt.shutdown.is_cancelled() {
            return;
        }
        tracing::warn!(
            ?result,
            generation,
            "queue consumer stopped; starting it again"
        );
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = rt.shutdown.cancelled() => return,
        }
    }
}
