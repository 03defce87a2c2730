//! Prometheus figures for the queues: depth (read from Redis at scrape time) and, per job type,
//! jobs started, succeeded, failed and retried, and how long they ran. The gateway and every
//! worker serve them on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::{Producer, ALL_JOBS};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub job: String,
    /// `ready` (waiting now) or `scheduled` (waiting for its time).
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabel {
    pub reason: String,
}

/// One per process; cheap to clone (the families share their storage).
#[derive(Clone)]
pub struct JobMetrics {
    started: Family<JobLabel, Counter>,
    succeeded: Family<JobLabel, Counter>,
    failed: Family<JobLabel, Counter>,
    retried: Family<JobLabel, Counter>,
    handed_back: Family<JobLabel, Counter>,
    requeued: Family<JobLabel, Counter>,
    duration: Family<JobLabel, Histogram>,
    queue_depth: Family<QueueLabel, Gauge>,
    scrape_errors: Family<FallbackLabel, Counter>,
}

impl Default for JobMetrics {
    fn default() -> Self {
        JobMetrics {
            started: Family::default(),
            succeeded: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            handed_back: Family::default(),
            requeued: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 20))
            }),
            queue_depth: Family::default(),
            scrape_errors: Family::default(),
        }
    }
}

fn label(job: &str) -> JobLabel {
    JobLabel {
        job: job.to_owned(),
    }
}

impl JobMetrics {
    pub fn started(&self, job: &str) {
        self.started.get_or_create(&label(job)).inc();
    }
    pub fn succeeded(&self, job: &str, took: Duration) {
        self.succeeded.get_or_create(&label(job)).inc();
        self.duration
            .get_or_create(&label(job))
            .observe(took.as_secs_f64());
    }
    pub fn failed(&self, job: &str, took: Duration) {
        self.failed.get_or_create(&label(job)).inc();
        self.duration
            .get_or_create(&label(job))
            .observe(took.as_secs_f64());
    }
    pub fn retried(&self, job: &str) {
        self.retried.get_or_create(&label(job)).inc();
    }
    pub fn handed_back(&self, job: &str) {
        self.handed_back.get_or_create(&label(job)).inc();
    }
    /// A stalled job pushed again by the sweeper.
    pub fn requeued(&self, job: &str) {
        self.requeued.get_or_create(&label(job)).inc();
    }

    fn registry(&self, service: &str) -> Registry {
        let mut r = Registry::with_labels(
            [(
                std::borrow::Cow::Borrowed("service"),
                std::borrow::Cow::Owned(service.to_owned()),
            )]
            .into_iter(),
        );
        r.register(
            "biz_jobs_started",
            "Jobs this process began",
            self.started.clone(),
        );
        r.register(
            "biz_jobs_succeeded",
            "Jobs that ended well",
            self.succeeded.clone(),
        );
        r.register(
            "biz_jobs_failed",
            "Jobs that ended failed (attempts exhausted or a permanent error)",
            self.failed.clone(),
        );
        r.register(
            "biz_jobs_retried",
            "Attempts that failed and were scheduled again with backoff",
            self.retried.clone(),
        );
        r.register(
            "biz_jobs_handed_back",
            "Jobs given back unfinished at shutdown",
            self.handed_back.clone(),
        );
        r.register(
            "biz_jobs_requeued",
            "Stalled jobs pushed again by the sweeper",
            self.requeued.clone(),
        );
        r.register(
            "biz_job_duration_seconds",
            "How long jobs ran",
            self.duration.clone(),
        );
        r.register(
            "biz_queue_depth",
            "Jobs waiting in each queue",
            self.queue_depth.clone(),
        );
        r.register(
            "biz_metrics_scrape_errors",
            "Figures that could not be read at scrape time",
            self.scrape_errors.clone(),
        );
        r
    }

    /// The Prometheus text exposition, with queue depths read from Redis now.
    pub async fn render(&self, service: &str, producer: &Producer) -> String {
        self.render_with(service, producer, |_| {}).await
    }

    /// [`Self::render`], with a process's own figures registered by `extra` in the same
    /// exposition.
    pub async fn render_with(
        &self,
        service: &str,
        producer: &Producer,
        extra: impl FnOnce(&mut Registry),
    ) -> String {
        for job in ALL_JOBS {
            match producer.depth(job).await {
                Ok((ready, scheduled)) => {
                    for (state, n) in [("ready", ready), ("scheduled", scheduled)] {
                        self.queue_depth
                            .get_or_create(&QueueLabel {
                                job: job.to_owned(),
                                state: state.to_owned(),
                            })
                            .set(n as i64);
                    }
                }
                Err(_) => {
                    self.scrape_errors
                        .get_or_create(&FallbackLabel {
                            reason: "redis_unavailable".into(),
                        })
                        .inc();
                    break;
                }
            }
        }
        let mut registry = self.registry(service);
        extra(&mut registry);
        let mut out = String::new();
        let _ = encode(&mut out, &registry);
        out
    }
}
