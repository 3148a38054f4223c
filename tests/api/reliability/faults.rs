//! The fault matrix (docs/reliability.md): for each upstream fault the sandbox can
//! inject and each kind of operation, the gateway answers HTTP 200 within its
//! deadline, with the data it could get and a coded error at the failing path.
//!
//! Every operation carries a sibling `page(id: "1")` served from the warm page cache,
//! so "the data it could get" is visible: it survives every fault except where the
//! failing field is non-null at the root (the mutation), which nulls `data` as the
//! GraphQL spec says. `users` fails member by member (each null, with its error at
//! `us.<index>`), so its list and the sibling stay.

use std::time::{Duration, Instant};

use crate::helpers::gateway::{spawn_with, TestGateway};
use crate::helpers::ERROR_CODES;
use actionkit_graphql::config::Config;
use serde_json::{json, Value};

/// The GraphQL deadline of these gateways; every answer must come within it (plus
/// scheduling slack on a busy 2-core machine).
const GQL_DEADLINE_MS: u64 = 2_500;

/// Small timeouts so that each row takes about a second. The breaker is off here so
/// that each fault shows its own code; `reliability_breaker.rs` covers it.
fn config() -> Config {
    let mut c = Config::default();
    c.actionkit.request_timeout_ms = 300;
    c.actionkit.operation_deadline_ms = 1_500;
    c.actionkit.max_retries = 2;
    c.actionkit.breaker_failure_threshold = 0;
    c.graphql.operation_deadline_ms = GQL_DEADLINE_MS;
    c
}

/// What a row expects of every operation.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Complete data, no errors (the fault is absorbed by retries or is within timeouts).
    Full,
    /// The failing field is null with an error carrying this code at its path.
    Code(&'static str),
}

struct Fixture {
    gw: TestGateway,
    page: Value,
    cursor: String,
    action_id: String,
}

const PAGE: &str = r#"ok: page(id: "1") { id title }"#;

async fn fixture() -> Fixture {
    let gw = spawn_with(&[], config(), true).await;
    let data = gw
        .data(
            &format!(
                r#"{{ {PAGE} u: user(id: "2") {{ actions(first: 30) {{ pageInfo {{ endCursor }} }} }} }}"#
            ),
            json!({}),
        )
        .await;
    let cursor = data["u"]["actions"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = gw.rest("/rest/v1/action/?user=3&_limit=1").await;
    let action_id = list["objects"][0]["id"].to_string();
    Fixture {
        gw,
        page: data["ok"].clone(),
        cursor,
        action_id,
    }
}

/// The four kinds of operation: (name, document, variables, root field that fails,
/// whether the page sibling is there to survive).
fn operations(f: &Fixture, field: &str) -> Vec<(&'static str, String, Value, &'static str, bool)> {
    vec![
        (
            "single user",
            format!(r#"{{ {PAGE} u: user(id: "1") {{ id firstName customFields {{ name }} }} }}"#),
            json!({}),
            "u",
            true,
        ),
        (
            "batch of users",
            format!(r#"{{ {PAGE} us: users(ids: ["1", "2", "3", "4", "5"]) {{ id email }} }}"#),
            json!({}),
            "us",
            true,
        ),
        (
            "paginated actions",
            format!(
                r#"query($after: String) {{ {PAGE} u: user(id: "2") {{ id
                     actions(first: 30, after: $after) {{ totalCount nodes {{ id type }}
                     pageInfo {{ hasNextPage endCursor }} }} }} }}"#
            ),
            json!({"after": f.cursor}),
            "u",
            true,
        ),
        (
            "mutation",
            r#"mutation($id: ID!, $f: [CustomFieldInput!]!) {
                 m: setActionCustomFields(actionId: $id, fields: $f) { id customFields { name value } } }"#
                .to_owned(),
            json!({"id": f.action_id, "f": [{"name": field, "value": "v1"}]}),
            "m",
            false,
        ),
    ]
}

