//! The binary: secure-by-default startup, the open sandbox's warning, `hash-key`, and
//! a captured log (debug level) that carries no password, API key or token.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actionkit_graphql::http::auth::hash_key;
use base64::Engine as _;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_actionkit-graphql");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "GATEWAY_CONFIG",
        "GATEWAY_API_KEYS",
        "GATEWAY_ALLOW_ANONYMOUS_READS",
        "GATEWAY_MODE",
        "GATEWAY_LISTEN",
        "ACTIONKIT_URL",
        "ACTIONKIT_USERNAME",
        "ACTIONKIT_PASSWORD",
        "ACTIONKIT_AKID_SECRET",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// A child process that is killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(port: u16) {
    let http = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing healthy on port {port}");
}

async fn wait_listening(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listening on port {port}");
}

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
    let port = free_port();
    let log = std::env::temp_dir().join(format!("akg-open-{}.log", std::process::id()));
    let child = Child(
        command()
            .args(["serve", "--sandbox", "--users", "5", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port).await;
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(text.contains("OPEN GATEWAY"), "{text}");
}

#[tokio::test]
async fn logs_carry_no_password_key_or_token() {
    const PASSWORD: &str = "Upstream-Pa55word-Xq7";
    const KEY: &str = "client-key-Zk93-secret";
    const WRONG: &str = "wrong-key-Hh21-secret";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA";

    let sandbox_port = free_port();
    let _sandbox = Child(
        command()
            .args([
                "sandbox",
                "--users",
                "10",
                "--password",
                PASSWORD,
                "--listen",
            ])
            .arg(format!("127.0.0.1:{sandbox_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(sandbox_port).await;

    let port = free_port();
    let log = std::env::temp_dir().join(format!("akg-logs-{}.log", std::process::id()));
    let gateway = Child(
        command()
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("ACTIONKIT_URL", format!("http://127.0.0.1:{sandbox_port}"))
            .env("ACTIONKIT_USERNAME", "sandbox")
            .env("ACTIONKIT_PASSWORD", PASSWORD)
            .env("GATEWAY_API_KEYS", format!("web:read:{}", hash_key(KEY)))
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port).await;

    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/graphql");
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
    drop(gateway);

    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(text.contains("client key configured"), "{text}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("sandbox:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str(), KEY, WRONG, JWT, &hash_key(KEY)] {
        assert!(
            !text.contains(secret),
            "the log carries {secret:?}:\n{text}"
        );
    }
}
