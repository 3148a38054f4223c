//! The sandbox's action processing (`POST /rest/v1/action/`) over HTTP: the recorded
//! requests answered in the recorded shapes, required fields, allowed user fields,
//! email and zip checks, AKIDs, typed actions, member updates, the knobs
//! (`--max-concurrent`, `--latency-ms`) on this route and the after-write faults.

use std::time::{Duration, Instant};

use super::support::*;
use crate::helpers::sandbox::*;
use actionkit_graphql::sandbox::store::akid_hash;
use actionkit_graphql::sandbox::SandboxConfig;
use reqwest::Method;
use serde_json::{json, Value};

async fn post(sb: &RunningSandbox, body: Value) -> reqwest::Response {
    send_json(sb, Method::POST, "/rest/v1/action/", &body.to_string()).await
}

/// Posts and expects `expected`; returns the body.
async fn post_expecting(sb: &RunningSandbox, body: Value, expected: u16) -> Value {
    let r = post(sb, body.clone()).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, expected, "{body}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Posts and expects a 201; returns the body.
async fn created(sb: &RunningSandbox, body: Value) -> Value {
    post_expecting(sb, body, 201).await
}

/// Posts and expects a 400; returns the body.
async fn refused(sb: &RunningSandbox, body: Value) -> Value {
    post_expecting(sb, body, 400).await
}

async fn count(sb: &RunningSandbox, path: &str) -> u64 {
    sb.json(path).await["meta"]["total_count"].as_u64().unwrap()
}

/// Users and actions on the instance.
async fn totals(sb: &RunningSandbox) -> (u64, u64) {
    (
        count(sb, "/rest/v1/user/?_limit=1").await,
        count(sb, "/rest/v1/action/?_limit=1").await,
    )
}

/// Posts; true when the connection broke before the whole answer came (the head may
/// or may not have been sent: the body is aborted right after it).
async fn dropped(sb: &RunningSandbox, body: Value) -> bool {
    let r = sb
        .req(Method::POST, "/rest/v1/action/")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    match r {
        Err(_) => true,
        Ok(r) => r.text().await.is_err(),
    }
}

/// The request bodies of the recorded `action-create-*` fixtures (SumOfUs cassettes),
/// with the page and email mapped onto the demo data.
fn recorded_request(email: &str) -> Value {
    json!({
        "name": "Pablo José Francisco de María", "postal": "W1", "address1": "The Lodge",
        "address2": "High Street", "city": "London", "country": "United Kingdom",
        "action_age": "101", "action_foo": "Foo", "action_bar": "Bar", "ignored": "ignore me",
        "page": "save-the-bees", "email": email
    })
}

/// The keys of the recorded authenticated answer (`action-create-201.json`).
const RECORDED_KEYS: [&str; 22] = [
    "akid",
    "created_at",
    "created_user",
    "fields",
    "id",
    "ip_address",
    "is_forwarded",
    "link",
    "mailing",
    "opq_id",
    "page",
    "redirect_url",
    "referring_mailing",
    "referring_user",
    "resource_uri",
    "source",
    "status",
    "subscribed_user",
    "taf_emails_sent",
    "type",
    "updated_at",
    "user",
];

#[tokio::test]
async fn recorded_requests_get_the_recorded_answers() {
    let sb = start(config()).await;
    for (email, new_user) in [
        ("rosa.delgado1@example.org", false),
        ("pablo.new@example.org", true),
    ] {
        let r = post(&sb, recorded_request(email)).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["content-type"], "application/json");
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let text = r.text().await.unwrap();
        // Python's separators, keys sorted (as recorded).
        assert!(text.starts_with("{\"akid\": \""), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, RECORDED_KEYS);
        assert_eq!(
            v["fields"],
            json!({"age": "101", "bar": "Bar", "foo": "Foo"})
        );
        assert_eq!(v["type"], "Petition");
        assert_eq!(v["source"], "restful_api");
        assert_eq!(v["status"], "complete");
        assert_eq!(v["created_user"], json!(new_user));
        assert_eq!(v["subscribed_user"], json!(new_user));
        let id = v["id"].as_u64().unwrap();
        assert_eq!(
            location,
            format!("{}/rest/v1/petitionaction/{id}/", sb.base)
        );
        assert_eq!(v["resource_uri"], format!("/rest/v1/petitionaction/{id}/"));
        assert_eq!(v["page"], "/rest/v1/petitionpage/1/");
        assert_eq!(
            v["redirect_url"],
            format!(
                "/cms/thanks/save-the-bees/?action_id={id}&akid={}&ar=1&rd=1",
                v["akid"].as_str().unwrap()
            )
        );
        // The name is split, the address and postal code kept.
        let user = sb.json(v["user"].as_str().unwrap()).await;
        assert_eq!(
            (&user["first_name"], &user["last_name"], &user["city"]),
            (
                &json!("Pablo José Francisco de"),
                &json!("María"),
                &json!("London")
            )
        );
        assert_eq!(user["postal"], "W1");
    }
    // The unknown page, with the recorded body exactly.
    let mut b = recorded_request("foo+113@example.com");
    b["page"] = json!("i-do-not-exist-xyz-123");
    assert_eq!(
        refused(&sb, b).await,
        json!({"page": "Unable to find a page for processing. You sent page=i-do-not-exist-xyz-123."})
    );
    // The recorded validation error (ControlShift `error.json`): a US zip.
    assert_eq!(
        refused(
            &sb,
            json!({"page": "save-the-bees", "email": "z@example.org", "zip": "9461"})
        )
        .await,
        json!({"errors": {"zip": ["There seems to be a problem with what you entered for ZIP Code. Check to make sure your information is typo-free and correctly formatted."]}})
    );
    // Anonymous: the documented reduced answer.
    let anonymous = json!({"page": "save-the-bees", "email": "anon@example.org"});
    assert_anonymous_action_is_reduced(&sb, &anonymous).await;
}

