//! Shared by the `submit_gql_*` tests: a gateway over the sandbox with keys of every
//! scope, and helpers to call `submitAction` and read what the sandbox holds.

pub(crate) use crate::helpers::gateway::{akid_of, bearer, code, message, TestGateway};
use actionkit_graphql::config::{Config, Mode, SubmitPageConfig};
use actionkit_graphql::http::auth::hash_key;
use serde_json::{json, Value};

/// `submit`, limited to two pages.
pub(crate) const FORM_KEY: &str = "form-key-0123456789";
/// `submit`, any page.
pub(crate) const ANY_FORM_KEY: &str = "any-form-key-0123456789";
pub(crate) const READ_KEY: &str = "read-key-0123456789";
/// `read+write` (staff).
pub(crate) const STAFF_KEY: &str = "staff-key-0123456789";
/// `write` only.
pub(crate) const WRITE_KEY: &str = "write-key-0123456789";
pub(crate) const SELF_KEY: &str = "self-key-0123456789";

/// The demo petition the tests sign, and a second page the form key may use.
pub(crate) const PAGE: &str = "save-the-bees";
pub(crate) const OTHER_PAGE: &str = "clean-water-now";
/// A page the form key may not use.
pub(crate) const FORBIDDEN_PAGE: &str = "fair-rent";

pub(crate) fn keyed_config() -> Config {
    let mut c = Config::default();
    c.security.api_keys = vec![
        format!("form:submit:{}:{PAGE}+{OTHER_PAGE}", hash_key(FORM_KEY)),
        format!("any-form:submit:{}", hash_key(ANY_FORM_KEY)),
        format!("web:read:{}", hash_key(READ_KEY)),
        format!("staff:read+write:{}", hash_key(STAFF_KEY)),
        format!("writer:write:{}", hash_key(WRITE_KEY)),
        format!("member:self:{}", hash_key(SELF_KEY)),
    ];
    // Limits of public submitters are tested on their own (submit_gql_limits.rs).
    c.security.rate_limit_per_minute = Some(0);
    c.submit.per_address_per_minute = 0;
    c.submit.per_page_per_minute = 0;
    c.submit.pages.insert(
        PAGE.into(),
        SubmitPageConfig {
            action_fields: vec!["comment".into()],
            user_fields: None,
        },
    );
    c
}

/// A production-mode gateway with [`keyed_config`].
pub(crate) async fn keyed() -> TestGateway {
    keyed_with(keyed_config()).await
}

pub(crate) async fn keyed_with(config: Config) -> TestGateway {
    crate::helpers::gateway::spawn_mode(&["--users", "40"], config, true, Mode::Production)
        .await
        .unwrap()
}

/// A development-mode gateway without keys: the open sandbox.
pub(crate) async fn open_sandbox() -> TestGateway {
    crate::helpers::gateway::spawn_with(&["--users", "20"], Config::default(), true).await
}

pub(crate) const SUBMIT: &str = r#"mutation Submit($input: SubmitActionInput!) {
  submitAction(input: $input) {
    status submissionId redirectUrl
    fieldErrors { field code message }
    action { __typename id type page { name } customFields { name values } }
  }
}"#;

/// Posts a query with a key (and more headers), asking for the upstream accounting.
pub(crate) async fn call(
    gw: &TestGateway,
    key: Option<&str>,
    extra: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let auth = key.map(bearer);
    let mut headers: Vec<(&str, &str)> = vec![("x-upstream-accounting", "1")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    headers.extend_from_slice(extra);
    let (status, _, body) = gw
        .post_json(&headers, json!({"query": query, "variables": variables}))
        .await;
    (status, body)
}

/// `submitAction(input)` with a key.
pub(crate) async fn submit(gw: &TestGateway, key: Option<&str>, input: Value) -> (u16, Value) {
    call(gw, key, &[], SUBMIT, json!({ "input": input })).await
}

/// A valid signature of [`PAGE`] by a new member.
pub(crate) fn signature(email: &str) -> Value {
    json!({
        "page": PAGE,
        "email": email,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "zip": "02139",
        "country": "United States",
    })
}

/// `(field, code)` of the payload's field errors.
pub(crate) fn field_errors(body: &Value) -> Vec<(String, String)> {
    body["data"]["submitAction"]["fieldErrors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Upstream calls the gateway reported for the operation.
pub(crate) fn upstream_calls(body: &Value) -> u64 {
    body["extensions"]["upstream"]["calls"].as_u64().unwrap()
}

/// Actions processed by the sandbox (`POST /rest/v1/action/`) since the last reset.
pub(crate) async fn posted_actions(gw: &TestGateway) -> u64 {
    gw.stats().await["by_route"]["POST /rest/v1/action/"]
        .as_u64()
        .unwrap_or(0)
}

/// The member's actions on `page`, read from the sandbox.
pub(crate) async fn actions_on_page(gw: &TestGateway, email: &str, page: &str) -> u64 {
    let users = gw
        .rest(&format!(
            "/rest/v1/user/?email={}",
            email.replace('+', "%2B")
        ))
        .await;
    let Some(user) = users["objects"].as_array().and_then(|o| o.first()) else {
        return 0;
    };
    let id = user["id"].as_u64().unwrap();
    let actions = gw
        .rest(&format!(
            "/rest/v1/action/?user={id}&page__name={page}&_limit=100"
        ))
        .await;
    actions["meta"]["total_count"].as_u64().unwrap()
}

/// Warms the gateway's cache of `page`'s form with one valid submission (which also
/// makes one action).
pub(crate) async fn warm(gw: &TestGateway, page: &str) {
    let mut input = signature(&format!("warm-{page}@example.org"));
    input["page"] = json!(page);
    let (status, body) = submit(gw, Some(STAFF_KEY), input).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "warming {page}: {body}");
}
