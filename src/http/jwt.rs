//! Optional JWT verification: RS256/ES256 tokens from an identity provider, checked
//! against a JWKS URL or a local key file (PEM public key, or a JWKS JSON file), with
//! the issuer, the audience, the expiry and the subject required and `nbf` checked. A
//! claim (`scope` by default, space-separated or an array) maps to the gateway's
//! scopes (`read`, `write`, `self`, `submit`; a token has no per-page list); unknown
//! scope names (`openid`, `profile`, ...) are ignored. The caller's identity is
//! `jwt:<sub>` (its rate-limit bucket, its `exempt_keys` name): a token without a
//! `sub` is refused, so tokens cannot share one anonymous identity.
//!
//! The JWKS is fetched when a token names a key id the gateway does not have, at most
//! once per `jwks_min_refresh_secs`, by one request at a time (others wanting a fetch
//! wait for that one's result), and never while anyone else waits for a known key:
//! known keys are read from a snapshot without waiting. A key id still unknown after
//! a fetch is refused at once until the next fetch may happen (negative cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::JwtConfig;
use crate::graphql::access::Scopes;

/// Longest key id looked up (longer ones are refused without a fetch).
const MAX_KID_LEN: usize = 128;
/// Unknown key ids remembered at most.
const MAX_UNKNOWN_KIDS: usize = 1024;

enum Keys {
    /// From a file: tried in turn (or by `kid` when the file is a JWKS).
    Static(Vec<(Option<String>, DecodingKey)>),
    Remote(Box<RemoteKeys>),
}

/// The keys of a JWKS URL.
struct RemoteKeys {
    url: String,
    http: reqwest::Client,
    min_refresh: Duration,
    /// The keys of the last successful fetch, by key id; read without waiting.
    keys: RwLock<Arc<HashMap<String, DecodingKey>>>,
    /// Held by the one request fetching; holds when the last fetch ended.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Key ids still unknown after a fetch, and when that was found.
    unknown: Mutex<HashMap<String, Instant>>,
}

impl RemoteKeys {
    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        keys.get(kid).cloned()
    }

    fn known_unknown(&self, kid: &str) -> bool {
        let unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        unknown
            .get(kid)
            .is_some_and(|at| at.elapsed() < self.min_refresh)
    }

    fn remember_unknown(&self, kid: &str) {
        let mut unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        if unknown.len() >= MAX_UNKNOWN_KIDS {
            let ttl = self.min_refresh;
            unknown.retain(|_, at| at.elapsed() < ttl);
            if unknown.len() >= MAX_UNKNOWN_KIDS {
                unknown.clear();
            }
        }
        unknown.insert(kid.to_owned(), Instant::now());
    }

    /// The key named `kid`, fetching the JWKS if it is unknown and a fetch is due.
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        if kid.len() > MAX_KID_LEN || self.known_unknown(kid) {
            return None;
        }
        // One fetch at a time; whoever waited looks again before fetching.
        let mut last = self.fetch.lock().await;
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        if self.known_unknown(kid) {
            return None;
        }
        if last.is_none_or(|at| at.elapsed() >= self.min_refresh) {
            match fetch_jwks(&self.http, &self.url).await {
                Some(keys) => {
                    let keys: HashMap<String, DecodingKey> = keys
                        .into_iter()
                        .map(|(kid, k)| (kid.unwrap_or_default(), k))
                        .collect();
                    *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                    self.unknown
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clear();
                }
                None => tracing::warn!("could not fetch the JWKS"),
            }
            *last = Some(Instant::now());
        }
        drop(last);
        let key = self.cached(kid);
        if key.is_none() {
            self.remember_unknown(kid);
        }
        key
    }
}

/// Verifies bearer JWTs.
pub struct JwtVerifier {
    validation: Validation,
    scopes_claim: String,
    keys: Keys,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub subject: String,
    pub scopes: Scopes,
}

fn algorithm(name: &str) -> anyhow::Result<Algorithm> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => anyhow::bail!("JWT algorithm {other:?} is not supported (RS256, ES256)"),
    }
}

fn jwks_keys(set: &JwkSet) -> Vec<(Option<String>, DecodingKey)> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            DecodingKey::from_jwk(jwk)
                .ok()
                .map(|k| (jwk.common.key_id.clone(), k))
        })
        .collect()
}

