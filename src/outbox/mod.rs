//! The submission outbox: every accepted submission is stored durably before the
//! caller hears `PROCESSED` or `QUEUED`, and is delivered to ActionKit exactly once
//! (a background worker delivers what could not be sent at once, in order of arrival,
//! under the upstream cap, with backoff, after restarts too).
//!
//! It uses `actionkit/` and knows nothing of GraphQL or HTTP. The store sits behind
//! a trait ([`SubmissionStore`]): embedded SQLite (WAL) here ([`sqlite`]); a shared
//! engine for several replicas next.
//!
//! # How a submission travels
//!
//! 1. [`Outbox::submit`] stores it (one transaction: the duplicate check by
//!    idempotency key or by fingerprint within the window, then the insert). When it
//!    is to be sent at once it is stored *in flight* already (outcome unknown), so that
//!    a crash between the send and the answer leaves a record that says "look first".
//! 2. It is sent at once in a task of its own; `submit` waits for that task at most
//!    `answer_within`. The send is never cancelled by that deadline (a cancelled send
//!    would leave the outcome unknown): when the deadline passes first, the caller
//!    hears `QUEUED` and the task records the answer when it comes.
//! 3. ActionKit's answer decides: created → `PROCESSED`; refused (400) → `FAILED` with
//!    [`FieldError`]s and never sent again; not created (429, breaker open, transport
//!    error, 401) → stays queued, no doubt about the outcome; sent but no answer (5xx,
//!    timeout, broken connection) → stays queued with the outcome unknown.
//! 4. The worker delivers queued submissions that are due, oldest first, a few at a
//!    time under the client's cap. Before it sends one whose outcome is unknown it asks
//!    ActionKit ([`Client::find_submitted_action`], the member's newest action on the
//!    page since the first send) and sends again only when nothing is found. It waits
//!    `unknown_settle` after a send with no answer before it looks, so that a request
//!    ActionKit is still processing has finished.
//! 5. Retries go on forever: a submission is never dropped for being retried too
//!    often. Each one backs off exponentially with jitter (up to `max_backoff`); when
//!    ActionKit says it is overloaded (429, breaker open, unreachable) the worker also
//!    pauses as a whole, halves how many it sends at once, and sends nothing at once
//!    from `submit` until the pause ends.
//! 6. On start the worker takes over whatever an earlier process left queued or in
//!    flight: in-flight records carry `outcome_unknown`, so they are looked up first.
//!
//! Exactly once, and its one gap: a look that finds nothing while ActionKit is still
//! processing an earlier send would lead to a second action. The settle time (30 s by
//! default, longer than the client's request timeout) makes that need a request that
//! ActionKit kept for longer than that after the client gave up on it.

pub mod sqlite;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::actionkit::{
    Action, ActionId, ActionSubmission, Client, Error as UpstreamError, ProcessedAction, NON_FIELD,
};
pub use store::{Inserted, NewSubmission, Resolution, StoredSubmission, SubmissionStore};

/// Where a submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionState {
    /// Created upstream; the action id is known.
    Processed,
    /// Stored, not yet delivered (waiting, or being delivered now).
    Queued,
    /// ActionKit refused it (validation); it will not be sent again.
    Failed,
}

/// A validation failure of one field, as a form shows it next to its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The submission's field name (`email`, `zip`, `user_<name>`, `action_<name>`,
    /// `page`); empty when ActionKit refused the submission as a whole.
    pub field: String,
    /// A stable, upper-case code. The outbox writes `REQUIRED` (ActionKit wants the
    /// field), `INVALID` (ActionKit did not accept the value) and `REFUSED` (refused as
    /// a whole, or the gateway could not send it); the validation before ActionKit
    /// may add its own.
    pub code: String,
    /// A message for people; never upstream text verbatim.
    pub message: String,
}

/// A stored submission, as `Query.submission` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionRecord {
    /// Opaque, unguessable id.
    pub id: String,
    pub state: SubmissionState,
    /// The page's short name.
    pub page: String,
    /// Set when processed.
    pub action_id: Option<ActionId>,
    pub redirect_url: Option<String>,
    /// Set when failed.
    pub field_errors: Vec<FieldError>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The created action as ActionKit answered it, when this very `submit` call
    /// processed it (saves a read). `None` from `status`, for duplicates and for
    /// submissions the worker delivered: load it by `action_id`.
    pub action: Option<Action>,
}

