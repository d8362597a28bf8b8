//! Two virtual peers connect for real (ICE, DTLS, SCTP, a data channel, BinaryPack messages
//! echoed) over the simulated network, signaling through the broker core, on virtual time.

use peerstorm_broker::{Broker, Config};
use peerstorm_netsim::{LinkConfig, Network};
use peerstorm_peer::{IceMode, Milestone, PeerConfig, VirtualPeer, Workload};
use peerstorm_runner::World;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

fn run(ice: IceMode) -> (World, Duration) {
    let mut net = Network::new(1);
    let internet = net.add_segment("internet");
    let ips = [Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2)];
    let hosts: Vec<_> = ips.iter().map(|ip| net.add_host("p", internet, &[*ip], LinkConfig::latency(10))).collect();
    let mut world = World::new(net, Duration::from_millis(20), |base| Broker::new(Config::default(), base, 1));
    for i in 0..2 {
        let cfg = PeerConfig {
            id: format!("p{i}"),
            token: "t".into(),
            connect: if i == 0 { vec!["p1".to_string()] } else { vec![] },
            call: Vec::new(),
            accept: if i == 1 { vec!["p0".to_string()] } else { vec![] },
            answer: Vec::new(),
            ice,
            host: SocketAddr::from((ips[i], 5000)),
            sockets: Vec::new(),
            heartbeat: Duration::from_secs(5),
            workload: Workload::default(),
            stun: None,
            turn: Vec::new(),
            relay_only: false,
            profile: peerstorm_peer::Profile::Chrome,
            cpu_scale: peerstorm_peer::CpuScale::ONE,
            metronome_tick: None,
        };
        let base = world.base();
        world.add_peer(hosts[i], VirtualPeer::new(cfg, base), "open");
    }
    // The answerer joins first, then the offerer (so the OFFER finds it).
    for i in [1, 0] {
        world.schedule_join(i, Duration::ZERO, Duration::from_secs(30));
    }
    world.run(&mut |_| {}).expect("no livelock or deadlock");
    let ended = world.now();
    (world, ended)
}

fn check(ice: IceMode) {
    let (world, ended) = run(ice);
    let peers: Vec<&VirtualPeer> = world.peers().collect();
    for &p in &peers {
        let conns = p.connections();
        assert_eq!(conns.len(), 1, "{}: one DataConnection", p.id());
        let m = &conns[0].milestones;
        assert!(m.failure.is_none(), "{ice:?} {}: {:?}", p.id(), m);
        for stage in [Milestone::Open, Milestone::IceConnected, Milestone::DtlsConnected, Milestone::DataChannelOpen] {
            assert!(m.get(stage).is_some(), "{ice:?} {}: no {stage:?} in {m:?}", p.id());
        }
        assert!(m.get(Milestone::IceConnected) <= m.get(Milestone::DtlsConnected));
        assert!(m.get(Milestone::DtlsConnected) <= m.get(Milestone::DataChannelOpen));
    }
    let offerer = &peers[0].connections()[0].milestones;
    assert!(offerer.get(Milestone::OfferSent) < offerer.get(Milestone::AnswerReceived));
    assert!(offerer.get(Milestone::FirstEcho).is_some(), "{ice:?}: echoes came back");
    assert!(
        peers[0].bytes_moved() >= 20 * 1000,
        "{ice:?}: ten 1000-byte messages out and back ({} bytes)",
        peers[0].bytes_moved()
    );
    let open = offerer.get(Milestone::DataChannelOpen).unwrap();
    eprintln!("{ice:?}: data channel open at {} ms virtual (run ended at {} ms)", open.as_millis(), ended.as_millis());
    assert!(open < Duration::from_secs(2), "{ice:?}: {open:?}");
}

#[test]
fn trickle_pair_connects_and_echoes() {
    check(IceMode::Trickle);
}

#[test]
fn vanilla_pair_connects_and_echoes() {
    check(IceMode::Vanilla);
}