/// Whether a bearer token has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl JwtVerifier {
    pub fn from_config(config: &JwtConfig) -> anyhow::Result<JwtVerifier> {
        let issuer = config
            .issuer
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow::anyhow!("security.jwt.issuer is required"))?;
        let audience = config
            .audience
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow::anyhow!("security.jwt.audience is required"))?;
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| algorithm(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if algorithms.is_empty() {
            anyhow::bail!("security.jwt.algorithms is empty");
        }
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway_secs;
        let keys = match (&config.jwks_url, &config.key_file) {
            (Some(url), None) => {
                let parsed = url::Url::parse(url)
                    .map_err(|_| anyhow::anyhow!("security.jwt.jwks_url is not a URL"))?;
                if parsed.scheme() != "https" && parsed.host_str() != Some("127.0.0.1") {
                    anyhow::bail!("security.jwt.jwks_url must be https");
                }
                Keys::Remote(Box::new(RemoteKeys {
                    url: url.clone(),
                    http: reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()?,
                    min_refresh: Duration::from_secs(config.jwks_min_refresh_secs),
                    keys: RwLock::new(Arc::new(HashMap::new())),
                    fetch: tokio::sync::Mutex::new(None),
                    unknown: Mutex::new(HashMap::new()),
                }))
            }
            (None, Some(path)) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                let keys = if bytes.trim_ascii_start().starts_with(b"{") {
                    let set: JwkSet = serde_json::from_slice(&bytes)
                        .map_err(|e| anyhow::anyhow!("{}: not a JWKS: {e}", path.display()))?;
                    jwks_keys(&set)
                } else {
                    let key = DecodingKey::from_rsa_pem(&bytes)
                        .or_else(|_| DecodingKey::from_ec_pem(&bytes))
                        .map_err(|_| {
                            anyhow::anyhow!(
                                "{}: not an RSA or EC public key in PEM",
                                path.display()
                            )
                        })?;
                    vec![(None, key)]
                };
                if keys.is_empty() {
                    anyhow::bail!("{}: no usable key", path.display());
                }
                Keys::Static(keys)
            }
            _ => anyhow::bail!("security.jwt needs exactly one of jwks_url or key_file"),
        };
        Ok(JwtVerifier {
            validation,
            scopes_claim: config.scopes_claim.clone(),
            keys,
        })
    }

    fn decode(&self, token: &str, alg: Algorithm, key: &DecodingKey) -> Option<Verified> {
        // jsonwebtoken wants every listed algorithm to fit the key: check the one the
        // header names (already known to be allowed).
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let data = jsonwebtoken::decode::<HashMap<String, Value>>(token, key, &validation).ok()?;
        let claims = data.claims;
        let names: Vec<String> = match claims.get(&self.scopes_claim) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let mut scopes = Scopes::NONE;
        for n in names {
            // read, write, self, submit; other names (openid, profile, ...) are ignored.
            scopes.grant(&n);
        }
        // The caller's identity: required, and not blank.
        let subject: String = claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())?
            .chars()
            .take(128)
            .collect();
        Some(Verified { subject, scopes })
    }

    /// Verifies a token; `None` for anything invalid (the reason is not told).
    pub async fn verify(&self, token: &str) -> Option<Verified> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !self.validation.algorithms.contains(&header.alg) {
            return None;
        }
        match &self.keys {
            Keys::Static(keys) => keys
                .iter()
                .filter(|(kid, _)| kid.is_none() || header.kid.is_none() || *kid == header.kid)
                .find_map(|(_, key)| self.decode(token, header.alg, key)),
            Keys::Remote(remote) => {
                let kid = header.kid.as_deref().unwrap_or_default();
                let key = remote.key(kid).await?;
                self.decode(token, header.alg, &key)
            }
        }
    }
}

async fn fetch_jwks(
    http: &reqwest::Client,
    url: &str,
) -> Option<Vec<(Option<String>, DecodingKey)>> {
    let resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let set: JwkSet = resp.json().await.ok()?;
    Some(jwks_keys(&set))
}

/// A verifier shared by the guard.
pub type SharedVerifier = Arc<JwtVerifier>;

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    /// A P-256 key pair made for these tests only.
    pub(super) const TEST_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcJseMZMbFVJpMnX3
b3WABuXxf0Ze9zM1XtzLVUNMQLyhRANCAATfYnI7itKsIaG/lVj4QLrVEnfT7kxm
SRmEFhJtrcWOUKT2d0SJtET9vEDSOP6a62lXrSUx4Xs+gM+sqjhJJhZy
-----END PRIVATE KEY-----
";
    pub(super) const TEST_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE32JyO4rSrCGhv5VY+EC61RJ30+5M
