//! The gateway's configuration: defaults in code, then a TOML file, then environment
//! variables and flags (see `cli.rs`), each overriding the one before. Unknown keys
//! are errors that name the key; secrets never appear in `Debug` output.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

/// The largest request body accepted on `/graphql` unless configured otherwise
/// (`security.max_body_bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// How strict the gateway is with clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Introspection off, error messages without configured numbers.
    Production,
    /// Introspection and field suggestions on (the default with `--sandbox`).
    Development,
}

/// The whole configuration (the TOML file's shape).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// `production` or `development`; unset means development with `--sandbox`,
    /// production otherwise.
    pub mode: Option<Mode>,
    pub actionkit: ActionKitConfig,
    pub graphql: GraphqlConfig,
    pub security: SecurityConfig,
    pub server: ServerConfig,
    pub telemetry: TelemetryConfig,
    /// Taking actions (`submitAction`): validation, custom fields per page, limits.
    pub submit: SubmitConfig,
    pub outbox: OutboxConfig,
    /// Page progress (`Page.progress`, `pageContext`) and its WebSocket subscription.
    pub progress: ProgressConfig,
    /// Shared state for several replicas (off unless `url` is set).
    pub redis: RedisConfig,
}

/// Page progress and the `pageProgress` subscription (WebSocket on `/graphql`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgressConfig {
    /// How long a page's progress read from ActionKit is reused by every request, in
    /// seconds; also how often a page with subscribers is polled (one poll per page
    /// however many subscribers).
    pub cache_ttl_secs: u64,
    /// Subscriptions one WebSocket connection may hold at once.
    pub max_subscriptions_per_connection: usize,
    /// WebSocket connections one key (or JWT subject) may hold at once; a `submit` key
    /// (one key in a public page) counts per client address.
    pub max_connections_per_key: usize,
    /// WebSocket connections open at once, all keys together.
    pub max_connections: usize,
    /// How long a new WebSocket connection may take to send `connection_init`.
    pub connection_init_timeout_secs: u64,
    /// The gateway pings each WebSocket connection this often (the client answers
    /// `pong`).
    pub keepalive_secs: u64,
    /// A connection from which nothing (not even a `pong`) arrived for this long is
    /// closed (code 3008).
    pub idle_timeout_secs: u64,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        ProgressConfig {
            cache_ttl_secs: 5,
            max_subscriptions_per_connection: 20,
            max_connections_per_key: 50,
            max_connections: 10_000,
            connection_init_timeout_secs: 10,
            keepalive_secs: 15,
            idle_timeout_secs: 60,
        }
    }
}

/// Shared state through Redis, for several replicas behind one load balancer: the
/// ActionKit budget, rate limits, the page cache and the submission queue become
/// global. Unset `url`: everything stays in the process (and the embedded store).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` (or `rediss://` for TLS). Printed by
    /// `check-config` with the password masked. Also `GATEWAY_REDIS_URL`, `--redis-url`.
    #[serde(serialize_with = "masked_url")]
    pub url: Option<SecretString>,
    /// Prefix of every key the gateway writes, so that several gateways (for several
    /// ActionKit instances) can share one Redis.
    pub key_prefix: String,
    /// Longest wait for one Redis command, in milliseconds; past it the command counts
    /// as failed and the gateway goes on with local state.
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "akgql".into(),
            timeout_ms: 500,
        }
    }
}

/// The submission outbox: where submissions are stored and how they are delivered.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// The embedded store's directory (created on first start). Unset: the default
    /// directory for the command (see [`default_data_dir`]); a gateway built from the
    /// library without one (tests, examples) uses a temporary directory.
    pub data_dir: Option<std::path::PathBuf>,
    /// How long `submitAction` waits for ActionKit before it answers `QUEUED`.
    pub answer_within_ms: u64,
    /// Without an idempotency key, the same input from the same caller within this
    /// many seconds is the same submission; 0 turns the window off.
    pub duplicate_window_secs: u64,
    /// Queued submissions the worker sends at once (at most `actionkit.max_in_flight`).
    pub worker_concurrency: usize,
    /// After a send without an answer, how long to wait before looking whether the
    /// action was created (and only then sending again).
    pub unknown_settle_ms: u64,
    /// Longest backoff between two attempts at one submission (retries never stop).
    pub max_backoff_ms: u64,
    /// Days a processed or failed submission is kept (for `Query.submission` and its
    /// idempotency key); 0 keeps them forever. Queued submissions are never removed.
    pub retention_days: u64,
    /// Names the upstream the store's submissions are for, in place of ActionKit's
    /// URL. Not a file setting: `serve --sandbox` sets it to `sandbox`, since the
    /// embedded sandbox's port changes at every start.
    #[serde(skip)]
    pub upstream_name: Option<String>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            data_dir: None,
            answer_within_ms: 800,
            duplicate_window_secs: 300,
            worker_concurrency: 4,
            unknown_settle_ms: 30_000,
            max_backoff_ms: 300_000,
            retention_days: 30,
            upstream_name: None,
        }
    }
}

