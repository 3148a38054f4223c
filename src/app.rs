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

/// A gateway serving in a background task.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub client: Client,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Builds the state of the gateway: client (probed), schema, caches.
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
    let client = Client::new(client_config).context("cannot build the ActionKit client")?;
    client.probe().await;
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
    let schema = build_schema(Some(client.clone()), &settings);
    let pages = PageCache::new(config.graphql.page_cache_ttl(), 10_000);
    let mut state = AppState::new(
        schema,
        client,
        pages,
        settings.loader_delay,
        config.graphql.operation_deadline(),
    )
    .with_security(security);
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
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(state, listener, std::future::pending()));
    Ok(RunningGateway { addr, client, task })
}
