//! Who may submit: `submit`, `self` (as its own member) and `write` keys; never `read`
//! keys, never anonymous callers (not even in the open sandbox). A `submit` key can do
//! nothing else, and learns nothing about the member beyond what it sent.

use crate::helpers::submit::*;
use serde_json::{json, Value};

fn no_data(body: &Value) -> bool {
    body.get("data").is_none()
        || body["data"].is_null()
        || body["data"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_null)
}

#[tokio::test]
async fn read_keys_and_anonymous_callers_never_submit() {
    let gw = keyed().await;
    gw.reset_stats().await;
    // A read key: refused before execution.
    let (status, body) = submit(&gw, Some(READ_KEY), signature("r@example.org")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(no_data(&body), "{body}");
    // No key at all.
    let (status, body) = submit(&gw, None, signature("r@example.org")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(gw.calls().await, 0);

    // Anonymous readers.
    let mut config = keyed_config();
    config.security.api_keys.clear();
    config.security.allow_anonymous_reads = true;
    let gw = keyed_with(config).await;
    gw.reset_stats().await;
    let (_, body) = submit(&gw, None, signature("r@example.org")).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(gw.calls().await, 0);
}

#[tokio::test]
async fn the_open_sandbox_does_not_take_anonymous_submissions() {
    let gw = open_sandbox().await;
    gw.reset_stats().await;
    let (status, body) = submit(&gw, None, signature("open@example.org")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(message(&body).contains("submit"), "{body}");
    assert_eq!(gw.calls().await, 0);
    // Everything else stays open there.
    let (_, body) = call(&gw, None, &[], r#"{ user(id: "1") { id } }"#, json!({})).await;
    assert_eq!(body["data"]["user"]["id"], "1", "{body}");
}

#[tokio::test]
async fn a_submit_key_may_do_nothing_else() {
    let gw = keyed().await;
    gw.reset_stats().await;
    for query in [
        r#"{ user(id: "1") { id email } }"#,
        r#"{ users(ids: ["1"]) { id } }"#,
        r#"{ action(id: "1") { id } }"#,
        r#"{ page(name: "save-the-bees") { id } }"#,
        r#"{ submission(id: "x") { id } user(id: "1") { id } }"#,
        r#"query { ...F } fragment F on Query { user(id: "1") { email } }"#,
        r#"mutation { setActionCustomFields(actionId: "1", fields: [{name: "a", value: "b"}]) { id } }"#,
        r#"mutation { clearActionCustomFields(actionId: "1") { id } }"#,
    ] {
        let (status, body) = call(&gw, Some(FORM_KEY), &[], query, json!({})).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(code(&body), "FORBIDDEN", "{query}: {body}");
        assert!(no_data(&body), "{query}: {body}");
    }
    assert_eq!(gw.calls().await, 0, "a refused operation reached ActionKit");
    // What it may do: submission (null for an unknown id) and __typename.
    let (_, body) = call(
        &gw,
        Some(FORM_KEY),
        &[],
        r#"{ __typename submission(id: "unknown-id") { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

#[tokio::test]
async fn a_submit_key_gets_nothing_back_about_the_member() {
    let gw = keyed().await;
    let email = "private-member@example.org";
    let query = r#"mutation($input: SubmitActionInput!) {
      submitAction(input: $input) {
        status submissionId
        action { id type page { name } user { id email firstName } }
      }
    }"#;
    gw.reset_stats().await;
    let (status, body) = call(
        &gw,
        Some(FORM_KEY),
        &[],
        query,
        json!({"input": signature(email)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let payload = &body["data"]["submitAction"];
    assert_eq!(payload["status"], "PROCESSED", "{body}");
    // `user` is refused, with no read of the member (`user` is non-null in `Action`,
    // so the action it hangs off is null in this answer, as GraphQL says).
    assert!(payload["action"].is_null(), "{body}");
    let err = body["errors"].as_array().unwrap();
    assert_eq!(err.len(), 1, "{body}");
    assert_eq!(err[0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(err[0]["path"], json!(["submitAction", "action", "user"]));
    let text = body.to_string();
    assert!(!text.contains(email) && !text.contains("Ada"), "{body}");
    let by_route = gw.stats().await["by_route"].clone();
    assert!(
        by_route
            .as_object()
            .unwrap()
            .keys()
            .all(|r| !r.contains("/user/")),
        "the member was read: {by_route}"
    );
    // Without `user`, the action itself (what the caller made) is there.
    let id = payload["submissionId"].as_str().unwrap();
    let (_, body) = call(
        &gw,
        Some(FORM_KEY),
        &[],
        "query($id: ID!) { submission(id: $id) { action { __typename type page { name } } } }",
        json!({"id": id}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    let action = &body["data"]["submission"]["action"];
    assert_eq!(action["__typename"], "PetitionAction", "{body}");
    assert_eq!(action["type"], "PETITION");
    assert_eq!(action["page"]["name"], PAGE);
    // Also through submission(id).
    let (_, body) = call(
        &gw,
        Some(FORM_KEY),
        &[],
        "query($id: ID!) { submission(id: $id) { status action { id user { email } } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(body["data"]["submission"]["status"], "PROCESSED", "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(!body.to_string().contains(email), "{body}");
}

#[tokio::test]
async fn a_staff_key_submits_for_anyone_and_reads_the_member() {
    let gw = keyed().await;
    let email = "staff-made@example.org";
    let query = r#"mutation($input: SubmitActionInput!) {
      submitAction(input: $input) { status action { id user { email firstName } } }
    }"#;
    let mut input = signature(email);
    // Staff keys may send any valid custom field name.
    input["fields"] = json!([{"name": "staff_note", "value": "phoned in"}]);
    let (_, body) = call(&gw, Some(STAFF_KEY), &[], query, json!({"input": input})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let action = &body["data"]["submitAction"]["action"];
    assert_eq!(action["user"]["email"], email, "{body}");
    assert_eq!(action["user"]["firstName"], "Ada", "{body}");
    // A `write` key without `read` submits but does not read the member either.
    let (_, body) = call(
        &gw,
        Some(WRITE_KEY),
        &[],
        query,
        json!({"input": signature("writer-made@example.org")}),
    )
    .await;
    assert_eq!(
        body["data"]["submitAction"]["status"], "PROCESSED",
        "{body}"
    );
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["data"]["submitAction"]["action"]["user"].is_null());
}

#[tokio::test]
async fn a_self_key_submits_as_its_own_member() {
    let gw = keyed().await;
    let me = akid_of(&gw, 7).await;
    let other = akid_of(&gw, 8).await;
    let h = [("x-akid", me.as_str())];
    let query = r#"mutation($input: SubmitActionInput!) {
      submitAction(input: $input) { status fieldErrors { field code } action { id user { id } } }
    }"#;
    // Neither email nor AKID: the caller's own verified AKID is used.
    let (_, body) = call(
        &gw,
        Some(SELF_KEY),
        &h,
        query,
        json!({"input": {"page": PAGE}}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    let payload = &body["data"]["submitAction"];
    assert_eq!(payload["status"], "PROCESSED", "{body}");
    assert_eq!(payload["action"]["user"]["id"], "7", "{body}");
    // Its own AKID, given explicitly, is fine too.
    let (_, body) = call(
        &gw,
        Some(SELF_KEY),
        &h,
        query,
        json!({"input": {"page": PAGE, "akid": me}}),
    )
    .await;
    assert_eq!(
        body["data"]["submitAction"]["status"], "PROCESSED",
        "{body}"
    );
    // Another member, by AKID or by email: refused before any call.
    gw.reset_stats().await;
    for input in [
        json!({"page": PAGE, "akid": other}),
        json!({"page": PAGE, "email": "someone-else@example.org"}),
    ] {
        let (_, body) = call(&gw, Some(SELF_KEY), &h, query, json!({ "input": input })).await;
        assert_eq!(code(&body), "FORBIDDEN", "{input}: {body}");
    }
    assert_eq!(gw.calls().await, 0);
}

#[tokio::test]
async fn key_entries_with_page_lists_parse() {
    use actionkit_graphql::graphql::access::Scopes;
    use actionkit_graphql::http::auth::{hash_key, parse_keys};
    let keys = parse_keys(&[
        format!("form:submit:{}:save-the-bees+fair-rent", hash_key("k")),
        format!("any:submit:{}", hash_key("k2")),
    ])
    .unwrap();
    assert_eq!(keys[0].scopes, Scopes::SUBMIT);
    assert_eq!(
        keys[0].pages.as_deref().unwrap(),
        ["save-the-bees".to_owned(), "fair-rent".to_owned()]
    );
    assert!(keys[1].pages.is_none());
    for bad in [
        format!("form:submit:{}:", hash_key("k")),
        format!("form:submit:{}:bad page", hash_key("k")),
        format!("form:submit:{}:a+b c", hash_key("k")),
    ] {
        assert!(parse_keys(std::slice::from_ref(&bad)).is_err(), "{bad}");
    }
}
