//! Stripe: walk each resource's list newest first with `limit=100` and `starting_after`, storing
//! every page as it arrives. Each page is upserted by Stripe id in one transaction with the run's
//! progress and checkpoint (the last id stored), so a run killed at any moment resumes after the
//! last stored page and a page stored twice changes nothing.

use std::sync::Arc;
use std::time::Duration;

use biz_core::db::integrations::Integration;
use biz_core::db::stripe::{upsert_customers, StripeCustomer};
use biz_core::db::sync_runs::{self, SyncRun};
use biz_core::db::{self, DbError};
use biz_core::jobs::{backoff_delay, Backoff};
use connectors::stripe::{Page, StripeClient};
use connectors::ProviderError;
use diesel_async::AsyncConnection;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::context::SyncContext;
use crate::lease::LeaseKeeper;
use crate::run::SyncError;

/// The resources synced, in order.
const RESOURCES: [&str; 1] = ["customers"];

/// 429s waited out inside one page fetch before the attempt gives up and backs off as a whole.
const MAX_INLINE_WAITS: u32 = 5;

pub async fn sync(
    ctx: &Arc<SyncContext>,
    run: &SyncRun,
    integration: &Integration,
    api_key: SecretString,
    keeper: &LeaseKeeper,
) -> Result<(), SyncError> {
    let client = StripeClient::new(
        ctx.http.clone(),
        &ctx.settings.providers.stripe_api_base,
        api_key,
    );
    let mut progress = object(&run.progress);
    let mut checkpoint = object(&run.checkpoint);
    for resource in RESOURCES {
        if checkpoint[resource]["done"].as_bool() == Some(true) {
            continue;
        }
        let mut after = checkpoint[resource]["starting_after"]
            .as_str()
            .map(str::to_owned);
        loop {
            if keeper.stop.is_cancelled() {
                return Err(SyncError::Interrupted);
            }
            let page = fetch(ctx, &client, resource, after.as_deref(), keeper).await?;
            let rows: Vec<StripeCustomer> = page
                .data
                .iter()
                .filter_map(|o| {
                    StripeCustomer::from_api(integration.organization_id, integration.id, o)
                })
                .collect();
            let counts = &mut progress[resource];
            counts["fetched"] =
                json!(counts["fetched"].as_u64().unwrap_or(0) + page.data.len() as u64);
            counts["stored"] = json!(counts["stored"].as_u64().unwrap_or(0) + rows.len() as u64);
            if let Some(last) = page.last_id() {
                after = Some(last.to_owned());
            }
            checkpoint[resource] = json!({ "starting_after": after, "done": !page.has_more });
            store_page(ctx, run, &rows, &progress, &checkpoint).await?;
            if !page.has_more {
                break;
            }
        }
    }
    Ok(())
}

fn object(v: &Value) -> Value {
    if v.is_object() {
        v.clone()
    } else {
        json!({})
    }
}

/// One page, waiting out rate limits the way Stripe asks: `Retry-After` when sent, else
/// exponential backoff, up to `max_inline_retry_after_seconds` per wait. Longer waits end the
/// attempt, and the run is rescheduled for then.
async fn fetch(
    ctx: &SyncContext,
    client: &StripeClient,
    resource: &str,
    after: Option<&str>,
    keeper: &LeaseKeeper,
) -> Result<Page, SyncError> {
    let policy = Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(ctx.settings.jobs.max_inline_retry_after_seconds.max(1)),
    };
    let max_inline = Duration::from_secs(ctx.settings.jobs.max_inline_retry_after_seconds);
    let mut rng = fastrand::Rng::new();
    let mut waits = 0;
    loop {
        match client.list(resource, after, &[]).await {
            Err(ProviderError::RateLimited { retry_after }) if waits < MAX_INLINE_WAITS => {
                waits += 1;
                let wait =
                    retry_after.unwrap_or_else(|| backoff_delay(policy, waits, None, &mut rng));
                if wait > max_inline {
                    return Err(ProviderError::RateLimited {
                        retry_after: Some(wait),
                    }
                    .into());
                }
                tracing::info!(
                    resource,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited; waiting as asked"
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = keeper.stop.cancelled() => return Err(SyncError::Interrupted),
                }
            }
            other => return other.map_err(SyncError::from),
        }
    }
}

/// Upserts the page and moves the checkpoint in one transaction; rolls back if the lease is gone.
async fn store_page(
    ctx: &SyncContext,
    run: &SyncRun,
    rows: &[StripeCustomer],
    progress: &Value,
    checkpoint: &Value,
) -> Result<(), SyncError> {
    let mut conn = db::conn(&ctx.pool).await?;
    let owner = ctx.worker_id.as_str();
    conn.transaction::<_, SyncError, _>(async move |conn| {
        upsert_customers(conn, rows).await?;
        if !sync_runs::save_progress(conn, run.id, owner, progress, checkpoint).await? {
            return Err(SyncError::LeaseLost);
        }
        Ok(())
    })
    .await
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        SyncError::Db(DbError::Query(e))
    }
}
