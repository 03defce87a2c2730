//! Login sessions. The bearer token is never stored: rows hold its SHA-256.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::schema::sessions;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[tracing::instrument(skip_all, fields(user.id = %s.user_id))]
pub async fn insert(conn: &mut Conn, s: &NewSession<'_>) -> Result<(), DbError> {
    diesel::insert_into(sessions::table)
        .values(s)
        .execute(conn)
        .await?;
    Ok(())
}

/// The live session for a token hash: not revoked, not past its absolute expiry, and used within
/// the idle timeout. Touches `last_seen_at` at most once a minute to keep writes down.
#[tracing::instrument(skip_all)]
pub async fn find_live(
    conn: &mut Conn,
    token_hash: &str,
    idle_timeout: Duration,
) -> Result<Option<Session>, DbError> {
    let now = Utc::now();
    let found: Option<Session> = sessions::table
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_seen_at.gt(now - idle_timeout))
        .select(Session::as_select())
        .first(conn)
        .await
        .optional()?;
    if let Some(s) = &found {
        if now - s.last_seen_at > Duration::minutes(1) {
            diesel::update(sessions::table.find(s.id))
                .set(sessions::last_seen_at.eq(now))
                .execute(conn)
                .await?;
        }
    }
    Ok(found)
}

#[tracing::instrument(skip(conn))]
pub async fn revoke(conn: &mut Conn, id: Uuid) -> Result<(), DbError> {
    diesel::update(sessions::table.find(id))
        .filter(sessions::revoked_at.is_null())
        .set(sessions::revoked_at.eq(Utc::now()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every live session of the user (logout everywhere, password change).
#[tracing::instrument(skip(conn))]
pub async fn revoke_all_for_user(conn: &mut Conn, user_id: Uuid) -> Result<usize, DbError> {
    Ok(diesel::update(sessions::table)
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .set(sessions::revoked_at.eq(Utc::now()))
        .execute(conn)
        .await?)
}
