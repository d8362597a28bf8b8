//! `peerstorm bench turn`: the TURN servers side by side.

use crate::children::{Server, start_turn};
use anyhow::{Result, anyhow, bail};
use clap::Args;
use peerstorm_loadgen::proc;
use peerstorm_model::stun::{Class, Message, attr};
use peerstorm_turn::client::UdpClient;
use peerstorm_turn::server::{method, tattr};
use serde::Serialize;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct TurnBench {
    /// TURN clients (each makes one allocation and one channel).
    #[arg(long, default_value_t = 200)]
    pub(crate) clients: usize,
    /// Round trips through the relay (each is two relayed datagrams: to the peer and back).
    #[arg(long, default_value_t = 200_000)]
    pub(crate) round_trips: u64,
    /// Allocations made after the relay runs, one after another, each from a UDP socket of its
    /// own: the allocation rate per server CPU-second is measured from all of them (enough that
    /// /proc's 10 ms CPU ticks do not decide the figure). They are made in waves of `--held`:
    /// each wave is held while the server's CPU time and memory are read, then released
    /// (Refresh, LIFETIME 0; not counted), so the total is not bound by the open-files limit.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) allocations: usize,
    /// Allocations held at once (a wave); the server's memory per idle allocation is measured
    /// from the first wave. Default: all of `--allocations`, or as many as the open-files limit
    /// lets the generator and each server hold (a descriptor per allocation in both; said so).
    #[arg(long)]
    pub(crate) held: Option<usize>,
    /// Datagrams each client keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) window: u64,
    /// Payload bytes per datagram.
    #[arg(long, default_value_t = 160)]
    pub(crate) size: usize,
    /// Which servers to measure: peerstorm, coturn, and each over TLS (peerstorm-tls,
    /// coturn-tls: every client on its own `turns:` connection, a self-signed certificate the
    /// generator trusts).
    #[arg(long, value_delimiter = ',', default_value = "peerstorm,coturn")]
    pub(crate) against: Vec<String>,
    /// Where to write the JSON results (default reports/out/).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Row {
    server: String,
    clients: usize,
    /// Allocations made (`--allocations`, in waves of `held`) and what they cost the server.
    allocations: usize,
    /// Allocations held at once; the memory per idle allocation is from a wave this large.
    held: usize,
    allocations_per_s: f64,
    allocations_per_cpu_s: f64,
    /// The server's resident memory grown per idle allocation (UDP runs; 0 over TLS).
    idle_allocation_bytes: f64,
    relayed_datagrams: u64,
    relay_secs: f64,
    relayed_per_s: f64,
    relayed_per_cpu_s: f64,
    server_cpu_s: f64,
    rtt_p50_ms: f64,
    rtt_p99_ms: f64,
    /// One CreatePermission, then one ChannelBind, per client (request to answer, sequential).
    permission_p50_ms: f64,
    permission_p99_ms: f64,
    channel_bind_p50_ms: f64,
    channel_bind_p99_ms: f64,
    /// Round trips given up after 100 ms (a datagram lost somewhere on loopback).
    lost: u64,
    errors: Vec<String>,
}

