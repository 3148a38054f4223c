//! A second cache level shared between replicas, under each process's own cache: a
//! value one replica read costs the others no upstream call. The graphql layer knows
//! only this trait; `shared_state/` implements it over Redis and `app.rs` wires it.
//!
//! [`TypedLevel`] is the reusable part: JSON values under a key namespace with one TTL
//! (the page cache uses it; another cache takes it the same way).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes by key, with a TTL, shared between replicas. Best effort: a level that cannot
/// be reached answers "absent" and stores nothing, and the caller goes upstream.
#[async_trait::async_trait]
pub trait SharedCache: Send + Sync + 'static {
    /// The values of `keys`, in the same order (`None`: absent or unreachable).
    async fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>>;
    /// Stores each value for `ttl`.
    async fn put_many(&self, entries: Vec<(String, Vec<u8>)>, ttl: Duration);
}

/// Values of type `V` in a [`SharedCache`] under `<namespace>:<key>`, as JSON, kept `ttl`.
pub struct TypedLevel<V> {
    level: Arc<dyn SharedCache>,
    namespace: &'static str,
    ttl: Duration,
    _value: PhantomData<fn() -> V>,
}

impl<V> Clone for TypedLevel<V> {
    fn clone(&self) -> Self {
        TypedLevel {
            level: self.level.clone(),
            namespace: self.namespace,
            ttl: self.ttl,
            _value: PhantomData,
        }
    }
}

impl<V: Serialize + DeserializeOwned> TypedLevel<V> {
    pub fn new(level: Arc<dyn SharedCache>, namespace: &'static str, ttl: Duration) -> Self {
        TypedLevel {
            level,
            namespace,
            ttl,
            _value: PhantomData,
        }
    }

    fn key(&self, key: &impl std::fmt::Display) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// The values found for `keys` (a value that does not decode counts as absent).
    pub async fn get_many<K: std::fmt::Display + Clone>(&self, keys: &[K]) -> Vec<(K, V)> {
        let names: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let found = self.level.get_many(&names).await;
        keys.iter()
            .zip(found)
            .filter_map(|(k, v)| {
                let v = serde_json::from_slice(&v?).ok()?;
                Some((k.clone(), v))
            })
            .collect()
    }

    /// Stores `values` for the level's TTL.
    pub async fn put_many<'a, K: std::fmt::Display + 'a>(
        &self,
        values: impl IntoIterator<Item = (&'a K, &'a V)>,
    ) where
        V: 'a,
    {
        let entries: Vec<(String, Vec<u8>)> = values
            .into_iter()
            .filter_map(|(k, v)| Some((self.key(k), serde_json::to_vec(v).ok()?)))
            .collect();
        if !entries.is_empty() {
            self.level.put_many(entries, self.ttl).await;
        }
    }
}
