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
//! cargo run --release --example bench -- --subscriptions --write BENCHMARKS.md
//! cargo run --release --example bench -- --replicas --write BENCHMARKS.md   # 2 replicas + Redis
//! examples/bench/get-tailcall.sh   # Tailcall 1.6.14 from npm, for the next line
//! cargo run --release --example bench -- --tailcall target/tailcall/tailcall --latency 0 --filters permissive --write BENCHMARKS.md
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
/// The canonical query as issue 18 states it (and as the Tailcall comparison ran it):
/// without `customFields`.
const BARE: &str = "query Canonical($id: ID!) { user(id: $id) { firstName actions(first: 10) { totalCount nodes { type page { title } } } } }";
const BATCH50: &str = "query Batch($ids: [ID!]!) { users(ids: $ids) { actions(first: 20) { nodes { page { name } customFields { name } } } } }";
const MUTATION: &str = "mutation Set($id: ID!, $v: String!) { setActionCustomFields(actionId: $id, fields: [{name: \"bench_note\", value: $v}]) { id customFields { name value } } }";

const RESULTS_START: &str = "<!-- bench:results:start -->";
const RESULTS_END: &str = "<!-- bench:results:end -->";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// The canonical query, each request a different member.
    Canonical,
    /// The canonical query without `customFields` (issue 18's form of it).
    Bare,
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
            Scenario::Bare => "canonical-bare",
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
    /// A baseline gateway binary (for example one built from `main` into another
    /// target directory) to measure in the same run: every scenario runs against it
    /// and against `--bin` in turn, with the same sandbox (the sandbox is `--bin`'s).
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
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
        default_value = "canonical,bare,batch50,mix10,hot"
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
    /// Run only the benchmark of taking actions (steady submits at each `--latency`,
    /// then the spike), written into its own section of the `--write` file.
    #[arg(long)]
    submit: bool,
    /// Submissions of the spike (0 skips it).
    #[arg(long, default_value_t = 2000)]
    spike_count: usize,
    /// Seconds over which the spike's submissions are sent.
    #[arg(long, default_value_t = 10)]
    spike_seconds: u64,
    /// Run only the live-progress benchmark (WebSocket subscribers of one page, then of
    /// 100 pages), written into its own section of the `--write` file.
    #[arg(long)]
    subscriptions: bool,
    /// Subscribers of each `--subscriptions` scenario.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Run only the benchmark of several replicas: two replicas + Redis against one
    /// process on the same sandbox (`replicas.rs`), into its own section of `--write`.
    #[arg(long)]
    replicas: bool,
    /// Sequential requests per setup of the replicas' latency comparison.
    #[arg(long, default_value_t = 400)]
    replica_samples: usize,
    /// Run only the isolation and fairness benchmark (issue 13: the adaptive cap, the
    /// first query after start, calls per operation, the rate limiter's memory),
    /// written into its own section of the `--write` file.
    #[arg(long)]
    fairness: bool,
    /// Run only the side-by-side comparison with Tailcall (issue 18): `canonical-bare`
    /// against this gateway and against the Tailcall binary (or wrapper script) at this
    /// path, in turn, at each `--filters` and `--latency`, into its own section of
    /// `--write` (`tailcall.rs`; `examples/bench/get-tailcall.sh` fetches Tailcall).
    #[arg(long)]
    tailcall: Option<PathBuf>,
    /// Rounds of the `--tailcall` comparison (each gateway once per round).
    #[arg(long, default_value_t = 3)]
    tailcall_rounds: usize,
    /// Worker threads of both gateways in the `--tailcall` comparison (0: each one's
    /// default, one per core).
    #[arg(long, default_value_t = 0)]
    tailcall_threads: usize,
    /// Drive the `--tailcall` comparison's load with wrk (`apt-get install wrk`), as
    /// issue 18 measured, instead of the benchmark's own generator.
    #[arg(long)]
    tailcall_wrk: bool,
}

mod fairness;
mod http;
mod load;
mod procs;
mod replicas;
mod report;
mod submit;
mod subscriptions;
mod tailcall;
mod upstream;

use fairness::*;
use http::*;
use load::*;
use procs::*;
use replicas::*;
use report::*;
use submit::*;
use subscriptions::*;
use tailcall::*;
use upstream::*;

// ----- the runs ----------------------------------------------------------------------------

