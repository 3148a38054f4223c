//! The report: machine facts, the results tables, the targets, and writing them into BENCHMARKS.md.

use super::*;

pub(crate) fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

pub(crate) fn render(args: &Args, report: &Report, load_before: &str, started: &str) -> String {
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
    let _ = writeln!(s, "Gateway CPU is user + system time of the gateway process (`/proc/<pid>/stat`) over the measured window, divided by the operations answered; the sandbox's is the same for the ActionKit stand-in.\n");
    let _ = writeln!(s, "| gateway | filters | upstream | scenario | conns | req/s | gateway CPU ms/op | sandbox CPU ms/op | p50 ms | p90 ms | p99 ms | errors | upstream calls/op | lower bound | upstream conns (open / time-wait) | gateway RSS / peak MiB |");
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &report.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} ms | {} | {} | {:.0} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} ({}) | {} / {} | {:.1} / {:.1} |",
            gateway_name(r.gateway),
            r.filters.name(),
            r.latency_ms,
            r.scenario.name(),
            r.connections,
            r.load.rps(),
            r.cpu_ms_per_op,
            r.sandbox_cpu_ms_per_op,
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
    let _ = writeln!(s, "| gateway | filters | upstream | cold p50 ms (calls/op) | target cold | warm p50 ms (calls/op) | target warm | upstream pair p50 ms | overhead p50 ms (warm − pair) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for p in &report.paths {
        let l = p.latency_ms as f64;
        let overhead = p.warm.pct_ms(0.5) - p.upstream.pct_ms(0.5);
        // The p50 within `trips` upstream round trips (none to judge without latency).
        let target = |trips: f64, load: &Load| {
            if p.latency_ms > 0 {
                format!(
                    "≤ {:.0} ms: {}",
                    trips * l,
                    verdict(load.pct_ms(0.5) <= trips * l)
                )
            } else {
                "—".into()
            }
        };
        let cold_target = target(2.2, &p.cold);
        let warm_target = target(1.1, &p.warm);
        let _ = writeln!(
            s,
            "| {} | {} | {} ms | {:.2} ({:.2}) | {} | {:.2} ({:.2}) | {} | {:.2} | {:.2}{} |",
            gateway_name(p.gateway),
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

/// The targets, judged from this run.
pub(crate) fn targets(args: &Args, report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### Targets\n");
    let _ = writeln!(s, "| target | measured | status |");
    let _ = writeln!(s, "|---|---|---|");
    // With a baseline, the targets are judged on the new gateway; the baseline is
    // what the comparisons are made against.
    let judged = |g: &str| g != "baseline";
    let baseline_of = |r: &Row| {
        report.rows.iter().find(|b| {
            b.gateway == "baseline"
                && b.filters == r.filters
                && b.latency_ms == r.latency_ms
                && b.scenario == r.scenario
        })
    };
    for r in report.rows.iter().filter(|r| judged(r.gateway)) {
        if matches!(r.scenario, Scenario::Canonical | Scenario::Bare) && r.latency_ms == 0 {
            let _ = writeln!(
                s,
                "| gateway CPU per query ≤ 0.18 ms: {} {} | {:.3} ms | {} |",
                r.filters.name(),
                r.scenario.name(),
                r.cpu_ms_per_op,
                verdict(r.cpu_ms_per_op <= 0.18)
            );
            if let Some(b) = baseline_of(r) {
                let ratio = r.load.rps() / b.load.rps().max(1e-9);
                let _ = writeln!(
                    s,
                    "| req/s ≥ 1.5 × the baseline's in the same run: {} {} | {:.0} vs {:.0} req/s ({ratio:.2} ×); CPU/op {:.3} vs {:.3} ms ({:.2} ×) | {} |",
                    r.filters.name(),
                    r.scenario.name(),
                    r.load.rps(),
                    b.load.rps(),
                    r.cpu_ms_per_op,
                    b.cpu_ms_per_op,
                    r.cpu_ms_per_op / b.cpu_ms_per_op.max(1e-9),
                    verdict(ratio >= 1.5)
                );
            }
        }
        if let Some(b) = baseline_of(r) {
            // Compared above each run's own lower bound: the two runs send different
            // requests of the cycle (batch50's batches differ in size). Sharing in
            // flight (hot5) depends on timing: 0.05 of slack there.
            let (mine, theirs) = (r.calls_per_op - r.bound, b.calls_per_op - b.bound);
            let slack = if r.scenario == Scenario::Hot {
                0.05
            } else {
                0.005
            };
            let _ = writeln!(
                s,
                "| no more upstream calls than the baseline: {} | {:.2} (bound {:.2}) vs {:.2} (bound {:.2}) calls/op | {} |",
                r.setup(),
                r.calls_per_op,
                r.bound,
                b.calls_per_op,
                b.bound,
                verdict(mine <= theirs + slack)
            );
        }
    }
    for r in report.rows.iter().filter(|r| judged(r.gateway)) {
        if r.scenario == Scenario::Hot {
            continue;
        }
        let _ = writeln!(
            s,
            "| calls/op at the bound: {} | {:.2} (bound {:.2}) | {} |",
            r.setup(),
            r.calls_per_op,
            r.bound,
            verdict(r.calls_per_op <= r.bound + 1e-9)
        );
    }
    for p in report
        .paths
        .iter()
        .filter(|p| p.latency_ms > 0 && judged(p.gateway))
    {
        let l = p.latency_ms as f64;
        for (which, trips, load) in [("cold", 2.2, &p.cold), ("warm", 1.1, &p.warm)] {
            let _ = writeln!(
                s,
                "| {which} critical path ≤ {trips} round trips: {} {} ms | p50 {:.1} ms ≤ {:.0} ms | {} |",
                p.filters.name(),
                p.latency_ms,
                load.pct_ms(0.5),
                trips * l,
                verdict(load.pct_ms(0.5) <= trips * l)
            );
        }
    }
    for r in report
        .rows
        .iter()
        .filter(|r| r.scenario == Scenario::Canonical && r.latency_ms == 0 && judged(r.gateway))
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
    for p in report
        .paths
        .iter()
        .filter(|p| p.latency_ms == 0 && judged(p.gateway))
    {
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
        .filter(|m| m.what.starts_with("idle after start") && !m.what.ends_with("(baseline)"))
        .map(|m| m.rss_mb)
        .fold(f64::NAN, f64::max);
    if !idle.is_nan() {
        let _ = writeln!(
            s,
            "| idle RSS ≤ 15 MB | {idle:.1} MiB = {:.1} MB (largest of the starts) | {} |",
            idle * 1.048_576,
            verdict(idle * 1.048_576 <= 15.0)
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

pub(crate) fn write_results(path: &Path, results: &str) -> anyhow::Result<()> {
    write_section(path, RESULTS_START, RESULTS_END, "Latest results", results)
}

/// Replaces what stands between `start` and `end` in the Markdown file `path` (or adds
/// the section under `heading` when the markers are not there yet).
pub(crate) fn write_section(
    path: &Path,
    start: &str,
    end: &str,
    heading: &str,
    results: &str,
) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{start}\n{results}{end}");
    let text = match (existing.find(start), existing.find(end)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{block}{}", &existing[..a], &existing[b + end.len()..])
        }
        _ => format!("{existing}\n## {heading}\n\n{block}\n"),
    };
    std::fs::write(path, text)?;
    Ok(())
}

/// The gateway column: `baseline`, `new`, or `this` when nothing is compared.
fn gateway_name(label: &str) -> &str {
    if label.is_empty() {
        "this"
    } else {
        label
    }
}
