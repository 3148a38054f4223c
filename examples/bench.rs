//! Load benchmark of the gateway (issue 8).
//!
//! Starts the ActionKit sandbox and the gateway as two separate processes of the release
//! binary, drives load over HTTP/1.1 keep-alive connections from this process for a
//! fixed time, and reports requests per second, p50/p90/p99 latency, upstream calls per
//! operation (from the sandbox's `/__sandbox/stats`) next to their lower bound, the
//! critical path in upstream round trips, the gateway's overhead, and its memory
//! (`VmRSS`/`VmHWM` from `/proc/<pid>/status`).
//!
//! ```text
//! cargo run --release --example bench -- --write BENCHMARKS.md
//! cargo run --release --example bench -- --quick          # a 1-minute smoke run
//! ```
//!
//! The load generator is a hand-written HTTP/1.1 client on one current-thread runtime,
//! so that it costs as little CPU as possible on a machine it shares with the sandbox
//! and the gateway. Every response is checked: HTTP 200 and no `errors` entry.
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark program: a failed invariant should stop it loudly"
)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CANONICAL: &str = "query Canonical($id: ID!) { user(id: $id) { firstName actions(first: 10) { totalCount nodes { type page { title } customFields { name value } } } } }";
const BATCH50: &str = "query Batch($ids: [ID!]!) { users(ids: $ids) { actions(first: 20) { nodes { page { name } customFields { name } } } } }";
const MUTATION: &str = "mutation Set($id: ID!, $v: String!) { setActionCustomFields(actionId: $id, fields: [{name: \"bench_note\", value: $v}]) { id customFields { name value } } }";

const RESULTS_START: &str = "<!-- bench:results:start -->";
const RESULTS_END: &str = "<!-- bench:results:end -->";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// The canonical query, each request a different member.
    Canonical,
    /// `users(ids: [50 ids])` with 20 actions each, pages and field names.
    Batch50,
    /// The canonical query with every 10th request a `setActionCustomFields`.
    Mix10,
    /// The canonical query over only 5 members: identical reads in flight at once.
    Hot,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Canonical => "canonical",
            Scenario::Batch50 => "batch50",
            Scenario::Mix10 => "mix10",
            Scenario::Hot => "hot5",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Filters {
    Permissive,
    Strict,
}

impl Filters {
    fn name(self) -> &'static str {
        match self {
            Filters::Permissive => "permissive",
            Filters::Strict => "strict",
        }
    }
}

#[derive(Debug, Clone, Parser)]
#[command(about = "Load benchmark: sandbox and gateway as processes, load over HTTP")]
struct Args {
    /// The gateway binary [default: target/release/actionkit-graphql, built first].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not run `cargo build --release` before starting.
    #[arg(long)]
    no_build: bool,
    /// Seconds of measured load per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of unmeasured load before each scenario (fills pools and the page cache).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Concurrent connections of the load scenarios.
    #[arg(long, default_value_t = 20)]
    connections: usize,
    /// Members in the sandbox (`--users`).
    #[arg(long, default_value_t = 1000)]
    users: usize,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "canonical,batch50,mix10,hot"
    )]
    scenarios: Vec<Scenario>,
    /// Sandbox latencies to run, in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "0,50")]
    latency: Vec<u64>,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "permissive,strict"
    )]
    filters: Vec<Filters>,
    /// Sequential requests (one connection) per critical-path measurement.
    #[arg(long, default_value_t = 60)]
    path_samples: usize,
    /// Connections of the memory run (canonical, 0 ms, permissive); 0 skips it.
    #[arg(long, default_value_t = 500)]
    memory_connections: usize,
    /// Seconds of the soak run (canonical, 20 connections, RSS sampled); 0 skips it.
    #[arg(long, default_value_t = 60)]
    soak: u64,
    /// TOML configuration for the gateway under test (`--config`) instead of the
    /// benchmark's own (which only turns the per-key rate limit off: keep that).
    #[arg(long)]
    gateway_config: Option<PathBuf>,
    /// Replace the results section of this Markdown file (created if missing).
    #[arg(long)]
    write: Option<PathBuf>,
    /// A short run: 3 s per scenario, 1 s warm-up, 20 path samples, 10 s soak.
    #[arg(long)]
    quick: bool,
}

// ----- a small HTTP/1.1 client ---------------------------------------------------------

