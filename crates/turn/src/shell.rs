//! The tokio driver: UDP on every listen address, TCP on the primary (and TLS over TCP on its own
//! address when given, RFC 8656 §3.3), one UDP socket per relay. One thread (a `LocalSet`), the
//! core in a `RefCell`. UDP is read in batches into one shared set of buffers (`recvmmsg`), and
//! what goes to UDP clients is queued per listen socket and written in batches (`sendmmsg`):
//! by the `flusher` task once the tasks woken with it have run (relayed data), or at the end of
//! `dispatch` (the control plane's answers, which so never overtake relayed data queued
//! before them).

use crate::batch::{BATCH, RecvBatch, SendBatch};
use crate::server::{FiveTuple, Output, RelayPorts, Transport, TurnConfig, TurnServer};
use peerstorm_tls::Stream;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::{TcpListener, UdpSocket};

/// TURN over TLS: where, and with which certificate.
#[derive(Debug, Clone)]
pub struct Tls {
    pub listen: SocketAddr,
    pub config: Arc<peerstorm_tls::rustls::ServerConfig>,
}

struct Relay {
    socket: Rc<UdpSocket>,
    task: tokio::task::JoinHandle<()>,
    /// Relayed data for peers, written once the batch it came in is read.
    tx: RefCell<SendBatch>,
}

/// A TCP client: its stream and what could not be written yet. Output is appended whole and
/// written in order, so the client never gets part of a frame followed by another frame.
struct TcpConn {
    stream: Stream,
    unsent: RefCell<Vec<u8>>,
    wake: tokio::sync::Notify,
    /// Too much unsent output, or a write failed: the connection is being closed.
    broken: std::cell::Cell<bool>,
}

impl TcpConn {
    /// Queues `data` (one or more whole frames) behind what is already waiting.
    fn send(&self, data: &[u8], max_unsent: usize) {
        if self.broken.get() {
            return;
        }
        let mut unsent = self.unsent.borrow_mut();
        let mut rest = data;
        if unsent.is_empty() {
            match self.stream.try_write(data) {
                Ok(n) => rest = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return self.broken.set(true),
            }
        }
        if rest.is_empty() {
            if self.stream.wants_write() {
                // TLS records still queued: the writer sends them as the client reads.
                self.wake.notify_one();
            }
            return;
        }
        if unsent.len() + rest.len() > max_unsent {
            // A client that does not read: close rather than drop part of a frame.
            self.broken.set(true);
        } else {
            unsent.extend_from_slice(rest);
        }
        self.wake.notify_one();
    }
}

/// Writes a connection's unsent output as the client takes it.
async fn tcp_writer(conn: Rc<TcpConn>) {
    loop {
        conn.wake.notified().await;
        loop {
            if conn.broken.get() {
                let _ = socket2::SockRef::from(conn.stream.tcp()).shutdown(std::net::Shutdown::Both);
                return;
            }
            if conn.unsent.borrow().is_empty() {
                if conn.stream.wants_write() && conn.stream.flush().await.is_err() {
                    conn.broken.set(true);
                    continue;
                }
                break;
            }
            if conn.stream.writable().await.is_err() {
                conn.broken.set(true);
                continue;
            }
            let r = conn.stream.try_write(&conn.unsent.borrow());
            match r {
                Ok(n) => {
                    conn.unsent.borrow_mut().drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => conn.broken.set(true),
            }
        }
    }
}

struct Shared {
    core: RefCell<TurnServer>,
    listen: FxHashMap<SocketAddr, Rc<UdpSocket>>,
    relays: RefCell<FxHashMap<SocketAddr, Relay>>,
    tcp: RefCell<FxHashMap<FiveTuple, Rc<TcpConn>>>,
    /// Where every UDP socket is read into (one thread: one read at a time).
    rx: RefCell<RecvBatch>,
    /// What waits to go to UDP clients, per listen address.
    tx: RefCell<FxHashMap<SocketAddr, SendBatch>>,
    /// Wakes the `flusher`.
    flush: tokio::sync::Notify,
    /// Where relayed frames for clients are built (reused, so relaying allocates nothing).
    scratch: RefCell<Vec<u8>>,
}

/// Binds relay addresses for the core; the sockets are started after the call returns.
struct Binder<'a>(&'a mut Vec<(SocketAddr, std::net::UdpSocket)>);

impl RelayPorts for Binder<'_> {
    fn open(&mut self, addr: SocketAddr) -> bool {
        match std::net::UdpSocket::bind(addr) {
            Ok(s) => {
                self.0.push((addr, s));
                true
            }
            Err(_) => false,
        }
    }
}

