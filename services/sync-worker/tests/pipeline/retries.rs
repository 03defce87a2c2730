//! Retries: backoff on provider errors, a run that gives up, and Retry-After.

use std::time::Duration;

use biz_core::jobs::SyncMode;
use serde_json::{json, Value};

use crate::expected_ids;
use crate::harness::Harness;

fn at_ms(r: &Value) -> u64 {
    r["at_ms"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_500s_are_retried_with_backoff_then_the_run_succeeds() {
    let h = Harness::new(250).await;
    h.sim_config(json!({
        "stripe": { "customers": 250 },
        "faults": { "rate": 1.0, "max": 2, "kinds": ["500"], "seed": 7, "path_prefix": "/v1/customers" }
    }))
    .await;
    let _w = h.worker("retrier", &[]);
    let id = h.start_run(SyncMode::Full).await;
    let run = h
        .wait_for(id, Duration::from_secs(30), |r| r.status == "succeeded")
        .await;
    assert_eq!(run.attempts, 3, "two failed attempts, then one that worked");
    assert!(
        run.error.is_none() && run.error_code.is_none(),
        "cleared on success"
    );
    assert_eq!(h.customer_ids().await, expected_ids(250));

    let requests = h.sim_requests("/v1/customers").await;
    let statuses: Vec<u64> = requests
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![500, 500, 200, 200, 200]);
    // Backoff base 300 ms: the first retry waits 150–300 ms, the second 300–600 ms.
    let first_gap = at_ms(&requests[1]) - at_ms(&requests[0]);
    let second_gap = at_ms(&requests[2]) - at_ms(&requests[1]);
    assert!(first_gap >= 150, "first retry after {first_gap} ms");
    assert!(second_gap >= 300, "second retry after {second_gap} ms");
    eprintln!("backoff gaps: {first_gap} ms, {second_gap} ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_exhausts_its_attempts_fails_with_its_error_readable_over_the_api() {
    let h = Harness::new(250).await;
    let gateway = h.gateway().await;
    let api = h
        .connect_through_api(
            &gateway,
            "owner@example.com",
            "sk_test_51FailingAccount00001",
        )
        .await;
    let (http, token, org, connected) = (
        api.http.clone(),
        api.token.as_str(),
        api.org.as_str(),
        &api.connected,
    );
    let run_id = connected["sync_run_id"].as_str().unwrap();

    // From now on Stripe answers every list call with a 500.
    h.sim_config(json!({
        "stripe": { "customers": 250 },
        "faults": { "rate": 1.0, "kinds": ["500"], "path_prefix": "/v1/customers" }
    }))
    .await;
    let _w = h.worker("unlucky", &[]);
    let url = format!("{gateway}/api/v1/orgs/{org}/sync-runs/{run_id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let run = loop {
        let run: Value = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] == "failed" {
            break run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run did not fail: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["attempts"], 5);
    assert_eq!(run["max_attempts"], 5);
    assert_eq!(run["error_code"], "provider_unavailable");
    assert_eq!(
        run["error"],
        "the provider is having trouble: An unknown error occurred"
    );
    assert!(run["finished_at"].is_string());
    // Five attempts (one request each, after the connect check), and no more once failed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failures = h
        .sim_requests("/v1/customers")
        .await
        .iter()
        .filter(|r| r["status"] == 500)
        .count();
    assert_eq!(failures, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_honoured() {
    let h = Harness::new(250).await;
    h.sim_config(json!({
        "stripe": { "customers": 250 },
        "faults": { "rate": 1.0, "max": 1, "kinds": ["429"], "retry_after_seconds": 2, "path_prefix": "/v1/customers" }
    }))
    .await;
    let _w = h.worker("patient", &[]);
    let id = h.start_run(SyncMode::Full).await;
    let run = h
        .wait_for(id, Duration::from_secs(30), |r| r.status == "succeeded")
        .await;
    assert_eq!(run.attempts, 1, "waiting out a 429 is not a failed attempt");
    let requests = h.sim_requests("/v1/customers").await;
    assert_eq!(requests[0]["status"], 429);
    assert_eq!(requests[1]["status"], 200);
    let waited = at_ms(&requests[1]) - at_ms(&requests[0]);
    assert!(
        waited >= 2000,
        "asked to wait 2 s, came back after {waited} ms"
    );
    assert_eq!(
        starting_after_of(&requests[0]),
        starting_after_of(&requests[1]),
        "the same page was asked again"
    );
    assert_eq!(h.customer_ids().await, expected_ids(250));
}

fn starting_after_of(r: &Value) -> Option<String> {
    r["query"]
        .as_str()
        .unwrap()
        .split('&')
        .find_map(|kv| kv.strip_prefix("starting_after="))
        .map(str::to_owned)
}
