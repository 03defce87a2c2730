//! The organisation's job summary (admins): what is queued, running, stuck or failed.

use actix_web::{get, web};
use biz_core::db::accounts::Role;
use biz_core::db::sync_runs;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::integrations::SyncRunView;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(summary);
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct RunCounts {
    queued: i64,
    running: i64,
    succeeded: i64,
    failed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobsSummary {
    /// Sync runs of this organisation by status, all time.
    sync_runs: RunCounts,
    /// Queued and running runs, newest first.
    active: Vec<SyncRunView>,
    /// Active runs that look stuck: queued and due for longer than the requeue window, or
    /// running with a lapsed lease. The sweeper pushes these again; a run that stays here has
    /// a problem worth a look (see docs/JOBS.md).
    stuck: Vec<SyncRunView>,
    /// The ten most recent failed runs, with their errors.
    recent_failures: Vec<SyncRunView>,
}

/// Job summary for the organisation (admins).
#[utoipa::path(tag = "jobs", responses((status = 200, body = JobsSummary), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/jobs")]
async fn summary(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<JobsSummary>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Admin).await?;
    let mut counts = RunCounts::default();
    for (status, n) in sync_runs::status_counts(&mut conn, org_id).await? {
        match status.as_str() {
            "queued" => counts.queued = n,
            "running" => counts.running = n,
            "succeeded" => counts.succeeded = n,
            "failed" => counts.failed = n,
            _ => {}
        }
    }
    let active = sync_runs::list_for_org(&mut conn, org_id, &["queued", "running"], 100).await?;
    let failed = sync_runs::list_for_org(&mut conn, org_id, &["failed"], 10).await?;
    let now = Utc::now();
    let requeue = chrono::Duration::seconds(state.settings.jobs.requeue_after_seconds as i64);
    let stuck = active
        .iter()
        .filter(|r| match r.status.as_str() {
            "queued" => r.next_attempt_at + requeue < now,
            _ => r.lease_expires_at.is_none_or(|t| t < now),
        })
        .map(SyncRunView::from)
        .collect();
    Ok(web::Json(JobsSummary {
        sync_runs: counts,
        active: active.iter().map(SyncRunView::from).collect(),
        stuck,
        recent_failures: failed.iter().map(SyncRunView::from).collect(),
    }))
}
