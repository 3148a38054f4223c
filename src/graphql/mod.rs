//! The GraphQL schema over the ActionKit client: types, request-scoped loaders, and
//! the mapping of errors to the closed list of codes.

pub mod access;
pub mod batch;
mod context;
pub mod error;
pub mod limits;
pub mod loaders;
mod mutation;
pub mod progress;
mod query;
pub mod shared_cache;
mod submit;
mod submit_input;
mod subscription_checks;
pub mod types;
pub mod upstream_cost;

use std::sync::{Arc, OnceLock};

use async_graphql::{Response, Schema, ValidationMode};

pub use error::{ErrorCode, GatewayError};
pub use loaders::{Loaders, PageCache};
pub use mutation::MutationRoot;
pub use progress::{ProgressCache, ProgressHub, ProgressSettings, SubscriptionRoot};
pub use query::QueryRoot;

use crate::actionkit::Client;
use crate::outbox::Outbox;

/// The gateway's schema type.
pub type GatewaySchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Settings of the GraphQL layer.
#[derive(Debug, Clone)]
pub struct GraphqlSettings {
    /// Whether introspection is allowed (development) or refused (production).
    pub introspection: bool,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Tokens, aliases, directives (see [`limits`]).
    pub limits: limits::Limits,
    /// Taking actions: custom fields per page, caches, limits of public submitters.
    pub submit: crate::config::SubmitConfig,
    /// The instance's AKID secret: submitted AKIDs are checked before they are sent.
    pub akid_secret: Option<secrecy::SecretString>,
    /// Page progress: the hub shared with the WebSocket endpoint. Unset: the schema
    /// makes its own from `progress_settings` when it has a client.
    pub progress: Option<ProgressHub>,
    pub progress_settings: ProgressSettings,
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        GraphqlSettings {
            introspection: true,
            max_depth: 10,
            max_complexity: 10_000,
            limits: limits::Limits::default(),
            submit: crate::config::SubmitConfig::default(),
            akid_secret: None,
            progress: None,
            progress_settings: ProgressSettings::default(),
        }
    }
}

/// The schema twice, over the same data (client, outbox, progress hub, submission
/// guard): the same types and the same state, checked in two places.
///
/// async-graphql resolves every field on a fast path only when a schema has no
/// extension at all; with one, each field builds a `ResolveInfo` (registry lookups,
/// type names formatted per list item) and runs a boxed chain of hooks. The HTTP
/// handler does the checks an extension would do itself ([`limits`] and
/// [`access::check_operation`] on the document it has parsed and cached, and whether
/// the operation got past validation from the response's shape,
/// [`got_past_validation`]), so `/graphql` over HTTP runs on the schema without
/// extensions. Subscriptions over WebSocket reach async-graphql through its protocol
/// handler, so that schema has one extension that checks them
/// ([`subscription_checks`]). It is built on the first WebSocket connection: a
/// gateway that only serves HTTP never holds it.
///
/// A third copy, for HTTP too, skips async-graphql's validation rules (it keeps the
/// complexity and depth count, and the fragment-cycle check): the handler runs on it
/// only a document that passed full validation before with variables of the same
/// shape (`http/graphql/documents.rs`). It is built on the first such repeat.
#[derive(Clone)]
pub struct GatewaySchemas {
    /// For the HTTP handler: no extensions; the handler checks every operation.
    pub http: GatewaySchema,
    later: Arc<LaterSchemas>,
}

/// The schemas built on first use, and what they are built from.
struct LaterSchemas {
    parts: SchemaParts,
    websocket: OnceLock<GatewaySchema>,
    validated: OnceLock<GatewaySchema>,
}

impl GatewaySchemas {
    /// For the WebSocket endpoint: access and limits checked by an extension.
    pub fn websocket(&self) -> &GatewaySchema {
        let later = &*self.later;
        later
            .websocket
            .get_or_init(|| later.parts.build(true, ValidationMode::Strict))
    }

    /// For the HTTP handler, for a document and variables' shape that passed
    /// validation on [`http`](Self::http) before: the repeated rules are skipped.
    pub fn validated(&self) -> &GatewaySchema {
        let later = &*self.later;
        later
            .validated
            .get_or_init(|| later.parts.build(false, ValidationMode::Fast))
    }
}

/// What both schemas are built from.
struct SchemaParts {
    settings: GraphqlSettings,
    client: Option<Client>,
    hub: Option<ProgressHub>,
    guard: Arc<submit::SubmitGuard>,
    outbox: Option<Outbox>,
}

