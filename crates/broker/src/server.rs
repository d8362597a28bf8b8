//! The tokio shell around [`Broker`]: HTTP/1.1 and WebSocket on one listener, on one thread.
//!
//! It moves bytes and time in and out of the core and nothing else. Everything runs on the
//! current thread (a `LocalSet`), so the core needs no lock. Per connection it keeps only what
//! is in flight: a partial frame between reads, and encoded frames not yet written; an idle
//! connection holds no buffer. Reads go into one shared buffer, every complete frame in it is
//! handled, and then each destination that got frames is written once (batched writes).

use crate::config::Config;
use crate::core::{Broker, ConnId, ConnectParams, OutputRef};
use crate::http::{self, Request, Response};
use peerstorm_model::ws::{self, Decoder, Event};
use peerstorm_tls::Stream;
use peerstorm_tls::rustls::ServerConfig;
use rustc_hash::FxHashMap;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Largest HTTP request head accepted.
const MAX_HEAD: usize = 16 << 10;
/// The shared read buffer's size.
const READ_BUF: usize = 256 << 10;
/// How long a closing connection waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

struct ConnIo {
    id: ConnId,
    stream: Stream,
    /// Encoded frames not yet written, and how much of them has been written.
    out: RefCell<Vec<u8>>,
    written: Cell<usize>,
    notify: Notify,
    /// A close frame has been queued; nothing more is written after it.
    closing: Cell<bool>,
    /// Texts the core sent after the close frame was queued: handed back with the unwritten
    /// ones when the connection ends, never dropped.
    after_close: RefCell<Vec<String>>,
    /// A write failed: the connection is dead.
    broken: Cell<bool>,
}

struct Shared {
    broker: RefCell<Broker>,
    conns: RefCell<FxHashMap<ConnId, Rc<ConnIo>>>,
    next_conn: Cell<u64>,
    read_buf: RefCell<Vec<u8>>,
    ws_path: String,
    frame_limit: usize,
    /// Hardened: the most bytes a connection may have waiting to be written.
    send_limit: Option<usize>,
    head_timeout: Duration,
    /// Connections not upgraded yet, and the most held at once (`Config::max_handshaking`).
    handshaking: Cell<usize>,
    max_handshaking: usize,
    /// `wss://`: every connection is TLS with this configuration.
    tls: Option<Arc<ServerConfig>>,
}

/// A connection counted as handshaking until it upgrades or ends.
struct HandshakeSlot(Rc<Shared>);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.handshaking.set(self.0.handshaking.get() - 1);
    }
}

/// Serves the broker on `listener` until `shutdown` resolves. Must run inside a `LocalSet`
/// (or use [`run`], which makes one).
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    run_with(listener, config, None, shutdown).await
}

/// [`run`], over TLS (`wss://`, `https://`) when `tls` is given.
pub async fn run_with(
    listener: TcpListener,
    config: Config,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tokio::task::LocalSet::new().run_until(serve(listener, config, tls, shutdown)).await
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut b);
    }
    u64::from_le_bytes(b) ^ std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64
}

