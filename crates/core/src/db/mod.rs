//! PostgreSQL: the connection pool, the embedded migrations, the generated schema, and one query
//! module per table group. Every query takes a connection (so callers choose transactions) and
//! every organisation-owned row is read and written scoped by `organization_id`.

pub mod accounts;
pub mod audit;
pub mod integrations;
pub mod oauth_states;
pub mod rotation;
pub mod scheduler;
pub mod schema;
pub mod shopify;
pub mod stripe;
pub mod sync_runs;
pub mod webhook_events;

use std::time::Duration;

use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;

use crate::settings::DatabaseSettings;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

pub type Pool = DeadPool<AsyncPgConnection>;
pub type PooledConn = Object<AsyncPgConnection>;
pub use diesel_async::AsyncPgConnection as Conn;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the database is down or saturated.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migration(String),
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::NotFound))
    }
}

/// Builds the pool. Connections are opened lazily, so a process starts even while the database
/// is down and `/readyz` says so.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(
        settings.url.expose_secret().to_owned(),
    );
    let timeout = Duration::from_millis(settings.acquire_timeout_ms);
    DeadPool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Takes a connection from the pool.
pub async fn conn(pool: &Pool) -> Result<PooledConn, DbError> {
    pool.get()
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Runs every pending migration. Diesel's harness blocks, so it runs on a blocking thread;
/// that keeps it safe on any runtime flavour.
pub async fn run_migrations(pool: &Pool) -> Result<usize, DbError> {
    let conn = conn(pool).await?;
    tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|applied| applied.len())
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}

/// Creates the database named in `url` if it does not exist, by connecting to the `postgres`
/// maintenance database of the same server. Used by `gateway migrate` and the test harness.
pub async fn create_database_if_missing(url: &str) -> Result<bool, DbError> {
    use diesel::prelude::*;
    use diesel_async::{AsyncConnection, RunQueryDsl};

    let (server, name) = split_database_url(url)?;
    let mut admin = AsyncPgConnection::establish(&format!("{server}/postgres"))
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut admin)
            .await?;
    if found.exists {
        return Ok(false);
    }
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await?;
    Ok(true)
}

/// Splits `postgres://user@host:port/name?opts` into the server part and the database name.
/// The name must be a plain identifier: it is interpolated into DDL.
pub fn split_database_url(url: &str) -> Result<(String, String), DbError> {
    let without_query = url.split('?').next().unwrap_or(url);
    let (server, name) = without_query
        .rsplit_once('/')
        .filter(|(server, _)| server.contains("://"))
        .ok_or_else(|| DbError::Migration("DATABASE_URL has no database name".into()))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(DbError::Migration(format!(
            "database name `{name}` must be letters, digits, '_' or '-'"
        )));
    }
    Ok((server.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_database_urls() {
        let (s, n) = split_database_url("postgres://postgres@127.0.0.1:5432/bizinsights").unwrap();
        assert_eq!(s, "postgres://postgres@127.0.0.1:5432");
        assert_eq!(n, "bizinsights");
        assert!(split_database_url("postgres://h/a;drop").is_err());
        assert!(split_database_url("nonsense").is_err());
    }
}
