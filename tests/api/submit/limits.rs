//! Limits of public submitters (keys without `write`): per client address and per
//! page, answered `RATE_LIMITED` with `retryAfter`, before any check or upstream call.
//! Staff keys are not limited here. A `submit` key's general request budget is counted
//! per client address too: one key in a public page is shared by every visitor.

use std::net::IpAddr;

use crate::helpers::submit::*;
use serde_json::{json, Value};

/// Refused input (nothing is sent or stored), so that only the limits matter.
fn bad(page: &str) -> Value {
    json!({"page": page, "email": "not-an-email"})
}

/// POSTs `body` to the gateway from a given local address with `key`: status and the
/// JSON body (`null` when it is not JSON).
async fn post_from(gw: &TestGateway, from: &str, key: &str, body: Value) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = http
        .post(gw.graphql_url())
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Submits from a given local address.
async fn submit_from(gw: &TestGateway, from: &str, key: &str, input: Value) -> Value {
    let body = json!({"query": SUBMIT, "variables": {"input": input}});
    post_from(gw, from, key, body).await.1
}

fn outcome(body: &Value) -> String {
    match body["data"]["submitAction"]["status"].as_str() {
        Some(s) => s.to_owned(),
        None => code(body).to_owned(),
    }
}

#[tokio::test]
async fn submissions_are_limited_per_client_address() {
    let mut config = keyed_config();
    config.submit.per_address_per_minute = 1;
    config.submit.per_address_burst = 3;
    let gw = keyed_with(config).await;
    gw.reset_stats().await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(outcome(
            &submit_from(&gw, "127.0.0.1", FORM_KEY, bad(PAGE)).await,
        ));
    }
    assert_eq!(seen, ["FAILED", "FAILED", "FAILED", "RATE_LIMITED"]);
    let body = submit_from(&gw, "127.0.0.1", FORM_KEY, bad(PAGE)).await;
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1,
        "{body}"
    );
    // Another address has its own allowance, with the same key.
    let body = submit_from(&gw, "127.0.0.2", FORM_KEY, bad(PAGE)).await;
    assert_eq!(outcome(&body), "FAILED", "{body}");
    // Staff keys are not limited here.
    let body = submit_from(&gw, "127.0.0.1", STAFF_KEY, bad(PAGE)).await;
    assert_eq!(outcome(&body), "FAILED", "{body}");
    assert_eq!(gw.calls().await, 0);
}

#[tokio::test]
async fn submissions_are_limited_per_page() {
    let mut config = keyed_config();
    config.submit.per_page_per_minute = 1;
    config.submit.per_page_burst = 2;
    let gw = keyed_with(config).await;
    let mut seen = Vec::new();
    for from in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        seen.push(outcome(&submit_from(&gw, from, FORM_KEY, bad(PAGE)).await));
    }
    assert_eq!(seen, ["FAILED", "FAILED", "RATE_LIMITED"]);
    // Another page has its own allowance.
    let body = submit_from(&gw, "127.0.0.1", FORM_KEY, bad(OTHER_PAGE)).await;
    assert_eq!(outcome(&body), "FAILED", "{body}");
}

#[tokio::test]
async fn a_submit_keys_request_budget_is_per_client_address() {
    let mut config = keyed_config();
    config.security.rate_limit_per_minute = Some(1);
    config.security.rate_limit_burst = 2;
    let gw = keyed_with(config).await;
    let query = r#"{ submission(id: "nothing") { id } }"#;
    let post = |from: &'static str| {
        let gw = &gw;
        async move {
            post_from(gw, from, FORM_KEY, json!({ "query": query }))
                .await
                .0
        }
    };
    assert_eq!(
        [
            post("127.0.0.1").await,
            post("127.0.0.1").await,
            post("127.0.0.1").await
        ],
        [200, 200, 429]
    );
    assert_eq!(
        post("127.0.0.2").await,
        200,
        "another visitor of the same page"
    );
}
