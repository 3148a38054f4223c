//! Filters allowed and refused, in both `--filters` modes.

use crate::helpers::sandbox::*;
use actionkit_graphql::sandbox::{FilterMode, SandboxConfig};
use serde_json::Value;

async fn sb(mode: FilterMode) -> RunningSandbox {
    start(SandboxConfig {
        filters: mode,
        ..config()
    })
    .await
}

/// Filters both modes allow, with a check on the result.
const BOTH_ALLOW: &[&str] = &[
    "/rest/v1/user/?email=rosa.delgado1@example.org",
    "/rest/v1/user/?country=United%20States",
    "/rest/v1/user/?country__iexact=united%20states",
    "/rest/v1/user/?last_name__startswith=Del",
    "/rest/v1/user/?state__in=CA,IL",
    "/rest/v1/user/?state__in=CA&state__in=IL",
    "/rest/v1/user/?zip__contains=94",
    "/rest/v1/user/?source=website",
    "/rest/v1/user/?subscription_status=subscribed",
    "/rest/v1/user/?subscription_status__in=subscribed,never",
    "/rest/v1/user/?language=100",
    "/rest/v1/user/?language__iso_code=en",
    "/rest/v1/action/?user=1",
    "/rest/v1/action/?page=1",
    "/rest/v1/action/?page__name=save-the-bees",
    "/rest/v1/action/?user=1&page__name=save-the-bees",
    "/rest/v1/action/?id=5",
    "/rest/v1/action/?status=complete",
    "/rest/v1/action/?created_at__gte=2020-01-01",
    "/rest/v1/action/?created_at__year=2021",
    "/rest/v1/action/?source__in=website,email",
    "/rest/v1/petitionaction/?user=1",
    "/rest/v1/petitionaction/?page=1",
    "/rest/v1/petitionaction/?user=1&page__name=save-the-bees",
    "/rest/v1/surveyaction/?page__name=dating",
    "/rest/v1/page/?name=save-the-bees",
    "/rest/v1/page/?type=Petition",
    "/rest/v1/page/?hidden=false",
    "/rest/v1/page/?hidden=False",
    "/rest/v1/page/?id=3",
    "/rest/v1/page/?title__icontains=bees",
    "/rest/v1/petitionpage/?name=save-the-bees",
    "/rest/v1/actionfield/?parent=5",
    "/rest/v1/actionfield/?name=comment",
    "/rest/v1/action/?format=json",
];

/// Refused in both modes.
const BOTH_REFUSE: &[&str] = &[
    "/rest/v1/user/?email__icontains=rosa",
    "/rest/v1/user/?email__in=a@example.org,b@example.org",
    "/rest/v1/user/?first_name=Rosa",
    "/rest/v1/user/?subscription_status__icontains=sub",
    "/rest/v1/user/?country__nosuchop=x",
    "/rest/v1/user/?limit=10",
    "/rest/v1/user/?offset=10",
    "/rest/v1/user/?bogus=1",
    "/rest/v1/action/?fields=x",
    "/rest/v1/action/?ip_address=1.2.3.4",
    "/rest/v1/action/?page__title__name=x",
    "/rest/v1/action/?page__nosuchfield=x",
    "/rest/v1/action/?created_at=notadate",
    "/rest/v1/action/?user=abc",
    "/rest/v1/action/?status__regex=^c",
    "/rest/v1/page/?url=x",
    "/rest/v1/action/?format=xml",
];

/// Refused in strict mode, allowed in permissive mode.
const PERMISSIVE_ONLY: &[&str] = &[
    "/rest/v1/user/?id=1",
    "/rest/v1/user/?id__in=1,2,3",
    "/rest/v1/action/?id__in=1,2,3",
    "/rest/v1/action/?user__in=1,2",
    "/rest/v1/action/?user__in=1&user__in=2",
    "/rest/v1/action/?user__email=rosa.delgado1@example.org",
    "/rest/v1/action/?page__in=1,2",
    "/rest/v1/action/?page__type=Survey",
    "/rest/v1/petitionaction/?user__in=1,2",
    "/rest/v1/petitionaction/?id__in=1,2",
    "/rest/v1/page/?id__in=1,2",
    "/rest/v1/petitionpage/?id__in=1,2",
    "/rest/v1/action/?id__gt=100",
];

async fn check(sb: &RunningSandbox, path: &str, want: u16, mode: &str) {
    let (status, body) = sb.status(path).await;
    assert_eq!(status, want, "{mode} {path}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    if want == 400 {
        assert!(v["error"].is_string(), "{mode} {path}: {body}");
    } else {
        assert!(v["meta"]["total_count"].is_u64(), "{mode} {path}");
    }
}

#[tokio::test]
async fn strict_mode_table() {
    let sb = sb(FilterMode::Strict).await;
    for p in BOTH_ALLOW {
        check(&sb, p, 200, "strict").await;
    }
    for p in BOTH_REFUSE.iter().chain(PERMISSIVE_ONLY) {
        check(&sb, p, 400, "strict").await;
    }
    let s = sb.json("/rest/v1/user/schema/").await;
    let f = s["filtering"].as_object().unwrap();
    assert!(f.get("id").is_none(), "strict user schema has no id");
    assert_eq!(
        serde_json::Value::Object(f.clone()),
        serde_json::json!({"country": "all", "email": ["exact"], "language": "all with relations",
            "last_name": "all", "source": "all", "state": "all",
            "subscription_status": ["exact", "in"], "zip": "all"})
    );
    let s = sb.json("/rest/v1/action/schema/").await;
    assert_eq!(s["filtering"]["user"], serde_json::json!(["exact"]));
    assert_eq!(s["filtering"]["page__name"], serde_json::json!(["exact"]));
}

