//! Sharing identical upstream reads that are in flight at the same time.
//!
//! When a GET for a path is already on its way to ActionKit, a second caller asking for
//! the same path waits for that answer instead of sending its own request. The key is
//! the path and query alone: the client holds exactly one credential, so two equal
//! paths are the same request; what each caller may see is decided above the client,
//! per caller, after the read.
//!
//! Freshness: a read never joins a flight that started before a write (any non-GET
//! sent by this client) finished. Every write bumps a generation when it completes, and
//! a flight only takes joiners of its own generation; so a caller that starts after a
//! write sees at least that write (read-your-writes holds for mutations, whose re-read
//! comes after their PATCH).
//!
//! Cancellation: the leader runs the request in its own task; if it is dropped before
//! the answer (its client went away), the flight is removed and every joiner tries
//! again, one of them becoming the new leader. Nobody waits for a request that no one
//! is sending.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;

use super::Error;

type Answer = Option<Result<Bytes, Error>>;

struct Flight {
    id: u64,
    generation: u64,
    answer: watch::Receiver<Answer>,
}

/// The reads in flight, by path.
#[derive(Default)]
pub(crate) struct Singleflight {
    flights: Mutex<HashMap<String, Flight>>,
    generation: AtomicU64,
    next_id: AtomicU64,
    shared: AtomicU64,
}

enum Role {
    Lead(u64, watch::Sender<Answer>),
    Join(watch::Receiver<Answer>),
}

/// Removes the leader's flight when the leader finishes or is dropped.
struct FlightGuard<'a> {
    sf: &'a Singleflight,
    key: &'a str,
    id: u64,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self.sf.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(self.key);
        }
    }
}

impl Singleflight {
    /// Runs `fetch` for `key`, or waits for the identical read already in flight.
    pub(crate) async fn run<F, Fut>(&self, key: &str, fetch: F) -> Result<Bytes, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, Error>>,
    {
        let mut fetch = Some(fetch);
        loop {
            let generation = self.generation.load(Ordering::Acquire);
            let role = {
                let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
                match flights.get(key) {
                    Some(f) if f.generation == generation => Role::Join(f.answer.clone()),
                    _ => {
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        flights.insert(
                            key.to_owned(),
                            Flight {
                                id,
                                generation,
                                answer: rx,
                            },
                        );
                        Role::Lead(id, tx)
                    }
                }
            };
            match role {
                Role::Lead(id, tx) => {
                    let _landing = FlightGuard { sf: self, key, id };
                    let Some(fetch) = fetch.take() else {
                        // Unreachable: a caller leads at most once, then returns.
                        return Err(Error::Transport("singleflight led twice".into()));
                    };
                    let answer = fetch().await;
                    let _ = tx.send(Some(answer.clone()));
                    return answer;
                }
                Role::Join(mut rx) => {
                    loop {
                        if let Some(answer) = rx.borrow_and_update().clone() {
                            self.shared.fetch_add(1, Ordering::Relaxed);
                            return answer;
                        }
                        if rx.changed().await.is_err() {
                            break;
                        }
                    }
                    // The leader was dropped: the answer may still have been sent.
                    if let Some(answer) = rx.borrow().clone() {
                        self.shared.fetch_add(1, Ordering::Relaxed);
                        return answer;
                    }
                }
            }
        }
    }

    /// Records that a write completed (or may have): later reads do not join flights
    /// that started before it.
    pub(crate) fn wrote(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many reads were answered by another caller's request.
    #[cfg(test)]
    fn shared(&self) -> u64 {
        self.shared.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    fn ok(s: &'static str) -> Result<Bytes, Error> {
        Ok(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn concurrent_identical_reads_make_one_request() {
        let sf = Arc::new(Singleflight::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let sf = sf.clone();
                let calls = calls.clone();
                tokio::spawn(async move {
                    sf.run("/rest/v1/user/1/", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        ok("user 1")
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Bytes::from_static(b"user 1"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(sf.shared(), 9);
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test]
    async fn different_paths_and_later_reads_are_not_shared() {
        let sf = Singleflight::default();
        let calls = AtomicUsize::new(0);
        let fetch = |v: &'static str| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                ok(v)
            }
        };
        let (a, b) = tokio::join!(sf.run("/a/", fetch("a")), sf.run("/b/", fetch("b")));
        assert_eq!(a.unwrap(), Bytes::from_static(b"a"));
        assert_eq!(b.unwrap(), Bytes::from_static(b"b"));
        // Sequential reads of one path: nothing in flight to share, two requests.
        sf.run("/a/", fetch("a")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(sf.shared(), 0);
    }

    #[tokio::test]
    async fn errors_are_shared_too() {
        let sf = Singleflight::default();
        let slow_err = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(Error::NotFound)
        };
        let never = || async { ok("should not be called") };
        let (a, b) = tokio::join!(sf.run("/x/", slow_err), sf.run("/x/", never));
        assert!(matches!(a, Err(Error::NotFound)));
        assert!(matches!(b, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn a_read_after_a_write_does_not_join_an_older_flight() {
        let sf = Arc::new(Singleflight::default());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let old = {
            let sf = sf.clone();
            tokio::spawn(async move {
                sf.run("/rest/v1/action/7/", || async move {
                    let _ = started_tx.send(());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ok("before the write")
                })
                .await
            })
        };
        started_rx.await.unwrap();
        sf.wrote();
        let fresh = sf
            .run("/rest/v1/action/7/", || async { ok("after the write") })
            .await
            .unwrap();
        assert_eq!(fresh, Bytes::from_static(b"after the write"));
        assert_eq!(
            old.await.unwrap().unwrap(),
            Bytes::from_static(b"before the write")
        );
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test]
    async fn joiners_take_over_when_the_leader_is_cancelled() {
        let sf = Arc::new(Singleflight::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let leader = {
            let sf = sf.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                sf.run("/p/", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    ok("never")
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let joiner = {
            let sf = sf.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                sf.run("/p/", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    ok("second leader")
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), joiner)
            .await
            .expect("the joiner must not hang")
            .unwrap()
            .unwrap();
        assert_eq!(got, Bytes::from_static(b"second leader"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(sf.in_flight(), 0);
    }
}
