//! From a run's outcome (the simulator's or the live runner's) to the report layer's
//! [`RunMetrics`]: every setup stage of every connection into HDR histograms (overall, per
//! NAT-pair class, per selected candidate pair), counters, and per-second series.

use crate::outcome::{PeerResult, RunOutcome, Shard};
use peerstorm_peer::{ConnOutcome, Failure, IceMode, Milestone};
use peerstorm_report::metrics::scoped;
use peerstorm_report::summary::STAGES;
use peerstorm_report::{Metrics, RunMetrics};
use std::time::Duration;

const MILESTONES: [Milestone; 15] = [
    Milestone::SignalingConnected,
    Milestone::Open,
    Milestone::OfferSent,
    Milestone::OfferReceived,
    Milestone::FirstLocalCandidate,
    Milestone::FirstSrflx,
    Milestone::FirstRelay,
    Milestone::GatheringComplete,
    Milestone::AnswerReceived,
    Milestone::TurnPermission,
    Milestone::IceConnected,
    Milestone::DtlsConnected,
    Milestone::DataChannelOpen,
    Milestone::FirstEcho,
    Milestone::WorkloadDone,
];

pub fn ice_name(ice: IceMode) -> &'static str {
    match ice {
        IceMode::Trickle => "trickle",
        IceMode::Vanilla => "vanilla",
    }
}

pub fn failure_name(f: &Failure) -> &'static str {
    match f {
        Failure::IceFailed => "ice_failed",
        Failure::DtlsFailed => "dtls_failed",
        Failure::Expire => "expire",
        Failure::IdTaken => "id_taken",
        Failure::BrokerError(_) => "broker_error",
        Failure::Timeout => "timeout",
        Failure::HostExited => "host_exited",
    }
}

/// Why a connection did not succeed, once per connection: the offerer's failure, else the
/// answerer's. A timeout or an ICE failure is named by its structural cause where the run knows
/// it: `turn_refused` when a side's TURN server refused its allocation (no relayed candidate),
/// `udp_blocked` when a side sits behind a UDP-blocking firewall and gathered no relayed
/// candidate (nothing could reach it).
fn cause(offerer: (&PeerResult, &ConnOutcome), answerer: (&PeerResult, &ConnOutcome)) -> &'static str {
    let Some(f) = offerer.1.milestones.failure.as_ref().or(answerer.1.milestones.failure.as_ref()) else {
        return "incomplete";
    };
    if !matches!(f, Failure::Timeout | Failure::IceFailed) {
        return failure_name(f);
    }
    let no_relay = |c: &ConnOutcome| c.milestones.get(Milestone::FirstRelay).is_none();
    let sides = [offerer, answerer];
    if sides.iter().any(|(_, c)| c.milestones.turn_error.is_some() && no_relay(c)) {
        "turn_refused"
    } else if sides.iter().any(|(p, c)| p.nat == "udp-blocked" && no_relay(c)) {
        "udp_blocked"
    } else {
        failure_name(f)
    }
}

