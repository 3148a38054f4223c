//! Parsed documents by text, so that a document the gateway has seen is not lexed,
//! parsed and sized again: most traffic is a few documents with varying variables.
//! Only documents that parsed and passed the document limits are kept; a hit hands
//! async-graphql a copy of the parsed tree (cheaper than parsing: names are shared
//! `Arc<str>`s). Bounded by the bytes of document text (least recently used out).

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

/// Bytes of document text the cache holds at most; the parsed trees take several
/// times that.
const MAX_TEXT_BYTES: u64 = 1024 * 1024;

#[derive(Clone)]
pub(crate) struct DocumentCache {
    cache: moka::sync::Cache<String, Arc<ExecutableDocument>>,
}

impl Default for DocumentCache {
    fn default() -> Self {
        DocumentCache {
            cache: moka::sync::Cache::builder()
                .weigher(|text: &String, _| u32::try_from(text.len() + 64).unwrap_or(u32::MAX))
                .max_capacity(MAX_TEXT_BYTES)
                .build(),
        }
    }
}

impl DocumentCache {
    pub(crate) fn get(&self, text: &str) -> Option<Arc<ExecutableDocument>> {
        self.cache.get(text)
    }

    /// Keeps `doc`, the parsed `text`, which passed the document limits.
    pub(crate) fn insert(&self, text: String, doc: Arc<ExecutableDocument>) {
        self.cache.insert(text, doc);
    }
}
