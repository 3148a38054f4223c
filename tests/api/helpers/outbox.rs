//! What the outbox tests share: a sandbox over HTTP, a client for it, submissions,
//! and counting a member's actions through the sandbox's REST.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actionkit_graphql::actionkit::{ActionSubmission, Client, ClientConfig};
use actionkit_graphql::outbox::{Outbox, OutboxSettings, SubmissionRecord, SubmissionState};
use actionkit_graphql::sandbox::{self, SandboxConfig, SandboxHandle};
use secrecy::SecretString;
use serde_json::Value;

/// A directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "outbox-test-{tag}-{}-{}",
            std::process::id(),
            actionkit_graphql::outbox::new_id()
        ));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Counts through the sandbox's REST, as an operator would.
#[derive(Clone)]
pub(crate) struct SandboxRest {
    pub base: String,
    pub http: reqwest::Client,
}

impl SandboxRest {
    pub(crate) fn new(base: impl Into<String>) -> SandboxRest {
        SandboxRest {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// GET with the sandbox's credentials, retried while it answers 429 (it may be at
    /// its `--max-concurrent`); any other status than 200 fails the test.
    pub(crate) async fn get(&self, path: &str) -> Value {
        for _ in 0..500 {
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .basic_auth("sandbox", Some("sandbox"))
                .send()
                .await
                .unwrap();
            if r.status() == 429 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            assert_eq!(r.status(), 200, "GET {path}");
            return r.json().await.unwrap();
        }
        panic!("the sandbox kept answering 429 to GET {path}");
    }

    /// Actions of the member with this email (0 when there is no such member).
    pub(crate) async fn actions_of(&self, email: &str) -> u64 {
        let email: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
        let users = self.get(&format!("/rest/v1/user/?email={email}")).await;
        let Some(id) = users["objects"][0]["id"].as_u64() else {
            return 0;
        };
        self.total(&format!("/rest/v1/action/?user={id}&_limit=1"))
            .await
    }

    /// Actions per email on the page, in a few list calls (the sandbox is slow on
    /// purpose): the page's actions, then their members.
    pub(crate) async fn actions_per_email(&self, page_id: u64) -> HashMap<String, u64> {
        let mut per_user: HashMap<u64, u64> = HashMap::new();
        let mut offset = 0;
        loop {
            let v = self
                .get(&format!(
                    "/rest/v1/action/?page={page_id}&_limit=100&_offset={offset}"
                ))
                .await;
            for a in v["objects"].as_array().unwrap() {
                let uri = a["user"].as_str().unwrap();
                let id: u64 = uri
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                *per_user.entry(id).or_default() += 1;
            }
            if v["meta"]["next"].is_null() {
                break;
            }
            offset += 100;
        }
        let ids: Vec<u64> = per_user.keys().copied().collect();
        let mut out = HashMap::new();
        for chunk in ids.chunks(100) {
            let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
            let v = self
                .get(&format!(
                    "/rest/v1/user/?id__in={}&_limit=100",
                    list.join(",")
                ))
                .await;
            for u in v["objects"].as_array().unwrap() {
                let id = u["id"].as_u64().unwrap();
                out.insert(u["email"].as_str().unwrap().to_owned(), per_user[&id]);
            }
        }
        out
    }

    /// Waits (two minutes at most) until every `accepted` email has an action on the
    /// page, failing as soon as any email under `prefix` has two; then, past the settle
    /// time of whatever was in flight, checks that each accepted one has exactly one
    /// and each `unanswered` one (sent, never answered) at most one.
    pub(crate) async fn expect_each_once(
        &self,
        page_id: u64,
        prefix: &str,
        accepted: &[&String],
        unanswered: &[String],
    ) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let counts = self.actions_per_email(page_id).await;
            for (email, n) in counts.iter().filter(|(e, _)| e.starts_with(prefix)) {
                assert!(*n <= 1, "{email}: {n} actions");
            }
            let pending = accepted
                .iter()
                .filter(|e| !counts.contains_key(**e))
                .count();
            if pending == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{pending} accepted submissions never reached the sandbox"
            );
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let counts = self.actions_per_email(page_id).await;
        for email in accepted {
            assert_eq!(counts.get(*email), Some(&1), "{email}");
        }
        for email in unanswered {
            assert!(counts.get(email).copied().unwrap_or(0) <= 1, "{email}");
        }
    }

    /// `meta.total_count` of a list.
    pub(crate) async fn total(&self, path: &str) -> u64 {
        self.get(path).await["meta"]["total_count"]
            .as_u64()
            .unwrap()
    }

    /// The id of the page named `name`.
    pub(crate) async fn page_id(&self, name: &str) -> u64 {
        self.get(&format!("/rest/v1/page/?name={name}")).await["objects"][0]["id"]
            .as_u64()
            .unwrap()
    }

    pub(crate) async fn stats(&self) -> Value {
        self.get("/__sandbox/stats").await
    }

    /// Starts the sandbox's counting again from zero.
    pub(crate) async fn reset_stats(&self) {
        self.control("/__sandbox/stats/reset", None).await;
    }

