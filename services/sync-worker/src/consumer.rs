//! The consumer of `sync_integration.v1`.

use std::sync::Arc;

use biz_core::jobs::SyncIntegration;
use worker_runtime::Consumer;

use crate::context::SyncContext;
use crate::run;

pub async fn run(rt: &worker_runtime::Runtime, ctx: Arc<SyncContext>) {
    Consumer {
        label: "sync",
        concurrency: rt.settings.jobs.sync_concurrency,
        batch_size: 1,
    }
    .run::<SyncIntegration, _, _, _>(rt, ctx, run::handle)
    .await;
}
