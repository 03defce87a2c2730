//! Exchange rates an organisation's admins load for its reporting-currency totals, as CSV
//! (`date,base,quote,rate`). They win over the operator's global rates (`gateway
//! load-fx-rates`) for this organisation.

use actix_web::{post, web, HttpRequest};
use biz_core::db::accounts::Role;
use biz_core::metrics::fx;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extractors::read_body;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(load);
}

/// Largest CSV accepted (about 100,000 rows).
const LIMIT_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct Loaded {
    /// Rows stored (new or replacing the same day and pair).
    loaded: usize,
}

/// Loads exchange rates from CSV: a `date,base,quote,rate` header, then rows such as
/// `2025-12-01,EUR,USD,1.0842` (1 EUR = 1.0842 USD). All rows or none.
#[utoipa::path(tag = "metrics", request_body(content = String, content_type = "text/csv"), responses((status = 200, body = Loaded), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, description = "invalid_fx_rates", body = ErrorBody)))]
#[post("/orgs/{org_id}/fx-rates")]
async fn load(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    payload: web::Payload,
) -> Result<web::Json<Loaded>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let body = read_body(&req, payload, LIMIT_BYTES).await?;
    let rates = fx::parse_csv(body.as_ref())
        .map_err(|e| ApiError::validation("invalid_fx_rates", e.to_string()))?;
    let loaded = fx::load(&mut conn, Some(org_id), &rates).await?;
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        Some(org_id),
        "fx_rates.load",
        None,
        serde_json::json!({ "rows": loaded }),
    )
    .await?;
    Ok(web::Json(Loaded { loaded }))
}
