//! The binary: secure-by-default startup, the open sandbox's warning, `hash-key`, and
//! a captured log (debug level) that carries no password, API key or token.

use std::io::Write;
use std::process::Stdio;

use actionkit_graphql::http::auth::hash_key;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::{command, Running, Serves};

#[test]
fn serve_against_actionkit_without_keys_refuses_to_start() {
    let out = command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ACTIONKIT_URL", "http://127.0.0.1:9")
        .env("ACTIONKIT_USERNAME", "staff")
        .env("ACTIONKIT_PASSWORD", "pw-never-shown")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GATEWAY_API_KEYS"), "{err}");
    assert!(err.contains("--allow-anonymous-reads"), "{err}");
    assert!(!err.contains("pw-never-shown"), "{err}");
}

#[test]
fn hash_key_prints_the_sha256_of_stdin() {
    let mut child = command()
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"my-key-123\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        hash_key("my-key-123")
    );
}

#[tokio::test]
async fn the_sandbox_is_open_and_says_so() {
    let mut cmd = command();
    cmd.args(["serve", "--sandbox", "--users", "5"]);
    let gw = Running::start(cmd, Serves::Gateway);
    let text = gw.log();
    assert!(text.contains("OPEN GATEWAY"), "{text}");
}

#[tokio::test]
async fn logs_carry_no_password_key_or_token() {
    const PASSWORD: &str = "Upstream-Pa55word-Xq7";
    const KEY: &str = "client-key-Zk93-secret";
    const WRONG: &str = "wrong-key-Hh21-secret";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA";

    let mut cmd = command();
    cmd.args(["sandbox", "--users", "10", "--password", PASSWORD]);
    let sandbox = Running::start(cmd, Serves::Sandbox);

    let mut cmd = command();
    cmd.arg("serve")
        .env("ACTIONKIT_URL", sandbox.url(""))
        .env("ACTIONKIT_USERNAME", "sandbox")
        .env("ACTIONKIT_PASSWORD", PASSWORD)
        .env("GATEWAY_API_KEYS", format!("web:read:{}", hash_key(KEY)))
        .env("RUST_LOG", "debug");
    let gateway = Running::start(cmd, Serves::Gateway);

    let http = reqwest::Client::new();
    let url = gateway.url("/graphql");
    let send = |token: &str, query: &str| {
        http.post(&url)
            .bearer_auth(token)
            .json(&json!({"query": query}))
            .send()
    };
    let ok: Value = send(KEY, r#"{ user(id: "1") { id email } }"#)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["data"]["user"]["id"], "1", "{ok}");
    // A refused mutation, an upstream 404, a wrong key, a JWT-shaped token.
    send(
        KEY,
        r#"mutation { clearActionCustomFields(actionId: "1") { id } }"#,
    )
    .await
    .unwrap();
    send(KEY, r#"{ user(id: "999999") { id } }"#).await.unwrap();
    for token in [WRONG, JWT] {
        let r = send(token, "{ __typename }").await.unwrap();
        assert_eq!(r.status(), 401);
        let body = r.text().await.unwrap();
        assert!(!body.contains(token));
    }
    // Let the last lines reach the log before it is read.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let text = gateway.log();
    assert!(text.contains("client key configured"), "{text}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("sandbox:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str(), KEY, WRONG, JWT, &hash_key(KEY)] {
        assert!(
            !text.contains(secret),
            "the log carries {secret:?}:\n{text}"
        );
    }
}
