//! Starting the gateway: from configuration to a client, a schema and a listening
//! router. Used by `main.rs` and by the integration tests alike.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::actionkit::{Client, ClientConfig};
use crate::config::{Config, Mode};
use crate::graphql::{build_schema, GraphqlSettings, PageCache};
use crate::http::{router, AppState};
use crate::outbox::{Outbox, OutboxSettings};

/// Where the gateway's upstream is and with what credential.
pub struct Upstream {
    pub url: url::Url,
    pub username: String,
    pub password: SecretString,
    pub akid_secret: Option<SecretString>,
}

/// Builds the client configuration from the file/env settings and the upstream.
pub fn client_config(config: &Config, upstream: Upstream) -> ClientConfig {
    let ak = &config.actionkit;
    let mut cc = ClientConfig::new(upstream.url, upstream.username, upstream.password);
    cc.max_in_flight = ak.max_in_flight.max(1);
    cc.connect_timeout = Duration::from_millis(ak.connect_timeout_ms);
    cc.request_timeout = Duration::from_millis(ak.request_timeout_ms);
    cc.operation_deadline = Duration::from_millis(ak.operation_deadline_ms);
    cc.retry.max_retries = ak.max_retries;
    cc.akid_secret = upstream.akid_secret;
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
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Builds the state of the gateway: client (probed), outbox (its store opened, its
/// worker started), schema, caches.
pub async fn build_state(
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
    let outbox_settings = outbox_settings(config, &client_config);
    let client = Client::new(client_config).context("cannot build the ActionKit client")?;
    client.probe().await;
    let data_dir = outbox_settings.data_dir.clone();
    let outbox = Outbox::open(client.clone(), outbox_settings)
        .await
        .with_context(|| {
            format!(
                "cannot open the submission store in {} (set --data-dir / GATEWAY_DATA_DIR)",
                data_dir.display()
            )
        })?;
    let settings = GraphqlSettings {
        loader_delay: config.graphql.loader_delay(),
        introspection: mode == Mode::Development,
        max_depth: config.graphql.max_depth,
        max_complexity: config.graphql.max_complexity,
        limits: crate::graphql::limits::Limits {
            max_depth: config.graphql.max_depth,
            max_tokens: config.security.max_tokens,
            max_aliases: config.security.max_aliases,
            max_directives: config.security.max_directives,
            expose: mode == Mode::Development,
        },
        submit: config.submit.clone(),
        akid_secret,
    };
    let schema = build_schema(Some(client.clone()), Some(outbox.clone()), &settings);
    let pages = PageCache::new(config.graphql.page_cache_ttl(), 10_000);
    let mut state = AppState::new(
        schema,
        client,
        pages,
        settings.loader_delay,
        config.graphql.operation_deadline(),
    )
    .with_security(security)
    .with_outbox(outbox);
    state.shed = crate::http::Shedder::from_config(&config.graphql);
    Ok(state)
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address keys anonymous callers' rate limit.
    let service = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts a gateway in the background (tests, `serve`).
pub async fn spawn(
    config: &Config,
    client_config: ClientConfig,
    mode: Mode,
    listener: TcpListener,
) -> anyhow::Result<RunningGateway> {
    let state = build_state(config, client_config, mode).await?;
    let client = state.client.clone();
    let outbox = state
        .outbox
        .clone()
        .context("the gateway's state has no outbox")?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(state, listener, std::future::pending()));
    Ok(RunningGateway {
        addr,
        client,
        outbox,
        task,
    })
}
