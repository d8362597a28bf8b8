//! `peerstorm serve turn` as a process: it prints where it listens, answers STUN and TURN, and
//! stops cleanly on SIGTERM; a bad --user is a usage error.

mod support;

use peerstorm_turn::client::UdpClient;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args([
            "serve",
            "turn",
            "--listen",
            "127.0.0.1:0",
            "--realm",
            "example.org",
            "--user",
            "alice:secret",
            "--allow-loopback-peers",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.starts_with("peerstorm turn listening on udp 127.0.0.1:"), "{banner}");
    let addr = banner.split_whitespace().nth(5).unwrap().trim_end_matches(',').parse().unwrap();
    let mut c = UdpClient::connect(addr, "alice", "secret", 1).unwrap();
    let r = c.allocate().unwrap();
    assert!(r.is_success(), "allocate through the CLI server: {:?}", r.error_code());
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[test]
fn bad_user_is_a_usage_error() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(["serve", "turn", "--user", "nocolon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME:PASSWORD"));
}

/// At its descriptor limit the server neither spins nor leaves new TCP clients waiting for an
/// answer that never comes: each is accepted on a spare descriptor and closed at once, while
/// UDP clients are still served. (Before, a new TCP client's request timed out in the backlog.)
#[test]
fn at_the_descriptor_limit_new_tcp_clients_are_refused_at_once_and_udp_is_served() {
    use std::io::{Read, Write};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec '{}' serve turn --listen 127.0.0.1:0 --realm example.org --user alice:secret",
            env!("CARGO_BIN_EXE_peerstorm")
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Killed however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(child);
    let banner = lines.next().unwrap().unwrap();
    std::thread::spawn(move || for _ in lines {});
    let addr: std::net::SocketAddr = banner.split_whitespace().nth(5).unwrap().trim_end_matches(',').parse().unwrap();
    // Hold more connections than the server has descriptors (each sent half a frame).
    let mut held = Vec::new();
    for _ in 0..80 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(&[0x00, 0x01]);
            held.push(s);
        }
    }
    // A new TCP client: its connection is closed promptly (EOF or reset), not left hanging.
    let mut late = std::net::TcpStream::connect(addr).unwrap();
    late.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let _ = late.write_all(&[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let mut buf = [0u8; 64];
    match late.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut => {}
        other => panic!("the late client was neither closed nor reset: {other:?}"),
    }
    // UDP is served all along.
    let mut c = UdpClient::connect(addr, "alice", "secret", 1).unwrap();
    let tid = c.new_tid();
    let r = c.exchange(&peerstorm_model::stun::Message::binding_request(tid).encode(true), tid);
    assert!(r.is_ok(), "a UDP Binding is answered at the limit: {:?}", r.err());
    drop(held);
}

/// `serve turn --auth-secret` takes TURN REST API credentials minted as coturn's
/// `use-auth-secret` documents, until they expire; an expired one gets 401.
#[test]
fn rest_api_credentials_with_auth_secret() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["serve", "turn", "--listen", "127.0.0.1:0", "--realm", "example.org", "--auth-secret", "s3cret"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    let addr = banner.split_whitespace().nth(5).unwrap().trim_end_matches(',').parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mint = |expiry: u64| {
        let user = format!("{expiry}:alice");
        let password = peerstorm_turn::auth::rest_password("s3cret", &user);
        (user, password)
    };
    let (user, password) = mint(now + 600);
    let mut c = UdpClient::connect(addr, &user, &password, 1).unwrap();
    assert!(c.allocate().unwrap().is_success(), "a fresh REST credential allocates");
    let (user, password) = mint(now - 10);
    let mut c = UdpClient::connect(addr, &user, &password, 2).unwrap();
    assert_eq!(c.allocate().unwrap().error_code(), Some(401), "an expired one is refused");
    let _ = child.kill();
    let _ = child.wait();
}

/// The credentials peerstorm mints are the ones coturn (Debian's) takes with
/// `--use-auth-secret --static-auth-secret`: a fresh one allocates there too, an expired one
/// gets the same 401.
#[test]
fn rest_api_credentials_interoperate_with_coturn() {
    let dir = std::env::temp_dir().join(format!("peerstorm-rest-coturn-{}", std::process::id()));
    let (_coturn, addr) =
        support::coturn_with(&dir, (49000, 49099), &["--use-auth-secret", "--static-auth-secret", "s3cret"]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for (expiry, ok) in [(now + 600, true), (now - 10, false)] {
        let user = format!("{expiry}:alice");
        let password = peerstorm_turn::auth::rest_password("s3cret", &user);
        let mut c = UdpClient::connect(addr, &user, &password, expiry).unwrap();
        let r = c.allocate().unwrap();
        if ok {
            assert!(r.is_success(), "coturn takes a fresh credential: {:?}", r.error_code());
            c.release();
        } else {
            assert_eq!(r.error_code(), Some(401), "coturn refuses an expired one");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
