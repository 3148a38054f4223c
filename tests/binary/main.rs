//! Tests that run the real `actionkit-graphql` executable as a user would: the command
//! line and configuration, logs, telemetry export and shutdown. `helpers` starts it on
//! 127.0.0.1:0 and reads the address it reports.
#![allow(clippy::unwrap_used)]

mod helpers;
/// The outbox tests' helpers (temporary data directories, the sandbox's REST).
#[path = "../api/helpers/outbox.rs"]
mod outbox_support;
#[cfg(unix)]
mod procs;

mod cli_config;
#[cfg(unix)]
mod otlp_export;
#[cfg(unix)]
mod outbox_sigkill;
#[cfg(unix)]
mod redis_replicas;
mod security_logs;
#[cfg(unix)]
mod shutdown;
