//! The gateway's HTTP surface: `/graphql` (POST, and GET for queries), GraphiQL at `/`,
//! `/healthz` (alive) and `/readyz` (ActionKit reachable with the credential).

mod graphiql;
pub(crate) mod graphql;
mod health;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

pub use graphiql::EXAMPLE_QUERY;

use crate::actionkit::Client;
use crate::graphql::{GatewaySchema, PageCache};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub schema: GatewaySchema,
    pub client: Client,
    pub pages: PageCache,
    pub loader_delay: Duration,
    pub operation_deadline: Duration,
    pub readiness: Arc<health::Readiness>,
}

impl AppState {
    pub fn new(
        schema: GatewaySchema,
        client: Client,
        pages: PageCache,
        loader_delay: Duration,
        operation_deadline: Duration,
    ) -> Self {
        AppState {
            schema,
            client,
            pages,
            loader_delay,
            operation_deadline,
            readiness: Arc::new(health::Readiness::default()),
        }
    }
}

/// The largest request body accepted on `/graphql`.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The gateway's router.
pub fn router(state: AppState) -> Router {
    metrics::handle();
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
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
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
