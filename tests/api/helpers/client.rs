//! Shared helpers of the client tests: clients pointed at a wiremock server, a
//! catch-all that names unexpected requests, exact raw-query matching, and JSON in
//! ActionKit's shapes.

use std::time::Duration;

use actionkit_graphql::actionkit::{Client, ClientConfig, RetryPolicy};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

pub(crate) const USERNAME: &str = "staff";
pub(crate) const PASSWORD: &str = "s3cr3t-pass";

/// A config for `base` with fast retries (tests should not sleep for seconds).
pub(crate) fn config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::new(
        base.parse().unwrap(),
        USERNAME,
        SecretString::from(PASSWORD),
    );
    c.retry = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    };
    c.operation_deadline = Duration::from_secs(10);
    c
}

pub(crate) fn client(server: &MockServer) -> Client {
    Client::new(config(&server.uri())).unwrap()
}

pub(crate) fn client_with(server: &MockServer, tweak: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut c = config(&server.uri());
    tweak(&mut c);
    Client::new(c).unwrap()
}

/// Answers every request no other mock took with 599 naming it, so a mismatch fails
/// readably (octocrab's `mock_error` idea). Mount it first; its priority is lowest.
pub(crate) async fn catch_all(server: &MockServer) {
    Mock::given(any())
        .respond_with(|req: &Request| {
            ResponseTemplate::new(599)
                .set_body_string(format!("no mock for {} {}", req.method, req.url))
        })
        .with_priority(255)
        .mount(server)
        .await;
}

/// Matches the raw query string exactly (order, encoding and all).
pub(crate) struct RawQuery(pub String);

impl Match for RawQuery {
    fn matches(&self, request: &Request) -> bool {
        request.url.query() == Some(self.0.as_str())
    }
}

pub(crate) fn raw_query(q: impl Into<String>) -> RawQuery {
    RawQuery(q.into())
}

/// The requests the server saw, as `METHOD path?query`.
pub(crate) async fn seen(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| match r.url.query() {
            Some(q) => format!("{} {}?{}", r.method, r.url.path(), q),
            None => format!("{} {}", r.method, r.url.path()),
        })
        .collect()
}

pub(crate) fn user_json(id: u64) -> Value {
    json!({
        "actions": format!("/rest/v1/action/?user={id}"),
        "city": "Philadelphia", "country": "United States",
        "created_at": "2009-09-02T18:42:54", "email": format!("user{id}@example.com"),
        "fields": {}, "first_name": "Ada", "id": id, "last_name": "L",
        "resource_uri": format!("/rest/v1/user/{id}/"), "state": "PA",
        "subscription_status": "subscribed", "token": format!(".{id}.abcdef"),
        "updated_at": "2013-10-02T00:56:36", "zip": "19130"
    })
}

pub(crate) fn action_json(id: u64, user: u64, fields: Value) -> Value {
    json!({
        "akid": format!(".{user}.eGocuB"), "created_at": "2016-02-11T16:34:43.628761",
        "fields": fields, "id": id, "page": "/rest/v1/petitionpage/12/",
        "resource_uri": format!("/rest/v1/petitionaction/{id}/"), "source": "restful_api",
        "status": "complete", "type": "Petition", "updated_at": "2016-02-11T16:34:43.660848",
        "user": format!("/rest/v1/user/{user}/")
    })
}

pub(crate) fn page_json(id: u64, name: &str) -> Value {
    json!({
        "created_at": "2009-06-26T18:14:25", "hidden": false, "id": id, "name": name,
        "resource_uri": format!("/rest/v1/petitionpage/{id}/"), "status": "active",
        "tags": [{"name": "bees", "resource_uri": "/rest/v1/tag/1/"}],
        "title": "Save the bees", "type": "Petition", "url": ""
    })
}

pub(crate) fn collection(
    objects: Vec<Value>,
    offset: u64,
    limit: u64,
    total: u64,
    next: Option<String>,
) -> Value {
    json!({
        "meta": {"limit": limit, "next": next, "offset": offset, "previous": null, "total_count": total},
        "objects": objects
    })
}

pub(crate) fn ok_json(v: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(v)
}

/// Schemas: `permissive` allows `id__in`, `user__in` and `page__name`; otherwise the
/// documented 2012 user schema and no `in` on ids.
pub(crate) async fn mount_schemas(server: &MockServer, permissive: bool) {
    use wiremock::matchers::{method, path};
    let (user, action, page) = if permissive {
        (
            json!({"filtering": {"id": ["exact", "in"], "email": ["exact"]}}),
            json!({"filtering": {"id": "all", "user": "all", "page": "all with relations"}}),
            json!({"filtering": {"id": ["exact", "in"], "name": ["exact"]}}),
        )
    } else {
        (
            json!({"filtering": {"country": "all", "email": ["exact"], "language": "all with relations",
                                 "last_name": "all", "source": "all", "state": "all",
                                 "subscription_status": ["exact", "in"], "zip": "all"}}),
            json!({"filtering": {"user": ["exact"], "page": ["exact"]}}),
            json!({"filtering": {"name": ["exact"]}}),
        )
    };
    for (p, body) in [
        ("/rest/v1/user/schema/", user),
        ("/rest/v1/action/schema/", action),
        ("/rest/v1/page/schema/", page),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ok_json(body))
            .mount(server)
            .await;
    }
}
