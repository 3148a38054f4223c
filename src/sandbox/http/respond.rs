//! Building answers as ActionKit sends them: Python-style JSON separators, empty
//! `text/html` bodies, `Location` headers and the error shapes.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::sandbox::query::BadRequest;

pub(super) const TOO_MANY: &str = "Your application is sending too many simultaneous requests";

/// Python's `json.dumps` separators (`", "`, `": "`), as ActionKit sends them.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    /// Keys are separated as array values are.
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.begin_array_value(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

pub(super) fn to_json_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return b"{}".to_vec();
    }
    out
}

pub(super) fn json_resp(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        to_json_bytes(v),
    )
        .into_response()
}

/// Empty body, `text/html; charset=utf-8`, `Content-Length: 0`.
pub(super) fn empty(status: StatusCode) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Bytes::new(),
    )
        .into_response()
}

/// The empty answer to a write: 204 for PUT and 202 for PATCH of an existing object,
/// 201 with `Location` for a create.
pub(super) fn write_answer(existing: bool, put: bool, location: &str) -> Response {
    match (existing, put) {
        (true, true) => empty(StatusCode::NO_CONTENT),
        (true, false) => empty(StatusCode::ACCEPTED),
        (false, _) => with_location(empty(StatusCode::CREATED), location),
    }
}

pub(super) fn with_location(mut r: Response, location: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(super) fn error(status: StatusCode, msg: &str) -> Response {
    json_resp(status, &json!({ "error": msg }))
}

pub(super) fn bad_request(e: BadRequest) -> Response {
    error(StatusCode::BAD_REQUEST, &e.0)
}

/// `{"<resource>": {"<field>": ["msg"]}}`.
pub(super) fn validation(res: &str, field: &str, msg: &str) -> Response {
    json_resp(StatusCode::BAD_REQUEST, &json!({ res: { field: [msg] } }))
}

pub(super) fn too_many() -> Response {
    error(StatusCode::TOO_MANY_REQUESTS, TOO_MANY)
}

pub(super) fn not_allowed(allowed: &[&str]) -> Response {
    let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
    if let Ok(v) = HeaderValue::from_str(&allowed.join(",").to_uppercase()) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}
