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
}

impl Error {
    /// True when the same read may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Transport(_)
                | Error::Timeout
                | Error::RateLimited
                | Error::Status { status: 500..=599 }
        )
    }
}
