//! The submission queue in Redis, shared by every replica, and the store the outbox
//! uses with Redis configured: Redis first, the replica's embedded SQLite store when
//! Redis cannot be reached.
//!
//! # Keys (under `<prefix>:ob:`)
//!
//! | key | what |
//! |---|---|
//! | `s:<id>` | hash: one submission (its input as JSON, its delivery state, its `owner`) |
//! | `due` | sorted set: the ids of queued submissions, scored by when they are due (ms) |
//! | `done` | sorted set: processed and failed ids, scored by arrival (for pruning) |
//! | `seq` | counter: order of arrival |
//! | `idem:<sha256(caller, key)>` | the id stored under an idempotency key |
//! | `fp:<fingerprint>` | the latest id without a key for this caller and input |
//! | `upstream` | the ActionKit instance the queue is for |
//!
//! Every change is one Lua script, so the duplicate check and the insert, or the
//! check of a lease and a send, are atomic across replicas.
//!
//! # Leases: who delivers what
//!
//! A replica's worker *claims* due submissions: one script takes the oldest due ids,
//! re-scores them `lease` (the outbox's `unknown_settle`) ahead and writes its own id
//! in their `owner`. Before a send, `mark_sending` checks the lease (the claimer's, or
//! one that expired and nobody else took) and re-scores the submission to the retry
//! time, in flight, *outcome unknown*; the answer resolves it. A replica that dies
//! leaves its submissions due again when the lease or the retry time passes, and
//! whoever claims one whose outcome is unknown looks for the action before sending it
//! again (the outbox's rule, `outbox/deliver.rs`): exactly once across replicas, with
//! the outbox's one documented gap.
//!
//! # Redis unreachable
//!
//! New submissions go to the replica's embedded store and its own worker delivers
//! them (no other replica sees them: they are exactly-once by the embedded store's
//! rules). An idempotency key used once while Redis was down and again after it came
//! back is checked against Redis only: the one case where a retried submission can
//! become two actions. A command that was sent and not answered (Redis died mid-way)
//! is an error for that submission (the caller retries), never a silent second copy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Failure, Redis};
use crate::actionkit::ActionId;
use crate::outbox::store::StoredFieldError;
use crate::outbox::{
    Inserted, NewSubmission, OutboxError, Resolution, StoredSubmission, SubmissionState,
    SubmissionStore,
};

const INSERT: &str = r"
local P = ARGV[1]
local id, caller, idem, idem_hash, fp, payload = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local created, dup_since, sending_until, owner = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
if idem_hash ~= '' then
  local e = redis.call('GET', P .. ':ob:idem:' .. idem_hash)
  if e and redis.call('EXISTS', P .. ':ob:s:' .. e) == 1 then return {0, e} end
elseif dup_since ~= '' then
  local e = redis.call('GET', P .. ':ob:fp:' .. fp)
  if e then
    local c = redis.call('HGET', P .. ':ob:s:' .. e, 'created')
    if c and tonumber(c) >= tonumber(dup_since) then return {0, e} end
  end
end
local seq = redis.call('INCR', P .. ':ob:seq')
local next_at, first_sent, unknown, attempts = created, '', '0', '0'
if sending_until ~= '' then
  next_at, first_sent, unknown, attempts = sending_until, created, '1', '1'
end
redis.call('HSET', P .. ':ob:s:' .. id, 'seq', seq, 'id', id, 'caller', caller,
  'idem', idem, 'idem_hash', idem_hash, 'fp', fp, 'payload', payload, 'state', 'queued',
  'attempts', attempts, 'next_at', next_at, 'first_sent', first_sent, 'unknown', unknown,
  'action_id', '', 'redirect', '', 'field_errors', '', 'last_error', '',
  'created', created, 'updated', created, 'owner', owner)
redis.call('ZADD', P .. ':ob:due', next_at, id)
if idem_hash ~= '' then
  redis.call('SET', P .. ':ob:idem:' .. idem_hash, id)
else
  redis.call('SET', P .. ':ob:fp:' .. fp, id)
end
return {1, id}
";