async fn serve(
    listener: TcpListener,
    config: Config,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let shared = Rc::new(Shared {
        tls,
        ws_path: config.ws_path(),
        frame_limit: config.frame_limit(),
        send_limit: config.hardening.as_ref().map(|h| h.max_send_buffer),
        head_timeout: config.head_timeout,
        handshaking: Cell::new(0),
        max_handshaking: config.max_handshaking.max(1),
        broker: RefCell::new(Broker::new(config, Instant::now(), seed())),
        conns: RefCell::new(FxHashMap::default()),
        next_conn: Cell::new(1),
        read_buf: RefCell::new(vec![0; READ_BUF]),
    });
    tokio::task::spawn_local(timers(shared.clone()));
    // A spare descriptor: when the process runs out, it is closed to accept the connection and
    // tell the client why, instead of leaving it hanging in the backlog.
    let mut spare = std::fs::File::open("/dev/null").ok();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, addr)) => {
                    if shared.handshaking.get() >= shared.max_handshaking {
                        // Refused at once: waiting for its head would hold one more descriptor.
                        // (A TLS client is just closed: it could not read a plain answer.)
                        if shared.tls.is_some() {
                            continue;
                        }
                        let mut out = Vec::new();
                        let body = "Too many connections in their handshake; try again shortly\n";
                        Response::new(503, "text/plain; charset=utf-8", body).write_to(&mut out, false);
                        let _ = stream.try_write(&out);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    shared.handshaking.set(shared.handshaking.get() + 1);
                    tokio::task::spawn_local(connection(HandshakeSlot(shared.clone()), stream, addr));
                }
                Err(e) if e.raw_os_error() == Some(libc_emfile()) => {
                    drop(spare.take());
                    if let Ok((stream, _)) = listener.accept().await {
                        let mut out = Vec::new();
                        Response::new(503, "text/plain; charset=utf-8", "Server has run out of file descriptors\n").write_to(&mut out, false);
                        let _ = stream.try_write(&out);
                    }
                    spare = std::fs::File::open("/dev/null").ok();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
    // Going away: tell every client, give the writes a moment, then stop.
    let conns: Vec<Rc<ConnIo>> = shared.conns.borrow().values().cloned().collect();
    for io in &conns {
        queue_close(io, Some(ws::close::GOING_AWAY));
        flush(io);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// EMFILE without depending on libc.
fn libc_emfile() -> i32 {
    24
}

async fn timers(shared: Rc<Shared>) {
    loop {
        let at = shared.broker.borrow().poll_timeout();
        tokio::time::sleep_until(at.into()).await;
        shared.broker.borrow_mut().handle_timeout(Instant::now());
        dispatch(&shared);
    }
}

/// Moves the core's outputs into the connections' write buffers, then writes each touched
/// connection once.
fn dispatch(shared: &Shared) {
    let mut dirty: Vec<Rc<ConnIo>> = Vec::new();
    {
        let conns = shared.conns.borrow();
        shared.broker.borrow_mut().drain_outputs(|o| {
            let conn = match o {
                OutputRef::Send { conn, .. } | OutputRef::Close { conn, .. } => conn,
            };
            let Some(io) = conns.get(&conn) else { return };
            match o {
                OutputRef::Send { text, .. } => {
                    if io.closing.get() {
                        io.after_close.borrow_mut().push(text.to_string());
                    } else {
                        ws::encode(&mut io.out.borrow_mut(), ws::OP_TEXT, text.as_bytes());
                    }
                }
                OutputRef::Close { code, .. } => queue_close(io, code),
            }
            if !dirty.iter().any(|d| Rc::ptr_eq(d, io)) {
                dirty.push(io.clone());
            }
        });
    }
    for io in dirty {
        flush(&io);
        check_send_limit(shared, &io);
        if io.closing.get() || has_pending(&io) || io.broken.get() {
            io.notify.notify_one();
        }
    }
}

/// Hardened: a client with more than `max_send_buffer` bytes waiting does not read. It is
/// dropped rather than its frames held without bound: shutting the socket down wakes its task
/// (its wait for writability ends), which then ends and hands the unwritten frames back.
fn check_send_limit(shared: &Shared, io: &ConnIo) {
    if let Some(limit) = shared.send_limit
        && io.out.borrow().len() - io.written.get() > limit
        && !io.broken.get()
    {
        io.broken.set(true);
        let _ = socket2::SockRef::from(io.stream.tcp()).shutdown(std::net::Shutdown::Both);
        shared.broker.borrow_mut().handle_slow_reader(Instant::now(), io.id);
    }
}

fn queue_close(io: &ConnIo, code: Option<u16>) {
    if !io.closing.replace(true) {
        ws::encode_close(&mut io.out.borrow_mut(), code);
    }
}

fn has_pending(io: &ConnIo) -> bool {
    io.written.get() < io.out.borrow().len() || io.stream.wants_write()
}

/// Writes what it can without waiting; frees the buffer once it is all written.
fn flush(io: &ConnIo) {
    if io.broken.get() {
        return;
    }
    let mut out = io.out.borrow_mut();
    while io.written.get() < out.len() {
        match io.stream.try_write(&out[io.written.get()..]) {
            Ok(0) => {
                io.broken.set(true);
                return;
            }
            Ok(n) => io.written.set(io.written.get() + n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                io.broken.set(true);
                return;
            }
        }
    }
    // All written: release the memory so an idle connection holds none.
    io.written.set(0);
    if out.capacity() > 4096 {
        *out = Vec::new();
    } else {
        out.clear();
    }
}

/// The text frames in `out` that were not completely written.
fn unwritten_texts(io: &ConnIo) -> Vec<String> {
    let out = io.out.borrow();
    let written = io.written.get();
    let mut texts = Vec::new();
    ws::for_each_server_frame(&out, |op, payload, end| {
        if end > written && op == ws::OP_TEXT {
            texts.push(String::from_utf8_lossy(payload).into_owned());
        }
    });
    texts
}

/// What the connection loop needs from a request head, owned, so that no parser state lives
/// in the connection's future.
struct Head {
    method: String,
    target: String,
    upgrade: bool,
    ws_key: Option<String>,
    ws_version_ok: bool,
    origin: Option<String>,
    acr_headers: Option<String>,
    keep_alive: bool,
    has_body: bool,
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(bytes), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let hdr = |name: &str| {
        req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok())
    };
    Some(Head {
        method: req.method.unwrap_or("GET").to_string(),
        target: req.path.unwrap_or("/").to_string(),
        upgrade: hdr("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")),
        ws_key: hdr("sec-websocket-key").map(str::to_string),
        ws_version_ok: hdr("sec-websocket-version") == Some("13"),
        origin: hdr("origin").map(str::to_string),
        acr_headers: hdr("access-control-request-headers").map(str::to_string),
        keep_alive: !hdr("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")),
        has_body: hdr("content-length").and_then(|l| l.trim().parse::<usize>().ok()).unwrap_or(0) > 0
            || hdr("transfer-encoding").is_some(),
    })
}

