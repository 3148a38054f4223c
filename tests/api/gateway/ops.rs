//! Observability: the metrics series after a query, and the per-operation upstream
//! accounting matching the sandbox's own count.

use crate::helpers::gateway::spawn;
use serde_json::{json, Value};

const CANONICAL: &str = r#"query Canonical($id: ID) { user(id: $id) { firstName actions(first: 10) {
    totalCount nodes { type page { title } customFields { name value } } } } }"#;

#[tokio::test]
async fn accounting_extension_matches_the_sandbox_count() {
    let gw = spawn(&["--filters", "strict"]).await;
    for (id, header) in [("20", true), ("21", false)] {
        gw.reset_stats().await;
        let mut req = gw
            .http
            .post(format!("http://{}/graphql", gw.addr))
            .json(&json!({"query": CANONICAL, "variables": {"id": id},
                          "extensions": {"upstreamAccounting": !header}}));
        if header {
            req = req.header("x-upstream-accounting", "1");
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        let report = &body["extensions"]["upstream"];
        let counted = gw.calls().await;
        assert!(counted >= 2);
        assert_eq!(report["calls"].as_u64().unwrap(), counted, "{report}");
        assert_eq!(report["retries"], 0);
        assert!(report["upstreamMs"].as_f64().unwrap() >= 0.0);
    }
    // Not asked, not reported.
    let body = gw.gql(CANONICAL, json!({"id": "22"})).await;
    assert!(body.get("extensions").is_none(), "{body}");
}

#[tokio::test]
async fn page_cache_hits_are_reported() {
    let gw = spawn(&[]).await;
    let ask = |id: &'static str| {
        let gw = &gw;
        async move {
            let query = r#"query($id: ID!) { page(id: $id) { title } }"#;
            let body = json!({"query": query, "variables": {"id": id}});
            let (_, _, body) = gw.post_json(&[("x-upstream-accounting", "1")], body).await;
            body["extensions"]["upstream"].clone()
        }
    };
    let first = ask("2").await;
    assert_eq!(first["calls"], 1, "{first}");
    assert_eq!(first["pageCacheHits"], 0);
    let second = ask("2").await;
    assert_eq!(second["calls"], 0, "{second}");
    assert_eq!(second["pageCacheHits"], 1);
}

#[tokio::test]
async fn metrics_show_the_named_series_after_a_query() {
    let gw = spawn(&[]).await;
    gw.data(CANONICAL, json!({"id": "30"})).await;
    let text = gw.get("/metrics").await.text().await.unwrap();
    for series in [
        "gateway_http_requests_total{",
        "route=\"/graphql\"",
        "gateway_http_request_duration_seconds_bucket{",
        "gateway_graphql_operation_duration_seconds_bucket{",
        "gateway_upstream_requests_total{",
        "route=\"/rest/v1/user/{id}/\"",
        "gateway_upstream_request_duration_seconds_bucket{",
        "gateway_upstream_in_flight",
        "gateway_dataloader_batch_size_bucket{",
        "gateway_page_cache_total{",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}:\n{text}");
    }
    // Labels are templates: no user id or email leaks into a series.
    let email = gw.rest("/rest/v1/user/30/").await["email"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.contains(&email) && !text.contains("/user/30/"));
}
