//! The command line: `serve` (the gateway), `sandbox` (the ActionKit emulator alone),
//! `print-schema`, `hash-key`, `trusted-documents`, `check-config` and `healthcheck`.
//! The flags of `serve` can also be given as the environment variables they name;
//! they override the `GATEWAY_<SECTION>__<KEY>` variables, which override the
//! `--config` file (see `config.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::config::{Config, Mode, TrustedMode};
use crate::sandbox::SandboxConfig;

#[derive(Debug, Parser)]
#[command(
    name = "actionkit-graphql",
    version,
    about = "A GraphQL gateway in front of the ActionKit REST API"
)]
pub struct Cli {
    /// A TOML configuration file (see config/gateway.example.toml).
    #[arg(long, env = "GATEWAY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "GATEWAY_LOG_JSON", global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (against ActionKit, or `--sandbox`).
    Serve(ServeArgs),
    /// Run the ActionKit emulator alone.
    Sandbox(SandboxArgs),
    /// Print the GraphQL schema (SDL) on stdout.
    PrintSchema,
    /// Print the SHA-256 of a client key (read from stdin) for GATEWAY_API_KEYS; with
    /// --generate, make a new random key and print it with its hash.
    HashKey {
        /// Generate a new key instead of reading one.
        #[arg(long)]
        generate: bool,
    },
    /// Build a trusted-documents manifest from .graphql/.gql files (one document per
    /// file) and write it as JSON (`{ "<sha256>": "<document>" }`).
    TrustedDocuments {
        /// Where to write the manifest (stdout when omitted).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Validate the configuration (file, environment, flags) and print the effective
    /// settings with secrets masked.
    CheckConfig(ServeArgs),
    /// Exit 0 when a gateway answers on its /healthz (for container health checks).
    Healthcheck {
        /// The gateway's health URL.
        #[arg(
            long,
            env = "GATEWAY_HEALTH_URL",
            default_value = "http://127.0.0.1:8000/healthz"
        )]
        url: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Start an embedded sandbox with demo data and use it as the upstream.
    #[arg(long)]
    pub sandbox: bool,
    /// Listen address of the gateway [default: 127.0.0.1:8000].
    #[arg(long, env = "GATEWAY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// production (default against ActionKit) or development (default with --sandbox).
    #[arg(long, env = "GATEWAY_MODE", value_enum)]
    pub mode: Option<Mode>,
    /// The ActionKit instance, e.g. https://act.example.org.
    #[arg(long, env = "ACTIONKIT_URL")]
    pub actionkit_url: Option<String>,
    /// The staff account the gateway uses.
    #[arg(long, env = "ACTIONKIT_USERNAME")]
    pub actionkit_username: Option<String>,
    /// The staff account's password (prefer the environment variable to the flag).
    #[arg(long, env = "ACTIONKIT_PASSWORD", hide_env_values = true)]
    pub actionkit_password: Option<String>,
    /// The instance's AKID hash secret, to verify AKIDs without asking ActionKit.
    #[arg(long, env = "ACTIONKIT_AKID_SECRET", hide_env_values = true)]
    pub actionkit_akid_secret: Option<String>,
    /// Client keys: comma-separated `name:scopes:sha256hex` (scopes read, write, self
    /// joined by `+`; the hash from `hash-key`).
    #[arg(long, env = "GATEWAY_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// Let requests without a key read (never write); needed to serve ActionKit
    /// without keys.
    #[arg(long, env = "GATEWAY_ALLOW_ANONYMOUS_READS")]
    pub allow_anonymous_reads: bool,
    /// Comma-separated browser origins allowed by CORS (none by default).
    #[arg(long, env = "GATEWAY_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Trusted documents: off, log-unknown or enforce.
    #[arg(long, env = "GATEWAY_TRUSTED_DOCUMENTS", value_enum)]
    pub trusted_documents: Option<TrustedMode>,
    /// The trusted-documents manifest (from `trusted-documents`).
    #[arg(long, env = "GATEWAY_TRUSTED_DOCUMENTS_MANIFEST")]
    pub trusted_documents_manifest: Option<PathBuf>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g.
    /// http://collector:4318 (spans go to <url>/v1/traces). Unset: no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans [default: actionkit-graphql].
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
    /// Directory of the embedded submission store (created on first start)
    /// [default: ~/.local/share/actionkit-graphql, its sandbox/ with --sandbox].
    #[arg(long, env = "GATEWAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Longest time a client may take to send a request's headers, in milliseconds
    /// [default: 10000].
    #[arg(long, env = "GATEWAY_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Longest idle time of a kept-alive client connection, in milliseconds
    /// [default: 75000].
    #[arg(long, env = "GATEWAY_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Open client connections at most [default: 3/4 of the open-file limit, at most
    /// 4096].
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Longest time a client may take to send a request body, in milliseconds
    /// [default: 30000].
    #[arg(long, env = "GATEWAY_BODY_READ_TIMEOUT_MS")]
    pub body_read_timeout_ms: Option<u64>,
    /// Redis for shared state between replicas, e.g. redis://:password@redis:6379/0
    /// (prefer the environment variable to the flag). Unset: in-process state only.
    #[arg(long, env = "GATEWAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Settings of the embedded sandbox (with --sandbox).
    #[command(flatten)]
    pub sandbox_config: SandboxConfig,
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Listen address of the sandbox.
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:8001")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub config: SandboxConfig,
}