/// Settings of the outbox.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// The directory of the embedded store (created when missing).
    pub data_dir: PathBuf,
    /// How long `submit` waits for ActionKit before it answers `QUEUED`.
    pub answer_within: Duration,
    /// Without an idempotency key, the same input from the same caller within this
    /// window is the same submission (zero: no window).
    pub duplicate_window: Duration,
    /// Submissions the worker sends at once, at most (keep it under the client's cap).
    pub worker_concurrency: usize,
    /// Submissions `submit` sends at once, at most; beyond them a submission is
    /// queued at once ("our queue is full").
    pub send_at_once: usize,
    /// After a send with no answer, how long to wait before looking whether the action
    /// was created (and so before sending again).
    pub unknown_settle: Duration,
    /// The longest backoff between two attempts at one submission.
    pub max_backoff: Duration,
    /// Names the ActionKit instance (its URL, or `sandbox`): a store that still holds
    /// undelivered submissions for another instance refuses to open. Empty: no check.
    pub upstream: String,
    /// Remove the data directory when the outbox closes (tests, examples).
    pub temporary: bool,
    /// Processed and failed submissions are forgotten this long after they arrived
    /// (`Query.submission` no longer finds them, their idempotency keys may be used
    /// again). `None`: kept forever. Queued ones are never removed.
    pub retention: Option<Duration>,
}

impl OutboxSettings {
    /// The defaults, with the store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> OutboxSettings {
        OutboxSettings {
            data_dir: data_dir.into(),
            answer_within: Duration::from_millis(800),
            duplicate_window: Duration::from_secs(300),
            worker_concurrency: 4,
            send_at_once: 8,
            unknown_settle: Duration::from_secs(30),
            max_backoff: Duration::from_secs(300),
            upstream: String::new(),
            temporary: false,
            retention: Some(Duration::from_secs(30 * 86_400)),
        }
    }
}

/// Errors of the outbox itself (the store), not of a submission.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboxError {
    #[error("the submission store failed: {0}")]
    Store(String),
}

/// What the outbox needs of ActionKit: [`Client`] in the gateway, a stand-in in tests.
#[async_trait::async_trait]
pub trait ActionSender: Send + Sync + 'static {
    /// See [`Client::submit_action`]: one send, never retried.
    async fn submit_action(
        &self,
        submission: &ActionSubmission,
    ) -> Result<ProcessedAction, UpstreamError>;
    /// See [`Client::find_submitted_action`].
    async fn find_submitted_action(
        &self,
        submission: &ActionSubmission,
        since: SystemTime,
    ) -> Result<Option<Action>, UpstreamError>;
}

#[async_trait::async_trait]
impl ActionSender for Client {
    async fn submit_action(
        &self,
        submission: &ActionSubmission,
    ) -> Result<ProcessedAction, UpstreamError> {
        Client::submit_action(self, submission).await
    }
    async fn find_submitted_action(
        &self,
        submission: &ActionSubmission,
        since: SystemTime,
    ) -> Result<Option<Action>, UpstreamError> {
        Client::find_submitted_action(self, submission, since).await
    }
}

/// A handle to the outbox; cheap to clone. Dropping the last handle stops the worker
/// where it is (as a process that dies would): what was queued stays stored.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // As if the process died: the worker and the deliveries in flight stop where
        // they are; the store keeps what they had recorded.
        self.shared.abandon.send_replace(true);
        if let Some(worker) = lock(&self.worker).take() {
            worker.abort();
        }
    }
}

/// Deliveries in flight hold one permit each of [`Shared::tracker`].
const TRACKED: u32 = 1 << 20;

