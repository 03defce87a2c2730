use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use uuid::Uuid;

use crate::db::schema::organizations;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = organizations)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub reporting_currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A [`crate::metrics::mrr::Convention`] as JSON; `{}` is the default.
    pub mrr_convention: serde_json::Value,
    /// Every member must have MFA on to reach this organisation's data.
    pub require_mfa: bool,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = organizations)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub reporting_currency: Option<String>,
    pub mrr_convention: Option<serde_json::Value>,
    pub require_mfa: Option<bool>,
}

#[tracing::instrument(skip(conn))]
pub async fn insert(conn: &mut Conn, id: Uuid, name: &str) -> Result<Organization, DbError> {
    Ok(diesel::insert_into(organizations::table)
        .values((organizations::id.eq(id), organizations::name.eq(name)))
        .returning(Organization::as_returning())
        .get_result(conn)
        .await?)
}

#[tracing::instrument(skip(conn))]
pub async fn find(conn: &mut Conn, id: Uuid) -> Result<Option<Organization>, DbError> {
    Ok(organizations::table
        .find(id)
        .select(Organization::as_select())
        .first(conn)
        .await
        .optional()?)
}

#[tracing::instrument(skip(conn))]
pub async fn update(
    conn: &mut Conn,
    id: Uuid,
    changes: &OrganizationChanges,
) -> Result<Organization, DbError> {
    if changes.name.is_none()
        && changes.timezone.is_none()
        && changes.reporting_currency.is_none()
        && changes.mrr_convention.is_none()
        && changes.require_mfa.is_none()
    {
        return find(conn, id)
            .await?
            .ok_or(DbError::Query(diesel::result::Error::NotFound));
    }
    Ok(diesel::update(organizations::table.find(id))
        .set((changes, organizations::updated_at.eq(diesel::dsl::now)))
        .returning(Organization::as_returning())
        .get_result(conn)
        .await?)
}

/// Deletes the organisation; everything it owns goes with it (foreign keys cascade).
#[tracing::instrument(skip(conn))]
pub async fn delete(conn: &mut Conn, id: Uuid) -> Result<bool, DbError> {
    Ok(diesel::delete(organizations::table.find(id))
        .execute(conn)
        .await?
        == 1)
}
