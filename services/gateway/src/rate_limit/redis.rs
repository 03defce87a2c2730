//! The shared backend: each check is one Lua script run atomically in Redis on Redis's own clock
//! (`TIME`), so any number of gateway instances spend one budget per caller and tier. The key
//! holds the bucket's theoretical arrival time (GCRA) and expires when the bucket is full again.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::{Budgets, Decision, Tier, Unavailable};

/// KEYS[1] the bucket; ARGV[1] microseconds per request (at least 1), ARGV[2] the burst (the
/// tier's limit). Times are microseconds on Redis's clock. Returns {allowed, remaining,
/// retry_after_us, reset_us}.
const GCRA: &str = r#"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
local remaining = math.floor((now - allow_at) / interval)
return {1, remaining, 0, new_tat - now}
"#;

/// How long one check may take before the limiter counts Redis as unavailable.
const TIMEOUT: Duration = Duration::from_secs(1);

pub struct RedisLimiter {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
    prefix: String,
    budgets: Budgets,
}

impl RedisLimiter {
    pub fn new(client: redis::Client, prefix: &str, budgets: Budgets) -> Self {
        RedisLimiter {
            client,
            connection: OnceCell::new(),
            script: redis::Script::new(GCRA),
            prefix: prefix.to_owned(),
            budgets,
        }
    }

    pub async fn check(&self, tier: Tier, key: &str) -> Result<Decision, Unavailable> {
        let limit = self.budgets.of(tier);
        let interval_us = (60_000_000 / u64::from(limit)).max(1);
        let attempt = async {
            let mut conn = self
                .connection
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
                .await?
                .clone();
            self.script
                .key(format!("{}:rl:{}:{key}", self.prefix, tier.name()))
                .arg(interval_us)
                .arg(limit)
                .invoke_async::<(i64, i64, i64, i64)>(&mut conn)
                .await
        };
        let (allowed, remaining, retry_us, reset_us) = tokio::time::timeout(TIMEOUT, attempt)
            .await
            .map_err(|_| Unavailable("timed out".into()))?
            .map_err(|e| Unavailable(e.to_string()))?;
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: remaining.clamp(0, i64::from(limit)) as u32,
            reset: if allowed == 1 {
                us(reset_us)
            } else {
                us(retry_us) + Duration::from_micros(interval_us * u64::from(limit - 1))
            },
            retry_after: us(retry_us),
        })
    }
}