async fn connection(slot: HandshakeSlot, tcp: TcpStream, _addr: SocketAddr) {
    let shared = slot.0.clone();
    let stream = match &shared.tls {
        None => Stream::plain(tcp),
        Some(config) => match Stream::server(tcp, config.clone()) {
            Ok(s) => s,
            Err(_) => return,
        },
    };
    let mut head: Vec<u8> = Vec::new();
    loop {
        // Read one request head, within the deadline (`Config::head_timeout`): a client that
        // sends nothing, or a byte now and then, would otherwise hold a descriptor for good.
        let deadline = tokio::time::Instant::now() + shared.head_timeout;
        let end = loop {
            if let Some(i) = find_head_end(&head) {
                break i;
            }
            if head.len() > MAX_HEAD {
                let body = "Request header fields too large\n";
                write_all(&stream, &Response::new(431, "text/plain; charset=utf-8", body)).await;
                return;
            }
            if !stream.is_tls() && head.first() == Some(&0x16) {
                // A TLS ClientHello on the plain port: closing at once tells the client
                // (it would otherwise wait out the head timeout for a head that never comes).
                return;
            }
            head.reserve(1024);
            match tokio::time::timeout_at(deadline, stream.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
            match stream.try_read_buf(&mut head) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        };
        let Some(h) = parse_head(&head[..end]) else {
            write_all(&stream, &Response::bad_request()).await;
            return;
        };
        if h.upgrade {
            let path = h.target.split_once('?').map_or(h.target.as_str(), |(p, _)| p);
            let (Some(key), true, true) = (h.ws_key.as_deref(), h.ws_version_ok, path == shared.ws_path) else {
                write_all(&stream, &Response::bad_request()).await;
                return;
            };
            let query = h.target.split_once('?').map_or("", |(_, q)| q).to_string();
            let leftover = head[end..].to_vec();
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                ws::accept_key(key)
            );
            if !write_bytes(&stream, resp.as_bytes()).await {
                return;
            }
            // The WebSocket phase gets its own task, so nothing of the HTTP phase stays allocated.
            drop(slot);
            tokio::task::spawn_local(websocket(shared, stream, query, leftover));
            return;
        }
        let request = Request {
            method: &h.method,
            target: &h.target,
            origin: h.origin.as_deref(),
            access_control_request_headers: h.acr_headers.as_deref(),
        };
        let resp = http::handle(&mut shared.broker.borrow_mut(), Instant::now(), &request);
        let keep = h.keep_alive && !h.has_body;
        let mut out = Vec::new();
        resp.write_to(&mut out, keep);
        if !write_bytes(&stream, &out).await || !keep {
            return;
        }
        head.drain(..end);
    }
}

/// Where the request head ends: after CRLF CRLF, or after LF LF (a head with bare LFs, which
/// httparse reads too, must get an answer rather than wait forever for a CRLF).
fn find_head_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    [crlf, lf].into_iter().flatten().min()
}

async fn write_bytes(stream: &Stream, mut b: &[u8]) -> bool {
    while !b.is_empty() {
        if stream.writable().await.is_err() {
            return false;
        }
        match stream.try_write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return false,
        }
    }
    // With TLS the last records may still be queued.
    stream.flush().await.is_ok()
}

