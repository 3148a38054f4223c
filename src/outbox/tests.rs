//! The outbox's logic against a stand-in for ActionKit (what it creates, what it
//! answers, in a script). The same paths against the real sandbox over HTTP are in
//! `tests/outbox_*.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use super::*;

/// What the stand-in does with one send.
#[derive(Clone, Debug)]
enum Step {
    /// Creates the action and answers.
    Create,
    /// Answers 429; creates nothing.
    RateLimited,
    /// Creates the action, then the answer is lost.
    CreateThenLose,
    /// The answer is lost and nothing was created.
    LoseWithoutCreating,
    /// Answers 400 with these messages.
    Refuse(Vec<(&'static str, &'static str)>),
    /// Waits, then creates and answers.
    Slow(Duration),
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Step>>,
    created: Mutex<Vec<(ActionSubmission, Action, SystemTime)>>,
    sends: AtomicUsize,
    finds: AtomicUsize,
    next_id: AtomicU64,
}

impl Fake {
    fn new(steps: &[Step]) -> Arc<Fake> {
        let f = Fake::default();
        *lock(&f.script) = steps.iter().cloned().collect();
        f.next_id.store(1000, Ordering::Release);
        Arc::new(f)
    }
    /// Sends and lookups so far.
    fn calls(&self) -> (usize, usize) {
        (
            self.sends.load(Ordering::Acquire),
            self.finds.load(Ordering::Acquire),
        )
    }
    fn created_for(&self, email: &str) -> usize {
        lock(&self.created)
            .iter()
            .filter(|(s, _, _)| s.email.as_deref() == Some(email))
            .count()
    }
    fn create(&self, s: &ActionSubmission) -> Action {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let action: Action = serde_json::from_value(serde_json::json!({
            "id": id, "type": "Petition",
            "user": "/rest/v1/user/1/", "page": "/rest/v1/petitionpage/1/",
        }))
        .unwrap();
        lock(&self.created).push((s.clone(), action.clone(), SystemTime::now()));
        action
    }
}

#[async_trait::async_trait]
impl ActionSender for Fake {
    async fn submit_action(&self, s: &ActionSubmission) -> Result<ProcessedAction, UpstreamError> {
        self.sends.fetch_add(1, Ordering::AcqRel);
        let step = lock(&self.script).pop_front().unwrap_or(Step::Create);
        match step {
            Step::Create => Ok(ProcessedAction {
                action: self.create(s),
                redirect_url: Some("https://example.org/thanks".into()),
            }),
            Step::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(ProcessedAction {
                    action: self.create(s),
                    redirect_url: None,
                })
            }
            Step::RateLimited => Err(UpstreamError::RateLimited),
            Step::CreateThenLose => {
                self.create(s);
                Err(UpstreamError::WriteOutcomeUnknown)
            }
            Step::LoseWithoutCreating => Err(UpstreamError::WriteOutcomeUnknown),
            Step::Refuse(pairs) => Err(UpstreamError::BadRequest {
                messages: pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
                    .collect(),
            }),
        }
    }

    async fn find_submitted_action(
        &self,
        s: &ActionSubmission,
        since: SystemTime,
    ) -> Result<Option<Action>, UpstreamError> {
        self.finds.fetch_add(1, Ordering::AcqRel);
        let margin = Duration::from_secs(2);
        Ok(lock(&self.created)
            .iter()
            .rev()
            .find(|(c, _, at)| c.email == s.email && c.page == s.page && *at + margin >= since)
            .map(|(_, a, _)| a.clone()))
    }
}

fn sub(email: &str) -> ActionSubmission {
    ActionSubmission {
        page: "demo-petition".into(),
        email: Some(email.into()),
        ..Default::default()
    }
}

fn settings(dir: &std::path::Path) -> OutboxSettings {
    let mut s = OutboxSettings::new(dir);
    s.unknown_settle = Duration::from_millis(200);
    s.max_backoff = Duration::from_millis(400);
    s
}

