//! Real Chromium behind simulated NATs: two pages running peerjs@1.5.5, each in a lab host
//! (a network namespace whose only way out is peerstorm's simulated network), signal through
//! peerstorm's broker (itself a lab host on the simulated internet) and gather candidates from
//! the embedded STUN/TURN core. Chromium keeps its defaults (mDNS host candidates included).
//! Behind a symmetric and a port-restricted NAT they can meet only through TURN; behind a
//! full-cone NAT and on an open address they meet directly.

mod support;

use peerstorm_lab::{Lab, LabBuilder};
use peerstorm_netsim::{HostId, LinkConfig, Preset};
use peerstorm_runner::layout::{Layout, place_peer};
use peerstorm_turn::TurnConfig;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BROKER: &str = "198.51.100.10:9000";

/// Starts `cmd` with its stdout collected line by line.
fn spawn_lines(mut cmd: std::process::Command) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn in the lab");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (out, l) = (child.stdout.take().unwrap(), lines.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

fn has(lines: &Arc<Mutex<Vec<String>>>, what: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l.starts_with(what))
}

fn last_json(lines: &Arc<Mutex<Vec<String>>>) -> serde_json::Value {
    let l = lines.lock().unwrap();
    l.iter().rev().find_map(|s| serde_json::from_str(s).ok()).unwrap_or_else(|| panic!("no result in {l:?}"))
}

fn page(lab: &Lab, host: HostId, id: &str, connect: Option<&str>) -> std::process::Command {
    let script = support::root().join("tools/js/lab-peer.mjs");
    let cfg = serde_json::json!({
        "broker": BROKER,
        "id": id,
        "connect": connect,
        "iceServers": [
            { "urls": "stun:198.51.100.1:3478" },
            { "urls": "turn:198.51.100.1:3478", "username": "test", "credential": "test" },
        ],
        "timeoutMs": 40000,
    });
    let mut c = lab.command(host, "node").unwrap();
    c.arg(script).arg(cfg.to_string());
    c
}

/// Who offers: a Chromium page, or peerstorm's virtual peer (`peerstorm peer`).
#[derive(Clone, Copy, PartialEq)]
enum Offerer {
    Chromium,
    Virtual,
}

fn virtual_peer(lab: &Lab, host: HostId, ip: Ipv4Addr, connect: &str) -> std::process::Command {
    let mut c = lab.command(host, env!("CARGO_BIN_EXE_peerstorm")).unwrap();
    c.args(["peer", "--broker", BROKER, "--id", "lab-v", "--connect", connect, "--bind", &ip.to_string()])
        .args(["--stun", "198.51.100.1:3478", "--turn", "198.51.100.1:3478", "--turn-user", "test:test"])
        .args(["--turn-realm", "lab", "--messages", "3", "--for", "40"]);
    c
}

/// The offerer's and the answerer's results for a pair behind `a` (offerer) and `b`.
fn pair(a: Preset, b: Preset) -> (serde_json::Value, serde_json::Value) {
    pair_with(Offerer::Chromium, a, b)
}

fn pair_with(kind: Offerer, a: Preset, b: Preset) -> (serde_json::Value, serde_json::Value) {
    run_pair(kind, |net, internet| {
        let mut layout = Layout::new(true, false);
        // 15 ms each way on each access link, 5 ms to the servers.
        let pa = place_peer(net, internet, 1, a, &LinkConfig::latency(15), &mut layout);
        let pb = place_peer(net, internet, 2, b, &LinkConfig::latency(15), &mut layout);
        (pa, pb)
    })
}

type Placed = (HostId, Ipv4Addr);