fn measure(s: &Server, b: &TurnBench) -> Result<Row> {
    let pid = s.child.id();
    std::thread::sleep(Duration::from_millis(300));
    // Allocations: 401, then Allocate, for each client in turn.
    eprintln!("[{}] {} allocations", s.name, b.clients);
    let mut clients = Vec::with_capacity(b.clients);
    let mut errors = Vec::new();
    for i in 0..b.clients {
        let mut c = UdpClient::connect(s.addr, "test", "test", i as u64 + 1)?;
        let r = c.allocate()?;
        match r.error_code() {
            None => clients
                .push((c, r.msg.address(peerstorm_turn::server::tattr::XOR_RELAYED_ADDRESS).and_then(Result::ok))),
            Some(code) => errors.push(format!("allocate: {code}")),
        }
    }
    let ok = clients.len();
    // Each client gets its own echo peer (one socket's receive buffer would overflow and turn
    // the measurement into one of the generator), bound on channel 0x4000.
    // Permission and channel setup, each request timed to its answer.
    let mut peers = Vec::with_capacity(clients.len());
    let (mut perm_us, mut bind_us) = (Vec::new(), Vec::new());
    for (c, _) in clients.iter_mut() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let t = Instant::now();
        let r = c.create_permission(&[peer.local_addr()?])?;
        perm_us.push(t.elapsed().as_micros() as u32);
        if let Some(code) = r.error_code() {
            errors.push(format!("create permission: {code}"));
        }
        let t = Instant::now();
        let r = c.channel_bind(0x4000, peer.local_addr()?)?;
        bind_us.push(t.elapsed().as_micros() as u32);
        if let Some(code) = r.error_code() {
            errors.push(format!("channel bind: {code}"));
        }
        peers.push(peer);
    }
    eprintln!("[{}] {} round trips through the relay, window {} per client", s.name, b.round_trips, b.window);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let (done, rtts, secs, cpu, lost) = local.block_on(&rt, async {
        // Each peer echoes every datagram back to the relay address it came from.
        let mut echoes = Vec::new();
        for peer in peers {
            peer.set_nonblocking(true)?;
            let peer = tokio::net::UdpSocket::from_std(peer)?;
            echoes.push(tokio::task::spawn_local(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = peer.recv_from(&mut buf).await {
                    let _ = peer.send_to(&buf[..n], from).await;
                }
            }));
        }
        let per = b.round_trips / clients.len().max(1) as u64;
        let before = proc::sample(pid)?;
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (c, _) in clients.into_iter() {
            let ch = 0x4000u16;
            let mut frame = ch.to_be_bytes().to_vec();
            frame.extend_from_slice(&(b.size as u16).to_be_bytes());
            frame.extend(std::iter::repeat_n(0u8, b.size));
            let (w, size) = (b.window, b.size);
            let server = c.server;
            let socket = c.into_socket()?;
            socket.set_nonblocking(true)?;
            let sock = Rc::new(tokio::net::UdpSocket::from_std(socket)?);
            set.spawn_local(async move {
                let mut rtts = Vec::new();
                let mut sent_at = vec![Instant::now(); w as usize];
                let mut buf = vec![0u8; size + 64];
                let (mut sent, mut got, mut lost) = (0u64, 0u64, 0u64);
                while sent < w.min(per) {
                    sent_at[(sent % w) as usize] = Instant::now();
                    let _ = sock.send_to(&frame, server).await;
                    sent += 1;
                }
                while got < per {
                    match tokio::time::timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await {
                        Ok(Ok(_)) => {
                            if got % 64 == 0 {
                                rtts.push(sent_at[(got % w) as usize].elapsed().as_micros() as u32);
                            }
                            got += 1;
                            if sent < per {
                                sent_at[(sent % w) as usize] = Instant::now();
                                let _ = sock.send_to(&frame, server).await;
                                sent += 1;
                            }
                        }
                        // A lost datagram: send another to keep the window full.
                        _ => {
                            lost += 1;
                            if lost > per / 10 + 16 {
                                break;
                            }
                            let _ = sock.send_to(&frame, server).await;
                            sent += 1;
                        }
                    }
                }
                (got, rtts, lost)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.map_err(|e| anyhow!("{e}"))?);
        }
        let secs = start.elapsed().as_secs_f64();
        let after = proc::sample(pid)?;
        for e in echoes {
            e.abort();
        }
        let done: u64 = results.iter().map(|(g, _, _)| g).sum();
        let lost: u64 = results.iter().map(|(_, _, l)| l).sum();
        let rtts: Vec<u32> = results.into_iter().flat_map(|(_, r, _)| r).collect();
        Ok::<_, anyhow::Error>((done, rtts, secs, after.cpu_s - before.cpu_s, lost))
    })?;
    let relayed = done * 2;
    let idle = idle_allocations(s, b, &mut errors)?;
    let ms = |us: u32| f64::from(us) / 1000.0;
    Ok(Row {
        server: s.name.clone(),
        clients: ok,
        allocations: idle.made,
        held: idle.held,
        allocations_per_s: idle.made as f64 / idle.wall_s,
        allocations_per_cpu_s: idle.made as f64 / idle.cpu_s.max(0.01),
        idle_allocation_bytes: idle.bytes_each,
        relayed_datagrams: relayed,
        relay_secs: secs,
        relayed_per_s: relayed as f64 / secs,
        relayed_per_cpu_s: relayed as f64 / cpu.max(0.01),
        server_cpu_s: cpu,
        rtt_p50_ms: ms(peerstorm_loadgen::quantile(&rtts, 0.5)),
        rtt_p99_ms: ms(peerstorm_loadgen::quantile(&rtts, 0.99)),
        permission_p50_ms: ms(peerstorm_loadgen::quantile(&perm_us, 0.5)),
        permission_p99_ms: ms(peerstorm_loadgen::quantile(&perm_us, 0.99)),
        channel_bind_p50_ms: ms(peerstorm_loadgen::quantile(&bind_us, 0.5)),
        channel_bind_p99_ms: ms(peerstorm_loadgen::quantile(&bind_us, 0.99)),
        lost,
        errors,
    })
}

