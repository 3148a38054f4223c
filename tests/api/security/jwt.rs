//! Optional JWT verification end to end: a local key file and a JWKS URL, a claim
//! mapped to scopes, and refusals for expired or foreign tokens.

use crate::helpers::gateway::{spawn_mode, TestGateway};
use actionkit_graphql::config::{Config, JwtConfig, Mode};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A P-256 key pair made for these tests only.
const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcJseMZMbFVJpMnX3
b3WABuXxf0Ze9zM1XtzLVUNMQLyhRANCAATfYnI7itKsIaG/lVj4QLrVEnfT7kxm
SRmEFhJtrcWOUKT2d0SJtET9vEDSOP6a62lXrSUx4Xs+gM+sqjhJJhZy
-----END PRIVATE KEY-----
";
const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE32JyO4rSrCGhv5VY+EC61RJ30+5M
ZkkZhBYSba3FjlCk9ndEibRE/bxA0jj+mutpV60lMeF7PoDPrKo4SSYWcg==
-----END PUBLIC KEY-----
";
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"test-1","x":"32JyO4rSrCGhv5VY-EC61RJ30-5MZkkZhBYSba3FjlA","y":"pPZ3RIm0RP28QNI4_prraVetJTHhez6Az6yqOEkmFnI"}]}"#;

const ISSUER: &str = "https://idp.example.org/";
const AUDIENCE: &str = "actionkit-graphql";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token(scope: &str, exp_in: i64, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "staff-1",
                        "exp": now() + exp_in, "scope": scope});
    encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn jwt_config(jwt: JwtConfig) -> Config {
    let mut c = Config::default();
    c.security.jwt = Some(JwtConfig {
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..jwt
    });
    c
}

async fn call(gw: &TestGateway, token: &str, query: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, body) = gw
        .post_json(&[("authorization", &auth)], json!({"query": query}))
        .await;
    (status, body)
}

const READ: &str = r#"{ user(id: "1") { id } }"#;
const WRITE: &str = r#"mutation { clearActionCustomFields(actionId: "1", names: ["x"]) { id } }"#;

async fn scopes_and_refusals(gw: &TestGateway, kid: Option<&str>) {
    let (status, body) = call(gw, &token("openid read", 300, kid), READ).await;
    assert_eq!(
        (status, &body["data"]["user"]["id"]),
        (200, &json!("1")),
        "{body}"
    );
    let (_, body) = call(gw, &token("openid read", 300, kid), WRITE).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // Expired, and a token for another audience: 401.
    let (status, body) = call(gw, &token("read", -3600, kid), READ).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let foreign = encode(
        &Header::new(Algorithm::ES256),
        &json!({"iss": ISSUER, "aud": "another-api", "exp": now() + 300, "scope": "read"}),
        &EncodingKey::from_ec_pem(PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(call(gw, &foreign, READ).await.0, 401);
}

#[tokio::test]
async fn jwt_from_a_local_key_file() {
    let path = std::env::temp_dir().join(format!("akg-jwt-it-{}.pem", std::process::id()));
    std::fs::write(&path, PUBLIC).unwrap();
    let config = jwt_config(JwtConfig {
        key_file: Some(path.clone()),
        ..JwtConfig::default()
    });
    let gw = spawn_mode(&["--users", "10"], config, true, Mode::Production)
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    scopes_and_refusals(&gw, None).await;
    // No credential at all is still 401.
    let (status, _, _) = gw.post_json(&[], json!({"query": READ})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn jwt_from_a_jwks_url() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let idp = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS, "application/json"))
        .mount(&idp)
        .await;
    let config = jwt_config(JwtConfig {
        jwks_url: Some(format!("{}/jwks.json", idp.uri())),
        ..JwtConfig::default()
    });
    let gw = spawn_mode(&["--users", "10"], config, true, Mode::Production)
        .await
        .unwrap();
    scopes_and_refusals(&gw, Some("test-1")).await;
    // A key id the JWKS does not have.
    assert_eq!(
        call(&gw, &token("read", 300, Some("other")), READ).await.0,
        401
    );
}
