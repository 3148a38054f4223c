//! Several replicas on one Redis (issue #16): real `redis-server`, real gateway
//! binaries, one sandbox binary, all over TCP on 127.0.0.1.
//!
//! - the ActionKit budget holds across replicas (the sandbox's `max_in_flight` never
//!   passes its `--max-concurrent`, nothing is answered 429), and without Redis it
//!   does not (the control run);
//! - a key's rate limit holds across replicas;
//! - a page read through replica A costs no upstream call through B;
//! - SIGKILL replica A with submissions queued and in flight: B delivers every one of
//!   them, each exactly once;
//! - stop Redis mid-run: every replica keeps answering reads, and says Redis is down;
//!   start it again: the replicas say it is up.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::BIN;
use crate::outbox_support::{sign, SandboxRest, TempDir};
use crate::procs::{
    expect_processed, graphql, metrics, readyz, start_gateway, start_sandbox, Proc, Signers, KEY,
};

/// A port that was free a moment ago (nothing listens on it now).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` on a free port, without persistence; killed on drop.
pub(crate) struct RedisServer {
    child: std::process::Child,
    pub port: u16,
}

impl RedisServer {
    pub(crate) fn start() -> RedisServer {
        for _ in 0..10 {
            if let Some(server) = RedisServer::start_on(free_port()) {
                return server;
            }
        }
        panic!("redis-server did not start (is it installed? `.ci/run` installs it)");
    }

