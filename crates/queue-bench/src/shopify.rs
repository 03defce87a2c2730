//! `queue-bench shopify-throttled` and `shopify-backfill`: a Shopify store of 20,000 orders
//! installed through the real OAuth flow and backfilled by the release gateway and sync-worker.
//!
//! Throttled: the simulator enforces the standard REST bucket (40 calls, 2 leaked per second,
//! 429 on overflow). Three figures: the sustained call rate (over the run's second half, when
//! the limit binds) as a share of the 2/s leak, which is the target; over the whole run of T s,
//! the share of the 40 + 2·T calls the limit allows (lower: the first pages are fetched one
//! after another per resource, slower than an instant bucketful); and the 429s received.
//! Unthrottled: a bucket too large to matter; orders stored per second and the worker's RSS.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stack::{rss_mib, Stack};

const SHOP: &str = "bench-shop.myshopify.com";
const ORDERS: usize = 20_000;

async fn install_and_backfill(
    sim_shopify: Value,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<(Stack, Value, f64, f64)> {
    let stack = Stack::start(
        json!({ "stripe": { "customers": 1 }, "shopify": sim_shopify }),
        extra_env,
        true,
        "sk_test_51BenchShopifyOnly00001",
    )
    .await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut next = http
        .get(format!(
            "{}/api/v1/orgs/{}/integrations/shopify/install?shop={SHOP}",
            stack.url, stack.org
        ))
        .bearer_auth(&stack.token)
        .send()
        .await?
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let started = Instant::now();
    for _ in 0..2 {
        next = http
            .get(&next)
            .send()
            .await?
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
    }
    anyhow::ensure!(next.contains("connected=shopify"), "install failed: {next}");
    let list: Value = stack
        .http
        .get(format!(
            "{}/api/v1/orgs/{}/integrations",
            stack.url, stack.org
        ))
        .bearer_auth(&stack.token)
        .send()
        .await?
        .json()
        .await?;
    let id = list["data"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["provider"] == "shopify"))
        .and_then(|i| i["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut peak = 0.0f64;
    let deadline = Instant::now() + Duration::from_secs(900);
    let run = loop {
        if let Some(pid) = stack.worker_pid() {
            peak = peak.max(rss_mib(pid));
        }
        let runs: Value = stack
            .http
            .get(format!(
                "{}/api/v1/orgs/{}/integrations/{id}/sync-runs?limit=1",
                stack.url, stack.org
            ))
            .bearer_auth(&stack.token)
            .send()
            .await?
            .json()
            .await?;
        let run = runs["data"][0].clone();
        if run["status"] == "succeeded" || run["status"] == "failed" {
            break run;
        }
        anyhow::ensure!(Instant::now() < deadline, "the backfill did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok((stack, run, started.elapsed().as_secs_f64(), peak))
}

async fn requests(stack: &Stack) -> anyhow::Result<Vec<Value>> {
    let log: Value = stack
        .http
        .get(format!(
            "{}/_sim/requests?path_prefix=/shopify/{SHOP}/admin/api/",
            stack.sim
        ))
        .send()
        .await?
        .json()
        .await?;
    Ok(log["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["method"] == "GET")
        .collect())
}

pub async fn throttled() -> anyhow::Result<Value> {
    let (bucket, leak) = (40usize, 2.0f64);
    let (stack, run, _, _) = install_and_backfill(
        json!({ "orders": ORDERS, "bucket_size": bucket, "leak_per_second": leak }),
        &[],
    )
    .await?;
    let calls = requests(&stack).await?;
    let refused = calls.iter().filter(|r| r["status"] == 429).count();
    // What the limit allows over the run's span T: the full bucket at once, then the leak,
    // `bucket + leak × T` calls. The share of that the sync made is its efficiency. The rate
    // after the first `bucket` calls is shown too; it can exceed the leak for a while, since
    // the bucket drains while the first pages are stored.
    let span = |v: &[&Value]| {
        let first = v.first().and_then(|r| r["at_ms"].as_u64()).unwrap_or(0);
        let last = v.last().and_then(|r| r["at_ms"].as_u64()).unwrap_or(0);
        last.saturating_sub(first) as f64 / 1000.0
    };
    let all: Vec<&Value> = calls.iter().collect();
    let total_seconds = span(&all);
    let allowed = bucket as f64 + leak * total_seconds;
    let steady: Vec<&Value> = calls.iter().skip(bucket).collect();
    let seconds = span(&steady);
    let rate = if seconds > 0.0 {
        (steady.len() as f64 - 1.0) / seconds
    } else {
        0.0
    };
    // The sustained rate: the calls of the run's second half, when the first bucketful is
    // long spent and only the leak can pace the sync (or our own slowness, which this shows).
    let first_ms = all.first().and_then(|r| r["at_ms"].as_u64()).unwrap_or(0);
    let mid_ms = first_ms + (total_seconds * 500.0) as u64;
    let late: Vec<&Value> = calls
        .iter()
        .filter(|r| r["at_ms"].as_u64().unwrap_or(0) >= mid_ms)
        .collect();
    let late_seconds = span(&late);
    let late_rate = if late_seconds > 0.0 {
        (late.len() as f64 - 1.0) / late_seconds
    } else {
        0.0
    };
    Ok(json!({
        "orders": ORDERS,
        "calls": calls.len(),
        "bucket_size": bucket,
        "leak_per_second": leak,
        "steady_calls": steady.len(),
        "steady_seconds": seconds,
        "seconds": total_seconds,
        "allowed_calls": allowed.floor(),
        "share_of_limit_pct": (calls.len() as f64 / allowed * 1000.0).round() / 10.0,
        "second_half_calls": late.len(),
        "second_half_seconds": late_seconds,
        "sustained_rate_pct_of_leak": (late_rate / leak * 1000.0).round() / 10.0,
        "after_first_bucket_per_s": (rate * 100.0).round() / 100.0,
        "responses_429": refused,
        "run_status": run["status"],
        "targets": { "sustained_rate_pct_of_leak": 95, "responses_429": 0 },
    }))
}

pub async fn unthrottled() -> anyhow::Result<Value> {
    let extra = [
        ("BIZ__PROVIDERS__SHOPIFY_BUCKET_SIZE", "1000000"),
        ("BIZ__PROVIDERS__SHOPIFY_LEAK_PER_SECOND", "100000"),
    ];
    let (stack, run, seconds, peak) = install_and_backfill(
        json!({ "orders": ORDERS, "bucket_size": 1_000_000, "leak_per_second": 100_000.0 }),
        &extra,
    )
    .await?;
    let stored: i64 = stack
        .psql("SELECT count(*) FROM shopify_objects WHERE kind = 'order'")?
        .parse()
        .unwrap_or(0);
    Ok(json!({
        "orders": stored,
        "seconds": (seconds * 100.0).round() / 100.0,
        "orders_per_s": (stored as f64 / seconds).round(),
        "worker_peak_rss_mib": (peak * 10.0).round() / 10.0,
        "run_status": run["status"],
    }))
}
