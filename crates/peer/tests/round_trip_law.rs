//! The round-trip law of each stack profile, on virtual time with no NAT and no loss: how many
//! round trips after the offerer receives the answer its ICE, DTLS and data channel are up.
//! A change to a profile's behaviour that moves a stage by a round trip fails here.

use peerstorm_broker::{Broker, Config};
use peerstorm_netsim::{LinkConfig, Network};
use peerstorm_peer::{CpuScale, IceMode, Milestone, Milestones, PeerConfig, Profile, VirtualPeer, Workload};
use peerstorm_runner::World;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The offerer's milestones for two hosts whose access links each add `rtt_ms / 4` one way.
fn offerer(profile: Profile, ice: IceMode, rtt_ms: u64) -> Milestones {
    offerer_at(profile, CpuScale::ONE, ice, rtt_ms)
}

/// The same, with the browsers' work `cpu_scale` times slower.
fn offerer_at(profile: Profile, cpu_scale: CpuScale, ice: IceMode, rtt_ms: u64) -> Milestones {
    let mut net = Network::new(7);
    let internet = net.add_segment("internet");
    let ips = [Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2)];
    let hosts: Vec<_> =
        ips.iter().map(|ip| net.add_host("p", internet, &[*ip], LinkConfig::latency(rtt_ms / 4))).collect();
    // Signaling as slow as a round trip each way (the broker link's latency is paid up and down),
    // as through a real broker: the answerer has been checking for a while when the answer lands.
    let mut world = World::new(net, Duration::from_millis(rtt_ms / 2), |base| Broker::new(Config::default(), base, 1));
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
            profile,
            cpu_scale,
            metronome_tick: None,
        };
        let base = world.base();
        world.add_peer(hosts[i], VirtualPeer::new(cfg, base), "open");
    }
    for i in [1, 0] {
        world.schedule_join(i, Duration::ZERO, Duration::from_secs(30));
    }
    world.run(&mut |_| {}).expect("no livelock or deadlock");
    let offerer = world.peers().next().expect("two peers");
    let m = offerer.connections()[0].milestones.clone();
    assert!(m.failure.is_none(), "{profile} {ice:?} {rtt_ms} ms: {m:?}");
    m
}

/// The offerer's stages (ICE connected, DTLS connected, open), in ms after it received the
/// answer.
fn stages(profile: Profile, ice: IceMode, rtt_ms: u64) -> [u128; 3] {
    let m = offerer(profile, ice, rtt_ms);
    let answer = m.get(Milestone::AnswerReceived).expect("answer");
    let after = |s| (m.get(s).unwrap_or_else(|| panic!("no {s:?}")) - answer).as_millis();
    let got = [after(Milestone::IceConnected), after(Milestone::DtlsConnected), after(Milestone::DataChannelOpen)];
    eprintln!("{profile} {ice:?} rtt {rtt_ms} ms: ice {} dtls {} open {}", got[0], got[1], got[2]);
    got
}

/// `stage = answer + k × RTT + ε` with `0 <= ε <= 20 ms` (a check waits for the agent's next
/// tick, a few ms of processing), at two RTTs so a constant cannot pass for a round trip.
fn assert_law(profile: Profile, round_trips: [u128; 3]) {
    for rtt in [60u128, 200] {
        for ice in [IceMode::Trickle, IceMode::Vanilla] {
            let got = stages(profile, ice, rtt as u64);
            for (stage, (got, k)) in ["ice", "dtls", "open"].iter().zip(got.into_iter().zip(round_trips)) {
                let law = k * rtt;
                assert!(
                    (law..=law + 20).contains(&got),
                    "{profile} {ice:?} at {rtt} ms RTT: {stage} {got} ms after the answer, the law says {k} RTT = {law} ms"
                );
            }
        }
    }
}

/// `chrome`: ICE connected 1 RTT after the answer (USE-CANDIDATE on the first check, answered at
/// once: the answerer's own checks already succeeded, answered before its answer arrived), DTLS
/// 1 RTT later (the answerer's ClientHello left when the nominating check reached it, half a
/// round trip before; no HelloVerifyRequest; the server is up on the client's Finished), open
/// 1 RTT after that (the DTLS client sends SCTP's INIT with its Finished — False Start, DTLS
/// 1.3's timing — then COOKIE-ECHO; `open` on the established association, not on the
/// DATA_CHANNEL_ACK). Chromium ↔ Chromium in the lab is 1 / 2 / 3 as well.
#[test]
fn chrome_opens_three_round_trips_after_the_answer() {
    assert_law(Profile::Chrome, [1, 2, 3]);
}

