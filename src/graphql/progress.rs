//! Page progress: the process-wide cache of readings ([`ProgressCache`], the seam a
//! second cache level can go behind), the hub that keeps one poll per watched page
//! however many subscribers it has ([`ProgressHub`]), and the GraphQL types
//! (`PageProgress`, `Subscription.pageProgress`).
//!
//! - A reading is ActionKit's count for one page (`Client::page_progress`), stamped
//!   with when it was read. Readings are cached by page name for `progress.
//!   cache_ttl_secs`; concurrent misses on one page share one load (moka's
//!   `try_get_with`), so a thousand requests for one page's progress cost one upstream
//!   call per period.
//! - Subscribers of one page share one `tokio::sync::watch` channel and one poller
//!   task, which reads through the same cache once per period and pushes a reading
//!   only when it changed. The poller stops when the page's last subscriber leaves.
//! - An action this process processed moves the count at once ([`ProgressHub::bump`],
//!   fed by the outbox's `processed_pages`): +1 action, pushed to the page's
//!   subscribers and put in the cache. For two periods after a bump, a reading lower
//!   than the bumped count is raised to it (ActionKit may count a moment later), so
//!   a thermometer does not step back.
//! - On shutdown ([`ProgressHub::shutdown`]) every subscription stream ends, which
//!   tells each subscriber `complete`; the WebSocket layer then closes with 1001.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use async_graphql::{Context, Enum, Object, Subscription};
use futures::Stream;
use tokio::sync::watch;
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use super::access;
use super::error::{ErrorCode, GatewayError, GqlResult};
use super::shared_cache::{SharedCache, TypedLevel};
use super::types::check_page_name;
use crate::actionkit::{self, Client, GoalType, PageProgress};

/// Settings of progress reads and subscriptions (`[progress]` in the configuration).
#[derive(Debug, Clone)]
pub struct ProgressSettings {
    /// How long a reading is cached, and how often a watched page is polled.
    pub ttl: Duration,
    /// Pages whose readings are cached at most.
    pub capacity: u64,
    /// Subscriptions one WebSocket connection may hold at once.
    pub max_subscriptions_per_connection: usize,
}

impl Default for ProgressSettings {
    fn default() -> Self {
        ProgressSettings {
            ttl: Duration::from_secs(5),
            capacity: 10_000,
            max_subscriptions_per_connection: 20,
        }
    }
}

/// One page's progress as read (or moved by a processed action), and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub page: Arc<str>,
    pub progress: PageProgress,
    pub read_at: SystemTime,
}

impl Reading {
    /// Same numbers (the time aside).
    fn same_count(&self, other: &Reading) -> bool {
        self.progress == other.progress
    }
}

type Cached = Option<Arc<Reading>>;

/// The process-wide cache of readings by page name, with single-flight loads. The
/// seam for a shared second level (Redis): callers only use [`get_or_load`],
/// [`get`] and [`insert`].
///
/// [`get_or_load`]: ProgressCache::get_or_load
/// [`get`]: ProgressCache::get
/// [`insert`]: ProgressCache::insert
#[derive(Clone)]
pub struct ProgressCache {
    inner: moka::future::Cache<Arc<str>, Cached>,
    ttl: Duration,
    /// With several replicas: readings shared through `progress:<page>` (Redis), so
    /// that one replica's read serves the others for the same TTL.
    shared: Option<TypedLevel<SharedReading>>,
}

/// A reading as the shared level keeps it (the page name is the key).
#[derive(Serialize, Deserialize)]
struct SharedReading {
    progress: PageProgress,
    read_at: SystemTime,
}