struct Conn {
    addr: SocketAddr,
    io: Option<BufReader<TcpStream>>,
    head: Vec<u8>,
    line: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            io: None,
            head: Vec::with_capacity(512),
            line: Vec::with_capacity(256),
        }
    }

    /// One request; returns the status and the body. Reconnects when needed.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        extra_headers: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        if self.io.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.io = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let result = self.exchange(method, path, extra_headers, body).await;
        if result.is_err() {
            self.io = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        extra_headers: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let io = self.io.as_mut().ok_or_else(|| anyhow!("not connected"))?;
        self.head.clear();
        write!(
            &mut StringSink(&mut self.head),
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra_headers}Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )?;
        self.head.extend_from_slice(body);
        io.get_mut().write_all(&self.head).await?;

        // Status line and headers.
        let mut status = 0u16;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        let mut first = true;
        loop {
            self.line.clear();
            let n = io.read_until(b'\n', &mut self.line).await?;
            if n == 0 {
                bail!("connection closed before the response");
            }
            let text = std::str::from_utf8(&self.line)?.trim_end();
            if first {
                first = false;
                status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow!("bad status line {text:?}"))?;
                continue;
            }
            if text.is_empty() {
                break;
            }
            if let Some((name, value)) = text.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = Some(value.parse()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut out = Vec::new();
        if status == 204 || status == 304 || (100..200).contains(&status) || method == "HEAD" {
            // No body by definition.
        } else if chunked {
            loop {
                self.line.clear();
                io.read_until(b'\n', &mut self.line).await?;
                let size_text = std::str::from_utf8(&self.line)?.trim();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or(""), 16)?;
                let start = out.len();
                out.resize(start + size, 0);
                io.read_exact(&mut out[start..]).await?;
                self.line.clear();
                io.read_until(b'\n', &mut self.line).await?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(len) = content_length {
            out.resize(len, 0);
            io.read_exact(&mut out).await?;
        } else {
            io.read_to_end(&mut out).await?;
            close = true;
        }
        if close {
            self.io = None;
        }
        Ok((status, out))
    }
}

/// `fmt::Write` over a byte vector.
struct StringSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StringSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The API key the benchmark gives the gateway (`GATEWAY_API_KEYS`) and sends.
const BENCH_KEY: &str = "bench-key-not-a-secret-0123456789";
const JSON_HEADERS: &str = "Content-Type: application/json\r\nAccept: application/json\r\nAuthorization: Bearer bench-key-not-a-secret-0123456789\r\n";

fn bench_key_entry() -> String {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(BENCH_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("bench:read+write:{hash}")
}

async fn get_json(addr: SocketAddr, path: &str, auth: Option<&str>) -> anyhow::Result<Value> {
    let mut c = Conn::new(addr);
    let headers = match auth {
        Some(a) => format!("Accept: application/json\r\nAuthorization: {a}\r\n"),
        None => "Accept: application/json\r\n".to_owned(),
    };
    let (status, body) = c.request("GET", path, &headers, b"").await?;
    if status != 200 {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

// ----- processes -----------------------------------------------------------------------

/// A child process, killed (by its own pid) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    Ok(std::fs::File::create(dir.join(name))?)
}

async fn wait_until_up(addr: SocketAddr, path: &str, proc: &mut Proc) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = proc.child.try_wait()? {
            bail!("{} exited during start-up: {status}", proc.name);
        }
        let mut c = Conn::new(addr);
        if let Ok((200, _)) = c.request("GET", path, "", b"").await {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("{} did not come up on {addr}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Env {
    bin: PathBuf,
    logs: PathBuf,
}

struct Sandbox {
    /// Kept for its `Drop`, which stops the process.
    _proc: Proc,
    addr: SocketAddr,
}

async fn start_sandbox(
    env: &Env,
    filters: Filters,
    latency_ms: u64,
    users: usize,
) -> anyhow::Result<Sandbox> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let log = log_file(
        &env.logs,
        &format!("sandbox-{}-{latency_ms}ms.log", filters.name()),
    )?;
    let child = Command::new(&env.bin)
        .args(["sandbox", "--listen", &addr.to_string()])
        .args(["--users", &users.to_string(), "--seed", "1"])
        .args(["--latency-ms", &latency_ms.to_string()])
        .args(["--filters", filters.name()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", env.bin.display()))?;
    let mut proc = Proc {
        name: "sandbox",
        child,
    };
    wait_until_up(addr, "/__sandbox/stats", &mut proc).await?;
    Ok(Sandbox { _proc: proc, addr })
}

struct Gateway {
    proc: Proc,
    addr: SocketAddr,
}

async fn start_gateway(
    env: &Env,
    sandbox: SocketAddr,
    config: Option<&Path>,
    tag: &str,
) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let log = log_file(&env.logs, &format!("gateway-{tag}.log"))?;
    // A fresh submission store for each gateway: each run's sandbox is new, and a
    // store left with queued submissions for another sandbox refuses to open.
    let data_dir = env.logs.join(format!("data-{tag}"));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut cmd = Command::new(&env.bin);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let child = cmd
        .arg("serve")
        .env("ACTIONKIT_URL", format!("http://{sandbox}"))
        .env("ACTIONKIT_USERNAME", "sandbox")
        .env("ACTIONKIT_PASSWORD", "sandbox")
        .env("GATEWAY_LISTEN", addr.to_string())
        .env("GATEWAY_MODE", "development")
        .env("GATEWAY_API_KEYS", bench_key_entry())
        .env("GATEWAY_DATA_DIR", &data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", env.bin.display()))?;
    let mut proc = Proc {
        name: "gateway",
        child,
    };
    wait_until_up(addr, "/healthz", &mut proc).await?;
    Ok(Gateway { proc, addr })
}

/// Sockets on this machine whose local port is `port` (the sandbox's side):
/// `(established, time-wait)`. Few established and no time-wait means the gateway
/// keeps its upstream connections alive and reuses them.
fn sockets_to(port: u16) -> (usize, usize) {
    let mut est = 0;
    let mut tw = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port != Some(port) {
                continue;
            }
            match *state {
                "01" => est += 1,
                "06" => tw += 1,
                _ => {}
            }
        }
    }
    (est, tw)
}

/// `(VmRSS, VmHWM)` in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ----- the sandbox's data and counters ----------------------------------------------------

fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("sandbox:sandbox")
    )
}

