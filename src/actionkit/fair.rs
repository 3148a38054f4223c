//! The cap on requests in flight to ActionKit, shared fairly between callers.
//!
//! The client may have `max_in_flight` requests out at once (process-wide). A plain
//! FIFO semaphore hands the slots out in arrival order, so one caller that queues a
//! hundred calls (an operation that fans out, or several clients looping on one key)
//! makes every other caller wait behind all of them. [`FairPermits`] hands a freed
//! slot to the waiting caller that holds the **fewest** slots at that moment (the
//! oldest waiter on a tie): a caller alone may still use every slot (nothing is kept
//! idle), but as soon as another caller asks, it gets the next free slot, and busy
//! callers end up with equal shares. A caller is whoever the per-operation
//! [`UpstreamCounter`](super::UpstreamCounter) names (the gateway uses the API key's
//! name, `jwt:<sub>`, or `anonymous@<address>`); calls made outside an operation
//! (the start-up probe, readiness) share the unnamed caller.
//!
//! The cap adapts to what the instance accepts (AIMD-like): a 429 from ActionKit
//! while `n` of our requests were in flight (that one included) says it takes fewer
//! than `n` at once, so the cap drops to `n - 1` at once (several 429s of one burst
//! agree, they do not compound); after a run of successes as long as four times the
//! cap it grows by one, never above `max_in_flight`. A cap set higher than the
//! instance allows thus costs a few retried 429s, not errors. The current cap is the
//! gauge `gateway_upstream_concurrency_limit`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// A counting semaphore whose waiters are served by caller, fewest slots held first.
#[derive(Debug)]
pub(crate) struct FairPermits {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The configured maximum (`max_in_flight`).
    max: usize,
    /// The cap in force, `1..=max`.
    limit: usize,
    /// Slots held now, by everyone.
    in_use: usize,
    /// Successes since the cap last changed.
    successes: usize,
    /// Callers that hold a slot or wait for one (entries go once both are zero).
    callers: HashMap<Arc<str>, Caller>,
    waiting: usize,
    /// Arrival order of waiters, to break ties.
    next_ticket: u64,
}

#[derive(Debug, Default)]
struct Caller {
    held: usize,
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// One slot; released when dropped.
#[derive(Debug)]
pub(crate) struct FairPermit {
    permits: Arc<FairPermits>,
    caller: Arc<str>,
    /// Slots held by everyone when this one was granted, this one included.
    in_flight: usize,
}

/// What ActionKit made of a request, as far as the cap is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It answered (anything but 429): the load was acceptable.
    Accepted,
    /// 429: too many requests at once.
    TooMany,
    /// No answer, or one that says nothing about concurrency.
    Unknown,
}

impl FairPermit {
    /// Releases the slot, telling the cap what the request's answer said.
    pub(crate) fn finish(self, verdict: Verdict) {
        let mut state = self.permits.lock();
        match verdict {
            Verdict::Accepted => state.succeeded(),
            Verdict::TooMany => state.refused(self.in_flight),
            Verdict::Unknown => {}
        }
        // Dropping `self` (after the lock is released) frees the slot.
    }
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        let mut state = self.permits.lock();
        state.release(&self.caller);
    }
}

impl State {
    fn free(&self) -> usize {
        self.limit.saturating_sub(self.in_use)
    }

    fn release(&mut self, caller: &Arc<str>) {
        if let Some(c) = self.callers.get_mut(caller) {
            c.held = c.held.saturating_sub(1);
        }
        self.forget_if_done(caller);
        self.in_use = self.in_use.saturating_sub(1);
        self.grant();
    }

    /// Additive increase: one more slot after a run of successes four times the cap.
    fn succeeded(&mut self) {
        self.successes += 1;
        if self.limit < self.max && self.successes >= 4 * self.limit {
            self.set_limit(self.limit + 1);
        }
    }

    /// Decrease: ActionKit refused a request sent while `in_flight` were out, so it
    /// takes fewer than that at once.
    fn refused(&mut self, in_flight: usize) {
        let limit = self.limit.min(in_flight.saturating_sub(1)).max(1);
        if limit < self.limit {
            self.set_limit(limit);
        }
        self.successes = 0;
    }

