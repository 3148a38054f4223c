//! Every query of the schema, end to end: gateway → HTTP → sandbox.

use crate::helpers::gateway::{spawn, spawn_with};
use serde_json::{json, Value};

const TYPES: [(&str, &str, &str); 9] = [
    ("petitionaction", "PETITION", "PetitionAction"),
    ("signupaction", "SIGNUP", "SignupAction"),
    ("donationaction", "DONATION", "DonationAction"),
    ("eventsignupaction", "EVENT_SIGNUP", "EventSignupAction"),
    ("eventcreateaction", "EVENT_CREATE", "EventCreateAction"),
    ("unsubscribeaction", "UNSUBSCRIBE", "UnsubscribeAction"),
    ("surveyaction", "SURVEY", "SurveyAction"),
    ("callaction", "CALL", "CallAction"),
    ("letteraction", "LETTER", "LetterAction"),
];

fn id_of_uri(uri: &Value) -> String {
    let s = uri.as_str().unwrap().trim_end_matches('/');
    s.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn user_by_id_returns_fields_and_custom_fields() {
    let gw = spawn(&[]).await;
    let rest = gw.rest("/rest/v1/user/1/").await;
    let data = gw
        .data(
            r#"{ user(id: "1") { id email firstName lastName city state zip country
                 subscriptionStatus createdAt updatedAt customFields { name value values } } }"#,
            json!({}),
        )
        .await;
    let user = &data["user"];
    assert_eq!(user["id"], "1");
    assert_eq!(user["email"], rest["email"]);
    assert_eq!(user["firstName"], rest["first_name"]);
    assert_eq!(user["lastName"], rest["last_name"]);
    assert_eq!(user["zip"], rest["zip"]);
    assert_eq!(user["createdAt"], rest["created_at"]);
    let names: Vec<&str> = user["customFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = rest["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn user_by_email_and_missing_user() {
    let gw = spawn(&[]).await;
    let rest = gw.rest("/rest/v1/user/5/").await;
    let data = gw
        .data(
            "query($e: String) { user(email: $e) { id } }",
            json!({"e": rest["email"]}),
        )
        .await;
    assert_eq!(data["user"]["id"], "5");
    let data = gw
        .data(
            r#"{ a: user(id: "999999999") { id } b: user(email: "nobody-here@example.invalid") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data, json!({"a": null, "b": null}));
}

/// The sandbox's default AKID secret.
fn sb_secret() -> String {
    crate::helpers::gateway::sandbox_config(&[]).akid_secret
}

/// ActionKit's AKID hash: the first 6 characters of base64url(sha256(secret "." cleartext)).
fn akid_hash(secret: &str, cleartext: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{secret}.{cleartext}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)[..6].to_owned()
}

const BY_AKID: &str = "query($a: String) { user(akid: $a) { id } }";

#[tokio::test]
async fn user_by_akid_with_and_without_the_secret() {
    for with_secret in [true, false] {
        let gw = spawn_with(&[], Default::default(), with_secret).await;
        let rest = gw.rest("/rest/v1/user/7/").await;
        let token = rest["token"].as_str().unwrap().to_owned();
        // With a mailing id in front (its own hash) it is still the same user.
        let with_mailing = format!("123.7.{}", akid_hash(&sb_secret(), "123.7"));
        for akid in [token.clone(), with_mailing] {
            let data = gw.data(BY_AKID, json!({ "a": akid })).await;
            assert_eq!(
                data["user"]["id"], "7",
                "akid {akid} (secret: {with_secret})"
            );
        }
        // A forged hash names nobody.
        let forged = format!(
            ".7.{}",
            if token.ends_with("AAAAAA") {
                "BBBBBB"
            } else {
                "AAAAAA"
            }
        );
        let data = gw.data(BY_AKID, json!({ "a": forged })).await;
        assert_eq!(
            data["user"],
            Value::Null,
            "forged AKID accepted (secret: {with_secret})"
        );
        // Garbage is a bad input, refused before any call.
        let body = gw.gql(BY_AKID, json!({"a": "not an akid"})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
    }
}

#[tokio::test]
async fn user_needs_exactly_one_argument() {
    let gw = spawn(&[]).await;
    gw.reset_stats().await;
    for q in [
        "{ user { id } }",
        r#"{ user(id: "1", email: "a@b.c") { id } }"#,
        r#"{ user(id: "abc") { id } }"#,
        r#"{ user(id: "-1") { id } }"#,
    ] {
        let body = gw.gql(q, json!({})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{q}: {body}"
        );
        assert_eq!(body["data"]["user"], Value::Null);
    }
    assert_eq!(gw.calls().await, 0, "bad input reached ActionKit");
}

#[tokio::test]
async fn users_keeps_order_and_nulls_missing() {
    let gw = spawn(&[]).await;
    let data = gw
        .data(
            r#"{ users(ids: ["3", "999999", "1", "3"]) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data["users"],
        json!([{"id": "3"}, null, {"id": "1"}, {"id": "3"}])
    );
    let too_many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    let body = gw
        .gql(
            "query($ids: [ID!]!) { users(ids: $ids) { id } }",
            json!({"ids": too_many}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

#[tokio::test]
async fn every_action_type_resolves_to_its_object_type() {
    let gw = spawn(&[]).await;
    for (resource, enum_name, typename) in TYPES {
        let list = gw.rest(&format!("/rest/v1/{resource}/?_limit=1")).await;
        let obj = &list["objects"][0];
        assert!(obj.is_object(), "the sandbox has no {resource}");
        let id = obj["id"].to_string();
        let data = gw
            .data(
                r#"query($id: ID!) { action(id: $id) {
                    __typename id type status source createdAt updatedAt
                    user { id } page { id type }
                    customFields { name value values }
                    ... on DonationAction { order { id total } }
                    ... on EventSignupAction { signupId }
                    ... on EventCreateAction { eventId }
                } }"#,
                json!({"id": id}),
            )
            .await;
        let action = &data["action"];
        assert_eq!(action["__typename"], typename);
        assert_eq!(action["type"], enum_name);
        assert_eq!(action["page"]["type"], enum_name);
        assert_eq!(action["user"]["id"], id_of_uri(&obj["user"]));
        assert_eq!(action["page"]["id"], id_of_uri(&obj["page"]));
        let fields = obj["fields"].as_object().unwrap();
        assert_eq!(
            action["customFields"].as_array().unwrap().len(),
            fields.len()
        );
        for f in action["customFields"].as_array().unwrap() {
            let raw = &fields[f["name"].as_str().unwrap()];
            let values: Vec<Value> = match raw {
                Value::Array(vs) => vs.clone(),
                v => vec![v.clone()],
            };
            assert_eq!(f["values"], Value::Array(values.clone()));
            assert_eq!(f["value"], values[0]);
        }
    }
}

#[tokio::test]
async fn missing_action_and_page_are_null() {
    let gw = spawn(&[]).await;
    let data = gw
        .data(
            r#"{ action(id: "987654321") { id } p: page(id: "987654321") { id } n: page(name: "no-such-page") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data, json!({"action": null, "p": null, "n": null}));
}

#[tokio::test]
async fn page_by_id_and_by_name_agree_with_actionkit() {
    let gw = spawn(&[]).await;
    let list = gw.rest("/rest/v1/page/?_limit=5").await;
    for page in list["objects"].as_array().unwrap() {
        let q = r#"query($id: ID, $name: String) {
            a: page(id: $id) { id name title type status hidden url tags createdAt }
            b: page(name: $name) { id name title type status hidden url tags createdAt } }"#;
        let data = gw
            .data(
                q,
                json!({"id": page["id"].to_string(), "name": page["name"]}),
            )
            .await;
        assert_eq!(data["a"], data["b"]);
        assert_eq!(data["a"]["title"], page["title"]);
        assert_eq!(data["a"]["hidden"], page["hidden"]);
        let tags: Vec<Value> = page["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(data["a"]["tags"], Value::Array(tags));
    }
}

/// Walks a user's actions with `first`/`after` and returns the ids and the total.
async fn walk(
    gw: &crate::helpers::gateway::TestGateway,
    user: &str,
    extra: &str,
    first: u32,
) -> (Vec<u64>, u64) {
    let q = format!(
        r#"query($u: ID, $after: String) {{ user(id: $u) {{
            actions(first: {first}, after: $after{extra}) {{
                totalCount pageInfo {{ hasNextPage endCursor hasPreviousPage }}
                edges {{ cursor node {{ id type page {{ name }} }} }} }} }} }}"#
    );
    let mut after = Value::Null;
    let mut ids = Vec::new();
    let mut total = None;
    loop {
        let data = gw.data(&q, json!({"u": user, "after": after})).await;
        let conn = &data["user"]["actions"];
        let t = conn["totalCount"].as_u64().unwrap();
        assert_eq!(
            *total.get_or_insert(t),
            t,
            "totalCount changed while paging"
        );
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], !after.is_null());
        for e in conn["edges"].as_array().unwrap() {
            ids.push(e["node"]["id"].as_str().unwrap().parse().unwrap());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
        assert!(ids.len() < 100_000, "paging does not end");
    }
    (ids, total.unwrap_or(0))
}

