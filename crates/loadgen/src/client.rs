//! A PeerJS-like signaling client on a raw WebSocket: it connects the way `peerjs@1.5.5` does
//! (`<path>peerjs?key=K&id=I&token=T&version=1.5.5`), waits for OPEN, and sends masked frames.
//! Frames it sends repeatedly are encoded once.

use peerstorm_model::ws;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};

/// Where the broker is.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The WebSocket path (`/peerjs`).
    pub ws_path: String,
    pub key: String,
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
    pub stream: TcpStream,
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
            let socket = if target.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            if let Some(ip) = source {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            let stream = socket.connect(target.addr).await?;
            stream.set_nodelay(true)?;
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
        let mut buf = [0u8; 64 << 10];
        let n = read_some(&self.stream, &mut buf).await?;
        if self.rest.is_empty() {
            let used = decode_server_frames(&buf[..n], &mut on_frame);
            self.rest.extend_from_slice(&buf[used..n]);
        } else {
            self.rest.extend_from_slice(&buf[..n]);
            let used = decode_server_frames(&self.rest, &mut on_frame);
            self.rest.drain(..used);
        }
        Ok(())
    }

    /// Reads whatever is there without waiting; `Ok(false)` on EOF.
    pub fn drain_now(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Decodes unmasked server frames; returns the bytes used.
pub fn decode_server_frames(b: &[u8], on_frame: &mut impl FnMut(u8, &[u8])) -> usize {
    ws::for_each_server_frame(b, |op, payload, _| on_frame(op, payload))
}

async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
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

async fn write_all(stream: &TcpStream, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        stream.writable().await?;
        match stream.try_write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
