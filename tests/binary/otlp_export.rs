//! OpenTelemetry export: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the real binary POSTs
//! its spans (OTLP/HTTP, protobuf) to `<endpoint>/v1/traces`, and the spans still
//! buffered when SIGTERM arrives are flushed before it exits; unset, nothing is exported.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use axum::Router;

use crate::helpers::{command, Running, Serves};

/// One request the receiver got: path, content type, body.
type Seen = Arc<Mutex<Vec<(String, String, Bytes)>>>;

/// A stand-in collector that records every request and answers 200.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn record(State(seen): State<Seen>, uri: Uri, headers: HeaderMap, body: Bytes) {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock().unwrap().push((uri.path().to_owned(), ct, body));
    }
    let app = Router::new()
        .route("/v1/traces", post(record))
        .fallback(record)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn gateway() -> Command {
    let mut cmd = command();
    cmd.args(["serve", "--sandbox", "--users", "20"]);
    cmd
}

/// Starts the gateway, runs one query, sends SIGTERM and waits for a clean exit.
async fn one_query_then_sigterm(cmd: Command) {
    let mut gw = Running::start(cmd, Serves::Gateway);
    let http = reqwest::Client::new();
    let resp = http
        .post(gw.url("/graphql"))
        .json(&serde_json::json!({"query": "{ user(id: \"1\") { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["user"]["id"], "1", "{body}");

    assert!(Command::new("kill")
        .args(["-TERM", &gw.pid()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = gw.child.kill();
            panic!("the gateway did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_http_and_flushed_on_sigterm() {
    let (collector, seen) = receiver().await;
    let mut cmd = gateway();
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector);
    // The batch processor would wait 5 s before its first export; the process is
    // stopped right after the query, so what arrives was flushed at shutdown.
    one_query_then_sigterm(cmd).await;

    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the collector received nothing");
    let mut all = Vec::new();
    for (path, content_type, body) in &seen {
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        assert!(!body.is_empty(), "an empty export");
        all.extend_from_slice(body);
    }
    // Protobuf carries strings as they are: the operation's span, the upstream call
    // under it, and the service name are in the exported batch.
    let has = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("graphql.operation"), "no graphql.operation span");
    assert!(has("upstream.request"), "no upstream.request span");
    assert!(has("actionkit-graphql"), "no service.name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_without_an_endpoint() {
    let (collector, seen) = receiver().await;
    // The collector runs, but the gateway is not told about it.
    one_query_then_sigterm(gateway()).await;
    assert!(seen.lock().unwrap().is_empty());

    // check-config: no endpoint unless one is given; the variable sets it.
    let check = |endpoint: Option<&str>| {
        let mut cmd = command();
        cmd.arg("check-config");
        if let Some(e) = endpoint {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", e);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let off = check(None);
    assert!(off.contains("[telemetry]"), "{off}");
    assert!(!off.contains("otlp_endpoint"), "{off}");
    let on = check(Some(&collector));
    assert!(
        on.contains(&format!("otlp_endpoint = \"{collector}\"")),
        "{on}"
    );
    assert!(on.contains("service_name = \"actionkit-graphql\""), "{on}");
}
