//! Driving load: request bodies per scenario, the load loop, and the lower bounds of upstream calls.

use super::*;

/// Makes the body of request number `n`.
pub(crate) type BodyFn = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

#[derive(Default)]
pub(crate) struct Load {
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Latencies in microseconds, sorted.
    pub(crate) lat_us: Vec<u32>,
    pub(crate) elapsed: Duration,
}

impl Load {
    pub(crate) fn rps(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    pub(crate) fn pct_ms(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat_us.len() as f64 * p).ceil() as usize).clamp(1, self.lat_us.len()) - 1;
        self.lat_us[i] as f64 / 1000.0
    }
}

/// A GraphQL answer that counts as a success: HTTP 200, JSON with `data`, no `errors`.
pub(crate) fn check(status: u16, body: &[u8]) -> Result<(), String> {
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

/// A warm-up and the measured run after it: the warm-up's load, the run's, and the
/// numbers of the run's requests (for `lower_bound`).
pub(crate) struct Measured {
    pub(crate) warm: Load,
    pub(crate) load: Load,
    pub(crate) range: std::ops::Range<u64>,
}

/// A warm-up of `warm_up` (connections, duration), the sandbox's counters reset, then
/// the measured run of `run` (connections, duration); both number their requests from
/// `counter`.
pub(crate) async fn warm_then_run(
    gateway: SocketAddr,
    sandbox: SocketAddr,
    warm_up: (usize, Duration),
    run: (usize, Duration),
    counter: &Arc<AtomicU64>,
    body: BodyFn,
) -> anyhow::Result<Measured> {
    let warm = run_load(gateway, warm_up.0, warm_up.1, counter.clone(), body.clone()).await;
    reset_stats(sandbox).await?;
    let first = counter.load(Ordering::Relaxed);
    let load = run_load(gateway, run.0, run.1, counter.clone(), body).await;
    let range = first..counter.load(Ordering::Relaxed);
    Ok(Measured { warm, load, range })
}

/// Runs `connections` keep-alive connections against `/graphql` for `duration`; each
/// connection sends its next request as soon as the previous one is answered.
pub(crate) async fn run_load(
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

pub(crate) fn graphql_body(query: &str, variables: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"query": query, "variables": variables})).unwrap()
}

pub(crate) fn body_fn(scenario: Scenario, data: &Data) -> BodyFn {
    let users = data.users.max(1);
    match scenario {
        Scenario::Canonical => {
            Arc::new(move |n| graphql_body(CANONICAL, json!({"id": (n % users + 1).to_string()})))
        }
        Scenario::Bare => {
            Arc::new(move |n| graphql_body(BARE, json!({"id": (n % users + 1).to_string()})))
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
pub(crate) fn request_bound(scenario: Scenario, filters: Filters, data: &Data, n: u64) -> f64 {
    match (scenario, filters) {
        (Scenario::Canonical | Scenario::Bare | Scenario::Hot, _) => 2.0,
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
pub(crate) fn lower_bound(
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
        (Scenario::Canonical | Scenario::Bare, _) => "user + 1 actions window".to_owned(),
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
