//! Subscriptions over WebSocket on `/graphql` (`GET` with `Upgrade: websocket`,
//! subprotocol `graphql-transport-ws`, the protocol of `graphql-ws`, Apollo Client and
//! urql). Plain `GET`/`POST` requests never reach this module: [`intercept`] hands
//! them on to the guard and the hand-written handler unchanged.
//!
//! - **Authentication** in `connection_init`'s payload, `{"authorization": "Bearer
//!   <key>"}` (a `self` key adds `{"x-akid": "<akid>"}`, or the configured AKID header
//!   name), checked by the same [`Authenticator`](super::auth::Authenticator) as HTTP
//!   requests, with the same scopes; a browser cannot set headers on a WebSocket, so
//!   the upgrade request's own `Authorization` header is only a fallback. A refused
//!   key closes with 4403; repeated failures from one address with 4429.
//! - **Limits** (`[progress]`): connections at once (all keys: HTTP 429 before the
//!   upgrade), connections per key (per key and address for `submit` keys, whose one
//!   key serves every visitor of a page: 4429), subscriptions per connection (the
//!   subscription's error, `RATE_LIMITED`).
//! - **Idle**: `connection_init` must come within `connection_init_timeout_secs`
//!   (else 4408); the gateway sends `ping` every `keepalive_secs`, and closes with
//!   3008 a connection from which nothing (not even `pong`) came for
//!   `idle_timeout_secs`.
//! - **Shutdown**: every subscription ends (each subscriber gets `complete`), then the
//!   connection is closed with 1001 ("going away"), so clients know to reconnect.
//! - Only subscriptions are served here; queries and mutations go over HTTP, where the
//!   guard, the rate limit and the cost checks are (`graphql/access.rs` refuses them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::{WebSocket as GqlWebSocket, WsMessage};
use async_graphql::Data;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts as _, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::{SinkExt as _, StreamExt as _};

use super::auth::Security;
use super::errors::HttpError;
use super::AppState;
use crate::config::ProgressConfig;
use crate::graphql::progress::SubscriptionSlots;
use crate::graphql::{ErrorCode, GatewaySchema, ProgressHub};

/// The subprotocol served.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// The WebSocket endpoint's settings and counters (in [`AppState`]).
pub struct WsState {
    pub settings: ProgressConfig,
    open: AtomicUsize,
    per_key: Mutex<HashMap<Arc<str>, usize>>,
}

impl WsState {
    pub fn new(settings: ProgressConfig) -> Self {
        WsState {
            settings,
            open: AtomicUsize::new(0),
            per_key: Mutex::new(HashMap::new()),
        }
    }

    /// WebSocket connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn take_key_slot(self: &Arc<Self>, key: Arc<str>) -> Option<KeySlot> {
        let mut map = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= self.settings.max_connections_per_key.max(1) {
            return None;
        }
        *n += 1;
        Some(KeySlot {
            state: self.clone(),
            key,
        })
    }
}

impl Default for WsState {
    fn default() -> Self {
        WsState::new(ProgressConfig::default())
    }
}

/// One connection of a key, released when the connection's data is dropped.
struct KeySlot {
    state: Arc<WsState>,
    key: Arc<str>,
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut map = self.state.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// One open connection, counted until dropped.
struct Open(Arc<WsState>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("gateway_websocket_connections").decrement(1.0);
    }
}

