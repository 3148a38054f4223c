//! Counting upstream calls, for the gateway's per-operation report and for metrics.
//!
//! Two views of the same events:
//! - process-wide totals on the client ([`crate::actionkit::Client::totals`]);
//! - a per-operation [`UpstreamCounter`] that a caller scopes around its work with
//!   [`UpstreamCounter::scope`]. Every HTTP request the client sends while the scoped
//!   future runs adds to that counter.
//!
//! The scope is a `tokio::task_local!`: it follows the future and everything it awaits
//! (the client's own parallel fetches run inside the calling task, so they count), but
//! it does **not** cross `tokio::spawn`. async-graphql's `DataLoader` runs its loads in
//! spawned tasks, so a request-scoped loader should hold a clone of the request's
//! counter and wrap each client call itself:
//!
//! ```no_run
//! # use actionkit_graphql::actionkit::{Client, UpstreamCounter, UserId};
//! # async fn demo(client: Client, ids: Vec<UserId>) {
//! let counter = UpstreamCounter::new(); // one per GraphQL operation
//! let users = counter.scope(client.users(&ids)).await;
//! println!("{} upstream calls, {} of them retries", counter.calls(), counter.retries());
//! # }
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static CURRENT: Arc<UpstreamCounter>;
}

/// Upstream HTTP requests made on behalf of one operation (or in total).
#[derive(Debug, Default)]
pub struct UpstreamCounter {
    calls: AtomicU64,
    retries: AtomicU64,
    /// Time spent in upstream calls, summed over calls (parallel calls add up).
    micros: AtomicU64,
    /// Who the calls are made for: the client shares its in-flight slots fairly
    /// between callers (see `fair.rs`). `None`: the unnamed caller.
    caller: Option<Arc<str>>,
}

impl UpstreamCounter {
    /// A fresh counter, shareable across tasks.
    pub fn new() -> Arc<UpstreamCounter> {
        Arc::new(UpstreamCounter::default())
    }

    /// A fresh counter whose calls are made on behalf of `caller` (an API key's name,
    /// say): callers get fair shares of the client's requests in flight.
    pub fn for_caller(caller: impl Into<Arc<str>>) -> Arc<UpstreamCounter> {
        Arc::new(UpstreamCounter {
            caller: Some(caller.into()),
            ..UpstreamCounter::default()
        })
    }

    /// HTTP requests sent, retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Of [`calls`](Self::calls), how many were retries of an earlier attempt.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Time spent in upstream calls (retries and backoff included), summed over calls:
    /// calls made in parallel each add their own time.
    pub fn upstream_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    /// Runs `fut` with this counter as the current one: every upstream request the
    /// client sends from within `fut` (in this task) is counted here as well as in the
    /// client's totals. Scopes nest; the innermost counter wins.
    ///
    /// Not an `async fn`: one would hold `fut` twice (as its argument and as the future
    /// it awaits), and the request's execution is the largest future the gateway runs.
    pub fn scope<F: Future>(self: &Arc<Self>, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(Arc::clone(self), fut)
    }

    fn add(&self, retry: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if retry {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Records the time one upstream call took, in the scoped counter, if any.
pub(crate) fn record_time(elapsed: std::time::Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let _ = CURRENT.try_with(|c| c.micros.fetch_add(micros, Ordering::Relaxed));
}

/// The caller the current scope's calls are made for (the unnamed caller outside
/// any scope, or in a scope without one).
pub(crate) fn current_caller() -> Arc<str> {
    CURRENT
        .try_with(|c| c.caller.clone())
        .ok()
        .flatten()
        .unwrap_or_else(|| Arc::from(""))
}

/// A snapshot of the client's process-wide totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallTotals {
    /// HTTP requests sent, retries included.
    pub calls: u64,
    /// Of `calls`, how many were retries.
    pub retries: u64,
}

/// Records one request sent: in the client's totals and in the scoped counter, if any.
pub(crate) fn record(totals: &UpstreamCounter, retry: bool) {
    totals.add(retry);
    let _ = CURRENT.try_with(|c| c.add(retry));
}

impl UpstreamCounter {
    pub(crate) fn snapshot(&self) -> CallTotals {
        CallTotals {
            calls: self.calls(),
            retries: self.retries(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scoped_counter_sees_only_its_own_calls() {
        let totals = UpstreamCounter::default();
        let a = UpstreamCounter::new();
        record(&totals, false);
        a.scope(async {
            record(&totals, false);
            record(&totals, true);
        })
        .await;
        assert_eq!(a.calls(), 2);
        assert_eq!(a.retries(), 1);
        assert_eq!(
            totals.snapshot(),
            CallTotals {
                calls: 3,
                retries: 1
            }
        );
    }
}
