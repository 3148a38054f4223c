//! The sandbox and the gateway as separate processes of the release binary, and what is read of them from `/proc`.

use super::*;

/// A child process, killed (by its own pid) when dropped.
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the line in which a process started with `--listen 127.0.0.1:0` names the
/// address it bound (`marker` then `http://ADDR/`), so that no port is picked in advance.
pub(crate) async fn reported_address(
    log: &Path,
    marker: &str,
    proc: &mut Proc,
) -> anyhow::Result<SocketAddr> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text.lines().find_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            rest[..rest.find('/')?].parse().ok()
        });
        if let Some(addr) = found {
            return Ok(addr);
        }
        if let Some(status) = proc.child.try_wait()? {
            bail!("{} exited during start-up: {status}", proc.name);
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("{} did not report its address", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    Ok(std::fs::File::create(dir.join(name))?)
}

pub(crate) async fn wait_until_up(
    addr: SocketAddr,
    path: &str,
    proc: &mut Proc,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = proc.child.try_wait()? {
            bail!("{} exited during start-up: {status}", proc.name);
        }
        let mut c = Conn::new(addr);
        if let Ok((200, _)) = c.request("GET", path, "", b"").await {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("{} did not come up on {addr}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) struct Env {
    /// The binary of the sandbox, and of the gateway under test.
    pub(crate) bin: PathBuf,
    /// A second gateway binary to compare with (`--baseline-bin`), run against the same
    /// sandbox, scenario by scenario, in the same run.
    pub(crate) baseline: Option<PathBuf>,
    pub(crate) logs: PathBuf,
}

impl Env {
    /// The same environment with `bin` as the gateway binary.
    pub(crate) fn with_bin(&self, bin: &Path) -> Env {
        Env {
            bin: bin.to_path_buf(),
            baseline: self.baseline.clone(),
            logs: self.logs.clone(),
        }
    }

    /// The gateways to measure: `(label, binary)`; the label is empty without a baseline.
    pub(crate) fn gateways(&self) -> Vec<(&'static str, PathBuf)> {
        match &self.baseline {
            Some(base) => vec![("baseline", base.clone()), ("new", self.bin.clone())],
            None => vec![("", self.bin.clone())],
        }
    }
}

pub(crate) struct Sandbox {
    /// Stopped when dropped.
    pub(crate) proc: Proc,
    pub(crate) addr: SocketAddr,
}

/// Starts `cmd` (which listens on 127.0.0.1:0) with its output in `logs/<log>`, and
/// waits for the address it reports after `marker` and for `ready_path` to answer 200.
async fn spawn_logged(
    env: &Env,
    mut cmd: Command,
    name: &'static str,
    log: &str,
    marker: &str,
    ready_path: &str,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let file = log_file(&env.logs, log)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start {}", env.bin.display()))?;
    let mut proc = Proc { name, child };
    let addr = reported_address(&env.logs.join(log), marker, &mut proc).await?;
    wait_until_up(addr, ready_path, &mut proc).await?;
    Ok((proc, addr))
}

/// The sandbox with `extra` flags (`--max-concurrent N`, ...).
pub(crate) async fn start_sandbox(
    env: &Env,
    filters: Filters,
    latency_ms: u64,
    users: usize,
    extra: &[&str],
) -> anyhow::Result<Sandbox> {
    let mut cmd = Command::new(&env.bin);
    cmd.args(["sandbox", "--listen", "127.0.0.1:0"])
        .args(["--users", &users.to_string(), "--seed", "1"])
        .args(["--latency-ms", &latency_ms.to_string()])
        .args(["--filters", filters.name()])
        .args(extra);
    let log = format!("sandbox-{}-{latency_ms}ms.log", filters.name());
    let marker = "(ActionKit emulator) at http://";
    let (proc, addr) = spawn_logged(env, cmd, "sandbox", &log, marker, "/__sandbox/stats").await?;
    Ok(Sandbox { proc, addr })
}

pub(crate) struct Gateway {
    pub(crate) proc: Proc,
    pub(crate) addr: SocketAddr,
}

/// `env`'s gateway binary against `sandbox`, with `extra_env` laid over the
/// benchmark's settings. For another binary (the baseline of a comparison), pass
/// [`Env::with_bin`].
pub(crate) async fn start_gateway(
    env: &Env,
    sandbox: SocketAddr,
    config: Option<&Path>,
    tag: &str,
    extra_env: &[(&str, String)],
) -> anyhow::Result<Gateway> {
    let data_dir = env.logs.join(format!("data-{tag}"));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut cmd = Command::new(&env.bin);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.arg("serve")
        .env("ACTIONKIT_URL", format!("http://{sandbox}"))
        .env("ACTIONKIT_USERNAME", "sandbox")
        .env("ACTIONKIT_PASSWORD", "sandbox")
        .env("GATEWAY_LISTEN", "127.0.0.1:0")
        .env("GATEWAY_MODE", "development")
        .env("GATEWAY_API_KEYS", bench_key_entry())
        // A submission store per gateway: two may run at once (`--baseline-bin`).
        .env("GATEWAY_DATA_DIR", &data_dir)
        .envs(extra_env.iter().map(|(k, v)| (k, v)));
    let log = format!("gateway-{tag}.log");
    let (proc, addr) =
        spawn_logged(env, cmd, "gateway", &log, "GraphQL at http://", "/healthz").await?;
    Ok(Gateway { proc, addr })
}

/// Sockets on this machine whose local port is `port` (the sandbox's side):
/// `(established, time-wait)`. Few established and no time-wait means the gateway
/// keeps its upstream connections alive and reuses them.
pub(crate) fn sockets_to(port: u16) -> (usize, usize) {
    let mut est = 0;
    let mut tw = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port != Some(port) {
                continue;
            }
            match *state {
                "01" => est += 1,
                "06" => tw += 1,
                _ => {}
            }
        }
    }
    (est, tw)
}

/// `(VmRSS, VmHWM)` in MiB.
pub(crate) fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) the process `pid` has used so far, in seconds, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count from
    // the last `)`.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    match (ticks(14), ticks(15)) {
        (Some(u), Some(s)) => (u + s) as f64 / clock_ticks(),
        _ => f64::NAN,
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        sh("getconf", &["CLK_TCK"])
            .parse::<f64>()
            .ok()
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}
