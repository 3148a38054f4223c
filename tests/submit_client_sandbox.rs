//! Taking actions with the client against the real sandbox over HTTP, in both filter
//! modes: a new member signing creates a user and an action with the fields sent; a
//! missing required field is refused with its name and nothing is created; an action
//! just made is found after the fact, an older one is not; the reduced (anonymous)
//! answer shape; the sandbox's faults seen through the client.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use actionkit_graphql::actionkit::{
    ActionKind, ActionSubmission, Client, ClientConfig, RetryPolicy,
};
use actionkit_graphql::sandbox::{self, FilterMode, SandboxConfig, SandboxHandle};
use secrecy::SecretString;
use serde_json::Value;

struct Env {
    sandbox: SandboxHandle,
    http: reqwest::Client,
    client: Client,
}

impl Env {
    async fn start(filters: FilterMode) -> Env {
        let config = SandboxConfig {
            users: 40,
            filters,
            ..SandboxConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = sandbox::spawn(config, listener).await.unwrap();
        let mut c = ClientConfig::new(
            sandbox.url().parse().unwrap(),
            "sandbox",
            SecretString::from("sandbox"),
        );
        c.retry = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        c.akid_secret = Some(SecretString::from("sandbox-akid-secret"));
        let client = Client::new(c).unwrap();
        client.probe().await;
        Env {
            sandbox,
            http: reqwest::Client::new(),
            client,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.sandbox.url()))
            .basic_auth("sandbox", Some("sandbox"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    async fn total(&self, path: &str) -> u64 {
        self.get(path).await["meta"]["total_count"]
            .as_u64()
            .unwrap()
    }
}

const MODES: [FilterMode; 2] = [FilterMode::Strict, FilterMode::Permissive];

#[tokio::test]
async fn a_new_member_signing_a_petition_creates_a_user_and_the_action() {
    for mode in MODES {
        let env = Env::start(mode).await;
        let users_before = env.total("/rest/v1/user/?_limit=1").await;
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
        assert_eq!(env.total("/rest/v1/user/?_limit=1").await, users_before + 1);
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
        let token = env.get("/rest/v1/user/1/").await["token"]
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
