//! The selected candidate pair's types, as the browser's getStats names them.
//!
//! The `rtc` stack names a pair by the candidates it was formed from: a check sent from a host
//! candidate behind a NAT stays `host`, and a peer first heard from in a check stays `prflx`
//! after its candidate is signalled. libwebrtc renames both (p2p/base/connection.cc):
//! `Connection::MaybeUpdateLocalCandidate` names the local side by the address the peer saw the
//! check come from (the success response's XOR-MAPPED-ADDRESS): the port's candidate with that
//! address — behind a NAT the srflx one — or else a new peer-reflexive one; and
//! `Connection::MaybeUpdatePeerReflexiveCandidate` gives a peer-reflexive remote the type of a
//! candidate signalled later with its address. Chromium reports a full-cone pair as
//! `srflx/srflx` where the stack says `host/prflx`, and the report's srflx and prflx shares
//! follow the names.

use rtc::peer_connection::transport::{RTCIceCandidate, RTCIceCandidateType, RTCIceTransport};
use std::net::SocketAddr;

/// The selected pair's (local, remote) types; with `like_libwebrtc`, renamed as libwebrtc does.
pub(crate) fn selected_types(ice: &RTCIceTransport<'_>, like_libwebrtc: bool) -> Option<(String, String)> {
    let pair = ice.get_selected_candidate_pair()?;
    let (local, remote) = (pair.local(), pair.remote());
    if !like_libwebrtc {
        return Some((local.typ.to_string(), remote.typ.to_string()));
    }
    Some(renamed(
        local,
        remote,
        ice.get_selected_mapped_address(),
        &ice.get_local_candidates(),
        &ice.get_remote_candidates(),
    ))
}

fn at(c: &RTCIceCandidate, addr: SocketAddr) -> bool {
    c.port == addr.port() && c.address.parse().ok() == Some(addr.ip())
}

/// libwebrtc's names for a pair: the local side by `mapped` (the address the peer saw), the
/// remote side by a signalled candidate at a peer-reflexive remote's address.
fn renamed(
    local: &RTCIceCandidate,
    remote: &RTCIceCandidate,
    mapped: Option<SocketAddr>,
    locals: &[RTCIceCandidate],
    remotes: &[RTCIceCandidate],
) -> (String, String) {
    let local_type = match mapped {
        Some(m) if !at(local, m) => locals.iter().find(|c| at(c, m)).map_or(RTCIceCandidateType::Prflx, |c| c.typ),
        _ => local.typ,
    };
    let remote_type = match remote.typ {
        RTCIceCandidateType::Prflx => remotes
            .iter()
            .find(|c| c.typ != RTCIceCandidateType::Prflx && c.port == remote.port && c.address == remote.address)
            .map_or(remote.typ, |c| c.typ),
        t => t,
    };
    (local_type.to_string(), remote_type.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(typ: RTCIceCandidateType, addr: &str) -> RTCIceCandidate {
        let a: SocketAddr = addr.parse().unwrap();
        RTCIceCandidate { typ, address: a.ip().to_string(), port: a.port(), ..Default::default() }
    }

    const HOST: &str = "10.0.0.2:5000";
    const SRFLX: &str = "203.0.113.7:40000";

    fn names(local: &RTCIceCandidate, remote: &RTCIceCandidate, mapped: Option<&str>) -> (String, String) {
        let locals = [cand(RTCIceCandidateType::Host, HOST), cand(RTCIceCandidateType::Srflx, SRFLX)];
        let remotes = [
            cand(RTCIceCandidateType::Prflx, "198.51.100.9:6000"),
            cand(RTCIceCandidateType::Srflx, "198.51.100.9:6000"),
            cand(RTCIceCandidateType::Prflx, "198.51.100.10:7000"),
        ];
        renamed(local, remote, mapped.map(|m| m.parse().unwrap()), &locals, &remotes)
    }

    #[test]
    fn a_host_candidate_behind_a_nat_is_named_by_what_the_peer_saw() {
        let host = cand(RTCIceCandidateType::Host, HOST);
        let remote = cand(RTCIceCandidateType::Host, "198.51.100.20:1000");
        // The peer saw the NAT's mapping that the STUN server saw too: the srflx candidate.
        assert_eq!(names(&host, &remote, Some(SRFLX)).0, "srflx");
        // Another mapping (a symmetric NAT): a new peer-reflexive candidate.
        assert_eq!(names(&host, &remote, Some("203.0.113.7:40001")).0, "prflx");
        // No NAT, or no success answered yet: the candidate itself.
        assert_eq!(names(&host, &remote, Some(HOST)).0, "host");
        assert_eq!(names(&host, &remote, None).0, "host");
        // A relayed candidate is what the peer sees.
        let relay = cand(RTCIceCandidateType::Relay, "192.0.2.1:50000");
        assert_eq!(names(&relay, &remote, Some("192.0.2.1:50000")).0, "relay");
    }

    #[test]
    fn a_peer_reflexive_remote_takes_the_type_signalled_for_its_address() {
        let host = cand(RTCIceCandidateType::Host, HOST);
        let heard = cand(RTCIceCandidateType::Prflx, "198.51.100.9:6000");
        assert_eq!(names(&host, &heard, None).1, "srflx");
        // Never signalled: it stays peer-reflexive.
        let unknown = cand(RTCIceCandidateType::Prflx, "198.51.100.10:7000");
        assert_eq!(names(&host, &unknown, None).1, "prflx");
        // A signalled remote keeps its type.
        let srflx = cand(RTCIceCandidateType::Srflx, "198.51.100.9:6000");
        assert_eq!(names(&host, &srflx, None).1, "srflx");
    }
}
