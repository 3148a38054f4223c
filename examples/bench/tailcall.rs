//! Side by side with Tailcall (issue 18), `--tailcall PATH`: issue 18's canonical query
//! (`canonical-bare`) against this gateway and against Tailcall, a generic Rust
//! GraphQL-over-REST gateway configured for the same REST calls
//! (`examples/bench/tailcall.graphql`), in turn, on the same sandbox, from the same load
//! generator, over several rounds. Before any load, both must give the same answer for
//! a handful of members (action types compared without case and underscores: ours are
//! GraphQL enums, Tailcall passes ActionKit's strings through).
//!
//! `PATH` is Tailcall's binary or a script that runs it; `examples/bench/get-tailcall.sh`
//! fetches version 1.6.14 from the npm registry.

use super::*;

pub(crate) const TAILCALL_START: &str = "<!-- bench:tailcall:start -->";
pub(crate) const TAILCALL_END: &str = "<!-- bench:tailcall:end -->";

const SDL: &str = include_str!("tailcall.graphql");

/// The critical path of one gateway.
pub(crate) struct PeerPath {
    gateway: &'static str,
    filters: Filters,
    latency_ms: u64,
    load: Load,
    calls_per_op: f64,
}

/// One measured run of one gateway.
pub(crate) struct PeerRow {
    gateway: &'static str,
    filters: Filters,
    latency_ms: u64,
    round: usize,
    run: PeerRun,
}

const OURS: &str = "actionkit-graphql";
const TAILCALL: &str = "Tailcall";

/// Tailcall on a free port with the SDL written for `sandbox`.
async fn start_tailcall(
    env: &Env,
    tailcall: &Path,
    sandbox: SocketAddr,
    tag: &str,
    threads: usize,
) -> anyhow::Result<(Proc, SocketAddr)> {
    // Tailcall takes its port from the configuration: ask the kernel for a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut sdl = SDL
        .replace("PORT", &port.to_string())
        .replace("SANDBOX", &sandbox.to_string())
        .replace("AUTH", &basic_auth());
    if threads > 0 {
        sdl = sdl.replace(
            "hostname: \"127.0.0.1\"",
            &format!("hostname: \"127.0.0.1\", workers: {threads}"),
        );
    }
    std::fs::create_dir_all(&env.logs)?;
    let config = env.logs.join(format!("tailcall-{tag}.graphql"));
    std::fs::write(&config, sdl)?;
    let log = log_file(&env.logs, &format!("tailcall-{tag}.log"))?;
    let child = Command::new(tailcall)
        .arg("start")
        .arg(&config)
        // No usage reports (this machine has no network anyway).
        .env("TRACKER", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", tailcall.display()))?;
    let mut proc = Proc {
        name: "tailcall",
        child,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until_up(addr, "/status", &mut proc).await?;
    Ok((proc, addr))
}

/// The answer of `addr` to the canonical-bare query for member `n`, with action types
/// folded (lower case, no underscores) so that `EVENT_SIGNUP` and `EventSignup` agree.
async fn folded_answer(addr: SocketAddr, body: &BodyFn, n: u64) -> anyhow::Result<Value> {
    let mut conn = Conn::new(addr);
    let (status, resp) = conn
        .request("POST", "/graphql", JSON_HEADERS, &body(n))
        .await?;
    check(status, &resp).map_err(|e| anyhow!("{addr}: {e}"))?;
    let mut v: Value = serde_json::from_slice(&resp)?;
    if let Some(nodes) = v
        .pointer_mut("/data/user/actions/nodes")
        .and_then(Value::as_array_mut)
    {
        for node in nodes {
            if let Some(t) = node.get_mut("type") {
                let folded = t
                    .as_str()
                    .unwrap_or_default()
                    .replace('_', "")
                    .to_lowercase();
                *t = Value::String(folded);
            }
        }
    }
    Ok(v)
}

/// What one measured run of one gateway gave.
struct PeerRun {
    /// Answers, errors, elapsed time; latencies only from the built-in generator.
    load: Load,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_op: f64,
    sandbox_cpu_ms_per_op: f64,
    calls_per_op: f64,
    rss_mb: f64,
    hwm_mb: f64,
}

const WRK_SCRIPT: &str = include_str!("tailcall.lua");

/// `wrk -t2` with `--connections` for `secs` and `script`: the load and its p50 / p99.
fn wrk_load(
    args: &Args,
    addr: SocketAddr,
    secs: u64,
    script: &Path,
) -> anyhow::Result<(Load, f64, f64)> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{}", args.connections),
            &format!("-d{secs}s"),
            "-s",
        ])
        .arg(script)
        .arg(format!("http://{addr}/graphql"))
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("wrk printed no {name}: {text}"))
    };
    let load = Load {
        ops: field("bench-requests")?,
        errors: field("bench-errors")?,
        first_error: None,
        lat_us: Vec::new(),
        elapsed: Duration::from_micros(field("bench-duration-us")?),
    };
    let p50 = field("bench-p50-us")? as f64 / 1000.0;
    let p99 = field("bench-p99-us")? as f64 / 1000.0;
    Ok((load, p50, p99))
}

