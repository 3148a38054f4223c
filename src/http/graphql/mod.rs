//! GraphQL over HTTP, as the GraphQL-over-HTTP specification says: POST with a JSON
//! body, GET for queries only, `Accept` negotiation between `application/json` and
//! `application/graphql-response+json`, 4xx for requests that fail before execution.
//!
//! `request.rs` reads and checks what the client sent; this file runs it: the cost
//! checks before the schema, execution under the deadline, accounting and metrics,
//! and the answer.

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::Variables;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};
use tracing::Instrument as _;

use super::apq::{self, Hash};
use super::auth::Caller;
use super::errors::{negotiate, respond_bytes, Format, HttpError};
use super::AppState;
use crate::actionkit::UpstreamCounter;
use crate::graphql::access::{self, selected_operation, Principal, Transport};
use crate::graphql::limits::{self, Refusal};
use crate::graphql::upstream_cost::{self, Batching};
use crate::graphql::{got_past_validation, ErrorCode, Loaders};
use crate::telemetry::Untrusted;

mod documents;
mod request;

use documents::variable_shape;
pub(crate) use documents::DocumentCache;

use request::{
    is_json_content_type, params_from_json, params_from_query_string, variable_coercion_error,
    Method, Params,
};

/// A request the gateway refuses before GraphQL sees it.
fn request_error(status: StatusCode, format: Format, message: &'static str) -> Response {
    HttpError::bad_request(status, message).respond_as(format)
}

/// A document refused by a limit before it reaches the schema: a GraphQL request
/// error (no `data`).
fn refusal_response(format: Format, refusal: Refusal) -> Response {
    let mut err = HttpError::new(ErrorCode::BadUserInput, refusal.message)
        .with_status(format.request_error_status());
    if let Some(rule) = refusal.limit {
        err = err.with_limit(rule);
    }
    err.respond_as(format)
}

/// A GraphQL request error found by the handler (the request is well-formed
/// GraphQL-over-HTTP but cannot execute): 200 under `application/json`, 400 under
/// `application/graphql-response+json`, and no `data` entry either way.
fn graphql_request_error(format: Format, message: String) -> Response {
    HttpError::new(ErrorCode::BadUserInput, message)
        .with_status(format.request_error_status())
        .respond_as(format)
}

/// Whether the client asked for the upstream accounting in `extensions.upstream`: a
/// header `X-Upstream-Accounting: 1` or the request extension `"upstreamAccounting": true`.
fn wants_accounting(headers: &HeaderMap, params: &Params) -> bool {
    let header = headers
        .get("x-upstream-accounting")
        .is_some_and(|v| matches!(v.as_bytes(), b"1" | b"true"));
    let extension = params
        .extensions
        .as_ref()
        .and_then(|e| e.get("upstreamAccounting"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    header || extension
}

/// Counts the errors of an operation by code (`gateway_graphql_errors_total`); the codes
/// are the closed list of `graphql/error.rs`, so the label stays bounded.
fn count_error_codes(errors: &[async_graphql::ServerError]) {
    for e in errors {
        let code = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .and_then(|v| match v {
                async_graphql::Value::String(s) => crate::graphql::ErrorCode::ALL
                    .iter()
                    .find(|c| c.as_str() == s)
                    .map(|c| c.as_str()),
                _ => None,
            })
            .unwrap_or("OTHER");
        metrics::counter!("gateway_graphql_errors_total", "code" => code).increment(1);
    }
}

/// Records one operation: a duration histogram labelled by result, and a log line.
/// Operation names are chosen by clients, so they go to the log, not to metric labels,
/// and escaped there (a newline or an ANSI escape in a name cannot forge a line).
fn observe(
    operation_name: &str,
    result: &'static str,
    elapsed: std::time::Duration,
    upstream: &UpstreamCounter,
) {
    metrics::histogram!("gateway_graphql_operation_duration_seconds", "result" => result)
        .record(elapsed.as_secs_f64());
    // Successful operations log at debug: at info the line costs about a third of the
    // throughput at 0 ms upstream (BENCHMARKS.md). Failures stay visible at info.
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                operation = %Untrusted(operation_name),
                result,
                duration_ms = elapsed.as_millis() as u64,
                upstream_calls = upstream.calls(),
                upstream_retries = upstream.retries(),
                "graphql operation"
            )
        };
    }
    if result == "ok" {
        line!(debug);
    } else {
        line!(info);
    }
}

