//! Demo-data size: `--users 100000` must give ~2,000,000 actions in seconds (release)
//! in a few hundred MB. Run: `cargo test --release --test sandbox_scale -- --ignored --nocapture`.

use std::time::Instant;

use actionkit_graphql::sandbox::seed;

fn rss_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "slow in debug builds; run with --release"]
fn hundred_thousand_users() {
    let before = rss_kb("VmRSS:");
    let t = Instant::now();
    let st = seed::generate(1, 100_000, "s".into());
    let took = t.elapsed();
    let peak = rss_kb("VmHWM:");
    let after = rss_kb("VmRSS:");
    println!(
        "100k users: {} actions, {} actionfield rows, generated in {:.2?}; RSS {} MB -> {} MB (peak {} MB)",
        st.actions.len(),
        st.actionfields.len(),
        took,
        before / 1024,
        after / 1024,
        peak / 1024
    );
    assert!((1_800_000..2_300_000).contains(&st.actions.len()));
    assert!(after < 1_000_000, "RSS under 1 GB");
}

#[test]
fn small_demo_sizes_work() {
    for n in [0, 1, 2, 5] {
        let st = seed::generate(1, n, "s".into());
        assert_eq!(st.users.len(), n);
    }
}

#[tokio::test]
#[ignore = "slow in debug builds; run with --release"]
async fn hundred_thousand_users_over_http() {
    use actionkit_graphql::sandbox::{spawn, SandboxConfig};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let t = Instant::now();
    let h = spawn(
        SandboxConfig {
            users: 100_000,
            ..SandboxConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    println!("spawn with 100k users: {:.2?}", t.elapsed());
    let http = reqwest::Client::new();
    for path in [
        "/rest/v1/user/1/",
        "/rest/v1/action/?user=2&_limit=100&_offset=3400",
        "/rest/v1/action/?user__in=1,2,3,4,5&_limit=100",
        "/rest/v1/petitionaction/?user=1&page__name=save-the-bees",
        "/rest/v1/action/?page__name=save-the-bees&_limit=100",
        "/rest/v1/action/?order_by=-created_at&_limit=100",
        "/rest/v1/user/?email=rosa.delgado1@example.org",
        "/rest/v1/user/?last_name__icontains=son",
    ] {
        let t = Instant::now();
        let r = http
            .get(format!("http://{}{path}", h.addr))
            .basic_auth("sandbox", Some("sandbox"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        println!(
            "{path}: total_count {} in {:.2?}",
            v["meta"]["total_count"],
            t.elapsed()
        );
    }
    println!("RSS {} MB", rss_kb("VmRSS:") / 1024);
    h.shutdown().await;
}
