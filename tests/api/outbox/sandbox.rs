//! The outbox against the real sandbox over HTTP (through the real client): processed
//! at once; refused with field errors; a sandbox at its concurrency limit (429s) →
//! queued, then delivered exactly once; a send whose answer is lost → looked up, one
//! action; duplicates by idempotency key and by window → one action; an outbox dropped
//! with queued work → the reopened store delivers it once; unusable data directories
//! → clear startup errors.

use std::time::Duration;

use crate::helpers::outbox::{settings, settled, signature, Env, TempDir};
use actionkit_graphql::outbox::{OutboxSettings, SubmissionState};
use actionkit_graphql::sandbox::SandboxConfig;
use serde_json::json;

fn sandbox(users: usize) -> SandboxConfig {
    SandboxConfig {
        users,
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn outbox_processes_at_once_and_the_action_exists_once() {
    let env = Env::start(sandbox(20)).await;
    let dir = TempDir::new("at-once");
    let ob = env.outbox(settings(&dir.0)).await;
    let r = ob
        .submit("key:web", signature("at.once@example.org"), None)
        .await
        .unwrap();
    assert_eq!(r.state, SubmissionState::Processed, "{r:?}");
    let action = r.action.as_ref().unwrap();
    assert_eq!(r.action_id, Some(action.id));
    assert!(r.redirect_url.as_deref().unwrap().contains("save-the-bees"));
    assert_eq!(env.rest.actions_of("at.once@example.org").await, 1);
    // Its record says the same later.
    let again = ob.status(&r.id).await.unwrap().unwrap();
    assert_eq!(
        (again.state, again.action_id),
        (SubmissionState::Processed, Some(action.id))
    );
    assert_eq!(ob.queue_depth(), 0);
    ob.shutdown().await;
}

#[tokio::test]
async fn outbox_refused_input_is_failed_with_field_errors_and_creates_nothing() {
    let env = Env::start(sandbox(20)).await;
    let dir = TempDir::new("refused");
    let ob = env.outbox(settings(&dir.0)).await;
    let mut bad = signature("not-an-email");
    bad.email = Some("not-an-email".into());
    let r = ob.submit("k", bad, None).await.unwrap();
    assert_eq!(r.state, SubmissionState::Failed, "{r:?}");
    assert!(
        r.field_errors
            .iter()
            .any(|e| e.field == "email" && e.code == "INVALID"),
        "{:?}",
        r.field_errors
    );
    let mut unknown_page = signature("page.missing@example.org");
    unknown_page.page = "no-such-page".into();
    let r = ob.submit("k", unknown_page, None).await.unwrap();
    assert_eq!(r.state, SubmissionState::Failed, "{r:?}");
    assert_eq!(r.field_errors[0].field, "page");
    assert_eq!(env.rest.actions_of("page.missing@example.org").await, 0);
    // Never sent again.
    let sends = env.rest.stats().await["by_route"]["POST /rest/v1/action/"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        env.rest.stats().await["by_route"]["POST /rest/v1/action/"].as_u64(),
        Some(sends)
    );
}

#[tokio::test]
async fn outbox_at_the_sandbox_limit_queues_then_delivers_each_exactly_once() {
    let env = Env::start(SandboxConfig {
        users: 20,
        max_concurrent: 2,
        latency_ms: 150,
        ..SandboxConfig::default()
    })
    .await;
    let dir = TempDir::new("limit");
    let mut s = settings(&dir.0);
    s.answer_within = Duration::from_millis(400);
    s.send_at_once = 8;
    s.worker_concurrency = 2;
    let ob = env.outbox(s).await;
    let n = 24;
    let mut tasks = Vec::new();
    for i in 0..n {
        let ob = ob.clone();
        tasks.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = ob
                .submit("k", signature(&format!("limit{i}@example.org")), None)
                .await
                .unwrap();
            (r, started.elapsed())
        }));
    }
    let mut queued = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let (r, took) = t.await.unwrap();
        assert!(took < Duration::from_secs(1), "answered in {took:?}");
        assert_ne!(r.state, SubmissionState::Failed, "{r:?}");
        if r.state == SubmissionState::Queued {
            queued += 1;
        }
        ids.push(r.id);
    }
    assert!(queued > 0, "the sandbox's limit queued nothing");
    for id in &ids {
        let r = settled(&ob, id, Duration::from_secs(60)).await;
        assert_eq!(r.state, SubmissionState::Processed, "{r:?}");
    }
    for i in 0..n {
        assert_eq!(
            env.rest.actions_of(&format!("limit{i}@example.org")).await,
            1,
            "limit{i}"
        );
    }
    assert!(env.rest.stats().await["rejected_429"].as_u64().unwrap() > 0);
    assert_eq!(ob.queue_depth(), 0);
}

