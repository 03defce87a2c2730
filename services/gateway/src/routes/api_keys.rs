//! Organisation API keys: shown once at creation, stored hashed, revocable.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use biz_core::crypto::tokens;
use biz_core::db::accounts::{api_keys, Role};
use chrono::{DateTime, Utc};
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
    cfg.service(list).service(create).service(revoke);
}

/// How many characters of a key are kept to tell keys apart (`bik_` and four more).
const DISPLAY_PREFIX_CHARS: usize = 8;

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    id: Uuid,
    name: String,
    role: Role,
    /// The key's first characters, for recognising it.
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

impl From<&api_keys::ApiKey> for ApiKeyView {
    fn from(k: &api_keys::ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            name: k.name.clone(),
            role: k.role(),
            prefix: k.key_prefix.clone(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    name: String,
    /// `admin`, `member` or `viewer` (default `viewer`); never above the creator's role.
    role: Option<Role>,
    /// Optional expiry, in days from now (1 to 3650).
    expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    id: Uuid,
    /// The key. Shown this once; only its hash is stored.
    key: String,
    name: String,
    role: Role,
    prefix: String,
    expires_at: Option<DateTime<Utc>>,
}

/// The organisation's live keys (admins).
#[utoipa::path(tag = "api-keys", responses((status = 200, body = ListResponse<ApiKeyView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/api-keys")]
async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<ListResponse<ApiKeyView>>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Admin).await?;
    let keys = api_keys::list(&mut conn, org_id).await?;
    Ok(web::Json(ListResponse::all(
        keys.iter().map(ApiKeyView::from).collect(),
    )))
}

/// Creates a key (admins). The response holds the key; it cannot be shown again.
#[utoipa::path(tag = "api-keys", request_body = CreateApiKey, responses((status = 201, body = CreatedApiKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/orgs/{org_id}/api-keys")]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    body: web::Json<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let name = domain::name("name", &body.name, 100)?;
    let role = body.role.unwrap_or(Role::Viewer);
    if role == Role::Owner {
        return Err(ApiError::validation(
            "invalid_role",
            "API keys can be admin, member or viewer",
        ));
    }
    if role > access.role {
        return Err(ApiError::role_too_low());
    }
    let expires_at = match body.expires_in_days {
        None => None,
        Some(d @ 1..=3650) => Some(Utc::now() + chrono::Duration::days(d)),
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_expiry",
                "expires_in_days must be between 1 and 3650",
            ))
        }
    };
    let key = tokens::generate(tokens::API_KEY_PREFIX);
    let hash = tokens::hash(&key);
    let prefix: String = key.chars().take(DISPLAY_PREFIX_CHARS).collect();
    let row = api_keys::insert(
        &mut conn,
        &api_keys::NewApiKey {
            id: Uuid::new_v4(),
            organization_id: org_id,
            name: &name,
            role: role.as_str(),
            key_hash: &hash,
            key_prefix: &prefix,
            created_by: access.user_id,
            expires_at,
        },
    )
    .await?;
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        Some(org_id),
        "api_key.create",
        Some(("api_key", row.id.to_string())),
        serde_json::json!({ "name": row.name, "role": row.role }),
    )
    .await?;
    Ok(HttpResponse::Created().json(CreatedApiKey {
        id: row.id,
        key,
        name: row.name,
        role,
        prefix,
        expires_at,
    }))
}

/// Revokes a key (admins). It stops working at once.
#[utoipa::path(tag = "api-keys", responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/orgs/{org_id}/api-keys/{key_id}")]
async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, key_id) = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    if !api_keys::revoke(&mut conn, org_id, key_id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        Some(org_id),
        "api_key.revoke",
        Some(("api_key", key_id.to_string())),
        serde_json::json!({}),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
