//! A budget of requests in flight shared with other processes: with several replicas
//! of the gateway, `max_in_flight` holds for all of them together, not for each. The
//! client knows only this trait; what keeps the count (Redis, see `shared_state/`) is
//! given to it in [`ClientConfig::global_budget`](super::ClientConfig).
//!
//! It is taken in addition to the process's own fair cap (`fair.rs`), after it, around
//! each attempt: a request holds one local slot and one global slot while it is out.

use tokio::time::Instant;

/// What [`GlobalBudget::acquire`] gives.
pub enum BudgetSlot {
    /// One slot of the global budget, given back when dropped.
    Held(Box<dyn Send + Sync>),
    /// The shared budget cannot be reached: go on under the local cap alone (a replica
    /// that cannot reach Redis keeps serving; see README "Running several replicas").
    Unavailable,
    /// No slot came free before the deadline.
    TimedOut,
}

/// A cap on requests in flight shared between processes.
#[async_trait::async_trait]
pub trait GlobalBudget: Send + Sync + 'static {
    /// Waits for one slot until `deadline`.
    async fn acquire(&self, deadline: Instant) -> BudgetSlot;
}
