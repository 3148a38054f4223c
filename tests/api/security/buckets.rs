//! Rate-limit buckets (docs/security.md, Rate limits): a `self` key's members, and
//! anonymous callers by client address (from `X-Forwarded-For` / `Forwarded` only
//! behind a trusted proxy), each have a bucket; a key shared by several callers has a
//! ceiling above one caller's rate.

use crate::helpers::gateway::{akid_of, spawn_mode, TestGateway};
use actionkit_graphql::config::{Config, Mode};
use actionkit_graphql::http::auth::hash_key;
use serde_json::json;

const SELF_KEY: &str = "self-key-0123456789";

fn config(per_minute: u32, burst: u32) -> Config {
    let mut c = Config::default();
    c.security.api_keys = vec![format!("member:self:{}", hash_key(SELF_KEY))];
    c.security.rate_limit_per_minute = Some(per_minute);
    c.security.rate_limit_burst = burst;
    c
}

async fn gateway(c: Config) -> TestGateway {
    spawn_mode(&["--users", "40"], c, true, Mode::Production)
        .await
        .unwrap()
}

/// The status of one `self` query for `user`.
async fn as_member(gw: &TestGateway, user: u64) -> u16 {
    let akid = akid_of(gw, user).await;
    let auth = format!("Bearer {SELF_KEY}");
    let query = json!({"query": format!(r#"{{ user(id: "{user}") {{ id }} }}"#)});
    let (status, _, body) = gw
        .post_json(&[("authorization", &auth), ("x-akid", &akid)], query)
        .await;
    if status == 429 {
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{body}"
        );
    } else {
        assert_eq!(status, 200, "{body}");
    }
    status
}

#[tokio::test]
async fn each_member_of_a_self_key_has_a_bucket() {
    let gw = gateway(config(60, 3)).await;
    let statuses: Vec<u16> = futures::future::join_all((0..3).map(|_| as_member(&gw, 11))).await;
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(as_member(&gw, 11).await, 429, "member 11's bucket is empty");
    // Another member of the same key is not refused.
    assert_eq!(as_member(&gw, 12).await, 200);
    assert_eq!(as_member(&gw, 12).await, 200);
}

#[tokio::test]
async fn a_shared_key_has_a_ceiling_above_one_callers_rate() {
    // 2 per member (burst 2), 4 for the key as a whole (burst scaled alike: 4).
    let mut c = config(60, 2);
    c.security.rate_limit_key_per_minute = Some(120);
    let gw = gateway(c).await;
    for member in [11, 12] {
        assert_eq!(as_member(&gw, member).await, 200);
        assert_eq!(as_member(&gw, member).await, 200);
    }
    // Members 11 and 12 used the key's four: a third member is refused by the ceiling.
    assert_eq!(as_member(&gw, 13).await, 429);
}

/// Anonymous reads, one per `(forwarding header, expected status)`, in order.
async fn anonymous(gw: &TestGateway, cases: &[((&str, &str), u16)]) {
    for (forwarded, expected) in cases {
        let (status, _, body) = gw
            .post_json(&[*forwarded], json!({"query": "{ __typename }"}))
            .await;
        assert_eq!(status, *expected, "{forwarded:?}: {body}");
    }
}

fn anonymous_config(trusted: &[&str]) -> Config {
    let mut c = Config::default();
    c.security.allow_anonymous_reads = true;
    c.security.rate_limit_per_minute = Some(60);
    c.security.rate_limit_burst = 2;
    c.security.trusted_proxies = trusted.iter().map(|s| s.to_string()).collect();
    c
}

#[tokio::test]
async fn behind_a_trusted_proxy_anonymous_callers_are_bucketed_by_forwarded_address() {
    let gw = gateway(anonymous_config(&["127.0.0.0/8"])).await;
    let a = ("x-forwarded-for", "203.0.113.1");
    let v6_port = ("forwarded", "for=\"[2001:db8::7]:4711\"");
    anonymous(
        &gw,
        &[
            (a, 200),
            (a, 200),
            // 203.0.113.1's bucket is empty.
            (a, 429),
            // Another client behind the same proxy has its own bucket, also named by
            // RFC 7239.
            (("x-forwarded-for", "203.0.113.2"), 200),
            (v6_port, 200),
            (v6_port, 200),
            (("forwarded", "for=2001:db8::7"), 429),
        ],
    )
    .await;
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarding_headers_are_ignored() {
    // The connection comes from 127.0.0.1, which is not configured as a proxy: the
    // headers are the client's own claim, and every caller here shares 127.0.0.1.
    let gw = gateway(anonymous_config(&[])).await;
    anonymous(
        &gw,
        &[
            (("x-forwarded-for", "203.0.113.1"), 200),
            (("x-forwarded-for", "203.0.113.2"), 200),
            (("x-forwarded-for", "203.0.113.3"), 429),
        ],
    )
    .await;
}
