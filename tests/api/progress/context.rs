//! `pageContext`: the page and its progress, a recognised member's first name and the
//! required fields still missing, nothing else about the member, for `read`, `self`
//! and `submit` keys (a `submit` key only on its own pages).

use serde_json::{json, Value};

use super::*;

const CONTEXT: &str = r#"query($page: String!, $akid: String) {
  pageContext(page: $page, akid: $akid) {
    recognized firstName requiredFields missingFields
    page { name title type progress { actions goal } }
  }
}"#;

async fn context(gw: &TestGateway, key: &str, page: &str, akid: Option<&str>) -> Value {
    let (status, body) = call(
        gw,
        Some(key),
        &[],
        CONTEXT,
        json!({"page": page, "akid": akid}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_recognised_member_gets_a_first_name_and_what_is_still_missing() {
    let gw = keyed_fast().await;
    let akid = akid_of(&gw, 1).await;
    let member = gw.rest("/rest/v1/user/1/").await;
    // clean-water-now requires first_name and zip; Rosa has both.
    let body = context(&gw, FORM_KEY, OTHER_PAGE, Some(&akid)).await;
    let ctx = &body["data"]["pageContext"];
    assert_eq!(ctx["recognized"], true, "{body}");
    assert_eq!(ctx["firstName"], member["first_name"]);
    assert_eq!(ctx["requiredFields"], json!(["first_name", "zip"]));
    assert_eq!(ctx["missingFields"], json!([]));
    assert_eq!(ctx["page"]["name"], OTHER_PAGE);
    assert_eq!(
        ctx["page"]["progress"]["actions"].as_u64(),
        Some(sandbox_count(&gw, OTHER_PAGE).await)
    );
    // Nothing else about the member is in the answer.
    let text = body.to_string();
    for private in ["email", "zip", "city", "last_name"] {
        if let Some(v) = member[private].as_str().filter(|v| v.len() > 2) {
            assert!(!text.contains(v), "{private} leaked: {text}");
        }
    }
}

#[tokio::test]
async fn a_visitor_who_is_not_recognised_gets_every_field_to_fill() {
    let gw = keyed_fast().await;
    let akid = akid_of(&gw, 1).await;
    // A well-formed AKID with the wrong hash.
    let (clear, _) = akid.rsplit_once('.').unwrap();
    let forged = format!("{clear}.AAAAAA");
    for akid in [None, Some(forged.as_str())] {
        let body = context(&gw, FORM_KEY, OTHER_PAGE, akid).await;
        let ctx = &body["data"]["pageContext"];
        assert_eq!(ctx["recognized"], false, "{body}");
        assert_eq!(ctx["firstName"], Value::Null);
        assert_eq!(ctx["missingFields"], json!(["email", "first_name", "zip"]));
    }
}

#[tokio::test]
async fn scopes_pages_and_bad_input() {
    let gw = keyed_fast().await;
    // read and self keys may ask; a submit key on its own pages only.
    let body = context(&gw, READ_KEY, FORBIDDEN_PAGE, None).await;
    assert_eq!(
        body["data"]["pageContext"]["page"]["name"], FORBIDDEN_PAGE,
        "{body}"
    );
    let body = context(&gw, FORM_KEY, FORBIDDEN_PAGE, None).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(body["data"]["pageContext"], Value::Null);
    // A write-only key may not.
    let (_, body) = call(&gw, Some(WRITE_KEY), &[], CONTEXT, json!({"page": PAGE})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    // Bad input: named, nothing sent upstream.
    gw.reset_stats().await;
    for (page, akid) in [("no spaces", None), (PAGE, Some("not-an-akid"))] {
        let body = context(&gw, READ_KEY, page, akid).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    assert_eq!(gw.calls().await, 0);
    // An unknown page: null, no error.
    let body = context(&gw, READ_KEY, "no-such-page", None).await;
    assert_eq!(body["data"]["pageContext"], Value::Null, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
}
