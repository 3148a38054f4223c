//! Shared state between replicas, through Redis. The only code that knows Redis: its
//! keys, its scripts, its connection. Everything here implements a small trait of a
//! layer below (the ActionKit budget of `actionkit/`, the submission store of
//! `outbox/`, the cache level of `graphql/`, the rate limit of `http/auth/`) and
//! `app.rs` wires it in when `[redis] url` is set; unset, none of it runs.
//!
//! When Redis cannot be reached (at start or later), nothing stops: reads go on with
//! the process's own cache, the budget and the rate limits fall back to each replica's
//! own, new submissions go to the replica's embedded store (and are delivered by it),
//! and `/readyz` and `/metrics` (`gateway_redis_up`) say so. A background task pings
//! Redis every second and the shared state resumes as soon as it answers.
//!
//! Keys, all under `<key_prefix>:` (`akgql:` by default):
//!
//! | key | what |
//! |---|---|
//! | `budget` | sorted set: leases of the ActionKit budget, scored by expiry (ms) |
//! | `rl:<caller>` | GCRA state of a caller's rate limit (its theoretical arrival time) |
//! | `page:<id>` | a cached page (JSON), with the page cache's TTL |
//! | `ob:…` | the submission queue (see `outbox.rs`) |

mod budget;
mod cache;
mod limiter;
mod outbox;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use budget::RedisBudget;
pub use cache::RedisCache;
pub use limiter::RedisRateLimit;
pub use outbox::{FallbackStore, RedisStore};

use crate::config::RedisConfig;

/// A handle to Redis; cheap to clone. Commands fail fast (without trying) while the
/// health check says Redis is down.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    up: AtomicBool,
    prefix: String,
    timeout: Duration,
}

/// Why a Redis command gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Redis was known to be down, or refused the connection: nothing was sent.
    NotSent,
    /// Sent, no answer (timeout, broken connection): the command may have run.
    Unknown,
    /// Redis answered with an error (a script error, a wrong type).
    Refused,
}

impl Redis {
    /// Parses the URL and tries to connect once (within the timeout); a Redis that
    /// does not answer yet is not an error: the background check connects later.
    /// Errors name neither the URL nor its password.
    pub async fn connect(config: &RedisConfig) -> anyhow::Result<Option<Redis>> {
        use secrecy::ExposeSecret as _;
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let client = redis::Client::open(url.expose_secret()).map_err(|_| {
            anyhow::anyhow!(
                "redis.url ({}) is not a Redis URL (redis://[:password@]host:port[/db])",
                crate::config::mask_url_password(url.expose_secret())
            )
        })?;
        let inner = Arc::new(Inner {
            client,
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            prefix: config.key_prefix.trim_end_matches(':').to_owned(),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
        });
        let redis = Redis { inner };
        redis.check().await;
        if redis.is_up() {
            tracing::info!(
                "redis: connected; budget, rate limits, page cache and submissions are shared"
            );
        } else {
            tracing::warn!(
                "redis: unreachable at start; serving with local state until it answers"
            );
        }
        tokio::spawn(health_loop(Arc::downgrade(&redis.inner)));
        Ok(Some(redis))
    }

    /// Whether the last check or command reached Redis.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// `<prefix>:<rest>`.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.inner.prefix)
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn set_up(&self, up: bool) {
        let was = self.inner.up.swap(up, Ordering::AcqRel);
        metrics::gauge!("gateway_redis_up").set(if up { 1.0 } else { 0.0 });
        if was != up {
            if up {
                tracing::info!("redis: reachable again; shared state resumes");
            } else {
                tracing::warn!("redis: unreachable; going on with local state");
            }
        }
    }

    /// Connects if not connected, pings, and records the result.
    async fn check(&self) {
        let conn = self.connection().await;
        let ok = match conn {
            Some(mut c) => matches!(
                tokio::time::timeout(
                    self.inner.timeout,
                    redis::cmd("PING").query_async::<String>(&mut c)
                )
                .await,
                Ok(Ok(_))
            ),
            None => false,
        };
        self.set_up(ok);
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(c) = self.inner.conn.lock().ok()?.clone() {
            return Some(c);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.inner.timeout)
            .set_response_timeout(self.inner.timeout)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let made = tokio::time::timeout(
            self.inner.timeout * 2,
            ConnectionManager::new_with_config(self.inner.client.clone(), config),
        )
        .await;
        match made {
            Ok(Ok(c)) => {
                if let Ok(mut slot) = self.inner.conn.lock() {
                    *slot = Some(c.clone());
                }
                Some(c)
            }
            _ => None,
        }
    }

    /// Runs one command (or script) with the timeout; counts failures by `op`.
    pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Failure>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            metrics::counter!("gateway_redis_errors_total", "op" => op, "kind" => "down")
                .increment(1);
            return Err(Failure::NotSent);
        }
        let Some(conn) = self.connection().await else {
            self.set_up(false);
            return Err(Failure::NotSent);
        };
        let failure = match tokio::time::timeout(self.inner.timeout, f(conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if e.is_connection_refusal() => Failure::NotSent,
            Ok(Err(e)) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                Failure::Unknown
            }
            Ok(Err(e)) => {
                // The kind only (never a URL or a password), for a script bug.
                tracing::warn!(op, error = ?e.kind(), "redis: command refused");
                Failure::Refused
            }
            Err(_) => Failure::Unknown,
        };
        metrics::counter!("gateway_redis_errors_total", "op" => op, "kind" => match failure {
            Failure::NotSent => "not_sent",
            Failure::Unknown => "no_answer",
            Failure::Refused => "refused",
        })
        .increment(1);
        if failure != Failure::Refused {
            self.set_up(false);
        }
        Err(failure)
    }

    /// Runs a script with its keys and arguments (`script.key(..).arg(..)`), as
    /// [`run`](Self::run) does a command.
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Failure> {
        self.run(op, |mut c| async move {
            invocation.invoke_async::<T>(&mut c).await
        })
        .await
    }
}

/// Pings every second while the handle lives.
async fn health_loop(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        Redis { inner }.check().await;
    }
}
