//! Bad input, generated: GraphQL documents, raw bodies, variables, ids, cursors,
//! page names, custom field names and values. Whatever comes in, the gateway does not
//! panic, never answers 5xx, codes every error from the closed list, and sends nothing
//! invalid to ActionKit: invalid ids and names cost no upstream call at all, ActionKit
//! never has to reject a request (no "ActionKit rejected the request"), and no field
//! name outside `^[A-Za-z0-9_]{1,255}$` is ever written.
//!
//! One sandbox and gateway serve every case; case counts are modest (the whole file
//! runs in seconds).

use std::sync::OnceLock;

use crate::helpers::gateway::{spawn, TestGateway};
use crate::helpers::ERROR_CODES;
use proptest::prelude::*;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new().unwrap())
}

/// The shared gateway, and a lock so that cases that count calls run one at a time.
fn gw() -> &'static (TestGateway, tokio::sync::Mutex<()>) {
    static GW: OnceLock<(TestGateway, tokio::sync::Mutex<()>)> = OnceLock::new();
    GW.get_or_init(|| (rt().block_on(spawn(&[])), tokio::sync::Mutex::new(())))
}

/// Runs a case on the shared runtime (starting the gateway first, outside it).
fn run<F: std::future::Future>(f: F) -> F::Output {
    gw();
    rt().block_on(f)
}