async fn write_all(stream: &Stream, r: &Response) {
    let mut out = Vec::new();
    r.write_to(&mut out, false);
    write_bytes(stream, &out).await;
}

/// What reading a batch of bytes led to.
enum Step {
    Continue,
    /// The client closed, or broke the protocol: answer with this close code and stop.
    Close(Option<u16>),
}

async fn websocket(shared: Rc<Shared>, stream: Stream, query: String, leftover: Vec<u8>) {
    let conn = ConnId(shared.next_conn.get());
    shared.next_conn.set(conn.0 + 1);
    let io = Rc::new(ConnIo {
        id: conn,
        stream,
        out: RefCell::new(Vec::new()),
        written: Cell::new(0),
        notify: Notify::new(),
        closing: Cell::new(false),
        after_close: RefCell::new(Vec::new()),
        broken: Cell::new(false),
    });
    shared.conns.borrow_mut().insert(conn, io.clone());
    shared.broker.borrow_mut().handle_connect(Instant::now(), conn, &ConnectParams::from_query(&query));
    drop(query);
    dispatch(&shared);
    let mut decoder = Decoder::default();
    let mut partial = leftover;
    if !partial.is_empty() {
        let (step, used) = handle_bytes(&shared, conn, &io, &mut decoder, &mut partial);
        partial.drain(..used.min(partial.len()));
        if let Step::Close(code) = step {
            queue_close(&io, code);
        }
        dispatch(&shared);
    }
    let mut close_deadline: Option<tokio::time::Instant> = None;
    loop {
        if io.broken.get() {
            break;
        }
        if io.closing.get() && !has_pending(&io) && close_deadline.is_none() {
            close_deadline = Some(tokio::time::Instant::now() + CLOSE_GRACE);
        }
        tokio::select! {
            _ = sleep_opt(close_deadline) => break,
            _ = io.notify.notified() => {
                if io.broken.get() {
                    break;
                }
                if has_pending(&io) {
                    if io.stream.writable().await.is_err() || io.broken.get() {
                        break;
                    }
                    flush(&io);
                    if has_pending(&io) {
                        io.notify.notify_one();
                    }
                }
            }
            r = io.stream.readable() => {
                if r.is_err() {
                    break;
                }
                let step = read_batch(&shared, conn, &io, &mut decoder, &mut partial);
                dispatch(&shared);
                match step {
                    None => break,
                    Some(Step::Continue) => {}
                    Some(Step::Close(code)) => {
                        if io.closing.get() {
                            // Our close was answered: the handshake is done.
                            break;
                        }
                        queue_close(&io, code);
                        flush(&io);
                        break;
                    }
                }
            }
        }
    }
    finish(&shared, conn, &io);
}

/// Sleeps until `at`, or forever: an idle connection registers no timer.
async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads what is there and handles every complete frame. `None`: EOF or a read error.
fn read_batch(
    shared: &Shared,
    conn: ConnId,
    io: &ConnIo,
    decoder: &mut Decoder,
    partial: &mut Vec<u8>,
) -> Option<Step> {
    let mut buf = shared.read_buf.borrow_mut();
    let n = match io.stream.try_read(&mut buf) {
        Ok(0) => return None,
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Step::Continue),
        Err(_) => return None,
    };
    if partial.is_empty() {
        // The usual case: whole frames straight from the read buffer; only a trailing partial
        // frame is copied out.
        let (step, used) = handle_bytes(shared, conn, io, decoder, &mut buf[..n]);
        if used < n && matches!(step, Step::Continue) {
            partial.extend_from_slice(&buf[used..n]);
        }
        Some(step)
    } else {
        // A frame spanning reads grows in place; what was used is removed from the front, so a
        // large frame costs its size in copies, not its size times the number of reads.
        partial.extend_from_slice(&buf[..n]);
        drop(buf);
        let (step, used) = handle_bytes(shared, conn, io, decoder, partial);
        partial.drain(..used.min(partial.len()));
        Some(step)
    }
}

