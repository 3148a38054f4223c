//! A small HTTP/1.1 client: keep-alive connections from one current-thread runtime.

use super::*;

pub(crate) struct Conn {
    pub(crate) addr: SocketAddr,
    pub(crate) io: Option<BufReader<TcpStream>>,
    pub(crate) head: Vec<u8>,
    pub(crate) line: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            io: None,
            head: Vec::with_capacity(512),
            line: Vec::with_capacity(256),
        }
    }

    /// One request; returns the status and the body. Reconnects when needed.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        extra_headers: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        if self.io.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.io = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let result = self.exchange(method, path, extra_headers, body).await;
        if result.is_err() {
            self.io = None;
        }
        result
    }

    pub(crate) async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        extra_headers: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let io = self.io.as_mut().ok_or_else(|| anyhow!("not connected"))?;
        self.head.clear();
        write!(
            &mut StringSink(&mut self.head),
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra_headers}Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )?;
        self.head.extend_from_slice(body);
        io.get_mut().write_all(&self.head).await?;

        // Status line and headers.
        let mut status = 0u16;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        let mut first = true;
        loop {
            self.line.clear();
            let n = io.read_until(b'\n', &mut self.line).await?;
            if n == 0 {
                bail!("connection closed before the response");
            }
            let text = std::str::from_utf8(&self.line)?.trim_end();
            if first {
                first = false;
                status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow!("bad status line {text:?}"))?;
                continue;
            }
            if text.is_empty() {
                break;
            }
            if let Some((name, value)) = text.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = Some(value.parse()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut out = Vec::new();
        if status == 204 || status == 304 || (100..200).contains(&status) || method == "HEAD" {
            // No body by definition.
        } else if chunked {
            loop {
                self.line.clear();
                io.read_until(b'\n', &mut self.line).await?;
                let size_text = std::str::from_utf8(&self.line)?.trim();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or(""), 16)?;
                let start = out.len();
                out.resize(start + size, 0);
                io.read_exact(&mut out[start..]).await?;
                self.line.clear();
                io.read_until(b'\n', &mut self.line).await?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(len) = content_length {
            out.resize(len, 0);
            io.read_exact(&mut out).await?;
        } else {
            io.read_to_end(&mut out).await?;
            close = true;
        }
        if close {
            self.io = None;
        }
        Ok((status, out))
    }
}

/// `fmt::Write` over a byte vector.
pub(crate) struct StringSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StringSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The API key the benchmark gives the gateway (`GATEWAY_API_KEYS`) and sends.
pub(crate) const BENCH_KEY: &str = "bench-key-not-a-secret-0123456789";
pub(crate) const JSON_HEADERS: &str = "Content-Type: application/json\r\nAccept: application/json\r\nAuthorization: Bearer bench-key-not-a-secret-0123456789\r\n";

pub(crate) fn bench_key_entry() -> String {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(BENCH_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("bench:read+write:{hash}")
}

pub(crate) async fn get_json(
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> anyhow::Result<Value> {
    let mut c = Conn::new(addr);
    let headers = match auth {
        Some(a) => format!("Accept: application/json\r\nAuthorization: {a}\r\n"),
        None => "Accept: application/json\r\n".to_owned(),
    };
    let (status, body) = c.request("GET", path, &headers, b"").await?;
    if status != 200 {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}