struct TempDir(PathBuf);

/// An outbox with the tests' settings in a fresh directory (keep it alive: dropping
/// it removes the directory), in front of a fake ActionKit that plays `steps`.
async fn open(steps: &[Step]) -> (TempDir, Arc<Fake>, Outbox) {
    let dir = TempDir::new();
    let fake = Fake::new(steps);
    let ob = Outbox::open_with(fake.clone(), settings(&dir.0))
        .await
        .unwrap();
    (dir, fake, ob)
}

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("outbox-unit-{}", new_id()));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_processed(ob: &Outbox, id: &str) -> SubmissionRecord {
    let start = Instant::now();
    loop {
        let r = ob.status(id).await.unwrap().unwrap();
        if r.state != SubmissionState::Queued {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still queued: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for `id` to be delivered: processed, exactly one action upstream for `email`,
/// after `calls` (sends, lookups) to the fake ActionKit.
async fn delivered_once(
    ob: &Outbox,
    fake: &Fake,
    id: &str,
    email: &str,
    calls: (usize, usize),
) -> SubmissionRecord {
    let done = wait_processed(ob, id).await;
    assert_eq!(done.state, SubmissionState::Processed);
    assert_eq!(fake.created_for(email), 1);
    assert_eq!(fake.calls(), calls, "(sends, lookups)");
    done
}

#[tokio::test]
async fn processed_at_once_is_stored_with_its_action() {
    let (_dir, _fake, ob) = open(&[]).await;
    let r = ob
        .submit("key:web", sub("a@example.org"), None)
        .await
        .unwrap();
    assert_eq!(r.state, SubmissionState::Processed);
    assert_eq!(r.action_id, Some(ActionId(1000)));
    assert_eq!(r.action.as_ref().map(|a| a.id), Some(ActionId(1000)));
    assert_eq!(
        r.redirect_url.as_deref(),
        Some("https://example.org/thanks")
    );
    assert_eq!(r.id.len(), 32);
    assert!(r.created_at.ends_with('Z'), "{}", r.created_at);
    let again = ob.status(&r.id).await.unwrap().unwrap();
    assert_eq!(again.state, SubmissionState::Processed);
    assert_eq!(again.action_id, Some(ActionId(1000)));
    assert_eq!(again.action, None);
    assert_eq!(ob.queue_depth(), 0);
    assert!(ob.status("nope").await.unwrap().is_none());
    ob.shutdown().await;
}

#[tokio::test]
async fn rate_limited_is_queued_then_delivered_once() {
    let (_dir, fake, ob) = open(&[Step::RateLimited, Step::RateLimited]).await;
    let r = ob.submit("k", sub("b@example.org"), None).await.unwrap();
    assert_eq!(r.state, SubmissionState::Queued);
    // Three sends; nothing was in doubt: no lookups.
    delivered_once(&ob, &fake, &r.id, "b@example.org", (3, 0)).await;
    let stored = ob.stored(&r.id).await.unwrap().unwrap();
    assert_eq!(stored.attempts, 3);
    assert!(!stored.outcome_unknown);
    assert_eq!(ob.queue_depth(), 0);
}

#[tokio::test]
async fn lost_answer_is_looked_up_and_not_sent_again() {
    let (_dir, fake, ob) = open(&[Step::CreateThenLose]).await;
    let r = ob.submit("k", sub("c@example.org"), None).await.unwrap();
    assert_eq!(r.state, SubmissionState::Queued);
    let stored = ob.stored(&r.id).await.unwrap().unwrap();
    assert!(stored.outcome_unknown, "{stored:?}");
    let done = delivered_once(&ob, &fake, &r.id, "c@example.org", (1, 1)).await;
    assert_eq!(done.action_id, Some(ActionId(1000)));
}

#[tokio::test]
async fn lost_answer_without_an_action_is_sent_again_after_looking() {
    let (_dir, fake, ob) = open(&[Step::LoseWithoutCreating]).await;
    let r = ob.submit("k", sub("d@example.org"), None).await.unwrap();
    delivered_once(&ob, &fake, &r.id, "d@example.org", (2, 1)).await;
}

#[tokio::test]
async fn refused_is_failed_with_our_messages_and_not_sent_again() {
    let (_dir, fake, ob) = open(&[Step::Refuse(vec![
        ("zip", "This field is required."),
        ("email", "Enter a valid email address <script>."),
        ("__all__", "Something upstream said"),
    ])])
    .await;
    let r = ob.submit("k", sub("e@example.org"), None).await.unwrap();
    assert_eq!(r.state, SubmissionState::Failed);
    let codes: Vec<(&str, &str)> = r
        .field_errors
        .iter()
        .map(|e| (e.field.as_str(), e.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![("", "REFUSED"), ("email", "INVALID"), ("zip", "REQUIRED")]
    );
    assert!(r
        .field_errors
        .iter()
        .all(|e| !e.message.contains("script") && !e.message.contains("upstream")));
    let again = ob.status(&r.id).await.unwrap().unwrap();
    assert_eq!(again.field_errors, r.field_errors);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.sends.load(Ordering::Acquire), 1);
    assert_eq!(ob.queue_depth(), 0);
}

#[tokio::test]
async fn duplicates_by_key_and_by_window_make_one_action() {
    let (_dir, fake, ob) = open(&[]).await;
    let a = ob
        .submit("k1", sub("f@example.org"), Some("idem-1".into()))
        .await
        .unwrap();
    let b = ob
        .submit("k1", sub("other@example.org"), Some("idem-1".into()))
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(b.state, SubmissionState::Processed);
    // The same key from another caller is another submission.
    let c = ob
        .submit("k2", sub("f@example.org"), Some("idem-1".into()))
        .await
        .unwrap();
    assert_ne!(a.id, c.id);
    // Without a key: the same input within the window.
    let d = ob.submit("k1", sub("g@example.org"), None).await.unwrap();
    let e = ob.submit("k1", sub("g@example.org"), None).await.unwrap();
    assert_eq!(d.id, e.id);
    let f = ob.submit("k2", sub("g@example.org"), None).await.unwrap();
    assert_ne!(d.id, f.id);
    assert_eq!(fake.created_for("f@example.org"), 2);
    assert_eq!(fake.created_for("g@example.org"), 2);
    assert_eq!(fake.created_for("other@example.org"), 0);
}

#[tokio::test]
async fn concurrent_duplicates_make_one_action() {
    let (_dir, fake, ob) = open(&[]).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let ob = ob.clone();
        tasks.push(tokio::spawn(async move {
            let key = (i % 2 == 0).then(|| "same-key".to_owned());
            ob.submit("k", sub("h@example.org"), key).await.unwrap().id
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    // One for the key, one for the fingerprint.
    assert_eq!(ids.len(), 2, "{ids:?}");
    wait_until("both delivered", || fake.created_for("h@example.org") == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.created_for("h@example.org"), 2);
}

#[tokio::test]
async fn window_zero_and_expired_window_take_the_same_input_again() {
    let dir = TempDir::new();
    let fake = Fake::new(&[]);
    let mut s = settings(&dir.0);
    s.duplicate_window = Duration::from_millis(100);
    let ob = Outbox::open_with(fake.clone(), s).await.unwrap();
    let a = ob.submit("k", sub("i@example.org"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = ob.submit("k", sub("i@example.org"), None).await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(fake.created_for("i@example.org"), 2);
}

#[tokio::test]
async fn slow_upstream_answers_queued_within_the_deadline_then_records_the_answer() {
    let dir = TempDir::new();
    let fake = Fake::new(&[Step::Slow(Duration::from_millis(600))]);
    let mut s = settings(&dir.0);
    s.answer_within = Duration::from_millis(100);
    let ob = Outbox::open_with(fake.clone(), s).await.unwrap();
    let start = Instant::now();
    let r = ob.submit("k", sub("j@example.org"), None).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(400));
    assert_eq!(r.state, SubmissionState::Queued);
    let done = wait_processed(&ob, &r.id).await;
    assert_eq!(done.state, SubmissionState::Processed);
    // The send at once was not cancelled, so nothing was in doubt: one send, no lookup.
    assert_eq!(fake.calls(), (1, 0), "(sends, lookups)");
}

#[tokio::test]
async fn reopened_store_delivers_what_a_dropped_outbox_left_once() {
    let dir = TempDir::new();
    // First "process": everything is refused with 429, then it goes away.
    let first = Fake::new(&vec![Step::RateLimited; 50]);
    let mut s = settings(&dir.0);
    s.send_at_once = 1;
    let ob = Outbox::open_with(first.clone(), s.clone()).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = ob
            .submit("k", sub(&format!("r{i}@example.org")), None)
            .await
            .unwrap();
        assert_eq!(r.state, SubmissionState::Queued);
        ids.push(r.id);
    }
    assert_eq!(ob.queue_depth(), 5);
    drop(ob);
    // Second process, same directory: ActionKit takes everything now.
    let second = Fake::new(&[]);
    let ob = Outbox::open_with(second.clone(), s).await.unwrap();
    assert_eq!(ob.queue_depth(), 5);
    for id in &ids {
        assert_eq!(
            wait_processed(&ob, id).await.state,
            SubmissionState::Processed
        );
    }
    for i in 0..5 {
        assert_eq!(second.created_for(&format!("r{i}@example.org")), 1);
    }
    assert_eq!(first.created.lock().unwrap().len(), 0);
    assert_eq!(ob.queue_depth(), 0);
}

#[tokio::test]
async fn in_flight_at_a_crash_is_looked_up_after_restart() {
    let dir = TempDir::new();
    // The send at once creates the action but never answers in time; the outbox is
    // dropped (the process dies) while it is in flight.
    let first = Fake::new(&[Step::Slow(Duration::from_secs(30))]);
    let mut s = settings(&dir.0);
    s.answer_within = Duration::from_millis(50);
    let ob = Outbox::open_with(first.clone(), s.clone()).await.unwrap();
    let r = ob
        .submit("k", sub("crash@example.org"), None)
        .await
        .unwrap();
    assert_eq!(r.state, SubmissionState::Queued);
    drop(ob);
    // What ActionKit did with the lost request: it created the action.
    let second = Fake::new(&[]);
    second.create(&sub("crash@example.org"));
    let mut s2 = s.clone();
    s2.answer_within = Duration::from_millis(800);
    let ob = Outbox::open_with(second.clone(), s2).await.unwrap();
    let stored = ob.stored(&r.id).await.unwrap().unwrap();
    assert!(stored.outcome_unknown);
    delivered_once(&ob, &second, &r.id, "crash@example.org", (0, 1)).await;
}

#[tokio::test]
async fn a_second_outbox_on_the_same_directory_is_refused() {
    let dir = TempDir::new();
    let ob = Outbox::open_with(Fake::new(&[]), settings(&dir.0))
        .await
        .unwrap();
    let err = Outbox::open_with(Fake::new(&[]), settings(&dir.0))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(ob);
}

#[tokio::test]
async fn corrupt_or_unusable_stores_are_clear_errors() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join(sqlite::DB_FILE), vec![b'x'; 8192]).unwrap();
    let err = Outbox::open_with(Fake::new(&[]), settings(&dir.0))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(sqlite::DB_FILE) && err.contains("corrupt"),
        "{err}"
    );

    let file = TempDir::new();
    std::fs::write(&file.0, b"a file, not a directory").unwrap();
    let err = Outbox::open_with(Fake::new(&[]), settings(&file.0))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot create the data directory"), "{err}");
}

#[tokio::test]
async fn a_newer_schema_and_another_upstream_are_refused() {
    let dir = TempDir::new();
    let mut s = settings(&dir.0);
    s.upstream = "https://one.example.org".into();
    let ob = Outbox::open_with(Fake::new(&vec![Step::RateLimited; 5]), s.clone())
        .await
        .unwrap();
    ob.submit("k", sub("u@example.org"), None).await.unwrap();
    ob.shutdown().await;
    drop(ob);
    let mut other = s.clone();
    other.upstream = "https://two.example.org".into();
    let err = Outbox::open_with(Fake::new(&[]), other)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("undelivered") && err.contains("one.example.org"),
        "{err}"
    );
    // Same upstream: fine.
    drop(
        Outbox::open_with(Fake::new(&vec![Step::RateLimited; 5]), s.clone())
            .await
            .unwrap(),
    );
    {
        let conn = rusqlite::Connection::open(dir.0.join(sqlite::DB_FILE)).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = Outbox::open_with(Fake::new(&[]), s)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn shutdown_stops_the_worker_and_later_submissions_wait_for_the_next_start() {
    let (dir, fake, ob) = open(&[]).await;
    ob.shutdown().await;
    let r = ob.submit("k", sub("late@example.org"), None).await.unwrap();
    assert_eq!(r.state, SubmissionState::Queued);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.sends.load(Ordering::Acquire), 0);
    drop(ob);
    let ob = Outbox::open_with(fake.clone(), settings(&dir.0))
        .await
        .unwrap();
    assert_eq!(
        wait_processed(&ob, &r.id).await.state,
        SubmissionState::Processed
    );
    assert_eq!(fake.created_for("late@example.org"), 1);
}

#[tokio::test]
async fn temporary_stores_remove_their_directory() {
    let dir = TempDir::new();
    let mut s = settings(&dir.0);
    s.temporary = true;
    let ob = Outbox::open_with(Fake::new(&[]), s).await.unwrap();
    assert!(dir.0.join(sqlite::DB_FILE).exists());
    ob.shutdown().await;
    drop(ob);
    wait_until("directory removed", || !dir.0.exists()).await;
}

#[test]
fn rfc3339_and_backoff() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_796_134_343_999), "2026-12-01T14:12:23Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    for attempt in 0..40 {
        let d = backoff(attempt, Duration::from_secs(1), Duration::from_secs(300));
        assert!(d <= Duration::from_secs(300));
        let full = Duration::from_secs(1)
            .saturating_mul(1 << attempt.min(20))
            .min(Duration::from_secs(300));
        assert!(d >= full / 2, "{attempt}: {d:?}");
    }
}