/// Descriptors a process needs besides one per allocation (listen sockets, the relay's
/// clients and their peers, coturn's threads and logs).
const SPARE_FILES: u64 = 700;

/// The allocations to hold at once: `--held`, or all of `--allocations` when the open-files
/// limit lets the generator and the server (which inherits it) each hold a descriptor per
/// allocation, else as many as it lets them (said on stderr). The limit is raised to the hard
/// limit first.
fn allocations_held(b: &TurnBench) -> Result<usize> {
    if b.allocations == 0 {
        bail!("--allocations must be at least 1");
    }
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    let wanted = b.held.unwrap_or(b.allocations).min(b.allocations) as u64;
    if wanted == 0 {
        bail!("--held must be at least 1");
    }
    let need = wanted + b.clients as u64 * 2 + SPARE_FILES;
    if soft < need {
        let _ = rlimit::Resource::NOFILE.set(need.min(hard).max(soft), hard);
    }
    let (soft, _) = rlimit::Resource::NOFILE.get()?;
    if need <= soft {
        return Ok(wanted as usize);
    }
    let fit = soft.saturating_sub(b.clients as u64 * 2 + SPARE_FILES);
    if b.held.is_some() || fit < 1000 {
        bail!(
            "holding {wanted} allocations at once needs {need} open files in the generator and in each server, and the limit is {soft} (hard {hard}): give --held {fit} or fewer, or raise ulimit -n"
        );
    }
    eprintln!(
        "the open-files limit is {soft} (hard {hard}): {} allocations are made in waves of {fit} held at once (each server holds a socket per allocation)",
        b.allocations
    );
    Ok(fit as usize)
}

/// What `--allocations` allocations cost a server.
struct Idle {
    made: usize,
    held: usize,
    /// Spent making them (the waves' allocation phases), and the server's CPU in those phases.
    wall_s: f64,
    cpu_s: f64,
    /// The server's resident memory grown per allocation while the first wave was held.
    bytes_each: f64,
}

/// Makes `b.allocations` allocations one after another, each from a socket of its own, in
/// waves of `b.held`: each wave is held while the server's CPU time and resident memory are
/// read, then released (a Refresh with LIFETIME 0 each, outside the measurement) before the
/// next wave starts.
fn idle_allocations(s: &Server, b: &TurnBench, errors: &mut Vec<String>) -> Result<Idle> {
    let pid = s.child.id();
    let wave = b.held.unwrap_or(b.allocations).clamp(1, b.allocations.max(1));
    eprintln!("[{}] {} allocations, {wave} held at once", s.name, b.allocations);
    let mut idle = Idle { made: 0, held: 0, wall_s: 0.0, cpu_s: 0.0, bytes_each: 0.0 };
    while idle.made < b.allocations {
        let n = wave.min(b.allocations - idle.made);
        let before = proc::sample(pid)?;
        let t0 = Instant::now();
        let mut held = Vec::with_capacity(n);
        let mut refused = false;
        // Each wave from an address of its own (127.0.0.2, .3, ...): the relay's clients' and
        // earlier waves' allocations may still live on in the server (coturn answers a
        // deletion before it is done with it), and a socket on a port one of them had would
        // find its 5-tuple taken (437).
        let wave_ip =
            std::net::Ipv4Addr::new(127, 0, (1 + idle.made / wave / 254) as u8, (2 + idle.made / wave % 254) as u8);
        for i in idle.made..idle.made + n {
            let socket = std::net::UdpSocket::bind((wave_ip, 0)).map_err(|e| {
                anyhow!("allocation {i}: {e} (the generator needs a descriptor per allocation held: --held, ulimit -n)")
            })?;
            let mut c = UdpClient::with_socket(socket, s.addr, "test", "test", 1_000_000 + i as u64)?;
            match c.allocate()?.error_code() {
                None => held.push(c),
                Some(code) => {
                    // The server's limit (quota, ports, descriptors): the figures are from those made.
                    errors.push(format!("allocation {i}: {code}"));
                    refused = true;
                    break;
                }
            }
        }
        idle.wall_s += t0.elapsed().as_secs_f64();
        // The server may still be answering the last requests' retransmissions: let it settle.
        std::thread::sleep(Duration::from_millis(200));
        let after = proc::sample(pid)?;
        idle.cpu_s += after.cpu_s - before.cpu_s;
        if idle.made == 0 {
            let grown = after.rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0;
            idle.bytes_each = grown / held.len().max(1) as f64;
            idle.held = held.len();
        }
        idle.made += held.len();
        if refused || held.is_empty() {
            break;
        }
        if idle.made < b.allocations {
            eprintln!("[{}] {} of {} allocations made; releasing this wave", s.name, idle.made, b.allocations);
        }
        // Dropping a client deletes its allocation (and waits for the answer), so the next wave
        // starts on a server that holds none of these.
        drop(held);
    }
    Ok(idle)
}

