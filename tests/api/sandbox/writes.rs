//! Writes: status codes and bodies (reference §8), PATCH replace/merge, action
//! processing, actionfield CRUD, user conflicts, and bad requests that change nothing.

use super::support::*;
use crate::helpers::sandbox::*;
use actionkit_graphql::sandbox::{FieldsPatch, SandboxConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// Asserts an empty-bodied answer as ActionKit sends it.
async fn assert_empty(r: reqwest::Response, status: u16, what: &str) {
    assert_eq!(r.status().as_u16(), status, "{what}");
    assert_eq!(
        r.headers()["content-type"],
        "text/html; charset=utf-8",
        "{what}"
    );
    // hyper never sends Content-Length on a 204 (RFC 9110 §8.6); elsewhere it is 0.
    let len = r
        .headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().to_string());
    if status == 204 {
        assert!(len.is_none() || len.as_deref() == Some("0"), "{what}");
    } else {
        assert_eq!(len.as_deref(), Some("0"), "{what}");
    }
    assert_eq!(r.text().await.unwrap(), "", "{what}");
}

/// Sends `body` as JSON and asserts an empty-bodied answer with `status`.
async fn send_expecting_empty(
    sb: &RunningSandbox,
    method: Method,
    path: &str,
    body: &str,
    status: u16,
) {
    let what = format!("{method} {path} {body}");
    assert_empty(send_json(sb, method, path, body).await, status, &what).await;
}

