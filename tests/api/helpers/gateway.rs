//! Spawns a sandbox and a gateway on 127.0.0.1:0 and talks to both over HTTP.

use std::net::SocketAddr;

use actionkit_graphql::app::{self, Upstream};
use actionkit_graphql::config::{Config, Mode};
use actionkit_graphql::sandbox::{self, SandboxConfig};

use crate::helpers::outbox::SandboxRest;
use clap::Parser;
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Parser)]
struct SandboxFlags {
    #[command(flatten)]
    config: SandboxConfig,
}

/// The sandbox's settings from flags, as `actionkit-graphql sandbox` would read them.
pub(crate) fn sandbox_config(flags: &[&str]) -> SandboxConfig {
    let mut args = vec!["sandbox"];
    args.extend_from_slice(flags);
    SandboxFlags::parse_from(args).config
}

pub(crate) struct TestGateway {
    pub addr: SocketAddr,
    pub sandbox: SocketAddr,
    pub http: reqwest::Client,
    /// Page progress and subscriptions (`shutdown()` tells every subscriber).
    pub progress: actionkit_graphql::graphql::ProgressHub,
    /// The gateway's ActionKit client (its state: the concurrency cap in force).
    pub client: actionkit_graphql::actionkit::Client,
    /// Keeps the sandbox serving (dropping the handle stops it).
    _sandbox: sandbox::SandboxHandle,
}

/// A gateway in development mode over a fresh sandbox started with `flags`.
pub(crate) async fn spawn(flags: &[&str]) -> TestGateway {
    spawn_with(flags, Config::default(), true).await
}

/// Like [`spawn`], with a gateway configuration, and with or without the AKID secret.
pub(crate) async fn spawn_with(
    flags: &[&str],
    config: Config,
    with_akid_secret: bool,
) -> TestGateway {
    spawn_mode(flags, config, with_akid_secret, Mode::Development)
        .await
        .unwrap()
}

/// Like [`spawn_with`], in the given mode; `Err` when the gateway refuses to start.
///
/// The gateway shares only reads in flight (`actionkit.share_window_us = 0`): tests
/// that change the sandbox behind the gateway's back (faults, direct REST writes) and
/// read again at once must see the change, however fast the machine. The window has
/// its own tests, through [`spawn_sharing`].
pub(crate) async fn spawn_mode(
    flags: &[&str],
    mut config: Config,
    with_akid_secret: bool,
    mode: Mode,
) -> anyhow::Result<TestGateway> {
    config.actionkit.share_window_us = 0;
    start(flags, config, with_akid_secret, mode).await
}

/// A gateway over a fresh sandbox with `config` as given, its share window included.
pub(crate) async fn spawn_sharing(flags: &[&str], config: Config) -> TestGateway {
    start(flags, config, true, Mode::Development).await.unwrap()
}

async fn start(
    flags: &[&str],
    config: Config,
    with_akid_secret: bool,
    mode: Mode,
) -> anyhow::Result<TestGateway> {
    let sb = sandbox_config(flags);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = sandbox::spawn(sb.clone(), listener).await.unwrap();
    let upstream = Upstream::sandbox(handle.addr, &sb, with_akid_secret)?;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = app::start(&config, mode, upstream, listener).await?;
    Ok(TestGateway {
        addr: gw.addr,
        sandbox: handle.addr,
        http: reqwest::Client::new(),
        progress: gw.progress,
        client: gw.client.clone(),
        _sandbox: handle,
    })
}

impl TestGateway {
    /// POSTs a GraphQL request and returns the JSON body.
    pub(crate) async fn gql(&self, query: &str, variables: Value) -> Value {
        let resp = self
            .http
            .post(self.graphql_url())
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "GraphQL over HTTP answered {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    /// POSTs a JSON body to `/graphql` with extra headers; returns status, headers and
    /// the JSON body (`null` when the body is not JSON).
    pub(crate) async fn post_json(
        &self,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.post(self.graphql_url()).json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req).await
    }

    /// POSTs `body` to `/graphql` with `key` as a bearer token: status and the JSON
    /// body (`null` when it is not JSON).
    pub(crate) async fn post_as(&self, key: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = self
            .post_json(&[("authorization", &bearer(key))], body)
            .await;
        (status, body)
    }

