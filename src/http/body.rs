//! Reading a `/graphql` request body whole, before anything parses it: at most
//! `security.max_body_bytes` (413 beyond), within `server.body_read_timeout_ms` (408
//! when a client drips it), both answered as GraphQL error bodies. The guard calls it
//! once the caller is authenticated and within its rate limit, so a client without a
//! key never makes the gateway hold a body.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt as _;

use super::errors::HttpError;

/// The request with its body in memory, or the refusal.
pub(super) async fn buffer(
    req: Request,
    max: usize,
    timeout: Duration,
) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let refuse = |status: StatusCode, message: &'static str| {
        // The rest of the body is not read: the connection cannot be reused.
        HttpError::bad_request(status, message)
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
            .respond(&parts.headers)
    };
    const TOO_LARGE: &str = "the request body is larger than the gateway accepts";
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE));
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| Unread::Broken)?;
            if buf.len() + chunk.len() > max {
                return Err(Unread::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err(Unread::TooLarge)) => Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)),
        Ok(Err(Unread::Broken)) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )),
        Err(_) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
    }
}

enum Unread {
    TooLarge,
    Broken,
}
