//! The consumers of `sync_integration.v1` and `process_webhook_event.v1`.

use std::sync::Arc;

use biz_core::jobs::{ProcessWebhookEvent, SyncIntegration};
use worker_runtime::Consumer;

use crate::context::SyncContext;
use crate::{run, webhook};

/// Runs both queues until the stop signal.
pub async fn run(rt: &worker_runtime::Runtime, ctx: Arc<SyncContext>) {
    let syncs = Consumer {
        label: "sync",
        concurrency: rt.settings.jobs.sync_concurrency,
        batch_size: 1,
    }
    .run::<SyncIntegration, _, _, _>(rt, ctx.clone(), run::handle);
    let webhooks = Consumer {
        label: "webhooks",
        concurrency: rt.settings.jobs.webhook_concurrency,
        batch_size: 20,
    }
    .run::<ProcessWebhookEvent, _, _, _>(rt, ctx, webhook::handle);
    tokio::join!(syncs, webhooks);
}
