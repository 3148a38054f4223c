//! `/metrics` in Prometheus text, and the HTTP request metrics. Labels come from fixed
//! lists (route templates, status codes), never from ids or URLs.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header;
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

/// Counts and times every request by its route template.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("gateway_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("gateway_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}
