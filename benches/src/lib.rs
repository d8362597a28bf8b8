//! What the benches in `benches/` share: [`bare_pair`], two bare `rtc` stacks opening a data
//! channel on a virtual clock, the reference the simulator's CPU per pair is held against.

use bytes::BytesMut;
use peerstorm_peer::Profile;
use rtc::data_channel::RTCDataChannelInit;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A host candidate at `addr`, then the end of gathering; returns the candidate for the other
/// side.
fn add_host(pc: &mut RTCPeerConnection, addr: SocketAddr) -> RTCIceCandidateInit {
    let base_config = CandidateConfig {
        network: "udp".to_owned(),
        address: addr.ip().to_string(),
        port: addr.port(),
        component: 1,
        ..Default::default()
    };
    let c = CandidateHostConfig { base_config, ..Default::default() }.new_candidate_host().expect("a host candidate");
    let init = RTCIceCandidate::from(&c).to_json().expect("candidate JSON");
    pc.add_local_candidate(init.clone()).expect("local candidate");
    pc.add_local_candidate(RTCIceCandidateInit::default()).expect("end of candidates");
    init
}

/// Two bare `rtc` stacks with `profile`'s settings (the ones a virtual peer's DataConnection
/// uses) open a data channel: offer and answer handed over at once, one host candidate each
/// trickled at once, every datagram delivered `rtt / 2` later, every timer run when due and
/// after every datagram (as the virtual peers drive the stack). No broker, NAT, STUN,
/// TURN or netsim: the protocol work of a pair and nothing else. Returns the virtual time until
/// both ends saw the channel open; panics if they do not within a minute of it.
pub fn bare_pair(profile: Profile, rtt: Duration, seed: u64) -> Duration {
    let base = Instant::now();
    let addrs: [SocketAddr; 2] = ["10.0.0.1:5000".parse().unwrap(), "10.0.0.2:5000".parse().unwrap()];
    let new = |k: u64| peerstorm_peer::conn::bare_stack(base, profile, seed ^ k).expect("a stack");
    let mut pcs = [new(1), new(2)];
    let init = RTCDataChannelInit { ordered: true, ..Default::default() };
    pcs[0].create_data_channel("bench", Some(init)).expect("a data channel");
    let offer = pcs[0].create_offer(None).expect("an offer");
    pcs[0].set_local_description(base, offer.clone()).expect("the offer set");
    pcs[1].set_remote_description(base, offer).expect("the offer taken");
    let answer = pcs[1].create_answer(None).expect("an answer");
    pcs[1].set_local_description(base, answer.clone()).expect("the answer set");
    pcs[0].set_remote_description(base, answer).expect("the answer taken");
    // Trickled at once, as the virtual peers' CANDIDATEs arrive; then every handler acts.
    let cands = [add_host(&mut pcs[0], addrs[0]), add_host(&mut pcs[1], addrs[1])];
    for (k, c) in cands.into_iter().enumerate() {
        pcs[1 - k].add_remote_candidate(c).expect("remote candidate");
    }
    for pc in &mut pcs {
        let _ = pc.handle_timeout(base);
    }
    // Datagrams in flight by (arrival, sequence): (to, from, bytes).
    let mut wire: BTreeMap<(Duration, u64), (usize, SocketAddr, BytesMut)> = BTreeMap::new();
    let (mut now, mut seq, mut open) = (Duration::ZERO, 0u64, [false; 2]);
    loop {
        for (k, pc) in pcs.iter_mut().enumerate() {
            while let Some(w) = pc.poll_write() {
                seq += 1;
                wire.insert((now + rtt / 2, seq), (1 - k, addrs[k], w.message));
            }
            while let Some(ev) = pc.poll_event() {
                if let RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(_)) = ev {
                    open[k] = true;
                }
            }
            while pc.poll_read().is_some() {}
        }
        if open == [true; 2] {
            return now;
        }
        let timers = pcs.iter_mut().filter_map(|pc| pc.poll_timeout()).map(|t| t.saturating_duration_since(base));
        let next = timers.chain(wire.keys().next().map(|k| k.0)).min().expect("something to do").max(now);
        assert!(next < Duration::from_secs(60), "the bare pair did not open in a minute ({profile:?})");
        now = next;
        let at = base + now;
        while let Some(entry) = wire.first_entry().filter(|e| e.key().0 <= now) {
            let (to, from, message) = entry.remove();
            let transport = TransportContext {
                local_addr: addrs[to],
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            };
            // As the virtual peers do (`read_and_flush`): output a datagram makes due leaves now.
            let _ = pcs[to].handle_read(TaggedBytesMut { now: at, transport, message });
            let _ = pcs[to].handle_timeout(at);
        }
        for pc in &mut pcs {
            if pc.poll_timeout().is_some_and(|t| t <= at) {
                let _ = pc.handle_timeout(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bare pair opens, in the `chrome` profile's few round trips (ICE, DTLS with the
    /// client's data in its Finished flight, SCTP): well under a second at 60 ms.
    #[test]
    fn a_bare_pair_opens_its_channel() {
        let t = bare_pair(Profile::Chrome, Duration::from_millis(60), 1);
        assert!(t > Duration::from_millis(120) && t < Duration::from_millis(1000), "{t:?}");
        // The `rtc` profile's acceptance waits and 200 ms ticks make it slower.
        assert!(bare_pair(Profile::Rtc, Duration::from_millis(60), 1) > t);
    }
}
