//! `Subscription.pageProgress` over a real WebSocket (`graphql-transport-ws`): one
//! upstream poll per period for all subscribers of a page, a processed submission
//! pushed at once, authentication in `connection_init`, the limits, idle handling and
//! shutdown.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::helpers::ws::{self, Frame};

const WAIT: Duration = Duration::from_secs(10);

/// The error code of a subscription's refusal (`next` with errors, or `error`), and the
/// `complete` that follows it.
async fn refusal(s: &mut ws::Socket, id: &str) -> String {
    let frame = ws::next(s, WAIT).await;
    let code = match &frame {
        Frame::Json(v) if v["type"] == "next" && v["id"] == id => v["payload"]["errors"][0]
            ["extensions"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        Frame::Json(v) if v["type"] == "error" && v["id"] == id => {
            return v["payload"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        }
        other => panic!("expected a refusal of {id}, got {other:?}"),
    };
    assert_eq!(
        ws::next(s, WAIT).await,
        Frame::Json(json!({"id": id, "type": "complete"}))
    );
    code
}

#[tokio::test]
async fn subscribers_of_one_page_share_one_poll_per_period() {
    let gw = keyed_fast().await;
    let expected = sandbox_count(&gw, PAGE).await;
    let mut sockets = Vec::new();
    for i in 0..12 {
        // Keys of two scopes, several connections, several subscriptions each.
        let key = if i % 2 == 0 { FORM_KEY } else { READ_KEY };
        let mut s = ws::connect(gw.addr, Some(key)).await;
        for id in ["a", "b"] {
            ws::subscribe(&mut s, id, PAGE).await;
            let first = ws::next_progress(&mut s, id, WAIT).await;
            assert_eq!(first["actions"].as_u64(), Some(expected), "{first}");
            assert_eq!(first["goal"], 1000);
        }
        sockets.push(s);
    }
    assert_eq!(gw.progress.subscribers(), 24);
    assert_eq!(gw.progress.pages_watched(), 1);
    gw.reset_stats().await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let reads = progress_reads(&gw).await;
    let periods = started.elapsed().as_secs_f64() / 1.05;
    // One poll per period (24 subscribers polling on their own would be ~72).
    assert!(
        (2..=periods.ceil() as u64 + 1).contains(&reads),
        "{reads} reads in {periods:.1} periods"
    );
    // The last subscriber gone, the poll stops.
    drop(sockets);
    let deadline = Instant::now() + WAIT;
    while gw.progress.pages_watched() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.progress.pages_watched(), 0);
    assert_eq!(gw.progress.subscribers(), 0);
    gw.reset_stats().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(progress_reads(&gw).await, 0);
}

#[tokio::test]
async fn a_processed_submission_is_pushed_at_once() {
    // A long period: the push cannot come from a poll.
    let gw = keyed_fast_with(|c| c.progress.cache_ttl_secs = 60).await;
    let mut s = ws::connect(gw.addr, Some(FORM_KEY)).await;
    ws::subscribe(&mut s, "1", PAGE).await;
    let first = ws::next_progress(&mut s, "1", WAIT).await;
    let before = first["actions"].as_u64().unwrap();
    let sent = Instant::now();
    let (status, body) = submit(&gw, Some(FORM_KEY), signature("pushed@example.org")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["submitAction"]["status"], "PROCESSED",
        "{body}"
    );
    let pushed = ws::next_progress(&mut s, "1", Duration::from_secs(5)).await;
    assert_eq!(pushed["actions"].as_u64(), Some(before + 1), "{pushed}");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(sandbox_count(&gw, PAGE).await, before + 1);
    // Queries see the moved count too (the cache holds it).
    let (_, body) = call(
        &gw,
        Some(READ_KEY),
        &[],
        r#"{ page(name: "save-the-bees") { progress { actions } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        body["data"]["page"]["progress"]["actions"].as_u64(),
        Some(before + 1)
    );
}

#[tokio::test]
async fn connection_init_authenticates_with_the_same_keys() {
    let gw = keyed_fast().await;
    for payload in [
        json!({}),
        json!({"authorization": "Bearer wrong-key"}),
        json!({"authorization": FORM_KEY}),
    ] {
        let mut s = ws::open(gw.addr).await;
        match ws::init(&mut s, payload.clone()).await {
            Frame::Close(4403, reason) => assert!(reason.contains("Forbidden"), "{reason}"),
            other => panic!("{payload}: {other:?}"),
        }
    }
    // The key's scopes apply: a submit key on a page it does not list, a write key.
    let mut s = ws::connect(gw.addr, Some(FORM_KEY)).await;
    ws::subscribe(&mut s, "x", FORBIDDEN_PAGE).await;
    assert_eq!(refusal(&mut s, "x").await, "FORBIDDEN");
    let mut s = ws::connect(gw.addr, Some(WRITE_KEY)).await;
    ws::subscribe(&mut s, "x", PAGE).await;
    assert_eq!(refusal(&mut s, "x").await, "FORBIDDEN");
    // Bad input and unknown pages.
    let mut s = ws::connect(gw.addr, Some(READ_KEY)).await;
    ws::subscribe(&mut s, "bad", "no spaces").await;
    assert_eq!(refusal(&mut s, "bad").await, "BAD_USER_INPUT");
    ws::subscribe(&mut s, "unknown", "no-such-page").await;
    assert_eq!(refusal(&mut s, "unknown").await, "NOT_FOUND");
    // Queries are for HTTP.
    ws::send(
        &mut s,
        json!({"id": "q", "type": "subscribe", "payload": {"query": "{ __typename }"}}),
    )
    .await;
    assert_eq!(refusal(&mut s, "q").await, "FORBIDDEN");
}

#[tokio::test]
async fn subscriptions_over_http_are_refused() {
    let gw = keyed_fast().await;
    let (status, body) = call(
        &gw,
        Some(READ_KEY),
        &[],
        ws::PROGRESS,
        json!({"page": PAGE}),
    )
    .await;
    assert!(status == 200 || status == 403, "{status} {body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(message(&body).contains("WebSocket"), "{body}");
}

#[tokio::test]
async fn limits_per_connection_and_per_key() {
    let gw = keyed_fast_with(|c| {
        c.progress.max_subscriptions_per_connection = 2;
        c.progress.max_connections_per_key = 2;
    })
    .await;
    let mut s = ws::connect(gw.addr, Some(READ_KEY)).await;
    for id in ["1", "2"] {
        ws::subscribe(&mut s, id, PAGE).await;
        ws::next_progress(&mut s, id, WAIT).await;
    }
    ws::subscribe(&mut s, "3", PAGE).await;
    assert_eq!(refusal(&mut s, "3").await, "RATE_LIMITED");
    // Stopping one frees its slot.
    ws::send(&mut s, json!({"id": "1", "type": "complete"})).await;
    ws::subscribe(&mut s, "4", PAGE).await;
    loop {
        match ws::next(&mut s, WAIT).await {
            // The stopped subscription may still have a value in flight.
            Frame::Json(v) if v["id"] == "1" => continue,
            Frame::Json(v) => {
                assert_eq!(v["id"], "4", "{v}");
                assert!(v["payload"].get("errors").is_none(), "{v}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let _second = ws::connect(gw.addr, Some(READ_KEY)).await;
    let mut third = ws::open(gw.addr).await;
    match ws::init(
        &mut third,
        json!({"authorization": format!("Bearer {READ_KEY}")}),
    )
    .await
    {
        Frame::Close(4429, _) => {}
        other => panic!("{other:?}"),
    }
    // Another key is not affected.
    let _other = ws::connect(gw.addr, Some(STAFF_KEY)).await;
}

#[tokio::test]
async fn a_connection_that_never_initialises_or_goes_silent_is_closed() {
    let gw = keyed_fast_with(|c| {
        c.progress.connection_init_timeout_secs = 1;
        c.progress.keepalive_secs = 1;
        c.progress.idle_timeout_secs = 2;
    })
    .await;
    let mut s = ws::open(gw.addr).await;
    assert_eq!(
        ws::next(&mut s, WAIT).await,
        Frame::Close(4408, "Connection initialisation timeout".into())
    );
    // A client that answers the gateway's pings stays; one that does not is closed.
    let mut alive = ws::connect(gw.addr, Some(READ_KEY)).await;
    ws::subscribe(&mut alive, "1", PAGE).await;
    ws::next_progress(&mut alive, "1", WAIT).await;
    let answering = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_millis(3500);
        let mut pings = 0;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, alive.next()).await {
                Err(_) => return (alive, pings),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(v["type"], "ping", "{v}");
                    pings += 1;
                    ws::send(&mut alive, json!({"type": "pong"})).await;
                }
                other => panic!("the answering client got {other:?}"),
            }
        }
    });
    let mut silent = ws::connect(gw.addr, Some(STAFF_KEY)).await;
    let started = Instant::now();
    let mut pings = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, silent.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "ping", "{v}");
                pings += 1;
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 3008);
    assert!(pings >= 1);
    assert!(started.elapsed() >= Duration::from_millis(1900));
    let (mut alive, alive_pings) = answering.await.unwrap();
    assert!(alive_pings >= 2, "{alive_pings}");
    // The answering client is still served: a submission reaches it.
    let resp = submit(&gw, Some(FORM_KEY), signature("still-alive@example.org")).await;
    assert_eq!(resp.1["data"]["submitAction"]["status"], "PROCESSED");
    let pushed = ws::next_progress(&mut alive, "1", WAIT).await;
    assert!(pushed["actions"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn shutdown_completes_every_subscription_then_closes_with_1001() {
    let gw = keyed_fast().await;
    let mut s = ws::connect(gw.addr, Some(READ_KEY)).await;
    for id in ["a", "b"] {
        ws::subscribe(&mut s, id, if id == "a" { PAGE } else { OTHER_PAGE }).await;
        ws::next_progress(&mut s, id, WAIT).await;
    }
    gw.progress.shutdown();
    let mut completed = Vec::new();
    let close = loop {
        match ws::next(&mut s, WAIT).await {
            Frame::Json(v) if v["type"] == "complete" => {
                completed.push(v["id"].as_str().unwrap().to_owned())
            }
            Frame::Json(v) if v["type"] == "next" => continue,
            Frame::Close(code, reason) => break (code, reason),
            other => panic!("{other:?}"),
        }
    };
    completed.sort();
    assert_eq!(completed, ["a", "b"]);
    assert_eq!(close, (1001, "server shutting down".to_owned()));
    // New connections are refused while shutting down.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/graphql", gw.addr),
    )
    .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

#[tokio::test]
async fn an_upgrade_without_the_subprotocol_is_refused_and_http_is_untouched() {
    let gw = keyed_fast().await;
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/graphql", gw.addr),
    )
    .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // Plain GET and POST still go through the guard and the HTTP handler.
    let r = gw.get("/graphql?query=%7B__typename%7D").await;
    assert_eq!(r.status(), 401);
    let (status, body) = call(&gw, Some(READ_KEY), &[], "{ __typename }", json!({})).await;
    assert_eq!(
        (status, body["data"]["__typename"].clone()),
        (200, json!("Query"))
    );
}
