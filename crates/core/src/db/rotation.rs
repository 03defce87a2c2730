//! Key rotation: re-seals every stored secret under the current key id, in batches, while the
//! system keeps running. Rows already under the current key are skipped, so a run that stops
//! half-way is resumed by running it again; a row changed between read and write (a reconnect,
//! say) is left to that writer, which sealed it under the current key anyway. Values stored in
//! plain text by an older version are sealed on the way.

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::crypto::KeyRing;
use crate::db::audit::{self, NewAuditEntry};
use crate::db::{Conn, DbError};

/// Every column that holds a sealed secret, and how its context is named: `{table}.{column}:{id}`.
pub const SEALED_COLUMNS: [(&str, &str); 2] =
    [("integrations", "credentials"), ("users", "totp_secret")];

/// What a rotation did, per column.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Rotated {
    pub table: &'static str,
    pub column: &'static str,
    /// Re-sealed under the current key.
    pub rotated: u64,
    /// Could not be opened with any loaded key (logged by id; left as they are).
    pub failed: u64,
}

#[derive(diesel::QueryableByName)]
struct Sealed {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    value: String,
}

/// Re-seals every secret not yet under `keys`' current key, `batch` rows at a time.
pub async fn rotate_all(
    conn: &mut Conn,
    keys: &KeyRing,
    batch: i64,
) -> Result<Vec<Rotated>, DbError> {
    let current = format!("v1:{}:", keys.current_key_id());
    let mut report = Vec::new();
    for (table, column) in SEALED_COLUMNS {
        let mut done = Rotated {
            table,
            column,
            ..Default::default()
        };
        let mut after = Uuid::nil();
        loop {
            // Identifiers are constants above, never input.
            let rows: Vec<Sealed> = diesel::sql_query(format!(
                "SELECT id, {column} AS value FROM {table}
                  WHERE {column} IS NOT NULL AND left({column}, length($1)) <> $1 AND id > $2
                  ORDER BY id LIMIT $3"
            ))
            .bind::<Text, _>(&current)
            .bind::<SqlUuid, _>(after)
            .bind::<diesel::sql_types::BigInt, _>(batch)
            .load(conn)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for row in rows {
                let context = format!("{table}.{column}:{}", row.id);
                let resealed = keys
                    .decrypt(&row.value, &context)
                    .and_then(|plain| keys.encrypt(plain.secret().expose_secret(), &context));
                let Ok(resealed) = resealed else {
                    tracing::error!(table, column, id = %row.id, "a stored secret opens with no loaded key; left as it is");
                    done.failed += 1;
                    continue;
                };
                let n = diesel::sql_query(format!(
                    "UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3"
                ))
                .bind::<Text, _>(&resealed)
                .bind::<SqlUuid, _>(row.id)
                .bind::<Text, _>(&row.value)
                .execute(conn)
                .await?;
                done.rotated += n as u64;
            }
        }
        report.push(done);
    }
    audit::insert(
        conn,
        &NewAuditEntry {
            organization_id: None,
            actor_user_id: None,
            actor_api_key_id: None,
            action: "encryption.rotate".into(),
            target_type: Some("key".into()),
            target_id: Some(keys.current_key_id().to_owned()),
            ip: None,
            user_agent: None,
            details: serde_json::to_value(&report).unwrap_or_default(),
        },
    )
    .await?;
    Ok(report)
}

/// How many stored secrets are not under the current key (0 when a rotation is complete).
pub async fn remaining(conn: &mut Conn, keys: &KeyRing) -> Result<i64, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let current = format!("v1:{}:", keys.current_key_id());
    let mut total = 0;
    for (table, column) in SEALED_COLUMNS {
        let c: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {table}
              WHERE {column} IS NOT NULL AND left({column}, length($1)) <> $1"
        ))
        .bind::<Text, _>(&current)
        .get_result(conn)
        .await?;
        total += c.n;
    }
    Ok(total)
}
