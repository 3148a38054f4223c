//! Isolation and fairness (issue 13), `--fairness`: the adaptive cap against an
//! instance that takes 4 requests at once, the first query after start in round trips,
//! the rate limiter's memory with a million distinct callers, and the calls per
//! operation where nothing fails.

use super::*;

use actionkit_graphql::http::auth::{Bucket, RateLimits};

pub(crate) const FAIR_START: &str = "<!-- bench:fairness:start -->";
pub(crate) const FAIR_END: &str = "<!-- bench:fairness:end -->";

/// One gateway against the instance that takes 4 at once.
pub(crate) struct AdaptiveRow {
    label: &'static str,
    warmup_errors: u64,
    load: Load,
    calls: u64,
    rejected_429: u64,
}

/// The first query of freshly started gateways.
pub(crate) struct FirstQuery {
    filters: Filters,
    latency_ms: u64,
    /// Milliseconds of each first query, sorted.
    ms: Vec<f64>,
    calls: Vec<u64>,
    /// The second query of the same gateway (its page cache is off: cold as well).
    second_ms: Vec<f64>,
}

pub(crate) struct LimiterMemory {
    callers: u64,
    secs: f64,
    rss_before: f64,
    rss_after: f64,
    hwm_after: f64,
    remembered_peak: usize,
    remembered_end: usize,
}

pub(crate) struct CallsRow {
    filters: Filters,
    scenario: Scenario,
    load: Load,
    calls_per_op: f64,
    bound: f64,
}

