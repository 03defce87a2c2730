//! Organisations: list mine, create, read, change settings, delete.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use biz_core::db::accounts::{memberships, organizations, Role};
use biz_core::metrics::mrr::Convention;
use biz_core::metrics::rollup;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::domain;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(show)
        .service(update)
        .service(destroy);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    /// IANA time zone that metrics are cut into days in.
    pub timezone: String,
    pub reporting_currency: String,
    /// How MRR is computed (docs/METRICS.md, "Conventions"): `discounts` (`forever_only` |
    /// `all_non_once`), `scheduled_cancellations` (`leave_when_set` | `count_until_effective`),
    /// `past_due_churn_days` (null, or days after which a past-due subscription stops counting).
    #[schema(value_type = Object)]
    pub mrr_convention: serde_json::Value,
    /// Members must have MFA on to reach the organisation's data.
    pub require_mfa: bool,
    /// The caller's role in it.
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl OrganizationView {
    pub fn new(o: &organizations::Organization, role: Role) -> Self {
        OrganizationView {
            id: o.id,
            name: o.name.clone(),
            timezone: o.timezone.clone(),
            reporting_currency: o.reporting_currency.clone(),
            mrr_convention: serde_json::to_value(Convention::from_stored(&o.mrr_convention))
                .unwrap_or_default(),
            require_mfa: o.require_mfa,
            role,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    name: Option<String>,
    /// IANA name, such as `Europe/Berlin`.
    timezone: Option<String>,
    /// ISO 4217 code, such as `EUR`.
    reporting_currency: Option<String>,
    /// Any of `discounts`, `scheduled_cancellations`, `past_due_churn_days`; fields left out
    /// take Stripe Billing's convention. Changing it (or the time zone) rebuilds the metrics.
    #[schema(value_type = Option<Object>)]
    mrr_convention: Option<serde_json::Value>,
    /// Require MFA of every member (owners only; the owner must have MFA on first).
    require_mfa: Option<bool>,
}

/// The organisations the caller belongs to (an API key sees its own).
#[utoipa::path(tag = "organizations", responses((status = 200, body = ListResponse<OrganizationView>)))]
#[get("/orgs")]
async fn list(
    state: web::Data<AppState>,
    who: Principal,
) -> Result<web::Json<ListResponse<OrganizationView>>, ApiError> {
    let mut conn = state.conn().await?;
    let views = match &who {
        Principal::User { user_id, .. } => memberships::organizations_of(&mut conn, *user_id)
            .await?
            .iter()
            .map(|(o, r)| OrganizationView::new(o, *r))
            .collect(),
        Principal::ApiKey {
            organization_id,
            role,
            ..
        } => organizations::find(&mut conn, *organization_id)
            .await?
            .iter()
            .map(|o| OrganizationView::new(o, *role))
            .collect(),
    };
    Ok(web::Json(ListResponse::all(views)))
}

/// Creates another organisation, owned by the caller.
#[utoipa::path(tag = "organizations", request_body = CreateOrganization, responses((status = 201, body = OrganizationView), (status = 422, body = ErrorBody)))]
#[post("/orgs")]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<CreateOrganization>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = who.require_user()?;
    let name = domain::name("name", &body.name, 200)?;
    let actor = Actor::from_request(&req, Some(user_id), None);
    let mut conn = state.conn().await?;
    let org = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let org = organizations::insert(conn, Uuid::new_v4(), &name).await?;
            memberships::insert(conn, org.id, user_id, Role::Owner).await?;
            audit::record(
                conn,
                &actor,
                Some(org.id),
                "organization.create",
                Some(("organization", org.id.to_string())),
                serde_json::json!({}),
            )
            .await?;
            Ok(org)
        })
        .await?;
    Ok(HttpResponse::Created().json(OrganizationView::new(&org, Role::Owner)))
}

#[utoipa::path(tag = "organizations", responses((status = 200, body = OrganizationView), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}")]
async fn show(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<OrganizationView>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Viewer).await?;
    let org = organizations::find(&mut conn, org_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(OrganizationView::new(&org, access.role)))
}

