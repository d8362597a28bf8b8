//! `peerstorm bench broker`: peerstorm's broker and `peer@1.0.2` side by side, driven by the same
//! generator in the same run, and a capacity run of many concurrent peers over several
//! generator processes.

use crate::bench_turn::TurnBench;
use crate::children::{Server, start_peerstorm, start_reference};
use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use peerstorm_loadgen::{Client, JoinError, Target, offer_frame, proc, quantile, relay};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Broker efficiency: CPU per relayed message, RSS per idle peer, connect latency, for
    /// peerstorm's broker and peer@1.0.2 in the same run; or, with --capacity, how many
    /// concurrent peers with heartbeats one broker process holds.
    Broker(BrokerBench),
    /// TURN efficiency: allocations and relayed datagrams per server CPU-second, for
    /// peerstorm's TURN server and coturn in the same run, driven by the same Rust clients.
    Turn(TurnBench),
    /// Lab forwarding: packets per second (per wall second and per CPU-second) through two NATs
    /// with N hosts, the forwarder's scheduling error and the pings' RTT and loss, per offered
    /// rate. Needs root.
    #[command(after_help = "Example:\n  \
sudo peerstorm bench lab --hosts 4 --rates 1000,4000,8000,16000 --seconds 5")]
    Lab(crate::bench_lab::LabBench),
    /// (internal) One generator process of a capacity run.
    #[command(hide = true)]
    BrokerClients(ClientsArgs),
}

#[derive(Debug, Args)]
pub struct BrokerBench {
    /// Clients connected to each broker (they form pairs for the relay).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// OFFER-sized (~700 B) frames relayed in the closed loop.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Frames each pair keeps in flight.
    #[arg(long, default_value_t = 32)]
    window: u64,
    /// Seconds the clients stay idle (heartbeating every 5 s) before memory is read.
    #[arg(long, default_value_t = 6)]
    hold_secs: u64,
    /// Which brokers to measure: peerstorm, reference (peer@1.0.2), and each over TLS
    /// (peerstorm-tls, reference-tls: `--sslkey/--sslcert` with a self-signed certificate the
    /// generator trusts) to see what wss:// costs per message and per idle peer.
    #[arg(long, value_delimiter = ',', default_value = "peerstorm,reference")]
    against: Vec<String>,
    /// Capacity run instead: this many concurrent peers in one peerstorm broker.
    #[arg(long)]
    capacity: Option<usize>,
    /// Capacity run: generator processes (each uses its own 127.0.0.x source address).
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// Where to write the JSON results (default reports/out/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ClientsArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    count: usize,
    #[arg(long)]
    source: Option<IpAddr>,
    #[arg(long)]
    prefix: String,
}

#[derive(Debug, Serialize)]
struct Row {
    broker: String,
    clients: usize,
    idle_rss_kib: u64,
    rss_with_clients_kib: u64,
    rss_per_peer_kib: f64,
    connect_p50_ms: f64,
    connect_p99_ms: f64,
    connections_lost_while_idle: usize,
    relayed: u64,
    relay_secs: f64,
    relay_msgs_per_s: f64,
    cpu_secs: f64,
    cpu_us_per_msg: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
}

pub fn run(cmd: Bench) -> Result<u8> {
    match cmd {
        Bench::Turn(t) => crate::bench_turn::run(&t),
        Bench::Lab(l) => crate::bench_lab::run(&l),
        Bench::Broker(b) if b.capacity.is_some() => capacity(&b),
        Bench::Broker(b) => side_by_side(&b),
        Bench::BrokerClients(c) => clients_process(&c),
    }
}
fn target(addr: SocketAddr) -> Target {
    Target::new(addr, "/peerjs", "peerjs")
}

/// Joins `n` clients, `parallel` at a time; returns them and their connect-to-OPEN times (µs).
async fn join_many(
    t: &Target,
    prefix: &str,
    n: usize,
    source: Option<IpAddr>,
    parallel: usize,
) -> Result<(Vec<Client>, Vec<u32>)> {
    let mut clients = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    while clients.len() < n {
        while set.len() < parallel && next < n {
            let (t, id) = (t.clone(), format!("{prefix}{next:06}"));
            set.spawn(async move { Client::join(&t, &id, "tok", source, Duration::from_secs(30)).await });
            next += 1;
        }
        match set.join_next().await {
            Some(r) => {
                let (c, d) = r?.map_err(|e: JoinError| anyhow!("client {}: {e}", clients.len()))?;
                lat.push(d.as_micros() as u32);
                clients.push(c);
            }
            None => break,
        }
    }
    clients.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((clients, lat))
}