/// `rtc` on the same path: ICE 2 RTT (a check, then a nominating one), DTLS 2 RTT later (a
/// HelloVerifyRequest round more), open 3 RTT after that (INIT, COOKIE-ECHO, and the
/// DATA_CHANNEL_ACK it waits for). Its 200 ms ticks add to this at small RTTs, so the law is
/// checked where a round trip is one tick.
#[test]
fn rtc_opens_seven_round_trips_after_the_answer() {
    let got = stages(Profile::Rtc, IceMode::Trickle, 200);
    assert_eq!(got, [400, 800, 1400], "ice 2, dtls 4, open 7 RTT at 200 ms");
}

/// Before the offer leaves: `chrome` takes a settled Chromium's time to make it (5 ms), and a
/// vanilla offer waits for libwebrtc's allocation phases even with no STUN or TURN server: two
/// 50 ms steps, each at the first tick of the 64 Hz metronome at or after it is due. Here the
/// ticks fall every 15.625 ms from the peer's start and OPEN comes 30 ms in (half the broker's
/// RTT): gathering starts at 35 ms, the steps run at 93.75 (the first tick after 85) and
/// 156.25 ms, 126.25 ms after OPEN. `rtc` sends at once, and its vanilla offer as soon as the
/// host candidate is in.
#[test]
fn the_offer_leaves_after_the_browsers_own_time() {
    let offer_at = |profile, ice| {
        let m = offerer(profile, ice, 60);
        let open = m.get(Milestone::Open).expect("OPEN");
        (m.get(Milestone::OfferSent).expect("offer") - open).as_millis()
    };
    assert_eq!(offer_at(Profile::Chrome, IceMode::Trickle), 5);
    assert_eq!(offer_at(Profile::Chrome, IceMode::Vanilla), 126);
    assert_eq!(offer_at(Profile::Rtc, IceMode::Trickle), 0);
    assert_eq!(offer_at(Profile::Rtc, IceMode::Vanilla), 0);
}

/// A CPU scale stretches the browser's own work and leaves the round trips alone: at scale 3 the
/// offer leaves 3 × 5 ms after OPEN, and each handshake step after ICE (DTLS, then SCTP) takes
/// longer by the datagrams on its critical path, (3 − 1) × 0.9 ms each. ICE's own round trip
/// (STUN checks) pays none of it.
#[test]
fn a_cpu_scale_slows_the_browsers_work_not_the_network() {
    let steps = |scale: f64| {
        let m = offerer_at(Profile::Chrome, CpuScale::new(scale).unwrap(), IceMode::Trickle, 60);
        let at = |s| m.get(s).unwrap_or_else(|| panic!("no {s:?}"));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        [
            ms(at(Milestone::OfferSent) - at(Milestone::Open)),
            ms(at(Milestone::DtlsConnected) - at(Milestone::IceConnected)),
            ms(at(Milestone::DataChannelOpen) - at(Milestone::DtlsConnected)),
        ]
    };
    let (one, three) = (steps(1.0), steps(3.0));
    assert_eq!((one[0], three[0]), (5.0, 15.0), "describe_offer 5 ms, times 3");
    // The DTLS server (the offerer) is connected on the third DTLS datagram on the critical
    // path (the client's ClientHello, its flight back, the client's Finished), and opens on the
    // second of SCTP's (INIT-ACK at the client, COOKIE-ECHO back).
    for (k, stage, datagrams) in [(1, "ICE → DTLS", 3.0), (2, "DTLS → open", 2.0)] {
        let added = three[k] - one[k];
        let expected = datagrams * 2.0 * 0.9;
        assert!(
            (added - expected).abs() < 0.01,
            "{stage}: {} → {} ms, {added} ms more ({expected} expected)",
            one[k],
            three[k]
        );
    }
    // Every stage still keeps its round trips: the law at scale 1 holds with the scale's
    // own milliseconds on top.
    for (k, rtt) in [(1, 60.0), (2, 60.0)] {
        assert!(three[k] >= rtt && three[k] <= rtt + 20.0, "step {k}: {} ms", three[k]);
    }
}