impl ProgressCache {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        let ttl = ttl.max(Duration::from_millis(100));
        ProgressCache {
            inner: moka::future::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build(),
            ttl,
            shared: None,
        }
    }

    /// Adds a level shared between replicas under the process's cache: a miss here
    /// looks there before reading ActionKit, and what is read (or moved by a processed
    /// action) is stored there too. A page is then read from ActionKit about once per
    /// TTL by all replicas together; a reading is at most two TTLs old (one in the
    /// shared level, one in a process).
    pub fn with_shared(mut self, level: Arc<dyn SharedCache>) -> Self {
        self.shared = Some(TypedLevel::new(level, "progress", self.ttl));
        self
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached reading of `page` (`Some(None)`: cached as "no such page"), or the
    /// result of `load`, which runs once for all concurrent callers of one page and is
    /// cached when it succeeds.
    pub async fn get_or_load<F, Fut>(
        &self,
        page: &Arc<str>,
        load: F,
    ) -> Result<Cached, Arc<actionkit::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, actionkit::Error>>,
    {
        let shared = self.shared.clone();
        let name = page.clone();
        let load = async move {
            if let Some(level) = &shared {
                if let Some((_, r)) = level.get_many(std::slice::from_ref(&name)).await.pop() {
                    return Ok(Some(Arc::new(Reading {
                        page: name,
                        progress: r.progress,
                        read_at: r.read_at,
                    })));
                }
            }
            let loaded = load().await?;
            if let (Some(level), Some(reading)) = (&shared, &loaded) {
                put_shared(level, reading).await;
            }
            Ok(loaded)
        };
        self.inner.try_get_with(page.clone(), load).await
    }

    /// What is cached for `page`, without loading.
    pub async fn get(&self, page: &str) -> Option<Cached> {
        self.inner.get(page).await
    }

    /// Replaces `page`'s reading (a processed action moved it).
    pub async fn insert(&self, page: Arc<str>, reading: Arc<Reading>) {
        if let Some(level) = &self.shared {
            put_shared(level, &reading).await;
        }
        self.inner.insert(page, Some(reading)).await;
    }
}

async fn put_shared(level: &TypedLevel<SharedReading>, reading: &Reading) {
    let value = SharedReading {
        progress: reading.progress.clone(),
        read_at: reading.read_at,
    };
    level.put_many([(&reading.page, &value)]).await;
}

/// The watchers of one page: their channel and the poller feeding it. The poller stops
/// when the last subscriber drops its handle.
struct PageWatch {
    name: Arc<str>,
    tx: Arc<watch::Sender<Cached>>,
    poller: tokio::task::JoinHandle<()>,
    hub: Weak<HubInner>,
}

impl Drop for PageWatch {
    fn drop(&mut self) {
        self.poller.abort();
        if let Some(hub) = self.hub.upgrade() {
            let mut pages = lock(&hub.pages);
            // A new watch may already have taken the name.
            if pages.get(&self.name).is_some_and(|w| w.strong_count() == 0) {
                pages.remove(&self.name);
            }
        }
        metrics::gauge!("gateway_progress_pages_watched").decrement(1.0);
    }
}

struct HubInner {
    client: Client,
    cache: ProgressCache,
    pages: Mutex<HashMap<Arc<str>, Weak<PageWatch>>>,
    /// After a bump: the count a reading is raised to, until when.
    floors: Mutex<HashMap<Arc<str>, (u64, Instant)>>,
    closing: watch::Sender<bool>,
    upstream_reads: AtomicU64,
    subscribers: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Page progress for the whole process: cached reads, shared polls, bumps, shutdown.
/// Cheap to clone.
#[derive(Clone)]
pub struct ProgressHub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for ProgressHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressHub")
            .field("ttl", &self.inner.cache.ttl())
            .finish_non_exhaustive()
    }
}

impl ProgressHub {
    pub fn new(client: Client, settings: &ProgressSettings) -> Self {
        ProgressHub::with_cache(client, ProgressCache::new(settings.ttl, settings.capacity))
    }