async fn upstream_requests(sandbox: SocketAddr) -> anyhow::Result<u64> {
    let stats = get_json(sandbox, "/__sandbox/stats", None).await?;
    stats["requests"]
        .as_u64()
        .ok_or_else(|| anyhow!("no `requests` in the sandbox stats: {stats}"))
}

async fn upstream_stats(sandbox: SocketAddr) -> anyhow::Result<Value> {
    get_json(sandbox, "/__sandbox/stats", None).await
}

async fn reset_stats(sandbox: SocketAddr) -> anyhow::Result<()> {
    let mut c = Conn::new(sandbox);
    let (status, body) = c.request("POST", "/__sandbox/stats/reset", "", b"").await?;
    if !(200..300).contains(&status) {
        bail!(
            "stats reset answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// What the scenarios need to know about the sandbox's data.
struct Data {
    users: u64,
    /// Ids of actions the mix scenario writes to.
    action_ids: Vec<u64>,
    /// Per batch of 50 users (ids `50k+1 ..= 50k+50`): the number of their actions.
    batch_actions: Vec<u64>,
}

async fn discover(sandbox: SocketAddr, filters: Filters) -> anyhow::Result<Data> {
    let auth = basic_auth();
    let auth = Some(auth.as_str());
    let users = get_json(sandbox, "/rest/v1/user/?_limit=1", auth).await?["meta"]["total_count"]
        .as_u64()
        .ok_or_else(|| anyhow!("no user total_count"))?;
    let actions = get_json(sandbox, "/rest/v1/action/?_limit=100", auth).await?;
    let action_ids: Vec<u64> = actions["objects"]
        .as_array()
        .ok_or_else(|| anyhow!("no actions"))?
        .iter()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    let mut batch_actions = Vec::new();
    for k in 0..(users / 50) {
        let mut total = 0;
        if filters == Filters::Permissive {
            let ids: Vec<String> = (k * 50 + 1..=k * 50 + 50).map(|i| i.to_string()).collect();
            let path = format!("/rest/v1/action/?user__in={}&_limit=1", ids.join(","));
            total = get_json(sandbox, &path, auth).await?["meta"]["total_count"]
                .as_u64()
                .ok_or_else(|| anyhow!("no action total_count"))?;
        }
        batch_actions.push(total);
    }
    Ok(Data {
        users,
        action_ids,
        batch_actions,
    })
}

// ----- load --------------------------------------------------------------------------------

/// Makes the body of request number `n`.
type BodyFn = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

#[derive(Default)]
struct Load {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    /// Latencies in microseconds, sorted.
    lat_us: Vec<u32>,
    elapsed: Duration,
}

impl Load {
    fn rps(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn pct_ms(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat_us.len() as f64 * p).ceil() as usize).clamp(1, self.lat_us.len()) - 1;
        self.lat_us[i] as f64 / 1000.0
    }
}

/// A GraphQL answer that counts as a success: HTTP 200, JSON with `data`, no `errors`.
fn check(status: u16, body: &[u8]) -> Result<(), String> {
    let ok = status == 200
        && body.starts_with(b"{\"data\"")
        && !body.windows(9).any(|w| w == b"\"errors\":");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}

/// Runs `connections` keep-alive connections against `/graphql` for `duration`; each
/// connection sends its next request as soon as the previous one is answered.
async fn run_load(
    gateway: SocketAddr,
    connections: usize,
    duration: Duration,
    counter: Arc<AtomicU64>,
    body: BodyFn,
) -> Load {
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let counter = counter.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut conn = Conn::new(gateway);
                let mut load = Load::default();
                load.lat_us.reserve(4096);
                while Instant::now() < end {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let b = body(n);
                    let t0 = Instant::now();
                    let result = conn.request("POST", "/graphql", JSON_HEADERS, &b).await;
                    let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    let verdict = match result {
                        Ok((status, resp)) => check(status, &resp),
                        Err(e) => Err(format!("transport: {e:#}")),
                    };
                    load.ops += 1;
                    load.lat_us.push(us);
                    if let Err(e) = verdict {
                        load.errors += 1;
                        load.first_error.get_or_insert(e);
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for t in tasks {
        let l = t.await.unwrap();
        total.ops += l.ops;
        total.errors += l.errors;
        if total.first_error.is_none() {
            total.first_error = l.first_error;
        }
        total.lat_us.extend(l.lat_us);
    }
    // Requests in flight at `end` were finished and are counted: the elapsed time
    // includes them.
    total.elapsed = start.elapsed();
    total.lat_us.sort_unstable();
    total
}

fn graphql_body(query: &str, variables: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"query": query, "variables": variables})).unwrap()
}

fn body_fn(scenario: Scenario, data: &Data) -> BodyFn {
    let users = data.users.max(1);
    match scenario {
        Scenario::Canonical => {
            Arc::new(move |n| graphql_body(CANONICAL, json!({"id": (n % users + 1).to_string()})))
        }
        Scenario::Batch50 => {
            let batches = (users / 50).max(1);
            Arc::new(move |n| {
                let k = n % batches;
                let ids: Vec<String> = (k * 50 + 1..=k * 50 + 50)
                    .map(|i| ((i - 1) % users + 1).to_string())
                    .collect();
                graphql_body(BATCH50, json!({ "ids": ids }))
            })
        }
        Scenario::Hot => {
            Arc::new(move |n| graphql_body(CANONICAL, json!({"id": (n % 5 + 1).to_string()})))
        }
        Scenario::Mix10 => {
            let actions = data.action_ids.clone();
            Arc::new(move |n| {
                if n % 10 == 9 && !actions.is_empty() {
                    let id = actions[(n / 10) as usize % actions.len()];
                    graphql_body(
                        MUTATION,
                        json!({"id": id.to_string(), "v": format!("bench-{n}")}),
                    )
                } else {
                    graphql_body(CANONICAL, json!({"id": (n % users + 1).to_string()}))
                }
            })
        }
    }
}

/// The fewest upstream calls for request number `n` of `scenario` with a warm page
/// cache, taking each request alone (no sharing between requests).
fn request_bound(scenario: Scenario, filters: Filters, data: &Data, n: u64) -> f64 {
    match (scenario, filters) {
        (Scenario::Canonical | Scenario::Hot, _) => 2.0,
        (Scenario::Batch50, Filters::Permissive) => {
            let batches = data.batch_actions.len().max(1) as u64;
            let actions = data.batch_actions.get((n % batches) as usize).copied();
            1.0 + actions.unwrap_or(0).div_ceil(100).min(50) as f64
        }
        (Scenario::Batch50, Filters::Strict) => 100.0,
        (Scenario::Mix10, _) => {
            if n % 10 == 9 {
                3.0
            } else {
                2.0
            }
        }
    }
}

/// The mean bound over the requests `range` actually sent, and how it comes about.
fn lower_bound(
    scenario: Scenario,
    filters: Filters,
    data: &Data,
    range: std::ops::Range<u64>,
) -> (f64, String) {
    let count = (range.end - range.start).max(1) as f64;
    let mean = range
        .clone()
        .map(|n| request_bound(scenario, filters, data, n))
        .sum::<f64>()
        / count;
    let why = match (scenario, filters) {
        (Scenario::Canonical, _) => "user + 1 actions window".to_owned(),
        (Scenario::Hot, _) => "2 per request alone; less is sharing".to_owned(),
        (Scenario::Batch50, Filters::Permissive) => {
            let batches = data.batch_actions.len().max(1) as u64;
            let actions: u64 = range
                .map(|n| {
                    data.batch_actions
                        .get((n % batches) as usize)
                        .copied()
                        .unwrap_or(0)
                })
                .sum();
            format!(
                "1 id__in + ⌈actions/100⌉ user__in pages, {:.0} actions/request",
                actions as f64 / count
            )
        }
        (Scenario::Batch50, Filters::Strict) => "50 users + 50 windows, no __in".to_owned(),
        (Scenario::Mix10, _) => "9 × 2 + 1 × 3 (GET, PATCH, GET) per 10".to_owned(),
    };
    (mean, why)
}

// ----- the runs ----------------------------------------------------------------------------

struct Row {
    filters: Filters,
    latency_ms: u64,
    scenario: Scenario,
    connections: usize,
    load: Load,
    calls_per_op: f64,
    bound: f64,
    bound_why: String,
    rss_mb: f64,
    hwm_mb: f64,
    /// TCP connections to the sandbox after the run: (established, time-wait).
    sockets: (usize, usize),
}

struct PathRow {
    filters: Filters,
    latency_ms: u64,
    cold: Load,
    cold_calls: f64,
    warm: Load,
    warm_calls: f64,
    /// The two upstream reads of a warm canonical query, sent by hand in parallel.
    upstream: Load,
}

struct MemRow {
    what: String,
    rss_mb: f64,
    hwm_mb: f64,
    note: String,
}

struct Report {
    rows: Vec<Row>,
    paths: Vec<PathRow>,
    mem: Vec<MemRow>,
    soak: Vec<(u64, f64)>,
    soak_load: Option<Load>,
}

/// Sequential canonical queries on one connection.
async fn sequential(gateway: SocketAddr, samples: usize, data: &Data, offset: u64) -> Load {
    let body = body_fn(Scenario::Canonical, data);
    let mut conn = Conn::new(gateway);
    let mut load = Load::default();
    let start = Instant::now();
    for i in 0..samples as u64 {
        let b = body(offset + i * 7);
        let t0 = Instant::now();
        let r = conn.request("POST", "/graphql", JSON_HEADERS, &b).await;
        load.lat_us.push(t0.elapsed().as_micros() as u32);
        load.ops += 1;
        let verdict = match r {
            Ok((s, resp)) => check(s, &resp),
            Err(e) => Err(format!("transport: {e:#}")),
        };
        if let Err(e) = verdict {
            load.errors += 1;
            load.first_error.get_or_insert(e);
        }
    }
    load.elapsed = start.elapsed();
    load.lat_us.sort_unstable();
    load
}

/// The upstream part of a warm canonical query done by hand: the user and its first 10
/// actions, in parallel on two kept-alive connections, as the gateway sends them.
async fn upstream_pair(sandbox: SocketAddr, samples: usize, data: &Data) -> Load {
    let auth = format!(
        "Accept: application/json\r\nAuthorization: {}\r\n",
        basic_auth()
    );
    let mut a = Conn::new(sandbox);
    let mut b = Conn::new(sandbox);
    let mut load = Load::default();
    let start = Instant::now();
    for i in 0..samples as u64 {
        let id = (i * 7) % data.users.max(1) + 1;
        let pa = format!("/rest/v1/user/{id}/");
        let pb = format!("/rest/v1/action/?user={id}&_limit=10&_offset=0");
        let t0 = Instant::now();
        let (ra, rb) = tokio::join!(
            a.request("GET", &pa, &auth, b""),
            b.request("GET", &pb, &auth, b"")
        );
        load.lat_us.push(t0.elapsed().as_micros() as u32);
        load.ops += 1;
        if !matches!(ra, Ok((200, _))) || !matches!(rb, Ok((200, _))) {
            load.errors += 1;
        }
    }
    load.elapsed = start.elapsed();
    load.lat_us.sort_unstable();
    load
}

/// The gateway's configuration in the benchmark: the per-key rate limit off (one key
/// sends all the load), everything else at its default.
const BASE_CONFIG: &str = "[security]\nrate_limit_per_minute = 0\n";

fn base_config(env: &Env, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_owned());
    }
    std::fs::create_dir_all(&env.logs)?;
    let path = env.logs.join("gateway.toml");
    std::fs::write(&path, BASE_CONFIG)?;
    Ok(path)
}

