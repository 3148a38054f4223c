//! An ActionKit REST emulator (written from ActionKit's manual, public clients and the
//! responses recorded in `tests/fixtures/actionkit-recorded/`), served over
//! HTTP from an in-memory store. It shares no code with the client in `actionkit/`.
//!
//! Layout:
//! - [`store`]: compact rows, interned strings, indexes, AKIDs, naive UTC timestamps.
//! - [`seed`]: deterministic demo data (`--seed`, `--users`), built in steps; its fixed
//!   tables in `seed/data.rs`.
//! - [`resources`]: resource names and fields; `filters.rs` (`filtering`/`ordering`
//!   tables, schema), `values.rs` (field values for filters), `render.rs` (JSON).
//! - [`query`]: filters, ordering, paging, `meta` links.
//! - `http/`: the axum handler (`mod.rs`: stats, cap, faults, latency, trailing slash,
//!   auth), `dispatch.rs` (reads, routing), `processing.rs` (`POST /action/`),
//!   `writes.rs` (actions, actionfields), `users.rs`, `pages.rs`, `body.rs` (request
//!   bodies), `respond.rs` (answers), `faults.rs`, `control.rs` (`/__sandbox/`).
//!
//! Control endpoints (no auth, not counted): `GET /__sandbox/stats`,
//! `POST /__sandbox/stats/reset`, `GET`/`POST /__sandbox/faults`.

mod http;
pub mod query;
pub mod resources;
pub mod seed;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

/// Injected faults; also the JSON of `GET`/`POST /__sandbox/faults`. Each probability
/// is drawn per `/rest/v1` request from a generator seeded with `--seed`. The first
/// five act before the store is touched (a faulted write changes nothing); the
/// `*_after_write` ones act on a write that was applied and answered 2xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability of a 500 `{"error": "Sorry, this request could not be processed. Please try again later."}`.
    #[arg(long = "fault-500", env = "SANDBOX_FAULT_500", default_value_t = 0.0)]
    pub error_500: f64,
    /// Probability of a 503 with a short text body.
    #[arg(long = "fault-503", env = "SANDBOX_FAULT_503", default_value_t = 0.0)]
    pub error_503: f64,
    /// Probability of a request delayed by `slow_ms` more.
    #[arg(long = "fault-slow", env = "SANDBOX_FAULT_SLOW", default_value_t = 0.0)]
    pub slow: f64,
    /// Delay of a slow request, in milliseconds.
    #[arg(
        long = "fault-slow-ms",
        env = "SANDBOX_FAULT_SLOW_MS",
        default_value_t = 2000
    )]
    pub slow_ms: u64,
    /// Probability of a 200 whose JSON body is cut short.
    #[arg(
        long = "fault-malformed-json",
        env = "SANDBOX_FAULT_MALFORMED_JSON",
        default_value_t = 0.0
    )]
    pub malformed_json: f64,
    /// Probability of a response whose connection is dropped mid-body.
    #[arg(
        long = "fault-drop-connection",
        env = "SANDBOX_FAULT_DROP_CONNECTION",
        default_value_t = 0.0
    )]
    pub drop_connection: f64,
    /// The next N `/rest/v1` requests answer 429.
    #[arg(
        long = "fault-burst-429",
        env = "SANDBOX_FAULT_BURST_429",
        default_value_t = 0
    )]
    pub burst_429: u64,
    /// Probability that a write (POST, PUT, PATCH, DELETE) is applied and then answered
    /// 500 with Django's HTML error page: the caller cannot know it landed.
    #[arg(
        long = "fault-500-after-write",
        env = "SANDBOX_FAULT_500_AFTER_WRITE",
        default_value_t = 0.0
    )]
    pub error_500_after_write: f64,
    /// Probability that a write is applied and then its connection dropped (the head is
    /// sent, the body aborted).
    #[arg(
        long = "fault-drop-after-write",
        env = "SANDBOX_FAULT_DROP_AFTER_WRITE",
        default_value_t = 0.0
    )]
    pub drop_after_write: f64,
    /// Probability that a write is applied and its answer then held back `slow_ms`
    /// (a caller with a shorter timeout gives up on a write that landed).
    #[arg(
        long = "fault-slow-after-write",
        env = "SANDBOX_FAULT_SLOW_AFTER_WRITE",
        default_value_t = 0.0
    )]
    pub slow_after_write: f64,
    /// Every read of this member answers 500, every time (no draw): `GET
    /// /rest/v1/user/<id>/` and a user list whose `id`/`id__in` names them. Models one
    /// member whose row is corrupt.
    #[arg(long = "fault-user", env = "SANDBOX_FAULT_USER")]
    pub user: Option<u64>,
    /// Every read of this member's actions answers 500, every time (no draw): a list on
    /// any action resource whose `user`/`user__in` names them. Models one member whose
    /// action history cannot be read.
    #[arg(long = "fault-user-actions", env = "SANDBOX_FAULT_USER_ACTIONS")]
    pub user_actions: Option<u64>,
}

impl Default for Faults {
    /// No faults; `slow_ms` 2000 as on the command line.
    fn default() -> Self {
        Faults {
            error_500: 0.0,
            error_503: 0.0,
            slow: 0.0,
            slow_ms: 2000,
            malformed_json: 0.0,
            drop_connection: 0.0,
            burst_429: 0,
            error_500_after_write: 0.0,
            drop_after_write: 0.0,
            slow_after_write: 0.0,
            user: None,
            user_actions: None,
        }
    }
}

