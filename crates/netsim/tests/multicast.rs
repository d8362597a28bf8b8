//! Multicast stays on its segment: every other host on the LAN gets a copy (mDNS works there),
//! nothing crosses a router (mDNS does not work across a NAT).

use peerstorm_netsim::{Firewall, Flow, LinkConfig, NatConfig, Network, Packet, Proto, RouterSpec, Sim};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

#[test]
fn multicast_reaches_every_other_host_on_the_segment_and_no_further() {
    let mut net = Network::new(1);
    let internet = net.add_segment("internet");
    let home = net.add_segment("home");
    net.add_router(RouterSpec {
        inside: home,
        outside: internet,
        inside_ip: Ipv4Addr::new(10, 0, 0, 1),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 1)],
        nat: NatConfig::default(),
        firewall: Firewall::default(),
        outside_link: LinkConfig::default(),
    });
    let a = net.add_host("a", home, &[Ipv4Addr::new(10, 0, 0, 2)], LinkConfig::latency(1));
    let b = net.add_host("b", home, &[Ipv4Addr::new(10, 0, 0, 3)], LinkConfig::latency(1));
    let c = net.add_host("c", home, &[Ipv4Addr::new(10, 0, 0, 4), Ipv4Addr::new(10, 0, 0, 5)], LinkConfig::latency(1));
    let outside = net.add_host("outside", internet, &[Ipv4Addr::new(198, 51, 100, 9)], LinkConfig::latency(1));
    let mut sim = Sim::new(net);
    let mdns = SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), 5353);
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5353);
    sim.send(a, Packet { proto: Proto::Udp, src, dst: mdns, payload: b"query".to_vec() });
    let mut got = Vec::new();
    sim.run_until(Duration::from_secs(1), |_, d| {
        got.push((d.host, d.pkt.dst));
        Flow::Continue
    })
    .unwrap();
    got.sort();
    assert_eq!(got, [(b, mdns), (c, mdns)], "b and c (once, for its two addresses); not a, not outside");
    assert!(!got.iter().any(|(h, _)| *h == outside || *h == a));
}
