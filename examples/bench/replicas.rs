//! `--replicas`: two gateway replicas sharing one Redis against one process alone, on
//! the same sandbox (issue #16). For each `--latency`:
//!
//! - load (`--connections` in all, the canonical query over distinct members): one
//!   process without Redis; one process with Redis; two replicas with Redis (half the
//!   connections each). Requests per second, p50/p99, upstream calls per operation and
//!   the sandbox's most requests in flight (its `--max-concurrent` is the budget,
//!   `actionkit.max_in_flight`, so that a replica overrunning it would show as 429s);
//! - the latency Redis adds per request: sequential canonical queries on one connection
//!   (`--replica-samples`), one process without Redis and then with it.
//!
//! Redis is a `redis-server` this program starts on a free port (no persistence).

use super::*;

pub(crate) const REPLICAS_START: &str = "<!-- bench:replicas:start -->";
pub(crate) const REPLICAS_END: &str = "<!-- bench:replicas:end -->";

/// A `redis-server` on a free port; killed when dropped.
struct RedisServer {
    _proc: Proc,
    url: String,
}

fn start_redis() -> anyhow::Result<RedisServer> {
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server (apt-get install redis-server)")?;
        let mut proc = Proc {
            name: "redis-server",
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if proc.child.try_wait()?.is_some() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(RedisServer {
                    _proc: proc,
                    url: format!("redis://127.0.0.1:{port}/0"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    bail!("redis-server did not start")
}

struct LoadRow {
    what: &'static str,
    load: Load,
    calls_per_op: f64,
    max_in_flight: u64,
    rejected_429: u64,
}

fn merge(loads: Vec<Load>) -> Load {
    let mut total = Load::default();
    for l in loads {
        total.ops += l.ops;
        total.errors += l.errors;
        if total.first_error.is_none() {
            total.first_error = l.first_error;
        }
        total.lat_us.extend(l.lat_us);
        total.elapsed = total.elapsed.max(l.elapsed);
    }
    total.lat_us.sort_unstable();
    total
}

/// Warm-up, then measured load spread over `gateways`; the sandbox's counters of the
/// measured part.
async fn measure(
    args: &Args,
    sandbox: SocketAddr,
    gateways: &[SocketAddr],
    body: &BodyFn,
    what: &'static str,
) -> anyhow::Result<LoadRow> {
    let per = (args.connections / gateways.len()).max(1);
    let counter = &Arc::new(AtomicU64::new(0));
    // `secs` of load on every gateway at once, merged.
    let run_all = |secs: u64| async move {
        let loads = futures::future::join_all(gateways.iter().map(|g| {
            run_load(
                *g,
                per,
                Duration::from_secs(secs),
                counter.clone(),
                body.clone(),
            )
        }))
        .await;
        merge(loads)
    };
    let warm = run_all(args.warmup).await;
    if warm.errors > 0 {
        bail!("{what}: warm-up errors: {:?}", warm.first_error);
    }
    reset_stats(sandbox).await?;
    let load = run_all(args.duration).await;
    let stats = upstream_stats(sandbox).await?;
    let calls = stats["requests"].as_u64().unwrap_or(0);
    Ok(LoadRow {
        what,
        calls_per_op: calls as f64 / load.ops.max(1) as f64,
        max_in_flight: stats["max_in_flight"].as_u64().unwrap_or(0),
        rejected_429: stats["rejected_429"].as_u64().unwrap_or(0),
        load,
    })
}

pub(crate) async fn run_replicas(
    args: &Args,
    env: &Env,
    started: &str,
    load_before: &str,
) -> anyhow::Result<()> {
    let redis = start_redis()?;
    let budget = 8;
    std::fs::create_dir_all(&env.logs)?;
    let config = env.logs.join("gateway-replicas.toml");
    std::fs::write(
        &config,
        // A rate limit that never refuses, so that each request pays for its check
        // (in Redis with Redis) as it would in production.
        format!(
            "[security]\nrate_limit_per_minute = 100000000\nrate_limit_burst = 1000000\n\n\
             [actionkit]\nmax_in_flight = {budget}\n"
        ),
    )?;
    // Each process its own (fresh) data directory, as replicas need.
    let data_dir = |tag: &str| -> anyhow::Result<(&'static str, String)> {
        let dir = env.logs.join(format!("data-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(("GATEWAY_DATA_DIR", dir.to_string_lossy().into_owned()))
    };
    let redis_env = |tag: &str| -> anyhow::Result<Vec<(&'static str, String)>> {
        Ok(vec![
            ("GATEWAY_REDIS_URL", redis.url.clone()),
            data_dir(tag)?,
        ])
    };
    let mut out = format!(
        "Run {started} UTC, commit `{}`; load average before {load_before}, after LOAD_AFTER. \
         Command: `cargo run --release --example bench -- --replicas{}`. {} ({} cores), \
         shared with other builds while it ran: absolute numbers vary between runs; compare \
         rows of one run. Sandbox `--max-concurrent {budget}`, `actionkit.max_in_flight = \
         {budget}` (for all replicas together with Redis), canonical query over distinct \
         members, {} connections in all, {} s warm-up, {} s measured; Redis {} on the same \
         machine.\n\n",
        sh("git", &["rev-parse", "--short", "HEAD"]),
        if args.quick { " --quick" } else { "" },
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.connections,
        args.warmup,
        args.duration,
        sh("redis-server", &["--version"])
            .split_whitespace()
            .find(|w| w.starts_with("v="))
            .unwrap_or("v=?")
            .trim_start_matches("v="),
    );
    out.push_str(
        "| upstream latency | setup | req/s | p50 ms | p99 ms | upstream calls/op | sandbox max in flight | sandbox 429s | errors |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut seq_rows = Vec::new();
    for &latency in &args.latency {
        eprintln!("== replicas, {latency} ms upstream");
        let extra = ["--max-concurrent", "8"];
        let sandbox = start_sandbox(env, Filters::Permissive, latency, args.users, &extra).await?;
        let data = discover(sandbox.addr, Filters::Permissive).await?;
        let body = body_fn(Scenario::Canonical, &data);
        let mut rows = Vec::new();
        // One process without Redis, then one with it (in this order: the latency
        // table pairs them): its load, then its sequential queries.
        for (tag, with_redis, what, seq_what) in [
            ("solo", false, "1 process", "1 process, no Redis"),
            ("solo-redis", true, "1 process + Redis", "1 process + Redis"),
        ] {
            let extra = if with_redis {
                redis_env(tag)?
            } else {
                vec![data_dir(tag)?]
            };
            let gw = start_gateway(env, sandbox.addr, Some(&config), tag, &extra).await?;
            rows.push(measure(args, sandbox.addr, &[gw.addr], &body, what).await?);
            let seq = sequential(
                gw.addr,
                args.replica_samples,
                &body_fn(Scenario::Canonical, &data),
                3,
            )
            .await;
            seq_rows.push((latency, seq_what, seq));
        }
        {
            let a = start_gateway(
                env,
                sandbox.addr,
                Some(&config),
                "replica-a",
                &redis_env("replica-a")?,
            )
            .await?;
            let b = start_gateway(
                env,
                sandbox.addr,
                Some(&config),
                "replica-b",
                &redis_env("replica-b")?,
            )
            .await?;
            rows.push(
                measure(
                    args,
                    sandbox.addr,
                    &[a.addr, b.addr],
                    &body,
                    "2 replicas + Redis",
                )
                .await?,
            );
        }
        for r in rows {
            let _ = writeln!(
                out,
                "| {latency} ms | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                r.what,
                r.load.rps(),
                r.load.pct_ms(0.5),
                r.load.pct_ms(0.99),
                r.calls_per_op,
                r.max_in_flight,
                r.rejected_429,
                r.load.errors
            );
        }
    }
    let _ = writeln!(
        out,
        "\nLatency Redis adds per request: {} sequential canonical queries on one connection \
         (warm page cache), one process without Redis, then one with it (each request then \
         also takes a rate-limit check and, per upstream call, a budget lease and its release).\n",
        args.replica_samples
    );
    out.push_str(
        "| upstream latency | setup | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n",
    );
    for (latency, what, load) in &seq_rows {
        let _ = writeln!(
            out,
            "| {latency} ms | {what} | {:.2} | {:.2} | {} |",
            load.pct_ms(0.5),
            load.pct_ms(0.99),
            load.errors
        );
    }
    for pair in seq_rows.chunks(2) {
        if let [(latency, _, plain), (_, _, shared)] = pair {
            let _ = writeln!(
                out,
                "\nAt {latency} ms upstream, Redis adds {:+.2} ms at p50 and {:+.2} ms at p99.",
                shared.pct_ms(0.5) - plain.pct_ms(0.5),
                shared.pct_ms(0.99) - plain.pct_ms(0.99)
            );
        }
    }
    let out = out.replace("LOAD_AFTER", &loadavg());
    println!("\n{out}");
    if let Some(path) = &args.write {
        write_section(
            path,
            REPLICAS_START,
            REPLICAS_END,
            "Several replicas: latest results",
            &out,
        )?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}
