//! The sandbox's data (which ids exist) and its call counters.

use super::*;

pub(crate) fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("sandbox:sandbox")
    )
}

pub(crate) async fn upstream_requests(sandbox: SocketAddr) -> anyhow::Result<u64> {
    let stats = get_json(sandbox, "/__sandbox/stats", None).await?;
    stats["requests"]
        .as_u64()
        .ok_or_else(|| anyhow!("no `requests` in the sandbox stats: {stats}"))
}

pub(crate) async fn upstream_stats(sandbox: SocketAddr) -> anyhow::Result<Value> {
    get_json(sandbox, "/__sandbox/stats", None).await
}

pub(crate) async fn reset_stats(sandbox: SocketAddr) -> anyhow::Result<()> {
    let mut c = Conn::new(sandbox);
    let (status, body) = c.request("POST", "/__sandbox/stats/reset", "", b"").await?;
    if !(200..300).contains(&status) {
        bail!(
            "stats reset answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// What the scenarios need to know about the sandbox's data.
pub(crate) struct Data {
    pub(crate) users: u64,
    /// Ids of actions the mix scenario writes to.
    pub(crate) action_ids: Vec<u64>,
    /// Per batch of 50 users (ids `50k+1 ..= 50k+50`): the number of their actions.
    pub(crate) batch_actions: Vec<u64>,
}

pub(crate) async fn discover(sandbox: SocketAddr, filters: Filters) -> anyhow::Result<Data> {
    let auth = basic_auth();
    let auth = Some(auth.as_str());
    let users = get_json(sandbox, "/rest/v1/user/?_limit=1", auth).await?["meta"]["total_count"]
        .as_u64()
        .ok_or_else(|| anyhow!("no user total_count"))?;
    let actions = get_json(sandbox, "/rest/v1/action/?_limit=100", auth).await?;
    let action_ids: Vec<u64> = actions["objects"]
        .as_array()
        .ok_or_else(|| anyhow!("no actions"))?
        .iter()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    let mut batch_actions = Vec::new();
    for k in 0..(users / 50) {
        let mut total = 0;
        if filters == Filters::Permissive {
            let ids: Vec<String> = (k * 50 + 1..=k * 50 + 50).map(|i| i.to_string()).collect();
            let path = format!("/rest/v1/action/?user__in={}&_limit=1", ids.join(","));
            total = get_json(sandbox, &path, auth).await?["meta"]["total_count"]
                .as_u64()
                .ok_or_else(|| anyhow!("no action total_count"))?;
        }
        batch_actions.push(total);
    }
    Ok(Data {
        users,
        action_ids,
        batch_actions,
    })
}
