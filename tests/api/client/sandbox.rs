//! The client against the sandbox (an ActionKit emulator spawned on 127.0.0.1:0), in
//! both filter modes and both PATCH semantics. Call counts are read from the
//! sandbox's own `/__sandbox/stats`, so they count what reached "ActionKit".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::helpers::outbox::SandboxRest;
use actionkit_graphql::actionkit::{
    ActionFilter, ActionId, Client, ClientConfig, Error, RetryPolicy, UpstreamCounter, UserId,
};
use actionkit_graphql::sandbox::{self, FieldsPatch, FilterMode, SandboxConfig, SandboxHandle};
use secrecy::SecretString;
use serde_json::{json, Value};

/// Seeded users with many actions (sandbox `seed::HEAVY_USERS`): user 2 has 3,500.
const HEAVY_USER: UserId = UserId(2);
const HEAVY_USER_ACTIONS: u64 = 3_500;

struct Env {
    sandbox: SandboxHandle,
    rest: SandboxRest,
}

impl Env {
    async fn start(tweak: impl FnOnce(&mut SandboxConfig)) -> Env {
        let mut config = SandboxConfig::default();
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = sandbox::spawn(config, listener).await.unwrap();
        let rest = SandboxRest::new(sandbox.url());
        Env { sandbox, rest }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(
            self.sandbox.url().parse().unwrap(),
            "sandbox",
            SecretString::from("sandbox"),
        );
        c.retry = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        };
        c
    }

    fn client(&self, tweak: impl FnOnce(&mut ClientConfig)) -> Client {
        let mut c = self.config();
        tweak(&mut c);
        Client::new(c).unwrap()
    }

    /// A client made with `tweak` and probed; the stats count from after the probe.
    async fn probed_client(&self, tweak: impl FnOnce(&mut ClientConfig)) -> Client {
        let client = self.client(tweak);
        client.probe().await;
        self.reset().await;
        client
    }

    async fn stats(&self) -> Value {
        crate::helpers::get_json(
            &self.rest.http,
            format!("{}/__sandbox/stats", self.rest.base),
        )
        .await
    }

    async fn reset(&self) {
        let r = self
            .rest
            .http
            .post(format!("{}/__sandbox/stats/reset", self.rest.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

fn by_route(stats: &Value) -> BTreeMap<String, u64> {
    stats["by_route"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn a_batch_of_250_users_makes_the_expected_number_of_calls() {
    for filters in [FilterMode::Strict, FilterMode::Permissive] {
        let env = Env::start(|c| c.filters = filters).await;
        let client = env.client(|_| {});
        let caps = client.probe().await;
        assert!(caps.probed);
        assert_eq!(caps.user_id_in, filters == FilterMode::Permissive);
        // The probe costs 3 calls (user, action, page schema); counted from here on.
        env.reset().await;

        let ids: Vec<UserId> = (1..=250).map(UserId).collect();
        let op = UpstreamCounter::new();
        let users = op.scope(client.users(&ids)).await.unwrap();
        assert_eq!(users.len(), 250, "{filters:?}");

        let stats = env.stats().await;
        let expected: BTreeMap<String, u64> = match filters {
            // No `id__in`: one GET per user.
            FilterMode::Strict => [("GET /rest/v1/user/{id}/".to_owned(), 250)].into(),
            // `id__in`, 100 ids per call: ceil(250 / 100) = 3 list calls.
            FilterMode::Permissive => [("GET /rest/v1/user/".to_owned(), 3)].into(),
        };
        assert_eq!(by_route(&stats), expected, "{filters:?}: {stats}");
        assert_eq!(stats["requests"], json!(expected.values().sum::<u64>()));
        assert_eq!(op.calls(), expected.values().sum::<u64>());
    }
}

#[tokio::test]
async fn all_actions_of_a_heavy_user_come_back_within_the_cap() {
    for filters in [FilterMode::Strict, FilterMode::Permissive] {
        // A little latency so that parallel requests really overlap.
        let env = Env::start(|c| {
            c.filters = filters;
            c.latency_ms = 15;
        })
        .await;
        let client = env.probed_client(|c| c.max_in_flight = 4).await;

        let w = client
            .user_actions(HEAVY_USER, &ActionFilter::default(), 0, 10_000)
            .await
            .unwrap();
        assert_eq!(w.total_count, HEAVY_USER_ACTIONS, "{filters:?}");
        assert_eq!(w.objects.len() as u64, HEAVY_USER_ACTIONS);
        assert!(w.objects.iter().all(|a| a.user_id() == HEAVY_USER));
        assert!(
            w.objects.windows(2).all(|p| p[0].id < p[1].id),
            "ascending ids"
        );

        let stats = env.stats().await;
        // 3,500 rows in pages of 100: 35 calls.
        assert_eq!(stats["requests"], json!(35), "{stats}");
        let peak = stats["max_in_flight"].as_u64().unwrap();
        assert!((2..=4).contains(&peak), "peak in flight {peak} (cap 4)");
    }
}

#[tokio::test]
async fn actions_of_many_users_use_user_in_where_allowed() {
    let env = Env::start(|c| c.filters = FilterMode::Permissive).await;
    let client = env.probed_client(|_| {}).await;
    let users = [UserId(1), UserId(2), UserId(3), UserId(250)];
    let expected_total: u64 = {
        let mut t = 0;
        for u in users {
            t += env
                .rest
                .total(&format!("/rest/v1/action/?user={u}&_limit=1"))
                .await;
        }
        t
    };
    env.reset().await;
    let got = client
        .actions_of_users(&users, &ActionFilter::default(), 1_000)
        .await
        .unwrap()
        .unwrap();
    let n: u64 = got.values().map(|v| v.len() as u64).sum();
    assert_eq!(n, expected_total);
    assert_eq!(got[&UserId(2)].len() as u64, HEAVY_USER_ACTIONS);
    for (u, list) in &got {
        assert!(list.iter().all(|a| a.user_id() == *u));
    }
    // One `user__in` query, read in pages of 100.
    let stats = env.stats().await;
    assert_eq!(
        stats["requests"],
        json!(expected_total.div_ceil(100)),
        "{stats}"
    );
    // A budget below that says "read per user" instead.
    assert_eq!(
        client
            .actions_of_users(&users, &ActionFilter::default(), 10)
            .await
            .unwrap(),
        None
    );

    let strict = Env::start(|c| c.filters = FilterMode::Strict).await;
    let client = strict.client(|_| {});
    client.probe().await;
    assert_eq!(
        client
            .actions_of_users(&users, &ActionFilter::default(), 1_000)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn filtering_by_kind_and_page_name_in_both_modes() {
    for filters in [FilterMode::Strict, FilterMode::Permissive] {
        let env = Env::start(|c| c.filters = filters).await;
        let client = env.client(|_| {});
        client.probe().await;
        let all = client
            .user_actions(UserId(1), &ActionFilter::default(), 0, 100)
            .await
            .unwrap();
        let sample = &all.objects[0];
        let page = client.page(sample.page_id()).await.unwrap().unwrap();
        let filter = ActionFilter {
            kind: Some(sample.kind.clone()),
            page_name: Some(page.name.clone()),
        };
        let w = client
            .user_actions(UserId(1), &filter, 0, 100)
            .await
            .unwrap();
        assert!(w.total_count >= 1, "{filters:?}");
        assert!(w.objects.iter().any(|a| a.id == sample.id));
        assert!(w
            .objects
            .iter()
            .all(|a| a.page_id() == page.id && a.kind == sample.kind));
        assert_eq!(
            client.page_by_name(&page.name).await.unwrap().unwrap().id,
            page.id
        );
    }
}

#[tokio::test]
async fn the_client_cap_keeps_the_sandbox_from_rejecting() {
    // ActionKit answers 429 beyond its concurrency limit; with the client's cap at the
    // same number, a 250-wide fan-out is never rejected.
    let env = Env::start(|c| {
        c.filters = FilterMode::Strict;
        c.max_concurrent = 4;
        c.latency_ms = 5;
    })
    .await;
    let client = env
        .probed_client(|c| {
            c.max_in_flight = 4;
            c.retry = RetryPolicy::none();
        })
        .await;
    let ids: Vec<UserId> = (1..=250).map(UserId).collect();
    assert_eq!(client.users(&ids).await.unwrap().len(), 250);
    let stats = env.stats().await;
    assert_eq!(stats["rejected_429"], json!(0), "{stats}");
    assert!(stats["max_in_flight"].as_u64().unwrap() <= 4, "{stats}");
}

#[tokio::test]
async fn a_burst_of_429s_is_absorbed_by_retries() {
    for filters in [FilterMode::Strict, FilterMode::Permissive] {
        let env = Env::start(|c| c.filters = filters).await;
        let client = env.probed_client(|_| {}).await;
        // The next 5 requests are answered 429 (max_retries is 5 here).
        env.rest.set_faults(json!({"burst_429": 5})).await;
        let op = UpstreamCounter::new();
        let ids: Vec<UserId> = (1..=40).map(UserId).collect();
        let users = op.scope(client.users(&ids)).await.unwrap();
        assert_eq!(users.len(), 40, "{filters:?}");
        // Each rejected request was tried again: strict 40 GETs + 5 retries, permissive
        // one `id__in` call + 5 retries.
        let first_tries = if filters == FilterMode::Strict { 40 } else { 1 };
        assert_eq!(op.retries(), 5, "{filters:?}");
        assert_eq!(op.calls(), first_tries + 5, "{filters:?}");
        assert_eq!(env.stats().await["requests"], json!(first_tries + 5));
    }
}

#[tokio::test]
async fn the_operation_deadline_holds_under_latency() {
    for filters in [FilterMode::Strict, FilterMode::Permissive] {
        let env = Env::start(|c| {
            c.filters = filters;
            c.latency_ms = 1_000;
        })
        .await;
        let client = env.client(|c| c.operation_deadline = Duration::from_millis(150));
        for ids in [vec![UserId(1)], (1..=20).map(UserId).collect()] {
            let started = Instant::now();
            let r = client.users(&ids).await;
            let took = started.elapsed();
            assert!(matches!(r, Err(Error::Timeout)), "{filters:?}: {r:?}");
            // Well before the first answer could have come (1 s), with room for a busy CI box.
            assert!(took < Duration::from_millis(700), "{filters:?}: {took:?}");
        }
        // With a deadline above the latency, the same read succeeds.
        let patient = env.client(|c| c.operation_deadline = Duration::from_secs(5));
        assert!(patient.user(UserId(1)).await.unwrap().is_some());
    }
}

/// An action to write to: one of user 1's that already has custom fields, a
/// multi-valued one if there is one, so that "the others are kept" means something.
async fn some_action(client: &Client) -> ActionId {
    let w = client
        .user_actions(UserId(1), &ActionFilter::default(), 0, 100)
        .await
        .unwrap();
    let multi = w
        .objects
        .iter()
        .find(|a| a.fields.values().any(|v| v.values().len() > 1));
    let any = w.objects.iter().find(|a| !a.fields.is_empty());
    multi
        .or(any)
        .expect("a seeded action with custom fields")
        .id
}

#[tokio::test]
async fn set_and_clear_round_trip_in_both_patch_modes() {
    for patch in [FieldsPatch::Replace, FieldsPatch::Merge] {
        let env = Env::start(|c| c.fields_patch = patch).await;
        let client = env.client(|_| {});
        client.probe().await;
        let id = some_action(&client).await;
        let original = client.action(id).await.unwrap().unwrap().fields;
        assert!(!original.is_empty());

        let a = client
            .set_action_fields(
                id,
                &[("gw_a".into(), "1".into()), ("gw_b".into(), "two".into())],
            )
            .await
            .unwrap();
        assert_eq!(a.fields["gw_a"].first(), "1", "{patch:?}");
        assert_eq!(a.fields["gw_b"].first(), "two");
        for (k, v) in &original {
            assert_eq!(a.fields.get(k), Some(v), "{patch:?}: kept {k}");
        }
        // Read back independently.
        assert_eq!(client.action(id).await.unwrap().unwrap().fields, a.fields);

        let a = client
            .clear_action_fields(id, Some(&["gw_a".into()]))
            .await
            .unwrap();
        assert!(!a.fields.contains_key("gw_a"), "{patch:?}: {:?}", a.fields);
        assert_eq!(a.fields["gw_b"].first(), "two");
        for k in original.keys() {
            assert!(a.fields.contains_key(k), "{patch:?}: kept {k}");
        }

        // Second clear: the client now knows the semantics. Replace: GET, PATCH, GET.
        // Merge: GET, list actionfield rows, DELETE per row, GET.
        env.reset().await;
        let a = client.clear_action_fields(id, None).await.unwrap();
        assert!(a.fields.is_empty(), "{patch:?}: {:?}", a.fields);
        let routes = by_route(&env.stats().await);
        eprintln!("{patch:?} second clear: {routes:?}");
        let rows = original
            .values()
            .map(|v| v.values().len() as u64)
            .sum::<u64>()
            + 1;
        match patch {
            FieldsPatch::Replace => {
                assert_eq!(
                    routes.get("GET /rest/v1/action/{id}/"),
                    Some(&2),
                    "{routes:?}"
                );
                assert_eq!(routes.values().sum::<u64>(), 3, "{routes:?}");
            }
            FieldsPatch::Merge => {
                assert_eq!(
                    routes.get("GET /rest/v1/action/{id}/"),
                    Some(&2),
                    "{routes:?}"
                );
                assert!(!routes.keys().any(|r| r.starts_with("PATCH")), "{routes:?}");
                let deletes: u64 = routes
                    .iter()
                    .filter(|(r, _)| r.starts_with("DELETE"))
                    .map(|(_, n)| n)
                    .sum();
                assert_eq!(deletes, rows, "{routes:?}");
            }
        }
        assert!(client.action(id).await.unwrap().unwrap().fields.is_empty());
    }
}

#[tokio::test]
async fn two_concurrent_sets_on_one_action_both_survive() {
    for patch in [FieldsPatch::Replace, FieldsPatch::Merge] {
        let env = Env::start(|c| {
            c.fields_patch = patch;
            c.latency_ms = 20; // widen the window a lost update would need
        })
        .await;
        let client = env.client(|_| {});
        let id = some_action(&client).await;
        let (c1, c2) = (client.clone(), client.clone());
        let one = tokio::spawn(async move {
            c1.set_action_fields(id, &[("gw_one".into(), "1".into())])
                .await
        });
        let two = tokio::spawn(async move {
            c2.set_action_fields(id, &[("gw_two".into(), "2".into())])
                .await
        });
        one.await.unwrap().unwrap();
        two.await.unwrap().unwrap();
        let fields = client.action(id).await.unwrap().unwrap().fields;
        assert_eq!(fields["gw_one"].first(), "1", "{patch:?}: {fields:?}");
        assert_eq!(fields["gw_two"].first(), "2", "{patch:?}: {fields:?}");
    }
}

#[tokio::test]
async fn akids_resolve_with_and_without_the_secret() {
    let env = Env::start(|_| {}).await;
    let token = env.rest.get("/rest/v1/user/7/").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // AKIDs with a mailing id, as the sandbox renders them on actions.
    let actions = env.rest.get("/rest/v1/action/?user=7&_limit=100").await;
    let with_mailing: Vec<String> = actions["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["akid"].as_str())
        .filter(|k| !k.starts_with('.'))
        .map(str::to_owned)
        .collect();
    assert!(
        !with_mailing.is_empty(),
        "user 7 has AKIDs with a mailing id"
    );
    let local = env.client(|c| c.akid_secret = Some(SecretString::from("sandbox-akid-secret")));
    let remote = env.client(|_| {});
    for client in [&local, &remote] {
        assert_eq!(
            client.user_by_akid(&token).await.unwrap().unwrap().id,
            UserId(7)
        );
        for akid in &with_mailing {
            assert_eq!(
                client.user_by_akid(akid).await.unwrap().unwrap().id,
                UserId(7)
            );
        }
    }
    // A wrong hash: no user (the secret-less client asks userpublic, which refuses).
    let mut bad = token.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    env.reset().await;
    assert_eq!(local.user_by_akid(&bad).await.unwrap(), None);
    assert_eq!(env.stats().await["requests"], json!(0), "verified locally");
    assert_eq!(remote.user_by_akid(&bad).await.unwrap(), None);
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized() {
    let env = Env::start(|_| {}).await;
    let client = env.client(|c| c.password = SecretString::from("nope"));
    assert!(matches!(
        client.check_credentials().await,
        Err(Error::Unauthorized)
    ));
    assert!(env.client(|_| {}).check_credentials().await.is_ok());
}

#[tokio::test]
async fn reads_ride_out_flaky_answers_and_dropped_connections() {
    let env = Env::start(|c| c.filters = FilterMode::Strict).await;
    let client = env.client(|c| {
        c.retry = RetryPolicy {
            max_retries: 8,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(40),
        }
    });
    client.probe().await;
    env.rest
        .set_faults(json!({"error_500": 0.1, "error_503": 0.05, "drop_connection": 0.05}))
        .await;
    let op = UpstreamCounter::new();
    let ids: Vec<UserId> = (1..=100).map(UserId).collect();
    let users = op.scope(client.users(&ids)).await.unwrap();
    assert_eq!(users.len(), 100);
    assert!(op.retries() > 0, "the faults were injected");
    assert_eq!(op.calls(), 100 + op.retries());
}
