//! Helpers shared by the in-process tests: a sandbox alone, a client against wiremock,
//! and a sandbox with a gateway in front of it, all on 127.0.0.1:0.

pub mod client;
pub mod gateway;
pub mod outbox;
pub mod sandbox;

/// Responses recorded from real ActionKit instances (a copy kept in the repository, with
/// their sources and licences in `SOURCES.md`).
pub const RECORDED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/actionkit-recorded"
);
