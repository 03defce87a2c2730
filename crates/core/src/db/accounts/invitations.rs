//! Invitations to join an organisation. The token is shown once; rows hold its SHA-256.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Role;
use crate::db::schema::invitations;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invitations)]
pub struct Invitation {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub role: String,
    pub token_hash: String,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<Uuid>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = invitations)]
pub struct NewInvitation<'a> {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: &'a str,
    pub role: &'a str,
    pub token_hash: &'a str,
    pub invited_by: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

/// Inserts an invitation; a unique violation means an open one for that address exists.
#[tracing::instrument(skip_all, fields(organization.id = %i.organization_id))]
pub async fn insert(conn: &mut Conn, i: &NewInvitation<'_>) -> Result<Invitation, DbError> {
    Ok(diesel::insert_into(invitations::table)
        .values(i)
        .returning(Invitation::as_returning())
        .get_result(conn)
        .await?)
}

/// Open invitations (neither accepted nor revoked), newest first. Expired ones are listed too,
/// so an admin sees why someone could not join.
#[tracing::instrument(skip(conn))]
pub async fn list_open(conn: &mut Conn, organization_id: Uuid) -> Result<Vec<Invitation>, DbError> {
    Ok(invitations::table
        .filter(invitations::organization_id.eq(organization_id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .order((invitations::created_at.desc(), invitations::id.desc()))
        .select(Invitation::as_select())
        .load(conn)
        .await?)
}

/// Locks the open invitation with this token hash, for accepting it in a transaction.
#[tracing::instrument(skip_all)]
pub async fn find_open_by_token_for_update(
    conn: &mut Conn,
    token_hash: &str,
) -> Result<Option<Invitation>, DbError> {
    Ok(invitations::table
        .filter(invitations::token_hash.eq(token_hash))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .select(Invitation::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

#[tracing::instrument(skip(conn))]
pub async fn mark_accepted(conn: &mut Conn, id: Uuid, user_id: Uuid) -> Result<(), DbError> {
    diesel::update(invitations::table.find(id))
        .set((
            invitations::accepted_at.eq(Utc::now()),
            invitations::accepted_by.eq(user_id),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip(conn))]
pub async fn find_open(
    conn: &mut Conn,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<Invitation>, DbError> {
    Ok(invitations::table
        .find(id)
        .filter(invitations::organization_id.eq(organization_id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .select(Invitation::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Revokes an open invitation of this organisation. False when there is none.
#[tracing::instrument(skip(conn))]
pub async fn revoke(conn: &mut Conn, organization_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    Ok(diesel::update(invitations::table.find(id))
        .filter(invitations::organization_id.eq(organization_id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .set(invitations::revoked_at.eq(Utc::now()))
        .execute(conn)
        .await?
        == 1)
}
