//! A deliberately plain WebSocket and HTTP client for probing brokers: every frame, close code and
//! HTTP status is visible, nothing is retried or hidden.

use peerstorm_model::ws;
use peerstorm_tls::Stream;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the broker under test is.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The PeerServer's mount path, ending in `/`.
    pub path: String,
    pub key: String,
    /// `wss://`/`https://`: TLS with this client.
    pub tls: Option<peerstorm_tls::Client>,
}

/// What a connection saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame, with its code (1005 when it had none).
    Close(u16),
    /// The TCP connection ended without a close frame.
    Eof,
}

/// An upgraded connection, or the HTTP answer that refused it.
#[derive(Debug)]
pub enum Upgrade {
    Open(Conn),
    Refused { status: String, body: String },
}

#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    closed: bool,
}

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

impl Target {
    /// A plain (`ws://`) target.
    pub fn new(addr: SocketAddr, path: impl Into<String>, key: impl Into<String>) -> Self {
        Target { addr, path: path.into(), key: key.into(), tls: None }
    }

    /// A connection to the broker, TLS done when the target has it.
    pub async fn stream(&self) -> std::io::Result<Stream> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Stream::plain(tcp)),
            Some(t) => t.connect(tcp).await,
        }
    }

    /// The WebSocket query PeerJS sends.
    pub fn ws_query(&self, id: &str, token: &str) -> String {
        format!("{}peerjs?key={}&id={id}&token={token}&version=1.5.5", self.path, self.key)
    }

    /// Upgrades on `path_and_query`.
    pub async fn connect(&self, path_and_query: &str) -> std::io::Result<Upgrade> {
        let mut stream = self.stream().await?;
        let req = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.addr
        );
        stream.write_all(req.as_bytes()).await?;
        stream.flush().await?;
        let mut head = Vec::new();
        let mut b = [0u8; 4096];
        let end = loop {
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut b))
                .await
                .map_err(|_| std::io::Error::other("no HTTP answer in 5 s"))??;
            if n == 0 {
                return Ok(Upgrade::Refused { status: "connection closed".into(), body: String::new() });
            }
            head.extend_from_slice(&b[..n]);
        };
        let text = String::from_utf8_lossy(&head[..end]).into_owned();
        let status = text.lines().next().unwrap_or("").to_string();
        if !status.starts_with("HTTP/1.1 101") {
            let mut body = head[end..].to_vec();
            let _ = tokio::time::timeout(Duration::from_millis(300), stream.read_to_end(&mut body)).await;
            return Ok(Upgrade::Refused { status, body: String::from_utf8_lossy(&body).into_owned() });
        }
        Ok(Upgrade::Open(Conn { stream, buf: head[end..].to_vec(), closed: false }))
    }

    /// Connects as a PeerJS client; `Err` carries what happened instead of an upgrade.
    pub async fn join(&self, id: &str, token: &str) -> Result<Conn, String> {
        match self.connect(&self.ws_query(id, token)).await {
            Ok(Upgrade::Open(c)) => Ok(c),
            Ok(Upgrade::Refused { status, .. }) => Err(format!("upgrade refused: {status}")),
            Err(e) => Err(format!("connect: {e}")),
        }
    }

    /// Joins and waits for OPEN.
    pub async fn open(&self, id: &str, token: &str) -> Result<Conn, String> {
        let mut c = self.join(id, token).await?;
        match c.next(Duration::from_secs(3)).await {
            Some(Event::Text(t)) if t == r#"{"type":"OPEN"}"# => Ok(c),
            other => Err(format!("expected OPEN, got {other:?}")),
        }
    }

    /// One HTTP request; returns the status line, the headers (lower-cased names) and the body.
    pub async fn http(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Http> {
        let mut stream = self.stream().await?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
            .await
            .map_err(|_| std::io::Error::other("no HTTP answer in 5 s"))??;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        // A chunked body is de-chunked loosely: enough to read small JSON and text answers.
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body.split("\r\n").enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, s)| s).collect()
        } else {
            body.to_string()
        };
        Ok(Http { status, headers, body })
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Http {
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub fn code(&self) -> u16 {
        self.status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Conn {
    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send_op(ws::OP_TEXT, text.as_bytes()).await
    }

    pub async fn send_binary(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.send_op(ws::OP_BINARY, data).await
    }

    pub async fn send_op(&mut self, op: u8, data: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(data.len() + 14);
        ws::encode_masked(&mut out, op, data, MASK);
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// Closes the TCP connection without a close frame (a client that vanished).
    pub async fn drop_tcp(self) {
        drop(self.stream);
    }

    /// A close frame, then the TCP connection.
    pub async fn close(mut self) {
        let _ = self.send_op(ws::OP_CLOSE, &1000u16.to_be_bytes()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// The next frame (pings are answered and skipped), or `None` if nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.closed {
                return Some(Event::Eof);
            }
            let mut found: Option<(u8, Vec<u8>)> = None;
            let used = ws::for_each_server_frame(&self.buf, |op, p, _| {
                if found.is_none() {
                    found = Some((op, p.to_vec()));
                }
            });
            if let Some((op, p)) = found {
                // Take exactly the first frame off the buffer.
                let first = first_frame_len(&self.buf).unwrap_or(used);
                self.buf.drain(..first);
                match op {
                    ws::OP_TEXT => return Some(Event::Text(String::from_utf8_lossy(&p).into_owned())),
                    ws::OP_BINARY => return Some(Event::Binary(p)),
                    ws::OP_CLOSE => {
                        let code = if p.len() >= 2 { u16::from_be_bytes([p[0], p[1]]) } else { 1005 };
                        return Some(Event::Close(code));
                    }
                    ws::OP_PING => {
                        let _ = self.send_op(ws::OP_PONG, &p).await;
                        continue;
                    }
                    _ => continue,
                }
            }
            let mut b = vec![0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut b)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&b[..n]),
            }
        }
    }

    /// Every frame that arrives within `wait` (until the connection ends).
    pub async fn drain(&mut self, wait: Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut v = Vec::new();
        while let Some(e) = self.next(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            let end = matches!(e, Event::Eof | Event::Close(_));
            v.push(e);
            if end {
                break;
            }
        }
        v
    }
}

/// The length of the first complete unmasked frame in `b`.
fn first_frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 2 {
        return None;
    }
    let len7 = (b[1] & 0x7f) as usize;
    let (len, hdr) = match len7 {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n, 2),
    };
    (b.len() >= hdr + len).then_some(hdr + len)
}
