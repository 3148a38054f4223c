//! A short-lived, process-wide map from page short name to page id and kind, used to
//! filter actions by page name on instances that do not allow `page__name`.
//!
//! Pages are few and stable (DESIGN.md allows a TTL cache for them), and without this
//! a batch of N users' actions filtered by one page name would read that page N times.
//! Concurrent lookups of one name share a single request; failures are not cached;
//! an absent page is cached like a present one, for the same TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::models::{ActionKind, PageId};

pub(crate) type PageRef = Option<(PageId, ActionKind)>;

/// Entries beyond this many are dropped wholesale (names come from client input).
const MAX_ENTRIES: usize = 1024;

/// When the lookup started, and its (shared) result.
type Entry = (Instant, Arc<OnceCell<PageRef>>);

pub(crate) struct PageNameCache {
    ttl: Duration,
    map: Mutex<HashMap<String, Entry>>,
}

impl PageNameCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        PageNameCache {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The cell for `name`, fresh if the old one expired; `None` when caching is off.
    pub(crate) fn cell(&self, name: &str) -> Option<Arc<OnceCell<PageRef>>> {
        if self.ttl.is_zero() {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((born, cell)) = map.get(name) {
            if now.duration_since(*born) < self.ttl {
                return Some(Arc::clone(cell));
            }
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (born, _)| now.duration_since(*born) < self.ttl);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let cell = Arc::new(OnceCell::new());
        map.insert(name.to_owned(), (now, Arc::clone(&cell)));
        Some(cell)
    }
}
