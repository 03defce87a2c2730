//! Writing audit entries from handlers.

use actix_web::HttpRequest;
use biz_core::db::audit::{self, NewAuditEntry};
use biz_core::db::Conn;
use uuid::Uuid;

use crate::auth::Access;
use crate::error::ApiError;

/// Who did it and from where, taken from the request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    pub fn from_request(
        req: &HttpRequest,
        user_id: Option<Uuid>,
        api_key_id: Option<Uuid>,
    ) -> Self {
        Actor {
            user_id,
            api_key_id,
            ip: req
                .connection_info()
                .realip_remote_addr()
                .map(str::to_owned),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(300).collect()),
        }
    }

    pub fn of(req: &HttpRequest, access: &Access) -> Self {
        Self::from_request(req, access.user_id, access.api_key_id)
    }
}

/// Records `action` on `target`. Runs on the caller's connection, so inside its transaction the
/// entry commits or rolls back with the change it describes.
pub async fn record(
    conn: &mut Conn,
    actor: &Actor,
    organization_id: Option<Uuid>,
    action: &str,
    target: Option<(&str, String)>,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let (target_type, target_id) = match target {
        Some((t, id)) => (Some(t.to_owned()), Some(id)),
        None => (None, None),
    };
    audit::insert(
        conn,
        &NewAuditEntry {
            organization_id,
            actor_user_id: actor.user_id,
            actor_api_key_id: actor.api_key_id,
            action: action.to_owned(),
            target_type,
            target_id,
            ip: actor.ip.clone(),
            user_agent: actor.user_agent.clone(),
            details,
        },
    )
    .await?;
    Ok(())
}
