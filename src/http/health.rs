//! Liveness and readiness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::Mutex;

use super::AppState;

/// How long a readiness answer is reused, so probes do not hammer ActionKit.
const READY_TTL: Duration = Duration::from_secs(5);

/// The last readiness check and when it ran.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, bool)>>,
}

/// Alive: the process answers HTTP. Never calls ActionKit.
pub(super) async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready: ActionKit answers an authenticated call with the configured credential, and
/// the submission store can write. The body also says how many submissions wait and,
/// with Redis configured, whether Redis answers (`"redis": "up"` or `"down"`).
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if let Some(outbox) = &state.outbox {
        if let Err(e) = outbox.check().await {
            tracing::error!(error = %e, "readiness: the submission store cannot write");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unready", "reason": "the submission store cannot write"})),
            )
                .into_response();
        }
    }
    let queued = state.outbox.as_ref().map(|o| o.queue_depth());
    let mut last = state.readiness.last.lock().await;
    let ready = match *last {
        Some((at, ready)) if at.elapsed() < READY_TTL => ready,
        _ => {
            // 429: ActionKit is there and busy (for instance with queued submissions
            // being delivered); taking this replica out of service would not help.
            let ready = matches!(
                state.client.check_credentials().await,
                Ok(()) | Err(crate::actionkit::Error::RateLimited)
            );
            *last = Some((Instant::now(), ready));
            ready
        }
    };
    if ready {
        let mut body = json!({"status": "ready"});
        if let Some(queued) = queued {
            body["queued_submissions"] = json!(queued);
        }
        // Redis down does not make a replica unready: it serves on local state (taking
        // every replica out of service at once would be the outage Redis is there to
        // avoid). The body and `gateway_redis_up` say so.
        if let Some(up) = &state.redis_up {
            body["redis"] = json!(if up() { "up" } else { "down" });
        }
        Json(body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unready", "reason": "ActionKit is unreachable or refuses the credential"})),
        )
            .into_response()
    }
}
