//! Batching, proven by counting the sandbox's calls. Each test states the exact number
//! and why it is the lower bound of the loaders' strategy.

use std::collections::HashSet;

use crate::helpers::gateway::{spawn, TestGateway};
use serde_json::{json, Value};

const BATCH: &str = r#"query($ids: [ID!]!) { users(ids: $ids) { id actions(first: 20) {
    nodes { id page { name } customFields { name } } } } }"#;
const ONE: &str =
    r#"query($id: ID) { user(id: $id) { id actions { nodes { id page { title } } } } }"#;

fn distinct_pages(data: &Value, pointer: &str) -> usize {
    let mut pages = HashSet::new();
    let mut visit = |actions: &Value| {
        for a in actions["nodes"].as_array().unwrap() {
            pages.insert(a["page"].to_string());
        }
    };
    match data.pointer(pointer).unwrap() {
        Value::Array(users) => users.iter().for_each(|u| visit(&u["actions"])),
        user => visit(&user["actions"]),
    }
    pages.len()
}

/// Users 10..60: ordinary users (the demo's very large users are ids 1 and 2).
fn fifty_ids() -> Vec<String> {
    (10..60).map(|i| i.to_string()).collect()
}

/// The total number of actions of the fifty users, read from the sandbox itself.
async fn total_actions(gw: &TestGateway) -> u64 {
    let ids: Vec<String> = fifty_ids();
    let mut total = 0;
    for id in ids {
        total += gw
            .rest(&format!("/rest/v1/action/?user={id}&_limit=1"))
            .await["meta"]["total_count"]
            .as_u64()
            .unwrap();
    }
    total
}

#[tokio::test]
async fn fifty_users_with_actions_strict() {
    let gw = spawn(&["--filters", "strict"]).await;
    gw.reset_stats().await;
    let data = gw.data(BATCH, json!({"ids": fifty_ids()})).await;
    let pages = distinct_pages(&data, "/users");
    // Strict instances allow no `__in`: 50 user reads, one window of actions per user
    // (first: 20 fits one page of 100), and each distinct page once (pages batch within
    // the request and are then cached).
    assert_eq!(
        gw.calls().await,
        50 + 50 + pages as u64,
        "{}",
        gw.stats().await
    );
    // Again, with the page cache warm: no page reads at all.
    gw.reset_stats().await;
    gw.data(BATCH, json!({"ids": fifty_ids()})).await;
    assert_eq!(gw.calls().await, 50 + 50);
}

#[tokio::test]
async fn fifty_users_with_actions_permissive() {
    let gw = spawn(&["--filters", "permissive"]).await;
    let total = total_actions(&gw).await;
    gw.reset_stats().await;
    let data = gw.data(BATCH, json!({"ids": fifty_ids()})).await;
    assert!(distinct_pages(&data, "/users") > 1);
    // Permissive: one `id__in` read for the users; the actions of all fifty in one
    // `user__in` sweep of ceil(total/100) pages when that is fewer calls than fifty
    // windows (otherwise the first page of the sweep, then fifty windows); one `id__in`
    // read for all the distinct pages.
    let sweep = total.div_ceil(100);
    let actions = if sweep <= 50 { sweep } else { 1 + 50 };
    assert_eq!(
        gw.calls().await,
        1 + actions + 1,
        "total actions {total}: {}",
        gw.stats().await
    );
    gw.reset_stats().await;
    gw.data(BATCH, json!({"ids": fifty_ids()})).await;
    assert_eq!(
        gw.calls().await,
        1 + actions,
        "pages should come from the cache"
    );
}

#[tokio::test]
async fn one_user_with_actions_and_pages() {
    for (mode, page_reads) in [("strict", None), ("permissive", Some(1))] {
        // 50 ms of latency so that parallel reads overlap at the sandbox.
        let gw = spawn(&["--filters", mode, "--latency-ms", "50"]).await;
        gw.reset_stats().await;
        let data = gw.data(ONE, json!({"id": "20"})).await;
        let pages = distinct_pages(&data, "/user") as u64;
        assert!(pages > 1, "user 20 should have actions on several pages");
        // The user and its first window of actions (read in parallel: the id is
        // known), then its distinct pages: one each (strict) or one `id__in` read.
        let expected = 2 + page_reads.unwrap_or(pages);
        assert_eq!(gw.calls().await, expected, "{mode}: {}", gw.stats().await);
        let stats = gw.stats().await;
        assert!(
            stats["max_in_flight"].as_u64().unwrap() >= 2,
            "{mode}: user and actions were not read in parallel: {stats}"
        );
    }
}
