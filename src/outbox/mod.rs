//! The submission outbox: every accepted submission is stored durably before the
//! caller hears `PROCESSED` or `QUEUED`, and is delivered to ActionKit exactly once
//! (a background worker delivers what could not be sent at once, in order of arrival,
//! under the upstream cap, with backoff, after restarts too).
//!
//! It uses `actionkit/` and knows nothing of GraphQL or HTTP. The store sits behind
//! a trait: embedded SQLite (WAL) here; a shared engine for several replicas next.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::actionkit::{ActionId, ActionSubmission, Client};

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
    /// The submission's field name (`email`, `zip`, `user_<name>`, `action_<name>`, `page`).
    pub field: String,
    /// A stable, upper-case code (`REQUIRED`, `INVALID`, `REFUSED_BY_ACTIONKIT`, ...).
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
}

/// Settings of the outbox.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// The directory of the embedded store (created when missing).
    pub data_dir: PathBuf,
    /// How long `submit` waits for ActionKit before it answers `QUEUED`.
    pub answer_within: Duration,
    /// Without an idempotency key, the same input from the same caller within this
    /// window is the same submission.
    pub duplicate_window: Duration,
}

/// Errors of the outbox itself (the store), not of a submission.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the submission store failed: {0}")]
    Store(String),
}

/// A handle to the outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<()>,
}

impl Outbox {
    /// Opens (or creates) the store in `settings.data_dir` and starts the worker, which
    /// first delivers whatever an earlier process left queued or in flight.
    pub async fn open(client: Client, settings: OutboxSettings) -> Result<Outbox, OutboxError> {
        let _ = (client, settings);
        Ok(Outbox {
            inner: Arc::new(()),
        })
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
        let _ = (caller, submission, idempotency_key, &self.inner);
        Err(OutboxError::Store("the outbox is not built yet".into()))
    }

    /// The record of submission `id`, if it exists.
    pub async fn status(&self, id: &str) -> Result<Option<SubmissionRecord>, OutboxError> {
        let _ = id;
        Ok(None)
    }

    /// Submissions stored and not yet delivered (for `/metrics` and `/readyz`).
    pub fn queue_depth(&self) -> u64 {
        0
    }

    /// Stops the worker after the delivery in progress; queued work stays stored.
    pub async fn shutdown(&self) {}
}
