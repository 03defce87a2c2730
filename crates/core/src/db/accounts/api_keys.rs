//! Organisation API keys. The key is shown once; rows hold its SHA-256 and a short prefix.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Role;
use crate::db::schema::api_keys;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub role: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: &'a str,
    pub role: &'a str,
    pub key_hash: &'a str,
    pub key_prefix: &'a str,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all, fields(organization.id = %k.organization_id))]
pub async fn insert(conn: &mut Conn, k: &NewApiKey<'_>) -> Result<ApiKey, DbError> {
    Ok(diesel::insert_into(api_keys::table)
        .values(k)
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await?)
}

/// The usable key with this hash: not revoked, not expired. Records the use (at most once a
/// minute, to keep writes down).
#[tracing::instrument(skip_all)]
pub async fn find_live(conn: &mut Conn, key_hash: &str) -> Result<Option<ApiKey>, DbError> {
    let now = Utc::now();
    let found: Option<ApiKey> = api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        )
        .select(ApiKey::as_select())
        .first(conn)
        .await
        .optional()?;
    if let Some(k) = &found {
        if k.last_used_at
            .is_none_or(|t| now - t > chrono::Duration::minutes(1))
        {
            diesel::update(api_keys::table.find(k.id))
                .set(api_keys::last_used_at.eq(now))
                .execute(conn)
                .await?;
        }
    }
    Ok(found)
}

/// The organisation's keys that are not revoked, newest first.
#[tracing::instrument(skip(conn))]
pub async fn list(conn: &mut Conn, organization_id: Uuid) -> Result<Vec<ApiKey>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::organization_id.eq(organization_id))
        .filter(api_keys::revoked_at.is_null())
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .select(ApiKey::as_select())
        .load(conn)
        .await?)
}

/// Revokes a key of this organisation. False when there is no such live key in it.
#[tracing::instrument(skip(conn))]
pub async fn revoke(conn: &mut Conn, organization_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    Ok(diesel::update(api_keys::table.find(id))
        .filter(api_keys::organization_id.eq(organization_id))
        .filter(api_keys::revoked_at.is_null())
        .set(api_keys::revoked_at.eq(Utc::now()))
        .execute(conn)
        .await?
        == 1)
}
