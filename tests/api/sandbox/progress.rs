//! The sandbox's progress endpoint (`GET /progress/?page=`, also `/progress/<name>/`):
//! public, counts the page's actions as the REST collection does, moves when an action
//! is processed, goals from the seed, JSONP, 404 for an unknown page, and counted in
//! the stats.

use super::support::*;
use crate::helpers::sandbox::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn progress(sb: &RunningSandbox, query: &str) -> (u16, String) {
    // No credential: the endpoint is public.
    let r = get_without_credential(sb, &format!("/progress/{query}")).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn page_total(sb: &RunningSandbox, name: &str) -> u64 {
    let pages = sb.json(&format!("/rest/v1/page/?name={name}")).await;
    let id = pages["objects"][0]["id"].as_u64().unwrap();
    let actions = sb
        .json(&format!("/rest/v1/action/?page={id}&_limit=1"))
        .await;
    actions["meta"]["total_count"].as_u64().unwrap()
}

#[tokio::test]
async fn progress_counts_the_pages_actions_and_moves_with_a_new_one() {
    let sb = start(config()).await;
    let (status, body) = progress(&sb, "?page=save-the-bees").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["goal"], 1000);
    assert_eq!(v["goal_type"], "actions");
    let before = v["total"]["actions"].as_u64().unwrap();
    assert_eq!(before, page_total(&sb, "save-the-bees").await);
    let r = sb
        .req(Method::POST, "/rest/v1/action/")
        .header("content-type", "application/json")
        .body(json!({"page": "save-the-bees", "email": "new-progress@example.org"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, body) = progress(&sb, "save-the-bees/").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"]["actions"].as_u64().unwrap(), before + 1);
}

#[tokio::test]
async fn donation_pages_report_amounts_and_pages_without_goals_null() {
    let sb = start(config()).await;
    let (_, body) = progress(&sb, "?page=support").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["goal"].clone(), v["goal_type"].clone()),
        (json!(50_000), json!("dollars"))
    );
    assert!(v["total"]["dollars"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["total"]["dollars"], v["total"]["money"]);
    let (_, body) = progress(&sb, "?page=join-us").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["goal"], Value::Null);
}

#[tokio::test]
async fn jsonp_unknown_pages_and_stats() {
    let sb = start(config()).await;
    let (status, body) = progress(&sb, "?page=save-the-bees&callback=akMeter").await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("akMeter({") && body.ends_with(");"),
        "{body}"
    );
    // A callback that is not an identifier is ignored (plain JSON).
    let (_, body) = progress(&sb, "?page=save-the-bees&callback=alert(1)").await;
    assert!(body.starts_with('{'), "{body}");
    let (status, body) = progress(&sb, "?page=no-such-page").await;
    assert_eq!((status, body.as_str()), (404, ""));
    let stats = sb.stats().await;
    assert_eq!(stats["by_route"]["GET /progress/"], 3, "{stats}");
}
