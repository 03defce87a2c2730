//! Consuming one apalis queue, the same way in every worker.
//!
//! The worker is named after this process start (plus a generation and apalis' restart count),
//! never reused: apalis finds a dead worker's in-flight jobs by its name and refuses a name that
//! is still registered (apalis #504). If the monitor ends with an error while we are not shutting
//! down (Redis went away and the worker gave up, apalis #492), it is rebuilt under a new
//! generation after a pause, instead of the process sitting idle with a dead consumer.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_core::backend::ext::poll_strategy::{PollWith, Strategy};
use apalis_redis::RedisStorage;
use biz_core::jobs::{queue_config, queue_name, wake_channel, Job};

use crate::Runtime;

/// How often an idle consumer looks at its queue without being woken: delayed jobs (retries
/// with backoff) come due, and a wake-up lost in a reconnect is made up for.
const POLL_FALLBACK: Duration = Duration::from_millis(500);

/// How often finished jobs older than this are removed from Redis.
const VACUUM_EVERY: Duration = Duration::from_secs(300);

/// How one queue is consumed.
pub struct Consumer {
    /// Short name for the worker and the logs (`sync`, `alerts`, …).
    pub label: &'static str,
    /// Jobs this process runs at once from this queue.
    pub concurrency: usize,
    /// Jobs fetched per poll. Long jobs want 1, so a batch does not sit in one worker's
    /// in-flight set while others are idle; short ones go faster with more.
    pub batch_size: usize,
}

impl Consumer {
    /// Runs until the stop signal; in-flight jobs get the grace period to finish.
    pub async fn run<J, D, F, Fut>(self, rt: &Runtime, data: D, handler: F)
    where
        J: Job,
        D: Clone + Send + Sync + 'static,
        F: Fn(J, Data<D>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxDynError>> + Send + 'static,
    {
        let settings = rt.settings.clone();
        let timeout = Duration::from_secs(settings.jobs.job_timeout_seconds);
        let producer = rt.producer.clone();
        tokio::spawn(crate::every(
            "queue-vacuum",
            VACUUM_EVERY,
            rt.shutdown.clone(),
            move || {
                let producer = producer.clone();
                async move {
                    let removed = producer.vacuum::<J>(VACUUM_EVERY).await?;
                    tracing::debug!(
                        queue = J::NAME,
                        removed,
                        "finished jobs vacuumed from Redis"
                    );
                    Ok(())
                }
            },
        ));
        for generation in 0u32.. {
            let config =
                queue_config::<J>(&settings.redis, &settings.jobs).batch_size(self.batch_size);
            // Woken by our producer's publish, and every `POLL_FALLBACK` regardless.
            let wakeups = crate::wakeups::subscribe(
                rt.redis.clone(),
                wake_channel(&queue_name::<J>(&settings.redis.key_prefix)),
                rt.shutdown.child_token(),
            );
            let storage = PollWith::new(
                RedisStorage::<J>::new(rt.queue.clone()).with_config(config),
                Strategy::new().stream(wakeups).interval(POLL_FALLBACK),
            );
            let name = format!("{}-{}-g{generation}", rt.worker_id, self.label);
            let (data, handler, concurrency) = (data.clone(), handler.clone(), self.concurrency);
            let monitor = Monitor::new()
                .register(move |restart| {
                    WorkerBuilder::new(format!("{name}-r{restart}"))
                        .backend(storage.clone())
                        .data(data.clone())
                        .concurrency(concurrency)
                        .timeout(timeout)
                        .catch_panic()
                        .build(handler.clone())
                })
                .shutdown_timeout(rt.grace());
            let result = monitor.run_with_signal(rt.stop_signal()).await;
            if rt.shutdown.is_cancelled() {
                return;
            }
            tracing::warn!(
                ?result,
                generation,
                queue = J::NAME,
                "queue consumer stopped; starting it again"
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = rt.shutdown.cancelled() => return,
            }
        }
    }
}
