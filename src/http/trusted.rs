//! Trusted documents: a manifest of the operations a frontend may send
//! (`{ "<sha256 hex of the document>": "<document>" }`, the format GraphQL Code
//! Generator's `persisted-documents.json` also has), built from `.graphql` files with
//! `actionkit-graphql trusted-documents`.
//!
//! Modes: `off`; `log-unknown` (run, and log the hash and operation name of documents
//! not in the manifest); `enforce` (refuse them). Clients send the document, or only
//! its hash in `extensions.persistedQuery.sha256Hash` (Apollo's format). The manifest
//! is re-read when its file changes (polled); a broken new file keeps the old manifest.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::errors::HttpError;
use crate::config::{TrustedDocumentsConfig, TrustedMode};
use crate::graphql::access::Principal;
use crate::graphql::ErrorCode;
use crate::telemetry::Untrusted;

/// SHA-256 of a document, lowercase hex.
pub fn document_hash(document: &str) -> String {
    Sha256::digest(document.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads and checks a manifest: every key must be its document's hash.
pub fn parse_manifest(text: &str) -> Result<HashMap<String, String>, String> {
    let map: HashMap<String, String> = serde_json::from_str(text)
        .map_err(|e| format!("not a JSON object of hash → document: {e}"))?;
    for (hash, doc) in &map {
        if document_hash(doc) != hash.to_ascii_lowercase() {
            return Err(format!("entry {hash} is not the SHA-256 of its document"));
        }
    }
    Ok(map
        .into_iter()
        .map(|(h, d)| (h.to_ascii_lowercase(), d))
        .collect())
}

/// The manifest of `paths` (`.graphql`/`.gql` files, directories searched
/// recursively): one document per file, its exact text. Every file must parse as an
/// executable GraphQL document.
pub fn build_manifest(paths: &[PathBuf]) -> anyhow::Result<BTreeMap<String, String>> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out)?;
            }
        } else if path
            .extension()
            .is_some_and(|ext| ext == "graphql" || ext == "gql")
        {
            out.push(path.to_path_buf());
        }
        Ok(())
    }
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            anyhow::bail!("{} does not exist", p.display());
        }
        walk(p, &mut files).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    let mut manifest = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        async_graphql::parser::parse_query(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a GraphQL document: {e}", f.display()))?;
        manifest.insert(document_hash(&text), text);
    }
    Ok(manifest)
}

