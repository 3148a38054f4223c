//! One HTTP/1.1 exchange with ActionKit, below the transport's caps, retries and
//! telemetry (`transport.rs`): the pooled client (TCP settings, TLS), each request's
//! `Uri` from the base URL, the answer read whole up to a cap, and why an exchange
//! failed. Never holds or reports a URL beyond the request it builds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Body as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::config::ClientConfig;
use super::error::Error;

/// The pooled HTTP/1.1 client: plain TCP for `http://`, rustls for `https://`.
pub(super) type HttpClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The pooled client toward ActionKit, with the TCP settings reqwest used: no Nagle,
/// keep-alive probes after 15 s idle every 15 s (3 of them), unacknowledged data given
/// up on after 30 s.
pub(super) fn client(config: &ClientConfig) -> Result<HttpClient, Error> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(config.connect_timeout));
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(Duration::from_secs(15)));
    tcp.set_keepalive_interval(Some(Duration::from_secs(15)));
    tcp.set_keepalive_retries(Some(3));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    tcp.set_tcp_user_timeout(Some(Duration::from_secs(30)));
    // `https://` through rustls, `http://` plain (the builder would refuse our ALPN).
    let connector = hyper_rustls::HttpsConnector::from((tcp, tls_config()?));
    // No redirect is ever followed (hyper has no redirect layer): a redirect could
    // carry the credential elsewhere, and ActionKit only redirects a missing trailing
    // slash, which this client never sends. A 3xx is an `Error::Status`.
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .build(connector),
    )
}

/// What came back: the status, `Retry-After` in seconds, and the body (`None` past
/// [`MAX_BODY_BYTES`]).
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) retry_after: Option<Duration>,
    pub(super) body: Option<Bytes>,
}

/// Sends `request` and reads the answer whole (up to the cap).
pub(super) async fn exchange(
    http: &HttpClient,
    request: http::Request<Full<Bytes>>,
) -> Result<Reply, Failure> {
    let resp = http.request(request).await.map_err(Failure::Send)?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_capped(resp.into_body()).await.map_err(Failure::Body)?;
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// Largest response body read (a page of 100 actions is ~100 KB).
pub(crate) const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The body, or `None` once it passes [`MAX_BODY_BYTES`] (announced by its
/// `Content-Length`, or counted while it streams). A body that arrives in one chunk (the
/// usual small answer) is not copied.
async fn read_capped(body: hyper::body::Incoming) -> Result<Option<Bytes>, BodyError> {
    if body
        .size_hint()
        .exact()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Ok(None);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(Some(collected.to_bytes())),
        Err(e) if e.is::<LengthLimitError>() => Ok(None),
        Err(e) => Err(e),
    }
}

/// An error reading the body (hyper's, boxed by the length limit).
type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes a path from a caller or a `meta.next` link may hold that `http::Uri` refuses:
/// escaped as the `url` crate (and so reqwest, before) escaped them, so such a path is
/// sent as before instead of failing. `%` is left alone (paths arrive escaped).
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Why an exchange failed before a status: sending (connecting included), or reading
/// the body.
pub(super) enum Failure {
    Send(hyper_util::client::legacy::Error),
    Body(BodyError),
}

impl Failure {
    /// Whether the request certainly never left: a failure to connect.
    pub(super) fn sent(&self) -> bool {
        match self {
            Failure::Send(e) => !e.is_connect(),
            Failure::Body(_) => true,
        }
    }

    pub(super) fn timed_out(&self) -> bool {
        match self {
            Failure::Send(e) => is_timeout(e),
            Failure::Body(e) => is_timeout(&**e),
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Failure::Send(e) => describe("error sending request", e),
            Failure::Body(e) => describe("error reading response body", &**e),
        }
    }
}

/// A timeout anywhere in the causes (connect timeout, hyper's own timers).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The TLS configuration reqwest's `rustls-tls` feature used: the process' default
/// crypto provider if one is installed, else ring; TLS 1.2 and 1.3; the webpki
/// (Mozilla) roots; ALPN `http/1.1`.
fn tls_config() -> Result<rustls::ClientConfig, Error> {
    use hyper_rustls::ConfigBuilderExt as _;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| Error::Transport(format!("TLS configuration: {e}")))?
        .with_webpki_roots()
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Where requests go: the base URL split once, so that each request's `Uri` is built
/// from these and its path without parsing the base again.
pub(super) struct Endpoint {
    scheme: Scheme,
    authority: Authority,
    /// The base URL's path prefix (`/ak`), or empty.
    prefix: String,
    /// `scheme://host[:port]`.
    origin: String,
}

impl Endpoint {
    /// `scheme://host[:port][/prefix]`, as `transport::base_of` makes it.
    pub(super) fn parse(base: &str) -> Result<Endpoint, Error> {
        let invalid = || Error::InvalidInput("ActionKit base URL is not a valid URI".into());
        let uri: Uri = base.parse().map_err(|_| invalid())?;
        let scheme = uri.scheme().cloned().ok_or_else(invalid)?;
        let authority = uri.authority().cloned().ok_or_else(invalid)?;
        Ok(Endpoint {
            origin: format!("{scheme}://{authority}"),
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `scheme://host[:port]`: where an absolute `meta.next` link must point.
    pub(super) fn origin(&self) -> &str {
        &self.origin
    }

    /// `base` + `path` as the request's `Uri`; a path that is not one is an error
    /// (never sent, not retried), whose message holds neither the path nor the host.
    pub(super) fn uri(&self, path: &str) -> Result<Uri, Error> {
        let invalid =
            || Error::InvalidInput("the ActionKit request path is not a valid URI".into());
        if !path.starts_with('/') {
            return Err(invalid());
        }
        let escaped: std::borrow::Cow<'_, str> = utf8_percent_encode(path, PATH_ESCAPES).into();
        let path_and_query = if self.prefix.is_empty() {
            PathAndQuery::try_from(escaped.into_owned())
        } else {
            PathAndQuery::try_from(format!("{}{escaped}", self.prefix))
        }
        .map_err(|_| invalid())?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| invalid())
    }
}

/// A transport error with its causes ("error sending request: client error (Connect):
/// tcp connect error: Connection refused (os error 111)"). Never the URL (its query may
/// hold an email): neither hyper's errors nor their causes carry it, and this adds none.
fn describe(what: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = what.to_owned();
    let mut source = Some(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_configuration_is_reqwests() {
        let tls = tls_config().unwrap();
        assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(tls.enable_sni);
        // The same crypto provider reqwest picked: ring (no other is built).
        assert!(tls.crypto_provider().cipher_suites.len() > 1);
    }
}
