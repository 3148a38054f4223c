#![allow(clippy::unwrap_used)]
mod sandbox_support;

use sandbox_support::*;
use serde_json::Value;

#[tokio::test]
async fn smoke() {
    let sb = start(config()).await;
    let u = sb.json("/rest/v1/user/1/").await;
    println!("{}", serde_json::to_string_pretty(&u).unwrap());
    let a = sb.json("/rest/v1/action/?user=1&_limit=3").await;
    println!("{}", serde_json::to_string_pretty(&a).unwrap());
    let p = sb.json("/rest/v1/petitionpage/1/").await;
    println!("{}", serde_json::to_string_pretty(&p).unwrap());
    let _: Value = sb.json("/rest/v1/").await;
}