/// The loaded manifest and the policy around it.
pub struct TrustedDocuments {
    mode: TrustedMode,
    exempt: Vec<String>,
    path: PathBuf,
    docs: RwLock<Arc<HashMap<String, String>>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl TrustedDocuments {
    /// `None` when the mode is `off`; an error when the manifest cannot be read.
    /// Starts the reload task (needs a tokio runtime).
    pub fn from_config(config: &TrustedDocumentsConfig) -> anyhow::Result<Option<Arc<Self>>> {
        if config.mode == TrustedMode::Off {
            return Ok(None);
        }
        let path = config.manifest.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "trusted documents need a manifest (security.trusted_documents.manifest)"
            )
        })?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let docs = parse_manifest(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        tracing::info!(documents = docs.len(), mode = ?config.mode, "trusted documents loaded");
        let this = Arc::new(TrustedDocuments {
            mode: config.mode,
            exempt: config.exempt_keys.clone(),
            path,
            docs: RwLock::new(Arc::new(docs)),
        });
        let interval = Duration::from_millis(config.reload_interval_ms.max(50));
        let weak = Arc::downgrade(&this);
        let mut last = stamp(&this.path);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(this) = weak.upgrade() else { break };
                let now = stamp(&this.path);
                if now != last {
                    last = now;
                    this.reload();
                }
            }
        });
        Ok(Some(this))
    }

    fn reload(&self) {
        let result = std::fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_manifest(&t));
        match result {
            Ok(docs) => {
                tracing::info!(documents = docs.len(), "trusted documents reloaded");
                if let Ok(mut slot) = self.docs.write() {
                    *slot = Arc::new(docs);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "trusted documents: the new manifest is not valid; keeping the old one")
            }
        }
    }

    /// Whether documents outside the manifest are refused (`enforce`).
    pub fn enforces(&self) -> bool {
        self.mode == TrustedMode::Enforce
    }

    fn lookup(&self, hash: &str) -> Option<String> {
        self.docs.read().ok()?.get(hash).cloned()
    }

    /// Resolves hash-only requests and applies the mode. Returns the request to run
    /// (rewritten when the document came from the manifest), or the answer.
    pub async fn check(
        &self,
        req: Request<Body>,
        principal: &Principal,
        max_body: usize,
    ) -> Result<Request<Body>, Response> {
        let (mut parts, body) = req.into_parts();
        let headers = parts.headers.clone();
        let refuse = |status: StatusCode, code: ErrorCode, msg: &'static str| {
            HttpError::new(code, msg)
                .with_status(status)
                .respond(&headers)
        };
        let mut params = if parts.method == Method::POST {
            let bytes = axum::body::to_bytes(body, max_body).await.map_err(|_| {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::BadUserInput,
                    "the request body is too large",
                )
            })?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(obj)) => Params::Body(obj),
                // Fail closed: nothing but one checked operation gets through (should
                // the handler ever accept batches, they would skip this check).
                _ if self.mode == TrustedMode::Enforce => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::BadUserInput,
                        "the body must be one JSON object with a trusted document",
                    ))
                }
                // Not ours to judge: the handler answers malformed requests.
                _ => return Ok(Request::from_parts(parts, Body::from(bytes))),
            }
        } else {
            let raw = parts.uri.query().unwrap_or("");
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            // A repeated parameter could make the document checked here differ from
            // the one the handler runs.
            let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            names.sort_unstable();
            if names.windows(2).any(|w| w[0] == w[1]) {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadUserInput,
                    "a GraphQL parameter is given twice",
                ));
            }
            Params::Query(pairs)
        };
        let query = params.get("query");
        let claimed = params.persisted_hash();
        let (hash, from_manifest) = match (&query, &claimed) {
            (Some(q), Some(h)) => {
                if document_hash(q) != *h {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::BadUserInput,
                        "the document does not match extensions.persistedQuery.sha256Hash",
                    ));
                }
                (h.clone(), false)
            }
            (Some(q), None) => (document_hash(q), false),
            (None, Some(h)) => match self.lookup(h) {
                Some(doc) => {
                    params.set_query(doc);
                    (h.clone(), true)
                }
                // Enforced, the manifest is the only source of documents: the
                // answer Apollo Client's and urql's links retry on (with the
                // document, which is then refused unless it is trusted).
                None if self.mode == TrustedMode::Enforce => {
                    let status = super::errors::negotiate(&headers)
                        .map_or(StatusCode::OK, |f| f.request_error_status());
                    return Err(refuse(
                        status,
                        ErrorCode::PersistedQueryNotFound,
                        "PersistedQueryNotFound",
                    ));
                }
                // Otherwise it may be an automatic persisted query: the handler
                // looks in its cache (`apq.rs`); passed on as it came.
                None => (String::new(), true),
            },
            // No document at all: the handler says so.
            (None, None) => (String::new(), true),
        };
        if !from_manifest && self.lookup(&hash).is_none() {
            let operation = params.get("operationName").unwrap_or_default();
            let exempt = self.exempt.iter().any(|k| **k == *principal.name);
            if self.mode == TrustedMode::Enforce && !exempt {
                tracing::warn!(%hash, operation = %Untrusted(&operation), caller = %Untrusted(&principal.name), "refused a document that is not trusted");
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "the operation is not one of the gateway's trusted documents",
                ));
            }
            tracing::warn!(%hash, operation = %Untrusted(&operation), caller = %Untrusted(&principal.name), "document not in the trusted documents");
        }
        let body = match params {
            Params::Body(obj) => Body::from(Value::Object(obj).to_string()),
            Params::Query(pairs) => {
                if from_manifest && !hash.is_empty() {
                    let q = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs.iter())
                        .finish();
                    let uri = format!("{}?{q}", parts.uri.path());
                    parts.uri = uri.parse::<Uri>().map_err(|_| {
                        refuse(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::BadUserInput,
                            "bad query string",
                        )
                    })?;
                }
                Body::empty()
            }
        };
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        Ok(Request::from_parts(parts, body))
    }
}

enum Params {
    Body(Map<String, Value>),
    Query(Vec<(String, String)>),
}

impl Params {
    fn get(&self, key: &str) -> Option<String> {
        match self {
            Params::Body(obj) => obj.get(key).and_then(Value::as_str).map(str::to_owned),
            Params::Query(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
        }
    }

    fn persisted_hash(&self) -> Option<String> {
        let ext = match self {
            Params::Body(obj) => obj.get("extensions").cloned(),
            Params::Query(_) => self
                .get("extensions")
                .and_then(|e| serde_json::from_str(&e).ok()),
        }?;
        ext.pointer("/persistedQuery/sha256Hash")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    }

    fn set_query(&mut self, doc: String) {
        match self {
            Params::Body(obj) => {
                obj.insert("query".into(), Value::String(doc));
            }
            Params::Query(pairs) => {
                pairs.retain(|(k, _)| k != "query");
                pairs.push(("query".into(), doc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_checked_and_built_from_files() {
        let dir = std::env::temp_dir().join(format!("akg-trusted-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("a.graphql"), "query A { user(id: 1) { id } }\n").unwrap();
        std::fs::write(dir.join("nested/b.gql"), "{ page(id: 1) { title } }").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a document").unwrap();
        let m = build_manifest(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(m.len(), 2);
        let text = serde_json::to_string(&m).unwrap();
        let parsed = parse_manifest(&text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(parsed.contains_key(&document_hash("query A { user(id: 1) { id } }\n")));
        std::fs::write(dir.join("bad.graphql"), "{ user(").unwrap();
        assert!(build_manifest(std::slice::from_ref(&dir)).is_err());
        assert!(parse_manifest(r#"{"00": "{ a }"}"#).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
