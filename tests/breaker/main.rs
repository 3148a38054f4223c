//! The circuit breaker: when ActionKit keeps failing, the gateway stops calling it,
//! answers UPSTREAM_UNAVAILABLE at once, probes once when the open period is over,
//! and recovers by itself when ActionKit does. Proven with the sandbox's call counts.
//!
//! Alone in its binary: the gauge `gateway_upstream_breaker_state` is process-wide, and
//! every gateway started in the process sets it (a new client's breaker starts closed).
//! Among the other in-process tests, a gateway starting elsewhere set it to 0 while this
//! test expected 1 (`.ci/run`, 2 December).
#![allow(clippy::unwrap_used)]

// The in-process tests' helpers; this test uses the gateway's.
#[allow(dead_code, unused_imports)]
#[path = "../api/helpers/mod.rs"]
mod helpers;

use std::time::{Duration, Instant};

use crate::helpers::gateway::{spawn_with, TestGateway};
use actionkit_graphql::config::Config;
use serde_json::json;

const QUERY: &str = r#"{ u: user(id: "1") { id } }"#;

async fn metric(gw: &TestGateway, name: &str) -> Option<f64> {
    let text = gw.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn code(gw: &TestGateway) -> String {
    let body = gw.gql(QUERY, json!({})).await;
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

#[tokio::test]
async fn the_breaker_opens_stops_calls_probes_and_recovers() {
    let mut config = Config::default();
    config.actionkit.max_retries = 1;
    config.actionkit.breaker_failure_threshold = 6;
    config.actionkit.breaker_open_ms = 1_000;
    config.actionkit.breaker_max_open_ms = 2_000;
    let gw = spawn_with(&[], config, true).await;
    assert_eq!(code(&gw).await, "none");
    assert_eq!(
        metric(&gw, "gateway_upstream_breaker_state").await,
        Some(0.0)
    );

    // ActionKit fails every request: 2 attempts per query, 6 failures open it.
    gw.set_faults(json!({"error_503": 1.0})).await;
    for _ in 0..3 {
        assert_eq!(code(&gw).await, "UPSTREAM_UNAVAILABLE");
    }
    assert_eq!(
        metric(&gw, "gateway_upstream_breaker_state").await,
        Some(1.0)
    );

    // Open: nothing reaches ActionKit, and every answer is immediate.
    gw.reset_stats().await;
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(code(&gw).await, "UPSTREAM_UNAVAILABLE");
    }
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "open answers took {:?}",
        started.elapsed()
    );
    assert_eq!(gw.calls().await, 0, "calls sent while the breaker was open");

    // Half-open after 1,000 ms: one probe, which fails, so open again (2,000 ms).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    gw.reset_stats().await;
    let burst = (0..10).map(|_| code(&gw));
    let codes = futures::future::join_all(burst).await;
    assert!(
        codes.iter().all(|c| c == "UPSTREAM_UNAVAILABLE"),
        "{codes:?}"
    );
    assert_eq!(gw.calls().await, 1, "exactly one probe while half-open");
    assert_eq!(
        metric(&gw, "gateway_upstream_breaker_state").await,
        Some(1.0)
    );

    // ActionKit recovers; after the (doubled) open period the probe succeeds and
    // the breaker closes by itself.
    gw.set_faults(json!({})).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        code(&gw).await,
        "UPSTREAM_UNAVAILABLE",
        "still open at 1,000 ms"
    );
    gw.reset_stats().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(gw.calls().await, 0, "nothing sent while open");
    gw.reset_stats().await;
    let data = gw.data(QUERY, json!({})).await;
    assert_eq!(data["u"]["id"], "1");
    assert_eq!(gw.calls().await, 1);
    assert_eq!(
        metric(&gw, "gateway_upstream_breaker_state").await,
        Some(0.0)
    );
    for _ in 0..5 {
        assert_eq!(code(&gw).await, "none");
    }
    let opened = metric(
        &gw,
        "gateway_upstream_breaker_transitions_total{to=\"open\"}",
    )
    .await;
    assert_eq!(opened, Some(2.0));
}