fn cold_config(env: &Env, base: Option<&Path>) -> anyhow::Result<PathBuf> {
    // The page cache with a zero TTL: every request finds it empty, as the first does.
    let mut text = match base {
        Some(p) => std::fs::read_to_string(p)?,
        None => BASE_CONFIG.to_owned(),
    };
    if text.contains("page_cache_ttl_secs") {
        bail!("--gateway-config must not set page_cache_ttl_secs (the cold run sets it)");
    }
    if text.contains("[graphql]") {
        text = text.replace("[graphql]", "[graphql]\npage_cache_ttl_secs = 0");
    } else {
        text.push_str("\n[graphql]\npage_cache_ttl_secs = 0\n");
    }
    let path = env.logs.join("gateway-cold.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn run_env(
    args: &Args,
    env: &Env,
    filters: Filters,
    latency_ms: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration);
    let warmup = Duration::from_secs(args.warmup);
    eprintln!("== {} filters, {latency_ms} ms upstream", filters.name());
    let sandbox = start_sandbox(env, filters, latency_ms, args.users).await?;
    let data = discover(sandbox.addr, filters).await?;
    let tag = format!("{}-{latency_ms}ms", filters.name());
    let config = base_config(env, args.gateway_config.as_deref())?;
    let gw = start_gateway(env, sandbox.addr, Some(&config), &tag).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle, _) = memory(gw.proc.pid());
    report.mem.push(MemRow {
        what: format!("idle after start ({}, {latency_ms} ms)", filters.name()),
        rss_mb: idle,
        hwm_mb: memory(gw.proc.pid()).1,
        note: format!("{} users in the sandbox", data.users),
    });

    let counter = Arc::new(AtomicU64::new(0));
    for &scenario in &args.scenarios {
        let body = body_fn(scenario, &data);
        if !warmup.is_zero() {
            let w = run_load(
                gw.addr,
                args.connections,
                warmup,
                counter.clone(),
                body.clone(),
            )
            .await;
            if w.errors > 0 {
                eprintln!(
                    "   warm-up errors: {} (first: {})",
                    w.errors,
                    w.first_error.unwrap_or_default()
                );
            }
        }
        reset_stats(sandbox.addr).await?;
        let first = counter.load(Ordering::Relaxed);
        let load = run_load(gw.addr, args.connections, duration, counter.clone(), body).await;
        let range = first..counter.load(Ordering::Relaxed);
        let calls = upstream_requests(sandbox.addr).await?;
        let sockets = sockets_to(sandbox.addr.port());
        let (rss, hwm) = memory(gw.proc.pid());
        let (bound, why) = lower_bound(scenario, filters, &data, range);
        let row = Row {
            filters,
            latency_ms,
            scenario,
            connections: args.connections,
            calls_per_op: calls as f64 / load.ops.max(1) as f64,
            bound,
            bound_why: why,
            rss_mb: rss,
            hwm_mb: hwm,
            sockets,
            load,
        };
        eprintln!(
            "   {:<9} {:>8.0} req/s  p50 {:>7.2} ms  p90 {:>7.2}  p99 {:>7.2}  calls/op {:.2} (bound {:.2})  errors {}  RSS {:.1} MiB{}",
            scenario.name(),
            row.load.rps(),
            row.load.pct_ms(0.5),
            row.load.pct_ms(0.9),
            row.load.pct_ms(0.99),
            row.calls_per_op,
            row.bound,
            row.load.errors,
            rss,
            row.load
                .first_error
                .as_deref()
                .map(|e| format!("\n      first error: {e}"))
                .unwrap_or_default(),
        );
        report.rows.push(row);
    }

    // Critical path, warm: one connection, pages cached.
    let warm_up_pages = sequential(gw.addr, 10, &data, 0).await;
    drop(warm_up_pages);
    reset_stats(sandbox.addr).await?;
    let warm = sequential(gw.addr, args.path_samples, &data, 1).await;
    let warm_calls = upstream_requests(sandbox.addr).await? as f64 / warm.ops.max(1) as f64;
    let upstream = upstream_pair(sandbox.addr, args.path_samples, &data).await;
    drop(gw);

    // Critical path, cold: a gateway whose page cache is always empty.
    let cold_cfg = cold_config(env, args.gateway_config.as_deref())?;
    let gw = start_gateway(env, sandbox.addr, Some(&cold_cfg), &format!("{tag}-cold")).await?;
    let _ = sequential(gw.addr, 3, &data, 2).await;
    reset_stats(sandbox.addr).await?;
    let cold = sequential(gw.addr, args.path_samples, &data, 3).await;
    let cold_calls = upstream_requests(sandbox.addr).await? as f64 / cold.ops.max(1) as f64;
    let routes = upstream_stats(sandbox.addr).await?;
    drop(gw);
    eprintln!(
        "   path: cold p50 {:.2} ms ({cold_calls:.2} calls), warm p50 {:.2} ms ({warm_calls:.2} calls), upstream pair p50 {:.2} ms; cold routes {}",
        cold.pct_ms(0.5),
        warm.pct_ms(0.5),
        upstream.pct_ms(0.5),
        routes["by_route"]
    );
    report.paths.push(PathRow {
        filters,
        latency_ms,
        cold,
        cold_calls,
        warm,
        warm_calls,
        upstream,
    });
    drop(sandbox);
    Ok(())
}

