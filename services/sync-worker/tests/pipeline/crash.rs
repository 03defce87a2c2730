//! Runs survive their worker: SIGKILL mid-run, and SIGTERM.

use std::time::{Duration, Instant};

use biz_core::jobs::SyncMode;
use serde_json::{json, Value};

use crate::harness::Harness;
use crate::{expected, expected_ids};

/// Rows stored so far, over every resource.
fn stored(run: &biz_core::db::sync_runs::SyncRun) -> u64 {
    run.progress
        .as_object()
        .map(|m| m.values().filter_map(|c| c["stored"].as_u64()).sum())
        .unwrap_or(0)
}

fn param(request: &Value, name: &str) -> Option<String> {
    request["query"]
        .as_str()
        .unwrap()
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

/// The values of an array parameter, sent as `name[]=…` or `name[0]=…` (both are Stripe's).
fn array_param(request: &Value, name: &str) -> Vec<String> {
    request["query"]
        .as_str()
        .unwrap()
        .replace("%5B", "[")
        .replace("%5D", "]")
        .split('&')
        .filter_map(|kv| {
            let (key, value) = kv.split_once('=')?;
            let index = key
                .strip_prefix(name)?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            index
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| value.to_owned())
        })
        .collect()
}

const ORDER: [&str; 7] = [
    "customers",
    "prices",
    "subscriptions",
    "invoices",
    "charges",
    "payment_intents",
    "refunds",
];

/// Pages a stopped backfill can have fetched without storing: one per Stripe resource, since
/// the seven lists are walked side by side.
const IN_FLIGHT: usize = 7;