fn measure(s: &Server, b: &BrokerBench, tls: Option<peerstorm_tls::Client>) -> Result<Row> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let pid = s.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle = proc::sample(pid)?;
    let mut t = target(s.addr);
    t.tls = tls;
    rt.block_on(async {
        eprintln!("[{}] connecting {} clients", s.name, b.clients);
        let (mut clients, connect) = join_many(&t, "p", b.clients, None, 64).await?;
        eprintln!("[{}] holding them for {} s with heartbeats", s.name, b.hold_secs);
        let lost = relay::hold(&mut clients, Duration::from_secs(b.hold_secs), Duration::from_secs(5)).await;
        let rest = proc::sample(pid)?;
        let mut it = clients.into_iter();
        let mut pairs = Vec::new();
        while let (Some(a), Some(c)) = (it.next(), it.next()) {
            pairs.push((a, c));
        }
        eprintln!("[{}] relaying {} messages over {} pairs, window {}", s.name, b.messages, pairs.len(), b.window);
        let before = proc::sample(pid)?;
        let (r, _pairs) = relay::relay_pairs(pairs, b.messages, b.window, offer_frame).await?;
        let after = proc::sample(pid)?;
        let cpu = after.cpu_s - before.cpu_s;
        let ms = |us: u32| f64::from(us) / 1000.0;
        Ok(Row {
            broker: s.name.clone(),
            clients: b.clients,
            idle_rss_kib: idle.rss_kib,
            rss_with_clients_kib: rest.rss_kib,
            rss_per_peer_kib: (rest.rss_kib as f64 - idle.rss_kib as f64) / b.clients as f64,
            connect_p50_ms: ms(quantile(&connect, 0.5)),
            connect_p99_ms: ms(quantile(&connect, 0.99)),
            connections_lost_while_idle: lost,
            relayed: r.messages,
            relay_secs: r.elapsed.as_secs_f64(),
            relay_msgs_per_s: r.messages as f64 / r.elapsed.as_secs_f64(),
            cpu_secs: cpu,
            cpu_us_per_msg: cpu * 1e6 / r.messages as f64,
            latency_p50_ms: ms(quantile(&r.latency_us, 0.5)),
            latency_p99_ms: ms(quantile(&r.latency_us, 0.99)),
        })
    })
}