/// Large socket buffers: a burst of datagrams must wait in the kernel, not be dropped, while the
/// one thread is busy (the limit is `net.core.rmem_max`; asking costs nothing until used).
fn big_buffers(s: &UdpSocket, bytes: usize) {
    let r = socket2::SockRef::from(s);
    let _ = r.set_recv_buffer_size(bytes);
    let _ = r.set_send_buffer_size(bytes);
}

fn random_secret() -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut b);
    }
    b
}

/// Serves until `shutdown` resolves.
pub async fn run(cfg: TurnConfig, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    run_ready(cfg, |_| {}, shutdown).await
}

/// As [`run`], calling `ready` with the UDP listen addresses once every socket is bound.
pub async fn run_ready(
    cfg: TurnConfig,
    ready: impl FnOnce(&[SocketAddr]),
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_with(cfg, None, ready, shutdown).await
}

/// As [`run_ready`], also serving TURN over TLS when `tls` is given.
pub async fn run_with(
    cfg: TurnConfig,
    tls: Option<Tls>,
    ready: impl FnOnce(&[SocketAddr]),
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tokio::task::LocalSet::new().run_until(serve(cfg, tls, ready, shutdown)).await
}

/// Accepts on the TLS listener, or waits forever when there is none.
async fn accept_tls(l: Option<&TcpListener>) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve(
    cfg: TurnConfig,
    tls: Option<Tls>,
    ready: impl FnOnce(&[SocketAddr]),
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut cfg = cfg;
    // The core never reads the wall clock: REST credentials expire against the Unix time given
    // for its start.
    cfg.unix_time_at_start =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let core = TurnServer::new(cfg, Instant::now(), random_secret());
    let mut listen = FxHashMap::default();
    for addr in core.listen_addresses() {
        let sock = UdpSocket::bind(addr).await?;
        big_buffers(&sock, 4 << 20);
        listen.insert(addr, Rc::new(sock));
    }
    let tcp = TcpListener::bind(core.config().primary).await?;
    let tls_listener = match &tls {
        Some(t) => Some(TcpListener::bind(t.listen).await?),
        None => None,
    };
    let listen_addrs: Vec<SocketAddr> = listen.keys().copied().collect();
    let shared = Rc::new(Shared {
        core: RefCell::new(core),
        listen,
        relays: RefCell::default(),
        tcp: RefCell::default(),
        // A UDP datagram is at most 64 KiB; 32 of them: 2 MiB, once per server.
        rx: RefCell::new(RecvBatch::new(BATCH, 65536)),
        tx: RefCell::new(listen_addrs.iter().map(|a| (*a, SendBatch::default())).collect()),
        flush: tokio::sync::Notify::new(),
        scratch: RefCell::new(Vec::with_capacity(65536)),
    });
    for (addr, sock) in &shared.listen {
        tokio::task::spawn_local(udp_listener(shared.clone(), *addr, sock.clone()));
    }
    tokio::task::spawn_local(timers(shared.clone()));
    tokio::task::spawn_local(flusher(shared.clone()));
    ready(&shared.core.borrow().listen_addresses());
    // A spare descriptor: when the process runs out, it is closed to accept the waiting
    // connection and close it at once, so that client learns now instead of waiting in the
    // backlog for an answer that never comes.
    let mut spare = std::fs::File::open("/dev/null").ok();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = tcp.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let tuple = FiveTuple { client: peer, server: shared.core.borrow().config().primary, transport: Transport::Tcp };
                    tokio::task::spawn_local(tcp_client(shared.clone(), tuple, Stream::plain(stream)));
                }
                // Out of descriptors (EMFILE, ENFILE): refuse the one waiting, without spinning;
                // UDP clients and connected TCP clients go on being served meanwhile.
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                    drop(spare.take());
                    let wait = std::time::Duration::from_millis(100);
                    if let Ok(Ok((stream, _))) = tokio::time::timeout(wait, tcp.accept()).await {
                        drop(stream);
                    }
                    spare = std::fs::File::open("/dev/null").ok();
                    if spare.is_none() {
                        // Still none to spare (another task took it): do not spin.
                        tokio::time::sleep(wait).await;
                    }
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            },
            r = accept_tls(tls_listener.as_ref()) => match (r, &tls) {
                (Ok((stream, peer)), Some(t)) => {
                    let _ = stream.set_nodelay(true);
                    // The handshake runs as the connection is read; the core sees TURN over TCP
                    // (the transport the relay allocation is for) on the TLS address.
                    if let Ok(stream) = Stream::server(stream, t.config.clone()) {
                        let tuple = FiveTuple { client: peer, server: t.listen, transport: Transport::Tcp };
                        tokio::task::spawn_local(tcp_client(shared.clone(), tuple, stream));
                    }
                }
                // Out of descriptors or a failed accept: as for plain TCP, without spinning.
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            },
        }
    }
    for (_, r) in shared.relays.borrow_mut().drain() {
        r.task.abort();
    }
    Ok(())
}