/// The action every mutation case writes to.
const ACTION: &str = "1";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// POSTs `body` as JSON; checks the answer and returns (status, body, upstream calls).
async fn post(raw: Vec<u8>) -> (u16, Value, u64) {
    let (gw, lock) = gw();
    let _one_at_a_time = lock.lock().await;
    gw.reset_stats().await;
    let resp = gw
        .http
        .post(format!("http://{}/graphql", gw.addr))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("the gateway answered (no panic, no dropped connection)");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let calls = gw.calls().await;
    assert!(status < 500, "HTTP {status}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    check_errors(&body);
    (status, body, calls)
}

async fn gql(query: &str, variables: Value) -> (u16, Value, u64) {
    post(serde_json::to_vec(&json!({"query": query, "variables": variables})).unwrap()).await
}

fn check_errors(body: &Value) {
    if let Some(errors) = body.get("errors") {
        for e in errors.as_array().unwrap() {
            let code = e["extensions"]["code"].as_str().unwrap_or("none");
            assert!(
                ERROR_CODES.contains(&code),
                "code {code} not in the list: {body}"
            );
            assert_ne!(
                e["message"], "ActionKit rejected the request",
                "something invalid reached ActionKit: {body}"
            );
        }
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 19
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok_and(|n| n > 0)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Strings that are sometimes valid and often almost valid.
fn tricky() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,21}",
        "-?[0-9]{1,5}",
        "[A-Za-z0-9_]{1,12}",
        "[A-Za-z0-9_ .\\-/%?&=#]{0,20}",
        any::<String>(),
        Just(String::new()),
        Just("0".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1;2".to_owned()),
        Just("1/../2".to_owned()),
        Just("1%2F2".to_owned()),
        Just("id__in=1,2".to_owned()),
        "[A-Za-z0-9_]{250,260}",
        Just("a\u{0}b".to_owned()),
        Just("é".to_owned()),
    ]
}

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        tricky().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// GraphQL-ish token soup: mostly broken documents, sometimes valid ones.
fn document() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{"),
        Just("}"),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(":"),
        Just("query"),
        Just("mutation"),
        Just("subscription"),
        Just("fragment F on User"),
        Just("...F"),
        Just("... on PetitionAction"),
        Just("user"),
        Just("users"),
        Just("action"),
        Just("page"),
        Just("actions"),
        Just("nodes"),
        Just("customFields"),
        Just("customField(name: \"x\")"),
        Just("id"),
        Just("email"),
        Just("name"),
        Just("value"),
        Just("id:"),
        Just("ids:"),
        Just("first:"),
        Just("after:"),
        Just("\"1\""),
        Just("\"x\""),
        Just("1"),
        Just("-1"),
        Just("99999999999"),
        Just("$v"),
        Just("$v: ID"),
        Just("@skip(if: true)"),
        Just("@include(if: $v)"),
        Just("__typename"),
        Just("__schema { types { name } }"),
        Just("setActionCustomFields(actionId: \"1\", fields: [{name: \"p\", value: \"q\"}])"),
        Just("clearActionCustomFields(actionId: \"1\")"),
        Just(","),
        Just("\"\"\"block\"\"\""),
        Just("#"),
    ];
    prop::collection::vec(token, 0..30).prop_map(|t| t.join(" "))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_document_and_variables_get_a_coded_answer_below_500(
        doc in document(),
        vars in json_value(),
        op in prop::option::of(tricky()),
    ) {
        run(async {
            let mut req = json!({"query": doc, "variables": vars});
            if let Some(op) = op {
                req["operationName"] = json!(op);
            }
            let (status, body, _) = post(serde_json::to_vec(&req).unwrap()).await;
            if status == 200 {
                assert!(body.get("data").is_some() || body.get("errors").is_some(), "{body}");
            }
        });
    }

    #[test]
    fn any_body_bytes_get_an_answer_below_500(
        raw in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ]
    ) {
        run(async {
            post(raw).await;
        });
    }

    #[test]
    fn ids_cursors_and_page_names_are_checked_before_anything_is_sent(
        id in tricky(),
        ids in prop::collection::vec(tricky(), 0..5),
        after in tricky(),
        page_name in tricky(),
        first in prop_oneof![Just(None), any::<i32>().prop_map(Some), (-2i32..200).prop_map(Some)],
    ) {
        run(async {
            for q in [
                "query($id: ID!) { user(id: $id) { id } }",
                "query($id: ID!) { action(id: $id) { id } }",
                "query($id: ID!) { page(id: $id) { id } }",
            ] {
                let (_, body, calls) = gql(q, json!({"id": id})).await;
                if !is_id(&id) {
                    assert_eq!(calls, 0, "{id:?} reached ActionKit: {body}");
                    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
                }
            }
            let (_, body, calls) = gql("query($ids: [ID!]!) { users(ids: $ids) { id } }", json!({"ids": ids})).await;
            if ids.iter().any(|i| !is_id(i)) {
                assert_eq!(calls, 0, "{ids:?} reached ActionKit: {body}");
            }
            let (_, body, calls) = gql("query($n: String) { page(name: $n) { id } }", json!({"n": page_name})).await;
            let slug = !page_name.is_empty() && page_name.len() <= 255
                && page_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !slug {
                assert_eq!(calls, 0, "{page_name:?} reached ActionKit: {body}");
            }
            let (_, body, _) = gql(
                "query($a: String, $f: Int, $p: String) { user(id: \"2\") { id \
                 actions(first: $f, after: $a, pageName: $p) { totalCount nodes { id } \
                 pageInfo { hasNextPage endCursor } } } }",
                json!({"a": after, "f": first, "p": page_name}),
            ).await;
            let _ = body;
        });
    }

    #[test]
    fn custom_field_names_and_values_are_checked_before_anything_is_written(
        fields in prop::collection::vec(
            (tricky(), prop_oneof![tricky(), Just("x".repeat(65_537)), Just("v\u{0}".to_owned())]),
            0..4,
        ),
        clear in prop::option::of(prop::collection::vec(tricky(), 0..3)),
    ) {
        run(async {
            let f: Vec<Value> = fields.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
            let (_, body, calls) = gql(
                "mutation($id: ID!, $f: [CustomFieldInput!]!) { \
                 setActionCustomFields(actionId: $id, fields: $f) { id customFields { name value } } }",
                json!({"id": ACTION, "f": f}),
            ).await;
            let mut names = std::collections::HashSet::new();
            let valid = !fields.is_empty()
                && fields.iter().all(|(n, v)| is_name(n) && !v.contains('\0') && v.len() <= 65_536)
                && fields.iter().all(|(n, _)| names.insert(n.clone()));
            if valid {
                assert!(body.get("errors").is_none(), "{body}");
                let set = body["data"]["setActionCustomFields"]["customFields"].as_array().unwrap();
                for (n, v) in &fields {
                    assert!(set.iter().any(|c| c["name"] == *n && c["value"] == *v), "{n} not set: {body}");
                }
            } else {
                assert_eq!(calls, 0, "invalid input reached ActionKit: {body}");
                assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
            }
            let (_, body, calls) = gql(
                "mutation($id: ID!, $n: [String!]) { clearActionCustomFields(actionId: $id, names: $n) { id } }",
                json!({"id": ACTION, "n": clear}),
            ).await;
            let mut seen = std::collections::HashSet::new();
            let valid = clear.as_ref().is_none_or(|c| c.iter().all(|n| is_name(n) && seen.insert(n.clone())));
            if !valid {
                assert_eq!(calls, 0, "invalid names reached ActionKit: {body}");
            } else {
                assert!(body.get("errors").is_none(), "{body}");
            }
            // ActionKit holds only valid names, whatever was tried.
            let (gw, lock) = gw();
            let action = {
                // Under the lock: this read counts in the sandbox's stats too.
                let _g = lock.lock().await;
                gw.rest(&format!("/rest/v1/action/{ACTION}/")).await
            };
            for name in action["fields"].as_object().unwrap().keys() {
                assert!(is_name(name), "{name:?} was written");
            }
        });
    }
}
