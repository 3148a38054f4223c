//! Load shedding in front of GraphQL execution.
//!
//! At most `max_concurrent_operations` operations execute at once; up to
//! `max_queued_operations` more wait for a slot, each at most `queue_timeout_ms`.
//! A request beyond the queue, or one whose wait runs out, is refused at once with
//! HTTP 429, `Retry-After: 1` and a GraphQL-shaped body whose code is
//! `OVERLOADED` (the gateway's own overload, not ActionKit's limit), instead of piling up memory and latency behind a
//! concurrency cap that ActionKit (and the upstream semaphore) will not lift.
//!
//! Metrics: `gateway_graphql_queued` (gauge: waiting for a slot) and
//! `gateway_graphql_shed_total{reason="queue_full"|"queue_timeout"}`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use super::errors::HttpError;

use crate::config::GraphqlConfig;
use crate::graphql::ErrorCode;

/// The admission control of `/graphql` (cheap to clone through its `Arc`).
#[derive(Debug)]
pub struct Shedder {
    /// `None`: shedding is off.
    slots: Option<Slots>,
}

#[derive(Debug)]
struct Slots {
    /// Executing + queued.
    admitted: Arc<Semaphore>,
    executing: Arc<Semaphore>,
    queue_timeout: Duration,
}

/// Counts a request in `gateway_graphql_queued` while it waits.
struct Queued;

impl Queued {
    fn new() -> Self {
        metrics::gauge!("gateway_graphql_queued").increment(1.0);
        Queued
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        metrics::gauge!("gateway_graphql_queued").decrement(1.0);
    }
}

impl Shedder {
    /// No limit at all.
    pub fn disabled() -> Arc<Shedder> {
        Arc::new(Shedder { slots: None })
    }

    pub fn new(max_concurrent: usize, max_queued: usize, queue_timeout: Duration) -> Arc<Shedder> {
        if max_concurrent == 0 {
            return Shedder::disabled();
        }
        Arc::new(Shedder {
            slots: Some(Slots {
                admitted: Arc::new(Semaphore::new(max_concurrent.saturating_add(max_queued))),
                executing: Arc::new(Semaphore::new(max_concurrent)),
                queue_timeout,
            }),
        })
    }

    pub fn from_config(config: &GraphqlConfig) -> Arc<Shedder> {
        Shedder::new(
            config.max_concurrent_operations,
            config.max_queued_operations,
            Duration::from_millis(config.queue_timeout_ms),
        )
    }
}

/// The refusal: 429, `Retry-After`, a GraphQL-shaped JSON body.
fn refuse(reason: &'static str, headers: &HeaderMap) -> Response {
    metrics::counter!("gateway_graphql_shed_total", "reason" => reason).increment(1);
    HttpError::new(
        ErrorCode::Overloaded,
        "the gateway is handling too many requests; retry after a second",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    .respond(headers)
}

/// Middleware for the `/graphql` route.
pub(super) async fn middleware(
    State(shed): State<Arc<Shedder>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(slots) = &shed.slots else {
        return next.run(req).await;
    };
    let Ok(_admitted) = slots.admitted.clone().try_acquire_owned() else {
        return refuse("queue_full", req.headers());
    };
    let _executing = match slots.executing.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            let _queued = Queued::new();
            match tokio::time::timeout(slots.queue_timeout, slots.executing.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                _ => return refuse("queue_timeout", req.headers()),
            }
        }
    };
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_graphql_shaped_429_with_retry_after() {
        let resp = refuse("queue_full", &HeaderMap::new());
        assert_eq!(resp.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let body = futures::executor::block_on(axum::body::to_bytes(resp.into_body(), 4096))
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(r#""code":"OVERLOADED""#), "{body}");
    }

    #[test]
    fn zero_concurrency_means_no_shedding() {
        assert!(Shedder::new(0, 10, Duration::from_secs(1)).slots.is_none());
        assert!(Shedder::new(1, 0, Duration::from_secs(1)).slots.is_some());
    }
}
