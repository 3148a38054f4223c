//! Reads: users, actions, pages, by id, in batches, and windows of a user's actions.
//!
//! Batches use `<field>__in` lists of at most 100 ids where the probe found them
//! allowed (one list call per 100 ids), and otherwise fan out single GETs under the
//! client's cap. Every list answer is checked against what was asked (a filter an
//! instance silently ignored must not hand back other people's rows).
//!
//! Files: `users.rs`, `actions.rs` (single, batched, a user's windows), `pages.rs`,
//! `progress.rs` (a page's count toward its goal);
//! this file holds what they share (query encoding, reads by id through [`ById`],
//! `__in` batches, fan-outs, lookups by one field).

mod actions;
mod pages;
mod progress;
mod users;

pub use progress::{GoalType, PageProgress};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::{join_all, BoxFuture};
use futures::StreamExt as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::capabilities::Capabilities;
use super::client::Client;
use super::models::{Action, ActionId, Page, PageId, User, UserId};
use super::pagination::MAX_PAGE;
use super::Error;

/// Everything but RFC 3986 unreserved characters is escaped in query values, so `+`
/// goes as `%2B` (a bare `+` would reach Django as a space) and `&`, `#`, `=` cannot
/// break the query.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

pub(super) fn ids_csv<K: std::fmt::Display>(ids: &[K]) -> String {
    ids.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Distinct ids, in ascending order (so equal batches make equal requests).
pub(super) fn distinct<K: Ord + Copy>(ids: &[K]) -> Vec<K> {
    ids.iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The outcome of a batched read, id by id: an id ActionKit does not know is absent;
/// an id whose read failed maps to its error, and only that id (the others in the same
/// batch keep their data).
pub type Each<K, T> = HashMap<K, Result<T, Error>>;

/// A resource read by id, alone (`GET /rest/v1/<name>/<id>/`) or in batches
/// ([`Client::each`]): users, actions, pages.
pub trait ById: DeserializeOwned + Send + Sync + 'static {
    type Id: Copy + Ord + Hash + std::fmt::Display + Send + Sync + 'static;
    /// The resource's name (`user`), also the `loader` label of its metrics.
    const NAME: &'static str;
    /// Its collection, `/rest/v1/<name>/`.
    const LIST: &'static str;
    /// The route of one, `/rest/v1/<name>/{id}/`.
    const ONE: &'static str;
    fn id(&self) -> Self::Id;
    /// Whether the instance allows `id__in` on it.
    fn id_in(caps: &Capabilities) -> bool;
    /// Turns [`id_in`](Self::id_in) off (the instance refused the filter).
    fn revoke_id_in(caps: &mut Capabilities);
}

/// The [`ById`] impl of a model: its id type, its resource name and the capability
/// that says whether `id__in` is allowed on it.
macro_rules! by_id {
    ($model:ty, $id:ty, $name:literal, $id_in:ident) => {
        impl ById for $model {
            type Id = $id;
            const NAME: &'static str = $name;
            const LIST: &'static str = concat!("/rest/v1/", $name, "/");
            const ONE: &'static str = concat!("/rest/v1/", $name, "/{id}/");
            fn id(&self) -> $id {
                self.id
            }
            fn id_in(caps: &Capabilities) -> bool {
                caps.$id_in
            }
            fn revoke_id_in(caps: &mut Capabilities) {
                caps.$id_in = false;
            }
        }
    };
}

by_id!(User, UserId, "user", user_id_in);
by_id!(Action, ActionId, "action", action_id_in);
by_id!(Page, PageId, "page", page_id_in);

/// The batch as a whole: the first error of any id, else every value.
pub(crate) fn collapse<K: Eq + Hash, T>(each: Each<K, T>) -> Result<HashMap<K, T>, Error> {
    each.into_iter().map(|(k, r)| r.map(|v| (k, v))).collect()
}

/// Every id of a batch failed the same way.
pub(crate) fn all_failed<K: Copy + Eq + Hash, T>(ids: &[K], e: &Error) -> Each<K, T> {
    ids.iter().map(|&k| (k, Err(e.clone()))).collect()
}

/// List calls the splitting of one failed list of `n` ids may make: enough to isolate
/// two bad ids (`4·⌈log2 n⌉`).
fn split_budget(n: usize) -> usize {
    4 * n.next_power_of_two().trailing_zeros() as usize
}

/// Rows read and ids whose reads failed, as one `__in` list isolates them.
type Isolated<K, T> = (Vec<T>, Vec<(K, Error)>);

impl Client {
    /// `GET /rest/v1/<name>/<id>/` (e.g. [`user`](Self::user)); `Ok(None)` when
    /// ActionKit answers 404.
    pub async fn one<T: ById>(&self, id: T::Id) -> Result<Option<T>, Error> {
        let deadline = self.deadline();
        self.bounded(deadline, self.one_in::<T>(id, deadline)).await
    }

    /// [`one`](Self::one) under a deadline the caller holds.
    pub(crate) async fn one_in<T: ById>(
        &self,
        id: T::Id,
        deadline: Instant,
    ) -> Result<Option<T>, Error> {
        let path = format!("{}{id}/", T::LIST);
        self.inner.transport.get_opt(T::ONE, &path, deadline).await
    }

    /// `GET <route>?<field>=<value>` (`value` percent-encoded), first page only: the
    /// first row that `matches` (a filter an instance ignored cannot hand back another
    /// row).
    pub(super) async fn find_by<T: DeserializeOwned>(
        &self,
        route: &'static str,
        field: &str,
        value: &str,
        deadline: Instant,
        matches: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, Error> {
        let path = format!("{route}?{field}={}", encode_query_value(value));
        let rows: Vec<T> = self.first_page(route, &path, deadline).await?.objects;
        Ok(rows.into_iter().find(|r| matches(r)))
    }

    /// Many by id, id by id (e.g. [`users`](Self::users)): `GET
    /// /rest/v1/<name>/?id__in=…&_limit=100` per 100 ids where allowed, else one `GET
    /// /rest/v1/<name>/<id>/` per id under the cap. A failed read (or a list call whose
    /// failure splitting pinned on some ids) fails those ids only; missing ids are absent.
    pub async fn each<T: ById>(&self, ids: &[T::Id]) -> Each<T::Id, T> {
        self.batch(
            ids,
            T::LIST,
            T::id,
            T::id_in(&self.capabilities()),
            T::revoke_id_in,
            |id, deadline| self.one_in::<T>(id, deadline),
        )
        .await
    }
}

impl Client {
    /// `<collection>?id__in=…&_limit=100` per 100 ids, chunks in parallel; only the ids
    /// asked for are kept.
    ///
    /// A list call that fails in a way one bad row could cause (a 5xx, a timeout, a
    /// broken connection or body) is split in halves and each half asked again, down
    /// to single ids, so that only the ids that fail alone carry the error: one bad id
    /// among `n` costs at most `2·⌈log2 n⌉` more calls, nothing fails none. The splits
    /// of one list are capped at `4·⌈log2 n⌉` calls (two bad ids isolated), so that an
    /// instance failing everything is not asked `2n` times; ids still together then
    /// share the error. Errors that concern every id alike (refused credential, 429,
    /// open breaker) are not split.
    /// `Err(BadRequest)` when the instance refuses the filter itself (the caller falls
    /// back to single reads).
    pub(super) async fn by_id_in<K, T>(
        &self,
        route: &'static str,
        ids: &[K],
        key: impl Fn(&T) -> K,
        deadline: Instant,
    ) -> Result<Each<K, T>, Error>
    where
        K: Copy + Eq + Hash + std::fmt::Display + Send + Sync,
        T: DeserializeOwned + Send,
    {
        let chunks = join_all(ids.chunks(MAX_PAGE as usize).map(|chunk| async move {
            match self.in_list::<K, T>(route, chunk, deadline).await {
                Ok(rows) => Ok((rows, Vec::new())),
                Err(e @ Error::BadRequest { .. }) => Err(e),
                Err(e) => {
                    let budget = AtomicUsize::new(split_budget(chunk.len()));
                    Ok(self.isolate(route, chunk, e, deadline, &budget).await)
                }
            }
        }))
        .await;
        let wanted: HashSet<K> = ids.iter().copied().collect();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in chunks {
            let (rows, failed) = chunk?;
            out.extend(
                rows.into_iter()
                    .map(|o| (key(&o), Ok(o)))
                    .filter(|(k, _)| wanted.contains(k)),
            );
            out.extend(failed.into_iter().map(|(k, e)| (k, Err(e))));
        }
        Ok(out)
    }

    /// A batch by id: `id__in` lists where `allowed` (the probe found the filter), else
    /// (or when the instance refuses the filter, which then turns `allowed` off through
    /// `revoke`) one `single` read per id. Distinct ids, under one deadline; an error
    /// that ends the whole batch (its deadline) fails every id.
    pub(super) async fn batch<K, T, F, Fut>(
        &self,
        ids: &[K],
        route: &'static str,
        key: impl Fn(&T) -> K,
        allowed: bool,
        revoke: impl FnOnce(&mut super::Capabilities),
        single: F,
    ) -> Each<K, T>
    where
        K: Copy + Ord + Hash + std::fmt::Display + Send + Sync,
        T: DeserializeOwned + Send,
        F: Fn(K, Instant) -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        let ids = distinct(ids);
        if ids.is_empty() {
            return HashMap::new();
        }
        let deadline = self.deadline();
        let result = self
            .bounded(deadline, async {
                if allowed {
                    match self.by_id_in::<K, T>(route, &ids, key, deadline).await {
                        Err(Error::BadRequest { .. }) => {
                            let resource =
                                route.trim_start_matches("/rest/v1/").trim_end_matches('/');
                            self.refused_in(resource, "id__in");
                            self.revoke(revoke);
                        }
                        other => return other,
                    }
                }
                Ok(self.fan_out(&ids, |id| single(id, deadline)).await)
            })
            .await;
        result.unwrap_or_else(|e| all_failed(&ids, &e))
    }

    /// One `id__in` list call (every page of it).
    async fn in_list<K: std::fmt::Display, T: DeserializeOwned>(
        &self,
        route: &'static str,
        ids: &[K],
        deadline: Instant,
    ) -> Result<Vec<T>, Error> {
        let path = format!("{route}?id__in={}&_limit={MAX_PAGE}", ids_csv(ids));
        self.collect_all::<T>(route, &path, deadline).await
    }

    /// Splits a list call that failed with `err` until the failing ids stand alone.
    fn isolate<'a, K, T>(
        &'a self,
        route: &'static str,
        ids: &'a [K],
        err: Error,
        deadline: Instant,
        budget: &'a AtomicUsize,
    ) -> BoxFuture<'a, Isolated<K, T>>
    where
        K: Copy + std::fmt::Display + Send + Sync,
        T: DeserializeOwned + Send + 'a,
    {
        Box::pin(async move {
            let spend = |n: usize| {
                budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(n))
                    .is_ok()
            };
            if ids.len() < 2
                || !err.may_concern_some_keys()
                || Instant::now() >= deadline
                || !spend(2)
            {
                return (Vec::new(), ids.iter().map(|&k| (k, err.clone())).collect());
            }
            metrics::counter!("gateway_upstream_batch_splits_total").increment(1);
            let (left, right) = ids.split_at(ids.len() / 2);
            let (l, r) = tokio::join!(
                self.in_list::<K, T>(route, left, deadline),
                self.in_list::<K, T>(route, right, deadline)
            );
            let again = |half: &'a [K], result: Result<Vec<T>, Error>| async move {
                match result {
                    Ok(rows) => (rows, Vec::new()),
                    Err(e) => self.isolate(route, half, e, deadline, budget).await,
                }
            };
            let ((mut rows, mut failed), (more_rows, more_failed)) =
                tokio::join!(again(left, l), again(right, r));
            rows.extend(more_rows);
            failed.extend(more_failed);
            (rows, failed)
        })
    }

    /// One single read per id, at most `fan_out` at a time (the semaphore caps the
    /// process as a whole); `None` answers (404) are left out, a failed read fails its
    /// id only.
    pub(super) async fn fan_out<K, T, F, Fut>(&self, ids: &[K], fetch: F) -> Each<K, T>
    where
        K: Copy + Eq + Hash,
        F: Fn(K) -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        futures::stream::iter(ids.iter().copied())
            .map(|id| {
                let fut = fetch(id);
                async move { (id, fut.await) }
            })
            .buffer_unordered(self.inner.fan_out)
            .filter_map(|(id, r)| async move { r.transpose().map(|r| (id, r)) })
            .collect()
            .await
    }

    pub(super) fn refused_in(&self, resource: &str, filter: &'static str) {
        tracing::warn!(
            resource,
            filter,
            "ActionKit refused a filter its schema allows; falling back to single requests"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_budget_isolates_two_bad_ids() {
        assert_eq!(split_budget(1), 0);
        assert_eq!(split_budget(2), 4);
        assert_eq!(split_budget(50), 24);
        assert_eq!(split_budget(100), 28);
    }

    #[test]
    fn query_values_escape_plus_and_separators() {
        assert_eq!(
            encode_query_value("foo+1@example.com"),
            "foo%2B1%40example.com"
        );
        assert_eq!(encode_query_value("a&b=c#d e"), "a%26b%3Dc%23d%20e");
        assert_eq!(encode_query_value("save-the_bees.2"), "save-the_bees.2");
    }

    proptest::proptest! {
        #[test]
        fn encoded_values_decode_back_and_cannot_break_the_query(s in "\\PC{0,40}") {
            let e = encode_query_value(&s);
            proptest::prop_assert!(!e.contains(['&', '=', '+', '#', ' ', '?']));
            let back = percent_encoding::percent_decode_str(&e).decode_utf8().expect("utf8");
            proptest::prop_assert_eq!(back, s);
        }
    }
}
