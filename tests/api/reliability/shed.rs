//! Load shedding: beyond the execution slots and the bounded queue, requests are
//! refused at once with HTTP 429, `Retry-After` and a GraphQL-shaped body
//! (`OVERLOADED`, the gateway's own overload); the admitted ones complete normally.

use std::time::{Duration, Instant};

use crate::helpers::gateway::spawn_with;
use actionkit_graphql::config::Config;
use serde_json::{json, Value};

#[tokio::test]
async fn requests_beyond_the_queue_are_refused_quickly_with_429() {
    let mut config = Config::default();
    config.graphql.max_concurrent_operations = 2;
    config.graphql.max_queued_operations = 2;
    config.graphql.queue_timeout_ms = 5_000;
    // Every upstream answer takes 400 ms.
    let gw = spawn_with(&["--latency-ms", "400"], config, true).await;
    let url = format!("http://{}/graphql", gw.addr);
    let sends = (0..12).map(|i| {
        let http = gw.http.clone();
        let url = url.clone();
        async move {
            let started = Instant::now();
            let resp = http
                .post(url)
                .json(&json!({"query": format!(r#"{{ user(id: "{}") {{ id }} }}"#, i + 1)}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = resp.json().await.unwrap();
            (status, retry_after, body, started.elapsed())
        }
    });
    let results = futures::future::join_all(sends).await;
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
    let mut config = Config::default();
    config.graphql.max_concurrent_operations = 1;
    config.graphql.max_queued_operations = 4;
    config.graphql.queue_timeout_ms = 200;
    let gw = spawn_with(&["--latency-ms", "800"], config, true).await;
    let url = format!("http://{}/graphql", gw.addr);
    let sends = (0..3).map(|_| {
        let http = gw.http.clone();
        let url = url.clone();
        async move {
            let started = Instant::now();
            let resp = http
                .post(url)
                .json(&json!({"query": r#"{ user(id: "1") { id } }"#}))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), started.elapsed())
        }
    });
    let results = futures::future::join_all(sends).await;
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(refused.len(), 2, "{results:?}");
    for (_, elapsed) in refused {
        assert!(
            *elapsed >= Duration::from_millis(190) && *elapsed < Duration::from_millis(700),
            "{elapsed:?}"
        );
    }
}
