//! A PeerJS-like signaling client on a raw WebSocket: it connects the way `peerjs@1.5.5` does
//! (`<path>peerjs?key=K&id=I&token=T&version=1.5.5`), waits for OPEN, and sends masked frames.
//! Frames it sends repeatedly are encoded once.

use peerstorm_model::ws;
use peerstorm_tls::Stream;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;

/// Where the broker is.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The WebSocket path (`/peerjs`).
    pub ws_path: String,
    pub key: String,
    /// `wss://`: TLS with this configuration.
    pub tls: Option<Tls>,
}

/// How a client speaks TLS to a broker.
pub use peerstorm_tls::Client as Tls;

impl Target {
    /// A plain `ws://` target.
    pub fn new(addr: SocketAddr, ws_path: impl Into<String>, key: impl Into<String>) -> Self {
        Target { addr, ws_path: ws_path.into(), key: key.into(), tls: None }
    }

    /// `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// Is a server there that speaks what this target expects? `GET <mount><key>/id` (which
    /// every PeerServer answers); `Err` names the trouble: nothing listening, a certificate not
    /// trusted, TLS where `ws://` was given, plain HTTP where `wss://` was.
    pub async fn probe(&self) -> io::Result<()> {
        let base = self.ws_path.trim_end_matches("peerjs");
        let answer = self.http_get(&format!("{base}{}/id", self.key)).await?;
        if self.tls.is_none() && answer.as_bytes().first() == Some(&0x15) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the server answered in TLS: use wss://"));
        }
        if !answer.starts_with("HTTP/") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "no HTTP answer (is it a PeerServer?)"));
        }
        Ok(())
    }

    /// `GET path` with `Connection: close`: the whole answer (head and body) as text.
    pub async fn http_get(&self, path: &str) -> io::Result<String> {
        let stream = self.connect(None).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        write_all(&stream, req.as_bytes()).await?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            stream.readable().await?;
            match stream.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if !answer.is_empty() && e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
            if answer.len() > 1 << 20 {
                return Err(io::Error::other("an answer over 1 MiB"));
            }
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    /// A TCP connection to the broker, TLS done when the target is `wss://`.
    pub async fn connect(&self, source: Option<IpAddr>) -> io::Result<Stream> {
        let socket = if self.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Stream::plain(tcp)),
            Some(t) => t.connect(tcp).await,
        }
    }
}

/// Why a client could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("connect: {0}")]
    Io(#[from] io::Error),
    #[error("the broker refused the upgrade: {0}")]
    Http(String),
    /// The broker answered with ERROR or ID-TAKEN (e.g. its concurrent limit).
    #[error("the broker refused the peer: {0}")]
    Refused(String),
    #[error("no OPEN within {0:?}")]
    Timeout(Duration),
}

/// A connected client.
#[derive(Debug)]
pub struct Client {
    pub stream: Stream,
    pub id: String,
    /// Bytes of a frame not yet complete.
    rest: Vec<u8>,
}

/// The fixed mask this generator uses (the server unmasks whatever it is).
pub const MASK: [u8; 4] = [0x5a, 0xa5, 0x3c, 0xc3];

/// Encodes a client text frame.
pub fn text_frame(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 14);
    ws::encode_masked(&mut out, ws::OP_TEXT, text.as_bytes(), MASK);
    out
}

impl Client {
    /// Connects (from `source` if given), upgrades, and waits for OPEN.
    pub async fn join(
        target: &Target,
        id: &str,
        token: &str,
        source: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<(Self, Duration), JoinError> {
        let start = Instant::now();
        let fut = async {
            let stream = target.connect(source).await?;
            let req = format!(
                "GET {}?key={}&id={id}&token={token}&version=1.5.5 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                target.ws_path, target.key, target.addr
            );
            write_all(&stream, req.as_bytes()).await?;
            let mut head = Vec::with_capacity(256);
            let mut buf = [0u8; 1024];
            let end = loop {
                if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let n = read_some(&stream, &mut buf).await?;
                head.extend_from_slice(&buf[..n]);
            };
            if target.tls.is_none() && head.first() == Some(&0x15) {
                // A TLS alert record: the server wants TLS.
                return Err(JoinError::Http("the server answered in TLS: use wss://".into()));
            }
            if !head.starts_with(b"HTTP/1.1 101") {
                let line =
                    String::from_utf8_lossy(&head[..head.iter().position(|&b| b == b'\r').unwrap_or(head.len())])
                        .into_owned();
                return Err(JoinError::Http(line));
            }
            let mut client = Client { stream, id: id.to_string(), rest: head[end..].to_vec() };
            let mut first: Option<String> = None;
            while first.is_none() {
                client
                    .read_frames(|_, p| {
                        if first.is_none() {
                            first = Some(String::from_utf8_lossy(p).into_owned());
                        }
                    })
                    .await?;
            }
            let first = first.unwrap_or_default();
            if first == r#"{"type":"OPEN"}"# { Ok(client) } else { Err(JoinError::Refused(first)) }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.map(|c| (c, start.elapsed())),
            Err(_) => Err(JoinError::Timeout(timeout)),
        }
    }

    /// Writes bytes (already encoded frames).
    pub async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        write_all(&self.stream, bytes).await
    }

