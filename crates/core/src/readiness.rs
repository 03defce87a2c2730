//! The dependency check behind every binary's `/readyz`.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::{cache, db};

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub database: &'static str,
    pub redis: &'static str,
}

impl Readiness {
    pub fn ok(&self) -> bool {
        self.database == "ok" && self.redis == "ok"
    }
}

/// Checks PostgreSQL (`SELECT 1` through the pool) and Redis (`PING`), each with `timeout`.
pub async fn check(pool: &db::Pool, redis: &redis::Client, timeout: Duration) -> Readiness {
    let database = async {
        let mut conn = db::conn(pool).await.ok()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.ok()
    };
    let (database, redis) = tokio::join!(
        tokio::time::timeout(timeout, database),
        cache::ping(redis, timeout)
    );
    Readiness {
        database: if matches!(database, Ok(Some(_))) {
            "ok"
        } else {
            "unavailable"
        },
        redis: if redis.is_ok() { "ok" } else { "unavailable" },
    }
}
