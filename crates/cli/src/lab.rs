//! `peerstorm lab`: the lab (real programs in network namespaces behind the simulated network;
//! `crates/lab`): run a lab scenario, measure a lab from inside its hosts, clean up after a
//! killed run.

use crate::{EXIT_HARNESS, EXIT_OK};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// `peerstorm lab SCENARIO`, or one of the subcommands.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  \
sudo peerstorm lab scenarios/lab-browsers.toml      # Chromium pairs behind NATs, coturn\n  \
sudo peerstorm lab scenarios/lab-browsers.toml --concurrency 1 --out reports/lab-1\n  \
peerstorm lab clean                             # remove what a killed lab left behind\n\n\
A lab host is a network namespace whose only interfaces are lo and a TUN device this process\n\
owns; the simulated network (NATs, links, loss, the embedded STUN/TURN core) carries every packet\n\
between hosts on the wall clock. Needs root, /dev/net/tun and iproute2. Writes the results\n\
directory as `run` does, plus lab.json (forwarding figures), lab.pcap and hosts/*.log.\n\
Exit status as `run`: 0 thresholds held, 1 one failed, 2 the lab could not run, 130 (143)\n\
interrupted by Ctrl-C (SIGTERM): the lab is removed and a partial report written."
)]
pub struct LabCmd {
    #[command(subcommand)]
    cmd: Option<Lab>,
    /// A scenario with mode = "lab" (see scenarios/README.md).
    #[arg(required = true)]
    scenario: Option<std::path::PathBuf>,
    /// Override the scenario's seed (the NAT assignment and the network's randomness).
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the results (default reports/<scenario>-<UTC time>/); a directory that
    /// holds files is refused unless --force.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Write into an --out directory that already holds files.
    #[arg(long)]
    force: bool,
    /// Override `[lab] concurrency`: pairs running at once.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Lab {
    /// Remove what a killed lab run left behind: its network namespaces (named `psl-<pid>-…`,
    /// whose process is gone) and every program still running in them. A running lab's
    /// namespaces are left alone; nothing outside the lab is touched.
    Clean,
    /// A UDP echo server (for `lab ping`): sends every datagram back to where it came from.
    Echo(EchoArgs),
    /// Sends numbered UDP datagrams to a `lab echo` at a steady rate and prints one JSON line:
    /// sent, received, lost, and round-trip times (p50/p90/p99/max, ms). Run inside a lab host
    /// it measures what the lab adds: the configured RTT and loss, and the forwarder's error.
    #[command(after_help = "Example (two lab hosts, 40 ms RTT between them):\n  \
peerstorm lab echo --bind 198.51.100.20:7 --for 30\n  \
peerstorm lab ping --to 198.51.100.20:7 --count 500 --rate 100")]
    Ping(PingArgs),
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    /// Where to listen, IP:PORT.
    #[arg(long)]
    bind: SocketAddr,
    /// How long to serve, seconds.
    #[arg(long = "for", default_value_t = 60.0)]
    duration: f64,
}

#[derive(Debug, Args)]
pub struct PingArgs {
    /// The echo server, IP:PORT.
    #[arg(long)]
    to: SocketAddr,
    /// How many datagrams (at most 10,000,000).
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Datagrams per second (at most 1,000,000).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Datagram size, bytes (16..=1200).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// How long to wait for the last echoes after the last send, ms.
    #[arg(long, default_value_t = 2000)]
    wait_ms: u64,
}

pub fn run(cmd: LabCmd) -> Result<u8> {
    let Some(sub) = cmd.cmd else {
        let Some(path) = cmd.scenario.clone() else {
            eprintln!("peerstorm: lab: give a scenario file or a subcommand (see peerstorm lab --help)");
            return Ok(EXIT_HARNESS);
        };
        return scenario(&path, &cmd);
    };
    match sub {
        Lab::Clean => match peerstorm_lab::ns::clean() {
            Ok(removed) if removed.is_empty() => {
                println!("nothing to clean: no lab namespace without its lab");
                Ok(EXIT_OK)
            }
            Ok(removed) => {
                println!("removed {} lab namespace(s): {}", removed.len(), removed.join(", "));
                Ok(EXIT_OK)
            }
            Err(e) => {
                eprintln!("peerstorm: {e}");
                Ok(EXIT_HARNESS)
            }
        },
        Lab::Echo(a) => echo(&a),
        Lab::Ping(a) => ping(&a),
    }
}

/// `peerstorm lab SCENARIO`: the scenario must say `mode = "lab"`.
fn scenario(path: &std::path::Path, cmd: &LabCmd) -> Result<u8> {
    let (mut s, text) = match crate::run::load_scenario(path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    if s.mode != peerstorm_scenario::Mode::Lab {
        eprintln!(
            "peerstorm: {}: not a lab scenario (it needs mode = \"lab\" and a [lab] table; `peerstorm run` runs the others)",
            path.display()
        );
        return Ok(EXIT_HARNESS);
    }
    if let Some(seed) = cmd.seed {
        s.seed = seed;
    }
    if let (Some(n), Some(lab)) = (cmd.concurrency, s.lab.as_mut()) {
        lab.concurrency = n;
        if let Err(e) = s.check() {
            eprintln!("peerstorm: --concurrency {n}: {e}");
            return Ok(EXIT_HARNESS);
        }
    }
    let thresholds = s.thresholds().map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = crate::results::dir_for(cmd.out.as_ref(), &s.name);
    if let Err(e) = crate::lab_run::check_root().and_then(|()| crate::results::prepare_out(&dir, cmd.force)) {
        eprintln!("peerstorm: {e}");
        return Ok(EXIT_HARNESS);
    }
    crate::lab_run::run(&s, &text, &dir, &thresholds, cmd.quiet)
}

fn echo(a: &EchoArgs) -> Result<u8> {
    if !(a.duration.is_finite() && a.duration > 0.0 && a.duration <= 86_400.0) {
        eprintln!("peerstorm: --for {}: expected seconds above 0, at most a day", a.duration);
        return Ok(EXIT_HARNESS);
    }
    let sock = UdpSocket::bind(a.bind).with_context(|| format!("binding {}", a.bind))?;
    println!("echo on udp {}", sock.local_addr()?);
    let end = Instant::now() + Duration::from_secs_f64(a.duration);
    let mut buf = [0u8; 2048];
    let mut echoed = 0u64;
    while let Some(left) = end.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        sock.set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if sock.send_to(&buf[..n], from).is_ok() {
                    echoed += 1;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("receiving"),
        }
    }
    println!("{}", serde_json::json!({ "echoed": echoed }));
    Ok(EXIT_OK)
}

fn ping(a: &PingArgs) -> Result<u8> {
    if a.count == 0 || a.count > 10_000_000 || !(a.rate.is_finite() && a.rate > 0.0 && a.rate <= 1e6) {
        eprintln!("peerstorm: --count 1..=10000000 and --rate above 0, at most 1000000 per second");
        return Ok(EXIT_HARNESS);
    }
    if !(16..=1200).contains(&a.size) {
        eprintln!("peerstorm: --size {}: expected 16..=1200 bytes", a.size);
        return Ok(EXIT_HARNESS);
    }
    let bind: SocketAddr = if a.to.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(a.to).with_context(|| format!("--to {}", a.to))?;
    let recv = sock.try_clone()?;
    let start = Instant::now();
    let count = a.count;
    // Each datagram: its number and its send time (ns since start); the echo brings both back.
    let receiver = std::thread::spawn(move || {
        let mut rtt_us = vec![u32::MAX; count as usize];
        let mut buf = [0u8; 2048];
        let _ = recv.set_read_timeout(Some(Duration::from_millis(100)));
        loop {
            match recv.recv(&mut buf) {
                Ok(n) if n >= 16 => {
                    let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                    let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap_or_default());
                    let now = start.elapsed().as_nanos() as u64;
                    if let Some(slot) = rtt_us.get_mut(seq as usize)
                        && *slot == u32::MAX
                    {
                        *slot = (now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX - 1)) as u32;
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                }
                // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: the echo
                // is not there (yet); keep listening.
                Err(_) => {}
            }
        }
        rtt_us
    });
    let mut pkt = vec![0u8; a.size];
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut send_errors = 0u64;
    for seq in 0..count {
        let due = start + interval.mul_f64(seq as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        pkt[..8].copy_from_slice(&seq.to_be_bytes());
        pkt[8..16].copy_from_slice(&(start.elapsed().as_nanos() as u64).to_be_bytes());
        if sock.send(&pkt).is_err() {
            send_errors += 1;
        }
    }
    let sending = start.elapsed();
    std::thread::sleep(Duration::from_millis(a.wait_ms));
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    let rtt_us = receiver.join().map_err(|_| anyhow::anyhow!("the receiving thread panicked"))?;
    let mut got: Vec<u32> = rtt_us.iter().copied().filter(|&r| r != u32::MAX).collect();
    got.sort_unstable();
    let q = |q: f64| got.get(((got.len().max(1) - 1) as f64 * q).round() as usize).map(|&us| f64::from(us) / 1000.0);
    println!(
        "{}",
        serde_json::json!({
            "to": a.to.to_string(),
            "sent": count - send_errors,
            "send_errors": send_errors,
            "received": got.len(),
            "lost": count - send_errors - got.len() as u64,
            "rate_per_s": a.rate,
            "sending_s": sending.as_secs_f64(),
            "rtt_ms": { "min": q(0.0), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0) },
        })
    );
    Ok(EXIT_OK)
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
