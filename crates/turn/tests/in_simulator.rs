//! The TURN server as a host of the simulated network: a client behind a symmetric NAT
//! allocates, permits a public peer, and data flows both ways through the relay.

use peerstorm_broker::{Broker, Config};
use peerstorm_model::stun::{Class, Message, attr};
use peerstorm_netsim::{
    Behavior, Firewall, Flow, LinkConfig, NatConfig, Network, Packet, PortAssignment, Proto, RouterSpec,
};
use peerstorm_runner::World;
use peerstorm_turn::auth::{encode_with_integrity, long_term_key};
use peerstorm_turn::server::{method, tattr};
use peerstorm_turn::{TurnConfig, TurnServer};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

#[test]
fn relay_through_a_symmetric_nat_in_the_simulator() {
    let mut net = Network::new(3);
    let internet = net.add_segment("internet");
    let turn_ip = Ipv4Addr::new(198, 51, 100, 7);
    let turn_host = net.add_host("turn", internet, &[turn_ip], LinkConfig::latency(10));
    let peer_host = net.add_host("peer", internet, &[Ipv4Addr::new(198, 51, 100, 20)], LinkConfig::latency(10));
    let home = net.add_segment("home");
    let client = net.add_host("client", home, &[Ipv4Addr::new(192, 168, 1, 10)], LinkConfig::latency(5));
    let sym = NatConfig {
        mapping: Behavior::AddressAndPortDependent,
        port_assignment: PortAssignment::Random,
        ..NatConfig::default()
    };
    net.add_router(RouterSpec {
        inside: home,
        outside: internet,
        inside_ip: Ipv4Addr::new(192, 168, 1, 1),
        external_ips: vec![Ipv4Addr::new(203, 0, 113, 1)],
        nat: sym,
        firewall: Firewall::default(),
        outside_link: LinkConfig::latency(5),
    });
    // The world runs the TURN core on its host; packets to the other hosts come back here.
    let mut sim = World::new(net, Duration::ZERO, |base| Broker::new(Config::default(), base, 3));
    let server_addr = SocketAddr::from((turn_ip, 3478));
    let mut cfg = TurnConfig::new("sim", server_addr);
    cfg.add_user("u", "p");
    let core = TurnServer::new(cfg, sim.base(), [1; 16]);
    sim.add_turn(turn_host, core, Duration::ZERO);
    let local = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 10), 40000);
    let peer = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 20), 5000);
    let key = long_term_key("u", "sim", "p");

    // One request/answer through the simulator; the server handles what reaches its host.
    let exchange = |sim: &mut World, bytes: Vec<u8>| -> Message {
        sim.send(
            client,
            Packet { proto: Proto::Udp, src: local, dst: SocketAddrV4::new(turn_ip, 3478), payload: bytes },
        );
        let mut got = None;
        let t = sim.now() + Duration::from_secs(1);
        sim.run_until(t, |_, d| {
            if d.host == client {
                got = Message::decode(&d.pkt.payload).ok();
                return Flow::Stop;
            }
            Flow::Continue
        })
        .unwrap();
        got.expect("an answer through the NAT")
    };
    let first = exchange(&mut sim, {
        let mut m = Message::new(method::ALLOCATE, Class::Request, [1; 12]);
        m.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
        m.encode(true)
    });
    let nonce = first.attribute(attr::NONCE).expect("401 with a nonce").to_vec();
    let auth = |m: &mut Message| {
        m.push(attr::USERNAME, b"u".to_vec());
        m.push(attr::REALM, b"sim".to_vec());
        m.push(attr::NONCE, nonce.clone());
    };
    let mut m = Message::new(method::ALLOCATE, Class::Request, [2; 12]);
    m.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    auth(&mut m);
    let alloc = exchange(&mut sim, encode_with_integrity(&m, &key, true));
    let relay = alloc.address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    let mapped = alloc.address(attr::XOR_MAPPED_ADDRESS).unwrap().unwrap();
    assert_eq!(relay.ip(), turn_ip);
    assert_eq!(mapped.ip().to_string(), "203.0.113.1", "the server sees the NAT's address");
    let mut m = Message::new(method::CREATE_PERMISSION, Class::Request, [3; 12]);
    m.push_address(tattr::XOR_PEER_ADDRESS, SocketAddr::V4(peer));
    auth(&mut m);
    assert_eq!(exchange(&mut sim, encode_with_integrity(&m, &key, true)).class, Class::Success);
    // Client → relay → peer.
    let mut send = Message::new(method::SEND, Class::Indication, [4; 12]);
    send.push_address(tattr::XOR_PEER_ADDRESS, SocketAddr::V4(peer));
    send.push(tattr::DATA, b"to the peer".to_vec());
    sim.send(
        client,
        Packet { proto: Proto::Udp, src: local, dst: SocketAddrV4::new(turn_ip, 3478), payload: send.encode(true) },
    );
    let mut at_peer = None;
    let t = sim.now() + Duration::from_secs(1);
    sim.run_until(t, |_, d| {
        if d.host == peer_host {
            at_peer = Some((d.pkt.src, d.pkt.payload.clone()));
            return Flow::Stop;
        }
        Flow::Continue
    })
    .unwrap();
    let (from, data) = at_peer.expect("relayed to the peer");
    assert_eq!((SocketAddr::V4(from), data.as_slice()), (relay, &b"to the peer"[..]));
    // Peer → relay → client, as a Data indication through the symmetric NAT.
    let SocketAddr::V4(relay4) = relay else { panic!() };
    sim.send(peer_host, Packet { proto: Proto::Udp, src: peer, dst: relay4, payload: b"back".to_vec() });
    let mut at_client = None;
    let t = sim.now() + Duration::from_secs(1);
    sim.run_until(t, |_, d| {
        if d.host == client {
            at_client = Message::decode(&d.pkt.payload).ok();
            return Flow::Stop;
        }
        Flow::Continue
    })
    .unwrap();
    let ind = at_client.expect("a Data indication reached the client");
    assert_eq!(ind.method, method::DATA);
    assert_eq!(ind.attribute(tattr::DATA).unwrap(), b"back");
    assert_eq!(ind.address(tattr::XOR_PEER_ADDRESS).unwrap().unwrap(), SocketAddr::V4(peer));
}