/// The data directory when none is configured: `$XDG_DATA_HOME/actionkit-graphql`,
/// else `$HOME/.local/share/actionkit-graphql`, else `./actionkit-graphql-data`; with
/// `--sandbox`, its `sandbox/` subdirectory, so that submissions to the demo never
/// share a store with submissions to a real instance.
pub fn default_data_dir(sandbox: bool) -> std::path::PathBuf {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = env("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .map(|d| d.join("actionkit-graphql"))
        .or_else(|| {
            env("HOME").map(|h| {
                std::path::PathBuf::from(h)
                    .join(".local/share")
                    .join("actionkit-graphql")
            })
        })
        .unwrap_or_else(|| std::path::PathBuf::from("actionkit-graphql-data"));
    if sandbox {
        base.join("sandbox")
    } else {
        base
    }
}

/// How the gateway treats client connections (see docs/security.md, "Attacks and
/// defences"): slow or idle clients are closed, open connections are capped.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Longest time a client may take to send a request's headers, from the first
    /// byte (or from connecting) to the blank line; then the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Longest time a kept-alive connection may sit idle between requests.
    pub idle_timeout_ms: u64,
    /// Open client connections at most. At the cap, the connection idle (or sending
    /// its headers) the longest is closed to make room; when every connection has a
    /// request in flight, a new one is refused (HTTP 429, `Retry-After: 1`). Unset:
    /// three quarters of the process's open-file limit, at most 4096, so that client
    /// connections alone never exhaust the descriptors.
    pub max_connections: Option<usize>,
    /// Longest time a client may take to send a `/graphql` request body (HTTP 408
    /// after it).
    pub body_read_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            max_connections: None,
            body_read_timeout_ms: 30_000,
        }
    }
}

/// Taking actions from forms (`submitAction`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmitConfig {
    /// How long a page's form (does it exist, its required fields) is cached, in
    /// seconds. Within it, refused input costs no upstream call.
    pub page_form_ttl_secs: u64,
    /// How long the instance's allowed custom user fields are cached, in seconds.
    pub allowed_user_fields_ttl_secs: u64,
    /// Custom action fields (`action_<name>`, names without the prefix) that callers
    /// without `write` may send on every page.
    pub action_fields: Vec<String>,
    /// Submissions per minute from one client address, for callers without `write`
    /// (`submit` and `self` keys); 0 turns the limit off.
    pub per_address_per_minute: u32,
    /// Submissions one address may make at once before the per-minute rate applies.
    pub per_address_burst: u32,
    /// Submissions per minute to one page from callers without `write`; 0 = off.
    pub per_page_per_minute: u32,
    pub per_page_burst: u32,
    /// Per-page settings, by page short name (`[submit.pages.save-the-bees]`).
    pub pages: std::collections::BTreeMap<String, SubmitPageConfig>,
}

/// What one page accepts from callers without `write`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmitPageConfig {
    /// Custom action fields (`action_<name>`, names without the prefix) this page
    /// accepts, besides `submit.action_fields`.
    pub action_fields: Vec<String>,
    /// Custom user fields (`user_<name>`, names without the prefix) this page accepts.
    /// Unset: the instance's allowed user fields (`/rest/v1/alloweduserfield/`).
    pub user_fields: Option<Vec<String>>,
}

impl Default for SubmitConfig {
    fn default() -> Self {
        SubmitConfig {
            page_form_ttl_secs: 60,
            allowed_user_fields_ttl_secs: 300,
            action_fields: Vec::new(),
            per_address_per_minute: 20,
            per_address_burst: 10,
            per_page_per_minute: 12_000,
            per_page_burst: 2_000,
            pages: std::collections::BTreeMap::new(),
        }
    }
}

impl ServerConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.max(1))
    }
    /// The connection cap: as configured, or from the open-file limit.
    pub fn max_connections(&self) -> usize {
        match self.max_connections {
            Some(n) => n.max(1),
            None => (open_file_limit().unwrap_or(1024) / 4 * 3).clamp(64, 4096),
        }
    }
}

/// The soft limit on open files of this process (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