#[tokio::test]
async fn permissive_mode_table() {
    let sb = sb(FilterMode::Permissive).await;
    for p in BOTH_ALLOW.iter().chain(PERMISSIVE_ONLY) {
        check(&sb, p, 200, "permissive").await;
    }
    for p in BOTH_REFUSE {
        check(&sb, p, 400, "permissive").await;
    }
    let s = sb.json("/rest/v1/user/schema/").await;
    assert!(s["filtering"]["id"]
        .as_array()
        .unwrap()
        .contains(&"in".into()));
    let s = sb.json("/rest/v1/action/schema/").await;
    assert_eq!(s["filtering"]["user"], "all with relations");
}

fn ids(v: &Value) -> Vec<u64> {
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn filter_results_are_right() {
    let sb = sb(FilterMode::Permissive).await;
    let v = sb
        .json("/rest/v1/user/?email=rosa.delgado1@example.org")
        .await;
    assert_eq!(ids(&v), vec![1]);
    let v = sb.json("/rest/v1/user/?id__in=3,1,2,99999").await;
    assert_eq!(ids(&v), vec![1, 2, 3]);
    assert_eq!(v["meta"]["total_count"], 3);

    let a = sb.json("/rest/v1/action/?user__in=4,5&_limit=100").await;
    let four = sb.json("/rest/v1/action/?user=4&_limit=100").await;
    let five = sb.json("/rest/v1/action/?user=5&_limit=100").await;
    assert_eq!(
        a["meta"]["total_count"].as_u64().unwrap(),
        four["meta"]["total_count"].as_u64().unwrap()
            + five["meta"]["total_count"].as_u64().unwrap()
    );
    let merged = sb
        .json("/rest/v1/action/?user__in=4&user__in=5&_limit=100")
        .await;
    assert_eq!(ids(&merged), ids(&a));

    let v = sb
        .json("/rest/v1/petitionaction/?user=1&page__name=save-the-bees&_limit=100")
        .await;
    assert!(v["meta"]["total_count"].as_u64().unwrap() > 0);
    for o in v["objects"].as_array().unwrap() {
        assert_eq!(o["page"], "/rest/v1/petitionpage/1/");
        assert_eq!(o["user"], "/rest/v1/user/1/");
    }
    let v = sb
        .json("/rest/v1/surveyaction/?page__name=save-the-bees")
        .await;
    assert_eq!(
        v["meta"]["total_count"], 0,
        "typed list only holds its type"
    );

    // Each filter lists only what it names.
    type Holds = fn(&Value) -> bool;
    let filtered: [(&str, Holds); 4] = [
        ("/rest/v1/page/?type=Survey&_limit=100", |o| {
            o["type"] == "Survey"
        }),
        ("/rest/v1/page/?hidden=true", |o| o["hidden"] == true),
        (
            "/rest/v1/action/?user=1&created_at__year=2021&_limit=100",
            |o| o["created_at"].as_str().unwrap().starts_with("2021-"),
        ),
        ("/rest/v1/user/?state__in=CA&state__in=IL&_limit=100", |o| {
            o["state"] == "CA" || o["state"] == "IL"
        }),
    ];
    for (path, holds) in filtered {
        let v = sb.json(path).await;
        assert!(v["objects"].as_array().unwrap().iter().all(holds), "{path}");
    }
    let hidden = sb.json("/rest/v1/page/?hidden=true").await;
    assert!(hidden["meta"]["total_count"].as_u64().unwrap() >= 1);

    // Index-backed traversals agree with the plain filters.
    let by_name = sb
        .json("/rest/v1/action/?page__name=save-the-bees&_limit=100")
        .await;
    let by_id = sb.json("/rest/v1/action/?page=1&_limit=100").await;
    assert_eq!(ids(&by_name), ids(&by_id));
    assert_eq!(by_name["meta"]["total_count"], by_id["meta"]["total_count"]);
    let orders = sb
        .json("/rest/v1/order/?user__email=rosa.delgado1@example.org&_limit=100")
        .await;
    let donations = sb.json("/rest/v1/donationaction/?user=1&_limit=100").await;
    assert_eq!(ids(&orders), ids(&donations));
    let v = sb
        .json("/rest/v1/action/?user__email=rosa.delgado1@example.org&_limit=1")
        .await;
    assert_eq!(v["meta"]["total_count"], 2_400);
    let v = sb.json("/rest/v1/action/?page__name=no-such-page").await;
    assert_eq!(v["meta"]["total_count"], 0);

    // total_count counts after filters; next keeps the filters.
    let v = sb
        .json("/rest/v1/action/?user=1&page__name=save-the-bees&_limit=5")
        .await;
    let next = v["meta"]["next"].as_str().unwrap();
    assert!(
        next.contains("user=1") && next.contains("page__name=save-the-bees"),
        "{next}"
    );
}
