//! `/metrics` in Prometheus text, and the HTTP request metrics. Labels come from fixed
//! lists (route templates, status codes), never from ids or URLs.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Buckets for durations, from 0.5 ms to 30 s.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const SIZES: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// Installs the process-wide Prometheus recorder once and returns its handle (`None`
/// if another recorder was installed first, e.g. by an embedding program).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZES))
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "gateway_http_requests_total",
        "HTTP requests by route and status"
    );
    describe_histogram!(
        "gateway_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request duration by route"
    );
    describe_histogram!(
        "gateway_graphql_operation_duration_seconds",
        Unit::Seconds,
        "GraphQL operation duration by operation type and outcome"
    );
    describe_counter!(
        "gateway_upstream_requests_total",
        "ActionKit calls by resource, method and outcome"
    );
    describe_histogram!(
        "gateway_upstream_request_duration_seconds",
        Unit::Seconds,
        "ActionKit call duration by resource"
    );
    describe_gauge!("gateway_upstream_in_flight", "ActionKit calls in flight");
    describe_counter!("gateway_upstream_retries_total", "ActionKit calls retried");
    describe_histogram!(
        "gateway_dataloader_batch_size",
        "Keys per dataloader batch, by loader"
    );
    describe_counter!("gateway_page_cache_total", "Page cache lookups by result");
    describe_gauge!(
        "gateway_outbox_queue_depth",
        "Submissions stored and not yet delivered to ActionKit"
    );
    describe_counter!(
        "gateway_outbox_submissions_total",
        "Submissions taken, by the answer given (processed, queued, failed, duplicate, error)"
    );
    describe_counter!(
        "gateway_outbox_delivery_attempts_total",
        "Sends and lookups of submissions, by path (at_once, worker) and result"
    );
    describe_counter!(
        "gateway_graphql_errors_total",
        "Errors answered, by code (the closed list of README's error codes)"
    );
    describe_gauge!(
        "gateway_upstream_max_in_flight",
        "The ActionKit budget: calls in flight allowed (for all replicas with Redis)"
    );
    describe_gauge!(
        "gateway_redis_up",
        "1 while Redis answers, 0 while it does not"
    );
    describe_counter!(
        "gateway_redis_errors_total",
        "Redis commands that failed, by operation and kind"
    );
    describe_counter!(
        "gateway_outbox_local_fallback_total",
        "Submissions stored in the replica's own store because Redis was unreachable"
    );
    describe_histogram!(
        "gateway_outbox_delivery_delay_seconds",
        Unit::Seconds,
        "From a submission's arrival to its action existing upstream"
    );
}

/// Renders the metrics.
pub async fn render() -> Response {
    let body = handle().map(|h| h.render()).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The method as a label: one of the nine standard methods, or `other` (the method
/// is the client's to choose, and every distinct label value is a series kept
/// forever).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

/// The status as a label: a standard status code, or `other`.
fn status_label(status: StatusCode) -> &'static str {
    STATUS_CODES
        .iter()
        .find(|s| s.0 == status.as_u16())
        .map_or("other", |s| s.1)
}

/// The statuses the gateway answers with (anything else is labelled `other`).
const STATUS_CODES: &[(u16, &str)] = &[
    (200, "200"),
    (204, "204"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (406, "406"),
    (408, "408"),
    (413, "413"),
    (415, "415"),
    (429, "429"),
    (500, "500"),
    (502, "502"),
    (503, "503"),
    (504, "504"),
];

/// Counts and times every request by its route template. Every label comes from a
/// fixed list: the route templates (`unmatched` for any other path), the methods
/// ([`method_label`]) and the statuses ([`status_label`]).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = status_label(resp.status());
    metrics::counter!("gateway_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("gateway_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_lists() {
        assert_eq!(method_label(&Method::POST), "POST");
        let garbage = Method::from_bytes(&[b'X'; 4096]).unwrap();
        assert_eq!(method_label(&garbage), "other");
        assert_eq!(status_label(StatusCode::NOT_FOUND), "404");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "other");
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT), "other");
    }
}