/// OpenTelemetry trace export (off unless `otlp_endpoint` is set).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://collector:4318`; spans are
    /// POSTed (protobuf) to `<otlp_endpoint>/v1/traces`. Unset: no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces sampled, 0.0 to 1.0 (a caller's sampling decision wins).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "actionkit-graphql".into(),
            sample_ratio: 1.0,
        }
    }
}

/// Client authentication and the guards in front of GraphQL (see docs/security.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Client keys, each `name:scopes:sha256hex` (scopes `read`, `write`, `self`,
    /// `submit` joined by `+`); the hash is `actionkit-graphql hash-key`'s output. An
    /// optional fourth part, page short names joined by `+`, limits the pages the key
    /// may submit actions to (`form:submit:<hash>:save-the-bees+fair-rent`).
    #[serde(serialize_with = "masked_keys")]
    pub api_keys: Vec<String>,
    /// Let requests without a key read (never write). Needed to serve a real instance
    /// without keys.
    pub allow_anonymous_reads: bool,
    /// Origins (`https://app.example.org`) allowed to call the gateway from a browser.
    /// None by default: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// The request header a `self` key sends its member's AKID in.
    pub akid_header: String,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    pub max_tokens: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    /// Fields per document once fragments are expanded (`__typename` included),
    /// counted before anything else walks the document.
    pub max_fields: usize,
    /// Fragment spreads per document once fragments are expanded.
    pub max_fragment_spreads: usize,
    /// Sustained requests per minute per key (anonymous callers: per address).
    /// Unset: 600, except in an open sandbox (no keys, development) where it is off.
    /// 0 turns it off.
    pub rate_limit_per_minute: Option<u32>,
    /// Requests a key may make at once before the sustained rate applies.
    pub rate_limit_burst: u32,
    /// Ceiling per minute for a key shared by several callers (a `self` key's members,
    /// a `submit` key's or anonymous callers' addresses), each of which has its own
    /// `rate_limit_per_minute`. Unset: 20 × `rate_limit_per_minute`; never below it.
    pub rate_limit_key_per_minute: Option<u32>,
    /// Proxies (CIDR blocks such as `10.0.0.0/8`, or addresses) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client's address. Empty by default: the
    /// connection's address is the client's.
    pub trusted_proxies: Vec<String>,
    pub trusted_documents: TrustedDocumentsConfig,
    /// Bearer JWTs from an identity provider, besides API keys (off when absent).
    pub jwt: Option<JwtConfig>,
    /// Keys the process makes itself, in the `api_keys` format: the demo `submit` key
    /// of `serve --sandbox` in development mode. Never read from a file or the
    /// environment, and not counted as configured keys (the open sandbox stays open).
    #[serde(skip)]
    pub demo_keys: Vec<String>,
}

/// JWT verification (RS256/ES256).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// The provider's JWKS (https), re-read when a token names an unknown key.
    pub jwks_url: Option<String>,
    /// Or a local PEM public key, or a JWKS JSON file.
    pub key_file: Option<std::path::PathBuf>,
    /// Accepted algorithms: `RS256`, `ES256`.
    pub algorithms: Vec<String>,
    /// The claim holding scopes (space-separated string or array): read, write, self.
    pub scopes_claim: String,
    /// Clock skew allowed on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    /// Shortest time between two JWKS fetches; a key id still unknown after a fetch
    /// is refused without another fetch for this long.
    pub jwks_min_refresh_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            issuer: None,
            audience: None,
            jwks_url: None,
            key_file: None,
            algorithms: vec!["RS256".into(), "ES256".into()],
            scopes_claim: "scope".into(),
            leeway_secs: 30,
            jwks_min_refresh_secs: 30,
        }
    }
}

/// What to do with operations that are not in the trusted-documents manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TrustedMode {
    /// No manifest: any document is run.
    Off,
    /// Unknown documents run and are logged (hash and operation name).
    LogUnknown,
    /// Unknown documents are refused (FORBIDDEN).
    Enforce,
}

/// Trusted documents (persisted operations).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustedDocumentsConfig {
    pub mode: TrustedMode,
    /// JSON object `{ "<sha256 hex>": "<document>" }`, as `actionkit-graphql
    /// trusted-documents` writes it; reloaded when the file changes.
    pub manifest: Option<std::path::PathBuf>,
    /// Key names that may send any document even in `enforce` mode (staff tools).
    pub exempt_keys: Vec<String>,
    /// How often the manifest file is checked for changes, in milliseconds.
    pub reload_interval_ms: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            api_keys: Vec::new(),
            allow_anonymous_reads: false,
            cors_origins: Vec::new(),
            akid_header: "x-akid".into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_tokens: 1000,
            max_aliases: 15,
            max_directives: 50,
            max_fields: 2000,
            max_fragment_spreads: 500,
            rate_limit_per_minute: None,
            rate_limit_burst: 100,
            rate_limit_key_per_minute: None,
            trusted_proxies: Vec::new(),
            trusted_documents: TrustedDocumentsConfig::default(),
            jwt: None,
            demo_keys: Vec::new(),
        }
    }
}

