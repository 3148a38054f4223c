//! What the HTTP layer under the client does on the wire, beyond the exact requests of
//! `requests.rs`: the `User-Agent`, the body cap on a body without `Content-Length`,
//! and TLS toward an `https://` base URL.

use std::time::Duration;

use actionkit_graphql::actionkit::{Client, Error, UserId};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::header;

use super::support::*;
use crate::helpers::client::*;

#[tokio::test]
async fn the_configured_user_agent_is_sent() {
    let server = serve([request("GET", "/rest/v1/user/5/")
        .and(header("user-agent", "ak-gateway-test/1"))
        .and(header("accept", "application/json"))
        .respond_with(ok_json(user_json(5)))
        .expect(1)])
    .await;
    let c = client_with(&server, |c| c.user_agent = "ak-gateway-test/1".into());
    assert!(c.user(UserId(5)).await.unwrap().is_some());
}

#[tokio::test]
async fn a_chunked_body_past_the_cap_is_refused_while_it_streams() {
    // No Content-Length: the cap must be counted as the chunks arrive.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 1024 * 1024];
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk,
            b"\r\n".to_vec(),
        ]
        .concat();
        // Up to 40 MiB, or until the client hangs up.
        for _ in 0..40 {
            if sock.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
    });
    let c = Client::new(config(&format!("http://{addr}"))).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), c.user(UserId(1)))
        .await
        .expect("the client gave up on the body");
    match answer {
        Err(Error::Decode { message, .. }) => assert!(message.contains("larger than"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_https_base_url_speaks_tls_with_sni_and_http_1_1_alpn() {
    // A listener that records the first bytes it is sent, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 4096];
        let n = sock.read(&mut buf).await.unwrap_or(0);
        buf.truncate(n);
        let _ = tx.send(buf);
    });
    let c = Client::new(config(&format!("https://localhost:{port}"))).unwrap();
    match c.user(UserId(1)).await {
        Err(Error::Transport(message)) => {
            for secret in [PASSWORD, "localhost", &port.to_string()] {
                assert!(!message.contains(secret), "{secret} in {message}");
            }
        }
        other => panic!("{other:?}"),
    }
    let hello = rx.await.unwrap();
    // A TLS handshake record, a ClientHello, naming the host (SNI) and offering
    // http/1.1 (ALPN); nothing in clear text.
    assert_eq!(&hello[..1], &[0x16], "not a TLS record: {hello:?}");
    assert_eq!(hello[5], 0x01, "not a ClientHello");
    let has = |needle: &[u8]| hello.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"localhost"));
    assert!(has(b"http/1.1"));
    assert!(!has(b"GET "));
    assert!(!has(b"Authorization") && !has(b"authorization"));
}