async fn run_memory(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    if args.memory_connections == 0 && args.soak == 0 {
        return Ok(());
    }
    eprintln!("== memory (permissive, 0 ms)");
    let sandbox = start_sandbox(env, Filters::Permissive, 0, args.users).await?;
    let data = discover(sandbox.addr, Filters::Permissive).await?;
    let gw = start_gateway(env, sandbox.addr, args.gateway_config.as_deref(), "memory").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle, hwm) = memory(gw.proc.pid());
    report.mem.push(MemRow {
        what: "idle after start".into(),
        rss_mb: idle,
        hwm_mb: hwm,
        note: "before any request".into(),
    });
    let counter = Arc::new(AtomicU64::new(0));
    let body = body_fn(Scenario::Canonical, &data);
    if args.memory_connections > 0 {
        let n = args.memory_connections;
        let load = run_load(
            gw.addr,
            n,
            Duration::from_secs(args.duration),
            counter.clone(),
            body.clone(),
        )
        .await;
        let (rss, hwm) = memory(gw.proc.pid());
        eprintln!(
            "   {n} connections: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}, RSS {rss:.1} MiB, peak {hwm:.1} MiB",
            load.rps(),
            load.pct_ms(0.5),
            load.pct_ms(0.99),
            load.errors
        );
        report.mem.push(MemRow {
            what: format!("{n} connections, canonical"),
            rss_mb: rss,
            hwm_mb: hwm,
            note: format!(
                "{:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, {} errors",
                load.rps(),
                load.pct_ms(0.5),
                load.pct_ms(0.99),
                load.errors
            ),
        });
        // Connections closed; let the gateway settle and see what it gives back.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss, hwm) = memory(gw.proc.pid());
        report.mem.push(MemRow {
            what: format!("idle after the {n}-connection run"),
            rss_mb: rss,
            hwm_mb: hwm,
            note: "2 s after the load stopped".into(),
        });
    }
    if args.soak > 0 {
        let soak = Duration::from_secs(args.soak);
        let step = Duration::from_secs((args.soak / 12).max(1));
        let pid = gw.proc.pid();
        let gw_addr = gw.addr;
        let sampler = tokio::spawn(async move {
            let start = Instant::now();
            let mut samples = Vec::new();
            while start.elapsed() < soak {
                tokio::time::sleep(step).await;
                samples.push((start.elapsed().as_secs(), memory(pid).0));
            }
            samples
        });
        let load = run_load(gw_addr, args.connections, soak, counter.clone(), body).await;
        report.soak = sampler.await?;
        eprintln!(
            "   soak {} s: {:.0} req/s, errors {}, RSS samples {:?}",
            args.soak,
            load.rps(),
            load.errors,
            report.soak
        );
        report.soak_load = Some(load);
    }
    drop(gw);
    drop(sandbox);
    Ok(())
}

