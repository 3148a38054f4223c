//! HTTP-level guards: CSRF (simple content types, mutations over GET), CORS origins,
//! the per-key token bucket, introspection and suggestions by mode, trusted documents.

use std::time::Duration;

use crate::helpers::gateway::{
    assert_persisted_query_not_found, assert_read_user, config_with_keys, spawn_mode, TestGateway,
    SIMPLE_CONTENT_TYPES,
};
use actionkit_graphql::config::{Config, Mode, TrustedMode};
use actionkit_graphql::http::trusted::document_hash;
use serde_json::{json, Value};

const KEY: &str = "http-key-0123456789";
const OTHER_KEY: &str = "http-other-key-0123456789";
const STAFF_KEY: &str = "http-staff-key-0123456789";

fn config() -> Config {
    config_with_keys(&[
        ("web", "read+write", KEY),
        ("other", "read", OTHER_KEY),
        ("staff", "read", STAFF_KEY),
    ])
}

async fn gateway(config: Config, mode: Mode) -> TestGateway {
    spawn_mode(&["--users", "20"], config, true, mode)
        .await
        .unwrap()
}

#[tokio::test]
async fn csrf_simple_content_types_and_get_mutations_are_refused() {
    let gw = gateway(config(), Mode::Production).await;
    gw.reset_stats().await;
    for ct in SIMPLE_CONTENT_TYPES {
        let body = r#"{"query":"{ user(id: \"1\") { id } }"}"#;
        let (status, _, _) = gw.post_raw(Some(KEY), Some(ct), body).await;
        assert_eq!(status, 415, "{ct}");
    }
    let mutation = r#"mutation { clearActionCustomFields(actionId: "1") { id } }"#;
    let (status, _, _) = gw.get_graphql(Some(KEY), &[("query", mutation)]).await;
    assert_eq!(status, 405);
    assert_eq!(
        gw.calls().await,
        0,
        "a CSRF-shaped request reached ActionKit"
    );
    // Allowed: JSON POST, and a query over GET.
    let query = r#"{ user(id: "1") { id } }"#;
    let (status, _) = gw.post_as(KEY, json!({ "query": query })).await;
    assert_eq!(status, 200);
    let (status, _, _) = gw.get_graphql(Some(KEY), &[("query", query)]).await;
    assert_eq!(status, 200);
}

