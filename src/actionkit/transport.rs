//! One HTTP exchange with ActionKit, done right: base URL, Basic auth, `Accept`, the
//! process-wide cap on requests in flight, per-request and per-operation timeouts,
//! retries with backoff, status → [`Error`] mapping, decoding with the JSON path named,
//! one tracing span per upstream call, and call accounting.
//!
//! It knows nothing about resources; callers give it a path (always starting with
//! `/rest/v1/` and ending the path part in `/`) and a route template for telemetry.
//! Never logs or returns a URL: query strings can hold emails, and the credential
//! lives only in the `Authorization` header, marked sensitive.
//!
//! The exchange itself (the pooled client, TLS, the request's `Uri`, the answer read up
//! to a cap, why an exchange failed) is `exchange.rs`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::uri::Uri;
use http::Method;
use http_body_util::Full;
use secrecy::ExposeSecret as _;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::accounting::{self, CallTotals, UpstreamCounter};
use super::breaker::{Breaker, BreakerState, Health};
use super::config::{ClientConfig, RetryPolicy};
use super::error::{bad_request_messages, Error};
use super::exchange::{self, Endpoint, HttpClient, Reply, MAX_BODY_BYTES};
use super::fair::{FairPermits, Verdict};
use super::singleflight::Singleflight;

/// Which failures a request may be repeated after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// A read: repeated after 429, 503, the 500 "try again later" body, and after any
    /// transport failure or per-request timeout.
    Read,
    /// A write whose repetition cannot change the result (a PATCH of an absolute dict,
    /// a DELETE of one row): repeated after the answers that say ActionKit did not
    /// process it (429, 503, 500 "try again later") and after a failure to connect
    /// (nothing was sent). A timeout or broken connection *after* sending is reported
    /// as [`Error::WriteOutcomeUnknown`] and not repeated.
    Write,
    /// A write whose repetition would do it twice (action processing): sent once,
    /// whatever the answer. A failure after sending is
    /// [`Error::WriteOutcomeUnknown`]; a refusal before sending (429, breaker open,
    /// failure to connect) is reported as such.
    Once,
}

/// Counts a call in `gateway_upstream_in_flight` for as long as it lives.
struct InFlightGauge;

impl InFlightGauge {
    fn new() -> Self {
        metrics::gauge!("gateway_upstream_in_flight").increment(1.0);
        InFlightGauge
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        metrics::gauge!("gateway_upstream_in_flight").decrement(1.0);
    }
}

/// One request to send.
pub(crate) struct Request<'a> {
    pub method: Method,
    /// Route template for telemetry, e.g. `/rest/v1/user/{id}/`. Never the real path.
    pub route: &'static str,
    /// Path and query, starting with `/rest/v1/`.
    pub path: &'a str,
    /// JSON body, if any.
    pub body: Option<Vec<u8>>,
    pub idempotency: Idempotency,
}

impl<'a> Request<'a> {
    pub(crate) fn get(route: &'static str, path: &'a str) -> Self {
        Request {
            method: Method::GET,
            route,
            path,
            body: None,
            idempotency: Idempotency::Read,
        }
    }
}

/// The shared HTTP machinery of a client.
pub(crate) struct Transport {
    http: HttpClient,
    /// The base URL (`scheme://host[:port][/prefix]`), split once: each request's
    /// `Uri` is built from it and its path.
    endpoint: Endpoint,
    auth: HeaderValue,
    user_agent: HeaderValue,
    /// The `max_in_flight` cap, shared fairly between callers.
    permits: Arc<FairPermits>,
    retry: RetryPolicy,
    request_timeout: Duration,
    totals: UpstreamCounter,
    /// Identical GETs in flight at once share one request.
    flights: Singleflight,
    breaker: Breaker,
    /// The budget shared with other replicas, if any (`budget.rs`).
    global: Option<Arc<dyn super::GlobalBudget>>,
}

/// What one attempt produced.
enum Attempt {
    Answer {
        status: u16,
        retry_after: Option<Duration>,
        body: Bytes,
    },
    /// No HTTP status; `sent` is false when the request certainly never left.
    Failed {
        sent: bool,
        timed_out: bool,
        message: String,
    },
    /// The operation deadline passed.
    Deadline { sent: bool },
    /// The body was longer than [`MAX_BODY_BYTES`].
    TooLarge,
    /// The circuit breaker is open: nothing was sent.
    Open,
}