fn parse_timezone(tz: &str) -> Result<String, ApiError> {
    tz.parse::<chrono_tz::Tz>()
        .map(|_| tz.to_owned())
        .map_err(|_| {
            ApiError::validation(
                "invalid_timezone",
                format!("`{tz}` is not an IANA time zone"),
            )
        })
}

fn parse_convention(raw: serde_json::Value) -> Result<serde_json::Value, ApiError> {
    let convention: Convention = serde_json::from_value(raw).map_err(|e| {
        ApiError::validation("invalid_mrr_convention", format!("mrr_convention: {e}"))
    })?;
    if convention
        .past_due_churn_days
        .is_some_and(|d| !(1..=365).contains(&d))
    {
        return Err(ApiError::validation(
            "invalid_mrr_convention",
            "mrr_convention.past_due_churn_days is between 1 and 365, or null",
        ));
    }
    // Stored whole, so that a later change of the defaults does not change this organisation.
    serde_json::to_value(convention).map_err(ApiError::internal)
}

fn parse_currency(c: &str) -> Result<String, ApiError> {
    if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()) {
        Ok(c.to_owned())
    } else {
        Err(ApiError::validation(
            "invalid_currency",
            format!("`{c}` is not an ISO 4217 code"),
        ))
    }
}

/// Changes the name, time zone or reporting currency (admins).
#[utoipa::path(tag = "organizations", request_body = UpdateOrganization, responses((status = 200, body = OrganizationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[patch("/orgs/{org_id}")]
async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    body: web::Json<UpdateOrganization>,
) -> Result<web::Json<OrganizationView>, ApiError> {
    let org_id = path.into_inner();
    let body = body.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let changes = organizations::OrganizationChanges {
        name: body
            .name
            .as_deref()
            .map(|n| domain::name("name", n, 200))
            .transpose()?,
        timezone: body.timezone.as_deref().map(parse_timezone).transpose()?,
        reporting_currency: body
            .reporting_currency
            .as_deref()
            .map(parse_currency)
            .transpose()?,
        mrr_convention: body.mrr_convention.map(parse_convention).transpose()?,
        require_mfa: body.require_mfa,
    };
    if let Some(require) = changes.require_mfa {
        if access.role != Role::Owner {
            return Err(ApiError::role_too_low());
        }
        let user = who.user_id().ok_or_else(|| {
            ApiError::forbidden(
                "user_session_required",
                "only a signed-in owner can change this",
            )
        })?;
        let on = biz_core::db::accounts::mfa::state(&mut conn, user)
            .await?
            .is_some_and(|s| s.enabled());
        if require && !on {
            return Err(ApiError::validation(
                "mfa_not_enabled",
                "turn MFA on for yourself before requiring it of everyone",
            ));
        }
    }
    let before = organizations::find(&mut conn, org_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let org = organizations::update(&mut conn, org_id, &changes).await?;
    if org.timezone != before.timezone || org.mrr_convention != before.mrr_convention {
        // Days are cut in the zone and MRR follows the convention: the workers rebuild the
        // whole history in the background; the old figures are served until then.
        rollup::mark_all_dirty(&mut conn, org_id).await?;
    }
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        Some(org_id),
        "organization.update",
        Some(("organization", org_id.to_string())),
        serde_json::json!({ "name": changes.name, "timezone": changes.timezone, "reporting_currency": changes.reporting_currency, "mrr_convention": changes.mrr_convention, "require_mfa": changes.require_mfa }),
    )
    .await?;
    Ok(web::Json(OrganizationView::new(&org, access.role)))
}

/// Deletes the organisation and everything it holds (owners only).
#[utoipa::path(tag = "organizations", responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/orgs/{org_id}")]
async fn destroy(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Owner).await?;
    organizations::delete(&mut conn, org_id).await?;
    // The organisation's own rows are gone; the entry survives it, unattached, as the record.
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        None,
        "organization.delete",
        Some(("organization", org_id.to_string())),
        serde_json::json!({}),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
