//! Starting the servers under test: peerstorm's TURN in-process, or Debian's coturn
//! (`turnserver`) with a config file of our own (Debian's /etc/turnserver.conf turns on syslog).

#![allow(dead_code)]

use peerstorm_turn::TurnConfig;
use peerstorm_turn::client::UdpClient;
use peerstorm_turn::shell::{Handle, spawn};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "test";
pub const PASS: &str = "test";
pub const REALM: &str = "example.org";

pub enum Server {
    Ours(Handle),
    Coturn { child: Child, addr: SocketAddr, _dir: TempDir },
}

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Coturn { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Ours(h) => h.addr,
            Server::Coturn { addr, .. } => *addr,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Server::Ours(_) => "peerstorm",
            Server::Coturn { .. } => "coturn",
        }
    }
}

fn free_port() -> u16 {
    // Free for both UDP and TCP at the time of asking.
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

pub fn ours_with(f: impl FnOnce(&mut TurnConfig)) -> Server {
    let mut cfg = TurnConfig::new(REALM, "127.0.0.1:0".parse().unwrap());
    cfg.add_user(USER, PASS);
    cfg.allow_loopback_peers = true;
    cfg.relay_ports = (40000, 44999);
    f(&mut cfg);
    Server::Ours(spawn(cfg).unwrap())
}

pub fn ours() -> Server {
    ours_with(|_| {})
}

/// Starts coturn on a free loopback port and waits until it answers a Binding request.
pub fn coturn(extra: &[&str]) -> Server {
    assert!(
        std::path::Path::new("/usr/bin/turnserver").exists(),
        "coturn is missing: run scripts/test.sh (it installs Debian's coturn)"
    );
    let dir = std::env::temp_dir().join(format!("peerstorm-coturn-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("turnserver.conf");
    std::fs::write(&conf, "# empty: every setting is on the command line\n").unwrap();
    let port = free_port();
    let mut cmd = Command::new("turnserver");
    cmd.arg("-c")
        .arg(&conf)
        .args(["--lt-cred-mech", "--user", &format!("{USER}:{PASS}"), "--realm", REALM, "--no-tls", "--no-dtls"])
        .args([
            "--listening-ip",
            "127.0.0.1",
            "--relay-ip",
            "127.0.0.1",
            "--listening-port",
            &port.to_string(),
            "--no-cli",
        ])
        .args([
            "--min-port",
            "45000",
            "--max-port",
            "49999",
            "--simple-log",
            "--allow-loopback-peers",
            "--no-multicast-peers",
        ])
        .arg("--log-file")
        .arg(dir.join("turnserver.log"))
        .arg("--pidfile")
        .arg(dir.join("turnserver.pid"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("turnserver starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = UdpClient::connect(addr, USER, PASS, 1).unwrap();
        c.socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let tid = c.new_tid();
        let req = peerstorm_model::stun::Message::binding_request(tid).encode(true);
        if c.exchange(&req, tid).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "coturn did not answer in 10 s");
    }
    Server::Coturn { child, addr, _dir: TempDir(dir) }
}
