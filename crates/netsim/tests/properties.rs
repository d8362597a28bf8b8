//! Property tests of the NAT and of the simulator's determinism.

use peerstorm_model::rng::Rng;
use peerstorm_netsim::nat::{Nat, NatDrop};
use peerstorm_netsim::{
    Behavior, Firewall, LinkConfig, NatConfig, Network, Packet, PortAssignment, Proto, RouterSpec, Sim,
};
use proptest::prelude::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

fn remote() -> impl Strategy<Value = SocketAddrV4> {
    (any::<[u8; 4]>(), 1u16..).prop_map(|(o, p)| SocketAddrV4::new(Ipv4Addr::from(o), p))
}

fn nat(mapping: Behavior, filtering: Behavior, ports: PortAssignment) -> Nat {
    Nat::new(
        NatConfig { mapping, filtering, port_assignment: ports, ..NatConfig::default() },
        vec![Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(203, 0, 113, 2)],
    )
}

proptest! {
    #[test]
    fn endpoint_independent_mapping_gives_one_external_endpoint(dsts in prop::collection::vec(remote(), 1..40), seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let mut n = nat(Behavior::EndpointIndependent, Behavior::AddressAndPortDependent, PortAssignment::Random);
        let inside = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000);
        let first = n.outbound(Duration::ZERO, Proto::Udp, inside, dsts[0], &mut rng).unwrap();
        for d in &dsts {
            prop_assert_eq!(n.outbound(Duration::from_secs(1), Proto::Udp, inside, *d, &mut rng).unwrap(), first);
        }
        prop_assert_eq!(n.mappings(), 1);
    }

    #[test]
    fn port_dependent_filtering_drops_what_was_not_solicited(sent in prop::collection::vec(remote(), 1..10), probes in prop::collection::vec(remote(), 1..40), seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let mut n = nat(Behavior::EndpointIndependent, Behavior::AddressAndPortDependent, PortAssignment::Preserving);
        let inside = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000);
        let mut ext = None;
        for d in &sent {
            ext = Some(n.outbound(Duration::ZERO, Proto::Udp, inside, *d, &mut rng).unwrap());
        }
        let ext = ext.unwrap();
        for p in probes.iter().chain(&sent) {
            let r = n.inbound(Duration::from_secs(1), Proto::Udp, *p, ext, false);
            if sent.contains(p) {
                prop_assert_eq!(r, Ok(inside));
            } else {
                prop_assert_eq!(r, Err(NatDrop::Filtered));
            }
        }
    }

    #[test]
    fn mappings_expire(lifetime_s in 1u64..600, idle_extra_ms in 0u64..10_000, seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let cfg = NatConfig { udp_lifetime: Duration::from_secs(lifetime_s), filtering: Behavior::EndpointIndependent, ..NatConfig::default() };
        let mut n = Nat::new(cfg, vec![Ipv4Addr::new(203, 0, 113, 1)]);
        let inside = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000);
        let server = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 3478);
        let ext = n.outbound(Duration::ZERO, Proto::Udp, inside, server, &mut rng).unwrap();
        let alive = Duration::from_secs(lifetime_s) - Duration::from_millis(1);
        prop_assert_eq!(n.inbound(alive, Proto::Udp, server, ext, false), Ok(inside));
        let dead = Duration::from_secs(lifetime_s) + Duration::from_millis(idle_extra_ms);
        prop_assert_eq!(n.inbound(dead, Proto::Udp, server, ext, false), Err(NatDrop::NoMapping));
        prop_assert_eq!(n.mappings(), 0);
    }
}

/// Two symmetric-NAT peers and a server exchange random traffic over lossy, jittery links.
fn scenario(seed: u64) -> (u64, u64) {
    let mut net = Network::new(seed);
    let internet = net.add_segment("internet");
    let link = LinkConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(15),
        loss: 0.05,
        reorder: true,
        ..LinkConfig::default()
    };
    let server = net.add_host("server", internet, &[Ipv4Addr::new(198, 51, 100, 1)], link.clone());
    let mut clients = Vec::new();
    for i in 0..4u8 {
        let home = net.add_segment(&format!("home{i}"));
        let c = net.add_host("c", home, &[Ipv4Addr::new(192, 168, i, 10)], link.clone());
        let cfg = NatConfig {
            mapping: Behavior::AddressAndPortDependent,
            port_assignment: PortAssignment::Random,
            ..NatConfig::default()
        };
        net.add_router(RouterSpec {
            inside: home,
            outside: internet,
            inside_ip: Ipv4Addr::new(192, 168, i, 1),
            external_ips: vec![Ipv4Addr::new(203, 0, 113, i + 1)],
            nat: cfg,
            firewall: Firewall::default(),
            outside_link: link.clone(),
        });
        clients.push((c, Ipv4Addr::new(192, 168, i, 10)));
    }
    let mut sim = Sim::new(net);
    let mut rng = Rng::seed(seed ^ 1);
    for k in 0..400u64 {
        let (c, ip) = clients[rng.below(4) as usize];
        let pkt = Packet {
            proto: Proto::Udp,
            src: SocketAddrV4::new(ip, 5000 + rng.below(4) as u16),
            dst: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 3478),
            payload: vec![0; 50 + rng.below(500) as usize],
        };
        sim.send(c, pkt);
        let t = sim.now() + Duration::from_millis(k % 7);
        sim.run_until(t, |sim, d| {
            if d.host == server {
                // Echo back to whoever it came from.
                sim.send(server, Packet { proto: Proto::Udp, src: d.pkt.dst, dst: d.pkt.src, payload: d.pkt.payload });
            }
            peerstorm_netsim::Flow::Continue
        })
        .unwrap();
    }
    sim.run_until(sim.now() + Duration::from_secs(5), |_, _| peerstorm_netsim::Flow::Continue).unwrap();
    (sim.net.trace_hash(), sim.net.delivered)
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [1, 2, 3, 99] {
        let a = scenario(seed);
        assert_eq!(a, scenario(seed), "seed {seed}");
        assert!(a.1 > 500, "traffic flowed: {} deliveries", a.1);
    }
    assert_ne!(scenario(1).0, scenario(2).0, "another seed changes the trace");
}
