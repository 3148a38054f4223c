//! Soak: a bounded run of mixed GraphQL load against a gateway whose sandbox injects
//! faults (500, 503, slow answers past the request timeout, malformed JSON, dropped
//! connections, 429 bursts and a concurrency cap). Checks that no request hangs past
//! its deadline, that no answer is 5xx, and that the process's RSS and open file
//! descriptors stay flat.
//!
//! ```text
//! cargo run --release --example soak -- --minutes 3
//! ```
//!
//! Gateway, sandbox and load generator share this process (loopback only), so RSS
//! and descriptors are those of all three; the sandbox's store is kept from growing
//! (writes reuse a small set of names on a small set of actions). Exits non-zero when
//! a check fails.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionkit_graphql::app::{self, Upstream};
use actionkit_graphql::config::{Config, Mode};
use actionkit_graphql::sandbox::{self, SandboxConfig};
use clap::Parser;
use rand::Rng;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// How long to run, in minutes (fractions allowed).
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Clients sending requests back to back.
    #[arg(long, default_value_t = 24)]
    clients: usize,
}

#[derive(Parser)]
struct SandboxFlags {
    #[command(flatten)]
    config: SandboxConfig,
}

/// The gateway's GraphQL deadline; a request is "hung" when it takes longer than this
/// plus [`SLACK`].
const DEADLINE_MS: u64 = 4_000;
const SLACK: Duration = Duration::from_millis(1_000);

const FAULTS: &str = r#"{"error_500": 0.02, "error_503": 0.02, "slow": 0.02, "slow_ms": 1500,
    "malformed_json": 0.01, "drop_connection": 0.01}"#;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    hung: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    max_ms: AtomicU64,
    outcomes: Mutex<BTreeMap<String, u64>>,
}