/// Automatic persisted queries: a hash-only request gets its document from the cache
/// (or `PERSISTED_QUERY_NOT_FOUND`), a document sent with a hash must be that hash's.
/// Returns the hash to register once the document has passed the document limits.
fn persisted_query(
    state: &AppState,
    params: &mut Params,
    format: Format,
) -> Result<Option<Hash>, Box<Response>> {
    let hash = match apq::requested(params.extensions.as_ref()) {
        Ok(Some(hash)) => hash,
        Ok(None) => return Ok(None),
        Err(msg) => return Err(Box::new(graphql_request_error(format, msg.to_owned()))),
    };
    // A miss must not be kept by a cache in front of the gateway (GET).
    let refuse = |code: ErrorCode, message: &'static str| {
        Box::new(
            HttpError::new(code, message)
                .with_status(format.request_error_status())
                .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
                .respond_as(format),
        )
    };
    match &params.query {
        Some(query) => {
            if apq::sha256(query) != hash {
                return Err(Box::new(graphql_request_error(
                    format,
                    "the document does not match extensions.persistedQuery.sha256Hash".into(),
                )));
            }
            // With trusted documents enforced, only the manifest's hashes are known
            // (the guard resolved this one from it, or it came from an exempt key).
            let enforced = state
                .security
                .trusted
                .as_ref()
                .is_some_and(|t| t.enforces());
            Ok(state.persisted.as_ref().filter(|_| !enforced).map(|_| hash))
        }
        None => {
            let Some(cache) = &state.persisted else {
                metrics::counter!("gateway_persisted_queries_total", "result" => "unsupported")
                    .increment(1);
                return Err(refuse(
                    ErrorCode::PersistedQueryNotSupported,
                    "PersistedQueryNotSupported",
                ));
            };
            match cache.get(&hash) {
                Some(doc) => {
                    metrics::counter!("gateway_persisted_queries_total", "result" => "hit")
                        .increment(1);
                    params.query = Some(doc.to_string());
                    Ok(None)
                }
                None => {
                    metrics::counter!("gateway_persisted_queries_total", "result" => "miss")
                        .increment(1);
                    Err(refuse(
                        ErrorCode::PersistedQueryNotFound,
                        "PersistedQueryNotFound",
                    ))
                }
            }
        }
    }
}

/// Runs one operation inside a `graphql.operation` span (the parent of its upstream
/// calls' spans, and the root of its trace when traces are exported).
async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    mut params: Params,
    format: Format,
    method: Method,
    caller: Option<Arc<str>>,
) -> Response {
    let register = match persisted_query(state, &mut params, format) {
        Ok(register) => register,
        Err(response) => return *response,
    };
    let span = tracing::info_span!(
        "graphql.operation",
        otel.kind = "server",
        graphql.operation.name = %Untrusted(params.operation_name.as_deref().unwrap_or_default()),
        http.request.method = match method {
            Method::Get => "GET",
            Method::Post => "POST",
        },
    );
    execute_operation(state, headers, params, format, method, caller, register)
        .instrument(span)
        .await
}

