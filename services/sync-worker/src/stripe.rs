//! Stripe.
//!
//! **Backfill** (`full`, and the first sync of an integration): walks each resource's list
//! newest first with `limit=100` and `starting_after`, storing every page as it arrives. Before
//! the first page it notes Stripe's newest event, so the incremental syncs that follow start
//! from there: anything that changes during the backfill is in the events after that one.
//!
//! **Incremental**: walks `/v1/events` from the last event applied towards the newest
//! (`ending_before`), applying each event's object oldest first. Ids, not times, mark the
//! cursor, so the boundary has neither a gap nor a duplicate. Stripe keeps events for 30 days:
//! a cursor Stripe no longer knows falls back to a backfill.
//!
//! Every page is stored in one transaction with the run's progress and checkpoint (and, for
//! events, the integration's cursor), so a killed run resumes after the last stored page; rows
//! are upserted by Stripe id and never overwritten by older information (`version`).

use std::sync::Arc;
use std::time::Duration;

use biz_core::db::integrations::{self, Integration};
use biz_core::db::stripe::{object_from_event, upsert, StripeObject};
use biz_core::db::sync_runs::{self, SyncRun};
use biz_core::db::{self, DbError};
use biz_core::jobs::{backoff_delay, Backoff};
use biz_core::metrics::rollup;
use chrono::Utc;
use connectors::stripe::{Resource, StripeClient};
use connectors::ProviderError;
use diesel_async::AsyncConnection;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::context::SyncContext;
use crate::lease::LeaseKeeper;
use crate::run::SyncError;

/// 429s waited out inside one page fetch before the attempt gives up and backs off as a whole.
const MAX_INLINE_WAITS: u32 = 5;

struct Sync<'a> {
    ctx: &'a SyncContext,
    run: &'a SyncRun,
    integration: &'a Integration,
    client: StripeClient,
    keeper: &'a LeaseKeeper,
    progress: Value,
    checkpoint: Value,
}

pub async fn sync(
    ctx: &Arc<SyncContext>,
    run: &SyncRun,
    integration: &Integration,
    api_key: SecretString,
    keeper: &LeaseKeeper,
) -> Result<(), SyncError> {
    let providers = &ctx.settings.providers;
    let client = StripeClient::new(ctx.http.clone(), &providers.stripe_api_base, api_key);
    let rate = if client.is_test_mode() {
        providers.stripe_test_requests_per_second
    } else {
        providers.stripe_live_requests_per_second
    };
    let mut s = Sync {
        ctx,
        run,
        integration,
        client: client.with_rate_limit(rate),
        keeper,
        progress: object(&run.progress),
        checkpoint: object(&run.checkpoint),
    };
    let cursor = integration.sync_state["stripe"]["events_after"].clone();
    let backfilling = s.checkpoint.get("backfill").is_some();
    // Stripe keeps events for 30 days and drops the oldest first: while the cursor event still
    // exists, every event after it does too. Once it is gone Stripe answers `resource_missing`
    // and we backfill. (Stripe's clock decides, not ours.)
    if run.mode == "incremental" && !backfilling && cursor["id"].is_string() {
        match s.events(cursor["id"].as_str().unwrap_or_default()).await {
            // Stripe no longer knows the cursor event: start over with a backfill.
            Err(SyncError::Provider(ProviderError::Rejected {
                status: 400 | 404, ..
            })) => {
                tracing::warn!("event cursor unknown to Stripe; backfilling instead");
            }
            other => return other,
        }
    }
    s.backfill().await
}

fn object(v: &Value) -> Value {
    if v.is_object() {
        v.clone()
    } else {
        json!({})
    }
}