async fn timers(shared: Rc<Shared>) {
    loop {
        let at = shared.core.borrow().poll_timeout();
        tokio::time::sleep_until(at.into()).await;
        shared.core.borrow_mut().handle_timeout(Instant::now());
        dispatch(&shared);
    }
}

fn client_input(shared: &Rc<Shared>, tuple: FiveTuple, data: &[u8]) {
    // `data` may be the shared read buffer: nothing here reads from a socket.
    let mut opened = Vec::new();
    shared.core.borrow_mut().handle_client(Instant::now(), tuple, data, &mut Binder(&mut opened));
    for (addr, s) in opened {
        if s.set_nonblocking(true).is_err() {
            continue;
        }
        let Ok(sock) = UdpSocket::from_std(s) else { continue };
        big_buffers(&sock, 1 << 20);
        let sock = Rc::new(sock);
        let task = tokio::task::spawn_local(relay_reader(shared.clone(), addr, sock.clone()));
        shared.relays.borrow_mut().insert(addr, Relay { socket: sock, task, tx: RefCell::default() });
    }
    dispatch(shared);
}

/// Writes what waits for UDP clients, after the tasks woken with the one that queued it have
/// run: one `sendmmsg` per listen socket for a burst of relayed datagrams.
async fn flusher(shared: Rc<Shared>) {
    loop {
        shared.flush.notified().await;
        flush(&shared);
    }
}

fn flush(shared: &Shared) {
    for (addr, batch) in shared.tx.borrow_mut().iter_mut() {
        if !batch.is_empty()
            && let Some(s) = shared.listen.get(addr)
        {
            batch.flush(s);
        }
    }
}

/// Writes what the listener queued for the relays in `touched`.
fn flush_relays(shared: &Shared, touched: &mut Vec<SocketAddr>) {
    let relays = shared.relays.borrow();
    for a in touched.drain(..) {
        if let Some(r) = relays.get(&a) {
            r.tx.borrow_mut().flush(&r.socket);
        }
    }
}

/// Queues `data` for a UDP client, from listen address `from`.
fn queue_to_client(shared: &Shared, from: SocketAddr, client: SocketAddr, data: &[u8]) {
    if let Some(b) = shared.tx.borrow_mut().get_mut(&from) {
        b.push(client, data);
    }
}

async fn udp_listener(shared: Rc<Shared>, local: SocketAddr, sock: Rc<UdpSocket>) {
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        let mut touched: Vec<SocketAddr> = Vec::with_capacity(BATCH);
        loop {
            let mut rx = shared.rx.borrow_mut();
            let Ok(n) = rx.recv(&sock) else { break };
            let now = Instant::now();
            for i in 0..n {
                let Some((data, from)) = rx.get(i) else { continue };
                let tuple = FiveTuple { client: from, server: local, transport: Transport::Udp };
                if data.len() >= 4 && (0x40..0x80).contains(&data[0]) {
                    // ChannelData, the hot path: from the read buffer to the relay's queue,
                    // written once the batch is read (a socket per allocation: a relay's
                    // datagrams to one peer go as one GSO send).
                    let route = shared.core.borrow_mut().route_channel_data(now, tuple, data);
                    if let Some((relay, peer, payload)) = route
                        && let Some(r) = shared.relays.borrow().get(&relay)
                    {
                        r.tx.borrow_mut().push(peer, payload);
                        if !touched.contains(&relay) {
                            touched.push(relay);
                        }
                    }
                    continue;
                }
                // The control plane answers at once: what was queued before it goes first.
                flush_relays(&shared, &mut touched);
                client_input(&shared, tuple, data);
            }
            flush_relays(&shared, &mut touched);
        }
    }
}

async fn relay_reader(shared: Rc<Shared>, relay: SocketAddr, sock: Rc<UdpSocket>) {
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        loop {
            let mut rx = shared.rx.borrow_mut();
            let Ok(n) = rx.recv(&sock) else { break };
            let now = Instant::now();
            let mut queued = false;
            for i in 0..n {
                let Some((data, peer)) = rx.get(i) else { continue };
                let mut out = shared.scratch.borrow_mut();
                let route = shared.core.borrow_mut().route_peer_data(now, relay, peer, data, &mut out);
                match route {
                    Some((tuple, from)) if tuple.transport == Transport::Udp => {
                        queue_to_client(&shared, from, tuple.client, &out);
                        queued = true;
                    }
                    Some((tuple, _)) => {
                        let max = shared.core.borrow().config().tcp_max_unsent;
                        if let Some(c) = shared.tcp.borrow().get(&tuple) {
                            c.send(&out, max);
                        }
                    }
                    None => {}
                }
            }
            if queued {
                shared.flush.notify_one();
            }
        }
    }
}

