//! The ActionKit budget across replicas: a semaphore in Redis whose leases expire.
//!
//! A sorted set holds one member per request in flight, scored by the time its lease
//! expires (Redis' clock). Acquiring is one script: drop expired leases, and add one
//! if fewer than `limit` remain. A replica that dies or hangs holds its leases until
//! they expire (the request timeout and a margin), never longer. Releasing removes the
//! member. Waiters poll with a short, growing, jittered pause.

use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

use super::{Failure, Redis};
use crate::actionkit::{BudgetSlot, GlobalBudget};

const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
";

/// `actionkit.max_in_flight` requests in flight across every replica sharing Redis.
pub struct RedisBudget {
    redis: Redis,
    key: String,
    limit: usize,
    lease: Duration,
    script: redis::Script,
}

impl RedisBudget {
    /// A budget of `limit` slots whose leases expire after `lease` (longer than one
    /// request may take).
    pub fn new(redis: Redis, limit: usize, lease: Duration) -> RedisBudget {
        RedisBudget {
            key: redis.key("budget"),
            redis,
            limit: limit.max(1),
            lease,
            script: redis::Script::new(ACQUIRE),
        }
    }

    async fn try_acquire(&self, id: &str) -> Result<bool, Failure> {
        let lease = self.lease.as_millis() as u64;
        let mut invocation = self.script.key(&self.key);
        invocation.arg((self.limit, lease, id));
        self.redis
            .invoke::<i64>("budget_acquire", &invocation)
            .await
            .map(|n| n == 1)
    }
}

/// A held lease; removed from Redis when dropped (in the background).
struct Lease {
    redis: Redis,
    key: String,
    id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (redis, key, id) = (
            self.redis.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.id),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // Should this fail, the lease expires by itself.
                let _ = redis
                    .run("budget_release", |mut c| async move {
                        redis::cmd("ZREM")
                            .arg(key)
                            .arg(id)
                            .query_async::<i64>(&mut c)
                            .await
                    })
                    .await;
            });
        }
    }
}

#[async_trait::async_trait]
impl GlobalBudget for RedisBudget {
    async fn acquire(&self, deadline: Instant) -> BudgetSlot {
        let id = crate::outbox::new_id();
        let mut pause = Duration::from_millis(2);
        let started = Instant::now();
        loop {
            match self.try_acquire(&id).await {
                Ok(true) => {
                    metrics::histogram!("gateway_redis_budget_wait_seconds")
                        .record(started.elapsed().as_secs_f64());
                    return BudgetSlot::Held(Box::new(Lease {
                        redis: self.redis.clone(),
                        key: self.key.clone(),
                        id,
                    }));
                }
                Ok(false) => {}
                // Unreachable or broken: each replica keeps to its own cap meanwhile.
                Err(_) => return BudgetSlot::Unavailable,
            }
            let jitter = rand::thread_rng().gen_range(0..=pause.as_millis() as u64 / 2);
            let wait = pause + Duration::from_millis(jitter);
            if Instant::now() + wait >= deadline {
                return BudgetSlot::TimedOut;
            }
            tokio::time::sleep(wait).await;
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }
}