    /// A hub over a given cache (one with a shared level, for several replicas).
    pub fn with_cache(client: Client, cache: ProgressCache) -> Self {
        ProgressHub {
            inner: Arc::new(HubInner {
                client,
                cache,
                pages: Mutex::new(HashMap::new()),
                floors: Mutex::new(HashMap::new()),
                closing: watch::channel(false).0,
                upstream_reads: AtomicU64::new(0),
                subscribers: AtomicUsize::new(0),
            }),
        }
    }

    /// Listens to the outbox's processed actions and bumps their pages, until the
    /// outbox is gone. Needs a Tokio runtime (does nothing without one).
    pub fn follow(&self, mut processed: tokio::sync::broadcast::Receiver<String>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let hub = Arc::downgrade(&self.inner);
        rt.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match processed.recv().await {
                    Ok(page) => match hub.upgrade() {
                        Some(inner) => ProgressHub { inner }.bump(&page).await,
                        None => return,
                    },
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// How long readings are cached (and how often watched pages are polled).
    pub fn period(&self) -> Duration {
        self.inner.cache.ttl()
    }

    /// Upstream progress reads this process made (each one `Client::page_progress`).
    pub fn upstream_reads(&self) -> u64 {
        self.inner.upstream_reads.load(Ordering::Relaxed)
    }

    /// Subscriptions open now.
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }

    /// Pages with at least one subscriber now (one poller each).
    pub fn pages_watched(&self) -> usize {
        lock(&self.inner.pages)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Ends every subscription (each subscriber hears `complete`) and refuses new ones.
    pub fn shutdown(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Becomes true on shutdown.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// The progress of the page named `name` through the cache; `None`: no such page.
    pub async fn read(&self, name: &str) -> Result<Cached, GatewayError> {
        let key: Arc<str> = Arc::from(name);
        let inner = &self.inner;
        let load = || async {
            inner.upstream_reads.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("gateway_progress_upstream_reads_total").increment(1);
            let progress = inner.client.page_progress(name).await?;
            Ok(progress.map(|mut progress| {
                if let Some((floor, until)) = lock(&inner.floors).get(name).copied() {
                    if Instant::now() < until && progress.actions < floor {
                        progress.actions = floor;
                    }
                }
                Arc::new(Reading {
                    page: key.clone(),
                    progress,
                    read_at: SystemTime::now(),
                })
            }))
        };
        inner
            .cache
            .get_or_load(&key, load)
            .await
            .map_err(|e| GatewayError::from((*e).clone()))
    }

    /// One more action on `page`, processed by this process: pushed to the page's
    /// subscribers and cached at once. Nothing happens for a page nobody read lately.
    pub async fn bump(&self, page: &str) {
        let inner = &self.inner;
        let watch = lock(&inner.pages).get(page).and_then(Weak::upgrade);
        let current = match &watch {
            Some(w) => w.tx.borrow().clone(),
            None => None,
        };
        let current = match current {
            Some(c) => Some(c),
            None => inner.cache.get(page).await.flatten(),
        };
        let Some(current) = current else {
            return;
        };
        let mut next = (*current).clone();
        next.progress.actions += 1;
        next.read_at = SystemTime::now();
        let next = Arc::new(next);
        {
            let now = Instant::now();
            let mut floors = lock(&inner.floors);
            if floors.len() >= 1024 {
                floors.retain(|_, (_, until)| *until > now);
            }
            floors.insert(
                next.page.clone(),
                (
                    next.progress.actions,
                    now + inner.cache.ttl() * 2 + Duration::from_secs(1),
                ),
            );
        }
        inner.cache.insert(next.page.clone(), next.clone()).await;
        if let Some(w) = watch {
            w.tx.send_replace(Some(next));
        }
        metrics::counter!("gateway_progress_bumps_total").increment(1);
    }

    /// The watch of `name`, started (with `first` as its value) if nobody watches it.
    fn watch(&self, name: &Arc<str>, first: &Arc<Reading>) -> Arc<PageWatch> {
        let mut pages = lock(&self.inner.pages);
        if let Some(w) = pages.get(name).and_then(Weak::upgrade) {
            return w;
        }
        let tx = Arc::new(watch::channel(Some(first.clone())).0);
        let poller = tokio::spawn(poll(self.clone(), name.clone(), tx.clone()));
        let w = Arc::new(PageWatch {
            name: name.clone(),
            tx,
            poller,
            hub: Arc::downgrade(&self.inner),
        });
        pages.insert(name.clone(), Arc::downgrade(&w));
        metrics::gauge!("gateway_progress_pages_watched").increment(1.0);
        w
    }

    /// The readings of `name`: the current one, then each change, until the caller
    /// drops the stream or the gateway shuts down.
    pub async fn subscribe(
        &self,
        name: &str,
    ) -> Result<impl Stream<Item = Arc<Reading>> + Send + 'static, GatewayError> {
        if *self.inner.closing.borrow() {
            return Err(shutting_down());
        }
        let Some(first) = self.read(name).await? else {
            return Err(GatewayError::not_found("no page has this name"));
        };
        let key: Arc<str> = Arc::from(name);
        let watch = self.watch(&key, &first);
        let mut rx = watch.tx.subscribe();
        rx.borrow_and_update();
        let closing = self.inner.closing.subscribe();
        let count = Subscribed::new(self.inner.clone());
        struct State {
            rx: watch::Receiver<Cached>,
            closing: watch::Receiver<bool>,
            last: Option<Arc<Reading>>,
            first: Option<Arc<Reading>>,
            _watch: Arc<PageWatch>,
            _count: Subscribed,
        }
        let state = State {
            rx,
            closing,
            last: None,
            first: Some(first),
            _watch: watch,
            _count: count,
        };
        Ok(futures::stream::unfold(state, |mut s| async move {
            if let Some(first) = s.first.take() {
                s.last = Some(first.clone());
                return Some((first, s));
            }
            loop {
                tokio::select! {
                    changed = s.rx.changed() => {
                        changed.ok()?;
                    }
                    _ = closed(&mut s.closing) => return None,
                }
                let Some(next) = s.rx.borrow_and_update().clone() else {
                    continue;
                };
                if s.last.as_ref().is_some_and(|l| l.same_count(&next)) {
                    continue;
                }
                s.last = Some(next.clone());
                return Some((next, s));
            }
        }))
    }
}

/// Resolves once `closing` is true (or its sender is gone).
pub async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// Counts a subscription while it lives.
struct Subscribed(Arc<HubInner>);

impl Subscribed {
    fn new(hub: Arc<HubInner>) -> Self {
        hub.subscribers.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("gateway_progress_subscribers").increment(1.0);
        Subscribed(hub)
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("gateway_progress_subscribers").decrement(1.0);
    }
}

fn shutting_down() -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamUnavailable,
        "the gateway is shutting down; subscribe again in a moment",
    )
}

