//! Two virtual peers in a PeerJS media call over the simulated network: OFFER with
//! `type: "media"`, both sides' Opus- and VP8-shaped streams over SRTP, measured by the other
//! side; and a call next to a DataConnection between the same two peers.

use peerstorm_broker::{Broker, Config};
use peerstorm_netsim::{LinkConfig, Network};
use peerstorm_peer::media::{AudioSpec, Kind, VideoSpec};
use peerstorm_peer::{IceMode, MediaWorkload, Milestone, PeerConfig, VirtualPeer, Workload};
use peerstorm_runner::World;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

fn run(with_data: bool) -> World {
    let mut net = Network::new(3);
    let internet = net.add_segment("internet");
    let ips = [Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2)];
    let hosts: Vec<_> = ips.iter().map(|ip| net.add_host("p", internet, &[*ip], LinkConfig::latency(10))).collect();
    let mut world = World::new(net, Duration::from_millis(20), |base| Broker::new(Config::default(), base, 1));
    let epoch = world.base();
    let media = MediaWorkload {
        audio: Some(AudioSpec::default()),
        video: Some(VideoSpec { bitrate_kbps: 1200, fps: 30, keyframe_interval: 60, keyframe_ratio: 5 }),
        duration: Duration::from_secs(4),
        with_data,
        epoch: Some(epoch),
        metadata: Some(serde_json::json!({ "room": "lobby", "n": 2 })),
    };
    for i in 0..2 {
        let other = format!("p{}", 1 - i);
        let cfg = PeerConfig {
            id: format!("p{i}"),
            token: "t".into(),
            connect: if i == 0 && with_data { vec![other.clone()] } else { vec![] },
            call: if i == 0 { vec![other.clone()] } else { vec![] },
            accept: if i == 1 && with_data { vec![other.clone()] } else { vec![] },
            answer: if i == 1 { vec![other.clone()] } else { vec![] },
            ice: IceMode::Trickle,
            host: SocketAddr::from((ips[i], 5000)),
            sockets: Vec::new(),
            heartbeat: Duration::from_secs(5),
            workload: Workload { media: Some(media.clone()), ..Workload::default() },
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
    for i in [1, 0] {
        world.schedule_join(i, Duration::ZERO, Duration::from_secs(30));
    }
    world.run(&mut |_| {}).expect("no livelock or deadlock");
    world
}

fn check_call(world: &World) {
    for p in world.peers() {
        let conns = p.connections();
        let call = conns.iter().find(|c| c.media.is_some()).unwrap_or_else(|| panic!("{}: a call", p.id()));
        let m = &call.milestones;
        assert!(m.failure.is_none(), "{}: {m:?}", p.id());
        assert!(m.get(Milestone::WorkloadDone).is_some(), "{}: sent for its duration: {m:?}", p.id());
        // PeerJS opens a data channel with every call, for its close signal.
        assert!(m.get(Milestone::DataChannelOpen).is_some(), "{}: the call's channel: {m:?}", p.id());
        let media = call.media.as_ref().unwrap();
        if !call.offerer {
            // PeerJS's call metadata travels in the OFFER.
            assert_eq!(media.metadata, Some(serde_json::json!({ "room": "lobby", "n": 2 })), "{}", p.id());
        }
        // RTCP reception reports give the RTT: two 10 ms links each way.
        let rtt = media.rtt_ms.unwrap_or_else(|| panic!("{}: no RTT from RTCP: {media:?}", p.id()));
        assert!((40.0..41.0).contains(&rtt), "{}: RTT {rtt} ms", p.id());
        assert_eq!(media.received.len(), 2, "{}: audio and video came in: {media:?}", p.id());
        let dtls = m.get(Milestone::DtlsConnected).unwrap();
        for s in &media.received {
            let kind = s.kind.unwrap();
            assert_eq!(s.expected, s.packets, "{} {kind:?}: a clean link loses nothing", p.id());
            assert!(s.first_packet.unwrap() >= dtls, "SRTP flows after DTLS");
            let bps = s.bitrate().unwrap();
            let target = match kind {
                Kind::Audio => 80.0 * 8.0 * 50.0,
                Kind::Video => 1_200_000.0,
            };
            // The first and last packets bound the span, so a whole stream measures its rate.
            assert!((bps - target).abs() / target < 0.05, "{} {kind:?}: {bps} bit/s for {target}", p.id());
            // Two 10 ms links one way, plus serialization on no bandwidth limit.
            let delay = s.delay_mean_ms.unwrap();
            assert!((20.0..21.0).contains(&delay), "{} {kind:?}: one-way delay {delay} ms", p.id());
            assert!(s.jitter_ms < 1.0, "{} {kind:?}: jitter {}", p.id(), s.jitter_ms);
            if kind == Kind::Video {
                assert!(s.keyframes >= 2, "a key frame each 60 frames: {s:?}");
                assert_eq!(s.freezes, 0, "{s:?}");
                assert!(s.first_frame.unwrap() >= s.first_packet.unwrap());
            }
        }
        let sent: u64 = media.sent.iter().map(|(_, s)| s.packets).sum();
        assert!(sent > 0);
    }
}

#[test]
fn a_call_carries_audio_and_video_both_ways() {
    check_call(&run(false));
}

#[test]
fn a_call_and_a_data_connection_between_the_same_peers_at_once() {
    let world = run(true);
    check_call(&world);
    let p0 = world.peers().next().unwrap();
    let data = p0.connections().into_iter().find(|c| c.media.is_none()).expect("the DataConnection");
    assert!(data.milestones.failure.is_none(), "{:?}", data.milestones);
    assert!(data.milestones.get(Milestone::WorkloadDone).is_some(), "its echoes came back: {:?}", data.milestones);
}