impl Default for TrustedDocumentsConfig {
    fn default() -> Self {
        TrustedDocumentsConfig {
            mode: TrustedMode::Off,
            manifest: None,
            exempt_keys: Vec::new(),
            reload_interval_ms: 1000,
        }
    }
}

/// The ActionKit instance and how to talk to it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionKitConfig {
    /// `https://<instance-host>`.
    pub url: Option<String>,
    pub username: Option<String>,
    #[serde(serialize_with = "masked_secret")]
    pub password: Option<SecretString>,
    /// The instance's AKID hash secret, to verify AKIDs locally.
    #[serde(serialize_with = "masked_secret")]
    pub akid_secret: Option<SecretString>,
    /// Requests in flight to ActionKit, process-wide.
    pub max_in_flight: usize,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Deadline of one client operation, retries and pagination included.
    pub operation_deadline_ms: u64,
    pub max_retries: u32,
    /// Consecutive failed ActionKit calls (5xx, timeouts, broken connections) after
    /// which the circuit breaker opens; 0 disables it.
    pub breaker_failure_threshold: u32,
    /// How long the breaker stays open before one probe (doubling after a failed probe).
    pub breaker_open_ms: u64,
    /// Longest open period of the breaker.
    pub breaker_max_open_ms: u64,
    /// How long a successful ActionKit read stays shareable after it lands: an
    /// identical read asked for within it gets that answer instead of a call of its
    /// own (reads in flight are always shared). 0 turns it off.
    pub share_window_us: u64,
}

/// The GraphQL layer's settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlConfig {
    /// No longer used: loaders gather the keys asked for in one pass of the request
    /// without waiting on a timer (`graphql/batch.rs`). Accepted so that existing
    /// configuration files still load.
    pub loader_delay_us: u64,
    /// How long a page stays in the process-wide page cache.
    pub page_cache_ttl_secs: u64,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// ActionKit calls one operation may cause, estimated before it runs (ids × nested
    /// lists × aliases; see `graphql/upstream_cost.rs`).
    pub max_upstream_calls: u64,
    /// Deadline of one GraphQL operation, in milliseconds.
    pub operation_deadline_ms: u64,
    /// GraphQL operations executing at once; 0 turns load shedding off.
    pub max_concurrent_operations: usize,
    /// Operations that may wait for an execution slot; beyond them a request is
    /// refused at once with HTTP 429.
    pub max_queued_operations: usize,
    /// Longest wait for an execution slot before a queued request is refused (429).
    pub queue_timeout_ms: u64,
    /// Automatic persisted queries (Apollo Client's `PersistedQueryLink`, urql's
    /// `persistedExchange`): documents registered by hash, then sent as the hash alone.
    pub persisted_queries: bool,
    /// Bytes of document text the persisted-query cache holds at most (least recently
    /// used out first).
    pub persisted_query_cache_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            mode: None,
            actionkit: ActionKitConfig::default(),
            graphql: GraphqlConfig::default(),
            security: SecurityConfig::default(),
            server: ServerConfig::default(),
            telemetry: TelemetryConfig::default(),
            submit: SubmitConfig::default(),
            outbox: OutboxConfig::default(),
            progress: ProgressConfig::default(),
            redis: RedisConfig::default(),
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
            breaker_failure_threshold: 20,
            breaker_open_ms: 5_000,
            breaker_max_open_ms: 60_000,
            share_window_us: 2_000,
        }
    }
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        GraphqlConfig {
            loader_delay_us: 100,
            page_cache_ttl_secs: 300,
            max_depth: 8,
            max_complexity: 10_000,
            max_upstream_calls: 200,
            operation_deadline_ms: 20_000,
            max_concurrent_operations: 256,
            max_queued_operations: 512,
            queue_timeout_ms: 2_000,
            persisted_queries: true,
            persisted_query_cache_bytes: 4 * 1024 * 1024,
        }
    }
}

impl GraphqlConfig {
    pub fn page_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.page_cache_ttl_secs)
    }
    pub fn operation_deadline(&self) -> Duration {
        Duration::from_millis(self.operation_deadline_ms)
    }
}