// ----- the report ---------------------------------------------------------------------------

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

fn render(args: &Args, report: &Report, load_before: &str, started: &str) -> String {
    let mut s = String::new();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(s, "Run {started} UTC, commit `{}`{}; {} × {} (`nproc` {}), {} GiB RAM; load average before {load_before}, after {}.",
        sh("git", &["rev-parse", "--short", "HEAD"]),
        if sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() { "" } else { " (with uncommitted changes)" },
        cpu_model(),
        sh("nproc", &[]),
        sh("nproc", &[]),
        (sh("awk", &["/MemTotal/ {print int($2/1048576+0.5)}", "/proc/meminfo"])),
        loadavg(),
    );
    let _ = writeln!(
        s,
        "Command: `cargo run --release --example bench -- {}`; {} s measured after {} s warm-up per scenario, {} connections, {} sandbox members.\n",
        argv.join(" "),
        args.duration,
        args.warmup,
        args.connections,
        args.users
    );

    let _ = writeln!(s, "### Load\n");
    let _ = writeln!(s, "| filters | upstream | scenario | conns | req/s | p50 ms | p90 ms | p99 ms | errors | upstream calls/op | lower bound | upstream conns (open / time-wait) | gateway RSS / peak MiB |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &report.rows {
        let _ = writeln!(
            s,
            "| {} | {} ms | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} ({}) | {} / {} | {:.1} / {:.1} |",
            r.filters.name(),
            r.latency_ms,
            r.scenario.name(),
            r.connections,
            r.load.rps(),
            r.load.pct_ms(0.5),
            r.load.pct_ms(0.9),
            r.load.pct_ms(0.99),
            r.load.errors,
            r.calls_per_op,
            r.bound,
            r.bound_why,
            r.sockets.0,
            r.sockets.1,
            r.rss_mb,
            r.hwm_mb
        );
    }

    let _ = writeln!(
        s,
        "\n### Critical path and overhead (one connection, {} sequential canonical queries)\n",
        args.path_samples
    );
    let _ = writeln!(s, "| filters | upstream | cold p50 ms (calls/op) | target cold | warm p50 ms (calls/op) | target warm | upstream pair p50 ms | overhead p50 ms (warm − pair) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for p in &report.paths {
        let l = p.latency_ms as f64;
        let overhead = p.warm.pct_ms(0.5) - p.upstream.pct_ms(0.5);
        let cold_target = if p.latency_ms > 0 {
            format!(
                "≤ {:.0} ms: {}",
                2.2 * l,
                verdict(p.cold.pct_ms(0.5) <= 2.2 * l)
            )
        } else {
            "—".into()
        };
        let warm_target = if p.latency_ms > 0 {
            format!(
                "≤ {:.0} ms: {}",
                1.2 * l,
                verdict(p.warm.pct_ms(0.5) <= 1.2 * l)
            )
        } else {
            "—".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} ms | {:.2} ({:.2}) | {} | {:.2} ({:.2}) | {} | {:.2} | {:.2}{} |",
            p.filters.name(),
            p.latency_ms,
            p.cold.pct_ms(0.5),
            p.cold_calls,
            cold_target,
            p.warm.pct_ms(0.5),
            p.warm_calls,
            warm_target,
            p.upstream.pct_ms(0.5),
            overhead,
            if p.cold.errors + p.warm.errors + p.upstream.errors > 0 {
                format!(
                    " ({} errors)",
                    p.cold.errors + p.warm.errors + p.upstream.errors
                )
            } else {
                String::new()
            }
        );
    }

    let _ = writeln!(s, "\n### Memory of the gateway process\n");
    let _ = writeln!(s, "| when | VmRSS MiB | VmHWM (peak) MiB | note |");
    let _ = writeln!(s, "|---|---|---|---|");
    for m in &report.mem {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {} |",
            m.what, m.rss_mb, m.hwm_mb, m.note
        );
    }
    if !report.soak.is_empty() {
        let rss: Vec<String> = report
            .soak
            .iter()
            .map(|(t, m)| format!("{t} s: {m:.1}"))
            .collect();
        let _ = writeln!(
            s,
            "\nSoak, canonical at {} connections for {} s ({:.0} req/s, {} errors), VmRSS MiB: {}.",
            args.connections,
            args.soak,
            report.soak_load.as_ref().map(Load::rps).unwrap_or(0.0),
            report.soak_load.as_ref().map(|l| l.errors).unwrap_or(0),
            rss.join(", ")
        );
    }
    s
}

