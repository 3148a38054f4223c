//! The shared cache level over Redis: `MGET` for reads, `SET … PX` for writes, under
//! `<prefix>:<namespace>:<key>`. Unreachable Redis reads as a miss and stores nothing.

use std::time::Duration;

use super::Redis;
use crate::graphql::shared_cache::SharedCache;

/// A [`SharedCache`] in Redis.
pub struct RedisCache {
    redis: Redis,
}

impl RedisCache {
    pub fn new(redis: Redis) -> RedisCache {
        RedisCache { redis }
    }
}

#[async_trait::async_trait]
impl SharedCache for RedisCache {
    async fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let names: Vec<String> = keys.iter().map(|k| self.redis.key(k)).collect();
        let found = self
            .redis
            .run("cache_get", |mut c| async move {
                redis::cmd("MGET")
                    .arg(&names)
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut c)
                    .await
            })
            .await;
        match found {
            Ok(values) if values.len() == keys.len() => values,
            _ => vec![None; keys.len()],
        }
    }

    async fn put_many(&self, entries: Vec<(String, Vec<u8>)>, ttl: Duration) {
        if entries.is_empty() || ttl.is_zero() {
            return;
        }
        let ttl_ms = ttl.as_millis().min(u64::MAX as u128) as u64;
        let entries: Vec<(String, Vec<u8>)> = entries
            .into_iter()
            .map(|(k, v)| (self.redis.key(&k), v))
            .collect();
        let _ = self
            .redis
            .run("cache_put", |mut c| async move {
                let mut pipe = redis::pipe();
                for (k, v) in &entries {
                    pipe.cmd("SET").arg(k).arg(v).arg("PX").arg(ttl_ms).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await;
    }
}
