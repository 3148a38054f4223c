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
    free: usize,
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
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        let mut state = self.permits.lock();
        state.release(&self.caller);
    }
}

impl State {
    fn release(&mut self, caller: &Arc<str>) {
        if let Some(c) = self.callers.get_mut(caller) {
            c.held = c.held.saturating_sub(1);
        }
        self.forget_if_done(caller);
        self.free += 1;
        self.grant();
    }

    /// Hands free slots to waiters: the caller holding the fewest slots first.
    fn grant(&mut self) {
        while self.free > 0 && self.waiting > 0 {
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
                self.free -= 1;
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
    pub(crate) fn new(slots: usize) -> Arc<FairPermits> {
        Arc::new(FairPermits {
            state: Mutex::new(State {
                free: slots.max(1),
                ..State::default()
            }),
        })
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
            if state.free > 0 && state.waiting == 0 {
                state.free -= 1;
                state.callers.entry(caller.clone()).or_default().held += 1;
                return FairPermit {
                    permits: self.clone(),
                    caller,
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
            FairPermit {
                permits: self.clone(),
                caller,
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
        assert_eq!(p.lock().free, 1);
    }
}
