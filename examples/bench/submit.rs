//! Taking actions: submits per second, upstream calls per submit, and the mailing-day
//! spike (many submissions at once against an instance that takes few at a time):
//! every one answered `PROCESSED` or `QUEUED` quickly, every one delivered in the end,
//! none twice.

use super::*;

const SUBMIT: &str = "mutation Sign($input: SubmitActionInput!) { submitAction(input: $input) { status submissionId fieldErrors { field code } } }";
const STATUS: &str =
    "query Status($id: ID!) { submission(id: $id) { status action { id } fieldErrors { code } } }";

pub(crate) const SUBMIT_START: &str = "<!-- bench:submit:start -->";
pub(crate) const SUBMIT_END: &str = "<!-- bench:submit:end -->";

/// One row of steady submits.
pub(crate) struct SubmitRow {
    pub(crate) latency_ms: u64,
    pub(crate) connections: usize,
    pub(crate) load: Load,
    pub(crate) calls_per_submit: f64,
    /// `POST /rest/v1/action/` calls per submit (1 when none is sent twice).
    pub(crate) posts_per_submit: f64,
}

/// The spike's outcome.
pub(crate) struct Spike {
    pub(crate) sent: usize,
    pub(crate) seconds: u64,
    pub(crate) sandbox_flags: String,
    pub(crate) processed_at_once: u64,
    pub(crate) queued: u64,
    pub(crate) other: u64,
    pub(crate) first_other: Option<String>,
    pub(crate) answer_ms: Vec<u32>,
    pub(crate) drain: Option<Duration>,
    pub(crate) delivered: u64,
    pub(crate) distinct_actions: usize,
    pub(crate) new_actions: u64,
}

/// A petition page of the sandbox and the user fields it requires.
struct Target {
    name: String,
    id: u64,
}

async fn petition_page(sandbox: SocketAddr) -> anyhow::Result<Target> {
    let auth = basic_auth();
    let pages = get_json(sandbox, "/rest/v1/petitionpage/?_limit=100", Some(&auth)).await?;
    let objects = pages["objects"]
        .as_array()
        .ok_or_else(|| anyhow!("no petition pages in the sandbox"))?;
    // Prefer a page that asks for nothing beyond what every submission carries.
    let carried = ["email", "first_name", "last_name", "zip", "name"];
    let fits = |p: &Value| {
        p["required_fields"]
            .as_array()
            .map(|r| {
                r.iter()
                    .all(|f| carried.contains(&f["name"].as_str().unwrap_or("")))
            })
            .unwrap_or(true)
    };
    let page = objects
        .iter()
        .find(|p| fits(p))
        .or_else(|| objects.first())
        .ok_or_else(|| anyhow!("no petition pages in the sandbox"))?;
    Ok(Target {
        name: page["name"].as_str().unwrap_or_default().to_owned(),
        id: page["id"].as_u64().unwrap_or_default(),
    })
}

/// Actions on `page`, asked of the sandbox itself; a sandbox at its concurrency limit
/// (the spike keeps it there) answers 429, and the question is asked again.
async fn actions_on(sandbox: SocketAddr, page: u64) -> anyhow::Result<u64> {
    let auth = basic_auth();
    let path = format!("/rest/v1/action/?page={page}&_limit=1");
    let mut tries = 0;
    loop {
        match get_json(sandbox, &path, Some(&auth)).await {
            Ok(v) => {
                return v["meta"]["total_count"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("no action total_count"))
            }
            Err(e) if tries < 200 && e.to_string().contains("429") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn submit_body(page: &str, tag: &str, n: u64) -> Vec<u8> {
    graphql_body(
        SUBMIT,
        json!({"input": {
            "page": page,
            "email": format!("bench-{tag}-{n}@example.org"),
            "firstName": "Bench",
            "lastName": format!("Signer{n}"),
            "zip": "12345",
            "idempotencyKey": format!("bench-{tag}-{n}"),
        }}),
    )
}

/// `status` and `submissionId` of a submitAction answer, or what was wrong with it.
fn submit_answer(status: u16, body: &[u8]) -> Result<(String, String), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("HTTP {status}: {e}"))?;
    let p = &v["data"]["submitAction"];
    match (p["status"].as_str(), p["submissionId"].as_str()) {
        (Some(s), Some(id)) if v.get("errors").is_none() => Ok((s.to_owned(), id.to_owned())),
        _ => Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )),
    }
}