const CLAIM: &str = r"
local P, now, limit, lease_until, owner = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local skip = {}
for i = 6, #ARGV do skip[ARGV[i]] = true end
local ids = redis.call('ZRANGEBYSCORE', P .. ':ob:due', '-inf', now, 'LIMIT', 0, limit * 4 + #ARGV)
local rows = {}
for _, id in ipairs(ids) do
  if not skip[id] then
    local seq = redis.call('HGET', P .. ':ob:s:' .. id, 'seq')
    if seq then
      table.insert(rows, {tonumber(seq), id})
    else
      redis.call('ZREM', P .. ':ob:due', id)
    end
  end
end
table.sort(rows, function(a, b) return a[1] < b[1] end)
local out = {}
for i = 1, math.min(#rows, limit) do
  local id = rows[i][2]
  redis.call('ZADD', P .. ':ob:due', lease_until, id)
  redis.call('HSET', P .. ':ob:s:' .. id, 'next_at', lease_until, 'owner', owner)
  table.insert(out, id)
end
return out
";

const MARK_SENDING: &str = r"
local P, id, now, retry_at, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local k = P .. ':ob:s:' .. id
local st = redis.call('HMGET', k, 'state', 'owner', 'next_at', 'first_sent')
if not st[1] then return -1 end
if st[1] ~= 'queued' then return 0 end
if st[2] and st[2] ~= '' and st[2] ~= owner and tonumber(st[3]) > tonumber(now) then
  return -2
end
local first = st[4]
if not first or first == '' then first = now end
redis.call('HSET', k, 'unknown', '1', 'first_sent', first, 'next_at', retry_at,
  'updated', now, 'owner', owner)
redis.call('HINCRBY', k, 'attempts', 1)
redis.call('ZADD', P .. ':ob:due', retry_at, id)
return 1
";

const RESOLVE: &str = r"
local P, id, kind, now, a, b, c, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local k = P .. ':ob:s:' .. id
local st = redis.call('HMGET', k, 'state', 'owner', 'created')
if not st[1] then return -1 end
if st[1] ~= 'queued' then return 0 end
if kind == 'processed' then
  redis.call('HSET', k, 'state', 'processed', 'unknown', '0', 'action_id', a, 'redirect', b,
    'last_error', '', 'updated', now, 'owner', '')
elseif kind == 'failed' then
  redis.call('HSET', k, 'state', 'failed', 'unknown', '0', 'field_errors', a,
    'last_error', 'bad_request', 'updated', now, 'owner', '')
else
  if st[2] and st[2] ~= '' and st[2] ~= owner then return 0 end
  redis.call('HSET', k, 'unknown', a, 'next_at', b, 'last_error', c, 'updated', now, 'owner', '')
  redis.call('ZADD', P .. ':ob:due', b, id)
  return 1
end
redis.call('ZREM', P .. ':ob:due', id)
redis.call('ZADD', P .. ':ob:done', st[3], id)
return 1
";

const PRUNE: &str = r"
local P, before = ARGV[1], ARGV[2]
local ids = redis.call('ZRANGEBYSCORE', P .. ':ob:done', '-inf', '(' .. before, 'LIMIT', 0, 500)
for _, id in ipairs(ids) do
  local k = P .. ':ob:s:' .. id
  local h = redis.call('HMGET', k, 'idem_hash', 'fp')
  if h[1] and h[1] ~= '' and redis.call('GET', P .. ':ob:idem:' .. h[1]) == id then
    redis.call('DEL', P .. ':ob:idem:' .. h[1])
  end
  if h[2] and h[2] ~= '' and redis.call('GET', P .. ':ob:fp:' .. h[2]) == id then
    redis.call('DEL', P .. ':ob:fp:' .. h[2])
  end
  redis.call('DEL', k)
  redis.call('ZREM', P .. ':ob:done', id)
end
return #ids
";

fn failed(what: &str, f: Failure) -> OutboxError {
    OutboxError::Store(match f {
        Failure::NotSent => format!("{what}: the shared store (Redis) is unreachable"),
        Failure::Unknown => format!("{what}: the shared store (Redis) did not answer"),
        Failure::Refused => format!("{what}: the shared store (Redis) refused the command"),
    })
}

/// The submission queue in Redis (see the module's documentation).
pub struct RedisStore {
    redis: Redis,
    /// This process, as the `owner` of its claims.
    owner: String,
    /// How long a claim lasts before another replica may take the submission.
    lease: Duration,
    depth: AtomicU64,
    insert: redis::Script,
    claim: redis::Script,
    mark_sending: redis::Script,
    resolve: redis::Script,
    prune: redis::Script,
}

impl RedisStore {
    /// The queue for `upstream` (an ActionKit URL, or `sandbox`): refuses a queue that
    /// still holds submissions for another instance, as the embedded store does.
    pub async fn open(
        redis: Redis,
        upstream: &str,
        lease: Duration,
    ) -> Result<RedisStore, OutboxError> {
        let store = RedisStore {
            owner: crate::outbox::new_id(),
            lease: lease.max(Duration::from_millis(100)),
            depth: AtomicU64::new(0),
            insert: redis::Script::new(INSERT),
            claim: redis::Script::new(CLAIM),
            mark_sending: redis::Script::new(MARK_SENDING),
            resolve: redis::Script::new(RESOLVE),
            prune: redis::Script::new(PRUNE),
            redis,
        };
        if !upstream.is_empty() && store.redis.is_up() {
            let key = store.redis.key("ob:upstream");
            let due = store.redis.key("ob:due");
            let name = upstream.to_owned();
            let (set, earlier, queued) = store
                .redis
                .run("outbox_open", |mut c| async move {
                    redis::pipe()
                        .cmd("SET")
                        .arg(&key)
                        .arg(&name)
                        .arg("NX")
                        .cmd("GET")
                        .arg(&key)
                        .cmd("ZCARD")
                        .arg(&due)
                        .query_async::<(Option<String>, Option<String>, u64)>(&mut c)
                        .await
                })
                .await
                .map_err(|f| failed("opening the queue", f))?;
            let _ = set;
            if earlier.as_deref() != Some(upstream) {
                if queued > 0 {
                    return Err(OutboxError::Store(format!(
                        "the shared queue (Redis, prefix {:?}) holds {queued} undelivered submissions for another ActionKit instance; deliver them first, or use another redis.key_prefix",
                        store.redis.prefix()
                    )));
                }
                let (key, name) = (store.redis.key("ob:upstream"), upstream.to_owned());
                let _ = store
                    .redis
                    .run("outbox_open", |mut c| async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(name)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await;
            }
            store.refresh_depth().await;
        }
        tracing::info!(replica = %store.owner, queued = store.depth.load(Ordering::Acquire), "outbox: shared queue in Redis");
        Ok(store)
    }

    async fn refresh_depth(&self) {
        let due = self.redis.key("ob:due");
        if let Ok(n) = self
            .redis
            .run("outbox_depth", |mut c| async move {
                redis::cmd("ZCARD")
                    .arg(due)
                    .query_async::<u64>(&mut c)
                    .await
            })
            .await
        {
            self.depth.store(n, Ordering::Release);
        }
    }

    async fn insert(&self, new: &NewSubmission) -> Result<Inserted, Failure> {
        let payload = serde_json::to_string(&new.submission).map_err(|_| Failure::Refused)?;
        let idem_hash = new
            .idempotency_key
            .as_ref()
            .map(|k| {
                use sha2::{Digest, Sha256};
                let mut h = Sha256::new();
                h.update(new.caller.as_bytes());
                h.update([0u8]);
                h.update(k.as_bytes());
                h.finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            })
            .unwrap_or_default();
        let args: Vec<String> = vec![
            self.redis.prefix().to_owned(),
            new.id.clone(),
            new.caller.clone(),
            new.idempotency_key.clone().unwrap_or_default(),
            idem_hash,
            new.fingerprint.clone(),
            payload,
            new.created_at_ms.to_string(),
            new.duplicate_since_ms
                .map(|t| t.to_string())
                .unwrap_or_default(),
            new.sending_until_ms
                .map(|t| t.to_string())
                .unwrap_or_default(),
            self.owner.clone(),
        ];
        let (fresh, id): (i64, String) = self
            .redis
            .invoke("outbox_insert", &self.insert.arg(args))
            .await?;
        let stored = self.fetch(&id).await?.ok_or(Failure::Refused)?;
        if fresh == 1 {
            self.depth.fetch_add(1, Ordering::AcqRel);
            Ok(Inserted::New(stored))
        } else {
            Ok(Inserted::Duplicate(stored))
        }
    }

    async fn fetch(&self, id: &str) -> Result<Option<StoredSubmission>, Failure> {
        let key = self.redis.key(&format!("ob:s:{id}"));
        let map = self
            .redis
            .run("outbox_get", |mut c| async move {
                redis::cmd("HGETALL")
                    .arg(key)
                    .query_async::<HashMap<String, String>>(&mut c)
                    .await
            })
            .await?;
        if map.is_empty() {
            return Ok(None);
        }
        parse(&map).map(Some).ok_or(Failure::Refused)
    }

    async fn fetch_many(&self, ids: &[String]) -> Result<Vec<StoredSubmission>, Failure> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.redis.key(&format!("ob:s:{id}")))
            .collect();
        let maps = self
            .redis
            .run("outbox_get", |mut c| async move {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("HGETALL").arg(k);
                }
                pipe.query_async::<Vec<HashMap<String, String>>>(&mut c)
                    .await
            })
            .await?;
        Ok(maps.iter().filter_map(parse).collect())
    }

    async fn claim(
        &self,
        now_ms: i64,
        limit: usize,
        skip: &[String],
    ) -> Result<Vec<StoredSubmission>, Failure> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut args: Vec<String> = vec![
            self.redis.prefix().to_owned(),
            now_ms.to_string(),
            limit.to_string(),
            (now_ms + self.lease.as_millis() as i64).to_string(),
            self.owner.clone(),
        ];
        args.extend(skip.iter().cloned());
        let ids: Vec<String> = self
            .redis
            .invoke("outbox_claim", &self.claim.arg(args))
            .await?;
        let mut rows = self.fetch_many(&ids).await?;
        rows.sort_by_key(|s| s.seq);
        Ok(rows)
    }

    async fn mark_sending(
        &self,
        id: &str,
        now_ms: i64,
        retry_at_ms: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        let args = vec![
            self.redis.prefix().to_owned(),
            id.to_owned(),
            now_ms.to_string(),
            retry_at_ms.to_string(),
            self.owner.clone(),
        ];
        let r = self
            .redis
            .invoke::<i64>("outbox_mark_sending", &self.mark_sending.arg(args))
            .await
            .map_err(|f| failed("marking a send", f))?;
        if r == -2 {
            // Another replica took it over after this one's claim expired: it sends.
            return Err(OutboxError::Store(
                "another replica is delivering this submission".into(),
            ));
        }
        self.fetch(id)
            .await
            .map_err(|f| failed("reading a submission", f))?
            .ok_or_else(|| OutboxError::Store("the submission is gone".into()))
    }

    async fn resolve(
        &self,
        id: &str,
        resolution: Resolution,
        now_ms: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        let (kind, a, b, c) = match resolution {
            Resolution::Processed {
                action_id,
                redirect_url,
            } => (
                "processed",
                action_id.0.to_string(),
                redirect_url.unwrap_or_default(),
                String::new(),
            ),
            Resolution::Failed { field_errors } => {
                let errors: Vec<StoredFieldError> =
                    field_errors.iter().map(StoredFieldError::from).collect();
                let json = serde_json::to_string(&errors)
                    .map_err(|_| OutboxError::Store("cannot encode field errors".into()))?;
                ("failed", json, String::new(), String::new())
            }
            Resolution::Retry {
                outcome_unknown,
                next_attempt_at_ms,
                error,
            } => (
                "retry",
                if outcome_unknown { "1" } else { "0" }.to_owned(),
                next_attempt_at_ms.to_string(),
                error,
            ),
        };
        let args = vec![
            self.redis.prefix().to_owned(),
            id.to_owned(),
            kind.to_owned(),
            now_ms.to_string(),
            a,
            b,
            c,
            self.owner.clone(),
        ];
        let r = self
            .redis
            .invoke::<i64>("outbox_resolve", &self.resolve.arg(args))
            .await
            .map_err(|f| failed("recording a delivery", f))?;
        if r == 1 && kind != "retry" {
            let _ = self
                .depth
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    Some(d.saturating_sub(1))
                });
        }
        self.fetch(id)
            .await
            .map_err(|f| failed("reading a submission", f))?
            .ok_or_else(|| OutboxError::Store("the submission is gone".into()))
    }

    async fn next_attempt_at(&self, skip: &[String]) -> Result<Option<i64>, Failure> {
        let due = self.redis.key("ob:due");
        let take = skip.len() as i64;
        let rows = self
            .redis
            .run("outbox_next", |mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(due)
                    .arg(0)
                    .arg(take)
                    .arg("WITHSCORES")
                    .query_async::<Vec<(String, f64)>>(&mut c)
                    .await
            })
            .await?;
        Ok(rows
            .into_iter()
            .find(|(id, _)| !skip.contains(id))
            .map(|(_, at)| at as i64))
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, Failure> {
        let mut total = 0;
        loop {
            let args = vec![self.redis.prefix().to_owned(), before_ms.to_string()];
            let n = self
                .redis
                .invoke::<i64>("outbox_prune", &self.prune.arg(args))
                .await?;
            total += n.max(0) as u64;
            if n < 500 {
                return Ok(total);
            }
        }
    }
}

