//! Retries, deadlines, error mapping and call accounting, against a mock server.

use std::time::{Duration, Instant};

use super::support::*;
use crate::helpers::client::*;
use actionkit_graphql::actionkit::{
    Error, PageId, RetryPolicy, UpstreamCounter, UserId, NON_FIELD,
};
use wiremock::{MockServer, ResponseTemplate};

const TRY_LATER: &str =
    r#"{"error": "Sorry, this request could not be processed. Please try again later."}"#;

/// A server answering `first` to the first `n` requests for user 1, then the user.
async fn flaky(first: ResponseTemplate, n: u64) -> MockServer {
    let user = get("/rest/v1/user/1/", ok_json(user_json(1)));
    serve(first_n_then(get("/rest/v1/user/1/", first), n, user)).await
}

#[tokio::test]
async fn retries_429_503_and_try_again_later_500() {
    for (status, body) in [(429, ""), (503, ""), (500, TRY_LATER)] {
        let server = flaky(ResponseTemplate::new(status).set_body_string(body), 2).await;
        let c = client(&server);
        let counter = UpstreamCounter::new();
        let u = counter.scope(c.user(UserId(1))).await.unwrap();
        assert!(u.is_some(), "{status}");
        assert_eq!((counter.calls(), counter.retries()), (3, 2), "{status}");
        assert_eq!(c.totals().calls, 3);
    }
}