    fn set_limit(&mut self, limit: usize) {
        self.limit = limit.clamp(1, self.max);
        self.successes = 0;
        metrics::gauge!("gateway_upstream_concurrency_limit").set(self.limit as f64);
        tracing::debug!(limit = self.limit, "upstream concurrency cap");
        self.grant();
    }

    /// Hands free slots to waiters: the caller holding the fewest slots first.
    fn grant(&mut self) {
        while self.free() > 0 && self.waiting > 0 {
            let next = self
                .callers
                .iter()
                .filter_map(|(name, c)| c.queue.front().map(|(t, _)| (c.held, *t, name.clone())))
                .min_by_key(|(held, ticket, _)| (*held, *ticket));
            let Some((_, _, name)) = next else {
                self.waiting = 0;
                return;
            };
            let Some(caller) = self.callers.get_mut(&name) else {
                return;
            };
            let Some((_, tx)) = caller.queue.pop_front() else {
                continue;
            };
            self.waiting -= 1;
            // A waiter that gave up removes itself under this lock, so the receiver is
            // alive; should it not be, the slot stays free for the next one.
            if tx.send(()).is_ok() {
                caller.held += 1;
                self.in_use += 1;
            }
            self.forget_if_done(&name);
        }
    }

    fn forget_if_done(&mut self, caller: &Arc<str>) {
        if self
            .callers
            .get(caller)
            .is_some_and(|c| c.held == 0 && c.queue.is_empty())
        {
            self.callers.remove(caller);
        }
    }
}

/// Removes a waiter that stops waiting (deadline, cancellation), or gives back the
/// slot it was granted in the meantime.
struct Waiting<'a> {
    permits: &'a FairPermits,
    caller: Arc<str>,
    ticket: u64,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        let mut state = self.permits.lock();
        let queued = state.callers.get_mut(&self.caller).and_then(|c| {
            let at = c.queue.iter().position(|(t, _)| *t == self.ticket)?;
            c.queue.remove(at)
        });
        if queued.is_some() {
            state.waiting -= 1;
            state.forget_if_done(&self.caller);
        } else if rx.try_recv().is_ok() {
            // Granted while we were giving up: pass the slot on.
            state.release(&self.caller);
        }
    }
}

impl FairPermits {
    /// At most `slots` at once; the cap starts there and adapts below it.
    pub(crate) fn new(slots: usize) -> Arc<FairPermits> {
        let max = slots.max(1);
        metrics::gauge!("gateway_upstream_concurrency_limit").set(max as f64);
        Arc::new(FairPermits {
            state: Mutex::new(State {
                max,
                limit: max,
                ..State::default()
            }),
        })
    }

