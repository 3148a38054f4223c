//! The exact requests the client sends for each read, pinned against a mock server:
//! paths with trailing slashes, query strings byte for byte, `Accept`, Basic auth.

use super::support::*;
use crate::helpers::client::*;
use actionkit_graphql::actionkit::{
    ActionFilter, ActionId, ActionKind, Capabilities, PageId, UserId,
};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{basic_auth, header};
use wiremock::ResponseTemplate;

#[tokio::test]
async fn user_by_id_sends_trailing_slash_accept_and_basic_auth() {
    let html_404 = ResponseTemplate::new(404).insert_header("content-type", "text/html");
    let server = serve([
        request("GET", "/rest/v1/user/5/")
            .and(header("accept", "application/json"))
            .and(basic_auth(USERNAME, PASSWORD))
            .respond_with(ok_json(user_json(5)))
            .expect(1),
        get_once("/rest/v1/user/6/", html_404),
    ])
    .await;
    let c = client(&server);
    let u = c.user(UserId(5)).await.unwrap().unwrap();
    assert_eq!(u.id, UserId(5));
    assert_eq!(u.email, "user5@example.com");
    assert_eq!(c.user(UserId(6)).await.unwrap(), None);
    assert_eq!(
        seen(&server).await,
        ["GET /rest/v1/user/5/", "GET /rest/v1/user/6/"]
    );
}

#[tokio::test]
async fn a_base_url_with_rest_v1_is_not_doubled() {
    let server = serve([get_once("/rest/v1/page/3/", ok_json(page_json(3, "bees")))]).await;
    let c =
        actionkit_graphql::actionkit::Client::new(config(&format!("{}/rest/v1/", server.uri())))
            .unwrap();
    assert_eq!(c.page(PageId(3)).await.unwrap().unwrap().name, "bees");
}

