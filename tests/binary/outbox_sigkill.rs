//! The "Done when": kill the real gateway binary (SIGKILL) while submissions
//! are queued and in flight, start it again on the same data directory, and find
//! every accepted submission (answered `PROCESSED` or `QUEUED`) in the sandbox exactly
//! once.
//!
//! Both are the real binary (`actionkit-graphql sandbox` and `actionkit-graphql
//! serve`), separate processes talking HTTP. The sandbox runs with a low
//! `--max-concurrent` and a high `--latency-ms`, so that most submissions are queued
//! and a few are in flight when the gateway dies. Actions are counted per email
//! through the sandbox's REST.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::outbox_support::{sign, sign_until, SandboxRest, TempDir};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_actionkit-graphql");
const KEY: &str = "outbox-sigkill-test-key-0123456789";

/// Starts the binary with `args` and returns it with the first `http://host:port` it
/// logs on a line containing `marker`. Its output is drained in the background.
async fn start(args: &[&str], envs: &[(&str, String)], marker: &str) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{args:?} did not log {marker:?}; it said:\n{}",
                    seen.join("\n")
                )
            })
            .unwrap_or_else(|| panic!("{args:?} exited; it said:\n{}", seen.join("\n")));
        if line.contains(marker) {
            if let Some(i) = line.find("http://") {
                let rest = &line[i + 7..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                let addr = rest[..end].to_owned();
                // Keep draining so that the child never blocks on a full pipe.
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                return (child, addr);
            }
        }
        seen.push(line);
    }
}

