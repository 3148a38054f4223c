//! Helpers shared by the `sandbox_*` integration tests.

use actionkit_graphql::sandbox::{self, SandboxConfig, SandboxHandle};
use serde_json::Value;

pub(crate) struct RunningSandbox {
    pub handle: SandboxHandle,
    pub http: reqwest::Client,
    pub base: String,
}

pub(crate) fn config() -> SandboxConfig {
    SandboxConfig {
        users: 60,
        ..SandboxConfig::default()
    }
}

pub(crate) async fn start(config: SandboxConfig) -> RunningSandbox {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = sandbox::spawn(config, listener).await.unwrap();
    let base = format!("http://{}", handle.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    RunningSandbox { handle, http, base }
}

impl RunningSandbox {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(path))
            .basic_auth("sandbox", Some("sandbox"))
    }

    pub(crate) fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth("sandbox", Some("sandbox"))
    }

    /// GET with auth; asserts 200 and returns the JSON body.
    pub(crate) async fn json(&self, path: &str) -> Value {
        let r = self.get(path).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// GET with auth; returns (status, body text).
    pub(crate) async fn status(&self, path: &str) -> (u16, String) {
        let r = self.get(path).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub(crate) async fn stats(&self) -> Value {
        crate::helpers::get_json(&self.http, self.url("/__sandbox/stats")).await
    }
}