#[tokio::test]
async fn user_by_email_percent_encodes_plus_and_at() {
    let mut u = user_json(9);
    u["email"] = json!("Foo+1@example.com");
    let server = serve([
        get_once(
            "/rest/v1/user/?email=foo%2B1%40example.com",
            listed(vec![u]),
        ),
        get_once("/rest/v1/user/?email=nobody%40example.com", listed(vec![])),
    ])
    .await;
    let c = client(&server);
    assert_eq!(
        c.user_by_email("foo+1@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        UserId(9)
    );
    assert_eq!(c.user_by_email("nobody@example.com").await.unwrap(), None);
}

#[tokio::test]
async fn user_by_email_ignores_rows_that_do_not_match() {
    // An instance that ignored the filter would return someone else: never show them.
    let wrong = collection(vec![user_json(1)], 0, 20, 300, None);
    let server = serve([get("/rest/v1/user/", ok_json(wrong))]).await;
    assert_eq!(
        client(&server).user_by_email("a@b.example").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn probe_reads_three_schemas() {
    let server = serve_with_schemas(true, []).await;
    let c = client(&server);
    assert_eq!(c.capabilities(), Capabilities::default());
    let caps = c.probe().await;
    assert_eq!(
        caps,
        Capabilities {
            user_id_in: true,
            action_id_in: true,
            action_user_in: true,
            page_id_in: true,
            action_page_name: true,
            probed: true
        }
    );
    assert_eq!(c.capabilities(), caps);
    let mut s = seen(&server).await;
    s.sort();
    assert_eq!(
        s,
        [
            "GET /rest/v1/action/schema/",
            "GET /rest/v1/page/schema/",
            "GET /rest/v1/user/schema/"
        ]
    );
}

#[tokio::test]
async fn a_failed_probe_leaves_the_conservative_path() {
    // The action schema answers 401: only user and page capabilities are learned.
    let refused = get("/rest/v1/action/schema/", ResponseTemplate::new(401));
    let server = serve_with_schemas(true, [refused.with_priority(1)]).await;
    let caps = client(&server).probe().await;
    assert!(!caps.probed);
    assert!(!caps.action_user_in && !caps.action_id_in && !caps.action_page_name);
    assert!(caps.user_id_in && caps.page_id_in);
}

#[tokio::test]
async fn permissive_batch_of_250_users_is_three_id_in_calls() {
    let server = serve_with_schemas(true, []).await;
    let ids: Vec<UserId> = (1..=250).map(UserId).collect();
    for chunk in ids.chunks(100) {
        let csv = chunk
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        // User 7 does not exist: it is simply not in the answer.
        let objects = chunk
            .iter()
            .filter(|i| i.0 != 7)
            .map(|i| user_json(i.0))
            .collect::<Vec<_>>();
        let n = objects.len() as u64;
        let answer = ok_json(collection(objects, 0, 100, n, None));
        get_once(&format!("/rest/v1/user/?id__in={csv}&_limit=100"), answer)
            .mount(&server)
            .await;
    }
    let c = client(&server);
    c.probe().await;
    // Duplicates are asked for once.
    let mut asked = ids.clone();
    asked.extend([UserId(1), UserId(2)]);
    let users = c.users(&asked).await.unwrap();
    assert_eq!(users.len(), 249);
    assert!(!users.contains_key(&UserId(7)));
    assert_eq!(users[&UserId(250)].id, UserId(250));
    assert_eq!(seen(&server).await.len(), 3 + 3);
}

#[tokio::test]
async fn strict_batch_fans_out_single_gets_and_drops_404s() {
    let server = serve_with_schemas(
        false,
        (1..=20u64).map(|id| {
            let resp = if id == 13 {
                ResponseTemplate::new(404)
            } else {
                ok_json(user_json(id))
            };
            get_once(&format!("/rest/v1/user/{id}/"), resp)
        }),
    )
    .await;
    let c = client(&server);
    assert!(!c.probe().await.user_id_in);
    let ids: Vec<UserId> = (1..=20).map(UserId).collect();
    let users = c.users(&ids).await.unwrap();
    assert_eq!(users.len(), 19);
    assert!(!users.contains_key(&UserId(13)));
}

#[tokio::test]
async fn an_instance_refusing_id_in_falls_back_to_single_gets() {
    let refusal = json!({"error": "The 'id' field does not allow filtering."});
    let server = serve_with_schemas(
        true,
        [get_once(
            "/rest/v1/page/",
            ResponseTemplate::new(400).set_body_json(refusal),
        )],
    )
    .await;
    let single = |id: u64| {
        get(
            &format!("/rest/v1/page/{id}/"),
            ok_json(page_json(id, &format!("p{id}"))),
        )
    };
    mount_all(&server, [single(4).expect(2), single(5).expect(2)]).await;
    let c = client(&server);
    c.probe().await;
    let pages = c.pages(&[PageId(4), PageId(5)]).await.unwrap();
    assert_eq!(pages.len(), 2);
    assert!(!c.capabilities().page_id_in);
    // The next batch goes straight to single GETs.
    assert_eq!(c.pages(&[PageId(4), PageId(5)]).await.unwrap().len(), 2);
}

#[tokio::test]
async fn actions_of_users_follows_next_in_parallel_and_groups_by_user() {
    let server = serve_with_schemas(true, []).await;
    // 250 actions of users 1 and 2, in pages of 100; the next link puts `_offset` first
    // and keeps the filter, as ActionKit does; the client must reuse it verbatim.
    let all: Vec<_> = (1..=250u64)
        .map(|i| action_json(1000 + i, if i % 2 == 0 { 2 } else { 1 }, json!({})))
        .collect();
    let next_query = |o: u64| format!("_offset={o}&_limit=100&user__in=1%2C2%2C3");
    let next = |o: u64| Some(format!("/rest/v1/action/?{}", next_query(o)));
    // The first page is read twice (the budget of two below stops after it).
    let pages = [
        ("user__in=1,2,3&_limit=100".to_owned(), 0, 2),
        (next_query(100), 100, 1),
        (next_query(200), 200, 1),
    ];
    for (query, offset, times) in pages {
        let end = (offset + 100).min(250);
        let more = (end < 250).then(|| next(end)).flatten();
        let objects = all[offset as usize..end as usize].to_vec();
        get(
            &format!("/rest/v1/action/?{query}"),
            ok_json(collection(objects, offset, 100, 250, more)),
        )
        .expect(times)
        .mount(&server)
        .await;
    }
    let c = client(&server);
    c.probe().await;
    let f = ActionFilter::default();
    let users = [UserId(2), UserId(1), UserId(3)];
    // Three calls are needed. A budget of zero makes none; of two, only the first page
    // (which tells the total) before saying "read per user".
    assert_eq!(c.actions_of_users(&users, &f, 0).await.unwrap(), None);
    assert_eq!(c.actions_of_users(&users, &f, 2).await.unwrap(), None);
    let got = c.actions_of_users(&users, &f, 3).await.unwrap().unwrap();
    assert_eq!(got[&UserId(1)].len(), 125);
    assert_eq!(got[&UserId(2)].len(), 125);
    assert!(got[&UserId(3)].is_empty());
    assert!(got[&UserId(2)].windows(2).all(|w| w[0].id < w[1].id));
    assert!(got[&UserId(1)].iter().all(|a| a.user_id() == UserId(1)));
}

#[tokio::test]
async fn actions_of_users_is_none_without_user_in() {
    let server = serve_with_schemas(false, []).await;
    let c = client(&server);
    c.probe().await;
    let r = c
        .actions_of_users(&[UserId(1)], &ActionFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(r, None);
    assert_eq!(seen(&server).await.len(), 3, "only the probe");
}

#[tokio::test]
async fn user_actions_window_kind_and_page_name_with_traversal() {
    let last = collection(vec![action_json(1, 7, json!({}))], 40, 20, 41, None);
    let server = serve_with_schemas(
        true,
        [
            get_once(
                "/rest/v1/action/?user=7&_limit=20&_offset=40",
                ok_json(last),
            ),
            get_once(
                "/rest/v1/eventsignupaction/?user=7&page__name=save-the%2Bbees&_limit=5&_offset=0",
                ok_json(collection(vec![], 0, 5, 0, None)),
            ),
        ],
    )
    .await;
    let c = client(&server);
    c.probe().await;
    let w = c
        .user_actions(UserId(7), &ActionFilter::default(), 40, 20)
        .await
        .unwrap();
    assert_eq!((w.total_count, w.objects.len()), (41, 1));
    let f = ActionFilter {
        kind: Some(ActionKind::EventSignup),
        page_name: Some("save-the+bees".into()),
    };
    let w = c.user_actions(UserId(7), &f, 0, 5).await.unwrap();
    assert_eq!(w.total_count, 0);
}

#[tokio::test]
async fn user_actions_resolves_the_page_first_without_traversal() {
    let server = serve_with_schemas(
        false,
        [
            // Once: the second lookup of "bees" comes from the name cache.
            get_once(
                "/rest/v1/page/?name=bees",
                listed(vec![page_json(12, "bees")]),
            ),
            get_once("/rest/v1/page/?name=wasps", listed(vec![])),
            get_once(
                "/rest/v1/petitionaction/?user=7&page=12&_limit=20&_offset=0",
                listed(vec![action_json(3, 7, json!({}))]),
            ),
        ],
    )
    .await;
    let c = client(&server);
    c.probe().await;
    let f = |kind, name: &str| ActionFilter {
        kind,
        page_name: Some(name.into()),
    };
    let w = c
        .user_actions(UserId(7), &f(Some(ActionKind::Petition), "bees"), 0, 20)
        .await
        .unwrap();
    assert_eq!(w.objects[0].id, ActionId(3));
    // No such page, or a page of another kind: an empty window without asking for actions.
    let w = c
        .user_actions(UserId(7), &f(None, "wasps"), 0, 20)
        .await
        .unwrap();
    assert_eq!((w.total_count, w.objects.len()), (0, 0));
    let w = c
        .user_actions(UserId(7), &f(Some(ActionKind::Donation), "bees"), 0, 20)
        .await
        .unwrap();
    assert_eq!(w.total_count, 0);
}

#[tokio::test]
async fn a_wide_window_reads_pages_of_100_in_parallel() {
    let server = serve(
        [
            ("user=7&_limit=100&_offset=10", 10..110u64),
            ("user=7&_limit=100&_offset=110", 110..210),
            ("user=7&_limit=40&_offset=210", 210..250),
        ]
        .map(|(q, range)| {
            let objs = range.clone().map(|i| action_json(i, 7, json!({})));
            let answer = collection(objs.collect(), range.start, 100, 300, None);
            get_once(&format!("/rest/v1/action/?{q}"), ok_json(answer))
        }),
    )
    .await;
    let w = client(&server)
        .user_actions(UserId(7), &ActionFilter::default(), 10, 240)
        .await
        .unwrap();
    assert_eq!(w.total_count, 300);
    assert_eq!(w.objects.len(), 240);
    assert_eq!(w.objects[239].id, ActionId(249));
}

#[tokio::test]
async fn action_and_page_by_name_paths() {
    let server = serve([
        get_once(
            "/rest/v1/action/44/",
            ok_json(action_json(44, 1, json!({"a": "1"}))),
        ),
        get_once(
            "/rest/v1/page/?name=a%26b",
            listed(vec![page_json(2, "a&b")]),
        ),
    ])
    .await;
    let c = client(&server);
    assert_eq!(
        c.action(ActionId(44)).await.unwrap().unwrap().fields.len(),
        1
    );
    assert_eq!(c.page_by_name("a&b").await.unwrap().unwrap().id, PageId(2));
}

#[tokio::test]
async fn akid_with_secret_is_verified_locally() {
    let server = serve([get_once(
        "/rest/v1/user/103007/",
        ok_json(user_json(103007)),
    )])
    .await;
    let c = client_with(&server, |c| {
        c.akid_secret = Some(SecretString::from("emulator-secret"))
    });
    // Reference §4.1 test vector.
    let u = c.user_by_akid("2695.103007.zzv_jK").await.unwrap().unwrap();
    assert_eq!(u.id, UserId(103007));
    // A wrong hash sends nothing.
    assert_eq!(c.user_by_akid("2695.103007.zzv_jL").await.unwrap(), None);
    assert!(matches!(
        c.user_by_akid("not-an-akid").await,
        Err(actionkit_graphql::actionkit::Error::InvalidInput(_))
    ));
    assert_eq!(seen(&server).await, ["GET /rest/v1/user/103007/"]);
}

#[tokio::test]
async fn akid_without_secret_asks_userpublic() {
    let public = json!({"id": 103007, "first_name": "Ada"});
    let server = serve([
        get_once("/rest/v1/userpublic/.103007.HhWYZe/", ok_json(public)),
        get_once(
            "/rest/v1/userpublic/.103007.xxxxxx/",
            ResponseTemplate::new(404),
        ),
        get_once("/rest/v1/user/103007/", ok_json(user_json(103007))),
    ])
    .await;
    let c = client(&server);
    assert_eq!(
        c.user_by_akid(".103007.HhWYZe").await.unwrap().unwrap().id,
        UserId(103007)
    );
    assert_eq!(c.user_by_akid(".103007.xxxxxx").await.unwrap(), None);
}

#[tokio::test]
async fn check_credentials_reads_the_root() {
    let root = json!({"user": {"list_endpoint": "/rest/v1/user/"}});
    let refusal = ResponseTemplate::new(401).insert_header("content-type", "text/html");
    let server = serve([
        request("GET", "/rest/v1/")
            .and(basic_auth(USERNAME, PASSWORD))
            .respond_with(ok_json(root)),
        get("/rest/v1/", refusal).with_priority(6),
    ])
    .await;
    assert!(client(&server).check_credentials().await.is_ok());
    let wrong = client_with(&server, |c| c.password = SecretString::from("wrong"));
    assert!(matches!(
        wrong.check_credentials().await,
        Err(actionkit_graphql::actionkit::Error::Unauthorized)
    ));
}

#[tokio::test]
async fn next_links_without_offset_or_total_are_walked_one_by_one() {
    // Page 1 has no total_count; its next link has no `_offset` either.
    let page_1 = json!({
        "meta": {"limit": 2, "next": "/rest/v1/action/?user__in=1&page2=yes"},
        "objects": [action_json(1, 1, json!({})), action_json(2, 1, json!({}))]
    });
    let page_2 = json!({
        "meta": {"limit": 2, "next": null},
        "objects": [action_json(3, 1, json!({}))]
    });
    let server = serve_with_schemas(
        true,
        [
            get_once("/rest/v1/action/?user__in=1&_limit=100", ok_json(page_1)),
            get_once("/rest/v1/action/?user__in=1&page2=yes", ok_json(page_2)),
        ],
    )
    .await;
    let c = client(&server);
    c.probe().await;
    let got = c
        .actions_of_users(&[UserId(1)], &ActionFilter::default(), 10)
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<u64> = got[&UserId(1)].iter().map(|a| a.id.0).collect();
    assert_eq!(ids, [1, 2, 3]);
}
