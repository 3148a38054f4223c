//! Sharing identical upstream reads that are in flight at the same time.
//!
//! When a GET for a path is already on its way to ActionKit, a second caller asking for
//! the same path waits for that answer instead of sending its own request. The key is
//! the path and query alone: the client holds exactly one credential, so two equal
//! paths are the same request; what each caller may see is decided above the client,
//! per caller, after the read.
//!
//! A successful answer stays shareable for a short window after it lands
//! (`ClientConfig::share_window`: off by default, 2 ms in the gateway): a read asked
//! for then gets it at once. The answer is at most the window older than the one a
//! caller joining the flight just before it landed would have had. Why it exists: a
//! member's query makes two reads (the member, their actions), sent together but
//! landing a little apart. Without the window, a request arriving between the two
//! landings joins the second read and sends the first again, alone; the two reads of
//! that member then land apart from then on, and under a saturated cap
//! (`max_in_flight`) every such split is one more call (BENCHMARKS.md, issue 18, ninth
//! round).
//!
//! Freshness: a read never joins a flight that started before a write (any non-GET
//! sent by this client) finished, nor takes an answer that landed before it. Every
//! write bumps a generation when it completes, and a flight only takes joiners of its
//! own generation; so a caller that starts after a write sees at least that write
//! (read-your-writes holds for mutations, whose re-read comes after their PATCH).
//! Errors are shared with the callers already waiting, never kept for later ones.
//!
//! Cancellation: if the leader is dropped before the answer (its client went away),
//! the flight is removed and every joiner tries again, one of them becoming the new
//! leader. Nobody waits for a request that no one is sending.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::Error;

type Answer = Option<Result<Bytes, Error>>;

struct Flight {
    id: u64,
    generation: u64,
    state: Stage,
}

enum Stage {
    /// Sent (or waiting for a slot): joiners wait for the answer.
    InFlight(watch::Receiver<Answer>),
    /// Answered with success at `at`: shareable until `at + window`.
    Landed { body: Bytes, at: Instant },
}

#[derive(Default)]
struct Flights {
    by_path: HashMap<String, Flight>,
    /// When landed answers past their window are next swept out of `by_path`.
    next_sweep: Option<Instant>,
}

/// The reads in flight (and those just landed), by path.
#[derive(Default)]
pub(crate) struct Singleflight {
    flights: Mutex<Flights>,
    /// How long a successful answer stays shareable after it lands; zero: not at all.
    window: Duration,
    generation: AtomicU64,
    next_id: AtomicU64,
    shared: AtomicU64,
}

enum Role {
    Lead(u64, watch::Sender<Answer>),
    Join(watch::Receiver<Answer>),
    Landed(Bytes),
}

/// Ends the leader's flight when the leader finishes or is dropped: its answer is kept
/// for the window when there is one to keep (`keep`), else the flight is removed. A
/// newer flight that replaced it in the meantime is left alone.
struct FlightGuard<'a> {
    sf: &'a Singleflight,
    key: &'a str,
    id: u64,
    keep: Option<Bytes>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self.sf.lock();
        let Some(flight) = flights
            .by_path
            .get_mut(self.key)
            .filter(|f| f.id == self.id)
        else {
            return;
        };
        match self.keep.take() {
            Some(body) => {
                flight.state = Stage::Landed {
                    body,
                    at: Instant::now(),
                }
            }
            None => {
                flights.by_path.remove(self.key);
            }
        }
    }
}

