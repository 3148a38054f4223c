//! The HTTP side: one fallback handler that does what ActionKit's stack does, in order:
//! stats, concurrency cap (429), injected faults, latency, trailing-slash redirect,
//! basic auth, body limit, then the resource.
//!
//! Choices for points the reference leaves UNCONFIRMED:
//! - Bad filter / ordering / `_limit`: 400 `{"error": "<Tastypie's message>"}`.
//! - Non-GET without a trailing slash: 404 with the empty body (Django cannot redirect
//!   a body; no route matches).
//! - Unknown resource or detail id: 404, empty `text/html` body.
//! - Malformed JSON body: 400 `{"error": "..."}`; a body over 1 MiB: 413 (nginx's limit).
//! - A method the resource does not allow: 405, empty body, `Allow` header.
//! - 429 (cap or `burst_429`): `{"error": "Your application is sending too many simultaneous requests"}`.
//! - Faults are drawn before the request reaches the store, so a faulted write changes nothing.

// Early-return error responses travel in `Result<_, Response>`: one per request, so the
// size of the `Err` variant does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering as AtOrd};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::query::{self, BadRequest};
use super::resources::{self, Res};
use super::store::*;
use super::{Faults, FieldsPatch, SandboxConfig};

const MAX_BODY: usize = 1 << 20;
const TOO_MANY: &str = "Your application is sending too many simultaneous requests";
const TRY_AGAIN: &str = "Sorry, this request could not be processed. Please try again later.";

#[derive(Default)]
struct Stats {
    requests: u64,
    by_route: BTreeMap<String, u64>,
    max_in_flight: usize,
    rejected_429: u64,
}

struct FaultState {
    faults: Faults,
    rng: ChaCha8Rng,
}

pub struct App {
    config: SandboxConfig,
    store: RwLock<Store>,
    stats: Mutex<Stats>,
    in_flight: AtomicUsize,
    faults: Mutex<FaultState>,
}

impl App {
    pub fn new(config: SandboxConfig, store: Store) -> App {
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

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

// ---- responses ------------------------------------------------------------

/// Python's `json.dumps` separators (`", "`, `": "`), as ActionKit sends them.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn to_json_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return b"{}".to_vec();
    }
    out
}

fn json_resp(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        to_json_bytes(v),
    )
        .into_response()
}

/// Empty body, `text/html; charset=utf-8`, `Content-Length: 0`.
fn empty(status: StatusCode) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Bytes::new(),
    )
        .into_response()
}

/// The empty answer to a write: 204 for PUT and 202 for PATCH of an existing object,
/// 201 with `Location` for a create.
fn write_answer(existing: bool, put: bool, location: &str) -> Response {
    match (existing, put) {
        (true, true) => empty(StatusCode::NO_CONTENT),
        (true, false) => empty(StatusCode::ACCEPTED),
        (false, _) => with_location(empty(StatusCode::CREATED), location),
    }
}

fn with_location(mut r: Response, location: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_resp(status, &json!({ "error": msg }))
}

fn bad_request(e: BadRequest) -> Response {
    error(StatusCode::BAD_REQUEST, &e.0)
}

/// `{"<resource>": {"<field>": ["msg"]}}`.
fn validation(res: &str, field: &str, msg: &str) -> Response {
    json_resp(StatusCode::BAD_REQUEST, &json!({ res: { field: [msg] } }))
}

fn too_many() -> Response {
    error(StatusCode::TOO_MANY_REQUESTS, TOO_MANY)
}

