//! `queue-bench backfill`: a Stripe backfill of an unthrottled simulated account holding over
//! 200,000 objects, through the release gateway and sync-worker: objects stored per second and
//! the worker's peak RSS; then the ceiling — the same rows bulk-loaded with `COPY` into a table
//! like `stripe_objects` (same keys and indexes) — and the backfill's share of it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stack::{rss_mib, Stack};

pub async fn run() -> anyhow::Result<Value> {
    let customers: usize = std::env::var("BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_000);
    // Unthrottled: the simulator enforces no limit and the client paces at no limit.
    let stack = Stack::start(
        json!({ "stripe": { "customers": customers } }),
        &[("BIZ__PROVIDERS__STRIPE_TEST_REQUESTS_PER_SECOND", "1000000")],
        true,
        "sk_test_51BenchBackfill0000001",
    )
    .await?;
    let worker = stack.worker_pid().unwrap_or(0);
    let mut peak_rss: f64 = 0.0;
    let run = stack
        .wait_backfill(Duration::from_secs(1800), || {
            peak_rss = peak_rss.max(rss_mib(worker))
        })
        .await?;
    anyhow::ensure!(run["status"] == "succeeded", "backfill failed: {run}");
    let started =
        chrono::DateTime::parse_from_rfc3339(run["started_at"].as_str().unwrap_or_default())?;
    let finished =
        chrono::DateTime::parse_from_rfc3339(run["finished_at"].as_str().unwrap_or_default())?;
    let seconds = (finished - started).num_milliseconds() as f64 / 1000.0;
    let objects: u64 = run["progress"]
        .as_object()
        .map(|m| m.values().filter_map(|c| c["stored"].as_u64()).sum())
        .unwrap_or(0);

    // The ceiling: the same rows bulk-loaded into the same table (same indexes, same foreign
    // keys), under a second integration of the same organisation so that nothing conflicts.
    let file = std::env::temp_dir().join(format!("bench-{}.copy", crate::now_us()));
    let twin = uuid::Uuid::new_v4();
    stack.psql(&format!(
        "INSERT INTO integrations (id, organization_id, provider, status)
         SELECT '{twin}', organization_id, 'stripe', 'disconnected' FROM integrations LIMIT 1"
    ))?;
    stack.psql(&format!(
        "\\copy (SELECT organization_id, '{twin}'::uuid, object_type, stripe_id, customer, status, currency, amount, created, deleted, raw, version, synced_at FROM stripe_objects) TO '{}'",
        file.display()
    ))?;
    let copy_start = Instant::now();
    stack.psql(&format!(
        "\\copy stripe_objects (organization_id, integration_id, object_type, stripe_id, customer, status, currency, amount, created, deleted, raw, version, synced_at) FROM '{}'",
        file.display()
    ))?;
    let copy_seconds = copy_start.elapsed().as_secs_f64();
    let copied: f64 = stack
        .psql(&format!(
            "SELECT count(*) FROM stripe_objects WHERE integration_id = '{twin}'"
        ))?
        .parse()?;
    let _ = std::fs::remove_file(&file);
    let backfill_rate = objects as f64 / seconds;
    let copy_rate = copied / copy_seconds;
    Ok(json!({
        "customers": customers,
        "objects": objects,
        "backfill_seconds": seconds,
        "backfill_objects_per_s": backfill_rate.round(),
        "worker_peak_rss_mib": (peak_rss * 10.0).round() / 10.0,
        "copy_rows": copied,
        "copy_seconds": (copy_seconds * 1000.0).round() / 1000.0,
        "copy_rows_per_s": copy_rate.round(),
        "share_of_copy_pct": (backfill_rate / copy_rate * 1000.0).round() / 10.0,
        "targets": { "share_of_copy_pct": 50 },
    }))
}
