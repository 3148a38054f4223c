//! The command line: `serve`, `sandbox`, `print-schema`. Every flag can also be given
//! as an environment variable; flags and variables override the `--config` file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::config::{Config, Mode};
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
