//! Every error answer the HTTP layer writes, in one place: the GraphQL-shaped body
//! (`{"errors": [{"message", "extensions": {"code"}}]}`), the media type negotiated
//! from `Accept` (`application/json` or `application/graphql-response+json`), and the
//! HTTP status of each code. The GraphQL handler, the guard (authentication, rate
//! limit, body, trusted documents), the shedder and the connection cap all answer
//! through [`HttpError`].

use std::borrow::Cow;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::graphql::ErrorCode;

pub(crate) const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
pub(crate) const APPLICATION_JSON: &str = "application/json";

/// The media type an answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    GraphqlResponseJson,
}

impl Format {
    pub fn content_type(self) -> HeaderValue {
        match self {
            Format::Json => HeaderValue::from_static("application/json; charset=utf-8"),
            Format::GraphqlResponseJson => {
                HeaderValue::from_static("application/graphql-response+json; charset=utf-8")
            }
        }
    }

    /// The status of a GraphQL request error (no `data`): 200 under
    /// `application/json`, 400 under `application/graphql-response+json`, as the
    /// GraphQL-over-HTTP specification says.
    pub fn request_error_status(self) -> StatusCode {
        match self {
            Format::Json => StatusCode::OK,
            Format::GraphqlResponseJson => StatusCode::BAD_REQUEST,
        }
    }
}

/// Picks the response media type from `Accept`: the first acceptable one in the
/// client's order of preference (q-values honoured); `None` when nothing we speak is
/// acceptable. No `Accept` at all means `application/json`, as the spec says for
/// legacy clients.
pub fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Format::Json);
    };
    let mut best: Option<(f32, Format)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q <= 0.0 {
            continue;
        }
        let format = match media.as_str() {
            GRAPHQL_RESPONSE_JSON => Format::GraphqlResponseJson,
            APPLICATION_JSON | "application/*" | "*/*" => Format::Json,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f)
}

/// The HTTP status of an error answered outside GraphQL execution, by code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadUserInput
        | ErrorCode::PersistedQueryNotFound
        | ErrorCode::PersistedQueryNotSupported => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::RateLimited | ErrorCode::UpstreamRateLimited | ErrorCode::Overloaded => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ErrorCode::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer: a code, a message written by the gateway, a status (the code's,
/// unless set), and extra headers.
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    code: ErrorCode,
    message: Cow<'static, str>,
    /// `extensions.limit`: the operation limit that refused the request.
    limit: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        HttpError {
            status: status_of(code),
            code,
            message: message.into(),
            limit: None,
            headers: Vec::new(),
        }
    }

    /// A `BAD_USER_INPUT` refusal of a request the gateway cannot take, with its own
    /// HTTP status (405, 408, 413, 415, ...).
    pub fn bad_request(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        HttpError::new(ErrorCode::BadUserInput, message).with_status(status)
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn with_limit(mut self, rule: &'static str) -> Self {
        self.limit = Some(rule);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut extensions = json!({"code": self.code.as_str()});
        if let Some(rule) = self.limit {
            extensions["limit"] = Value::from(rule);
        }
        json!({"errors": [{"message": self.message, "extensions": extensions}]})
    }

    /// The answer in the media type the request's `Accept` asks for (JSON when it
    /// asks for nothing we speak: an error is better read than refused).
    pub fn respond(self, request_headers: &HeaderMap) -> Response {
        let format = negotiate(request_headers).unwrap_or(Format::Json);
        self.respond_as(format)
    }

    pub fn respond_as(self, format: Format) -> Response {
        metrics::counter!("gateway_graphql_errors_total", "code" => self.code.as_str())
            .increment(1);
        let bytes = serde_json::to_vec(&self.body()).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = respond_bytes(self.status, format, bytes);
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// A response with a JSON body already serialized, in `format`.
pub fn respond_bytes(status: StatusCode, format: Format, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, format.content_type());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_negotiation_follows_the_spec() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Format::Json));
        assert_eq!(negotiate(&accept("application/json")), Some(Format::Json));
        assert_eq!(negotiate(&accept("*/*")), Some(Format::Json));
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(Format::GraphqlResponseJson)
        );
        assert_eq!(
            negotiate(&accept(
                "application/json, application/graphql-response+json"
            )),
            Some(Format::Json)
        );
        assert_eq!(negotiate(&accept("text/html")), None);
        assert_eq!(negotiate(&accept("application/json;q=0")), None);
    }

    #[test]
    fn every_error_is_graphql_shaped_with_its_status() {
        let e = HttpError::new(ErrorCode::RateLimited, "slow down")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let resp = e.respond(&accept(GRAPHQL_RESPONSE_JSON));
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert!(resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(GRAPHQL_RESPONSE_JSON));
        let body = HttpError::bad_request(StatusCode::PAYLOAD_TOO_LARGE, "too large")
            .with_limit("body")
            .body();
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(body["errors"][0]["extensions"]["limit"], "body");
        assert!(body["errors"][0].get("locations").is_none());
        // Nothing acceptable still gets a readable JSON error.
        let resp = HttpError::new(ErrorCode::Unauthenticated, "key").respond(&accept("text/html"));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(APPLICATION_JSON));
    }
}
