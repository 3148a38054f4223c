//! Starting the gateway: from configuration to a client, a schema and a listening
//! router, with the startup checks (client authentication configured, the credential
//! accepted by the instance). `main.rs` calls [`run`]; the integration tests call
//! [`start`], which is the same path without the signal handling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::actionkit::{Client, ClientConfig, Error as UpstreamError};
use crate::config::{ActionKitConfig, Config, Mode};
use crate::graphql::limits::OperationLimits;
use crate::graphql::{build_schemas, GraphqlSettings, PageCache};
use crate::http::server::ConnectionSettings;
use crate::http::{router, AppState};
use crate::sandbox::{self, SandboxConfig};

use crate::outbox::{Outbox, OutboxSettings};

/// How long operations in flight may run after a shutdown signal (kept under
/// Kubernetes' default 30 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// How long the outbox's deliveries in flight may run after the server stopped.
const OUTBOX_GRACE: Duration = Duration::from_secs(4);

/// Where the gateway's upstream is and with what credential.
pub struct Upstream {
    pub url: url::Url,
    pub username: String,
    pub password: SecretString,
    pub akid_secret: Option<SecretString>,
    /// A sandbox holds demo data: serving it without client keys is allowed.
    pub is_sandbox: bool,
}

impl Upstream {
    /// A sandbox listening on `addr` as the upstream, with its credential; with
    /// `verify_akids_locally`, also its AKID secret, as a real instance's would be given.
    pub fn sandbox(
        addr: SocketAddr,
        config: &SandboxConfig,
        verify_akids_locally: bool,
    ) -> anyhow::Result<Upstream> {
        Ok(Upstream {
            url: url::Url::parse(&format!("http://{addr}"))?,
            username: config.username.clone(),
            password: SecretString::from(config.password.clone()),
            akid_secret: verify_akids_locally
                .then(|| SecretString::from(config.akid_secret.clone())),
            is_sandbox: true,
        })
    }

