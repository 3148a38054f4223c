//! Client keys: the SHA-256 a key is stored as, a new random key, and the
//! `name:scopes:sha256hex[:pages]` entries of `GATEWAY_API_KEYS`.

use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::graphql::access::Scopes;

/// The SHA-256 of a key, in lowercase hex: what `GATEWAY_API_KEYS` stores.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// A new random key (256 bits, URL-safe), for `hash-key --generate`.
pub fn generate_key() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "akg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// One configured client key.
#[derive(Clone)]
pub struct ApiKey {
    pub name: Arc<str>,
    pub scopes: Scopes,
    pub(super) hash: [u8; 32],
    /// The pages the key may submit to (the entry's optional fourth part); `None`: any.
    pub pages: Option<Arc<[String]>>,
}

impl ApiKey {
    /// A key made in the process (the development sandbox's demo submit key).
    pub fn generated(name: &str, scopes: Scopes, key: &str, pages: Option<Vec<String>>) -> ApiKey {
        ApiKey {
            name: name.into(),
            scopes,
            hash: Sha256::digest(key.trim().as_bytes()).into(),
            pages: pages.map(Into::into),
        }
    }
}

/// Whether `name` is a page short name (letters, digits, `-`, `_`; at most 255).
fn is_page_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}: {})", self.name, self.scopes)
    }
}

/// Parses `name:scopes:sha256hex[:pages]` entries (the `GATEWAY_API_KEYS` format);
/// `pages`, page short names joined by `+`, limits which pages the key may submit to.
pub fn parse_keys(entries: &[String]) -> Result<Vec<ApiKey>, String> {
    let mut keys: Vec<ApiKey> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let n = i + 1;
        let mut parts = entry.splitn(4, ':');
        let (Some(name), Some(scopes), Some(hash)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "API key entry {n} is not `name:scopes:sha256hex` (or `name:scopes:sha256hex:pages`)"
            ));
        };
        let pages = parts.next();
        let name = name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!(
                "API key entry {n}: the name must be 1 to 64 letters, digits, `-`, `_` or `.`"
            ));
        }
        if matches!(name, "anonymous" | "nobody") {
            return Err(format!("API key entry {n}: {name:?} is reserved"));
        }
        let scopes = Scopes::parse(scopes.trim()).map_err(|e| format!("API key {name:?}: {e}"))?;
        let hash = unhex(&hash.trim().to_ascii_lowercase()).ok_or_else(|| {
            format!(
                "API key {name:?}: the third part must be the key's SHA-256 in hex (64 characters; see `actionkit-graphql hash-key`), not the key itself"
            )
        })?;
        if keys.iter().any(|k| &*k.name == name) {
            return Err(format!("API key name {name:?} is used twice"));
        }
        let pages = match pages.map(str::trim) {
            None => None,
            Some(list) => {
                let pages: Vec<String> = list
                    .split('+')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                if pages.is_empty() || !pages.iter().all(|p| is_page_name(p)) {
                    return Err(format!(
                        "API key {name:?}: the fourth part must be page short names joined by `+` (letters, digits, `-`, `_`)"
                    ));
                }
                Some(pages.into())
            }
        };
        keys.push(ApiKey {
            name: name.into(),
            scopes,
            hash,
            pages,
        });
    }
    Ok(keys)
}
