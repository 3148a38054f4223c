//! A spike against a slow, capped sandbox (`--max-concurrent 4 --latency-ms 200`, the
//! issue's benchmark setting), through the library: every submission is answered
//! (`PROCESSED` or `QUEUED`) within 1 s, every one is delivered in the end, and the
//! page gains exactly as many actions as there were submissions, each processed
//! record naming a different one (0 lost, 0 duplicates). The drain time is printed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::helpers::outbox::{settings, settled, signature, Env, TempDir};
use actionkit_graphql::outbox::SubmissionState;
use actionkit_graphql::sandbox::SandboxConfig;

async fn page_actions(env: &Env, page_id: u64) -> u64 {
    env.rest
        .total(&format!("/rest/v1/action/?page={page_id}&_limit=1"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_spike_answers_within_a_second_and_delivers_each_once() {
    let env = Env::start(SandboxConfig {
        users: 20,
        max_concurrent: 4,
        latency_ms: 200,
        ..SandboxConfig::default()
    })
    .await;
    let page_id = env.rest.page_id("save-the-bees").await;
    let before = page_actions(&env, page_id).await;
    let dir = TempDir::new("spike");
    let mut s = settings(&dir.0);
    s.answer_within = Duration::from_millis(800);
    s.worker_concurrency = 4;
    s.send_at_once = 8;
    let ob = env.outbox(s).await;

    // 400 submissions over 2 s (200 a second), each from its own task.
    let n = 400;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let ob = ob.clone();
        let at = start + Duration::from_millis(i as u64 * 5);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let t = Instant::now();
            let r = ob
                .submit(
                    &format!("key{}", i % 7),
                    signature(&format!("spike{i}@example.org")),
                    None,
                )
                .await
                .unwrap();
            (r, t.elapsed())
        }));
    }
    let mut worst = Duration::ZERO;
    let mut ids = Vec::new();
    let mut at_once = 0;
    for t in tasks {
        let (r, took) = t.await.unwrap();
        worst = worst.max(took);
        assert_ne!(r.state, SubmissionState::Failed, "{r:?}");
        if r.state == SubmissionState::Processed {
            at_once += 1;
        }
        ids.push(r.id);
    }
    let answered = start.elapsed();
    assert!(worst < Duration::from_secs(1), "slowest answer {worst:?}");
    let mut actions = HashSet::new();
    for id in &ids {
        let r = settled(&ob, id, Duration::from_secs(120)).await;
        assert_eq!(r.state, SubmissionState::Processed, "{r:?}");
        assert!(actions.insert(r.action_id.unwrap()), "action shared: {r:?}");
    }
    let drained = start.elapsed();
    assert_eq!(page_actions(&env, page_id).await - before, n as u64);
    assert_eq!(ob.queue_depth(), 0);
    eprintln!(
        "spike: {n} submissions in {answered:?}, slowest answer {worst:?}, {at_once} processed at once, \
         all delivered after {drained:?} ({} 429s from the sandbox)",
        env.rest.stats().await["rejected_429"]
    );
}