fn not_allowed(allowed: &[&str]) -> Response {
    let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
    if let Ok(v) = HeaderValue::from_str(&allowed.join(",").to_uppercase()) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
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

enum Fault {
    Burst429,
    E500,
    E503,
    Malformed,
    Drop,
}

fn roll_faults(app: &App) -> (Option<Fault>, u64) {
    let mut fs = app.fault_state();
    if fs.faults.burst_429 > 0 {
        fs.faults.burst_429 -= 1;
        return (Some(Fault::Burst429), 0);
    }
    let u: f64 = fs.rng.gen();
    let s: f64 = fs.rng.gen();
    let f = &fs.faults;
    let slow = if s < f.slow { f.slow_ms } else { 0 };
    let mut acc = f.error_500;
    let fault = if u < acc {
        Some(Fault::E500)
    } else if u < {
        acc += f.error_503;
        acc
    } {
        Some(Fault::E503)
    } else if u < {
        acc += f.malformed_json;
        acc
    } {
        Some(Fault::Malformed)
    } else if u < {
        acc += f.drop_connection;
        acc
    } {
        Some(Fault::Drop)
    } else {
        None
    };
    (fault, slow)
}

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let path = req.uri().path().to_string();
    if path == "/__sandbox" || path.starts_with("/__sandbox/") {
        return control(&app, req).await;
    }
    if path != "/rest/v1" && !path.starts_with("/rest/v1/") {
        return empty(StatusCode::NOT_FOUND);
    }
    let method = req.method().clone();
    {
        let mut st = app.stats();
        st.requests += 1;
        *st.by_route
            .entry(route_template(&method, &path))
            .or_insert(0) += 1;
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
    let (fault, slow_ms) = roll_faults(&app);
    let delay = app.config.latency_ms + slow_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match fault {
        Some(Fault::Burst429) => {
            app.stats().rejected_429 += 1;
            return too_many();
        }
        Some(Fault::E500) => return error(StatusCode::INTERNAL_SERVER_ERROR, TRY_AGAIN),
        Some(Fault::E503) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain")],
                "Service Temporarily Unavailable",
            )
                .into_response()
        }
        Some(Fault::Malformed) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"meta\": {\"limit\": 20, \"next\": \"/rest/v1/",
            )
                .into_response()
        }
        Some(Fault::Drop) => {
            let stream = futures::stream::iter(vec![
                Ok::<Bytes, std::io::Error>(Bytes::from_static(b"{\"meta\": ")),
                Err(std::io::Error::other("sandbox: dropped connection")),
            ]);
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(stream),
            )
                .into_response();
        }
        None => {}
    }
    rest(&app, peer, req).await
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
struct Ctx<'a> {
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
    let ctx = Ctx {
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
    dispatch(&ctx, &parts.method, &segs, &pairs, &bytes)
}

fn dispatch(
    ctx: &Ctx,
    method: &Method,
    segs: &[String],
    pairs: &[(String, String)],
    body: &[u8],
) -> Response {
    let segs: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    // HEAD is answered as GET (hyper sends no body for it).
    let method = if *method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    if segs.is_empty() {
        if method != Method::GET {
            return not_allowed(&["get"]);
        }
        let mut m = Map::new();
        for r in Res::all() {
            let n = r.name();
            m.insert(
                n.clone(),
                json!({"list_endpoint": format!("/rest/v1/{n}/"), "schema": format!("/rest/v1/{n}/schema/")}),
            );
        }
        m.insert(
            "userpublic".into(),
            json!({"list_endpoint": "/rest/v1/userpublic/", "schema": "/rest/v1/userpublic/schema/"}),
        );
        return json_resp(StatusCode::OK, &Value::Object(m));
    }
    if segs[0] == "userpublic" {
        return userpublic(ctx, method, &segs);
    }
    let Some(res) = Res::parse(segs[0]) else {
        return empty(StatusCode::NOT_FOUND);
    };
    match segs.len() {
        1 => {
            let m = method.as_str().to_ascii_lowercase();
            if !res.list_methods().contains(&m.as_str()) {
                return not_allowed(res.list_methods());
            }
            match *method {
                Method::GET => list(ctx, res, pairs),
                Method::POST => create(ctx, res, body),
                _ => not_allowed(res.list_methods()),
            }
        }
        2 if segs[1] == "schema" => {
            if method != Method::GET {
                return not_allowed(&["get"]);
            }
            json_resp(
                StatusCode::OK,
                &resources::schema(res, ctx.app.config.filters),
            )
        }
        2 => {
            let st = ctx.app.read();
            let id = match res {
                Res::AllowedUserField => st
                    .allowed_user_fields
                    .iter()
                    .position(|f| f.name == segs[1])
                    .map(|i| i as u32 + 1),
                _ => segs[1].parse::<u32>().ok(),
            };
            drop(st);
            let m = method.as_str().to_ascii_lowercase();
            if !res.detail_methods().contains(&m.as_str()) {
                return not_allowed(res.detail_methods());
            }
            let Some(id) = id else {
                // PUT to a page id that does not exist is a create (Tastypie), see `page_write`.
                if matches!(res, Res::Page(Some(_))) && *method == Method::PUT {
                    return page_write(ctx, res, None, body, true);
                }
                return empty(StatusCode::NOT_FOUND);
            };
            match *method {
                Method::GET => {
                    let st = ctx.app.read();
                    if !resources::exists(&st, res, id) {
                        return empty(StatusCode::NOT_FOUND);
                    }
                    json_resp(StatusCode::OK, &resources::render(&st, res, id))
                }
                Method::PUT | Method::PATCH => update(ctx, res, id, *method == Method::PUT, body),
                Method::DELETE => delete(ctx, res, id),
                _ => not_allowed(res.detail_methods()),
            }
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

fn list(ctx: &Ctx, res: Res, pairs: &[(String, String)]) -> Response {
    let q = match query::parse_list_query(res, ctx.app.config.filters, pairs) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let st = ctx.app.read();
    let (ids, total) = query::run(&st, res, &q);
    let objects = ids
        .iter()
        .map(|id| resources::render(&st, res, *id))
        .collect();
    json_resp(StatusCode::OK, &query::envelope(res, &q, total, objects))
}

fn userpublic(ctx: &Ctx, method: &Method, segs: &[&str]) -> Response {
    if method != Method::GET {
        return not_allowed(&["get"]);
    }
    let [_, akid] = segs else {
        return empty(StatusCode::NOT_FOUND);
    };
    let st = ctx.app.read();
    match st.verify_akid(akid) {
        Some((_, user)) => json_resp(
            StatusCode::OK,
            &resources::render_userpublic(&st, user, akid),
        ),
        None => empty(StatusCode::NOT_FOUND),
    }
}

// ---- request bodies -------------------------------------------------------

/// A JSON object or a form-encoded body (repeated keys -> array).
fn parse_body(ctx: &Ctx, body: &[u8]) -> Result<Map<String, Value>, Response> {
    if ctx
        .content_type
        .starts_with("application/x-www-form-urlencoded")
    {
        let mut m = Map::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            let v = Value::String(v.into_owned());
            match m.get_mut(k.as_ref()) {
                None => {
                    m.insert(k.into_owned(), v);
                }
                Some(Value::Array(a)) => a.push(v),
                Some(old) => {
                    let first = old.take();
                    *old = Value::Array(vec![first, v]);
                }
            }
        }
        return Ok(m);
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("Malformed JSON in the request body: {e}"),
        )),
    }
}

