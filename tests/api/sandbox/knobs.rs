//! Knobs: --max-concurrent (429), --latency-ms, fault injection, stats.

use std::time::{Duration, Instant};

use super::support::*;
use crate::helpers::sandbox::*;
use actionkit_graphql::sandbox::{Faults, SandboxConfig};
use serde_json::{json, Value};

#[tokio::test]
async fn max_concurrent_answers_429_beyond_the_cap() {
    let sb = start(SandboxConfig {
        max_concurrent: 2,
        latency_ms: 300,
        ..config()
    })
    .await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let rb = sb.get("/rest/v1/user/1/");
        tasks.push(tokio::spawn(async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(
                    v["error"],
                    "Your application is sending too many simultaneous requests"
                );
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(ok, 2);
    assert_eq!(limited, 4);
    let s = sb.stats().await;
    assert_eq!(s["max_in_flight"], 2);
    assert_eq!(s["rejected_429"], 4);
    assert_eq!(s["requests"], 6);
    // Once the load is gone, requests pass again.
    assert_eq!(sb.status("/rest/v1/user/1/").await.0, 200);
}

#[tokio::test]
async fn latency_is_added() {
    let sb = start(SandboxConfig {
        latency_ms: 150,
        ..config()
    })
    .await;
    let t = Instant::now();
    assert_eq!(sb.status("/rest/v1/user/1/").await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    // Control endpoints are not slowed down or counted.
    let t = Instant::now();
    sb.stats().await;
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn stats_count_and_reset() {
    let sb = start(config()).await;
    sb.json("/rest/v1/user/1/").await;
    sb.json("/rest/v1/user/2/").await;
    sb.json("/rest/v1/action/?user=1").await;
    sb.json("/rest/v1/petitionaction/?user=1").await;
    sb.json("/rest/v1/user/schema/").await;
    let _ = sb.get("/rest/v1/user/99999/").send().await.unwrap();
    let _ = get_without_credential(&sb, "/rest/v1/user/1/").await; // 401, still counted
    sb.req(reqwest::Method::PATCH, "/rest/v1/action/1/")
        .body("{\"fields\": {}}")
        .send()
        .await
        .unwrap();
    let s = sb.stats().await;
    assert_eq!(s["requests"], 8);
    assert_eq!(
        s["by_route"],
        json!({
            "GET /rest/v1/user/{id}/": 4,
            "GET /rest/v1/action/": 1,
            "GET /rest/v1/petitionaction/": 1,
            "GET /rest/v1/user/schema/": 1,
            "PATCH /rest/v1/action/{id}/": 1,
        })
    );
    assert!(s["max_in_flight"].as_u64().unwrap() >= 1);
    assert_eq!(s["rejected_429"], 0);
    let r = sb
        .http
        .post(sb.url("/__sandbox/stats/reset"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let s = sb.stats().await;
    assert_eq!(s["requests"], 0);
    assert_eq!(s["by_route"], json!({}));
    assert_eq!(s["max_in_flight"], 0);
    assert_eq!(sb.status("/rest/v1/userpublic/.1.x/").await.0, 404); // counted under {akid}
    let s = sb.stats().await;
    assert_eq!(s["by_route"], json!({"GET /rest/v1/userpublic/{akid}/": 1}));
}

async fn statuses(sb: &RunningSandbox, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            sb.get("/rest/v1/user/1/")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn faults_at_runtime() {
    let sb = start(config()).await;
    let f: Value = crate::helpers::get_json(&sb.http, sb.url("/__sandbox/faults")).await;
    assert_eq!(f["error_500"], 0.0);
    assert_eq!(f["burst_429"], 0);

    set_faults(&sb, json!({"burst_429": 3})).await;
    assert_eq!(statuses(&sb, 5).await, vec![429, 429, 429, 200, 200]);
    assert_eq!(sb.stats().await["rejected_429"], 3);

    set_faults(&sb, json!({"error_500": 1.0})).await;
    let r = sb.get("/rest/v1/user/1/").send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Sorry, this request could not be processed. Please try again later."})
    );
    set_faults(&sb, json!({"error_503": 1.0})).await;
    assert_eq!(statuses(&sb, 1).await, vec![503]);
    set_faults(&sb, json!({"malformed_json": 1.0})).await;
    let r = sb.get("/rest/v1/user/1/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    set_faults(&sb, json!({"drop_connection": 1.0})).await;
    let r = sb.get("/rest/v1/user/1/").send().await;
    let failed = match r {
        Err(_) => true,
        Ok(r) => r.text().await.is_err(),
    };
    assert!(failed, "the connection is dropped");

    // A faulted write changes nothing.
    set_faults(&sb, json!({})).await;
    let id = sb.json("/rest/v1/surveyaction/?_limit=1").await["objects"][0]["id"].clone();
    let before = sb.json(&format!("/rest/v1/action/{id}/")).await;
    set_faults(&sb, json!({"error_500": 1.0})).await;
    let r = sb
        .req(reqwest::Method::PATCH, &format!("/rest/v1/action/{id}/"))
        .body("{\"fields\": {}}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    set_faults(&sb, json!({})).await;
    assert_eq!(sb.json(&format!("/rest/v1/action/{id}/")).await, before);
    assert!(!before["fields"].as_object().unwrap().is_empty());

    // Seeded: the same mix gives the same sequence after each (re)configuration.
    set_faults(&sb, json!({"error_500": 0.3, "error_503": 0.2})).await;
    let first = statuses(&sb, 30).await;
    set_faults(&sb, json!({"error_500": 0.3, "error_503": 0.2})).await;
    let second = statuses(&sb, 30).await;
    assert_eq!(first, second);
    assert!(
        first.contains(&500) && first.contains(&503) && first.contains(&200),
        "{first:?}"
    );

    set_faults(&sb, json!({"slow": 1.0, "slow_ms": 200})).await;
    let t = Instant::now();
    assert_eq!(statuses(&sb, 1).await, vec![200]);
    assert!(t.elapsed() >= Duration::from_millis(200));

    // Bad configurations are refused.
    for bad in [
        json!({"error_500": 2.0}),
        json!({"nope": 1}),
        json!({"error_500": 0.6, "error_503": 0.6}),
    ] {
        let r = post_faults(&sb, &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn faults_from_flags() {
    let sb = start_with_faults(Faults {
        burst_429: 1,
        ..Faults::default()
    })
    .await;
    assert_eq!(statuses(&sb, 2).await, vec![429, 200]);
}

#[tokio::test]
async fn a_dropped_handle_keeps_serving() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = actionkit_graphql::sandbox::spawn(config(), listener)
        .await
        .unwrap()
        .addr;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/rest/v1/user/1/"))
        .basic_auth("sandbox", Some("sandbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn handle_lifetime() {
    let sb = start(config()).await;
    let url = sb.url("/rest/v1/user/1/");
    assert_eq!(sb.status("/rest/v1/user/1/").await.0, 200);
    sb.handle.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(
        fresh.get(&url).send().await.is_err(),
        "stopped after shutdown()"
    );
}