struct Shared {
    store: Arc<dyn SubmissionStore>,
    sender: Arc<dyn ActionSender>,
    settings: OutboxSettings,
    /// Ids being delivered by this process (at once or by the worker).
    claims: Mutex<HashSet<String>>,
    /// New work, or a worker slot freed.
    wake: Notify,
    stop: watch::Sender<bool>,
    stopping: AtomicBool,
    /// Set when the last handle is dropped without `shutdown`: deliveries in flight
    /// are abandoned (a dropped outbox behaves as a process that died).
    abandon: watch::Sender<bool>,
    pause: Mutex<Pause>,
    /// Slots of `submit`'s sends at once.
    at_once: Arc<Semaphore>,
    /// How many the worker sends at once now (halved on 429, +1 on success).
    window: AtomicUsize,
    /// Deliveries the worker runs now.
    active: AtomicUsize,
    tracker: Arc<Semaphore>,
}

/// The worker's pause after ActionKit said it is overloaded or unreachable.
#[derive(Default)]
struct Pause {
    until: Option<Instant>,
    level: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms_to_system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// A new submission id: 128 random bits, hex.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the caller and the input: equal for the same input from the same caller.
pub fn fingerprint(caller: &str, submission: &ActionSubmission) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(caller.as_bytes());
    h.update([0u8]);
    // Field order is fixed by the struct, so equal inputs give equal JSON.
    h.update(serde_json::to_vec(submission).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `base × 2^attempt`, at most `max`, with jitter (a random point in its upper half).
fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let full = base
        .saturating_mul(1u32 << attempt.min(20))
        .min(max)
        .max(Duration::from_millis(1));
    let half = full / 2;
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=ms(half).max(0) as u64))
}

/// RFC 3339 (UTC, seconds) of unix milliseconds.
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn record(s: &StoredSubmission, action: Option<Action>) -> SubmissionRecord {
    SubmissionRecord {
        id: s.id.clone(),
        state: s.state,
        page: s.submission.page.clone(),
        action_id: s.action_id,
        redirect_url: s.redirect_url.clone(),
        field_errors: s.field_errors.clone(),
        created_at: rfc3339(s.created_at_ms),
        action: if s.state == SubmissionState::Processed {
            action
        } else {
            None
        },
    }
}

/// Our field errors for ActionKit's 400 messages (keyed by the submission's field
/// names). The codes come from what the message says; the messages are ours.
pub fn field_errors(messages: &BTreeMap<String, Vec<String>>) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (field, texts) in messages {
        let text = texts.join(" ").to_ascii_lowercase();
        let (field, code, message) = if field == NON_FIELD || field.is_empty() {
            ("", "REFUSED", "ActionKit refused this submission.")
        } else if text.contains("required") || text.contains("blank") || text.contains("missing") {
            (field.as_str(), "REQUIRED", "This field is required.")
        } else if field == "page" {
            ("page", "INVALID", "This page does not take actions.")
        } else if field == "email" {
            ("email", "INVALID", "Enter a valid email address.")
        } else {
            (field.as_str(), "INVALID", "This value was not accepted.")
        };
        out.push(FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.to_owned(),
        });
    }
    if out.is_empty() {
        out.push(FieldError {
            field: String::new(),
            code: "REFUSED".into(),
            message: "ActionKit refused this submission.".into(),
        });
    }
    out
}

/// What an upstream error means for a submission.
enum Outcome {
    /// Refused: `FAILED`, never sent again.
    Refused(Vec<FieldError>),
    /// Nothing was created; `overloaded`: ActionKit asks us to slow down.
    NotCreated { overloaded: bool, pause: bool },
    /// Sent, no answer: the action may exist.
    Unknown,
}

fn classify(e: &UpstreamError) -> Outcome {
    match e {
        UpstreamError::BadRequest { messages } => Outcome::Refused(field_errors(messages)),
        UpstreamError::InvalidInput(_) => Outcome::Refused(vec![FieldError {
            field: String::new(),
            code: "REFUSED".into(),
            message: "The gateway could not send this submission to ActionKit.".into(),
        }]),
        // `Timeout` from `submit_action`: no slot under the client's cap in time,
        // nothing was sent (sent-and-unanswered is `WriteOutcomeUnknown`).
        UpstreamError::RateLimited | UpstreamError::CircuitOpen | UpstreamError::Timeout => {
            Outcome::NotCreated {
                overloaded: true,
                pause: true,
            }
        }
        UpstreamError::Transport(_) | UpstreamError::Unauthorized | UpstreamError::NotFound => {
            Outcome::NotCreated {
                overloaded: false,
                pause: true,
            }
        }
        // Another 4xx (405, 409, 413, ...): nothing was created. More likely a setting
        // than the input, so it is retried with backoff (and shows in the record).
        UpstreamError::Status { status } if (400..500).contains(status) => Outcome::NotCreated {
            overloaded: false,
            pause: false,
        },
        // Sent and not answered, or answered in a way that does not say: look first.
        UpstreamError::WriteOutcomeUnknown
        | UpstreamError::Status { .. }
        | UpstreamError::Decode { .. } => Outcome::Unknown,
    }
}

