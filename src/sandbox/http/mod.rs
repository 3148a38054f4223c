//! The HTTP side: one fallback handler that does what ActionKit's stack does, in order:
//! stats, concurrency cap (429), injected faults, latency, trailing-slash redirect,
//! basic auth, body limit, then the resource (`dispatch.rs`), then the after-write
//! faults on a write that was applied.
//!
//! Choices for points the reference leaves UNCONFIRMED:
//! - Bad filter / ordering / `_limit`: 400 `{"error": "<Tastypie's message>"}`.
//! - Non-GET without a trailing slash: 404 with the empty body (Django cannot redirect
//!   a body; no route matches).
//! - Unknown resource or detail id: 404, empty `text/html` body.
//! - Malformed JSON body: 400 `{"error": "..."}`; a body over 1 MiB: 413 (nginx's limit).
//! - A method the resource does not allow: 405, empty body, `Allow` header.
//! - 429 (cap or `burst_429`): `{"error": "Your application is sending too many simultaneous requests"}`.
//! - Faults are drawn before the request reaches the store, so a faulted write changes
//!   nothing; except the `*_after_write` ones, which act on a write that was applied
//!   (its answer becomes a 500, a dropped connection, or comes late).

// Early-return error responses travel in `Result<_, Response>`: one per request, so the
// size of the `Err` variant does not matter.
#![allow(clippy::result_large_err)]

mod body;
mod control;
mod dispatch;
mod faults;
mod pages;
mod processing;
mod progress;
mod respond;
mod users;
mod writes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering as AtOrd};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::query;
use super::store::Store;
use super::SandboxConfig;
use control::Stats;
use faults::FaultState;
use respond::{empty, too_many, with_location};

pub(super) const MAX_BODY: usize = 1 << 20;

pub(super) struct App {
    config: SandboxConfig,
    store: RwLock<Store>,
    stats: Mutex<Stats>,
    in_flight: AtomicUsize,
    faults: Mutex<FaultState>,
}

impl App {
    pub(super) fn new(config: SandboxConfig, store: Store) -> App {
        let faults = FaultState {
            faults: config.faults.clone(),
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0xfa17_5eed),
        };
        App {
            config,
            store: RwLock::new(store),
            stats: Mutex::new(Stats::default()),
            in_flight: AtomicUsize::new(0),
            faults: Mutex::new(faults),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fault_state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

// ---- the handler -----------------------------------------------------------

/// The route template for stats: ids become `{id}` (`{akid}` for userpublic).
fn route_template(method: &Method, path: &str) -> String {
    let rest = path.strip_prefix("/rest/v1").unwrap_or(path);
    let mut out = String::from("/rest/v1");
    let segs: Vec<&str> = rest.split('/').collect();
    let first = segs.get(1).copied().unwrap_or("");
    for (i, seg) in segs.iter().enumerate().skip(1) {
        out.push('/');
        if i == 1 || seg.is_empty() || *seg == "schema" {
            out.push_str(seg);
        } else if first == "userpublic" {
            out.push_str("{akid}");
        } else {
            out.push_str("{id}");
        }
    }
    format!("{method} {out}")
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AtOrd::SeqCst);
    }
}

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let path = req.uri().path().to_string();
    if path == "/__sandbox" || path.starts_with("/__sandbox/") {
        return control::control(&app, req).await;
    }
    // ActionKit's public progress endpoint (`progress.rs`) sits beside `/rest/v1/`.
    let progress = path == "/progress" || path.starts_with("/progress/");
    if !progress && path != "/rest/v1" && !path.starts_with("/rest/v1/") {
        return empty(StatusCode::NOT_FOUND);
    }
    let method = req.method().clone();
    {
        let mut st = app.stats();
        st.requests += 1;
        let route = if progress {
            format!("{method} /progress/")
        } else {
            route_template(&method, &path)
        };
        *st.by_route.entry(route).or_insert(0) += 1;
    }
    let n = app.in_flight.fetch_add(1, AtOrd::SeqCst) + 1;
    let _guard = InFlight(&app.in_flight);
    if app.config.max_concurrent > 0 && n > app.config.max_concurrent {
        app.stats().rejected_429 += 1;
        return too_many();
    }
    {
        let mut st = app.stats();
        st.max_in_flight = st.max_in_flight.max(n);
    }
    let is_write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let targeted =
        !is_write && faults::targeted(&app.fault_state().faults, &path, req.uri().query());
    if targeted {
        if app.config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(app.config.latency_ms)).await;
        }
        return faults::server_error();
    }
    let roll = faults::roll(&app, is_write);
    let delay = app.config.latency_ms + roll.slow_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(fault) = roll.before {
        return faults::respond(&app, fault);
    }
    if progress {
        if !matches!(method, Method::GET | Method::HEAD) {
            return respond::not_allowed(&["get"]);
        }
        return progress::answer(&app, &path, req.uri().query());
    }
    let resp = rest(&app, peer, req).await;
    faults::after_write(resp, roll.after).await
}

fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(u) = &app.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(raw) = String::from_utf8(raw) else {
        return false;
    };
    match raw.split_once(':') {
        Some((u, p)) => u == app.config.username && p == app.config.password,
        None => false,
    }
}

/// Request facts the resource code needs.
struct RequestFacts<'a> {
    app: &'a App,
    base: String,
    peer: SocketAddr,
    authed: bool,
    content_type: String,
}

async fn rest(app: &App, peer: SocketAddr, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let base = base_url(app, &parts.headers);
    if !path.ends_with('/') {
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let q = parts
                .uri
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let loc = format!("{base}{path}/{q}");
            return with_location(empty(StatusCode::MOVED_PERMANENTLY), &loc);
        }
        return empty(StatusCode::NOT_FOUND);
    }
    let segs: Vec<String> = path
        .strip_prefix("/rest/v1/")
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let authed = authorized(app, &parts.headers);
    let anonymous_ok = (parts.method == Method::POST && segs.len() == 1 && segs[0] == "action")
        || (parts.method == Method::GET && segs.first().is_some_and(|s| s == "userpublic"));
    if !authed && !anonymous_ok {
        let mut r = empty(StatusCode::UNAUTHORIZED);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic Realm=\"django-tastypie\""),
        );
        return r;
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return empty(StatusCode::PAYLOAD_TOO_LARGE),
    };
    let ctx = RequestFacts {
        app,
        base,
        peer,
        authed,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase(),
    };
    let pairs = query::parse_pairs(parts.uri.query());
    dispatch::dispatch(&ctx, &parts.method, &segs, &pairs, &bytes)
}
