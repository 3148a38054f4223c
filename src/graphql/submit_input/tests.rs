//! Tests of the input checks of `submitAction`.

use super::*;

fn raw(page: &str, email: &str) -> SubmitActionInput {
    SubmitActionInput {
        page: page.into(),
        email: Some(email.into()),
        ..SubmitActionInput::default()
    }
}

/// Custom fields as the GraphQL input gives them.
fn fields<S: Into<String>>(
    pairs: impl IntoIterator<Item = (S, S)>,
) -> Option<Vec<CustomFieldInput>> {
    Some(
        pairs
            .into_iter()
            .map(|(name, value)| CustomFieldInput {
                name: name.into(),
                value: value.into(),
            })
            .collect(),
    )
}

fn codes(problems: &[Problem]) -> Vec<(String, &'static str)> {
    problems
        .iter()
        .map(|p| (p.field.clone(), p.code.as_str()))
        .collect()
}

#[test]
fn emails() {
    for ok in [
        "a@example.org",
        "first.last+tag@mail.example.co.uk",
        "o'brien@example.ie",
        "zoë@exämple.de",
    ] {
        assert!(is_email(ok), "{ok}");
    }
    for bad in [
        "",
        "plain",
        "@example.org",
        "a@",
        "a@example",
        "a@@example.org",
        "a b@example.org",
        "a@exa mple.org",
        ".a@example.org",
        "a..b@example.org",
        "a@-example.org",
        "a@example.123",
        "a@example..org",
    ] {
        assert!(!is_email(bad), "{bad}");
    }
    let long = format!("{}@example.org", "a".repeat(65));
    assert!(!is_email(&long));
}

#[test]
fn zips_phones_and_countries() {
    assert!(is_us_zip("02139") && is_us_zip("02139-4307"));
    for bad in ["2139", "021390", "02139-43", "abcde", "02139 4307"] {
        assert!(!is_us_zip(bad), "{bad}");
    }
    for ok in [
        "6175551234",
        "(617) 555-1234",
        "617.555.1234",
        "+1 617 555 1234",
        "1-617-555-1234",
    ] {
        assert!(is_us_phone(ok), "{ok}");
    }
    for bad in [
        "555-1234",
        "2617555123456",
        "617-555-123x",
        "61+7555123",
        "26175551234",
    ] {
        assert!(!is_us_phone(bad), "{bad}");
    }
    assert!(is_us(None) && is_us(Some("US")) && is_us(Some("U.S.A.")));
    assert!(is_us(Some("United States")));
    assert!(!is_us(Some("Canada")) && !is_us(Some("GB")));
}

#[test]
fn akids() {
    assert!(is_akid(".103007.Gcg02t") && is_akid("2695.103007.Gcg02t"));
    for bad in [
        "",
        "103007",
        ".103007",
        "x.1.abcdef",
        ".0.abcdef",
        ".1.abc",
        ".1.abc$ef",
        "1.2.3.abcdef",
    ] {
        assert!(!is_akid(bad), "{bad}");
    }
}

#[test]
fn a_good_submission_passes_trimmed() {
    let mut r = raw(" save-the-bees ", " ada@example.org ");
    r.first_name = Some("  Ada ".into());
    r.last_name = Some("".into());
    r.zip = Some("02139".into());
    r.phone = Some("(617) 555-1234".into());
    r.fields = fields([
        ("comment", "line one\nline two"),
        ("comment", "again"),
        ("empty", ""),
    ]);
    r.event_id = Some(ID::from("12"));
    r.role = Some("host".into());
    let (s, problems) = check(r, None);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(s.page, "save-the-bees");
    assert_eq!(s.email.as_deref(), Some("ada@example.org"));
    assert_eq!(s.first_name.as_deref(), Some("Ada"));
    assert_eq!(s.last_name, None, "an empty input is absent");
    assert_eq!(s.action_fields.len(), 2, "empty values are left out");
    assert_eq!((s.event_id, s.role.as_deref()), (Some(12), Some("host")));
}

