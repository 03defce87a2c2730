//! Reading the audit log (admins). Entries are never changed or deleted.

use actix_web::{get, web};
use biz_core::db::accounts::Role;
use biz_core::db::audit::{self, AuditEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    id: i64,
    action: String,
    actor_user_id: Option<Uuid>,
    actor_api_key_id: Option<Uuid>,
    target_type: Option<String>,
    target_id: Option<String>,
    ip: Option<String>,
    details: serde_json::Value,
    created_at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            id: e.id,
            action: e.action,
            actor_user_id: e.actor_user_id,
            actor_api_key_id: e.actor_api_key_id,
            target_type: e.target_type,
            target_id: e.target_id,
            ip: e.ip,
            details: e.details,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action, such as `member.role_change`.
    action: Option<String>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
    /// 1 to 200, default 50.
    limit: Option<i64>,
}

#[utoipa::path(tag = "audit", params(AuditQuery), responses((status = 200, body = ListResponse<AuditEntryView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/orgs/{org_id}/audit-log")]
async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    query: web::Query<AuditQuery>,
) -> Result<web::Json<ListResponse<AuditEntryView>>, ApiError> {
    let org_id = path.into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation(
            "invalid_limit",
            "limit must be between 1 and 200",
        ));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::validation("invalid_cursor", "cursor is not one this API issued")
            })
        })
        .transpose()?;
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Admin).await?;
    let entries = audit::list(&mut conn, org_id, query.action.as_deref(), before, limit).await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(web::Json(ListResponse {
        data: entries.into_iter().map(AuditEntryView::from).collect(),
        next_cursor,
    }))
}
