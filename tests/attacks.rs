//! The attacks of issue 12 ("what an attacker found in a day"), each reproduced
//! against the real binary (`serve --sandbox`, production mode where keys matter) and
//! each asserting the refusal and how long it took. docs/security.md ("Attacks and
//! defences") lists them with their defences.
//!
//! The tests take turns (one lock): their timings are the point, and a 2-CPU machine
//! running two of them at once would measure the machine, not the gateway. Each one
//! is bounded (a few seconds, fixed loops, loopback only) and prints its measurements
//! (`cargo test --test attacks -- --nocapture`).

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionkit_graphql::http::auth::hash_key;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The binary with a clean environment and a data directory of its own (shared with
/// the `binary` tests; this file uses `command` and `scratch_of` only).
#[path = "binary/helpers.rs"]
#[allow(dead_code)]
mod binary_helpers;
use binary_helpers::BIN;

const READ_KEY: &str = "hardening-read-key-0123456789";
const WRITE_KEY: &str = "hardening-write-key-0123456789";
const SELF_KEY: &str = "hardening-self-key-0123456789";
const ALL_KEY: &str = "hardening-all-key-0123456789";
const VICTIM_KEY: &str = "hardening-victim-key-0123456789";

/// Runs one test alone, on its own multi-threaded runtime.
fn serial(test: impl Future<Output = ()>) {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

/// The gateway binary, killed when dropped.
struct Gateway {
    child: std::process::Child,
    /// `127.0.0.1:port`.
    addr: String,
    /// The embedded sandbox's `127.0.0.1:port`.
    sandbox: String,
    log: PathBuf,
    _config: Option<PathBuf>,
    /// Its data directory (see [`binary_helpers::command`]).
    scratch: Option<PathBuf>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        if let Some(c) = &self._config {
            let _ = std::fs::remove_file(c);
        }
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn unique(name: &str, ext: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "akg-hardening-{}-{name}-{n}.{ext}",
        std::process::id()
    ))
}

/// `http://127.0.0.1:<port>` after `marker` in the log, once it is there.
fn address_after(log: &str, marker: &str) -> Option<String> {
    let rest = &log[log.find(marker)? + marker.len()..];
    let rest = rest.strip_prefix("http://")?;
    let end = rest.find(|c: char| c != '.' && c != ':' && !c.is_ascii_digit())?;
    Some(rest[..end].to_owned())
}

impl Gateway {
    /// `serve --sandbox --listen 127.0.0.1:0 <args>` with `env` and an optional TOML
    /// configuration; returns once it listens.
    fn start(args: &[&str], env: &[(&str, &str)], toml: Option<&str>) -> Gateway {
        let log = unique("log", "txt");
        let config = toml.map(|t| {
            let path = unique("config", "toml");
            std::fs::write(&path, t).unwrap();
            path
        });
        let mut cmd = binary_helpers::command();
        cmd.args([
            "serve",
            "--sandbox",
            "--users",
            "200",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
        if let Some(path) = &config {
            cmd.arg("--config").arg(path);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut gw = Gateway {
            child,
            addr: String::new(),
            sandbox: String::new(),
            log,
            _config: config,
            scratch: binary_helpers::scratch_of(&cmd),
        };
        let started = Instant::now();
        loop {
            let text = gw.log_text();
            if let Some(addr) = address_after(&text, "GraphQL at ") {
                gw.addr = addr;
                gw.sandbox = address_after(&text, "embedded sandbox at ").unwrap_or_default();
                return gw;
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("the gateway exited ({status}):\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the gateway did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// In production mode with the keys of [`api_keys`] and no rate limit, with `args`
    /// besides.
    fn production(args: &[&str]) -> Gateway {
        let keys = api_keys();
        let mut all = vec!["--mode", "production"];
        all.extend_from_slice(args);
        Gateway::start(
            &all,
            &[("GATEWAY_API_KEYS", &keys)],
            Some("[security]\nrate_limit_per_minute = 0\n"),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Resident memory of the gateway process, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Upstream calls the embedded sandbox has answered.
    async fn sandbox_calls(&self) -> u64 {
        let stats: Value = reqwest::get(format!("http://{}/__sandbox/stats", self.sandbox))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["requests"]
            .as_u64()
            .unwrap_or_else(|| panic!("{stats}"))
    }
}

/// The keys of the production gateways below.
fn api_keys() -> String {
    [
        format!("reader:read:{}", hash_key(READ_KEY)),
        format!("sync:write:{}", hash_key(WRITE_KEY)),
        format!("member:self:{}", hash_key(SELF_KEY)),
        format!("ops:read+write:{}", hash_key(ALL_KEY)),
        format!("victim:read:{}", hash_key(VICTIM_KEY)),
    ]
    .join(",")
}

/// The AKID of user `id` under the embedded sandbox's default secret.
fn akid(id: u64) -> String {
    let cleartext = format!(".{id}");
    let digest = Sha256::digest(format!("sandbox-akid-secret.{cleartext}").as_bytes());
    let hash = base64::engine::general_purpose::URL_SAFE.encode(digest);
    format!("{cleartext}.{}", &hash[..6])
}

/// POSTs a GraphQL request; returns status, body and the time it took.
async fn post(
    http: &reqwest::Client,
    gw: &Gateway,
    key: Option<&str>,
    body: Value,
) -> (u16, Value, Duration) {
    let mut req = http.post(gw.url("/graphql")).json(&body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
        if key == SELF_KEY {
            req = req.header("x-akid", akid(1));
        }
    }
    let started = Instant::now();
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let took = started.elapsed();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        took,
    )
}

/// One `/healthz` from a new connection, as a liveness probe makes it: the time to
/// the complete answer.
async fn healthz(addr: &str) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "/healthz: {text:?}");
    took
}

/// Probes `/healthz` every 50 ms until `stop` is set; returns every latency.
fn probe_healthz(addr: String, stop: Arc<AtomicUsize>) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while stop.load(Ordering::SeqCst) == 0 {
            seen.push(healthz(&addr).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    })
}

fn worst(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

/// `{ ...F0 }` with `F<i> { ...F<i+1> ...F<i+1> }` down to `F<levels> { __typename }`.
fn fan_out(levels: usize) -> String {
    let mut q = String::from("{ ...F0 }\n");
    for i in 0..levels {
        q += &format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1);
    }
    q += &format!("fragment F{levels} on Query {{ __typename }}\n");
    q
}

/// Attack 1: the 1 KB fragment fan-out, from every kind of key, refused in
/// milliseconds before any expansion; memory unchanged; `/healthz` unaffected.
#[test]
fn fragment_fan_out_is_refused_in_milliseconds_for_every_key() {
    serial(async {
        let gw = Gateway::production(&[]);
        let http = reqwest::Client::new();
        let doc = fan_out(24);
        assert!(doc.len() < 1024, "{} bytes", doc.len());
        // Warm up: connections, allocator, the first request's one-time work.
        for key in [READ_KEY, WRITE_KEY, SELF_KEY, ALL_KEY] {
            let (status, _, _) =
                post(&http, &gw, Some(key), json!({"query": "{ __typename }"})).await;
            assert!(status == 200, "{key}: {status}");
            post(&http, &gw, Some(key), json!({"query": doc})).await;
        }
        let calls_before = gw.sandbox_calls().await;
        let rss_before = gw.rss_kib();
        let mut slowest = Duration::ZERO;
        for round in 0..10 {
            for key in [READ_KEY, WRITE_KEY, SELF_KEY, ALL_KEY] {
                let levels = 24 + round % 7; // up to 30 levels: 2^30 fields expanded
                let (status, body, took) =
                    post(&http, &gw, Some(key), json!({"query": fan_out(levels)})).await;
                assert_eq!(status, 200, "{body}");
                let err = &body["errors"][0];
                assert_eq!(err["extensions"]["code"], "BAD_USER_INPUT", "{body}");
                assert_eq!(err["extensions"]["limit"], "fields", "{body}");
                assert_eq!(err["message"], "the operation exceeds the fields limit");
                assert!(body.get("data").is_none(), "{body}");
                assert!(err.get("locations").is_none(), "{body}");
                assert!(
                    took < Duration::from_millis(50),
                    "{key}: refused in {took:?}"
                );
                slowest = slowest.max(took);
            }
        }
        // The largest fan-out the limits admit (7 levels, 255 spreads, 896 fields) is
        // answered, and quickly: what passes the check is cheap to run.
        let mut admitted = String::from("{ ...F0 }\n");
        for i in 0..7 {
            admitted += &format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1);
        }
        admitted += &format!(
            "fragment F7 on Query {{ {} }}\n",
            ["__typename"; 7].join(" ")
        );
        let (status, body, admitted_took) =
            post(&http, &gw, Some(READ_KEY), json!({"query": admitted})).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["__typename"], "Query", "{body}");
        assert!(
            admitted_took < Duration::from_millis(200),
            "{admitted_took:?}"
        );
        // Two at a time (the report's "two such requests block /healthz for 25 s"),
        // ten times over, and /healthz meanwhile.
        let stop = Arc::new(AtomicUsize::new(0));
        let probes = probe_healthz(gw.addr.clone(), stop.clone());
        let mut burst_worst = Duration::ZERO;
        for _ in 0..10 {
            let burst: Vec<_> = (0..2)
                .map(|_| {
                    let http = http.clone();
                    let url = gw.url("/graphql");
                    let doc = fan_out(30);
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let r = http
                            .post(url)
                            .bearer_auth(WRITE_KEY)
                            .json(&json!({"query": doc}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200);
                        started.elapsed()
                    })
                })
                .collect();
            for b in burst {
                burst_worst = burst_worst.max(b.await.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        stop.store(1, Ordering::SeqCst);
        let healthz_times = probes.await.unwrap();
        let rss_after = gw.rss_kib();
        let calls_after = gw.sandbox_calls().await;
        println!(
            "fragment fan-out: slowest refusal {slowest:?} (40 sequential), two at once within \
             {burst_worst:?}; the largest admitted fan-out answered in {admitted_took:?}; \
             /healthz worst {:?} over {} probes; RSS {rss_before} KiB -> {rss_after} KiB",
            worst(&healthz_times),
            healthz_times.len()
        );
        assert!(burst_worst < Duration::from_millis(50), "{burst_worst:?}");
        assert!(worst(&healthz_times) < Duration::from_millis(100));
        assert!(
            rss_after < rss_before + 4 * 1024,
            "RSS grew from {rss_before} KiB to {rss_after} KiB"
        );
        assert_eq!(
            calls_after, calls_before,
            "a refused document reached ActionKit"
        );
    });
}

/// Attack 2: garbage methods and paths, without a key, cannot grow `/metrics` (nor
/// the memory that holds its series).
#[test]
fn garbage_methods_and_paths_leave_metrics_unchanged() {
    serial(async {
        let gw = Gateway::start(&[], &[], None);
        let garbage = |i: usize, len: usize| -> String {
            // Token characters only: what an HTTP parser passes as an extension method.
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_|~0123456789";
            (0..len)
                .map(|j| alphabet[(i * 7919 + j * 104_729) % alphabet.len()] as char)
                .collect()
        };
        // Path characters only.
        let path = |i: usize, len: usize| -> String {
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789-._~";
            (0..len)
                .map(|j| alphabet[(i * 31 + j * 7) % alphabet.len()] as char)
                .collect()
        };
        let send = |method: String, path: String| {
            let addr = gw.addr.clone();
            async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                let req =
                    format!("{method} {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).await.unwrap();
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer).await;
            }
        };
        let metrics = || async {
            reqwest::get(gw.url("/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        // Every kind of request once, so that its series exist before the snapshot.
        for i in 0..3 {
            send(garbage(i, 64), "/".into()).await;
            send("GET".into(), format!("/{}", path(i, 64))).await;
            send(garbage(i, 64), "/graphql".into()).await;
            send(garbage(i, 64), format!("/x{i}")).await;
            healthz(&gw.addr).await;
            metrics().await;
        }
        let series = |text: &str| -> std::collections::BTreeSet<String> {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_owned()))
                .collect()
        };
        let before = metrics().await;
        let rss_before = gw.rss_kib();
        let stop = Arc::new(AtomicUsize::new(0));
        let probes = probe_healthz(gw.addr.clone(), stop.clone());
        for round in 0..10 {
            let batch: Vec<_> = (0..30)
                .map(|j| {
                    let i = round * 30 + j;
                    let (method, path) = match i % 3 {
                        0 => (garbage(i, 16 * 1024), "/".to_owned()),
                        1 => ("GET".to_owned(), format!("/{}", path(i, 2048))),
                        _ => (garbage(i, 16 * 1024), format!("/x{}", i)),
                    };
                    tokio::spawn(send(method, path))
                })
                .collect();
            for b in batch {
                b.await.unwrap();
            }
        }
        stop.store(1, Ordering::SeqCst);
        let healthz_times = probes.await.unwrap();
        let after = metrics().await;
        let rss_after = gw.rss_kib();
        println!(
            "method/path flood: 300 requests (16 KiB methods, 2 KiB paths); /metrics {} -> {} \
             bytes; RSS {rss_before} KiB -> {rss_after} KiB; /healthz worst {:?} over {} probes",
            before.len(),
            after.len(),
            worst(&healthz_times),
            healthz_times.len()
        );
        let (a, b) = (series(&before), series(&after));
        let new: Vec<_> = b.difference(&a).collect();
        assert!(new.is_empty(), "new series appeared: {new:?}");
        assert_eq!(a.len(), b.len());
        assert!(after.contains("method=\"other\""), "{after}");
        // Only counter values changed: a few more digits at most.
        assert!(
            after.len().abs_diff(before.len()) < 256,
            "/metrics went from {} to {} bytes",
            before.len(),
            after.len()
        );
        assert!(
            rss_after < rss_before + 8 * 1024,
            "{rss_before} -> {rss_after} KiB"
        );
        assert!(worst(&healthz_times) < Duration::from_millis(100));
    });
}

/// Attack 3: clients that drip headers, connect and say nothing, sit idle, or drip a
/// body, without a key: cut at the configured times, pushed out at the connection cap,
/// and `/healthz` keeps answering under 100 ms throughout.
#[test]
fn slow_and_half_open_clients_are_cut_and_healthz_keeps_answering() {
    serial(async {
        let gw = Gateway::start(
            &["--max-connections", "64"],
            &[
                ("GATEWAY_HEADER_READ_TIMEOUT_MS", "1000"),
                ("GATEWAY_IDLE_TIMEOUT_MS", "1500"),
                ("GATEWAY_BODY_READ_TIMEOUT_MS", "1000"),
            ],
            None,
        );
        let started = Instant::now();
        let stop = Arc::new(AtomicUsize::new(0));
        let probes = probe_healthz(gw.addr.clone(), stop.clone());
        // 20 clients dripping one header byte every 100 ms; each notes when it is cut.
        let drippers: Vec<_> = (0..20)
            .map(|_| {
                let addr = gw.addr.clone();
                tokio::spawn(async move {
                    let mut s = TcpStream::connect(&addr).await.unwrap();
                    let opened = Instant::now();
                    let header = b"GET /healthz HTTP/1.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                    for byte in header.iter().cycle().take(200) {
                        if s.write_all(&[*byte]).await.is_err() {
                            return opened.elapsed();
                        }
                        let mut probe = [0u8; 64];
                        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut probe)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => return opened.elapsed(),
                            _ => {}
                        }
                    }
                    opened.elapsed()
                })
            })
            .collect();
        // An idle keep-alive connection after one request.
        let mut idle = TcpStream::connect(&gw.addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let idle_from = Instant::now();
        let idle_closed =
            match tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => idle_from.elapsed(),
                other => panic!("the idle connection is still open: {other:?}"),
            };
        let mut cut = Vec::new();
        for d in drippers {
            cut.push(d.await.unwrap());
        }
        // 300 half-open connections (connected, nothing sent), past the cap of 64:
        // the oldest make room for the newest, the rest time out.
        let mut half_open = Vec::new();
        for i in 0..300 {
            half_open.push(TcpStream::connect(&gw.addr).await.unwrap());
            if i % 50 == 49 {
                // In waves, as a client opening them as fast as it can would, rather
                // than one burst that only measures the listener's backlog.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let mut still_open = 0;
        for mut s in half_open {
            let mut b = [0u8; 16];
            if let Err(_) | Ok(Ok(1..)) =
                tokio::time::timeout(Duration::from_millis(10), s.read(&mut b)).await
            {
                still_open += 1;
            }
        }
        // A body dripped past the body timeout: 408, as a GraphQL error.
        let mut slow_body = TcpStream::connect(&gw.addr).await.unwrap();
        slow_body
            .write_all(b"POST /graphql HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"query\":")
            .await
            .unwrap();
        let body_from = Instant::now();
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), slow_body.read_to_end(&mut answer)).await;
        let body_cut = body_from.elapsed();
        stop.store(1, Ordering::SeqCst);
        let healthz_times = probes.await.unwrap();
        let metrics = reqwest::get(gw.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        println!(
            "slow clients: header drippers cut after {:?}..{:?}; idle keep-alive closed after \
             {idle_closed:?}; 300 half-open, {still_open} still open; slow body answered after \
             {body_cut:?}; /healthz worst {:?} over {} probes in {:?}",
            cut.iter().min().unwrap(),
            cut.iter().max().unwrap(),
            worst(&healthz_times),
            healthz_times.len(),
            started.elapsed()
        );
        for c in &cut {
            assert!(
                *c >= Duration::from_millis(700) && *c < Duration::from_millis(2500),
                "a header dripper was cut after {c:?} (timeout 1 s)"
            );
        }
        assert!(
            idle_closed >= Duration::from_millis(1200) && idle_closed < Duration::from_millis(3000),
            "idle connection closed after {idle_closed:?} (timeout 1.5 s)"
        );
        assert_eq!(still_open, 0);
        assert!(metrics.contains("reason=\"evicted\""), "{metrics}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"BAD_USER_INPUT\""), "{answer}");
        assert!(body_cut < Duration::from_millis(2500), "{body_cut:?}");
        assert!(healthz_times.len() >= 10);
        assert!(worst(&healthz_times) < Duration::from_millis(100));
    });
}

/// At the cap with every connection busy, a new one is refused with a clear answer.
#[test]
fn the_connection_cap_refuses_clearly_when_every_connection_is_busy() {
    serial(async {
        let gw = Gateway::start(
            &["--max-connections", "8", "--body-read-timeout-ms", "3000"],
            &[],
            None,
        );
        // Eight requests whose bodies never finish: busy until the body timeout.
        let mut busy = Vec::new();
        for _ in 0..8 {
            let mut s = TcpStream::connect(&gw.addr).await.unwrap();
            s.write_all(b"POST /graphql HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
                .await
                .unwrap();
            busy.push(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let mut s = TcpStream::connect(&gw.addr).await.unwrap();
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer)).await;
        let took = started.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        println!(
            "connection cap: refused in {took:?}: {}",
            answer.lines().next().unwrap_or("")
        );
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("\"code\":\"OVERLOADED\""), "{answer}");
        assert!(took < Duration::from_millis(100));
        drop(busy);
    });
}

/// Attack 4: a newline and ANSI escapes in `operationName` cannot forge a log line.
#[test]
fn operation_names_cannot_forge_log_lines() {
    serial(async {
        let gw = Gateway::start(&[], &[("RUST_LOG", "info")], None);
        let http = reqwest::Client::new();
        let forged = "Nope\n2099-01-01T00:00:00.000000Z  INFO actionkit_graphql: FORGED admin \
                      logged in\u{1b}[2K\u{1b}[31m\r";
        let (status, body, _) = post(
            &http,
            &gw,
            None,
            json!({"query": "query Real { __typename }", "operationName": forged}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["errors"].is_array(), "{body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = gw.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
        println!("log forging: the operation's line: {lines:?}");
        assert!(
            !lines.is_empty(),
            "the failed operation was not logged:\n{log}"
        );
        for line in &lines {
            assert!(
                line.contains("graphql operation"),
                "a forged line: {line:?}"
            );
            assert!(!line.starts_with("2099"), "a forged line: {line:?}");
        }
        assert!(
            !log.contains('\u{1b}'),
            "a raw escape reached the log: {log:?}"
        );
        assert!(!log.contains('\r'), "a raw carriage return reached the log");
        assert!(log.contains("Nope\\n2099"), "{log}");
    });
}

/// The test key pair (P-256) of the JWT test: a private key for the test to sign with
/// and its public half as the JWKS the gateway fetches.
const JWT_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcJseMZMbFVJpMnX3
b3WABuXxf0Ze9zM1XtzLVUNMQLyhRANCAATfYnI7itKsIaG/lVj4QLrVEnfT7kxm
SRmEFhJtrcWOUKT2d0SJtET9vEDSOP6a62lXrSUx4Xs+gM+sqjhJJhZy
-----END PRIVATE KEY-----
";
const JWT_PUBLIC_DER_B64: &str =
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE32JyO4rSrCGhv5VY+EC61RJ30+5MZkkZhBYSba3FjlCk9ndEibRE/bxA0jj+mutpV60lMeF7PoDPrKo4SSYWcg==";

fn jwks() -> String {
    let der = base64::engine::general_purpose::STANDARD
        .decode(JWT_PUBLIC_DER_B64)
        .unwrap();
    let (x, y) = der[der.len() - 64..].split_at(32);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
        "kid": "k1", "x": b64.encode(x), "y": b64.encode(y)}]})
    .to_string()
}

fn jwt(kid: &str, extra: Value) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({"iss": "https://idp.example.org/", "aud": "actionkit-graphql",
        "sub": "staff-7", "exp": now + 300, "scope": "read"});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(JWT_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Attack 5: a token naming an unknown key id while the JWKS is slow does not hold up
/// tokens with known keys; one fetch serves every unknown id; `nbf` and `sub` hold.
#[test]
fn a_slow_jwks_does_not_hold_up_valid_tokens() {
    serial(async {
        let delay = Arc::new(AtomicU64::new(0));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_addr = listener.local_addr().unwrap();
        {
            let (delay, fetches) = (delay.clone(), fetches.clone());
            tokio::spawn(async move {
                while let Ok((mut sock, _)) = listener.accept().await {
                    let wait = delay.load(Ordering::SeqCst);
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = sock.read(&mut buf).await;
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        let body = jwks();
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    });
                }
            });
        }
        let toml = format!(
            "[security]\nrate_limit_per_minute = 0\n[security.jwt]\nissuer = \"https://idp.example.org/\"\n\
             audience = \"actionkit-graphql\"\njwks_url = \"http://{jwks_addr}/jwks\"\n\
             algorithms = [\"ES256\"]\njwks_min_refresh_secs = 1\n"
        );
        let gw = Gateway::start(&["--mode", "production"], &[], Some(&toml));
        let http = reqwest::Client::new();
        let query = json!({"query": "{ __typename }"});
        let (status, body, _) = post(&http, &gw, Some(&jwt("k1", json!({}))), query.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // The JWKS becomes slow, a refresh is due, and tokens with new key ids arrive.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        delay.store(3000, Ordering::SeqCst);
        let unknown: Vec<_> = (0..5)
            .map(|i| {
                let http = http.clone();
                let url = gw.url("/graphql");
                let token = jwt(&format!("rotated-{i}"), json!({}));
                tokio::spawn(async move {
                    let r = http
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({"query": "{ __typename }"}))
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut valid_times = Vec::new();
        for _ in 0..5 {
            let (status, body, took) =
                post(&http, &gw, Some(&jwt("k1", json!({}))), query.clone()).await;
            assert_eq!(status, 200, "{body}");
            valid_times.push(took);
        }
        for u in unknown {
            assert_eq!(u.await.unwrap(), 401);
        }
        let fetched = fetches.load(Ordering::SeqCst);
        // The negative cache: the same unknown id again, refused at once.
        let (status, _, again) = post(
            &http,
            &gw,
            Some(&jwt("rotated-1", json!({}))),
            query.clone(),
        )
        .await;
        assert_eq!(status, 401);
        // `nbf` in the future, no `sub`.
        let (nbf_status, _, _) = post(
            &http,
            &gw,
            Some(&jwt("k1", json!({"nbf": 4_000_000_000u64}))),
            query.clone(),
        )
        .await;
        let (sub_status, _, _) = post(
            &http,
            &gw,
            Some(&jwt("k1", json!({"sub": null}))),
            query.clone(),
        )
        .await;
        println!(
            "JWKS: valid tokens during a 3 s refresh answered in at most {:?}; {} fetches for 5 \
             unknown key ids; a known-unknown id refused in {again:?}",
            worst(&valid_times),
            fetched - 1
        );
        assert!(
            worst(&valid_times) < Duration::from_millis(100),
            "{valid_times:?}"
        );
        assert_eq!(fetched, 2, "one fetch for all the unknown key ids");
        assert!(again < Duration::from_millis(50), "{again:?}");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert_eq!((nbf_status, sub_status), (401, 401));
    });
}

/// `users(ids: [..20 ids]) { actions(first: 1) { totalCount } }` under aliases.
fn amplifier(aliases: usize, first_id: usize) -> String {
    let fields: Vec<String> = (0..aliases)
        .map(|a| {
            let ids: Vec<String> = (0..20)
                .map(|i| format!("\"{}\"", first_id + a * 20 + i))
                .collect();
            format!(
                "u{a}: users(ids: [{}]) {{ actions(first: 1) {{ totalCount }} }}",
                ids.join(",")
            )
        })
        .collect();
    format!("{{ {} }}", fields.join(" "))
}

/// Attack 6: the report's amplifying request is refused before any call; requests
/// just under the budget, looped by eight clients of one key, leave another key's
/// ordinary query close to its usual time (fair shares of the upstream slots; with
/// first-come slots, the victim's median goes from ~30 ms to several hundred).
#[test]
fn amplification_is_refused_and_one_key_cannot_starve_another() {
    serial(async {
        let gw = Gateway::production(&["--filters", "strict", "--latency-ms", "20"]);
        let http = reqwest::Client::new();
        // The report's request: 15 aliases × 20 ids × actions(first: 1).
        let report = amplifier(15, 1);
        let calls_before = gw.sandbox_calls().await;
        let (status, body, took) = post(&http, &gw, Some(READ_KEY), json!({"query": report})).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert_eq!(
            body["errors"][0]["extensions"]["limit"], "upstream calls",
            "{body}"
        );
        assert!(took < Duration::from_millis(50), "{took:?}");
        assert_eq!(gw.sandbox_calls().await, calls_before);

        let victim_query = json!({"query": "{ user(id: \"150\") { firstName actions(first: 5) { nodes { id } } } }"});
        let victim = |n: usize| {
            let http = http.clone();
            let url = gw.url("/graphql");
            let body = victim_query.clone();
            async move {
                let mut times = Vec::new();
                for _ in 0..n {
                    let started = Instant::now();
                    let r = http
                        .post(&url)
                        .bearer_auth(VICTIM_KEY)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let v: Value = r.json().await.unwrap();
                    assert!(v.get("errors").is_none(), "{v}");
                    times.push(started.elapsed());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                times.sort();
                times
            }
        };
        let alone = victim(7).await;
        // Eight clients of one key loop on the largest request the budget admits in
        // strict mode (5 aliases × (20 user reads + 20 windows) = 200 calls).
        let stop = Arc::new(AtomicUsize::new(0));
        let attackers: Vec<_> = (0..8)
            .map(|c| {
                let http = http.clone();
                let url = gw.url("/graphql");
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut sent = 0;
                    while stop.load(Ordering::SeqCst) == 0 && sent < 50 {
                        let q = amplifier(5, 1 + ((c + sent) % 5) * 20);
                        let r = http
                            .post(&url)
                            .bearer_auth(READ_KEY)
                            .json(&json!({"query": q}))
                            .send()
                            .await
                            .unwrap();
                        let v: Value = r.json().await.unwrap();
                        assert!(
                            v.get("data").is_some(),
                            "the attacker's request was refused: {v}"
                        );
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let attacked = victim(10).await;
        stop.store(1, Ordering::SeqCst);
        let mut sent = 0;
        for a in attackers {
            sent += a.await.unwrap();
        }
        let median = |t: &[Duration]| t[t.len() / 2];
        println!(
            "amplification: the report's request refused in {took:?}; victim median {:?} alone, \
             {:?} (worst {:?}) while 8 clients of another key sent {sent} requests of ~200 calls",
            median(&alone),
            median(&attacked),
            worst(&attacked)
        );
        assert!(
            median(&attacked) < median(&alone) + Duration::from_millis(100),
            "the victim went from {:?} to {:?}",
            median(&alone),
            median(&attacked)
        );
    });
}

/// Item 7: what a `write`-only key may do, the 413 as a GraphQL error, scope errors
/// without `locations`, and the sandbox's help naming the gateway's flag.
#[test]
fn small_items_hold() {
    serial(async {
        let gw = Gateway::production(&[]);
        let http = reqwest::Client::new();
        // A write-only key writes, sees the action it wrote, not its member.
        let action = post(
            &http,
            &gw,
            Some(READ_KEY),
            json!({"query": "{ user(id: \"1\") { actions(first: 1) { nodes { id } } } }"}),
        )
        .await
        .1;
        let id = action["data"]["user"]["actions"]["nodes"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let set = format!(
            r#"mutation {{ setActionCustomFields(actionId: "{id}", fields: [{{name: "hardening", value: "1"}}]) {{ id customField(name: "hardening") {{ value }} }} }}"#
        );
        let (_, body, _) = post(&http, &gw, Some(WRITE_KEY), json!({"query": set})).await;
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(
            body["data"]["setActionCustomFields"]["customField"]["value"],
            "1"
        );
        let peek = format!(
            r#"mutation {{ clearActionCustomFields(actionId: "{id}", names: ["hardening"]) {{ id user {{ email }} }} }}"#
        );
        let (_, body, _) = post(&http, &gw, Some(WRITE_KEY), json!({"query": peek})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{body}"
        );
        // ...and cannot read.
        let (_, body, _) = post(
            &http,
            &gw,
            Some(WRITE_KEY),
            json!({"query": "{ user(id: \"5\") { email } }"}),
        )
        .await;
        let err = &body["errors"][0];
        assert_eq!(err["extensions"]["code"], "FORBIDDEN", "{body}");
        assert!(
            err.get("locations").is_none(),
            "scope errors have no location: {body}"
        );
        // A body over the limit: 413 with a GraphQL error body.
        let big = format!(
            r#"{{"query":"{{ __typename }}","pad":"{}"}}"#,
            "x".repeat(300 * 1024)
        );
        let resp = http
            .post(gw.url("/graphql"))
            .bearer_auth(READ_KEY)
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/graphql-response+json"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        // The sandbox's help names the gateway's flag as `serve` spells it.
        let help = Command::new(BIN)
            .args(["sandbox", "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(help.contains("--actionkit-akid-secret"), "{help}");
        assert!(!help.contains("`--akid-secret`"), "{help}");
    });
}