impl Singleflight {
    /// Shares reads in flight, and successful answers for `window` after they land.
    pub(crate) fn new(window: Duration) -> Self {
        Singleflight {
            window,
            ..Singleflight::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Flights> {
        // Every change under the lock is one statement; a poisoned map is still whole.
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fetch` for `key`, or waits for the identical read already in flight, or
    /// takes the answer that landed within the window.
    pub(crate) async fn run<F, Fut>(&self, key: &str, fetch: F) -> Result<Bytes, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, Error>>,
    {
        self.run_taking(key, true, fetch).await
    }

    /// Like [`run`](Self::run), but never takes an answer that already landed: for the
    /// read of a read-modify-write, which must be as fresh as a read of its own.
    pub(crate) async fn run_fresh<F, Fut>(&self, key: &str, fetch: F) -> Result<Bytes, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, Error>>,
    {
        self.run_taking(key, false, fetch).await
    }

    async fn run_taking<F, Fut>(&self, key: &str, landed: bool, fetch: F) -> Result<Bytes, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, Error>>,
    {
        let mut fetch = Some(fetch);
        loop {
            let generation = self.generation.load(Ordering::Acquire);
            let role = {
                let mut flights = self.lock();
                let current = match flights.by_path.get(key) {
                    Some(f) if f.generation == generation => match &f.state {
                        Stage::InFlight(rx) => Some(Role::Join(rx.clone())),
                        Stage::Landed { body, at } if landed && at.elapsed() <= self.window => {
                            Some(Role::Landed(body.clone()))
                        }
                        Stage::Landed { .. } => None,
                    },
                    _ => None,
                };
                match current {
                    Some(role) => role,
                    None => {
                        self.sweep(&mut flights);
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        flights.by_path.insert(
                            key.to_owned(),
                            Flight {
                                id,
                                generation,
                                state: Stage::InFlight(rx),
                            },
                        );
                        Role::Lead(id, tx)
                    }
                }
            };
            match role {
                Role::Landed(body) => {
                    self.shared.fetch_add(1, Ordering::Relaxed);
                    return Ok(body);
                }
                Role::Lead(id, tx) => {
                    let mut landing = FlightGuard {
                        sf: self,
                        key,
                        id,
                        keep: None,
                    };
                    let Some(fetch) = fetch.take() else {
                        // Unreachable: a caller leads at most once, then returns.
                        return Err(Error::Transport("singleflight led twice".into()));
                    };
                    let answer = fetch().await;
                    let _ = tx.send(Some(answer.clone()));
                    if let (Ok(body), false) = (&answer, self.window.is_zero()) {
                        landing.keep = Some(body.clone());
                    }
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

    /// Drops answers whose window has passed, at most once per window, so that paths
    /// read once do not stay in the map.
    fn sweep(&self, flights: &mut Flights) {
        if self.window.is_zero() {
            return;
        }
        let now = Instant::now();
        if flights.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        let window = self.window;
        flights.by_path.retain(|_, f| match &f.state {
            Stage::InFlight(_) => true,
            Stage::Landed { at, .. } => now.duration_since(*at) <= window,
        });
        flights.next_sweep = Some(now + window);
    }

    /// Records that a write completed (or may have): later reads do not join flights
    /// that started before it, nor take answers that landed before it.
    pub(crate) fn wrote(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many reads were answered by another caller's request.
    #[cfg(test)]
    fn shared(&self) -> u64 {
        self.shared.load(Ordering::Relaxed)
    }

    /// Reads waiting for an answer now (landed answers kept for the window excluded).
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.lock()
            .by_path
            .values()
            .filter(|f| matches!(f.state, Stage::InFlight(_)))
            .count()
    }

    /// Paths held now, answers kept for the window included.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().by_path.len()
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

    #[tokio::test]
    async fn an_answer_is_shared_for_the_window_after_it_lands_then_read_again() {
        let sf = Singleflight::new(Duration::from_millis(200));
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            ok("page 3")
        };
        sf.run("/rest/v1/page/3/", fetch).await.unwrap();
        // Landed, within the window: answered without a call.
        let again = sf.run("/rest/v1/page/3/", fetch).await.unwrap();
        assert_eq!(again, Bytes::from_static(b"page 3"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(sf.shared(), 1);
        assert_eq!(sf.in_flight(), 0);
        // Past the window: a call of its own.
        tokio::time::sleep(Duration::from_millis(250)).await;
        sf.run("/rest/v1/page/3/", fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn no_window_means_only_reads_in_flight_are_shared() {
        let sf = Singleflight::new(Duration::ZERO);
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            ok("a")
        };
        sf.run("/a/", fetch).await.unwrap();
        sf.run("/a/", fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(sf.held(), 0);
    }

    #[tokio::test]
    async fn a_read_after_a_write_does_not_take_an_answer_that_landed_before_it() {
        let sf = Singleflight::new(Duration::from_secs(60));
        sf.run("/rest/v1/user/4/", || async { ok("before") })
            .await
            .unwrap();
        sf.wrote();
        let fresh = sf
            .run("/rest/v1/user/4/", || async { ok("after") })
            .await
            .unwrap();
        assert_eq!(fresh, Bytes::from_static(b"after"));
        assert_eq!(sf.shared(), 0);
    }

    #[tokio::test]
    async fn an_error_is_not_kept_for_later_reads() {
        let sf = Singleflight::new(Duration::from_secs(60));
        let first = sf.run("/x/", || async { Err(Error::Timeout) }).await;
        assert!(matches!(first, Err(Error::Timeout)));
        assert_eq!(sf.held(), 0);
        let second = sf.run("/x/", || async { ok("x") }).await.unwrap();
        assert_eq!(second, Bytes::from_static(b"x"));
    }

    #[tokio::test]
    async fn answers_past_their_window_are_swept_out() {
        let sf = Singleflight::new(Duration::from_millis(20));
        for i in 0..50 {
            sf.run(&format!("/rest/v1/user/{i}/"), || async { ok("u") })
                .await
                .unwrap();
        }
        assert!(sf.held() > 1, "answers are kept within the window");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The next read that sends sweeps out everything past its window.
        sf.run("/rest/v1/user/other/", || async { ok("u") })
            .await
            .unwrap();
        assert_eq!(sf.held(), 1);
    }
}
