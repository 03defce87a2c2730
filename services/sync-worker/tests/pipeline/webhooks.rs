//! Webhooks end to end: connect through the gateway (which registers its endpoint), backfill,
//! then 500 changes to the Stripe account delivered as signed webhooks — shuffled, some twice —
//! and the stored objects must equal the account's. Replaying every event, and an incremental
//! sync from `/v1/events`, change nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use biz_core::db;
use connectors::stripe::{Resource, StripeClient};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::Harness;

const KEY: &str = "sk_test_51WebhookPipeline0000001";

/// Removes what a list expands and an event does not carry (prices' `tiers`, expanded
/// `discounts`), so a backfilled object and the same object from an event compare equal.
fn normalised(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "tiers" && k.as_str() != "discounts")
                .map(|(k, v)| (k.clone(), normalised(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalised).collect()),
        other => other.clone(),
    }
}

/// Everything the simulated account holds now, by object type and id, read through its API.
async fn account(sim: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    biz_core::install_crypto_provider();
    let client = StripeClient::new(
        reqwest::Client::new(),
        sim,
        SecretString::from(KEY.to_owned()),
    );
    let mut out = BTreeMap::new();
    for (resource, kind) in [
        (Resource::Customers, "customer"),
        (Resource::Subscriptions, "subscription"),
        (Resource::Invoices, "invoice"),
        (Resource::Charges, "charge"),
        (Resource::PaymentIntents, "payment_intent"),
        (Resource::Refunds, "refund"),
    ] {
        let mut objects = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = client.list(resource, after.as_deref()).await.unwrap();
            for o in &page.data {
                objects.insert(o["id"].as_str().unwrap().to_owned(), normalised(o));
            }
            if !page.has_more {
                break;
            }
            after = page.last_id().map(str::to_owned);
        }
        out.insert(kind.to_owned(), objects);
    }
    out
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    object_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    stripe_id: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    deleted: bool,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    raw: Value,
}

/// What we stored for the integration: live objects by type and id, and deleted ids.
async fn stored(
    h: &Harness,
    integration: Uuid,
) -> (BTreeMap<String, BTreeMap<String, Value>>, BTreeSet<String>) {
    let mut conn = db::conn(&h.pool).await.unwrap();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT object_type, stripe_id, deleted, raw FROM stripe_objects WHERE integration_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration)
    .load(&mut conn)
    .await
    .unwrap();
    let mut live: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut deleted = BTreeSet::new();
    // Prices are the catalogue the account's objects refer to; compared elsewhere.
    for r in rows.into_iter().filter(|r| r.object_type != "price") {
        if r.deleted {
            deleted.insert(r.stripe_id);
        } else {
            live.entry(r.object_type)
                .or_default()
                .insert(r.stripe_id, normalised(&r.raw));
        }
    }
    (live, deleted)
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pending: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    processed: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    failed: i64,
}

async fn event_counts(h: &Harness, integration: Uuid) -> Counts {
    let mut conn = db::conn(&h.pool).await.unwrap();
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                count(*) FILTER (WHERE status = 'processed') AS processed,
                count(*) FILTER (WHERE status = 'failed') AS failed
           FROM webhook_events WHERE integration_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration)
    .get_result(&mut conn)
    .await
    .unwrap()
}

