use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

/// Render a report (PDF, Excel, CSV) and deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateReport {
    pub report_id: Uuid,
}

impl Job for GenerateReport {
    const NAME: &'static str = "generate_report.v1";
}
