//! What several sandbox test files send: fault settings, a sandbox started with faults,
//! JSON bodies with the sandbox credential, and an anonymous action post.

use actionkit_graphql::sandbox::{Faults, SandboxConfig};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::sandbox::{config, start, RunningSandbox};

/// POSTs `faults` to `/__sandbox/faults` (no credential needed); the answer is the
/// caller's to check.
pub(crate) async fn post_faults(sb: &RunningSandbox, faults: &Value) -> reqwest::Response {
    sb.http
        .post(sb.url("/__sandbox/faults"))
        .json(faults)
        .send()
        .await
        .unwrap()
}

/// Sets the faults at runtime, asserting that they were taken; returns the answer (the
/// faults now in force).
pub(crate) async fn set_faults(sb: &RunningSandbox, faults: Value) -> Value {
    let r = post_faults(sb, &faults).await;
    assert_eq!(r.status(), 200, "{faults}");
    r.json().await.unwrap()
}

/// A sandbox of the test [`config`] that starts with `faults` set (as the flags do).
pub(crate) async fn start_with_faults(faults: Faults) -> RunningSandbox {
    start(SandboxConfig { faults, ..config() }).await
}

/// Sends `body` as JSON with the sandbox credential.
pub(crate) async fn send_json(
    sb: &RunningSandbox,
    method: Method,
    path: &str,
    body: &str,
) -> reqwest::Response {
    sb.req(method, path)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// POSTs `body` to `/rest/v1/action/` without a credential and asserts the reduced
/// answer ActionKit gives it: 201 with `action_id`, `akid`, `rd` and `redirect_url` only.
pub(crate) async fn assert_anonymous_action_is_reduced(sb: &RunningSandbox, body: &Value) {
    let r = sb
        .http
        .post(sb.url("/rest/v1/action/"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{body}");
    let v: Value = r.json().await.unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["action_id", "akid", "rd", "redirect_url"]);
}

/// GETs `path` without a credential.
pub(crate) async fn get_without_credential(sb: &RunningSandbox, path: &str) -> reqwest::Response {
    sb.http.get(sb.url(path)).send().await.unwrap()
}

/// The string `key` of each object of a list answer, in order.
pub(crate) fn each_str<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o[key].as_str().unwrap())
        .collect()
}
