//! Automatic persisted queries: a hash alone, `PERSISTED_QUERY_NOT_FOUND` on a miss,
//! the document with its hash registers it, over POST and GET; the hash is checked;
//! the cache is bounded; trusted documents decide what may register.
//! The same flow through the real Apollo Client link: `scripts/conformance/apq.mjs`.

use crate::helpers::gateway::{
    assert_persisted_query_error, assert_persisted_query_not_found, assert_read_user,
    config_with_keys, spawn_mode, spawn_with, TestGateway,
};
use actionkit_graphql::config::{Config, Mode, TrustedMode};
use actionkit_graphql::http::trusted::document_hash;
use serde_json::{json, Value};

const GQL_JSON: &str = "application/graphql-response+json";
const QUERY: &str =
    r#"query Apq($id: ID!) { user(id: $id) { id firstName actions(first: 2) { totalCount } } }"#;

fn persisted(doc: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": document_hash(doc)}})
}

async fn gateway(config: Config) -> TestGateway {
    spawn_with(&["--users", "20"], config, true).await
}

/// POSTs `body` with `accept` (none when empty): status, cache-control, body.
async fn post(gw: &TestGateway, accept: &str, body: Value) -> (u16, Option<String>, Value) {
    let mut headers = vec![];
    if !accept.is_empty() {
        headers.push(("accept", accept));
    }
    let (status, h, body) = gw.post_json(&headers, body).await;
    let cc = h
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, cc, body)
}

/// GET /graphql with the hash (and `query` when given) in the query string.
async fn get(gw: &TestGateway, query: Option<&str>, doc: &str, variables: Value) -> (u16, Value) {
    let (extensions, variables) = (persisted(doc).to_string(), variables.to_string());
    let mut params = vec![("extensions", &*extensions), ("variables", &*variables)];
    if let Some(q) = query {
        params.push(("query", q));
    }
    let (status, _, body) = gw.get_graphql(None, &params).await;
    (status, body)
}

