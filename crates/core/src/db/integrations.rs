//! Connected provider accounts. Credentials are one JSON object inside the crypto envelope with
//! the integration's id as associated data; disconnecting deletes them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::db::schema::integrations;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = integrations)]
pub struct Integration {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider: String,
    pub status: String,
    pub display_name: String,
    pub external_account_id: Option<String>,
    /// The sealed credentials; never leaves the process that opens them.
    pub credentials: Option<String>,
    pub settings: Value,
    /// Where incremental syncs continue from.
    pub sync_state: Value,
    pub sync_interval_seconds: i32,
    pub next_sync_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The associated data that binds sealed credentials to their row.
pub fn credentials_context(id: Uuid) -> String {
    format!("integrations.credentials:{id}")
}

#[derive(Debug, Insertable)]
#[diesel(table_name = integrations)]
pub struct NewIntegration<'a> {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider: &'a str,
    pub display_name: &'a str,
    pub external_account_id: Option<&'a str>,
    pub credentials: Option<&'a str>,
    pub settings: &'a Value,
    pub sync_interval_seconds: i32,
    pub next_sync_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
}

#[tracing::instrument(skip_all, fields(organization.id = %new.organization_id, provider = new.provider))]
pub async fn insert(conn: &mut Conn, new: &NewIntegration<'_>) -> Result<Integration, DbError> {
    Ok(diesel::insert_into(integrations::table)
        .values(new)
        .returning(Integration::as_returning())
        .get_result(conn)
        .await?)
}

