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

use std::time::{Duration, Instant};

use crate::outbox_support::{sign, TempDir};
use crate::procs::{data_dir, start_gateway, start_sandbox, Signers, KEY};

/// The gateway's name under the test's directory (its data stays there for the restart).
const GATEWAY: &str = "gateway";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_sigkill_while_queued_and_in_flight_loses_nothing_and_duplicates_nothing() {
    let dir = TempDir::new("sigkill");
    std::fs::create_dir_all(&dir.0).unwrap();
    // Short waits so that the test takes seconds: the answer deadline, the wait after
    // a send without an answer (longer than the sandbox's latency), the backoff.
    let config = "[actionkit]\nmax_in_flight = 4\n\n\
         [security]\nrate_limit_per_minute = 0\n\n\
         [outbox]\nanswer_within_ms = 300\nunknown_settle_ms = 2000\n\
         max_backoff_ms = 500\nworker_concurrency = 2\n";

    let sandbox = start_sandbox(20, &["--max-concurrent", "2", "--latency-ms", "300"]).await;
    let rest = sandbox.rest();
    let mut gateway = start_gateway(&sandbox.addr, &dir.0, GATEWAY, config, None).await;

    let page_id = rest.page_id("save-the-bees").await;

    // Submissions keep coming from several clients, each about 10 a second, until
    // the gateway dies: far more than the sandbox takes (2 at a time, 300 ms each).
    let http = reqwest::Client::new();
    let signers = Signers::start(&http, &gateway.addr, "kill", Duration::from_millis(100));
    // Kill when the store (read beside the gateway, as SQLite's WAL allows) shows a
    // backlog and a send that has just started (the sandbox takes 300 ms to answer it).
    let db_path = data_dir(&dir.0, GATEWAY).join("outbox.sqlite3");
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
    gateway.child.start_kill().unwrap(); // SIGKILL
    let status = gateway.child.wait().await.unwrap();
    assert!(!status.success());
    let accepted = signers.stop().await;
    let queued = accepted.queued();
    // The store held 20 queued at the kill; at most one per client was not answered.
    assert!(
        accepted.by_email.len() >= 16,
        "only {} accepted",
        accepted.by_email.len()
    );
    assert!(queued >= 10, "only {queued} answered QUEUED");

    // What the dead process left in its store: submissions waiting, and submissions in
    // flight (sent, no answer recorded: the restart must look before it sends them).
    let (left_queued, left_in_flight) = {
        let db = rusqlite::Connection::open(&db_path).unwrap();
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
    let missing_at_kill = accepted.not_yet_delivered(&rest, page_id).await;

    // Start again on the same data directory: it takes over and delivers.
    let gateway = start_gateway(&sandbox.addr, &dir.0, GATEWAY, config, None).await;
    accepted.expect_each_once(&rest, page_id, "kill.").await;
    eprintln!(
        "sigkill: {} accepted ({queued} answered QUEUED); the dead process left {left_queued} queued, \
         {left_in_flight} of them in flight; {missing_at_kill} accepted ones were not yet in the \
         sandbox; all there exactly once after the restart",
        accepted.by_email.len()
    );
    // The restarted gateway says PROCESSED for each of them.
    accepted.expect_processed(&http, &gateway.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_sigterm_stops_cleanly_and_the_next_start_delivers_the_rest() {
    let dir = TempDir::new("sigterm");
    std::fs::create_dir_all(&dir.0).unwrap();
    let config = "[security]\nrate_limit_per_minute = 0\n\n\
         [outbox]\nanswer_within_ms = 100\nunknown_settle_ms = 1500\nmax_backoff_ms = 500\n";
    let sandbox = start_sandbox(20, &["--max-concurrent", "1", "--latency-ms", "500"]).await;
    let rest = sandbox.rest();
    let page_id = rest.page_id("save-the-bees").await;
    let mut gateway = start_gateway(&sandbox.addr, &dir.0, GATEWAY, config, None).await;
    let http = reqwest::Client::new();
    let mut accepted = Vec::new();
    for n in 0..12 {
        let email = format!("term.n{n}@example.org");
        let (status, _) = sign(&http, &gateway.addr, KEY, &email).await.unwrap();
        assert_eq!(status, "QUEUED");
        accepted.push(email);
    }
    // SIGTERM (by the child's own pid): the gateway stops accepting, the outbox
    // finishes the deliveries in progress, and the process exits 0.
    let pid = gateway.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), gateway.child.wait())
        .await
        .expect("the gateway did not stop after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // A clean stop leaves nothing in flight: only waiting submissions.
    {
        let db =
            rusqlite::Connection::open(data_dir(&dir.0, GATEWAY).join("outbox.sqlite3")).unwrap();
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
    let _gateway = start_gateway(&sandbox.addr, &dir.0, GATEWAY, config, None).await;
    let accepted: Vec<&String> = accepted.iter().collect();
    rest.expect_each_once(page_id, "term.", &accepted, &[])
        .await;
}
