//! `submitAction` refuses bad input as data: `fieldErrors` with stable codes, status
//! `FAILED`, no submission id, and no upstream call (the page's form cached, where the
//! refusal needs it).

use crate::helpers::submit::*;
use serde_json::{json, Value};

/// One field error: `field` with `code`.
fn only(field: &str, code: &str) -> Vec<(String, String)> {
    vec![(field.to_owned(), code.to_owned())]
}

fn has(errors: &[(String, String)], field: &str, code: &str) -> bool {
    errors.iter().any(|(f, c)| f == field && c == code)
}

/// Submits, and checks the refusal: FAILED, empty id, no errors, no upstream call
/// (both as the gateway counts it and as the sandbox saw it), nothing created.
async fn refused(gw: &TestGateway, key: &str, input: Value) -> Vec<(String, String)> {
    gw.reset_stats().await;
    let (status, body) = submit(gw, Some(key), input.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "a refusal is data: {body}");
    let payload = &body["data"]["submitAction"];
    assert_eq!(payload["status"], "FAILED", "{input}: {body}");
    assert_eq!(payload["submissionId"], "", "{body}");
    assert!(payload["action"].is_null(), "{body}");
    assert_eq!(upstream_calls(&body), 0, "{input}: {body}");
    assert_eq!(gw.calls().await, 0, "the sandbox saw a call for {input}");
    let errors = field_errors(&body);
    assert!(!errors.is_empty(), "{body}");
    for e in payload["fieldErrors"].as_array().unwrap() {
        assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
    }
    errors
}

#[tokio::test]
async fn bad_input_is_answered_with_field_errors_and_no_upstream_call() {
    let gw = keyed().await;
    warm(&gw, PAGE).await;
    let base = signature("grace@example.org");
    let with = |patch: Value| {
        let mut v = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(json!({"email": "not-an-email"})),
            "email",
            "INVALID_EMAIL",
        ),
        (with(json!({"email": null})), "email", "REQUIRED"),
        (with(json!({"email": "   "})), "email", "REQUIRED"),
        (with(json!({"zip": "1234"})), "zip", "INVALID_ZIP"),
        (with(json!({"zip": "12345-67"})), "zip", "INVALID_ZIP"),
        (with(json!({"phone": "555-1234"})), "phone", "INVALID_PHONE"),
        (
            with(json!({"firstName": "x".repeat(256)})),
            "firstName",
            "TOO_LONG",
        ),
        (
            with(json!({"lastName": "Love\u{0}lace"})),
            "lastName",
            "CONTROL_CHARACTERS",
        ),
        (
            with(json!({"city": "Line\nbreak"})),
            "city",
            "CONTROL_CHARACTERS",
        ),
        (
            with(json!({"firstName": "Ada 🐝"})),
            "firstName",
            "UNSUPPORTED_CHARACTERS",
        ),
        (
            with(json!({"email": null, "akid": "103007"})),
            "akid",
            "INVALID_AKID",
        ),
        (
            with(json!({"email": null, "akid": ".1.wrong1"})),
            "akid",
            "INVALID_AKID",
        ),
        (
            with(json!({"referringAkid": "nope"})),
            "referringAkid",
            "INVALID_AKID",
        ),
        (with(json!({"page": "not a page!"})), "page", "INVALID"),
        (
            with(json!({"role": "boss", "eventId": "3"})),
            "role",
            "INVALID",
        ),
        (with(json!({"eventId": "x1"})), "eventId", "INVALID"),
        (
            with(json!({"idempotencyKey": "k".repeat(129)})),
            "idempotencyKey",
            "INVALID",
        ),
        (
            with(json!({"fields": [{"name": "bad name", "value": "x"}]})),
            "action_bad name",
            "INVALID_NAME",
        ),
        (
            with(json!({"fields": [{"name": "comment", "value": "x".repeat(65 * 1024)}]})),
            "action_comment",
            "TOO_LONG",
        ),
    ];
    for (input, field, code) in cases {
        let errors = refused(&gw, STAFF_KEY, input.clone()).await;
        assert!(
            has(&errors, field, code),
            "{input}: want {field} {code}, got {errors:?}"
        );
    }
    // Several problems at once, each at its own field, so a form shows them all.
    let errors = refused(
        &gw,
        FORM_KEY,
        with(json!({"email": "nope", "zip": "9", "phone": "12"})),
    )
    .await;
    for (field, code) in [
        ("email", "INVALID_EMAIL"),
        ("zip", "INVALID_ZIP"),
        ("phone", "INVALID_PHONE"),
    ] {
        assert!(has(&errors, field, code), "{errors:?}");
    }
}

