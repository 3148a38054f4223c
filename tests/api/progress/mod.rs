//! Page progress, page context and live progress over WebSocket, through the gateway
//! in front of a sandbox: counts equal the sandbox's own, one upstream read per cache
//! period however many callers or subscribers, pushes on processed actions, the
//! WebSocket endpoint's authentication, limits and shutdown.

mod context;
mod live;
mod reads;

use actionkit_graphql::config::Config;

use crate::helpers::gateway::TestGateway;
pub(crate) use crate::helpers::submit::*;

/// A production gateway with keys of every scope and a 1 s progress period.
pub(crate) async fn keyed_fast() -> TestGateway {
    keyed_fast_with(|_| {}).await
}

pub(crate) async fn keyed_fast_with(tweak: impl FnOnce(&mut Config)) -> TestGateway {
    let mut c = keyed_config();
    c.progress.cache_ttl_secs = 1;
    tweak(&mut c);
    keyed_with(c).await
}

/// The sandbox's own count for `page` (its public progress endpoint).
pub(crate) async fn sandbox_count(gw: &TestGateway, page: &str) -> u64 {
    let url = format!("http://{}/progress/?page={page}", gw.sandbox);
    let v = crate::helpers::get_json(&gw.http, url).await;
    v["total"]["actions"].as_u64().unwrap()
}

/// `GET /progress/` calls the sandbox saw since the last reset.
pub(crate) async fn progress_reads(gw: &TestGateway) -> u64 {
    gw.stats().await["by_route"]["GET /progress/"]
        .as_u64()
        .unwrap_or(0)
}
