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

mod deliver;
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
#[cfg(test)]
use deliver::backoff;
use deliver::{pruner, worker, Path};
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
    /// How many requests the sender lets out at once now, when it knows
    /// ([`Client::concurrency_limit`], which adapts to ActionKit's 429s).
    fn concurrency_limit(&self) -> Option<usize> {
        None
    }
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
    fn concurrency_limit(&self) -> Option<usize> {
        Some(Client::concurrency_limit(self))
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
    /// The page (short name) of every action this process saw processed, at once
    /// (see [`Outbox::processed_pages`]).
    processed: tokio::sync::broadcast::Sender<String>,
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
            processed: tokio::sync::broadcast::channel(1024).0,
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

    /// The page short name of each submission this process delivers as processed, as
    /// it happens (sent at once or by the worker): what live progress counts listen
    /// to. A receiver that falls behind loses the oldest names (`Lagged`).
    pub fn processed_pages(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.shared.processed.subscribe()
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
        // Sent at once only while fewer sends at once are out than the client lets
        // out now (its cap adapts to ActionKit): a send would otherwise wait for a slot
        // while recorded in flight, and be looked up needlessly after a stop.
        let sending = settings
            .send_at_once
            .saturating_sub(sh.at_once.available_permits());
        let room = sh
            .sender
            .concurrency_limit()
            .is_none_or(|limit| sending < limit);
        let permit = if sh.stopping() || sh.paused_until().is_some() || !room {
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
