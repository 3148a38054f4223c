//! The GraphQL edge's errors: a closed list of codes, and the one place where client
//! errors become GraphQL errors. Messages are ours; upstream text, URLs and
//! credentials never reach a response.

use std::fmt;

use async_graphql::ErrorExtensions;

use crate::actionkit;

/// The closed list of `extensions.code` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    BadUserInput,
    Unauthenticated,
    Forbidden,
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamRateLimited,
    /// The caller ran out of its own request budget at the gateway (HTTP 429); kept
    /// apart from `UPSTREAM_RATE_LIMITED`, which is ActionKit's limit.
    RateLimited,
    /// An automatic persisted query (`extensions.persistedQuery`) whose hash the
    /// gateway does not hold: the client sends it again with the document (Apollo
    /// Client's and urql's links do this by themselves).
    PersistedQueryNotFound,
    /// Automatic persisted queries are turned off (`graphql.persisted_queries`): the
    /// client stops sending hashes (Apollo Client's and urql's links do this by
    /// themselves).
    PersistedQueryNotSupported,
    /// The gateway itself is overloaded (its queue of operations, or its connection
    /// cap, is full): HTTP 429 with `Retry-After`; nothing about the caller or
    /// ActionKit.
    Overloaded,
    Internal,
}

impl ErrorCode {
    /// Every code (metrics labels are taken from this list only).
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::NotFound,
        ErrorCode::BadUserInput,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::UpstreamTimeout,
        ErrorCode::UpstreamRateLimited,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            ErrorCode::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            ErrorCode::UpstreamRateLimited => "UPSTREAM_RATE_LIMITED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            ErrorCode::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the GraphQL edge: a code and a message written by the gateway.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub code: ErrorCode,
    pub message: String,
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GatewayError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
}

impl From<actionkit::Error> for GatewayError {
    fn from(err: actionkit::Error) -> Self {
        use actionkit::Error as E;
        let (code, message) = match &err {
            E::Transport(_) => (
                ErrorCode::UpstreamUnavailable,
                "ActionKit could not be reached",
            ),
            E::Timeout => (
                ErrorCode::UpstreamTimeout,
                "ActionKit did not answer in time",
            ),
            E::RateLimited => (
                ErrorCode::UpstreamRateLimited,
                "ActionKit is refusing requests because too many are in flight; try again shortly",
            ),
            E::NotFound => (ErrorCode::NotFound, "not found"),
            E::Unauthorized => (
                ErrorCode::UpstreamUnavailable,
                "ActionKit refused the gateway's credential",
            ),
            E::BadRequest { .. } => (ErrorCode::BadUserInput, "ActionKit rejected the request"),
            E::InvalidInput(msg) => return GatewayError::bad_input(msg.clone()),
            E::Status { status } if *status >= 500 => {
                (ErrorCode::UpstreamUnavailable, "ActionKit failed to answer")
            }
            E::Status { .. } | E::Decode { .. } => (
                ErrorCode::Internal,
                "the gateway could not use ActionKit's answer",
            ),
            E::CircuitOpen => {
                // Expected while the breaker is open: one warning when it opened is enough.
                tracing::debug!(code = "UPSTREAM_UNAVAILABLE", "circuit breaker open");
                return GatewayError::new(
                    ErrorCode::UpstreamUnavailable,
                    "ActionKit keeps failing, so the gateway is not sending it requests for a \
                     few seconds; try again shortly",
                );
            }
            E::WriteOutcomeUnknown => (
                ErrorCode::UpstreamTimeout,
                "the write was sent but ActionKit did not confirm it; read the action to see \
                 whether it applied (repeating the mutation is safe)",
            ),
        };
        if code == ErrorCode::Internal || code == ErrorCode::UpstreamUnavailable {
            // The detail stays in the log (it names no credential); the client gets the
            // gateway's own words.
            tracing::warn!(error = %err, code = code.as_str(), "upstream error");
        } else {
            tracing::debug!(error = %err, code = code.as_str(), "upstream error");
        }
        GatewayError::new(code, message)
    }
}

impl From<GatewayError> for async_graphql::Error {
    fn from(err: GatewayError) -> Self {
        async_graphql::Error::new(err.message).extend_with(|_, e| e.set("code", err.code.as_str()))
    }
}

/// The result type of resolvers.
pub type GqlResult<T> = Result<T, async_graphql::Error>;
