//! Taking actions with the client against the real sandbox over HTTP, in both filter
//! modes: a new member signing creates a user and an action with the fields sent; a
//! missing required field is refused with its name and nothing is created; an action
//! just made is found after the fact, an older one is not; the reduced (anonymous)
//! answer shape; the sandbox's faults seen through the client.

use std::time::{Duration, SystemTime};

use crate::helpers::outbox::{self, SandboxRest};
use actionkit_graphql::actionkit::{
    ActionKind, ActionSubmission, Client, ClientConfig, Error, RetryPolicy, UserId,
};
use actionkit_graphql::sandbox::{FilterMode, SandboxConfig, SandboxHandle};
use secrecy::SecretString;
use serde_json::json;

/// The outbox tests' sandbox (its REST for counting and faults, the AKID secret), with
/// a probed client that retries quickly.
struct Env {
    sandbox: SandboxHandle,
    rest: SandboxRest,
    client: Client,
}

impl Env {
    async fn start(filters: FilterMode) -> Env {
        let outbox::Env {
            sandbox,
            rest,
            client_config: mut c,
        } = outbox::Env::start(SandboxConfig {
            users: 40,
            filters,
            ..SandboxConfig::default()
        })
        .await;
        c.retry = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        let client = Client::new(c).unwrap();
        client.probe().await;
        Env {
            sandbox,
            rest,
            client,
        }
    }
}

const MODES: [FilterMode; 2] = [FilterMode::Strict, FilterMode::Permissive];

