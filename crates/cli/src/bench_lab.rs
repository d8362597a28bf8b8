//! `peerstorm bench lab`: how fast the lab forwards and how precisely. Pinging hosts behind a
//! carrier-grade NAT (two NAT layers: home and carrier) send numbered datagrams to echo hosts on
//! the simulated internet (`peerstorm lab ping` / `lab echo` inside the lab hosts); each
//! datagram and its echo cross both NATs. For each offered rate: what the forwarder carried
//! per second of wall time and per second of its own CPU, its scheduling error, and what the
//! pings saw (loss, RTT against the configured one).

use anyhow::{Context, Result};
use clap::Args;
use peerstorm_lab::LabBuilder;
use peerstorm_netsim::{LinkConfig, Preset};
use peerstorm_runner::layout::{Layout, place_peer};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct LabBench {
    /// Pinging hosts, each behind a carrier-grade NAT with an echo host of its own on the
    /// internet (2 × HOSTS namespaces; at most 100).
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// Offered load, datagrams per second over all hosts (each comes back as an echo);
    /// several, comma-separated, for a sweep.
    #[arg(long, value_delimiter = ',', default_value = "1000,4000,8000,16000")]
    rates: Vec<f64>,
    /// How long each rate is offered, seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Round trip between a pinging host and its echo host (each access link a quarter each way).
    #[arg(long, default_value_t = 20)]
    rtt_ms: u64,
    /// Datagram size, bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Where to write the JSON results (default reports/out/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Row {
    hosts: usize,
    offered_per_s: f64,
    /// Packets the forwarder read from TUN devices and wrote to TUN devices, per wall second.
    forwarded_per_s: f64,
    /// The same per second of the forwarder process's CPU time: packets/s on one core.
    forwarded_per_cpu_s: f64,
    forwarder_cpu_share: f64,
    scheduling_error_p50_ms: f64,
    scheduling_error_p99_ms: f64,
    ping_loss: f64,
    rtt_p50_ms: f64,
    rtt_p99_ms: f64,
    configured_rtt_ms: u64,
}

pub fn run(a: &LabBench) -> Result<u8> {
    let rates_ok = a.rates.iter().all(|r| r.is_finite() && *r > 0.0 && *r <= 200_000.0);
    let seconds_ok = a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 600.0;
    let sizes_ok = (1..=100).contains(&a.hosts) && (16..=1200).contains(&a.size) && a.rtt_ms <= 10_000;
    if !(rates_ok && seconds_ok && sizes_ok) {
        eprintln!(
            "peerstorm: --hosts 1..=100, --rates above 0 up to 200000/s, --seconds up to 600, --size 16..=1200, --rtt-ms up to 10000"
        );
        return Ok(crate::EXIT_HARNESS);
    }
    println!(
        "{:>6} {:>9} {:>11} {:>13} {:>5} {:>9} {:>9} {:>7} {:>8} {:>8}",
        "hosts", "offered/s", "forwarded/s", "per CPU-sec", "cpu", "err p50", "err p99", "loss", "rtt p50", "rtt p99"
    );
    let mut rows = Vec::new();
    for &rate in &a.rates {
        let row = one(a, rate)?;
        println!(
            "{:>6} {:>9.0} {:>11.0} {:>13.0} {:>4.0}% {:>6.3} ms {:>6.3} ms {:>6.2}% {:>5.2} ms {:>5.2} ms",
            row.hosts,
            row.offered_per_s,
            row.forwarded_per_s,
            row.forwarded_per_cpu_s,
            row.forwarder_cpu_share * 100.0,
            row.scheduling_error_p50_ms,
            row.scheduling_error_p99_ms,
            row.ping_loss * 100.0,
            row.rtt_p50_ms,
            row.rtt_p99_ms
        );
        rows.push(row);
    }
    println!("(the configured RTT is {} ms; forwarded counts packets into and out of the network)", a.rtt_ms);
    crate::results::write_json(a.out.as_ref(), "lab-forwarding", &rows)?;
    Ok(crate::EXIT_OK)
}