/// A stored hash as a submission; `None` when a field is missing or malformed.
fn parse(h: &HashMap<String, String>) -> Option<StoredSubmission> {
    let text = |k: &str| h.get(k).map(String::as_str).unwrap_or("");
    let opt = |k: &str| Some(text(k)).filter(|v| !v.is_empty()).map(str::to_owned);
    let num = |k: &str| text(k).parse::<i64>().ok();
    let state = match text("state") {
        "queued" => SubmissionState::Queued,
        "processed" => SubmissionState::Processed,
        "failed" => SubmissionState::Failed,
        _ => return None,
    };
    let field_errors = match text("field_errors") {
        "" => Vec::new(),
        json => serde_json::from_str::<Vec<StoredFieldError>>(json)
            .ok()?
            .into_iter()
            .map(Into::into)
            .collect(),
    };
    Some(StoredSubmission {
        seq: num("seq")?,
        id: opt("id")?,
        caller: text("caller").to_owned(),
        idempotency_key: opt("idem"),
        submission: serde_json::from_str(text("payload")).ok()?,
        state,
        attempts: u32::try_from(num("attempts")?).ok()?,
        next_attempt_at_ms: num("next_at")?,
        first_sent_at_ms: num("first_sent"),
        outcome_unknown: text("unknown") == "1",
        action_id: text("action_id").parse::<u64>().ok().map(ActionId),
        redirect_url: opt("redirect"),
        field_errors,
        last_error: opt("last_error"),
        created_at_ms: num("created")?,
        updated_at_ms: num("updated")?,
    })
}