fn valid_field_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

/// A custom-field value: string (one row), array of strings (several rows), null (none).
fn field_values(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(a) => a.iter().map(scalar_string).collect(),
        v => scalar_string(v).map(|s| vec![s]),
    }
}

/// Parses `{"name": value, ...}` into validated rows; errors name the resource.
fn parse_fields(resname: &str, v: &Value) -> Result<Vec<(String, Vec<String>)>, Response> {
    let Value::Object(m) = v else {
        return Err(validation(
            resname,
            "fields",
            "Expected an object of field names to values.",
        ));
    };
    let mut out = Vec::new();
    for (k, v) in m {
        if !valid_field_name(k) {
            return Err(validation(
                resname,
                "fields",
                &format!("Invalid field name '{k}': use 1-255 letters, digits or underscores."),
            ));
        }
        let Some(vals) = field_values(v) else {
            return Err(validation(
                resname,
                "fields",
                &format!("The value of '{k}' must be a string or a list of strings."),
            ));
        };
        out.push((k.clone(), vals));
    }
    Ok(out)
}

/// Extracts an id from a URI (`/rest/v1/petitionaction/5/`) or a bare id.
fn id_from_ref(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => {
            let t = s.trim().trim_end_matches('/');
            t.rsplit('/').next().and_then(|x| x.parse().ok())
        }
        _ => None,
    }
}

// ---- writes ---------------------------------------------------------------

/// Sets the rows of one action field name to `values`, reusing row ids in order.
fn set_action_field(st: &mut Store, action: u32, name: &str, values: &[String]) {
    let name_sym = st.strings.intern(name);
    let existing: Vec<u32> = st
        .action(action)
        .map(|a| {
            a.fields
                .iter()
                .copied()
                .filter(|f| st.actionfield(*f).is_some_and(|r| r.name == name_sym))
                .collect()
        })
        .unwrap_or_default();
    for (i, v) in values.iter().enumerate() {
        match existing.get(i) {
            Some(row) => {
                let vs = st.strings.intern(v);
                if let Some(r) = st.actionfields.get_mut((*row as usize).wrapping_sub(1)) {
                    r.value = vs;
                }
            }
            None => {
                st.push_actionfield(action, name, v);
            }
        }
    }
    for row in existing.iter().skip(values.len()) {
        st.delete_actionfield(*row);
    }
}

fn apply_action_fields(
    st: &mut Store,
    action: u32,
    fields: &[(String, Vec<String>)],
    mode: FieldsPatch,
) {
    if mode == FieldsPatch::Replace {
        let keep: Vec<Sym> = fields.iter().map(|(n, _)| st.strings.intern(n)).collect();
        let drop_rows: Vec<u32> = st
            .action(action)
            .map(|a| {
                a.fields
                    .iter()
                    .copied()
                    .filter(|f| st.actionfield(*f).is_some_and(|r| !keep.contains(&r.name)))
                    .collect()
            })
            .unwrap_or_default();
        for r in drop_rows {
            st.delete_actionfield(r);
        }
    }
    for (name, vals) in fields {
        set_action_field(st, action, name, vals);
    }
}

