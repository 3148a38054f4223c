//! Live page progress (`--subscriptions`): 1,000 WebSocket subscribers
//! (`graphql-transport-ws`, one connection each, as browsers hold them) on one page,
//! then on 100 pages. Measured: the gateway's memory per subscriber (`VmRSS` before
//! the connections and with them open), upstream calls per minute while they watch
//! (sandbox stats), and the time from sending a submission to the push of the new
//! count (to the first and to the last subscriber of the page).

use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::*;

pub(crate) const LIVE_START: &str = "<!-- bench:subscriptions:start -->";
pub(crate) const LIVE_END: &str = "<!-- bench:subscriptions:end -->";

const PROGRESS: &str = "subscription P($page: String!) { pageProgress(page: $page) { actions } }";
const SUBMIT: &str =
    "mutation Sign($input: SubmitActionInput!) { submitAction(input: $input) { status } }";

/// The progress period the benchmark runs with (`progress.cache_ttl_secs`).
const PERIOD_SECS: u64 = 5;

/// One scenario's outcome.
pub(crate) struct LiveRow {
    pub(crate) subscribers: usize,
    pub(crate) pages: usize,
    pub(crate) connect: Duration,
    pub(crate) rss_before: f64,
    pub(crate) rss_after: f64,
    pub(crate) watch_secs: f64,
    pub(crate) upstream_calls: u64,
    /// Submission sent → first / last subscriber of its page has the new count, ms.
    pub(crate) first_ms: Vec<f64>,
    pub(crate) last_ms: Vec<f64>,
}

/// A subscriber's news: (connection, actions, when).
type News = (usize, u64, Instant);

async fn subscriber(
    addr: SocketAddr,
    index: usize,
    page: String,
    news: mpsc::UnboundedSender<News>,
) -> anyhow::Result<()> {
    let mut req = format!("ws://{addr}/graphql").into_client_request()?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {BENCH_KEY}")}})))
        .await?;
    let mut subscribed = false;
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(f) => bail!("closed: {f:?}"),
            _ => continue,
        };
        let v: Value = serde_json::from_str(text.as_str())?;
        match v["type"].as_str() {
            Some("connection_ack") if !subscribed => {
                subscribed = true;
                ws.send(send(json!({"id": "1", "type": "subscribe", "payload": {"query": PROGRESS, "variables": {"page": page}}})))
                    .await?;
            }
            Some("ping") => ws.send(send(json!({"type": "pong"}))).await?,
            Some("next") => {
                let actions = v["payload"]["data"]["pageProgress"]["actions"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("no progress in {v}"))?;
                let _ = news.send((index, actions, Instant::now()));
            }
            _ => bail!("unexpected {v}"),
        }
    }
    Ok(())
}

/// `count` petition pages named `bench-live-<n>` (created in the sandbox when missing).
async fn live_pages(sandbox: SocketAddr, count: usize) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    let mut names = Vec::new();
    for n in 0..count {
        let name = format!("bench-live-{n}");
        let resp = http
            .post(format!("http://{sandbox}/rest/v1/petitionpage/"))
            .basic_auth("sandbox", Some("sandbox"))
            .json(&json!({"name": name, "title": format!("Live page {n}"), "goal": 1000, "goal_type": "actions"}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("creating page {name}: HTTP {}", resp.status());
        }
        names.push(name);
    }
    Ok(names)
}

async fn submit(gateway: SocketAddr, page: &str, n: usize) -> anyhow::Result<()> {
    let body: Value = reqwest::Client::new()
        .post(format!("http://{gateway}/graphql"))
        .bearer_auth(BENCH_KEY)
        .json(&json!({"query": SUBMIT, "variables": {"input": {
            "page": page, "email": format!("live-{n}-{}@example.org", std::process::id()),
            "firstName": "Live", "lastName": "Bench", "zip": "02139"}}}))
        .send()
        .await?
        .json()
        .await?;
    let status = body["data"]["submitAction"]["status"]
        .as_str()
        .unwrap_or("");
    if status != "PROCESSED" {
        bail!("submitAction answered {body}");
    }
    Ok(())
}

