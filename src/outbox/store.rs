//! The submission store: what the outbox needs from a durable engine, as a trait, so
//! that the embedded SQLite store ([`super::sqlite`]) and a shared engine for several
//! replicas can stand in for each other.
//!
//! Every method that returns `Ok` has made its change durable first: the outbox tells
//! a caller `QUEUED` or `PROCESSED` only after the store said so.

use serde::{Deserialize, Serialize};

use super::{FieldError, OutboxError, SubmissionState};
use crate::actionkit::{ActionId, ActionSubmission};

/// A submission to store.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    /// Opaque, unguessable id (see [`super::new_id`]).
    pub id: String,
    /// A stable identity of the caller (API key name, user).
    pub caller: String,
    /// Unique per caller when set.
    pub idempotency_key: Option<String>,
    /// SHA-256 of (caller, input): see [`super::fingerprint`].
    pub fingerprint: String,
    pub submission: ActionSubmission,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Without a key: an earlier submission of the same caller with the same
    /// fingerprint created at or after this time is the same submission.
    pub duplicate_since_ms: Option<i64>,
    /// `Some(t)`: it is sent at once, so it is stored already *in flight* (outcome
    /// unknown, first sent now, one attempt) and not due for the worker before `t`.
    pub sending_until_ms: Option<i64>,
}

/// What [`SubmissionStore::insert`] did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// Stored as a new submission.
    New(StoredSubmission),
    /// The same submission was stored before (same key, or same input within the
    /// window): nothing new was stored; here is the first one.
    Duplicate(StoredSubmission),
}

/// A submission as stored, with its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubmission {
    /// Order of arrival (increasing).
    pub seq: i64,
    pub id: String,
    pub caller: String,
    pub idempotency_key: Option<String>,
    pub submission: ActionSubmission,
    pub state: SubmissionState,
    /// Sends to ActionKit so far (lookups after an unknown outcome are not sends).
    pub attempts: u32,
    /// When the worker may try it next (unix ms).
    pub next_attempt_at_ms: i64,
    /// When it was first sent (unix ms); lookups after an unknown outcome search from here.
    pub first_sent_at_ms: Option<i64>,
    /// The last send may have created the action (sent with no answer, or in flight
    /// when a process stopped): look before sending again.
    pub outcome_unknown: bool,
    pub action_id: Option<ActionId>,
    pub redirect_url: Option<String>,
    pub field_errors: Vec<FieldError>,
    /// The kind of the last failure (`rate_limited`, `write_outcome_unknown`, ...).
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The action exists upstream.
    Processed {
        action_id: ActionId,
        redirect_url: Option<String>,
    },
    /// ActionKit refused the input; never sent again.
    Failed { field_errors: Vec<FieldError> },
    /// Still queued: try again at `next_attempt_at_ms`.
    Retry {
        /// Whether the action may have been created (look before sending again).
        outcome_unknown: bool,
        next_attempt_at_ms: i64,
        /// A fixed kind (for the record and the logs), e.g. `rate_limited`.
        error: String,
    },
}

/// The durable store of submissions behind the outbox.
///
/// Implementations serialize their writes: `insert`'s duplicate check and its write
/// are one atomic step. Only one process may deliver from a store at a time (the
/// embedded store locks its directory); a shared engine will need leases in place of
/// the outbox's in-process claims.
#[async_trait::async_trait]
pub trait SubmissionStore: Send + Sync + 'static {
    /// Stores `new`, or returns the earlier submission it duplicates.
    async fn insert(&self, new: NewSubmission) -> Result<Inserted, OutboxError>;

    /// The submission `id`.
    async fn get(&self, id: &str) -> Result<Option<StoredSubmission>, OutboxError>;

    /// Before a send: the submission is in flight (outcome unknown until resolved),
    /// one more attempt, first sent now unless it was sent before, and not due again
    /// before `retry_at_ms` (in case this process stops before it hears the answer).
    /// A submission that is no longer queued is returned unchanged.
    async fn mark_sending(
        &self,
        id: &str,
        now_ms: i64,
        retry_at_ms: i64,
    ) -> Result<StoredSubmission, OutboxError>;

    /// Records how an attempt ended. A submission that is no longer queued (processed
    /// or failed) keeps its state.
    async fn resolve(
        &self,
        id: &str,
        resolution: Resolution,
        now_ms: i64,
    ) -> Result<StoredSubmission, OutboxError>;

    /// Queued submissions due at `now_ms`, in order of arrival, at most `limit`,
    /// leaving out the ids in `skip` (being delivered now).
    async fn due(
        &self,
        now_ms: i64,
        limit: usize,
        skip: Vec<String>,
    ) -> Result<Vec<StoredSubmission>, OutboxError>;

    /// The earliest `next_attempt_at_ms` of the queued submissions not in `skip`.
    async fn next_attempt_at(&self, skip: Vec<String>) -> Result<Option<i64>, OutboxError>;

    /// Removes processed and failed submissions created before `before_ms` (their
    /// ids and idempotency keys are forgotten); returns how many. Queued ones stay,
    /// however old.
    async fn prune(&self, before_ms: i64) -> Result<u64, OutboxError>;

    /// Submissions stored and not yet delivered (queued, in flight included).
    fn queue_depth(&self) -> u64;

    /// The store answers and can write (for `/readyz`).
    async fn check(&self) -> Result<(), OutboxError>;
}

/// Field errors as stored (JSON).
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredFieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl From<&FieldError> for StoredFieldError {
    fn from(e: &FieldError) -> Self {
        StoredFieldError {
            field: e.field.clone(),
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }
}

impl From<StoredFieldError> for FieldError {
    fn from(e: StoredFieldError) -> Self {
        FieldError {
            field: e.field,
            code: e.code,
            message: e.message,
        }
    }
}
