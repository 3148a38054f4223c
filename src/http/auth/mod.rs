//! Client authentication and the per-caller guards in front of `/graphql`: API keys
//! (stored as SHA-256 hashes, sent as `Authorization: Bearer <key>`), the `self`
//! member's AKID, a token bucket per caller, the request body (`body.rs`), and trusted
//! documents. The resulting [`Principal`] travels to the GraphQL layer, which checks
//! scopes and members.
//!
//! Nothing here logs or returns a key, a hash or an AKID: only key names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

mod global;
mod keys;
mod limiter;

pub use global::GlobalRateLimit;
pub use keys::{generate_key, hash_key, parse_keys, ApiKey};
pub use limiter::{Bucket, RateLimiter, RateLimits, MAX_CALLERS};

use super::client_addr::TrustedProxies;
use super::cors::Cors;
use super::errors::HttpError;
use super::trusted::TrustedDocuments;
use crate::config::{Mode, SecurityConfig, ServerConfig, DEFAULT_MAX_BODY_BYTES};
use crate::graphql::access::{self, Principal, Scopes};
use crate::graphql::ErrorCode;
use crate::telemetry::Untrusted;

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential, and anonymous callers may do nothing.
    Missing,
    /// A credential that matches no key (or is not a Bearer token).
    InvalidToken,
    /// A `self` key without a (valid) member AKID.
    MemberAkid,
}

impl AuthFailure {
    fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => "send an API key: Authorization: Bearer <key>",
            AuthFailure::InvalidToken => "the API key is not valid",
            AuthFailure::MemberAkid => {
                "this key reads one member only: send the member's AKID (X-AKID header)"
            }
        }
    }
}

/// Turns request headers into a [`Principal`].
pub struct Authenticator {
    keys: Vec<ApiKey>,
    jwt: Option<super::jwt::JwtVerifier>,
    anonymous: Scopes,
    akid_secret: Option<SecretString>,
    pub akid_header: HeaderName,
}

impl Authenticator {
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            if self.anonymous == Scopes::NONE {
                return Err(AuthFailure::Missing);
            }
            return Ok(Principal::new("anonymous", self.anonymous));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthFailure::InvalidToken)?;
        let mut principal = match &self.jwt {
            Some(jwt) if super::jwt::looks_like_jwt(token) => {
                let v = jwt.verify(token).await.ok_or(AuthFailure::InvalidToken)?;
                Principal::new(format!("jwt:{}", v.subject), v.scopes)
            }
            _ => {
                let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Every key is compared, in constant time, whatever matches first.
                let mut found: Option<&ApiKey> = None;
                for key in &self.keys {
                    if bool::from(key.hash.ct_eq(&presented)) {
                        found = Some(key);
                    }
                }
                let key = found.ok_or(AuthFailure::InvalidToken)?;
                let mut p = Principal::new(key.name.clone(), key.scopes);
                p.pages = key.pages.clone();
                p
            }
        };
        if principal.scopes.member_only() {
            let akid = headers
                .get(&self.akid_header)
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthFailure::MemberAkid)?;
            let secret = self.akid_secret.as_ref().ok_or(AuthFailure::MemberAkid)?;
            principal.member = Some(
                crate::actionkit::akid::verified_user(secret, akid.trim())
                    .ok_or(AuthFailure::MemberAkid)?,
            );
            principal.member_akid = Some(SecretString::from(akid.trim().to_owned()));
        }
        Ok(principal)
    }
}

