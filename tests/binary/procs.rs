//! The real binary as separate processes talking HTTP on 127.0.0.1: a sandbox
//! (`actionkit-graphql sandbox`) and gateways (`actionkit-graphql serve`) in front of it,
//! the GraphQL requests the tests send them, and the clients that sign through a
//! gateway until it is killed. Shared by the outbox SIGKILL tests and the Redis
//! replica tests.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::helpers::BIN;
use crate::outbox_support::{sign_until, SandboxRest, Signed};

/// The API key (read and write) every gateway started here accepts.
pub(crate) const KEY: &str = "binary-procs-test-key-0123456789";

/// A started binary: its address and every line it wrote; killed on drop.
pub(crate) struct Proc {
    pub child: Child,
    pub addr: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub(crate) fn log_line(&self, needle: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    /// The sandbox's REST, when this process is a sandbox.
    pub(crate) fn rest(&self) -> SandboxRest {
        SandboxRest::new(format!("http://{}", self.addr))
    }
}

/// Starts the binary with `args`; returns once a line containing `marker` names an
/// `http://host:port`. Its output is drained in the background.
pub(crate) async fn start(args: &[&str], envs: &[(&str, String)], marker: &str) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("GATEWAY_REDIS_URL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (tx, log) = (tx.clone(), log.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{args:?} did not log {marker:?}: {:?}", log.lock().unwrap())
            })
            .unwrap_or_else(|| panic!("{args:?} exited: {:?}", log.lock().unwrap()));
        if line.contains(marker) {
            if let Some(i) = line.find("http://") {
                let rest = &line[i + 7..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                let addr = rest[..end].to_owned();
                // Keep draining so that the child never blocks on a full pipe.
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                return Proc { child, addr, log };
            }
        }
    }
}

fn key_hash() -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A sandbox with `users` members, and `extra` arguments (`--max-concurrent`, …).
pub(crate) async fn start_sandbox(users: u32, extra: &[&str]) -> Proc {
    let users = users.to_string();
    let mut args = vec!["sandbox", "--listen", "127.0.0.1:0", "--users", &users];
    args.extend_from_slice(extra);
    start(&args, &[], "ActionKit sandbox on").await
}

/// The data directory of the gateway `name` under `dir`.
pub(crate) fn data_dir(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}-data"))
}