/// The poller of one watched page: a read through the cache once per period, pushed
/// when it changed. Aborted when the page's last subscriber leaves.
async fn poll(hub: ProgressHub, name: Arc<str>, tx: Arc<watch::Sender<Cached>>) {
    let mut closing = hub.closing();
    // A little over the period, so that the reading cached at the last poll has
    // expired and this one goes upstream (one read per period, not one per two).
    let every = hub.period() + (hub.period() / 20).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = closed(&mut closing) => return,
        }
        match hub.read(&name).await {
            Ok(Some(reading)) => {
                tx.send_if_modified(|cur| match cur {
                    Some(c) if c.same_count(&reading) => false,
                    _ => {
                        *cur = Some(reading.clone());
                        true
                    }
                });
            }
            // The page went away, or ActionKit failed: subscribers keep the last value.
            Ok(None) => {}
            Err(e) => tracing::debug!(code = e.code.as_str(), "progress poll failed"),
        }
    }
}

/// Subscription slots of one WebSocket connection (in its connection data).
#[derive(Clone)]
pub struct SubscriptionSlots {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl SubscriptionSlots {
    pub fn new(max: usize) -> Self {
        SubscriptionSlots {
            used: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
        }
    }

    fn take(&self) -> Result<SlotGuard, GatewayError> {
        let prev = self.used.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return Err(GatewayError::new(
                ErrorCode::RateLimited,
                format!(
                    "at most {} subscriptions per connection; stop one first",
                    self.max
                ),
            ));
        }
        Ok(SlotGuard(self.used.clone()))
    }
}

