//! Every core is woken at its own deadline: TURN allocations and permissions expire in a
//! simulation at their lifetimes, and the broker sends EXPIRE when a queued offer's time is up,
//! with nothing else happening to wake it.

use peerstorm_broker::{Broker, Config};
use peerstorm_model::stun::{Class, Message, attr};
use peerstorm_netsim::{Flow, HostId, LinkConfig, Network, Packet, Proto};
use peerstorm_peer::{Failure, IceMode, PeerConfig, VirtualPeer, Workload};
use peerstorm_runner::World;
use peerstorm_turn::auth::{encode_with_integrity, long_term_key};
use peerstorm_turn::server::{method, tattr};
use peerstorm_turn::{TurnConfig, TurnServer};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

const TURN: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 3478);
const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 10), 40000);
const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 20), 5000);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A world with a TURN server and two hosts the test scripts: a TURN client and a peer.
fn turn_world() -> (World, HostId, HostId) {
    let mut net = Network::new(9);
    let internet = net.add_segment("internet");
    let turn_host = net.add_host("turn", internet, &[*TURN.ip()], LinkConfig::latency(5));
    let client = net.add_host("client", internet, &[*CLIENT.ip()], LinkConfig::latency(5));
    let peer = net.add_host("peer", internet, &[*PEER.ip()], LinkConfig::latency(5));
    let mut world = World::new(net, Duration::ZERO, |base| Broker::new(Config::default(), base, 9));
    let mut cfg = TurnConfig::new("sim", SocketAddr::V4(TURN));
    cfg.add_user("u", "p");
    let core = TurnServer::new(cfg, world.base(), [3; 16]);
    world.add_turn(turn_host, core, Duration::ZERO);
    (world, client, peer)
}

/// Sends from `from` and runs up to a second for a packet to reach `to`.
fn exchange(w: &mut World, from: HostId, pkt: Packet, to: HostId) -> Option<Packet> {
    w.send(from, pkt);
    let mut got = None;
    let until = w.now() + secs(1);
    w.run_until(until, |_, d| {
        if d.host == to {
            got = Some(d.pkt);
            return Flow::Stop;
        }
        Flow::Continue
    })
    .unwrap();
    got
}

fn to_turn(payload: Vec<u8>) -> Packet {
    Packet { proto: Proto::Udp, src: CLIENT, dst: TURN, payload }
}

#[test]
fn turn_permissions_and_allocations_expire_at_their_lifetimes() {
    let (mut w, client, peer) = turn_world();
    let key = long_term_key("u", "sim", "p");
    let ask = |w: &mut World, bytes: Vec<u8>| {
        let got = exchange(w, client, to_turn(bytes), client).expect("an answer");
        Message::decode(&got.payload).unwrap()
    };
    let mut alloc = Message::new(method::ALLOCATE, Class::Request, [1; 12]);
    alloc.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    let nonce = ask(&mut w, alloc.encode(true)).attribute(attr::NONCE).expect("401 with a nonce").to_vec();
    let signed = |mut m: Message| {
        m.push(attr::USERNAME, b"u".to_vec());
        m.push(attr::REALM, b"sim".to_vec());
        m.push(attr::NONCE, nonce.clone());
        encode_with_integrity(&m, &key, true)
    };
    let mut alloc = Message::new(method::ALLOCATE, Class::Request, [2; 12]);
    alloc.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    let answer = ask(&mut w, signed(alloc));
    assert_eq!(answer.class, Class::Success);
    let SocketAddr::V4(relay) = answer.address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap() else { panic!("v4") };
    let mut perm = Message::new(method::CREATE_PERMISSION, Class::Request, [3; 12]);
    perm.push_address(tattr::XOR_PEER_ADDRESS, SocketAddr::V4(PEER));
    assert_eq!(ask(&mut w, signed(perm)).class, Class::Success);
    let created = w.now();
    let from_peer = |n: u8| Packet { proto: Proto::Udp, src: PEER, dst: relay, payload: vec![n; 8] };

    // RFC 8656 §9: a permission lasts 300 s; the allocation 600 s (the default lifetime).
    w.run_until(created + secs(298), |_, _| Flow::Continue).unwrap();
    assert!(exchange(&mut w, peer, from_peer(1), client).is_some(), "the permission holds before 300 s");
    w.run_until(created + secs(302), |_, _| Flow::Continue).unwrap();
    assert!(exchange(&mut w, peer, from_peer(2), client).is_none(), "the permission is gone after 300 s");
    assert_eq!(w.turn().unwrap().allocations(), 1, "the allocation outlives its permission");
    w.run_until(created + secs(598), |_, _| Flow::Continue).unwrap();
    assert_eq!(w.turn().unwrap().allocations(), 1, "the allocation holds before 600 s");
    w.run_until(created + secs(602), |_, _| Flow::Continue).unwrap();
    assert_eq!(w.turn().unwrap().allocations(), 0, "the allocation expired at 600 s");
}

