//! Control endpoints (no auth, not counted, no latency): `GET /__sandbox/stats`,
//! `POST /__sandbox/stats/reset`, `GET`/`POST /__sandbox/faults`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering as AtOrd;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::respond::{empty, error, json_resp};
use super::{App, MAX_BODY};
use crate::sandbox::Faults;

/// What `GET /__sandbox/stats` reports.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) requests: u64,
    pub(super) by_route: BTreeMap<String, u64>,
    pub(super) max_in_flight: usize,
    pub(super) rejected_429: u64,
}

pub(super) async fn control(app: &App, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    match (method, path.as_str()) {
        (Method::GET, "/__sandbox/stats") => {
            let s = app.stats();
            json_resp(
                StatusCode::OK,
                &json!({
                    "requests": s.requests,
                    "by_route": s.by_route,
                    "max_in_flight": s.max_in_flight,
                    "rejected_429": s.rejected_429,
                    "in_flight": app.in_flight.load(AtOrd::SeqCst),
                }),
            )
        }
        (Method::POST, "/__sandbox/stats/reset") => {
            *app.stats() = Stats::default();
            empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, "/__sandbox/faults") => {
            let f = app.fault_state().faults.clone();
            json_resp(StatusCode::OK, &json!(f))
        }
        (Method::POST, "/__sandbox/faults") => {
            let bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
                Ok(b) => b,
                Err(_) => return empty(StatusCode::PAYLOAD_TOO_LARGE),
            };
            let parsed: Result<Faults, _> = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(Faults::default())
            } else {
                serde_json::from_slice(&bytes)
            };
            match parsed {
                Ok(f) => {
                    let probs = [
                        f.error_500,
                        f.error_503,
                        f.slow,
                        f.malformed_json,
                        f.drop_connection,
                        f.error_500_after_write,
                        f.drop_after_write,
                        f.slow_after_write,
                    ];
                    if probs.iter().any(|p| !(0.0..=1.0).contains(p))
                        || f.error_500 + f.error_503 + f.malformed_json + f.drop_connection > 1.0
                        || f.error_500_after_write + f.drop_after_write > 1.0
                    {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "Probabilities must be within 0..1, the error ones must sum to at most 1, and so must the after-write ones.",
                        );
                    }
                    let mut fs = app.fault_state();
                    fs.faults = f.clone();
                    fs.rng = ChaCha8Rng::seed_from_u64(app.config.seed ^ 0xfa17_5eed);
                    json_resp(StatusCode::OK, &json!(f))
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &format!("Invalid faults: {e}")),
            }
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}
