//! Reads: users, actions, pages, by id, in batches, and windows of a user's actions.
//!
//! Batches use `<field>__in` lists of at most 100 ids where the probe found them
//! allowed (one list call per 100 ids), and otherwise fan out single GETs under the
//! client's cap. Every list answer is checked against what was asked (a filter an
//! instance silently ignored must not hand back other people's rows).
//!
//! Files: `users.rs`, `actions.rs` (single, batched, a user's windows), `pages.rs`,
//! `progress.rs` (a page's count toward its goal);
//! this file holds what they share (query encoding, `__in` batches, fan-outs).

mod actions;
mod pages;
mod progress;
mod users;

pub use progress::{GoalType, PageProgress};

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::Hash;

use futures::future::try_join_all;
use futures::{StreamExt as _, TryStreamExt as _};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::client::Client;
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

impl Client {
    /// `<collection>?id__in=…&_limit=100` per 100 ids, chunks in parallel; only the ids
    /// asked for are kept.
    pub(super) async fn by_id_in<K, T>(
        &self,
        route: &'static str,
        ids: &[K],
        key: impl Fn(&T) -> K,
        deadline: Instant,
    ) -> Result<HashMap<K, T>, Error>
    where
        K: Copy + Eq + Hash + std::fmt::Display,
        T: DeserializeOwned,
    {
        let pages = try_join_all(ids.chunks(MAX_PAGE as usize).map(|chunk| {
            let path = format!("{route}?id__in={}&_limit={MAX_PAGE}", ids_csv(chunk));
            async move { self.collect_all::<T>(route, &path, deadline).await }
        }))
        .await?;
        let wanted: std::collections::HashSet<K> = ids.iter().copied().collect();
        Ok(pages
            .into_iter()
            .flatten()
            .map(|o| (key(&o), o))
            .filter(|(k, _)| wanted.contains(k))
            .collect())
    }

    /// One single read per id, at most `fan_out` at a time (the semaphore caps the
    /// process as a whole); `None` answers (404) are left out.
    pub(super) async fn fan_out<K, T, F, Fut>(
        &self,
        ids: &[K],
        fetch: F,
    ) -> Result<HashMap<K, T>, Error>
    where
        K: Copy + Eq + Hash,
        F: Fn(K) -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        futures::stream::iter(ids.iter().copied())
            .map(|id| {
                let fut = fetch(id);
                async move { Ok::<_, Error>(fut.await?.map(|v| (id, v))) }
            })
            .buffer_unordered(self.inner.fan_out)
            .try_filter_map(|x| async move { Ok(x) })
            .try_collect()
            .await
    }

    pub(super) fn refused_in(&self, resource: &'static str, filter: &'static str) {
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
