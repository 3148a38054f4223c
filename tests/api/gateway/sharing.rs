//! Reads shared after they land (`actionkit.share_window_us`): a repeated read within
//! the window makes no call, a write of the gateway's ends the window for what it
//! wrote, and the read of a read-modify-write always goes to ActionKit.

use crate::helpers::gateway::{spawn, spawn_sharing, TestGateway};
use actionkit_graphql::config::Config;
use serde_json::{json, Value};

const READ: &str = r#"query($id: ID!) { action(id: $id) { id customFields { name value } } }"#;
const SET: &str = r#"mutation($id: ID!, $f: [CustomFieldInput!]!) {
    setActionCustomFields(actionId: $id, fields: $f) { id } }"#;

/// An action of user 3, read from the sandbox directly; the call counters start at 0.
async fn some_action(gw: &TestGateway) -> String {
    let list = gw.rest("/rest/v1/action/?user=3&_limit=1").await;
    let id = list["objects"][0]["id"].to_string();
    gw.reset_stats().await;
    id
}

async fn action_reads(gw: &TestGateway) -> u64 {
    gw.calls_to(|route| route == "GET /rest/v1/action/{id}/")
        .await
        .0
}

fn value_of(data: &Value, name: &str) -> Option<Value> {
    data["action"]["customFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| f["value"].clone())
}

#[tokio::test]
async fn a_read_repeated_within_the_window_makes_no_call_and_a_write_ends_the_window() {
    let mut config = Config::default();
    // Long enough that no machine is too slow for the window; the default is 2 ms.
    config.actionkit.share_window_us = 60_000_000;
    let gw = spawn_sharing(&[], config).await;
    let id = some_action(&gw).await;

    let first = gw.data(READ, json!({ "id": id })).await;
    assert_eq!(action_reads(&gw).await, 1);
    let again = gw.data(READ, json!({ "id": id })).await;
    assert_eq!(again, first);
    assert_eq!(
        action_reads(&gw).await,
        1,
        "a read within the window went to ActionKit"
    );

    // The write reads the action afresh (not the answer kept for the window), patches
    // it, and reads it back.
    gw.data(
        SET,
        json!({ "id": id, "f": [{"name": "gw_shared", "value": "after"}] }),
    )
    .await;
    assert_eq!(
        action_reads(&gw).await,
        3,
        "the read of the read-modify-write took the kept answer"
    );
    let (patches, stats) = gw.calls_to(|route| route.starts_with("PATCH ")).await;
    assert_eq!(patches, 1, "{stats}");

    // A read after the write sees it: the answer kept from before is not given out.
    let after = gw.data(READ, json!({ "id": id })).await;
    assert_eq!(
        value_of(&after, "gw_shared"),
        Some(json!("after")),
        "{after}"
    );
    assert_eq!(value_of(&first, "gw_shared"), None);
}

#[tokio::test]
async fn without_a_window_every_read_that_finds_nothing_in_flight_makes_a_call() {
    // The harness's gateway: `share_window_us = 0`.
    let gw = spawn(&[]).await;
    let id = some_action(&gw).await;
    gw.data(READ, json!({ "id": id })).await;
    gw.data(READ, json!({ "id": id })).await;
    assert_eq!(action_reads(&gw).await, 2);
}