struct Row {
    /// `baseline` or `new` with `--baseline-bin`, else empty.
    gateway: &'static str,
    filters: Filters,
    latency_ms: u64,
    scenario: Scenario,
    connections: usize,
    load: Load,
    /// Gateway CPU time (user + system, from `/proc/<pid>/stat`) per operation, in ms.
    cpu_ms_per_op: f64,
    /// The same for the sandbox: what the load costs upstream, for comparison.
    sandbox_cpu_ms_per_op: f64,
    calls_per_op: f64,
    bound: f64,
    bound_why: String,
    rss_mb: f64,
    hwm_mb: f64,
    /// TCP connections to the sandbox after the run: (established, time-wait).
    sockets: (usize, usize),
}

impl Row {
    /// "permissive 0 ms canonical": what the targets table names a row by.
    fn setup(&self) -> String {
        format!(
            "{} {} ms {}",
            self.filters.name(),
            self.latency_ms,
            self.scenario.name()
        )
    }
}

struct PathRow {
    gateway: &'static str,
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

/// Sequential queries (`body` from `offset` on) on one connection.
async fn sequential(gateway: SocketAddr, samples: usize, body: &BodyFn, offset: u64) -> Load {
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
    let sandbox = start_sandbox(env, filters, latency_ms, args.users, &[]).await?;
    let data = discover(sandbox.addr, filters).await?;
    let tag = format!("{}-{latency_ms}ms", filters.name());
    let config = base_config(env, args.gateway_config.as_deref())?;
    // With a baseline, both gateways run against the same sandbox and take each
    // scenario in turn (baseline, then new), so that both see the same conditions.
    let mut gateways = Vec::new();
    for (label, bin) in env.gateways() {
        let gw_tag = if label.is_empty() {
            tag.clone()
        } else {
            format!("{tag}-{label}")
        };
        let gw = start_gateway(
            &env.with_bin(&bin),
            sandbox.addr,
            Some(&config),
            &gw_tag,
            &[],
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (idle, hwm) = memory(gw.proc.pid());
        report.mem.push(MemRow {
            what: format!(
                "idle after start ({}, {latency_ms} ms){}",
                filters.name(),
                labelled(label)
            ),
            rss_mb: idle,
            hwm_mb: hwm,
            note: format!("{} users in the sandbox", data.users),
        });
        gateways.push((label, bin, gw));
    }

    let counter = Arc::new(AtomicU64::new(0));
    for &scenario in &args.scenarios {
        for (label, _, gw) in &gateways {
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
            let cpu_before = cpu_seconds(gw.proc.pid());
            let sandbox_before = cpu_seconds(sandbox.proc.pid());
            let load = run_load(gw.addr, args.connections, duration, counter.clone(), body).await;
            let cpu = cpu_seconds(gw.proc.pid()) - cpu_before;
            let sandbox_cpu = cpu_seconds(sandbox.proc.pid()) - sandbox_before;
            let range = first..counter.load(Ordering::Relaxed);
            let calls = upstream_requests(sandbox.addr).await?;
            let sockets = sockets_to(sandbox.addr.port());
            let (rss, hwm) = memory(gw.proc.pid());
            let (bound, why) = lower_bound(scenario, filters, &data, range);
            let ops = load.ops.max(1) as f64;
            let row = Row {
                gateway: label,
                filters,
                latency_ms,
                scenario,
                connections: args.connections,
                calls_per_op: calls as f64 / ops,
                cpu_ms_per_op: cpu * 1000.0 / ops,
                sandbox_cpu_ms_per_op: sandbox_cpu * 1000.0 / ops,
                bound,
                bound_why: why,
                rss_mb: rss,
                hwm_mb: hwm,
                sockets,
                load,
            };
            eprintln!(
                "   {:<14}{:<9} {:>8.0} req/s  cpu {:.3} ms/op (sandbox {:.3})  p50 {:>7.2} ms  p90 {:>7.2}  p99 {:>7.2}  calls/op {:.2} (bound {:.2})  errors {}  RSS {:.1} MiB{}",
                scenario.name(),
                label,
                row.load.rps(),
                row.cpu_ms_per_op,
                row.sandbox_cpu_ms_per_op,
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
    }

    // Critical path, warm: one connection, pages cached.
    let canonical = body_fn(Scenario::Canonical, &data);
    let mut warm_paths = Vec::new();
    for (_, _, gw) in &gateways {
        let warm_up_pages = sequential(gw.addr, 10, &canonical, 0).await;
        drop(warm_up_pages);
        reset_stats(sandbox.addr).await?;
        let warm = sequential(gw.addr, args.path_samples, &canonical, 1).await;
        let warm_calls = upstream_requests(sandbox.addr).await? as f64 / warm.ops.max(1) as f64;
        warm_paths.push((warm, warm_calls));
    }
    let bins: Vec<(&'static str, PathBuf)> = gateways
        .into_iter()
        .map(|(label, bin, gw)| {
            drop(gw);
            (label, bin)
        })
        .collect();

    // Critical path, cold: a gateway whose page cache is always empty.
    let cold_cfg = cold_config(env, args.gateway_config.as_deref())?;
    for ((label, bin), (warm, warm_calls)) in bins.into_iter().zip(warm_paths) {
        let upstream = upstream_pair(sandbox.addr, args.path_samples, &data).await;
        let gw = start_gateway(
            &env.with_bin(&bin),
            sandbox.addr,
            Some(&cold_cfg),
            &format!(
                "{tag}-cold{}{label}",
                if label.is_empty() { "" } else { "-" }
            ),
            &[],
        )
        .await?;
        let _ = sequential(gw.addr, 3, &canonical, 2).await;
        reset_stats(sandbox.addr).await?;
        let cold = sequential(gw.addr, args.path_samples, &canonical, 3).await;
        let cold_calls = upstream_requests(sandbox.addr).await? as f64 / cold.ops.max(1) as f64;
        let routes = upstream_stats(sandbox.addr).await?;
        drop(gw);
        eprintln!(
            "   path{}: cold p50 {:.2} ms ({cold_calls:.2} calls), warm p50 {:.2} ms ({warm_calls:.2} calls), upstream pair p50 {:.2} ms; cold routes {}",
            labelled(label),
            cold.pct_ms(0.5),
            warm.pct_ms(0.5),
            upstream.pct_ms(0.5),
            routes["by_route"]
        );
        report.paths.push(PathRow {
            gateway: label,
            filters,
            latency_ms,
            cold,
            cold_calls,
            warm,
            warm_calls,
            upstream,
        });
    }
    drop(sandbox);
    Ok(())
}

/// ` (baseline)` / ` (new)` after a row's name when two gateways are compared.
fn labelled(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!(" ({label})")
    }
}

async fn run_memory(args: &Args, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    if args.memory_connections == 0 && args.soak == 0 {
        return Ok(());
    }
    eprintln!("== memory (permissive, 0 ms)");
    let sandbox = start_sandbox(env, Filters::Permissive, 0, args.users, &[]).await?;
    let data = discover(sandbox.addr, Filters::Permissive).await?;
    let gw = start_gateway(
        env,
        sandbox.addr,
        args.gateway_config.as_deref(),
        "memory",
        &[],
    )
    .await?;
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
    let baseline = args.baseline_bin.clone();
    if let Some(b) = &baseline {
        if !b.exists() {
            bail!("--baseline-bin {} does not exist", b.display());
        }
    }
    let env = Env {
        bin,
        baseline,
        logs,
    };
    let started = sh("date", &["-u", "+%Y-%m-%d %H:%M"]);
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.submit {
        return rt.block_on(run_submit(&args, &env, &started, &load_before));
    }
    if args.subscriptions {
        return rt.block_on(run_subscriptions(&args, &env, &started, &load_before));
    }
    if args.replicas {
        return rt.block_on(run_replicas(&args, &env, &started, &load_before));
    }
    if args.fairness {
        return rt.block_on(run_fairness(&args, &env, &started, &load_before));
    }
    if let Some(tailcall) = &args.tailcall {
        return rt.block_on(run_tailcall(&args, &env, tailcall, &started, &load_before));
    }
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

/// `--submit`: steady submits at each latency, then the spike.
async fn run_submit(
    args: &Args,
    env: &Env,
    started: &str,
    load_before: &str,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for &latency in &args.latency {
        rows.push(steady(args, env, latency).await?);
    }
    let spike = if args.spike_count > 0 {
        let config = base_config(env, args.gateway_config.as_deref())?;
        Some(spike(env, &config, args.spike_count, args.spike_seconds).await?)
    } else {
        None
    };
    let mut results = format!(
        "Run {started} UTC, commit `{}`; load average before {load_before}, after {}. Command: `cargo run --release --example bench -- {}`.\n\n",
        sh("git", &["rev-parse", "--short", "HEAD"]),
        loadavg(),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    );
    results.push_str(&render_submit(&rows, spike.as_ref()));
    println!("\n{results}");
    if let Some(path) = &args.write {
        write_section(
            path,
            SUBMIT_START,
            SUBMIT_END,
            "Taking actions: latest results",
            &results,
        )?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}
