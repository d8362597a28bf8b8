//! `peerstorm serve turn` as a process: it prints where it listens, answers STUN and TURN, and
//! stops cleanly on SIGTERM; a bad --user is a usage error.

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
