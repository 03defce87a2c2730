//! Job types and the producer side of the queue.
//!
//! Each job is a small serde payload that points at a PostgreSQL row (the record of truth): the
//! queue carries "what to do", the row carries state, attempts and checkpoints. A job's name
//! carries a version; a payload change that old workers cannot read gets a new version (and so
//! a new queue) instead of breaking jobs already queued.
//!
//! One apalis queue per job type, named `{redis.key_prefix}:q:{job}`. See docs/JOBS.md.

mod backoff;
mod evaluate_alerts;
mod generate_report;
mod metrics;
mod process_webhook_event;
mod queue;
mod send_email;
mod sync_integration;

pub use backoff::{backoff_delay, Backoff};
pub use evaluate_alerts::EvaluateAlerts;
pub use generate_report::GenerateReport;
pub use metrics::JobMetrics;
pub use process_webhook_event::ProcessWebhookEvent;
pub use queue::{queue_config, redis_connection, Producer, QueueError, RedisConn};
pub use send_email::SendEmail;
pub use sync_integration::{SyncIntegration, SyncMode};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What every job type declares.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + Clone + 'static {
    /// Versioned name, e.g. `sync_integration.v1`; also names the queue.
    const NAME: &'static str;
}

/// The queue name a job type is pushed to and consumed from.
pub fn queue_name<J: Job>(key_prefix: &str) -> String {
    format!("{key_prefix}:q:{}", J::NAME)
}

/// The pub/sub channel a queue's consumers are woken on after a push (apalis-redis announces
/// nothing itself; see worker-runtime's wakeups).
pub fn wake_channel(queue: &str) -> String {
    format!("{queue}:wake")
}

/// Every queue, for depth reporting.
pub const ALL_JOBS: [&str; 5] = [
    SyncIntegration::NAME,
    ProcessWebhookEvent::NAME,
    GenerateReport::NAME,
    EvaluateAlerts::NAME,
    SendEmail::NAME,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_prefixed_and_versioned() {
        assert_eq!(
            queue_name::<SyncIntegration>("biz"),
            "biz:q:sync_integration.v1"
        );
        let mut names = ALL_JOBS.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 5, "every job type has its own queue");
    }

    #[test]
    fn payloads_round_trip_in_their_wire_form() {
        let id = uuid::Uuid::nil();
        let job = SyncIntegration {
            integration_id: id,
            mode: SyncMode::Incremental,
            sync_run_id: id,
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["mode"], "incremental");
        let back: SyncIntegration = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
    }
}