async fn scenario(
    args: &Args,
    env: &Env,
    subscribers: usize,
    pages: usize,
) -> anyhow::Result<LiveRow> {
    eprintln!("== live progress: {subscribers} subscribers on {pages} page(s)");
    let sandbox = start_sandbox(env, Filters::Permissive, 0, args.users, &[]).await?;
    let names = live_pages(sandbox.addr, pages).await?;
    let data_dir = env.logs.join(format!("data-live-{pages}"));
    let _ = std::fs::remove_dir_all(&data_dir);
    let config = base_config(env, args.gateway_config.as_deref())?;
    let extra = [
        ("GATEWAY_DATA_DIR", data_dir.display().to_string()),
        ("GATEWAY_PROGRESS__CACHE_TTL_SECS", PERIOD_SECS.to_string()),
        (
            "GATEWAY_PROGRESS__MAX_CONNECTIONS_PER_KEY",
            (subscribers * 2).to_string(),
        ),
    ];
    let gw = start_gateway(
        env,
        sandbox.addr,
        Some(&config),
        &format!("live-{pages}"),
        &extra,
    )
    .await?;
    // Warm: one submission (the page form cache, the outbox, the connections).
    submit(gw.addr, &names[0], usize::MAX).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before, _) = memory(gw.proc.pid());
    let (tx, mut rx) = mpsc::unbounded_channel::<News>();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let page = names[i % pages].clone();
        let tx = tx.clone();
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = subscriber(addr, i, page, tx).await {
                eprintln!("   subscriber {i}: {e}");
            }
        }));
        if i % 50 == 49 {
            // Let the gateway keep up with the handshakes.
            tokio::task::yield_now().await;
        }
    }
    let mut latest: Vec<Option<u64>> = vec![None; subscribers];
    let mut ready = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready < subscribers {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((i, actions, _))) = tokio::time::timeout(left, rx.recv()).await else {
            bail!("only {ready} of {subscribers} subscribers got a first value");
        };
        if latest[i].is_none() {
            ready += 1;
        }
        latest[i] = Some(actions);
    }
    let connect = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after, _) = memory(gw.proc.pid());
    eprintln!(
        "   {subscribers} subscribed in {:.1} s; RSS {rss_before:.1} → {rss_after:.1} MiB",
        connect.as_secs_f64()
    );
    // Upstream calls while they watch.
    reset_stats(sandbox.addr).await?;
    let watch = Duration::from_secs(args.duration.max(3 * PERIOD_SECS));
    let watched = Instant::now();
    // Keep draining pushes (counts do not change: nobody submits).
    while watched.elapsed() < watch {
        if let Ok(Some((i, actions, _))) =
            tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
        {
            latest[i] = Some(actions);
        }
    }
    let watch_secs = watched.elapsed().as_secs_f64();
    let upstream_calls = upstream_requests(sandbox.addr).await?;
    eprintln!("   {upstream_calls} upstream calls in {watch_secs:.0} s");
    // Submission → push.
    let mut first_ms = Vec::new();
    let mut last_ms = Vec::new();
    let samples = 20;
    for k in 0..samples {
        let p = k % pages;
        let watchers: Vec<usize> = (0..subscribers).filter(|i| i % pages == p).collect();
        let target = watchers
            .iter()
            .filter_map(|&i| latest[i])
            .max()
            .unwrap_or(0)
            + 1;
        let sent = Instant::now();
        submit(gw.addr, &names[p], k).await?;
        let mut first: Option<Instant> = None;
        let mut waiting: std::collections::HashSet<usize> = watchers.iter().copied().collect();
        let until = Instant::now() + Duration::from_secs(30);
        while !waiting.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            let Ok(Some((i, actions, at))) = tokio::time::timeout(left, rx.recv()).await else {
                bail!(
                    "{} subscribers of {} never saw the new count",
                    waiting.len(),
                    names[p]
                );
            };
            latest[i] = Some(actions);
            if actions >= target && waiting.remove(&i) {
                first.get_or_insert(at);
                if waiting.is_empty() {
                    last_ms.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                }
            }
        }
        if let Some(f) = first {
            first_ms.push(f.duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    for t in tasks {
        t.abort();
    }
    drop(gw);
    Ok(LiveRow {
        subscribers,
        pages,
        connect,
        rss_before,
        rss_after,
        watch_secs,
        upstream_calls,
        first_ms,
        last_ms,
    })
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub(crate) fn render_live(rows: &[LiveRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Live page progress (`pageProgress` over WebSocket)\n\n\
         One WebSocket connection per subscriber (as browsers hold them), `graphql-transport-ws`, \
         the bench's tokio-tungstenite client in this process; `progress.cache_ttl_secs = {PERIOD_SECS}` \
         (one poll per watched page per period); sandbox without added latency, with its \
         `/progress/` endpoint (one call per read). Memory per subscriber: the gateway's \
         `VmRSS` with every subscriber connected minus before, divided by the subscribers \
         (connection, WebSocket buffers, subscription stream). Submission → push: 20 \
         `submitAction`s, one at a time; from sending the HTTP request until the first and the \
         last subscriber of the page got the new count (the push does not wait for a poll).\n"
    );
    let _ = writeln!(
        out,
        "| subscribers | pages | connect all | gateway RSS before → with them | per subscriber | upstream calls/min (expected: pages × 60/{PERIOD_SECS}) | submission → first push p50 / p99 | → last subscriber p50 / p99 |\n|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let per_kib = (r.rss_after - r.rss_before) * 1024.0 / r.subscribers as f64;
        let per_min = r.upstream_calls as f64 * 60.0 / r.watch_secs;
        let expected = r.pages as f64 * 60.0 / PERIOD_SECS as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} s | {:.1} → {:.1} MiB | {:.1} KiB | {:.0} ({:.0}) | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
            r.subscribers,
            r.pages,
            r.connect.as_secs_f64(),
            r.rss_before,
            r.rss_after,
            per_kib,
            per_min,
            expected,
            pct(&r.first_ms, 0.5),
            pct(&r.first_ms, 0.99),
            pct(&r.last_ms, 0.5),
            pct(&r.last_ms, 0.99),
        );
    }
    out
}