impl Sync<'_> {
    async fn backfill(&mut self) -> Result<(), SyncError> {
        if self.checkpoint.get("backfill").is_none() {
            // Where incremental syncs will continue: the newest event before we start reading.
            let newest = self.fetch(|c| Box::pin(c.newest_event())).await?;
            let cursor = newest.map(|e| json!({ "id": e["id"], "created": e["created"] }));
            self.checkpoint["backfill"] = json!({ "events_after": cursor });
            // Saved before any page: every resource's pages are versioned by it.
            self.store(&[], None).await?;
        }
        // A list page is at least as new as the last event before the backfill began: events
        // after it (from webhooks or the next incremental sync) may overwrite it, older ones may
        // not. Versions are the provider's clock, not ours.
        let version = self.checkpoint["backfill"]["events_after"]["created"]
            .as_i64()
            .unwrap_or(0);
        // The resources are independent lists, so they are walked side by side, each with its
        // own checkpoint entry: Stripe's latency, our parsing and the database's writes overlap
        // instead of taking turns. The client's pacer is shared, so the run as a whole stays
        // under the rate limit.
        let walks = Resource::BACKFILL_ORDER
            .into_iter()
            .filter(|r| self.checkpoint[r.name()]["done"].as_bool() != Some(true))
            .map(|r| self.walk(r, version));
        for (name, progress, checkpoint) in futures_util::future::try_join_all(walks).await? {
            self.progress[name] = progress;
            self.checkpoint[name] = checkpoint;
        }
        // Done: incremental syncs continue from the event noted before the first page.
        let cursor = self.checkpoint["backfill"]["events_after"].clone();
        let state = json!({ "stripe": { "events_after": cursor, "backfilled_at": Utc::now().timestamp() } });
        let mut conn = db::conn(&self.ctx.pool).await?;
        integrations::set_sync_state(&mut conn, self.integration.id, &state).await?;
        let earliest =
            biz_core::db::stripe::earliest_created(&mut conn, self.integration.id).await?;
        if let Some(first) = earliest {
            let day = first.date_naive().pred_opt().unwrap_or(first.date_naive());
            rollup::mark_dirty(&mut conn, self.integration.organization_id, day).await?;
        }
        Ok(())
    }

    /// Walks one resource from its checkpoint to its end. Each page is stored (with this
    /// resource's checkpoint) while the next is fetched. Returns the resource's final progress
    /// and checkpoint entries.
    async fn walk(
        &self,
        resource: Resource,
        version: i64,
    ) -> Result<(&'static str, Value, Value), SyncError> {
        let name = resource.name();
        let mut after = self.checkpoint[name]["starting_after"]
            .as_str()
            .map(str::to_owned);
        let mut progress = self.progress[name].clone();
        let mut page = self.list(resource, after.clone()).await?;
        loop {
            if self.keeper.stop.is_cancelled() {
                return Err(SyncError::Interrupted);
            }
            if let Some(last) = page.last_id() {
                after = Some(last.to_owned());
            }
            let (fetched, has_more) = (page.data.len(), page.has_more);
            let rows = self.rows(page.data, version);
            count(&mut progress, fetched, rows.len());
            let checkpoint = json!({ "starting_after": after, "done": !has_more });
            let store = self.store_resource(name, &rows, &progress, &checkpoint);
            if !has_more {
                store.await?;
                return Ok((name, progress, checkpoint));
            }
            let (stored, next) = tokio::join!(store, self.list(resource, after.clone()));
            stored?;
            page = next?;
        }
    }

    async fn list(
        &self,
        resource: Resource,
        after: Option<String>,
    ) -> Result<connectors::stripe::Page, SyncError> {
        self.fetch(move |c| {
            let after = after.clone();
            Box::pin(async move { c.list(resource, after.as_deref()).await })
        })
        .await
    }

    /// Upserts a backfill page and moves its resource's checkpoint in one transaction; rolls
    /// back if the lease is gone.
    async fn store_resource(
        &self,
        name: &str,
        rows: &[StripeObject],
        progress: &Value,
        checkpoint: &Value,
    ) -> Result<(), SyncError> {
        let mut conn = db::conn(&self.ctx.pool).await?;
        let (run, owner) = (self.run.id, self.ctx.worker_id.as_str());
        conn.transaction::<_, SyncError, _>(async move |conn| {
            // The page and its checkpoint commit together, so a commit that a database crash
            // loses loses both: the run resumes from the checkpoint before and fetches the page
            // again. Not waiting for the WAL flush costs nothing that cannot be re-read.
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query("SET LOCAL synchronous_commit = off"),
                conn,
            )
            .await?;
            upsert(conn, rows).await?;
            if !sync_runs::save_resource_progress(conn, run, owner, name, progress, checkpoint)
                .await?
            {
                return Err(SyncError::LeaseLost);
            }
            Ok(())
        })
        .await
    }

    /// Applies the events after `cursor`, oldest first, a page at a time.
    async fn events(&mut self, cursor: &str) -> Result<(), SyncError> {
        let mut newest = self.checkpoint["events"]["ending_before"]
            .as_str()
            .unwrap_or(cursor)
            .to_owned();
        loop {
            if self.keeper.stop.is_cancelled() {
                return Err(SyncError::Interrupted);
            }
            let page = {
                let newest = newest.clone();
                self.fetch(move |c| {
                    let newest = newest.clone();
                    Box::pin(async move { c.events_newer_than(&newest).await })
                })
                .await?
            };
            if page.data.is_empty() {
                return Ok(());
            }
            // The page is newest first; apply oldest first so the cursor only moves forward.
            let rows: Vec<StripeObject> = page
                .data
                .iter()
                .rev()
                .filter_map(|e| {
                    object_from_event(self.integration.organization_id, self.integration.id, e)
                })
                .collect();
            self.count("events", page.data.len(), rows.len());
            let first = &page.data[0];
            newest = page.first_id().unwrap_or_default().to_owned();
            self.checkpoint["events"] = json!({ "ending_before": newest });
            let state = json!({ "stripe": { "events_after": { "id": first["id"], "created": first["created"] } } });
            self.store(&rows, Some(&state)).await?;
            if !page.has_more {
                return Ok(());
            }
        }
    }

    fn rows(&self, objects: Vec<Value>, version: i64) -> Vec<StripeObject> {
        objects
            .into_iter()
            .filter_map(|o| {
                StripeObject::from_owned(
                    self.integration.organization_id,
                    self.integration.id,
                    o,
                    version,
                )
            })
            .collect()
    }

    fn count(&mut self, resource: &str, fetched: usize, stored: usize) {
        count(&mut self.progress[resource], fetched, stored);
    }

    /// One call, waiting out rate limits the way Stripe asks: `Retry-After` when sent, else
    /// exponential backoff, up to `max_inline_retry_after_seconds` per wait. Longer waits end
    /// the attempt, and the run is rescheduled for then.
    async fn fetch<T, F>(&self, call: F) -> Result<T, SyncError>
    where
        F: Fn(
            &StripeClient,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, ProviderError>> + Send + '_>,
        >,
    {
        let jobs = &self.ctx.settings.jobs;
        let policy = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(jobs.max_inline_retry_after_seconds.max(1)),
        };
        let max_inline = Duration::from_secs(jobs.max_inline_retry_after_seconds);
        let mut rng = fastrand::Rng::new();
        let mut waits = 0;
        loop {
            match call(&self.client).await {
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
                        wait_ms = wait.as_millis() as u64,
                        "rate limited; waiting as asked"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.keeper.stop.cancelled() => return Err(SyncError::Interrupted),
                    }
                }
                other => return other.map_err(SyncError::from),
            }
        }
    }

    /// Upserts the rows and moves the checkpoint (and the event cursor) in one transaction;
    /// rolls back if the lease is gone.
    async fn store(
        &self,
        rows: &[StripeObject],
        sync_state: Option<&Value>,
    ) -> Result<(), SyncError> {
        let mut conn = db::conn(&self.ctx.pool).await?;
        let (run, owner, integration) = (
            self.run.id,
            self.ctx.worker_id.as_str(),
            self.integration.id,
        );
        let (progress, checkpoint) = (&self.progress, &self.checkpoint);
        let organization = self.integration.organization_id;
        conn.transaction::<_, SyncError, _>(async move |conn| {
            upsert(conn, rows).await?;
            // Incremental pages make the rollups stale from their earliest object's day (a day
            // early: the organisation's time zone may put it on the day before its UTC date).
            // A backfill marks once, at its end, rather than after every page.
            if sync_state.is_some() {
                if let Some(first) = rows.iter().map(|r| r.created).min() {
                    let day = first.date_naive().pred_opt().unwrap_or(first.date_naive());
                    rollup::mark_dirty(conn, organization, day).await?;
                }
            }
            if let Some(state) = sync_state {
                integrations::set_sync_state(conn, integration, state).await?;
            }
            if !sync_runs::save_progress(conn, run, owner, progress, checkpoint).await? {
                return Err(SyncError::LeaseLost);
            }
            Ok(())
        })
        .await
    }
}

/// Adds a page to a resource's `{fetched, stored}` counts.
fn count(counts: &mut Value, fetched: usize, stored: usize) {
    counts["fetched"] = json!(counts["fetched"].as_u64().unwrap_or(0) + fetched as u64);
    counts["stored"] = json!(counts["stored"].as_u64().unwrap_or(0) + stored as u64);
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        SyncError::Db(DbError::Query(e))
    }
}