fn string_of(resname: &str, key: &str, v: &Value) -> Result<String, Response> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(validation(resname, key, "This field must be a string.")),
    }
}

fn update(ctx: &Ctx, res: Res, id: u32, put: bool, body: &[u8]) -> Response {
    let ok = if put {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    };
    let resname = res.name();
    match res {
        Res::Page(Some(_)) => {
            if !put && !resources::exists(&ctx.app.read(), res, id) {
                return empty(StatusCode::NOT_FOUND);
            }
            return page_write(ctx, res, Some(id), body, put);
        }
        Res::User => return user_write(ctx, Some(id), body, put),
        _ => {}
    }
    {
        let st = ctx.app.read();
        if !resources::exists(&st, res, id) {
            return empty(StatusCode::NOT_FOUND);
        }
    }
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match res {
        Res::Action(_) => {
            let fields = match m.get("fields") {
                Some(v) => match parse_fields(&resname, v) {
                    Ok(f) => Some(f),
                    Err(r) => return r,
                },
                None => None,
            };
            let mut strs = Vec::new();
            for key in ["status", "source"] {
                if let Some(v) = m.get(key) {
                    match string_of(&resname, key, v) {
                        Ok(s) => strs.push((key, s)),
                        Err(r) => return r,
                    }
                }
            }
            let mut times = Vec::new();
            for key in ["created_at", "updated_at"] {
                if let Some(v) = m.get(key) {
                    match v.as_str().and_then(parse_time) {
                        Some(t) => times.push((key, t)),
                        None => {
                            return validation(
                                &resname,
                                key,
                                "Enter a valid date/time (YYYY-MM-DDTHH:MM:SS[.ffffff]).",
                            )
                        }
                    }
                }
            }
            let mut st = ctx.app.write();
            if !resources::exists(&st, res, id) {
                return empty(StatusCode::NOT_FOUND);
            }
            if let Some(f) = fields {
                apply_action_fields(&mut st, id, &f, ctx.app.config.fields_patch);
            }
            let syms: Vec<(&str, Sym)> = strs
                .iter()
                .map(|(k, s)| (*k, st.strings.intern(s)))
                .collect();
            let now = now_micros();
            if let Some(a) = st.action_mut(id) {
                for (k, s) in syms {
                    if k == "status" {
                        a.status = s;
                    } else {
                        a.source = s;
                    }
                }
                a.updated_at = now.max(a.updated_at);
                for (k, t) in times {
                    if k == "created_at" {
                        a.created_at = t;
                    } else {
                        a.updated_at = t;
                    }
                }
            }
            empty(ok)
        }
        Res::ActionField => {
            let name = match m.get("name").map(|v| string_of(&resname, "name", v)) {
                Some(Ok(n)) if valid_field_name(&n) => Some(n),
                Some(Ok(_)) => {
                    return validation(
                        &resname,
                        "name",
                        "Enter a valid name: 1-255 letters, digits or underscores.",
                    )
                }
                Some(Err(r)) => return r,
                None => None,
            };
            let value = match m.get("value").map(|v| {
                scalar_string(v)
                    .ok_or_else(|| validation(&resname, "value", "This field must be a string."))
            }) {
                Some(Ok(v)) => Some(v),
                Some(Err(r)) => return r,
                None => None,
            };
            let mut st = ctx.app.write();
            if st.actionfield(id).is_none() {
                return empty(StatusCode::NOT_FOUND);
            }
            let name = name.map(|n| st.strings.intern(&n));
            let value = value.map(|v| st.strings.intern(&v));
            if let Some(r) = st.actionfields.get_mut((id as usize).wrapping_sub(1)) {
                if let Some(n) = name {
                    r.name = n;
                }
                if let Some(v) = value {
                    r.value = v;
                }
            }
            empty(ok)
        }
        _ => not_allowed(res.detail_methods()),
    }
}

fn delete(ctx: &Ctx, res: Res, id: u32) -> Response {
    let mut st = ctx.app.write();
    if !resources::exists(&st, res, id) {
        return empty(StatusCode::NOT_FOUND);
    }
    match res {
        Res::Action(_) => st.delete_action(id),
        Res::ActionField => st.delete_actionfield(id),
        _ => return not_allowed(res.detail_methods()),
    }
    empty(StatusCode::NO_CONTENT)
}