/// One TURN request over a stream (TCP or TLS): write it, read until a whole message is in.
async fn stream_call(s: &mut peerstorm_tls::Stream, bytes: &[u8], acc: &mut Vec<u8>) -> Result<Message> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(bytes).await?;
    s.flush().await?;
    loop {
        if let Some(n) = peerstorm_model::stun::stream_frame_len(acc).map_err(|e| anyhow!("{e:?}"))? {
            let frame: Vec<u8> = acc.drain(..n).collect();
            return Message::decode(&frame).map_err(|e| anyhow!("{e:?}"));
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await??;
        if n == 0 {
            return Err(anyhow!("the server closed the connection"));
        }
        acc.extend_from_slice(&buf[..n]);
    }
}

/// A TURN client over TLS: its stream, what it has read ahead, and the encoder that holds its
/// credentials (a `UdpClient` on a socket it never sends from).
struct TlsClient {
    stream: peerstorm_tls::Stream,
    acc: Vec<u8>,
    enc: UdpClient,
}

impl TlsClient {
    async fn connect(addr: std::net::SocketAddr, tls: &peerstorm_tls::Client, seed: u64) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tls.connect(tcp).await?;
        let enc = UdpClient::connect(addr, "test", "test", seed)?;
        Ok(TlsClient { stream, acc: Vec::new(), enc })
    }

    /// A request with credentials: the first one learns realm and nonce from its 401.
    async fn call(&mut self, method: u16, attrs: &[(u16, Vec<u8>)]) -> Result<Message> {
        for _ in 0..2 {
            let tid = self.enc.new_tid();
            let bytes = self.enc.encode(method, tid, attrs);
            let r = stream_call(&mut self.stream, &bytes, &mut self.acc).await?;
            let code = r.attribute(attr::ERROR_CODE).map(|v| u16::from(v[2]) * 100 + u16::from(v[3]));
            if matches!(code, Some(401 | 438)) {
                let text = |t| r.attribute(t).map(|v| String::from_utf8_lossy(v).into_owned());
                self.enc.set_credentials_state(text(attr::REALM), text(attr::NONCE));
                continue;
            }
            return Ok(r);
        }
        Err(anyhow!("no credentials accepted"))
    }
}