fn class_of(a: &str, b: &str) -> String {
    if a <= b { format!("{a} ↔ {b}") } else { format!("{b} ↔ {a}") }
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// One run's metrics.
pub fn collect(r: &RunOutcome) -> RunMetrics {
    // A live run's network is real: RTT 0 stands for it in the report layer.
    let rtt_ms = r.sim.as_ref().map_or(0, |s| s.rtt.as_millis() as u64);
    let mut m = RunMetrics::new(ice_name(r.ice), rtt_ms);
    m.point = r.point.clone();
    // An interrupted run counts what it got to: the peers that started, the connections that
    // finished (succeeded or failed); those still in flight were cut and are counted apart.
    let started = |p: &PeerResult| !r.interrupted || p.start <= r.end;
    if r.interrupted {
        m.count("interrupted", 1);
    }
    for p in r.peers.iter().filter(|p| p.in_shard && started(p)) {
        m.count("peers", 1);
        m.tick("peers_started", p.start.as_secs() as usize, 1);
    }
    m.series.entry("peers_started".into()).or_default();
    for key in ["connections_open", "connections_failed"] {
        m.series.entry(key.into()).or_default();
    }
    for l in &r.links {
        let (pa, pb) = (&r.peers[l.offerer.0], &r.peers[l.answerer.0]);
        let (o, a) = (&pa.connections[l.offerer.1], &pb.connections[l.answerer.1]);
        let class = class_of(pa.nat, pb.nat);
        let selected = o.milestones.selected.as_ref().map(|(x, y)| format!("{x}/{y}"));
        let ok = o.milestones.failure.is_none() && o.milestones.get(Milestone::WorkloadDone).is_some();
        let failed = o.milestones.failure.is_some() || a.milestones.failure.is_some();
        if r.interrupted && !ok && !failed {
            if started(pa) {
                m.count("connections_cut", 1);
            }
            continue;
        }
        for scope in [None, Some(class.as_str())] {
            let key = |name: &str| scope.map_or(name.to_string(), |c| scoped(name, "class", c));
            m.count(key("connections"), 1);
            m.count(key("connections_ok"), u64::from(ok));
            // Once per connection that did not succeed: the offerer's cause, else the
            // answerer's (both sides of a connection that timed out say so; it is one failure),
            // so the failures add up to connections − connections_ok.
            if !ok {
                m.count(key(&format!("failures.{}", cause((pa, o), (pb, a)))), 1);
            }
            if let Some(sel) = &selected {
                m.count(key(&format!("selected.{sel}")), 1);
            }
        }
        for c in [o, a] {
            if let Some(code) = &c.milestones.turn_error {
                m.count(format!("turn_errors.{code}"), 1);
            }
            if c.milestones.get(Milestone::FirstRelay).is_some() {
                m.count("turn.allocations", 1);
            }
        }
        for ms in MILESTONES {
            let name = ms.as_str();
            let Some(t) = o.milestones.get(ms) else { continue };
            if !STAGES.contains(&name) {
                continue;
            }
            let stage = format!("setup.{name}");
            m.record(stage.clone(), us(t));
            m.record(scoped(&stage, "class", &class), us(t));
            if let Some(sel) = &selected {
                m.record(scoped(&stage, "selected", sel), us(t));
            }
        }
        if let (Some(open), Some(end)) =
            (o.milestones.get(Milestone::DataChannelOpen), o.milestones.get(Milestone::WorkloadDone))
            && end > open
        {
            let bps = (o.bytes_moved as f64 * 8.0 / (end - open).as_secs_f64()).round() as u64;
            m.record("dc.goodput", bps);
            m.record(scoped("dc.goodput", "class", &class), bps);
        }
        if let Some(t) = o.milestones.get(Milestone::DataChannelOpen).or(o.milestones.get(Milestone::DtlsConnected)) {
            m.tick("connections_open", (pa.start + t).as_secs() as usize, 1);
        }
        media(&mut m, (pa, pb), &class);
        let failed_at = match (&o.milestones.failed_at, &a.milestones.failed_at) {
            (Some(t), _) => Some(pa.start + *t),
            (None, Some(t)) => Some(pb.start + *t),
            _ => None,
        };
        if let Some(t) = failed_at {
            m.tick("connections_failed", t.as_secs() as usize, 1);
        }
    }
    let bytes: u64 = r.peers.iter().filter(|p| p.in_shard).flat_map(|p| &p.connections).map(|c| c.bytes_moved).sum();
    m.count("bytes_moved", bytes);
    m.count("frames_relayed", r.frames_relayed);
    m.count("datagrams", r.datagrams);
    if r.sim.is_none() {
        // Real sockets: no simulated RTT (rtt_ms 0 stands for that).
        m.count("live", 1);
    }
    m.series.insert("frames_relayed".into(), r.frames_per_s.clone());
    m.series.insert("bytes_moved".into(), r.bytes_per_s.clone());
    m.end_ms = r.end.as_secs_f64() * 1000.0;
    m
}

/// A pair's call, both receiving sides: `media.*` histograms overall and by NAT class. Times
/// count from the caller's `call()`; the callee's side is on the run's clock (peers' starts),
/// which a simulation and a live run's one process share.
fn media(m: &mut RunMetrics, (pa, pb): (&PeerResult, &PeerResult), class: &str) {
    fn call<'a>(p: &'a PeerResult, remote: &str) -> Option<(&'a ConnOutcome, &'a peerstorm_peer::MediaOutcome)> {
        p.connections.iter().filter(|c| c.remote == remote).find_map(|c| Some((c, c.media.as_ref()?)))
    }
    let (Some((oc, om)), Some((_, am))) = (call(pa, &pb.id), call(pb, &pa.id)) else { return };
    // Through a TURN server when either end of the selected pair is a relayed candidate: what
    // the server relayed is what both sides received (`turn_media_*` per TURN CPU-second).
    let relayed = oc.milestones.selected.as_ref().is_some_and(|(l, r)| l == "relay" || r == "relay");
    let Some(called) = om.call_at.map(|t| pa.start + t) else { return };
    let selected = oc.milestones.selected.as_ref().map(|(l, r)| format!("{l}/{r}"));
    let put = |m: &mut RunMetrics, name: &str, v: u64| {
        m.record_exact(format!("media.{name}"), v);
        m.record_exact(scoped(&format!("media.{name}"), "class", class), v);
        if let Some(sel) = &selected {
            m.record_exact(scoped(&format!("media.{name}"), "selected", sel), v);
        }
    };
    for (side, md) in [(pa, om), (pb, am)] {
        let at = |t: Option<Duration>| t.map(|t| side.start + t).and_then(|t| t.checked_sub(called)).map(us);
        let first = md.received.iter().filter_map(|s| at(s.first_packet)).min();
        // A call's first frame is its video's first key frame, else its audio's first packet.
        let frame = md
            .received
            .iter()
            .find(|s| s.kind == Some(peerstorm_peer::media::Kind::Video))
            .or(md.received.first())
            .and_then(|s| at(s.first_frame));
        if let Some(v) = first {
            put(m, "first_packet", v);
        }
        if let Some(v) = frame {
            put(m, "first_frame", v);
        }
        for s in &md.received {
            let name = match s.kind {
                Some(peerstorm_peer::media::Kind::Audio) => "audio",
                Some(peerstorm_peer::media::Kind::Video) => "video",
                None => continue,
            };
            if let Some(bps) = s.bitrate() {
                put(m, &format!("{name}.bitrate"), bps.round() as u64);
            }
            let ppm = (s.loss() * 1e6).round() as u64;
            put(m, "loss", ppm);
            put(m, &format!("{name}.loss"), ppm);
            put(m, "jitter", (s.jitter_ms * 1000.0).round() as u64);
            if let Some(d) = s.delay_mean_ms {
                put(m, "delay", (d * 1000.0).round() as u64);
            }
            if name == "video" {
                put(m, "freezes", s.freezes);
            }
            m.count(format!("media.{name}.packets"), s.packets);
            if relayed {
                m.count("media.relayed_packets", s.packets);
                m.count("media.relayed_bytes", s.bytes);
                if let Some(bps) = s.bitrate() {
                    m.count("media.relayed_bps", bps.round() as u64);
                }
            }
            m.count(format!("media.{name}.plis_sent"), s.plis_sent);
        }
        m.count("media.nacks_received", md.nacks_received);
        if let Some(rtt) = md.rtt_ms {
            put(m, "rtt", (rtt * 1000.0).round() as u64);
        }
        for (kind, st) in &md.sent {
            let name = match kind {
                peerstorm_peer::media::Kind::Audio => "audio",
                peerstorm_peer::media::Kind::Video => "video",
            };
            m.count(format!("media.{name}.sent_packets"), st.packets);
            m.count(format!("media.{name}.sent_bytes"), st.payload_bytes);
            if name == "video" {
                m.count("media.video.keyframes_sent", st.keyframes);
                m.count("media.video.plis_received", st.plis);
            }
        }
    }
}

