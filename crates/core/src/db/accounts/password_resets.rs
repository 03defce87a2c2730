//! Password reset tokens, stored as hashes, single use, expiring.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{Conn, DbError};

pub async fn insert(
    conn: &mut Conn,
    user_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO password_resets (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind::<SqlUuid, _>(Uuid::new_v4())
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(token_hash)
    .bind::<Timestamptz, _>(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses the token: its user, when it exists, has not expired and was not used before. Any
/// other reset link of the user stops working too.
pub async fn consume(conn: &mut Conn, token_hash: &str) -> Result<Option<Uuid>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        user_id: Uuid,
    }
    let row: Option<Row> = diesel::sql_query(
        "UPDATE password_resets SET used_at = now()
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
          RETURNING user_id",
    )
    .bind::<Text, _>(token_hash)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(r) = &row {
        diesel::sql_query(
            "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind::<SqlUuid, _>(r.user_id)
        .execute(conn)
        .await?;
    }
    Ok(row.map(|r| r.user_id))
}