    /// Sends without waiting: `Ok(false)` when the socket would block.
    pub fn try_send(&self, bytes: &[u8]) -> io::Result<bool> {
        match self.stream.try_write(bytes) {
            Ok(n) if n == bytes.len() => Ok(true),
            Ok(_) => Err(io::Error::other("partial write of a small frame")),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads once (waiting for data) and calls `on_frame(opcode, payload)` for every complete
    /// frame. EOF is an error.
    pub async fn read_frames(&mut self, mut on_frame: impl FnMut(u8, &[u8])) -> io::Result<()> {
        if !self.rest.is_empty() {
            let used = decode_server_frames(&self.rest, &mut on_frame);
            self.rest.drain(..used);
            if used > 0 {
                return Ok(());
            }
        }
        loop {
            self.stream.readable().await?;
            // One read buffer per thread, not a zeroed 64 KiB one per read: a generator of
            // thousands of peers reads millions of times.
            let r = READ_BUF.with_borrow_mut(|buf| match self.stream.try_read(buf) {
                Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the broker closed the connection")),
                Ok(n) if self.rest.is_empty() => {
                    let used = decode_server_frames(&buf[..n], &mut on_frame);
                    self.rest.extend_from_slice(&buf[used..n]);
                    Ok(true)
                }
                Ok(n) => {
                    self.rest.extend_from_slice(&buf[..n]);
                    let used = decode_server_frames(&self.rest, &mut on_frame);
                    self.rest.drain(..used);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e),
            });
            if r? {
                return Ok(());
            }
        }
    }

    /// Leaves as a browser's `WebSocket.close()` does (what `peerjs@1.5.5`'s `disconnect()` and
    /// `destroy()` call): a close frame with no status, then the server's close frame and its end
    /// of the connection (RFC 6455 §7.1.1: the server closes TCP first and keeps the TIME_WAIT).
    /// Frames still arriving before the server's close are read and dropped. `Ok(false)`: the
    /// server did not finish the closing handshake within `timeout` (the connection is dropped
    /// all the same when the client is).
    pub async fn close(mut self, timeout: Duration) -> io::Result<bool> {
        let mut frame = Vec::with_capacity(6);
        ws::encode_masked(&mut frame, ws::OP_CLOSE, &[], MASK);
        self.send(&frame).await?;
        let answered = async {
            let mut closed = false;
            loop {
                match self.read_frames(|op, _| closed |= op == ws::OP_CLOSE).await {
                    Ok(()) => {}
                    // The server's end of the connection, after its close frame: done.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(closed),
                    Err(e) => return Err(e),
                }
            }
        };
        tokio::time::timeout(timeout, answered).await.unwrap_or(Ok(false))
    }

    /// Reads whatever is there without waiting; `Ok(false)` on EOF.
    pub fn drain_now(&mut self) -> io::Result<bool> {
        READ_BUF.with_borrow_mut(|buf| {
            loop {
                match self.stream.try_read(buf) {
                    Ok(0) => return Ok(false),
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
        })
    }
}

thread_local! {
    /// What every client on this thread reads into (frames are decoded from it at once; the
    /// tail of an incomplete frame goes to the client's `rest`).
    static READ_BUF: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; 64 << 10].into_boxed_slice());
}

/// Decodes unmasked server frames; returns the bytes used.
pub fn decode_server_frames(b: &[u8], on_frame: &mut impl FnMut(u8, &[u8])) -> usize {
    ws::for_each_server_frame(b, |op, payload, _| on_frame(op, payload))
}

async fn read_some(stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the broker closed the connection")),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(stream: &Stream, mut b: &[u8]) -> io::Result<()> {
    // Try first: a connected socket almost always takes a small frame at once, and waiting for
    // writability first costs a readiness poll per frame.
    while !b.is_empty() {
        match stream.try_write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    // With TLS the last records may still be queued.
    stream.flush().await
}