fn side_by_side(b: &BrokerBench) -> Result<u8> {
    peerstorm_broker::server::raise_fd_limit()?;
    let mut rows = Vec::new();
    // One certificate for the TLS runs, trusted by the generator and nothing else.
    let dir = std::env::temp_dir().join(format!("peerstorm-bench-tls-{}", std::process::id()));
    let (cert, key) = peerstorm_tls::self_signed(&dir, &["127.0.0.1", "localhost"])?;
    let trust = peerstorm_tls::Trust { ca: Some(cert.clone()), insecure: false };
    let (cert, key) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let limit = (b.clients + 100).to_string();
    for which in &b.against {
        let tls = which.ends_with("-tls").then(|| peerstorm_tls::Client::new(&trust, "127.0.0.1")).transpose()?;
        let mut server = match which.as_str() {
            "peerstorm" => start_peerstorm(b.clients + 100)?,
            "reference" | "peer" => start_reference(b.clients + 100)?,
            "peerstorm-tls" => {
                crate::children::serve_broker(&["--concurrent-limit", &limit, "--sslkey", &key, "--sslcert", &cert])?
            }
            "reference-tls" => {
                crate::children::start_reference_with(b.clients + 100, &["--sslkey", &key, "--sslcert", &cert])?
            }
            other => bail!("unknown broker {other:?} (use peerstorm, reference, peerstorm-tls, reference-tls)"),
        };
        if tls.is_some() {
            server.name.push_str(" (wss)");
        }
        rows.push(measure(&server, b, tls)?);
    }
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "\nbroker side by side: {} clients, {} OFFER frames (~700 B), window {} per pair, same generator",
        b.clients, b.messages, b.window
    );
    println!("| metric | {} |", rows.iter().map(|r| r.broker.as_str()).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(rows.len()));
    let line = |name: &str, f: &dyn Fn(&Row) -> String| {
        println!("| {name} | {} |", rows.iter().map(f).collect::<Vec<_>>().join(" | "))
    };
    line("broker CPU per relayed message (µs)", &|r| format!("{:.2}", r.cpu_us_per_msg));
    line("relay throughput (msg/s)", &|r| format!("{:.0}", r.relay_msgs_per_s));
    line("relay latency p50 / p99 (ms)", &|r| format!("{:.2} / {:.2}", r.latency_p50_ms, r.latency_p99_ms));
    line("RSS idle, no clients (MiB)", &|r| format!("{:.1}", r.idle_rss_kib as f64 / 1024.0));
    line("RSS with clients at rest (MiB)", &|r| format!("{:.1}", r.rss_with_clients_kib as f64 / 1024.0));
    line("RSS per idle connected peer (KiB)", &|r| format!("{:.2}", r.rss_per_peer_kib));
    line("connect to OPEN p50 / p99 (ms)", &|r| format!("{:.2} / {:.2}", r.connect_p50_ms, r.connect_p99_ms));
    line("connections lost while idle", &|r| r.connections_lost_while_idle.to_string());
    if let (Some(us), Some(re)) =
        (rows.iter().find(|r| r.broker == "peerstorm"), rows.iter().find(|r| r.broker == "peer@1.0.2"))
    {
        println!(
            "\nratios peerstorm / peer@1.0.2: CPU per message {:.3} (goal <= 0.1), RSS per idle peer {:.3} (goal <= 0.25)",
            us.cpu_us_per_msg / re.cpu_us_per_msg,
            us.rss_per_peer_kib / re.rss_per_peer_kib
        );
    }
    for name in ["peerstorm", "peer@1.0.2"] {
        if let (Some(ws), Some(wss)) =
            (rows.iter().find(|r| r.broker == name), rows.iter().find(|r| r.broker == format!("{name} (wss)")))
        {
            println!(
                "what TLS costs {name}: CPU per message {:.2}x ({:.2} -> {:.2} µs), RSS per idle peer {:+.2} KiB ({:.2} -> {:.2})",
                wss.cpu_us_per_msg / ws.cpu_us_per_msg,
                ws.cpu_us_per_msg,
                wss.cpu_us_per_msg,
                wss.rss_per_peer_kib - ws.rss_per_peer_kib,
                ws.rss_per_peer_kib,
                wss.rss_per_peer_kib
            );
        }
    }
    crate::results::write_json(b.out.as_ref(), "bench-broker", &rows)?;
    Ok(crate::EXIT_OK)
}

#[derive(Debug, Serialize)]
struct CapacityReport {
    peers: usize,
    processes: usize,
    idle_rss_kib: u64,
    rss_kib: u64,
    rss_per_peer_kib: f64,
    over_limit_answer: String,
    relay_checks: Vec<String>,
    lost_during_hold: usize,
    hold_secs: u64,
}