    /// The instance the configuration names, or an error that says what is missing.
    pub fn from_config(ak: &ActionKitConfig) -> anyhow::Result<Upstream> {
        let missing: Vec<&str> = [
            ("ACTIONKIT_URL", ak.url.is_none()),
            ("ACTIONKIT_USERNAME", ak.username.is_none()),
            ("ACTIONKIT_PASSWORD", ak.password.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        if !missing.is_empty() {
            bail!(
                "to serve against ActionKit, set {} (or use `serve --sandbox` to try the gateway on demo data)",
                missing.join(", ")
            );
        }
        let raw_url = ak.url.clone().unwrap_or_default();
        let url = url::Url::parse(&raw_url)
            .with_context(|| format!("ACTIONKIT_URL {raw_url:?} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            bail!("ACTIONKIT_URL must be an http(s) URL such as https://act.example.org");
        }
        Ok(Upstream {
            url,
            username: ak.username.clone().unwrap_or_default(),
            password: ak
                .password
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            akid_secret: ak.akid_secret.clone(),
            is_sandbox: false,
        })
    }
}

/// Builds the client configuration from the file/env settings and the upstream.
fn client_config(config: &Config, upstream: Upstream) -> ClientConfig {
    let ak = &config.actionkit;
    let mut cc = ClientConfig::new(upstream.url, upstream.username, upstream.password);
    cc.max_in_flight = ak.max_in_flight.max(1);
    cc.connect_timeout = Duration::from_millis(ak.connect_timeout_ms);
    cc.request_timeout = Duration::from_millis(ak.request_timeout_ms);
    cc.operation_deadline = Duration::from_millis(ak.operation_deadline_ms);
    cc.retry.max_retries = ak.max_retries;
    cc.akid_secret = upstream.akid_secret;
    cc.share_window = Duration::from_micros(ak.share_window_us);
    cc.breaker = crate::actionkit::BreakerPolicy {
        failure_threshold: ak.breaker_failure_threshold,
        open_for: Duration::from_millis(ak.breaker_open_ms),
        max_open_for: Duration::from_millis(ak.breaker_max_open_ms.max(ak.breaker_open_ms)),
    };
    cc
}

/// The outbox's settings from the configuration. Without a data directory (a gateway
/// built from the library: tests, examples) the store goes to a new temporary
/// directory that is removed when the outbox closes; the binary always has one
/// (`--data-dir`, `GATEWAY_DATA_DIR`, `[outbox] data_dir`, or the default).
pub fn outbox_settings(config: &Config, client_config: &ClientConfig) -> OutboxSettings {
    let o = &config.outbox;
    let (dir, temporary) = match &o.data_dir {
        Some(dir) => (dir.clone(), false),
        None => {
            sweep_temporary_stores();
            (
                std::env::temp_dir().join(format!(
                    "{TEMP_PREFIX}{}-{}",
                    std::process::id(),
                    crate::outbox::new_id()
                )),
                true,
            )
        }
    };
    let mut s = OutboxSettings::new(dir);
    s.temporary = temporary;
    s.answer_within = Duration::from_millis(o.answer_within_ms);
    s.duplicate_window = Duration::from_secs(o.duplicate_window_secs);
    // Under the client's cap, so that reads still get through while it drains.
    let cap = client_config.max_in_flight.max(1);
    s.worker_concurrency = o.worker_concurrency.clamp(1, cap);
    s.send_at_once = cap;
    s.unknown_settle = Duration::from_millis(o.unknown_settle_ms);
    s.max_backoff = Duration::from_millis(o.max_backoff_ms.max(1));
    s.retention = (o.retention_days > 0)
        .then(|| Duration::from_secs(o.retention_days.saturating_mul(86_400)));
    s.upstream = o.upstream_name.clone().unwrap_or_else(|| {
        let mut url = client_config.base_url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.to_string()
    });
    s
}

const TEMP_PREFIX: &str = "actionkit-graphql-outbox-";

/// Removes the temporary stores of processes that are gone (a test process exits
/// without dropping its gateways, so their stores are not removed on close).
fn sweep_temporary_stores() {
    #[cfg(target_os = "linux")]
    {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A gateway serving in a background task.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub client: Client,
    pub outbox: Outbox,
    /// Page progress and subscriptions (`shutdown` ends every subscription).
    pub progress: crate::graphql::ProgressHub,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Builds the state of the gateway: client (probed), outbox (its store opened, its
/// worker started), schema, caches.
async fn build_state(
    config: &Config,
    client_config: ClientConfig,
    mode: Mode,
) -> anyhow::Result<AppState> {
    let security = crate::http::auth::Security::from_config(
        &config.security,
        mode,
        client_config.akid_secret.clone(),
    )?;
    // The recorder first, so that the client's gauges (breaker state) are recorded.
    crate::http::metrics::handle();
    let akid_secret = client_config.akid_secret.clone();
    // Shared state between replicas, when `[redis] url` is set (see `shared_state/`).
    let redis = crate::shared_state::Redis::connect(&config.redis).await?;
    let mut client_config = client_config;
    if let Some(redis) = &redis {
        // Leases outlive one request (its timeout and a margin), never a dead replica.
        client_config.global_budget = Some(Arc::new(crate::shared_state::RedisBudget::new(
            redis.clone(),
            client_config.max_in_flight,
            client_config.request_timeout + Duration::from_secs(5),
        )));
    }
    // The budget the dashboard draws in-flight calls against (global with Redis).
    metrics::gauge!("gateway_upstream_max_in_flight").set(client_config.max_in_flight as f64);
    let outbox_settings = outbox_settings(config, &client_config);
    let client = Client::new(client_config).context("cannot build the ActionKit client")?;
    client.probe().await;
    let data_dir = outbox_settings.data_dir.clone();
    let store_context = || {
        format!(
            "cannot open the submission store in {} (set --data-dir / GATEWAY_DATA_DIR)",
            data_dir.display()
        )
    };
    let outbox = match &redis {
        None => Outbox::open(client.clone(), outbox_settings)
            .await
            .with_context(store_context)?,
        Some(redis) => {
            let local = crate::outbox::sqlite::SqliteStore::open(
                &outbox_settings.data_dir,
                &outbox_settings.upstream,
                outbox_settings.temporary,
            )
            .await
            .with_context(store_context)?;
            let remote = crate::shared_state::RedisStore::open(
                redis.clone(),
                &outbox_settings.upstream,
                outbox_settings.unknown_settle,
            )
            .await
            .context("cannot open the shared submission queue in Redis")?;
            let store = crate::shared_state::FallbackStore::new(remote, Arc::new(local));
            Outbox::with_store(Arc::new(client.clone()), Arc::new(store), outbox_settings)
        }
    };
    let mut settings = GraphqlSettings {
        introspection: mode == Mode::Development,
        max_depth: config.graphql.max_depth,
        max_complexity: config.graphql.max_complexity,
        limits: crate::graphql::limits::Limits {
            max_depth: config.graphql.max_depth,
            max_tokens: config.security.max_tokens,
            max_aliases: config.security.max_aliases,
            max_directives: config.security.max_directives,
            max_fields: config.security.max_fields,
            max_fragment_spreads: config.security.max_fragment_spreads,
            expose: mode == Mode::Development,
        },
        submit: config.submit.clone(),
        akid_secret,
        progress: None,
        progress_settings: progress_settings(config),
    };
    let mut progress_cache = crate::graphql::ProgressCache::new(
        settings.progress_settings.ttl,
        settings.progress_settings.capacity,
    );
    if let Some(redis) = &redis {
        progress_cache = progress_cache.with_shared(Arc::new(
            crate::shared_state::RedisCache::new(redis.clone()),
        ));
    }
    let progress = crate::graphql::ProgressHub::with_cache(client.clone(), progress_cache);
    progress.follow(outbox.processed_pages());
    settings.progress = Some(progress.clone());
    let schemas = build_schemas(Some(client.clone()), Some(outbox.clone()), &settings);
    let mut pages = PageCache::new(config.graphql.page_cache_ttl(), 10_000);
    let mut security = security;
    if let Some(redis) = &redis {
        pages = pages.with_shared(Arc::new(crate::shared_state::RedisCache::new(
            redis.clone(),
        )));
        if security.limiter.is_some() {
            // The same limit as the local bucket (`Security::from_config`), held in Redis.
            security.global_limit = Some(crate::shared_state::RedisRateLimit::new(
                redis.clone(),
                config.security.rate_limit_per_minute.unwrap_or(600),
                config.security.rate_limit_burst,
            ));
        }
    }
    security.body_read_timeout = config.server.body_read_timeout();
    let mut state = AppState::new(schemas, client, pages, config.graphql.operation_deadline())
        .with_security(security)
        .with_outbox(outbox);
    state.shed = crate::http::Shedder::from_config(&config.graphql);
    state.progress = Some(progress);
    state.websocket = std::sync::Arc::new(crate::http::ws::WsState::new(config.progress.clone()));
    if let Some(redis) = redis {
        state.redis_up = Some(Arc::new(move || redis.is_up()));
    }
    state.persisted = config.graphql.persisted_queries.then(|| {
        crate::http::apq::PersistedQueries::new(config.graphql.persisted_query_cache_bytes)
    });
    state.limits = OperationLimits {
        document: settings.limits,
        max_complexity: config.graphql.max_complexity as u64,
        max_upstream_calls: config.graphql.max_upstream_calls,
    };
    Ok(state)
}

/// The progress hub's settings, from `[progress]`.
fn progress_settings(config: &Config) -> crate::graphql::ProgressSettings {
    crate::graphql::ProgressSettings {
        ttl: Duration::from_secs(config.progress.cache_ttl_secs.max(1)),
        capacity: 10_000,
        max_subscriptions_per_connection: config.progress.max_subscriptions_per_connection,
    }
}

/// How long subscribers have to hear `complete` and the close frame at shutdown.
const WEBSOCKET_GRACE: Duration = Duration::from_secs(2);

/// Serves the gateway on `listener` until `shutdown` resolves, with the connection
/// settings of `[server]` (header and idle timeouts, the connection cap).
async fn serve(
    state: AppState,
    listener: TcpListener,
    connections: ConnectionSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // At shutdown, subscribers are told (`complete`, then close 1001) while the HTTP
    // connections drain; WebSocket connections are not in the server's registry.
    let hub = state.progress.clone();
    let websocket = state.websocket.clone();
    let hub_for_signal = hub.clone();
    let shutdown = async move {
        shutdown.await;
        if let Some(hub) = &hub_for_signal {
            hub.shutdown();
        }
    };
    let result = crate::http::server::serve(listener, router(state), connections, shutdown).await;
    let deadline = tokio::time::Instant::now() + WEBSOCKET_GRACE;
    while websocket.open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    result
}

/// Starts a gateway in the background after every startup check: refuses to serve a
/// real instance without client authentication, and stops when the instance refuses
/// the credential or cannot be reached.
pub async fn start(
    config: &Config,
    mode: Mode,
    upstream: Upstream,
    listener: TcpListener,
) -> anyhow::Result<RunningGateway> {
    start_with(config, mode, upstream, listener, true).await
}

/// [`start`] without asking the instance whether it takes the credential: for tests
/// of what the gateway does when the instance goes away or the credential is revoked
/// after it started.
pub async fn start_unchecked(
    config: &Config,
    mode: Mode,
    upstream: Upstream,
    listener: TcpListener,
) -> anyhow::Result<RunningGateway> {
    start_with(config, mode, upstream, listener, false).await
}

async fn start_with(
    config: &Config,
    mode: Mode,
    upstream: Upstream,
    listener: TcpListener,
    check_upstream: bool,
) -> anyhow::Result<RunningGateway> {
    let state = checked_state(config, mode, upstream, check_upstream).await?;
    let client = state.client.clone();
    let outbox = state
        .outbox
        .clone()
        .context("the gateway's state has no outbox")?;
    let progress = state
        .progress
        .clone()
        .context("the gateway's state has no progress hub")?;
    let addr = listener.local_addr()?;
    let connections = ConnectionSettings::from_config(&config.server);
    let task = tokio::spawn(serve(state, listener, connections, std::future::pending()));
    Ok(RunningGateway {
        addr,
        client,
        outbox,
        progress,
        task,
    })
}

async fn checked_state(
    config: &Config,
    mode: Mode,
    upstream: Upstream,
    check_upstream: bool,
) -> anyhow::Result<AppState> {
    // Before anything reaches ActionKit: no client authentication, no start.
    crate::http::auth::startup_check(&config.security, upstream.is_sandbox)
        .map_err(anyhow::Error::msg)?;
    let state = build_state(config, client_config(config, upstream), mode).await?;
    if check_upstream {
        match state.client.check_credentials().await {
            Ok(()) => {}
            Err(UpstreamError::Unauthorized) => bail!(
                "ActionKit refused ACTIONKIT_USERNAME/ACTIONKIT_PASSWORD (HTTP 401); check the staff account and its API permissions"
            ),
            // Busy, not wrong: a gateway that restarts with a backlog of submissions (its
            // worker starts with the outbox) may find ActionKit at its limit. Refusing to
            // start would keep the backlog from draining.
            Err(UpstreamError::RateLimited) => tracing::warn!(
                "ActionKit answers 429 (at its concurrency limit); starting without checking the credential"
            ),
            Err(e) => bail!("cannot reach ActionKit: {e}"),
        }
    }
    Ok(state)
}

/// `serve`: the gateway on `config.listen` in front of the configured instance, or of
/// an embedded sandbox started with `sandbox`, until `shutdown` resolves; then
/// operations in flight may finish for up to 25 s.
pub async fn run(
    mut config: Config,
    sandbox: Option<SandboxConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mode = config.mode.unwrap_or(if sandbox.is_some() {
        Mode::Development
    } else {
        Mode::Production
    });
    // The embedded sandbox serves until this function returns.
    let mut embedded = None;
    let upstream = match sandbox {
        Some(sb) => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let handle = sandbox::spawn(sb.clone(), listener).await?;
            tracing::info!(
                "embedded sandbox at http://{}/rest/v1/ (username {:?}, password {:?}, {} users)",
                handle.addr,
                sb.username,
                sb.password,
                sb.users
            );
            // The gateway verifies the sandbox's AKIDs locally, with the sandbox's
            // secret, as it would with a real instance's.
            let upstream = Upstream::sandbox(handle.addr, &sb, true)?;
            embedded = Some(handle);
            // The embedded sandbox's port changes at every start; its store is the
            // sandbox's.
            config.outbox.upstream_name = Some("sandbox".into());
            upstream
        }
        None => Upstream::from_config(&config.actionkit)?,
    };
    // Development mode on the embedded sandbox: a `submit` key for the example petition
    // page, made for this process only and limited to the demo page.
    let demo_key = (embedded.is_some() && mode == Mode::Development).then(|| {
        use crate::http::{auth, examples};
        let key = auth::generate_key();
        config.security.demo_keys.push(format!(
            "{}:submit:{}:{}",
            examples::DEMO_KEY_NAME,
            auth::hash_key(&key),
            examples::DEMO_PAGE
        ));
        key
    });
    let mut state = checked_state(&config, mode, upstream, true).await?;
    if let Some(key) = &demo_key {
        use crate::http::examples;
        state.examples = Some(std::sync::Arc::new(examples::PetitionExample::new(
            key,
            examples::DEMO_PAGE,
            examples::DEMO_PAGE_TITLE,
        )));
    }
    let outbox = state.outbox.clone();
    if let Some(dir) = &config.outbox.data_dir {
        tracing::info!(
            data_dir = %dir.display(),
            queued = outbox.as_ref().map(|o| o.queue_depth()),
            "submission store open"
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        ?mode,
        "gateway listening: GraphiQL at http://{addr}/ , GraphQL at http://{addr}/graphql"
    );
    if let Some(key) = &demo_key {
        tracing::info!(
            "example petition form at http://{addr}/examples/petition ; its demo `submit` key \
             (this process only, page {:?}): {key}",
            crate::http::examples::DEMO_PAGE
        );
    }
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing operations in flight");
        let _ = stop_tx.send(true);
    };
    let connections = ConnectionSettings::from_config(&config.server);
    let server = serve(state, listener, connections, signal);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("operations still in flight after {SHUTDOWN_GRACE:?}; exiting");
        }
    }
    // The outbox's worker finishes the deliveries in progress; what is queued stays
    // stored for the next start.
    if let Some(outbox) = outbox {
        if tokio::time::timeout(OUTBOX_GRACE, outbox.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("deliveries still in flight after {OUTBOX_GRACE:?}; exiting (they are looked up at the next start)");
        }
    }
    if let Some(handle) = embedded {
        handle.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}