fn create(ctx: &Ctx, res: Res, body: &[u8]) -> Response {
    match res {
        Res::Action(None) => process_action(ctx, body),
        Res::ActionField => create_actionfield(ctx, body),
        Res::User => user_write(ctx, None, body, false),
        Res::Page(Some(_)) => page_write(ctx, res, None, body, false),
        _ => not_allowed(res.list_methods()),
    }
}

fn create_actionfield(ctx: &Ctx, body: &[u8]) -> Response {
    let r = "actionfield";
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let Some(parent_ref) = m.get("parent").or_else(|| m.get("action")) else {
        return validation(r, "parent", "This field is required.");
    };
    let name = match m.get("name") {
        None => return validation(r, "name", "This field is required."),
        Some(v) => match string_of(r, "name", v) {
            Ok(n) => n,
            Err(resp) => return resp,
        },
    };
    if !valid_field_name(&name) {
        return validation(
            r,
            "name",
            "Enter a valid name: 1-255 letters, digits or underscores.",
        );
    }
    let value = match m.get("value") {
        None => return validation(r, "value", "This field is required."),
        Some(v) => match scalar_string(v) {
            Some(s) => s,
            None => return validation(r, "value", "This field must be a string."),
        },
    };
    let mut st = ctx.app.write();
    let Some(parent) = id_from_ref(parent_ref).filter(|p| st.action(*p).is_some()) else {
        return validation(
            r,
            "parent",
            &format!(
                "Could not find the provided object via resource URI '{}'.",
                scalar_string(parent_ref).unwrap_or_default()
            ),
        );
    };
    let id = st.push_actionfield(parent, &name, &value);
    with_location(
        empty(StatusCode::CREATED),
        &format!("{}/rest/v1/actionfield/{id}/", ctx.base),
    )
}

fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((l, d)) => {
            !l.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !e.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// PUT/PATCH `/user/<id>/` (`id` Some) or POST `/user/` (`id` None).
fn user_write(ctx: &Ctx, id: Option<u32>, body: &[u8], put: bool) -> Response {
    let r = "user";
    if let Some(id) = id {
        if ctx.app.read().user(id).is_none() {
            return empty(StatusCode::NOT_FOUND);
        }
    }
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let mut strs: Vec<(usize, String)> = Vec::new();
    for (k, v) in &m {
        if let Some(i) = user_str_index(k) {
            match string_of(r, k, v) {
                Ok(s) => strs.push((i, s)),
                Err(resp) => return resp,
            }
        }
    }
    let email = match m.get("email") {
        Some(v) => match string_of(r, "email", v) {
            Ok(e) if valid_email(&e) => Some(e),
            Ok(_) => return validation(r, "email", "Enter a valid email address."),
            Err(resp) => return resp,
        },
        None if id.is_none() => return validation(r, "email", "This field is required."),
        None => None,
    };
    let fields = match m.get("fields") {
        Some(v) => match parse_fields(r, v) {
            Ok(f) => Some(f),
            Err(resp) => return resp,
        },
        None => None,
    };
    let mut st = ctx.app.write();
    if let Some(e) = &email {
        if let Some(owner) = st.user_by_email(e) {
            if Some(owner) != id {
                let resp = json_resp(
                    StatusCode::CONFLICT,
                    &json!({"errors": {"email": [format!("Conflict on unique key 'email' for value '{e}'")]}}),
                );
                return with_location(resp, &format!("{}/rest/v1/user/{owner}/", ctx.base));
            }
        }
    }
    let now = now_micros() / 1_000_000;
    let uid = match id {
        Some(id) => id,
        None => {
            let empty_sym = st.strings.intern("");
            let subscribed = st.strings.intern("subscribed");
            let mut s = [empty_sym; 16];
            if let Some(i) = user_str_index("subscription_status") {
                s[i] = subscribed;
            }
            st.push_user(User {
                email: email.clone().unwrap_or_default().into(),
                s,
                created_at: now,
                updated_at: now,
                rand_id: 0,
                lang: Some(100),
                fields: Vec::new(),
                phones: Vec::new(),
            })
        }
    };
    let syms: Vec<(usize, Sym)> = strs
        .iter()
        .map(|(i, s)| (*i, st.strings.intern(s)))
        .collect();
    let field_syms: Option<Vec<(Sym, Vec<Sym>)>> = fields.map(|f| {
        f.iter()
            .map(|(n, vs)| {
                (
                    st.strings.intern(n),
                    vs.iter().map(|v| st.strings.intern(v)).collect(),
                )
            })
            .collect()
    });
    if let Some(e) = &email {
        let old = st.user(uid).map(|u| u.email.to_ascii_lowercase());
        if let Some(old) = old {
            st.email_index.remove(old.as_str());
        }
        st.email_index
            .insert(e.to_ascii_lowercase().into_boxed_str(), uid);
    }
    if let Some(u) = uid
        .checked_sub(1)
        .and_then(|i| st.users.get_mut(i as usize))
    {
        for (i, s) in syms {
            u.s[i] = s;
        }
        if let Some(e) = email {
            u.email = e.into();
        }
        // Custom user fields: the named fields are set, others kept.
        if let Some(fs) = field_syms {
            for (n, vs) in fs {
                u.fields.retain(|(fname, _)| *fname != n);
                u.fields.extend(vs.into_iter().map(|v| (n, v)));
            }
        }
        u.updated_at = now;
    }
    write_answer(
        id.is_some(),
        put,
        &format!("{}/rest/v1/user/{uid}/", ctx.base),
    )
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// POST `/<type>page/`, PUT/PATCH `/<type>page/<id>/`. A PUT to a missing id is a
/// create, as in Tastypie (hence `name` required, like the recorded 400).
fn page_write(ctx: &Ctx, res: Res, id: Option<u32>, body: &[u8], put: bool) -> Response {
    let resname = res.name();
    let Res::Page(Some(ptype)) = res else {
        return not_allowed(res.list_methods());
    };
    let id = {
        let st = ctx.app.read();
        id.filter(|i| resources::exists(&st, res, *i))
    };
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let name =
        match m.get("name") {
            Some(v) => match string_of(&resname, "name", v) {
                Ok(n) if valid_slug(&n) => Some(n),
                Ok(_) => return validation(
                    &resname,
                    "name",
                    "Enter a valid 'slug' consisting of letters, numbers, underscores or hyphens.",
                ),
                Err(r) => return r,
            },
            None if id.is_none() => return validation(&resname, "name", "This field is required."),
            None => None,
        };
    let title = match m.get("title").map(|v| string_of(&resname, "title", v)) {
        Some(Ok(t)) => Some(t),
        Some(Err(r)) => return r,
        None => None,
    };
    let hidden = match m.get("hidden") {
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return validation(&resname, "hidden", "This field must be a boolean."),
        None => None,
    };
    let tags = match m.get("tags") {
        Some(Value::Array(a)) => {
            let ids: Option<Vec<u32>> = a.iter().map(id_from_ref).collect();
            match ids {
                Some(v) => Some(v),
                None => return validation(&resname, "tags", "Expected a list of tag URIs."),
            }
        }
        Some(_) => return validation(&resname, "tags", "Expected a list of tag URIs."),
        None => None,
    };
    let mut st = ctx.app.write();
    if let Some(t) = &tags {
        if let Some(bad) = t.iter().find(|t| **t == 0 || **t as usize > st.tags.len()) {
            return validation(
                &resname,
                "tags",
                &format!(
                    "Could not find the provided object via resource URI '/rest/v1/tag/{bad}/'."
                ),
            );
        }
    }
    if let Some(n) = &name {
        if let Some(owner) = st.page_by_name(n) {
            if Some(owner) != id {
                return validation(&resname, "name", "Page with this Name already exists.");
            }
        }
    }
    let now = now_micros() / 1_000_000;
    let pid = match id {
        Some(id) => id,
        None => {
            let active = st.strings.intern("active");
            let actions = st.strings.intern("actions");
            let once = st.strings.intern("once");
            st.push_page(Page {
                name: name.clone().unwrap_or_default().into(),
                title: "".into(),
                ptype,
                hidden: false,
                status: active,
                created_at: now,
                updated_at: now,
                tags: Vec::new(),
                goal: None,
                goal_type: actions,
                recognize: once,
                allow_multiple_responses: false,
                lang: Some(100),
                list: 1,
                url: "".into(),
                fields: Vec::new(),
                cms_form: true,
            })
        }
    };
    if let Some(n) = &name {
        let old = st.page(pid).map(|p| p.name.clone());
        if let Some(old) = old {
            st.page_name_index.remove(&old);
        }
        st.page_name_index.insert(n.clone().into_boxed_str(), pid);
    }
    if let Some(p) = pid
        .checked_sub(1)
        .and_then(|i| st.pages.get_mut(i as usize))
    {
        if let Some(n) = name {
            p.name = n.into();
        }
        if let Some(t) = title {
            p.title = t.into();
        }
        if let Some(h) = hidden {
            p.hidden = h;
        }
        if let Some(t) = tags {
            p.tags = t;
        }
        p.updated_at = now;
    }
    write_answer(
        id.is_some(),
        put,
        &format!("{}/rest/v1/{resname}/{pid}/", ctx.base),
    )
}

/// `POST /rest/v1/action/`: action processing.
fn process_action(ctx: &Ctx, body: &[u8]) -> Response {
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let get = |k: &str| m.get(k).and_then(scalar_string);
    let page_name = get("page").unwrap_or_default();
    let mut action_fields: Vec<(String, Vec<String>)> = Vec::new();
    let mut user_fields: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in &m {
        let (target, name) = if let Some(n) = k.strip_prefix("action_") {
            (&mut action_fields, n)
        } else if let Some(n) = k.strip_prefix("user_") {
            (&mut user_fields, n)
        } else {
            continue;
        };
        if !valid_field_name(name) {
            return json_resp(
                StatusCode::BAD_REQUEST,
                &json!({"errors": {k.as_str(): [format!("Invalid field name '{name}'.")]}}),
            );
        }
        let Some(vals) = field_values(v) else {
            return json_resp(
                StatusCode::BAD_REQUEST,
                &json!({"errors": {k.as_str(): ["Enter a string or a list of strings."]}}),
            );
        };
        target.push((name.to_string(), vals));
    }
    let mut st = ctx.app.write();
    let Some(page_id) = st.page_by_name(&page_name) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"page": format!("Unable to find a page for processing. You sent page={page_name}.")}),
        );
    };
    let ptype = st
        .page(page_id)
        .map(|p| p.ptype)
        .unwrap_or(PageType::Petition);
    let mut mailing = None;
    let mut created_user = false;
    let user_id = if let Some(akid) = get("akid") {
        match st.verify_akid(&akid) {
            Some((ml, u)) => {
                mailing = ml;
                u
            }
            None => {
                return json_resp(
                    StatusCode::BAD_REQUEST,
                    &json!({"errors": {"mailing_id": ["Unable to associate this mailing ID with account."]}}),
                )
            }
        }
    } else if let Some(email) = get("email") {
        if !valid_email(&email) {
            return json_resp(
                StatusCode::BAD_REQUEST,
                &json!({"errors": {"email": ["Enter a valid email address."]}}),
            );
        }
        match st.user_by_email(&email) {
            Some(u) => u,
            None => {
                created_user = true;
                let now = now_micros() / 1_000_000;
                let e = st.strings.intern("");
                let mut s = [e; 16];
                let (first, last) = match (get("first_name"), get("last_name"), get("name")) {
                    (Some(f), l, _) => (f, l.unwrap_or_default()),
                    (None, Some(l), _) => (String::new(), l),
                    (None, None, Some(n)) => match n.trim().rsplit_once(' ') {
                        Some((f, l)) => (f.to_string(), l.to_string()),
                        None => (n.trim().to_string(), String::new()),
                    },
                    _ => (String::new(), String::new()),
                };
                let mut set = |st: &mut Store, f: &str, v: &str| {
                    if let Some(i) = user_str_index(f) {
                        s[i] = st.strings.intern(v);
                    }
                };
                set(&mut st, "first_name", &first);
                set(&mut st, "last_name", &last);
                for f in [
                    "address1",
                    "address2",
                    "city",
                    "state",
                    "region",
                    "zip",
                    "postal",
                    "country",
                    "plus4",
                    "prefix",
                    "suffix",
                    "middle_name",
                ] {
                    if let Some(v) = get(f) {
                        set(&mut st, f, &v);
                    }
                }
                if let (Some(z), None) = (get("zip"), get("postal")) {
                    set(&mut st, "postal", &z);
                }
                if let (Some(p), None) = (get("postal"), get("zip")) {
                    set(&mut st, "zip", &p);
                }
                let status = if ptype == PageType::Unsubscribe {
                    "unsubscribed"
                } else {
                    "subscribed"
                };
                set(&mut st, "subscription_status", status);
                set(
                    &mut st,
                    "source",
                    &get("source").unwrap_or_else(|| "restful_api".into()),
                );
                st.push_user(User {
                    email: email.into(),
                    s,
                    created_at: now,
                    updated_at: now,
                    rand_id: 0,
                    lang: Some(100),
                    fields: Vec::new(),
                    phones: Vec::new(),
                })
            }
        }
    } else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"errors": {"email": ["This field is required."]}}),
        );
    };
    // Custom user fields: named ones replaced.
    let ufs: Vec<(Sym, Vec<Sym>)> = user_fields
        .iter()
        .map(|(n, vs)| {
            (
                st.strings.intern(n),
                vs.iter().map(|v| st.strings.intern(v)).collect(),
            )
        })
        .collect();
    let unsub = st.strings.intern("unsubscribed");
    if let Some(u) = user_id
        .checked_sub(1)
        .and_then(|i| st.users.get_mut(i as usize))
    {
        for (n, vs) in ufs {
            u.fields.retain(|(f, _)| *f != n);
            u.fields.extend(vs.into_iter().map(|v| (n, v)));
        }
        if ptype == PageType::Unsubscribe {
            if let Some(i) = user_str_index("subscription_status") {
                u.s[i] = unsub;
            }
        }
    }
    let now = now_micros();
    let complete = st.strings.intern("complete");
    let source = st
        .strings
        .intern(&get("source").unwrap_or_else(|| "restful_api".into()));
    let ip = get("ip_address").unwrap_or_else(|| ctx.peer.ip().to_string());
    let ip = Ip::parse(&mut st, &ip);
    let amount_cents = get("amount")
        .and_then(|a| a.parse::<f64>().ok())
        .map(|a| (a * 100.0).round().max(0.0) as u32)
        .unwrap_or(0);
    let mut flags = 0;
    if created_user {
        flags |= FLAG_CREATED_USER | FLAG_SUBSCRIBED_USER;
    }
    let referring_user = get("referring_user")
        .and_then(|r| id_from_ref(&Value::String(r)))
        .filter(|u| st.user(*u).is_some());
    let action_id = st.push_action(Action {
        user: user_id,
        page: page_id,
        created_at: now,
        updated_at: now + 31_000,
        status: complete,
        source,
        ip_address: ip,
        referring_user,
        mailing,
        taf_emails_sent: None,
        flags,
        amount_cents,
        fields: Vec::new(),
        deleted: false,
    });
    for (n, vs) in &action_fields {
        for v in vs {
            st.push_actionfield(action_id, n, v);
        }
    }
    let akid = st
        .action(action_id)
        .map(|a| resources::action_akid(&st, a))
        .unwrap_or_default();
    let redirect_url =
        format!("/cms/thanks/{page_name}/?action_id={action_id}&akid={akid}&ar=1&rd=1");
    let location = format!("{}/rest/v1/{}action/{action_id}/", ctx.base, ptype.slug());
    let body = if ctx.authed {
        let mut v = resources::render_action(&st, action_id, true);
        if let Value::Object(m) = &mut v {
            m.insert("redirect_url".into(), json!(redirect_url));
        }
        v
    } else {
        json!({"action_id": action_id, "akid": akid, "rd": 1, "redirect_url": redirect_url})
    };
    with_location(json_resp(StatusCode::CREATED, &body), &location)
}

