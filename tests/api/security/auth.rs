//! Client authentication and scopes: API keys, anonymous reads, `self` keys.
//! Each rule has an allowed and a refused case; refusals are checked to cost no
//! upstream call where the gateway can know the answer up front.

use crate::helpers::gateway::{
    akid_of, assert_read_user, bearer, code, config_with_keys, spawn_mode, spawn_with, TestGateway,
};
use actionkit_graphql::config::{Config, Mode};
use serde_json::{json, Value};

const READ_KEY: &str = "read-key-0123456789";
const WRITE_KEY: &str = "write-key-0123456789";
const SELF_KEY: &str = "self-key-0123456789";
const SELF_WRITE_KEY: &str = "self-write-key-0123456789";

fn keyed_config() -> Config {
    config_with_keys(&[
        ("web", "read", READ_KEY),
        ("ops", "read+write", WRITE_KEY),
        ("member", "self", SELF_KEY),
        ("member-rw", "self+write", SELF_WRITE_KEY),
    ])
}

async fn keyed() -> TestGateway {
    spawn_mode(&["--users", "40"], keyed_config(), true, Mode::Production)
        .await
        .unwrap()
}

const USER_1: &str = r#"{ user(id: "1") { id } }"#;

/// A 401 with a Bearer challenge in `WWW-Authenticate` that contains `challenge`, and
/// the code UNAUTHENTICATED.
fn assert_unauthenticated(
    (status, headers, body): (u16, &reqwest::header::HeaderMap, &Value),
    challenge: &str,
) {
    assert_eq!(status, 401, "{body}");
    let header = headers["www-authenticate"].to_str().unwrap();
    assert!(
        header.starts_with("Bearer") && header.contains(challenge),
        "{header}"
    );
    assert_eq!(code(body), "UNAUTHENTICATED", "{body}");
}