#[tracing::instrument(skip(conn))]
pub async fn find(
    conn: &mut Conn,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<Integration>, DbError> {
    Ok(integrations::table
        .filter(integrations::organization_id.eq(organization_id))
        .filter(integrations::id.eq(id))
        .select(Integration::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Workers act on a job that names only the integration: they load it by id, and every row they
/// write carries the organisation read here.
#[tracing::instrument(skip(conn))]
pub async fn find_for_job(conn: &mut Conn, id: Uuid) -> Result<Option<Integration>, DbError> {
    Ok(integrations::table
        .find(id)
        .select(Integration::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The active integration of `provider` connected to the provider account `account` (Stripe
/// Connect's `acct_…`): how platform webhooks find their integration.
#[tracing::instrument(skip(conn))]
pub async fn find_by_account(
    conn: &mut Conn,
    provider: &str,
    account: &str,
) -> Result<Option<Integration>, DbError> {
    Ok(integrations::table
        .filter(integrations::provider.eq(provider))
        .filter(integrations::external_account_id.eq(account))
        .filter(integrations::status.eq("active"))
        .order(integrations::created_at.desc())
        .select(Integration::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The newest integration of a Shopify shop in any status: the privacy webhooks (`shop/redact`
/// comes 48 hours after `app/uninstalled`) concern disconnected shops too.
pub async fn find_shop(conn: &mut Conn, shop: &str) -> Result<Option<Integration>, DbError> {
    Ok(integrations::table
        .filter(integrations::provider.eq("shopify"))
        .filter(integrations::external_account_id.eq(shop))
        .order(integrations::created_at.desc())
        .select(Integration::as_select())
        .first(conn)
        .await
        .optional()?)
}

#[tracing::instrument(skip(conn))]
pub async fn list(conn: &mut Conn, organization_id: Uuid) -> Result<Vec<Integration>, DbError> {
    Ok(integrations::table
        .filter(integrations::organization_id.eq(organization_id))
        .order((integrations::created_at.desc(), integrations::id.desc()))
        .select(Integration::as_select())
        .load(conn)
        .await?)
}

/// Deletes the credentials and stops the schedule; the synced data stays until the integration
/// is deleted. False when there is no such integration in the organisation.
#[tracing::instrument(skip(conn))]
pub async fn disconnect(conn: &mut Conn, organization_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    Ok(diesel::update(integrations::table.find(id))
        .filter(integrations::organization_id.eq(organization_id))
        .set((
            integrations::status.eq("disconnected"),
            integrations::credentials.eq(None::<String>),
            integrations::next_sync_at.eq(None::<DateTime<Utc>>),
            integrations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?
        == 1)
}

#[tracing::instrument(skip(conn))]
pub async fn mark_synced(conn: &mut Conn, id: Uuid, at: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(integrations::table.find(id))
        .set((
            integrations::last_synced_at.eq(at),
            integrations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records where the next incremental sync starts.
#[tracing::instrument(skip(conn, state))]
pub async fn set_sync_state(conn: &mut Conn, id: Uuid, state: &Value) -> Result<(), DbError> {
    diesel::update(integrations::table.find(id))
        .set((
            integrations::sync_state.eq(state),
            integrations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// An integration whose scheduled sync is due.
#[derive(Debug, Clone, QueryableByName)]
pub struct Due {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub organization_id: Uuid,
    /// The `next_sync_at` that was due: identifies the tick that was claimed.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub slot: DateTime<Utc>,
}

/// Claims up to `limit` active integrations whose next sync is due and moves their next sync one
/// interval on, in one statement. Rows locked by another replica are skipped, so with several
/// schedulers running each due integration is claimed by exactly one of them.
#[tracing::instrument(skip(conn))]
pub async fn claim_due(conn: &mut Conn, limit: i64) -> Result<Vec<Due>, DbError> {
    Ok(diesel::sql_query(
        "WITH due AS (
                SELECT id, next_sync_at AS slot FROM integrations
                 WHERE status = 'active' AND credentials IS NOT NULL AND next_sync_at <= now()
                 ORDER BY next_sync_at
                 LIMIT $1
                   FOR UPDATE SKIP LOCKED)
         UPDATE integrations i
            SET next_sync_at = now() + make_interval(secs => i.sync_interval_seconds),
                updated_at = now()
           FROM due
          WHERE i.id = due.id
      RETURNING i.id, i.organization_id, due.slot",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Organisations with at least one active integration: the ones alert evaluation looks at.
#[tracing::instrument(skip(conn))]
pub async fn organizations_with_active(conn: &mut Conn) -> Result<Vec<Uuid>, DbError> {
    Ok(integrations::table
        .filter(integrations::status.eq("active"))
        .select(integrations::organization_id)
        .distinct()
        .load(conn)
        .await?)
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("the integration has no stored credentials")]
    Missing,
    #[error("the stored credentials cannot be read: {0}")]
    Unreadable(#[from] crate::crypto::EncryptionError),
    #[error("the stored credentials are not a JSON object")]
    NotJson,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The integration's credentials object, decrypted. A value stored in plain text by an earlier
/// version, or sealed under a key id no longer current, is sealed again under the current key
/// on this first use (only if the row still holds what was read, so a concurrent change wins).
pub async fn open_credentials(
    conn: &mut Conn,
    keys: &crate::crypto::KeyRing,
    integration: &Integration,
) -> Result<Value, CredentialsError> {
    use secrecy::ExposeSecret;
    let stored = integration
        .credentials
        .as_deref()
        .ok_or(CredentialsError::Missing)?;
    let context = credentials_context(integration.id);
    let opened = keys.decrypt(stored, &context)?;
    let plain = opened.secret().expose_secret();
    let value: Value = serde_json::from_str(plain).map_err(|_| CredentialsError::NotJson)?;
    if !value.is_object() {
        return Err(CredentialsError::NotJson);
    }
    if opened.needs_reencryption() {
        let sealed = keys.encrypt(plain, &context)?;
        let n = diesel::update(integrations::table.find(integration.id))
            .filter(integrations::credentials.eq(stored))
            .set(integrations::credentials.eq(&sealed))
            .execute(conn)
            .await
            .map_err(DbError::from)?;
        if n == 1 {
            tracing::info!(integration.id = %integration.id, "credentials sealed under the current key");
        }
    }
    Ok(value)
}
