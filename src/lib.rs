//! actionkit-graphql: a GraphQL gateway in front of the ActionKit REST API.
//!
//! Layout (each layer knows only the one below it):
//! - [`http`]: axum router, GraphQL-over-HTTP handling, GraphiQL, health.
//! - [`graphql`]: the schema, request-scoped dataloaders, error mapping.
//! - [`actionkit`]: the typed REST client, the only ActionKit-aware code.
//! - [`sandbox`]: an ActionKit emulator served over HTTP; shares no code with the client.

pub mod actionkit;
pub mod sandbox;
