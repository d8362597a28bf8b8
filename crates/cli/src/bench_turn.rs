//! `peerstorm bench turn`: the TURN servers side by side.

use crate::children::{Server, start_turn};
use anyhow::{Result, anyhow};
use clap::Args;
use peerstorm_loadgen::proc;
use peerstorm_turn::client::UdpClient;
use serde::Serialize;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct TurnBench {
    /// TURN clients (each makes one allocation and one channel).
    #[arg(long, default_value_t = 200)]
    pub(crate) clients: usize,
    /// Round trips through the relay (each is two relayed datagrams: to the peer and back).
    #[arg(long, default_value_t = 200_000)]
    pub(crate) round_trips: u64,
    /// Datagrams each client keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) window: u64,
    /// Payload bytes per datagram.
    #[arg(long, default_value_t = 160)]
    pub(crate) size: usize,
    /// Which servers to measure (peerstorm, coturn).
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
    allocations_per_s: f64,
    allocations_per_cpu_s: f64,
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
    let c0 = proc::sample(pid)?;
    let t0 = Instant::now();
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
    let alloc_wall = t0.elapsed().as_secs_f64();
    let c1 = proc::sample(pid)?;
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
    let ms = |us: u32| f64::from(us) / 1000.0;
    Ok(Row {
        server: s.name.clone(),
        clients: ok,
        allocations_per_s: ok as f64 / alloc_wall,
        allocations_per_cpu_s: ok as f64 / (c1.cpu_s - c0.cpu_s).max(0.01),
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

pub fn run(b: &TurnBench) -> Result<u8> {
    let mut rows = Vec::new();
    for which in &b.against {
        let s = start_turn(which)?;
        rows.push(measure(&s, b)?);
    }
    println!(
        "\nTURN side by side: {} clients, {} round trips of {} B through the relay (2 relayed datagrams each), window {}",
        b.clients, b.round_trips, b.size, b.window
    );
    println!("| metric | {} |", rows.iter().map(|r| r.server.as_str()).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(rows.len()));
    let line = |name: &str, f: &dyn Fn(&Row) -> String| {
        println!("| {name} | {} |", rows.iter().map(f).collect::<Vec<_>>().join(" | "))
    };
    line("allocations per server CPU-second", &|r| format!("{:.0}", r.allocations_per_cpu_s));
    line("allocations per second (sequential client)", &|r| format!("{:.0}", r.allocations_per_s));
    line("relayed datagrams per server CPU-second", &|r| format!("{:.0}", r.relayed_per_cpu_s));
    line("relayed datagrams per second", &|r| format!("{:.0}", r.relayed_per_s));
    line("server CPU during relay (s)", &|r| format!("{:.2}", r.server_cpu_s));
    line("CreatePermission p50 / p99 (ms)", &|r| format!("{:.3} / {:.3}", r.permission_p50_ms, r.permission_p99_ms));
    line("ChannelBind p50 / p99 (ms)", &|r| format!("{:.3} / {:.3}", r.channel_bind_p50_ms, r.channel_bind_p99_ms));
    line("round trip p50 / p99 (ms)", &|r| format!("{:.2} / {:.2}", r.rtt_p50_ms, r.rtt_p99_ms));
    line("round trips lost (re-sent after 100 ms)", &|r| r.lost.to_string());
    line("errors", &|r| if r.errors.is_empty() { "none".into() } else { r.errors.join(", ") });
    if let (Some(us), Some(co)) =
        (rows.iter().find(|r| r.server == "peerstorm"), rows.iter().find(|r| r.server == "coturn"))
    {
        println!(
            "\nratios peerstorm / coturn: relay efficiency {:.2} (goal >= 1), allocation efficiency {:.2}",
            us.relayed_per_cpu_s / co.relayed_per_cpu_s,
            us.allocations_per_cpu_s / co.allocations_per_cpu_s
        );
    }
    crate::results::write_json(b.out.as_ref(), "bench-turn", &rows)?;
    Ok(crate::EXIT_OK)
}