async fn tcp_client(shared: Rc<Shared>, tuple: FiveTuple, stream: Stream) {
    let conn = Rc::new(TcpConn {
        stream,
        unsent: RefCell::default(),
        wake: tokio::sync::Notify::new(),
        broken: std::cell::Cell::new(false),
    });
    shared.tcp.borrow_mut().insert(tuple, conn.clone());
    let writer = tokio::task::spawn_local(tcp_writer(conn.clone()));
    let (idle, frame) = {
        let core = shared.core.borrow();
        (core.config().tcp_idle_timeout, core.config().tcp_frame_timeout)
    };
    let mut acc: Vec<u8> = Vec::new();
    loop {
        // A frame left unfinished gets `frame`; a connection with nothing to do gets `idle`; one
        // with an allocation waits as long as the allocation lasts.
        let wait = if !acc.is_empty() {
            Some(frame)
        } else if shared.core.borrow().has_allocation(&tuple) {
            None
        } else {
            Some(idle)
        };
        let readable = match wait {
            // The deadline passed with nothing more from the client.
            Some(d) => match tokio::time::timeout(d, conn.stream.readable()).await {
                Ok(r) => r,
                Err(_) => break,
            },
            None => conn.stream.readable().await,
        };
        if readable.is_err() || conn.broken.get() {
            break;
        }
        acc.reserve(4096);
        match conn.stream.try_read_buf(&mut acc) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        // A stream that is not TURN cannot be resynchronised: the connection ends.
        let mut broken = false;
        loop {
            match peerstorm_model::stun::stream_frame_len(&acc) {
                Ok(Some(n)) => {
                    let frame: Vec<u8> = acc.drain(..n).collect();
                    client_input(&shared, tuple, &frame);
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken || acc.len() > 1 << 17 {
            break;
        }
    }
    shared.tcp.borrow_mut().remove(&tuple);
    writer.abort();
    let _ = socket2::SockRef::from(conn.stream.tcp()).shutdown(std::net::Shutdown::Both);
    shared.core.borrow_mut().handle_client_closed(tuple);
    dispatch(&shared);
}

fn dispatch(shared: &Shared) {
    loop {
        let Some(o) = shared.core.borrow_mut().poll_output() else { break };
        match o {
            Output::ToClient { tuple, from, data } => match tuple.transport {
                Transport::Udp => queue_to_client(shared, from, tuple.client, &data),
                Transport::Tcp => {
                    let max = shared.core.borrow().config().tcp_max_unsent;
                    if let Some(c) = shared.tcp.borrow().get(&tuple) {
                        c.send(&data, max);
                    }
                }
            },
            Output::ToPeer { relay, peer, data } => {
                if let Some(r) = shared.relays.borrow().get(&relay) {
                    let mut tx = r.tx.borrow_mut();
                    tx.push(peer, &data);
                    tx.flush(&r.socket);
                }
            }
            Output::RelayClosed { relay } => {
                if let Some(r) = shared.relays.borrow_mut().remove(&relay) {
                    r.task.abort();
                }
            }
        }
    }
    flush(shared);
}

/// A server on its own thread, for tests and tools.
#[derive(Debug)]
pub struct Handle {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Handle {
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("turn thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Serves `cfg` on a new thread. A primary port of 0 is replaced by a free one first.
pub fn spawn(cfg: TurnConfig) -> io::Result<Handle> {
    // Port 0: a free port is picked and then bound by the server; another process can take it
    // in between, so a failed start is retried on a new port.
    let tries = if cfg.primary.port() == 0 { 5 } else { 1 };
    let mut last = io::Error::other("not started");
    for _ in 0..tries {
        match spawn_once(cfg.clone()) {
            Ok(h) => return Ok(h),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn spawn_once(mut cfg: TurnConfig) -> io::Result<Handle> {
    if cfg.primary.port() == 0 {
        let probe = std::net::UdpSocket::bind(cfg.primary)?;
        cfg.primary = probe.local_addr()?;
    }
    let addr = cfg.primary;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new().name("peerstorm-turn".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let ready = move |_: &[SocketAddr]| {
                let _ = ready_tx.send(());
            };
            run_ready(cfg, ready, async {
                let _ = rx.await;
            })
            .await
        })
    })?;
    // Bound, or the thread failed: then its error is this call's.
    if ready_rx.recv().is_err() {
        return Err(match thread.join() {
            Ok(Err(e)) => e,
            Ok(Ok(())) => io::Error::other("the TURN server stopped before it was ready"),
            Err(_) => io::Error::other("the TURN server thread panicked"),
        });
    }
    Ok(Handle { addr, stop: Some(tx), thread: Some(thread) })
}
