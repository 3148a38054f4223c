//! Hostile input: never a 5xx, never a panic, the server keeps answering.

use crate::helpers::sandbox::*;
use rand::{Rng, SeedableRng};
use reqwest::Method;

const PIECES: &[&str] = &[
    "user",
    "action",
    "page",
    "petitionaction",
    "actionfield",
    "schema",
    "userpublic",
    "0",
    "1",
    "-1",
    "99999999999999999999",
    "%00",
    "%FF",
    "..",
    "__",
    "id__in",
    "user__in",
    "page__name",
    "created_at__year",
    "order_by",
    "_limit",
    "_offset",
    "=",
    "&",
    ",",
    "None",
    "true",
    "é",
    "user__email__exact",
    "page__user__id",
    "%2F",
    "format",
    "2016-02-30",
];

#[tokio::test]
async fn random_requests_never_fail_on_the_server() {
    let sb = start(config()).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let bodies = [
        "",
        "{",
        "null",
        "[]",
        "{\"fields\": {\"a\": [1, [2]]}}",
        "{\"fields\": null}",
        "{\"page\": \"fair-rent\", \"email\": \"x@example.org\", \"action_a\": {\"b\": 1}}",
        "{\"parent\": \"/rest/v1/action/1/\", \"name\": \"n\", \"value\": null}",
        "{\"email\": 5}",
        "{\"name\": \"\"}",
        "{\"tags\": [\"x\"]}",
        "{\"created_at\": \"9999-12-31T23:59:59.999999\"}",
    ];
    for i in 0..400 {
        let mut path = String::from("/rest/v1/");
        for _ in 0..rng.gen_range(0..4) {
            path.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
            path.push('/');
        }
        if rng.gen_bool(0.6) {
            path.push('?');
            for _ in 0..rng.gen_range(1..4) {
                path.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
                path.push_str(["=", "__in=", "__gt=", "__isnull="][rng.gen_range(0..4)]);
                path.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
                path.push('&');
            }
        }
        let method = methods[rng.gen_range(0..methods.len())].clone();
        let body = bodies[rng.gen_range(0..bodies.len())];
        let r = sb
            .req(method.clone(), &path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().as_u16() < 500,
            "#{i} {method} {path} {body}: {}",
            r.status()
        );
    }
    assert_eq!(sb.status("/rest/v1/user/1/").await.0, 200);
}
