//! Request-scoped dataloaders, one per upstream key kind, and the process-wide page
//! cache. Every list in a query resolves through these, so sibling fields batch into
//! the fewest client calls the instance allows.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::Loader;

use super::batch::{BatchLoader, PollGate};

use super::shared_cache::{SharedCache, TypedLevel};
use crate::actionkit::{
    self, Action, ActionFilter, ActionId, ById, Client, Page, PageId, UpstreamCounter, User,
    UserId, Window,
};

/// Pages are few and change rarely: one cache for the whole process, with a TTL; with
/// several replicas, a second level shared between them (same TTL, see
/// [`PageCache::with_shared`]).
#[derive(Clone)]
pub struct PageCache {
    inner: moka::sync::Cache<PageId, Arc<Page>>,
    ttl: Duration,
    shared: Option<TypedLevel<Page>>,
}

impl PageCache {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        PageCache {
            inner: moka::sync::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build(),
            ttl,
            shared: None,
        }
    }

    /// Adds a shared second level (`page:<id>`, the same TTL) under the process's cache.
    pub fn with_shared(mut self, level: Arc<dyn SharedCache>) -> Self {
        self.shared = Some(TypedLevel::new(level, "page", self.ttl));
        self
    }

    /// The cached page, if any: read without going through a loader, so that the
    /// `page` of every action in a long list costs one cache lookup, not one loader
    /// round (lock, channel, batch task) each.
    pub fn get(&self, id: PageId) -> Option<Arc<Page>> {
        self.inner.get(&id)
    }
}

fn batch_size(loader: &'static str, n: usize) {
    metrics::histogram!("gateway_dataloader_batch_size", "loader" => loader).record(n as f64);
}

/// What a loader hands out for one key: its value, or the error of that key alone.
/// A batch never fails as a whole: a key whose read failed fails only the fields that
/// asked for it, and the other keys of the batch keep their data.
pub type Keyed<T> = Result<Arc<T>, actionkit::Error>;

fn keyed<K: Eq + std::hash::Hash, T>(each: actionkit::Each<K, T>) -> HashMap<K, Keyed<T>> {
    each.into_iter()
        .map(|(k, r)| (k, r.map(Arc::new)))
        .collect()
}

/// One key's answer as the resolvers want it: `Ok(None)` when it does not exist.
pub fn flatten<T>(
    loaded: Result<Option<Keyed<T>>, actionkit::Error>,
) -> Result<Option<Arc<T>>, actionkit::Error> {
    loaded?.transpose()
}

/// A single read as one key's answer.
fn one<K: Eq + std::hash::Hash, T>(
    key: K,
    read: Result<Option<T>, actionkit::Error>,
) -> HashMap<K, Keyed<T>> {
    match read.transpose() {
        None => HashMap::new(),
        Some(r) => HashMap::from([(key, r.map(Arc::new))]),
    }
}

/// Users or actions by id (`T`: [`User`] or [`Action`]).
pub struct ByIdLoader<T>(pub Client, PhantomData<fn() -> T>);

impl<T> ByIdLoader<T> {
    pub fn new(client: Client) -> Self {
        ByIdLoader(client, PhantomData)
    }
}

impl<T: ById> Loader<T::Id> for ByIdLoader<T> {
    type Value = Keyed<T>;
    type Error = actionkit::Error;

    async fn load(&self, keys: &[T::Id]) -> Result<HashMap<T::Id, Self::Value>, Self::Error> {
        batch_size(T::NAME, keys.len());
        Ok(match keys {
            [one_key] => one(*one_key, self.0.one(*one_key).await),
            _ => keyed(self.0.each(keys).await),
        })
    }
}

/// Pages by id, through the process-wide cache.
pub struct PageLoader {
    pub client: Client,
    pub cache: PageCache,
    pub hits: Arc<AtomicU64>,
}

impl Loader<PageId> for PageLoader {
    type Value = Keyed<Page>;
    type Error = actionkit::Error;

    async fn load(&self, keys: &[PageId]) -> Result<HashMap<PageId, Self::Value>, Self::Error> {
        batch_size("page", keys.len());
        let mut out = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        for key in keys {
            match self.cache.inner.get(key) {
                Some(page) => {
                    out.insert(*key, Ok(page));
                }
                None => missing.push(*key),
            }
        }
        let hits = (keys.len() - missing.len()) as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        metrics::counter!("gateway_page_cache_total", "result" => "hit").increment(hits);
        // The shared level (another replica may have read them).
        if let (Some(shared), false) = (&self.cache.shared, missing.is_empty()) {
            let found = shared.get_many(&missing).await;
            metrics::counter!("gateway_page_cache_total", "result" => "shared_hit")
                .increment(found.len() as u64);
            for (id, page) in found {
                let page = Arc::new(page);
                self.cache.inner.insert(id, page.clone());
                out.insert(id, Ok(page));
            }
            missing.retain(|id| !out.contains_key(id));
        }
        metrics::counter!("gateway_page_cache_total", "result" => "miss")
            .increment(missing.len() as u64);
        let fetched = match missing.as_slice() {
            [] => HashMap::new(),
            [one_key] => one(*one_key, self.client.page(*one_key).await),
            many => keyed(self.client.each(many).await),
        };
        if let Some(shared) = &self.cache.shared {
            shared
                .put_many(
                    fetched
                        .iter()
                        .filter_map(|(id, page)| page.as_ref().ok().map(|p| (id, &**p))),
                )
                .await;
        }
        for (id, page) in fetched {
            if let Ok(page) = &page {
                self.cache.inner.insert(id, page.clone());
            }
            out.insert(id, page);
        }
        Ok(out)
    }
}