    pub(crate) async fn set_faults(&self, faults: Value) {
        self.control("/__sandbox/faults", Some(&faults)).await;
    }

    /// POSTs to one of the sandbox's control endpoints (no auth), with `body` as JSON
    /// when given; any status but a success fails the test.
    async fn control(&self, path: &str, body: Option<&Value>) {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(body);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
    }
}

pub(crate) struct Env {
    pub sandbox: SandboxHandle,
    pub rest: SandboxRest,
    pub client_config: ClientConfig,
}

impl Env {
    pub(crate) async fn start(config: SandboxConfig) -> Env {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = sandbox::spawn(config, listener).await.unwrap();
        let mut c = ClientConfig::new(
            sandbox.url().parse().unwrap(),
            "sandbox",
            SecretString::from("sandbox"),
        );
        c.akid_secret = Some(SecretString::from("sandbox-akid-secret"));
        let rest = SandboxRest::new(sandbox.url());
        Env {
            sandbox,
            rest,
            client_config: c,
        }
    }

    pub(crate) async fn client(&self) -> Client {
        probed(self.client_config.clone()).await
    }

    pub(crate) async fn outbox(&self, settings: OutboxSettings) -> Outbox {
        Outbox::open(self.client().await, settings).await.unwrap()
    }

    /// An outbox whose client gives up on an answer after `request_timeout`.
    pub(crate) async fn outbox_with_request_timeout(
        &self,
        request_timeout: Duration,
        settings: OutboxSettings,
    ) -> Outbox {
        let mut cc = self.client_config.clone();
        cc.request_timeout = request_timeout;
        Outbox::open(probed(cc).await, settings).await.unwrap()
    }
}

/// A client with `config`, after its start-up probe.
async fn probed(config: ClientConfig) -> Client {
    let client = Client::new(config).unwrap();
    client.probe().await;
    client
}

/// Settings for tests: short waits, so that retries happen within a test's time.
pub(crate) fn settings(dir: &std::path::Path) -> OutboxSettings {
    let mut s = OutboxSettings::new(dir);
    s.unknown_settle = Duration::from_millis(1500);
    s.max_backoff = Duration::from_millis(500);
    s
}

/// A petition signature with what the demo page requires.
pub(crate) fn signature(email: &str) -> ActionSubmission {
    ActionSubmission {
        page: "save-the-bees".into(),
        email: Some(email.into()),
        first_name: Some("Test".into()),
        last_name: Some("Signer".into()),
        zip: Some("53703".into()),
        country: Some("United States".into()),
        ..ActionSubmission::default()
    }
}

/// Waits until the submission is no longer queued.
pub(crate) async fn settled(outbox: &Outbox, id: &str, within: Duration) -> SubmissionRecord {
    let start = Instant::now();
    loop {
        let r = outbox.status(id).await.unwrap().unwrap();
        if r.state != SubmissionState::Queued {
            return r;
        }
        assert!(
            start.elapsed() < within,
            "still queued after {within:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Signs `save-the-bees` through a gateway's `submitAction` with `key`: `Some((status,
/// submission id))` when it answered (PROCESSED or QUEUED, anything else fails the
/// test), `None` when the request got no answer within 5 s (the gateway was killed).
pub(crate) async fn sign(
    http: &reqwest::Client,
    gateway: &str,
    key: &str,
    email: &str,
) -> Option<(String, String)> {
    const SUBMIT: &str = "mutation($input: SubmitActionInput!) {
  submitAction(input: $input) { status submissionId fieldErrors { field code message } }
}";
    let input = serde_json::json!({
        "page": "save-the-bees",
        "email": email,
        "firstName": "Test",
        "lastName": "Signer",
        "zip": "53703",
        "country": "United States",
    });
    let resp = http
        .post(format!("http://{gateway}/graphql"))
        .bearer_auth(key)
        .json(&serde_json::json!({"query": SUBMIT, "variables": {"input": input}}))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let body: Value = resp.json().await.ok()?;
    let p = &body["data"]["submitAction"];
    let status = p["status"].as_str()?.to_owned();
    let id = p["submissionId"].as_str()?.to_owned();
    assert!(
        status == "PROCESSED" || status == "QUEUED",
        "{email}: {body}"
    );
    Some((status, id))
}

/// What [`sign_until`] sent: `(email, status, submission id)` of each answered
/// submission, and the emails sent without an answer (the gateway died under them).
pub(crate) type Signed = (Vec<(String, String, String)>, Vec<String>);

/// One client signing `save-the-bees` through `gateway` with emails
/// `<prefix>.n<N>@example.org`, one every `pause`, until `stop` is set or a request gets
/// no answer.
pub(crate) async fn sign_until(
    http: reqwest::Client,
    gateway: String,
    key: &'static str,
    prefix: String,
    pause: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Signed {
    let mut answered = Vec::new();
    let mut unanswered = Vec::new();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let email = format!("{prefix}.n{n}@example.org");
        n += 1;
        match sign(&http, &gateway, key, &email).await {
            Some((status, id)) => answered.push((email, status, id)),
            None => {
                unanswered.push(email);
                break;
            }
        }
        tokio::time::sleep(pause).await;
    }
    (answered, unanswered)
}
