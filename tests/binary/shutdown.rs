//! SIGTERM during a slow operation: the operation finishes, then the process exits 0.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{command, Running, Serves};

#[tokio::test]
async fn sigterm_lets_the_operation_in_flight_finish() {
    let mut cmd = command();
    cmd.args([
        "serve",
        "--sandbox",
        "--users",
        "50",
        "--latency-ms",
        "1500",
    ]);
    let mut gw = Running::start(cmd, Serves::Gateway);
    let http = reqwest::Client::new();
    let slow = tokio::spawn({
        let http = http.clone();
        let url = gw.url("/graphql");
        async move {
            http.post(url)
                .json(&serde_json::json!({"query": "{ user(id: \"1\") { id firstName } }"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(Command::new("kill")
        .args(["-TERM", &gw.pid()])
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
        if let Some(status) = gw.child.try_wait().unwrap() {
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
    assert!(http.get(gw.url("/healthz")).send().await.is_err());
}