/// Decodes and handles the frames in `bytes`; returns what to do and how many bytes were used
/// (the rest is a partial frame for the caller to keep).
fn handle_bytes(shared: &Shared, conn: ConnId, io: &ConnIo, decoder: &mut Decoder, bytes: &mut [u8]) -> (Step, usize) {
    let now = Instant::now();
    let mut step = Step::Continue;
    // RFC 6455 §5.5.3: when pings come faster than pongs can go, answering the most recent one
    // is enough; one pong per batch of input, so a ping flood costs one small frame.
    let mut last_ping: Option<Vec<u8>> = None;
    let mut broker = shared.broker.borrow_mut();
    let result = decoder.decode(bytes, shared.frame_limit, |ev| match ev {
        Event::Text(t) => match std::str::from_utf8(t) {
            Ok(text) => broker.handle_text(now, conn, text),
            Err(_) => broker.handle_binary(now, conn, t),
        },
        Event::Binary(b) => broker.handle_binary(now, conn, b),
        Event::Ping(p) => {
            if broker.handle_ping(now, conn) {
                last_ping = Some(p.to_vec());
            }
        }
        Event::Pong => {}
        Event::Close(code) => step = Step::Close(code),
    });
    drop(broker);
    if let Some(p) = last_ping
        && !io.closing.get()
    {
        ws::encode(&mut io.out.borrow_mut(), ws::OP_PONG, &p);
        // Written now, not whenever another frame happens to go to this client; counted
        // against the send limit like any frame.
        flush(io);
        check_send_limit(shared, io);
        io.notify.notify_one();
    }
    let mut broker = shared.broker.borrow_mut();
    match result {
        Ok(used) => (step, used),
        Err(e) => {
            if e.code == ws::close::TOO_BIG {
                broker.handle_oversize(now, conn);
            }
            (Step::Close(Some(e.code)), bytes.len())
        }
    }
}

/// The connection is over: tell the core, and hand back what could not be written.
fn finish(shared: &Shared, conn: ConnId, io: &ConnIo) {
    shared.conns.borrow_mut().remove(&conn);
    let mut undelivered = if has_pending(io) { unwritten_texts(io) } else { Vec::new() };
    undelivered.append(&mut io.after_close.borrow_mut());
    {
        let mut b = shared.broker.borrow_mut();
        let now = Instant::now();
        b.handle_close(now, conn);
        if !undelivered.is_empty() {
            b.handle_undelivered(now, conn, undelivered);
        }
    }
    dispatch(shared);
}

/// A server running on its own thread (its own current-thread runtime), for tests and tools.
#[derive(Debug)]
pub struct Handle {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Handle {
    /// `ws://addr<path>peerjs?key=<key>&id=<id>&token=<token>`.
    pub fn ws_url(&self, config_path: &str, key: &str, id: &str, token: &str) -> String {
        let mount = Config { path: config_path.into(), ..Config::default() }.ws_path();
        format!("ws://{}{mount}?key={key}&id={id}&token={token}", self.addr)
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("broker thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Binds `addr` and serves on a new thread.
pub fn spawn(addr: SocketAddr, config: Config) -> io::Result<Handle> {
    spawn_with(addr, config, None)
}

/// [`spawn`], over TLS when `tls` is given.
pub fn spawn_with(addr: SocketAddr, config: Config, tls: Option<Arc<ServerConfig>>) -> io::Result<Handle> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("peerstorm-broker".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener)?;
            run_with(listener, config, tls, async {
                let _ = rx.await;
            })
            .await
        })
    })?;
    Ok(Handle { addr, stop: Some(tx), thread: Some(thread) })
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard, hard)?;
    Ok(hard)
}

#[cfg(test)]
mod size_probe {
    #[test]
    fn future_sizes() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let s = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let addr = s.local_addr().unwrap();
            let shared = std::rc::Rc::new(super::Shared {
                broker: std::cell::RefCell::new(crate::Broker::new(
                    crate::Config::default(),
                    std::time::Instant::now(),
                    1,
                )),
                conns: Default::default(),
                next_conn: std::cell::Cell::new(1),
                read_buf: Default::default(),
                ws_path: String::new(),
                frame_limit: 0,
                send_limit: None,
                head_timeout: std::time::Duration::from_secs(10),
                handshaking: std::cell::Cell::new(1),
                max_handshaking: 1,
                tls: None,
            });
            let f = super::connection(super::HandshakeSlot(shared.clone()), s, addr);
            eprintln!("connection future: {} bytes", std::mem::size_of_val(&f));
            let s = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let f = super::websocket(shared, super::Stream::plain(s), String::new(), Vec::new());
            eprintln!("websocket future: {} bytes", std::mem::size_of_val(&f));
        });
    }
}
