//! Taking actions: `Mutation.submitAction` and `Query.submission`.
//!
//! A submission goes through, in order: the caller's right to submit to the page (a
//! `FORBIDDEN` error: scopes, the key's page list, a `self` key's own member), the
//! limits for public submitters (`RATE_LIMITED`, per client address and per page),
//! the input checks of [`submit_input`](super::submit_input), the custom fields the
//! page accepts, and the page's own required fields (cached: refused input costs no
//! upstream call once the page's form is known). Anything refused so far is answered
//! as `fieldErrors` with status `FAILED`, nothing stored and nothing sent. What passes
//! goes to the [`Outbox`], which stores it before it answers `PROCESSED` or `QUEUED`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::{Context, Enum, ErrorExtensions, Object, SimpleObject, ID};
use secrecy::{ExposeSecret, SecretString};

use super::access;
use super::error::{ErrorCode, GatewayError, GqlResult};
use super::loaders::Loaders;
use super::submit_input::{self, Code, Problem, SubmitActionInput};
use super::types::ActionNode;
use crate::actionkit::{Action, ActionId, Client, PageForm};
use crate::config::SubmitConfig;
use crate::outbox::{self, Outbox, SubmissionRecord, SubmissionState};

/// Where a submission stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SubmissionStatus {
    /// ActionKit took it: the action exists.
    Processed,
    /// Stored by the gateway, not yet taken by ActionKit (busy, slow or down); it will
    /// be delivered, exactly once. Ask `submission(id)` later.
    Queued,
    /// Refused: `fieldErrors` say why. Nothing will be sent (again).
    Failed,
}

impl From<SubmissionState> for SubmissionStatus {
    fn from(s: SubmissionState) -> Self {
        match s {
            SubmissionState::Processed => SubmissionStatus::Processed,
            SubmissionState::Queued => SubmissionStatus::Queued,
            SubmissionState::Failed => SubmissionStatus::Failed,
        }
    }
}

/// Why one input field was refused, for a form to show next to that input.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub(super) struct FieldError {
    /// The input field: `email`, `firstName`, `zip`, `page`, ..., or `user_<name>` /
    /// `action_<name>` for custom fields; empty when ActionKit refused the submission
    /// as a whole.
    pub field: String,
    /// A stable code: `REQUIRED`, `INVALID_EMAIL`, `INVALID_ZIP`, `INVALID_PHONE`,
    /// `INVALID_AKID`, `INVALID_NAME`, `INVALID`, `TOO_LONG`, `TOO_MANY`,
    /// `CONTROL_CHARACTERS`, `UNSUPPORTED_CHARACTERS`, `UNKNOWN_FIELD`, `NOT_FOUND`
    /// (the page); for refusals by ActionKit itself, `REQUIRED`, `INVALID` or
    /// `REFUSED` (the submission as a whole).
    pub code: String,
    /// A message for people, in English.
    pub message: String,
}

impl From<Problem> for FieldError {
    fn from(p: Problem) -> Self {
        FieldError {
            field: p.field,
            code: p.code.as_str().to_owned(),
            message: p.message,
        }
    }
}