/// CPU, upstream calls and memory of one gateway over the benchmark's warm-up and run,
/// driven by the built-in generator, or by wrk with `script`.
async fn measure(
    args: &Args,
    gateway: (&'static str, SocketAddr, u32),
    sandbox: &Sandbox,
    counter: &Arc<AtomicU64>,
    body: BodyFn,
    script: Option<&Path>,
) -> anyhow::Result<PeerRun> {
    let (name, addr, pid) = gateway;
    let load_for = |secs: u64| {
        let body = body.clone();
        async move {
            match script {
                Some(script) => wrk_load(args, addr, secs, script),
                None => {
                    let load = run_load(
                        addr,
                        args.connections,
                        Duration::from_secs(secs),
                        counter.clone(),
                        body,
                    )
                    .await;
                    let (p50, p99) = (load.pct_ms(0.5), load.pct_ms(0.99));
                    Ok((load, p50, p99))
                }
            }
        }
    };
    let (warm_up, _, _) = load_for(args.warmup).await?;
    if warm_up.errors > 0 {
        bail!(
            "{name}: {} errors in the warm-up (first: {})",
            warm_up.errors,
            warm_up.first_error.unwrap_or_default()
        );
    }
    reset_stats(sandbox.addr).await?;
    let cpu_before = cpu_seconds(pid);
    let sandbox_before = cpu_seconds(sandbox.proc.pid());
    let (load, p50_ms, p99_ms) = load_for(args.duration).await?;
    let cpu = cpu_seconds(pid) - cpu_before;
    let sandbox_cpu = cpu_seconds(sandbox.proc.pid()) - sandbox_before;
    let calls = upstream_requests(sandbox.addr).await? as f64;
    let ops = load.ops.max(1) as f64;
    let (rss_mb, hwm_mb) = memory(pid);
    Ok(PeerRun {
        load,
        p50_ms,
        p99_ms,
        cpu_ms_per_op: cpu * 1000.0 / ops,
        sandbox_cpu_ms_per_op: sandbox_cpu * 1000.0 / ops,
        calls_per_op: calls / ops,
        rss_mb,
        hwm_mb,
    })
}

async fn side_by_side(
    args: &Args,
    env: &Env,
    tailcall: &Path,
    filters: Filters,
    latency_ms: u64,
    rows: &mut Vec<PeerRow>,
    paths: &mut Vec<PeerPath>,
) -> anyhow::Result<()> {
    eprintln!(
        "== side by side: {} filters, {latency_ms} ms upstream",
        filters.name()
    );
    let sandbox = start_sandbox(env, filters, latency_ms, args.users, &[]).await?;
    let data = discover(sandbox.addr, filters).await?;
    let tag = format!("{}-{latency_ms}ms", filters.name());
    let config = base_config(env, args.gateway_config.as_deref())?;
    // Worker threads: each gateway's default (one per core), or `--tailcall-threads`
    // for both (tokio's TOKIO_WORKER_THREADS for ours, `@server(workers:)` for Tailcall).
    let threads = args.tailcall_threads;
    let ours_env: Vec<(&str, String)> = if threads > 0 {
        vec![("TOKIO_WORKER_THREADS", threads.to_string())]
    } else {
        Vec::new()
    };
    let ours = start_gateway(
        env,
        sandbox.addr,
        Some(&config),
        &format!("{tag}-peer"),
        &ours_env,
    )
    .await?;
    let (tc, tc_addr) = start_tailcall(env, tailcall, sandbox.addr, &tag, threads).await?;
    let body = body_fn(Scenario::Bare, &data);
    for n in [0, 1, 2, 499, data.users as u64 - 1] {
        let a = folded_answer(ours.addr, &body, n).await?;
        let b = folded_answer(tc_addr, &body, n).await?;
        if a != b {
            bail!(
                "the two gateways answer member {} differently:\n ours: {a}\n Tailcall: {b}",
                n + 1
            );
        }
    }
    let gateways = [
        (OURS, ours.addr, ours.proc.pid()),
        (TAILCALL, tc_addr, tc.pid()),
    ];
    // With `--tailcall-wrk`, the load comes from wrk (issue 18's own method).
    let script = if args.tailcall_wrk {
        let path = env.logs.join("tailcall-wrk.lua");
        let query = BARE.replace('"', "\\\"");
        let text = WRK_SCRIPT
            .replace("QUERY", &query)
            .replace("USERS", &data.users.max(1).to_string())
            .replace("KEY", BENCH_KEY);
        std::fs::write(&path, text)?;
        Some(path)
    } else {
        None
    };
    let counter = Arc::new(AtomicU64::new(0));
    for round in 1..=args.tailcall_rounds {
        for gateway in gateways {
            let run = measure(
                args,
                gateway,
                &sandbox,
                &counter,
                body.clone(),
                script.as_deref(),
            )
            .await?;
            eprintln!(
                "   round {round} {:<18} {:>6.0} req/s  cpu {:.3} ms/op (sandbox {:.3})  p50 {:.2} ms  p99 {:.2}  calls/op {:.2}  errors {}  RSS {:.1} MiB (peak {:.1})",
                gateway.0,
                run.load.rps(),
                run.cpu_ms_per_op,
                run.sandbox_cpu_ms_per_op,
                run.p50_ms,
                run.p99_ms,
                run.calls_per_op,
                run.load.errors,
                run.rss_mb,
                run.hwm_mb,
            );
            rows.push(PeerRow {
                gateway: gateway.0,
                filters,
                latency_ms,
                round,
                run,
            });
        }
    }
    for (gateway, addr, _) in gateways {
        // 5 more first, to warm the page caches.
        let _ = sequential(addr, 5, &body, 3).await;
        reset_stats(sandbox.addr).await?;
        let load = sequential(addr, args.path_samples, &body, 4).await;
        if load.errors > 0 {
            bail!(
                "{gateway}: {} errors on the critical path (first: {})",
                load.errors,
                load.first_error.unwrap_or_default()
            );
        }
        let calls = upstream_requests(sandbox.addr).await? as f64 / load.ops.max(1) as f64;
        eprintln!(
            "   critical path {gateway:<18} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  calls/op {calls:.2}",
            load.pct_ms(0.5),
            load.pct_ms(0.9),
            load.pct_ms(0.99)
        );
        paths.push(PeerPath {
            gateway,
            filters,
            latency_ms,
            load,
            calls_per_op: calls,
        });
    }
    drop(tc);
    drop(ours);
    drop(sandbox);
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn render_peer(args: &Args, rows: &[PeerRow], paths: &[PeerPath], version: &str) -> String {
    let mut s = format!(
        "Issue 18's canonical query (`canonical-bare`: `user(id:) {{ firstName actions(first: 10) {{ totalCount nodes {{ type page {{ title }} }} }} }}`, a different member each request) against this gateway and against {version} (`examples/bench/tailcall.graphql`: the same three REST reads, pages cached), in turn, {} rounds; {} connections, {} s measured after {} s of warm-up each; both answered the same for 5 members before the load. Load from {}. Worker threads: {}. CPU is the gateway process's user + system time from `/proc/<pid>/stat` ÷ operations answered.\n\n",
        args.tailcall_rounds,
        args.connections,
        args.duration,
        args.warmup,
        if args.tailcall_wrk {
            "wrk (`-t2`, `examples/bench/tailcall.lua`: each of its two threads from its own member, every answer checked), issue 18's own method"
        } else {
            "the benchmark's own generator"
        },
        match args.tailcall_threads {
            0 => "each gateway's default, one per core".to_owned(),
            n => format!("{n} in both (TOKIO_WORKER_THREADS for this gateway, `@server(workers: {n})` for Tailcall)"),
        }
    );
    let _ = writeln!(s, "| gateway | filters | upstream | round | req/s | CPU ms/op | sandbox CPU ms/op | p50 ms | p99 ms | errors | calls/op | RSS / peak MiB |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} ms | {} | {:.0} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {:.2} | {:.1} / {:.1} |",
            r.gateway,
            r.filters.name(),
            r.latency_ms,
            r.round,
            r.run.load.rps(),
            r.run.cpu_ms_per_op,
            r.run.sandbox_cpu_ms_per_op,
            r.run.p50_ms,
            r.run.p99_ms,
            r.run.load.errors,
            r.run.calls_per_op,
            r.run.rss_mb,
            r.run.hwm_mb
        );
    }
    let _ = writeln!(s, "\nMedians over the rounds:\n");
    let _ = writeln!(s, "| filters | upstream | CPU ms/op: ours / Tailcall (ratio) | req/s: ours / Tailcall (ratio) | calls/op: ours / Tailcall | peak RSS MiB: ours / Tailcall |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let mut setups: Vec<(Filters, u64)> = rows.iter().map(|r| (r.filters, r.latency_ms)).collect();
    setups.dedup();
    for (filters, latency_ms) in setups {
        let of = |gw: &str, f: &dyn Fn(&PeerRow) -> f64| {
            median(
                rows.iter()
                    .filter(|r| {
                        r.gateway == gw && r.filters == filters && r.latency_ms == latency_ms
                    })
                    .map(f)
                    .collect(),
            )
        };
        let cpu = (
            of(OURS, &|r| r.run.cpu_ms_per_op),
            of(TAILCALL, &|r| r.run.cpu_ms_per_op),
        );
        let rps = (
            of(OURS, &|r| r.run.load.rps()),
            of(TAILCALL, &|r| r.run.load.rps()),
        );
        let calls = (
            of(OURS, &|r| r.run.calls_per_op),
            of(TAILCALL, &|r| r.run.calls_per_op),
        );
        let hwm = (of(OURS, &|r| r.run.hwm_mb), of(TAILCALL, &|r| r.run.hwm_mb));
        let _ = writeln!(
            s,
            "| {} | {latency_ms} ms | {:.3} / {:.3} ({:.2}×) | {:.0} / {:.0} ({:.2}×) | {:.2} / {:.2} | {:.1} / {:.1} |",
            filters.name(),
            cpu.0,
            cpu.1,
            cpu.0 / cpu.1,
            rps.0,
            rps.1,
            rps.0 / rps.1,
            calls.0,
            calls.1,
            hwm.0,
            hwm.1
        );
    }
    let _ = writeln!(
        s,
        "\nCritical path: one connection, {} sequential queries on different members (after 5 more), pages cached:\n",
        args.path_samples
    );
    let _ = writeln!(
        s,
        "| gateway | filters | upstream | p50 ms | p90 ms | p99 ms | upstream calls per query |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for p in paths {
        let _ = writeln!(
            s,
            "| {} | {} | {} ms | {:.2} | {:.2} | {:.2} | {:.2} |",
            p.gateway,
            p.filters.name(),
            p.latency_ms,
            p.load.pct_ms(0.5),
            p.load.pct_ms(0.9),
            p.load.pct_ms(0.99),
            p.calls_per_op
        );
    }
    s
}

/// `--tailcall PATH`: the side-by-side run at each `--filters` and `--latency`.
pub(crate) async fn run_tailcall(
    args: &Args,
    env: &Env,
    tailcall: &Path,
    started: &str,
    load_before: &str,
) -> anyhow::Result<()> {
    let version = Command::new(tailcall)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", tailcall.display()))?;
    let version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or("tailcall (version unknown)")
        .replace("tailcall v", "Tailcall ");
    let mut rows = Vec::new();
    let mut paths = Vec::new();
    for &filters in &args.filters {
        for &latency in &args.latency {
            side_by_side(args, env, tailcall, filters, latency, &mut rows, &mut paths).await?;
        }
    }
    let mut results = format!(
        "Run {started} UTC, commit `{}`; load average before {load_before}, after {} (2 cores, shared by the load generator, the sandbox and the gateway). Command: `cargo run --release --example bench -- {}`.\n\n",
        sh("git", &["rev-parse", "--short", "HEAD"]),
        loadavg(),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    );
    results.push_str(&render_peer(args, &rows, &paths, &version));
    println!("\n{results}");
    if let Some(path) = &args.write {
        write_section(
            path,
            TAILCALL_START,
            TAILCALL_END,
            "Side by side with Tailcall: latest results",
            &results,
        )?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}
