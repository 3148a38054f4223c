//! The gateway's HTTP surface: `/graphql` (POST, and GET for queries), GraphiQL at `/`,
//! `/healthz` (alive), `/readyz` (ActionKit reachable with the credential, the
//! submission store writable) and `/metrics` (Prometheus); in development mode with
//! the sandbox, `/examples/petition`. `GET /graphql` with `Upgrade: websocket` is the
//! subscription endpoint (`ws.rs`, `graphql-transport-ws`).
//!
//! In front of `/graphql`: the guard (`auth/`: keys, JWT, rate limits per caller
//! (`auth/limiter.rs`) by client address (`client_addr.rs`), the body
//! read whole with a size and time limit, trusted documents), then the shedder
//! (`shed.rs`), then the handler (`graphql/`), which checks the document's cost
//! before the schema sees it. Every error answer is built by `errors.rs`. The
//! connections themselves (header and idle timeouts, the connection cap) are handled
//! by `server.rs`; CORS by `cors.rs`.

pub mod apq;
pub mod auth;
mod body;
pub mod client_addr;
pub mod cors;
pub mod errors;
pub mod examples;
mod graphiql;
pub(crate) mod graphql;
mod health;
pub mod jwt;
pub mod metrics;
pub mod server;
mod shed;
pub mod trusted;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

pub use graphiql::EXAMPLE_QUERY;
pub use shed::Shedder;

use crate::actionkit::Client;
use crate::graphql::limits::OperationLimits;
use crate::graphql::{GatewaySchemas, PageCache};
use crate::outbox::Outbox;

/// Everything a request handler needs; the router shares it behind one `Arc`.
pub struct AppState {
    /// The schema for HTTP and the one for WebSocket (see [`GatewaySchemas`]).
    pub schemas: GatewaySchemas,
    pub client: Client,
    pub pages: PageCache,
    pub operation_deadline: Duration,
    pub readiness: Arc<health::Readiness>,
    /// Client authentication and the guards of `/graphql` (closed until configured).
    pub security: Arc<auth::Security>,
    /// Admission control of `/graphql` (off unless set, see `shed.rs`).
    pub shed: Arc<Shedder>,
    /// The example petition page (development mode with the sandbox only).
    pub examples: Option<Arc<examples::PetitionExample>>,
    /// The submission outbox (`/readyz` checks its store); `build_state` sets it.
    pub outbox: Option<Outbox>,
    /// What an operation may cost, checked by the handler before the schema runs.
    pub limits: OperationLimits,
    /// Page progress (the hub the schema uses too), for the WebSocket endpoint.
    pub progress: Option<crate::graphql::ProgressHub>,
    /// The WebSocket endpoint's settings and counters (`ws.rs`).
    pub websocket: Arc<ws::WsState>,
    /// With Redis configured: whether it answers now (`/readyz` reports it).
    pub redis_up: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// Automatic persisted queries (`None`: turned off).
    pub persisted: Option<apq::PersistedQueries>,
    /// Parsed documents, by text.
    pub(crate) documents: graphql::DocumentCache,
}

impl AppState {
    pub fn new(
        schemas: GatewaySchemas,
        client: Client,
        pages: PageCache,
        operation_deadline: Duration,
    ) -> Self {
        AppState {
            schemas,
            client,
            pages,
            operation_deadline,
            readiness: Arc::new(health::Readiness::default()),
            security: Arc::new(auth::Security::closed()),
            shed: Shedder::disabled(),
            examples: None,
            outbox: None,
            limits: OperationLimits::default(),
            progress: None,
            websocket: Arc::new(ws::WsState::default()),
            redis_up: None,
            documents: graphql::DocumentCache::default(),
            persisted: Some(apq::PersistedQueries::new(
                crate::config::GraphqlConfig::default().persisted_query_cache_bytes,
            )),
        }
    }

    /// Sets the submission outbox.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Sets the guards of `/graphql` (see [`auth::Security::from_config`]).
    pub fn with_security(mut self, security: auth::Security) -> Self {
        self.security = Arc::new(security);
        self
    }
}

/// The gateway's router.
pub fn router(state: AppState) -> Router {
    metrics::handle();
    // One allocation shared by every request: axum clones the state for each
    // middleware and handler that takes it.
    let state = Arc::new(state);
    let security = state.security.clone();
    // The guard (authentication, rate limit, trusted documents) runs first, so that
    // only admitted callers take a place in the shedder's queue.
    let graphql_routes = Router::new()
        .route(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                .layer(axum::middleware::from_fn_with_state(
                    state.shed.clone(),
                    shed::middleware,
                )),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            security.clone(),
            auth::guard,
        ))
        // The guard has read the body whole, within `security.max_body_bytes`
        // (`body.rs`); the handler's extractor must not apply another limit.
        .layer(DefaultBodyLimit::disable())
        // WebSocket upgrades (subscriptions) authenticate in `connection_init`, so
        // they are taken before the guard; every other request passes through.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ws::intercept,
        ));
    let mut router = Router::new().merge(graphql_routes);
    if state.examples.is_some() {
        router = router.route("/examples/petition", get(examples::petition));
    }
    let router = router
        .route("/", get(graphiql::page))
        .route("/graphiql/graphiql.min.css", get(graphiql::css))
        .route("/graphiql/graphiql.min.js", get(graphiql::js))
        .route("/graphiql/react.production.min.js", get(graphiql::react))
        .route(
            "/graphiql/react-dom.production.min.js",
            get(graphiql::react_dom),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state);
    security
        .cors
        .apply(router, security.authenticator.akid_header.clone())
}