/// Steady submits for `args.duration` seconds at one sandbox latency.
pub(crate) async fn steady(args: &Args, env: &Env, latency_ms: u64) -> anyhow::Result<SubmitRow> {
    eprintln!("== submits, {latency_ms} ms upstream");
    let sandbox = start_sandbox(env, Filters::Permissive, latency_ms, args.users, &[]).await?;
    let data_dir = env.logs.join(format!("data-steady-{latency_ms}ms"));
    let _ = std::fs::remove_dir_all(&data_dir);
    let extra = [("GATEWAY_DATA_DIR", data_dir.display().to_string())];
    let tag = format!("submit-{latency_ms}ms");
    // The benchmark's own settings (the per-key rate limit off: one key sends it all).
    let config = base_config(env, args.gateway_config.as_deref())?;
    let gw = start_gateway(env, sandbox.addr, Some(&config), &tag, &extra).await?;
    let page = petition_page(sandbox.addr).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let name = page.name.clone();
    let body: BodyFn = Arc::new(move |n| submit_body(&name, "steady", n));
    // Warm the page form cache and the connections.
    let Measured { load, .. } = warm_then_run(
        gw.addr,
        sandbox.addr,
        (2, Duration::from_secs(1)),
        (args.connections, Duration::from_secs(args.duration)),
        &counter,
        body,
    )
    .await?;
    let calls = upstream_requests(sandbox.addr).await?;
    let stats = upstream_stats(sandbox.addr).await?;
    let posts = stats["by_route"]["POST /rest/v1/action/"]
        .as_u64()
        .unwrap_or_default();
    eprintln!(
        "   {:.0} submits/s, {calls} upstream calls ({posts} POSTs)",
        load.rps()
    );
    Ok(SubmitRow {
        latency_ms,
        connections: args.connections,
        calls_per_submit: calls as f64 / load.ops.max(1) as f64,
        posts_per_submit: posts as f64 / load.ops.max(1) as f64,
        load,
    })
}