/// The issue's targets, judged from this run.
fn targets(args: &Args, report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### Targets\n");
    let _ = writeln!(s, "| target | measured | status |");
    let _ = writeln!(s, "|---|---|---|");
    for r in &report.rows {
        if r.scenario == Scenario::Hot {
            continue;
        }
        let _ = writeln!(
            s,
            "| calls/op at the bound: {} {} ms {} | {:.2} (bound {:.2}) | {} |",
            r.filters.name(),
            r.latency_ms,
            r.scenario.name(),
            r.calls_per_op,
            r.bound,
            verdict(r.calls_per_op <= r.bound + 1e-9)
        );
    }
    for p in report.paths.iter().filter(|p| p.latency_ms > 0) {
        let l = p.latency_ms as f64;
        let _ = writeln!(
            s,
            "| cold critical path ≤ 2.2 round trips: {} {} ms | p50 {:.1} ms ≤ {:.0} ms | {} |",
            p.filters.name(),
            p.latency_ms,
            p.cold.pct_ms(0.5),
            2.2 * l,
            verdict(p.cold.pct_ms(0.5) <= 2.2 * l)
        );
        let _ = writeln!(
            s,
            "| warm critical path ≤ 1.2 round trips: {} {} ms | p50 {:.1} ms ≤ {:.0} ms | {} |",
            p.filters.name(),
            p.latency_ms,
            p.warm.pct_ms(0.5),
            1.2 * l,
            verdict(p.warm.pct_ms(0.5) <= 1.2 * l)
        );
    }
    for r in report
        .rows
        .iter()
        .filter(|r| r.scenario == Scenario::Canonical && r.latency_ms == 0)
    {
        let _ = writeln!(
            s,
            "| ≥ 1,900 req/s, canonical, {} connections, 0 ms: {} | {:.0} req/s | {} |",
            r.connections,
            r.filters.name(),
            r.load.rps(),
            verdict(r.load.rps() >= 1900.0 && r.load.errors == 0)
        );
    }
    for p in report.paths.iter().filter(|p| p.latency_ms == 0) {
        let overhead = p.warm.pct_ms(0.5) - p.upstream.pct_ms(0.5);
        let _ = writeln!(
            s,
            "| gateway overhead at p50 < 1 ms: {} | {:.2} ms | {} |",
            p.filters.name(),
            overhead,
            verdict(overhead < 1.0)
        );
    }
    let idle = report
        .mem
        .iter()
        .filter(|m| m.what.starts_with("idle after start"))
        .map(|m| m.rss_mb)
        .fold(f64::NAN, f64::max);
    if !idle.is_nan() {
        let _ = writeln!(
            s,
            "| idle RSS < 30 MB | {idle:.1} MiB (largest of the starts) | {} |",
            verdict(idle * 1.048_576 < 30.0)
        );
    }
    if args.memory_connections > 0 {
        if let Some(m) = report
            .mem
            .iter()
            .find(|m| m.what.ends_with("connections, canonical"))
        {
            let _ = writeln!(
                s,
                "| RSS < 150 MB with {} connections | peak {:.1} MiB | {} |",
                args.memory_connections,
                m.hwm_mb,
                verdict(m.hwm_mb * 1.048_576 < 150.0)
            );
        }
    }
    if report.soak.len() >= 3 {
        // Flat: after the first third (allocator and caches settling), RSS grows by
        // less than 10 % and less than 5 MiB.
        let settled = &report.soak[report.soak.len() / 3..];
        let first = settled.first().map(|x| x.1).unwrap_or(f64::NAN);
        let max = settled.iter().map(|x| x.1).fold(f64::NAN, f64::max);
        let growth = max - first;
        let _ = writeln!(
            s,
            "| RSS flat over the soak ({} s{}) | {first:.1} → max {max:.1} MiB after the first third | {} |",
            args.soak,
            if args.soak < 600 { ", shorter than the 10-minute target" } else { "" },
            verdict(growth < 5.0 && growth < first * 0.1)
        );
    }
    s
}