#[tokio::test]
async fn pages_carry_required_fields_and_goals() {
    let sb = start(config()).await;
    let pages = sb.json("/rest/v1/page/?_limit=100").await;
    let page = |name: &str| {
        pages["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        page("clean-water-now")["required_fields"],
        json!([
            {"id": 3, "name": "first_name", "resource_uri": "/rest/v1/formfield/3/"},
            {"id": 2, "name": "zip", "resource_uri": "/rest/v1/formfield/2/"}
        ])
    );
    assert_eq!(page("save-the-bees")["required_fields"], json!([]));
    assert_eq!(
        (
            &page("save-the-bees")["goal"],
            &page("save-the-bees")["goal_type"]
        ),
        (&json!(1000), &json!("actions"))
    );
    assert_eq!(
        (&page("support")["goal"], &page("support")["goal_type"]),
        (&json!(50000), &json!("dollars"))
    );
    assert_eq!(page("join-us")["goal"], Value::Null);
    // The typed detail says the same.
    let id = page("letter-to-council")["id"].clone();
    let names: Vec<Value> = sb.json(&format!("/rest/v1/letterpage/{id}/")).await["required_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![
            "first_name",
            "last_name",
            "address1",
            "city",
            "state",
            "zip"
        ]
    );
}

#[tokio::test]
async fn required_fields_are_checked_and_a_refusal_creates_nothing() {
    let sb = start(config()).await;
    let before = totals(&sb).await;
    assert_eq!(
        refused(
            &sb,
            json!({"page": "clean-water-now", "email": "new1@example.org"})
        )
        .await,
        json!({"errors": {"first_name": ["This field is required."], "zip": ["This field is required."]}})
    );
    // Every failure at once: email syntax and the missing zip.
    let v = refused(
        &sb,
        json!({"page": "clean-water-now", "email": "not-an-email", "first_name": "A"}),
    )
    .await;
    let keys: Vec<&String> = v["errors"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["email", "zip"]);
    // An empty value is no value.
    let v = refused(
        &sb,
        json!({"page": "clean-water-now", "email": "new1@example.org", "first_name": " ", "zip": "53703"}),
    )
    .await;
    assert_eq!(
        v,
        json!({"errors": {"first_name": ["This field is required."]}})
    );
    assert_eq!(totals(&sb).await, before, "nothing created");

    // `name` gives the first name; a recognised member's fields on file count.
    created(
        &sb,
        json!({"page": "clean-water-now", "email": "new1@example.org", "name": "Ada Lovelace", "zip": "53703"}),
    )
    .await;
    created(
        &sb,
        json!({"page": "clean-water-now", "email": "rosa.delgado1@example.org"}),
    )
    .await;
    // Outside the United States, `postal` meets a `zip` requirement.
    created(
        &sb,
        json!({"page": "clean-water-now", "email": "uk@example.org", "first_name": "Jo",
               "postal": "W1A 1AA", "country": "United Kingdom"}),
    )
    .await;
    // The submission's own `required` flag adds to the page's.
    let v = refused(
        &sb,
        json!({"page": "save-the-bees", "email": "rosa.delgado1@example.org", "required": ["phone", "address2"]}),
    )
    .await;
    assert_eq!(
        v,
        json!({"errors": {"address2": ["This field is required."]}}),
        "Rosa has a phone on file, not an address2"
    );
    assert_eq!(
        totals(&sb).await,
        (before.0 + 2, before.1 + 3),
        "two new users, three actions"
    );
}