#[tokio::test]
async fn a_plain_500_is_not_retried() {
    let boom = ResponseTemplate::new(500).set_body_string(r#"{"error": "boom"}"#);
    let server = serve([get_once("/rest/v1/user/1/", boom)]).await;
    assert!(matches!(
        client(&server).user(UserId(1)).await,
        Err(Error::Status { status: 500 })
    ));
}

#[tokio::test]
async fn retries_end_in_rate_limited_or_status() {
    // Each asked 1 + max_retries (3) times.
    let server = serve([
        get("/rest/v1/user/1/", ResponseTemplate::new(429)).expect(4),
        get("/rest/v1/user/2/", ResponseTemplate::new(503)).expect(4),
    ])
    .await;
    let c = client(&server);
    assert!(matches!(c.user(UserId(1)).await, Err(Error::RateLimited)));
    assert!(matches!(
        c.user(UserId(2)).await,
        Err(Error::Status { status: 503 })
    ));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = flaky(
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
        1,
    )
    .await;
    let started = Instant::now();
    client(&server).user(UserId(1)).await.unwrap().unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_gives_up_at_once() {
    let far = ResponseTemplate::new(429).insert_header("retry-after", "30");
    let server = serve([get_once("/rest/v1/user/1/", far)]).await;
    let c = client_with(&server, |c| c.operation_deadline = Duration::from_secs(2));
    let started = Instant::now();
    assert!(matches!(c.user(UserId(1)).await, Err(Error::RateLimited)));
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn the_operation_deadline_holds_against_a_slow_upstream() {
    let slow = ok_json(user_json(1)).set_delay(Duration::from_secs(3));
    let server = serve([get("/rest/v1/user/1/", slow)]).await;
    let c = client_with(&server, |c| {
        c.operation_deadline = Duration::from_millis(300);
        c.request_timeout = Duration::from_millis(100);
    });
    let started = Instant::now();
    assert!(matches!(c.user(UserId(1)).await, Err(Error::Timeout)));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // Per-request timeouts inside the deadline were retried.
    assert!(c.totals().retries >= 1, "{:?}", c.totals());
}

#[tokio::test]
async fn transport_errors_on_reads_are_retried_then_reported() {
    let c = client_of_a_closed_port();
    match c.user(UserId(1)).await {
        Err(Error::Transport(msg)) => {
            assert!(
                !msg.contains(PASSWORD) && !msg.contains("127.0.0.1"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.totals().calls, 4);
    assert_eq!(c.totals().retries, 3);
}

#[tokio::test]
async fn statuses_map_to_errors() {
    let cases: Vec<(u64, ResponseTemplate)> = vec![
        (
            1,
            ResponseTemplate::new(401).insert_header("content-type", "text/html"),
        ),
        (2, ResponseTemplate::new(403)),
        (
            3,
            ResponseTemplate::new(409).set_body_string(r#"{"errors": {"email": ["x"]}}"#),
        ),
        (
            4,
            ResponseTemplate::new(200).set_body_string(r#"{"id": "not a number"}"#),
        ),
        (
            5,
            ResponseTemplate::new(301).insert_header("location", "https://elsewhere.example/"),
        ),
    ];
    let server = serve(
        cases
            .into_iter()
            .map(|(id, resp)| get_once(&format!("/rest/v1/page/{id}/"), resp)),
    )
    .await;
    let c = client_with(&server, |c| c.retry = RetryPolicy::none());
    assert!(matches!(c.page(PageId(1)).await, Err(Error::Unauthorized)));
    assert!(matches!(c.page(PageId(2)).await, Err(Error::Unauthorized)));
    assert!(matches!(
        c.page(PageId(3)).await,
        Err(Error::Status { status: 409 })
    ));
    match c.page(PageId(4)).await {
        Err(Error::Decode { path, .. }) => assert_eq!(path, "id"),
        other => panic!("{other:?}"),
    }
    // Redirects are not followed (they could carry the credential elsewhere).
    assert!(matches!(
        c.page(PageId(5)).await,
        Err(Error::Status { status: 301 })
    ));
}

#[tokio::test]
async fn bad_request_bodies_become_field_messages() {
    let bodies = [
        r#"{"errors": {"zip": ["bad zip"]}}"#,
        r#"{"errors": ["not allowed"]}"#,
        r#"{"page": {"name": ["Enter a valid 'slug'"]}}"#,
        r#"{"page": "Unable to find a page for processing."}"#,
        r#"{"error": "The 'id' field does not allow filtering."}"#,
        "Invalid limit provided. Please provide a positive integer.",
    ];
    let server = serve(bodies.iter().enumerate().map(|(i, body)| {
        let bad = ResponseTemplate::new(400).set_body_string(*body);
        get(&format!("/rest/v1/page/{}/", i + 1), bad)
    }))
    .await;
    let c = client(&server);
    let mut got = Vec::new();
    for i in 1..=bodies.len() as u64 {
        match c.page(PageId(i)).await {
            Err(Error::BadRequest { messages }) => got.push(messages),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got[0]["zip"], ["bad zip"]);
    assert_eq!(got[1][NON_FIELD], ["not allowed"]);
    assert_eq!(got[2]["name"], ["Enter a valid 'slug'"]);
    assert_eq!(got[3]["page"], ["Unable to find a page for processing."]);
    assert_eq!(
        got[4][NON_FIELD],
        ["The 'id' field does not allow filtering."]
    );
    assert_eq!(
        got[5][NON_FIELD],
        ["Invalid limit provided. Please provide a positive integer."]
    );
    // 400s are not retried.
    assert_eq!(seen(&server).await.len(), bodies.len());
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let elsewhere = Some("https://evil.example/rest/v1/user/?_offset=1&_limit=1".into());
    let first = collection(vec![user_json(1)], 0, 1, 2, elsewhere);
    let server = serve_with_schemas(true, [get("/rest/v1/user/", ok_json(first))]).await;
    let c = client(&server);
    c.probe().await;
    match c.users(&[UserId(1), UserId(2)]).await {
        Err(Error::Decode { path, .. }) => assert_eq!(path, "meta.next"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn errors_never_show_the_password_or_url() {
    let broken = ResponseTemplate::new(200).set_body_string("{");
    let server = serve([get("/rest/v1/user/1/", broken)]).await;
    let c = client_with(&server, |c| {
        c.operation_deadline = Duration::from_millis(200);
    });
    let e = c.user(UserId(1)).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains(PASSWORD) && !shown.contains(&server.uri()),
        "{shown}"
    );
    let shown = format!("{:?}", config(&server.uri()));
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[tokio::test]
async fn a_scoped_counter_counts_a_whole_batch() {
    let server =
        serve((1..=5u64).map(|id| get(&format!("/rest/v1/user/{id}/"), ok_json(user_json(id)))))
            .await;
    let c = client(&server);
    let op = UpstreamCounter::new();
    let ids: Vec<UserId> = (1..=5).map(UserId).collect();
    op.scope(c.users(&ids)).await.unwrap();
    c.user(UserId(1)).await.unwrap(); // outside the scope
    assert_eq!((op.calls(), op.retries()), (5, 0));
    assert_eq!(c.totals().calls, 6);
}

/// Collects everything a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_debug_span_per_call_with_route_status_and_retries_but_no_email() {
    let unavailable = get("/rest/v1/user/", ResponseTemplate::new(503));
    let server = serve(first_n_then(
        unavailable,
        1,
        get("/rest/v1/user/", listed(vec![])),
    ))
    .await;
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    client(&server)
        .user_by_email("secret.person+1@example.com")
        .await
        .unwrap();
    let logs = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let closes: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("upstream.request") && l.contains("close"))
        .collect();
    assert_eq!(closes.len(), 1, "{logs}");
    let close = closes[0];
    for expected in [
        "http.request.method=GET",
        "http.route=\"/rest/v1/user/\"",
        "http.response.status_code=200",
        "upstream.retries=1",
        "duration_ms=",
    ] {
        assert!(close.contains(expected), "{expected} missing in {close}");
    }
    for secret in ["secret.person", "example.com", "%40", PASSWORD, "Basic "] {
        assert!(!logs.contains(secret), "{secret} leaked into logs:\n{logs}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_not_buffered_forever() {
    let huge = ResponseTemplate::new(200).set_body_bytes(vec![b' '; 33 * 1024 * 1024]);
    let server = serve([get_once("/rest/v1/user/1/", huge)]).await;
    match client(&server).user(UserId(1)).await {
        Err(Error::Decode { message, .. }) => assert!(message.contains("larger than"), "{message}"),
        other => panic!("{other:?}"),
    }
}
