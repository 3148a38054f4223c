//! Setting and clearing custom fields, read back through fresh queries, in both of
//! the sandbox's PATCH semantics.

use crate::helpers::gateway::{spawn, TestGateway};
use serde_json::{json, Value};

const READ: &str =
    r#"query($id: ID!) { action(id: $id) { id customFields { name value values } } }"#;
const SET: &str = r#"mutation($id: ID!, $f: [CustomFieldInput!]!) {
    setActionCustomFields(actionId: $id, fields: $f) { id customFields { name value values } } }"#;
const CLEAR: &str = r#"mutation($id: ID!, $n: [String!]) {
    clearActionCustomFields(actionId: $id, names: $n) { id customFields { name value values } } }"#;

/// An action that has at least two custom fields, one of them multi-valued if the
/// demo data has one.
async fn action_with_fields(gw: &TestGateway) -> (String, serde_json::Map<String, Value>) {
    let list = gw.rest("/rest/v1/action/?user=3&_limit=100").await;
    let objects = list["objects"].as_array().unwrap();
    let pick = objects
        .iter()
        .find(|a| {
            let f = a["fields"].as_object().unwrap();
            f.len() >= 2 && f.values().any(Value::is_array)
        })
        .or_else(|| {
            objects
                .iter()
                .find(|a| a["fields"].as_object().unwrap().len() >= 2)
        })
        .expect("user 3 has an action with two custom fields");
    (
        pick["id"].to_string(),
        pick["fields"].as_object().unwrap().clone(),
    )
}

fn as_map(fields: &Value) -> serde_json::Map<String, Value> {
    fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_owned(), f["values"].clone()))
        .collect()
}

fn values_of(raw: &Value) -> Value {
    match raw {
        Value::Array(_) => raw.clone(),
        v => json!([v]),
    }
}

/// The action's custom fields as a fresh read shows them.
async fn fields_now(gw: &TestGateway, id: &str) -> serde_json::Map<String, Value> {
    as_map(&gw.data(READ, json!({ "id": id })).await["action"]["customFields"])
}

/// Asserts that every field the action had `before` still has its values.
fn assert_kept(
    before: &serde_json::Map<String, Value>,
    fresh: &serde_json::Map<String, Value>,
    after: &str,
) {
    for (name, raw) in before {
        assert_eq!(
            fresh[name],
            values_of(raw),
            "field {name} was changed ({after})"
        );
    }
}

async fn set_and_clear_round_trip(patch: &str) {
    let gw = spawn(&["--fields-patch", patch]).await;
    let (id, before) = action_with_fields(&gw).await;

    let set = gw
        .data(
            SET,
            json!({"id": id, "f": [{"name": "gw_color", "value": "teal"}, {"name": "gw_note", "value": "héllo, \"world\""}]}),
        )
        .await;
    let returned = as_map(&set["setActionCustomFields"]["customFields"]);
    let fresh = fields_now(&gw, &id).await;
    assert_eq!(
        returned, fresh,
        "the mutation did not return what a fresh read shows"
    );
    assert_eq!(fresh["gw_color"], json!(["teal"]));
    assert_eq!(fresh["gw_note"], json!(["héllo, \"world\""]));
    assert_kept(&before, &fresh, &format!("{patch}, set"));
    // And ActionKit itself agrees.
    let rest = gw.rest(&format!("/rest/v1/action/{id}/")).await;
    assert_eq!(rest["fields"]["gw_color"], "teal");

    // Overwrite one, keep the other.
    gw.data(
        SET,
        json!({"id": id, "f": [{"name": "gw_color", "value": "navy"}]}),
    )
    .await;
    let fresh = fields_now(&gw, &id).await;
    assert_eq!(fresh["gw_color"], json!(["navy"]));
    assert_eq!(fresh["gw_note"], json!(["héllo, \"world\""]));

    // Clear one by name (plus a name it does not have).
    let cleared = gw
        .data(CLEAR, json!({"id": id, "n": ["gw_color", "never_there"]}))
        .await;
    let fresh = fields_now(&gw, &id).await;
    assert_eq!(
        as_map(&cleared["clearActionCustomFields"]["customFields"]),
        fresh
    );
    assert!(
        !fresh.contains_key("gw_color"),
        "{patch}: gw_color survived the clear"
    );
    assert_eq!(fresh["gw_note"], json!(["héllo, \"world\""]));
    assert_kept(&before, &fresh, &format!("{patch}, clear"));

    // Clear all.
    let cleared = gw.data(CLEAR, json!({"id": id, "n": null})).await;
    assert_eq!(
        cleared["clearActionCustomFields"]["customFields"],
        json!([])
    );
    let fresh = gw.data(READ, json!({"id": id})).await;
    assert_eq!(fresh["action"]["customFields"], json!([]), "{patch}");
    let rest = gw.rest(&format!("/rest/v1/action/{id}/")).await;
    assert_eq!(rest["fields"], json!({}));
    // The rest of the action is untouched.
    let other = gw.rest(&format!("/rest/v1/action/{id}/")).await;
    assert_eq!(other["user"], rest["user"]);
    assert_eq!(other["page"], rest["page"]);
}

