//! The request's batching loader: async-graphql's [`Loader`] trait and the two calls
//! resolvers make (`load_one`, `load_many`), gathering the keys asked for in one pass
//! of the request's execution into one batch, without a timer.
//!
//! Why not async-graphql's `DataLoader`: it gathers keys by sleeping `delay` in the
//! batch task with `futures-timer`, whose `Delay` registers with a helper thread and
//! wakes it (a futex and a context switch) when made and again when dropped, and the
//! helper thread then wakes the batch task from outside the runtime. With two batches
//! per canonical query that was a visible part of the gateway's CPU per query, and the
//! 100 µs wait (more, as the timer fires late) was on the critical path of every level
//! (BENCHMARKS.md, issue 18).
//!
//! How keys are gathered instead: async-graphql resolves sibling fields and list items
//! by polling their futures one after another in the request's task, so every key of
//! one level is asked for within one poll of that task. The request's execution runs
//! inside [`PollGate::run`], which marks while the task is being polled; the batch task
//! (spawned when the first key of a batch arrives) sleeps until that poll is over, and
//! only then takes the keys. So a batch holds every key asked for in the same pass,
//! whichever worker thread runs the batch task, and nothing waits for a clock.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::dataloader::Loader;
use futures::future::BoxFuture;
// Not tokio's: polling a tokio channel spends the task's cooperative budget, and once
// that is spent the request's task yields in the middle of a pass over sibling
// fields, which would split their keys over several batches.
use futures::channel::oneshot;
use tokio::sync::Notify;

/// Marks while a request's execution is being polled (shared by its loaders).
#[derive(Clone, Default)]
pub struct PollGate(Arc<Gate>);

#[derive(Default)]
struct Gate {
    polls: AtomicUsize,
    /// Woken when the last poll under way ends.
    idle: Notify,
}

struct Polling<'a>(&'a Gate);

pin_project_lite::pin_project! {
    /// A future whose polls are marked on a gate ([`PollGate::run`]).
    pub struct Gated<F> {
        #[pin]
        fut: F,
        gate: PollGate,
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        this.gate.0.polls.fetch_add(1, Ordering::SeqCst);
        let _polling = Polling(&this.gate.0);
        this.fut.poll(cx)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        if self.0.polls.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl PollGate {
    /// `fut`, each of its polls marked. (A future of its own rather than an `async fn`,
    /// which would hold `fut` twice: it wraps the request's whole execution.)
    pub fn run<F: Future>(&self, fut: F) -> Gated<F> {
        Gated {
            fut,
            gate: self.clone(),
        }
    }

    fn busy(&self) -> bool {
        self.0.polls.load(Ordering::SeqCst) > 0
    }

    /// Returns once no poll of the request is under way. A batch asked for outside a
    /// poll of the request (a loader used without the gate) first yields to the
    /// runtime once, so that the task that asked finishes its pass.
    ///
    /// The wait sleeps until the poll ends: it does not spin. A batch task that another
    /// worker took while the request's poll was under way used to yield in a loop; when
    /// the kernel ran that worker on the request's CPU, the request's poll waited for the
    /// spinning thread's time slice to end, a stall of several milliseconds
    /// (BENCHMARKS.md, issue 18, seventh round).
    async fn settled(&self, asked_in_pass: bool) {
        if !asked_in_pass {
            tokio::task::yield_now().await;
        }
        loop {
            // Made before the check: a poll ending after it wakes this wait.
            let ended = self.0.idle.notified();
            if !self.busy() {
                return;
            }
            ended.await;
        }
    }
}

type Reply<K, V, E> = oneshot::Sender<Result<HashMap<K, V>, E>>;

struct Pending<K, V, E> {
    /// Distinct keys, in the order they were asked for.
    keys: Vec<K>,
    seen: HashSet<K>,
    waiters: Vec<(Vec<K>, Reply<K, V, E>)>,
}

impl<K, V, E> Default for Pending<K, V, E> {
    fn default() -> Self {
        Pending {
            keys: Vec::new(),
            seen: HashSet::new(),
            waiters: Vec::new(),
        }
    }
}

struct State<K, V, E> {
    pending: Pending<K, V, E>,
    /// Values loaded by this loader, when it caches (per request).
    cache: Option<HashMap<K, V>>,
}

struct Inner<K, T: Loader<K>>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    loader: T,
    state: Mutex<State<K, T::Value, T::Error>>,
}

type Spawner = Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>;

/// A batching loader for one kind of key; see the module documentation.
pub struct BatchLoader<K, T: Loader<K>>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    inner: Arc<Inner<K, T>>,
    gate: PollGate,
    spawner: Spawner,
    max_batch_size: usize,
}

/// The batch task ended without answering (it panicked, or the runtime is stopping).
#[derive(Debug, Clone, Copy)]
pub struct LoadCanceled;

