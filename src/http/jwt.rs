//! Optional JWT verification: RS256/ES256 tokens from an identity provider, checked
//! against a JWKS URL or a local key file (PEM public key, or a JWKS JSON file), with
//! the issuer, the audience and the expiry required. A claim (`scope` by default,
//! space-separated or an array) maps to the gateway's scopes (`read`, `write`, `self`,
//! `submit`; a token has no per-page list); unknown scope names
//! (`openid`, `profile`, ...) are ignored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::JwtConfig;
use crate::graphql::access::Scopes;

/// Shortest time between two JWKS fetches caused by unknown key ids.
const MIN_REFRESH: Duration = Duration::from_secs(30);

enum Keys {
    /// From a file: tried in turn (or by `kid` when the file is a JWKS).
    Static(Vec<(Option<String>, DecodingKey)>),
    Remote {
        url: String,
        http: reqwest::Client,
        cache: Mutex<(HashMap<String, DecodingKey>, Option<Instant>)>,
    },
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
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = config.leeway_secs;
        let keys = match (&config.jwks_url, &config.key_file) {
            (Some(url), None) => {
                let parsed = url::Url::parse(url)
                    .map_err(|_| anyhow::anyhow!("security.jwt.jwks_url is not a URL"))?;
                if parsed.scheme() != "https" && parsed.host_str() != Some("127.0.0.1") {
                    anyhow::bail!("security.jwt.jwks_url must be https");
                }
                Keys::Remote {
                    url: url.clone(),
                    http: reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()?,
                    cache: Mutex::new((HashMap::new(), None)),
                }
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
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("")
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
            Keys::Remote { url, http, cache } => {
                let kid = header.kid.clone().unwrap_or_default();
                let mut cache = cache.lock().await;
                if !cache.0.contains_key(&kid)
                    && cache.1.is_none_or(|at| at.elapsed() >= MIN_REFRESH)
                {
                    cache.1 = Some(Instant::now());
                    match fetch_jwks(http, url).await {
                        Some(keys) => {
                            cache.0 = keys
                                .into_iter()
                                .map(|(kid, k)| (kid.unwrap_or_default(), k))
                                .collect();
                        }
                        None => tracing::warn!("could not fetch the JWKS"),
                    }
                }
                let key = cache.0.get(&kid)?.clone();
                drop(cache);
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
    pub const TEST_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcJseMZMbFVJpMnX3
b3WABuXxf0Ze9zM1XtzLVUNMQLyhRANCAATfYnI7itKsIaG/lVj4QLrVEnfT7kxm
SRmEFhJtrcWOUKT2d0SJtET9vEDSOP6a62lXrSUx4Xs+gM+sqjhJJhZy
-----END PRIVATE KEY-----
";
    pub const TEST_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
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