#[tokio::test]
async fn outside_the_us_zip_and_phone_follow_no_us_rule() {
    let gw = keyed().await;
    warm(&gw, PAGE).await;
    // The same values are refused for the US...
    let mut us = signature("amelie@example.org");
    us["zip"] = json!("K1A 0B1");
    let errors = refused(&gw, FORM_KEY, us).await;
    assert!(has(&errors, "zip", "INVALID_ZIP"), "{errors:?}");
    // ...and pass the gateway's checks for Canada (refused for another reason here:
    // the email, so that nothing is sent).
    let mut ca = signature("not-an-email");
    ca["country"] = json!("Canada");
    ca["zip"] = json!("K1A 0B1");
    ca["phone"] = json!("+1 613 555 0199 ext 4");
    let errors = refused(&gw, FORM_KEY, ca).await;
    assert_eq!(errors, only("email", "INVALID_EMAIL"));
}

#[tokio::test]
async fn an_unknown_page_is_a_field_error_on_page_and_is_remembered() {
    let gw = keyed().await;
    let input = json!({"page": "no-such-page", "email": "ada@example.org"});
    // First time: one lookup of the page.
    gw.reset_stats().await;
    let (_, body) = submit(&gw, Some(ANY_FORM_KEY), input.clone()).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["submitAction"]["status"], "FAILED", "{body}");
    assert_eq!(field_errors(&body), only("page", "NOT_FOUND"));
    assert_eq!(posted_actions(&gw).await, 0);
    // Then from the cache: no upstream call at all.
    let errors = refused(&gw, ANY_FORM_KEY, input).await;
    assert_eq!(errors, only("page", "NOT_FOUND"));
}

#[tokio::test]
async fn custom_fields_must_be_accepted_by_the_page() {
    let gw = keyed().await;
    warm(&gw, PAGE).await;
    // An action field the page does not list.
    let mut input = signature("fields@example.org");
    input["fields"] =
        json!([{"name": "comment", "value": "Bees!"}, {"name": "secret_flag", "value": "1"}]);
    let errors = refused(&gw, FORM_KEY, input.clone()).await;
    assert_eq!(errors, only("action_secret_flag", "UNKNOWN_FIELD"));
    // A user field the instance does not allow (its list read once, then cached).
    let mut input = signature("fields@example.org");
    input["userFields"] =
        json!([{"name": "color", "value": "blue"}, {"name": "shoe_size", "value": "9"}]);
    let (_, body) = submit(&gw, Some(FORM_KEY), input.clone()).await;
    assert_eq!(
        field_errors(&body),
        only("user_shoe_size", "UNKNOWN_FIELD"),
        "{body}"
    );
    let errors = refused(&gw, FORM_KEY, input).await;
    assert_eq!(errors, only("user_shoe_size", "UNKNOWN_FIELD"));
    // On a page without configured action fields, a `submit` key may send none.
    warm(&gw, OTHER_PAGE).await;
    let mut input = signature("fields@example.org");
    input["page"] = json!(OTHER_PAGE);
    input["fields"] = json!([{"name": "comment", "value": "Bees!"}]);
    let errors = refused(&gw, FORM_KEY, input).await;
    assert_eq!(errors, only("action_comment", "UNKNOWN_FIELD"));
}

#[tokio::test]
async fn a_page_not_allowed_for_the_key_is_forbidden_before_any_call() {
    let gw = keyed().await;
    gw.reset_stats().await;
    let mut input = signature("ada@example.org");
    input["page"] = json!(FORBIDDEN_PAGE);
    let (status, body) = submit(&gw, Some(FORM_KEY), input).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(gw.calls().await, 0);
}

#[tokio::test]
async fn the_pages_required_fields_come_from_its_form() {
    let gw = keyed().await;
    // clean-water-now requires first_name and zip (the sandbox's demo settings).
    let input = json!({"page": OTHER_PAGE, "email": "water@example.org"});
    // The first time, the page's form is read (one call), and nothing is submitted.
    gw.reset_stats().await;
    let (_, body) = submit(&gw, Some(FORM_KEY), input.clone()).await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("firstName".to_owned(), "REQUIRED".to_owned()),
            ("zip".to_owned(), "REQUIRED".to_owned())
        ],
        "{body}"
    );
    assert_eq!(posted_actions(&gw).await, 0);
    // Then from the cache, together with the other problems, without any call.
    let mut with_bad_email = input.clone();
    with_bad_email["email"] = json!("water-at-example.org");
    let errors = refused(&gw, FORM_KEY, with_bad_email).await;
    for (field, code) in [
        ("email", "INVALID_EMAIL"),
        ("firstName", "REQUIRED"),
        ("zip", "REQUIRED"),
    ] {
        assert!(has(&errors, field, code), "{errors:?}");
    }
    // A whole name stands for the first name.
    let mut named = input.clone();
    named["name"] = json!("Ada Lovelace");
    let errors = refused(&gw, FORM_KEY, named).await;
    assert_eq!(errors, only("zip", "REQUIRED"));
    // Everything there: processed.
    let mut complete = input;
    complete["firstName"] = json!("Ada");
    complete["zip"] = json!("02139");
    let (_, body) = submit(&gw, Some(FORM_KEY), complete).await;
    assert_eq!(
        body["data"]["submitAction"]["status"], "PROCESSED",
        "{body}"
    );
}