/// A lab with the STUN/TURN core, the broker and two hosts that `place` puts on the network;
/// the offerer (`kind`) on the first, a Chromium answerer on the second.
fn run_pair(
    kind: Offerer,
    place: impl FnOnce(&mut peerstorm_netsim::Network, peerstorm_netsim::SegmentId) -> (Placed, Placed),
) -> (serde_json::Value, serde_json::Value) {
    let mut lb = LabBuilder::new(11);
    let net = lb.network_mut();
    let internet = net.add_segment("internet");
    let stun = net.add_host("stun", internet, &[Ipv4Addr::new(198, 51, 100, 1)], LinkConfig::latency(5));
    let ((ha, ipa), (hb, ipb)) = place(net, internet);
    let broker = lb.add_host("broker", internet, Ipv4Addr::new(198, 51, 100, 10), LinkConfig::latency(5));
    let mut cfg = TurnConfig::new("lab", SocketAddr::from(([198, 51, 100, 1], 3478)));
    cfg.add_user("test", "test");
    lb.add_turn(stun, cfg);
    lb.adopt("pa", ha, ipa);
    lb.adopt("pb", hb, ipb);
    let mut lab = lb.build().expect("the lab needs root, iproute2 and /dev/net/tun");

    let mut serve = lab.command(broker, env!("CARGO_BIN_EXE_peerstorm")).unwrap();
    serve.args(["serve", "broker", "--host", "198.51.100.10", "--port", "9000"]);
    let (_broker, broker_out) = spawn_lines(serve);
    assert!(lab.run_until(Duration::from_secs(10), || has(&broker_out, "peerstorm broker listening")).unwrap());
    let (mut answerer, b_out) = spawn_lines(page(&lab, hb, "lab-b", None));
    assert!(lab.run_until(Duration::from_secs(30), || has(&b_out, "open")).unwrap(), "the answerer joined");
    let (mut offerer, a_out) = match kind {
        Offerer::Chromium => spawn_lines(page(&lab, ha, "lab-a", Some("lab-b"))),
        Offerer::Virtual => spawn_lines(virtual_peer(&lab, ha, ipa, "lab-b")),
    };
    let done = |c: &mut Child| c.try_wait().is_ok_and(|s| s.is_some());
    lab.run_until(Duration::from_secs(60), || done(&mut offerer) && done(&mut answerer)).unwrap();
    // Dropping the lab stops the broker and anything still running in it.
    drop(lab);
    (last_json(&a_out), last_json(&b_out))
}

#[test]
fn chromium_pairs_meet_through_turn_behind_symmetric_nats_and_directly_behind_cones() {
    let relay = |v: &serde_json::Value| v["milestones"]["selected"].as_array().unwrap().iter().any(|t| t == "relay");
    let (a, b) = pair(Preset::Symmetric, Preset::PortRestricted);
    eprintln!("symmetric -> port-restricted: {a}\n  answerer {b}");
    assert_eq!(a["ok"], true, "the echo came back: {a}");
    assert!(relay(&a), "symmetric ↔ port-restricted can only meet through TURN: {a}");

    let (a, b) = pair(Preset::FullCone, Preset::Open);
    eprintln!("full-cone -> open: {a}\n  answerer {b}");
    assert_eq!(a["ok"], true, "the echo came back: {a}");
    assert!(!relay(&a), "full-cone ↔ open meet directly: {a}");
}

/// peerstorm's virtual peer (the rtc stack) in a lab host behind a port-restricted NAT opens a
/// DataConnection to Chromium behind a full-cone NAT, negotiates DTLS 1.3 with it and runs its
/// echo workload: the mixed setup the browser profile is calibrated with.
#[test]
fn a_virtual_peer_and_chromium_meet_behind_nats() {
    let (v, c) = pair_with(Offerer::Virtual, Preset::PortRestricted, Preset::FullCone);
    eprintln!("virtual (port-restricted) -> chromium (full-cone): {v}\n  chromium {c}");
    let m = &v["milestones"];
    assert!(m["failure"].is_null(), "{v}");
    assert!(m["at"]["workload_done"].as_f64().is_some(), "three messages echoed by Chromium: {v}");
    assert_eq!(c["ok"], true, "{c}");
    let selected: Vec<&str> = m["selected"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(!selected.contains(&"relay"), "cone NATs meet directly: {selected:?}");
    // The virtual peer offers, so it is the DTLS server; Chromium's BoringSSL client offers
    // DTLS 1.3 and the `chrome` profile's server takes it, as another Chromium would.
    assert_eq!(m["dtls"], "DTLS 1.3", "{v}");
}
