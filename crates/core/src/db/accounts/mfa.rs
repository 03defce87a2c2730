//! A user's TOTP second factor and recovery codes. The secret arrives and leaves sealed (the
//! caller seals it with the credential envelope); recovery codes arrive hashed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{Conn, DbError};

#[derive(Debug, Clone, QueryableByName)]
pub struct MfaState {
    /// Sealed; `None` when never set up (or disabled).
    #[diesel(sql_type = Nullable<Text>)]
    pub totp_secret: Option<String>,
    /// `None`: not (yet) on.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub totp_enabled_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    pub totp_last_step: i64,
}

impl MfaState {
    pub fn enabled(&self) -> bool {
        self.totp_enabled_at.is_some() && self.totp_secret.is_some()
    }
}

pub async fn state(conn: &mut Conn, user_id: Uuid) -> Result<Option<MfaState>, DbError> {
    Ok(diesel::sql_query(
        "SELECT totp_secret, totp_enabled_at, totp_last_step FROM users WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .get_result(conn)
    .await
    .optional()?)
}

/// Stores a new secret awaiting confirmation. False when MFA is already on.
pub async fn set_pending_secret(
    conn: &mut Conn,
    user_id: Uuid,
    sealed: &str,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE users SET totp_secret = $2, updated_at = now()
          WHERE id = $1 AND totp_enabled_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<Text, _>(sealed)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Turns MFA on (its first code's `step` accepted) and stores the recovery codes' hashes.
/// False when it was already on, or that step was already used.
pub async fn enable(
    conn: &mut Conn,
    user_id: Uuid,
    step: i64,
    code_hashes: &[String],
) -> Result<bool, DbError> {
    let code_hashes = code_hashes.to_vec();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let n = diesel::sql_query(
            "UPDATE users SET totp_enabled_at = now(), totp_last_step = $2, updated_at = now()
              WHERE id = $1 AND totp_enabled_at IS NULL AND totp_secret IS NOT NULL
                AND totp_last_step < $2",
        )
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .bind::<BigInt, _>(step)
        .execute(conn)
        .await?;
        if n != 1 {
            return Ok(false);
        }
        diesel::sql_query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .execute(conn)
            .await?;
        let ids: Vec<Uuid> = code_hashes.iter().map(|_| Uuid::new_v4()).collect();
        diesel::sql_query(
            "INSERT INTO mfa_recovery_codes (id, user_id, code_hash)
             SELECT id, $1, hash FROM UNNEST($2::uuid[], $3::text[]) AS t(id, hash)",
        )
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
        .bind::<diesel::sql_types::Array<Text>, _>(code_hashes)
        .execute(conn)
        .await?;
        Ok(true)
    })
    .await
}

/// Accepts a code of time step `step` once: false when that step (or a later one) was used.
pub async fn accept_step(conn: &mut Conn, user_id: Uuid, step: i64) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<BigInt, _>(step)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Spends a recovery code: false when unknown or already used.
pub async fn use_recovery_code(
    conn: &mut Conn,
    user_id: Uuid,
    code_hash: &str,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE mfa_recovery_codes SET used_at = now()
          WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<Text, _>(code_hash)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Recovery codes not yet used.
pub async fn recovery_codes_left(conn: &mut Conn, user_id: Uuid) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let c: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .get_result(conn)
    .await?;
    Ok(c.n)
}

/// Turns MFA off: the secret and the recovery codes go.
pub async fn disable(conn: &mut Conn, user_id: Uuid) -> Result<(), DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        diesel::sql_query(
            "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, updated_at = now()
              WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .execute(conn)
        .await?;
        diesel::sql_query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}