/// Which path made a delivery attempt (a metrics label).
#[derive(Clone, Copy)]
enum Path {
    AtOnce,
    Worker,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::AtOnce => "at_once",
            Path::Worker => "worker",
        }
    }
}

fn count_attempt(path: Path, result: &'static str) {
    metrics::counter!("gateway_outbox_delivery_attempts_total", "path" => path.label(), "result" => result)
        .increment(1);
}

impl Shared {
    fn claim(&self, id: &str) -> bool {
        lock(&self.claims).insert(id.to_owned())
    }

    fn unclaim(&self, id: &str) {
        lock(&self.claims).remove(id);
    }

    fn claimed(&self) -> Vec<String> {
        lock(&self.claims).iter().cloned().collect()
    }

    fn paused_until(&self) -> Option<Instant> {
        let mut p = lock(&self.pause);
        match p.until {
            Some(t) if t > Instant::now() => Some(t),
            Some(_) => {
                p.until = None;
                None
            }
            None => None,
        }
    }

    /// Runs `f` unless the outbox is abandoned first (`None` then).
    async fn unless_abandoned<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        let mut abandon = self.abandon.subscribe();
        if *abandon.borrow_and_update() {
            return None;
        }
        tokio::select! {
            v = f => Some(v),
            _ = abandon.wait_for(|a| *a) => None,
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn gauge(&self) {
        metrics::gauge!("gateway_outbox_queue_depth").set(self.store.queue_depth() as f64);
    }

    /// ActionKit is overloaded or unreachable: pause the worker (doubling each time
    /// until a success). Overloaded (429, breaker open, no slot) is a limit on how many
    /// at once, so the pause is short (100 ms doubling to 2 s) and the worker halves
    /// its window; unreachable pauses longer (250 ms doubling to 30 s).
    fn upstream_trouble(&self, overloaded: bool) {
        let (base, cap) = if overloaded {
            (Duration::from_millis(100), Duration::from_secs(2))
        } else {
            (Duration::from_millis(250), Duration::from_secs(30))
        };
        let cap = self.settings.max_backoff.min(cap);
        let mut p = lock(&self.pause);
        let delay = backoff(p.level, base, cap);
        p.level = (p.level + 1).min(20);
        let until = Instant::now() + delay;
        p.until = Some(p.until.map_or(until, |t| t.max(until)));
        drop(p);
        if overloaded {
            let w = self.window.load(Ordering::Acquire);
            self.window.store((w / 2).max(1), Ordering::Release);
        }
    }

    fn upstream_fine(&self) {
        lock(&self.pause).level = 0;
        let max = self.settings.worker_concurrency.max(1);
        let w = self.window.load(Ordering::Acquire);
        if w < max {
            self.window.store(w + 1, Ordering::Release);
        }
    }

    /// One delivery attempt of a claimed submission: look first if its outcome is
    /// unknown (unless `marked`: this call stored it in flight itself and has not sent
    /// it yet), then send, then record the answer. Returns the record after it.
    async fn attempt(
        &self,
        sub: StoredSubmission,
        marked: bool,
        path: Path,
    ) -> Result<(StoredSubmission, Option<Action>), OutboxError> {
        let mut sub = sub;
        let settings = &self.settings;
        if sub.outcome_unknown && !marked {
            let since = ms_to_system_time(sub.first_sent_at_ms.unwrap_or(sub.created_at_ms));
            match self
                .sender
                .find_submitted_action(&sub.submission, since)
                .await
            {
                Ok(Some(action)) => {
                    count_attempt(path, "found");
                    tracing::info!(
                        submission = %sub.id,
                        action = %action.id,
                        "outbox: the action of an unanswered send exists; not sending again"
                    );
                    let id = action.id;
                    return self
                        .finish(
                            &sub,
                            Resolution::Processed {
                                action_id: id,
                                redirect_url: None,
                            },
                            Some(action),
                        )
                        .await;
                }
                Ok(None) => count_attempt(path, "not_found"),
                Err(e) => {
                    count_attempt(path, "lookup_failed");
                    if let Outcome::NotCreated { overloaded, .. } = classify(&e) {
                        self.upstream_trouble(overloaded);
                    }
                    let wait = backoff(sub.attempts, Duration::from_secs(1), settings.max_backoff);
                    tracing::debug!(submission = %sub.id, error = %e, "outbox: lookup failed");
                    return self
                        .finish(
                            &sub,
                            Resolution::Retry {
                                outcome_unknown: true,
                                next_attempt_at_ms: now_ms() + ms(wait),
                                error: format!("lookup_{}", e.kind()),
                            },
                            None,
                        )
                        .await;
                }
            }
        }
        if !marked {
            let now = now_ms();
            sub = self
                .store
                .mark_sending(&sub.id, now, now + ms(settings.unknown_settle))
                .await?;
            if sub.state != SubmissionState::Queued {
                return Ok((sub, None));
            }
        }
        let sent_at = now_ms();
        match self.sender.submit_action(&sub.submission).await {
            Ok(processed) => {
                count_attempt(path, "processed");
                self.upstream_fine();
                let resolution = Resolution::Processed {
                    action_id: processed.action.id,
                    redirect_url: processed.redirect_url.clone(),
                };
                self.finish(&sub, resolution, Some(processed.action)).await
            }
            Err(e) => {
                let resolution = match classify(&e) {
                    Outcome::Refused(errors) => {
                        count_attempt(path, "refused");
                        Resolution::Failed {
                            field_errors: errors,
                        }
                    }
                    Outcome::NotCreated { overloaded, pause } => {
                        count_attempt(path, "not_created");
                        if pause {
                            self.upstream_trouble(overloaded);
                        }
                        // ActionKit asks for less: due again at once, behind the pause.
                        let wait = if overloaded {
                            Duration::ZERO
                        } else {
                            backoff(sub.attempts, Duration::from_secs(1), settings.max_backoff)
                        };
                        Resolution::Retry {
                            outcome_unknown: false,
                            next_attempt_at_ms: now_ms() + ms(wait),
                            error: e.kind().to_owned(),
                        }
                    }
                    Outcome::Unknown => {
                        count_attempt(path, "outcome_unknown");
                        let wait =
                            backoff(sub.attempts, Duration::from_secs(1), settings.max_backoff);
                        let next = (sent_at + ms(settings.unknown_settle)).max(now_ms() + ms(wait));
                        tracing::info!(
                            submission = %sub.id,
                            error = e.kind(),
                            "outbox: sent without an answer; will look before sending again"
                        );
                        Resolution::Retry {
                            outcome_unknown: true,
                            next_attempt_at_ms: next,
                            error: e.kind().to_owned(),
                        }
                    }
                };
                self.finish(&sub, resolution, None).await
            }
        }
    }

    async fn finish(
        &self,
        sub: &StoredSubmission,
        resolution: Resolution,
        action: Option<Action>,
    ) -> Result<(StoredSubmission, Option<Action>), OutboxError> {
        let processed = matches!(resolution, Resolution::Processed { .. });
        let result = self.store.resolve(&sub.id, resolution, now_ms()).await;
        self.gauge();
        let stored = result?;
        if processed {
            let delay = (now_ms() - stored.created_at_ms).max(0) as f64 / 1000.0;
            metrics::histogram!("gateway_outbox_delivery_delay_seconds").record(delay);
        }
        Ok((stored, action))
    }
}

/// The worker: delivers due submissions, oldest first, `window` at a time.
async fn worker(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(until) = shared.paused_until() {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let window = shared.window.load(Ordering::Acquire).max(1);
        let active = shared.active.load(Ordering::Acquire);
        if active >= window {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let due = shared
            .store
            .due(now_ms(), window - active, shared.claimed())
            .await;
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "outbox worker: cannot read the queue");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if due.is_empty() {
            let next = shared
                .store
                .next_attempt_at(shared.claimed())
                .await
                .ok()
                .flatten();
            let wait = next
                .map(|t| (t - now_ms()).clamp(0, 5_000))
                .unwrap_or(5_000);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shared.wake.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for sub in due {
            if !shared.claim(&sub.id) {
                continue;
            }
            let Ok(track) = shared.tracker.clone().acquire_owned().await else {
                shared.unclaim(&sub.id);
                break;
            };
            shared.active.fetch_add(1, Ordering::AcqRel);
            let sh = shared.clone();
            tokio::spawn(async move {
                let id = sub.id.clone();
                if let Some(Err(e)) = sh
                    .unless_abandoned(sh.attempt(sub, false, Path::Worker))
                    .await
                {
                    tracing::error!(submission = %id, error = %e, "outbox worker");
                }
                sh.unclaim(&id);
                sh.active.fetch_sub(1, Ordering::AcqRel);
                drop(track);
                sh.wake.notify_one();
            });
        }
    }
}

/// Forgets delivered and failed submissions past the retention, at start and hourly.
async fn pruner(shared: Arc<Shared>) {
    let Some(retention) = shared.settings.retention else {
        return;
    };
    let mut stop = shared.stop.subscribe();
    loop {
        if *stop.borrow() {
            break;
        }
        match shared.store.prune(now_ms() - ms(retention)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "outbox: forgot submissions past the retention"),
            Err(e) => tracing::warn!(error = %e, "outbox: pruning failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => {}
        }
    }
}

impl Outbox {
    /// Opens (or creates) the store in `settings.data_dir` and starts the worker, which
    /// first delivers whatever an earlier process left queued or in flight.
    pub async fn open(client: Client, settings: OutboxSettings) -> Result<Outbox, OutboxError> {
        Outbox::open_with(Arc::new(client), settings).await
    }

    /// Like [`open`](Self::open), with any [`ActionSender`] (tests use a stand-in).
    pub async fn open_with(
        sender: Arc<dyn ActionSender>,
        settings: OutboxSettings,
    ) -> Result<Outbox, OutboxError> {
        let store =
            sqlite::SqliteStore::open(&settings.data_dir, &settings.upstream, settings.temporary)
                .await?;
        Ok(Outbox::with_store(sender, Arc::new(store), settings))
    }

    /// An outbox over any [`SubmissionStore`]; starts the worker.
    pub fn with_store(
        sender: Arc<dyn ActionSender>,
        store: Arc<dyn SubmissionStore>,
        settings: OutboxSettings,
    ) -> Outbox {
        let (stop, _) = watch::channel(false);
        let (abandon, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store,
            sender,
            window: AtomicUsize::new(settings.worker_concurrency.max(1)),
            at_once: Arc::new(Semaphore::new(settings.send_at_once)),
            settings,
            claims: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            stop,
            abandon,
            stopping: AtomicBool::new(false),
            pause: Mutex::new(Pause::default()),
            active: AtomicUsize::new(0),
            tracker: Arc::new(Semaphore::new(TRACKED as usize)),
        });
        shared.gauge();
        let shared_for_worker = shared.clone();
        let depth = shared.store.queue_depth();
        if depth > 0 {
            tracing::info!(
                queued = depth,
                "outbox: taking over submissions an earlier process left undelivered"
            );
        }
        let handle = tokio::spawn(async move {
            tokio::join!(worker(shared_for_worker.clone()), pruner(shared_for_worker));
        });
        Outbox {
            inner: Arc::new(Inner {
                shared,
                worker: Mutex::new(Some(handle)),
            }),
        }
    }

    /// Takes one submission from `caller` (a stable identity of the API key or user).
    /// Stored durably first; then sent at once if ActionKit answers within
    /// `answer_within` (→ processed or failed), else left to the worker (→ queued).
    /// Duplicates (same `idempotency_key` from the same caller, or the same input
    /// within the window) return the first submission's record and send nothing.
    pub async fn submit(
        &self,
        caller: &str,
        submission: ActionSubmission,
        idempotency_key: Option<String>,
    ) -> Result<SubmissionRecord, OutboxError> {
        let sh = &self.inner.shared;
        let settings = &sh.settings;
        let now = now_ms();
        let permit = if sh.stopping() || sh.paused_until().is_some() {
            None
        } else {
            sh.at_once.clone().try_acquire_owned().ok()
        };
        let new = NewSubmission {
            id: new_id(),
            caller: caller.to_owned(),
            fingerprint: fingerprint(caller, &submission),
            idempotency_key,
            submission,
            created_at_ms: now,
            duplicate_since_ms: (!settings.duplicate_window.is_zero())
                .then(|| now - ms(settings.duplicate_window)),
            sending_until_ms: permit.as_ref().map(|_| now + ms(settings.unknown_settle)),
        };
        let inserted = match sh.store.insert(new).await {
            Ok(i) => i,
            Err(e) => {
                metrics::counter!("gateway_outbox_submissions_total", "outcome" => "error")
                    .increment(1);
                return Err(e);
            }
        };
        let stored = match inserted {
            Inserted::Duplicate(earlier) => {
                metrics::counter!("gateway_outbox_submissions_total", "outcome" => "duplicate")
                    .increment(1);
                return Ok(record(&earlier, None));
            }
            Inserted::New(stored) => stored,
        };
        sh.gauge();
        let Some(permit) = permit else {
            sh.wake.notify_one();
            metrics::counter!("gateway_outbox_submissions_total", "outcome" => "queued")
                .increment(1);
            return Ok(record(&stored, None));
        };
        sh.claim(&stored.id);
        let track = sh.tracker.clone().try_acquire_owned().ok();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = sh.clone();
        let sub = stored.clone();
        tokio::spawn(async move {
            let id = sub.id.clone();
            let Some(result) = task
                .unless_abandoned(task.attempt(sub, true, Path::AtOnce))
                .await
            else {
                return;
            };
            if let Err(e) = &result {
                tracing::error!(submission = %id, error = %e, "outbox: recording a send failed");
            }
            task.unclaim(&id);
            drop(permit);
            drop(track);
            // Left queued: the worker takes it from here.
            task.wake.notify_one();
            let _ = tx.send(result);
        });
        let answer = match tokio::time::timeout(settings.answer_within, rx).await {
            Ok(Ok(Ok((after, action)))) => record(&after, action),
            // Stored in flight; the worker resolves it.
            _ => record(&stored, None),
        };
        let outcome = match answer.state {
            SubmissionState::Processed => "processed",
            SubmissionState::Queued => "queued",
            SubmissionState::Failed => "failed",
        };
        metrics::counter!("gateway_outbox_submissions_total", "outcome" => outcome).increment(1);
        Ok(answer)
    }

    /// The record of submission `id`, if it exists.
    pub async fn status(&self, id: &str) -> Result<Option<SubmissionRecord>, OutboxError> {
        Ok(self
            .inner
            .shared
            .store
            .get(id)
            .await?
            .map(|s| record(&s, None)))
    }

    /// The stored submission `id` with its delivery state (attempts, outcome unknown,
    /// next attempt): for operators and tests.
    pub async fn stored(&self, id: &str) -> Result<Option<StoredSubmission>, OutboxError> {
        self.inner.shared.store.get(id).await
    }

    /// Submissions stored and not yet delivered (for `/metrics` and `/readyz`).
    pub fn queue_depth(&self) -> u64 {
        self.inner.shared.store.queue_depth()
    }

    /// The store answers and can write (for `/readyz`).
    pub async fn check(&self) -> Result<(), OutboxError> {
        self.inner.shared.store.check().await
    }

    /// Stops the worker after the delivery in progress; queued work stays stored.
    /// Submissions taken after this are stored and answered `QUEUED`, for the next
    /// start to deliver.
    pub async fn shutdown(&self) {
        let sh = &self.inner.shared;
        sh.stopping.store(true, Ordering::Release);
        sh.stop.send_replace(true);
        sh.wake.notify_one();
        let worker = lock(&self.inner.worker).take();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        // Wait for the deliveries in flight (each bounded by the client's deadlines).
        if let Ok(all) = sh.tracker.acquire_many(TRACKED).await {
            drop(all);
        }
        tracing::info!(
            queued = sh.store.queue_depth(),
            "outbox stopped; queued submissions stay stored"
        );
    }
}

#[cfg(test)]
mod tests;
