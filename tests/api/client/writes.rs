//! Setting and clearing custom action fields, against a mock server: the exact PATCH
//! body, the path taken under replace and merge PATCH semantics, which writes are
//! retried, and validation before anything is sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::support::*;
use crate::helpers::client::*;
use actionkit_graphql::actionkit::{ActionId, Error};
use serde_json::{json, Map, Value};
use wiremock::matchers::{basic_auth, body_json, header};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One action (id 9, a petition action) stored as `actionfield` rows, whose fields
/// PATCH replaces or merges and whose rows can be listed and deleted. A row of action
/// 10 with a shared name is listed too, to catch a client that deletes rows of the
/// wrong parent.
/// `(id, name, value)`.
type Row = (u64, String, String);

#[derive(Clone)]
struct FakeAction {
    merge: bool,
    /// Rows `(id, name, value)` and the next row id.
    state: Arc<Mutex<(Vec<Row>, u64)>>,
}

fn values_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        other => vec![other.as_str().unwrap().to_owned()],
    }
}

impl FakeAction {
    fn new(merge: bool, fields: Value) -> Self {
        let fake = FakeAction {
            merge,
            state: Arc::new(Mutex::new((Vec::new(), 500))),
        };
        fake.put(fields.as_object().unwrap());
        fake
    }
    /// Sets the named fields to exactly these values, row ids in name order.
    fn put(&self, fields: &Map<String, Value>) {
        let mut st = self.state.lock().unwrap();
        for (name, v) in fields {
            let vals = values_of(v);
            let current: Vec<String> =
                st.0.iter()
                    .filter(|r| &r.1 == name)
                    .map(|r| r.2.clone())
                    .collect();
            if current == vals {
                continue;
            }
            st.0.retain(|r| &r.1 != name);
            for val in vals {
                let id = st.1;
                st.1 += 1;
                st.0.push((id, name.clone(), val));
            }
        }
    }
    fn fields(&self) -> Map<String, Value> {
        let st = self.state.lock().unwrap();
        let mut out = Map::new();
        for (_, name, value) in &st.0 {
            match out.get_mut(name) {
                None => {
                    out.insert(name.clone(), Value::String(value.clone()));
                }
                Some(Value::String(first)) => {
                    let first = first.clone();
                    out.insert(name.clone(), json!([first, value]));
                }
                Some(Value::Array(vals)) => vals.push(Value::String(value.clone())),
                Some(_) => unreachable!(),
            }
        }
        out
    }
}

impl Respond for FakeAction {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        match (req.method.as_str(), req.url.path()) {
            ("GET", "/rest/v1/action/9/") => {
                ok_json(action_json(9, 1, Value::Object(self.fields())))
            }
            ("PATCH", "/rest/v1/petitionaction/9/") => {
                let body: Value = serde_json::from_slice(&req.body).unwrap();
                let sent = body["fields"].as_object().unwrap().clone();
                if !self.merge {
                    self.state
                        .lock()
                        .unwrap()
                        .0
                        .retain(|r| sent.contains_key(&r.1));
                }
                self.put(&sent);
                ResponseTemplate::new(202).insert_header("content-type", "text/html")
            }
            ("GET", "/rest/v1/actionfield/") => {
                assert_eq!(req.url.query(), Some("parent=9&_limit=100"));
                let mut objs: Vec<Value> = self
                    .state
                    .lock()
                    .unwrap()
                    .0
                    .iter()
                    .map(|(id, name, value)| {
                        json!({"id": id, "name": name, "value": value,
                               "parent": "/rest/v1/petitionaction/9/",
                               "resource_uri": format!("/rest/v1/actionfield/{id}/")})
                    })
                    .collect();
                objs.push(json!({"id": 901, "name": "a", "value": "z",
                                 "parent": "/rest/v1/petitionaction/10/",
                                 "resource_uri": "/rest/v1/actionfield/901/"}));
                let n = objs.len() as u64;
                ok_json(collection(objs, 0, 100, n, None))
            }
            ("DELETE", p) if p.starts_with("/rest/v1/actionfield/") => {
                let id: u64 = p
                    .trim_start_matches("/rest/v1/actionfield/")
                    .trim_end_matches('/')
                    .parse()
                    .unwrap();
                assert_ne!(id, 901, "deleted a row of another action");
                let mut st = self.state.lock().unwrap();
                let before = st.0.len();
                st.0.retain(|r| r.0 != id);
                if st.0.len() == before {
                    ResponseTemplate::new(404)
                } else {
                    ResponseTemplate::new(204)
                }
            }
            _ => ResponseTemplate::new(599),
        }
    }
}

