//! Full-stack virtual peers on real sockets (`peerstorm peer`: the rtc stack and PeerJS
//! DataConnections): a Chromium page running peerjs@1.5.5 talks to one through the broker in
//! the binary and json serializations; two of them connect relay-only through peerstorm's TURN
//! server and through coturn. Chromium, coturn and tools/js come from scripts/test.sh; the tests
//! fail, never skip, without them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `peerstorm ARGS`, returns it and its first stdout line; the rest is drained.
fn start(args: &[&str]) -> (Proc, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || for _ in lines {});
    (Proc(c), first)
}

fn broker() -> (Proc, SocketAddr) {
    let (p, banner) = start(&["serve", "broker", "--host", "127.0.0.1", "--port", "0"]);
    let addr = banner.split_whitespace().nth(4).unwrap().trim_end_matches(':').parse().unwrap();
    (p, addr)
}

#[test]
fn chromium_peerjs_talks_to_a_virtual_peer_in_binary_and_json() {
    assert!(
        root().join("tools/js/node_modules/peerjs").exists(),
        "tools/js/node_modules is missing: run scripts/test.sh (it runs npm ci in tools/js)"
    );
    let (_broker, addr) = broker();
    let b = addr.to_string();
    let (_echo, banner) = start(&["peer", "--broker", &b, "--id", "virtual-echo", "--for", "60"]);
    assert!(banner.starts_with("peerstorm peer virtual-echo on udp 127.0.0.1:"), "{banner}");
    let out = Command::new("node")
        .arg(root().join("tools/js/browser-virtual-peer.mjs"))
        .arg(addr.port().to_string())
        .arg("virtual-echo")
        .output()
        .expect("node is on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    for ser in ["binary", "json"] {
        assert_eq!(j["checks"][ser]["same"], true, "{ser}: {j}");
        assert_eq!(j["checks"][ser]["echoed"], j["checks"][ser]["sent"], "{ser}: {j}");
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// coturn on a free port with user test:test in realm example.org, answering before it returns.
fn coturn(dir: &Path) -> (Proc, SocketAddr) {
    assert!(Path::new("/usr/bin/turnserver").exists(), "coturn is missing: run scripts/test.sh (it installs it)");
    let port = free_port();
    std::fs::write(dir.join("turnserver.conf"), "# settings are on the command line\n").unwrap();
    let child = Proc(
        Command::new("/usr/bin/turnserver")
            .arg("-c")
            .arg(dir.join("turnserver.conf"))
            .args([
                "--lt-cred-mech",
                "--user",
                "test:test",
                "--realm",
                "example.org",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
            ])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", &port.to_string()])
            .args([
                "--min-port",
                "40000",
                "--max-port",
                "44999",
                "--allow-loopback-peers",
                "--simple-log",
                "--log-file",
            ])
            .arg(dir.join("turnserver.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
    let req = peerstorm_model::stun::Message::binding_request([7; 12]).encode(true);
    for _ in 0..50 {
        let _ = s.send_to(&req, addr);
        if s.recv_from(&mut [0u8; 512]).is_ok() {
            return (child, addr);
        }
    }
    panic!("coturn did not answer in 10 s");
}

/// Two virtual peers, relay-only through `turn`: the connecting one must finish its workload
/// over a relayed pair.
fn relay_through(turn: SocketAddr, realm: &str) {
    let (_broker, addr) = broker();
    let (b, t) = (addr.to_string(), turn.to_string());
    let common = ["--turn", t.as_str(), "--turn-user", "test:test", "--turn-realm", realm, "--relay-only"];
    let mut answer = vec!["peer", "--broker", &b, "--id", "relay-echo", "--for", "40"];
    answer.extend(common);
    let (_echo, _) = start(&answer);
    let mut connect = vec!["peer", "--broker", &b, "--id", "relay-client", "--connect", "relay-echo", "--for", "30"];
    connect.extend(common);
    let out = Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(&connect).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let conn: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(conn["milestones"]["selected"][0], "relay", "relay-only: {conn}");
    assert!(conn["milestones"]["at"]["first_relay"].is_number(), "{conn}");
    assert!(conn["bytes_moved"].as_u64().unwrap() >= 20_000, "ten 1000-byte messages out and back: {conn}");
}

#[test]
fn virtual_peers_connect_relay_only_through_peerstorms_turn_server() {
    let (_turn, banner) = start(&[
        "serve",
        "turn",
        "--listen",
        "127.0.0.1:0",
        "--realm",
        "example.org",
        "--user",
        "test:test",
        "--allow-loopback-peers",
    ]);
    // "peerstorm turn listening on udp 127.0.0.1:PORT and tcp ..."
    let addr = banner.split_whitespace().nth(5).unwrap().trim_end_matches(',').parse().unwrap();
    relay_through(addr, "example.org");
}

#[test]
fn virtual_peers_connect_relay_only_through_coturn() {
    let dir = std::env::temp_dir().join(format!("peerstorm-fullstack-coturn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_turn, addr) = coturn(&dir);
    relay_through(addr, "example.org");
    std::fs::remove_dir_all(&dir).ok();
}
