//! The benchmark driver. Figures are printed and written to `target/bench/queue.json`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use biz_core::jobs::{self, Producer};
use biz_core::settings::Settings;
use serde_json::{json, Value};

use crate::stack::{free_port, percentile_ms as percentile, rss_mib};
use crate::{now_us, Noop};

/// Jobs in the throughput burst, and in the paced latency run (at `PACED_RATE` per second).
const BURST: u64 = 20_000;
const PACED: u64 = 1_000;
const PACED_RATE: u64 = 200;
const PUSHERS: u64 = 64;

struct WorkerProc {
    child: Child,
    ops: String,
}

fn spawn_worker(prefix: &str) -> anyhow::Result<WorkerProc> {
    let port = free_port();
    let child = Command::new(std::env::current_exe()?)
        .arg("worker")
        .env("BIZ__REDIS__KEY_PREFIX", prefix)
        .env("BIZ__WORKER__ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(WorkerProc {
        child,
        ops: format!("http://127.0.0.1:{port}"),
    })
}

async fn succeeded(http: &reqwest::Client, ops: &str) -> u64 {
    let Ok(res) = http.get(format!("{ops}/metrics")).send().await else {
        return 0;
    };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("biz_jobs_succeeded_total") && l.contains("bench_noop.v1"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn total_succeeded(http: &reqwest::Client, workers: &[WorkerProc]) -> u64 {
    let mut sum = 0;
    for w in workers {
        sum += succeeded(http, &w.ops).await;
    }
    sum
}

/// Waits until the workers have run `target` jobs in all; returns when that was first seen, and
/// the largest RSS sampled meanwhile.
async fn wait_done(
    http: &reqwest::Client,
    workers: &[WorkerProc],
    target: u64,
) -> anyhow::Result<(Instant, f64)> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut peak: f64 = 0.0;
    loop {
        for w in workers {
            peak = peak.max(rss_mib(w.child.id()));
        }
        if total_succeeded(http, workers).await >= target {
            return Ok((Instant::now(), peak));
        }
        anyhow::ensure!(Instant::now() < deadline, "jobs did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario(settings: &Settings, n_workers: usize) -> anyhow::Result<Value> {
    let prefix = format!("bench{}", now_us());
    let mut redis = settings.redis.clone();
    redis.key_prefix = prefix.clone();
    let producer = Producer::new(jobs::redis_connection(&redis)?, &redis, &settings.jobs);
    let http = reqwest::Client::new();
    let mut workers = (0..n_workers)
        .map(|_| spawn_worker(&prefix))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for w in &workers {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{}/healthz", w.ops)).send().await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "worker did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss: Vec<f64> = workers.iter().map(|w| rss_mib(w.child.id())).collect();

    // Throughput: a burst pushed as fast as 64 concurrent producers can.
    let start = Instant::now();
    let pushed = Arc::new(AtomicU64::new(0));
    let mut pushers = Vec::new();
    for _ in 0..PUSHERS {
        let producer = producer.clone();
        let pushed = pushed.clone();
        pushers.push(tokio::spawn(async move {
            for _ in 0..BURST / PUSHERS {
                if producer
                    .push(Noop {
                        phase: 0,
                        enqueued_us: now_us(),
                    })
                    .await
                    .is_ok()
                {
                    pushed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for p in pushers {
        p.await?;
    }
    let push_secs = start.elapsed().as_secs_f64();
    let burst = pushed.load(Ordering::Relaxed);
    let (done, peak_rss) = wait_done(&http, &workers, burst).await?;
    let burst_secs = done.duration_since(start).as_secs_f64();

    // Latency: a paced stream the workers keep up with.
    let tick = Duration::from_micros(1_000_000 / PACED_RATE);
    let mut next = Instant::now();
    for _ in 0..PACED {
        producer
            .push(Noop {
                phase: 1,
                enqueued_us: now_us(),
            })
            .await?;
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
    let (_, peak_rss_paced) = wait_done(&http, &workers, burst + PACED).await?;

    // Stop the workers and collect what they saw.
    let mut paced = Vec::new();
    let mut saturated = Vec::new();
    for w in &mut workers {
        let _ = Command::new("kill")
            .args(["-TERM", &w.child.id().to_string()])
            .status();
    }
    for w in workers {
        let out = w.child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = text
            .lines()
            .rev()
            .find(|l| l.starts_with("{\"latencies_us\""))
        {
            let v: Value = serde_json::from_str(line)?;
            for (phase, into) in [("0", &mut saturated), ("1", &mut paced)] {
                if let Some(xs) = v["latencies_us"][phase].as_array() {
                    into.extend(xs.iter().filter_map(Value::as_u64));
                }
            }
        }
    }
    paced.sort_unstable();
    saturated.sort_unstable();
    Ok(json!({
        "workers": n_workers,
        "burst_jobs": burst,
        "throughput_jobs_per_s": (burst as f64 / burst_secs).round(),
        "push_rate_jobs_per_s": (burst as f64 / push_secs).round(),
        "latency_paced_ms": {
            "rate_per_s": PACED_RATE,
            "jobs": paced.len(),
            "p50": percentile(&paced, 0.50),
            "p99": percentile(&paced, 0.99),
            "max": percentile(&paced, 1.0),
        },
        "latency_under_burst_ms": {
            "p50": percentile(&saturated, 0.50),
            "p99": percentile(&saturated, 0.99),
        },
        "rss_mib": {
            "idle": idle_rss,
            "peak_under_load": peak_rss.max(peak_rss_paced),
        },
    }))
}

pub async fn run() -> anyhow::Result<()> {
    biz_core::install_crypto_provider();
    let (settings, _) = Settings::load()?;
    let mut results = Vec::new();
    for n in [1, 2] {
        let r = scenario(&settings, n).await?;
        println!(
            "queue-bench: {n} worker(s): {} jobs/s (push {} jobs/s); enqueue->start paced p50 {} ms, p99 {} ms; RSS idle {} MiB, peak {:.1} MiB",
            r["throughput_jobs_per_s"],
            r["push_rate_jobs_per_s"],
            r["latency_paced_ms"]["p50"],
            r["latency_paced_ms"]["p99"],
            r["rss_mib"]["idle"]
                .as_array()
                .map(|xs| xs.iter().map(|x| format!("{:.1}", x.as_f64().unwrap_or(0.0))).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            r["rss_mib"]["peak_under_load"].as_f64().unwrap_or(0.0),
        );
        results.push(r);
    }
    let report = json!({
        "benchmark": "queue",
        "targets": { "throughput_jobs_per_s": 2000, "p99_ms": 25, "worker_rss_mib": 60 },
        "results": results,
    });
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("queue.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("queue-bench: written to target/bench/queue.json");
    Ok(())
}
