//! `queue-bench throttled`: a Stripe backfill against a simulator that enforces Stripe's
//! test-mode limit (25 requests/s per account, 429 above it), through the release gateway and
//! sync-worker. Reports the achieved request rate as a share of the limit and the 429s seen.

use std::time::Duration;

use serde_json::{json, Value};

use crate::stack::Stack;

pub async fn run() -> anyhow::Result<Value> {
    let limit = 25.0;
    let stack = Stack::start(
        json!({ "stripe": { "customers": 2000 }, "rate_limits": { "stripe": { "per_second": limit, "burst": limit } } }),
        &[],
        true,
        "sk_test_51BenchThrottled000001",
    )
    .await?;
    let run = stack.wait_backfill(Duration::from_secs(600), || {}).await?;
    let (http, sim) = (&stack.http, &stack.sim);
    let log: Value = http
        .get(format!("{sim}/_sim/requests?path_prefix=/v1/"))
        .send()
        .await?
        .json()
        .await?;
    let requests: Vec<&Value> = log["data"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // The backfill's requests: after the two the connect made (the key check and the webhook
    // endpoint), all of them list calls paced by the worker.
    let sync: Vec<&&Value> = requests
        .iter()
        .filter(|r| r["method"] == "GET" && r["query"] != "limit=1")
        .collect();
    let first = sync.first().and_then(|r| r["at_ms"].as_u64()).unwrap_or(0);
    let last = sync.last().and_then(|r| r["at_ms"].as_u64()).unwrap_or(0);
    let seconds = (last.saturating_sub(first)) as f64 / 1000.0;
    let rate = if seconds > 0.0 {
        (sync.len() as f64 - 1.0) / seconds
    } else {
        0.0
    };
    let throttled = sync.iter().filter(|r| r["status"] == 429).count();
    Ok(json!({
        "limit_per_s": limit,
        "requests": sync.len(),
        "seconds": seconds,
        "achieved_per_s": (rate * 100.0).round() / 100.0,
        "share_of_limit_pct": (rate / limit * 1000.0).round() / 10.0,
        "responses_429": throttled,
        "run_status": run["status"],
        "runs_failed_by_429": if run["status"] == "failed" && run["error_code"] == "provider_rate_limited" { 1 } else { 0 },
        "targets": { "share_of_limit_pct": 95, "runs_failed_by_429": 0 },
    }))
}