#[tokio::test]
async fn a_new_member_signing_a_petition_creates_a_user_and_the_action() {
    for mode in MODES {
        let env = Env::start(mode).await;
        let users_before = env.rest.total("/rest/v1/user/?_limit=1").await;
        let email = format!("new.signer.{mode:?}@example.org").to_lowercase();
        let s = ActionSubmission {
            page: "save-the-bees".into(),
            email: Some(email.clone()),
            first_name: Some("Ada".into()),
            last_name: Some("Signer".into()),
            zip: Some("53703".into()),
            country: Some("United States".into()),
            user_fields: vec![("age".into(), "41".into())],
            action_fields: vec![
                ("comment".into(), "Bees matter.".into()),
                ("issue".into(), "bees".into()),
                ("issue".into(), "water".into()),
            ],
            source: Some("test-suite".into()),
            ..ActionSubmission::default()
        };
        let done = env.client.submit_action(&s).await.unwrap();
        let a = &done.action;
        assert_eq!(a.kind, ActionKind::Petition, "{mode:?}");
        assert_eq!(a.source, "test-suite");
        assert_eq!(a.fields["comment"].first(), "Bees matter.");
        assert_eq!(a.fields["issue"].values(), vec!["bees", "water"]);
        assert!(done
            .redirect_url
            .unwrap()
            .starts_with(&format!("/cms/thanks/save-the-bees/?action_id={}", a.id)));
        // A new user, with what was sent.
        assert_eq!(
            env.rest.total("/rest/v1/user/?_limit=1").await,
            users_before + 1
        );
        let user = env.client.user(a.user_id()).await.unwrap().unwrap();
        assert_eq!(user.email, email);
        assert_eq!(
            (
                user.first_name.as_str(),
                user.last_name.as_str(),
                user.zip.as_str()
            ),
            ("Ada", "Signer", "53703")
        );
        assert_eq!(user.fields["age"].first(), "41");
        // The action as the client reads it later is the one it got back.
        assert_eq!(env.client.action(a.id).await.unwrap().as_ref(), Some(a));
        env.sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn a_missing_required_field_is_refused_by_name_and_nothing_is_created() {
    for mode in MODES {
        let env = Env::start(mode).await;
        let form = env
            .client
            .page_form("clean-water-now")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(form.required_fields, vec!["first_name", "zip"], "{mode:?}");
        let users_before = env.rest.total("/rest/v1/user/?_limit=1").await;
        let actions_before = env.rest.total("/rest/v1/action/?_limit=1").await;
        let s = ActionSubmission {
            page: "clean-water-now".into(),
            email: Some("no.zip@example.org".into()),
            first_name: Some("Nozip".into()),
            ..ActionSubmission::default()
        };
        match env.client.submit_action(&s).await {
            Err(Error::BadRequest { messages }) => {
                assert_eq!(messages.keys().collect::<Vec<_>>(), vec!["zip"], "{mode:?}");
                assert_eq!(messages["zip"], vec!["This field is required."]);
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        assert_eq!(
            env.rest.total("/rest/v1/user/?_limit=1").await,
            users_before
        );
        assert_eq!(
            env.rest.total("/rest/v1/action/?_limit=1").await,
            actions_before
        );
        // A recognised member with the fields on file needs not send them.
        let rosa = ActionSubmission {
            page: "clean-water-now".into(),
            email: Some("rosa.delgado1@example.org".into()),
            ..ActionSubmission::default()
        };
        let done = env.client.submit_action(&rosa).await.unwrap();
        assert_eq!(done.action.user_id(), UserId(1));
        env.sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn find_submitted_action_finds_the_action_just_made_and_not_an_older_one() {
    for mode in MODES {
        let env = Env::start(mode).await;
        let rosa = ActionSubmission {
            page: "save-the-bees".into(),
            email: Some("rosa.delgado1@example.org".into()),
            ..ActionSubmission::default()
        };
        // Rosa has seeded actions, all long ago: none is taken for a submission now.
        let since = SystemTime::now();
        assert_eq!(
            env.client
                .find_submitted_action(&rosa, since)
                .await
                .unwrap(),
            None,
            "{mode:?}"
        );
        let made = env.client.submit_action(&rosa).await.unwrap().action;
        let found = env
            .client
            .find_submitted_action(&rosa, since)
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(&made), "{mode:?}");
        // The same member by AKID (her token) finds it too.
        let token = env.rest.get("/rest/v1/user/1/").await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let by_akid = ActionSubmission {
            email: None,
            akid: Some(token),
            ..rosa.clone()
        };
        let found = env
            .client
            .find_submitted_action(&by_akid, since)
            .await
            .unwrap();
        assert_eq!(found.map(|a| a.id), Some(made.id));
        // A submission made later does not take this one for its own.
        let later = SystemTime::now() + Duration::from_secs(600);
        assert_eq!(
            env.client
                .find_submitted_action(&rosa, later)
                .await
                .unwrap(),
            None
        );
        // Another page: not found.
        let other_page = ActionSubmission {
            page: "fair-rent".into(),
            ..rosa.clone()
        };
        assert_eq!(
            env.client
                .find_submitted_action(&other_page, since)
                .await
                .unwrap(),
            None
        );
        env.sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn an_action_created_before_a_500_or_a_dropped_connection_is_found_after() {
    let env = Env::start(FilterMode::Strict).await;
    for fault in ["error_500_after_write", "drop_after_write"] {
        let since = SystemTime::now();
        let s = ActionSubmission {
            page: "fair-rent".into(),
            email: Some(format!("{fault}@example.org")),
            zip: Some("60614".into()),
            first_name: Some("F".into()),
            ..ActionSubmission::default()
        };
        let actions_before = env.rest.total("/rest/v1/action/?_limit=1").await;
        env.rest.set_faults(json!({ fault: 1.0 })).await;
        let got = env.client.submit_action(&s).await;
        env.rest.set_faults(json!({})).await;
        assert!(
            matches!(got, Err(Error::WriteOutcomeUnknown)),
            "{fault}: {got:?}"
        );
        assert_eq!(
            env.rest.total("/rest/v1/action/?_limit=1").await,
            actions_before + 1,
            "{fault}"
        );
        let found = env.client.find_submitted_action(&s, since).await.unwrap();
        assert!(found.is_some(), "{fault}");
    }
    // The answer held back past the client's request timeout: unknown, but made.
    let mut c = ClientConfig::new(
        env.sandbox.url().parse().unwrap(),
        "sandbox",
        SecretString::from("sandbox"),
    );
    c.request_timeout = Duration::from_millis(200);
    let impatient = Client::new(c).unwrap();
    let since = SystemTime::now();
    let s = ActionSubmission {
        page: "save-the-bees".into(),
        email: Some("slow.after.write@example.org".into()),
        ..ActionSubmission::default()
    };
    env.rest
        .set_faults(json!({"slow_after_write": 1.0, "slow_ms": 600}))
        .await;
    let got = impatient.submit_action(&s).await;
    env.rest.set_faults(json!({})).await;
    assert!(matches!(got, Err(Error::WriteOutcomeUnknown)), "{got:?}");
    assert_eq!(impatient.totals().calls, 1);
    let found = env.client.find_submitted_action(&s, since).await.unwrap();
    assert!(found.is_some(), "slow_after_write");

    // A 500 before processing: unknown to the client, but nothing was made.
    let since = SystemTime::now();
    let s = ActionSubmission {
        page: "save-the-bees".into(),
        email: Some("before.500@example.org".into()),
        ..ActionSubmission::default()
    };
    env.rest.set_faults(json!({"error_500": 1.0})).await;
    let got = env.client.submit_action(&s).await;
    env.rest.set_faults(json!({})).await;
    assert!(matches!(got, Err(Error::WriteOutcomeUnknown)), "{got:?}");
    assert_eq!(
        env.client.find_submitted_action(&s, since).await.unwrap(),
        None
    );
    // A 429 burst: refused, nothing made, one request.
    env.rest.set_faults(json!({"burst_429": 1})).await;
    assert!(matches!(
        env.client.submit_action(&s).await,
        Err(Error::RateLimited)
    ));
    assert_eq!(
        env.client.find_submitted_action(&s, since).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn page_form_and_allowed_user_fields_read_the_sandbox() {
    let env = Env::start(FilterMode::Strict).await;
    let form = env
        .client
        .page_form("save-the-bees")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(form.page.name, "save-the-bees");
    assert!(form.required_fields.is_empty());
    assert_eq!(env.client.page_form("no-such-page").await.unwrap(), None);
    let names = env.client.allowed_user_fields().await.unwrap();
    assert!(names.contains(&"age".to_owned()) && names.contains(&"color".to_owned()));
}
