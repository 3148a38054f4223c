//! The gateway's configuration: defaults in code, then a TOML file, then environment
//! variables and flags (see `cli.rs`), each overriding the one before. Unknown keys
//! are errors that name the key; secrets never appear in `Debug` output.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// How strict the gateway is with clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Introspection off, error messages without configured numbers.
    Production,
    /// Introspection and field suggestions on (the default with `--sandbox`).
    Development,
}

/// The whole configuration (the TOML file's shape).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// `production` or `development`; unset means development with `--sandbox`,
    /// production otherwise.
    pub mode: Option<Mode>,
    pub actionkit: ActionKitConfig,
    pub graphql: GraphqlConfig,
}

/// The ActionKit instance and how to talk to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionKitConfig {
    /// `https://<instance-host>`.
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The instance's AKID hash secret, to verify AKIDs locally.
    pub akid_secret: Option<SecretString>,
    /// Requests in flight to ActionKit, process-wide.
    pub max_in_flight: usize,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Deadline of one client operation, retries and pagination included.
    pub operation_deadline_ms: u64,
    pub max_retries: u32,
}

/// The GraphQL layer's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlConfig {
    /// How long loaders wait for sibling keys before sending a batch, in microseconds.
    /// Paid once per level of the query; 100 us still gathers a 1000-item list into
    /// one batch (see BENCHMARKS.md).
    pub loader_delay_us: u64,
    /// How long a page stays in the process-wide page cache.
    pub page_cache_ttl_secs: u64,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Deadline of one GraphQL operation, in milliseconds.
    pub operation_deadline_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            mode: None,
            actionkit: ActionKitConfig::default(),
            graphql: GraphqlConfig::default(),
        }
    }
}

impl Default for ActionKitConfig {
    fn default() -> Self {
        ActionKitConfig {
            url: None,
            username: None,
            password: None,
            akid_secret: None,
            max_in_flight: 8,
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            operation_deadline_ms: 15_000,
            max_retries: 4,
        }
    }
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        GraphqlConfig {
            loader_delay_us: 100,
            page_cache_ttl_secs: 300,
            max_depth: 10,
            max_complexity: 2_000,
            operation_deadline_ms: 20_000,
        }
    }
}

impl GraphqlConfig {
    pub fn loader_delay(&self) -> Duration {
        Duration::from_micros(self.loader_delay_us)
    }
    pub fn page_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.page_cache_ttl_secs)
    }
    pub fn operation_deadline(&self) -> Duration {
        Duration::from_millis(self.operation_deadline_ms)
    }
}

impl Config {
    /// The effective settings as TOML, with every secret replaced by `"***"`.
    pub fn to_masked_toml(&self) -> String {
        let mask = |s: &Option<SecretString>| s.as_ref().map(|_| "***".to_owned());
        let value = serde_json::json!({
            "listen": self.listen.to_string(),
            "mode": self.mode.map(|m| format!("{m:?}").to_lowercase()),
            "actionkit": {
                "url": self.actionkit.url,
                "username": self.actionkit.username,
                "password": mask(&self.actionkit.password),
                "akid_secret": mask(&self.actionkit.akid_secret),
                "max_in_flight": self.actionkit.max_in_flight,
                "connect_timeout_ms": self.actionkit.connect_timeout_ms,
                "request_timeout_ms": self.actionkit.request_timeout_ms,
                "operation_deadline_ms": self.actionkit.operation_deadline_ms,
                "max_retries": self.actionkit.max_retries,
            },
            "graphql": {
                "loader_delay_us": self.graphql.loader_delay_us,
                "page_cache_ttl_secs": self.graphql.page_cache_ttl_secs,
                "max_depth": self.graphql.max_depth,
                "max_complexity": self.graphql.max_complexity,
                "operation_deadline_ms": self.graphql.operation_deadline_ms,
            },
        });
        toml::to_string(&strip_nulls(value)).unwrap_or_default()
    }

    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

/// TOML has no null: unset values are left out.
fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[actionkit]\nurll = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn file_values_override_defaults_and_secrets_stay_out_of_debug() {
        let c = Config::from_toml(
            "listen = \"0.0.0.0:9000\"\n[actionkit]\npassword = \"hunter2\"\nmax_in_flight = 3\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.actionkit.max_in_flight, 3);
        assert_eq!(c.actionkit.request_timeout_ms, 10_000);
        assert_eq!(
            c.actionkit.password.as_ref().unwrap().expose_secret(),
            "hunter2"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

#[cfg(test)]
mod example_file {
    #[test]
    fn the_example_configuration_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.example.toml");
        super::Config::from_file(std::path::Path::new(path)).unwrap();
    }
}
