//! Redis connections. A `redis::Client` connects lazily, so a process starts while Redis is down
//! and `/readyz` reports it.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::settings::RedisSettings;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis URL is invalid: {0}")]
    Url(String),
    #[error("redis unavailable: {0}")]
    Unavailable(String),
}

pub fn client(settings: &RedisSettings) -> Result<redis::Client, CacheError> {
    redis::Client::open(settings.url.expose_secret()).map_err(|e| CacheError::Url(e.to_string()))
}

/// PING with a deadline: the readiness check.
pub async fn ping(client: &redis::Client, timeout: Duration) -> Result<(), CacheError> {
    let check = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(CacheError::Unavailable(e.to_string())),
        Err(_) => Err(CacheError::Unavailable("timed out".into())),
    }
}
