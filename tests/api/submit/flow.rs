//! `submitAction` end to end, through the gateway over HTTP against the sandbox: a
//! signature is `PROCESSED` with its typed action, a duplicate (same idempotency key)
//! is the same submission and makes no second action, and `submission(id)` says where
//! a submission stands, `QUEUED` while ActionKit refuses and `PROCESSED` after.

use std::time::{Duration, Instant};

use crate::helpers::submit::*;
use serde_json::{json, Value};

const STATUS: &str = r#"query($id: ID!) {
  submission(id: $id) {
    id status page createdAt redirectUrl
    fieldErrors { field code message }
    action { __typename id type }
  }
}"#;

async fn status_of(gw: &TestGateway, id: &str) -> Value {
    let (_, body) = call(gw, Some(FORM_KEY), &[], STATUS, json!({ "id": id })).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["submission"].clone()
}

#[tokio::test]
async fn a_signature_is_processed_with_its_typed_action() {
    let gw = keyed().await;
    let email = "first-signature@example.org";
    let mut input = signature(email);
    input["fields"] = json!([
        {"name": "comment", "value": "Save them"},
        {"name": "comment", "value": "all"}
    ]);
    input["source"] = json!("email");
    gw.reset_stats().await;
    let (status, body) = submit(&gw, Some(FORM_KEY), input).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let payload = &body["data"]["submitAction"];
    assert_eq!(payload["status"], "PROCESSED", "{body}");
    assert_eq!(payload["fieldErrors"], json!([]));
    let id = payload["submissionId"].as_str().unwrap();
    assert!(id.len() >= 16, "an unguessable id: {id}");
    let action = &payload["action"];
    assert_eq!(action["__typename"], "PetitionAction", "{body}");
    assert_eq!(action["type"], "PETITION");
    assert_eq!(action["page"]["name"], PAGE);
    assert_eq!(
        action["customFields"],
        json!([{"name": "comment", "values": ["Save them", "all"]}]),
        "{body}"
    );
    assert!(payload["redirectUrl"].as_str().is_some(), "{body}");
    // Exactly one action in the sandbox, for this member, on this page.
    assert_eq!(posted_actions(&gw).await, 1);
    assert_eq!(actions_on_page(&gw, email, PAGE).await, 1);
    // The staff view of the same action: the member the sandbox made.
    let (_, body) = call(
        &gw,
        Some(STAFF_KEY),
        &[],
        "query($id: ID!) { action(id: $id) { source user { email firstName lastName zip } } }",
        json!({"id": action["id"]}),
    )
    .await;
    let a = &body["data"]["action"];
    assert_eq!(a["source"], "email", "{body}");
    assert_eq!(
        a["user"],
        json!({"email": email, "firstName": "Ada", "lastName": "Lovelace", "zip": "02139"})
    );
    // And where it stands.
    let s = status_of(&gw, id).await;
    assert_eq!(s["id"], id);
    assert_eq!(s["status"], "PROCESSED", "{s}");
    assert_eq!(s["page"], PAGE);
    assert_eq!(s["action"]["id"], action["id"]);
    assert_eq!(s["action"]["__typename"], "PetitionAction");
    assert!(
        s["createdAt"].as_str().unwrap().ends_with('Z')
            || s["createdAt"].as_str().unwrap().contains('+'),
        "{s}"
    );
}

#[tokio::test]
async fn a_duplicate_by_idempotency_key_is_the_same_submission_and_one_action() {
    let gw = keyed().await;
    let email = "double-click@example.org";
    let mut input = signature(email);
    input["idempotencyKey"] = json!("form-7f3c1e2a-double-click");
    gw.reset_stats().await;
    let (_, first) = submit(&gw, Some(FORM_KEY), input.clone()).await;
    let (_, second) = submit(&gw, Some(FORM_KEY), input.clone()).await;
    // And a few at once, as a double-clicking browser on a slow line would.
    let mut at_once = Vec::new();
    for _ in 0..4 {
        at_once.push(submit(&gw, Some(FORM_KEY), input.clone()));
    }
    let at_once = futures::future::join_all(at_once).await;
    let id = first["data"]["submitAction"]["submissionId"]
        .as_str()
        .unwrap();
    assert_eq!(
        first["data"]["submitAction"]["status"], "PROCESSED",
        "{first}"
    );
    for (_, body) in std::iter::once((200, second)).chain(at_once) {
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["submitAction"]["submissionId"], id, "{body}");
        assert_eq!(
            body["data"]["submitAction"]["action"]["id"],
            first["data"]["submitAction"]["action"]["id"],
            "{body}"
        );
    }
    assert_eq!(
        posted_actions(&gw).await,
        1,
        "a duplicate reached ActionKit"
    );
    assert_eq!(actions_on_page(&gw, email, PAGE).await, 1);
    // Another key is another caller: its idempotency keys are its own.
    let (_, other) = submit(&gw, Some(ANY_FORM_KEY), input).await;
    assert_ne!(other["data"]["submitAction"]["submissionId"], id, "{other}");
}

#[tokio::test]
async fn a_submission_is_queued_while_actionkit_refuses_and_processed_after() {
    let gw = keyed().await;
    warm(&gw, PAGE).await;
    let email = "queued@example.org";
    // ActionKit answers 429 to the next request: the submission cannot be sent now.
    gw.set_faults(json!({"burst_429": 1})).await;
    gw.reset_stats().await;
    let (_, body) = submit(&gw, Some(FORM_KEY), signature(email)).await;
    assert!(body.get("errors").is_none(), "{body}");
    let payload = &body["data"]["submitAction"];
    assert_eq!(payload["status"], "QUEUED", "{body}");
    assert!(payload["action"].is_null(), "{body}");
    let id = payload["submissionId"].as_str().unwrap().to_owned();
    // Delivered by the worker; `submission(id)` follows it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let s = status_of(&gw, &id).await;
        match s["status"].as_str().unwrap() {
            "PROCESSED" => break s,
            "QUEUED" if Instant::now() < deadline => {
                assert!(s["action"].is_null(), "{s}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("submission {id} is {other}: {s}"),
        }
    };
    assert_eq!(done["action"]["__typename"], "PetitionAction", "{done}");
    assert_eq!(actions_on_page(&gw, email, PAGE).await, 1);
}

#[tokio::test]
async fn unknown_and_malformed_submission_ids() {
    let gw = keyed().await;
    let (_, body) = call(
        &gw,
        Some(FORM_KEY),
        &[],
        STATUS,
        json!({"id": "sub_does_not_exist_0000000000"}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(body["data"]["submission"].is_null());
    // The empty id of a refused submission names nothing.
    let (_, body) = call(&gw, Some(FORM_KEY), &[], STATUS, json!({"id": ""})).await;
    assert!(
        body.get("errors").is_none() && body["data"]["submission"].is_null(),
        "{body}"
    );
    let (_, body) = call(
        &gw,
        Some(FORM_KEY),
        &[],
        STATUS,
        json!({"id": "x".repeat(500)}),
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}