fn write_results(path: &Path, results: &str) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{RESULTS_START}\n{results}{RESULTS_END}");
    let text = match (existing.find(RESULTS_START), existing.find(RESULTS_END)) {
        (Some(a), Some(b)) if a < b => format!(
            "{}{block}{}",
            &existing[..a],
            &existing[b + RESULTS_END.len()..]
        ),
        _ => format!("{existing}\n## Latest results\n\n{block}\n"),
    };
    std::fs::write(path, text)?;
    Ok(())
}

fn build(args: &Args) -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(bin) = &args.bin {
        return Ok(bin.clone());
    }
    if !args.no_build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--bin", "actionkit-graphql"])
            .status()?;
        if !status.success() {
            bail!("cargo build --release failed");
        }
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    Ok(target.join("release").join("actionkit-graphql"))
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.duration = 3;
        args.warmup = 1;
        args.path_samples = 20;
        args.soak = args.soak.min(10);
    }
    let bin = build(&args)?;
    if !bin.exists() {
        bail!("{} does not exist", bin.display());
    }
    let logs = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-logs");
    let env = Env { bin, logs };
    let started = sh("date", &["-u", "+%Y-%m-%d %H:%M"]);
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = Report {
        rows: Vec::new(),
        paths: Vec::new(),
        mem: Vec::new(),
        soak: Vec::new(),
        soak_load: None,
    };
    rt.block_on(async {
        for &filters in &args.filters {
            for &latency in &args.latency {
                run_env(&args, &env, filters, latency, &mut report).await?;
            }
        }
        run_memory(&args, &env, &mut report).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    let mut results = render(&args, &report, &load_before, &started);
    results.push_str(&targets(&args, &report));
    println!("\n{results}");
    if let Some(path) = &args.write {
        write_results(path, &results)?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}
