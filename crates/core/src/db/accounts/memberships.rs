use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::organizations::Organization;
use super::Role;
use crate::db::schema::{memberships, organizations, users};
use crate::db::{Conn, DbError};

/// A member as listed to the team.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

fn role(s: &str) -> Role {
    // The column's CHECK constraint admits only the four names.
    s.parse().unwrap_or(Role::Viewer)
}

#[tracing::instrument(skip(conn))]
pub async fn insert(
    conn: &mut Conn,
    organization_id: Uuid,
    user_id: Uuid,
    r: Role,
) -> Result<(), DbError> {
    diesel::insert_into(memberships::table)
        .values((
            memberships::organization_id.eq(organization_id),
            memberships::user_id.eq(user_id),
            memberships::role.eq(r.as_str()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The user's role in the organisation, or `None` when they are not a member.
#[tracing::instrument(skip(conn))]
pub async fn role_of(
    conn: &mut Conn,
    organization_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>, DbError> {
    let found: Option<String> = memberships::table
        .find((organization_id, user_id))
        .select(memberships::role)
        .first(conn)
        .await
        .optional()?;
    Ok(found.as_deref().map(role))
}

/// The user's role in the organisation, and whether the organisation requires MFA that the
/// user has not turned on — one query, as every organisation-scoped request asks both.
#[tracing::instrument(skip(conn))]
pub async fn standing(
    conn: &mut Conn,
    organization_id: Uuid,
    user_id: Uuid,
) -> Result<Option<(Role, bool)>, DbError> {
    let found: Option<(String, bool, bool)> = memberships::table
        .inner_join(organizations::table)
        .inner_join(users::table)
        .filter(memberships::organization_id.eq(organization_id))
        .filter(memberships::user_id.eq(user_id))
        .select((
            memberships::role,
            organizations::require_mfa,
            users::totp_enabled_at.is_null(),
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(found.map(|(r, required, off)| (role(&r), required && off)))
}

/// The organisations the user belongs to, with their role, oldest membership first.
#[tracing::instrument(skip(conn))]
pub async fn organizations_of(
    conn: &mut Conn,
    user_id: Uuid,
) -> Result<Vec<(Organization, Role)>, DbError> {
    let rows: Vec<(Organization, String)> = memberships::table
        .inner_join(organizations::table)
        .filter(memberships::user_id.eq(user_id))
        .order((memberships::created_at.asc(), organizations::id.asc()))
        .select((Organization::as_select(), memberships::role))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|(o, r)| (o, role(&r))).collect())
}

#[tracing::instrument(skip(conn))]
pub async fn list(conn: &mut Conn, organization_id: Uuid) -> Result<Vec<Member>, DbError> {
    let rows: Vec<(Uuid, String, String, String, DateTime<Utc>)> = memberships::table
        .inner_join(users::table)
        .filter(memberships::organization_id.eq(organization_id))
        .order((memberships::created_at.asc(), users::email.asc()))
        .select((
            users::id,
            users::email,
            users::name,
            memberships::role,
            memberships::created_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, email, name, r, joined_at)| Member {
            user_id,
            email,
            name,
            role: role(&r),
            joined_at,
        })
        .collect())
}

#[tracing::instrument(skip(conn))]
pub async fn find(
    conn: &mut Conn,
    organization_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Member>, DbError> {
    Ok(list(conn, organization_id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id))
}

/// Locks the organisation's owner memberships and counts them, so that two concurrent demotions
/// cannot both see "another owner remains". Call inside a transaction.
#[tracing::instrument(skip(conn))]
pub async fn count_owners_for_update(
    conn: &mut Conn,
    organization_id: Uuid,
) -> Result<i64, DbError> {
    let owners: Vec<Uuid> = memberships::table
        .filter(memberships::organization_id.eq(organization_id))
        .filter(memberships::role.eq(Role::Owner.as_str()))
        .select(memberships::user_id)
        .for_update()
        .load(conn)
        .await?;
    Ok(owners.len() as i64)
}

#[tracing::instrument(skip(conn))]
pub async fn set_role(
    conn: &mut Conn,
    organization_id: Uuid,
    user_id: Uuid,
    r: Role,
) -> Result<bool, DbError> {
    Ok(
        diesel::update(memberships::table.find((organization_id, user_id)))
            .set(memberships::role.eq(r.as_str()))
            .execute(conn)
            .await?
            == 1,
    )
}

#[tracing::instrument(skip(conn))]
pub async fn delete(
    conn: &mut Conn,
    organization_id: Uuid,
    user_id: Uuid,
) -> Result<bool, DbError> {
    Ok(
        diesel::delete(memberships::table.find((organization_id, user_id)))
            .execute(conn)
            .await?
            == 1,
    )
}
