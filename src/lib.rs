//! actionkit-graphql: a GraphQL gateway in front of the ActionKit REST API.
//!
//! Layout (each layer knows only the one below it):
//! - [`http`]: axum router, GraphQL-over-HTTP handling, GraphiQL, health.
//! - [`graphql`]: the schema, request-scoped dataloaders, error mapping.
//! - [`actionkit`]: the typed REST client, the only ActionKit-aware code.
//! - [`outbox`]: submissions stored durably and delivered to ActionKit exactly once.
//! - [`shared_state`]: Redis, for several replicas (budget, rate limits, pages, submissions).
//! - [`sandbox`]: an ActionKit emulator served over HTTP; shares no code with the client.
//! - [`app`], [`cli`], [`config`], [`telemetry`]: wiring.

pub mod actionkit;
pub mod app;
pub mod cli;
pub mod config;
pub mod graphql;
pub mod http;
pub mod outbox;
pub mod sandbox;
pub mod shared_state;
pub mod telemetry;
