//! `queue-bench webhooks`: Stripe webhook ingress through the real gateway binary (release
//! build): signed events POSTed to `/webhooks/stripe/{integration_id}`, each verified and
//! durably stored before its 200. Measured at a fixed 1,000/s (latency p50/p99) and at
//! saturation (64 connections), and checked against the stored row count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use biz_core::crypto::signatures::sign_stripe;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::stack::{percentile_ms as percentile, Stack};

fn event(n: u64) -> String {
    json!({
        "id": format!("evt_Bench{n:012}"), "object": "event", "api_version": "2024-06-20",
        "created": 1_767_300_000 + n as i64, "type": "customer.updated", "livemode": false,
        "pending_webhooks": 1,
        "data": { "object": { "id": format!("cus_Bench{:08}", n % 5_000), "object": "customer",
                               "created": 1_700_000_000, "email": format!("b{n}@example.com") } }
    })
    .to_string()
}

pub async fn run() -> anyhow::Result<Value> {
    let stack = Stack::start(
        json!({}),
        &[("BIZ__DATABASE__POOL_SIZE", "32")],
        false,
        "sk_test_51BenchAccount00000001",
    )
    .await?;
    let http = stack.http.clone();
    let integration = stack.connected["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let endpoints: Value = http
        .get(format!("{}/_sim/stripe/endpoints", stack.sim))
        .send()
        .await?
        .json()
        .await?;
    let secret = endpoints["data"][0]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let target = Arc::new(format!("{}/webhooks/stripe/{integration}", stack.url));
    let stored = || -> anyhow::Result<i64> {
        Ok(stack.psql("SELECT count(*) FROM webhook_events")?.parse()?)
    };

    let send = {
        let http = http.clone();
        let secret = secret.clone();
        let target = target.clone();
        move |n: u64| {
            let http = http.clone();
            let body = event(n);
            let signature = sign_stripe(
                body.as_bytes(),
                secret.as_bytes(),
                chrono::Utc::now().timestamp(),
            );
            let target = target.clone();
            async move {
                let start = Instant::now();
                let ok = http
                    .post(target.as_str())
                    .header("Stripe-Signature", signature)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                (ok, start.elapsed().as_micros() as u64)
            }
        }
    };

    // Fixed rate: 1,000/s for 10 s, open loop (a request every millisecond whatever answers).
    let rate = 1_000u64;
    let seconds = 10u64;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = tokio::time::Instant::now();
    for n in 0..rate * seconds {
        tokio::time::sleep_until(start + Duration::from_micros(n * 1_000_000 / rate)).await;
        let (latencies, failures, send) = (latencies.clone(), failures.clone(), send.clone());
        tasks.push(tokio::spawn(async move {
            let (ok, us) = send(n).await;
            if !ok {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            latencies.lock().await.push(us);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut fixed = latencies.lock().await.clone();
    fixed.sort_unstable();
    let fixed_failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    let stored_fixed = stored()?;

    // Saturation: 64 connections, each sending as soon as the last answered, for 10 s.
    let offset = rate * seconds;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(offset));
    let sat_latencies = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let sat_start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (counter, sat_latencies, send) = (counter.clone(), sat_latencies.clone(), send.clone());
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < until {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (ok, us) = send(n).await;
                if ok {
                    mine.push(us);
                }
            }
            sat_latencies.lock().await.extend(mine);
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = sat_start.elapsed().as_secs_f64();
    let mut saturated = sat_latencies.lock().await.clone();
    saturated.sort_unstable();
    let stored_total = stored()?;
    Ok(json!({
        "fixed_rate": {
            "rate_per_s": rate,
            "requests": rate * seconds,
            "failed": fixed_failed,
            "stored": stored_fixed,
            "p50_ms": percentile(&fixed, 0.50),
            "p99_ms": percentile(&fixed, 0.99),
        },
        "saturation": {
            "connections": 64,
            "stored_per_s": ((stored_total - stored_fixed) as f64 / elapsed).round(),
            "p50_ms": percentile(&saturated, 0.50),
            "p99_ms": percentile(&saturated, 0.99),
        },
        "targets": { "stored_per_s": 5000, "p99_ms_at_1000_per_s": 20 },
    }))
}