fn operation(rng: &mut impl Rng) -> (&'static str, Value) {
    match rng.gen_range(0..10) {
        0..=2 => (
            r#"query($id: ID!) { user(id: $id) { id email customFields { name value } } }"#,
            json!({"id": rng.gen_range(1..300).to_string()}),
        ),
        3..=4 => {
            let ids: Vec<String> = (0..10).map(|_| rng.gen_range(1..300).to_string()).collect();
            (
                r#"query($ids: [ID!]!) { users(ids: $ids) { id firstName } }"#,
                json!({"ids": ids}),
            )
        }
        5..=6 => (
            r#"query($id: ID!) { user(id: $id) { id actions(first: 50) { totalCount
                 nodes { id type page { name } customFields { name value } }
                 pageInfo { endCursor } } } }"#,
            json!({"id": rng.gen_range(1..=3).to_string()}),
        ),
        7 => (
            r#"{ page(id: "1") { id title } p: page(name: "doesnotexist") { id } }"#,
            json!({}),
        ),
        _ => (
            r#"mutation($id: ID!, $f: [CustomFieldInput!]!) {
                 setActionCustomFields(actionId: $id, fields: $f) { id customFields { name } } }"#,
            json!({"id": rng.gen_range(1..50).to_string(),
                   "f": [{"name": format!("soak_{}", rng.gen_range(0..8)),
                          "value": rng.gen_range(0..1000).to_string()}]}),
        ),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sb =
        SandboxFlags::parse_from(["sandbox", "--latency-ms", "5", "--max-concurrent", "12"]).config;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = sandbox::spawn(sb.clone(), listener).await?;
    let mut config = Config::default();
    config.actionkit.request_timeout_ms = 1_000;
    config.actionkit.operation_deadline_ms = 3_000;
    config.graphql.operation_deadline_ms = DEADLINE_MS;
    let upstream = Upstream::sandbox(handle.addr, &sb, true)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gw = app::start(&config, Mode::Production, upstream, listener).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(DEADLINE_MS) + SLACK * 5)
        .build()?;
    let faults: Value = serde_json::from_str(FAULTS)?;
    http.post(format!("http://{}/__sandbox/faults", handle.addr))
        .json(&faults)
        .send()
        .await?;

    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    let started = Instant::now();
    let end = started + run_for;
    let tally = Arc::new(Tally::default());
    let url = format!("http://{}/graphql", gw.addr);
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let http = http.clone();
        let url = url.clone();
        let tally = tally.clone();
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                let (query, variables) = operation(&mut rand::thread_rng());
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .json(&json!({"query": query, "variables": variables}))
                    .send()
                    .await;
                let outcome = match resp {
                    Err(_) => {
                        tally.transport_errors.fetch_add(1, Ordering::Relaxed);
                        "transport error".to_owned()
                    }
                    Ok(r) => {
                        let status = r.status().as_u16();
                        if status >= 500 {
                            tally.server_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        let code = body["errors"][0]["extensions"]["code"]
                            .as_str()
                            .unwrap_or("ok")
                            .to_owned();
                        format!("{status} {code}")
                    }
                };
                let ms = t.elapsed().as_millis() as u64;
                if t.elapsed() > Duration::from_millis(DEADLINE_MS) + SLACK {
                    tally.hung.fetch_add(1, Ordering::Relaxed);
                }
                tally.max_ms.fetch_max(ms, Ordering::Relaxed);
                tally.requests.fetch_add(1, Ordering::Relaxed);
                *tally
                    .outcomes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(outcome)
                    .or_insert(0) += 1;
            }
        }));
    }

    // A 429 burst every 20 s, and samples of RSS and descriptors every 10 s.
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let mut next_burst = started + Duration::from_secs(20);
    println!("   t(s)   requests   RSS(KiB)   fds");
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if Instant::now() >= next_burst {
            let mut f = faults.clone();
            f["burst_429"] = json!(20);
            let _ = http
                .post(format!("http://{}/__sandbox/faults", handle.addr))
                .json(&f)
                .send()
                .await;
            next_burst += Duration::from_secs(20);
        }
        let t = started.elapsed().as_secs_f64();
        if samples.last().is_none_or(|s| t - s.0 >= 10.0) {
            let s = (t, rss_kb(), open_fds());
            println!(
                "{:>7.0} {:>10} {:>10} {:>5}",
                s.0,
                tally.requests.load(Ordering::Relaxed),
                s.1,
                s.2
            );
            samples.push(s);
        }
    }
    for w in workers {
        w.await?;
    }
    // Let keep-alive connections settle, then take the final sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = (started.elapsed().as_secs_f64(), rss_kb(), open_fds());
    println!(
        "{:>7.0} {:>10} {:>10} {:>5}",
        last.0,
        tally.requests.load(Ordering::Relaxed),
        last.1,
        last.2
    );
    samples.push(last);

    // Flat: compare the end with the sample after warm-up (a quarter of the run).
    let warm = samples
        .iter()
        .find(|s| s.0 >= run_for.as_secs_f64() / 4.0)
        .copied()
        .unwrap_or(samples[0]);
    let rss_growth = last.1 as f64 / warm.1.max(1) as f64 - 1.0;
    let fd_growth = last.2 as i64 - warm.2 as i64;
    println!("\noutcomes (HTTP status, first error code):");
    for (k, v) in tally
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("  {k:<40} {v}");
    }
    let hung = tally.hung.load(Ordering::Relaxed);
    let s5xx = tally.server_errors.load(Ordering::Relaxed);
    let terr = tally.transport_errors.load(Ordering::Relaxed);
    println!(
        "\nrequests {} in {:.0} s; max latency {} ms (deadline {} ms); hung {hung}; 5xx {s5xx}; \
         transport errors {terr}",
        tally.requests.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        tally.max_ms.load(Ordering::Relaxed),
        DEADLINE_MS
    );
    println!(
        "RSS {} KiB after warm-up -> {} KiB at the end ({:+.1}%); fds {} -> {} ({fd_growth:+})",
        warm.1,
        last.1,
        rss_growth * 100.0,
        warm.2,
        last.2
    );
    let ok = hung == 0 && s5xx == 0 && terr == 0 && rss_growth < 0.25 && fd_growth <= 16;
    println!("verdict: {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