#[tokio::test]
async fn paginating_a_large_user_reaches_the_end_exactly_once() {
    let gw = spawn(&[]).await;
    // The user with the most actions in the demo data.
    let big = gw.rest("/rest/v1/action/?user=1&_limit=1").await;
    let expected = big["meta"]["total_count"].as_u64().unwrap();
    assert!(
        expected > 200,
        "user 1 should have many actions, has {expected}"
    );
    let (ids, total) = walk(&gw, "1", "", 100).await;
    assert_eq!(total, expected);
    assert_eq!(ids.len() as u64, expected);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not strictly ascending: duplicates or gaps in order"
    );
}

#[tokio::test]
async fn type_and_page_name_filters_match_actionkit() {
    let gw = spawn(&[]).await;
    // Pick a user and one of their actions; filter by its type and by its page.
    let list = gw.rest("/rest/v1/action/?user=2&_limit=100").await;
    let sample = &list["objects"][0];
    let resource = sample["resource_uri"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(3)
        .unwrap()
        .to_owned();
    let (_, enum_name, _) = TYPES.iter().find(|(r, _, _)| *r == resource).unwrap();
    let typed = gw
        .rest(&format!("/rest/v1/{resource}/?user=2&_limit=1"))
        .await;
    let (ids, total) = walk(&gw, "2", &format!(", type: {enum_name}"), 50).await;
    assert_eq!(total, typed["meta"]["total_count"].as_u64().unwrap());
    assert_eq!(ids.len() as u64, total);

    let page = gw
        .rest(&format!("/rest/v1/page/{}/", id_of_uri(&sample["page"])))
        .await;
    let name = page["name"].as_str().unwrap();
    let by_page = gw
        .rest(&format!(
            "/rest/v1/action/?user=2&page={}&_limit=1",
            page["id"]
        ))
        .await;
    let (ids, total) = walk(&gw, "2", &format!(r#", pageName: "{name}""#), 7).await;
    assert_eq!(total, by_page["meta"]["total_count"].as_u64().unwrap());
    assert_eq!(ids.len() as u64, total);
    assert!(total >= 1);

    // Both filters at once.
    let (_, total) = walk(
        &gw,
        "2",
        &format!(r#", type: {enum_name}, pageName: "{name}""#),
        20,
    )
    .await;
    assert_eq!(total, by_page["meta"]["total_count"].as_u64().unwrap());
}

#[tokio::test]
async fn bad_connection_arguments_are_refused_before_any_call() {
    let gw = spawn(&[]).await;
    gw.reset_stats().await;
    for args in [
        "first: 101",
        "first: -1",
        r#"after: "garbage""#,
        "type: OTHER",
        r#"pageName: "no spaces""#,
    ] {
        let q = format!(r#"{{ user(id: "1") {{ actions({args}) {{ totalCount }} }} }}"#);
        let body = gw.gql(&q, json!({})).await;
        let err = &body["errors"][0];
        assert_eq!(
            err["extensions"]["code"], "BAD_USER_INPUT",
            "{args}: {body}"
        );
        assert_eq!(err["path"], json!(["user", "actions"]), "{args}: {body}");
    }
    // The users may be read; the refused `actions` never reach ActionKit.
    let (listed, stats) = gw.calls_to(|route| route.contains("action")).await;
    assert_eq!(listed, 0, "a refused argument reached ActionKit: {stats}");
}

#[tokio::test]
async fn an_upstream_failure_gives_partial_data_and_a_coded_error_at_its_path() {
    let gw = spawn(&[]).await;
    // Warm the page cache, then make ActionKit fail every request.
    let warm = gw.data(r#"{ page(id: "1") { title } }"#, json!({})).await;
    gw.set_faults(json!({"error_503": 1.0})).await;
    let body = gw
        .gql(
            r#"{ ok: page(id: "1") { title } bad: user(id: "1") { firstName } }"#,
            json!({}),
        )
        .await;
    gw.set_faults(json!({"error_503": 0.0})).await;
    assert_eq!(body["data"]["ok"], warm["page"], "{body}");
    assert_eq!(body["data"]["bad"], Value::Null);
    let err = &body["errors"][0];
    assert_eq!(err["path"], json!(["bad"]));
    assert_eq!(err["extensions"]["code"], "UPSTREAM_UNAVAILABLE");
    let text = body.to_string();
    assert!(
        !text.contains("rest/v1") && !text.contains("sandbox") && !text.contains("503"),
        "upstream details leaked: {text}"
    );
}
