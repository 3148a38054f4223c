//! A rate limit shared between replicas (Redis, see `shared_state/limiter.rs`): the
//! guard asks it first when it is set, and keeps to the local limiter when it cannot
//! answer.

use std::time::Duration;

/// A caller's limit across every replica.
#[async_trait::async_trait]
pub trait GlobalRateLimit: Send + Sync + 'static {
    /// `Some(Ok)`: admitted; `Some(Err(wait))`: over the limit, retry after `wait`;
    /// `None`: the shared limit cannot be reached (the local one applies).
    async fn check(&self, caller: &str) -> Option<Result<(), Duration>>;
}
