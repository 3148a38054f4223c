//! `Client::page_progress`: the exact requests, against a mock server. ActionKit's
//! public `/progress/` endpoint when it answers (one call); where it does not (404,
//! 401, HTML), a count through REST (page by name, then `action/?page=<id>&_limit=1`),
//! and the endpoint is not tried again once a page was found that way.

use super::support::*;
use crate::helpers::client::*;
use actionkit_graphql::actionkit::{Client, GoalType, PageProgress};
use serde_json::json;
use wiremock::matchers::basic_auth;
use wiremock::{MockServer, ResponseTemplate};

#[tokio::test]
async fn the_progress_endpoint_is_one_call() {
    let progress = json!({
        "goal": 1000, "goal_type": "actions",
        "total": {"actions": 321, "dollars": 0, "money": 0}
    });
    let server = serve([request("GET", "/progress/?page=save-the-bees")
        .and(basic_auth(USERNAME, PASSWORD))
        .respond_with(ok_json(progress))
        .expect(2)])
    .await;
    let client = client(&server);
    let p = progress_of(&client, "save-the-bees").await;
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
    progress_of(&client, "save-the-bees").await;
}

#[tokio::test]
async fn donation_totals_come_from_the_endpoint() {
    let progress = json!({
        "goal": 25000, "goal_type": "dollars",
        "total": {"actions": 12, "dollars": "1250.50", "money": "1250.50"}
    });
    let server = serve([get_once(
        "/progress/?page=year-end%2B2026",
        ok_json(progress),
    )])
    .await;
    let p = progress_of(&client(&server), "year-end+2026").await;
    assert_eq!(
        (p.actions, p.amount, p.goal),
        (12, Some(1250.5), Some(25000))
    );
    assert_eq!(p.goal_type, GoalType::Money);
}

/// The progress of page `name`, which must exist.
async fn progress_of(client: &Client, name: &str) -> PageProgress {
    client.page_progress(name).await.unwrap().unwrap()
}

/// A server whose `/progress/` answers `endpoint` once, and that counts page 7
/// (`save-the-bees`, 4,321 actions) through REST, expecting that `hits` times.
async fn serve_rest_count(endpoint: ResponseTemplate, hits: u64) -> MockServer {
    let mut page = page_json(7, "save-the-bees");
    page["goal"] = json!(500);
    page["goal_type"] = json!("actions");
    let next = Some("/rest/v1/action/?page=7&_limit=1&_offset=1".into());
    let count = collection(vec![json!({"id": 1})], 0, 1, 4321, next);
    serve([
        get_once("/progress/", endpoint),
        get("/rest/v1/page/?name=save-the-bees", listed(vec![page])).expect(hits),
        get("/rest/v1/action/?page=7&_limit=1", ok_json(count)).expect(hits),
    ])
    .await
}

#[tokio::test]
async fn without_the_endpoint_the_client_counts_through_rest_and_remembers() {
    let html_404 = ResponseTemplate::new(404).insert_header("content-type", "text/html");
    let server = serve_rest_count(html_404, 2).await;
    let client = client(&server);
    for _ in 0..2 {
        assert_eq!(
            progress_of(&client, "save-the-bees").await,
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
        let server = serve_rest_count(refusal, 1).await;
        let p = progress_of(&client(&server), "save-the-bees").await;
        assert_eq!(p.actions, 4321);
    }
}

#[tokio::test]
async fn an_unknown_page_is_none_and_bad_names_send_nothing() {
    let server = serve([
        get_once("/progress/", ResponseTemplate::new(404)),
        get_once("/rest/v1/page/", listed(vec![])),
    ])
    .await;
    let client = client(&server);
    assert_eq!(client.page_progress("no-such-page").await.unwrap(), None);
    assert!(client.page_progress("").await.is_err());
    assert!(client.page_progress("a\0b").await.is_err());
}