/// Makes `fake` answer every request to `server`.
async fn mount_fake(server: &MockServer, fake: &FakeAction) {
    Mock::given(wiremock::matchers::any())
        .respond_with(fake.clone())
        .mount(server)
        .await;
}

/// A server where `fake` answers every request.
async fn serve_fake(fake: &FakeAction) -> MockServer {
    let server = MockServer::start().await;
    mount_fake(&server, fake).await;
    server
}

#[tokio::test]
async fn set_patches_the_full_merged_dict_to_the_typed_uri() {
    let before = json!({"a": "1", "multi": ["x", "y"]});
    let after = json!({"a": "1", "multi": ["x", "y"], "b": "2"});
    let server = serve(first_n_then(
        get("/rest/v1/action/9/", ok_json(action_json(9, 1, before))),
        1,
        get(
            "/rest/v1/action/9/",
            ok_json(action_json(9, 1, after.clone())),
        ),
    ))
    .await;
    request("PATCH", "/rest/v1/petitionaction/9/")
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(basic_auth(USERNAME, PASSWORD))
        .and(body_json(json!({"fields": after})))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let a = client(&server)
        .set_action_fields(ActionId(9), &[("b".into(), "2".into())])
        .await
        .unwrap();
    assert_eq!(a.fields["b"].first(), "2");
    assert_eq!(
        seen(&server).await,
        [
            "GET /rest/v1/action/9/",
            "PATCH /rest/v1/petitionaction/9/",
            "GET /rest/v1/action/9/"
        ]
    );
}

#[tokio::test]
async fn setting_values_already_there_writes_nothing() {
    let fake = FakeAction::new(false, json!({"a": "1"}));
    let server = serve_fake(&fake).await;
    let a = client(&server)
        .set_action_fields(ActionId(9), &[("a".into(), "1".into())])
        .await
        .unwrap();
    assert_eq!(a.fields["a"].first(), "1");
    assert_eq!(seen(&server).await, ["GET /rest/v1/action/9/"]);
}

#[tokio::test]
async fn clear_under_replace_semantics_is_one_patch() {
    let fake = FakeAction::new(false, json!({"a": "1", "b": "2", "c": "3"}));
    let server = serve_fake(&fake).await;
    let c = client(&server);
    let a = c
        .clear_action_fields(ActionId(9), Some(&["a".into(), "zz".into()]))
        .await
        .unwrap();
    assert_eq!(a.fields.keys().collect::<Vec<_>>(), ["b", "c"]);
    let a = c.clear_action_fields(ActionId(9), None).await.unwrap();
    assert!(a.fields.is_empty());
    assert_eq!(
        seen(&server).await,
        [
            "GET /rest/v1/action/9/",
            "PATCH /rest/v1/petitionaction/9/",
            "GET /rest/v1/action/9/",
            "GET /rest/v1/action/9/",
            "PATCH /rest/v1/petitionaction/9/",
            "GET /rest/v1/action/9/",
        ]
    );
    // Clearing what is not there writes nothing.
    c.clear_action_fields(ActionId(9), Some(&["a".into()]))
        .await
        .unwrap();
    assert_eq!(seen(&server).await.len(), 7);
}