struct SlotGuard(Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a page's goal counts.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProgressGoalType {
    /// Actions taken on the page (signatures, signups, RSVPs, ...).
    Actions,
    /// Money raised (ActionKit's `dollars` or `money` goal type).
    Money,
    /// A goal type the gateway does not know; `current` counts actions.
    Other,
}

/// A page's progress toward its goal, as ActionKit counted it, at most
/// `progress.cache_ttl_secs` old (5 s by default) unless an action processed through
/// this gateway moved it since.
pub struct PageProgressNode(pub Arc<Reading>);

/// A page's progress toward its goal, as ActionKit counted it, at most
/// `progress.cache_ttl_secs` old (5 s by default) unless an action processed through
/// this gateway moved it since.
#[Object(name = "PageProgress")]
impl PageProgressNode {
    /// The page's short name.
    async fn page_name(&self) -> &str {
        &self.0.page
    }
    /// The count toward the goal: the number of actions taken on the page, or for a
    /// `MONEY` goal the amount raised where the instance reports it (else the number of
    /// donations). ActionKit's count, read at `asOf`; actions processed through this
    /// gateway since are added at once.
    async fn current(&self) -> f64 {
        let p = &self.0.progress;
        match (&p.goal_type, p.amount) {
            (GoalType::Money, Some(amount)) => amount,
            _ => p.actions as f64,
        }
    }
    /// The number of actions taken on the page.
    async fn actions(&self) -> i64 {
        i64::try_from(self.0.progress.actions).unwrap_or(i64::MAX)
    }
    /// The amount raised on the page, when the instance reports it (its progress
    /// endpoint does); null otherwise.
    async fn amount(&self) -> Option<f64> {
        self.0.progress.amount
    }
    /// The page's goal; null when the page has none.
    async fn goal(&self) -> Option<i64> {
        self.0
            .progress
            .goal
            .map(|g| i64::try_from(g).unwrap_or(i64::MAX))
    }
    /// What the goal counts.
    async fn goal_type(&self) -> ProgressGoalType {
        match self.0.progress.goal_type {
            GoalType::Actions => ProgressGoalType::Actions,
            GoalType::Money => ProgressGoalType::Money,
            GoalType::Other(_) => ProgressGoalType::Other,
        }
    }
    /// `current` as a percentage of `goal` (may pass 100); null without a goal.
    async fn percent(&self) -> Option<f64> {
        let goal = self.0.progress.goal? as f64;
        let current = match (&self.0.progress.goal_type, self.0.progress.amount) {
            (GoalType::Money, Some(amount)) => amount,
            _ => self.0.progress.actions as f64,
        };
        Some(((current / goal) * 1000.0).round() / 10.0)
    }
    /// When the count was read from ActionKit (or moved by a processed action), RFC
    /// 3339, UTC.
    async fn as_of(&self) -> String {
        let t = time::OffsetDateTime::from(self.0.read_at);
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

/// The progress of a page for a resolver (through the hub in schema data).
pub(super) async fn page_progress(
    ctx: &Context<'_>,
    name: &str,
) -> GqlResult<Option<PageProgressNode>> {
    let Some(hub) = ctx.data_opt::<ProgressHub>() else {
        return Err(GatewayError::new(ErrorCode::Internal, "progress is not available").into());
    };
    Ok(hub.read(name).await?.map(PageProgressNode))
}

/// Checks that the caller may see this page's progress: `read` and `self` any page, a
/// `submit` key the pages it may submit to.
pub(super) fn check_progress_page(ctx: &Context<'_>, page: &str) -> Result<(), GatewayError> {
    let p = access::principal(ctx);
    if p.scopes.read || p.scopes.member || (p.scopes.submit && p.may_submit_to(page)) {
        Ok(())
    } else {
        Err(GatewayError::new(
            ErrorCode::Forbidden,
            "this key may not read this page",
        ))
    }
}

pub struct SubscriptionRoot;

/// Live updates, over WebSocket (`graphql-transport-ws`) on `/graphql`.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The progress of the page with this short name: its current value at once, then
    /// a new value whenever the count changes (polled once per `progress.cache_ttl_secs`
    /// for all subscribers of the page together, and at once when this gateway
    /// processes an action on it). Over WebSocket (`graphql-transport-ws`) on
    /// `/graphql`; ends with `complete` when the gateway shuts down.
    async fn page_progress(
        &self,
        ctx: &Context<'_>,
        page: String,
    ) -> Result<impl Stream<Item = PageProgressNode>, async_graphql::Error> {
        check_page_name(&page, "page")?;
        check_progress_page(ctx, &page)?;
        let slot = match ctx.data_opt::<SubscriptionSlots>() {
            Some(slots) => Some(slots.take()?),
            None => None,
        };
        let Some(hub) = ctx.data_opt::<ProgressHub>() else {
            return Err(GatewayError::new(ErrorCode::Internal, "progress is not available").into());
        };
        let stream = hub.subscribe(&page).await?;
        use futures::StreamExt as _;
        Ok(stream.map(move |r| {
            let _slot = &slot;
            PageProgressNode(r)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(page: &str, actions: u64) -> Arc<Reading> {
        Arc::new(Reading {
            page: Arc::from(page),
            progress: PageProgress {
                actions,
                amount: None,
                goal: Some(100),
                goal_type: GoalType::Actions,
            },
            read_at: SystemTime::now(),
        })
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load_and_failures_are_not_cached() {
        let cache = ProgressCache::new(Duration::from_secs(60), 100);
        let loads = Arc::new(AtomicUsize::new(0));
        let key: Arc<str> = Arc::from("save-the-bees");
        let got = futures::future::join_all((0..1000).map(|_| {
            let (cache, loads, key) = (cache.clone(), loads.clone(), key.clone());
            async move {
                cache
                    .get_or_load(&key, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(Some(reading("save-the-bees", 7)))
                    })
                    .await
            }
        }))
        .await;
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(got
            .iter()
            .all(|r| matches!(r, Ok(Some(r)) if r.progress.actions == 7)));
        // A failed load is not kept: the next caller loads again.
        let other: Arc<str> = Arc::from("fair-rent");
        let failed = cache
            .get_or_load(&other, || async { Err(actionkit::Error::Timeout) })
            .await;
        assert!(failed.is_err());
        let again = cache
            .get_or_load(&other, || async { Ok(Some(reading("fair-rent", 3))) })
            .await;
        assert!(matches!(again, Ok(Some(r)) if r.progress.actions == 3));
        // `insert` replaces what is cached (a bump).
        cache.insert(key.clone(), reading("save-the-bees", 8)).await;
        assert!(
            matches!(cache.get("save-the-bees").await, Some(Some(r)) if r.progress.actions == 8)
        );
    }

    #[test]
    fn subscription_slots_are_capped_and_given_back() {
        let slots = SubscriptionSlots::new(2);
        let a = slots.take().expect("first");
        let _b = slots.take().expect("second");
        let refused = slots.take().err().expect("third refused");
        assert_eq!(refused.code, ErrorCode::RateLimited);
        drop(a);
        assert!(slots.take().is_ok());
    }
}