/// A survey action of user 1 (it has a multi-valued `issues` field and `q_priority`).
async fn survey_action(sb: &RunningSandbox) -> (u64, String) {
    let v = sb.json("/rest/v1/surveyaction/?user=1&_limit=1").await;
    let o = &v["objects"][0];
    (
        o["id"].as_u64().unwrap(),
        o["resource_uri"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn patch_fields_replace() {
    let sb = start(config()).await;
    let (id, typed) = survey_action(&sb).await;
    let before = sb.json(&format!("/rest/v1/action/{id}/")).await;
    assert!(before["fields"]["issues"].is_array());
    send_expecting_empty(
        &sb,
        Method::PATCH,
        &format!("/rest/v1/action/{id}/"),
        r#"{"fields": {"q_priority": "housing", "colors": ["red", "blue"]}}"#,
        202,
    )
    .await;
    let after = sb.json(&typed).await;
    assert_eq!(
        after["fields"],
        json!({"q_priority": "housing", "colors": ["red", "blue"]})
    );
    // Rows are visible through actionfield, in row order.
    let rows = sb
        .json(&format!("/rest/v1/actionfield/?parent={id}&name=colors"))
        .await;
    assert_eq!(each_str(&rows, "value"), vec!["red", "blue"]);
    assert_eq!(rows["objects"][0]["parent"], typed.as_str());
    // Typed URI works too; null removes a name; {} clears everything (replace).
    send_expecting_empty(
        &sb,
        Method::PATCH,
        &typed,
        r#"{"fields": {"q_priority": "housing", "colors": null}}"#,
        202,
    )
    .await;
    assert_eq!(
        sb.json(&typed).await["fields"],
        json!({"q_priority": "housing"})
    );
    send_expecting_empty(&sb, Method::PUT, &typed, r#"{"fields": {}}"#, 204).await;
    assert_eq!(sb.json(&typed).await["fields"], json!({}));
    // A wrongly typed URI is a 404, as is an action that does not exist.
    for missing in [
        format!("/rest/v1/petitionaction/{id}/"),
        "/rest/v1/action/99999999/".into(),
    ] {
        send_expecting_empty(&sb, Method::PATCH, &missing, r#"{"fields": {}}"#, 404).await;
    }
}

#[tokio::test]
async fn patch_fields_merge() {
    let sb = start(SandboxConfig {
        fields_patch: FieldsPatch::Merge,
        ..config()
    })
    .await;
    let (id, _) = survey_action(&sb).await;
    let before = sb.json(&format!("/rest/v1/action/{id}/")).await;
    send_expecting_empty(
        &sb,
        Method::PATCH,
        &format!("/rest/v1/action/{id}/"),
        r#"{"fields": {"q_priority": "transit", "note": "hi"}}"#,
        202,
    )
    .await;
    let after = sb.json(&format!("/rest/v1/action/{id}/")).await;
    assert_eq!(after["fields"]["q_priority"], "transit");
    assert_eq!(after["fields"]["note"], "hi");
    assert_eq!(
        after["fields"]["issues"], before["fields"]["issues"],
        "absent names kept"
    );
    // Numbers are stored as text.
    send_expecting_empty(
        &sb,
        Method::PATCH,
        &format!("/rest/v1/action/{id}/"),
        r#"{"fields": {"age": 101}}"#,
        202,
    )
    .await;
    assert_eq!(
        sb.json(&format!("/rest/v1/action/{id}/")).await["fields"]["age"],
        "101"
    );
}

#[tokio::test]
async fn actionfield_crud() {
    let sb = start(config()).await;
    let (id, typed) = survey_action(&sb).await;
    let r = send_json(
        &sb,
        Method::POST,
        "/rest/v1/actionfield/",
        &json!({"parent": typed, "name": "extra", "value": "one"}).to_string(),
    )
    .await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&format!("{}/rest/v1/actionfield/", sb.base)),
        "{loc}"
    );
    assert_empty(r, 201, "POST actionfield").await;
    // `action` is accepted as an alias of `parent`, and a bare id.
    send_expecting_empty(
        &sb,
        Method::POST,
        "/rest/v1/actionfield/",
        &json!({"action": id, "name": "extra", "value": "two"}).to_string(),
        201,
    )
    .await;
    assert_eq!(
        sb.json(&typed).await["fields"]["extra"],
        json!(["one", "two"])
    );

    let path = loc.trim_start_matches(&sb.base).to_string();
    let row = sb.json(&path).await;
    assert_eq!(row["name"], "extra");
    assert_eq!(row["value"], "one");
    assert_eq!(row["parent"], typed.as_str());
    assert_eq!(row["resource_uri"], path.as_str());

    send_expecting_empty(&sb, Method::PUT, &path, r#"{"value": "uno"}"#, 204).await;
    send_expecting_empty(&sb, Method::PATCH, &path, r#"{"name": "extra"}"#, 202).await;
    assert_eq!(
        sb.json(&typed).await["fields"]["extra"],
        json!(["uno", "two"])
    );
    // Form-encoded PUT works as in production clients.
    let r = sb
        .req(Method::PUT, &path)
        .form(&[("value", "eins")])
        .send()
        .await
        .unwrap();
    assert_empty(r, 204, "form PUT").await;
    let r = sb.req(Method::DELETE, &path).send().await.unwrap();
    assert_empty(r, 204, "DELETE actionfield").await;
    assert_eq!(sb.json(&typed).await["fields"]["extra"], "two");
    let r = sb.get(&path).send().await.unwrap();
    assert_empty(r, 404, "deleted row").await;
    let r = sb.req(Method::DELETE, &path).send().await.unwrap();
    assert_empty(r, 404, "DELETE again").await;

    for (body, field) in [
        (json!({"parent": typed, "value": "x"}), "name"),
        (
            json!({"parent": typed, "name": "bad name!", "value": "x"}),
            "name",
        ),
        (
            json!({"parent": typed, "name": "x".repeat(256), "value": "x"}),
            "name",
        ),
        (json!({"name": "ok", "value": "x"}), "parent"),
        (
            json!({"parent": "/rest/v1/petitionaction/99999999/", "name": "ok", "value": "x"}),
            "parent",
        ),
        (json!({"parent": typed, "name": "ok"}), "value"),
    ] {
        let r = send_json(
            &sb,
            Method::POST,
            "/rest/v1/actionfield/",
            &body.to_string(),
        )
        .await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["actionfield"][field][0].is_string(), "{body}: {v}");
    }
}

#[tokio::test]
async fn action_processing() {
    let sb = start(config()).await;
    let users_before = sb.json("/rest/v1/user/?_limit=1").await["meta"]["total_count"]
        .as_u64()
        .unwrap();
    // Existing user by email, custom action and user fields, unknown keys ignored.
    let body = json!({"page": "save-the-bees", "email": "rosa.delgado1@example.org",
        "action_comment": "Go!", "action_tags": ["a", "b"], "user_food": "pupusas", "ignored": "x"});
    let r = send_json(&sb, Method::POST, "/rest/v1/action/", &body.to_string()).await;
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        loc,
        format!("{}/rest/v1/petitionaction/{}/", sb.base, v["id"])
    );
    assert_eq!(v["user"], "/rest/v1/user/1/");
    assert_eq!(v["page"], "/rest/v1/petitionpage/1/");
    assert_eq!(v["fields"], json!({"comment": "Go!", "tags": ["a", "b"]}));
    assert_eq!(v["source"], "restful_api");
    assert_eq!(v["created_user"], false);
    assert!(v["redirect_url"]
        .as_str()
        .unwrap()
        .starts_with("/cms/thanks/save-the-bees/?action_id="));
    assert_eq!(
        sb.json("/rest/v1/user/1/").await["fields"]["food"],
        "pupusas"
    );
    // The new action is listed for the user.
    let last = sb
        .json("/rest/v1/action/?user=1&order_by=-id&_limit=1")
        .await;
    assert_eq!(last["objects"][0]["id"], v["id"]);

    // New user (created), form-encoded.
    let r = sb
        .http
        .post(sb.url("/rest/v1/action/"))
        .basic_auth("sandbox", Some("sandbox"))
        .form(&[
            ("page", "volunteer"),
            ("email", "new.person@example.org"),
            ("name", "New Person"),
            ("zip", "53703"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["created_user"], true);
    assert_eq!(v["type"], "Signup");
    let uid = users_before + 1;
    assert_eq!(v["user"], format!("/rest/v1/user/{uid}/"));
    let u = sb.json(&format!("/rest/v1/user/{uid}/")).await;
    assert_eq!(
        (
            u["first_name"].as_str(),
            u["last_name"].as_str(),
            u["zip"].as_str()
        ),
        (Some("New"), Some("Person"), Some("53703"))
    );

    // By AKID (the user's token), and anonymously: the reduced body.
    let token = sb.json("/rest/v1/user/2/").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_anonymous_action_is_reduced(&sb, &json!({"page": "fair-rent", "akid": token})).await;

    // Errors.
    let r = send_json(
        &sb,
        Method::POST,
        "/rest/v1/action/",
        r#"{"page": "nope", "email": "a@example.org"}"#,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"page": "Unable to find a page for processing. You sent page=nope."})
    );
    let r = send_json(
        &sb,
        Method::POST,
        "/rest/v1/action/",
        r#"{"page": "fair-rent", "akid": ".2.AAAAAA"}"#,
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["errors"]["mailing_id"][0].is_string(), "{v}");
    // No member; and typed endpoints do not take POSTs.
    for (path, status) in [("/rest/v1/action/", 400), ("/rest/v1/petitionaction/", 405)] {
        let r = send_json(&sb, Method::POST, path, r#"{"page": "fair-rent"}"#).await;
        assert_eq!(r.status(), status, "{path}");
    }
}

#[tokio::test]
async fn users_and_deletes() {
    let sb = start(config()).await;
    for (method, body, status) in [
        (
            Method::PUT,
            r#"{"first_name": "Testy", "city": "San Francisco"}"#,
            204,
        ),
        (Method::PATCH, r#"{"fields": {"express_account": 1}}"#, 202),
    ] {
        send_expecting_empty(&sb, method, "/rest/v1/user/4/", body, status).await;
    }
    let u = sb.json("/rest/v1/user/4/").await;
    assert_eq!(u["first_name"], "Testy");
    assert_eq!(u["fields"]["express_account"], "1");

    let r = send_json(
        &sb,
        Method::PUT,
        "/rest/v1/user/4/",
        r#"{"email": "ROSA.delgado1@example.org"}"#,
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.headers()["location"],
        format!("{}/rest/v1/user/1/", sb.base).as_str()
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": {"email": ["Conflict on unique key 'email' for value 'ROSA.delgado1@example.org'"]}})
    );
    send_expecting_empty(
        &sb,
        Method::PUT,
        "/rest/v1/user/4/",
        r#"{"email": "fresh@example.org"}"#,
        204,
    )
    .await;
    assert_eq!(
        sb.json("/rest/v1/user/?email=fresh@example.org").await["objects"][0]["id"],
        4
    );
    send_expecting_empty(
        &sb,
        Method::PUT,
        "/rest/v1/user/999999/",
        r#"{"first_name": "x"}"#,
        404,
    )
    .await;
    let r = send_json(
        &sb,
        Method::POST,
        "/rest/v1/user/",
        r#"{"email": "made@example.org"}"#,
    )
    .await;
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("/rest/v1/user/"));
    assert_empty(r, 201, "POST user").await;

    let id = sb.json("/rest/v1/action/?user=5&_limit=1").await["objects"][0]["id"]
        .as_u64()
        .unwrap();
    let r = sb
        .req(Method::DELETE, &format!("/rest/v1/action/{id}/"))
        .send()
        .await
        .unwrap();
    assert_empty(r, 204, "DELETE action").await;
    let r = sb
        .get(&format!("/rest/v1/action/{id}/"))
        .send()
        .await
        .unwrap();
    assert_empty(r, 404, "deleted action").await;
    let rows = sb.json(&format!("/rest/v1/actionfield/?parent={id}")).await;
    assert_eq!(rows["meta"]["total_count"], 0);

    // Pages: create, patch, put.
    let r = send_json(
        &sb,
        Method::POST,
        "/rest/v1/petitionpage/",
        r#"{"name": "new-page", "title": "New"}"#,
    )
    .await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_empty(r, 201, "POST page").await;
    let path = loc.trim_start_matches(&sb.base).to_string();
    send_expecting_empty(
        &sb,
        Method::PATCH,
        &path,
        r#"{"tags": ["/rest/v1/tag/3/"]}"#,
        202,
    )
    .await;
    assert_eq!(
        sb.json(&path).await["tags"][0]["resource_uri"],
        "/rest/v1/tag/3/"
    );
    send_expecting_empty(&sb, Method::PUT, &path, r#"{"title": "Newer"}"#, 204).await;
    let r = send_json(
        &sb,
        Method::POST,
        "/rest/v1/petitionpage/",
        r#"{"name": "new-page"}"#,
    )
    .await;
    assert_eq!(r.status(), 400, "duplicate page name");
}

/// Everything observable that a bad request could have touched.
async fn snapshot(sb: &RunningSandbox) -> Vec<Value> {
    let mut out = Vec::new();
    for p in [
        "/rest/v1/user/1/",
        "/rest/v1/user/?_limit=1",
        "/rest/v1/action/?_limit=1&order_by=-id",
        "/rest/v1/action/?user=1&_limit=100",
        "/rest/v1/actionfield/?_limit=1&order_by=-id",
        "/rest/v1/page/?_limit=100",
    ] {
        out.push(sb.json(p).await);
    }
    out
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let sb = start(config()).await;
    let (id, typed) = survey_action(&sb).await;
    let before = snapshot(&sb).await;
    let big = format!(r#"{{"fields": {{"x": "{}"}}}}"#, "a".repeat(1_100_000));
    let cases: Vec<(Method, String, String, u16)> = vec![
        (Method::PATCH, typed.clone(), "{not json".into(), 400),
        (Method::PATCH, typed.clone(), "[1, 2]".into(), 400),
        (
            Method::PATCH,
            typed.clone(),
            r#"{"fields": {"bad name": "x"}}"#.into(),
            400,
        ),
        (
            Method::PATCH,
            typed.clone(),
            r#"{"fields": {"ok": {"nested": 1}}}"#.into(),
            400,
        ),
        (
            Method::PATCH,
            typed.clone(),
            r#"{"fields": {"ok": "x", "": "y"}}"#.into(),
            400,
        ),
        (
            Method::PATCH,
            typed.clone(),
            r#"{"fields": "x"}"#.into(),
            400,
        ),
        (
            Method::PATCH,
            typed.clone(),
            r#"{"fields": {"ok": "x"}, "created_at": "yesterday"}"#.into(),
            400,
        ),
        (Method::PATCH, typed.clone(), big.clone(), 413),
        (
            Method::PUT,
            format!("/rest/v1/action/{id}/"),
            "{\"fields\": ".into(),
            400,
        ),
        (
            Method::POST,
            "/rest/v1/action/".into(),
            r#"{"page": "nope", "email": "zzz@example.org"}"#.into(),
            400,
        ),
        (
            Method::POST,
            "/rest/v1/action/".into(),
            r#"{"page": "fair-rent", "email": "not-an-email"}"#.into(),
            400,
        ),
        (
            Method::POST,
            "/rest/v1/action/".into(),
            r#"{"page": "fair-rent", "email": "q@example.org", "action_bad-name": "x"}"#.into(),
            400,
        ),
        (Method::POST, "/rest/v1/action/".into(), "{]".into(), 400),
        (
            Method::POST,
            "/rest/v1/actionfield/".into(),
            r#"{"parent": 1, "name": "a b", "value": "x"}"#.into(),
            400,
        ),
        (
            Method::PUT,
            "/rest/v1/user/2/".into(),
            r#"{"email": "rosa.delgado1@example.org"}"#.into(),
            409,
        ),
        (
            Method::PUT,
            "/rest/v1/user/2/".into(),
            r#"{"email": "nope"}"#.into(),
            400,
        ),
        (
            Method::PUT,
            "/rest/v1/user/2/".into(),
            r#"{"first_name": 5}"#.into(),
            400,
        ),
        (
            Method::PATCH,
            "/rest/v1/petitionpage/1/".into(),
            r#"{"name": "bad name"}"#.into(),
            400,
        ),
        (
            Method::PATCH,
            "/rest/v1/petitionpage/1/".into(),
            r#"{"tags": ["/rest/v1/tag/9999/"]}"#.into(),
            400,
        ),
        (Method::POST, "/rest/v1/nosuch/".into(), "{}".into(), 404),
        (Method::DELETE, "/rest/v1/user/1/".into(), "".into(), 405),
        (Method::POST, "/rest/v1/page/".into(), "{}".into(), 405),
        (
            Method::GET,
            "/rest/v1/action/?bogus=1".into(),
            "".into(),
            400,
        ),
    ];
    for (m, path, body, want) in cases {
        let r = send_json(&sb, m.clone(), &path, &body).await;
        assert_eq!(
            r.status().as_u16(),
            want,
            "{m} {path} {}",
            &body[..body.len().min(80)]
        );
    }
    // Unauthenticated writes are refused and change nothing.
    let r = sb
        .http
        .patch(sb.url(&typed))
        .body(r#"{"fields": {}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(snapshot(&sb).await, before);
}