#[tokio::test]
async fn outbox_a_send_whose_answer_is_lost_makes_one_action() {
    // The client gives up on the answer (request timeout) after the request went out;
    // the sandbox, slow for that one request, may still create the action. Either
    // way: exactly one action, and the worker looked before it sent again.
    let env = Env::start(sandbox(20)).await;
    let dir = TempDir::new("lost");
    let ob = env
        .outbox_with_request_timeout(Duration::from_millis(250), settings(&dir.0))
        .await;
    for (i, slow_ms) in [(0, 150u64), (1, 600)] {
        let email = format!("lost.answer{i}@example.org");
        env.rest
            .set_faults(json!({"slow": 1.0, "slow_ms": 250 + slow_ms}))
            .await;
        let r = ob.submit("k", signature(&email), None).await.unwrap();
        env.rest.set_faults(json!({})).await;
        assert_eq!(r.state, SubmissionState::Queued, "{r:?}");
        let stored = ob.stored(&r.id).await.unwrap().unwrap();
        assert!(stored.outcome_unknown, "{stored:?}");
        let done = settled(&ob, &r.id, Duration::from_secs(30)).await;
        assert_eq!(done.state, SubmissionState::Processed, "{done:?}");
        assert_eq!(env.rest.actions_of(&email).await, 1, "{email}");
    }
}