#[tokio::test]
async fn no_key_or_a_wrong_key_is_unauthenticated_and_a_read_key_reads() {
    let gw = keyed().await;
    gw.reset_stats().await;
    // No key.
    let (status, headers, body) = gw.post_json(&[], json!({"query": USER_1})).await;
    assert_unauthenticated((status, &headers, &body), "Bearer");
    assert!(body.get("data").is_none());
    // A wrong key, and a key sent the wrong way.
    for auth in [
        bearer("not-a-key"),
        format!("Basic {READ_KEY}"),
        READ_KEY.into(),
    ] {
        let (status, headers, body) = gw
            .post_json(&[("authorization", &auth)], json!({"query": USER_1}))
            .await;
        assert_unauthenticated((status, &headers, &body), r#"error="invalid_token""#);
    }
    assert_eq!(gw.calls().await, 0, "refused requests reached ActionKit");
    // The read key.
    let (status, body) = gw.post_as(READ_KEY, json!({"query": USER_1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["id"], "1");
}

const CLEAR: &str =
    r#"mutation($id: ID!) { clearActionCustomFields(actionId: $id, names: ["nope"]) { id } }"#;

#[tokio::test]
async fn a_read_key_calling_a_mutation_is_forbidden_and_a_write_key_may() {
    let gw = keyed().await;
    let [(_, action), _] = two_members(&gw).await;
    gw.reset_stats().await;
    let clear = json!({"query": CLEAR, "variables": {"id": action}});
    let (status, body) = gw.post_as(READ_KEY, clear.clone()).await;
    // Refused before execution: a request error, without `data`.
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(gw.calls().await, 0, "a refused mutation reached ActionKit");
    let (status, body) = gw.post_as(WRITE_KEY, clear).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["clearActionCustomFields"]["id"],
        action.as_str()
    );
}

#[tokio::test]
async fn anonymous_reads_are_read_only() {
    let mut config = Config::default();
    config.security.allow_anonymous_reads = true;
    let gw = spawn_mode(&["--users", "20"], config, true, Mode::Production)
        .await
        .unwrap();
    let (status, _, body) = gw.post_json(&[], json!({"query": USER_1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["id"], "1");
    gw.reset_stats().await;
    let (_, _, body) = gw
        .post_json(&[], json!({"query": CLEAR, "variables": {"id": "1"}}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(gw.calls().await, 0);
}

#[tokio::test]
async fn production_without_keys_refuses_to_start_and_the_sandbox_mode_is_open() {
    let refused = spawn_mode(&["--users", "5"], Config::default(), true, Mode::Production).await;
    let err = refused.err().expect("started without keys").to_string();
    assert!(err.contains("GATEWAY_API_KEYS"), "{err}");
    assert!(err.contains("--allow-anonymous-reads"), "{err}");
    // Development (the sandbox) is open: reads and writes without a key.
    let gw = spawn_with(&["--users", "5"], Config::default(), true).await;
    let (status, _, body) = gw.post_json(&[], json!({"query": USER_1})).await;
    assert_read_user(status, &body, "1");
}

/// Two members with actions: `(user, one of their actions)` each.
async fn two_members(gw: &TestGateway) -> [(u64, String); 2] {
    let list = gw.rest("/rest/v1/action/?_limit=100").await;
    let mut out: Vec<(u64, String)> = Vec::new();
    for a in list["objects"].as_array().unwrap() {
        let user = a["user"]
            .as_str()
            .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
            .and_then(|id| id.parse().ok())
            .unwrap();
        if out.iter().all(|(u, _)| *u != user) {
            out.push((user, a["id"].to_string().trim_matches('"').to_owned()));
        }
        if out.len() == 2 {
            break;
        }
    }
    [out[0].clone(), out[1].clone()]
}

#[tokio::test]
async fn a_self_key_reads_its_member_only_and_others_cost_no_upstream_call() {
    let gw = keyed().await;
    let [(me_id, mine), (other, theirs)] = two_members(&gw).await;
    let me = akid_of(&gw, me_id).await;
    let other_akid = akid_of(&gw, other).await;
    let me_str = me_id.to_string();
    let other_user = format!(r#"{{ user(id: "{other}") {{ id }} }}"#);
    let both = format!(r#"{{ users(ids: ["{me_id}", "{other}"]) {{ id }} }}"#);
    let auth = bearer(SELF_KEY);
    let h = [("authorization", auth.as_str()), ("x-akid", me.as_str())];

    // Allowed: the member, by id and by AKID, with actions and their pages.
    let (status, _, body) = gw
        .post_json(
            &h,
            json!({"query": format!(r#"{{ user(id: "{me_id}") {{ id actions(first: 2) {{ nodes {{ id page {{ name }} user {{ id }} }} }} }} }}"#)}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["user"]["id"], me_str.as_str());
    // The member's own records, by AKID, by ids and (an action) by id.
    for (request, pointer, expected) in [
        (
            json!({"query": "query($a: String) { user(akid: $a) { id } }", "variables": {"a": me}}),
            "/data/user/id",
            me_str.as_str(),
        ),
        (
            json!({"query": format!(r#"{{ users(ids: ["{me_id}"]) {{ id }} }}"#)}),
            "/data/users/0/id",
            me_str.as_str(),
        ),
        (
            json!({"query": "query($id: ID!) { action(id: $id) { id } }", "variables": {"id": mine}}),
            "/data/action/id",
            mine.as_str(),
        ),
    ] {
        let (_, _, body) = gw.post_json(&h, request).await;
        assert_eq!(body.pointer(pointer), Some(&json!(expected)), "{body}");
    }

    // Refused before any upstream call: another member by id, ids, AKID, email; pages.
    gw.reset_stats().await;
    for (query, vars) in [
        (other_user.as_str(), json!({})),
        (both.as_str(), json!({})),
        (
            "query($a: String) { user(akid: $a) { id } }",
            json!({"a": other_akid}),
        ),
        (
            r#"{ user(email: "someone@example.org") { id } }"#,
            json!({}),
        ),
        (r#"{ page(id: "1") { title } }"#, json!({})),
    ] {
        let (status, _, body) = gw
            .post_json(&h, json!({"query": query, "variables": vars}))
            .await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(code(&body), "FORBIDDEN", "{query}: {body}");
        let data = &body["data"];
        assert!(
            data.is_null() || data.as_object().unwrap().values().all(Value::is_null),
            "{body}"
        );
    }
    assert_eq!(
        gw.calls().await,
        0,
        "a refused member read reached ActionKit"
    );

    // Another member's action is refused after loading, before it is returned.
    let (_, _, body) = gw
        .post_json(
            &h,
            json!({"query": "query($id: ID!) { action(id: $id) { id customFields { value } } }", "variables": {"id": theirs}}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["data"]["action"].is_null());
    assert!(!body.to_string().contains("customFields\":["), "{body}");
}

#[tokio::test]
async fn a_self_key_must_prove_its_member() {
    let gw = keyed().await;
    let me = akid_of(&gw, 7).await;
    // Forge: the same hash with another user id.
    let forged = me.replacen(".7.", ".8.", 1);
    assert_ne!(me, forged);
    gw.reset_stats().await;
    for akid in [None, Some(forged.as_str()), Some("garbage")] {
        let auth = bearer(SELF_KEY);
        let mut h = vec![("authorization", auth.as_str())];
        if let Some(a) = akid {
            h.push(("x-akid", a));
        }
        let (status, headers, body) = gw.post_json(&h, json!({"query": USER_1})).await;
        assert_eq!(status, 401, "{akid:?}: {body}");
        assert!(headers.contains_key("www-authenticate"));
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    assert_eq!(gw.calls().await, 0);
}

#[tokio::test]
async fn a_self_write_key_changes_only_its_members_actions() {
    let gw = keyed().await;
    let [(me_id, mine), (_, theirs)] = two_members(&gw).await;
    let me = akid_of(&gw, me_id).await;
    let auth = bearer(SELF_WRITE_KEY);
    let h = [("authorization", auth.as_str()), ("x-akid", me.as_str())];
    let set = r#"mutation($id: ID!) { setActionCustomFields(actionId: $id, fields: [{name: "sec_test", value: "x"}]) { id customField(name: "sec_test") { value } } }"#;
    let (status, _, body) = gw
        .post_json(&h, json!({"query": set, "variables": {"id": mine}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["setActionCustomFields"]["customField"]["value"], "x",
        "{body}"
    );
    let before = gw.rest(&format!("/rest/v1/action/{theirs}/")).await;
    let (_, _, body) = gw
        .post_json(&h, json!({"query": set, "variables": {"id": theirs}}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let after = gw.rest(&format!("/rest/v1/action/{theirs}/")).await;
    assert_eq!(
        before["fields"], after["fields"],
        "another member's action changed"
    );
}

#[tokio::test]
async fn failed_authentications_are_slowed_down_per_address() {
    let gw = keyed().await;
    let wrong = bearer("guess-0000");
    let mut statuses = Vec::new();
    for _ in 0..31 {
        let (status, _, _) = gw
            .post_json(&[("authorization", &wrong)], json!({"query": USER_1}))
            .await;
        statuses.push(status);
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    let (status, headers, body) = gw
        .post_json(&[("authorization", &wrong)], json!({"query": USER_1}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    // A valid key from the same address is not affected.
    let (status, _, _) = gw
        .post_json(
            &[("authorization", &bearer(READ_KEY))],
            json!({"query": USER_1}),
        )
        .await;
    assert_eq!(status, 200);
}
