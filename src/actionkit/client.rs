//! The [`Client`] handle: construction, the capability probe, the credential check and
//! the shared state its reads (`reads.rs`) and writes (`writes.rs`) use.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::FutureExt as _;
use secrecy::SecretString;
use tokio::time::Instant;

use super::accounting::CallTotals;
use super::capabilities::{Capabilities, Schema};
use super::config::ClientConfig;
use super::page_names::PageNameCache;
use super::transport::{Request, Transport};
use super::writes::{PatchSemantics, WriteLocks};
use super::Error;

/// The ActionKit client. Cheap to clone; clones share the connection pool, the
/// concurrency cap, the capabilities, the call totals and the per-action write locks.
///
/// ```no_run
/// # use actionkit_graphql::actionkit::{Client, ClientConfig, UserId};
/// # async fn demo() -> Result<(), actionkit_graphql::actionkit::Error> {
/// let config = ClientConfig::new(
///     "https://roboticdogs.actionkit.com".parse().expect("a URL"),
///     "staff",
///     secrecy::SecretString::from("password"),
/// );
/// let client = Client::new(config)?;
/// client.probe().await; // learn which filters the instance allows
/// let user = client.user(UserId(1)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) transport: Transport,
    caps: RwLock<Capabilities>,
    pub(crate) akid_secret: Option<SecretString>,
    operation_deadline: Duration,
    /// Width of a fan-out of single requests (the semaphore is the real cap).
    pub(crate) fan_out: usize,
    pub(crate) locks: WriteLocks,
    pub(crate) patch_semantics: AtomicU8,
    pub(crate) page_names: PageNameCache,
    /// Names of the allowed custom user fields, one entry; `None` when not cached.
    pub(crate) allowed_user_fields: Option<moka::sync::Cache<(), Arc<Vec<String>>>>,
    /// Whether `/progress/` answers (`reads/progress.rs`): 0 unknown, 2 absent.
    pub(crate) progress_endpoint: AtomicU8,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("capabilities", &self.capabilities())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client. Sends nothing; call [`probe`](Self::probe) once at start.
    /// Fails with `InvalidInput` for a base URL that is not http(s) or that carries a
    /// user name or password.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let transport = Transport::new(&config)?;
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                caps: RwLock::new(Capabilities::default()),
                akid_secret: config.akid_secret.clone(),
                operation_deadline: config.operation_deadline,
                fan_out: config.max_in_flight.max(1),
                locks: WriteLocks::default(),
                patch_semantics: AtomicU8::new(PatchSemantics::Unknown as u8),
                page_names: PageNameCache::new(config.page_name_ttl),
                allowed_user_fields: (!config.allowed_user_fields_ttl.is_zero()).then(|| {
                    moka::sync::Cache::builder()
                        .max_capacity(1)
                        .time_to_live(config.allowed_user_fields_ttl)
                        .build()
                }),
                progress_endpoint: AtomicU8::new(0),
            }),
        })
    }

    /// Reads `/rest/v1/{user,action,page}/schema/` (3 calls, in parallel) and records
    /// which filters the instance allows. Never fails: a schema that cannot be read
    /// leaves its capabilities off (no `__in`, no traversal) and logs a warning.
    pub async fn probe(&self) -> Capabilities {
        let deadline = self.deadline();
        let t = &self.inner.transport;
        let (user, action, page) = tokio::join!(
            t.get_json::<Schema>("/rest/v1/user/schema/", "/rest/v1/user/schema/", deadline),
            t.get_json::<Schema>(
                "/rest/v1/action/schema/",
                "/rest/v1/action/schema/",
                deadline
            ),
            t.get_json::<Schema>("/rest/v1/page/schema/", "/rest/v1/page/schema/", deadline),
        );
        for (resource, result) in [("user", &user), ("action", &action), ("page", &page)] {
            if let Err(e) = result {
                tracing::warn!(
                    resource,
                    error = %e,
                    "could not read the ActionKit schema; batching for this resource falls \
                     back to one request per id and no filter traversal (conservative mode)"
                );
            }
        }
        let caps = Capabilities::from_schemas(
            user.as_ref().ok(),
            action.as_ref().ok(),
            page.as_ref().ok(),
        );
        tracing::info!(
            user_id_in = caps.user_id_in,
            action_id_in = caps.action_id_in,
            action_user_in = caps.action_user_in,
            page_id_in = caps.page_id_in,
            action_page_name = caps.action_page_name,
            probed = caps.probed,
            "ActionKit capabilities"
        );
        *self.inner.caps.write().unwrap_or_else(|e| e.into_inner()) = caps.clone();
        caps
    }

    /// The capabilities in force (conservative until [`probe`](Self::probe) ran).
    pub fn capabilities(&self) -> Capabilities {
        self.inner
            .caps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Turns one capability off after the instance refused a request the schema said it
    /// allowed, so later batches take the safe path at once.
    pub(crate) fn revoke(&self, f: impl FnOnce(&mut Capabilities)) {
        let mut caps = self.inner.caps.write().unwrap_or_else(|e| e.into_inner());
        f(&mut caps);
    }

    /// One authenticated call (`GET /rest/v1/`): Ok when the credential works,
    /// `Unauthorized` when ActionKit refuses it, another error when it cannot be asked.
    pub async fn check_credentials(&self) -> Result<(), Error> {
        let deadline = self.deadline();
        self.inner
            .transport
            .send(&Request::get("/rest/v1/", "/rest/v1/"), deadline)
            .await
            .map(|_| ())
    }

    /// Process-wide totals of upstream calls and retries since the client was built
    /// (shared by clones). For per-operation counts see
    /// [`UpstreamCounter::scope`](super::UpstreamCounter::scope).
    pub fn totals(&self) -> CallTotals {
        self.inner.transport.totals()
    }

    /// The circuit breaker's state (shared by clones).
    pub fn breaker_state(&self) -> super::BreakerState {
        self.inner.transport.breaker_state()
    }

    /// The cap on requests in flight in force now: `max_in_flight`, or less after
    /// ActionKit answered 429 (it adapts; see `fair.rs`). Shared by clones.
    pub fn concurrency_limit(&self) -> usize {
        self.inner.transport.concurrency_limit()
    }

    /// The deadline of an operation starting now.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.inner.operation_deadline
    }

    /// Runs a read operation under its deadline. The transport also checks the
    /// deadline before each request and while waiting; this is the outer guarantee.
    ///
    /// Not an `async fn`, which would hold `fut` twice (as its argument and inside the
    /// timeout it awaits): every read of the client passes through here.
    pub(crate) fn bounded<T>(
        &self,
        deadline: Instant,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> impl std::future::Future<Output = Result<T, Error>> {
        tokio::time::timeout_at(deadline, fut).map(|r| r.unwrap_or(Err(Error::Timeout)))
    }

    pub(crate) fn patch_semantics(&self) -> PatchSemantics {
        PatchSemantics::from_u8(self.inner.patch_semantics.load(Ordering::Relaxed))
    }

    pub(crate) fn set_patch_semantics(&self, s: PatchSemantics) {
        self.inner.patch_semantics.store(s as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actionkit::{ActionFilter, ActionId, PageId, UserId};

    fn assert_send<T: Send>(_: &T) {}

    /// Resolvers and spawned tasks need `Send` futures: holding a std lock across an
    /// await would break that, and this would stop compiling.
    #[test]
    fn every_operation_is_send_and_the_client_is_shareable() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Client>();
        let c = Client::new(ClientConfig::new(
            "http://127.0.0.1:9".parse().expect("url"),
            "u",
            SecretString::from("p"),
        ))
        .expect("client");
        let f = ActionFilter::default();
        let names = vec!["a".to_owned()];
        let fields = vec![("a".to_owned(), "b".to_owned())];
        assert_send(&c.probe());
        assert_send(&c.check_credentials());
        assert_send(&c.user(UserId(1)));
        assert_send(&c.user_by_email("a@b.c"));
        assert_send(&c.user_by_akid(".1.abcdef"));
        assert_send(&c.users(&[UserId(1)]));
        assert_send(&c.action(ActionId(1)));
        assert_send(&c.actions(&[ActionId(1)]));
        assert_send(&c.user_actions(UserId(1), &f, 0, 1));
        assert_send(&c.actions_of_users(&[UserId(1)], &f, 1));
        assert_send(&c.page(PageId(1)));
        assert_send(&c.pages(&[PageId(1)]));
        assert_send(&c.page_by_name("p"));
        assert_send(&c.set_action_fields(ActionId(1), &fields));
        assert_send(&c.clear_action_fields(ActionId(1), Some(&names)));
        let s = crate::actionkit::ActionSubmission::default();
        assert_send(&c.submit_action(&s));
        assert_send(&c.find_submitted_action(&s, std::time::SystemTime::now()));
        assert_send(&c.page_form("p"));
        assert_send(&c.allowed_user_fields());
    }
}