#[tokio::test]
async fn outbox_duplicates_by_key_and_by_window_make_one_action() {
    let env = Env::start(sandbox(20)).await;
    let dir = TempDir::new("dups");
    let ob = env.outbox(settings(&dir.0)).await;
    // The client retries with the same key, at once and after the answer.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let ob = ob.clone();
        tasks.push(tokio::spawn(async move {
            ob.submit(
                "key:form",
                signature("dup.key@example.org"),
                Some("form-123".into()),
            )
            .await
            .unwrap()
            .id
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1);
    let again = ob
        .submit(
            "key:form",
            signature("dup.key@example.org"),
            Some("form-123".into()),
        )
        .await
        .unwrap();
    assert!(ids.contains(&again.id));
    // No key: a double click sends the same input twice.
    let a = ob
        .submit("key:form", signature("dup.window@example.org"), None)
        .await
        .unwrap();
    let b = ob
        .submit("key:form", signature("dup.window@example.org"), None)
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(b.state, SubmissionState::Processed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.rest.actions_of("dup.key@example.org").await, 1);
    assert_eq!(env.rest.actions_of("dup.window@example.org").await, 1);
}

#[tokio::test]
async fn outbox_reopened_after_a_drop_delivers_the_queued_work_once() {
    let env = Env::start(sandbox(20)).await;
    let dir = TempDir::new("reopen");
    let s = settings(&dir.0);
    // ActionKit refuses everything for now (429).
    env.rest.set_faults(json!({"burst_429": 1000})).await;
    let ob = env.outbox(s.clone()).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let r = ob
            .submit("k", signature(&format!("reopen{i}@example.org")), None)
            .await
            .unwrap();
        assert_eq!(r.state, SubmissionState::Queued, "{r:?}");
        ids.push(r.id);
    }
    assert_eq!(ob.queue_depth(), 6);
    // The process "dies": the outbox is dropped without shutdown.
    drop(ob);
    env.rest.set_faults(json!({})).await;
    let ob = env.outbox(s).await;
    assert_eq!(ob.queue_depth(), 6);
    for id in &ids {
        let r = settled(&ob, id, Duration::from_secs(30)).await;
        assert_eq!(r.state, SubmissionState::Processed, "{r:?}");
    }
    for i in 0..6 {
        assert_eq!(
            env.rest.actions_of(&format!("reopen{i}@example.org")).await,
            1
        );
    }
    assert_eq!(ob.queue_depth(), 0);
}

#[tokio::test]
async fn outbox_unusable_data_directories_stop_the_gateway_with_a_clear_error() {
    use actionkit_graphql::app::{self, Upstream};
    use actionkit_graphql::config::{Config, Mode};

    let env = Env::start(sandbox(10)).await;
    let start = |dir: std::path::PathBuf| {
        let addr = env.sandbox.addr;
        async move {
            let mut config = Config::default();
            config.outbox.data_dir = Some(dir);
            let upstream = Upstream::sandbox(addr, &SandboxConfig::default(), false).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            app::start(&config, Mode::Development, upstream, listener)
                .await
                .err()
                .map(|e| format!("{e:#}"))
        }
    };
    // A file where the directory should be.
    let file = TempDir::new("a-file");
    std::fs::write(&file.0, b"not a directory").unwrap();
    let err = start(file.0.join("data")).await.unwrap();
    assert!(
        err.contains("cannot create the data directory") && err.contains("--data-dir"),
        "{err}"
    );
    // A corrupt store.
    let corrupt = TempDir::new("corrupt");
    std::fs::create_dir_all(&corrupt.0).unwrap();
    std::fs::write(
        corrupt.0.join(actionkit_graphql::outbox::sqlite::DB_FILE),
        vec![b'z'; 10_000],
    )
    .unwrap();
    let err = start(corrupt.0.clone()).await.unwrap();
    assert!(
        err.contains("corrupt") && err.contains("outbox.sqlite3"),
        "{err}"
    );
    // A directory another gateway uses.
    let busy = TempDir::new("busy");
    let _first = env.outbox(OutboxSettings::new(&busy.0)).await;
    let err = start(busy.0.clone()).await.unwrap();
    assert!(err.contains("in use by another gateway process"), "{err}");
}

#[tokio::test]
async fn outbox_after_write_faults_are_found_and_not_sent_again() {
    // The sandbox creates the action, then answers 500, drops the connection, or holds
    // the answer past the client's timeout: the worker looks, finds the action, and
    // never sends it again. Exactly one action, one POST.
    let env = Env::start(sandbox(20)).await;
    let dir = TempDir::new("after-write");
    let ob = env
        .outbox_with_request_timeout(Duration::from_millis(400), settings(&dir.0))
        .await;
    let cases = [
        ("e500", json!({"error_500_after_write": 1.0})),
        ("drop", json!({"drop_after_write": 1.0})),
        ("slow", json!({"slow_after_write": 1.0, "slow_ms": 900})),
    ];
    for (name, faults) in cases {
        let email = format!("after.write.{name}@example.org");
        env.rest.set_faults(faults).await;
        let posts_before = posts(&env).await;
        let r = ob.submit("k", signature(&email), None).await.unwrap();
        env.rest.set_faults(json!({})).await;
        assert_eq!(r.state, SubmissionState::Queued, "{name}: {r:?}");
        assert!(ob.stored(&r.id).await.unwrap().unwrap().outcome_unknown);
        let done = settled(&ob, &r.id, Duration::from_secs(30)).await;
        assert_eq!(done.state, SubmissionState::Processed, "{name}: {done:?}");
        assert!(done.action_id.is_some());
        assert_eq!(env.rest.actions_of(&email).await, 1, "{name}");
        assert_eq!(posts(&env).await, posts_before + 1, "{name}: sent again");
        let stored = ob.stored(&r.id).await.unwrap().unwrap();
        assert_eq!(stored.attempts, 1, "{name}");
        assert!(!stored.outcome_unknown);
    }
}

async fn posts(env: &Env) -> u64 {
    env.rest.stats().await["by_route"]["POST /rest/v1/action/"]
        .as_u64()
        .unwrap_or(0)
}