impl<K, T> BatchLoader<K, T>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    T: Loader<K>,
    T::Error: From<LoadCanceled>,
{
    /// A loader whose batches run in tasks started by `spawner`, gathered per poll
    /// of the request marked by `gate`.
    pub fn new(
        loader: T,
        gate: PollGate,
        spawner: impl Fn(BoxFuture<'static, ()>) + Send + Sync + 'static,
    ) -> Self {
        BatchLoader {
            inner: Arc::new(Inner {
                loader,
                state: Mutex::new(State {
                    pending: Pending::default(),
                    cache: None,
                }),
            }),
            gate,
            spawner: Arc::new(spawner),
            // async-graphql's default.
            max_batch_size: 1000,
        }
    }

    /// A batch holding this many keys is sent at once.
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = n.max(1);
        self
    }

    /// Keeps loaded values for the rest of the request (keys not found are asked
    /// again).
    pub fn cached(self) -> Self {
        self.lock().cache = Some(HashMap::new());
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, T::Value, T::Error>> {
        // Nothing panics while holding the lock; should it, the state is still whole.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn load_one(&self, key: K) -> Result<Option<T::Value>, T::Error> {
        let mut found = self.load_many(std::iter::once(key.clone())).await?;
        Ok(found.remove(&key))
    }

    pub async fn load_many(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<HashMap<K, T::Value>, T::Error> {
        enum Dispatch<K, V, E> {
            Now(Pending<K, V, E>),
            AfterThisPass,
            WithOthers,
        }
        let (mut found, rx, send) = {
            let mut state = self.lock();
            let mut found = HashMap::new();
            let mut wanted = Vec::new();
            for key in keys {
                match state.cache.as_ref().and_then(|c| c.get(&key)) {
                    Some(value) => {
                        found.insert(key, value.clone());
                    }
                    None => wanted.push(key),
                }
            }
            if wanted.is_empty() {
                return Ok(found);
            }
            let first = state.pending.keys.is_empty();
            for key in &wanted {
                if state.pending.seen.insert(key.clone()) {
                    state.pending.keys.push(key.clone());
                }
            }
            let (tx, rx) = oneshot::channel();
            state.pending.waiters.push((wanted, tx));
            let send = if state.pending.keys.len() >= self.max_batch_size {
                Dispatch::Now(std::mem::take(&mut state.pending))
            } else if first {
                Dispatch::AfterThisPass
            } else {
                Dispatch::WithOthers
            };
            (found, rx, send)
        };
        match send {
            Dispatch::Now(batch) => {
                let inner = self.inner.clone();
                (self.spawner)(Box::pin(async move { inner.run(batch).await }));
            }
            Dispatch::AfterThisPass => {
                let inner = self.inner.clone();
                let gate = self.gate.clone();
                // Asked for in a poll of the request: every key of that pass is in
                // once the poll is over.
                let asked_in_pass = gate.busy();
                (self.spawner)(Box::pin(async move {
                    gate.settled(asked_in_pass).await;
                    let batch = {
                        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
                        std::mem::take(&mut state.pending)
                    };
                    // Empty when a full batch was sent in the meantime.
                    if !batch.keys.is_empty() {
                        inner.run(batch).await;
                    }
                }));
            }
            Dispatch::WithOthers => {}
        }
        let loaded = rx.await.map_err(|_| T::Error::from(LoadCanceled))??;
        found.extend(loaded);
        Ok(found)
    }
}

impl<K, T> Inner<K, T>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    T: Loader<K>,
{
    async fn run(&self, batch: Pending<K, T::Value, T::Error>) {
        let result = self.loader.load(&batch.keys).await;
        if let Ok(values) = &result {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cache) = state.cache.as_mut() {
                cache.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        for (keys, reply) in batch.waiters {
            let answer = match &result {
                Ok(values) => Ok(keys
                    .into_iter()
                    .filter_map(|k| values.get(&k).map(|v| (k, v.clone())))
                    .collect()),
                Err(e) => Err(e.clone()),
            };
            // The waiter may have gone (its request was cancelled): nothing to do.
            let _ = reply.send(answer);
        }
    }
}

impl From<LoadCanceled> for crate::actionkit::Error {
    fn from(_: LoadCanceled) -> Self {
        crate::actionkit::Error::Transport("the batch load stopped before it answered".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    #[derive(Default, Clone)]
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        calls: Arc<AtomicU64>,
    }

    impl Loader<u32> for Recorder {
        type Value = u32;
        type Error = crate::actionkit::Error;

        async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u32>, Self::Error> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut sorted = keys.to_vec();
            sorted.sort_unstable();
            self.batches.lock().unwrap().push(sorted);
            if keys.contains(&666) {
                return Err(crate::actionkit::Error::NotFound);
            }
            // Odd keys exist, even ones do not.
            Ok(keys
                .iter()
                .filter(|k| *k % 2 == 1)
                .map(|k| (*k, k * 10))
                .collect())
        }
    }

    fn loader(rec: &Recorder, gate: &PollGate) -> BatchLoader<u32, Recorder> {
        BatchLoader::new(rec.clone(), gate.clone(), |f| {
            tokio::spawn(f);
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_of_one_pass_go_in_one_batch_on_a_busy_runtime() {
        for round in 0..50 {
            let rec = Recorder::default();
            let gate = PollGate::default();
            let l = loader(&rec, &gate);
            // Spawned tasks on the other worker, to tempt an early batch.
            let noise: Vec<_> = (0..4)
                .map(|_| {
                    tokio::spawn(async {
                        for _ in 0..100 {
                            tokio::task::yield_now().await
                        }
                    })
                })
                .collect();
            let keys: Vec<u32> = (1..=500).collect();
            let results = gate
                .run(futures::future::join_all(
                    keys.iter().map(|k| l.load_one(*k)),
                ))
                .await;
            for n in noise {
                n.await.unwrap();
            }
            assert_eq!(
                rec.calls.load(Ordering::Relaxed),
                1,
                "round {round}: {:?}",
                rec.batches
                    .lock()
                    .unwrap()
                    .iter()
                    .map(Vec::len)
                    .collect::<Vec<_>>()
            );
            for (k, r) in keys.iter().zip(results) {
                let expected = (k % 2 == 1).then_some(k * 10);
                assert_eq!(r.unwrap(), expected);
            }
        }
    }

    /// A future that counts its polls.
    struct Counted<F> {
        fut: F,
        polls: Arc<AtomicU64>,
    }

    impl<F: Future + Unpin> Future for Counted<F> {
        type Output = F::Output;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<F::Output> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            std::pin::Pin::new(&mut self.fut).poll(cx)
        }
    }

    #[tokio::test]
    async fn a_batch_task_sleeps_while_the_request_is_polled_elsewhere() {
        // The batch task runs on another runtime, so it surely runs while the request's
        // poll is under way; that poll then blocks its thread for 150 ms.
        let elsewhere = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let handle = elsewhere.handle().clone();
        let batch_polls = Arc::new(AtomicU64::new(0));
        let rec = Recorder::default();
        let gate = PollGate::default();
        let counter = batch_polls.clone();
        let l = BatchLoader::new(rec.clone(), gate.clone(), move |f| {
            handle.spawn(Counted {
                fut: f,
                polls: counter.clone(),
            });
        });
        let blocked_poll = async {
            let first = l.load_one(1);
            let second = l.load_one(3);
            // Both keys are asked for; the rest of this poll takes a while.
            let mut both = pin!(futures::future::join(first, second));
            let _ = futures::poll!(both.as_mut());
            std::thread::sleep(Duration::from_millis(150));
            both.await
        };
        let (a, b) = gate.run(blocked_poll).await;
        assert_eq!((a.unwrap(), b.unwrap()), (Some(10), Some(30)));
        assert_eq!(*rec.batches.lock().unwrap(), vec![vec![1, 3]]);
        // Polled when started, when woken at the end of the poll, and once more when
        // the load answers; a task that spun while it waited is polled thousands of
        // times in 150 ms.
        let polls = batch_polls.load(Ordering::Relaxed);
        assert!(polls <= 5, "the batch task was polled {polls} times");
        elsewhere.shutdown_background();
    }

    #[tokio::test]
    async fn full_batches_go_at_once_and_errors_reach_every_waiter() {
        let rec = Recorder::default();
        let gate = PollGate::default();
        let l = loader(&rec, &gate).max_batch_size(10);
        let got = gate
            .run(l.load_many((1..=25).collect::<Vec<_>>()))
            .await
            .unwrap();
        assert_eq!(got.len(), 13, "odd keys of 1..=25");
        // 25 keys asked at once: one batch of all of them (the limit is checked when a
        // request adds its keys).
        assert_eq!(rec.batches.lock().unwrap().len(), 1);

        let rec = Recorder::default();
        let l = loader(&rec, &gate).max_batch_size(3);
        let results = gate
            .run(futures::future::join_all((1..=7).map(|k| l.load_one(k))))
            .await;
        assert!(results.iter().all(Result::is_ok));
        let sizes: Vec<usize> = rec.batches.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 7);
        assert!(sizes.iter().all(|n| *n <= 3), "{sizes:?}");

        let rec = Recorder::default();
        let l = loader(&rec, &gate);
        let results = gate
            .run(futures::future::join_all(
                [1, 666, 3].map(|k| l.load_one(k)),
            ))
            .await;
        assert!(results.iter().all(Result::is_err), "{results:?}");
    }

    #[tokio::test]
    async fn a_cached_loader_asks_once_per_found_key() {
        let rec = Recorder::default();
        let gate = PollGate::default();
        let l = loader(&rec, &gate).cached();
        assert_eq!(gate.run(l.load_one(1)).await.unwrap(), Some(10));
        assert_eq!(gate.run(l.load_one(1)).await.unwrap(), Some(10));
        assert_eq!(gate.run(l.load_one(2)).await.unwrap(), None);
        assert_eq!(gate.run(l.load_one(2)).await.unwrap(), None);
        // 1 once (then cached), 2 twice (not found is not cached).
        assert_eq!(rec.calls.load(Ordering::Relaxed), 3);
        let uncached = loader(&rec, &gate);
        gate.run(uncached.load_one(1)).await.unwrap();
        assert_eq!(rec.calls.load(Ordering::Relaxed), 4);
    }
}