/// With Redis configured, the outbox's store: the shared queue in Redis, and this
/// replica's embedded store for what it accepts while Redis cannot be reached (see
/// the module's documentation).
pub struct FallbackStore {
    remote: RedisStore,
    local: Arc<dyn SubmissionStore>,
}

impl FallbackStore {
    pub fn new(remote: RedisStore, local: Arc<dyn SubmissionStore>) -> FallbackStore {
        FallbackStore { remote, local }
    }

    /// Whether `id` lives in the embedded store.
    async fn is_local(&self, id: &str) -> Result<bool, OutboxError> {
        Ok(self.local.get(id).await?.is_some())
    }
}

#[async_trait::async_trait]
impl SubmissionStore for FallbackStore {
    async fn insert(&self, new: NewSubmission) -> Result<Inserted, OutboxError> {
        match self.remote.insert(&new).await {
            Ok(inserted) => return Ok(inserted),
            Err(Failure::NotSent) => {}
            Err(f) => return Err(failed("storing a submission", f)),
        }
        metrics::counter!("gateway_outbox_local_fallback_total").increment(1);
        self.local.insert(new).await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredSubmission>, OutboxError> {
        if let Some(s) = self.local.get(id).await? {
            return Ok(Some(s));
        }
        self.remote
            .fetch(id)
            .await
            .map_err(|f| failed("reading a submission", f))
    }

    async fn mark_sending(
        &self,
        id: &str,
        now_ms: i64,
        retry_at_ms: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        if self.is_local(id).await? {
            return self.local.mark_sending(id, now_ms, retry_at_ms).await;
        }
        self.remote.mark_sending(id, now_ms, retry_at_ms).await
    }

    async fn resolve(
        &self,
        id: &str,
        resolution: Resolution,
        now_ms: i64,
    ) -> Result<StoredSubmission, OutboxError> {
        if self.is_local(id).await? {
            return self.local.resolve(id, resolution, now_ms).await;
        }
        self.remote.resolve(id, resolution, now_ms).await
    }

    async fn due(
        &self,
        now_ms: i64,
        limit: usize,
        skip: Vec<String>,
    ) -> Result<Vec<StoredSubmission>, OutboxError> {
        let mut out = self.local.due(now_ms, limit, skip.clone()).await?;
        if out.len() < limit {
            // Unreachable: this replica delivers its own store meanwhile.
            if let Ok(claimed) = self.remote.claim(now_ms, limit - out.len(), &skip).await {
                out.extend(claimed);
            }
            self.remote.refresh_depth().await;
        }
        Ok(out)
    }

    async fn next_attempt_at(&self, skip: Vec<String>) -> Result<Option<i64>, OutboxError> {
        let local = self.local.next_attempt_at(skip.clone()).await?;
        let remote = self.remote.next_attempt_at(&skip).await.ok().flatten();
        Ok(match (local, remote) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, OutboxError> {
        let local = self.local.prune(before_ms).await?;
        let remote = self.remote.prune(before_ms).await.unwrap_or(0);
        Ok(local + remote)
    }

    fn queue_depth(&self) -> u64 {
        self.local.queue_depth() + self.remote.depth.load(Ordering::Acquire)
    }

    async fn check(&self) -> Result<(), OutboxError> {
        // Redis' health is reported apart (`gateway_redis_up`, `/readyz`): without it
        // the replica still takes submissions into its own store.
        self.local.check().await
    }
}