/// `--subscriptions`: 1,000 subscribers on one page, then on 100 pages.
pub(crate) async fn run_subscriptions(
    args: &Args,
    env: &Env,
    started: &str,
    load_before: &str,
) -> anyhow::Result<()> {
    let subscribers = args.subscribers;
    let mut rows = Vec::new();
    for pages in [1, 100] {
        rows.push(scenario(args, env, subscribers, pages).await?);
    }
    // Say which build was measured: a debug gateway is several times slower.
    let program = std::env::args().next().unwrap_or_default();
    let debug = program.contains("/debug/")
        || args
            .bin
            .as_ref()
            .is_some_and(|b| b.to_string_lossy().contains("/debug/"));
    let command = if program.contains("/release/") {
        "cargo run --release --example bench --".to_owned()
    } else {
        match program.split_once("/target/") {
            Some((_, rest)) => format!("target/{rest}"),
            None => program.clone(),
        }
    };
    let mut results = format!(
        "Run {started} UTC, commit `{}`; load average before {load_before}, after {}. Command: `{command} {}`. Gateway: {} build. The machine ({}, 2 cores) is shared with other engineers' builds: numbers are what this run measured, not a quiet machine's.\n\n",
        sh("git", &["rev-parse", "--short", "HEAD"]),
        loadavg(),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        if debug { "**debug**" } else { "release" },
        cpu_model(),
    );
    results.push_str(&render_live(&rows));
    println!("\n{results}");
    if let Some(path) = &args.write {
        write_section(
            path,
            LIVE_START,
            LIVE_END,
            "Live page progress: latest results",
            &results,
        )?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}