    /// The cap in force now.
    pub(crate) fn limit(&self) -> usize {
        self.lock().limit
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements; a panic elsewhere cannot
        // leave it half-updated, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot for `caller`. Dropping the future gives up its place (or the
    /// slot, if it was granted meanwhile).
    pub(crate) async fn acquire(self: &Arc<Self>, caller: Arc<str>) -> FairPermit {
        let (ticket, rx) = {
            let mut state = self.lock();
            if state.free() > 0 && state.waiting == 0 {
                state.in_use += 1;
                state.callers.entry(caller.clone()).or_default().held += 1;
                return FairPermit {
                    permits: self.clone(),
                    caller,
                    in_flight: state.in_use,
                };
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let (tx, rx) = oneshot::channel();
            state
                .callers
                .entry(caller.clone())
                .or_default()
                .queue
                .push_back((ticket, tx));
            state.waiting += 1;
            (ticket, rx)
        };
        let mut waiting = Waiting {
            permits: self,
            caller: caller.clone(),
            ticket,
            rx: Some(rx),
        };
        let granted = match waiting.rx.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        if granted {
            // The slot is ours: the guard must not give it back.
            waiting.rx = None;
        }
        drop(waiting);
        if granted {
            let in_flight = self.lock().in_use;
            FairPermit {
                permits: self.clone(),
                caller,
                in_flight,
            }
        } else {
            // The sender is only dropped after a successful send or with the whole
            // semaphore; wait again rather than run without a slot.
            Box::pin(self.acquire(caller)).await
        }
    }

    #[cfg(test)]
    fn held(&self, caller: &str) -> usize {
        self.lock().callers.get(caller).map_or(0, |c| c.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn name(s: &str) -> Arc<str> {
        s.into()
    }

    #[tokio::test]
    async fn a_caller_alone_uses_every_slot() {
        let p = FairPermits::new(3);
        let a: Vec<_> = futures::future::join_all((0..3).map(|_| p.acquire(name("a")))).await;
        assert_eq!(p.held("a"), 3);
        drop(a);
        assert_eq!(p.held("a"), 0);
        assert!(p.lock().callers.is_empty());
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_caller_holding_fewest() {
        let p = FairPermits::new(2);
        let mut held = vec![p.acquire(name("hog")).await, p.acquire(name("hog")).await];
        // The hog queues many more, then a second caller queues one.
        let mut hog_waiters = Vec::new();
        for _ in 0..5 {
            let p = p.clone();
            hog_waiters.push(tokio::spawn(async move { p.acquire(name("hog")).await }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let p2 = p.clone();
        let victim = tokio::spawn(async move { p2.acquire(name("victim")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // One hog slot frees: the victim (0 held) goes before the hog's five.
        held.pop();
        let v = tokio::time::timeout(Duration::from_secs(1), victim)
            .await
            .expect("the victim got the freed slot")
            .unwrap();
        assert_eq!(p.held("victim"), 1);
        assert_eq!(p.held("hog"), 1);
        drop(v);
        drop(held);
        for w in hog_waiters {
            drop(w.await.unwrap());
        }
        assert!(p.lock().callers.is_empty(), "{:?}", p.lock());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_no_trace() {
        let p = FairPermits::new(1);
        let first = p.acquire(name("a")).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), p.acquire(name("b"))).await;
        assert!(gave_up.is_err());
        assert_eq!(p.lock().waiting, 0);
        drop(first);
        // The slot is free again for anyone.
        let again = tokio::time::timeout(Duration::from_millis(100), p.acquire(name("c")))
            .await
            .expect("slot free");
        drop(again);
        assert_eq!(p.lock().free(), 1);
    }

    #[tokio::test]
    async fn the_cap_drops_on_429_and_grows_back_slowly_never_past_the_maximum() {
        let p = FairPermits::new(8);
        // Eight out at once; the instance takes four: the fifth to eighth are refused.
        let held: Vec<_> = futures::future::join_all((0..8).map(|_| p.acquire(name("a")))).await;
        let mut verdicts = Vec::new();
        for (i, permit) in held.into_iter().enumerate() {
            verdicts.push((
                permit,
                if i < 4 {
                    Verdict::Accepted
                } else {
                    Verdict::TooMany
                },
            ));
        }
        // The refusals come back first (the sandbox answers 429 at once).
        verdicts.reverse();
        for (permit, v) in verdicts {
            permit.finish(v);
        }
        assert_eq!(p.limit(), 4, "the cap is what the instance took");
        // Four at once now; a fifth waits.
        let four: Vec<_> = futures::future::join_all((0..4).map(|_| p.acquire(name("a")))).await;
        let fifth = tokio::time::timeout(Duration::from_millis(20), p.acquire(name("b"))).await;
        assert!(fifth.is_err(), "a fifth request waits for a slot");
        for permit in four {
            permit.finish(Verdict::Accepted);
        }
        // Successes grow it by one per run of 4 × cap, up to the maximum and no more.
        for _ in 0..1_000 {
            p.acquire(name("a")).await.finish(Verdict::Accepted);
        }
        assert_eq!(p.limit(), 8);
        // Answers that say nothing about concurrency leave it alone.
        p.acquire(name("a")).await.finish(Verdict::Unknown);
        assert_eq!(p.limit(), 8);
        // A 429 with one request out: the cap never goes below one.
        p.acquire(name("a")).await.finish(Verdict::TooMany);
        assert_eq!(p.limit(), 1);
        assert_eq!(p.lock().in_use, 0);
    }
}
