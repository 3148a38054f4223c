//! The embedded store: SQLite in WAL mode, in the data directory, on one dedicated
//! thread.
//!
//! - Durability: `synchronous = FULL`. In WAL mode that syncs the log at every commit,
//!   so a submission the caller was told about survives a crash of the process *and*
//!   of the machine (power loss). `NORMAL` would survive a process crash only: the
//!   last commits may roll back after a power loss, and a `QUEUED` answer is a promise.
//! - Group commit: callers send jobs to the store's thread, which runs every job that
//!   is waiting in one transaction and answers them after the commit. One sync covers
//!   a burst of submissions, so `FULL` costs little under load.
//! - One process per directory: the thread holds an exclusive lock on
//!   `outbox.lock` for as long as it runs (released by the kernel when the process
//!   dies, `kill -9` included). A second gateway on the same directory stops at start.
//! - Schema version in `PRAGMA user_version`; a newer version than this binary knows
//!   is refused. The directory is bound to one upstream (`meta.upstream`): a store
//!   with undelivered submissions for another ActionKit refuses to open.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::{mpsc, oneshot};

use super::store::{
    Inserted, NewSubmission, Resolution, StoredFieldError, StoredSubmission, SubmissionStore,
};
use super::{FieldError, OutboxError, SubmissionState};
use crate::actionkit::ActionId;

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 1;
/// The database file in the data directory.
pub const DB_FILE: &str = "outbox.sqlite3";
/// The lock file in the data directory.
pub const LOCK_FILE: &str = "outbox.lock";
/// Jobs run in one transaction at most.
const MAX_BATCH: usize = 512;
/// How long `open` waits for the directory's lock (another outbox in this process
/// that is being dropped lets go within this time).
const LOCK_WAIT: Duration = Duration::from_secs(3);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of arrival
    id               TEXT NOT NULL UNIQUE,
    caller           TEXT NOT NULL,
    idempotency_key  TEXT,
    fingerprint      TEXT NOT NULL,
    page             TEXT NOT NULL,
    payload          TEXT NOT NULL,                      -- ActionSubmission, JSON
    state            TEXT NOT NULL CHECK (state IN ('queued', 'processed', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,                   -- unix ms
    first_sent_at    INTEGER,                            -- unix ms
    outcome_unknown  INTEGER NOT NULL DEFAULT 0,
    action_id        INTEGER,
    redirect_url     TEXT,
    field_errors     TEXT NOT NULL DEFAULT '[]',         -- JSON
    last_error       TEXT,
    created_at       INTEGER NOT NULL,                   -- unix ms
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS submissions_caller_key
    ON submissions (caller, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS submissions_fingerprint
    ON submissions (caller, fingerprint, created_at);
CREATE INDEX IF NOT EXISTS submissions_queued_seq
    ON submissions (seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS submissions_queued_next
    ON submissions (next_attempt_at) WHERE state = 'queued';
";

const COLUMNS: &str = "seq, id, caller, idempotency_key, payload, state, attempts, \
     next_attempt_at, first_sent_at, outcome_unknown, action_id, redirect_url, \
     field_errors, last_error, created_at, updated_at";

/// One unit of work for the store's thread; returns what to answer after the commit.
type Job = Box<dyn FnOnce(&mut Db) -> Reply + Send>;
/// Answers the caller, given whether the transaction committed.
type Reply = Box<dyn FnOnce(Result<(), &OutboxError>) + Send>;

/// The embedded SQLite store. Cheap to share (`Arc`); the thread stops when the last
/// handle is dropped, and releases the directory's lock.
pub struct SqliteStore {
    jobs: mpsc::UnboundedSender<Job>,
    depth: Arc<AtomicU64>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The thread's side: the connection and the queue depth it maintains.
struct Db {
    conn: Connection,
    depth: Arc<AtomicU64>,
    /// Change of the queue depth in the open transaction.
    delta: i64,
    /// Remove the directory when the thread stops (temporary stores).
    remove_dir: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating the directory and the schema when missing) the store in `dir`.
    /// `upstream` names the ActionKit instance the submissions are for; `temporary`
    /// removes the directory when the store closes (tests, examples).
    pub async fn open(
        dir: &Path,
        upstream: &str,
        temporary: bool,
    ) -> Result<SqliteStore, OutboxError> {
        let dir = dir.to_path_buf();
        let upstream = upstream.to_owned();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job>();
        let depth = Arc::new(AtomicU64::new(0));
        let thread_depth = depth.clone();
        let thread_dir = dir.clone();
        std::thread::Builder::new()
            .name("outbox-store".into())
            .spawn(move || {
                let opened = open_db(&thread_dir, &upstream, thread_depth);
                match opened {
                    Ok((mut db, lock)) => {
                        if temporary {
                            db.remove_dir = Some(thread_dir);
                        }
                        let _ = ready_tx.send(Ok(()));
                        run(&mut db, jobs_rx);
                        drop(lock);
                        let remove = db.remove_dir.take();
                        drop(db);
                        if let Some(dir) = remove {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| OutboxError::Store(format!("cannot start the store's thread: {e}")))?;
        ready_rx
            .await
            .map_err(|_| OutboxError::Store("the store's thread stopped while opening".into()))??;
        Ok(SqliteStore {
            jobs: jobs_tx,
            depth,
            path: dir,
        })
    }

    /// Runs `f` on the store's thread inside the current batch's transaction and
    /// returns its value once the transaction is committed.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let (tx, rx) = oneshot::channel::<Result<T, OutboxError>>();
        let job: Job = Box::new(move |db: &mut Db| {
            let result = f(db);
            Box::new(move |commit: Result<(), &OutboxError>| {
                let answer = match (result, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e.clone()),
                    (Ok(v), Ok(())) => Ok(v),
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| OutboxError::Store("the store is closed".into()))?;
        rx.await.map_err(|_| {
            OutboxError::Store("the store could not run the operation (see the log)".into())
        })?
    }
}

fn store_err(context: &str, e: impl std::fmt::Display) -> OutboxError {
    OutboxError::Store(format!("{context}: {e}"))
}

/// Creates the directory, takes its lock, opens and migrates the database.
fn open_db(dir: &Path, upstream: &str, depth: Arc<AtomicU64>) -> Result<(Db, File), OutboxError> {
    let shown = dir.display();
    std::fs::create_dir_all(dir)
        .map_err(|e| store_err(&format!("cannot create the data directory {shown}"), e))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            store_err(
                &format!("the data directory {shown} is not writable (cannot open {LOCK_FILE})"),
                e,
            )
        })?;
    let started = Instant::now();
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OutboxError::Store(format!(
                    "the data directory {shown} is in use by another gateway process \
                     (each process needs a data directory of its own)"
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(store_err(
                    &format!("cannot lock {}", lock_path.display()),
                    e,
                ))
            }
        }
    }
    let db_path = dir.join(DB_FILE);
    let shown_db = db_path.display();
    let conn = Connection::open(&db_path)
        .map_err(|e| store_err(&format!("cannot open the submission store {shown_db}"), e))?;
    let bad = |e: rusqlite::Error| {
        store_err(
            &format!("the submission store {shown_db} cannot be used (corrupt, or not a store of this gateway?)"),
            e,
        )
    };
    conn.busy_timeout(Duration::from_secs(5)).map_err(bad)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(bad)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OutboxError::Store(format!(
            "the submission store {shown_db} cannot use WAL mode (journal mode {mode}); \
             put the data directory on a local file system"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL;")
        .map_err(bad)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(bad)?;
    if version > SCHEMA_VERSION {
        return Err(OutboxError::Store(format!(
            "the submission store {shown_db} has schema version {version}, written by a newer \
             gateway; this one knows version {SCHEMA_VERSION}"
        )));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(bad)?;
    if check != "ok" {
        return Err(OutboxError::Store(format!(
            "the submission store {shown_db} is damaged ({check}); move it away and keep it for repair"
        )));
    }
    let tx_err = |e: rusqlite::Error| {
        store_err(
            &format!("cannot write the submission store {shown_db} (read-only or full?)"),
            e,
        )
    };
    conn.execute_batch("BEGIN IMMEDIATE").map_err(tx_err)?;
    let migrated = (|| -> rusqlite::Result<Result<(), OutboxError>> {
        if version < 1 {
            conn.execute_batch(SCHEMA)?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        let queued: i64 = conn.query_row(
            "SELECT count(*) FROM submissions WHERE state = 'queued'",
            [],
            |r| r.get(0),
        )?;
        let stored_upstream: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'upstream'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(stored) = stored_upstream.filter(|s| !upstream.is_empty() && s != upstream) {
            if queued > 0 {
                return Ok(Err(OutboxError::Store(format!(
                    "the data directory {shown} holds {queued} undelivered submission(s) for \
                     another ActionKit ({stored}); start with that instance to deliver them, \
                     or use another data directory"
                ))));
            }
        }
        if !upstream.is_empty() {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('upstream', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![upstream],
            )?;
        }
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('opened_at', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![super::now_ms().to_string()],
        )?;
        depth.store(queued.max(0) as u64, Ordering::Release);
        Ok(Ok(()))
    })();
    match migrated {
        Ok(Ok(())) => conn.execute_batch("COMMIT").map_err(tx_err)?,
        Ok(Err(e)) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(tx_err(e));
        }
    }
    Ok((
        Db {
            conn,
            depth,
            delta: 0,
            remove_dir: None,
        },
        lock,
    ))
}

/// The thread's loop: take every job waiting, run them in one transaction, commit,
/// answer. Stops when every handle is dropped.
fn run(db: &mut Db, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = db.conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "submission store: cannot begin a transaction");
            // Dropping the jobs answers their callers with an error.
            continue;
        }
        db.delta = 0;
        let mut replies = Vec::with_capacity(batch.len());
        let mut rolled_back = false;
        for job in batch {
            if rolled_back {
                // Dropped unanswered: the caller hears an error, nothing was written.
                continue;
            }
            replies.push(job(db));
            if db.conn.is_autocommit() {
                // SQLite rolled the transaction back (disk full, I/O error).
                rolled_back = true;
            }
        }
        let commit = if rolled_back {
            Err(OutboxError::Store(
                "the submission store rolled back a transaction (disk full or I/O error?)".into(),
            ))
        } else {
            db.conn.execute_batch("COMMIT").map_err(|e| {
                let _ = db.conn.execute_batch("ROLLBACK");
                store_err("the submission store could not commit", e)
            })
        };
        match &commit {
            Ok(()) => {
                let now = db.depth.load(Ordering::Acquire) as i64;
                db.depth
                    .store((now + db.delta).max(0) as u64, Ordering::Release);
            }
            Err(e) => tracing::error!(error = %e, "submission store"),
        }
        for reply in replies {
            reply(commit.as_ref().map(|_| ()));
        }
    }
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<StoredSubmission> {
    let payload: String = r.get(4)?;
    let state: String = r.get(5)?;
    let errors: String = r.get(12)?;
    let conv = |i: usize, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let field_errors: Vec<StoredFieldError> =
        serde_json::from_str(&errors).map_err(|e| conv(12, e))?;
    Ok(StoredSubmission {
        seq: r.get(0)?,
        id: r.get(1)?,
        caller: r.get(2)?,
        idempotency_key: r.get(3)?,
        submission: serde_json::from_str(&payload).map_err(|e| conv(4, e))?,
        state: match state.as_str() {
            "processed" => SubmissionState::Processed,
            "failed" => SubmissionState::Failed,
            _ => SubmissionState::Queued,
        },
        attempts: r.get::<_, i64>(6)?.clamp(0, u32::MAX as i64) as u32,
        next_attempt_at_ms: r.get(7)?,
        first_sent_at_ms: r.get(8)?,
        outcome_unknown: r.get::<_, i64>(9)? != 0,
        action_id: r
            .get::<_, Option<i64>>(10)?
            .map(|id| ActionId(id.max(0) as u64)),
        redirect_url: r.get(11)?,
        field_errors: field_errors.into_iter().map(FieldError::from).collect(),
        last_error: r.get(13)?,
        created_at_ms: r.get(14)?,
        updated_at_ms: r.get(15)?,
    })
}

fn sql_err(e: rusqlite::Error) -> OutboxError {
    store_err("the submission store failed", e)
}

impl Db {
    fn get(&self, id: &str) -> Result<Option<StoredSubmission>, OutboxError> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM submissions WHERE id = ?1"))
            .and_then(|mut st| st.query_row(params![id], read_row).optional())
            .map_err(sql_err)
    }

    fn must_get(&self, id: &str) -> Result<StoredSubmission, OutboxError> {
        self.get(id)?
            .ok_or_else(|| OutboxError::Store(format!("submission {id} is not in the store")))
    }

    fn insert(&mut self, new: NewSubmission) -> Result<Inserted, OutboxError> {
        if let Some(key) = &new.idempotency_key {
            let earlier = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM submissions WHERE caller = ?1 AND idempotency_key = ?2"
                ))
                .and_then(|mut st| st.query_row(params![new.caller, key], read_row).optional())
                .map_err(sql_err)?;
            if let Some(earlier) = earlier {
                return Ok(Inserted::Duplicate(earlier));
            }
        } else if let Some(since) = new.duplicate_since_ms {
            let earlier = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM submissions
                     WHERE caller = ?1 AND fingerprint = ?2 AND created_at >= ?3
                       AND idempotency_key IS NULL
                     ORDER BY seq DESC LIMIT 1"
                ))
                .and_then(|mut st| {
                    st.query_row(params![new.caller, new.fingerprint, since], read_row)
                        .optional()
                })
                .map_err(sql_err)?;
            if let Some(earlier) = earlier {
                return Ok(Inserted::Duplicate(earlier));
            }
        }
        let payload = serde_json::to_string(&new.submission)
            .map_err(|e| store_err("cannot encode the submission", e))?;
        let now = new.created_at_ms;
        let (next, first_sent, unknown, attempts) = match new.sending_until_ms {
            Some(until) => (until, Some(now), 1, 1),
            None => (now, None, 0, 0),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO submissions (id, caller, idempotency_key, fingerprint, page, payload,
                     state, attempts, next_attempt_at, first_sent_at, outcome_unknown,
                     created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10, ?11, ?11)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    new.id,
                    new.caller,
                    new.idempotency_key,
                    new.fingerprint,
                    new.submission.page,
                    payload,
                    attempts,
                    next,
                    first_sent,
                    unknown,
                    now
                ])
            })
            .map_err(sql_err)?;
        self.delta += 1;
        Ok(Inserted::New(self.must_get(&new.id)?))
    }

    fn mark_sending(
        &mut self,
        id: &str,
        now: i64,
        retry_at: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        self.conn
            .prepare_cached(
                "UPDATE submissions SET outcome_unknown = 1, attempts = attempts + 1,
                     first_sent_at = coalesce(first_sent_at, ?2), next_attempt_at = ?3,
                     updated_at = ?2
                 WHERE id = ?1 AND state = 'queued'",
            )
            .and_then(|mut st| st.execute(params![id, now, retry_at]))
            .map_err(sql_err)?;
        self.must_get(id)
    }

    fn resolve(
        &mut self,
        id: &str,
        resolution: Resolution,
        now: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        let changed = match resolution {
            Resolution::Processed {
                action_id,
                redirect_url,
            } => self
                .conn
                .prepare_cached(
                    "UPDATE submissions SET state = 'processed', outcome_unknown = 0,
                         action_id = ?2, redirect_url = ?3, last_error = NULL, updated_at = ?4
                     WHERE id = ?1 AND state = 'queued'",
                )
                .and_then(|mut st| st.execute(params![id, action_id.0 as i64, redirect_url, now])),
            Resolution::Failed { field_errors } => {
                let errors: Vec<StoredFieldError> =
                    field_errors.iter().map(StoredFieldError::from).collect();
                let json = serde_json::to_string(&errors)
                    .map_err(|e| store_err("cannot encode field errors", e))?;
                self.conn
                    .prepare_cached(
                        "UPDATE submissions SET state = 'failed', outcome_unknown = 0,
                             field_errors = ?2, last_error = 'bad_request', updated_at = ?3
                         WHERE id = ?1 AND state = 'queued'",
                    )
                    .and_then(|mut st| st.execute(params![id, json, now]))
            }
            Resolution::Retry {
                outcome_unknown,
                next_attempt_at_ms,
                error,
            } => self
                .conn
                .prepare_cached(
                    "UPDATE submissions SET outcome_unknown = ?2, next_attempt_at = ?3,
                         last_error = ?4, updated_at = ?5
                     WHERE id = ?1 AND state = 'queued'",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        id,
                        outcome_unknown as i64,
                        next_attempt_at_ms,
                        error,
                        now
                    ])
                })
                .map(|_| 0),
        }
        .map_err(sql_err)?;
        if changed > 0 {
            // Processed or failed: it left the queue.
            self.delta -= 1;
        }
        self.must_get(id)
    }

    fn due(
        &self,
        now: i64,
        limit: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<StoredSubmission>, OutboxError> {
        let take = (limit + skip.len()) as i64;
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM submissions
                 WHERE state = 'queued' AND next_attempt_at <= ?1
                 ORDER BY seq LIMIT ?2"
            ))
            .and_then(|mut st| {
                st.query_map(params![now, take], read_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sql_err)?;
        Ok(rows
            .into_iter()
            .filter(|s| !skip.contains(&s.id))
            .take(limit)
            .collect())
    }

    fn next_attempt_at(&self, skip: &HashSet<String>) -> Result<Option<i64>, OutboxError> {
        let take = (skip.len() + 1) as i64;
        let rows = self
            .conn
            .prepare_cached(
                "SELECT id, next_attempt_at FROM submissions WHERE state = 'queued'
                 ORDER BY next_attempt_at LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map(params![take], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sql_err)?;
        Ok(rows
            .into_iter()
            .find(|(id, _)| !skip.contains(id))
            .map(|(_, at)| at))
    }
}

#[async_trait::async_trait]
impl SubmissionStore for SqliteStore {
    async fn insert(&self, new: NewSubmission) -> Result<Inserted, OutboxError> {
        self.call(move |db| db.insert(new)).await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredSubmission>, OutboxError> {
        let id = id.to_owned();
        self.call(move |db| db.get(&id)).await
    }

    async fn mark_sending(
        &self,
        id: &str,
        now_ms: i64,
        retry_at_ms: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        let id = id.to_owned();
        self.call(move |db| db.mark_sending(&id, now_ms, retry_at_ms))
            .await
    }

    async fn resolve(
        &self,
        id: &str,
        resolution: Resolution,
        now_ms: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        let id = id.to_owned();
        self.call(move |db| db.resolve(&id, resolution, now_ms))
            .await
    }

    async fn due(
        &self,
        now_ms: i64,
        limit: usize,
        skip: Vec<String>,
    ) -> Result<Vec<StoredSubmission>, OutboxError> {
        let skip: HashSet<String> = skip.into_iter().collect();
        self.call(move |db| db.due(now_ms, limit, &skip)).await
    }

    async fn next_attempt_at(&self, skip: Vec<String>) -> Result<Option<i64>, OutboxError> {
        let skip: HashSet<String> = skip.into_iter().collect();
        self.call(move |db| db.next_attempt_at(&skip)).await
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, OutboxError> {
        self.call(move |db| {
            db.conn
                .execute(
                    "DELETE FROM submissions WHERE state != 'queued' AND created_at < ?1",
                    params![before_ms],
                )
                .map(|n| n as u64)
                .map_err(sql_err)
        })
        .await
    }

    fn queue_depth(&self) -> u64 {
        self.depth.load(Ordering::Acquire)
    }

    async fn check(&self) -> Result<(), OutboxError> {
        self.call(|db| {
            db.conn
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('checked_at', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![super::now_ms().to_string()],
                )
                .map(|_| ())
                .map_err(sql_err)
        })
        .await
    }
}
