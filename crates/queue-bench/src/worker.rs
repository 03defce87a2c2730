//! The benchmark worker: the production runtime and consumer around a no-op job. On stop it
//! prints, as one JSON line, every latency it saw per phase.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use biz_core::jobs::{Job, JobMetrics};
use worker_runtime::Consumer;

use crate::{now_us, Noop};

struct Seen {
    metrics: JobMetrics,
    latencies_us: Mutex<BTreeMap<u8, Vec<u64>>>,
}

async fn noop(job: Noop, seen: Data<Arc<Seen>>) -> Result<(), BoxDynError> {
    let waited = now_us().saturating_sub(job.enqueued_us);
    seen.metrics.started(Noop::NAME);
    if let Ok(mut l) = seen.latencies_us.lock() {
        l.entry(job.phase).or_default().push(waited);
    }
    seen.metrics.succeeded(Noop::NAME, Duration::ZERO);
    Ok(())
}

pub async fn run() -> anyhow::Result<()> {
    let rt = worker_runtime::Runtime::start("queue-bench-worker").await?;
    let seen = Arc::new(Seen {
        metrics: rt.metrics.clone(),
        latencies_us: Mutex::new(BTreeMap::new()),
    });
    let concurrency = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let batch_size = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    Consumer {
        label: "bench",
        concurrency,
        batch_size,
    }
    .run::<Noop, _, _, _>(&rt, seen.clone(), noop)
    .await;
    let latencies = seen
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    println!("{}", serde_json::json!({ "latencies_us": latencies }));
    Ok(())
}
