//! The append-only audit log. Rows are only inserted and read; a trigger refuses updates and
//! deletes at the database.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use uuid::Uuid;

use crate::db::schema::audit_log;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub organization_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAuditEntry {
    pub organization_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

#[tracing::instrument(skip_all, fields(audit.action = %e.action))]
pub async fn insert(conn: &mut Conn, e: &NewAuditEntry) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values(e)
        .execute(conn)
        .await?;
    Ok(())
}

/// A page of the organisation's log, newest first, strictly older than `before_id` when given:
/// its own entries, and the account-level ones (logins, MFA, password changes) of its current
/// members, so an admin sees how their team signs in.
#[tracing::instrument(skip(conn))]
pub async fn list(
    conn: &mut Conn,
    organization_id: Uuid,
    action: Option<&str>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, DbError> {
    use crate::db::schema::memberships;
    let members = memberships::table
        .filter(memberships::organization_id.eq(organization_id))
        .select(memberships::user_id);
    let mut q = audit_log::table
        .filter(
            audit_log::organization_id
                .eq(organization_id)
                .or(audit_log::organization_id
                    .is_null()
                    .and(audit_log::actor_user_id.eq_any(members.nullable()))),
        )
        .into_boxed();
    if let Some(a) = action {
        q = q.filter(audit_log::action.eq(a.to_owned()));
    }
    if let Some(b) = before_id {
        q = q.filter(audit_log::id.lt(b));
    }
    Ok(q.order(audit_log::id.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
        .await?)
}