// ---- control endpoints ----------------------------------------------------

async fn control(app: &App, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    match (method, path.as_str()) {
        (Method::GET, "/__sandbox/stats") => {
            let s = app.stats();
            json_resp(
                StatusCode::OK,
                &json!({
                    "requests": s.requests,
                    "by_route": s.by_route,
                    "max_in_flight": s.max_in_flight,
                    "rejected_429": s.rejected_429,
                    "in_flight": app.in_flight.load(AtOrd::SeqCst),
                }),
            )
        }
        (Method::POST, "/__sandbox/stats/reset") => {
            *app.stats() = Stats::default();
            empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, "/__sandbox/faults") => {
            let f = app.fault_state().faults.clone();
            json_resp(StatusCode::OK, &json!(f))
        }
        (Method::POST, "/__sandbox/faults") => {
            let bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
                Ok(b) => b,
                Err(_) => return empty(StatusCode::PAYLOAD_TOO_LARGE),
            };
            let parsed: Result<Faults, _> = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(Faults::default())
            } else {
                serde_json::from_slice(&bytes)
            };
            match parsed {
                Ok(f) => {
                    let probs = [
                        f.error_500,
                        f.error_503,
                        f.slow,
                        f.malformed_json,
                        f.drop_connection,
                    ];
                    if probs.iter().any(|p| !(0.0..=1.0).contains(p))
                        || f.error_500 + f.error_503 + f.malformed_json + f.drop_connection > 1.0
                    {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "Probabilities must be within 0..1 and the error ones must sum to at most 1.",
                        );
                    }
                    let mut fs = app.fault_state();
                    fs.faults = f.clone();
                    fs.rng = ChaCha8Rng::seed_from_u64(app.config.seed ^ 0xfa17_5eed);
                    json_resp(StatusCode::OK, &json!(f))
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &format!("Invalid faults: {e}")),
            }
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}