impl SchemaParts {
    fn build(&self, checked_by_extension: bool, validation: ValidationMode) -> GatewaySchema {
        let settings = &self.settings;
        let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
            .limit_complexity(settings.max_complexity)
            .validation_mode(validation);
        if checked_by_extension {
            builder = builder.extension(subscription_checks::SubscriptionChecks(limits::Limits {
                max_depth: settings.max_depth,
                ..settings.limits
            }));
        }
        if !settings.introspection {
            builder = builder.disable_introspection().disable_suggestions();
        }
        if let (Some(client), Some(hub)) = (&self.client, &self.hub) {
            builder = builder.data(hub.clone()).data(client.clone());
        }
        builder = builder.data(self.guard.clone());
        if let Some(outbox) = &self.outbox {
            builder = builder.data(outbox.clone());
        }
        builder.finish()
    }
}

/// Builds the HTTP schema, and what the WebSocket one is built from on first use.
/// The client and the outbox go into schema data; loaders are added per request by
/// [`Loaders::new`].
pub fn build_schemas(
    client: Option<Client>,
    outbox: Option<Outbox>,
    settings: &GraphqlSettings,
) -> GatewaySchemas {
    let hub = client.as_ref().map(|client| match &settings.progress {
        Some(hub) => hub.clone(),
        None => {
            let hub = ProgressHub::new(client.clone(), &settings.progress_settings);
            if let Some(outbox) = &outbox {
                hub.follow(outbox.processed_pages());
            }
            hub
        }
    });
    let guard = Arc::new(submit::SubmitGuard::new(
        &settings.submit,
        settings.akid_secret.clone(),
    ));
    let parts = SchemaParts {
        settings: settings.clone(),
        client,
        hub,
        guard,
        outbox,
    };
    GatewaySchemas {
        http: parts.build(false, ValidationMode::Strict),
        later: Arc::new(LaterSchemas {
            parts,
            websocket: OnceLock::new(),
            validated: OnceLock::new(),
        }),
    }
}

/// The SDL of the schema, as `print-schema` writes it and `schema.graphql` keeps it.
pub fn sdl() -> String {
    build_schemas(None, None, &GraphqlSettings::default())
        .http
        .sdl()
}

/// Whether an operation got past parsing and validation, from the response of a
/// schema without extensions: async-graphql answers a request it refuses before
/// executing (a syntax error, a validation error, an unknown operation name) with
/// `data: null` and errors that have no path. Once execution has begun, `data` is an
/// object, or null because a non-null root field failed, and then that field's error
/// has its path.
pub fn got_past_validation(response: &Response) -> bool {
    !matches!(response.data, async_graphql::Value::Null)
        || response.errors.is_empty()
        || response.errors.iter().any(|e| !e.path.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ran(query: &str) -> bool {
        let schemas = build_schemas(None, None, &GraphqlSettings::default());
        got_past_validation(&schemas.http.execute(query).await)
    }

    #[test]
    fn the_websocket_schema_is_built_once_on_first_use_with_the_same_types() {
        let schemas = build_schemas(None, None, &GraphqlSettings::default());
        assert!(
            schemas.later.websocket.get().is_none(),
            "built before any use"
        );
        let first: *const GatewaySchema = schemas.websocket();
        let again: *const GatewaySchema = schemas.clone().websocket();
        assert_eq!(first, again, "built twice");
        assert_eq!(schemas.websocket().sdl(), schemas.http.sdl());
    }

    #[tokio::test]
    async fn the_validated_schema_is_built_on_first_use_and_skips_the_rules() {
        let schemas = build_schemas(None, None, &GraphqlSettings::default());
        assert!(
            schemas.later.validated.get().is_none(),
            "built before any use"
        );
        assert_eq!(schemas.validated().sdl(), schemas.http.sdl());
        // A rule only full validation applies (an argument of the wrong type) refuses
        // on one and not on the other.
        let wrong = r#"{ page(name: 5) { title } }"#;
        assert!(!got_past_validation(&schemas.http.execute(wrong).await));
        assert!(got_past_validation(
            &schemas.validated().execute(wrong).await
        ));
    }

    #[tokio::test]
    async fn refusals_before_execution_are_told_from_executed_operations() {
        // Refused before execution: syntax, validation, no operation selected.
        assert!(!ran("{").await);
        assert!(!ran("{ noSuchField }").await);
        assert!(!ran("query A { __typename } query B { __typename }").await);
        // Executed: cleanly, and with a field error (nobody may read users) under its
        // path, also where the root field is non-null and `data` becomes null.
        assert!(ran("{ __typename }").await);
        assert!(ran(r#"{ page(name: "p") { title } }"#).await);
        let schemas = build_schemas(None, None, &GraphqlSettings::default());
        let nulled = schemas
            .http
            .execute(r#"{ users(ids: ["1"]) { id } }"#)
            .await;
        assert_eq!(nulled.data, async_graphql::Value::Null, "{nulled:?}");
        assert!(got_past_validation(&nulled));
    }
}
