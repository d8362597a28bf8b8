//! What the CLI's process-level tests share: the checkout root, child processes killed on drop,
//! and Debian's coturn started on a free port and waited for.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..")
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and returns it with its first stdout line; the rest is drained (a closed pipe
/// would kill a server at its next line).
pub fn start(cmd: &mut Command) -> (Proc, String) {
    try_start(cmd).unwrap_or_else(|| panic!("{cmd:?} exited without printing a line"))
}

/// As [`start`]; `None` when the process exits without printing (e.g. its port was taken) or
/// prints nothing within 20 s (peer@1.0.2 logs a taken port and runs on silently); the process
/// is killed then.
pub fn try_start(cmd: &mut Command) -> Option<(Proc, String)> {
    let mut c = Proc(cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let first = first_line(&mut c.0, std::time::Duration::from_secs(20))?;
    Some((c, first))
}

/// The first stdout line of `child` within `within`; a thread drains the rest.
fn first_line(child: &mut Child, within: std::time::Duration) -> Option<String> {
    let out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx.recv_timeout(within).ok()
}

/// `peerstorm ARGS`, started as with [`start`].
pub fn start_peerstorm(args: &[&str]) -> (Proc, String) {
    start(Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(args))
}

/// coturn on a free loopback port with user test:test in realm example.org and relay ports
/// `relay` (tests running at once use different ranges), answering before this returns.
pub fn coturn(dir: &Path, relay: (u16, u16)) -> (Proc, SocketAddr) {
    coturn_with(dir, relay, &[])
}

/// As [`coturn`], with more turnserver options; with `--no-udp` (TCP clients only) it is probed
/// over TCP. The port is picked free and released, so another process may take it first: a
/// coturn that exits at start is started again on another port.
pub fn coturn_with(dir: &Path, relay: (u16, u16), extra: &[&str]) -> (Proc, SocketAddr) {
    assert!(Path::new("/usr/bin/turnserver").exists(), "coturn is missing: run scripts/test.sh (it installs it)");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("turnserver.conf"), "# settings are on the command line\n").unwrap();
    for _ in 0..5 {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Proc(
            Command::new("/usr/bin/turnserver")
                .arg("-c")
                .arg(dir.join("turnserver.conf"))
                .args(["--lt-cred-mech", "--user", "test:test", "--realm", "example.org", "--no-dtls", "--no-cli"])
                // With a certificate (--cert/--pkey) coturn takes TLS on its listening port too.
                .args(if extra.contains(&"--cert") { &[][..] } else { &["--no-tls"][..] })
                .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", &port.to_string()])
                .args(["--min-port", &relay.0.to_string(), "--max-port", &relay.1.to_string()])
                .args(["--allow-loopback-peers", "--no-multicast-peers", "--simple-log", "--log-file"])
                .arg(dir.join("turnserver.log"))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let tcp = extra.contains(&"--no-udp");
        for _ in 0..100 {
            if child.0.try_wait().ok().flatten().is_some() {
                break;
            }
            if answers(addr, tcp) {
                return (child, addr);
            }
            if tcp {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
    panic!("coturn did not start and answer on five free ports");
}

/// One STUN Binding to `addr` over UDP (200 ms wait) or TCP: answered?
fn answers(addr: SocketAddr, tcp: bool) -> bool {
    use std::io::{Read, Write};
    let req = peerstorm_model::stun::Message::binding_request([7; 12]).encode(true);
    let wait = std::time::Duration::from_millis(200);
    if tcp {
        let Ok(mut t) = std::net::TcpStream::connect_timeout(&addr, wait) else { return false };
        let _ = t.set_read_timeout(Some(wait * 2));
        return t.write_all(&req).is_ok() && t.read(&mut [0u8; 512]).is_ok_and(|n| n > 0);
    }
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let _ = s.send_to(&req, addr);
    s.recv_from(&mut [0u8; 512]).is_ok()
}

/// The lab namespaces of process `pid` that exist now (`psl-<pid>-…`, as the lab names them).
pub fn lab_namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("{}-{pid}-", peerstorm_lab::ns::PREFIX);
    peerstorm_lab::ns::existing().expect("ip netns list").into_iter().filter(|n| n.starts_with(&prefix)).collect()
}