fn key_hash() -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn start_gateway(
    sandbox: &str,
    data_dir: &std::path::Path,
    config: &std::path::Path,
) -> (Child, String) {
    start(
        &[
            "--log-json",
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[
            ("ACTIONKIT_URL", format!("http://{sandbox}")),
            ("ACTIONKIT_USERNAME", "sandbox".into()),
            ("ACTIONKIT_PASSWORD", "sandbox".into()),
            ("GATEWAY_API_KEYS", format!("ops:read+write:{}", key_hash())),
            ("GATEWAY_MODE", "production".into()),
        ],
        "gateway listening",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_sigkill_while_queued_and_in_flight_loses_nothing_and_duplicates_nothing() {
    let dir = TempDir::new("sigkill");
    std::fs::create_dir_all(&dir.0).unwrap();
    let data_dir = dir.0.join("data");
    let config = dir.0.join("gateway.toml");
    // Short waits so that the test takes seconds: the answer deadline, the wait after
    // a send without an answer (longer than the sandbox's latency), the backoff.
    std::fs::write(
        &config,
        "[actionkit]\nmax_in_flight = 4\n\n\
         [security]\nrate_limit_per_minute = 0\n\n\
         [outbox]\nanswer_within_ms = 300\nunknown_settle_ms = 2000\n\
         max_backoff_ms = 500\nworker_concurrency = 2\n",
    )
    .unwrap();

    let (_sandbox, sandbox_addr) = start(
        &[
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "20",
            "--max-concurrent",
            "2",
            "--latency-ms",
            "300",
        ],
        &[],
        "ActionKit sandbox on",
    )
    .await;
    let rest = SandboxRest::new(format!("http://{sandbox_addr}"));
    let (mut gateway, gateway_addr) = start_gateway(&sandbox_addr, &data_dir, &config).await;

    let page_id = rest.get("/rest/v1/page/?name=save-the-bees").await["objects"][0]["id"]
        .as_u64()
        .unwrap();

    // Submissions keep coming from several clients, each about 10 a second, until
    // the gateway dies: far more than the sandbox takes (2 at a time, 300 ms each).
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for client in 0..4 {
        senders.push(tokio::spawn(sign_until(
            http.clone(),
            gateway_addr.clone(),
            KEY,
            format!("kill.c{client}"),
            Duration::from_millis(100),
            stop.clone(),
        )));
    }
    // Kill when the store (read beside the gateway, as SQLite's WAL allows) shows a
    // backlog and a send that has just started (the sandbox takes 300 ms to answer it).
    let db_path = data_dir.join("outbox.sqlite3");
    let watch_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < watch_deadline,
            "no backlog with a send in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        let Ok(db) = rusqlite::Connection::open_with_flags(
            &db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            continue;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let Ok((queued, just_sent)) = db.query_row(
            "SELECT count(*), coalesce(sum(outcome_unknown = 1 AND updated_at >= ?1), 0)
             FROM submissions WHERE state = 'queued'",
            [now_ms - 100],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        ) else {
            continue;
        };
        if queued >= 20 && just_sent >= 1 {
            break;
        }
    }
    gateway.start_kill().unwrap(); // SIGKILL
    let status = gateway.wait().await.unwrap();
    assert!(!status.success());
    stop.store(true, Ordering::Release);
    let mut accepted: HashMap<String, (String, String)> = HashMap::new();
    let mut unanswered = Vec::new();
    for s in senders {
        let (a, u) = s.await.unwrap();
        for (email, status, id) in a {
            accepted.insert(email, (status, id));
        }
        unanswered.extend(u);
    }
    let queued = accepted.values().filter(|(s, _)| s == "QUEUED").count();
    // The store held 20 queued at the kill; at most one per client was not answered.
    assert!(accepted.len() >= 16, "only {} accepted", accepted.len());
    assert!(queued >= 10, "only {queued} answered QUEUED");

    // What the dead process left in its store: submissions waiting, and submissions in
    // flight (sent, no answer recorded: the restart must look before it sends them).
    let (left_queued, left_in_flight) = {
        let db = rusqlite::Connection::open(data_dir.join("outbox.sqlite3")).unwrap();
        let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        (
            count("SELECT count(*) FROM submissions WHERE state = 'queued'"),
            count(
                "SELECT count(*) FROM submissions WHERE state = 'queued' AND outcome_unknown = 1",
            ),
        )
    };
    assert!(left_queued >= 20, "{left_queued} queued at the kill");
    assert!(left_in_flight >= 1, "nothing was in flight at the kill");

    // At the kill, part of the accepted submissions were not yet in the sandbox.
    let at_kill = rest.actions_per_email(page_id).await;
    let missing_at_kill = accepted
        .keys()
        .filter(|e| !at_kill.contains_key(*e))
        .count();
    assert!(
        missing_at_kill > 0,
        "everything was delivered before the kill: the test proves nothing"
    );

    // Start again on the same data directory: it takes over and delivers.
    let (_gateway, gateway_addr) = start_gateway(&sandbox_addr, &data_dir, &config).await;
    let accepted_emails: Vec<&String> = accepted.keys().collect();
    rest.expect_each_once(page_id, "kill.", &accepted_emails, &unanswered)
        .await;
    eprintln!(
        "sigkill: {} accepted ({queued} answered QUEUED); the dead process left {left_queued} queued, \
         {left_in_flight} of them in flight; {missing_at_kill} accepted ones were not yet in the \
         sandbox; all there exactly once after the restart",
        accepted.len()
    );
    // The restarted gateway says PROCESSED for each of them.
    let query = "query($id: ID!) { submission(id: $id) { status } }";
    for (email, (_, id)) in &accepted {
        let body: Value = http
            .post(format!("http://{gateway_addr}/graphql"))
            .bearer_auth(KEY)
            .json(&json!({"query": query, "variables": {"id": id}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["data"]["submission"]["status"], "PROCESSED",
            "{email}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_sigterm_stops_cleanly_and_the_next_start_delivers_the_rest() {
    let dir = TempDir::new("sigterm");
    std::fs::create_dir_all(&dir.0).unwrap();
    let data_dir = dir.0.join("data");
    let config = dir.0.join("gateway.toml");
    std::fs::write(
        &config,
        "[security]\nrate_limit_per_minute = 0\n\n\
         [outbox]\nanswer_within_ms = 100\nunknown_settle_ms = 1500\nmax_backoff_ms = 500\n",
    )
    .unwrap();
    let (_sandbox, sandbox_addr) = start(
        &[
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "20",
            "--max-concurrent",
            "1",
            "--latency-ms",
            "500",
        ],
        &[],
        "ActionKit sandbox on",
    )
    .await;
    let rest = SandboxRest::new(format!("http://{sandbox_addr}"));
    let page_id = rest.get("/rest/v1/page/?name=save-the-bees").await["objects"][0]["id"]
        .as_u64()
        .unwrap();
    let (mut gateway, gateway_addr) = start_gateway(&sandbox_addr, &data_dir, &config).await;
    let http = reqwest::Client::new();
    let mut accepted = Vec::new();
    for n in 0..12 {
        let email = format!("term.n{n}@example.org");
        let (status, _) = sign(&http, &gateway_addr, KEY, &email).await.unwrap();
        assert_eq!(status, "QUEUED");
        accepted.push(email);
    }
    // SIGTERM (by the child's own pid): the gateway stops accepting, the outbox
    // finishes the deliveries in progress, and the process exits 0.
    let pid = gateway.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), gateway.wait())
        .await
        .expect("the gateway did not stop after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // A clean stop leaves nothing in flight: only waiting submissions.
    {
        let db = rusqlite::Connection::open(data_dir.join("outbox.sqlite3")).unwrap();
        let in_flight: i64 = db
            .query_row(
                "SELECT count(*) FROM submissions WHERE state = 'queued' AND outcome_unknown = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(in_flight, 0);
    }
    let before = rest.actions_per_email(page_id).await;
    assert!(
        accepted.iter().any(|e| !before.contains_key(e)),
        "all delivered before the stop: the test proves nothing"
    );
    let (_gateway, _) = start_gateway(&sandbox_addr, &data_dir, &config).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = rest.actions_per_email(page_id).await;
        let pending = accepted.iter().filter(|e| !counts.contains_key(*e)).count();
        if pending == 0 {
            for e in &accepted {
                assert_eq!(counts.get(e), Some(&1), "{e}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "{pending} never delivered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
