//! Automatic persisted queries (APQ), as Apollo Client's `PersistedQueryLink` and
//! urql's `persistedExchange` send them: the client first sends only
//! `extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`; a gateway that
//! holds the document runs it, one that does not answers `PERSISTED_QUERY_NOT_FOUND`
//! (message `PersistedQueryNotFound`), and the client sends the document with the
//! hash once, which registers it. Over GET this makes queries short URLs.
//!
//! The documents are kept in a bounded cache (bytes of document text, least recently
//! used out first). A document is registered only when its hash is its SHA-256 (checked
//! here), it parses, and it passes the document limits. With trusted documents in
//! `enforce` mode nothing registers: the manifest is then the only source of hashes
//! (the guard resolves them before the handler runs, `trusted.rs`).

use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The documents registered by clients, by hash.
#[derive(Clone)]
pub struct PersistedQueries {
    cache: moka::sync::Cache<Hash, Arc<str>>,
}

impl PersistedQueries {
    /// A cache holding at most about `max_bytes` of document text.
    pub fn new(max_bytes: u64) -> Self {
        PersistedQueries {
            cache: moka::sync::Cache::builder()
                // The text plus the key and the entry's bookkeeping.
                .weigher(|_, doc: &Arc<str>| u32::try_from(doc.len() + 96).unwrap_or(u32::MAX))
                .max_capacity(max_bytes)
                .build(),
        }
    }

    pub fn get(&self, hash: &Hash) -> Option<Arc<str>> {
        self.cache.get(hash)
    }

    /// Registers `document` under `hash` (which the caller has checked).
    pub fn insert(&self, hash: Hash, document: Arc<str>) {
        if !self.cache.contains_key(&hash) {
            self.cache.insert(hash, document);
        }
    }
}

/// The SHA-256 of a document's text.
pub fn sha256(document: &str) -> Hash {
    Sha256::digest(document.as_bytes()).into()
}

/// The hash a request's `extensions.persistedQuery` names, if it has one; a clear
/// message when the entry is malformed.
pub fn requested(extensions: Option<&Map<String, Value>>) -> Result<Option<Hash>, &'static str> {
    let Some(entry) = extensions.and_then(|e| e.get("persistedQuery")) else {
        return Ok(None);
    };
    let Value::Object(entry) = entry else {
        return Err("`extensions.persistedQuery` must be an object");
    };
    if entry.get("version").and_then(Value::as_u64) != Some(1) {
        return Err("`extensions.persistedQuery.version` must be 1 (the only version there is)");
    }
    let hex = entry
        .get("sha256Hash")
        .and_then(Value::as_str)
        .ok_or("`extensions.persistedQuery.sha256Hash` must be a string")?;
    parse_hex(hex)
        .map(Some)
        .ok_or("`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits")
}

fn parse_hex(hex: &str) -> Option<Hash> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ext(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_persisted_query_entry_is_checked() {
        let doc = "{ __typename }";
        let hex: String = sha256(doc).iter().map(|b| format!("{b:02x}")).collect();
        let ok = ext(json!({"persistedQuery": {"version": 1, "sha256Hash": hex}}));
        assert_eq!(requested(Some(&ok)), Ok(Some(sha256(doc))));
        let upper =
            ext(json!({"persistedQuery": {"version": 1, "sha256Hash": hex.to_uppercase()}}));
        assert_eq!(requested(Some(&upper)), Ok(Some(sha256(doc))));
        assert_eq!(requested(None), Ok(None));
        assert_eq!(requested(Some(&ext(json!({"other": 1})))), Ok(None));
        for bad in [
            json!({"persistedQuery": "x"}),
            json!({"persistedQuery": {"version": 2, "sha256Hash": hex}}),
            json!({"persistedQuery": {"sha256Hash": hex}}),
            json!({"persistedQuery": {"version": 1}}),
            json!({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}),
            json!({"persistedQuery": {"version": 1, "sha256Hash": format!("{}zz", &hex[..62])}}),
        ] {
            assert!(requested(Some(&ext(bad.clone()))).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cache_is_bounded_by_bytes() {
        let cache = PersistedQueries::new(10_000);
        for i in 0..200 {
            let doc: Arc<str> = format!("query Q{i} {{ {} }}", "a ".repeat(400)).into();
            cache.insert(sha256(&doc), doc);
        }
        cache.cache.run_pending_tasks();
        let held = cache.cache.weighted_size();
        assert!(held <= 10_000, "holds {held} bytes");
        assert!(cache.cache.entry_count() < 200);
        let doc: Arc<str> = "{ a }".into();
        cache.insert(sha256(&doc), doc.clone());
        assert_eq!(cache.get(&sha256("{ a }")), Some(doc));
    }
}
