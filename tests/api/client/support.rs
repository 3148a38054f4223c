//! Mocks of the client tests in one line each. The tests pin many exact requests; written
//! as a seven-line `Mock` chain apiece, what differs between two of them (the path, the
//! raw query, the answer, how often) was hard to see among what does not.

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use actionkit_graphql::actionkit::Client;

use crate::helpers::client::{catch_all, collection, config, mount_schemas, ok_json, raw_query};

/// A `verb` request to `target`, `path` or `path?query`. With a `?` the raw query must
/// match byte for byte; without one any query matches.
pub(crate) fn request(verb: &str, target: &str) -> MockBuilder {
    match target.split_once('?') {
        Some((p, q)) => Mock::given(method(verb)).and(path(p)).and(raw_query(q)),
        None => Mock::given(method(verb)).and(path(target)),
    }
}

/// A `verb` request to `target` (see [`request`]), answered with `resp`.
pub(crate) fn on(verb: &str, target: &str, resp: ResponseTemplate) -> Mock {
    request(verb, target).respond_with(resp)
}

/// A GET of `target` (see [`on`]).
pub(crate) fn get(target: &str, resp: ResponseTemplate) -> Mock {
    on("GET", target, resp)
}

/// A GET of `target` that must be asked exactly once.
pub(crate) fn get_once(target: &str, resp: ResponseTemplate) -> Mock {
    get(target, resp).expect(1)
}

/// `first` answers the first `n` requests it matches, `then` every later one.
pub(crate) fn first_n_then(first: Mock, n: u64, then: Mock) -> [Mock; 2] {
    [first.up_to_n_times(n).with_priority(1), then]
}

/// Mounts every mock, in order.
pub(crate) async fn mount_all(server: &MockServer, mocks: impl IntoIterator<Item = Mock>) {
    for mock in mocks {
        mock.mount(server).await;
    }
}

/// A whole list in one page of ActionKit's default 20: offset 0, no next link, the
/// total being the number of objects.
pub(crate) fn listed(objects: Vec<Value>) -> ResponseTemplate {
    let total = objects.len() as u64;
    ok_json(collection(objects, 0, 20, total, None))
}

/// A mock server answering `mocks`, and 599 naming any other request (see `catch_all`).
pub(crate) async fn serve(mocks: impl IntoIterator<Item = Mock>) -> MockServer {
    let server = MockServer::start().await;
    catch_all(&server).await;
    mount_all(&server, mocks).await;
    server
}

/// [`serve`], with the three schemas the probe reads (see `mount_schemas`).
pub(crate) async fn serve_with_schemas(
    permissive: bool,
    mocks: impl IntoIterator<Item = Mock>,
) -> MockServer {
    let server = serve(mocks).await;
    mount_schemas(&server, permissive).await;
    server
}

/// A client (of the tests' [`config`]) for a port nothing listens on: bound, then
/// dropped, so connecting is refused.
pub(crate) fn client_of_a_closed_port() -> Client {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    Client::new(config(&format!("http://{addr}"))).unwrap()
}
