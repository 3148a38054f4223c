//! How the client reaches one ActionKit instance: where, with which credential, and
//! how patiently. Holds secrets as [`SecretString`]; `Debug` prints them redacted.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use super::breaker::BreakerPolicy;

/// How the client reaches one ActionKit instance.
///
/// Build it with [`ClientConfig::new`] and adjust the public fields; the defaults are
/// listed on each field.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://<instance-host>` (no `/rest/v1`; a trailing `/rest/v1/` is tolerated and
    /// dropped). Must not carry a user name or password: the credential goes in
    /// `username`/`password` and is sent as a Basic `Authorization` header.
    pub base_url: url::Url,
    /// The ActionKit staff account.
    pub username: String,
    /// The staff account's password. Never logged, never in an error.
    pub password: SecretString,
    /// Time to open a TCP/TLS connection. Default 3 s.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP request (one attempt, body included). Default 10 s.
    pub request_timeout: Duration,
    /// Deadline of one client operation, retries and pagination included. Default 15 s.
    pub operation_deadline: Duration,
    /// Requests in flight to the instance, process-wide (shared by clones of the client).
    /// ActionKit answers 429 to "too many simultaneous requests". Default 8.
    pub max_in_flight: usize,
    /// Retries of reads (and of the few writes that may be repeated, see `writes.rs`).
    pub retry: RetryPolicy,
    /// The instance's "AKID Hash Secret", to verify AKIDs locally. Without it, AKIDs are
    /// checked by `GET /rest/v1/userpublic/<akid>/`. Default none.
    pub akid_secret: Option<SecretString>,
    /// `User-Agent` sent upstream. Default `actionkit-graphql/<version>`.
    pub user_agent: String,
    /// How long a page name → page id lookup is reused when filtering actions by page
    /// name on an instance without `page__name` traversal. Default 60 s; zero: never.
    pub page_name_ttl: Duration,
    /// When to stop sending requests to a failing instance (see `breaker.rs`).
    pub breaker: BreakerPolicy,
    /// How long the names of the instance's allowed custom user fields are reused
    /// (`Client::allowed_user_fields`). Default 60 s; zero: never.
    pub allowed_user_fields_ttl: Duration,
    /// How long a successful read's answer is given to identical reads asked for after
    /// it landed (reads in flight are always shared; see `singleflight.rs`). Default
    /// zero: only reads in flight (the gateway sets 2 ms, `share_window_us`).
    pub share_window: Duration,
    /// A budget shared with other replicas, taken around each request besides the
    /// local cap (`max_in_flight` across all of them). Default none.
    pub global_budget: Option<std::sync::Arc<dyn super::GlobalBudget>>,
}

impl ClientConfig {
    /// A configuration with the defaults documented on each field.
    pub fn new(base_url: url::Url, username: impl Into<String>, password: SecretString) -> Self {
        ClientConfig {
            base_url,
            username: username.into(),
            password,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            operation_deadline: Duration::from_secs(15),
            max_in_flight: 8,
            retry: RetryPolicy::default(),
            akid_secret: None,
            user_agent: concat!("actionkit-graphql/", env!("CARGO_PKG_VERSION")).to_owned(),
            page_name_ttl: Duration::from_secs(60),
            breaker: BreakerPolicy::default(),
            allowed_user_fields_ttl: Duration::from_secs(60),
            share_window: Duration::ZERO,
            global_budget: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url.as_str())
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("operation_deadline", &self.operation_deadline)
            .field("max_in_flight", &self.max_in_flight)
            .field("retry", &self.retry)
            .field(
                "akid_secret",
                &self.akid_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("user_agent", &self.user_agent)
            .field("page_name_ttl", &self.page_name_ttl)
            .field("breaker", &self.breaker)
            .field("allowed_user_fields_ttl", &self.allowed_user_fields_ttl)
            .field("share_window", &self.share_window)
            .finish()
    }
}

/// Retries of idempotent requests: exponential backoff with jitter, honouring
/// `Retry-After`, always within the operation deadline.
///
/// The wait before retry `n` (1-based) is a random duration in
/// `[base/2, base]` where `base = min(max_backoff, initial_backoff * 2^(n-1))`, or the
/// `Retry-After` seconds when ActionKit sends that header (whichever is longer).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 4.
    pub max_retries: u32,
    /// Default 100 ms.
    pub initial_backoff: Duration,
    /// Default 2 s.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before retry number `retry` (1-based), jitter included.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        use rand::Rng;
        let exp = retry.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        // "Equal jitter": half fixed, half random, so retries of a burst spread out
        // but never collapse to zero wait.
        let half = base / 2;
        let jitter_ms = half.as_millis() as u64;
        let extra = if jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::thread_rng().gen_range(0..=jitter_ms))
        };
        half + extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let mut c = ClientConfig::new(
            "https://ak.example".parse().unwrap(),
            "staff",
            SecretString::from("hunter2-password"),
        );
        c.akid_secret = Some(SecretString::from("akid-secret-value"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("akid-secret-value"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            let b9 = p.backoff(9);
            assert!(b9 >= Duration::from_millis(500) && b9 <= Duration::from_millis(1000));
        }
    }
}