#[test]
fn the_broker_sends_expire_at_its_deadline_with_nothing_else_happening() {
    let mut net = Network::new(4);
    let internet = net.add_segment("internet");
    let host = net.add_host("p", internet, &[Ipv4Addr::new(198, 51, 100, 30)], LinkConfig::latency(5));
    let one_way = Duration::from_millis(20);
    let mut w = World::new(net, one_way, |base| Broker::new(Config::default(), base, 4));
    let cfg = PeerConfig {
        id: "caller".into(),
        token: "t".into(),
        // Nobody of that name ever joins: the OFFER waits in the broker's queue.
        connect: vec!["nobody".into()],
        call: Vec::new(),
        accept: Vec::new(),
        answer: Vec::new(),
        ice: IceMode::Trickle,
        host: SocketAddr::from(([198, 51, 100, 30], 5000)),
        sockets: Vec::new(),
        // No heartbeat before the deadline: nothing but the broker's own timer can act.
        heartbeat: secs(120),
        workload: Workload::default(),
        stun: None,
        turn: Vec::new(),
        relay_only: false,
        profile: peerstorm_peer::Profile::Chrome,
        cpu_scale: peerstorm_peer::CpuScale::ONE,
        metronome_tick: None,
    };
    let base = w.base();
    let i = w.add_peer(host, VirtualPeer::new(cfg, base), "open");
    w.schedule_join(i, Duration::ZERO, secs(60));
    w.run(&mut |_| {}).unwrap();
    let m = &w.peer(i).connections()[0].milestones;
    assert_eq!(m.failure, Some(Failure::Expire), "{m:?}");
    let failed = m.failed_at.expect("a failure time");
    // The OFFER reaches the broker at 2 one-way delays (OPEN down, OFFER up); it expires 5 s
    // later, at the first 1 s sweep after that, and EXPIRE takes one more one-way delay.
    let queued = 2 * one_way;
    let config = Config::default();
    assert!(
        failed >= queued + config.expire_timeout
            && failed <= queued + config.expire_timeout + config.cleanup_interval + one_way,
        "EXPIRE at {failed:?}, expected within a sweep of {:?}",
        queued + config.expire_timeout
    );
}

#[test]
fn a_run_past_its_event_bound_is_a_livelock_that_names_the_unfinished_peers() {
    let s = peerstorm_scenario::Scenario::parse("name = \"x\"\n[peers]\ncount = 4\n").unwrap();
    let mut sw = peerstorm_runner::ScenarioWorld::build(&s, IceMode::Trickle, peerstorm_scenario::Shard::WHOLE);
    sw.world.set_max_events(50);
    let e = sw.world.run(&mut |_| {}).unwrap_err().to_string();
    assert!(e.starts_with("livelock: more than 50 events"), "{e}");
    assert!(e.contains("peer-000000 (open, last milestone"), "{e}");
}
