//! Injected faults: drawn per `/rest/v1` request from a generator seeded with `--seed`.

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::respond::{error, too_many};
use super::App;
use crate::sandbox::Faults;

pub(super) const TRY_AGAIN: &str =
    "Sorry, this request could not be processed. Please try again later.";

pub(super) struct FaultState {
    pub(super) faults: Faults,
    pub(super) rng: ChaCha8Rng,
}

/// A fault that replaces the answer before the store is touched.
pub(super) enum Fault {
    Burst429,
    E500,
    E503,
    Malformed,
    Drop,
}

/// A fault that acts on a write once it was applied (and answered 2xx).
pub(super) enum AfterWrite {
    /// 500 with Django's HTML error page.
    E500,
    /// The head is sent, the body aborted.
    Drop,
    /// The answer is held back this many milliseconds.
    Slow(u64),
}

/// What one request drew.
pub(super) struct Roll {
    pub(super) before: Option<Fault>,
    pub(super) slow_ms: u64,
    pub(super) after: Vec<AfterWrite>,
}

/// Draws the faults of one request. `burst_429` first (no draw); then one draw picks
/// among the error faults and one adds `slow_ms`; for a write, when any `*_after_write`
/// probability is set, one more draw picks 500 or drop after the write and one adds a
/// delay after it. (Reads and writes without after-write faults draw exactly as
/// before those existed, so seeded sequences stay the same.)
pub(super) fn roll(app: &App, is_write: bool) -> Roll {
    let mut fs = app.fault_state();
    if fs.faults.burst_429 > 0 {
        fs.faults.burst_429 -= 1;
        return Roll {
            before: Some(Fault::Burst429),
            slow_ms: 0,
            after: Vec::new(),
        };
    }
    let u: f64 = fs.rng.gen();
    let s: f64 = fs.rng.gen();
    let f = fs.faults.clone();
    let slow_ms = if s < f.slow { f.slow_ms } else { 0 };
    let before = pick(
        u,
        [
            (f.error_500, Fault::E500),
            (f.error_503, Fault::E503),
            (f.malformed_json, Fault::Malformed),
            (f.drop_connection, Fault::Drop),
        ],
    );
    let mut after = Vec::new();
    if is_write && f.error_500_after_write + f.drop_after_write + f.slow_after_write > 0.0 {
        let u: f64 = fs.rng.gen();
        let s: f64 = fs.rng.gen();
        if s < f.slow_after_write {
            after.push(AfterWrite::Slow(f.slow_ms));
        }
        after.extend(pick(
            u,
            [
                (f.error_500_after_write, AfterWrite::E500),
                (f.drop_after_write, AfterWrite::Drop),
            ],
        ));
    }
    Roll {
        before,
        slow_ms,
        after,
    }
}

/// Whether a read targets the member a `user` / `user_actions` fault names: such a
/// read answers [`server_error`] every time, whatever else it asks for (a list naming that member
/// among others fails as a whole, as one bad row fails a real instance's list).
pub(super) fn targeted(faults: &Faults, path: &str, query: Option<&str>) -> bool {
    if faults.user.is_none() && faults.user_actions.is_none() {
        return false;
    }
    let rest = path.strip_prefix("/rest/v1/").unwrap_or("");
    let mut segs = rest.split('/').filter(|s| !s.is_empty());
    let (resource, id) = (segs.next().unwrap_or(""), segs.next());
    let names = |target: u64, keys: [&str; 2]| {
        crate::sandbox::query::parse_pairs(query)
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .any(|(_, v)| v.split(',').any(|x| x.trim().parse() == Ok(target)))
    };
    if let Some(target) = faults.user {
        if resource == "user"
            && (id.and_then(|i| i.parse().ok()) == Some(target) || names(target, ["id", "id__in"]))
        {
            return true;
        }
    }
    if let Some(target) = faults.user_actions {
        if resource.ends_with("action") && id.is_none() && names(target, ["user", "user__in"]) {
            return true;
        }
    }
    false
}

/// Django's 500 page, as a real instance answers a request that hit a bad row (not
/// the "try again later" 500, which is worth retrying).
pub(super) fn server_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html")],
        "<h1>Server Error (500)</h1>",
    )
        .into_response()
}

/// The outcome whose cumulative probability band `u` falls in, if any.
fn pick<T, const N: usize>(u: f64, outcomes: [(f64, T); N]) -> Option<T> {
    let mut acc = 0.0;
    for (p, outcome) in outcomes {
        acc += p;
        if u < acc {
            return Some(outcome);
        }
    }
    None
}

/// Applies the after-write faults to the answer of a write that was applied (2xx);
/// other answers go out unchanged.
pub(super) async fn after_write(resp: Response, faults: Vec<AfterWrite>) -> Response {
    if faults.is_empty() || !resp.status().is_success() {
        return resp;
    }
    let mut resp = resp;
    for fault in faults {
        resp = match fault {
            AfterWrite::Slow(ms) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                resp
            }
            AfterWrite::E500 => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html")],
                "<h1>Server Error (500)</h1>",
            )
                .into_response(),
            AfterWrite::Drop => {
                // The real head (a 204 cannot carry a body to break: 200 instead), then
                // half the body and a broken connection.
                let (mut parts, body) = resp.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                if parts.status == StatusCode::NO_CONTENT {
                    parts.status = StatusCode::OK;
                }
                parts.headers.remove(header::CONTENT_LENGTH);
                let half = bytes.slice(..bytes.len() / 2);
                let stream = futures::stream::iter(vec![
                    Ok::<Bytes, std::io::Error>(half),
                    Err(std::io::Error::other(
                        "sandbox: dropped connection after the write",
                    )),
                ]);
                Response::from_parts(parts, Body::from_stream(stream))
            }
        };
    }
    resp
}

/// The answer of a request that drew `fault` (the store is not touched).
pub(super) fn respond(app: &App, fault: Fault) -> Response {
    match fault {
        Fault::Burst429 => {
            app.stats().rejected_429 += 1;
            too_many()
        }
        Fault::E500 => error(StatusCode::INTERNAL_SERVER_ERROR, TRY_AGAIN),
        Fault::E503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "Service Temporarily Unavailable",
        )
            .into_response(),
        Fault::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"meta\": {\"limit\": 20, \"next\": \"/rest/v1/",
        )
            .into_response(),
        Fault::Drop => {
            let stream = futures::stream::iter(vec![
                Ok::<Bytes, std::io::Error>(Bytes::from_static(b"{\"meta\": ")),
                Err(std::io::Error::other("sandbox: dropped connection")),
            ]);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}
