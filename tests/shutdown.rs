//! SIGTERM during a slow operation: the operation finishes, then the process exits 0.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_lets_the_operation_in_flight_finish() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_actionkit-graphql"))
        .args([
            "serve",
            "--sandbox",
            "--users",
            "50",
            "--latency-ms",
            "1500",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slow = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/graphql");
        async move {
            http.post(url)
                .json(&serde_json::json!({"query": "{ user(id: \"1\") { id firstName } }"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    let resp = slow
        .await
        .unwrap()
        .expect("the operation in flight was cut off");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["user"]["id"], "1", "{body}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    // New connections are refused once it has stopped.
    assert!(http.get(format!("{base}/healthz")).send().await.is_err());
}