/// As [`measure`], with every client on its own TLS connection (`turns:`): allocations (TCP
/// connect and TLS handshake included), then the same closed loop of ChannelData.
fn measure_tls(s: &Server, tls_addr: std::net::SocketAddr, tls: &peerstorm_tls::Client, b: &TurnBench) -> Result<Row> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pid = s.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        eprintln!("[{}] {} allocations over TLS", s.name, b.clients);
        let c0 = proc::sample(pid)?;
        let t0 = Instant::now();
        let mut clients = Vec::with_capacity(b.clients);
        let mut errors = Vec::new();
        for i in 0..b.clients {
            let mut c = TlsClient::connect(tls_addr, tls, i as u64 + 1).await?;
            let r = c.call(method::ALLOCATE, &[(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])]).await?;
            match r.class {
                Class::Success => clients.push(c),
                _ => errors.push(format!("allocate: {:?}", r.attribute(attr::ERROR_CODE).map(|v| v[2..4].to_vec()))),
            }
        }
        let alloc_wall = t0.elapsed().as_secs_f64();
        let c1 = proc::sample(pid)?;
        let ok = clients.len();
        let mut peers = Vec::with_capacity(ok);
        let (mut perm_us, mut bind_us) = (Vec::new(), Vec::new());
        for c in clients.iter_mut() {
            let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
            let mut m = Message::new(method::CREATE_PERMISSION, Class::Request, [0; 12]);
            m.push_address(tattr::XOR_PEER_ADDRESS, peer.local_addr()?);
            let t = Instant::now();
            let r = c.call(method::CREATE_PERMISSION, &m.attributes).await?;
            perm_us.push(t.elapsed().as_micros() as u32);
            if r.class != Class::Success {
                errors.push("create permission".into());
            }
            let mut m = Message::new(method::CHANNEL_BIND, Class::Request, [0; 12]);
            m.push(tattr::CHANNEL_NUMBER, vec![0x40, 0, 0, 0]);
            m.push_address(tattr::XOR_PEER_ADDRESS, peer.local_addr()?);
            let t = Instant::now();
            let r = c.call(method::CHANNEL_BIND, &m.attributes).await?;
            bind_us.push(t.elapsed().as_micros() as u32);
            if r.class != Class::Success {
                errors.push("channel bind".into());
            }
            peers.push(peer);
        }
        eprintln!(
            "[{}] {} round trips through the relay over TLS, window {} per client",
            s.name, b.round_trips, b.window
        );
        let mut echoes = Vec::new();
        for peer in peers {
            peer.set_nonblocking(true)?;
            let peer = tokio::net::UdpSocket::from_std(peer)?;
            echoes.push(tokio::task::spawn_local(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = peer.recv_from(&mut buf).await {
                    let _ = peer.send_to(&buf[..n], from).await;
                }
            }));
        }
        let per = b.round_trips / ok.max(1) as u64;
        // ChannelData on a stream is padded to four bytes (RFC 8656 §12.5).
        let mut frame = 0x4000u16.to_be_bytes().to_vec();
        frame.extend_from_slice(&(b.size as u16).to_be_bytes());
        frame.extend(std::iter::repeat_n(0u8, b.size.div_ceil(4) * 4));
        let frame_len = frame.len();
        let before = proc::sample(pid)?;
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for c in clients {
            let (frame, w) = (frame.clone(), b.window);
            set.spawn_local(async move {
                let mut stream = c.stream;
                let mut rtts = Vec::new();
                let mut sent_at = vec![Instant::now(); w as usize];
                let (mut sent, mut got) = (0u64, 0u64);
                let mut acc = c.acc;
                let mut buf = vec![0u8; 65536];
                while sent < w.min(per) {
                    sent_at[(sent % w) as usize] = Instant::now();
                    if stream.write_all(&frame).await.is_err() {
                        return (got, rtts, per - got);
                    }
                    sent += 1;
                }
                let _ = stream.flush().await;
                while got < per {
                    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await else {
                        break;
                    };
                    if n == 0 {
                        break;
                    }
                    acc.extend_from_slice(&buf[..n]);
                    let mut arrived = 0;
                    while acc.len() >= frame_len {
                        acc.drain(..frame_len);
                        arrived += 1;
                    }
                    for _ in 0..arrived {
                        if got % 64 == 0 {
                            rtts.push(sent_at[(got % w) as usize].elapsed().as_micros() as u32);
                        }
                        got += 1;
                        if sent < per {
                            sent_at[(sent % w) as usize] = Instant::now();
                            let _ = stream.write_all(&frame).await;
                            sent += 1;
                        }
                    }
                    let _ = stream.flush().await;
                }
                (got, rtts, per - got)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.map_err(|e| anyhow!("{e}"))?);
        }
        let secs = start.elapsed().as_secs_f64();
        let after = proc::sample(pid)?;
        for e in echoes {
            e.abort();
        }
        let done: u64 = results.iter().map(|(g, _, _)| g).sum();
        let lost: u64 = results.iter().map(|(_, _, l)| l).sum();
        let rtts: Vec<u32> = results.into_iter().flat_map(|(_, r, _)| r).collect();
        let cpu = after.cpu_s - before.cpu_s;
        let relayed = done * 2;
        let ms = |us: u32| f64::from(us) / 1000.0;
        Ok(Row {
            server: s.name.clone(),
            clients: ok,
            // TLS clients: the allocation figures are those of the relay's clients (one TLS
            // connection each), the idle-allocation memory is measured over UDP only.
            allocations: ok,
            held: ok,
            allocations_per_s: ok as f64 / alloc_wall,
            allocations_per_cpu_s: ok as f64 / (c1.cpu_s - c0.cpu_s).max(0.01),
            idle_allocation_bytes: 0.0,
            relayed_datagrams: relayed,
            relay_secs: secs,
            relayed_per_s: relayed as f64 / secs,
            relayed_per_cpu_s: relayed as f64 / cpu.max(0.01),
            server_cpu_s: cpu,
            rtt_p50_ms: ms(peerstorm_loadgen::quantile(&rtts, 0.5)),
            rtt_p99_ms: ms(peerstorm_loadgen::quantile(&rtts, 0.99)),
            permission_p50_ms: ms(peerstorm_loadgen::quantile(&perm_us, 0.5)),
            permission_p99_ms: ms(peerstorm_loadgen::quantile(&perm_us, 0.99)),
            channel_bind_p50_ms: ms(peerstorm_loadgen::quantile(&bind_us, 0.5)),
            channel_bind_p99_ms: ms(peerstorm_loadgen::quantile(&bind_us, 0.99)),
            lost,
            errors,
        })
    })
}