fn capacity(b: &BrokerBench) -> Result<u8> {
    peerstorm_broker::server::raise_fd_limit()?;
    let peers = b.capacity.expect("capacity mode");
    let server = start_peerstorm(peers)?;
    std::thread::sleep(Duration::from_millis(500));
    let idle = proc::sample(server.child.id())?;
    let exe = std::env::current_exe()?;
    let per = peers.div_ceil(b.processes);
    let mut kids = Vec::new();
    for i in 0..b.processes {
        let count = per.min(peers - i * per);
        let source = format!("127.0.0.{}", 2 + i);
        let child = Command::new(&exe)
            .args(["bench", "broker-clients", "--addr", &server.addr.to_string(), "--count", &count.to_string()])
            .args(["--source", &source, "--prefix", &format!("g{i}-")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        kids.push(child);
    }
    let mut readers: Vec<_> =
        kids.iter_mut().map(|k| BufReader::new(k.stdout.take().expect("piped")).lines()).collect();
    for (i, r) in readers.iter_mut().enumerate() {
        let line = r.next().ok_or_else(|| anyhow!("generator {i} exited"))??;
        println!("generator {i}: {line}");
        if !line.starts_with("ready") {
            bail!("generator {i} failed: {line}");
        }
    }
    println!("all {peers} peers connected; holding {} s with heartbeats", b.hold_secs);
    std::thread::sleep(Duration::from_secs(b.hold_secs));
    let full = proc::sample(server.child.id())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let over = rt.block_on(async {
        match Client::join(
            &target(server.addr),
            "one-too-many",
            "tok",
            Some(IpAddr::from([127, 0, 0, 9])),
            Duration::from_secs(10),
        )
        .await
        {
            Ok(_) => "OPEN (the limit did not hold)".to_string(),
            Err(e) => e.to_string(),
        }
    });
    println!("a client over the limit got: {over}");
    let mut checks = Vec::new();
    let mut lost = 0;
    for (i, k) in kids.iter_mut().enumerate() {
        writeln!(k.stdin.as_mut().expect("piped"), "check")?;
        let line = readers[i].next().ok_or_else(|| anyhow!("generator {i} exited"))??;
        lost += line.split_whitespace().nth(2).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        println!("generator {i}: {line}");
        checks.push(line);
        writeln!(k.stdin.as_mut().expect("piped"), "quit")?;
    }
    for mut k in kids {
        let _ = k.wait();
    }
    let report = CapacityReport {
        peers,
        processes: b.processes,
        idle_rss_kib: idle.rss_kib,
        rss_kib: full.rss_kib,
        rss_per_peer_kib: (full.rss_kib as f64 - idle.rss_kib as f64) / peers as f64,
        over_limit_answer: over,
        relay_checks: checks,
        lost_during_hold: lost,
        hold_secs: b.hold_secs,
    };
    println!(
        "\ncapacity: {} peers in one broker process, RSS {:.1} MiB ({:.2} KiB per peer over idle), {} connections lost while holding",
        peers,
        full.rss_kib as f64 / 1024.0,
        report.rss_per_peer_kib,
        lost
    );
    crate::results::write_json(b.out.as_ref(), "bench-broker-capacity", &report)?;
    let ok = report.relay_checks.iter().all(|c| c.starts_with("relay-ok"))
        && lost == 0
        && report.over_limit_answer.contains("concurrent user limit");
    Ok(if ok { crate::EXIT_OK } else { crate::EXIT_INVALID })
}

/// One generator process: joins its clients, prints `ready`, heartbeats them, and answers
/// `check` (relay one OFFER between two of its clients, report losses) and `quit` on stdin.
fn clients_process(a: &ClientsArgs) -> Result<u8> {
    peerstorm_broker::server::raise_fd_limit()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let t = target(a.addr);
        let start = Instant::now();
        let (mut clients, lat) = match join_many(&t, &a.prefix, a.count, a.source, 128).await {
            Ok(x) => x,
            Err(e) => {
                println!("failed {e}");
                return Ok(crate::EXIT_HARNESS);
            }
        };
        println!(
            "ready {} in {:.1} s, connect p50 {:.2} ms p99 {:.2} ms",
            clients.len(),
            start.elapsed().as_secs_f64(),
            f64::from(quantile(&lat, 0.5)) / 1000.0,
            f64::from(quantile(&lat, 0.99)) / 1000.0
        );
        // Lines from stdin through a channel: receiving is cancel-safe inside select!.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
        tokio::spawn(async move {
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
            loop {
                let mut line = String::new();
                match tokio::io::AsyncBufReadExt::read_line(&mut stdin, &mut line).await {
                    Ok(n) if n > 0 => {
                        if tx.send(line).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        });
        loop {
            tokio::select! {
                line = rx.recv() => {
                    let line = line.unwrap_or_else(|| "quit".into());
                    if line.trim() == "quit" {
                        return Ok(crate::EXIT_OK);
                    }
                    if line.trim() == "check" {
                        let lost = relay::hold(&mut clients, Duration::from_millis(100), Duration::from_secs(5)).await;
                        let (x, rest) = clients.split_at_mut(1);
                        let frame = peerstorm_loadgen::client::text_frame(&offer_frame(&rest[0].id));
                        let t0 = Instant::now();
                        x[0].send(&frame).await?;
                        let mut got = false;
                        let wait = tokio::time::timeout(Duration::from_secs(5), async {
                            while !got {
                                rest[0].read_frames(|op, _| got |= op == 1).await?;
                            }
                            Ok::<_, std::io::Error>(())
                        }).await;
                        match wait {
                            Ok(Ok(())) => println!("relay-ok lost {lost} latency_us {}", t0.elapsed().as_micros()),
                            _ => println!("relay-failed lost {lost}"),
                        }
                    }
                }
                _ = relay::hold(&mut clients, Duration::from_secs(1), Duration::from_secs(5)) => {}
            }
        }
    })
}
