//! The in-process integration tests, one binary: each room of the crate has a module
//! (client, sandbox, gateway, outbox, submit, security, reliability), and `helpers` starts what they
//! need (a sandbox, a wiremock server, a gateway in front of a sandbox) on 127.0.0.1:0.
//! Tests that run the real executable live in `tests/binary/`.
#![allow(clippy::unwrap_used)]

mod helpers;

mod client;
mod gateway;
mod outbox;
mod progress;
mod reliability;
mod sandbox;
mod security;
mod submit;
