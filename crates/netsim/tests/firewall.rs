//! Firewalls: a stateful firewall in front of a public host drops unsolicited inbound traffic;
//! `udp-blocked` drops UDP and lets TCP through to 80 and 443 only (TCP segments go through the
//! same NAT, with their own mappings).

use peerstorm_netsim::{Firewall, Flow, LinkConfig, NatConfig, Network, Packet, Preset, Proto, RouterSpec, Sim};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

fn a(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn deliveries(sim: &mut Sim) -> Vec<(u32, SocketAddrV4, SocketAddrV4, Proto)> {
    let mut seen = Vec::new();
    let t = sim.now() + Duration::from_secs(1);
    sim.run_until(t, |_, d| {
        seen.push((d.host.0, d.pkt.src, d.pkt.dst, d.pkt.proto));
        Flow::Continue
    })
    .unwrap();
    seen
}

#[test]
fn stateful_firewall_without_translation() {
    let mut net = Network::new(1);
    let internet = net.add_segment("internet");
    let dmz = net.add_segment("dmz");
    let remote = net.add_host("remote", internet, &[Ipv4Addr::new(198, 51, 100, 1)], LinkConfig::latency(5));
    let public_ip = Ipv4Addr::new(203, 0, 113, 50);
    let server = net.add_host("server", dmz, &[public_ip], LinkConfig::latency(1));
    let cfg = NatConfig { translate: false, ..NatConfig::default() };
    net.add_router(RouterSpec {
        inside: dmz,
        outside: internet,
        inside_ip: Ipv4Addr::new(203, 0, 113, 49),
        external_ips: vec![public_ip],
        nat: cfg,
        firewall: Firewall::default(),
        outside_link: LinkConfig::latency(1),
    });
    let mut sim = Sim::new(net);
    // Unsolicited: dropped.
    sim.send(
        remote,
        Packet { proto: Proto::Udp, src: a("198.51.100.1:9000"), dst: a("203.0.113.50:443"), payload: b"hi".to_vec() },
    );
    assert!(deliveries(&mut sim).is_empty());
    // The server speaks first: its own address goes out untranslated, and the answer comes in.
    sim.send(
        server,
        Packet { proto: Proto::Udp, src: a("203.0.113.50:443"), dst: a("198.51.100.1:9000"), payload: b"out".to_vec() },
    );
    let seen = deliveries(&mut sim);
    assert_eq!(seen, [(remote.0, a("203.0.113.50:443"), a("198.51.100.1:9000"), Proto::Udp)]);
    sim.send(
        remote,
        Packet {
            proto: Proto::Udp,
            src: a("198.51.100.1:9000"),
            dst: a("203.0.113.50:443"),
            payload: b"back".to_vec(),
        },
    );
    assert_eq!(deliveries(&mut sim).len(), 1);
}

#[test]
fn udp_blocked_lets_only_tcp_80_and_443_out() {
    let mut net = Network::new(1);
    let internet = net.add_segment("internet");
    let server = net.add_host("server", internet, &[Ipv4Addr::new(198, 51, 100, 1)], LinkConfig::latency(5));
    let home = net.add_segment("home");
    let client = net.add_host("client", home, &[Ipv4Addr::new(192, 168, 1, 10)], LinkConfig::latency(5));
    let p = Preset::UdpBlocked;
    net.add_router(RouterSpec {
        inside: home,
        outside: internet,
        inside_ip: Ipv4Addr::new(192, 168, 1, 1),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 1)],
        nat: p.layers()[0].clone(),
        firewall: p.firewall(),
        outside_link: LinkConfig { loss: 0.5, ..LinkConfig::latency(5) },
    });
    let mut sim = Sim::new(net);
    let local = a("192.168.1.10:40000");
    for (proto, port) in
        [(Proto::Udp, 3478), (Proto::Udp, 443), (Proto::Tcp, 3478), (Proto::Tcp, 443), (Proto::Tcp, 80)]
    {
        sim.send(
            client,
            Packet {
                proto,
                src: local,
                dst: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), port),
                payload: vec![1; 40],
            },
        );
    }
    // The uplink loses half the packets, but TCP segments are retransmitted, never lost: each
    // loss costs 210 ms here, and a segment gives up waiting after 60 s of them.
    let mut seen = Vec::new();
    for _ in 0..61 {
        seen.extend(deliveries(&mut sim));
    }
    let mut got: Vec<(Proto, u16)> = seen.iter().filter(|d| d.0 == server.0).map(|d| (d.3, d.2.port())).collect();
    got.sort();
    assert_eq!(got, [(Proto::Tcp, 80), (Proto::Tcp, 443)], "{seen:?}");
    let _ = client;
}