async fn preflight(gw: &TestGateway, origin: &str) -> reqwest::Response {
    gw.http
        .request(reqwest::Method::OPTIONS, gw.graphql_url())
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    // None by default.
    let gw = gateway(config(), Mode::Production).await;
    let resp = preflight(&gw, "https://app.example.org").await;
    assert!(!resp.headers().contains_key("access-control-allow-origin"));

    let mut c = config();
    c.security.cors_origins = vec!["https://app.example.org".into()];
    let gw = gateway(c, Mode::Production).await;
    let resp = preflight(&gw, "https://app.example.org").await;
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let resp = preflight(&gw, "https://evil.example.com").await;
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn the_token_bucket_runs_dry_per_key() {
    let mut c = config();
    c.security.rate_limit_per_minute = Some(60);
    c.security.rate_limit_burst = 3;
    let gw = gateway(c, Mode::Production).await;
    let q = json!({"query": "{ __typename }"});
    let auth = format!("Bearer {KEY}");
    for i in 0..3 {
        let (status, _, body) = gw.post_json(&[("authorization", &auth)], q.clone()).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let (status, headers, body) = gw.post_json(&[("authorization", &auth)], q.clone()).await;
    assert_eq!(status, 429, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    // Another key has its own bucket.
    let other = format!("Bearer {OTHER_KEY}");
    let (status, _, _) = gw.post_json(&[("authorization", &other)], q.clone()).await;
    assert_eq!(status, 200);
    // The bucket refills at the sustained rate (one a second here).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = gw.post_json(&[("authorization", &auth)], q).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn introspection_and_suggestions_are_off_in_production_only() {
    let introspect = json!({"query": "{ __schema { queryType { name } } }"});
    let typo = json!({"query": r#"{ usr(id: "1") { id } }"#});
    let gw = gateway(config(), Mode::Production).await;
    let (_, body) = gw.post_as(KEY, introspect.clone()).await;
    // async-graphql answers disabled introspection with null.
    assert!(body["data"]["__schema"].is_null(), "{body}");
    assert!(!body.to_string().contains("\"Query\""), "{body}");
    let (_, body) = gw.post_as(KEY, typo.clone()).await;
    assert!(!body.to_string().contains("Did you mean"), "{body}");

    let gw = gateway(config(), Mode::Development).await;
    let (_, body) = gw.post_as(KEY, introspect).await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
    let (_, body) = gw.post_as(KEY, typo).await;
    assert!(body.to_string().contains("Did you mean"), "{body}");
}

const KNOWN: &str = r#"query Known { user(id: "1") { id } }"#;
const UNKNOWN: &str = r#"query Unknown { user(id: "2") { id } }"#;

fn manifest_file(name: &str, docs: &[&str]) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("akg-security-{}-{name}.json", std::process::id()));
    write_manifest(&path, docs);
    path
}

fn write_manifest(path: &std::path::Path, docs: &[&str]) {
    let map: serde_json::Map<String, Value> = docs
        .iter()
        .map(|d| (document_hash(d), Value::String(d.to_string())))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, Value::Object(map).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn trusted(mode: TrustedMode, manifest: &std::path::Path) -> Config {
    let mut c = config();
    c.security.trusted_documents.mode = mode;
    c.security.trusted_documents.manifest = Some(manifest.to_path_buf());
    c.security.trusted_documents.exempt_keys = vec!["staff".into()];
    c.security.trusted_documents.reload_interval_ms = 50;
    c
}

/// Runs `body` with `key` and asserts that it read user `id`.
async fn expect_user(gw: &TestGateway, key: &str, body: Value, id: &str) {
    let (status, body) = gw.post_as(key, body).await;
    assert_read_user(status, &body, id);
}

#[tokio::test]
async fn trusted_documents_enforce_log_unknown_and_reload() {
    let path = manifest_file("enforce", &[KNOWN]);
    let gw = gateway(trusted(TrustedMode::Enforce, &path), Mode::Production).await;
    // The known document, sent whole or by hash (POST and GET).
    expect_user(&gw, KEY, json!({"query": KNOWN}), "1").await;
    let by_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_hash(KNOWN)}}});
    expect_user(&gw, KEY, by_hash.clone(), "1").await;
    let extensions = by_hash["extensions"].to_string();
    let (status, _, body) = gw
        .get_graphql(Some(KEY), &[("extensions", &extensions)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["user"]["id"], "1", "{body}");

    // An unknown document is refused before anything runs.
    gw.reset_stats().await;
    let (status, body) = gw.post_as(KEY, json!({"query": UNKNOWN})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let unknown_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_hash(UNKNOWN)}}});
    // As Apollo Client's and urql's links expect it (they then send the document,
    // which is refused above): a GraphQL request error, 200 under application/json.
    let (status, body) = gw.post_as(KEY, unknown_hash).await;
    assert_eq!(status, 200, "{body}");
    assert_persisted_query_not_found(&body);
    // A repeated parameter cannot smuggle a second document past the check.
    let (status, _, _) = gw
        .get_graphql(Some(KEY), &[("query", KNOWN), ("query", UNKNOWN)])
        .await;
    assert_eq!(status, 400);
    // A document that does not match the hash it claims.
    let lying = json!({"query": UNKNOWN, "extensions": by_hash["extensions"]});
    let (status, _) = gw.post_as(KEY, lying).await;
    assert_eq!(status, 400);
    assert_eq!(
        gw.calls().await,
        0,
        "an untrusted document reached ActionKit"
    );

    // An exempt key (staff tools) may send any document.
    expect_user(&gw, STAFF_KEY, json!({"query": UNKNOWN}), "2").await;

    // The manifest reloads when its file changes.
    write_manifest(&path, &[KNOWN, UNKNOWN]);
    let mut reloaded = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if gw.post_as(KEY, json!({"query": UNKNOWN})).await.0 == 200 {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the new manifest was not picked up");
    std::fs::remove_file(&path).unwrap();

    // log-unknown runs unknown documents.
    let path = manifest_file("log", &[KNOWN]);
    let gw = gateway(trusted(TrustedMode::LogUnknown, &path), Mode::Production).await;
    expect_user(&gw, KEY, json!({"query": UNKNOWN}), "2").await;
    std::fs::remove_file(&path).unwrap();
}