/// Settings of one sandbox; also its command-line flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxConfig {
    /// Seed of the demo data and of fault injection.
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
    #[arg(
        long,
        env = "SANDBOX_FILTERS",
        value_enum,
        default_value = "permissive"
    )]
    pub filters: FilterMode,
    #[arg(
        long,
        env = "SANDBOX_FIELDS_PATCH",
        value_enum,
        default_value = "replace"
    )]
    pub fields_patch: FieldsPatch,
    /// The staff username the sandbox accepts.
    #[arg(long = "username", env = "SANDBOX_USERNAME", default_value = "sandbox")]
    pub username: String,
    /// The staff password the sandbox accepts.
    #[arg(long = "password", env = "SANDBOX_PASSWORD", default_value = "sandbox")]
    pub password: String,
    /// The sandbox's AKID hash secret. `serve --sandbox` gives the gateway this same
    /// secret; a gateway in front of a sandbox started alone needs it as
    /// `--actionkit-akid-secret` (ACTIONKIT_AKID_SECRET), the gateway's own flag.
    #[arg(
        id = "sandbox_akid_secret",
        long = "sandbox-akid-secret",
        env = "SANDBOX_AKID_SECRET",
        default_value = "sandbox-akid-secret"
    )]
    pub akid_secret: String,
    /// Scheme and host used in absolute `Location` headers (e.g. `https://act.example.org`);
    /// default: `http://` + the request's `Host` header.
    #[arg(
        id = "sandbox_public_url",
        long = "sandbox-public-url",
        env = "SANDBOX_PUBLIC_URL"
    )]
    pub public_url: Option<String>,
    /// Faults injected from the start (changeable at runtime via `POST /__sandbox/faults`).
    #[command(flatten)]
    pub faults: Faults,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 1,
            users: 300,
            latency_ms: 0,
            max_concurrent: 0,
            filters: FilterMode::Permissive,
            fields_patch: FieldsPatch::Replace,
            username: "sandbox".into(),
            password: "sandbox".into(),
            akid_secret: "sandbox-akid-secret".into(),
            public_url: None,
            faults: Faults::default(),
        }
    }
}

/// A running sandbox. Dropping the handle leaves it serving (in the background, for the
/// life of the runtime); [`SandboxHandle::shutdown`] stops it.
pub struct SandboxHandle {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SandboxHandle {
    /// The base URL, e.g. `http://127.0.0.1:8001`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Builds the demo data and the router state (the expensive, synchronous part).
fn build(config: SandboxConfig) -> Arc<http::App> {
    let store = seed::generate(config.seed, config.users, config.akid_secret.clone());
    Arc::new(http::App::new(config, store))
}

/// Serves the sandbox on `listener` in a background task and returns once it is accepting.
pub async fn spawn(
    config: SandboxConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SandboxHandle> {
    let addr = listener.local_addr()?;
    eprintln!(
        "ActionKit sandbox on http://{addr}/rest/v1/ (basic auth {}:{}, {} users, seed {})",
        config.username, config.password, config.users, config.seed
    );
    let app = tokio::task::spawn_blocking(move || build(config))
        .await
        .map_err(std::io::Error::other)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Only an explicit `shutdown()` stops the server: a dropped handle (callers often
        // keep just `addr`) drops the sender, and that must not.
        let shutdown = async {
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        if let Err(e) = run(app, listener, shutdown).await {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    Ok(SandboxHandle {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

async fn run(
    app: Arc<http::App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = http::router(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sandbox: SandboxConfig,
    }

    /// `serve` flattens the sandbox flags beside the gateway's own: no clash allowed.
    #[derive(Parser)]
    struct ServeLike {
        #[arg(long)]
        sandbox: bool,
        #[arg(long)]
        listen: Option<String>,
        #[arg(long)]
        mode: Option<String>,
        #[arg(long, env = "ACTIONKIT_AKID_SECRET")]
        akid_secret: Option<String>,
        #[arg(long)]
        actionkit_username: Option<String>,
        #[arg(long)]
        actionkit_url: Option<String>,
        #[command(flatten)]
        sandbox_config: SandboxConfig,
    }

    #[test]
    fn flags_do_not_clash_with_the_gateways() {
        use clap::CommandFactory;
        ServeLike::command().debug_assert();
        let s = ServeLike::try_parse_from([
            "x",
            "--sandbox",
            "--akid-secret",
            "gw",
            "--sandbox-akid-secret",
            "sb",
        ])
        .unwrap();
        assert!(s.sandbox);
        assert_eq!(s.akid_secret.as_deref(), Some("gw"));
        assert_eq!(s.sandbox_config.akid_secret, "sb");
    }

    #[test]
    fn flags_parse_and_defaults_match() {
        let c = Cli::try_parse_from(["x"]).unwrap().sandbox;
        let d = SandboxConfig::default();
        assert_eq!(
            (
                c.seed,
                c.users,
                c.filters,
                c.fields_patch,
                &c.username,
                &c.akid_secret
            ),
            (
                d.seed,
                d.users,
                d.filters,
                d.fields_patch,
                &d.username,
                &d.akid_secret
            )
        );
        assert_eq!(c.faults, Faults::default());
        let c = Cli::try_parse_from([
            "x",
            "--users",
            "5",
            "--filters",
            "strict",
            "--fields-patch",
            "merge",
            "--fault-500",
            "0.25",
            "--fault-burst-429",
            "3",
            "--sandbox-akid-secret",
            "s3",
            "--max-concurrent",
            "4",
        ])
        .unwrap()
        .sandbox;
        assert_eq!(c.users, 5);
        assert_eq!(c.filters, FilterMode::Strict);
        assert_eq!(c.fields_patch, FieldsPatch::Merge);
        assert_eq!(c.faults.error_500, 0.25);
        assert_eq!(c.faults.burst_429, 3);
        assert_eq!(c.akid_secret, "s3");
        assert_eq!(c.max_concurrent, 4);
    }
}
