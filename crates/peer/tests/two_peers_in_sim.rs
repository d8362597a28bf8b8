//! Two virtual peers connect for real (ICE, DTLS, SCTP, a data channel, BinaryPack messages
//! echoed) over the simulated network, signaling through the broker core, on virtual time.

use peerstorm_broker::{Broker, Config, ConnId, ConnectParams, Output};
use peerstorm_netsim::time::EventQueue;
use peerstorm_netsim::{LinkConfig, Network, Packet, Proto};
use peerstorm_peer::{IceMode, Milestone, PeerConfig, Transmit, VirtualPeer, Workload};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

enum Sig {
    ToBroker(usize, String),
    ToPeer(usize, String),
}

fn run(ice: IceMode) -> (Vec<VirtualPeer>, Duration) {
    let base = Instant::now();
    let mut net = Network::new(1);
    let internet = net.add_segment("internet");
    let ips = [Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2)];
    let hosts: Vec<_> = ips.iter().map(|ip| net.add_host("p", internet, &[*ip], LinkConfig::latency(10))).collect();
    let mut broker = Broker::new(Config::default(), base, 1);
    let sig_latency = Duration::from_millis(20);
    let mut peers: Vec<VirtualPeer> = (0..2)
        .map(|i| {
            let cfg = PeerConfig {
                id: format!("p{i}"),
                token: "t".into(),
                connect: if i == 0 { vec!["p1".to_string()] } else { vec![] },
                accept: if i == 1 { vec!["p0".to_string()] } else { vec![] },
                ice,
                host: SocketAddr::from((ips[i], 5000)),
                sockets: Vec::new(),
                heartbeat: Duration::from_secs(5),
                workload: Workload::default(),
                stun: None,
                turn: None,
                relay_only: false,
            };
            VirtualPeer::new(cfg, base)
        })
        .collect();
    let mut netq: EventQueue<peerstorm_netsim::net::NetEvent> = EventQueue::default();
    let mut sigq: EventQueue<Sig> = EventQueue::default();
    // The answerer joins first, then the offerer (so the OFFER finds it).
    for i in [1, 0] {
        let q = peers[i].query("peerjs");
        broker.handle_connect(base, ConnId(i as u64), &ConnectParams::from_query(&q));
        peers[i].handle_connected(base);
    }
    let mut now = Duration::ZERO;
    let deadline = Duration::from_secs(30);
    let mut steps = 0;
    loop {
        // Everything the broker and the peers want to send.
        while let Some(o) = broker.poll_output() {
            if let Output::Send { conn, text } = o {
                sigq.push(now + sig_latency, Sig::ToPeer(conn.0 as usize, text));
            }
        }
        for (i, p) in peers.iter_mut().enumerate() {
            while let Some(t) = p.poll_transmit() {
                match t {
                    Transmit::Signal(text) => sigq.push(now + sig_latency, Sig::ToBroker(i, text)),
                    Transmit::Datagram { src, dst, data } => {
                        let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else { continue };
                        net.send(&mut netq, now, hosts[i], Packet { proto: Proto::Udp, src, dst, payload: data });
                    }
                    Transmit::Stream { .. } => panic!("these peers use no TURN server, so open no TCP connection"),
                }
            }
        }
        if peers.iter().all(VirtualPeer::is_done) || now > deadline {
            break;
        }
        steps += 1;
        assert!(steps < 1_000_000, "livelock");
        // The next thing to happen: a signal, a datagram hop, or a peer's timer.
        let timers: Vec<Option<Duration>> =
            peers.iter_mut().map(|p| p.poll_timeout().map(|t| t.saturating_duration_since(base))).collect();
        let next_timer = timers.iter().flatten().min().copied();
        let candidates = [netq.peek_time(), sigq.peek_time(), next_timer];
        let Some(t) = candidates.iter().flatten().min().copied() else { break };
        now = now.max(t);
        let at = base + now;
        if netq.peek_time() == Some(t) {
            let (_, ev) = netq.pop().unwrap();
            if let Some(d) = net.handle(&mut netq, now, ev) {
                let i = hosts.iter().position(|h| *h == d.host).unwrap();
                peers[i].handle_datagram(at, SocketAddr::V4(d.pkt.src), SocketAddr::V4(d.pkt.dst), &d.pkt.payload);
            }
        } else if sigq.peek_time() == Some(t) {
            match sigq.pop().unwrap().1 {
                Sig::ToBroker(i, text) => broker.handle_text(at, ConnId(i as u64), &text),
                Sig::ToPeer(i, text) => peers[i].handle_signal(at, &text),
            }
        } else {
            for (i, p) in peers.iter_mut().enumerate() {
                if timers[i] == Some(t) {
                    p.handle_timeout(at);
                }
            }
        }
    }
    let _ = SocketAddrV4::new(ips[0], 0);
    (peers, now)
}

fn check(ice: IceMode) {
    let (peers, ended) = run(ice);
    for p in &peers {
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