/// A gateway (replica) `name` in front of `sandbox`, in production mode with [`KEY`],
/// with `config` (TOML, written to `dir`), its data in [`data_dir`] (the same on a
/// restart under the same name) and, when given, Redis.
pub(crate) async fn start_gateway(
    sandbox: &str,
    dir: &std::path::Path,
    name: &str,
    config: &str,
    redis: Option<&str>,
) -> Proc {
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).unwrap();
    let data_dir = data_dir(dir, name);
    let mut args = vec![
        "--log-json".to_owned(),
        "--config".to_owned(),
        config_path.to_str().unwrap().to_owned(),
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        data_dir.to_str().unwrap().to_owned(),
    ];
    if let Some(url) = redis {
        args.push("--redis-url".to_owned());
        args.push(url.to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start(
        &args,
        &[
            ("ACTIONKIT_URL", format!("http://{sandbox}")),
            ("ACTIONKIT_USERNAME", "sandbox".into()),
            ("ACTIONKIT_PASSWORD", "sandbox".into()),
            ("GATEWAY_API_KEYS", format!("ops:read+write:{}", key_hash())),
            ("GATEWAY_MODE", "production".into()),
        ],
        "gateway listening",
    )
    .await
}

/// POSTs `query` with `vars` to the gateway with [`KEY`]: the status and the body
/// (`null` when it is not JSON).
pub(crate) async fn graphql(
    http: &reqwest::Client,
    gateway: &str,
    query: &str,
    vars: Value,
) -> (u16, Value) {
    let resp = http
        .post(format!("http://{gateway}/graphql"))
        .bearer_auth(KEY)
        .json(&json!({"query": query, "variables": vars}))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GETs `path` from the gateway.
async fn get(http: &reqwest::Client, gateway: &str, path: &str) -> reqwest::Response {
    http.get(format!("http://{gateway}{path}"))
        .send()
        .await
        .unwrap()
}

/// The gateway's `/metrics` text.
pub(crate) async fn metrics(http: &reqwest::Client, gateway: &str) -> String {
    get(http, gateway, "/metrics").await.text().await.unwrap()
}

/// The gateway's `/readyz` answer (`null` when it is not JSON).
pub(crate) async fn readyz(http: &reqwest::Client, gateway: &str) -> Value {
    get(http, gateway, "/readyz")
        .await
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// Asserts that the gateway answers `PROCESSED` for each `(what, submission id)`.
pub(crate) async fn expect_processed<'a>(
    http: &reqwest::Client,
    gateway: &str,
    ids: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let query = "query($id: ID!) { submission(id: $id) { status } }";
    for (what, id) in ids {
        let (_, body) = graphql(http, gateway, query, json!({"id": id})).await;
        assert_eq!(
            body["data"]["submission"]["status"], "PROCESSED",
            "{what}: {body}"
        );
    }
}

/// What the signing clients got: the status and submission id per accepted email, and
/// the emails sent without an answer.
pub(crate) struct Accepted {
    pub by_email: HashMap<String, (String, String)>,
    pub unanswered: Vec<String>,
}

impl Accepted {
    /// How many were answered `QUEUED`.
    pub(crate) fn queued(&self) -> usize {
        self.by_email
            .values()
            .filter(|(s, _)| s == "QUEUED")
            .count()
    }

    /// How many accepted ones the sandbox does not have yet; fails the test when it has
    /// them all (then a kill just now proves nothing).
    pub(crate) async fn not_yet_delivered(&self, rest: &SandboxRest, page_id: u64) -> usize {
        let delivered = rest.actions_per_email(page_id).await;
        let missing = self
            .by_email
            .keys()
            .filter(|e| !delivered.contains_key(*e))
            .count();
        assert!(
            missing > 0,
            "everything was delivered before the kill: the test proves nothing"
        );
        missing
    }

    /// Waits until each accepted submission is in the sandbox exactly once (see
    /// [`SandboxRest::expect_each_once`]).
    pub(crate) async fn expect_each_once(&self, rest: &SandboxRest, page_id: u64, prefix: &str) {
        let emails: Vec<&String> = self.by_email.keys().collect();
        rest.expect_each_once(page_id, prefix, &emails, &self.unanswered)
            .await;
    }

    /// Asserts that `gateway` answers `PROCESSED` for every accepted submission.
    pub(crate) async fn expect_processed(&self, http: &reqwest::Client, gateway: &str) {
        let ids = self
            .by_email
            .iter()
            .map(|(email, (_, id))| (email.as_str(), id.as_str()));
        expect_processed(http, gateway, ids).await;
    }
}

/// Four clients signing `save-the-bees` through one gateway (emails
/// `<prefix>.c<client>.n<N>@example.org`), each one every `pause`, until stopped.
pub(crate) struct Signers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Signed>>,
}

impl Signers {
    pub(crate) fn start(
        http: &reqwest::Client,
        gateway: &str,
        prefix: &str,
        pause: Duration,
    ) -> Signers {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..4)
            .map(|client| {
                tokio::spawn(sign_until(
                    http.clone(),
                    gateway.to_owned(),
                    KEY,
                    format!("{prefix}.c{client}"),
                    pause,
                    stop.clone(),
                ))
            })
            .collect();
        Signers { stop, tasks }
    }

    /// Stops the clients (each also stops at its first request without an answer) and
    /// returns what they sent.
    pub(crate) async fn stop(self) -> Accepted {
        self.stop.store(true, Ordering::Release);
        let mut accepted = Accepted {
            by_email: HashMap::new(),
            unanswered: Vec::new(),
        };
        for task in self.tasks {
            let (answered, unanswered) = task.await.unwrap();
            for (email, status, id) in answered {
                accepted.by_email.insert(email, (status, id));
            }
            accepted.unanswered.extend(unanswered);
        }
        accepted
    }
}
