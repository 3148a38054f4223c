//! The cap on requests in flight adapts to what ActionKit accepts: against an instance
//! that takes 4 at once (`--max-concurrent 4`, 50 ms a call), a gateway at its default
//! cap (8) answers 20 busy clients without a single error, and its cap comes down to
//! what the instance takes. (Throughput against a gateway set to 4: the benchmark,
//! `examples/bench`, BENCHMARKS.md.)

use crate::helpers::gateway::spawn;
use serde_json::json;

const QUERY: &str = r#"query($id: ID) { user(id: $id) { id actions(first: 5) { nodes { id } } } }"#;

#[tokio::test]
async fn a_cap_above_what_actionkit_takes_costs_latency_not_errors() {
    let gw = spawn(&["--max-concurrent", "4", "--latency-ms", "50"]).await;
    assert_eq!(
        gw.client.concurrency_limit(),
        8,
        "the default cap to start with"
    );
    gw.reset_stats().await;
    let clients = (0..20u64).map(|c| {
        let gw = &gw;
        async move {
            let mut errors = Vec::new();
            for i in 0..8u64 {
                let id = 10 + (c * 8 + i) % 200;
                let body = gw.gql(QUERY, json!({ "id": id.to_string() })).await;
                if body.get("errors").is_some() || body["data"]["user"].is_null() {
                    errors.push(body);
                }
            }
            errors
        }
    });
    let errors: Vec<_> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();
    let stats = gw.stats().await;
    assert!(
        errors.is_empty(),
        "{} answers with errors, e.g. {}; {stats}",
        errors.len(),
        errors[0]
    );
    let limit = gw.client.concurrency_limit();
    assert!(
        (1..=5).contains(&limit),
        "the cap came down to what the instance takes (4, probing 5): {limit}"
    );
    // 320 calls at least (user and window per query); the 429s that taught the cap
    // are a small part of them.
    let (calls, refused) = (
        stats["requests"].as_u64().unwrap(),
        stats["rejected_429"].as_u64().unwrap(),
    );
    assert!(calls >= 320, "{stats}");
    assert!(
        refused * 10 <= calls,
        "{refused} of {calls} calls refused: {stats}"
    );
}