/// Sandbox `--max-concurrent 4 --latency-ms 50`; 20 connections of the canonical query
/// against the gateway at its default cap (8), then against one set to 4.
pub(crate) async fn adaptive(args: &Args, env: &Env) -> anyhow::Result<Vec<AdaptiveRow>> {
    let sandbox = start_sandbox(
        env,
        Filters::Permissive,
        50,
        args.users,
        &["--max-concurrent", "4"],
    )
    .await?;
    let data = discover(sandbox.addr, Filters::Permissive).await?;
    let config = base_config(env, args.gateway_config.as_deref())?;
    let mut rows = Vec::new();
    let runs: [(&'static str, Vec<(&str, String)>); 2] = [
        ("default cap (max_in_flight 8, adaptive)", vec![]),
        (
            "cap set to 4 (max_in_flight 4)",
            vec![("GATEWAY_ACTIONKIT__MAX_IN_FLIGHT", "4".to_owned())],
        ),
    ];
    let counter = Arc::new(AtomicU64::new(0));
    for (label, extra) in runs {
        let tag = format!("fair-adaptive-{}", rows.len());
        let gw = start_gateway(env, sandbox.addr, Some(&config), &tag, &extra).await?;
        let body = body_fn(Scenario::Canonical, &data);
        // The warm-up counts for errors too: the default cap learns during it.
        let Measured { warm, load, .. } =
            standard_load(args, gw.addr, sandbox.addr, &counter, body).await?;
        let stats = upstream_stats(sandbox.addr).await?;
        let row = AdaptiveRow {
            label,
            warmup_errors: warm.errors,
            calls: stats["requests"].as_u64().unwrap_or(0),
            rejected_429: stats["rejected_429"].as_u64().unwrap_or(0),
            load,
        };
        eprintln!(
            "   {label}: {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms, errors {} (+{} in warm-up), {} calls, {} answered 429{}",
            row.load.rps(),
            row.load.pct_ms(0.5),
            row.load.pct_ms(0.99),
            row.load.errors,
            row.warmup_errors,
            row.calls,
            row.rejected_429,
            row.load
                .first_error
                .as_deref()
                .map(|e| format!("\n      first error: {e}"))
                .unwrap_or_default()
        );
        rows.push(row);
        drop(gw);
    }
    Ok(rows)
}

/// `samples` gateways started one after the other against one sandbox at
/// `latency_ms`, with the page cache off (every query finds it cold, as the first
/// does); each answers one canonical query (timed, on a connection opened before),
/// then a second one: the difference is what only the first query pays.
pub(crate) async fn first_query(
    args: &Args,
    env: &Env,
    filters: Filters,
    latency_ms: u64,
    samples: usize,
) -> anyhow::Result<FirstQuery> {
    let sandbox = start_sandbox(env, filters, latency_ms, args.users, &[]).await?;
    let data = discover(sandbox.addr, filters).await?;
    let config = cold_config(env, args.gateway_config.as_deref())?;
    let body = body_fn(Scenario::Canonical, &data);
    let mut out = FirstQuery {
        filters,
        latency_ms,
        ms: Vec::new(),
        calls: Vec::new(),
        second_ms: Vec::new(),
    };
    for i in 0..samples as u64 {
        let tag = format!("fair-first-{}-{i}", filters.name());
        let gw = start_gateway(env, sandbox.addr, Some(&config), &tag, &[]).await?;
        let mut conn = Conn::new(gw.addr);
        conn.request("GET", "/healthz", "", b"").await?;
        reset_stats(sandbox.addr).await?;
        let b = body(i * 13 + 5);
        let t0 = Instant::now();
        let (status, resp) = conn.request("POST", "/graphql", JSON_HEADERS, &b).await?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        check(status, &resp).map_err(|e| anyhow!("first query: {e}"))?;
        out.ms.push(ms);
        out.calls.push(upstream_requests(sandbox.addr).await?);
        let b = body(i * 13 + 6);
        let t0 = Instant::now();
        let (status, resp) = conn.request("POST", "/graphql", JSON_HEADERS, &b).await?;
        check(status, &resp).map_err(|e| anyhow!("second query: {e}"))?;
        out.second_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        drop(gw);
    }
    out.ms.sort_by(f64::total_cmp);
    out.second_ms.sort_by(f64::total_cmp);
    eprintln!(
        "   first query, {} {latency_ms} ms: {:?} ms, calls {:?}; second {:?} ms",
        filters.name(),
        out.ms,
        out.calls,
        out.second_ms
    );
    Ok(out)
}

/// A million distinct callers (anonymous, one address each) through the gateway's
/// rate limits, on the real clock, as fast as this process can: memory before and
/// after, and how many callers the limiter remembers.
pub(crate) fn limiter_memory(callers: u64) -> LimiterMemory {
    let pid = std::process::id();
    let (rss_before, _) = memory(pid);
    let limits = RateLimits::new(600, 100, 12_000);
    let key: Arc<str> = "anonymous".into();
    let start = Instant::now();
    let mut peak = 0;
    for i in 0..callers {
        let ip =
            std::net::Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i));
        let bucket = Bucket {
            key: key.clone(),
            caller: format!("anonymous@{ip}").into(),
        };
        let _ = limits.decide(&bucket);
        if i % 10_000 == 0 {
            peak = peak.max(limits.callers_remembered());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (rss_after, hwm_after) = memory(pid);
    let out = LimiterMemory {
        callers,
        secs,
        rss_before,
        rss_after,
        hwm_after,
        remembered_peak: peak,
        remembered_end: limits.callers_remembered(),
    };
    eprintln!(
        "   limiter: {callers} callers in {secs:.1} s; RSS {rss_before:.1} → {rss_after:.1} MiB (peak {hwm_after:.1}); remembered at most {peak}, at the end {}",
        out.remembered_end
    );
    out
}

/// Calls per operation of the batched scenarios at 0 ms, where nothing fails.
pub(crate) async fn calls_where_nothing_fails(
    args: &Args,
    env: &Env,
) -> anyhow::Result<Vec<CallsRow>> {
    let mut rows = Vec::new();
    let config = base_config(env, args.gateway_config.as_deref())?;
    for filters in [Filters::Permissive, Filters::Strict] {
        let sandbox = start_sandbox(env, filters, 0, args.users, &[]).await?;
        let data = discover(sandbox.addr, filters).await?;
        let tag = format!("fair-calls-{}", filters.name());
        let gw = start_gateway(env, sandbox.addr, Some(&config), &tag, &[]).await?;
        let counter = Arc::new(AtomicU64::new(0));
        for scenario in [Scenario::Canonical, Scenario::Batch50] {
            let body = body_fn(scenario, &data);
            let Measured { load, range, .. } =
                standard_load(args, gw.addr, sandbox.addr, &counter, body).await?;
            let calls = upstream_requests(sandbox.addr).await?;
            let (bound, _) = lower_bound(scenario, filters, &data, range);
            let row = CallsRow {
                filters,
                scenario,
                calls_per_op: calls as f64 / load.ops.max(1) as f64,
                bound,
                load,
            };
            eprintln!(
                "   {} {}: {:.2} calls/op (bound {:.2}), {} errors",
                filters.name(),
                scenario.name(),
                row.calls_per_op,
                row.bound,
                row.load.errors
            );
            rows.push(row);
        }
        drop(gw);
        drop(sandbox);
    }
    Ok(rows)
}

pub(crate) async fn run_fairness(
    args: &Args,
    env: &Env,
    started: &str,
    load_before: &str,
) -> anyhow::Result<()> {
    eprintln!("== fairness: adaptive cap");
    let adaptive = adaptive(args, env).await?;
    eprintln!("== fairness: first query after start");
    let samples = if args.quick { 5 } else { 15 };
    let mut firsts = Vec::new();
    for filters in [Filters::Permissive, Filters::Strict] {
        firsts.push(first_query(args, env, filters, 50, samples).await?);
    }
    eprintln!("== fairness: calls per operation where nothing fails");
    let calls = calls_where_nothing_fails(args, env).await?;
    eprintln!("== fairness: rate limiter memory");
    let limiter = limiter_memory(1_000_000);
    let mut s = format!(
        "Run {started} UTC, commit `{}`; load average before {load_before}, after {} (the machine is shared with other builds: 2 cores). Command: `cargo run --release --example bench -- {}`.\n\n",
        sh("git", &["rev-parse", "--short", "HEAD"]),
        loadavg(),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    );
    let _ = writeln!(
        s,
        "**Adaptive cap.** Sandbox `--max-concurrent 4 --latency-ms 50` (permissive, {} users), canonical query, {} connections, {} s measured after {} s of warm-up:\n",
        args.users, args.connections, args.duration, args.warmup
    );
    let _ = writeln!(s, "| gateway | req/s | p50 ms | p99 ms | answers with errors (warm-up) | upstream calls | answered 429 |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in &adaptive {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.1} | {} ({}) | {} | {} |",
            r.label,
            r.load.rps(),
            r.load.pct_ms(0.5),
            r.load.pct_ms(0.99),
            r.load.errors,
            r.warmup_errors,
            r.calls,
            r.rejected_429
        );
    }
    if let [auto, fixed] = adaptive.as_slice() {
        let ratio = auto.load.rps() / fixed.load.rps().max(f64::MIN_POSITIVE);
        let _ = writeln!(
            s,
            "\nTarget: 0 answers with errors and req/s within 10 % of the gateway set to 4: {} errors, {:.1} % of its req/s — {}.\n",
            auto.load.errors + auto.warmup_errors,
            ratio * 100.0,
            verdict(auto.load.errors + auto.warmup_errors == 0 && ratio >= 0.9)
        );
    }
    let _ = writeln!(
        s,
        "**First query after start** (a gateway started for each sample; a canonical query on a connection opened before; the page cache off, so that the second query of each gateway is as cold as the first), upstream 50 ms:\n"
    );
    let _ = writeln!(s, "| filters | samples | first query p50 ms | max ms | p50 round trips | upstream calls | second query p50 ms (round trips) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for f in &firsts {
        let l = f.latency_ms as f64;
        let p50 = f.ms[f.ms.len() / 2];
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.2} (target ≤ 2.2, bound 2.0) | {:?} | {:.1} ({:.2}) |",
            f.filters.name(),
            f.ms.len(),
            p50,
            f.ms.last().copied().unwrap_or(f64::NAN),
            p50 / l,
            f.calls,
            f.second_ms[f.second_ms.len() / 2],
            f.second_ms[f.second_ms.len() / 2] / l
        );
    }
    let _ = writeln!(
        s,
        "\n**Calls per operation where nothing fails** (0 ms, {} connections, {} s): per-key isolation adds calls only when a batch fails.\n",
        args.connections, args.duration
    );
    let _ = writeln!(
        s,
        "| filters | scenario | req/s | calls/op | bound | errors |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for r in &calls {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            r.filters.name(),
            r.scenario.name(),
            r.load.rps(),
            r.calls_per_op,
            r.bound,
            r.load.errors
        );
    }
    let _ = writeln!(
        s,
        "\n**Rate limiter memory.** {} distinct anonymous callers (one IPv6 address each, one request each) through `RateLimits` (600/min per caller, burst 100; key ceiling 12,000/min) in this process, on the real clock, in {:.1} s: RSS {:.1} → {:.1} MiB (peak {:.1} MiB); callers remembered at most {} (sampled every 10,000), {} at the end.\n",
        limiter.callers,
        limiter.secs,
        limiter.rss_before,
        limiter.rss_after,
        limiter.hwm_after,
        limiter.remembered_peak,
        limiter.remembered_end
    );
    println!("\n{s}");
    if let Some(path) = &args.write {
        write_section(
            path,
            FAIR_START,
            FAIR_END,
            "Isolation and fairness: latest results",
            &s,
        )?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

/// The benchmark's warm-up, then its measured run, both with `--connections`.
async fn standard_load(
    args: &Args,
    gateway: SocketAddr,
    sandbox: SocketAddr,
    counter: &Arc<AtomicU64>,
    body: BodyFn,
) -> anyhow::Result<Measured> {
    let warm_up = (args.connections, Duration::from_secs(args.warmup));
    let run = (args.connections, Duration::from_secs(args.duration));
    warm_then_run(gateway, sandbox, warm_up, run, counter, body).await
}
