//! The one extension of the WebSocket schema (see [`super::GatewaySchemas`]).
//!
//! Subscriptions reach async-graphql through its `graphql-transport-ws` handler, not
//! through the gateway's HTTP handler, so the checks that handler makes on every
//! operation are made here, in the same order, on each subscription's document: the
//! token count before parsing, the document's limits ([`limits::check_document`]),
//! then the principal's scopes and the transport ([`access::check_operation`]).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerResult, Variables};

use super::access::{self, Principal, Transport};
use super::limits::{self, Limits, Refusal};

/// Limits and access for operations that do not come through the HTTP handler.
pub(super) struct SubscriptionChecks(pub(super) Limits);

impl ExtensionFactory for SubscriptionChecks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Checks {
            limits: self.0,
            request: Mutex::default(),
        })
    }
}

struct Checks {
    limits: Limits,
    /// `(principal, operation name)` of the request, from `prepare_request`.
    request: Mutex<Option<(Principal, Option<String>)>>,
}

#[async_trait::async_trait]
impl Extension for Checks {
    /// Copies the principal into the request: the connection's, authenticated at
    /// `connection_init` (or the HTTP guard's, or nobody: fail closed).
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let principal = match request.data.get(&std::any::TypeId::of::<Principal>()) {
            Some(p) => p.downcast_ref::<Principal>().cloned(),
            None => None,
        };
        let principal = principal
            .or_else(|| access::CURRENT.try_with(Clone::clone).ok())
            .or_else(|| ctx.data_opt::<Principal>().cloned())
            .unwrap_or_else(Principal::nobody);
        if let Ok(mut slot) = self.request.lock() {
            *slot = Some((principal.clone(), request.operation_name.clone()));
        }
        request = request.data(principal);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        limits::check_tokens(&self.limits, query).map_err(Refusal::into_server_error)?;
        let doc = next.run(ctx, query, variables).await?;
        limits::check_document(&self.limits, &doc).map_err(Refusal::into_server_error)?;
        let (principal, name) = self
            .request
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(|| (Principal::nobody(), None));
        // Only the WebSocket schema has this extension.
        access::check_operation(&principal, &doc, name.as_deref(), Transport::WebSocket)
            .map_err(access::forbidden_server_error)?;
        Ok(doc)
    }
}
