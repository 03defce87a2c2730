use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

/// Apply a stored webhook event. The event row is written before the provider gets its 2xx;
/// this job only points at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessWebhookEvent {
    pub event_row_id: Uuid,
}

impl Job for ProcessWebhookEvent {
    const NAME: &'static str = "process_webhook_event.v1";
}
