use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

/// Evaluate an organisation's alert rules for one scheduler tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluateAlerts {
    pub organization_id: Uuid,
    /// The tick this evaluation belongs to (the start of its period).
    pub slot: DateTime<Utc>,
}

impl Job for EvaluateAlerts {
    const NAME: &'static str = "evaluate_alerts.v1";
}