async fn execute_operation(
    state: &AppState,
    headers: &HeaderMap,
    params: Params,
    format: Format,
    method: Method,
    caller: Option<Arc<str>>,
    register: Option<Hash>,
) -> Response {
    let started = std::time::Instant::now();
    let accounting = wants_accounting(headers, &params);
    let operation_name = params.operation_name.clone().unwrap_or_default();
    let limits = &state.limits;
    let refuse = |refusal: Refusal| {
        observe(
            &operation_name,
            "request_error",
            started.elapsed(),
            &UpstreamCounter::default(),
        );
        refusal_response(format, refusal)
    };
    // The document's cost is checked on the document itself, before anything walks
    // it with fragments expanded (async-graphql's own passes all do): tokens before
    // parsing, then sizes computed once per fragment. Every later pass is bounded by
    // what these admit, so no step of a request holds a runtime worker for long.
    let Some(query) = params.query else {
        // `persisted_query` has filled it in or refused the request.
        return graphql_request_error(format, "`query` is required".into());
    };
    // A document seen before was parsed and checked then; a new one is checked,
    // parsed once, and kept when it passes.
    let parsed = match state.documents.get(&query) {
        Some(doc) => Some(doc),
        None => {
            if let Err(refusal) = limits::check_tokens(&limits.document, &query) {
                return refuse(refusal);
            }
            match async_graphql::parser::parse_query(&query) {
                Ok(doc) => {
                    if let Err(refusal) = limits::check_document(&limits.document, &doc) {
                        return refuse(refusal);
                    }
                    Some(state.documents.insert(query.clone(), doc))
                }
                // Left for async-graphql to report (as a request error, below).
                Err(_) => None,
            }
        }
    };
    let mut request = async_graphql::Request::new(query);
    let admitted = parsed.is_some();
    // The shape of the variables (what validation reads of them), when the document
    // was parsed here and selects an operation.
    let mut shape = None;
    if let Some(doc) = parsed.as_deref().map(|d| &*d.parsed) {
        // Handed to async-graphql, which would otherwise parse the text again.
        request.set_parsed_query(doc.clone());
        if let Some(op) = selected_operation(doc, params.operation_name.as_deref()) {
            shape = Some(variable_shape(
                params.operation_name.as_deref(),
                op,
                params.variables.as_ref(),
            ));
            if method == Method::Get && op.ty != OperationType::Query {
                let mut resp = request_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format,
                    "only queries may be sent with GET; use POST",
                );
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                return resp;
            }
            if let Some(msg) = variable_coercion_error(op, params.variables.as_ref()) {
                observe(
                    &operation_name,
                    "request_error",
                    started.elapsed(),
                    &UpstreamCounter::default(),
                );
                return graphql_request_error(format, msg);
            }
            // What the operation would cost, from its plan: fields resolved
            // (`__typename` included) and ActionKit calls.
            let batching = Batching::of(&state.client.capabilities());
            let cost = upstream_cost::estimate(doc, op, params.variables.as_ref(), batching);
            let expose = limits.document.expose;
            if cost.fields > limits.max_complexity {
                return refuse(Refusal::over("complexity", limits.max_complexity, expose));
            }
            if cost.calls > limits.max_upstream_calls {
                return refuse(Refusal::over(
                    "upstream calls",
                    limits.max_upstream_calls,
                    expose,
                ));
            }
        }
    }
    if let (true, Some(hash), Some(cache)) = (admitted, register, &state.persisted) {
        metrics::counter!("gateway_persisted_queries_total", "result" => "registered").increment(1);
        cache.insert(hash, Arc::from(request.query.as_str()));
    }
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = params.variables {
        request = request.variables(Variables::from_json(Value::Object(vars)));
    }
    if let Some(ext) = params.extensions {
        for (k, v) in ext {
            if let Ok(v) = async_graphql::Value::from_json(v) {
                request.extensions.insert(k, v);
            }
        }
    }
    // The principal the guard authenticated (nobody outside the guard), checked here
    // against the operation, after the cost checks and before validation, where an
    // extension would check it: this schema has none (see `GatewaySchemas`).
    let principal = access::CURRENT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| Principal::nobody());
    let refused = parsed.as_deref().and_then(|doc| {
        access::check_operation(
            &principal,
            &doc.parsed,
            request.operation_name.as_deref(),
            Transport::Http,
        )
        .err()
    });
    let loaders = Loaders::for_caller(&state.client, &state.pages, caller);
    let upstream = loaders.upstream.clone();
    let page_cache_hits = loaders.page_cache_hits.clone();
    let gate = loaders.gate.clone();
    let request = request.data(principal).data(loaders);

    let outcome = match refused {
        Some(message) => Ok(async_graphql::Response::from_errors(vec![
            access::forbidden_server_error(message),
        ])),
        None => {
            // A document that passed validation with variables of this shape passes
            // again: the schema that skips the repeated rules runs it.
            let revalidate = match (&parsed, shape) {
                (Some(doc), Some(shape)) => !doc.passed(shape),
                _ => true,
            };
            let schema = if revalidate {
                &state.schemas.http
            } else {
                state.schemas.validated()
            };
            // Client calls made by resolvers themselves (not through a loader) are
            // counted by this scope; loads are scoped by the loaders' spawner.
            let run = upstream.scope(tokio::time::timeout(
                state.operation_deadline,
                // Marked per poll: the loaders batch the keys asked for in one pass.
                gate.run(schema.execute(request)),
            ));
            let outcome = run.await;
            if let (true, Some(doc), Some(shape)) = (revalidate, &parsed, shape) {
                if outcome.as_ref().is_ok_and(got_past_validation) {
                    doc.record_pass(shape);
                }
            }
            outcome
        }
    };
    let elapsed = started.elapsed();
    let ran = outcome.as_ref().is_ok_and(got_past_validation);
    let result_label = match &outcome {
        Err(_) => "deadline",
        Ok(_) if !ran => "request_error",
        Ok(r) if r.is_err() => "partial",
        Ok(_) => "ok",
    };
    observe(&operation_name, result_label, elapsed, &upstream);
    if let Ok(r) = &outcome {
        count_error_codes(&r.errors);
    }
    let mut response = match outcome {
        Ok(r) => r,
        Err(_) => {
            // Execution had begun, so this is like a field error that nulled the
            // whole result: `data: null` and 200. (Under
            // application/graphql-response+json a body without `data` would need
            // a 4xx/5xx status, and the spec recommends 200 for `data: null`.)
            let mut body = HttpError::new(
                ErrorCode::UpstreamTimeout,
                "the operation ran past its deadline",
            )
            .body();
            if let Some(obj) = body.as_object_mut() {
                obj.insert("data".into(), Value::Null);
            }
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            return respond_bytes(StatusCode::OK, format, bytes);
        }
    };
    if accounting {
        let stats = json!({
            "calls": upstream.calls(),
            "retries": upstream.retries(),
            "pageCacheHits": page_cache_hits.load(std::sync::atomic::Ordering::Relaxed),
            "upstreamMs": upstream.upstream_time().as_secs_f64() * 1000.0,
            "durationMs": elapsed.as_secs_f64() * 1000.0,
        });
        if let Ok(stats) = async_graphql::Value::from_json(stats) {
            response.extensions.insert("upstream".into(), stats);
        }
    }
    // Parse and validation errors come from async-graphql without a code.
    for err in &mut response.errors {
        let ext = err.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            let code = if ran {
                ErrorCode::Internal
            } else {
                ErrorCode::BadUserInput
            };
            ext.set("code", code.as_str());
        }
    }
    // Serialized straight from async-graphql's types, never through serde_json::Value
    // (a BTreeMap here): the result keeps the field order of the selection set.
    let (status, bytes) = if ran {
        (StatusCode::OK, serde_json::to_vec(&response))
    } else {
        // The request failed before execution: no `data` entry at all.
        (
            format.request_error_status(),
            serde_json::to_vec(&ErrorsOnly {
                errors: &response.errors,
                extensions: &response.extensions,
            }),
        )
    };
    match bytes {
        Ok(bytes) => respond_bytes(status, format, bytes),
        Err(_) => HttpError::new(ErrorCode::Internal, "the response could not be serialized")
            .respond_as(format),
    }
}

