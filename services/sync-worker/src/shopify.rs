//! Shopify, through the Admin REST API at the pinned version.
//!
//! Each resource (customers, products, orders of every status) is walked in id order with
//! `limit=250` and the `Link` header's `page_info` cursor, side by side under one leaky bucket
//! ([`connectors::LeakyBucket`]) that keeps the shop's bucket from overflowing. Every page is
//! upserted by Shopify id in one transaction with that resource's checkpoint (the next
//! `page_info`), so a killed run resumes after its last stored page. The next page is fetched
//! while the current one is stored, so under the rate limit the bucket, not our storing, sets
//! the pace (a killed run refetches at most the two pages it had in hand).
//!
//! **Backfill** (`full`, and the first sync): no filter. Once a resource's walk is complete,
//! products and customers the walk did not see are removed (deleted while no webhook reached
//! us): the periodic reconciliation. **Incremental**: `updated_at_min` = the start of the last
//! completed walk (by the shop's own clock, its `Date` header) minus the overlap setting, so an
//! object changed while the last walk ran is read again rather than missed; re-reading is
//! harmless because a row is only replaced by an equal or newer `updated_at`.

use std::sync::Arc;

use biz_core::db::integrations::{self, Integration};
use biz_core::db::shopify::{self as store, Kind, ShopifyObject};
use biz_core::db::sync_runs::{self, SyncRun};
use biz_core::db::{self};
use chrono::{DateTime, Utc};
use connectors::shopify::{shop_base, Cursor, Resource, ShopifyClient};
use diesel_async::AsyncConnection;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::context::SyncContext;
use crate::lease::LeaseKeeper;
use crate::run::SyncError;

fn kind(resource: Resource) -> Kind {
    match resource {
        Resource::Orders => Kind::Order,
        Resource::Products => Kind::Product,
        Resource::Customers => Kind::Customer,
    }
}

struct Sync<'a> {
    ctx: &'a SyncContext,
    run: &'a SyncRun,
    integration: &'a Integration,
    client: ShopifyClient,
    keeper: &'a LeaseKeeper,
    /// A backfill marks the rollups dirty once, at its end, not after every page.
    rollups: store::Rollups,
}

pub async fn sync(
    ctx: &Arc<SyncContext>,
    run: &SyncRun,
    integration: &Integration,
    token: SecretString,
    keeper: &LeaseKeeper,
) -> Result<(), SyncError> {
    let providers = &ctx.settings.providers;
    let shop = integration
        .external_account_id
        .as_deref()
        .ok_or(SyncError::NotConnected)?;
    let version = integration.settings["api_version"]
        .as_str()
        .unwrap_or(&providers.shopify_api_version);
    let client = ShopifyClient::new(
        ctx.http.clone(),
        &shop_base(&providers.shopify_api_base, shop),
        version,
        token,
        providers.shopify_bucket_size,
        providers.shopify_leak_per_second,
    );
    let updated_at_min = updated_at_min_for(run, integration, providers);
    let backfill = updated_at_min.is_none();
    let s = Sync {
        ctx,
        run,
        integration,
        client,
        keeper,
        rollups: if backfill {
            store::Rollups::Later
        } else {
            store::Rollups::MarkDirty
        },
    };
    // Progress shows all three resources from the start.
    let mut progress = if run.progress.is_object() {
        run.progress.clone()
    } else {
        json!({})
    };
    for r in Resource::ALL {
        if progress.get(r.name()).is_none() {
            progress[r.name()] = json!({ "fetched": 0, "stored": 0 });
            s.save(r, &[], &progress[r.name()], &run.checkpoint[r.name()])
                .await?;
        }
    }
    let walks = Resource::ALL
        .into_iter()
        .filter(|r| run.checkpoint[r.name()]["done"].as_bool() != Some(true))
        .map(|r| s.walk(r, updated_at_min, progress[r.name()].clone()));
    let started: Vec<Option<DateTime<Utc>>> = futures_util::future::try_join_all(walks).await?;
    // The next incremental sync reads from the earliest start of this run's walks (a resumed
    // run's earlier walks began before; their start is in the checkpoint).
    let mut starts: Vec<DateTime<Utc>> = started.into_iter().flatten().collect();
    let mut conn = db::conn(&ctx.pool).await?;
    if let Some(r) = sync_runs::find_for_job(&mut conn, run.id).await? {
        for res in Resource::ALL {
            if let Some(t) = r.checkpoint[res.name()]["walk_started_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            {
                starts.push(t.with_timezone(&Utc));
            }
        }
    }
    if backfill {
        store::mark_all_orders_dirty(&mut conn, integration.organization_id, integration.id)
            .await?;
    }
    if let Some(earliest) = starts.into_iter().min() {
        let state = json!({ "shopify": { "walk_started_at": earliest.to_rfc3339(), "synced_at": Utc::now().to_rfc3339() } });
        integrations::set_sync_state(&mut conn, integration.id, &state).await?;
    }
    Ok(())
}