    /// `None` when it exits at once (the port was taken meanwhile).
    pub(crate) fn start_on(port: u16) -> Option<RedisServer> {
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (`.ci/run` installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return Some(RedisServer { child, port });
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

const READ: &str = "query($id: ID!) { user(id: $id) { id email } }";

/// `clients` loops per replica, each reading distinct users through its replica until
/// `per_client` reads are done; every answer must carry data. Returns the reads.
async fn load(
    http: &reqwest::Client,
    replicas: &[String],
    clients: usize,
    per_client: usize,
) -> usize {
    load_checked(http, replicas, clients, per_client, true).await
}

/// [`load`]; with `strict` false, answers with errors are allowed (the control run).
async fn load_checked(
    http: &reqwest::Client,
    replicas: &[String],
    clients: usize,
    per_client: usize,
    strict: bool,
) -> usize {
    let mut tasks = Vec::new();
    for (r, gw) in replicas.iter().enumerate() {
        for c in 0..clients {
            let (http, gw) = (http.clone(), gw.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..per_client {
                    let id = 1 + (r * 31 + c * 7 + n) % 60;
                    let (status, body) =
                        graphql(&http, &gw, READ, json!({"id": id.to_string()})).await;
                    assert_eq!(status, 200, "{body}");
                    if strict {
                        assert!(body["errors"].is_null(), "{body}");
                        assert_eq!(body["data"]["user"]["id"], id.to_string(), "{body}");
                    }
                }
                per_client
            }));
        }
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

const BUDGET_CONFIG: &str =
    "[actionkit]\nmax_in_flight = 3\n\n[security]\nrate_limit_per_minute = 0\n\n\
     [graphql]\npage_cache_ttl_secs = 300\n";

/// Three replicas `<prefix>0` to `<prefix>2` in front of `sandbox`, on Redis when
/// given, each read by 6 clients 10 times: the reads and the sandbox's stats for them.
/// Without Redis (the control run), answers with errors are allowed.
async fn budget_run(
    sandbox: &Proc,
    dir: &std::path::Path,
    prefix: &str,
    redis: Option<&str>,
) -> (usize, Value) {
    let http = reqwest::Client::new();
    let mut replicas = Vec::new();
    for n in 0..3 {
        let name = format!("{prefix}{n}");
        replicas.push(start_gateway(&sandbox.addr, dir, &name, BUDGET_CONFIG, redis).await);
    }
    let addrs: Vec<String> = replicas.iter().map(|p| p.addr.clone()).collect();
    let rest = sandbox.rest();
    rest.reset_stats().await;
    let reads = load_checked(&http, &addrs, 6, 10, redis.is_some()).await;
    (reads, rest.stats().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_actionkit_budget_holds_across_three_replicas() {
    let redis = RedisServer::start();
    let dir = TempDir::new("redis-budget");
    std::fs::create_dir_all(&dir.0).unwrap();
    // The sandbox takes 3 requests at once and answers each in 40 ms.
    let sandbox = start_sandbox(60, &["--max-concurrent", "3", "--latency-ms", "40"]).await;
    let (reads, stats) = budget_run(&sandbox, &dir.0, "r", Some(&redis.url())).await;
    eprintln!("budget with Redis: {reads} reads, sandbox stats {stats}");
    assert!(stats["requests"].as_u64().unwrap() >= 60, "{stats}");
    assert!(stats["max_in_flight"].as_u64().unwrap() <= 3, "{stats}");
    assert_eq!(stats["rejected_429"], 0, "{stats}");

    // The control: the same three replicas without Redis send up to 9 at once.
    let (_, stats) = budget_run(&sandbox, &dir.0, "c", None).await;
    eprintln!("budget without Redis: sandbox stats {stats}");
    assert!(
        stats["rejected_429"].as_u64().unwrap() > 0,
        "without Redis the replicas should overrun the sandbox: {stats}"
    );
}

/// Two replicas (`a`, `b`) on one Redis and one sandbox (started with `sandbox_args`),
/// with `config` each.
struct TwoReplicas {
    _sandbox: Proc,
    rest: SandboxRest,
    a: Proc,
    b: Proc,
    http: reqwest::Client,
    redis: RedisServer,
    _dir: TempDir,
}

impl TwoReplicas {
    async fn start(tag: &str, sandbox_args: &[&str], config: &str) -> TwoReplicas {
        let redis = RedisServer::start();
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(&dir.0).unwrap();
        let sandbox = start_sandbox(60, sandbox_args).await;
        let a = start_gateway(&sandbox.addr, &dir.0, "a", config, Some(&redis.url())).await;
        let b = start_gateway(&sandbox.addr, &dir.0, "b", config, Some(&redis.url())).await;
        TwoReplicas {
            rest: sandbox.rest(),
            _sandbox: sandbox,
            a,
            b,
            http: reqwest::Client::new(),
            redis,
            _dir: dir,
        }
    }

    /// Reads `query` through A, then through B, each after a reset of the sandbox's
    /// counts: A's read costs upstream calls (as `cost` counts them in the stats), B's
    /// answers the same data and costs none. Returns A's answer.
    async fn read_once_for_both(&self, query: &str, vars: Value, cost: fn(&Value) -> u64) -> Value {
        let mut answers = Vec::new();
        for (replica, gw) in [("A", &self.a), ("B", &self.b)] {
            self.rest.reset_stats().await;
            let (status, body) = graphql(&self.http, &gw.addr, query, vars.clone()).await;
            assert_eq!(status, 200, "{body}");
            let stats = self.rest.stats().await;
            if answers.is_empty() {
                assert!(cost(&stats) >= 1, "{replica} read upstream: {stats}");
            } else {
                assert_eq!(cost(&stats), 0, "{replica} went upstream: {stats}");
            }
            answers.push(body);
        }
        assert_eq!(answers[1]["data"], answers[0]["data"]);
        answers.swap_remove(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_rate_limit_holds_across_replicas() {
    // 6 a minute (one per 10 s), 4 at once: within the test, each key gets 4.
    let config = "[security]\nrate_limit_per_minute = 6\nrate_limit_burst = 4\n";
    let r = TwoReplicas::start("redis-rate", &[], config).await;
    let mut admitted = 0;
    let mut refused = 0;
    for n in 0..12 {
        let gw = if n % 2 == 0 { &r.a.addr } else { &r.b.addr };
        let (status, body) = graphql(&r.http, gw, READ, json!({"id": "1"})).await;
        match status {
            200 => admitted += 1,
            429 => {
                refused += 1;
                assert_eq!(
                    body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
                    "{body}"
                );
            }
            other => panic!("{other}: {body}"),
        }
    }
    // Per replica, each would have admitted 4 of its 6 (8 in all).
    assert_eq!(admitted, 4, "{admitted} admitted, {refused} refused");
    assert_eq!(refused, 8);
}

/// The sandbox's `requests` in its stats.
fn requests(stats: &Value) -> u64 {
    stats["requests"].as_u64().unwrap()
}

/// The progress reads (`GET /progress/`) in the sandbox's stats, not the page's own.
fn progress_reads(stats: &Value) -> u64 {
    stats["by_route"]
        .as_object()
        .map(|routes| {
            routes
                .iter()
                .filter(|(route, _)| route.contains("progress"))
                .map(|(_, n)| n.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_read_through_one_replica_costs_nothing_through_another() {
    let config = "[security]\nrate_limit_per_minute = 0\n";
    let r = TwoReplicas::start("redis-pages", &[], config).await;
    let query = "query($id: ID!) { page(id: $id) { id name title } }";
    let first = r
        .read_once_for_both(query, json!({"id": "1"}), requests)
        .await;
    assert!(first["data"]["page"]["name"].is_string(), "{first}");
    // And another page through B does cost a call (the counting works).
    let (_, third) = graphql(&r.http, &r.b.addr, query, json!({"id": "2"})).await;
    assert!(third["data"]["page"]["name"].is_string(), "{third}");
    let stats = r.rest.stats().await;
    assert!(requests(&stats) >= 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_progress_read_through_one_replica_costs_nothing_through_another() {
    // A long TTL, so that the test does not race the cache period.
    let config = "[security]\nrate_limit_per_minute = 0\n[progress]\ncache_ttl_secs = 60\n";
    let r = TwoReplicas::start("redis-progress", &[], config).await;
    let query = "query($p: String!) { pageContext(page: $p) { page { progress { actions } } } }";
    let first = r
        .read_once_for_both(query, json!({"p": "save-the-bees"}), progress_reads)
        .await;
    let actions = &first["data"]["pageContext"]["page"]["progress"]["actions"];
    assert!(actions.is_u64(), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_every_replica_keeps_answering_reads() {
    let config = "[security]\nrate_limit_per_minute = 600\n\n[redis]\ntimeout_ms = 300\n";
    let mut r = TwoReplicas::start("redis-stop", &[], config).await;
    let port = r.redis.port;
    let http = r.http.clone();
    let addrs = vec![r.a.addr.clone(), r.b.addr.clone()];
    assert_eq!(readyz(&http, &r.a.addr).await["redis"], "up");
    load(&http, &addrs, 2, 5).await;
    r.redis.stop();
    // Reads go on through both, at once and after the replicas noticed.
    load(&http, &addrs, 2, 5).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page = "query($id: ID!) { page(id: $id) { id name } }";
    for gw in &addrs {
        let r = readyz(&http, gw).await;
        assert_eq!(r["status"], "ready", "{r}");
        assert_eq!(r["redis"], "down", "{r}");
        let (status, body) = graphql(&http, gw, page, json!({"id": "3"})).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["page"]["name"].is_string(), "{body}");
        let metrics = metrics(&http, gw).await;
        assert!(metrics.contains("gateway_redis_up 0"), "{metrics}");
    }
    let started = Instant::now();
    load(&http, &addrs, 2, 10).await;
    eprintln!("40 reads with Redis down in {:?}", started.elapsed());
    // Redis comes back on the same port: the replicas say so within a few seconds.
    let _again = RedisServer::start_on(port).expect("redis-server again on its port");
    let deadline = Instant::now() + Duration::from_secs(10);
    for gw in &addrs {
        loop {
            if readyz(&http, gw).await["redis"] == "up" {
                break;
            }
            assert!(Instant::now() < deadline, "{gw} never saw Redis again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    load(&http, &addrs, 2, 5).await;
}

/// The replica id an outbox logs at start (`outbox: shared queue in Redis`).
fn replica_id(p: &Proc) -> String {
    let line = p
        .log_line("shared queue in Redis")
        .expect("no replica id logged");
    let v: Value = serde_json::from_str(&line).unwrap();
    v["fields"]["replica"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_one_replica_and_the_other_delivers_its_submissions_exactly_once() {
    // Slow and narrow: most submissions wait, a few are in flight.
    let config = "[actionkit]\nmax_in_flight = 2\n\n[security]\nrate_limit_per_minute = 0\n\n\
         [outbox]\nanswer_within_ms = 200\nunknown_settle_ms = 2000\n\
         max_backoff_ms = 500\nworker_concurrency = 2\n";
    let sandbox_args = ["--max-concurrent", "2", "--latency-ms", "300"];
    let mut r = TwoReplicas::start("redis-sigkill", &sandbox_args, config).await;
    let a_id = replica_id(&r.a);
    assert_ne!(a_id, replica_id(&r.b));
    let page_id = r.rest.page_id("save-the-bees").await;

    // Submissions through A only, from 4 clients, until A dies.
    let signers = Signers::start(&r.http, &r.a.addr, "replica", Duration::from_millis(50));
    // Kill A when the shared queue holds a backlog and A has sends in flight.
    let mut conn = r.redis.client().await;
    let watch_deadline = Instant::now() + Duration::from_secs(40);
    let a_in_flight_at_kill: Vec<String> = loop {
        assert!(
            Instant::now() < watch_deadline,
            "no backlog with A's sends in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg("akgql:ob:due")
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        if ids.len() < 15 {
            continue;
        }
        let mut mine = Vec::new();
        for id in &ids {
            let (owner, unknown): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(format!("akgql:ob:s:{id}"))
                .arg("owner")
                .arg("unknown")
                .query_async(&mut conn)
                .await
                .unwrap();
            if owner.as_deref() == Some(a_id.as_str()) && unknown.as_deref() == Some("1") {
                mine.push(id.clone());
            }
        }
        if !mine.is_empty() {
            break mine;
        }
    };
    r.a.child.start_kill().unwrap(); // SIGKILL
    assert!(!r.a.child.wait().await.unwrap().success());
    let accepted = signers.stop().await;
    let queued = accepted.queued();
    assert!(queued >= 10, "only {queued} answered QUEUED");
    let missing_at_kill = accepted.not_yet_delivered(&r.rest, page_id).await;

    // B delivers all of it, A's sends in flight included, each exactly once.
    accepted
        .expect_each_once(&r.rest, page_id, "replica.")
        .await;
    // B answers PROCESSED for every one, A's in-flight ones included.
    accepted.expect_processed(&r.http, &r.b.addr).await;
    let in_flight = a_in_flight_at_kill
        .iter()
        .map(|id| (id.as_str(), id.as_str()));
    expect_processed(&r.http, &r.b.addr, in_flight).await;
    eprintln!(
        "replicas: {} accepted through A ({queued} QUEUED), {} of A's sends in flight at the kill, \
         {missing_at_kill} not yet delivered at the kill; B delivered all exactly once",
        accepted.by_email.len(),
        a_in_flight_at_kill.len()
    );
}

/// The metric names a dashboard's queries use (`gateway_…`, without the histogram
/// suffixes Prometheus adds).
fn dashboard_metrics() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana-dashboard.json"
    ))
    .unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut names = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("gateway_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let names = dashboard_metrics();
    assert!(names.len() >= 10, "{names:?}");
    let mut redis = RedisServer::start();
    let dir = TempDir::new("redis-dashboard");
    std::fs::create_dir_all(&dir.0).unwrap();
    let sandbox = start_sandbox(60, &[]).await;
    let http = reqwest::Client::new();
    let config = "[security]\nrate_limit_per_minute = 1\nrate_limit_burst = 3\n\n\
                  [redis]\ntimeout_ms = 300\n";
    let gw = start_gateway(&sandbox.addr, &dir.0, "a", config, Some(&redis.url())).await;
    // A read, a page, a submission, then the rate limit.
    let (s, body) = graphql(&http, &gw.addr, READ, json!({"id": "1"})).await;
    assert_eq!(s, 200, "{body}");
    let page = "query($id: ID!) { page(id: $id) { id name } }";
    assert_eq!(
        graphql(&http, &gw.addr, page, json!({"id": "1"})).await.0,
        200
    );
    assert!(sign(&http, &gw.addr, KEY, "dashboard@example.org")
        .await
        .is_some());
    assert_eq!(
        graphql(&http, &gw.addr, READ, json!({"id": "2"})).await.0,
        429
    );
    // Redis goes away: its errors are counted.
    redis.stop();
    let _ = graphql(&http, &gw.addr, page, json!({"id": "4"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = metrics(&http, &gw.addr).await;
    let exported = |name: &str| {
        metrics.lines().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
    };
    let missing: Vec<&String> = names.iter().filter(|n| !exported(n)).collect();
    assert!(
        missing.is_empty(),
        "not in /metrics: {missing:?}\n{metrics}"
    );
    assert!(!exported("gateway_no_such_metric"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_at_start_the_gateway_serves_on_local_state_and_keeps_the_password_quiet() {
    // A port nothing listens on, and a password that must appear nowhere.
    let port = free_port();
    let url = format!("redis://:pw-s3cret-9f2@127.0.0.1:{port}/0");
    let checked = std::process::Command::new(BIN)
        .args(["check-config", "--redis-url", &url])
        .env_remove("GATEWAY_REDIS_URL")
        .env_remove("GATEWAY_CONFIG")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&checked.stdout).to_string()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(!printed.contains("pw-s3cret-9f2"), "{printed}");
    assert!(
        printed.contains(&format!("redis://:***@127.0.0.1:{port}/0")),
        "{printed}"
    );

    let dir = TempDir::new("redis-unreachable");
    std::fs::create_dir_all(&dir.0).unwrap();
    let sandbox = start_sandbox(60, &[]).await;
    let rest = sandbox.rest();
    let config = "[security]\nrate_limit_per_minute = 600\n\n[redis]\ntimeout_ms = 200\n\n\
                  [outbox]\nanswer_within_ms = 2000\n";
    let gw = start_gateway(&sandbox.addr, &dir.0, "a", config, Some(&url)).await;
    let http = reqwest::Client::new();
    assert_eq!(readyz(&http, &gw.addr).await["redis"], "down");
    load(&http, std::slice::from_ref(&gw.addr), 2, 5).await;
    // Submissions go to the replica's own store and reach ActionKit once each.
    let page_id = rest.page_id("save-the-bees").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let email = format!("fallback.n{n}@example.org");
        let (_, id) = sign(&http, &gw.addr, KEY, &email).await.expect("answered");
        ids.push((email, id));
    }
    let emails: Vec<&String> = ids.iter().map(|(email, _)| email).collect();
    rest.expect_each_once(page_id, "fallback.", &emails, &[])
        .await;
    let ids = ids.iter().map(|(email, id)| (email.as_str(), id.as_str()));
    expect_processed(&http, &gw.addr, ids).await;
    let metrics = metrics(&http, &gw.addr).await;
    assert!(metrics.contains("gateway_redis_up 0"), "{metrics}");
    assert!(
        metrics.contains("gateway_outbox_local_fallback_total 3"),
        "{metrics}"
    );
    let log = gw.log.lock().unwrap().join("\n");
    assert!(!log.contains("pw-s3cret-9f2"), "{log}");
    assert!(log.contains("redis: unreachable at start"), "{log}");
}