pub fn run(b: &TurnBench) -> Result<u8> {
    let held = allocations_held(b)?;
    let b = &TurnBench { held: Some(held), ..b.clone() };
    let mut rows = Vec::new();
    // One certificate for the TLS runs, trusted by the generator and nothing else.
    let dir = std::env::temp_dir().join(format!("peerstorm-bench-turn-tls-{}", std::process::id()));
    let (cert, key) = peerstorm_tls::self_signed(&dir, &["127.0.0.1", "localhost"])?;
    let tls =
        peerstorm_tls::Client::new(&peerstorm_tls::Trust { ca: Some(cert.clone()), insecure: false }, "127.0.0.1")?;
    let (cert, key) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    for which in &b.against {
        match which.strip_suffix("-tls") {
            None => {
                let s = start_turn(which)?;
                rows.push(measure(&s, b)?);
            }
            Some(server) => {
                let (s, addr) = crate::children::start_turn_tls(server, &cert, &key)?;
                rows.push(measure_tls(&s, addr, &tls, b)?);
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "\nTURN side by side: {} clients, {} round trips of {} B through the relay (2 relayed datagrams each), window {}",
        b.clients, b.round_trips, b.size, b.window
    );
    println!("| metric | {} |", rows.iter().map(|r| r.server.as_str()).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(rows.len()));
    let line = |name: &str, f: &dyn Fn(&Row) -> String| {
        println!("| {name} | {} |", rows.iter().map(f).collect::<Vec<_>>().join(" | "))
    };
    line("allocations made (one after another)", &|r| r.allocations.to_string());
    line("held at once (a wave; memory measured from the first)", &|r| r.held.to_string());
    line("allocations per server CPU-second", &|r| format!("{:.0}", r.allocations_per_cpu_s));
    line("allocations per second (sequential client)", &|r| format!("{:.0}", r.allocations_per_s));
    line("server memory per idle allocation (bytes)", &|r| format!("{:.0}", r.idle_allocation_bytes));
    line("relayed datagrams per server CPU-second", &|r| format!("{:.0}", r.relayed_per_cpu_s));
    line("relayed datagrams per second", &|r| format!("{:.0}", r.relayed_per_s));
    line("server CPU during relay (s)", &|r| format!("{:.2}", r.server_cpu_s));
    line("CreatePermission p50 / p99 (ms)", &|r| format!("{:.3} / {:.3}", r.permission_p50_ms, r.permission_p99_ms));
    line("ChannelBind p50 / p99 (ms)", &|r| format!("{:.3} / {:.3}", r.channel_bind_p50_ms, r.channel_bind_p99_ms));
    line("round trip p50 / p99 (ms)", &|r| format!("{:.2} / {:.2}", r.rtt_p50_ms, r.rtt_p99_ms));
    line("round trips lost (re-sent after 100 ms)", &|r| r.lost.to_string());
    line("errors", &|r| if r.errors.is_empty() { "none".into() } else { r.errors.join(", ") });
    for (us, co) in [("peerstorm", "coturn"), ("peerstorm (tls)", "coturn (tls)")] {
        if let (Some(us), Some(co)) = (rows.iter().find(|r| r.server == us), rows.iter().find(|r| r.server == co)) {
            println!(
                "\nratios {} / {}: relay efficiency {:.2} (goal >= 1), allocation efficiency {:.2}",
                us.server,
                co.server,
                us.relayed_per_cpu_s / co.relayed_per_cpu_s,
                us.allocations_per_cpu_s / co.allocations_per_cpu_s
            );
        }
    }
    crate::results::write_json(b.out.as_ref(), "bench-turn", &rows)?;
    Ok(crate::EXIT_OK)
}