#[tokio::test]
async fn set_and_clear_round_trip_when_patch_replaces() {
    set_and_clear_round_trip("replace").await;
}

#[tokio::test]
async fn set_and_clear_round_trip_when_patch_merges() {
    set_and_clear_round_trip("merge").await;
}

#[tokio::test]
async fn concurrent_sets_on_one_action_lose_nothing() {
    for patch in ["replace", "merge"] {
        let gw = spawn(&["--fields-patch", patch]).await;
        let (id, _) = action_with_fields(&gw).await;
        let writes = (0..20).map(|i| {
            let gw = &gw;
            let id = id.clone();
            async move {
                gw.data(
                    SET,
                    json!({"id": id, "f": [{"name": format!("c{i}"), "value": i.to_string()}]}),
                )
                .await
            }
        });
        futures::future::join_all(writes).await;
        let fresh = fields_now(&gw, &id).await;
        for i in 0..20 {
            assert_eq!(
                fresh[&format!("c{i}")],
                json!([i.to_string()]),
                "{patch}: c{i} lost"
            );
        }
    }
}

#[tokio::test]
async fn invalid_mutation_input_writes_nothing() {
    let gw = spawn(&[]).await;
    let (id, before) = action_with_fields(&gw).await;
    gw.reset_stats().await;
    let long = "x".repeat(70_000);
    let cases = [
        json!({"id": id, "f": [{"name": "bad name", "value": "v"}]}),
        json!({"id": id, "f": [{"name": "ok", "value": "v"}, {"name": "ok", "value": "w"}]}),
        json!({"id": id, "f": []}),
        json!({"id": id, "f": [{"name": "ok", "value": long}]}),
        json!({"id": "abc", "f": [{"name": "ok", "value": "v"}]}),
        json!({"id": id, "f": [{"name": "", "value": "v"}]}),
    ];
    for vars in cases {
        let body = gw.gql(SET, vars.clone()).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{vars}: {body}"
        );
    }
    let body = gw.gql(CLEAR, json!({"id": id, "n": ["a-b"]})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(gw.calls().await, 0, "invalid input reached ActionKit");
    let rest = gw.rest(&format!("/rest/v1/action/{id}/")).await;
    assert_eq!(rest["fields"].as_object().unwrap(), &before);
}

#[tokio::test]
async fn mutating_a_missing_action_is_not_found() {
    let gw = spawn(&[]).await;
    let body = gw
        .gql(
            SET,
            json!({"id": "987654321", "f": [{"name": "a", "value": "b"}]}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    assert_eq!(body["data"], Value::Null);
}
