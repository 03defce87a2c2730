//! The producer side: pushing jobs into their apalis queues over Redis.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{Config, RedisStorage};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use super::{queue_name, wake_channel, Job};
use crate::settings::{JobSettings, RedisSettings};

pub type RedisConn = ConnectionManager;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis URL is invalid: {0}")]
    Url(String),
    #[error("the job could not be queued: {0}")]
    Push(String),
}

/// A Redis connection for the queue that survives Redis restarts: it connects lazily (a process
/// starts while Redis is down), reconnects with backoff, and uses a response timeout far above
/// redis-rs' 500 ms default, which under load turns a slow reply into a dead connection
/// (apalis-redis #76).
pub fn redis_connection(settings: &RedisSettings) -> Result<RedisConn, QueueError> {
    let client = redis::Client::open(settings.url.expose_secret())
        .map_err(|e| QueueError::Url(e.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| QueueError::Url(e.to_string()))
}

/// The apalis queue configuration for a job type: its queue name, and the heartbeat that lets a
/// live worker re-queue a dead one's in-flight jobs after `heartbeat × missed_heartbeats`.
pub fn queue_config<J: Job>(redis: &RedisSettings, jobs: &JobSettings) -> Config {
    Config::default()
        .queue(queue_name::<J>(&redis.key_prefix))
        .heartbeat_interval(Duration::from_secs(jobs.heartbeat_seconds))
        .missed_heartbeats(jobs.missed_heartbeats)
}

/// Pushes jobs. Cheap to clone; every clone shares one multiplexed connection.
#[derive(Clone)]
pub struct Producer {
    conn: RedisConn,
    redis: RedisSettings,
    jobs: JobSettings,
}

impl Producer {
    pub fn new(conn: RedisConn, redis: &RedisSettings, jobs: &JobSettings) -> Self {
        Producer {
            conn,
            redis: redis.clone(),
            jobs: jobs.clone(),
        }
    }

    fn storage<J: Job>(&self) -> RedisStorage<J> {
        RedisStorage::new(self.conn.clone()).with_config(queue_config::<J>(&self.redis, &self.jobs))
    }

    /// Queues `job` to run now.
    pub async fn push<J: Job>(&self, job: J) -> Result<(), QueueError> {
        self.push_after(job, Duration::ZERO).await
    }

    /// Queues `job` to run after `delay` (apalis' scheduled set).
    pub async fn push_after<J: Job>(&self, job: J, delay: Duration) -> Result<(), QueueError> {
        let mut storage = self.storage::<J>();
        let result = if delay.is_zero() {
            storage.push(job).await
        } else {
            storage
                .push_task(TaskBuilder::new(job).run_after(delay).build())
                .await
        };
        result.map_err(|e| QueueError::Push(e.to_string()))?;
        if delay.is_zero() {
            // Wake idle consumers now. Best effort: they also look every half second.
            let mut conn = self.conn.clone();
            let channel = wake_channel(&queue_name::<J>(&self.redis.key_prefix));
            let _: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(1)
                .query_async(&mut conn)
                .await;
        }
        Ok(())
    }

    /// Queues several jobs to run now in one round trip, then wakes the consumers once.
    pub async fn push_bulk<J: Job>(&self, jobs: Vec<J>) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut storage = self.storage::<J>();
        storage
            .push_bulk(jobs)
            .await
            .map_err(|e| QueueError::Push(e.to_string()))?;
        let mut conn = self.conn.clone();
        let channel = wake_channel(&queue_name::<J>(&self.redis.key_prefix));
        let _: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(1)
            .query_async(&mut conn)
            .await;
        Ok(())
    }

    /// Forgets finished jobs older than `older_than`. apalis-redis keeps every job's payload,
    /// metadata and id after it ran (about half a kilobyte each) and never deletes them itself;
    /// our record of what ran is PostgreSQL, so workers call this every few minutes.
    pub async fn vacuum<J: Job>(&self, older_than: Duration) -> Result<usize, QueueError> {
        use apalis_core::backend::Vacuum;
        let mut storage = self.storage::<J>();
        let removed = storage
            .vacuum_before(older_than)
            .await
            .map_err(|e| QueueError::Push(e.to_string()))?;
        // The done and dead sets hold bare ids that nothing of ours reads; keep them bounded.
        let queue = queue_name::<J>(&self.redis.key_prefix);
        let mut conn = self.conn.clone();
        for set in ["done", "dead"] {
            let key = format!("{queue}:{set}");
            let size: u64 = redis::cmd("SCARD")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| QueueError::Push(e.to_string()))?;
            if size > 10_000 {
                let _: Result<i64, _> = redis::cmd("UNLINK").arg(&key).query_async(&mut conn).await;
            }
        }
        Ok(removed)
    }

    /// Jobs waiting in a queue: ready now, and scheduled for later. apalis-redis puts every
    /// push into its scheduled set (score: due time in Unix seconds) and promotes due ones to
    /// the active list when a worker fetches, so "ready" counts both the list and the due part
    /// of the set.
    pub async fn depth(&self, job_name: &str) -> Result<(u64, u64), QueueError> {
        let queue = format!("{}:q:{job_name}", self.redis.key_prefix);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut conn = self.conn.clone();
        let (active, due, later): (u64, u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg(format!("{queue}:active"))
            .cmd("ZCOUNT")
            .arg(format!("{queue}:scheduled"))
            .arg("-inf")
            .arg(now)
            .cmd("ZCOUNT")
            .arg(format!("{queue}:scheduled"))
            .arg(format!("({now}"))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(|e| QueueError::Push(e.to_string()))?;
        Ok((active + due, later))
    }
}