fn one(a: &LabBench, rate: f64) -> Result<Row> {
    let exe = std::env::current_exe()?;
    let mut b = LabBuilder::new(1);
    let net = b.network_mut();
    let internet = net.add_segment("internet");
    let link = LinkConfig::latency(a.rtt_ms / 4);
    let mut layout = Layout::new(true, false);
    let mut pairs = Vec::new();
    for i in 0..a.hosts {
        let (pinger, ip) = place_peer(net, internet, i + 1, Preset::Cgnat, &link, &mut layout);
        let echo_ip = Ipv4Addr::new(198, 51, 100, 20 + i as u8);
        pairs.push((pinger, ip, echo_ip));
    }
    let mut echoes = Vec::new();
    for (i, (pinger, ip, echo_ip)) in pairs.iter().enumerate() {
        b.adopt(&format!("ping{i}"), *pinger, *ip);
        echoes.push(b.add_host(&format!("echo{i}"), internet, *echo_ip, link.clone()));
    }
    let mut lab = b.build().context("building the lab (it needs root, iproute2 and /dev/net/tun)")?;
    let per_host = rate / a.hosts as f64;
    let count = (per_host * a.seconds).ceil().max(1.0) as u64;
    for (i, host) in echoes.iter().enumerate() {
        let mut c = lab.command(*host, exe.to_str().context("binary path")?).context("echo host")?;
        let bind = format!("{}:7", pairs[i].2);
        c.args(["lab", "echo", "--bind", &bind, "--for", &(a.seconds + 60.0).to_string()]).stdout(Stdio::null());
        c.spawn().context("starting lab echo")?;
    }
    lab.run_for(Duration::from_millis(500))?;
    let mut pingers: Vec<Child> = Vec::new();
    for (i, (pinger, _, echo_ip)) in pairs.iter().enumerate() {
        let mut c = lab.command(*pinger, exe.to_str().context("binary path")?).context("ping host")?;
        c.args(["lab", "ping", "--to", &format!("{echo_ip}:7"), "--count", &count.to_string()])
            .args(["--rate", &per_host.to_string(), "--size", &a.size.to_string(), "--wait-ms", "1000"])
            .stdout(Stdio::piped());
        pingers.push(c.spawn().with_context(|| format!("starting lab ping {i}"))?);
    }
    let before = (lab.stats().clone(), peerstorm_loadgen::proc::sample(std::process::id())?.cpu_s, Instant::now());
    let max = Duration::from_secs_f64(a.seconds + 30.0);
    let finished = lab.run_until(max, || pingers.iter_mut().all(|c| c.try_wait().is_ok_and(|s| s.is_some())))?;
    let wall = before.2.elapsed().as_secs_f64();
    let cpu = peerstorm_loadgen::proc::sample(std::process::id())?.cpu_s - before.1;
    let stats = lab.stats().clone();
    drop(lab);
    anyhow::ensure!(finished, "the pings did not finish within {} s", max.as_secs());
    let (mut sent, mut lost, mut p50, mut p99) = (0u64, 0u64, Vec::new(), Vec::new());
    for c in pingers {
        let out = c.wait_with_output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("lab ping's JSON")?;
        sent += v["sent"].as_u64().unwrap_or(0);
        lost += v["lost"].as_u64().unwrap_or(0);
        p50.extend(v["rtt_ms"]["p50"].as_f64());
        p99.extend(v["rtt_ms"]["p99"].as_f64());
    }
    let carried = (stats.into_network - before.0.into_network) + (stats.out_of_network - before.0.out_of_network);
    // Lateness of the packets carried during this rate's run only.
    let mut late = peerstorm_lab::LabStats {
        lateness_us: stats.lateness_us[before.0.lateness_us.len()..].to_vec(),
        ..Default::default()
    };
    late.lateness_us.shrink_to_fit();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    Ok(Row {
        hosts: a.hosts,
        offered_per_s: rate,
        forwarded_per_s: carried as f64 / wall,
        forwarded_per_cpu_s: if cpu > 0.0 { carried as f64 / cpu } else { f64::NAN },
        forwarder_cpu_share: cpu / wall,
        scheduling_error_p50_ms: ms(late.lateness(0.5)),
        scheduling_error_p99_ms: ms(late.lateness(0.99)),
        ping_loss: if sent > 0 { lost as f64 / sent as f64 } else { f64::NAN },
        rtt_p50_ms: median(&mut p50),
        rtt_p99_ms: median(&mut p99),
        configured_rtt_ms: a.rtt_ms,
    })
}
