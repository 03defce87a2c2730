//! One-time OAuth `state` values (stored hashed), bound to who started the flow.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::db::schema::oauth_states;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = oauth_states)]
pub struct OauthState {
    pub id: Uuid,
    pub state_hash: String,
    pub provider: String,
    pub organization_id: Uuid,
    pub user_id: Option<Uuid>,
    pub context: Value,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    conn: &mut Conn,
    state_hash: &str,
    provider: &str,
    organization_id: Uuid,
    user_id: Option<Uuid>,
    context: &Value,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::insert_into(oauth_states::table)
        .values((
            oauth_states::id.eq(Uuid::new_v4()),
            oauth_states::state_hash.eq(state_hash),
            oauth_states::provider.eq(provider),
            oauth_states::organization_id.eq(organization_id),
            oauth_states::user_id.eq(user_id),
            oauth_states::context.eq(context),
            oauth_states::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Why a presented state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRefusal {
    Unknown,
    Used,
    Expired,
}

/// Uses the state: succeeds once, for the provider it was issued for, before it expires.
pub async fn consume(
    conn: &mut Conn,
    state_hash: &str,
    provider: &str,
) -> Result<Result<OauthState, StateRefusal>, DbError> {
    let now = Utc::now();
    let used: Option<OauthState> = diesel::update(oauth_states::table)
        .filter(oauth_states::state_hash.eq(state_hash))
        .filter(oauth_states::provider.eq(provider))
        .filter(oauth_states::used_at.is_null())
        .filter(oauth_states::expires_at.gt(now))
        .set(oauth_states::used_at.eq(now))
        .returning(OauthState::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(state) = used {
        return Ok(Ok(state));
    }
    let found: Option<OauthState> = oauth_states::table
        .filter(oauth_states::state_hash.eq(state_hash))
        .filter(oauth_states::provider.eq(provider))
        .select(OauthState::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(Err(match found {
        None => StateRefusal::Unknown,
        Some(s) if s.used_at.is_some() => StateRefusal::Used,
        Some(_) => StateRefusal::Expired,
    }))
}