#[tokio::test]
async fn user_fields_must_be_allowed_and_zips_well_formed() {
    let sb = start(config()).await;
    let rosa_before = sb.json("/rest/v1/user/1/").await;
    let before = totals(&sb).await;
    let v = refused(
        &sb,
        json!({"page": "save-the-bees", "email": "rosa.delgado1@example.org",
               "user_food": "pupusas", "user_shoe_size": "38"}),
    )
    .await;
    assert_eq!(
        v["errors"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["user_shoe_size"]
    );
    assert_eq!(sb.json("/rest/v1/user/1/").await, rosa_before);
    for zip in ["ABCDE", "946120", "9461"] {
        let v = refused(
            &sb,
            json!({"page": "save-the-bees", "email": "z@example.org", "zip": zip}),
        )
        .await;
        assert!(v["errors"]["zip"][0].is_string(), "{zip}");
    }
    // A US member on file and no country sent: the zip is checked; sent as UK: not.
    refused(
        &sb,
        json!({"page": "save-the-bees", "email": "rosa.delgado1@example.org", "zip": "X1"}),
    )
    .await;
    created(
        &sb,
        json!({"page": "save-the-bees", "email": "ca@example.org", "zip": "K1A 0B1", "country": "Canada"}),
    )
    .await;
    assert_eq!(totals(&sb).await, (before.0 + 1, before.1 + 1));
    // Allowed fields are applied, multi-valued ones as lists.
    created(
        &sb,
        json!({"page": "save-the-bees", "email": "rosa.delgado1@example.org",
               "user_food": "pupusas", "user_color": ["red", "blue"]}),
    )
    .await;
    let rosa = sb.json("/rest/v1/user/1/").await;
    assert_eq!(rosa["fields"]["food"], "pupusas");
    assert_eq!(rosa["fields"]["color"], json!(["red", "blue"]));
    assert_eq!(rosa["fields"]["age"], "34", "other fields kept");
}

#[tokio::test]
async fn members_by_email_or_akid() {
    let sb = start(config()).await;
    let secret = "sandbox-akid-secret";
    let akid = format!("12.2.{}", akid_hash(secret, "12.2"));
    // By AKID: the member and the mailing it names.
    let v = created(&sb, json!({"page": "save-the-bees", "akid": akid})).await;
    assert_eq!(v["user"], "/rest/v1/user/2/");
    assert_eq!(v["mailing"], "/rest/v1/mailing/12/");
    // An AKID that does not verify, alone: refused as recorded.
    let v = refused(&sb, json!({"page": "save-the-bees", "akid": ".2.AAAAAA"})).await;
    assert_eq!(
        v,
        json!({"errors": {"mailing_id": ["Unable to associate this mailing ID with account."]}})
    );
    // With an email, the email decides; a bad AKID is ignored.
    let v = created(
        &sb,
        json!({"page": "save-the-bees", "akid": ".2.AAAAAA", "email": "rosa.delgado1@example.org"}),
    )
    .await;
    assert_eq!(v["user"], "/rest/v1/user/1/");
    assert_eq!(v["mailing"], Value::Null);
    // Another member's AKID with an email: that member, no mailing credit.
    let v = created(
        &sb,
        json!({"page": "save-the-bees", "akid": akid, "email": "rosa.delgado1@example.org"}),
    )
    .await;
    assert_eq!(
        (&v["user"], &v["mailing"]),
        (&json!("/rest/v1/user/1/"), &Value::Null)
    );
    // Neither: email required.
    assert_eq!(
        refused(&sb, json!({"page": "save-the-bees"})).await,
        json!({"errors": {"email": ["This field is required."]}})
    );
    // A referring AKID credits its member.
    let referrer = format!(".3.{}", akid_hash(secret, ".3"));
    let v = created(
        &sb,
        json!({"page": "save-the-bees", "email": "friend@example.org", "referring_akid": referrer}),
    )
    .await;
    assert_eq!(v["referring_user"], "/rest/v1/user/3/");
}

#[tokio::test]
async fn typed_actions_with_their_custom_fields() {
    let sb = start(config()).await;
    let v = created(
        &sb,
        json!({"page": "join-us", "email": "rosa.delgado1@example.org",
               "action_interests": ["housing", "climate"], "action_note": "hi", "source": "fb"}),
    )
    .await;
    assert_eq!(v["type"], "Signup");
    assert!(v["resource_uri"]
        .as_str()
        .unwrap()
        .starts_with("/rest/v1/signupaction/"));
    assert_eq!(
        v["fields"],
        json!({"interests": ["housing", "climate"], "note": "hi"})
    );
    assert_eq!(v["source"], "fb");
    // Form-encoded, a repeated key: several values.
    let r = sb
        .req(Method::POST, "/rest/v1/action/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("page=save-the-bees&email=rosa.delgado1%40example.org&action_tag=a&action_tag=b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["fields"]["tag"],
        json!(["a", "b"])
    );
    // Event RSVP: event_id required on event signup pages, role attendee or host.
    let rsvp = json!({"page": "climate-strike-rsvp", "email": "rosa.delgado1@example.org"});
    assert_eq!(
        refused(&sb, rsvp.clone()).await,
        json!({"errors": {"event_id": ["This field is required."]}})
    );
    let mut bad_role = rsvp.clone();
    bad_role["event_id"] = json!(31);
    bad_role["role"] = json!("guest");
    assert!(refused(&sb, bad_role).await["errors"]["role"][0].is_string());
    let mut ok = rsvp.clone();
    ok["event_id"] = json!(31);
    ok["role"] = json!("host");
    let v = created(&sb, ok).await;
    assert_eq!(v["type"], "EventSignup");
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["signup"], format!("/rest/v1/eventsignup/{id}/"));
}