/// One window of one user's actions: the key of [`UserActionsLoader`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserActionsKey {
    pub user: UserId,
    pub filter: ActionFilter,
    pub offset: u64,
    pub limit: u64,
}

/// Windows of users' actions. A batch asking for several users with the same filter
/// is read in one `user__in` sweep when the instance allows it and the sweep costs no
/// more calls than reading each window alone; otherwise each window is one call.
pub struct UserActionsLoader(pub Client);

/// A window of actions as the loaders hand it out: each action behind an `Arc`, so
/// that the nodes built from it share the decoded action instead of copying it.
pub type ActionWindow = Window<Arc<Action>>;

fn shared(window: Window<Action>) -> ActionWindow {
    Window {
        total_count: window.total_count,
        objects: window.objects.into_iter().map(Arc::new).collect(),
    }
}

impl Loader<UserActionsKey> for UserActionsLoader {
    type Value = Result<Arc<ActionWindow>, actionkit::Error>;
    type Error = actionkit::Error;

    async fn load(
        &self,
        keys: &[UserActionsKey],
    ) -> Result<HashMap<UserActionsKey, Self::Value>, Self::Error> {
        batch_size("user_actions", keys.len());
        let mut by_filter: HashMap<&ActionFilter, Vec<&UserActionsKey>> = HashMap::new();
        for key in keys {
            by_filter.entry(&key.filter).or_default().push(key);
        }
        let mut out = HashMap::with_capacity(keys.len());
        let groups = by_filter
            .into_iter()
            .map(|(filter, group)| self.load_group(filter, group));
        for result in futures::future::join_all(groups).await {
            out.extend(result);
        }
        Ok(out)
    }
}

impl UserActionsLoader {
    async fn load_group(
        &self,
        filter: &ActionFilter,
        group: Vec<&UserActionsKey>,
    ) -> Vec<(UserActionsKey, Result<Arc<ActionWindow>, actionkit::Error>)> {
        let mut users: Vec<UserId> = group.iter().map(|k| k.user).collect();
        users.sort_unstable();
        users.dedup();
        if users.len() > 1 && self.0.capabilities().action_user_in {
            // One window per key would cost at least one call per key; the sweep is
            // worth it only when it needs fewer calls than that.
            match self.0.actions_of_users(&users, filter, group.len()).await {
                Ok(Some(all)) => return sweep_windows(group, all),
                Ok(None) => {}
                // One member's rows can fail the sweep of all (a corrupt row, a
                // history too long to read in time): each window is then read alone,
                // so that only that member's windows fail.
                Err(e) if e.may_concern_some_keys() => {
                    metrics::counter!("gateway_upstream_batch_splits_total").increment(1);
                }
                Err(e) => {
                    return group
                        .into_iter()
                        .map(|k| (k.clone(), Err(e.clone())))
                        .collect()
                }
            }
        }
        let windows = group.into_iter().map(|key| async move {
            let window = self
                .0
                .user_actions(key.user, filter, key.offset, key.limit)
                .await;
            (key.clone(), window.map(|w| Arc::new(shared(w))))
        });
        futures::future::join_all(windows).await
    }
}

/// The windows of a group cut from one sweep of its users' actions.
fn sweep_windows(
    group: Vec<&UserActionsKey>,
    all: HashMap<UserId, Vec<Action>>,
) -> Vec<(UserActionsKey, Result<Arc<ActionWindow>, actionkit::Error>)> {
    let mut all: HashMap<UserId, Vec<Arc<Action>>> = all
        .into_iter()
        .map(|(user, actions)| (user, actions.into_iter().map(Arc::new).collect()))
        .collect();
    group
        .into_iter()
        .map(|key| {
            let actions = all.entry(key.user).or_default();
            let window = Window {
                total_count: actions.len() as u64,
                objects: actions
                    .iter()
                    .skip(key.offset as usize)
                    .take(key.limit as usize)
                    .cloned()
                    .collect(),
            };
            (key.clone(), Ok(Arc::new(window)))
        })
        .collect()
}

/// The largest batch the client sends as one list call (`id__in`, `user__in`): a
/// loader holding this many keys sends at once instead of waiting out its delay.
pub const MAX_BATCH: usize = 100;