#[test]
fn fingerprints_separate_callers_and_inputs() {
    let a = fingerprint("k1", &sub("x@example.org"));
    assert_eq!(a, fingerprint("k1", &sub("x@example.org")));
    assert_ne!(a, fingerprint("k2", &sub("x@example.org")));
    assert_ne!(a, fingerprint("k1", &sub("y@example.org")));
    assert_eq!(a.len(), 64);
}

#[tokio::test]
async fn pruning_forgets_old_delivered_submissions_and_keeps_queued_ones() {
    let dir = TempDir::new();
    let fake = Fake::new(&[Step::Create, Step::RateLimited]);
    let mut s = settings(&dir.0);
    s.retention = None;
    let ob = Outbox::open_with(fake.clone(), s).await.unwrap();
    let done = ob
        .submit("k", sub("old@example.org"), Some("key-1".into()))
        .await
        .unwrap();
    assert_eq!(done.state, SubmissionState::Processed);
    ob.shutdown().await;
    let queued = ob
        .submit("k", sub("waiting@example.org"), None)
        .await
        .unwrap();
    assert_eq!(queued.state, SubmissionState::Queued);
    let store = &ob.inner.shared.store;
    assert_eq!(store.prune(now_ms() + 1000).await.unwrap(), 1);
    assert!(ob.status(&done.id).await.unwrap().is_none());
    assert!(ob.status(&queued.id).await.unwrap().is_some());
    assert_eq!(ob.queue_depth(), 1);
}