impl From<&outbox::FieldError> for FieldError {
    fn from(e: &outbox::FieldError) -> Self {
        FieldError {
            field: submit_input::graphql_field_name(&e.field),
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }
}

/// Loads the action a submission created. Its owner is not checked against the
/// caller: the caller made it. What hangs off it about the member (`user`) is
/// checked field by field (`access::check_user`): a `submit` key gets nothing back
/// about the member beyond what it sent.
async fn created_action(
    ctx: &Context<'_>,
    id: Option<ActionId>,
    known: Option<&Arc<Action>>,
) -> GqlResult<Option<ActionNode>> {
    if let Some(action) = known {
        return Ok(Some(ActionNode::new(action.clone())));
    }
    let Some(id) = id else { return Ok(None) };
    let loaders = ctx.data_unchecked::<Loaders>();
    let action = loaders.action(id).await.map_err(GatewayError::from)?;
    Ok(action.map(ActionNode::new))
}

/// The answer to `submitAction`.
pub(super) struct SubmitActionPayload {
    status: SubmissionStatus,
    submission_id: String,
    action_id: Option<ActionId>,
    /// The action as ActionKit answered this very call, when it did (saves a read).
    action: Option<Arc<Action>>,
    redirect_url: Option<String>,
    field_errors: Vec<FieldError>,
}

impl SubmitActionPayload {
    fn refused(problems: Vec<Problem>) -> Self {
        SubmitActionPayload {
            status: SubmissionStatus::Failed,
            submission_id: String::new(),
            action_id: None,
            action: None,
            redirect_url: None,
            field_errors: problems.into_iter().map(FieldError::from).collect(),
        }
    }

    fn from_record(r: SubmissionRecord) -> Self {
        let processed = r.state == SubmissionState::Processed;
        SubmitActionPayload {
            status: r.state.into(),
            submission_id: r.id.clone(),
            action_id: r.action_id.filter(|_| processed),
            action: r
                .action
                .clone()
                .filter(|a| processed && Some(a.id) == r.action_id)
                .map(Arc::new),
            redirect_url: r.redirect_url.clone(),
            field_errors: r.field_errors.iter().map(FieldError::from).collect(),
        }
    }
}

/// The answer to `submitAction`: where the submission stands, the action once it
/// exists, and the field errors of refused input.
#[Object]
impl SubmitActionPayload {
    /// `PROCESSED` (the action exists), `QUEUED` (stored; it will be delivered) or
    /// `FAILED` (see `fieldErrors`).
    async fn status(&self) -> SubmissionStatus {
        self.status
    }
    /// The submission's id, for `submission(id)`. Empty when the gateway refused the
    /// input before storing anything (status `FAILED`, `fieldErrors` say why).
    async fn submission_id(&self) -> ID {
        ID(self.submission_id.clone())
    }
    /// The action created, typed by its page's type, when `PROCESSED`. A `submit` key
    /// may not read its `user` (member data).
    async fn action(&self, ctx: &Context<'_>) -> GqlResult<Option<ActionNode>> {
        created_action(ctx, self.action_id, self.action.as_ref()).await
    }
    /// Where the page sends the member next (its thank-you page), when ActionKit says.
    async fn redirect_url(&self) -> Option<&str> {
        self.redirect_url.as_deref()
    }
    /// Why the submission was refused, one entry per input field; empty unless
    /// `FAILED`.
    async fn field_errors(&self) -> &[FieldError] {
        &self.field_errors
    }
}

/// A stored submission: where it stands.
pub(super) struct Submission(SubmissionRecord);

/// A submission stored by the gateway: where it stands.
#[Object]
impl Submission {
    /// The submission's id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// `PROCESSED`, `QUEUED` or `FAILED`.
    async fn status(&self) -> SubmissionStatus {
        self.0.state.into()
    }
    /// The page's short name.
    async fn page(&self) -> &str {
        &self.0.page
    }
    /// The action created, typed by its page's type, once `PROCESSED`. A `submit` key
    /// may not read its `user` (member data).
    async fn action(&self, ctx: &Context<'_>) -> GqlResult<Option<ActionNode>> {
        let id = self
            .0
            .action_id
            .filter(|_| self.0.state == SubmissionState::Processed);
        created_action(ctx, id, None).await
    }
    /// Where the page sends the member next, once processed, when ActionKit says.
    async fn redirect_url(&self) -> Option<&str> {
        self.0.redirect_url.as_deref()
    }
    /// Why ActionKit refused it, when `FAILED`.
    async fn field_errors(&self) -> Vec<FieldError> {
        self.0.field_errors.iter().map(FieldError::from).collect()
    }
    /// When the gateway took it (RFC 3339, UTC).
    async fn created_at(&self) -> &str {
        &self.0.created_at
    }
}

/// A token bucket per key (client address, page name).
struct Buckets {
    per_second: f64,
    burst: f64,
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Keys remembered at most per limiter; beyond it, full buckets are forgotten.
const MAX_BUCKETS: usize = 10_000;

impl Buckets {
    fn new(per_minute: u32, burst: u32) -> Option<Buckets> {
        (per_minute > 0).then(|| Buckets {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            map: Mutex::new(HashMap::new()),
        })
    }

    fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.map.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_BUCKETS && !map.contains_key(key) {
            let (rate, burst) = (self.per_second, self.burst);
            map.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if map.len() >= MAX_BUCKETS {
                // Memory stays bounded even when every key is busy (many addresses,
                // made-up page names): start over.
                map.clear();
            }
        }
        let (tokens, at) = map.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

/// What `submitAction` keeps between requests: settings, the page-form and
/// allowed-user-field caches, the limits of public submitters. In schema data.
pub(super) struct SubmitGuard {
    config: SubmitConfig,
    akid_secret: Option<SecretString>,
    page_forms: moka::sync::Cache<String, Option<Arc<PageForm>>>,
    user_fields: moka::sync::Cache<(), Arc<BTreeSet<String>>>,
    per_address: Option<Buckets>,
    per_page: Option<Buckets>,
}

impl SubmitGuard {
    pub(super) fn new(config: &SubmitConfig, akid_secret: Option<SecretString>) -> SubmitGuard {
        SubmitGuard {
            akid_secret,
            page_forms: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(config.page_form_ttl_secs))
                .max_capacity(10_000)
                .build(),
            user_fields: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(config.allowed_user_fields_ttl_secs))
                .max_capacity(1)
                .build(),
            per_address: Buckets::new(config.per_address_per_minute, config.per_address_burst),
            per_page: Buckets::new(config.per_page_per_minute, config.per_page_burst),
            config: config.clone(),
        }
    }

    /// The page's form: from the cache, or (when `fetch`) from ActionKit. `Ok(None)`
    /// outside: not known (not cached and not fetched, or ActionKit failed to say);
    /// `Ok(Some(None))`: no such page.
    async fn page_form(
        &self,
        client: Option<&Client>,
        page: &str,
        fetch: bool,
    ) -> Option<Option<Arc<PageForm>>> {
        if let Some(known) = self.page_forms.get(page) {
            return Some(known);
        }
        if !fetch {
            return None;
        }
        match client?.page_form(page).await {
            Ok(form) => {
                let form = form.map(Arc::new);
                self.page_forms.insert(page.to_owned(), form.clone());
                Some(form)
            }
            Err(e) => {
                // The submission still goes to the outbox: ActionKit checks it there.
                tracing::warn!(error = %e, "could not read the page's form; submitting unchecked");
                None
            }
        }
    }

    /// The page's form through the same cache, with ActionKit's errors (for
    /// `pageContext`).
    pub(super) async fn page_form_or_error(
        &self,
        client: &Client,
        page: &str,
    ) -> Result<Option<Arc<PageForm>>, crate::actionkit::Error> {
        if let Some(known) = self.page_forms.get(page) {
            return Ok(known);
        }
        let form = client.page_form(page).await?.map(Arc::new);
        self.page_forms.insert(page.to_owned(), form.clone());
        Ok(form)
    }

    /// The instance's allowed custom user fields, cached; `None` when not known.
    async fn instance_user_fields(
        &self,
        client: Option<&Client>,
        fetch: bool,
    ) -> Option<Arc<BTreeSet<String>>> {
        if let Some(known) = self.user_fields.get(&()) {
            return Some(known);
        }
        if !fetch {
            return None;
        }
        match client?.allowed_user_fields().await {
            Ok(names) => {
                let names: Arc<BTreeSet<String>> = Arc::new(names.into_iter().collect());
                self.user_fields.insert((), names.clone());
                Some(names)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the allowed user fields");
                None
            }
        }
    }