/// Incremental from the last complete walk's start, less the overlap; `None` (walk everything)
/// for a full run or a first sync.
fn updated_at_min_for(
    run: &SyncRun,
    integration: &Integration,
    providers: &biz_core::settings::ProviderSettings,
) -> Option<DateTime<Utc>> {
    let since = integration.sync_state["shopify"]["walk_started_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))?;
    (run.mode == "incremental")
        .then(|| since - chrono::Duration::seconds(providers.shopify_overlap_seconds as i64))
}

impl Sync<'_> {
    /// Walks one resource from its checkpoint to its end, storing each page as it arrives and
    /// fetching the next one meanwhile.
    /// Returns when the walk began by the shop's clock.
    async fn walk(
        &self,
        resource: Resource,
        updated_at_min: Option<DateTime<Utc>>,
        mut progress: Value,
    ) -> Result<Option<DateTime<Utc>>, SyncError> {
        let name = resource.name();
        let saved = &self.run.checkpoint[name];
        let mut started: Option<DateTime<Utc>> = saved["walk_started_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        // Our clock at the walk's start, for reconciliation by `synced_at` (also our clock).
        let local_start: DateTime<Utc> = saved["local_started_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let cursor = match saved["page_info"].as_str() {
            Some(info) => Cursor::PageInfo(info.to_owned()),
            None => Cursor::First { updated_at_min },
        };
        let mut page = self.client.list(resource, &cursor).await?;
        loop {
            if self.keeper.stop.is_cancelled() {
                return Err(SyncError::Interrupted);
            }
            if started.is_none() {
                started = Some(page.date.unwrap_or_else(Utc::now));
            }
            let fetched = page.items.len();
            let rows: Vec<ShopifyObject> = page
                .items
                .into_iter()
                .filter_map(|o| ShopifyObject::from_api(kind(resource), o))
                .collect();
            progress["fetched"] = json!(progress["fetched"].as_u64().unwrap_or(0) + fetched as u64);
            progress["stored"] =
                json!(progress["stored"].as_u64().unwrap_or(0) + rows.len() as u64);
            let done = page.next.is_none();
            let checkpoint = json!({
                "page_info": page.next,
                "done": done,
                "walk_started_at": started.map(|t| t.to_rfc3339()),
                "local_started_at": local_start.to_rfc3339(),
            });
            let fetch_next = async {
                match &page.next {
                    Some(next) => {
                        let cursor = Cursor::PageInfo(next.clone());
                        self.client.list(resource, &cursor).await.map(Some)
                    }
                    None => Ok(None),
                }
            };
            let (saved, next) = tokio::join!(
                self.save(resource, &rows, &progress, &checkpoint),
                fetch_next
            );
            saved?;
            match next? {
                Some(next) => page = next,
                None => break,
            }
        }
        // A complete unfiltered walk saw every live object (orders of every status): the rest
        // were deleted at Shopify.
        if updated_at_min.is_none() {
            let mut conn = db::conn(&self.ctx.pool).await?;
            let (org, integration) = (self.integration.organization_id, self.integration.id);
            let removed =
                store::reconcile(&mut conn, org, integration, kind(resource), local_start).await?;
            if removed > 0 {
                tracing::info!(
                    resource = name,
                    removed,
                    "removed objects deleted at Shopify"
                );
            }
        }
        Ok(started)
    }

    /// Upserts a page and moves its resource's checkpoint in one transaction; rolls back if the
    /// lease is gone.
    async fn save(
        &self,
        resource: Resource,
        rows: &[ShopifyObject],
        progress: &Value,
        checkpoint: &Value,
    ) -> Result<(), SyncError> {
        let mut conn = db::conn(&self.ctx.pool).await?;
        let (run, owner) = (self.run.id, self.ctx.worker_id.as_str());
        let (org, integration) = (self.integration.organization_id, self.integration.id);
        let name = resource.name();
        let rollups = self.rollups;
        conn.transaction::<_, SyncError, _>(async move |conn| {
            store::upsert(conn, org, integration, rows, rollups).await?;
            if !sync_runs::save_resource_progress(conn, run, owner, name, progress, checkpoint)
                .await?
            {
                return Err(SyncError::LeaseLost);
            }
            Ok(())
        })
        .await
    }
}
