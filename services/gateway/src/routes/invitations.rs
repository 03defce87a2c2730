//! Invitations: admins invite by email with a role; the invited person accepts with the token.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use biz_core::crypto::tokens;
use biz_core::db::accounts::{invitations, memberships, organizations, users, Role};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::organizations::OrganizationView;
use super::ListResponse;
use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::domain::Email;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(revoke)
        .service(accept);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    id: Uuid,
    email: String,
    role: Role,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    expired: bool,
}

impl From<&invitations::Invitation> for InvitationView {
    fn from(i: &invitations::Invitation) -> Self {
        InvitationView {
            id: i.id,
            email: i.email.clone(),
            role: i.role(),
            created_at: i.created_at,
            expires_at: i.expires_at,
            expired: i.expires_at <= Utc::now(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    invitation: InvitationView,
    /// The secret the invited person accepts with. Shown this once; only its hash is stored.
    token: String,
    /// A dashboard link carrying the token, to send to the invited person.
    accept_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    email: String,
    role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    token: String,
}

/// Open invitations (admins).
#[utoipa::path(tag = "team", responses((status = 200, body = ListResponse<InvitationView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/invitations")]
async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<ListResponse<InvitationView>>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Admin).await?;
    let open = invitations::list_open(&mut conn, org_id).await?;
    Ok(web::Json(ListResponse::all(
        open.iter().map(InvitationView::from).collect(),
    )))
}

/// Invites someone (admins; only owners invite owners). One open invitation per address.
#[utoipa::path(tag = "team", request_body = CreateInvitation, responses((status = 201, body = CreatedInvitation), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "already_member or invitation_exists", body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/orgs/{org_id}/invitations")]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    body: web::Json<CreateInvitation>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let email = Email::parse(&body.email)?;
    if !access.role.may_manage(body.role) {
        return Err(ApiError::role_too_low());
    }
    if let Some(existing) = users::find_by_email(&mut conn, email.as_str()).await? {
        if memberships::role_of(&mut conn, org_id, existing.id)
            .await?
            .is_some()
        {
            return Err(ApiError::conflict(
                "already_member",
                "this person is already a member",
            ));
        }
    }
    let token = tokens::generate(tokens::INVITATION_PREFIX);
    let hash = tokens::hash(&token);
    let inv = invitations::insert(
        &mut conn,
        &invitations::NewInvitation {
            id: Uuid::new_v4(),
            organization_id: org_id,
            email: email.as_str(),
            role: body.role.as_str(),
            token_hash: &hash,
            invited_by: access.user_id,
            expires_at: Utc::now()
                + chrono::Duration::hours(state.settings.security.invitation_ttl_hours),
        },
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation() {
            ApiError::conflict(
                "invitation_exists",
                "an open invitation for this address exists",
            )
        } else {
            e.into()
        }
    })?;
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        Some(org_id),
        "invitation.create",
        Some(("invitation", inv.id.to_string())),
        serde_json::json!({ "email": inv.email, "role": inv.role }),
    )
    .await?;
    let accept_url = format!(
        "{}/#/invitations/accept?token={token}",
        state.settings.gateway.public_url.trim_end_matches('/')
    );
    Ok(HttpResponse::Created().json(CreatedInvitation {
        invitation: InvitationView::from(&inv),
        token,
        accept_url,
    }))
}

/// Withdraws an open invitation (admins).
#[utoipa::path(tag = "team", responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/orgs/{org_id}/invitations/{invitation_id}")]
async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, invitation_id) = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let inv = invitations::find_open(&mut conn, org_id, invitation_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !access.role.may_manage(inv.role()) {
        return Err(ApiError::role_too_low());
    }
    invitations::revoke(&mut conn, org_id, invitation_id).await?;
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        Some(org_id),
        "invitation.revoke",
        Some(("invitation", invitation_id.to_string())),
        serde_json::json!({ "email": inv.email }),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accepts an invitation: the signed-in user, whose email must be the invited one, joins the
/// organisation with the invited role. Each token works once.
#[utoipa::path(tag = "team", request_body = AcceptInvitation, responses((status = 200, body = OrganizationView), (status = 403, description = "invitation_email_mismatch", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "already_member", body = ErrorBody), (status = 410, description = "invitation_expired", body = ErrorBody)))]
#[post("/invitations/accept")]
async fn accept(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<AcceptInvitation>,
) -> Result<web::Json<OrganizationView>, ApiError> {
    let (user_id, _) = who.require_user()?;
    let hash = tokens::hash(body.token.trim());
    let actor = Actor::from_request(&req, Some(user_id), None);
    let mut conn = state.conn().await?;
    let (org, role) = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let inv = invitations::find_open_by_token_for_update(conn, &hash)
                .await?
                .ok_or(ApiError::NotFound)?;
            if inv.expires_at <= Utc::now() {
                return Err(ApiError::Gone {
                    code: "invitation_expired",
                    message: "this invitation has expired; ask for a new one".into(),
                });
            }
            let user = users::find(conn, user_id)
                .await?
                .ok_or(ApiError::Unauthenticated)?;
            if user.email != inv.email {
                return Err(ApiError::forbidden(
                    "invitation_email_mismatch",
                    "this invitation was sent to another email address",
                ));
            }
            if memberships::role_of(conn, inv.organization_id, user_id)
                .await?
                .is_some()
            {
                return Err(ApiError::conflict(
                    "already_member",
                    "you are already a member",
                ));
            }
            memberships::insert(conn, inv.organization_id, user_id, inv.role()).await?;
            invitations::mark_accepted(conn, inv.id, user_id).await?;
            audit::record(
                conn,
                &actor,
                Some(inv.organization_id),
                "invitation.accept",
                Some(("invitation", inv.id.to_string())),
                serde_json::json!({ "role": inv.role }),
            )
            .await?;
            let org = organizations::find(conn, inv.organization_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok((org, inv.role()))
        })
        .await?;
    Ok(web::Json(OrganizationView::new(&org, role)))
}
