//! Taking actions, against a mock server: the exact `POST /rest/v1/action/` the client
//! sends, both answer shapes, that it is sent once whatever happens (no retry on 500,
//! 503, 429, timeouts or broken connections), how each failure is classified (nothing
//! created, or outcome unknown), and the reads around it (`find_submitted_action`,
//! `page_form`, `allowed_user_fields`) with their exact queries.

use std::time::{Duration, SystemTime};

use super::support::*;
use crate::helpers::client::*;
use actionkit_graphql::actionkit::{
    ActionKind, ActionSubmission, BreakerPolicy, Client, Error, UserId, NON_FIELD,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::{basic_auth, body_json, header};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The body of `action-create-201.json` (SumOfUs cassette `rest_action_200.yml`, an
/// authenticated `POST /rest/v1/action/` recorded against act.sumofus.org in 2016).
fn recorded_201() -> Value {
    json!({
        "akid": ".10555997.eGocuB", "created_at": "2016-02-11T16:34:43.628761",
        "created_user": false, "fields": {"age": "101", "bar": "Bar", "foo": "Foo"},
        "id": 61064998, "ip_address": "88.107.225.185", "is_forwarded": false, "link": null,
        "mailing": null, "opq_id": "", "page": "/rest/v1/petitionpage/8651/",
        "redirect_url": "/cms/thanks/foo-bar/?action_id=61064998&akid=.10555997.eGocuB&ar=1&rd=1",
        "referring_mailing": null, "referring_user": null,
        "resource_uri": "/rest/v1/petitionaction/61064998/", "source": "restful_api",
        "status": "complete", "subscribed_user": false, "taf_emails_sent": null,
        "type": "Petition", "updated_at": "2016-02-11T16:34:43.660848",
        "user": "/rest/v1/user/10555997/"
    })
}

fn submission() -> ActionSubmission {
    ActionSubmission {
        page: "foo-bar".into(),
        email: Some("foo+113@example.com".into()),
        name: Some("Pablo José Francisco de María".into()),
        postal: Some("W1".into()),
        address1: Some("The Lodge".into()),
        address2: Some("High Street".into()),
        city: Some("London".into()),
        country: Some("United Kingdom".into()),
        user_fields: vec![("es".into(), "1".into())],
        action_fields: vec![
            ("age".into(), "101".into()),
            ("foo".into(), "Foo".into()),
            ("bar".into(), "Bar".into()),
            ("issue".into(), "water".into()),
            ("issue".into(), "bees".into()),
        ],
        referring_akid: Some(".7.abcdef".into()),
        source: Some("email-0612".into()),
        ..ActionSubmission::default()
    }
}

/// What the client must send for [`submission`].
fn expected_body() -> Value {
    json!({
        "page": "foo-bar", "email": "foo+113@example.com",
        "name": "Pablo José Francisco de María", "postal": "W1",
        "address1": "The Lodge", "address2": "High Street", "city": "London",
        "country": "United Kingdom", "user_es": "1",
        "action_age": "101", "action_foo": "Foo", "action_bar": "Bar",
        "action_issue": ["water", "bees"],
        "referring_akid": ".7.abcdef", "source": "email-0612"
    })
}

/// One answer to the POST, expected exactly once.
fn post_once(resp: ResponseTemplate) -> Mock {
    on("POST", "/rest/v1/action/", resp).expect(1)
}

async fn posts(server: &MockServer) -> usize {
    seen(server)
        .await
        .iter()
        .filter(|r| r.starts_with("POST "))
        .count()
}

/// Asserts that submitting [`submission`] through `c` is an unknown outcome, after
/// exactly one POST.
async fn assert_unknown_after_one_post(c: &Client, server: &MockServer) {
    let got = c.submit_action(&submission()).await;
    assert!(matches!(got, Err(Error::WriteOutcomeUnknown)), "{got:?}");
    assert_eq!(posts(server).await, 1);
}

#[tokio::test]
async fn the_request_is_pinned_and_the_authenticated_answer_decoded() {
    let created = ResponseTemplate::new(201)
        .insert_header(
            "location",
            "https://act.sumofus.org/rest/v1/petitionaction/61064998/",
        )
        .set_body_json(recorded_201());
    let server = serve([request("POST", "/rest/v1/action/")
        .and(basic_auth(USERNAME, PASSWORD))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_json(expected_body()))
        .respond_with(created)
        .expect(1)])
    .await;
    let c = client(&server);
    let done = c.submit_action(&submission()).await.unwrap();
    assert_eq!(done.action.id.0, 61064998);
    assert_eq!(done.action.kind, ActionKind::Petition);
    assert_eq!(done.action.user_id(), UserId(10555997));
    assert_eq!(done.action.page, 8651);
    assert_eq!(done.action.fields["age"].first(), "101");
    assert_eq!(
        done.redirect_url.as_deref(),
        Some("/cms/thanks/foo-bar/?action_id=61064998&akid=.10555997.eGocuB&ar=1&rd=1")
    );
    assert_eq!(c.totals().calls, 1);
}

#[tokio::test]
async fn event_rsvp_and_akid_go_under_their_wire_names() {
    let wire = json!({
        "page": "town-hall-rsvp", "akid": "12.5.abcdef", "event_id": 31,
        "role": "attendee", "zip": "94612", "first_name": "Rosa", "last_name": "D",
        "state": "CA", "region": "CA", "phone": "5105550000", "lang": "100"
    });
    let created = json!({
        "akid": "12.5.abcdef", "created_at": "2024-05-01T10:00:00.5", "fields": {},
        "id": 77, "page": "/rest/v1/eventsignuppage/23/",
        "resource_uri": "/rest/v1/eventsignupaction/77/",
        "signup": "/rest/v1/eventsignup/77/", "type": "EventSignup",
        "user": "/rest/v1/user/5/", "redirect_url": null
    });
    let server = serve([request("POST", "/rest/v1/action/")
        .and(body_json(wire))
        .respond_with(ResponseTemplate::new(201).set_body_json(created))
        .expect(1)])
    .await;
    let s = ActionSubmission {
        page: "town-hall-rsvp".into(),
        akid: Some("12.5.abcdef".into()),
        event_id: Some(31),
        role: Some("attendee".into()),
        zip: Some("94612".into()),
        first_name: Some("Rosa".into()),
        last_name: Some("D".into()),
        state: Some("CA".into()),
        region: Some("CA".into()),
        phone: Some("5105550000".into()),
        lang: Some("100".into()),
        ..ActionSubmission::default()
    };
    let done = client(&server).submit_action(&s).await.unwrap();
    assert_eq!(done.action.kind, ActionKind::EventSignup);
    assert_eq!(done.action.signup, Some(77));
    assert_eq!(done.redirect_url, None);
}

#[tokio::test]
async fn the_unauthenticated_answer_is_completed_with_one_read() {
    let reduced = json!({
        "action_id": 61064998, "akid": ".10555997.eGocuB", "rd": 1,
        "redirect_url": "/cms/thanks/foo-bar/?action_id=61064998&akid=.10555997.eGocuB&ar=1&rd=1"
    });
    let mut read_back = recorded_201();
    read_back.as_object_mut().unwrap().remove("redirect_url");
    let server = serve([
        post_once(ResponseTemplate::new(201).set_body_json(reduced)),
        get_once("/rest/v1/action/61064998/", ok_json(read_back)),
    ])
    .await;
    let c = client(&server);
    let done = c.submit_action(&submission()).await.unwrap();
    assert_eq!(done.action.id.0, 61064998);
    assert!(done.redirect_url.unwrap().contains("rd=1"));
    assert_eq!(c.totals().calls, 2);
}

#[tokio::test]
async fn a_created_action_that_cannot_be_read_is_an_unknown_outcome() {
    for answer in [
        // Reduced answer, then the read fails.
        ResponseTemplate::new(201).set_body_json(json!({"action_id": 5, "akid": ".1.abcdef"})),
        // Not JSON.
        ResponseTemplate::new(201).set_body_string("<html>thanks</html>"),
        // JSON naming no action.
        ResponseTemplate::new(201).set_body_json(json!({"ok": true})),
    ] {
        let server = serve([
            post_once(answer),
            get("/rest/v1/action/5/", ResponseTemplate::new(404)),
        ])
        .await;
        assert_unknown_after_one_post(&client(&server), &server).await;
    }
}

#[tokio::test]
async fn failures_after_sending_are_unknown_and_never_retried() {
    const TRY_LATER: &str =
        r#"{"error": "Sorry, this request could not be processed. Please try again later."}"#;
    for resp in [
        ResponseTemplate::new(500).set_body_string("<h1>Server Error (500)</h1>"),
        // The body that makes reads retry: a write is still not repeated.
        ResponseTemplate::new(500).set_body_string(TRY_LATER),
        ResponseTemplate::new(502),
        ResponseTemplate::new(503).set_body_string("Service Temporarily Unavailable"),
        // No answer within the request timeout.
        ResponseTemplate::new(201)
            .set_body_json(recorded_201())
            .set_delay(Duration::from_secs(2)),
    ] {
        let server = serve([post_once(resp)]).await;
        let c = client_with(&server, |c| c.request_timeout = Duration::from_millis(300));
        assert_unknown_after_one_post(&c, &server).await;
        assert_eq!((c.totals().calls, c.totals().retries), (1, 0));
    }
}

#[tokio::test]
async fn the_operation_deadline_after_sending_is_unknown_too() {
    let late = ResponseTemplate::new(201)
        .set_body_json(recorded_201())
        .set_delay(Duration::from_secs(2));
    let server = serve([post_once(late)]).await;
    let c = client_with(&server, |c| {
        c.operation_deadline = Duration::from_millis(300);
    });
    assert_unknown_after_one_post(&c, &server).await;
}

#[tokio::test]
async fn refusals_before_processing_create_nothing_and_are_not_retried() {
    type Expected = fn(&Error) -> bool;
    let cases: Vec<(ResponseTemplate, Expected)> = vec![
        (
            ResponseTemplate::new(429).set_body_string(
                r#"{"error": "Your application is sending too many simultaneous requests"}"#,
            ),
            |e| matches!(e, Error::RateLimited),
        ),
        (
            ResponseTemplate::new(401).insert_header("content-type", "text/html"),
            |e| matches!(e, Error::Unauthorized),
        ),
        (ResponseTemplate::new(403), |e| {
            matches!(e, Error::Unauthorized)
        }),
        (ResponseTemplate::new(405), |e| {
            matches!(e, Error::Status { status: 405 })
        }),
    ];
    for (resp, expected) in cases {
        let server = serve([post_once(resp)]).await;
        let c = client(&server);
        let got = c.submit_action(&submission()).await.unwrap_err();
        assert!(expected(&got), "{got:?}");
        assert_eq!(posts(&server).await, 1);
        assert_eq!(c.totals().retries, 0);
    }
}

#[tokio::test]
async fn validation_errors_are_keyed_by_the_submissions_names() {
    let cases = [
        // ActionKit's action-processing shape (ControlShift `error.json`).
        (
            json!({"errors": {"zip": ["There seems to be a problem with what you entered for ZIP Code."]}}),
            vec![(
                "zip",
                "There seems to be a problem with what you entered for ZIP Code.",
            )],
        ),
        // Unknown page (`action-create-unknown-page-400.json`): a string, not a list.
        (
            json!({"page": "Unable to find a page for processing. You sent page=i-do-not-exist-xyz-123."}),
            vec![(
                "page",
                "Unable to find a page for processing. You sent page=i-do-not-exist-xyz-123.",
            )],
        ),
        // Tastypie's `{"<resource>": {field: [..]}}`.
        (
            json!({"action": {"email": ["Enter a valid email address."]}}),
            vec![("email", "Enter a valid email address.")],
        ),
        // An AKID that does not verify, custom fields, a field a submission has not.
        (
            json!({"errors": {"mailing_id": ["Unable to associate this mailing ID with account."],
                              "user_age": ["Enter a whole number."],
                              "plus4": ["Ensure this value has at most 4 characters."]}}),
            vec![
                (
                    NON_FIELD,
                    "plus4: Ensure this value has at most 4 characters.",
                ),
                ("akid", "Unable to associate this mailing ID with account."),
                ("user_age", "Enter a whole number."),
            ],
        ),
        (
            json!({"errors": ["Something is wrong."]}),
            vec![(NON_FIELD, "Something is wrong.")],
        ),
    ];
    for (body, expected) in cases {
        let server = serve([post_once(ResponseTemplate::new(400).set_body_json(&body))]).await;
        match client(&server).submit_action(&submission()).await {
            Err(Error::BadRequest { messages }) => {
                let got: Vec<(&str, &str)> = messages
                    .iter()
                    .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
                    .collect();
                let mut want = expected.clone();
                want.sort();
                assert_eq!(got, want, "{body}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_submissions_send_nothing() {
    let server = serve([]).await;
    let c = client(&server);
    for bad in [
        ActionSubmission {
            page: "p".into(),
            ..ActionSubmission::default()
        },
        ActionSubmission {
            email: Some("a@example.org".into()),
            ..ActionSubmission::default()
        },
        ActionSubmission {
            page: "p".into(),
            email: Some("a@example.org".into()),
            user_fields: vec![("bad name".into(), "x".into())],
            ..ActionSubmission::default()
        },
    ] {
        assert!(matches!(
            c.submit_action(&bad).await,
            Err(Error::InvalidInput(_))
        ));
    }
    assert!(seen(&server).await.is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_and_not_retried() {
    let c = client_of_a_closed_port();
    assert!(matches!(
        c.submit_action(&submission()).await,
        Err(Error::Transport(_))
    ));
    assert_eq!((c.totals().calls, c.totals().retries), (1, 0));
}

#[tokio::test]
async fn a_connection_broken_after_sending_is_unknown_and_not_retried() {
    // A server that reads the request, then hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = vec![0u8; 64 * 1024];
            let _ = tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await;
            let _ = sock.shutdown().await;
        }
    });
    let c = actionkit_graphql::actionkit::Client::new(config(&format!("http://{addr}"))).unwrap();
    assert!(matches!(
        c.submit_action(&submission()).await,
        Err(Error::WriteOutcomeUnknown)
    ));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!((c.totals().calls, c.totals().retries), (1, 0));
}

#[tokio::test]
async fn an_open_breaker_sends_nothing() {
    let server = serve([get("/rest/v1/user/1/", ResponseTemplate::new(500))]).await;
    let c = client_with(&server, |c| {
        c.retry = actionkit_graphql::actionkit::RetryPolicy::none();
        c.breaker = BreakerPolicy {
            failure_threshold: 1,
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(30),
        };
    });
    assert!(c.user(UserId(1)).await.is_err());
    assert!(matches!(
        c.submit_action(&submission()).await,
        Err(Error::CircuitOpen)
    ));
    assert_eq!(posts(&server).await, 0);
}

// ---- find_submitted_action --------------------------------------------------

/// ActionKit's naive UTC rendering of `t`.
fn naive(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn action_at(id: u64, user: u64, created: SystemTime) -> Value {
    let mut a = action_json(id, user, json!({}));
    a["created_at"] = json!(naive(created));
    a
}

/// A server for the three calls of a lookup of [`submission`] by email, whose newest
/// action (of `actions`) is asked for once.
/// A submission by a member's AKID (no email) on `page`.
fn by_akid(page: &str, akid: &str) -> ActionSubmission {
    ActionSubmission {
        page: page.into(),
        akid: Some(akid.into()),
        ..ActionSubmission::default()
    }
}

/// Asserts that `c` finds no action made for `s` from now on.
async fn assert_none_found(c: &Client, s: &ActionSubmission) {
    let found = c.find_submitted_action(s, SystemTime::now()).await.unwrap();
    assert_eq!(found, None, "{s:?}");
}

async fn serve_lookup(actions: Vec<Value>) -> MockServer {
    let mut user = user_json(5);
    user["email"] = json!("Foo+113@example.com");
    let n = actions.len() as u64;
    serve([
        get_once(
            "/rest/v1/user/?email=foo%2B113%40example.com",
            listed(vec![user]),
        ),
        get_once(
            "/rest/v1/page/?name=foo-bar",
            listed(vec![page_json(12, "foo-bar")]),
        ),
        get_once(
            "/rest/v1/action/?user=5&page=12&order_by=-created_at&_limit=1",
            ok_json(collection(actions, 0, 1, n, None)),
        ),
    ])
    .await
}

#[tokio::test]
async fn find_takes_the_newest_action_in_the_window_in_three_calls() {
    let since = SystemTime::now();
    // ActionKit's clock 30 s behind ours: still the submission's action.
    let server = serve_lookup(vec![action_at(900, 5, since - Duration::from_secs(30))]).await;
    let c = client(&server);
    let found = c
        .find_submitted_action(&submission(), since)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id.0, 900);
    assert_eq!(c.totals().calls, 3);
}

#[tokio::test]
async fn find_ignores_an_older_action_and_answers_none() {
    let since = SystemTime::now();
    let server = serve_lookup(vec![action_at(899, 5, since - Duration::from_secs(3600))]).await;
    let c = client(&server);
    assert_eq!(
        c.find_submitted_action(&submission(), since).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn find_without_the_member_or_page_answers_none() {
    let server = serve([get_once("/rest/v1/user/", listed(vec![]))]).await;
    let c = client(&server);
    assert_none_found(&c, &submission()).await;
    // By AKID: no user lookup; a page that does not exist ends it.
    get_once("/rest/v1/page/?name=nowhere", listed(vec![]))
        .mount(&server)
        .await;
    assert_none_found(&c, &by_akid("nowhere", "3.5.abcdef")).await;
    assert_eq!(c.totals().calls, 2);
}

#[tokio::test]
async fn find_by_akid_with_page_name_traversal_is_one_call() {
    let since = SystemTime::now();
    let newest = collection(
        vec![action_at(901, 5, since + Duration::from_secs(1))],
        0,
        1,
        1,
        None,
    );
    let server = serve_with_schemas(
        true,
        [get_once(
            "/rest/v1/action/?user=5&page__name=foo-bar&order_by=-created_at&_limit=1",
            ok_json(newest),
        )],
    )
    .await;
    let c = client(&server);
    c.probe().await;
    let before = c.totals().calls;
    let found = c
        .find_submitted_action(&by_akid("foo-bar", "3.5.abcdef"), since)
        .await
        .unwrap();
    assert_eq!(found.map(|a| a.id.0), Some(901));
    assert_eq!(c.totals().calls - before, 1);
}

#[tokio::test]
async fn find_checks_the_akid_hash_when_it_has_the_secret() {
    let server = serve([]).await;
    let c = client_with(&server, |c| {
        c.akid_secret = Some(secrecy::SecretString::from("emulator-secret"));
    });
    assert_none_found(&c, &by_akid("foo-bar", ".103007.AAAAAA")).await;
    assert!(seen(&server).await.is_empty());
}

// ---- page_form and allowed_user_fields -----------------------------------------

#[tokio::test]
async fn page_form_reads_required_fields_in_one_call_and_primes_the_page_cache() {
    let mut page = page_json(20, "anna");
    page["required_fields"] = json!([
        {"id": 2, "name": "zip", "resource_uri": "/rest/v1/formfield/2/"},
        {"id": 3, "name": "first_name", "resource_uri": "/rest/v1/formfield/3/"},
        {"id": 9, "name": "mobile_phone", "resource_uri": "/rest/v1/formfield/9/"},
        {"id": 10, "name": "plus4", "resource_uri": "/rest/v1/formfield/10/"}
    ]);
    page["goal"] = json!(1000);
    page["goal_type"] = json!("actions");
    let server = serve([
        get_once("/rest/v1/page/?name=anna", listed(vec![page])),
        get_once(
            "/rest/v1/action/?user=5&page=20&order_by=-created_at&_limit=1",
            ok_json(collection(vec![], 0, 1, 0, None)),
        ),
    ])
    .await;
    let c = client(&server);
    let form = c.page_form("anna").await.unwrap().unwrap();
    assert_eq!(form.page.id.0, 20);
    assert_eq!(
        form.required_fields,
        vec!["zip", "first_name", "phone", "plus4"]
    );
    assert_eq!(c.totals().calls, 1);
    // The lookup that follows finds the page id in the cache.
    assert_none_found(&c, &by_akid("anna", ".5.abcdef")).await;
    assert_eq!(c.totals().calls, 2);

    // No page of that name (a prefix match is not it).
    get(
        "/rest/v1/page/?name=ann",
        listed(vec![page_json(20, "anna")]),
    )
    .mount(&server)
    .await;
    assert_eq!(c.page_form("ann").await.unwrap(), None);
}

#[tokio::test]
async fn allowed_user_fields_reads_every_page_then_caches() {
    let row =
        |n: &str| json!({"name": n, "resource_uri": format!("/rest/v1/alloweduserfield/{n}/")});
    let next = Some("/rest/v1/alloweduserfield/?_offset=2&_limit=2".into());
    let first = collection(vec![row("age"), row("color")], 0, 2, 3, next);
    let server = serve([
        get_once("/rest/v1/alloweduserfield/?_limit=100", ok_json(first)),
        get_once(
            "/rest/v1/alloweduserfield/?_offset=2&_limit=2",
            ok_json(collection(vec![row("food")], 2, 2, 3, None)),
        ),
    ])
    .await;
    let c = client(&server);
    assert_eq!(
        c.allowed_user_fields().await.unwrap(),
        vec!["age", "color", "food"]
    );
    assert_eq!(
        c.allowed_user_fields().await.unwrap(),
        vec!["age", "color", "food"]
    );
    assert_eq!(c.totals().calls, 2);
}
