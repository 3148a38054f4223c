//! `Client::page_progress`: the exact requests, against a mock server. ActionKit's
//! public `/progress/` endpoint when it answers (one call); where it does not (404,
//! 401, HTML), a count through REST (page by name, then `action/?page=<id>&_limit=1`),
//! and the endpoint is not tried again once a page was found that way.

use crate::helpers::client::*;
use actionkit_graphql::actionkit::{GoalType, PageProgress};
use serde_json::json;
use wiremock::matchers::{basic_auth, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn the_progress_endpoint_is_one_call() {
    let server = MockServer::start().await;
    catch_all(&server).await;
    Mock::given(method("GET"))
        .and(path("/progress/"))
        .and(RawQuery("page=save-the-bees".into()))
        .and(basic_auth(USERNAME, PASSWORD))
        .respond_with(ok_json(json!({
            "goal": 1000, "goal_type": "actions",
            "total": {"actions": 321, "dollars": 0, "money": 0}
        })))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);
    let p = client
        .page_progress("save-the-bees")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p,
        PageProgress {
            actions: 321,
            amount: Some(0.0),
            goal: Some(1000),
            goal_type: GoalType::Actions,
        }
    );
    // The endpoint stays in use (the client caches nothing itself).
    client
        .page_progress("save-the-bees")
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn donation_totals_come_from_the_endpoint() {
    let server = MockServer::start().await;
    catch_all(&server).await;
    Mock::given(method("GET"))
        .and(path("/progress/"))
        .and(RawQuery("page=year-end%2B2026".into()))
        .respond_with(ok_json(json!({
            "goal": 25000, "goal_type": "dollars",
            "total": {"actions": 12, "dollars": "1250.50", "money": "1250.50"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let p = client(&server)
        .page_progress("year-end+2026")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.actions, p.amount, p.goal),
        (12, Some(1250.5), Some(25000))
    );
    assert_eq!(p.goal_type, GoalType::Money);
}

async fn mount_rest_count(server: &MockServer, hits: u64) {
    let mut page = page_json(7, "save-the-bees");
    page["goal"] = json!(500);
    page["goal_type"] = json!("actions");
    Mock::given(method("GET"))
        .and(path("/rest/v1/page/"))
        .and(RawQuery("name=save-the-bees".into()))
        .respond_with(ok_json(collection(vec![page], 0, 20, 1, None)))
        .expect(hits)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/action/"))
        .and(RawQuery("page=7&_limit=1".into()))
        .respond_with(ok_json(collection(
            vec![json!({"id": 1})],
            0,
            1,
            4321,
            Some("/rest/v1/action/?page=7&_limit=1&_offset=1".into()),
        )))
        .expect(hits)
        .mount(server)
        .await;
}

#[tokio::test]
async fn without_the_endpoint_the_client_counts_through_rest_and_remembers() {
    let server = MockServer::start().await;
    catch_all(&server).await;
    Mock::given(method("GET"))
        .and(path("/progress/"))
        .respond_with(ResponseTemplate::new(404).insert_header("content-type", "text/html"))
        .expect(1)
        .mount(&server)
        .await;
    mount_rest_count(&server, 2).await;
    let client = client(&server);
    for _ in 0..2 {
        let p = client
            .page_progress("save-the-bees")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            PageProgress {
                actions: 4321,
                amount: None,
                goal: Some(500),
                goal_type: GoalType::Actions,
            }
        );
    }
}

#[tokio::test]
async fn an_endpoint_that_refuses_or_answers_html_is_treated_as_absent() {
    for refusal in [
        ResponseTemplate::new(401),
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/html")
            .set_body_string("<html>login</html>"),
    ] {
        let server = MockServer::start().await;
        catch_all(&server).await;
        Mock::given(method("GET"))
            .and(path("/progress/"))
            .respond_with(refusal)
            .expect(1)
            .mount(&server)
            .await;
        mount_rest_count(&server, 1).await;
        let p = client(&server)
            .page_progress("save-the-bees")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.actions, 4321);
    }
}

#[tokio::test]
async fn an_unknown_page_is_none_and_bad_names_send_nothing() {
    let server = MockServer::start().await;
    catch_all(&server).await;
    Mock::given(method("GET"))
        .and(path("/progress/"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/page/"))
        .respond_with(ok_json(collection(vec![], 0, 20, 0, None)))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    assert_eq!(client.page_progress("no-such-page").await.unwrap(), None);
    assert!(client.page_progress("").await.is_err());
    assert!(client.page_progress("a\0b").await.is_err());
}