#[test]
fn every_refusal_has_its_code() {
    let mut r = raw("bad page!", "not-an-email");
    r.zip = Some("1234".into());
    r.phone = Some("555-1234".into());
    r.first_name = Some("Ada\u{7}".into());
    r.last_name = Some("x".repeat(256));
    r.city = Some("Bee 🐝 town".into());
    r.referring_akid = Some("nope".into());
    r.event_id = Some(ID::from("-3"));
    r.role = Some("boss".into());
    r.idempotency_key = Some(String::new());
    r.user_fields = fields([("bad name", "x")]);
    r.fields = fields([("comment", "nul\0")]);
    let (_, problems) = check(r, None);
    let got = codes(&problems);
    for want in [
        ("page", "INVALID"),
        ("email", "INVALID_EMAIL"),
        ("zip", "INVALID_ZIP"),
        ("phone", "INVALID_PHONE"),
        ("firstName", "CONTROL_CHARACTERS"),
        ("lastName", "TOO_LONG"),
        ("city", "UNSUPPORTED_CHARACTERS"),
        ("referringAkid", "INVALID_AKID"),
        ("eventId", "INVALID"),
        ("role", "INVALID"),
        ("idempotencyKey", "INVALID"),
        ("user_bad name", "INVALID_NAME"),
        ("action_comment", "CONTROL_CHARACTERS"),
    ] {
        assert!(
            got.contains(&(want.0.to_owned(), want.1)),
            "{want:?} missing from {got:?}"
        );
    }
}

#[test]
fn a_member_is_needed_and_akids_are_checked() {
    let (_, p) = check(
        SubmitActionInput {
            page: "p".into(),
            email: Some("  ".into()),
            ..SubmitActionInput::default()
        },
        None,
    );
    assert_eq!(codes(&p), vec![("email".to_owned(), "REQUIRED")]);
    let with_akid = |akid: &str| SubmitActionInput {
        page: "p".into(),
        akid: Some(akid.into()),
        ..SubmitActionInput::default()
    };
    let (s, p) = check(with_akid(".42.abcdef"), None);
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(s.akid.as_deref(), Some(".42.abcdef"));
    // With the instance's secret the hash is checked too.
    let (_, p) = check(with_akid(".42.abcdef"), Some("s3cret"));
    assert_eq!(codes(&p), vec![("akid".to_owned(), "INVALID_AKID")]);
    let (_, p) = check(with_akid("42"), None);
    assert_eq!(codes(&p), vec![("akid".to_owned(), "INVALID_AKID")]);
}

#[test]
fn outside_the_us_zip_and_phone_are_free_form() {
    let mut r = raw("p", "a@example.org");
    r.country = Some("Canada".into());
    r.zip = Some("K1A 0B1".into());
    r.phone = Some("+1 (613) 555-0199 ext 4".into());
    let (_, p) = check(r, None);
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn too_many_custom_fields() {
    let mut r = raw("p", "a@example.org");
    r.user_fields = fields((0..=MAX_CUSTOM_FIELDS).map(|i| (format!("f{i}"), "v".to_owned())));
    let (_, p) = check(r, None);
    assert_eq!(codes(&p), vec![("userFields".to_owned(), "TOO_MANY")]);
}

#[test]
fn allow_lists_and_required_fields() {
    let (mut s, _) = check(raw("p", "a@example.org"), None);
    s.user_fields = vec![("color".into(), "blue".into()), ("shoe".into(), "9".into())];
    s.action_fields = vec![("comment".into(), "hi".into()), ("x".into(), "1".into())];
    let users: BTreeSet<String> = ["color".to_owned()].into();
    let actions: BTreeSet<String> = ["comment".to_owned()].into();
    let got = codes(&unknown_fields(&s, Some(&users), Some(&actions)));
    assert_eq!(
        got,
        vec![
            ("user_shoe".to_owned(), "UNKNOWN_FIELD"),
            ("action_x".to_owned(), "UNKNOWN_FIELD")
        ]
    );
    assert!(unknown_fields(&s, None, None).is_empty());
    let required: Vec<String> = ["zip", "first_name", "user_color", "prefix"]
        .map(String::from)
        .to_vec();
    let got = codes(&required_fields(&s, &required));
    assert_eq!(
        got,
        vec![
            ("zip".to_owned(), "REQUIRED"),
            ("firstName".to_owned(), "REQUIRED")
        ]
    );
    s.name = Some("Ada Lovelace".into());
    s.zip = Some("02139".into());
    assert!(required_fields(&s, &required).is_empty());
    // A member named by AKID is recognised: ActionKit decides.
    s.zip = None;
    s.akid = Some(".1.abcdef".into());
    assert!(required_fields(&s, &required).is_empty());
}

#[test]
fn field_names_follow_the_graphql_input() {
    assert_eq!(graphql_field_name("first_name"), "firstName");
    assert_eq!(graphql_field_name("referring_akid"), "referringAkid");
    assert_eq!(graphql_field_name("address1"), "address1");
    assert_eq!(
        graphql_field_name("user_favourite_food"),
        "user_favourite_food"
    );
    assert_eq!(graphql_field_name("action_why"), "action_why");
    assert_eq!(graphql_field_name("plus4"), "zip");
    assert_eq!(graphql_field_name("__all__"), "__all__");
    assert_eq!(graphql_field_name(""), "");
    assert_eq!(graphql_field_name("event_id"), "eventId");
}