#[tokio::test]
async fn clear_under_merge_semantics_deletes_rows_and_remembers() {
    let fake = FakeAction::new(true, json!({"a": "1", "b": ["x", "y"], "c": "3"}));
    let server = serve_fake(&fake).await;
    let c = client(&server);
    let a = c
        .clear_action_fields(ActionId(9), Some(&["a".into(), "b".into()]))
        .await
        .unwrap();
    assert_eq!(a.fields.keys().collect::<Vec<_>>(), ["c"]);
    assert_eq!(fake.fields().keys().collect::<Vec<_>>(), ["c"]);
    let mut s = seen(&server).await;
    // The three deletes run in parallel: compare them as a set.
    s[4..7].sort();
    assert_eq!(
        s,
        [
            "GET /rest/v1/action/9/",
            "PATCH /rest/v1/petitionaction/9/",
            "GET /rest/v1/action/9/",
            "GET /rest/v1/actionfield/?parent=9&_limit=100",
            "DELETE /rest/v1/actionfield/500/",
            "DELETE /rest/v1/actionfield/501/",
            "DELETE /rest/v1/actionfield/502/",
            "GET /rest/v1/action/9/",
        ]
    );
    // The second clear goes straight to the rows.
    c.set_action_fields(ActionId(9), &[("d".into(), "4".into())])
        .await
        .unwrap();
    server.reset().await;
    mount_fake(&server, &fake).await;
    let a = c.clear_action_fields(ActionId(9), None).await.unwrap();
    assert!(a.fields.is_empty(), "{:?}", a.fields);
    let s = seen(&server).await;
    assert!(!s.iter().any(|r| r.starts_with("PATCH")), "{s:?}");
    assert_eq!(s.len(), 1 + 1 + 2 + 1, "{s:?}");
}

#[tokio::test]
async fn concurrent_sets_of_one_action_both_survive() {
    for merge in [false, true] {
        let fake = FakeAction::new(merge, json!({}));
        let server = serve_fake(&fake).await;
        let c = client(&server);
        let writes = (0..8).map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                c.set_action_fields(ActionId(9), &[(format!("f{i}"), format!("v{i}"))])
                    .await
            })
        });
        for w in futures::future::join_all(writes).await {
            w.unwrap().unwrap();
        }
        assert_eq!(fake.fields().len(), 8, "merge={merge}: {:?}", fake.fields());
    }
}

#[tokio::test]
async fn invalid_input_sends_nothing() {
    let server = serve([]).await;
    let c = client(&server);
    for (name, value) in [
        ("bad-name", "v"),
        ("", "v"),
        ("ok", "nul\0inside"),
        ("ok", &"x".repeat(64 * 1024 + 1)),
    ] {
        let r = c
            .set_action_fields(
                ActionId(9),
                &[("fine".into(), "v".into()), (name.into(), value.into())],
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{name:?}");
    }
    let r = c
        .clear_action_fields(ActionId(9), Some(&["a b".into()]))
        .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))));
    assert!(seen(&server).await.is_empty());
}

#[tokio::test]
async fn a_missing_action_is_not_found() {
    let server = serve([get("/rest/v1/action/9/", ResponseTemplate::new(404))]).await;
    let r = client(&server)
        .set_action_fields(ActionId(9), &[("a".into(), "1".into())])
        .await;
    assert!(matches!(r, Err(Error::NotFound)));
}

/// Action 9 without fields, however often it is read.
fn action_9() -> Mock {
    get("/rest/v1/action/9/", ok_json(action_json(9, 1, json!({}))))
}

#[tokio::test]
async fn a_rejected_patch_is_retried_but_a_timed_out_one_is_not() {
    let server = serve([action_9()]).await;
    // 429 first (ActionKit did not process it), then accepted.
    let patch = |resp| on("PATCH", "/rest/v1/petitionaction/9/", resp);
    let (busy, accepted) = (ResponseTemplate::new(429), ResponseTemplate::new(202));
    mount_all(&server, first_n_then(patch(busy), 1, patch(accepted))).await;
    let c = client(&server);
    c.set_action_fields(ActionId(9), &[("a".into(), "1".into())])
        .await
        .unwrap();
    let patches = |s: Vec<String>| s.iter().filter(|r| r.starts_with("PATCH")).count();
    assert_eq!(patches(seen(&server).await), 2);

    // Now PATCH hangs past the request timeout: sent, outcome unknown, not repeated.
    server.reset().await;
    catch_all(&server).await;
    let late = ResponseTemplate::new(202).set_delay(Duration::from_secs(2));
    mount_all(&server, [action_9(), patch(late)]).await;
    let c = client_with(&server, |c| c.request_timeout = Duration::from_millis(200));
    let r = c
        .set_action_fields(ActionId(9), &[("a".into(), "1".into())])
        .await;
    assert!(matches!(r, Err(Error::WriteOutcomeUnknown)), "{r:?}");
    assert_eq!(patches(seen(&server).await), 1);
}
