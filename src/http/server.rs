//! Serving client connections (HTTP/1.1, hyper) with what `axum::serve` does not
//! offer: a header-read timeout, an idle keep-alive timeout and a cap on open
//! connections (`[server]`, see `config.rs`). The request-body timeout is the guard's
//! (`body.rs`), since only `/graphql` reads bodies.
//!
//! Each connection is in one of three phases, tracked from its socket and its
//! requests:
//! - **head**: waiting for a request's headers, from the first byte (or from the
//!   accept, for the first request) to the end of the headers. Longer than
//!   `header_read_timeout_ms`: the connection is closed (a client dripping headers,
//!   or connecting and sending nothing).
//! - **busy**: a request is being handled (its body read, its operation run, its
//!   answer written). No connection timeout applies: the body timeout and the
//!   operation deadline do.
//! - **idle**: kept alive between requests. Longer than `idle_timeout_ms`: closed.
//!
//! At most `max_connections` are open (by default three quarters of the process's
//! open-file limit, at most 4096: the accept loop must never be the one to run out of
//! descriptors, or nobody, `/healthz` included, gets in). When a new connection would pass the cap, the
//! connection that has been in the head or idle phase the longest is closed to make
//! room, so slow and half-open clients cannot keep anyone else out; only when every
//! open connection is busy is the new one refused, with a GraphQL-shaped HTTP 429
//! (`OVERLOADED`, `Retry-After: 1`), as the shedder refuses operations.
//!
//! Metrics: `gateway_http_connections_open` (gauge) and
//! `gateway_http_connections_closed_total{reason="header_timeout"|"idle_timeout"|"evicted"|"refused"}`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt as _;

use super::errors::HttpError;
use crate::config::ServerConfig;
use crate::graphql::ErrorCode;

/// The connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionSettings {
    pub fn from_config(config: &ServerConfig) -> Self {
        ConnectionSettings {
            header_read_timeout: config.header_read_timeout(),
            idle_timeout: config.idle_timeout(),
            max_connections: config.max_connections(),
        }
    }
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings::from_config(&ServerConfig::default())
    }
}

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// One open connection, as the accept loop and its own task see it.
struct Conn {
    phase: AtomicU8,
    /// When the current phase began, in milliseconds since the server started.
    since_ms: AtomicU64,
    /// Set once the connection has been chosen to make room.
    evicted: AtomicBool,
    /// Wakes the connection's task: its phase changed, or it was evicted.
    wake: Notify,
    started: Instant,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: u8) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
        self.phase.store(phase, Ordering::Release);
        self.wake.notify_one();
    }

    /// When the current phase runs out, if it can.
    fn deadline(&self, settings: &ConnectionSettings) -> Option<(Instant, &'static str)> {
        let since = self.started + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        match self.phase.load(Ordering::Acquire) {
            HEAD => Some((since + settings.header_read_timeout, "header_timeout")),
            IDLE => Some((since + settings.idle_timeout, "idle_timeout")),
            _ => None,
        }
    }
}

/// The open connections.
struct Registry {
    started: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection; `None` when the cap is reached and no connection
    /// can make room.
    fn admit(self: &Arc<Self>, max: usize) -> Option<Registered> {
        let mut conns = self.lock();
        let live = conns
            .values()
            .filter(|c| !c.evicted.load(Ordering::Acquire))
            .count();
        if live >= max {
            // The connection waiting longest without a request in flight makes room.
            let victim = conns
                .values()
                .filter(|c| {
                    !c.evicted.load(Ordering::Acquire) && c.phase.load(Ordering::Acquire) != BUSY
                })
                .min_by_key(|c| c.since_ms.load(Ordering::Acquire))?;
            victim.evicted.store(true, Ordering::Release);
            victim.wake.notify_one();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            phase: AtomicU8::new(HEAD),
            since_ms: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
            started: self.started,
        });
        conn.since_ms.store(conn.now_ms(), Ordering::Release);
        conns.insert(id, conn.clone());
        metrics::gauge!("gateway_http_connections_open").set(conns.len() as f64);
        Some(Registered {
            registry: self.clone(),
            id,
            conn,
        })
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A connection's place in the registry, given back when dropped.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut conns = self.registry.lock();
        conns.remove(&self.id);
        metrics::gauge!("gateway_http_connections_open").set(conns.len() as f64);
    }
}

/// The socket, telling its connection when a new request's first bytes arrive.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // Bytes after an idle spell start the next request's head.
            if self
                .conn
                .phase
                .compare_exchange(IDLE, HEAD, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.conn
                    .since_ms
                    .store(self.conn.now_ms(), Ordering::Release);
                self.conn.wake.notify_one();
            }
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks a connection busy while a request is handled; idle again when dropped.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Self {
        conn.enter(BUSY);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.enter(IDLE);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets
/// every request in flight finish, and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        started: Instant::now(),
        next_id: AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors, say: wait for connections to close.
                    tracing::warn!(error = %e, "cannot accept connections; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(registered) = registry.admit(settings.max_connections) else {
            metrics::counter!("gateway_http_connections_closed_total", "reason" => "refused")
                .increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            settings,
            registered,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while !registry.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Errors of one connection that leave the listener fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection the cap has no room for, then closes it.
async fn refuse(mut stream: TcpStream) {
    let body = HttpError::new(
        ErrorCode::Overloaded,
        "the gateway has too many open connections; retry after a second",
    )
    .body()
    .to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json; charset=utf-8\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    settings: ConnectionSettings,
    registered: Registered,
    mut stop: watch::Receiver<bool>,
) {
    let conn = registered.conn.clone();
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: conn.clone(),
    });
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::new(service_conn.clone());
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let resp = router.oneshot(req).await;
            drop(busy);
            resp
        }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // The phases above time the headers; hyper's own timer would also cut idle
        // keep-alive connections at the header timeout.
        .header_read_timeout(None)
        .serve_connection(io, service)
        // WebSocket subscriptions (`ws.rs`): after the 101 the socket belongs to the
        // WebSocket task, which has its own caps and timeouts, and leaves this
        // registry.
        .with_upgrades();
    tokio::pin!(http);
    let mut stopping = false;
    loop {
        let deadline = conn.deadline(&settings);
        let sleep = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
                break;
            }
            _ = conn.wake.notified() => {
                if conn.evicted.load(Ordering::Acquire) {
                    metrics::counter!("gateway_http_connections_closed_total", "reason" => "evicted")
                        .increment(1);
                    break;
                }
            }
            _ = sleep => {
                // Re-read: the phase may have changed as the timer fired.
                if let Some((at, reason)) = conn.deadline(&settings) {
                    if Instant::now() >= at {
                        metrics::counter!("gateway_http_connections_closed_total", "reason" => reason)
                            .increment(1);
                        break;
                    }
                }
            }
            _ = stop.wait_for(|stopped| *stopped), if !stopping => {
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
        }
    }
    drop(registered);
}