/// The loaders of one GraphQL request.
pub struct Loaders {
    /// The upstream calls of this request (loads run in spawned tasks, each scoped to it).
    pub upstream: Arc<UpstreamCounter>,
    /// Pages this request found in the process-wide cache.
    pub page_cache_hits: Arc<AtomicU64>,
    pub users: BatchLoader<UserId, ByIdLoader<User>>,
    pub actions: BatchLoader<ActionId, ByIdLoader<Action>>,
    pub pages: BatchLoader<PageId, PageLoader>,
    pub user_actions: BatchLoader<UserActionsKey, UserActionsLoader>,
    /// Marks the polls of this request's execution: batches gather the keys of one
    /// poll (`batch.rs`); the handler runs the execution inside [`PollGate::run`].
    pub gate: PollGate,
    page_cache: PageCache,
    /// Hits of [`Loaders::page`], added to the metric once when the request ends.
    direct_hits: AtomicU64,
}

impl Drop for Loaders {
    fn drop(&mut self) {
        let hits = self.direct_hits.load(Ordering::Relaxed);
        if hits > 0 {
            metrics::counter!("gateway_page_cache_total", "result" => "hit").increment(hits);
        }
    }
}

impl Loaders {
    /// Builds the loaders for one request; nothing here outlives it but the page cache.
    pub fn new(client: &Client, pages: &PageCache) -> Self {
        Self::for_caller(client, pages, None)
    }

    /// Like [`Loaders::new`], with the calls made on behalf of `caller`: the client
    /// shares its requests in flight fairly between callers.
    pub fn for_caller(client: &Client, pages: &PageCache, caller: Option<Arc<str>>) -> Self {
        let upstream = match caller {
            Some(caller) => UpstreamCounter::for_caller(caller),
            None => UpstreamCounter::new(),
        };
        let page_cache_hits = Arc::new(AtomicU64::new(0));
        // Loads run in spawned tasks; each is scoped to this request's counter so that
        // its upstream calls are accounted to the operation that caused them.
        let spawner = |counter: Arc<UpstreamCounter>| {
            move |fut: futures::future::BoxFuture<'static, ()>| {
                let counter = counter.clone();
                tokio::spawn(async move { counter.scope(fut).await });
            }
        };
        let gate = PollGate::default();
        Loaders {
            users: BatchLoader::new(
                ByIdLoader::new(client.clone()),
                gate.clone(),
                spawner(upstream.clone()),
            )
            .max_batch_size(MAX_BATCH),
            actions: BatchLoader::new(
                ByIdLoader::new(client.clone()),
                gate.clone(),
                spawner(upstream.clone()),
            )
            .max_batch_size(MAX_BATCH),
            pages: BatchLoader::new(
                PageLoader {
                    client: client.clone(),
                    cache: pages.clone(),
                    hits: page_cache_hits.clone(),
                },
                gate.clone(),
                spawner(upstream.clone()),
            )
            .max_batch_size(MAX_BATCH),
            page_cache: pages.clone(),
            // Cached within the request so that `user(id:)` can start the actions
            // read alongside the user and the `actions` field finds it done.
            user_actions: BatchLoader::new(
                UserActionsLoader(client.clone()),
                gate.clone(),
                spawner(upstream.clone()),
            )
            .cached(),
            gate,
            upstream,
            page_cache_hits,
            direct_hits: AtomicU64::new(0),
        }
    }

    /// A page by id: from the process-wide cache when it is there, else through the
    /// request's page loader (batched with the other misses).
    pub async fn page(&self, id: PageId) -> Result<Option<Arc<Page>>, actionkit::Error> {
        match self.page_cache.get(id) {
            Some(page) => {
                self.page_cache_hits.fetch_add(1, Ordering::Relaxed);
                self.direct_hits.fetch_add(1, Ordering::Relaxed);
                Ok(Some(page))
            }
            None => flatten(self.pages.load_one(id).await),
        }
    }

    /// A user by id, batched with the request's other users; the error is this
    /// user's own (a failure of another user in the batch is not).
    pub async fn user(&self, id: UserId) -> Result<Option<Arc<User>>, actionkit::Error> {
        flatten(self.users.load_one(id).await)
    }

    /// An action by id, batched like [`Loaders::user`].
    pub async fn action(&self, id: ActionId) -> Result<Option<Arc<Action>>, actionkit::Error> {
        flatten(self.actions.load_one(id).await)
    }

    /// One window of a user's actions, batched like [`Loaders::user`]; empty when
    /// there is nothing to read.
    pub async fn user_actions(
        &self,
        key: UserActionsKey,
    ) -> Result<Arc<ActionWindow>, actionkit::Error> {
        match self.user_actions.load_one(key).await? {
            Some(window) => window,
            None => Ok(Arc::new(Window {
                total_count: 0,
                objects: Vec::new(),
            })),
        }
    }
}
