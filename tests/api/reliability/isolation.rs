//! Per-key failure isolation (docs/reliability.md, "One bad member"): in a batch, a
//! member whose reads fail every time fails only that member's fields; the others keep
//! their data. Through `users(ids:)` with 2 and 50 members, in both filter modes
//! (strict: one read per member and window; permissive: `id__in` lists and `user__in`
//! sweeps, split when they fail), with the failing member first, in the middle, last.

use crate::helpers::gateway::{spawn_with, TestGateway};
use actionkit_graphql::config::Config;
use serde_json::{json, Value};

const BATCH: &str = r#"query($ids: [ID!]!) { users(ids: $ids) { id email
    actions(first: 5) { totalCount nodes { id } } } }"#;

/// The breaker is off so that a case's failures cannot open it for the next case
/// (`reliability/breaker.rs` covers it).
async fn gateway(mode: &str) -> TestGateway {
    let mut c = Config::default();
    c.actionkit.breaker_failure_threshold = 0;
    spawn_with(&["--filters", mode], c, true).await
}

/// Users 10.. (ordinary users; the demo's very large ones are 1 and 2).
fn ids(n: usize) -> Vec<u64> {
    (10..10 + n as u64).collect()
}

fn positions(n: usize) -> [(&'static str, usize); 3] {
    [("first", 0), ("middle", n / 2), ("last", n - 1)]
}

/// Checks one answer: every member but `bad` complete; `bad` null with errors only at
/// `users.<bad>` (or below it), all `UPSTREAM_UNAVAILABLE`.
fn check(body: &Value, ids: &[u64], bad: usize, ctx: &str) {
    let users = body["data"]["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users: {ctx}: {body}"));
    assert_eq!(users.len(), ids.len(), "{ctx}");
    for (i, (user, id)) in users.iter().zip(ids).enumerate() {
        if i == bad {
            assert!(user.is_null(), "the failing member is null: {ctx}: {user}");
            continue;
        }
        assert_eq!(user["id"], id.to_string(), "{ctx}: {user}");
        assert!(user["email"].is_string(), "{ctx}: {user}");
        let actions = &user["actions"];
        assert!(actions["totalCount"].is_u64(), "{ctx}: {user}");
        assert!(actions["nodes"].is_array(), "{ctx}: {user}");
    }
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no error for the failing member: {ctx}: {body}"));
    assert!(!errors.is_empty(), "{ctx}");
    for e in errors {
        assert_eq!(
            e["extensions"]["code"], "UPSTREAM_UNAVAILABLE",
            "{ctx}: {e}"
        );
        assert_eq!(e["path"][0], "users", "{ctx}: {e}");
        assert_eq!(
            e["path"][1], bad,
            "the error is the failing member's: {ctx}: {e}"
        );
    }
    let text = body.to_string();
    assert!(
        !text.contains("rest/v1") && !text.contains("127.0.0.1"),
        "{ctx}"
    );
}

/// Upstream calls on a route since the last reset.
async fn route_calls(gw: &TestGateway, route: &str) -> u64 {
    gw.stats().await["by_route"][route].as_u64().unwrap_or(0)
}

async fn one_bad_member(mode: &str, knob: &str) {
    let gw = gateway(mode).await;
    for n in [2, 50] {
        let ids = ids(n);
        let vars = json!({ "ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>() });
        for (at, bad) in positions(n) {
            let ctx = format!("{mode}, {knob}, {n} members, failing {at}");
            gw.set_faults(json!({ knob: ids[bad] })).await;
            gw.reset_stats().await;
            let body = gw.gql(BATCH, vars.clone()).await;
            check(&body, &ids, bad, &ctx);
            if mode == "permissive" && knob == "user" {
                // One `id__in` list, then halves down to the failing member alone:
                // at most 1 + 2·⌈log2 n⌉ list calls, not one per member.
                let lists = route_calls(&gw, "GET /rest/v1/user/").await;
                let bound = 1 + 2 * (n as f64).log2().ceil() as u64;
                assert!(
                    lists <= bound,
                    "{ctx}: {lists} user calls > {bound}: {}",
                    gw.stats().await
                );
            }
        }
        gw.set_faults(json!({})).await;
    }
}

#[tokio::test]
async fn one_member_whose_actions_fail_strict() {
    one_bad_member("strict", "user_actions").await;
}

#[tokio::test]
async fn one_member_whose_actions_fail_permissive() {
    one_bad_member("permissive", "user_actions").await;
}

#[tokio::test]
async fn one_member_whose_record_fails_strict() {
    one_bad_member("strict", "user").await;
}

#[tokio::test]
async fn one_member_whose_record_fails_permissive() {
    one_bad_member("permissive", "user").await;
}

#[tokio::test]
async fn nothing_failing_costs_no_extra_calls() {
    // The same batch without a fault: permissive reads the fifty users in one `id__in`
    // list (no splitting), strict one read per member.
    for (mode, user_calls) in [("permissive", 1), ("strict", 50)] {
        let gw = gateway(mode).await;
        let ids = ids(50);
        let vars = json!({ "ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>() });
        gw.reset_stats().await;
        let body = gw.gql(BATCH, vars).await;
        assert!(body.get("errors").is_none(), "{body}");
        let stats = gw.stats().await;
        let users: u64 = ["GET /rest/v1/user/", "GET /rest/v1/user/{id}/"]
            .iter()
            .map(|r| stats["by_route"][*r].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(users, user_calls, "{mode}: {stats}");
    }
}