#[tokio::test]
async fn a_member_is_updated_subscribed_or_unsubscribed() {
    let sb = start(config()).await;
    // Find a member who is not subscribed.
    let users = sb
        .json("/rest/v1/user/?subscription_status=unsubscribed&_limit=1")
        .await;
    let email = users["objects"][0]["email"].as_str().unwrap().to_owned();
    let id = users["objects"][0]["id"].as_u64().unwrap();
    let v = created(
        &sb,
        json!({"page": "save-the-bees", "email": email, "city": "Madison", "zip": "53703",
               "phone": "6085550100"}),
    )
    .await;
    assert_eq!(v["subscribed_user"], true);
    assert_eq!(v["created_user"], false);
    let u = sb.json(&format!("/rest/v1/user/{id}/")).await;
    assert_eq!(
        (&u["subscription_status"], &u["city"], &u["zip"]),
        (&json!("subscribed"), &json!("Madison"), &json!("53703"))
    );
    let phones = sb.json(&format!("/rest/v1/phone/?user={id}")).await;
    assert!(phones["objects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["phone"] == "6085550100"));
    // The unsubscribe page unsubscribes; `suppress_subscribe` keeps it so.
    created(&sb, json!({"page": "unsubscribe", "email": email})).await;
    let status = |u: Value| u["subscription_status"].clone();
    assert_eq!(
        status(sb.json(&format!("/rest/v1/user/{id}/")).await),
        "unsubscribed"
    );
    let v = created(
        &sb,
        json!({"page": "save-the-bees", "email": email, "suppress_subscribe": "1"}),
    )
    .await;
    assert_eq!(v["subscribed_user"], false);
    assert_eq!(
        status(sb.json(&format!("/rest/v1/user/{id}/")).await),
        "unsubscribed"
    );
}

#[tokio::test]
async fn the_cap_and_the_latency_apply_to_action_processing() {
    let sb = start(SandboxConfig {
        max_concurrent: 1,
        latency_ms: 300,
        ..config()
    })
    .await;
    let before = totals(&sb).await;
    let t = Instant::now();
    let (a, b) = tokio::join!(
        post(
            &sb,
            json!({"page": "save-the-bees", "email": "one@example.org"})
        ),
        post(
            &sb,
            json!({"page": "save-the-bees", "email": "two@example.org"})
        ),
    );
    let mut statuses = vec![a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, vec![201, 429]);
    assert!(t.elapsed() >= Duration::from_millis(300));
    let after = totals(&sb).await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    let stats = sb.stats().await;
    assert_eq!(stats["by_route"]["POST /rest/v1/action/"], 2);
    assert_eq!(stats["rejected_429"], 1);
}

#[tokio::test]
async fn after_write_faults_act_on_actions_that_were_made() {
    let sb = start(config()).await;
    let body = |n: u32| json!({"page": "save-the-bees", "email": format!("aw{n}@example.org")});

    // 500 after the write: Django's error page, and the action exists.
    let before = totals(&sb).await;
    set_faults(&sb, json!({"error_500_after_write": 1.0})).await;
    let r = post(&sb, body(1)).await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["content-type"], "text/html");
    // Reads are not writes: untouched.
    let (status, _) = sb.status("/rest/v1/user/1/").await;
    assert_eq!(status, 200);
    // A refused write is not made a 500 either.
    assert_eq!(
        post(&sb, json!({"page": "nope", "email": "x@example.org"}))
            .await
            .status(),
        400
    );
    set_faults(&sb, json!({})).await;
    assert_eq!(totals(&sb).await, (before.0 + 1, before.1 + 1));

    // Dropped after the write: the head, half a body, a broken connection.
    set_faults(&sb, json!({"drop_after_write": 1.0})).await;
    assert!(dropped(&sb, body(2)).await, "the connection is dropped");
    set_faults(&sb, json!({})).await;
    assert_eq!(totals(&sb).await, (before.0 + 2, before.1 + 2));

    // Held back after the write.
    set_faults(&sb, json!({"slow_after_write": 1.0, "slow_ms": 300})).await;
    let t = Instant::now();
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let r = short
        .post(sb.url("/rest/v1/action/"))
        .basic_auth("sandbox", Some("sandbox"))
        .json(&body(3))
        .send()
        .await;
    assert!(r.is_err(), "the caller gave up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = post(&sb, body(4)).await;
    assert_eq!(r.status(), 201);
    assert!(t.elapsed() >= Duration::from_millis(600));
    set_faults(&sb, json!({})).await;
    assert_eq!(totals(&sb).await, (before.0 + 4, before.1 + 4));

    // Before the write (the old faults): nothing is made.
    set_faults(&sb, json!({"error_500": 1.0})).await;
    assert_eq!(post(&sb, body(5)).await.status(), 500);
    set_faults(&sb, json!({"drop_connection": 1.0})).await;
    assert!(dropped(&sb, body(6)).await);
    set_faults(&sb, json!({})).await;
    assert_eq!(totals(&sb).await, (before.0 + 4, before.1 + 4));

    // Probabilities are checked.
    let both = json!({"error_500_after_write": 0.6, "drop_after_write": 0.6});
    assert_eq!(post_faults(&sb, &both).await.status(), 400);
}

#[tokio::test]
async fn after_write_faults_from_flags() {
    use actionkit_graphql::sandbox::Faults;
    let sb = start_with_faults(Faults {
        error_500_after_write: 1.0,
        ..Faults::default()
    })
    .await;
    let before = totals(&sb).await;
    let r = post(
        &sb,
        json!({"page": "save-the-bees", "email": "flag@example.org"}),
    )
    .await;
    assert_eq!(r.status(), 500);
    assert_eq!(totals(&sb).await, (before.0 + 1, before.1 + 1));
}

#[tokio::test]
async fn a_pages_required_fields_can_be_set() {
    let sb = start(config()).await;
    let page = "/rest/v1/petitionpage/1/";
    let fields = json!({"required_fields": ["/rest/v1/formfield/2/", "city", 4]});
    let r = send_json(&sb, Method::PATCH, page, &fields.to_string()).await;
    assert_eq!(r.status(), 202);
    let names: Vec<Value> = sb.json("/rest/v1/petitionpage/1/").await["required_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(names, vec!["zip", "city", "last_name"]);
    let v = refused(
        &sb,
        json!({"page": "save-the-bees", "email": "n@example.org", "zip": "53703"}),
    )
    .await;
    assert_eq!(
        v["errors"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["city", "last_name"]
    );
    // What a GET shows can be sent back; an unknown field is refused.
    let shown = sb.json("/rest/v1/petitionpage/1/").await["required_fields"].clone();
    for (method, fields, status) in [
        (Method::PUT, shown, 204),
        (Method::PATCH, json!(["shoe_size"]), 400),
        (Method::PATCH, json!([]), 202),
    ] {
        let body = json!({ "required_fields": fields }).to_string();
        let r = send_json(&sb, method, page, &body).await;
        assert_eq!(r.status(), status, "{body}");
    }
    created(
        &sb,
        json!({"page": "save-the-bees", "email": "n@example.org"}),
    )
    .await;
}
