//! The HTTP surface: GraphQL over HTTP rules, GraphiQL, health.

use crate::helpers::gateway::{spawn, TestGateway, SIMPLE_CONTENT_TYPES};
use serde_json::{json, Value};

const GQL_JSON: &str = "application/graphql-response+json";

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let gw = spawn(&[]).await;
    let (status, _, body) = gw
        .get_graphql(None, &[("query", r#"{ user(id: "1") { id } }"#)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["user"]["id"], "1");

    gw.reset_stats().await;
    let mutation = r#"mutation { clearActionCustomFields(actionId: "1") { id } }"#;
    let (status, headers, _) = gw.get_graphql(None, &[("query", mutation)]).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    assert_eq!(gw.calls().await, 0, "a GET mutation reached ActionKit");
}

#[tokio::test]
async fn simple_request_content_types_are_refused() {
    let gw = spawn(&[]).await;
    let body = r#"{"query":"{ __typename }"}"#;
    for ct in SIMPLE_CONTENT_TYPES {
        let (status, _, answer) = gw.post_raw(None, Some(ct), body).await;
        assert_eq!(status, 415, "{ct}");
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    let (status, _, _) = gw.post_raw(None, None, body).await;
    assert_eq!(status, 415, "no content type");
}

#[tokio::test]
async fn request_errors_are_4xx_without_data_under_graphql_response_json() {
    let gw = spawn(&[]).await;
    for (query, accept, status) in [
        ("{", GQL_JSON, 400),
        ("{ nope }", GQL_JSON, 400),
        ("{", "application/json", 200),
        ("{ nope }", "application/json", 200),
    ] {
        let body = json!({"query": query});
        let (got, headers, body) = gw.post_json(&[("accept", accept)], body).await;
        assert_request_error(got, &headers, &body, status, accept, query);
    }
    let (status, _, _) = gw
        .post_raw(None, Some("application/json"), "{not json")
        .await;
    assert_eq!(status, 400);
    let body = json!({"query": "{ __typename }"});
    let (status, _, _) = gw.post_json(&[("accept", "text/html")], body).await;
    assert_eq!(status, 406);
}

/// A request error answered under `accept`: `status`, that content type, no data,
/// `BAD_USER_INPUT`.
fn assert_request_error(
    got: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    status: u16,
    accept: &str,
    what: &str,
) {
    assert_eq!(got, status, "{what} {accept}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with(accept));
    assert!(body.get("data").is_none(), "{what}: {body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

/// GETs GraphiQL's page (`/`): its headers, its Content-Security-Policy, its HTML.
async fn graphiql_page(gw: &TestGateway) -> (reqwest::header::HeaderMap, String, String) {
    let resp = gw.get("/").await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    (headers, csp, resp.text().await.unwrap())
}

#[tokio::test]
async fn graphiql_is_served_without_a_cdn() {
    let gw = spawn(&[]).await;
    let (_, csp, html) = graphiql_page(&gw).await;
    assert!(csp.contains("default-src 'self'"));
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
        let resp = gw.get(&format!("/graphiql/{asset}")).await;
        assert_eq!(resp.status(), 200, "{asset}");
        assert!(resp.bytes().await.unwrap().len() > 5_000);
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = spawn(&[]).await;
    let resp = gw.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    let resp = gw.get("/readyz").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn readiness_fails_when_actionkit_refuses_the_credential() {
    use actionkit_graphql::app::{self, Upstream};
    use actionkit_graphql::config::{Config, Mode};
    let sb = crate::helpers::gateway::sandbox_config(&[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = actionkit_graphql::sandbox::spawn(sb.clone(), listener)
        .await
        .unwrap();
    let config = Config::default();
    let mut upstream = Upstream::sandbox(handle.addr, &sb, false).unwrap();
    upstream.password = secrecy::SecretString::from("wrong-password".to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The whole startup refuses a credential the instance refuses...
    let refused = app::start(&config, Mode::Development, upstream, listener).await;
    assert!(refused.is_err());
    let message = format!("{:#}", refused.err().unwrap());
    assert!(message.contains("refused"), "{message}");
    assert!(!message.contains("wrong-password"), "{message}");
    // ...and a gateway whose credential is revoked after it started is not ready.
    let mut upstream = Upstream::sandbox(handle.addr, &sb, false).unwrap();
    upstream.password = secrecy::SecretString::from("wrong-password".to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = app::start_unchecked(&config, Mode::Development, upstream, listener)
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

#[tokio::test]
async fn variable_coercion_failures_are_request_errors() {
    let gw = spawn(&[]).await;
    let query = r#"query Q($id: ID!) { user(id: $id) { id } }"#;
    for (variables, accept, status) in [
        (json!({}), GQL_JSON, 400),
        (json!({"id": null}), GQL_JSON, 400),
        (json!({}), "application/json", 200),
    ] {
        gw.reset_stats().await;
        let what = variables.to_string();
        let body = json!({"query": query, "variables": variables});
        let (got, headers, body) = gw.post_json(&[("accept", accept)], body).await;
        assert_request_error(got, &headers, &body, status, accept, &what);
        assert_eq!(gw.calls().await, 0, "a request error reached ActionKit");
    }
    let body = json!({"query": query, "variables": {"id": "1"}});
    let (status, _, body) = gw.post_json(&[("accept", GQL_JSON)], body).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["user"]["id"], "1", "{body}");
}

/// A document that passed validation runs without the repeated rules next time, but
/// only with variables of the shape it passed with: a value of another kind, an
/// integer past 32 bits, an unknown enum value are still refused before execution.
#[tokio::test]
async fn validation_is_skipped_only_for_variables_of_a_shape_that_passed() {
    let gw = spawn(&[]).await;
    let query = r#"query Q($id: ID!, $t: ActionType, $n: Int) {
        user(id: $id) { id actions(type: $t, first: $n) { totalCount } }
    }"#;
    let valid = json!({"id": "1", "t": "PETITION", "n": 5});
    let run = |variables: Value| {
        let body = json!({"query": query, "variables": variables});
        gw.post_json(&[("accept", GQL_JSON)], body)
    };
    let (status, _, first) = run(valid.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["user"]["id"], "1", "{first}");
    let (status, _, again) = run(valid.clone()).await;
    assert_eq!(
        (status, &again),
        (200, &first),
        "the repeat answers differently"
    );
    for variables in [
        json!({"id": "1", "t": "NOT_A_TYPE", "n": 5}),
        json!({"id": true, "t": "PETITION", "n": 5}),
        json!({"id": "1", "t": "PETITION", "n": 5_000_000_000u64}),
        json!({"id": "1", "t": "PETITION", "n": 1.5}),
        json!({"id": "1", "t": ["PETITION"], "n": 5}),
    ] {
        gw.reset_stats().await;
        let what = variables.to_string();
        let (got, headers, body) = run(variables).await;
        assert_request_error(got, &headers, &body, 400, GQL_JSON, &what);
        assert_eq!(gw.calls().await, 0, "{what} reached ActionKit");
    }
    let (status, _, last) = run(json!({"id": "1", "t": "SIGNUP", "n": 7})).await;
    assert_eq!(status, 200, "{last}");
    assert_eq!(last["data"]["user"]["id"], "1", "{last}");
}

#[tokio::test]
async fn get_refuses_the_mutation_an_operation_name_selects() {
    let gw = spawn(&[]).await;
    let doc = r#"query Q { __typename } mutation M { __typename }"#;
    let (status, headers, _) = gw
        .get_graphql(None, &[("query", doc), ("operationName", "M")])
        .await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    let (status, _, body) = gw
        .get_graphql(None, &[("query", doc), ("operationName", "Q")])
        .await;
    assert_eq!(status, 200);
    assert!(body["data"]["__typename"].is_string(), "{body}");
}

#[tokio::test]
async fn graphiql_page_allows_only_its_own_scripts_and_presets_a_harmless_header() {
    let gw = spawn(&[]).await;
    let (headers, csp, html) = graphiql_page(&gw).await;
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .expect("script-src");
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    assert!(script_src.contains("'sha256-"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // The Authorization slot is preset, and the page drops it while it holds the
    // placeholder, so GraphiQL works when the gateway has no API keys.
    assert!(html.contains("Authorization"), "no Authorization slot");
    assert!(
        html.contains("withoutPlaceholder"),
        "the placeholder would be sent"
    );
    // GraphiQL's introspection, as the page sends it, passes the depth limit.
    let start = html
        .find("var INTROSPECTION = ")
        .expect("introspection query")
        + 20;
    let end = start + html[start..].find(";\n").unwrap();
    let query: String = serde_json::from_str(&html[start..end].replace("<\\/", "</")).unwrap();
    let introspection = json!({"query": query, "operationName": "IntrospectionQuery"});
    let (_, _, body) = gw.post_json(&[], introspection).await;
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "User"), "{body}");
    // Every type reference ends in a named type within the wrappers the query asks for.
    let named = |ty: &Value, at: &str| {
        let mut t = ty;
        while t["name"].is_null() {
            assert!(t["ofType"].is_object(), "{at}: wrapped deeper than asked");
            t = &t["ofType"];
        }
    };
    for t in types {
        let name = t["name"].as_str().unwrap_or("?");
        for f in t["fields"].as_array().into_iter().flatten() {
            named(&f["type"], name);
            for a in f["args"].as_array().into_iter().flatten() {
                named(&a["type"], name);
            }
        }
        for f in t["inputFields"].as_array().into_iter().flatten() {
            named(&f["type"], name);
        }
    }
}

#[tokio::test]
async fn results_keep_the_field_order_of_the_selection_set() {
    let gw = spawn(&[]).await;
    let text = gw
        .http
        .post(gw.graphql_url())
        .json(&json!({"query": r#"{ user(id: "1") { lastName id email firstName } __typename }"#}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = |key: &str| {
        text.find(&format!("\"{key}\""))
            .unwrap_or_else(|| panic!("{key} missing: {text}"))
    };
    assert!(
        at("user") < at("lastName")
            && at("lastName") < at("id")
            && at("id") < at("email")
            && at("email") < at("firstName")
            && at("firstName") < at("__typename"),
        "{text}"
    );
}

#[tokio::test]
async fn deep_introspection_is_not_held_to_the_operation_depth_limit() {
    // The shape of GraphiQL's and codegen tools' schema query: far deeper than 8.
    let gw = spawn(&[]).await;
    let q = "{ __schema { queryType { name } types { name fields { name args { name type { kind ofType { kind ofType { kind ofType { kind ofType { name } } } } } } } } } }";
    let body = gw.gql(q, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
}
