//! A `graphql-transport-ws` client over a real WebSocket (tokio-tungstenite), for the
//! subscription tests.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server sent: a JSON message, or a close frame `(code, reason)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    Json(Value),
    Close(u16, String),
}

/// Opens a WebSocket on `/graphql` with the `graphql-transport-ws` subprotocol.
pub(crate) async fn open(addr: SocketAddr) -> Socket {
    let mut req = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("graphql-transport-ws".to_owned())
    );
    ws
}

pub(crate) async fn send(ws: &mut Socket, msg: Value) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message or close frame (pings are answered and skipped); panics
/// after `wait`.
pub(crate) async fn next(ws: &mut Socket, wait: Duration) -> Frame {
    tokio::time::timeout(wait, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "ping" {
                        send(ws, json!({"type": "pong"})).await;
                        continue;
                    }
                    return Frame::Json(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(f) => Frame::Close(u16::from(f.code), f.reason.to_string()),
                        None => Frame::Close(1005, String::new()),
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Frame::Close(1006, e.to_string()),
                None => return Frame::Close(1006, "ended".into()),
            }
        }
    })
    .await
    .expect("no message from the gateway in time")
}

/// `connection_init` with `payload`; the answer (`connection_ack` or a close).
pub(crate) async fn init(ws: &mut Socket, payload: Value) -> Frame {
    send(ws, json!({"type": "connection_init", "payload": payload})).await;
    next(ws, Duration::from_secs(10)).await
}

/// Opens, authenticates with `key` (none: an empty payload) and expects the ack.
pub(crate) async fn connect(addr: SocketAddr, key: Option<&str>) -> Socket {
    let mut ws = open(addr).await;
    let payload = match key {
        Some(k) => json!({"authorization": format!("Bearer {k}")}),
        None => json!({}),
    };
    let ack = init(&mut ws, payload).await;
    assert_eq!(ack, Frame::Json(json!({"type": "connection_ack"})));
    ws
}

pub(crate) const PROGRESS: &str = "subscription P($page: String!) { pageProgress(page: $page) { pageName current actions goal goalType percent asOf } }";

/// Subscribes `id` to `page`'s progress.
pub(crate) async fn subscribe(ws: &mut Socket, id: &str, page: &str) {
    send(
        ws,
        json!({"id": id, "type": "subscribe", "payload": {"query": PROGRESS, "variables": {"page": page}}}),
    )
    .await;
}

/// The next `next` message's `pageProgress` for `id`; panics on anything else.
pub(crate) async fn next_progress(ws: &mut Socket, id: &str, wait: Duration) -> Value {
    match next(ws, wait).await {
        Frame::Json(v) if v["type"] == "next" && v["id"] == id => {
            assert!(v["payload"].get("errors").is_none(), "{v}");
            v["payload"]["data"]["pageProgress"].clone()
        }
        other => panic!("expected progress for {id}, got {other:?}"),
    }
}