impl ServeArgs {
    /// Lays flags and environment variables over the file's configuration.
    pub fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(mode) = self.mode {
            config.mode = Some(mode);
        }
        let sec = &mut config.security;
        if let Some(keys) = &self.api_keys {
            sec.api_keys = keys.split(',').map(|k| k.trim().to_owned()).collect();
        }
        if self.allow_anonymous_reads {
            sec.allow_anonymous_reads = true;
        }
        if let Some(origins) = &self.cors_origins {
            sec.cors_origins = origins
                .split(',')
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect();
        }
        if let Some(mode) = self.trusted_documents {
            sec.trusted_documents.mode = mode;
        }
        if let Some(path) = &self.trusted_documents_manifest {
            sec.trusted_documents.manifest = Some(path.clone());
        }
        if let Some(url) = self.otlp_endpoint.as_deref().map(str::trim) {
            // An empty variable (OTEL_EXPORTER_OTLP_ENDPOINT=) turns export off.
            config.telemetry.otlp_endpoint = (!url.is_empty()).then(|| url.to_owned());
        }
        if let Some(name) = &self.otel_service_name {
            config.telemetry.service_name = name.clone();
        }
        if let Some(dir) = &self.data_dir {
            config.outbox.data_dir = Some(dir.clone());
        }
        if config.outbox.data_dir.is_none() {
            config.outbox.data_dir = Some(crate::config::default_data_dir(self.sandbox));
        }
        let server = &mut config.server;
        if let Some(ms) = self.header_read_timeout_ms {
            server.header_read_timeout_ms = ms;
        }
        if let Some(ms) = self.idle_timeout_ms {
            server.idle_timeout_ms = ms;
        }
        if let Some(n) = self.max_connections {
            server.max_connections = Some(n);
        }
        if let Some(ms) = self.body_read_timeout_ms {
            server.body_read_timeout_ms = ms;
        }
        if let Some(url) = self.redis_url.as_deref().map(str::trim) {
            // An empty variable (GATEWAY_REDIS_URL=) turns Redis off.
            config.redis.url = (!url.is_empty()).then(|| SecretString::from(url.to_owned()));
        }
        let ak = &mut config.actionkit;
        if let Some(url) = &self.actionkit_url {
            ak.url = Some(url.clone());
        }
        if let Some(u) = &self.actionkit_username {
            ak.username = Some(u.clone());
        }
        if let Some(p) = &self.actionkit_password {
            ak.password = Some(SecretString::from(p.clone()));
        }
        if let Some(s) = &self.actionkit_akid_secret {
            ak.akid_secret = Some(SecretString::from(s.clone()));
        }
    }
}
