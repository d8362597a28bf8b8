//! Debian coturn's own clients against peerstorm's server: `turnutils_stunclient` gets its
//! mapped address, and `turnutils_uclient -m 20 -n 100 -l 1000` relays through to
//! `turnutils_peer` and back with no loss. uclient binds channels above 0x4FFF (RFC 5766's
//! range), so the server runs with `rfc5766_channels`.

mod support;

use std::process::{Command, Stdio};

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn stunclient_gets_its_mapped_address() {
    let server = support::ours();
    // turnutils_stunclient sends one request and waits for ever: bound it, and give a datagram
    // lost on a busy machine two more chances.
    let mut text = String::new();
    for _ in 0..3 {
        let out = Command::new("timeout")
            .args(["10", "turnutils_stunclient", "-p", &server.addr().port().to_string(), "127.0.0.1"])
            .output()
            .expect("turnutils_stunclient (Debian coturn) is installed");
        text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        if text.contains("UDP reflexive addr: 127.0.0.1:") {
            break;
        }
    }
    assert!(text.contains("UDP reflexive addr: 127.0.0.1:"), "{text}");
}

#[test]
fn uclient_relays_with_no_loss() {
    let server = support::ours_with(|c| c.rfc5766_channels = true);
    let peer_port = free_udp_port();
    let mut peer = Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnutils_peer is installed");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = Command::new("timeout")
        .args([
            "120",
            "turnutils_uclient",
            "-u",
            support::USER,
            "-w",
            support::PASS,
            "-e",
            "127.0.0.1",
            "-r",
            &peer_port.to_string(),
        ])
        .args(["-m", "20", "-n", "100", "-l", "1000", "-p", &server.addr().port().to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let _ = peer.kill();
    let _ = peer.wait();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("tot_send_msgs=2000, tot_recv_msgs=2000"), "{text}");
    assert!(text.contains("Total lost packets 0 (0.000000%)"), "{text}");
}