    /// Like [`gql`], asserting that there are no errors, and returning `data`.
    pub(crate) async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// GETs a gateway path (e.g. `/healthz`).
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("http://{}{}", self.addr, path))
            .send()
            .await
            .unwrap()
    }

    /// GETs a sandbox REST path (e.g. `/rest/v1/user/1/`) with the sandbox credential.
    pub(crate) async fn rest(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("http://{}{}", self.sandbox, path))
            .basic_auth("sandbox", Some("sandbox"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    pub(crate) async fn stats(&self) -> Value {
        crate::helpers::get_json(
            &self.http,
            format!("http://{}/__sandbox/stats", self.sandbox),
        )
        .await
    }

    /// Upstream calls since the last reset.
    pub(crate) async fn calls(&self) -> u64 {
        self.stats().await["requests"].as_u64().unwrap()
    }

    /// Upstream calls since the last reset on the routes (`"PATCH /rest/v1/…/{id}/"`)
    /// that `pick` accepts, with the sandbox's statistics (for messages).
    pub(crate) async fn calls_to(&self, pick: impl Fn(&str) -> bool) -> (u64, Value) {
        let stats = self.stats().await;
        let n = stats["by_route"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(route, _)| pick(route))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum();
        (n, stats)
    }

    /// The sandbox's REST and control endpoints.
    pub(crate) fn sandbox_rest(&self) -> SandboxRest {
        SandboxRest::new(format!("http://{}", self.sandbox))
    }

    pub(crate) async fn reset_stats(&self) {
        self.sandbox_rest().reset_stats().await;
    }

    pub(crate) async fn set_faults(&self, faults: Value) {
        self.sandbox_rest().set_faults(faults).await;
    }

    /// GETs `/graphql` with `params` as its query string, with `key` as a bearer token
    /// when given: status, headers and the JSON body (`null` when it is not JSON).
    pub(crate) async fn get_graphql(
        &self,
        key: Option<&str>,
        params: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.get(self.graphql_url()).query(params);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        answer(req).await
    }

    /// POSTs `body` as it is to `/graphql` under `content_type` (none when `None`),
    /// with `key` as a bearer token when given: status, headers and the JSON body
    /// (`null` when it is not JSON).
    pub(crate) async fn post_raw(
        &self,
        key: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.post(self.graphql_url()).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        answer(req).await
    }

    pub(crate) fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }
}

/// Sends `req`: status, headers and the JSON body (`null` when it is not JSON).
async fn answer(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// The content types a browser may send cross-origin without a preflight: a
/// GraphQL POST under any of them is refused (CSRF).
pub(crate) const SIMPLE_CONTENT_TYPES: [&str; 3] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
];

/// Asserts the answer to an unknown persisted-query hash: the request error Apollo
/// Client's and urql's links expect, without data.
pub(crate) fn assert_persisted_query_not_found(body: &Value) {
    assert_persisted_query_error(body, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND");
}

/// Asserts a persisted-query request error (`message`, `code`) without data.
pub(crate) fn assert_persisted_query_error(body: &Value, message: &str, code: &str) {
    assert_eq!(body["errors"][0]["message"], message, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
    assert!(
        body.get("data").is_none(),
        "a request error has no data: {body}"
    );
}

/// Asserts an answer (`status`, `body`) that read user `id`.
pub(crate) fn assert_read_user(status: u16, body: &Value, id: &str) {
    assert_eq!(
        (status, &body["data"]["user"]["id"]),
        (200, &json!(id)),
        "{body}"
    );
}

/// An `Authorization` header's value for `key`.
pub(crate) fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// The first error's code, or "".
pub(crate) fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

/// The first error's message, or "".
pub(crate) fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

/// The AKID of the sandbox's member `user` (its REST `token`).
pub(crate) async fn akid_of(gw: &TestGateway, user: u64) -> String {
    let u = gw.rest(&format!("/rest/v1/user/{user}/")).await;
    u["token"].as_str().unwrap().to_owned()
}

/// The default configuration with these API keys, each `(name, scopes, key)` and kept
/// hashed as the gateway keeps keys.
pub(crate) fn config_with_keys(keys: &[(&str, &str, &str)]) -> Config {
    let mut c = Config::default();
    c.security.api_keys = keys
        .iter()
        .map(|(name, scopes, key)| {
            format!(
                "{name}:{scopes}:{}",
                actionkit_graphql::http::auth::hash_key(key)
            )
        })
        .collect();
    c
}