impl Config {
    /// The effective settings as TOML, with every secret replaced by `"***"` (the
    /// fields that hold secrets say so with `serialize_with`, so a new setting is
    /// printed without another edit here).
    pub fn to_masked_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The file's settings (if any) over the defaults, then every environment variable
    /// of the form `GATEWAY_<SECTION>__<KEY>` over those: the TOML path in upper case,
    /// with `__` between its parts (`GATEWAY_ACTIONKIT__MAX_IN_FLIGHT=4` is
    /// `[actionkit] max_in_flight = 4`, `GATEWAY_SECURITY__JWT__ISSUER=...` is
    /// `[security.jwt] issuer`). Values are read as TOML values (`4`, `true`,
    /// `[\"a\", \"b\"]`), else as strings. The named variables of `cli.rs`
    /// (`GATEWAY_LISTEN`, `ACTIONKIT_URL`, ...) and the flags are laid over this.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        use figment::providers::{Env, Format, Toml};
        let mut figment = figment::Figment::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            figment = figment.merge(Toml::string(&text));
        }
        let env = Env::prefixed("GATEWAY_")
            .filter(|key| key.as_str().contains("__"))
            .split("__");
        figment
            .merge(env)
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))
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

/// A secret as `check-config` prints it.
fn masked_secret<S: Serializer>(secret: &Option<SecretString>, out: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => out.serialize_some("***"),
        None => out.serialize_none(),
    }
}

/// A URL as `check-config` prints it: the password (if any) replaced by `***`.
fn masked_url<S: Serializer>(url: &Option<SecretString>, out: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret as _;
    match url {
        Some(u) => out.serialize_some(&mask_url_password(u.expose_secret())),
        None => out.serialize_none(),
    }
}

/// `scheme://user:***@host/...` for a URL with a password; the URL as is without one;
/// `***` when it does not parse (it may be anything, a password included).
pub fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "***".into(),
    }
}

/// Client keys as `check-config` prints them: name and scopes, never the hash.
fn masked_keys<S: Serializer>(keys: &[String], out: S) -> Result<S::Ok, S::Error> {
    out.collect_seq(keys.iter().filter(|k| !k.trim().is_empty()).map(|k| {
        let mut parts = k.splitn(3, ':');
        let name = parts.next().unwrap_or("");
        let scopes = parts.next().unwrap_or("");
        format!("{name}:{scopes}:***")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_connection_cap_follows_the_descriptor_limit_unless_set() {
        let mut server = ServerConfig::default();
        let auto = server.max_connections();
        assert!((64..=4096).contains(&auto), "{auto}");
        if let Some(limit) = open_file_limit() {
            assert!(
                auto <= limit,
                "{auto} connections under {limit} descriptors"
            );
        }
        server.max_connections = Some(10);
        assert_eq!(server.max_connections(), 10);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[actionkit]\nurll = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn outbox_settings_read_from_the_file_and_default_directories() {
        let c = Config::from_toml("[outbox]\ndata_dir = \"/var/lib/gw\"\nanswer_within_ms = 500\n")
            .unwrap();
        assert_eq!(c.outbox.data_dir.as_deref(), Some(Path::new("/var/lib/gw")));
        assert_eq!(c.outbox.answer_within_ms, 500);
        assert_eq!(c.outbox.duplicate_window_secs, 300);
        assert!(c.to_masked_toml().contains("data_dir = \"/var/lib/gw\""));
        assert!(Config::from_toml("[outbox]\ndatadir = \"x\"\n")
            .unwrap_err()
            .to_string()
            .contains("datadir"));
        assert!(default_data_dir(true).ends_with("actionkit-graphql/sandbox"));
        assert!(default_data_dir(false).ends_with("actionkit-graphql"));
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
mod redis_settings {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_redis_url_is_read_and_printed_without_its_password() {
        let c = Config::from_toml("[redis]\nurl = \"redis://:s3cret-pw@cache:6380/2\"\n").unwrap();
        assert_eq!(
            c.redis.url.as_ref().unwrap().expose_secret(),
            "redis://:s3cret-pw@cache:6380/2"
        );
        let printed = c.to_masked_toml();
        assert!(!printed.contains("s3cret-pw"), "{printed}");
        assert!(printed.contains("redis://:***@cache:6380/2"), "{printed}");
        assert!(!format!("{c:?}").contains("s3cret-pw"));
        assert_eq!(c.redis.key_prefix, "akgql");
        assert!(Config::from_toml("[redis]\nurll = \"x\"\n").is_err());
        assert_eq!(mask_url_password("not a url s3cret"), "***");
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
