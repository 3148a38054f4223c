//! Starting the real executable on 127.0.0.1:0 and learning its address from the line
//! it logs at start (no free-port race: the process binds the port itself).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_actionkit-graphql");

/// The executable with none of the gateway's settings inherited from the environment,
/// and a data directory of its own (`XDG_DATA_HOME` under the system's temporary
/// directory, removed when the [`Running`] process is dropped): two gateways, or a
/// gateway and one a developer runs, never share a submission store.
pub(crate) fn command() -> Command {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut c = Command::new(BIN);
    let scratch = std::env::temp_dir().join(format!(
        "akgql-binary-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    c.env("XDG_DATA_HOME", scratch);
    for var in [
        "GATEWAY_CONFIG",
        "GATEWAY_API_KEYS",
        "GATEWAY_ALLOW_ANONYMOUS_READS",
        "GATEWAY_MODE",
        "GATEWAY_LISTEN",
        "GATEWAY_DATA_DIR",
        "GATEWAY_REDIS_URL",
        "ACTIONKIT_URL",
        "ACTIONKIT_USERNAME",
        "ACTIONKIT_PASSWORD",
        "ACTIONKIT_AKID_SECRET",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// The data directory [`command`] gave `cmd` (`None` for another command).
pub(crate) fn scratch_of(cmd: &Command) -> Option<PathBuf> {
    cmd.get_envs()
        .find(|(k, _)| *k == "XDG_DATA_HOME")
        .and_then(|(_, v)| v.map(PathBuf::from))
}

/// What a started process reports as its address.
#[derive(Clone, Copy)]
pub(crate) enum Serves {
    /// `serve`: the gateway's `GraphQL at http://ADDR/graphql` line.
    Gateway,
    /// `sandbox`: the emulator's `(ActionKit emulator) at http://ADDR/rest/v1/` line.
    Sandbox,
}

impl Serves {
    fn marker(self) -> &'static str {
        match self {
            Serves::Gateway => "GraphQL at http://",
            Serves::Sandbox => "(ActionKit emulator) at http://",
        }
    }
}

/// A running executable; killed when dropped. Its standard error is kept in `log`.
pub(crate) struct Running {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// The process's own data directory (see [`command`]).
    scratch: Option<PathBuf>,
}

impl Running {
    /// Starts `cmd` with `--listen 127.0.0.1:0` appended and waits (30 s at most) for
    /// the line that names its address.
    pub(crate) fn start(mut cmd: Command, serves: Serves) -> Running {
        cmd.args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let scratch = scratch_of(&cmd);
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let kept = log.clone();
        let marker = serves.marker();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = address_after(&line, marker) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Running {
                child,
                addr,
                log,
                scratch,
            },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the process did not report its address:\n{}",
                    log.lock().unwrap()
                );
            }
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the process wrote to standard error so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest[..rest.find('/')?].parse().ok()
}
