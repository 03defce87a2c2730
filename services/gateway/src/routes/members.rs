//! The team: list members, change a role, remove a member (or leave).

use actix_web::{delete, get, patch, web, HttpRequest, HttpResponse};
use biz_core::db::accounts::{memberships, Role};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list).service(change_role).service(remove);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    user_id: Uuid,
    email: String,
    name: String,
    role: Role,
    joined_at: DateTime<Utc>,
}

impl From<memberships::Member> for MemberView {
    fn from(m: memberships::Member) -> Self {
        MemberView {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    role: Role,
}

fn last_owner() -> ApiError {
    ApiError::conflict("last_owner", "an organisation must keep at least one owner")
}

#[utoipa::path(tag = "team", responses((status = 200, body = ListResponse<MemberView>), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/members")]
async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<ListResponse<MemberView>>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    let members = memberships::list(&mut conn, org_id).await?;
    Ok(web::Json(ListResponse::all(
        members.into_iter().map(MemberView::from).collect(),
    )))
}

/// Changes a member's role. Admins manage everyone below owner; only owners grant or take away
/// ownership; the last owner cannot be demoted.
#[utoipa::path(tag = "team", request_body = ChangeRole, responses((status = 200, body = MemberView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "last_owner", body = ErrorBody)))]
#[patch("/orgs/{org_id}/members/{user_id}")]
async fn change_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<ChangeRole>,
) -> Result<web::Json<MemberView>, ApiError> {
    let (org_id, user_id) = path.into_inner();
    let new_role = body.role;
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let actor = Actor::of(&req, &access);
    let member = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let owners = memberships::count_owners_for_update(conn, org_id).await?;
            let target = memberships::find(conn, org_id, user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if !access.role.may_manage(target.role) || !access.role.may_manage(new_role) {
                return Err(ApiError::role_too_low());
            }
            if target.role == Role::Owner && new_role != Role::Owner && owners <= 1 {
                return Err(last_owner());
            }
            memberships::set_role(conn, org_id, user_id, new_role).await?;
            audit::record(
                conn,
                &actor,
                Some(org_id),
                "member.role_change",
                Some(("user", user_id.to_string())),
                serde_json::json!({ "from": target.role, "to": new_role }),
            )
            .await?;
            Ok(memberships::Member {
                role: new_role,
                ..target
            })
        })
        .await?;
    Ok(web::Json(MemberView::from(member)))
}

/// Removes a member. Anyone may remove themselves (leave); removing others needs admin, and
/// owner to remove an owner. The last owner cannot be removed.
#[utoipa::path(tag = "team", responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "last_owner", body = ErrorBody)))]
#[delete("/orgs/{org_id}/members/{user_id}")]
async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Viewer).await?;
    let leaving = access.user_id == Some(user_id);
    let actor = Actor::of(&req, &access);
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let owners = memberships::count_owners_for_update(conn, org_id).await?;
        let target = memberships::find(conn, org_id, user_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        if !leaving && (access.role < Role::Admin || !access.role.may_manage(target.role)) {
            return Err(ApiError::role_too_low());
        }
        if target.role == Role::Owner && owners <= 1 {
            return Err(last_owner());
        }
        memberships::delete(conn, org_id, user_id).await?;
        let action = if leaving {
            "member.leave"
        } else {
            "member.remove"
        };
        audit::record(
            conn,
            &actor,
            Some(org_id),
            action,
            Some(("user", user_id.to_string())),
            serde_json::json!({ "role": target.role }),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