/// Every run of a scenario (or of one shard of it).
pub fn collect_all(scenario: &str, seed: u64, shard: Shard, runs: &[RunOutcome]) -> Metrics {
    Metrics {
        scenario: scenario.into(),
        seed,
        shards: vec![shard.label()],
        runs: runs.iter().map(collect).collect(),
        sweep_outputs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerstorm_peer::Milestones;

    fn peer(nat: &'static str) -> PeerResult {
        PeerResult { id: "p".into(), in_shard: true, nat, start: Duration::ZERO, connections: Vec::new() }
    }

    fn conn(failure: Option<Failure>, turn_error: Option<&str>, relay: bool) -> ConnOutcome {
        let mut milestones =
            Milestones { failure, turn_error: turn_error.map(str::to_string), ..Milestones::default() };
        if relay {
            milestones.mark(Milestone::FirstRelay, Duration::from_millis(50));
        }
        ConnOutcome { remote: "q".into(), offerer: true, milestones, bytes_moved: 0, media: None }
    }

    #[test]
    fn a_timeout_is_named_by_its_structural_cause() {
        let (open, blocked) = (peer("open"), peer("udp-blocked"));
        let timeout = || conn(Some(Failure::Timeout), None, false);
        let waiting = || conn(None, None, false);
        // Both sides' timeouts are one failure, the offerer's.
        assert_eq!(cause((&open, &timeout()), (&open, &timeout())), "timeout");
        assert_eq!(cause((&open, &waiting()), (&blocked, &timeout())), "udp_blocked");
        // A relayed candidate was there: the firewall is not why it failed.
        assert_eq!(cause((&open, &timeout()), (&blocked, &conn(None, None, true))), "timeout");
        assert_eq!(
            cause((&open, &conn(Some(Failure::IceFailed), Some("403"), false)), (&open, &waiting())),
            "turn_refused"
        );
        // Other failures keep their own names.
        assert_eq!(cause((&blocked, &conn(Some(Failure::Expire), None, false)), (&open, &waiting())), "expire");
        assert_eq!(cause((&open, &waiting()), (&open, &waiting())), "incomplete");
    }
}
