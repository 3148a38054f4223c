//! Reads: paging, ordering, representations, trailing slash, auth, 404s.

use std::collections::HashSet;

use super::support::*;
use crate::helpers::sandbox::*;
use serde_json::Value;

#[tokio::test]
async fn paging_to_the_end_through_next() {
    let sb = start(config()).await;
    // User 2 has 3,500 actions.
    let mut path = "/rest/v1/action/?user=2&_limit=100".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut total = None;
    loop {
        let page = sb.json(&path).await;
        pages += 1;
        let meta = &page["meta"];
        total.get_or_insert(meta["total_count"].as_u64().unwrap());
        assert_eq!(meta["limit"], 100);
        for o in page["objects"].as_array().unwrap() {
            assert_eq!(o["user"], "/rest/v1/user/2/");
            seen.push(o["id"].as_u64().unwrap());
        }
        match meta["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("/rest/v1/action/?_offset="), "{next}");
                assert!(next.contains("&_limit=100&user=2"), "{next}");
                path = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(total, Some(3_500));
    assert_eq!(seen.len(), 3_500);
    assert_eq!(pages, 35);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "default order is ascending id");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 3_500);
}

#[tokio::test]
async fn limit_offset_and_links() {
    let sb = start(config()).await;
    let p = sb.json("/rest/v1/user/").await;
    assert_eq!(p["meta"]["limit"], 20);
    assert_eq!(p["meta"]["offset"], 0);
    assert_eq!(p["meta"]["previous"], Value::Null);
    assert_eq!(p["meta"]["next"], "/rest/v1/user/?_offset=20&_limit=20");
    assert_eq!(p["meta"]["total_count"], 60);
    assert_eq!(p["objects"][0]["id"], 1);

    let p = sb.json("/rest/v1/user/?_offset=40&_limit=20").await;
    assert_eq!(p["meta"]["previous"], "/rest/v1/user/?_offset=20&_limit=20");
    assert_eq!(p["meta"]["next"], Value::Null);
    assert_eq!(p["objects"].as_array().unwrap().len(), 20);

    for q in ["_limit=500", "_limit=0"] {
        let p = sb.json(&format!("/rest/v1/action/?{q}")).await;
        assert_eq!(p["meta"]["limit"], 100, "{q}");
        assert_eq!(p["objects"].as_array().unwrap().len(), 100);
    }
    for q in ["_limit=-1", "_limit=abc", "_offset=-5", "_offset=x"] {
        let (status, body) = sb.status(&format!("/rest/v1/action/?{q}")).await;
        assert_eq!(status, 400, "{q}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].is_string(), "{q}: {body}");
    }
}

#[tokio::test]
async fn ordering() {
    let sb = start(config()).await;
    let p = sb
        .json("/rest/v1/action/?user=1&order_by=-created_at&_limit=50")
        .await;
    let times = each_str(&p, "created_at");
    let mut sorted = times.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(times, sorted);
    assert!(p["meta"]["next"]
        .as_str()
        .unwrap()
        .contains("order_by=-created_at"));

    let p = sb.json("/rest/v1/page/?order_by=name&_limit=100").await;
    let names = each_str(&p, "name");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    for bad in [
        "order_by=nonexistent",
        "order_by=ip_address",
        "order_by=-fields",
    ] {
        let (status, _) = sb.status(&format!("/rest/v1/action/?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn representations() {
    let sb = start(config()).await;
    let u = sb.json("/rest/v1/user/1/").await;
    assert_eq!(u["first_name"], "Rosa");
    assert_eq!(u["last_name"], "Delgado");
    assert_eq!(u["email"], "rosa.delgado1@example.org");
    assert_eq!(u["actions"], "/rest/v1/action/?user=1");
    assert_eq!(u["resource_uri"], "/rest/v1/user/1/");
    assert_eq!(u["fields"]["color"], serde_json::json!(["green", "purple"]));
    assert!(u["token"].as_str().unwrap().starts_with(".1."));
    assert_eq!(u["phones"].as_array().unwrap().len(), 2);

    // Generic list objects carry typed URIs; typed endpoints only their type.
    let p = sb.json("/rest/v1/action/?user=1&_limit=100").await;
    let mut types = HashSet::new();
    let mut multi = false;
    for o in p["objects"].as_array().unwrap() {
        let t = o["type"].as_str().unwrap();
        types.insert(t.to_string());
        let uri = o["resource_uri"].as_str().unwrap();
        let page = o["page"].as_str().unwrap();
        assert!(
            uri.starts_with("/rest/v1/") && uri.contains("action/"),
            "{uri}"
        );
        assert_ne!(
            uri.split('/').nth(3),
            Some("action"),
            "typed resource_uri: {uri}"
        );
        assert!(page.contains("page/"), "{page}");
        let ts = o["created_at"].as_str().unwrap();
        assert!(ts.len() >= 19 && !ts.ends_with('Z'), "{ts}");
        multi |= o["fields"]
            .as_object()
            .unwrap()
            .values()
            .any(|v| v.is_array());
        let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
    assert!(
        types.len() >= 6,
        "user 1 has a mix of action types: {types:?}"
    );
    assert!(multi, "some multi-valued fields");

    let d = sb.json("/rest/v1/donationaction/?user=1&_limit=1").await;
    let d = &d["objects"][0];
    assert_eq!(d["type"], "Donation");
    assert!(d["order"]["total"].is_string());
    let e = sb.json("/rest/v1/eventsignupaction/?user=1&_limit=1").await;
    assert!(e["objects"][0]["signup"]
        .as_str()
        .unwrap()
        .starts_with("/rest/v1/eventsignup/"));
    let e = sb.json("/rest/v1/eventcreateaction/?user=1&_limit=1").await;
    assert!(e["objects"][0]["event"]
        .as_str()
        .unwrap()
        .starts_with("/rest/v1/event/"));

    // The same action under its generic and typed URIs.
    let id = d["id"].as_u64().unwrap();
    let g = sb.json(&format!("/rest/v1/action/{id}/")).await;
    assert_eq!(g["resource_uri"], d["resource_uri"]);
    assert_eq!(g["fields"], d["fields"]);
    let (status, _) = sb.status(&format!("/rest/v1/petitionaction/{id}/")).await;
    assert_eq!(status, 404, "a donation is not a petitionaction");

    let pg = sb.json("/rest/v1/petitionpage/1/").await;
    assert_eq!(pg["actions"], "/rest/v1/petitionaction/?page=1");
    assert_eq!(pg["type"], "Petition");
    let root = sb.json("/rest/v1/").await;
    for r in [
        "user",
        "action",
        "page",
        "petitionaction",
        "surveypage",
        "actionfield",
    ] {
        assert_eq!(root[r]["list_endpoint"], format!("/rest/v1/{r}/"));
    }
    let schema = sb.json("/rest/v1/user/schema/").await;
    assert_eq!(schema["filtering"]["email"], serde_json::json!(["exact"]));
    assert_eq!(schema["filtering"]["language"], "all with relations");
    assert!(schema["fields"]["email"].is_object());
    assert!(schema["allowed_detail_http_methods"].is_array());
}

#[tokio::test]
async fn akids_and_userpublic() {
    let sb = start(actionkit_graphql::sandbox::SandboxConfig {
        akid_secret: "emulator-secret".into(),
        ..config()
    })
    .await;
    let u = sb.json("/rest/v1/user/3/").await;
    assert_eq!(u["token"], ".3.qPLFs8", "reference §4.1 test vector");
    // No auth needed.
    let r = get_without_credential(&sb, "/rest/v1/userpublic/.3.qPLFs8/").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 3);
    assert!(v.get("email").is_none(), "limited information");
    for bad in [".3.qPLFs9", ".3", "garbage", ".999999.qPLFs8"] {
        let r = get_without_credential(&sb, &format!("/rest/v1/userpublic/{bad}/")).await;
        assert_eq!(r.status(), 404, "{bad}");
    }
}

#[tokio::test]
async fn trailing_slash_auth_and_404() {
    let sb = start(config()).await;
    let r = sb.get("/rest/v1/tag?_limit=100").send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/rest/v1/tag/?_limit=100", sb.base)
    );
    // Non-GET without the slash: 404 (documented choice).
    let r = sb
        .req(reqwest::Method::PATCH, "/rest/v1/action/1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    for (user, pass) in [("sandbox", "wrong"), ("nobody", "sandbox")] {
        let r = sb
            .http
            .get(sb.url("/rest/v1/user/1/"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(r.text().await.unwrap(), "");
    }
    let r = get_without_credential(&sb, "/rest/v1/user/1/").await;
    assert_eq!(r.status(), 401);
    let r = sb
        .req(reqwest::Method::HEAD, "/rest/v1/user/1/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "HEAD is answered as GET");

    for path in [
        "/rest/v1/user/999999/",
        "/rest/v1/action/0/",
        "/rest/v1/action/abc/",
        "/rest/v1/petitionpage/99999999999/",
        "/rest/v1/nosuchresource/",
        "/rest/v1/user/1/extra/",
    ] {
        let r = sb.get(path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.headers()["content-length"], "0");
        assert_eq!(r.text().await.unwrap(), "");
    }
}

#[tokio::test]
async fn demo_data_is_deterministic() {
    let a = start(config()).await;
    let b = start(config()).await;
    for path in [
        "/rest/v1/user/7/",
        "/rest/v1/action/?user=9",
        "/rest/v1/page/?_limit=100",
    ] {
        assert_eq!(a.json(path).await, b.json(path).await, "{path}");
    }
    let c = start(actionkit_graphql::sandbox::SandboxConfig {
        seed: 2,
        ..config()
    })
    .await;
    assert_ne!(
        a.json("/rest/v1/user/7/").await,
        c.json("/rest/v1/user/7/").await
    );
    // Heavy users.
    for (id, n) in [(1, 2_400), (2, 3_500), (3, 2_000)] {
        let p = a
            .json(&format!("/rest/v1/action/?user={id}&_limit=1"))
            .await;
        assert_eq!(p["meta"]["total_count"], n);
    }
}
