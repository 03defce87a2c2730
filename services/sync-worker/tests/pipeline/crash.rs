//! Runs survive their worker: SIGKILL mid-run, and SIGTERM.

use std::time::{Duration, Instant};

use biz_core::jobs::SyncMode;
use serde_json::{json, Value};

use crate::expected_ids;
use crate::harness::Harness;

fn stored(run: &biz_core::db::sync_runs::SyncRun) -> u64 {
    run.progress["customers"]["stored"].as_u64().unwrap_or(0)
}

fn starting_after(request: &Value) -> Option<String> {
    request["query"]
        .as_str()
        .unwrap()
        .split('&')
        .find_map(|kv| kv.strip_prefix("starting_after="))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uninterrupted_run_stores_every_customer_once() {
    let h = Harness::new(250).await;
    let w = h.worker("solo", &[]);
    let id = h.start_run(SyncMode::Full).await;
    let run = h
        .wait_for(id, Duration::from_secs(30), |r| r.status == "succeeded")
        .await;
    assert_eq!(run.attempts, 1);
    assert_eq!(
        run.progress,
        json!({ "customers": { "fetched": 250, "stored": 250 } })
    );
    assert_eq!(run.checkpoint["customers"]["done"], true);
    assert!(run.finished_at.is_some() && run.error.is_none());
    assert_eq!(h.customer_ids().await, expected_ids(250));
    // Three pages of 100, each after the last id of the one before.
    let requests = h.sim_requests("/v1/customers").await;
    assert_eq!(requests.len(), 3);
    assert!(requests
        .iter()
        .all(|r| r["query"].as_str().unwrap().contains("limit=100")));
    assert_eq!(starting_after(&requests[0]), None);
    assert!(starting_after(&requests[1]).is_some());

    // Running the same sync again leaves the same rows: upserts by Stripe id.
    let again = h.start_run(SyncMode::Full).await;
    h.wait_for(again, Duration::from_secs(30), |r| r.status == "succeeded")
        .await;
    assert_eq!(h.customer_ids().await, expected_ids(250));

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

    // Finished jobs are vacuumed from Redis: both runs' job records go.
    let removed = h
        .producer
        .vacuum::<biz_core::jobs::SyncIntegration>(Duration::ZERO)
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_run_is_resumed_elsewhere_from_its_checkpoint() {
    // 20 pages at 300 ms each: a run of about six seconds.
    let h = Harness::new(2000).await;
    h.sim_config(json!({ "stripe": { "customers": 2000 }, "latency_ms": 300 }))
        .await;
    let mut first = h.worker("doomed", &[]);
    let id = h.start_run(SyncMode::Full).await;
    let before = h
        .wait_for(id, Duration::from_secs(30), |r| stored(r) >= 500)
        .await;
    first.sigkill();
    let killed_at = Instant::now();
    let at_kill = h.run(id).await;
    assert_eq!(at_kill.status, "running", "the dead worker still holds it");
    let checkpoint = at_kill.checkpoint["customers"]["starting_after"]
        .as_str()
        .unwrap()
        .to_owned();
    let requests_before = h.sim_requests("/v1/customers").await.len();
    assert!(before.attempts == 1 && requests_before < 20);

    let _second = h.worker("rescuer", &[]);
    let run = h
        .wait_for(id, Duration::from_secs(60), |r| r.status == "succeeded")
        .await;
    let recovery = killed_at.elapsed();
    assert!(recovery < Duration::from_secs(60), "took {recovery:?}");
    assert_eq!(
        run.attempts, 2,
        "claimed again once, after the lease lapsed"
    );
    assert_eq!(run.progress["customers"]["stored"], 2000);

    // The same rows as an uninterrupted run, no duplicates (the primary key would refuse them,
    // and the ids match the account's exactly).
    assert_eq!(h.customer_ids().await, expected_ids(2000));

    // The resumed run started after the checkpoint, not from zero: at most the page in flight
    // when the worker died was fetched twice.
    let requests = h.sim_requests("/v1/customers").await;
    assert!(
        requests.len() <= 21,
        "{} requests for 20 pages",
        requests.len()
    );
    let resumed = &requests[requests_before..];
    assert_eq!(
        starting_after(&resumed[0]).as_deref(),
        Some(checkpoint.as_str()),
        "the rescuer's first page starts at the checkpoint"
    );
    eprintln!("SIGKILL recovery: run finished {recovery:?} after the kill");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_the_run_back_and_another_worker_finishes_it() {
    let h = Harness::new(2000).await;
    h.sim_config(json!({ "stripe": { "customers": 2000 }, "latency_ms": 200 }))
        .await;
    let mut first = h.worker("leaving", &[]);
    let id = h.start_run(SyncMode::Full).await;
    h.wait_for(id, Duration::from_secs(30), |r| stored(r) >= 300)
        .await;
    first.sigterm();
    let status = first.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "clean exit; log: {}", first.log_text());
    let handed = h.run(id).await;
    assert_eq!(handed.status, "queued", "handed back, not lost");
    assert_eq!(handed.attempts, 0, "a hand-back does not use up an attempt");
    assert!(handed.lease_owner.is_none());
    let stored_then = stored(&handed);
    assert!((300..2000).contains(&stored_then));
    assert!(first
        .log_lines()
        .iter()
        .any(|l| l["message"] == "shutting down: sync run handed back at its checkpoint"));

    let _second = h.worker("arriving", &[]);
    let run = h
        .wait_for(id, Duration::from_secs(30), |r| r.status == "succeeded")
        .await;
    assert_eq!(run.progress["customers"]["stored"], 2000);
    assert_eq!(h.customer_ids().await, expected_ids(2000));
    assert!(h.sim_requests("/v1/customers").await.len() <= 21);
}
