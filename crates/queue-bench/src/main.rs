//! `queue-bench`: measures the job pipeline with no-op jobs.
//!
//! - `queue-bench` (the driver) starts 1, then 2, `queue-bench worker` processes, pushes a burst
//!   of jobs as fast as it can (throughput), then a paced stream (enqueue-to-start latency),
//!   samples each worker's resident memory, and prints and writes the figures to
//!   `target/bench/queue.json`.
//! - `queue-bench worker` is a worker process like the real ones (same runtime, same consumer,
//!   same apalis/Redis path) whose job does nothing but note how long it waited.

mod backfill;
mod dashboard;
mod driver;
mod login_timing;
mod shopify;
mod stack;
mod throttled;
mod webhooks;
mod worker;

use serde::{Deserialize, Serialize};

/// The benchmark's job: which phase it belongs to and when it was pushed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noop {
    pub phase: u8,
    /// Microseconds since the Unix epoch at push time.
    pub enqueued_us: u64,
}

impl biz_core::jobs::Job for Noop {
    const NAME: &'static str = "bench_noop.v1";
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("worker") => worker::run().await,
        Some("webhooks") => {
            let r = webhooks::run().await?;
            println!(
                "webhook-bench: at 1,000/s p50 {} ms, p99 {} ms ({} failed, {} stored); saturated {} stored/s (p50 {} ms, p99 {} ms)",
                r["fixed_rate"]["p50_ms"], r["fixed_rate"]["p99_ms"], r["fixed_rate"]["failed"], r["fixed_rate"]["stored"],
                r["saturation"]["stored_per_s"], r["saturation"]["p50_ms"], r["saturation"]["p99_ms"]
            );
            std::fs::create_dir_all("target/bench")?;
            std::fs::write(
                "target/bench/webhooks.json",
                serde_json::to_string_pretty(&r)?,
            )?;
            println!("webhook-bench: written to target/bench/webhooks.json");
            Ok(())
        }
        Some("throttled") => {
            let r = throttled::run().await?;
            println!(
                "throttled-bench: {} requests at {}/s = {} % of Stripe's {}/s limit; {} answered 429; run {}",
                r["requests"], r["achieved_per_s"], r["share_of_limit_pct"], r["limit_per_s"], r["responses_429"], r["run_status"]
            );
            std::fs::create_dir_all("target/bench")?;
            std::fs::write(
                "target/bench/throttled.json",
                serde_json::to_string_pretty(&r)?,
            )?;
            Ok(())
        }
        Some("shopify-throttled") => {
            let r = shopify::throttled().await?;
            println!(
                "shopify-throttled-bench: {} orders, {} calls in {} s; sustained over the second half {} calls in {} s = {} % of the {}/s leak; over the whole run {} % of the {} calls a {}-call bucket allows; {} answered 429; run {}",
                r["orders"], r["calls"], r["seconds"], r["second_half_calls"], r["second_half_seconds"], r["sustained_rate_pct_of_leak"], r["leak_per_second"], r["share_of_limit_pct"], r["allowed_calls"], r["bucket_size"], r["responses_429"], r["run_status"]
            );
            std::fs::create_dir_all("target/bench")?;
            std::fs::write("target/bench/shopify-throttled.json", serde_json::to_string_pretty(&r)?)?;
            Ok(())
        }
        Some("shopify-backfill") => {
            let r = shopify::unthrottled().await?;
            println!(
                "shopify-backfill-bench: {} orders in {} s = {} orders/s (worker peak RSS {} MiB); run {}",
                r["orders"], r["seconds"], r["orders_per_s"], r["worker_peak_rss_mib"], r["run_status"]
            );
            std::fs::create_dir_all("target/bench")?;
            std::fs::write("target/bench/shopify-backfill.json", serde_json::to_string_pretty(&r)?)?;
            Ok(())
        }
        Some("backfill") => {
            let r = backfill::run().await?;
            println!(
                "backfill-bench: {} objects in {} s = {} objects/s (worker peak RSS {} MiB); COPY of the same rows {} rows/s; backfill = {} % of COPY",
                r["objects"], r["backfill_seconds"], r["backfill_objects_per_s"], r["worker_peak_rss_mib"], r["copy_rows_per_s"], r["share_of_copy_pct"]
            );
            std::fs::create_dir_all("target/bench")?;
            std::fs::write(
                "target/bench/backfill.json",
                serde_json::to_string_pretty(&r)?,
            )?;
            Ok(())
        }
        Some("dashboard") => {
            let r = dashboard::run().await?;
            println!(
                "dashboard-bench: {} raw rows, {} rollup rows; {} Shopify orders loaded in {} s, their rollups built by the workers' code in {} s; dashboard p50 {} ms p95 {} ms; one-year daily stripe_revenue p50 {} ms p95 {} ms, raw aggregate p50 {} ms, series/raw = {}; one-year daily shopify_revenue_net p50 {} ms p95 {} ms, raw aggregate p50 {} ms, series/raw = {}",
                r["raw_rows"], r["rollup_rows"], r["shopify_orders"], r["shopify_orders_load_seconds"], r["shopify_rollup_build_seconds"],
                r["dashboard"]["p50_ms"], r["dashboard"]["p95_ms"],
                r["series_one_year_daily"]["p50_ms"], r["series_one_year_daily"]["p95_ms"], r["raw_aggregate"]["p50_ms"], r["series_to_raw_ratio"],
                r["shopify_series_one_year_daily"]["p50_ms"], r["shopify_series_one_year_daily"]["p95_ms"], r["shopify_raw_aggregate"]["p50_ms"], r["shopify_series_to_raw_ratio"]
            );
            std::fs::create_dir_all("target/bench")?;
            std::fs::write(
                "target/bench/dashboard.json",
                serde_json::to_string_pretty(&r)?,
            )?;
            Ok(())
        }
        Some("login-timing") => {
            let r = login_timing::run().await?;
            println!(
                "login-timing: known email + wrong password p50 {} ms (p90 {}); unknown email p50 {} ms (p90 {}); medians differ by {} %",
                r["known_email_wrong_password"]["p50_ms"], r["known_email_wrong_password"]["p90_ms"],
                r["unknown_email"]["p50_ms"], r["unknown_email"]["p90_ms"], r["median_difference_pct"]
            );
            std::fs::create_dir_all("target/bench")?;
            std::fs::write(
                "target/bench/login_timing.json",
                serde_json::to_string_pretty(&r)?,
            )?;
            Ok(())
        }
        None => driver::run().await,
        Some(other) => anyhow::bail!("unknown command `{other}`; use `queue-bench [worker|webhooks|throttled|backfill|dashboard|login-timing]`"),
    }
}
