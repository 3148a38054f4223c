//! The HTTP surface: GraphQL over HTTP rules, GraphiQL, health.
#![allow(clippy::unwrap_used)]

mod gateway_support;

use gateway_support::spawn;
use serde_json::{json, Value};

const GQL_JSON: &str = "application/graphql-response+json";

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let gw = spawn(&[]).await;
    let url = format!("http://{}/graphql", gw.addr);
    let resp = gw
        .http
        .get(&url)
        .query(&[("query", r#"{ user(id: "1") { id } }"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["user"]["id"], "1");

    gw.reset_stats().await;
    let resp = gw
        .http
        .get(&url)
        .query(&[(
            "query",
            r#"mutation { clearActionCustomFields(actionId: "1") { id } }"#,
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(gw.calls().await, 0, "a GET mutation reached ActionKit");
}

#[tokio::test]
async fn simple_request_content_types_are_refused() {
    let gw = spawn(&[]).await;
    let url = format!("http://{}/graphql", gw.addr);
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let resp = gw
            .http
            .post(&url)
            .header("content-type", ct)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{ct}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    let resp = gw
        .http
        .post(&url)
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415, "no content type");
}

#[tokio::test]
async fn request_errors_are_4xx_without_data_under_graphql_response_json() {
    let gw = spawn(&[]).await;
    let url = format!("http://{}/graphql", gw.addr);
    for (query, accept, status) in [
        ("{", GQL_JSON, 400),
        ("{ nope }", GQL_JSON, 400),
        ("{", "application/json", 200),
        ("{ nope }", "application/json", 200),
    ] {
        let resp = gw
            .http
            .post(&url)
            .header("accept", accept)
            .json(&json!({"query": query}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{query} {accept}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(accept));
        let body: Value = resp.json().await.unwrap();
        assert!(body.get("data").is_none(), "{query}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    let resp = gw
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = gw
        .http
        .post(&url)
        .header("accept", "text/html")
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 406);
}

#[tokio::test]
async fn graphiql_is_served_without_a_cdn() {
    let gw = spawn(&[]).await;
    let resp = gw
        .http
        .get(format!("http://{}/", gw.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"));
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("user(id: \\\"1\\\")"),
        "example query missing"
    );
    assert!(
        !html.contains("unpkg") && !html.contains("cdn"),
        "third-party script in GraphiQL"
    );
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        assert!(html.contains(&format!("/graphiql/{asset}")));
        let resp = gw
            .http
            .get(format!("http://{}/graphiql/{asset}", gw.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        assert!(resp.bytes().await.unwrap().len() > 5_000);
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = spawn(&[]).await;
    let resp = gw
        .http
        .get(format!("http://{}/healthz", gw.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = gw
        .http
        .get(format!("http://{}/readyz", gw.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn readiness_fails_when_actionkit_refuses_the_credential() {
    use actionkit_graphql::app::{self, Upstream};
    use actionkit_graphql::config::{Config, Mode};
    let sb = gateway_support::sandbox_config(&[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = actionkit_graphql::sandbox::spawn(sb, listener)
        .await
        .unwrap();
    let config = Config::default();
    let upstream = Upstream {
        url: url::Url::parse(&format!("http://{}", handle.addr)).unwrap(),
        username: "sandbox".into(),
        password: secrecy::SecretString::from("wrong-password".to_owned()),
        akid_secret: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = app::spawn(
        &config,
        app::client_config(&config, upstream),
        Mode::Development,
        listener,
    )
    .await
    .unwrap();
    let resp = reqwest::get(format!("http://{}/readyz", gw.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("wrong-password"));
    // And a query says so with a code, without the credential.
    let body: Value = reqwest::Client::new()
        .post(format!("http://{}/graphql", gw.addr))
        .json(&json!({"query": r#"{ user(id: "1") { id } }"#}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UPSTREAM_UNAVAILABLE",
        "{body}"
    );
    assert!(!body.to_string().contains("wrong-password"));
    drop(handle);
}
