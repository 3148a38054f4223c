//! An ActionKit REST emulator (see `../shared/reference/actionkit-rest.md`).
//!
//! PLACEHOLDER API: the helper implementing issue 2 replaces the bodies and may add to
//! the config; the names below are what `cli.rs` and the tests rely on.

use std::net::SocketAddr;

/// Which filters the emulated instance allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// The documented 2012 user schema: no `id__in`, no `user__in`.
    Strict,
    /// `__in` allowed on ids and on `user`.
    Permissive,
}

/// What `PATCH {"fields": ...}` on an action does to names it does not mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldsPatch {
    /// The sent dict becomes the whole set (absent names are deleted).
    Replace,
    /// Sent names are set, absent names kept.
    Merge,
}

/// Settings of one sandbox; also its command-line flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxConfig {
    /// Seed of the demo data.
    #[arg(long, env = "SANDBOX_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Number of demo users.
    #[arg(long, env = "SANDBOX_USERS", default_value_t = 300)]
    pub users: usize,
    /// Milliseconds added to every /rest/v1 response.
    #[arg(long, env = "SANDBOX_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Requests in flight beyond which the sandbox answers 429 (0: no limit).
    #[arg(long, env = "SANDBOX_MAX_CONCURRENT", default_value_t = 0)]
    pub max_concurrent: usize,
    #[arg(long, env = "SANDBOX_FILTERS", value_enum, default_value = "permissive")]
    pub filters: FilterMode,
    #[arg(long, env = "SANDBOX_FIELDS_PATCH", value_enum, default_value = "replace")]
    pub fields_patch: FieldsPatch,
    /// The staff username the sandbox accepts.
    #[arg(long = "username", env = "SANDBOX_USERNAME", default_value = "sandbox")]
    pub username: String,
    /// The staff password the sandbox accepts.
    #[arg(long = "password", env = "SANDBOX_PASSWORD", default_value = "sandbox")]
    pub password: String,
}

/// A running sandbox.
pub struct SandboxHandle {
    pub addr: SocketAddr,
}

/// Serves the sandbox on `listener` in a background task and returns at once.
pub async fn spawn(
    _config: SandboxConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SandboxHandle> {
    Ok(SandboxHandle {
        addr: listener.local_addr()?,
    })
}
