//! The one error type of the ActionKit client. It carries what the gateway needs to
//! decide (retry, map to a GraphQL code) and never the credential; upstream bodies are
//! kept only as field messages for `BadRequest`, which the GraphQL edge does not echo.

use std::collections::BTreeMap;

/// What can go wrong talking to ActionKit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The connection failed or broke (no HTTP status was received).
    #[error("could not reach ActionKit: {0}")]
    Transport(String),
    /// The request or the whole operation ran past its deadline.
    #[error("ActionKit did not answer in time")]
    Timeout,
    /// ActionKit answered 429 (too many simultaneous requests), retries exhausted.
    #[error("ActionKit is rate limiting the gateway")]
    RateLimited,
    /// The object does not exist (404).
    #[error("not found")]
    NotFound,
    /// ActionKit refused the configured credential (401/403).
    #[error("ActionKit refused the configured credential")]
    Unauthorized,
    /// ActionKit refused the request as invalid (400), with its field messages.
    #[error("ActionKit rejected the request")]
    BadRequest {
        messages: BTreeMap<String, Vec<String>>,
    },
    /// The gateway refused to send the request (invalid name, id, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Any other status (5xx after retries, 409, ...).
    #[error("ActionKit answered HTTP {status}")]
    Status { status: u16 },
    /// The body did not decode; `path` names the JSON path that failed.
    #[error("could not decode ActionKit's answer at {path}: {message}")]
    Decode { path: String, message: String },
    /// A write whose outcome is unknown: it was sent, but no answer came back.
    #[error("the write may or may not have been applied")]
    WriteOutcomeUnknown,
    /// The circuit breaker is open after repeated failures: nothing was sent.
    #[error("ActionKit keeps failing; requests are paused for a while")]
    CircuitOpen,
}

impl Error {
    /// A fixed, low-cardinality name of the error kind (for metrics labels).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Transport(_) => "transport",
            Error::Timeout => "timeout",
            Error::RateLimited => "rate_limited",
            Error::NotFound => "not_found",
            Error::Unauthorized => "unauthorized",
            Error::BadRequest { .. } => "bad_request",
            Error::InvalidInput(_) => "invalid_input",
            Error::Status { .. } => "status",
            Error::Decode { .. } => "decode",
            Error::WriteOutcomeUnknown => "write_outcome_unknown",
            Error::CircuitOpen => "circuit_open",
        }
    }

    /// True when a failed batch read may have failed because of some of its keys only
    /// (a 5xx, a timeout, a broken connection, a body that did not decode), so that
    /// asking for fewer keys can isolate them. False for what concerns every key alike:
    /// a refused credential, ActionKit's rate limit, the open breaker, input the
    /// gateway refused to send.
    pub fn may_concern_some_keys(&self) -> bool {
        !matches!(
            self,
            Error::Unauthorized
                | Error::RateLimited
                | Error::CircuitOpen
                | Error::InvalidInput(_)
                | Error::WriteOutcomeUnknown
        )
    }

    /// True when the same read may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Transport(_)
                | Error::Timeout
                | Error::RateLimited
                | Error::CircuitOpen
                | Error::Status { status: 500..=599 }
        )
    }
}

/// The key under which messages that name no field are kept (Django's convention).
pub const NON_FIELD: &str = "__all__";

/// Field messages from a 4xx body, whatever shape ActionKit chose (reference §8.2):
/// `{"errors": {field: [msg]}}`, `{"errors": [msg]}`, `{"<resource>": {field: [msg]}}`,
/// `{"page": "msg"}`, `{"error": "msg"}`, or plain text. Messages without a field go
/// under [`NON_FIELD`]. Plain text is trimmed and cut to 500 characters.
pub(crate) fn bad_request_messages(body: &[u8]) -> BTreeMap<String, Vec<String>> {
    use serde_json::Value;

    fn texts(v: &Value) -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items.iter().flat_map(texts).collect(),
            Value::Null => Vec::new(),
            other => vec![other.to_string()],
        }
    }
    fn add(out: &mut BTreeMap<String, Vec<String>>, key: &str, msgs: Vec<String>) {
        if !msgs.is_empty() {
            out.entry(key.to_owned()).or_default().extend(msgs);
        }
    }

    let mut out = BTreeMap::new();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => {
            for (key, value) in &map {
                match (key.as_str(), value) {
                    // `errors` or `<resource>`: a dict of field → messages.
                    (_, Value::Object(fields)) => {
                        for (field, msgs) in fields {
                            add(&mut out, field, texts(msgs));
                        }
                    }
                    ("errors" | "error", v) => add(&mut out, NON_FIELD, texts(v)),
                    (field, v) => add(&mut out, field, texts(v)),
                }
            }
        }
        Ok(other) => add(&mut out, NON_FIELD, texts(&other)),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if !text.is_empty() {
                add(&mut out, NON_FIELD, vec![text.chars().take(500).collect()]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(body: &str) -> BTreeMap<String, Vec<String>> {
        bad_request_messages(body.as_bytes())
    }

    #[test]
    fn every_documented_error_shape_yields_field_messages() {
        assert_eq!(
            m(r#"{"errors": {"zip": ["bad zip"]}}"#),
            BTreeMap::from([("zip".into(), vec!["bad zip".into()])])
        );
        assert_eq!(
            m(r#"{"errors": ["one", "two"]}"#),
            BTreeMap::from([(NON_FIELD.into(), vec!["one".into(), "two".into()])])
        );
        assert_eq!(
            m(r#"{"petitionpage": {"name": ["Enter a valid 'slug'"]}}"#),
            BTreeMap::from([("name".into(), vec!["Enter a valid 'slug'".into()])])
        );
        assert_eq!(
            m(r#"{"page": "Unable to find a page for processing."}"#),
            BTreeMap::from([(
                "page".into(),
                vec!["Unable to find a page for processing.".into()]
            )])
        );
        assert_eq!(
            m(r#"{"error": "The 'id' field does not allow filtering."}"#),
            BTreeMap::from([(
                NON_FIELD.into(),
                vec!["The 'id' field does not allow filtering.".into()]
            )])
        );
        assert_eq!(
            m("The 'id' field does not allow filtering.\n"),
            BTreeMap::from([(
                NON_FIELD.into(),
                vec!["The 'id' field does not allow filtering.".into()]
            )])
        );
        assert!(m("").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_read_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = bad_request_messages(&body);
        }
    }
}