/// Runs every operation under `faults` and checks the row's expectation.
async fn row(name: &str, faults: Value, expect: Expect) {
    let f = fixture().await;
    let field = format!("fm_{}", name.replace(' ', "_"));
    for (op, doc, vars, root, sibling) in operations(&f, &field) {
        f.gw.set_faults(faults.clone()).await;
        let started = Instant::now();
        let body = f.gw.gql(&doc, vars).await; // asserts HTTP 200
        let elapsed = started.elapsed();
        f.gw.set_faults(json!({})).await;
        let ctx = format!("{name} / {op}: {body:#}");
        assert!(
            elapsed < Duration::from_millis(GQL_DEADLINE_MS + 1_500),
            "{name} / {op} took {elapsed:?}"
        );
        let text = body.to_string();
        assert!(
            !text.contains("rest/v1") && !text.contains("127.0.0.1"),
            "upstream details leaked: {ctx}"
        );
        match expect {
            Expect::Full => {
                assert!(body.get("errors").is_none(), "{ctx}");
                assert!(!body["data"][root].is_null(), "{ctx}");
                if sibling {
                    assert_eq!(body["data"]["ok"], f.page, "{ctx}");
                }
            }
            Expect::Code(code) => {
                let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{ctx}"));
                assert!(!errors.is_empty(), "{ctx}");
                for e in errors {
                    let c = e["extensions"]["code"].as_str().unwrap();
                    assert!(ERROR_CODES.contains(&c), "{ctx}");
                    assert_eq!(c, code, "{ctx}");
                    assert_eq!(e["path"][0], root, "error not at the failing path: {ctx}");
                }
                if sibling {
                    assert_eq!(body["data"]["ok"], f.page, "sibling data lost: {ctx}");
                    // A nullable root is null; a list of members has every member null.
                    let failed = &body["data"][root];
                    let all_null = failed
                        .as_array()
                        .is_some_and(|l| !l.is_empty() && l.iter().all(Value::is_null));
                    assert!(failed.is_null() || all_null, "{ctx}");
                } else {
                    assert!(body["data"].is_null(), "{ctx}");
                }
            }
        }
    }
    // Writes: applied exactly when the mutation said so.
    let rest =
        f.gw.rest(&format!("/rest/v1/action/{}/", f.action_id))
            .await;
    let written = rest["fields"].get(&field).cloned();
    match expect {
        Expect::Full => assert_eq!(written, Some(json!("v1")), "{name}: {rest}"),
        Expect::Code(_) => assert_eq!(written, None, "{name}: a failed mutation wrote"),
    }
}

#[tokio::test]
async fn a_short_429_burst_is_absorbed_by_retries() {
    // Two 429s, then answers: within max_retries (2) for the first call of each
    // operation, so every operation gets complete data.
    row("burst 429 short", json!({"burst_429": 2}), Expect::Full).await;
}

#[tokio::test]
async fn a_long_429_burst_is_upstream_rate_limited() {
    row(
        "burst 429 long",
        json!({"burst_429": 1000}),
        Expect::Code("UPSTREAM_RATE_LIMITED"),
    )
    .await;
}

#[tokio::test]
async fn a_500_try_again_later_is_upstream_unavailable() {
    row(
        "error 500",
        json!({"error_500": 1.0}),
        Expect::Code("UPSTREAM_UNAVAILABLE"),
    )
    .await;
}

#[tokio::test]
async fn a_503_is_upstream_unavailable() {
    row(
        "error 503",
        json!({"error_503": 1.0}),
        Expect::Code("UPSTREAM_UNAVAILABLE"),
    )
    .await;
}

#[tokio::test]
async fn an_answer_slower_than_the_request_timeout_is_upstream_timeout() {
    row(
        "timeout",
        json!({"slow": 1.0, "slow_ms": 1_000}),
        Expect::Code("UPSTREAM_TIMEOUT"),
    )
    .await;
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_gives_complete_data() {
    row("slow", json!({"slow": 1.0, "slow_ms": 100}), Expect::Full).await;
}

#[tokio::test]
async fn malformed_json_is_internal() {
    // A 200 whose body is cut short: the instance answered, the gateway cannot use it.
    row(
        "malformed json",
        json!({"malformed_json": 1.0}),
        Expect::Code("INTERNAL"),
    )
    .await;
}

#[tokio::test]
async fn a_dropped_connection_is_upstream_unavailable() {
    row(
        "dropped connection",
        json!({"drop_connection": 1.0}),
        Expect::Code("UPSTREAM_UNAVAILABLE"),
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_instance_is_upstream_unavailable_within_the_deadline() {
    // Nothing listens any more: connections are refused.
    let mut c = config();
    c.actionkit.connect_timeout_ms = 300;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let sb = crate::helpers::gateway::sandbox_config(&[]);
    let upstream = actionkit_graphql::app::Upstream::sandbox(dead, &sb, false).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mode = actionkit_graphql::config::Mode::Development;
    // Startup refuses an instance it cannot reach; this test is about one that goes
    // away after the start.
    let running = actionkit_graphql::app::start_unchecked(&c, mode, upstream, listener)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let resp = http
        .post(format!("http://{}/graphql", running.addr))
        .json(&json!({"query": r#"{ u: user(id: "1") { id } p: page(id: "1") { id } }"#}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(GQL_DEADLINE_MS + 1_500));
    assert_eq!(body["data"], json!({"u": null, "p": null}), "{body}");
    for e in body["errors"].as_array().unwrap() {
        assert_eq!(e["extensions"]["code"], "UPSTREAM_UNAVAILABLE", "{body}");
    }
}

#[tokio::test]
async fn scattered_failures_are_absorbed_and_never_open_the_breaker() {
    // A flaky but working instance (1 request in 5 fails) keeps being used: retries
    // absorb the failures and the breaker (default threshold 20) stays closed. The
    // sandbox's fault draws are seeded, so this sequence is the same on every run.
    let mut c = Config::default();
    c.actionkit.max_retries = 4;
    let gw = spawn_with(&[], c, true).await;
    gw.set_faults(json!({"error_503": 0.2})).await;
    for _ in 0..60 {
        gw.data(r#"{ u: user(id: "1") { id } }"#, json!({})).await;
    }
}
