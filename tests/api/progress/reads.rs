//! `Page.progress`: the sandbox's count, cached and shared by concurrent callers.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

const PROGRESS: &str = r#"query($name: String!) { page(name: $name) { name progress { pageName current actions amount goal goalType percent asOf } } }"#;

/// `page`'s progress, read with the read key: the progress and the whole answer.
async fn progress_of(gw: &TestGateway, page: &str) -> (Value, Value) {
    let (status, body) = call(gw, Some(READ_KEY), &[], PROGRESS, json!({"name": page})).await;
    assert_eq!(status, 200, "{body}");
    (body["data"]["page"]["progress"].clone(), body)
}

#[tokio::test]
async fn progress_equals_the_sandboxs_own_count() {
    let gw = keyed_fast().await;
    for page in ["save-the-bees", "clean-water-now", "join-us"] {
        let (p, body) = progress_of(&gw, page).await;
        let expected = sandbox_count(&gw, page).await;
        assert_eq!(p["actions"].as_u64(), Some(expected), "{page}: {body}");
        assert_eq!(p["current"].as_f64(), Some(expected as f64), "{page}");
        assert_eq!(p["pageName"], page);
        assert!(p["asOf"].as_str().unwrap().ends_with('Z'), "{p}");
    }
    let (p, _) = progress_of(&gw, "save-the-bees").await;
    assert_eq!(
        (p["goal"].clone(), p["goalType"].clone()),
        (json!(1000), json!("ACTIONS"))
    );
    let expected = (p["actions"].as_f64().unwrap() / 1000.0 * 1000.0).round() / 10.0;
    assert_eq!(p["percent"].as_f64(), Some(expected));
    // A page without a goal: no goal, no percentage.
    let (p, _) = progress_of(&gw, "join-us").await;
    assert_eq!(p["goal"], Value::Null);
    assert_eq!(p["percent"], Value::Null);
}

#[tokio::test]
async fn donation_goals_count_the_amount() {
    let gw = keyed_fast().await;
    let (p, body) = progress_of(&gw, "support").await;
    assert_eq!(p["goalType"], "MONEY", "{body}");
    assert_eq!(p["current"], p["amount"], "{body}");
}

#[tokio::test]
async fn concurrent_requests_share_one_upstream_read_per_period() {
    let gw = keyed_fast_with(|c| c.progress.cache_ttl_secs = 30).await;
    gw.reset_stats().await;
    let query = r#"query { page(name: "fair-rent") { progress { actions } } }"#;
    let answers = futures::future::join_all(
        (0..100).map(|_| call(&gw, Some(READ_KEY), &[], query, json!({}))),
    )
    .await;
    let counts: std::collections::HashSet<_> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["data"]["page"]["progress"]["actions"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(progress_reads(&gw).await, 1);
}

#[tokio::test]
async fn after_the_period_the_count_is_read_again() {
    let gw = keyed_fast().await;
    let query = r#"query { page(name: "fair-rent") { progress { actions } } }"#;
    let (_, first) = call(&gw, Some(READ_KEY), &[], query, json!({})).await;
    let before = first["data"]["page"]["progress"]["actions"]
        .as_u64()
        .unwrap();
    // An action the gateway did not process (straight to the sandbox).
    let resp = gw
        .http
        .post(format!("http://{}/rest/v1/action/", gw.sandbox))
        .basic_auth("sandbox", Some("sandbox"))
        .json(&json!({"page": "fair-rent", "email": "elsewhere@example.org", "first_name": "E", "zip": "12345"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, second) = call(&gw, Some(READ_KEY), &[], query, json!({})).await;
    assert_eq!(
        second["data"]["page"]["progress"]["actions"].as_u64(),
        Some(before + 1)
    );
}
