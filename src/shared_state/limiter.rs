//! Rate limits across replicas: GCRA (the generic cell rate algorithm) in one script,
//! the same shape as the local token bucket: `per_minute` sustained, `burst` at once.
//! Each caller's state is one key (its theoretical arrival time, in ms of Redis'
//! clock) that expires when the bucket would be full again.

use std::sync::Arc;
use std::time::Duration;

use super::Redis;
use crate::http::auth::GlobalRateLimit;

/// Returns 0 when admitted, else the milliseconds until the next request would be.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - capacity
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
return 0
";

/// A caller's limit held in Redis, shared by every replica.
pub struct RedisRateLimit {
    redis: Redis,
    /// Milliseconds between two requests at the sustained rate.
    interval_ms: f64,
    burst: u32,
    script: redis::Script,
}

impl RedisRateLimit {
    pub fn new(redis: Redis, per_minute: u32, burst: u32) -> Arc<RedisRateLimit> {
        Arc::new(RedisRateLimit {
            redis,
            interval_ms: 60_000.0 / f64::from(per_minute.max(1)),
            burst: burst.max(1),
            script: redis::Script::new(GCRA),
        })
    }
}

#[async_trait::async_trait]
impl GlobalRateLimit for RedisRateLimit {
    async fn check(&self, caller: &str) -> Option<Result<(), Duration>> {
        let mut invocation = self.script.key(self.redis.key(&format!("rl:{caller}")));
        invocation.arg((self.interval_ms, self.burst));
        let wait: i64 = self.redis.invoke("rate_limit", &invocation).await.ok()?;
        Some(if wait <= 0 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait as u64))
        })
    }
}
