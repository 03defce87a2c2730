use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

/// Send one email from the outbox table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    pub outbox_id: Uuid,
}

impl Job for SendEmail {
    const NAME: &'static str = "send_email.v1";
}