async fn wait_processed(h: &Harness, integration: Uuid, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = event_counts(h, integration).await;
        assert_eq!(c.failed, 0);
        if c.pending == 0 && c.processed == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "events: {} pending, {} processed of {expected}",
            c.pending,
            c.processed
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_webhook_events_shuffled_and_duplicated_leave_the_accounts_state() {
    let h = Harness::new(300).await;
    let gateway = h.gateway().await;
    let api = h
        .connect_through_api(&gateway, "owner@example.com", KEY)
        .await;
    let (http, token, org, connected) = (
        api.http.clone(),
        api.token.as_str(),
        api.org.as_str(),
        &api.connected,
    );
    let integration: Uuid = connected["id"].as_str().unwrap().parse().unwrap();
    let backfill = connected["sync_run_id"].as_str().unwrap();

    let _w = h.worker("hooks", &[]);
    let run_url = format!("{gateway}/api/v1/orgs/{org}/sync-runs/{backfill}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run: Value = http
            .get(&run_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "backfill: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (live, _) = stored(&h, integration).await;
    assert_eq!(
        live,
        account(&h.sim).await,
        "the backfill holds the account"
    );

    // 500 changes, delivered shuffled, every 7th twice.
    let res: Value = http
        .post(format!("{}/_sim/stripe/advance", h.sim))
        .json(&json!({ "changes": 500, "seed": 9, "shuffle": true, "duplicate_every": 7 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["failed_deliveries"], 0, "{}", res["errors"]);
    let events = res["events"].as_array().unwrap();
    assert!(events.len() >= 500, "every change emits at least one event");
    let deleted_customers: BTreeSet<String> = events
        .iter()
        .filter(|e| e["type"] == "customer.deleted")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    wait_processed(&h, integration, events.len() as i64).await;
    let (live, deleted) = stored(&h, integration).await;
    let want = account(&h.sim).await;
    for (kind, objects) in &want {
        let got = live.get(kind).cloned().unwrap_or_default();
        let missing: Vec<&String> = objects
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(3)
            .collect();
        assert!(missing.is_empty(), "{kind}: missing {missing:?}");
        for (id, object) in objects {
            assert_eq!(&got[id], object, "{kind} {id} differs");
        }
        assert_eq!(got.len(), objects.len(), "{kind}: extra rows");
    }
    assert_eq!(
        deleted.len(),
        deleted_customers.len(),
        "deleted customers are marked, not lost"
    );

    // Replaying every event changes nothing: all are known, and none is newer than a row.
    let res: Value = http
        .post(format!("{}/_sim/stripe/replay", h.sim))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["failed_deliveries"], 0);
    wait_processed(&h, integration, events.len() as i64).await;
    assert_eq!(stored(&h, integration).await.0, live);

    // An incremental sync from /v1/events finds the same changes and changes nothing either.
    let res = http
        .post(format!(
            "{gateway}/api/v1/orgs/{org}/integrations/{integration}/sync"
        ))
        .bearer_auth(token)
        .json(&json!({ "mode": "incremental" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let run_id = res.json::<Value>().await.unwrap()["sync_run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_url = format!("{gateway}/api/v1/orgs/{org}/sync-runs/{run_id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run: Value = http
            .get(&run_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] == "succeeded" {
            break run;
        }
        assert!(Instant::now() < deadline, "incremental: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        run["progress"]["events"]["fetched"],
        events.len(),
        "exactly the events after the cursor: {run}"
    );
    assert!(run["progress"].get("customers").is_none(), "no backfill");
    assert_eq!(stored(&h, integration).await.0, live);

    // And the metrics follow: computed independently from the account as it is now.
    let raw = raw_account(&h.sim).await;
    let [revenue, net, refunds] = crate::metrics::flows(&raw["charges"], &raw["refunds"]);
    let base = format!("{gateway}/api/v1/orgs/{org}/metrics");
    let dates = ["2025-11-30", "2026-01-01", "2026-01-10"];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut mismatches = Vec::new();
        for (key, want) in [
            ("stripe_revenue", &revenue),
            ("stripe_net_revenue", &net),
            ("stripe_refunds_total", &refunds),
        ] {
            let want: BTreeMap<_, _> = want
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            let url = format!("{base}/{key}?from=2024-06-01&to=2026-12-31");
            if crate::metrics::series_map(&http, &url, token).await != want {
                mismatches.push(key.to_owned());
            }
        }
        for date in dates {
            let day: chrono::NaiveDate = date.parse().unwrap();
            let want: BTreeMap<(chrono::NaiveDate, String), i64> =
                crate::metrics::mrr_at(&raw["subscriptions"], day)
                    .into_iter()
                    .filter(|(_, v)| *v != 0)
                    .map(|(c, v)| ((day, c), v))
                    .collect();
            let url = format!("{base}/stripe_mrr?from={date}&to={date}");
            let got = crate::metrics::series_map(&http, &url, token).await;
            if got != want {
                mismatches.push(format!("mrr {date}: got {got:?} want {want:?}"));
            }
        }
        if mismatches.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics after the webhooks: {mismatches:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The account's charges, refunds and subscriptions (all statuses, tiers expanded), raw.
async fn raw_account(sim: &str) -> BTreeMap<&'static str, Vec<Value>> {
    let client = StripeClient::new(
        reqwest::Client::new(),
        sim,
        SecretString::from(KEY.to_owned()),
    );
    let mut out = BTreeMap::new();
    for resource in [
        Resource::Charges,
        Resource::Refunds,
        Resource::Subscriptions,
    ] {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = client.list(resource, after.as_deref()).await.unwrap();
            all.extend(page.data.iter().cloned());
            if !page.has_more {
                break;
            }
            after = page.last_id().map(str::to_owned);
        }
        out.insert(resource.name(), all);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_sync_whose_cursor_stripe_forgot_backfills() {
    let h = Harness::new(60).await;
    let _w = h.worker("forgetful", &[]);
    h.sql("UPDATE integrations SET sync_state = '{\"stripe\": {\"events_after\": {\"id\": \"evt_PurgedLongAgo01\", \"created\": 1}}}'")
        .await;
    let id = h.start_run(biz_core::jobs::SyncMode::Incremental).await;
    let run = h
        .wait_for(id, Duration::from_secs(60), |r| r.status == "succeeded")
        .await;
    assert_eq!(
        run.progress["customers"]["stored"], 60,
        "fell back to a backfill"
    );
    let first_events_call = h
        .sim_requests("/v1/events")
        .await
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(first_events_call["status"], 400, "Stripe: no such event");
    let mut conn = db::conn(&h.pool).await.unwrap();
    let integration = db::integrations::find(&mut conn, h.org_id, h.integration_id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        integration.sync_state["stripe"]["events_after"]["id"],
        "evt_PurgedLongAgo01"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_stored_while_redis_is_down_is_queued_by_the_sweeper() {
    let h = Harness::new(20).await;
    // The gateway's Redis is a port nothing listens on; the worker's is fine.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("redis://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let gateway = h.gateway_on_redis(Some(&dead)).await;
    let api = h
        .connect_through_api(&gateway, "ops@example.com", KEY)
        .await;
    let (http, connected) = (api.http.clone(), &api.connected);
    let integration: Uuid = connected["id"].as_str().unwrap().parse().unwrap();

    // Stripe delivers an event: stored and acknowledged although it cannot be queued.
    let res: Value = http
        .post(format!("{}/_sim/stripe/advance", h.sim))
        .json(&json!({ "changes": 5, "seed": 3 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["failed_deliveries"], 0, "{}", res["errors"]);
    let delivered = res["events"].as_array().unwrap().len() as i64;
    let c = event_counts(&h, integration).await;
    assert_eq!(c.pending, delivered, "stored, not yet applied");

    // A worker (its own Redis is up) finds them through its sweeper and applies them.
    let _w = h.worker("sweeper", &[]);
    wait_processed(&h, integration, delivered).await;
}
