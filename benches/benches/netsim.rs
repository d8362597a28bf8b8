//! Datagrams routed per second through the simulator: host → its NAT → the public network →
//! another NAT → host, with 100,000 live mappings in the NATs (`cargo bench -p
//! peerstorm-benches --bench netsim`). Each iteration sends one datagram and runs the event loop
//! until it is delivered (three hop events).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use peerstorm_netsim::time::EventQueue;
use peerstorm_netsim::{Behavior, Firewall, LinkConfig, NatConfig, Network, Packet, Proto, RouterSpec};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

fn routing(c: &mut Criterion) {
    let mut net = Network::new(1);
    let internet = net.add_segment("internet");
    // Mappings that outlive the run: the loop advances virtual time, and a datagram that hits an
    // expired mapping would measure the (cheaper) drop path instead of the route.
    let cfg = NatConfig {
        mapping: Behavior::EndpointIndependent,
        filtering: Behavior::AddressAndPortDependent,
        udp_lifetime: Duration::from_secs(365 * 86_400),
        ..NatConfig::default()
    };
    let mut sides = Vec::new();
    for i in 0..2u8 {
        let home = net.add_segment("home");
        let host = net.add_host("h", home, &[Ipv4Addr::new(10, 0, i, 2)], LinkConfig::latency(5));
        let r = net.add_router(RouterSpec {
            inside: home,
            outside: internet,
            inside_ip: Ipv4Addr::new(10, 0, i, 1),
            external_ips: vec![Ipv4Addr::new(203, 0, 113, i + 1)],
            nat: cfg.clone(),
            firewall: Firewall::default(),
            outside_link: LinkConfig::latency(10),
        });
        sides.push((host, r, Ipv4Addr::new(10, 0, i, 2)));
    }
    let far = net.add_host("far", internet, &[Ipv4Addr::new(198, 51, 100, 9)], LinkConfig::default());
    let mut q = EventQueue::default();
    let mut now = Duration::ZERO;
    // 50,000 mappings in each NAT: one per source port, toward a far host.
    for &(host, _, ip) in &sides {
        for port in 10_000..60_000u16 {
            let pkt = Packet {
                proto: Proto::Udp,
                src: SocketAddrV4::new(ip, port),
                dst: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 9), 9),
                payload: vec![0; 8],
            };
            net.send(&mut q, now, host, pkt);
        }
    }
    while let Some((at, ev)) = q.pop() {
        now = at;
        net.handle(&mut q, at, ev);
    }
    let live: usize = sides.iter().map(|s| net.nat(s.1).mappings()).sum();
    assert_eq!(live, 100_000, "100,000 live mappings");
    let _ = far;
    // Open a path between the two hosts on port 5000 (both NATs are EIM with APDF).
    let (a, b) = (sides[0], sides[1]);
    let a_local = SocketAddrV4::new(a.2, 5000);
    let b_local = SocketAddrV4::new(b.2, 5000);
    let a_ext = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 1), 5000);
    let b_ext = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 2), 5000);
    for (h, src, dst) in [(a.0, a_local, b_ext), (b.0, b_local, a_ext)] {
        net.send(&mut q, now, h, Packet { proto: Proto::Udp, src, dst, payload: vec![0; 100] });
    }
    while let Some((at, ev)) = q.pop() {
        now = at;
        net.handle(&mut q, at, ev);
    }
    let before = net.delivered;
    let drops_before: u64 = net.drops.values().sum();
    let mut sent = 0u64;
    let payload = vec![0u8; 160];
    let mut g = c.benchmark_group("netsim");
    g.throughput(Throughput::Elements(1));
    g.bench_function("route host→NAT→internet→NAT→host (100k live mappings)", |bench| {
        bench.iter(|| {
            now += Duration::from_micros(100);
            sent += 1;
            net.send(
                &mut q,
                now,
                a.0,
                Packet { proto: Proto::Udp, src: a_local, dst: b_ext, payload: payload.clone() },
            );
            while let Some((at, ev)) = q.pop() {
                if let Some(d) = net.handle(&mut q, at, ev) {
                    black_box(d);
                }
            }
        })
    });
    g.finish();
    assert_eq!(net.delivered - before, sent, "every datagram reached the far host: drops {:?}", net.drops);
    assert_eq!(net.drops.values().sum::<u64>(), drops_before, "nothing dropped while measuring");
}

criterion_group!(benches, routing);
criterion_main!(benches);