/// Everything the `/graphql` guard needs.
pub struct Security {
    pub authenticator: Authenticator,
    /// Per caller and per shared key (`limiter.rs`); `None` when turned off.
    pub limiter: Option<RateLimits>,
    /// With several replicas: the same limit held in Redis, asked before `limiter`
    /// (which applies when Redis cannot answer). Set by `app.rs`.
    pub global_limit: Option<Arc<dyn GlobalRateLimit>>,
    /// Failed authentications per client address (a bucket of 30, 30 a minute).
    pub failures: RateLimiter,
    pub trusted: Option<Arc<TrustedDocuments>>,
    pub max_body_bytes: usize,
    /// Longest wait for a request body (`server.body_read_timeout_ms`).
    pub body_read_timeout: Duration,
    /// Browser origins allowed (`http/cors.rs`).
    pub cors: Cors,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` name the client (`client_addr.rs`).
    pub trusted_proxies: TrustedProxies,
}

/// What a deployment without keys is allowed; `Err` when it must not start.
/// Against a real instance (`sandbox == false`) that is read-only with
/// `allow_anonymous_reads`, and a refusal to start without it.
pub fn startup_check(config: &SecurityConfig, sandbox: bool) -> Result<(), String> {
    let has_keys = config.api_keys.iter().any(|k| !k.trim().is_empty()) || config.jwt.is_some();
    if !has_keys && !sandbox && !config.allow_anonymous_reads {
        return Err(
            "refusing to serve ActionKit data without client authentication: \
             set GATEWAY_API_KEYS (see `actionkit-graphql hash-key`), or pass \
             --allow-anonymous-reads (GATEWAY_ALLOW_ANONYMOUS_READS=true) to let anyone \
             who can reach the gateway read (never write)"
                .into(),
        );
    }
    Ok(())
}

impl Security {
    /// Builds the guards from configuration. Without keys: development mode is an open
    /// sandbox (anyone reads and writes; logged loudly), `allow_anonymous_reads` gives
    /// read-only access, and production refuses to start.
    pub fn from_config(
        config: &SecurityConfig,
        mode: Mode,
        akid_secret: Option<SecretString>,
    ) -> anyhow::Result<Security> {
        let keys = parse_keys(&config.api_keys).map_err(|e| anyhow::anyhow!(e))?;
        let jwt = config
            .jwt
            .as_ref()
            .map(super::jwt::JwtVerifier::from_config)
            .transpose()?;
        if keys.iter().any(|k| k.scopes.member_only()) && akid_secret.is_none() {
            anyhow::bail!(
                "a key has the `self` scope: set ACTIONKIT_AKID_SECRET so that members' AKIDs can be verified"
            );
        }
        let anonymous = if config.allow_anonymous_reads {
            Scopes::READ
        } else if !keys.is_empty() || jwt.is_some() {
            Scopes::NONE
        } else if mode == Mode::Development {
            Scopes::ALL
        } else {
            anyhow::bail!(startup_check(config, false).err().unwrap_or_default());
        };
        if anonymous == Scopes::ALL {
            tracing::warn!(
                "OPEN GATEWAY: no API keys are configured (development mode); anyone who can reach it may read and write"
            );
        } else if anonymous == Scopes::READ {
            tracing::warn!(
                "anonymous reads are allowed (allow_anonymous_reads); writes need a key"
            );
        }
        // Made by the process (development sandbox): added after the decision above,
        // so that they do not close the open sandbox.
        let mut keys = keys;
        for key in parse_keys(&config.demo_keys).map_err(|e| anyhow::anyhow!(e))? {
            if keys.iter().any(|k| k.name == key.name) {
                anyhow::bail!("API key name {:?} is reserved for the demo key", key.name);
            }
            keys.push(key);
        }
        for key in &keys {
            match &key.pages {
                Some(pages) => tracing::info!(
                    key = %key.name,
                    scopes = %key.scopes,
                    pages = %pages.join("+"),
                    "client key configured"
                ),
                None => {
                    tracing::info!(key = %key.name, scopes = %key.scopes, "client key configured")
                }
            }
        }
        let per_minute = config
            .rate_limit_per_minute
            .unwrap_or(if anonymous == Scopes::ALL { 0 } else { 600 });
        let key_per_minute = config
            .rate_limit_key_per_minute
            .unwrap_or(per_minute.saturating_mul(20))
            .max(per_minute);
        let limiter = (per_minute > 0)
            .then(|| RateLimits::new(per_minute, config.rate_limit_burst, key_per_minute));
        let akid_header = HeaderName::from_bytes(config.akid_header.trim().as_bytes())
            .map_err(|_| anyhow::anyhow!("security.akid_header is not a header name"))?;
        let cors = super::cors::Cors::from_config(&config.cors_origins)?;
        let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies)?;
        let trusted = TrustedDocuments::from_config(&config.trusted_documents)?;
        Ok(Security {
            authenticator: Authenticator {
                keys,
                jwt,
                anonymous,
                akid_secret,
                akid_header,
            },
            limiter,
            global_limit: None,
            failures: RateLimiter::new(30, 30),
            trusted,
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: ServerConfig::default().body_read_timeout(),
            cors,
            trusted_proxies,
        })
    }

    /// Refuses everything (the state of a router built without configuration).
    pub fn closed() -> Security {
        Security {
            authenticator: Authenticator {
                keys: Vec::new(),
                jwt: None,
                anonymous: Scopes::NONE,
                akid_secret: None,
                akid_header: HeaderName::from_static("x-akid"),
            },
            limiter: None,
            global_limit: None,
            failures: RateLimiter::new(30, 30),
            trusted: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: ServerConfig::default().body_read_timeout(),
            cors: Cors::default(),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// A 429 answer with `Retry-After` in whole seconds (at least 1).
fn too_many(headers: &HeaderMap, wait: Duration, message: &'static str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HttpError::new(ErrorCode::RateLimited, message)
        .with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
        .respond(headers)
}

/// Who a request's upstream calls are made for, set by the guard for the handler:
/// the caller of its rate-limit [`Bucket`] (the key's name, `jwt:<sub>` for a token,
/// `<key>#<member>` for a `self` key, `<key>@<address>` for anonymous and `submit`
/// callers). It keys the fair share of ActionKit calls (`actionkit/fair.rs`).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<str>);

/// The rate-limit bucket of a request: a `self` key's member, an anonymous or
/// `submit` caller's client address, else the key (docs/security.md, Rate limits).
pub fn bucket(principal: &Principal) -> Bucket {
    let key = principal.name.clone();
    // Anonymous callers, and `submit` keys (one key in a public page, shared by every
    // visitor), are one caller per client address; a `self` key (in every member's
    // browser) one caller per member; other keys one caller per key.
    let per_address = &*key == "anonymous"
        || (principal.scopes.submit && !principal.scopes.read && !principal.scopes.write);
    let caller: Arc<str> = match (principal.member, principal.address) {
        (Some(member), _) => format!("{key}#{}", member.0).into(),
        (None, Some(ip)) if per_address => format!("{key}@{ip}").into(),
        _ => key.clone(),
    };
    Bucket { key, caller }
}

/// Whether a request in `bucket` may go now: the one rate-limit decision of the
/// guard (`Err(wait)` to refuse with `Retry-After`). A limit shared between gateway
/// processes belongs here too.
pub async fn rate_limit(sec: &Security, bucket: &Bucket) -> Result<(), Duration> {
    let Some(limiter) = &sec.limiter else {
        return Ok(());
    };
    // With several replicas, the caller's bucket held in Redis first (`None`: Redis
    // could not answer). The local buckets apply too: a replica sees a part of the
    // caller's requests, so its own bucket never refuses before the shared one, and
    // it keeps the key's ceiling and the limit while Redis is away.
    if let Some(global) = &sec.global_limit {
        if let Some(Err(wait)) = global.check(&bucket.caller).await {
            return Err(wait);
        }
    }
    limiter.decide(bucket)
}

/// The `/graphql` guard: authenticate, rate-limit, check trusted documents, then run
/// the handler with the principal in scope.
pub async fn guard(State(sec): State<Arc<Security>>, req: Request<Body>, next: Next) -> Response {
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| sec.trusted_proxies.client_address(addr.ip(), req.headers()));
    let mut principal = match sec.authenticator.authenticate(req.headers()).await {
        Ok(p) => p,
        Err(failure) => {
            // Guessing keys from one address is slowed down; the first failures are
            // answered as usual.
            if let Some(ip) = address {
                let bucket: Arc<str> = format!("failed@{ip}").into();
                if let Err(wait) = sec.failures.check(&bucket) {
                    return too_many(req.headers(), wait, "too many failed authentications");
                }
            }
            let challenge = match failure {
                AuthFailure::Missing => r#"Bearer realm="actionkit-graphql""#,
                _ => r#"Bearer realm="actionkit-graphql", error="invalid_token""#,
            };
            return HttpError::new(ErrorCode::Unauthenticated, failure.message())
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                )
                .respond(req.headers());
        }
    };
    principal.address = address;
    let bucket = bucket(&principal);
    if let Err(wait) = rate_limit(&sec, &bucket).await {
        tracing::info!(caller = %Untrusted(&principal.name), "rate limit reached");
        return too_many(
            req.headers(),
            wait,
            "too many requests for this key; retry after the time in Retry-After",
        );
    }
    let caller = bucket.caller;
    let mut req = match super::body::buffer(req, sec.max_body_bytes, sec.body_read_timeout).await {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    req.extensions_mut().insert(Caller(caller));
    let req = match &sec.trusted {
        Some(trusted) => match trusted.check(req, &principal, sec.max_body_bytes).await {
            Ok(req) => req,
            Err(resp) => return resp,
        },
        None => req,
    };
    access::CURRENT.scope(principal, next.run(req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(keys: &[&str]) -> SecurityConfig {
        SecurityConfig {
            api_keys: keys.iter().map(|s| s.to_string()).collect(),
            ..SecurityConfig::default()
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    /// The scopes `sec` gives a request without credentials (it must authenticate).
    async fn anonymous_scopes(sec: &Security) -> Scopes {
        sec.authenticator
            .authenticate(&HeaderMap::new())
            .await
            .unwrap()
            .scopes
    }

    #[test]
    fn keys_parse_and_refuse_cleartext() {
        let h = hash_key("k1");
        let keys = parse_keys(&[format!("web:read:{h}"), format!("ops:read+write:{h}")]).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].scopes, Scopes::ALL);
        assert!(parse_keys(&["web:read:k1".into()])
            .unwrap_err()
            .contains("SHA-256"));
        assert!(parse_keys(&[format!("web:admin:{h}")]).is_err());
        assert!(parse_keys(&[format!("a:read:{h}"), format!("a:read:{h}")]).is_err());
        assert!(parse_keys(&[format!("bad name:read:{h}")]).is_err());
        assert!(parse_keys(&[format!("anonymous:read:{h}")]).is_err());
        // The error never repeats the entry (which might be a key pasted by mistake).
        let err = parse_keys(&["supersecretkeymaterial".into()]).unwrap_err();
        assert!(!err.contains("supersecret"), "{err}");
    }

    #[tokio::test]
    async fn bearer_keys_authenticate() {
        let c = config(&[&format!("web:read:{}", hash_key("k1"))]);
        let sec = Security::from_config(&c, Mode::Production, None).unwrap();
        let a = &sec.authenticator;
        let p = a.authenticate(&bearer("k1")).await.unwrap();
        assert_eq!((&*p.name, p.scopes), ("web", Scopes::READ));
        assert_eq!(
            a.authenticate(&bearer("k2")).await.unwrap_err(),
            AuthFailure::InvalidToken
        );
        assert_eq!(
            a.authenticate(&HeaderMap::new()).await.unwrap_err(),
            AuthFailure::Missing
        );
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic azE="),
        );
        assert_eq!(
            a.authenticate(&basic).await.unwrap_err(),
            AuthFailure::InvalidToken
        );
    }

    #[tokio::test]
    async fn secure_by_default() {
        // A real instance without keys does not start...
        assert!(startup_check(&config(&[]), false).is_err());
        assert!(Security::from_config(&config(&[]), Mode::Production, None).is_err());
        // ...unless anonymous reads are allowed, and then only reads.
        let open_reads = SecurityConfig {
            allow_anonymous_reads: true,
            ..config(&[])
        };
        assert!(startup_check(&open_reads, false).is_ok());
        for mode in [Mode::Production, Mode::Development] {
            let sec = Security::from_config(&open_reads, mode, None).unwrap();
            assert_eq!(anonymous_scopes(&sec).await, Scopes::READ);
        }
        // The sandbox is open.
        assert!(startup_check(&config(&[]), true).is_ok());
        let sec = Security::from_config(&config(&[]), Mode::Development, None).unwrap();
        assert_eq!(anonymous_scopes(&sec).await, Scopes::ALL);
        assert!(sec.limiter.is_none());
        // `self` keys need the AKID secret.
        let me = config(&[&format!("member:self:{}", hash_key("k"))]);
        assert!(Security::from_config(&me, Mode::Production, None).is_err());
    }

    #[tokio::test]
    async fn self_keys_need_a_verified_akid() {
        let c = config(&[&format!("member:self:{}", hash_key("k"))]);
        let sec = Security::from_config(&c, Mode::Production, Some("s3cret".into())).unwrap();
        let mut h = bearer("k");
        assert_eq!(
            sec.authenticator.authenticate(&h).await.unwrap_err(),
            AuthFailure::MemberAkid
        );
        use base64::Engine as _;
        let digest = Sha256::digest(b"s3cret..42");
        let hash = base64::engine::general_purpose::URL_SAFE.encode(digest);
        h.insert(
            "x-akid",
            HeaderValue::from_str(&format!(".42.{}", &hash[..6])).unwrap(),
        );
        let p = sec.authenticator.authenticate(&h).await.unwrap();
        assert_eq!(p.member, Some(crate::actionkit::UserId(42)));
        h.insert("x-akid", HeaderValue::from_static(".43.abcdef"));
        assert!(sec.authenticator.authenticate(&h).await.is_err());
    }

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.len() > 40);
        assert_eq!(hash_key(&a).len(), 64);
    }
}