ZkkZhBYSba3FjlCk9ndEibRE/bxA0jj+mutpV60lMeF7PoDPrKo4SSYWcg==
-----END PUBLIC KEY-----
";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(claims: Value) -> String {
        let key = EncodingKey::from_ec_pem(TEST_PRIVATE.as_bytes()).unwrap();
        encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    }

    fn verifier() -> JwtVerifier {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("akg-jwt-{}-{n}.pem", std::process::id()));
        std::fs::write(&path, TEST_PUBLIC).unwrap();
        let v = JwtVerifier::from_config(&JwtConfig {
            issuer: Some("https://idp.example.org/".into()),
            audience: Some("actionkit-graphql".into()),
            key_file: Some(path.clone()),
            ..JwtConfig::default()
        })
        .unwrap();
        std::fs::remove_file(path).unwrap();
        v
    }

    fn claims(extra: Value) -> Value {
        let mut c = json!({
            "iss": "https://idp.example.org/",
            "aud": "actionkit-graphql",
            "sub": "staff-7",
            "exp": now() + 300,
            "scope": "openid read write",
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[tokio::test]
    async fn valid_tokens_map_their_scopes() {
        let v = verifier();
        let ok = v.verify(&token(claims(json!({})))).await.unwrap();
        assert_eq!(ok.subject, "staff-7");
        assert_eq!(ok.scopes, Scopes::ALL);
        let arr = v
            .verify(&token(claims(json!({"scope": ["self"]}))))
            .await
            .unwrap();
        assert!(arr.scopes.member_only());
        let form = v
            .verify(&token(claims(json!({"scope": "openid submit"}))))
            .await
            .unwrap();
        assert_eq!(form.scopes, Scopes::SUBMIT);
    }

    #[tokio::test]
    async fn wrong_issuer_audience_expiry_or_algorithm_is_refused() {
        let v = verifier();
        for bad in [
            json!({"iss": "https://evil.example.org/"}),
            json!({"aud": "someone-else"}),
            json!({"exp": now() - 3600}),
        ] {
            assert!(
                v.verify(&token(claims(bad.clone()))).await.is_none(),
                "{bad}"
            );
        }
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(v.verify(&token(no_exp)).await.is_none());
        // HS256 signed with the public key as secret (the classic confusion attack).
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(TEST_PUBLIC.as_bytes()),
        )
        .unwrap();
        assert!(v.verify(&hs).await.is_none());
        // A tampered payload.
        let t = token(claims(json!({})));
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = token(claims(json!({"scope": "read write self"})));
        let other_payload = other.split('.').nth(1).unwrap().to_owned();
        parts[1] = &other_payload;
        assert!(v.verify(&parts.join(".")).await.is_none());
    }

    #[tokio::test]
    async fn nbf_is_checked_and_a_subject_is_required() {
        let v = verifier();
        assert!(v
            .verify(&token(claims(json!({"nbf": now() + 3600}))))
            .await
            .is_none());
        assert!(v
            .verify(&token(claims(json!({"nbf": now() - 10}))))
            .await
            .is_some());
        let mut no_sub = claims(json!({}));
        no_sub.as_object_mut().unwrap().remove("sub");
        assert!(v.verify(&token(no_sub)).await.is_none());
        assert!(v
            .verify(&token(claims(json!({"sub": "  "}))))
            .await
            .is_none());
        assert!(v.verify(&token(claims(json!({"sub": 7})))).await.is_none());
    }

    /// The JWK of [`TEST_PUBLIC`] (the last 64 bytes of its DER are x and y).
    pub(super) fn test_jwks(kid: &str) -> String {
        use base64::Engine as _;
        let b64: String = TEST_PUBLIC
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let (x, y) = der[der.len() - 64..].split_at(32);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
            "kid": kid, "x": url.encode(x), "y": url.encode(y)}]})
        .to_string()
    }

    /// A JWKS server on loopback: counts fetches, answers after `delay_ms`.
    async fn jwks_server(
        delay_ms: Arc<std::sync::atomic::AtomicU64>,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = fetches.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let counted = counted.clone();
                let delay = delay_ms.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let body = test_jwks("k1");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        (format!("http://{addr}/jwks"), fetches)
    }

    fn remote_verifier(url: &str, min_refresh_secs: u64) -> JwtVerifier {
        JwtVerifier::from_config(&JwtConfig {
            issuer: Some("https://idp.example.org/".into()),
            audience: Some("actionkit-graphql".into()),
            jwks_url: Some(url.into()),
            jwks_min_refresh_secs: min_refresh_secs,
            ..JwtConfig::default()
        })
        .unwrap()
    }

    fn token_with_kid(kid: &str) -> String {
        let key = EncodingKey::from_ec_pem(TEST_PRIVATE.as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        encode(&header, &claims(json!({})), &key).unwrap()
    }

    #[tokio::test]
    async fn a_slow_jwks_refresh_does_not_hold_up_known_keys() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let delay = Arc::new(AtomicU64::new(0));
        let (url, fetches) = jwks_server(delay.clone()).await;
        let v = Arc::new(remote_verifier(&url, 1));
        assert!(v.verify(&token_with_kid("k1")).await.is_some());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A refresh may happen again; the JWKS now takes 1.5 s to answer.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        delay.store(1500, Ordering::SeqCst);
        let unknown: Vec<_> = (0..5)
            .map(|i| {
                let v = v.clone();
                tokio::spawn(
                    async move { v.verify(&token_with_kid(&format!("rotated-{i}"))).await },
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        assert!(v.verify(&token_with_kid("k1")).await.is_some());
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "a known key waited {:?} behind the refresh",
            started.elapsed()
        );
        for u in unknown {
            assert!(u.await.unwrap().is_none());
        }
        // Single flight: five unknown key ids, one fetch.
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // Negative cache: the same unknown id again is refused at once, without a fetch.
        let started = Instant::now();
        assert!(v.verify(&token_with_kid("rotated-0")).await.is_none());
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn configuration_is_checked() {
        assert!(JwtVerifier::from_config(&JwtConfig::default()).is_err());
        let c = JwtConfig {
            issuer: Some("i".into()),
            audience: Some("a".into()),
            jwks_url: Some("http://idp.example.org/jwks".into()),
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::from_config(&c).is_err(), "plain http JWKS");
        assert!(looks_like_jwt("a.b.c") && !looks_like_jwt("akg_abc"));
    }
}
