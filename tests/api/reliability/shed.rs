//! Load shedding: beyond the execution slots and the bounded queue, requests are
//! refused at once with HTTP 429, `Retry-After` and a GraphQL-shaped body
//! (`OVERLOADED`, the gateway's own overload); the admitted ones complete normally.

use std::time::{Duration, Instant};

use crate::helpers::gateway::{spawn_with, TestGateway};
use actionkit_graphql::config::Config;
use serde_json::{json, Value};

/// A gateway with `slots` execution slots and a queue of `queued` requests, each
/// waiting at most `queue_timeout_ms`, over a sandbox whose every answer takes
/// `latency_ms`.
async fn gateway(
    slots: usize,
    queued: usize,
    queue_timeout_ms: u64,
    latency_ms: &str,
) -> TestGateway {
    let mut config = Config::default();
    config.graphql.max_concurrent_operations = slots;
    config.graphql.max_queued_operations = queued;
    config.graphql.queue_timeout_ms = queue_timeout_ms;
    spawn_with(&["--latency-ms", latency_ms], config, true).await
}

/// `n` user reads at once (users 1 to `n`): per request its status, `Retry-After`,
/// body and how long its answer took.
async fn at_once(gw: &TestGateway, n: usize) -> Vec<(u16, Option<String>, Value, Duration)> {
    let sends = (0..n).map(|i| async move {
        let started = Instant::now();
        let query = format!(r#"{{ user(id: "{}") {{ id }} }}"#, i + 1);
        let (status, headers, body) = gw.post_json(&[], json!({ "query": query })).await;
        let retry_after = headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry_after, body, started.elapsed())
    });
    futures::future::join_all(sends).await
}

#[tokio::test]
async fn requests_beyond_the_queue_are_refused_quickly_with_429() {
    // Every upstream answer takes 400 ms.
    let gw = gateway(2, 2, 5_000, "400").await;
    let results = at_once(&gw, 12).await;
    let (ok, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.0 == 200);
    // Two execute, two wait in the queue and run next; the rest are refused.
    assert_eq!(ok.len(), 4, "{ok:?} {refused:?}");
    assert_eq!(refused.len(), 8);
    for (status, retry_after, body, elapsed) in &refused {
        assert_eq!(*status, 429);
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["errors"][0]["extensions"]["code"], "OVERLOADED");
        assert!(body.get("data").is_none());
        assert!(
            *elapsed < Duration::from_millis(300),
            "refusal took {elapsed:?}"
        );
    }
    for (_, _, body, _) in &ok {
        assert!(body.get("errors").is_none(), "{body}");
    }
    // Once the load is gone the gateway serves again.
    gw.data(r#"{ user(id: "1") { id } }"#, json!({})).await;
}

#[tokio::test]
async fn a_queued_request_waits_at_most_the_queue_timeout() {
    let gw = gateway(1, 4, 200, "800").await;
    let results = at_once(&gw, 3).await;
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(refused.len(), 2, "{results:?}");
    for (_, _, _, elapsed) in refused {
        assert!(
            *elapsed >= Duration::from_millis(190) && *elapsed < Duration::from_millis(700),
            "{elapsed:?}"
        );
    }
}