/// A GraphQL response without `data` (a request error).
#[derive(serde::Serialize)]
struct ErrorsOnly<'a> {
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// The response format the client accepts, or 406 (in JSON) when it accepts neither.
fn response_format(headers: &HeaderMap) -> Result<Format, Box<Response>> {
    negotiate(headers).ok_or_else(|| {
        Box::new(request_error(
            StatusCode::NOT_ACCEPTABLE,
            Format::Json,
            "the gateway answers application/json or application/graphql-response+json",
        ))
    })
}

pub(crate) async fn post(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match response_format(&headers) {
        Ok(format) => format,
        Err(refused) => return *refused,
    };
    // Only JSON bodies: text/plain, forms and multipart are what a cross-site page can
    // send without a preflight (CSRF), and the spec asks for JSON anyway.
    if !is_json_content_type(&headers) {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format,
            "POST /graphql needs Content-Type: application/json",
        );
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                format,
                "the body is not valid JSON",
            )
        }
    };
    match params_from_json(value) {
        Ok(params) => {
            let caller = caller.map(|Extension(Caller(c))| c);
            execute(&state, &headers, params, format, Method::Post, caller).await
        }
        Err(msg) => request_error(StatusCode::BAD_REQUEST, format, msg),
    }
}

pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let format = match response_format(&headers) {
        Ok(format) => format,
        Err(refused) => return *refused,
    };
    let params = match params_from_query_string(raw.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(msg) => return request_error(StatusCode::BAD_REQUEST, format, msg),
    };
    let caller = caller.map(|Extension(Caller(c))| c);
    execute(&state, &headers, params, format, Method::Get, caller).await
}
