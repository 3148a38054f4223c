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
pub mod types;
pub mod upstream_cost;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};

use async_graphql::{Response, Schema};

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
    /// How long a dataloader waits for sibling keys before it sends a batch.
    pub loader_delay: Duration,
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
            loader_delay: Duration::from_micros(100),
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

/// Builds the schema. The client and the outbox go into schema data; loaders are added
/// per request by [`Loaders::new`].
pub fn build_schema(
    client: Option<Client>,
    outbox: Option<Outbox>,
    settings: &GraphqlSettings,
) -> GatewaySchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_complexity(settings.max_complexity)
        .extension(ExecutionMarker)
        .extension(access::AccessExtension)
        .extension(limits::LimitsExtension(limits::Limits {
            max_depth: settings.max_depth,
            ..settings.limits
        }));
    if !settings.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    if let Some(client) = client {
        let hub = match &settings.progress {
            Some(hub) => hub.clone(),
            None => {
                let hub = ProgressHub::new(client.clone(), &settings.progress_settings);
                if let Some(outbox) = &outbox {
                    hub.follow(outbox.processed_pages());
                }
                hub
            }
        };
        builder = builder.data(hub).data(client);
    }
    builder = builder.data(submit::SubmitGuard::new(
        &settings.submit,
        settings.akid_secret.clone(),
    ));
    if let Some(outbox) = outbox {
        builder = builder.data(outbox);
    }
    builder.finish()
}

/// The SDL of the schema, as `print-schema` writes it and `schema.graphql` keeps it.
pub fn sdl() -> String {
    build_schema(None, None, &GraphqlSettings::default()).sdl()
}

/// Set by [`ExecutionMarker`] when an operation passed parsing and validation.
#[derive(Clone, Default)]
pub struct Executed(Arc<AtomicBool>);

impl Executed {
    /// True once the operation got past parsing and validation.
    pub fn got_past_validation(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Tells the handler whether GraphQL got as far as executing, so that the HTTP layer
/// can answer requests that fail in parsing or validation with 4xx and no `data`.
pub struct ExecutionMarker;

impl ExtensionFactory for ExecutionMarker {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ExecutionMarker)
    }
}

#[async_trait::async_trait]
impl Extension for ExecutionMarker {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(flag) = ctx.data_opt::<Executed>() {
            flag.0.store(true, Ordering::Release);
        }
        next.run(ctx, operation_name).await
    }
}