    /// Action field names a public caller may send on `page`.
    fn action_fields(&self, page: &str) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.config.action_fields.iter().cloned().collect();
        if let Some(p) = self.config.pages.get(page) {
            names.extend(p.action_fields.iter().cloned());
        }
        names
    }

    /// Takes one submission from the per-address and per-page buckets.
    fn limit(&self, address: Option<IpAddr>, page: &str) -> GqlResult<()> {
        let now = Instant::now();
        let mut wait = None;
        if let (Some(b), Some(ip)) = (&self.per_address, address) {
            if let Err(w) = b.take(&ip.to_string(), now) {
                wait = Some(("too many submissions from this address", w));
            }
        }
        if wait.is_none() {
            if let Some(b) = &self.per_page {
                if let Err(w) = b.take(page, now) {
                    wait = Some(("too many submissions to this page just now", w));
                }
            }
        }
        match wait {
            None => Ok(()),
            Some((msg, w)) => {
                refused("rate_limited");
                let secs = (w.as_secs() + u64::from(w.subsec_nanos() > 0)).max(1);
                let err =
                    GatewayError::new(ErrorCode::RateLimited, format!("{msg}; retry in {secs} s"));
                Err(async_graphql::Error::from(err).extend_with(|_, e| e.set("retryAfter", secs)))
            }
        }
    }
}

fn forbidden(message: &str) -> async_graphql::Error {
    GatewayError::new(ErrorCode::Forbidden, message).into()
}

/// Submissions refused before the outbox (what it takes, it counts itself).
fn refused(reason: &'static str) {
    metrics::counter!("gateway_submissions_refused_total", "reason" => reason).increment(1);
}

