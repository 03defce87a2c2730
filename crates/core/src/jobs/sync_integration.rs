use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

/// Pull an integration's data. The run row (`sync_runs`) holds status, progress and checkpoint;
/// the job only says which run to advance, so a duplicate delivery finds the run taken or done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncIntegration {
    pub integration_id: Uuid,
    pub mode: SyncMode,
    pub sync_run_id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Everything, from the beginning (or from the run's checkpoint when resumed).
    Full,
    /// What changed since the last cursor, re-reading an overlap window.
    Incremental,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Incremental => "incremental",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(SyncMode::Full),
            "incremental" => Some(SyncMode::Incremental),
            _ => None,
        }
    }
}

impl Job for SyncIntegration {
    const NAME: &'static str = "sync_integration.v1";
}
