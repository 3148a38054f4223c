//! Helpers shared by the in-process tests: a sandbox alone, a client against wiremock,
//! and a sandbox with a gateway in front of it, all on 127.0.0.1:0.

pub(crate) mod client;
pub(crate) mod gateway;
pub(crate) mod outbox;
pub(crate) mod sandbox;
pub(crate) mod submit;
pub(crate) mod ws;

/// Responses recorded from real ActionKit instances (a copy kept in the repository, with
/// their sources and licences in `SOURCES.md`).
pub(crate) const RECORDED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/actionkit-recorded"
);

/// GETs `url` and decodes the answer as JSON, whatever its status (the tests look at
/// the body, or at `stats`).
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Codes of the closed list (DESIGN.md, Errors): every GraphQL error carries one.
pub(crate) const ERROR_CODES: [&str; 8] = [
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "UPSTREAM_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "UPSTREAM_RATE_LIMITED",
    "INTERNAL",
];