fn is_upgrade(req: &Request) -> bool {
    req.method() == Method::GET
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// In front of `/graphql`: WebSocket upgrades are served here, everything else goes on
/// to the guard and the HTTP handler untouched.
pub async fn intercept(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !is_upgrade(&req) {
        return next.run(req).await;
    }
    upgrade(state, req).await
}

async fn upgrade(state: Arc<AppState>, req: Request<Body>) -> Response {
    let (mut parts, _body) = req.into_parts();
    let headers = parts.headers.clone();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    let max_message = state.security.max_body_bytes;
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        // Protocol messages are small (a subscribe is a GraphQL request, a push a few
        // hundred bytes): small buffers keep a subscriber cheap, a client message is
        // held to the HTTP body limit, and a client that stops reading is cut off at
        // 1 MiB of pushes waiting for it instead of growing the gateway's memory.
        Ok(ws) => ws
            .protocols([PROTOCOL])
            .read_buffer_size(4 * 1024)
            .write_buffer_size(4 * 1024)
            .max_write_buffer_size(1024 * 1024)
            .max_message_size(max_message)
            .max_frame_size(max_message),
        Err(_) => {
            return HttpError::new(
                ErrorCode::BadUserInput,
                "not a valid WebSocket upgrade request",
            )
            .respond(&headers)
        }
    };
    if ws.selected_protocol().is_none() {
        return HttpError::new(
            ErrorCode::BadUserInput,
            "subscriptions need the WebSocket subprotocol graphql-transport-ws",
        )
        .respond(&headers);
    }
    let Some(hub) = state.progress.clone() else {
        return HttpError::new(ErrorCode::Internal, "subscriptions are not available")
            .respond(&headers);
    };
    if *hub.closing().borrow() {
        return HttpError::new(
            ErrorCode::UpstreamUnavailable,
            "the gateway is shutting down; reconnect in a moment",
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .respond(&headers);
    }
    let ws_state = state.websocket.clone();
    let before = ws_state.open.fetch_add(1, Ordering::Relaxed);
    metrics::gauge!("gateway_websocket_connections").increment(1.0);
    let open = Open(ws_state.clone());
    if before >= ws_state.settings.max_connections.max(1) {
        drop(open);
        // The gateway's own capacity, like its connection cap: OVERLOADED, not the
        // caller's budget.
        return HttpError::new(
            ErrorCode::Overloaded,
            "too many WebSocket connections; retry in a moment",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
        .respond(&headers);
    }
    let schema = state.schemas.websocket().clone();
    let security = state.security.clone();
    ws.on_upgrade(move |socket| async move {
        serve_socket(socket, schema, security, ws_state, hub, headers, peer).await;
        drop(open);
    })
}

/// A close decided by the gateway in `connection_init` (the library would say 1002).
type InitClose = Arc<Mutex<Option<(u16, &'static str)>>>;

fn set_close(cell: &InitClose, code: u16, reason: &'static str) -> async_graphql::Error {
    *cell.lock().unwrap_or_else(|e| e.into_inner()) = Some((code, reason));
    async_graphql::Error::new(reason)
}

/// The headers `connection_init`'s payload stands for: `authorization` and the AKID
/// header, from the payload (any case of the key), else from the upgrade request.
fn init_headers(
    payload: &serde_json::Value,
    upgrade: &HeaderMap,
    akid_header: &HeaderName,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    let from_payload = |name: &str| -> Option<HeaderValue> {
        let obj = payload.as_object()?;
        let (_, v) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        HeaderValue::from_str(v.as_str()?).ok()
    };
    for name in [header::AUTHORIZATION, akid_header.clone()] {
        let value = from_payload(name.as_str()).or_else(|| upgrade.get(&name).cloned());
        if let Some(v) = value {
            out.insert(name, v);
        }
    }
    out
}

async fn serve_socket(
    socket: WebSocket,
    schema: GatewaySchema,
    security: Arc<Security>,
    ws_state: Arc<WsState>,
    hub: ProgressHub,
    upgrade_headers: HeaderMap,
    peer: Option<SocketAddr>,
) {
    let settings = ws_state.settings.clone();
    let (mut sink, source) = socket.split();
    // Text and binary frames are protocol messages; a close frame (or an error) ends
    // the input; pings and pongs of the WebSocket layer are not.
    let input = source
        .take_while(|m| {
            futures::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_))))
        })
        .filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => Some(t.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(b)) => Some(b.to_vec()),
                _ => None,
            }
        });
    let init_close: InitClose = Arc::new(Mutex::new(None));
    let mut connection_data = Data::default();
    connection_data.insert(SubscriptionSlots::new(
        settings.max_subscriptions_per_connection,
    ));
    let on_init = {
        let init_close = init_close.clone();
        let security = security.clone();
        let ws_state = ws_state.clone();
        move |payload: serde_json::Value| async move {
            let headers = init_headers(
                &payload,
                &upgrade_headers,
                &security.authenticator.akid_header,
            );
            // The client's address as the HTTP guard sees it (through trusted proxies).
            let address = peer.map(|a| {
                security
                    .trusted_proxies
                    .client_address(a.ip(), &upgrade_headers)
            });
            let mut principal = match security.authenticator.authenticate(&headers).await {
                Ok(p) => p,
                Err(_) => {
                    if let Some(ip) = address {
                        let bucket: Arc<str> = format!("failed@{ip}").into();
                        if security.failures.check(&bucket).is_err() {
                            return Err(set_close(
                                &init_close,
                                4429,
                                "too many failed authentications",
                            ));
                        }
                    }
                    return Err(set_close(
                        &init_close,
                        4403,
                        "Forbidden: send a valid key in connection_init: {\"authorization\": \"Bearer <key>\"}",
                    ));
                }
            };
            principal.address = address;
            // The same bucket and decision as the HTTP guard (a `self` key's member, a
            // public caller's address, else the key).
            let bucket = super::auth::bucket(&principal);
            if super::auth::rate_limit(&security, &bucket).await.is_err() {
                return Err(set_close(
                    &init_close,
                    4429,
                    "too many requests for this key; retry later",
                ));
            }
            let caller = bucket.caller;
            let Some(slot) = ws_state.take_key_slot(caller) else {
                return Err(set_close(
                    &init_close,
                    4429,
                    "too many WebSocket connections for this key",
                ));
            };
            let mut data = Data::default();
            data.insert(principal);
            data.insert(slot);
            Ok(data)
        }
    };
    let mut gql = Box::pin(
        GqlWebSocket::new(
            schema,
            input,
            async_graphql::http::WebSocketProtocols::GraphQLWS,
        )
        .connection_data(connection_data)
        .on_connection_init(on_init)
        .keepalive_timeout(Duration::from_secs(settings.idle_timeout_secs.max(1))),
    );

    let init_deadline = tokio::time::sleep(Duration::from_secs(
        settings.connection_init_timeout_secs.max(1),
    ));
    tokio::pin!(init_deadline);
    let keepalive = Duration::from_secs(settings.keepalive_secs.max(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let mut closing = hub.closing();
    let mut acked = false;
    // Set at shutdown: the subscriptions' `complete` messages go out until then.
    let mut close_at: Option<tokio::time::Instant> = None;
    let close = |code: u16, reason: String| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        let drain_over = async {
            match close_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = gql.next() => match msg {
                Some(WsMessage::Text(text)) => {
                    if !acked && text.contains("\"connection_ack\"") {
                        acked = true;
                    }
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    let decided = *init_close.lock().unwrap_or_else(|e| e.into_inner());
                    let (code, reason) = match decided {
                        Some((c, r)) => (c, r.to_string()),
                        None => (code, reason),
                    };
                    let _ = sink.send(close(code, reason)).await;
                    break;
                }
                None => break,
            },
            _ = &mut init_deadline, if !acked => {
                let _ = sink
                    .send(close(4408, "Connection initialisation timeout".into()))
                    .await;
                break;
            }
            _ = ping.tick(), if acked && close_at.is_none() => {
                if sink
                    .send(Message::Text(r#"{"type":"ping"}"#.into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            _ = crate::graphql::progress::closed(&mut closing), if close_at.is_none() => {
                close_at = Some(tokio::time::Instant::now() + Duration::from_millis(250));
            }
            _ = drain_over => {
                let _ = sink.send(close(1001, "server shutting down".into())).await;
                break;
            }
        }
    }
    let _ = sink.close().await;
}
