//! Operation limits, each just under and just over: depth, complexity, aliases,
//! directives, tokens, body size, batches, the per-operation deadline. Refusals come
//! before execution (no upstream call) and, in production, name the rule but not the
//! configured number.

use crate::helpers::gateway::{bearer, message, spawn_mode, TestGateway};
use actionkit_graphql::config::{Config, Mode};
use actionkit_graphql::http::auth::hash_key;
use serde_json::{json, Value};

const KEY: &str = "limits-key-0123456789";

fn config() -> Config {
    let mut c = Config::default();
    c.security.api_keys = vec![format!("web:read:{}", hash_key(KEY))];
    c
}

async fn gateway(config: Config, mode: Mode) -> TestGateway {
    spawn_mode(&["--users", "20"], config, true, mode)
        .await
        .unwrap()
}

async fn run(gw: &TestGateway, query: &str) -> (u16, Value) {
    let (status, _, body) = gw
        .post_json(&[("authorization", &bearer(KEY))], json!({"query": query}))
        .await;
    (status, body)
}

/// Runs `ok` and `over` and checks that `over` alone is refused for `rule`, before
/// any upstream call, without the configured number in production.
async fn just_under_and_over(gw: &TestGateway, ok: &str, over: &str, rule: &str) {
    let (status, body) = run(gw, ok).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "just under the limit: {body}");
    gw.reset_stats().await;
    let (status, body) = run(gw, over).await;
    assert_eq!(status, 200);
    let err = &body["errors"][0];
    assert!(message(&body).contains(rule), "just over the limit: {body}");
    assert_eq!(err["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(gw.calls().await, 0, "a refused operation reached ActionKit");
}

fn repeat(item: &str, n: usize) -> String {
    vec![item; n].join(" ")
}

#[tokio::test]
async fn depth_complexity_aliases_directives_and_tokens() {
    let mut c = config();
    c.graphql.max_complexity = 50;
    let gw = gateway(c, Mode::Production).await;

    // Depth (default 8): user > actions > nodes > user > actions > nodes > user > id.
    let nest = |leaf: &str| {
        format!(
            r#"{{ user(id: "1") {{ actions(first: 1) {{ nodes {{ user {{ actions(first: 1) {{ nodes {{ user {{ {leaf} }} }} }} }} }} }} }} }}"#
        )
    };
    just_under_and_over(
        &gw,
        &nest("id"),
        &nest("actions(first: 1) { totalCount }"),
        "exceeds the depth limit",
    )
    .await;

    // Complexity (configured 50 here): `actions` costs `first` times its selection
    // (`nodes { id }`: 2) plus one, `user` one more: 2 * 24 + 2 = 50.
    let cost = |first: u32| {
        format!(r#"{{ user(id: "1") {{ actions(first: {first}) {{ nodes {{ id }} }} }} }}"#)
    };
    just_under_and_over(&gw, &cost(24), &cost(25), "too complex").await;

    // Aliases (15).
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("a{i}: __typename")).collect();
        format!("{{ {} }}", fields.join(" "))
    };
    just_under_and_over(&gw, &aliases(15), &aliases(16), "aliases limit").await;

    // Directives (50).
    let directives = |n: usize| format!("{{ {} }}", repeat("__typename @include(if: true)", n));
    just_under_and_over(&gw, &directives(50), &directives(51), "directives limit").await;

    // Tokens (1000): `{`, n fields, `}`. On a gateway with the default complexity:
    // 998 `__typename` are 998 fields resolved, over the 50 configured above.
    let tokens = |n: usize| format!("{{ {} }}", repeat("__typename", n));
    let default_gw = gateway(config(), Mode::Production).await;
    just_under_and_over(&default_gw, &tokens(998), &tokens(999), "tokens limit").await;

    // Production never says the number.
    let (_, body) = run(&gw, &aliases(16)).await;
    assert!(!body.to_string().contains("15"), "{body}");
}

#[tokio::test]
async fn development_messages_say_the_number() {
    let gw = gateway(config(), Mode::Development).await;
    let fields: Vec<String> = (0..16).map(|i| format!("a{i}: __typename")).collect();
    let (_, body) = run(&gw, &format!("{{ {} }}", fields.join(" "))).await;
    assert!(message(&body).contains("(15)"), "{body}");
}

#[tokio::test]
async fn body_size_and_batches() {
    let gw = gateway(config(), Mode::Production).await;
    let limit = Config::default().security.max_body_bytes;
    let body_of = |len: usize| {
        let skeleton = r#"{"query":"{ __typename }"}"#;
        let pad = " ".repeat(len - skeleton.len());
        format!(r#"{{"query":"{{ __typename }}{pad}"}}"#)
    };
    for (len, expected) in [(limit, 200), (limit + 1, 413)] {
        let body = body_of(len);
        assert_eq!(body.len(), len);
        let (status, _, _) = gw.post_raw(Some(KEY), Some("application/json"), body).await;
        assert_eq!(status, expected, "body of {len} bytes");
    }
    // JSON-array batches are not accepted: one operation per request.
    let batch = json!([{"query": "{ __typename }"}]);
    let (status, _, _) = gw
        .post_json(&[("authorization", &bearer(KEY))], batch)
        .await;
    assert_eq!(status, 400);
    let (status, _) = run(&gw, "{ __typename }").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_operation_deadline() {
    let query = r#"{ user(id: "1") { id } }"#;
    for (deadline_ms, expect_timeout) in [(3_000, false), (100, true)] {
        let mut c = config();
        c.graphql.operation_deadline_ms = deadline_ms;
        c.actionkit.max_retries = 0;
        let gw = spawn_mode(
            &["--users", "5", "--latency-ms", "400"],
            c,
            true,
            Mode::Production,
        )
        .await
        .unwrap();
        let (status, body) = run(&gw, query).await;
        assert_eq!(status, 200);
        if expect_timeout {
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT",
                "{body}"
            );
        } else {
            assert_eq!(body["data"]["user"]["id"], "1", "{body}");
        }
    }
}