#[tokio::test]
async fn a_hash_misses_then_registers_with_its_document_and_serves_post_and_get() {
    let gw = gateway(Config::default()).await;
    let vars = json!({"id": "3"});
    gw.reset_stats().await;

    // The hash alone, unknown: a request error, nothing upstream, not cacheable.
    let hash_only = json!({"variables": vars, "extensions": persisted(QUERY)});
    let (status, cc, body) = post(&gw, "", hash_only.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_persisted_query_not_found(&body);
    assert_eq!(cc.as_deref(), Some("no-store"));
    let (status, _, body) = post(&gw, GQL_JSON, hash_only.clone()).await;
    assert_eq!(
        status, 400,
        "a request error under graphql-response+json: {body}"
    );
    assert_persisted_query_not_found(&body);
    let (status, body) = get(&gw, None, QUERY, vars.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_persisted_query_not_found(&body);
    assert_eq!(gw.calls().await, 0, "a miss reached ActionKit");

    // The document with its hash runs and registers it.
    let mut full = hash_only.clone();
    full["query"] = json!(QUERY);
    let (status, _, registered) = post(&gw, "", full).await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["data"]["user"]["id"], "3", "{registered}");

    // Now the hash alone gives the same answer, over POST and over GET.
    let (status, _, body) = post(&gw, "", hash_only).await;
    assert_eq!((status, &body), (200, &registered));
    let (status, body) = get(&gw, None, QUERY, vars.clone()).await;
    assert_eq!((status, &body), (200, &registered));
    // Other variables, same document.
    let (status, body) = get(&gw, None, QUERY, json!({"id": "4"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["id"], "4", "{body}");
}

#[tokio::test]
async fn a_document_can_register_over_get() {
    let gw = gateway(Config::default()).await;
    let doc = r#"query ByGet { page(id: "1") { id title } }"#;
    let (status, body) = get(&gw, Some(doc), doc, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["page"]["id"], "1", "{body}");
    let (status, again) = get(&gw, None, doc, json!({})).await;
    assert_eq!((status, &again), (200, &body));
}

#[tokio::test]
async fn a_wrong_hash_is_refused_and_registers_nothing() {
    let gw = gateway(Config::default()).await;
    gw.reset_stats().await;
    let other = r#"{ page(id: "1") { id } }"#;
    // QUERY sent with the hash of another document.
    let body = json!({"query": QUERY, "variables": {"id": "1"}, "extensions": persisted(other)});
    let (status, _, answer) = post(&gw, GQL_JSON, body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    assert!(answer.get("data").is_none(), "{answer}");
    assert_eq!(gw.calls().await, 0, "a mismatched document ran");
    // Neither hash holds QUERY now.
    for doc in [other, QUERY] {
        let (_, _, body) = post(
            &gw,
            "",
            json!({"variables": {"id": "1"}, "extensions": persisted(doc)}),
        )
        .await;
        assert_persisted_query_not_found(&body);
    }
}

#[tokio::test]
async fn malformed_persisted_query_entries_are_bad_user_input() {
    let gw = gateway(Config::default()).await;
    let hash = document_hash(QUERY);
    for ext in [
        json!({"persistedQuery": {"version": 2, "sha256Hash": hash}}),
        json!({"persistedQuery": {"version": 1, "sha256Hash": "not-hex"}}),
        json!({"persistedQuery": {"version": 1}}),
        json!({"persistedQuery": true}),
    ] {
        let (status, _, body) = post(&gw, GQL_JSON, json!({"extensions": ext})).await;
        assert_eq!(status, 400, "{ext}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{ext}: {body}"
        );
        assert!(body.get("data").is_none(), "{body}");
    }
}

#[tokio::test]
async fn documents_refused_by_the_parser_or_a_limit_do_not_register() {
    let mut config = Config::default();
    config.graphql.max_depth = 3;
    let gw = gateway(config).await;
    let broken = "{ user(id: \"1\") {";
    let deep = r#"{ user(id: "1") { actions(first: 1) { nodes { page { title } } } } }"#;
    for doc in [broken, deep] {
        let (_, _, body) = post(&gw, "", json!({"query": doc, "extensions": persisted(doc)})).await;
        assert!(body.get("data").is_none(), "{doc} ran: {body}");
        let (_, _, body) = post(&gw, "", json!({"extensions": persisted(doc)})).await;
        assert_persisted_query_not_found(&body);
    }
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let mut config = Config::default();
    // About a dozen of these documents.
    config.graphql.persisted_query_cache_bytes = 8_000;
    let gw = gateway(config).await;
    let docs: Vec<String> = (0..100)
        .map(|i| format!("query Q{i} {{ {} }}", "__typename ".repeat(50)))
        .collect();
    for doc in &docs {
        let (status, _, body) =
            post(&gw, "", json!({"query": doc, "extensions": persisted(doc)})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["__typename"], "Query", "{body}");
    }
    let mut held = 0;
    for doc in &docs {
        let (_, _, body) = post(&gw, "", json!({"extensions": persisted(doc)})).await;
        if body.get("data").is_some() {
            held += 1;
        } else {
            assert_persisted_query_not_found(&body);
        }
    }
    assert!(held > 0, "the cache holds nothing");
    assert!(
        held <= 20,
        "{held} of 100 documents of ~600 bytes in 8,000 bytes"
    );
}

#[tokio::test]
async fn turned_off_hashes_alone_are_not_supported_and_documents_still_run() {
    let mut config = Config::default();
    config.graphql.persisted_queries = false;
    let gw = gateway(config).await;
    let (status, _, body) = post(
        &gw,
        "",
        json!({"variables": {"id": "1"}, "extensions": persisted(QUERY)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_persisted_query_error(
        &body,
        "PersistedQueryNotSupported",
        "PERSISTED_QUERY_NOT_SUPPORTED",
    );
    let full = json!({"query": QUERY, "variables": {"id": "1"}, "extensions": persisted(QUERY)});
    let (status, _, body) = post(&gw, "", full).await;
    assert_read_user(status, &body, "1");
}

const KEY: &str = "apq-key-0123456789";
const STAFF_KEY: &str = "apq-staff-key-0123456789";

/// The one document in the trusted-document manifests below.
const KNOWN: &str = r#"query Known { user(id: "1") { id } }"#;

/// A production gateway whose trusted documents (in `mode`) are [`KNOWN`] alone, with
/// the `staff` key exempt.
async fn trusted_gateway(mode: TrustedMode, name: &str) -> TestGateway {
    let config = trusted_config(mode, name, &[KNOWN]);
    spawn_mode(&["--users", "20"], config, true, Mode::Production)
        .await
        .unwrap()
}

fn trusted_config(mode: TrustedMode, name: &str, docs: &[&str]) -> Config {
    let path = std::env::temp_dir().join(format!("akg-apq-{}-{name}.json", std::process::id()));
    let map: serde_json::Map<String, Value> = docs
        .iter()
        .map(|d| (document_hash(d), Value::String(d.to_string())))
        .collect();
    std::fs::write(&path, Value::Object(map).to_string()).unwrap();
    let mut c = config_with_keys(&[("web", "read", KEY), ("staff", "read", STAFF_KEY)]);
    c.security.trusted_documents.mode = mode;
    c.security.trusted_documents.manifest = Some(path);
    c.security.trusted_documents.exempt_keys = vec!["staff".into()];
    c
}

#[tokio::test]
async fn with_trusted_documents_enforced_only_the_manifest_registers() {
    let gw = trusted_gateway(TrustedMode::Enforce, "enforce").await;
    // A trusted document by hash alone: from the manifest, no registration needed.
    let (status, body) = gw
        .post_as(KEY, json!({"extensions": persisted(KNOWN)}))
        .await;
    assert_read_user(status, &body, "1");
    // An exempt key runs another document with its hash, but does not register it
    // for anyone: the hash alone stays unknown, to it and to others.
    let vars = json!({"id": "2"});
    let full = json!({"query": QUERY, "variables": vars, "extensions": persisted(QUERY)});
    let (status, body) = gw.post_as(STAFF_KEY, full).await;
    assert_read_user(status, &body, "2");
    gw.reset_stats().await;
    for key in [KEY, STAFF_KEY] {
        let (status, body) = gw
            .post_as(
                key,
                json!({"variables": vars, "extensions": persisted(QUERY)}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_persisted_query_not_found(&body);
    }
    // The link's retry with the document is refused for a key that is not exempt.
    let full = json!({"query": QUERY, "variables": vars, "extensions": persisted(QUERY)});
    let (status, body) = gw.post_as(KEY, full).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(
        gw.calls().await,
        0,
        "an untrusted document reached ActionKit"
    );
}

#[tokio::test]
async fn with_trusted_documents_logged_unknown_documents_register() {
    let gw = trusted_gateway(TrustedMode::LogUnknown, "log").await;
    let vars = json!({"id": "2"});
    let (_, body) = gw
        .post_as(
            KEY,
            json!({"variables": vars, "extensions": persisted(QUERY)}),
        )
        .await;
    assert_persisted_query_not_found(&body);
    let full = json!({"query": QUERY, "variables": vars, "extensions": persisted(QUERY)});
    let (status, body) = gw.post_as(KEY, full).await;
    assert_read_user(status, &body, "2");
    let (status, body) = gw
        .post_as(
            KEY,
            json!({"variables": vars, "extensions": persisted(QUERY)}),
        )
        .await;
    assert_read_user(status, &body, "2");
}