impl Transport {
    pub(crate) fn new(config: &ClientConfig) -> Result<Transport, Error> {
        let base = base_of(&config.base_url)?;
        let credential = format!("{}:{}", config.username, config.password.expose_secret());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credential.as_bytes());
        let mut auth = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| Error::InvalidInput("credential cannot be sent".into()))?;
        auth.set_sensitive(true);

        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| Error::InvalidInput("user agent cannot be sent".into()))?;
        let endpoint = Endpoint::parse(&base)?;
        let http = exchange::client(config)?;
        Ok(Transport {
            http,
            endpoint,
            auth,
            user_agent,
            permits: FairPermits::new(config.max_in_flight.max(1)),
            retry: config.retry.clone(),
            request_timeout: config.request_timeout,
            totals: UpstreamCounter::default(),
            flights: Singleflight::new(config.share_window),
            breaker: Breaker::new(config.breaker.clone()),
            global: config.global_budget.clone(),
        })
    }

    pub(crate) fn totals(&self) -> CallTotals {
        self.totals.snapshot()
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub(crate) fn concurrency_limit(&self) -> usize {
        self.permits.limit()
    }

    /// Turns a `meta.next` link into a path this transport may follow: relative paths
    /// under `/rest/v1/` as ActionKit sends them, or an absolute URL on the configured
    /// origin. Anything else (another host) is refused, so the credential never leaves.
    pub(crate) fn follow_link(&self, link: &str) -> Option<String> {
        if link.starts_with("/rest/v1/") {
            return Some(link.to_owned());
        }
        let rest = link.strip_prefix(self.endpoint.origin())?;
        rest.starts_with("/rest/v1/").then(|| rest.to_owned())
    }

    /// Sends `req`, retrying as its idempotency allows, until `deadline`. Returns the
    /// body of a 2xx answer; every other outcome is an [`Error`].
    ///
    /// A GET joins an identical GET already in flight if that one started after the
    /// last write completed (see `singleflight.rs`); the joiner shares its answer,
    /// retries and deadline included, and sends nothing itself.
    pub(crate) async fn send(&self, req: &Request<'_>, deadline: Instant) -> Result<Bytes, Error> {
        if req.method == Method::GET && req.body.is_none() {
            return self
                .flights
                .run(req.path, || self.send_alone(req, deadline))
                .await;
        }
        let result = self.send_alone(req, deadline).await;
        // Whatever came of it, the write may have landed: later reads must not join a
        // read that started before it.
        self.flights.wrote();
        result
    }

    /// A GET for a read-modify-write: it may join an identical read in flight, like
    /// [`send`](Self::send), but takes no answer that already landed.
    pub(crate) async fn send_fresh(
        &self,
        req: &Request<'_>,
        deadline: Instant,
    ) -> Result<Bytes, Error> {
        self.flights
            .run_fresh(req.path, || self.send_alone(req, deadline))
            .await
    }

    /// [`send`](Self::send) without sharing.
    async fn send_alone(&self, req: &Request<'_>, deadline: Instant) -> Result<Bytes, Error> {
        let span = tracing::debug_span!(
            "upstream.request",
            http.request.method = %req.method,
            http.route = req.route,
            http.response.status_code = tracing::field::Empty,
            upstream.retries = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .send_with_retries(req, deadline)
            .instrument(span.clone())
            .await;
        let (status, retries) = match &result {
            Ok((status, retries, _)) => (Some(*status), *retries),
            Err((status, retries, _)) => (*status, *retries),
        };
        if let Some(status) = status {
            span.record("http.response.status_code", status);
        }
        span.record("upstream.retries", retries);
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        let outcome = match &result {
            Ok(_) => "ok",
            Err((_, _, e)) => e.kind(),
        };
        metrics::counter!(
            "gateway_upstream_requests_total",
            "route" => req.route,
            "method" => req.method.as_str().to_owned(),
            "outcome" => outcome
        )
        .increment(1);
        metrics::histogram!("gateway_upstream_request_duration_seconds", "route" => req.route)
            .record(started.elapsed().as_secs_f64());
        accounting::record_time(started.elapsed());
        if retries > 0 {
            metrics::counter!("gateway_upstream_retries_total", "route" => req.route)
                .increment(u64::from(retries));
        }
        span.in_scope(|| match &result {
            Ok(_) => tracing::debug!("upstream call done"),
            Err((_, _, e)) => tracing::debug!(error = %e, "upstream call failed"),
        });
        result.map(|(_, _, body)| body).map_err(|(_, _, e)| e)
    }

    /// `Ok((status, retries, body))` or `Err((last status, retries, error))`.
    #[allow(clippy::type_complexity)]
    async fn send_with_retries(
        &self,
        req: &Request<'_>,
        deadline: Instant,
    ) -> Result<(u16, u32, Bytes), (Option<u16>, u32, Error)> {
        let uri = self.endpoint.uri(req.path).map_err(|e| (None, 0, e))?;
        let mut retries = 0u32;
        loop {
            let attempt = self.attempt(req, &uri, deadline, retries > 0).await;
            // Decide: done, final error, or retry after a wait.
            let (status, retry_after, failure) = match attempt {
                Attempt::Answer {
                    status,
                    body,
                    retry_after,
                } => {
                    if (200..300).contains(&status) {
                        return Ok((status, retries, body));
                    }
                    if !is_retryable_status(status, &body) {
                        return Err((Some(status), retries, status_error(status, &body)));
                    }
                    (Some(status), retry_after, final_status_error(status))
                }
                Attempt::Failed {
                    sent,
                    timed_out,
                    message,
                } => {
                    if sent && req.idempotency != Idempotency::Read {
                        return Err((None, retries, Error::WriteOutcomeUnknown));
                    }
                    let e = if timed_out {
                        Error::Timeout
                    } else {
                        Error::Transport(message)
                    };
                    (None, None, e)
                }
                Attempt::Open => return Err((None, retries, Error::CircuitOpen)),
                Attempt::TooLarge => {
                    let e = Error::Decode {
                        path: String::new(),
                        message: format!("response body larger than {MAX_BODY_BYTES} bytes"),
                    };
                    return Err((None, retries, e));
                }
                Attempt::Deadline { sent } => {
                    let e = if sent && req.idempotency != Idempotency::Read {
                        Error::WriteOutcomeUnknown
                    } else {
                        Error::Timeout
                    };
                    return Err((None, retries, e));
                }
            };
            if retries >= self.retry.max_retries || req.idempotency == Idempotency::Once {
                return Err((status, retries, failure));
            }
            let wait = self
                .retry
                .backoff(retries + 1)
                .max(retry_after.unwrap_or(Duration::ZERO));
            if Instant::now() + wait >= deadline {
                // Waiting would run past the deadline: give up now, saying why.
                let e = match failure {
                    Error::RateLimited => Error::RateLimited,
                    _ => Error::Timeout,
                };
                return Err((status, retries, e));
            }
            tracing::debug!(
                status = status.unwrap_or(0),
                wait_ms = wait.as_millis() as u64,
                "retrying upstream call"
            );
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// One attempt: wait for a permit, send, read the whole body, release the permit.
    async fn attempt(
        &self,
        req: &Request<'_>,
        uri: &Uri,
        deadline: Instant,
        is_retry: bool,
    ) -> Attempt {
        let caller = accounting::current_caller();
        let permit = match tokio::time::timeout_at(deadline, self.permits.acquire(caller)).await {
            Ok(p) => p,
            Err(_) => return Attempt::Deadline { sent: false },
        };
        // With several replicas, a slot of the global budget too (after the local one).
        let global_slot = match &self.global {
            Some(budget) => match budget.acquire(deadline).await {
                super::BudgetSlot::Held(slot) => Some(slot),
                super::BudgetSlot::Unavailable => None,
                super::BudgetSlot::TimedOut => return Attempt::Deadline { sent: false },
            },
            None => None,
        };
        let Some(ticket) = self.breaker.admit() else {
            return Attempt::Open;
        };
        accounting::record(&self.totals, is_retry);
        let _in_flight = InFlightGauge::new();

        let mut request = http::Request::new(match &req.body {
            Some(body) => Full::new(Bytes::from(body.clone())),
            None => Full::new(Bytes::new()),
        });
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, self.user_agent.clone());
        headers.insert(AUTHORIZATION, self.auth.clone());
        if req.body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request_deadline = (Instant::now() + self.request_timeout).min(deadline);
        let outcome =
            tokio::time::timeout_at(request_deadline, exchange::exchange(&self.http, request))
                .await;
        permit.finish(match &outcome {
            Ok(Ok(Reply { status: 429, .. })) => Verdict::TooMany,
            Ok(Ok(_)) => Verdict::Accepted,
            _ => Verdict::Unknown,
        });
        drop(global_slot);
        ticket.record(match &outcome {
            Ok(Ok(Reply { status, .. })) if *status >= 500 => Health::Unhealthy,
            Ok(Ok(Reply { status: 429, .. })) => Health::Neutral,
            Ok(Ok(_)) => Health::Healthy,
            Ok(Err(_)) => Health::Unhealthy,
            // The operation's own deadline cut the exchange short: no verdict.
            Err(_) if request_deadline >= deadline => Health::Neutral,
            Err(_) => Health::Unhealthy,
        });
        match outcome {
            Ok(Ok(Reply { body: None, .. })) => Attempt::TooLarge,
            Ok(Ok(Reply {
                status,
                retry_after,
                body: Some(body),
            })) => Attempt::Answer {
                status,
                retry_after,
                body,
            },
            Ok(Err(e)) => Attempt::Failed {
                sent: e.sent(),
                timed_out: e.timed_out(),
                message: e.describe(),
            },
            Err(_) if request_deadline >= deadline => Attempt::Deadline { sent: true },
            Err(_) => Attempt::Failed {
                sent: true,
                timed_out: true,
                message: "request timed out".into(),
            },
        }
    }

    /// GET and decode.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: &str,
        deadline: Instant,
    ) -> Result<T, Error> {
        let body = self.send(&Request::get(route, path), deadline).await?;
        decode(&body)
    }

    /// GET and decode; a 404 is `Ok(None)`.
    pub(crate) async fn get_opt<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: &str,
        deadline: Instant,
    ) -> Result<Option<T>, Error> {
        match self.get_json(route, path, deadline).await {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Decodes a JSON body; a failure names the JSON path (`objects[3].user`).
///
/// Bodies are decoded with plain `serde_json` first: tracking the path of every value
/// costs about a tenth of the gateway's CPU per query. Only a body that fails is
/// decoded again with the path tracked, to name where it failed.
///
/// The body's UTF-8 is checked once, whole, and then read as text: read as bytes,
/// serde_json checks each string and key on its own, which cost more than the check of
/// the whole body.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(value) = serde_json::from_str(text) {
            return Ok(value);
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        Error::Decode {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// `scheme://host[:port][/prefix]` without a trailing slash or `/rest/v1`.
fn base_of(url: &url::Url) -> Result<String, Error> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidInput(
            "ActionKit base URL must be http or https".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // The credential belongs in the config's username/password, where it is kept
        // secret; a URL gets logged and echoed too easily.
        return Err(Error::InvalidInput(
            "ActionKit base URL must not contain a user name or password".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidInput(
            "ActionKit base URL must not have a query or fragment".into(),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Error::InvalidInput("ActionKit base URL has no host".into()))?;
    let mut base = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        base.push_str(&format!(":{port}"));
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/rest/v1").unwrap_or(path);
    base.push_str(path);
    Ok(base)
}

/// The body ActionKit sends with a 500 that is worth retrying.
fn is_try_again_later(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct E {
        error: String,
    }
    serde_json::from_slice::<E>(body)
        .map(|e| e.error.to_ascii_lowercase().contains("try again later"))
        .unwrap_or(false)
}

fn is_retryable_status(status: u16, body: &[u8]) -> bool {
    match status {
        429 | 503 => true,
        500 => is_try_again_later(body),
        _ => false,
    }
}

/// The error for a retryable status once retries are spent.
fn final_status_error(status: u16) -> Error {
    match status {
        429 => Error::RateLimited,
        s => Error::Status { status: s },
    }
}

/// The error for a non-2xx answer.
pub(crate) fn status_error(status: u16, body: &[u8]) -> Error {
    match status {
        401 | 403 => Error::Unauthorized,
        404 => Error::NotFound,
        400 => Error::BadRequest {
            messages: bad_request_messages(body),
        },
        429 => Error::RateLimited,
        s => Error::Status { status: s },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_normalised_and_credentials_refused() {
        let b = |s: &str| base_of(&s.parse().unwrap());
        assert_eq!(b("https://ak.example").unwrap(), "https://ak.example");
        assert_eq!(b("https://ak.example/").unwrap(), "https://ak.example");
        assert_eq!(
            b("https://ak.example/rest/v1/").unwrap(),
            "https://ak.example"
        );
        assert_eq!(b("http://127.0.0.1:8001").unwrap(), "http://127.0.0.1:8001");
        assert_eq!(b("https://x.example/ak/").unwrap(), "https://x.example/ak");
        assert!(matches!(
            b("https://u:p@ak.example"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(b("ftp://ak.example"), Err(Error::InvalidInput(_))));
    }

    fn transport_for(base: &str) -> Transport {
        let config = ClientConfig::new(
            base.parse().unwrap(),
            "user",
            secrecy::SecretString::from("pw"),
        );
        Transport::new(&config).unwrap()
    }

    #[tokio::test]
    async fn request_uris_are_base_and_path() {
        let t = transport_for("https://ak.example/rest/v1/");
        assert_eq!(
            t.endpoint
                .uri("/rest/v1/user/1/?_limit=2")
                .unwrap()
                .to_string(),
            "https://ak.example/rest/v1/user/1/?_limit=2"
        );
        let t = transport_for("http://127.0.0.1:8201/ak/");
        assert_eq!(
            t.endpoint
                .uri("/rest/v1/page/?name=a%2Bb")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8201/ak/rest/v1/page/?name=a%2Bb"
        );
        // What `url` (and so reqwest) escaped is escaped, not refused.
        assert_eq!(
            t.endpoint
                .uri("/rest/v1/page/?name=a b\"é")
                .unwrap()
                .path_and_query()
                .unwrap()
                .as_str(),
            "/ak/rest/v1/page/?name=a%20b%22%C3%A9"
        );
        // A path that is no path is an error naming neither the path nor the host.
        for bad in ["rest/v1/user/", "", "//evil.example/rest/v1/"] {
            match t.endpoint.uri(bad) {
                Err(Error::InvalidInput(m)) => assert!(!m.contains("127.0.0.1"), "{m}"),
                other => {
                    // `//host/...` is a valid path-and-query for http: it must at least
                    // stay on the configured authority.
                    let uri = other.unwrap();
                    assert_eq!(uri.authority().unwrap().as_str(), "127.0.0.1:8201", "{bad}");
                }
            }
        }
    }

    #[test]
    fn next_links_are_followed_on_the_configured_origin_only() {
        let t = transport_for("http://127.0.0.1:8201/ak/");
        let next = "/rest/v1/user/?_offset=2&_limit=2";
        assert_eq!(t.follow_link(next).as_deref(), Some(next));
        assert_eq!(
            t.follow_link(&format!("http://127.0.0.1:8201{next}"))
                .as_deref(),
            Some(next)
        );
        for elsewhere in [
            format!("http://127.0.0.1:8202{next}"),
            format!("https://127.0.0.1:8201{next}"),
            format!("http://127.0.0.1:8201.evil.example{next}"),
            "http://127.0.0.1:8201/elsewhere/".to_owned(),
            "/elsewhere/".to_owned(),
        ] {
            assert_eq!(t.follow_link(&elsewhere), None, "{elsewhere}");
        }
    }

    #[test]
    fn try_again_later_body_is_recognised() {
        assert!(is_retryable_status(
            500,
            br#"{"error": "Sorry, this request could not be processed. Please try again later."}"#
        ));
        assert!(!is_retryable_status(500, br#"{"error": "boom"}"#));
        assert!(!is_retryable_status(500, b"<html>"));
        assert!(is_retryable_status(503, b""));
        assert!(is_retryable_status(429, b""));
        assert!(!is_retryable_status(400, b""));
    }

    #[test]
    fn decode_errors_name_the_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            objects: Vec<Inner>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            id: u64,
        }
        let e = decode::<Outer>(br#"{"objects": [{"id": 1}, {"id": "x"}]}"#).unwrap_err();
        match e {
            Error::Decode { path, .. } => assert_eq!(path, "objects[1].id"),
            other => panic!("{other:?}"),
        }
    }
}
