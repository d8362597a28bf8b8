//! The lab delays and drops what the scenario says, measured by a program inside it: `peerstorm
//! lab ping` in a lab host behind a port-restricted NAT sends numbered datagrams to `peerstorm
//! lab echo` on the simulated internet. The round trip is what the access links add (10 ms
//! each way on each of the two links: 40 ms) within 1 ms at the median; the loss rate is inside
//! the binomial bound; the forwarder's scheduling error is printed; the capture opens in tshark.

use peerstorm_lab::{Lab, LabBuilder};
use peerstorm_netsim::{HostId, LinkConfig, Preset};
use peerstorm_runner::layout::{Layout, place_peer};
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

const ECHO: &str = "198.51.100.20:7";

/// A lab with the echo host (10 ms each way) and a pinging host behind a port-restricted NAT
/// whose access link is `link`.
fn echo_lab(link: LinkConfig) -> (Lab, HostId, std::process::Child) {
    let mut b = LabBuilder::new(3);
    let net = b.network_mut();
    let internet = net.add_segment("internet");
    let (host, ip) = place_peer(net, internet, 1, Preset::PortRestricted, &link, &mut Layout::new(true, false));
    let echo_host = b.add_host("echo", internet, Ipv4Addr::new(198, 51, 100, 20), LinkConfig::latency(10));
    b.adopt("ping", host, ip);
    let mut lab = b.build().expect("the lab needs root, iproute2 and /dev/net/tun");
    lab.capture();
    let mut echo = lab.command(echo_host, env!("CARGO_BIN_EXE_peerstorm")).unwrap();
    // Stopped with the lab (dropping it kills what runs in its namespaces).
    let echo = echo.args(["lab", "echo", "--bind", ECHO, "--for", "60"]).stdout(Stdio::null()).spawn().unwrap();
    (lab, host, echo)
}

/// Runs `lab ping` from `host` and returns its JSON.
fn ping(lab: &mut Lab, host: HostId, count: u64, rate: f64) -> serde_json::Value {
    let mut c = lab.command(host, env!("CARGO_BIN_EXE_peerstorm")).unwrap();
    let mut child = c
        .args(["lab", "ping", "--to", ECHO, "--count", &count.to_string(), "--rate", &rate.to_string()])
        .args(["--wait-ms", "500"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let done = lab.run_until(Duration::from_secs(120), || child.try_wait().is_ok_and(|s| s.is_some())).unwrap();
    assert!(done, "lab ping finished");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "lab ping: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn round_trips_take_the_configured_time_and_loss_stays_in_its_binomial_bound() {
    // RTT: 10 ms each way on the pinging host's link and on the echo host's link.
    let (mut lab, host, mut echo) = echo_lab(LinkConfig::latency(10));
    // The echo server binds first (a ping meeting no server would count as lost).
    lab.run_for(Duration::from_millis(300)).unwrap();
    let r = ping(&mut lab, host, 400, 100.0);
    let p50 = r["rtt_ms"]["p50"].as_f64().unwrap();
    let stats = lab.stats().clone();
    let (l50, l99) = (stats.lateness(0.5).unwrap(), stats.lateness(0.99).unwrap());
    eprintln!("rtt: {r}\nforwarder scheduling error p50 {l50:?} p99 {l99:?} over {} packets", stats.out_of_network);
    assert_eq!(r["lost"], 0, "a lossless lab loses nothing: {r}");
    assert!((p50 - 40.0).abs() <= 1.0, "median RTT {p50} ms is within 1 ms of the configured 40 ms: {r}");

    // The capture (every packet the hosts' kernels sent and got) opens in tshark and holds
    // the pings and their echoes.
    let dir = std::env::temp_dir().join(format!("peerstorm-lab-netem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lab.pcap");
    std::fs::write(&file, lab.pcap()).unwrap();
    let out = std::process::Command::new("tshark")
        .args(["-r", file.to_str().unwrap(), "-Y", "udp.port == 7", "-T", "fields", "-e", "ip.src"])
        .output()
        .expect("tshark (Debian; scripts/test.sh installs it)");
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "tshark read the lab's pcap: {}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    // Each ping is captured leaving its host and arriving at the echo host, and so is its echo.
    assert_eq!(lines, 4 * 400, "tshark saw every ping and echo twice (sent, received)");
    // Dropping the lab stops the echo server in it.
    drop(lab);
    assert!(!echo.wait().unwrap().success());

    // Loss: 10% each way on the pinging host's link, so a round trip survives with 0.81.
    let (mut lab, host, mut echo) = echo_lab(LinkConfig { loss: 0.1, ..LinkConfig::latency(10) });
    lab.run_for(Duration::from_millis(300)).unwrap();
    let n = 2000u64;
    let r = ping(&mut lab, host, n, 200.0);
    let lost = r["lost"].as_u64().unwrap() as f64;
    let p = 1.0 - 0.9f64 * 0.9;
    let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
    eprintln!("loss: {lost} of {n} lost, expected {mean:.0} ± {sd:.1}");
    // Four and a half standard deviations: a correct lab fails this about once in 150,000 runs.
    assert!((lost - mean).abs() <= 4.5 * sd, "{lost} lost of {n}: outside {mean:.0} ± {:.0}", 4.5 * sd);
    drop(lab);
    let _ = echo.wait();
}