/// `Mutation.submitAction`.
pub(super) async fn submit_action(
    ctx: &Context<'_>,
    input: SubmitActionInput,
) -> GqlResult<SubmitActionPayload> {
    let principal = access::principal(ctx).into_owned();
    if principal.is_anonymous() {
        return Err(forbidden(
            "anonymous callers cannot submit actions: send a key with the `submit` scope",
        ));
    }
    let scopes = principal.scopes;
    if !scopes.may_submit() {
        return Err(forbidden(
            "submitAction needs a key with the `submit`, `self` or `write` scope",
        ));
    }
    let page = input.page.trim().to_owned();
    if !principal.may_submit_to(&page) {
        return Err(forbidden("this key may not submit to this page"));
    }
    let guard = ctx
        .data_opt::<Arc<SubmitGuard>>()
        .ok_or_else(|| GatewayError::new(ErrorCode::Internal, "taking actions is not set up"))?;
    let mut raw = input;
    // A `self` key (without `write` or `submit`) submits as its own member only.
    let own_member_only = scopes.member && !scopes.write && !scopes.submit;
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if own_member_only {
        if given(&raw.email) {
            return Err(forbidden(
                "a `self` key submits as its own member (X-AKID): leave out `email`",
            ));
        }
        if let Some(akid) = raw.akid.as_deref().filter(|a| !a.trim().is_empty()) {
            if access::akid_user(akid.trim()) != principal.member {
                return Err(forbidden("a `self` key submits as its own member only"));
            }
        }
    }
    if !given(&raw.email) && !given(&raw.akid) {
        if let Some(akid) = &principal.member_akid {
            raw.akid = Some(akid.expose_secret().to_owned());
        }
    }
    let public = scopes.public_submitter();
    if public {
        guard.limit(principal.address, &page)?;
    }

    let client = ctx.data_opt::<Client>();
    let secret = guard.akid_secret.as_ref().map(|s| s.expose_secret());
    let idempotency_key = raw.idempotency_key.clone();
    let (submission, mut problems) = submit_input::check(raw, secret);
    // Upstream lookups only for input that is otherwise good: refused input costs no
    // upstream call (what is cached is still used, so that a form hears everything).
    let fetch = problems.is_empty();
    if public && !submission.page.is_empty() {
        let actions = guard.action_fields(&submission.page);
        let configured_users = guard
            .config
            .pages
            .get(&submission.page)
            .and_then(|p| p.user_fields.as_ref())
            .map(|names| Arc::new(names.iter().cloned().collect::<BTreeSet<String>>()));
        let users = match configured_users {
            Some(names) => Some(names),
            None if submission.user_fields.is_empty() => None,
            None => guard.instance_user_fields(client, fetch).await,
        };
        problems.extend(submit_input::unknown_fields(
            &submission,
            users.as_deref(),
            Some(&actions),
        ));
    }
    let fetch = problems.is_empty();
    if submit_input::is_page_name(&submission.page) {
        match guard.page_form(client, &submission.page, fetch).await {
            Some(None) => problems.push(Problem {
                field: "page".into(),
                code: Code::NotFound,
                message: "There is no page with this name.".into(),
            }),
            Some(Some(form)) => {
                problems.extend(submit_input::required_fields(
                    &submission,
                    &form.required_fields,
                ));
            }
            None => {}
        }
    }
    if !problems.is_empty() {
        refused("input");
        tracing::debug!(caller = %principal.name, page = %submission.page, errors = problems.len(), "submission refused");
        return Ok(SubmitActionPayload::refused(problems));
    }

    let outbox = ctx
        .data_opt::<Outbox>()
        .ok_or_else(|| GatewayError::new(ErrorCode::Internal, "taking actions is not set up"))?;
    let record = outbox
        .submit(&principal.name, submission, idempotency_key)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a submission could not be stored");
            async_graphql::Error::from(GatewayError::new(
                ErrorCode::Internal,
                "the submission could not be stored, so it was not taken; try again",
            ))
        })?;
    tracing::info!(caller = %principal.name, page = %record.page, status = ?record.state, "submission");
    Ok(SubmitActionPayload::from_record(record))
}

/// The longest submission id looked up.
const MAX_SUBMISSION_ID: usize = 128;

/// `Query.submission(id)`.
pub(super) async fn submission(ctx: &Context<'_>, id: ID) -> GqlResult<Option<Submission>> {
    let id = id.0;
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > MAX_SUBMISSION_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(GatewayError::bad_input("`id` is not a submission id").into());
    }
    let outbox = ctx
        .data_opt::<Outbox>()
        .ok_or_else(|| GatewayError::new(ErrorCode::Internal, "taking actions is not set up"))?;
    let record = outbox.status(&id).await.map_err(|e| {
        tracing::error!(error = %e, "the submission store failed");
        GatewayError::new(ErrorCode::Internal, "the submission store failed")
    })?;
    Ok(record.map(Submission))
}

/// A page's form (its required fields) through `submitAction`'s form cache.
pub(super) async fn cached_page_form(
    ctx: &Context<'_>,
    client: &Client,
    page: &str,
) -> Result<Option<Arc<PageForm>>, crate::actionkit::Error> {
    match ctx.data_opt::<Arc<SubmitGuard>>() {
        Some(guard) => guard.page_form_or_error(client, page).await,
        None => Ok(client.page_form(page).await?.map(Arc::new)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_run_dry_per_key_and_refill() {
        let b = Buckets::new(60, 2).unwrap();
        let t0 = Instant::now();
        assert!(b.take("a", t0).is_ok() && b.take("a", t0).is_ok());
        assert!(b.take("a", t0).is_err());
        assert!(b.take("b", t0).is_ok(), "another key has its own bucket");
        assert!(b.take("a", t0 + Duration::from_millis(1001)).is_ok());
        assert!(Buckets::new(0, 5).is_none(), "0 turns the limit off");
    }
}