/// `count` submissions spread over `seconds`, against a sandbox that takes 4 at a time
/// with 200 ms per call; then waits for every one to be delivered.
pub(crate) async fn spike(
    env: &Env,
    config: &Path,
    count: usize,
    seconds: u64,
) -> anyhow::Result<Spike> {
    let flags = ["--max-concurrent", "4"];
    eprintln!("== spike: {count} submissions in {seconds} s, sandbox {flags:?} 200 ms");
    let sandbox = start_sandbox(env, Filters::Permissive, 200, 200, &flags).await?;
    let data_dir = env.logs.join("data-spike");
    let _ = std::fs::remove_dir_all(&data_dir);
    let extra = [("GATEWAY_DATA_DIR", data_dir.display().to_string())];
    let gw = start_gateway(env, sandbox.addr, Some(config), "spike", &extra).await?;
    let page = petition_page(sandbox.addr).await?;
    let before = actions_on(sandbox.addr, page.id).await?;

    let start = Instant::now();
    let gap = Duration::from_secs(seconds).as_secs_f64() / count as f64;
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let at = start + Duration::from_secs_f64(gap * i as f64);
            let body = submit_body(&page.name, "spike", i as u64);
            let addr = gw.addr;
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                let t0 = Instant::now();
                let mut conn = Conn::new(addr);
                let r = conn.request("POST", "/graphql", JSON_HEADERS, &body).await;
                let ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
                let answer = match r {
                    Ok((status, body)) => submit_answer(status, &body),
                    Err(e) => Err(format!("transport: {e:#}")),
                };
                (ms, answer)
            })
        })
        .collect();
    let mut out = Spike {
        sent: count,
        seconds,
        sandbox_flags: "--max-concurrent 4 --latency-ms 200".into(),
        processed_at_once: 0,
        queued: 0,
        other: 0,
        first_other: None,
        answer_ms: Vec::with_capacity(count),
        drain: None,
        delivered: 0,
        distinct_actions: 0,
        new_actions: 0,
    };
    let mut ids = Vec::with_capacity(count);
    for t in tasks {
        let (ms, answer) = t.await?;
        out.answer_ms.push(ms);
        match answer {
            Ok((status, id)) if status == "PROCESSED" || status == "QUEUED" => {
                if status == "PROCESSED" {
                    out.processed_at_once += 1;
                } else {
                    out.queued += 1;
                }
                ids.push(id);
            }
            Ok((status, _)) => {
                out.other += 1;
                out.first_other.get_or_insert(status);
            }
            Err(e) => {
                out.other += 1;
                out.first_other.get_or_insert(e);
            }
        }
    }
    let sent_at = Instant::now();
    out.answer_ms.sort_unstable();
    eprintln!(
        "   answered: {} processed, {} queued, {} other; waiting for delivery",
        out.processed_at_once, out.queued, out.other
    );

    // Delivery: the sandbox's count of actions on the page reaches what was accepted.
    let expected = ids.len() as u64;
    let deadline = sent_at + Duration::from_secs(600);
    loop {
        let now = actions_on(sandbox.addr, page.id)
            .await?
            .saturating_sub(before);
        if now >= expected {
            out.drain = Some(sent_at.elapsed());
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let a would-be duplicate arrive before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    out.new_actions = actions_on(sandbox.addr, page.id)
        .await?
        .saturating_sub(before);

    let mut conn = Conn::new(gw.addr);
    let mut actions = std::collections::HashSet::new();
    for id in &ids {
        let body = graphql_body(STATUS, json!({"id": id}));
        let (_, resp) = conn
            .request("POST", "/graphql", JSON_HEADERS, &body)
            .await?;
        let v: Value = serde_json::from_slice(&resp)?;
        let s = &v["data"]["submission"];
        if s["status"] == "PROCESSED" {
            out.delivered += 1;
            if let Some(a) = s["action"]["id"].as_str() {
                actions.insert(a.to_owned());
            }
        }
    }
    out.distinct_actions = actions.len();
    Ok(out)
}

pub(crate) fn render_submit(rows: &[SubmitRow], spike: Option<&Spike>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Taking actions\n");
    let _ = writeln!(s, "Steady submits: each connection sends its next submission when the last is answered; `submits/s` counts answers (`PROCESSED` when a send slot was free and ActionKit answered within 800 ms, else `QUEUED`). Upstream calls are those made during the window, so with a backlog they are fewer than the submissions: the exactly-once count is the spike's.\n");
    let _ = writeln!(s, "| upstream | conns | submits/s | p50 ms | p99 ms | errors | upstream calls per answered submit (in the window) | lower bound after delivery | POST /action/ per answered submit (in the window) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} ms | {} | {:.0} | {:.2} | {:.2} | {} | {:.2} | 1 | {:.2} |",
            r.latency_ms,
            r.connections,
            r.load.rps(),
            r.load.pct_ms(0.5),
            r.load.pct_ms(0.99),
            r.load.errors,
            r.calls_per_submit,
            r.posts_per_submit,
        );
    }
    if let Some(k) = spike {
        let pct = |p: f64| {
            if k.answer_ms.is_empty() {
                return 0;
            }
            let i =
                ((k.answer_ms.len() as f64 * p).ceil() as usize).clamp(1, k.answer_ms.len()) - 1;
            k.answer_ms[i]
        };
        let within_1s = k.answer_ms.iter().filter(|&&ms| ms <= 1000).count();
        let _ = writeln!(
            s,
            "\n**Spike**: {} submissions over {} s against a sandbox started with `{}`.\n",
            k.sent, k.seconds, k.sandbox_flags
        );
        let _ = writeln!(s, "| answered PROCESSED / QUEUED / other | answer p50 / p99 / max ms | answered within 1 s | delivered (PROCESSED in the end) | distinct actions | new actions on the page | lost | duplicates | time to drain after the last answer |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        let accepted = k.processed_at_once + k.queued;
        let _ = writeln!(
            s,
            "| {} / {} / {}{} | {} / {} / {} | {} of {} | {} | {} | {} | {} | {} | {} |",
            k.processed_at_once,
            k.queued,
            k.other,
            k.first_other
                .as_ref()
                .map(|e| format!(" (first: {})", e.chars().take(80).collect::<String>()))
                .unwrap_or_default(),
            pct(0.5),
            pct(0.99),
            k.answer_ms.last().copied().unwrap_or_default(),
            within_1s,
            k.sent,
            k.delivered,
            k.distinct_actions,
            k.new_actions,
            accepted.saturating_sub(k.delivered),
            k.new_actions.saturating_sub(k.distinct_actions as u64),
            k.drain
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "**did not drain in 600 s**".into()),
        );
    }
    s
}
