//! What one run produced, whichever driver ran it: every peer's connections with their
//! milestones, which connections pair up, and the traffic counted along the way.

use peerstorm_peer::{ConnOutcome, IceMode};
use std::time::Duration;

/// One peer's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerResult {
    pub id: String,
    /// Whether this run's shard ran the peer (the others never joined).
    #[serde(skip)]
    pub in_shard: bool,
    /// The NAT preset this peer sits behind (`live` on real sockets).
    pub nat: &'static str,
    /// When it joined, from the run's start.
    #[serde(serialize_with = "start_ms")]
    pub start: Duration,
    /// Its DataConnections: those it opened, then those it accepted.
    pub connections: Vec<ConnOutcome>,
}

fn start_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

/// One DataConnection between two peers: `(peer, connection)` indexes on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub offerer: (usize, usize),
    pub answerer: (usize, usize),
}

/// What the simulator alone knows about a run: its network and its event count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// The peer-to-peer RTT the run used.
    pub rtt: Duration,
    pub events: u64,
    pub datagrams_delivered: u64,
}

/// One run (one ICE mode at one point of a sweep).
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub ice: IceMode,
    pub peers: Vec<PeerResult>,
    pub links: Vec<Link>,
    /// How long the run took: virtual time in the simulator, wall time live.
    pub end: Duration,
    /// Signaling frames the broker delivered, in total and per second.
    pub frames_relayed: u64,
    pub frames_per_s: Vec<u64>,
    /// Data-channel bytes moved per second (both directions, both sides).
    pub bytes_per_s: Vec<u64>,
    /// The shard this run ran.
    pub shard: Shard,
    /// `None` for a live run on real sockets.
    pub sim: Option<SimStats>,
    /// Datagrams (and TCP segments) delivered: the simulated network's count, or on real
    /// sockets what the peers received.
    pub datagrams: u64,
    /// The run was stopped early (Ctrl-C, SIGTERM): connections still in flight were cut and
    /// peers that had not started never did.
    pub interrupted: bool,
    /// The sweep point's inputs besides ICE mode and RTT ([`crate::sweep::Point::labels`]);
    /// empty outside a sweep.
    pub point: std::collections::BTreeMap<String, String>,
}

impl RunOutcome {
    /// One run's outcome from those of its cells (disjoint sets of groups, each simulated in a
    /// world of its own, in any order): every peer from the cell that ran it, every link in the
    /// order one world lists them (by offerer), counters and per-second series added, the end
    /// the latest. `None` for no parts.
    pub fn merge_cells(parts: Vec<RunOutcome>) -> Option<RunOutcome> {
        let mut parts = parts.into_iter();
        let mut m = parts.next()?;
        for p in parts {
            for (mine, theirs) in m.peers.iter_mut().zip(p.peers) {
                if theirs.in_shard {
                    *mine = theirs;
                }
            }
            m.links.extend(p.links);
            m.end = m.end.max(p.end);
            m.frames_relayed += p.frames_relayed;
            add_series(&mut m.frames_per_s, &p.frames_per_s);
            add_series(&mut m.bytes_per_s, &p.bytes_per_s);
            m.datagrams += p.datagrams;
            m.interrupted |= p.interrupted;
            if let (Some(a), Some(b)) = (m.sim.as_mut(), p.sim) {
                a.events += b.events;
                a.datagrams_delivered += b.datagrams_delivered;
            }
        }
        m.links.sort_by_key(|l| l.offerer);
        Some(m)
    }
}

fn add_series(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// A part of a scenario: groups `index`, `index + count`, ... (0-based), so that shards
/// together hold every group once. Groups interact only through the servers, so on a lossless
/// network the shards' results are exactly the whole run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `i/n`, 1-based as written on a command line.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("shard {text:?}: expected i/n, e.g. 1/4"))?;
        let (i, n): (usize, usize) = match (i.trim().parse(), n.trim().parse()) {
            (Ok(i), Ok(n)) => (i, n),
            _ => return Err(format!("shard {text:?}: expected i/n with whole numbers, e.g. 1/4")),
        };
        if n == 0 || i == 0 || i > n {
            return Err(format!("shard {text:?}: need 1 <= i <= n"));
        }
        Ok(Shard { index: i - 1, count: n })
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.index + 1, self.count)
    }

    pub fn holds(&self, group: usize) -> bool {
        group % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_parse_one_based_and_cover_every_group_once() {
        let shards: Vec<Shard> = (1..=3).map(|i| Shard::parse(&format!("{i}/3")).unwrap()).collect();
        for g in 0..30 {
            assert_eq!(shards.iter().filter(|s| s.holds(g)).count(), 1);
        }
        assert_eq!(shards[1].label(), "2/3");
        assert!(Shard::parse("0/3").is_err() && Shard::parse("4/3").is_err() && Shard::parse("x").is_err());
    }
}