#[tokio::test(flavor = "multi_thread")]
async fn an_uninterrupted_run_stores_every_object_once() {
    let h = Harness::new(250).await;
    let want = expected(250);
    let w = h.worker("solo", &[]);
    let id = h.start_run(SyncMode::Full).await;
    let run = h
        .wait_for(id, Duration::from_secs(60), |r| r.status == "succeeded")
        .await;
    assert_eq!(run.attempts, 1);
    assert_eq!(
        run.progress["customers"],
        json!({ "fetched": 250, "stored": 250 })
    );
    for (resource, kind) in ORDER.iter().zip([
        "customer",
        "price",
        "subscription",
        "invoice",
        "charge",
        "payment_intent",
        "refund",
    ]) {
        assert_eq!(
            run.progress[resource]["stored"],
            want.ids[kind].len(),
            "{resource}"
        );
        assert_eq!(run.checkpoint[resource]["done"], true, "{resource}");
    }
    assert!(run.finished_at.is_some() && run.error.is_none());
    assert_eq!(h.all_ids().await, want.ids, "every object, once");

    // The list requests: the newest event, then every page; subscriptions of every status
    // with prices' tiers and discounts expanded; pages of 100 chained by `starting_after`.
    let requests = h.stripe_requests().await;
    assert_eq!(requests.len(), want.requests);
    assert_eq!(requests[0]["path"], "/v1/events");
    assert_eq!(param(&requests[0], "limit").as_deref(), Some("1"));
    let subs: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/v1/subscriptions")
        .collect();
    assert_eq!(param(subs[0], "status").as_deref(), Some("all"));
    assert_eq!(
        array_param(subs[0], "expand"),
        ["data.items.data.price.tiers", "data.discounts"]
    );
    let customers: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/v1/customers")
        .collect();
    assert_eq!(customers.len(), 3);
    assert!(customers
        .iter()
        .all(|r| param(r, "limit").as_deref() == Some("100")));
    assert_eq!(param(customers[0], "starting_after"), None);
    assert!(param(customers[1], "starting_after").is_some());

    // The integration now knows where incremental syncs continue.
    let mut conn = biz_core::db::conn(&h.pool).await.unwrap();
    let integration = biz_core::db::integrations::find(&mut conn, h.org_id, h.integration_id)
        .await
        .unwrap()
        .unwrap();
    assert!(integration.sync_state["stripe"]["events_after"]["id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));

    // Running the same sync again leaves the same rows: upserts by Stripe id.
    let again = h.start_run(SyncMode::Full).await;
    h.wait_for(again, Duration::from_secs(60), |r| r.status == "succeeded")
        .await;
    assert_eq!(h.all_ids().await, want.ids);

    // The worker's own /metrics counts both runs.
    let port = w.events("worker started; ops endpoints on /healthz, /readyz, /metrics")[0]
        ["ops.port"]
        .as_u64()
        .unwrap();
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"biz_jobs_started_total{service="sync-worker",job="sync_integration.v1"} 2"#,
        r#"biz_jobs_succeeded_total{service="sync-worker",job="sync_integration.v1"} 2"#,
        r#"biz_job_duration_seconds_count{service="sync-worker",job="sync_integration.v1"} 2"#,
        r#"biz_queue_depth{service="sync-worker",job="sync_integration.v1",state="ready"} 0"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }

    // Finished jobs are vacuumed from Redis: both runs' job records go. (The queue records a
    // job as done just after its handler returns, so the second may take a moment.)
    let mut removed = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while removed < 2 && std::time::Instant::now() < deadline {
        removed += h
            .producer
            .vacuum::<biz_core::jobs::SyncIntegration>(Duration::ZERO)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(removed, 2);
    let client = redis::Client::open(test_support::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:q:sync_integration.v1:meta:*", h.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// Where a run killed now would resume: the first unfinished resource and its cursor.
fn resume_point(run: &biz_core::db::sync_runs::SyncRun) -> (String, Option<String>) {
    let resource = ORDER
        .iter()
        .find(|r| run.checkpoint[**r]["done"] != true)
        .expect("an unfinished resource");
    (
        format!("/v1/{resource}"),
        run.checkpoint[*resource]["starting_after"]
            .as_str()
            .map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_run_is_resumed_elsewhere_from_its_checkpoint() {
    // About 200 pages at 20 ms each: a run of several seconds.
    let h = Harness::new(500).await;
    let want = expected(500);
    h.sim_config(json!({ "stripe": { "customers": 500 }, "latency_ms": 20 }))
        .await;
    let mut first = h.worker("doomed", &[]);
    let id = h.start_run(SyncMode::Full).await;
    h.wait_for(id, Duration::from_secs(60), |r| stored(r) >= 3_000)
        .await;
    first.sigkill();
    let killed_at = Instant::now();
    // A COMMIT the worker sent just before it died still completes on the server: let it land
    // before reading where the run stands.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let at_kill = h.run(id).await;
    assert_eq!(at_kill.status, "running", "the dead worker still holds it");
    let (resume_path, resume_after) = resume_point(&at_kill);
    let requests_before = h.stripe_requests().await.len();
    assert!(requests_before < want.requests, "killed mid-run");

    let _second = h.worker("rescuer", &[]);
    let run = h
        .wait_for(id, Duration::from_secs(90), |r| r.status == "succeeded")
        .await;
    let recovery = killed_at.elapsed();
    assert_eq!(
        run.attempts, 2,
        "claimed again once, after the lease lapsed"
    );

    // The same rows as an uninterrupted run, no duplicates (the primary key would refuse them,
    // and the ids match the account's exactly).
    assert_eq!(h.all_ids().await, want.ids);

    // The resumed run started at the checkpoints, not from zero: the resources are walked side
    // by side, each with its own checkpoint, so at most the page each had in flight when the
    // worker died was fetched twice.
    let requests = h.stripe_requests().await;
    assert!(
        requests.len() <= want.requests + IN_FLIGHT,
        "{} requests; an uninterrupted run makes {}",
        requests.len(),
        want.requests
    );
    let resumed = &requests[requests_before..];
    assert_eq!(
        resumed[0]["path"],
        resume_path.as_str(),
        "the rescuer continues the unfinished resource"
    );
    assert_eq!(
        param(&resumed[0], "starting_after"),
        resume_after,
        "from the checkpoint"
    );
    // The metrics equal those of an uninterrupted run: computed independently from the account.
    let d = provider_sim::stripe::Dataset::generate(
        42,
        &provider_sim::config::StripeConfig {
            customers: 500,
            api_keys: vec![],
        },
    );
    let [revenue, net, refunds] = crate::metrics::flows(&d.charges, &d.refunds);
    let mrr_day = chrono::NaiveDate::from_ymd_opt(2025, 12, 15).unwrap();
    let want_mrr: std::collections::BTreeMap<_, _> =
        crate::metrics::mrr_at(&d.subscriptions, mrr_day)
            .into_iter()
            .map(|(c, v)| ((mrr_day, c), v))
            .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mrr: std::collections::BTreeMap<_, _> = h
            .metric("stripe_mrr")
            .await
            .into_iter()
            .filter(|((day, _), _)| *day == mrr_day)
            .collect();
        let done = h.metric("stripe_revenue").await
            == revenue
                .clone()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect()
            && h.metric("stripe_net_revenue").await
                == net.clone().into_iter().filter(|(_, v)| *v != 0).collect()
            && h.metric("stripe_refunds_total").await
                == refunds
                    .clone()
                    .into_iter()
                    .filter(|(_, v)| *v != 0)
                    .collect()
            && mrr == want_mrr;
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics after the resumed backfill differ (MRR {mrr:?}, want {want_mrr:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "SIGKILL recovery: {} of {} requests before the kill, {} after; run finished {recovery:?} after the kill",
        requests_before,
        want.requests,
        requests.len() - requests_before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_the_run_back_and_another_worker_finishes_it() {
    let h = Harness::new(500).await;
    let want = expected(500);
    h.sim_config(json!({ "stripe": { "customers": 500 }, "latency_ms": 20 }))
        .await;
    let mut first = h.worker("leaving", &[]);
    let id = h.start_run(SyncMode::Full).await;
    h.wait_for(id, Duration::from_secs(60), |r| stored(r) >= 2_000)
        .await;
    first.sigterm();
    let status = first.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "clean exit; log: {}", first.log_text());
    let handed = h.run(id).await;
    assert_eq!(handed.status, "queued", "handed back, not lost");
    assert_eq!(handed.attempts, 0, "a hand-back does not use up an attempt");
    assert!(handed.lease_owner.is_none());
    assert!(stored(&handed) >= 2_000);
    assert!(
        first
            .events("shutting down: sync run handed back at its checkpoint")
            .len()
            == 1
    );

    let _second = h.worker("arriving", &[]);
    h.wait_for(id, Duration::from_secs(60), |r| r.status == "succeeded")
        .await;
    assert_eq!(h.all_ids().await, want.ids);
    assert!(h.stripe_requests().await.len() <= want.requests + IN_FLIGHT);
    assert_eq!(expected_ids(500), want.ids["customer"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_credentials_from_an_older_version_are_used_then_sealed() {
    let h = Harness::new(30).await;
    // As the earlier TypeScript version stored them: the credentials object in plain text.
    h.sql(&format!(
        "UPDATE integrations SET credentials = '{{\"api_key\": \"{}\"}}'",
        crate::harness::API_KEY
    ))
    .await;
    let _w = h.worker("legacy", &[]);
    let id = h.start_run(SyncMode::Full).await;
    h.wait_for(id, Duration::from_secs(60), |r| r.status == "succeeded")
        .await;
    assert_eq!(
        h.customer_ids().await,
        expected_ids(30),
        "the plain key worked"
    );
    let mut conn = biz_core::db::conn(&h.pool).await.unwrap();
    let integration = biz_core::db::integrations::find(&mut conn, h.org_id, h.integration_id)
        .await
        .unwrap()
        .unwrap();
    let stored = integration.credentials.clone().unwrap();
    assert!(stored.starts_with("v1:"), "sealed on first use: {stored}");
    assert!(!stored.contains(crate::harness::API_KEY));
    // And it still opens to the same credentials.
    let keys = biz_core::crypto::KeyRing::new(
        "k1",
        &secrecy::SecretString::from(test_support::ENCRYPTION_KEY.to_owned()),
        1000,
    );
    let opened = biz_core::db::integrations::open_credentials(&mut conn, &keys, &integration)
        .await
        .unwrap();
    assert_eq!(opened["api_key"], crate::harness::API_KEY);
}

/// After a key rotation, a worker that knows only the new key syncs every integration.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_key_rotation_a_worker_with_only_the_new_key_syncs_every_integration() {
    use biz_core::crypto::KeyRing;
    use biz_core::db;
    use secrecy::SecretString;

    let h = Harness::new(120).await;
    let second = h.add_integration().await;
    let new_key = "pipeline-rotation-new-key-0123456789abcdef";
    let keys = KeyRing::new("k2", &SecretString::from(new_key.to_owned()), 1000).with_old_key(
        "k1",
        &SecretString::from(test_support::ENCRYPTION_KEY.to_owned()),
        1000,
    );
    let mut conn = db::conn(&h.pool).await.unwrap();
    let report = db::rotation::rotate_all(&mut conn, &keys, 1).await.unwrap();
    assert_eq!(
        report.iter().map(|r| r.rotated).sum::<u64>(),
        2,
        "{report:?}"
    );
    for id in [h.integration_id, second] {
        let i = db::integrations::find(&mut conn, h.org_id, id)
            .await
            .unwrap()
            .unwrap();
        assert!(i.credentials.unwrap().starts_with("v1:k2:"));
    }

    let _w = h.worker(
        "rotated",
        &[
            ("ENCRYPTION_KEY", new_key),
            ("BIZ__SECURITY__ENCRYPTION_KEY_ID", "k2"),
        ],
    );
    let runs = [
        h.start_run(SyncMode::Full).await,
        h.start_run_for(second, SyncMode::Full).await,
    ];
    for run in runs {
        let done = h
            .wait_for(run, Duration::from_secs(60), |r| {
                r.status == "succeeded" || r.status == "failed"
            })
            .await;
        assert_eq!(done.status, "succeeded", "{:?}", done.error);
    }
    for id in [h.integration_id, second] {
        let customers = db::stripe::ids(&mut conn, h.org_id, id, "customer")
            .await
            .unwrap();
        assert_eq!(customers.len(), 120);
    }
}
