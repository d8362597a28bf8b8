//! pcap output read by Debian's `tshark`: a STUN exchange and a DTLS record captured on a
//! simulated link must be dissected as STUN and DTLS, with the simulated addresses. Fails, never
//! skips, when tshark is missing (`scripts/test.sh` installs it).

use peerstorm_netsim::discovery::StunServer;
use peerstorm_netsim::{Firewall, LinkConfig, NatConfig, Network, Packet, Proto, RouterSpec, Sim};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

/// A DTLS 1.2 ClientHello record header and the start of its handshake (RFC 6347 §4.1, §4.3.2).
fn dtls_client_hello() -> Vec<u8> {
    let mut body = vec![0x01]; // ClientHello
    body.extend_from_slice(&[0, 0, 0x2f]); // length 47
    body.extend_from_slice(&[0, 0]); // message_seq
    body.extend_from_slice(&[0, 0, 0]); // fragment_offset
    body.extend_from_slice(&[0, 0, 0x2f]); // fragment_length
    body.extend_from_slice(&[0xfe, 0xfd]); // client_version DTLS 1.2
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.push(0); // cookie
    body.extend_from_slice(&[0, 2, 0xc0, 0x2b]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&[0, 0]); // no extensions
    let mut rec = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
    rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn tshark_reads_our_pcap_as_stun_and_dtls() {
    let mut net = Network::new(5);
    let internet = net.add_segment("internet");
    let (ip1, ip2) = (Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2));
    let server_host = net.add_host("stun", internet, &[ip1, ip2], LinkConfig::latency(10));
    let home = net.add_segment("home");
    let client = net.add_host("client", home, &[Ipv4Addr::new(192, 168, 1, 10)], LinkConfig::latency(5));
    let router = net.add_router(RouterSpec {
        inside: home,
        outside: internet,
        inside_ip: Ipv4Addr::new(192, 168, 1, 1),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 1)],
        nat: NatConfig::default(),
        firewall: Firewall::default(),
        outside_link: LinkConfig::latency(5),
    });
    let cap = net.capture_router_outside(router);
    let server = StunServer { host: server_host, ip1, ip2, port1: 3478, port2: 3479 };
    let mut sim = Sim::new(net);
    let local = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 10), 40000);
    let req = peerstorm_model::stun::Message::binding_request([3; 12]).encode(true);
    sim.send(client, Packet { proto: Proto::Udp, src: local, dst: server.primary(), payload: req });
    sim.send(
        client,
        Packet { proto: Proto::Udp, src: local, dst: SocketAddrV4::new(ip1, 5000), payload: dtls_client_hello() },
    );
    sim.run_until(Duration::from_secs(1), |sim, d| {
        server.respond(sim, &d);
        peerstorm_netsim::Flow::Continue
    })
    .unwrap();
    let pcap = sim.net.pcap(cap);
    assert_eq!(pcap.packets, 3, "the request and the DTLS record out of the NAT, the response in");
    let path = std::env::temp_dir().join(format!("peerstorm-netsim-{}.pcap", std::process::id()));
    std::fs::write(&path, pcap.bytes()).unwrap();
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&path)
        .args([
            "-d",
            "udp.port==5000,dtls",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.protocols",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
            "-e",
            "stun.type",
            "-e",
            "dtls.handshake.type",
        ])
        .output()
        .expect("tshark is installed (scripts/test.sh installs it)");
    std::fs::remove_file(&path).ok();
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("stun") && l.contains("203.0.113.1|40000|0x0001")),
        "a STUN Binding request from the NAT's address:\n{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("stun") && l.contains("198.51.100.1|3478|0x0101")),
        "a STUN Binding success response:\n{text}"
    );
    assert!(lines.iter().any(|l| l.contains("dtls") && l.ends_with("|1")), "a DTLS ClientHello:\n{text}");
}
