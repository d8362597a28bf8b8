//! One direction of a link: latency, jitter, random and bursty (Gilbert–Elliott) loss, bandwidth
//! with a bounded drop-tail queue, MTU, duplication, optional reordering. Each flow (a 5-tuple
//! as the link sees it) is a FIFO in the order its packets are handed to the link.
//!
//! **Flows do not affect each other** unless the link is shared for real: the random draws
//! (loss, jitter, duplication) of a flow's `n`th packet come from the link's seed, the flow and
//! `n` alone, and the order kept is per flow, so what one flow sees does not depend on what other
//! flows sent before it. Only a bandwidth queue and Gilbert–Elliott's good/bad state are the
//! link's own, shared by every flow on it, as on a real access link. This is what lets the
//! simulator run independent groups of peers in separate worlds and get exactly the results of
//! one world (a server's link carries every group's flows).

use peerstorm_model::rng::Rng;
use rustc_hash::FxHashMap;
use std::time::Duration;

/// Gilbert–Elliott two-state loss: per packet the state moves good→bad with `p`, bad→good with
/// `r`, and the packet is lost with `loss_good` or `loss_bad` according to the state.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GilbertElliott {
    pub p: f64,
    pub r: f64,
    pub loss_good: f64,
    pub loss_bad: f64,
}

/// What a link direction does to packets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LinkConfig {
    /// One-way propagation delay.
    #[serde(rename = "latency_ms", with = "crate::time::serde_duration::millis")]
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`.
    #[serde(rename = "jitter_ms", with = "crate::time::serde_duration::millis")]
    pub jitter: Duration,
    /// Independent random loss.
    pub loss: f64,
    /// Bursty loss (applied as well as `loss`).
    pub burst_loss: Option<GilbertElliott>,
    /// Bits per second; `None` is unlimited.
    pub bandwidth_bps: Option<u64>,
    /// Drop-tail queue bound in bytes (with a bandwidth).
    pub queue_bytes: usize,
    /// Largest IP packet; larger ones are dropped.
    pub mtu: usize,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Let jitter reorder packets (off: arrivals keep their order).
    pub reorder: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst_loss: None,
            bandwidth_bps: None,
            queue_bytes: 256 << 10,
            mtu: 1500,
            duplicate: 0.0,
            reorder: false,
        }
    }
}

impl LinkConfig {
    pub fn latency(ms: u64) -> Self {
        Self { latency: Duration::from_millis(ms), ..Self::default() }
    }
}

/// Why a link dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum LinkDrop {
    Loss,
    BurstLoss,
    QueueFull,
    Mtu,
}

/// A flow as a link tells flows apart: protocol, source and destination (see [`flow_key`]).
pub type FlowKey = u128;

/// A flow's key from its protocol number and its two IPv4 endpoints.
pub fn flow_key(proto: u8, src: std::net::SocketAddrV4, dst: std::net::SocketAddrV4) -> FlowKey {
    let end = |a: std::net::SocketAddrV4| u128::from(u32::from(*a.ip())) << 16 | u128::from(a.port());
    u128::from(proto) << 96 | end(src) << 48 | end(dst)
}

/// What a link keeps per flow.
#[derive(Debug, Clone, Copy, Default)]
struct FlowState {
    /// Packets of the flow handed to the link so far (the index of its next random draws).
    packets: u64,
    /// When its last packet arrives: the next may not arrive earlier (without reordering).
    last_arrival: Duration,
}

/// The state of one link direction.
#[derive(Debug, Clone)]
pub struct Link {
    pub cfg: LinkConfig,
    /// The root of every random draw on this link.
    seed: u64,
    bad: bool,
    busy_until: Duration,
    last_arrival: Duration,
    flows: FxHashMap<FlowKey, FlowState>,
}

/// IPv4 + UDP/TCP header bytes added to a payload on the wire.
pub const HEADER_BYTES: usize = 28;

impl Link {
    /// A link whose random draws all derive from `seed`.
    pub fn new(cfg: LinkConfig, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            bad: false,
            busy_until: Duration::ZERO,
            last_arrival: Duration::ZERO,
            flows: FxHashMap::default(),
        }
    }

    /// The seed its draws derive from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The generator for a flow's next packet: from the link's seed, the flow and the packet's
    /// index in the flow, so no other flow's traffic moves it.
    fn packet_rng(seed: u64, flow: FlowKey, packet: u64) -> Rng {
        let mut x = Rng::seed(seed ^ (flow as u64)).next_u64();
        x ^= Rng::seed(x ^ ((flow >> 64) as u64)).next_u64();
        Rng::seed(x ^ packet.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn is_ideal(&self) -> bool {
        let c = &self.cfg;
        c.latency.is_zero()
            && c.jitter.is_zero()
            && c.loss == 0.0
            && c.burst_loss.is_none()
            && c.bandwidth_bps.is_none()
            && c.duplicate == 0.0
    }

    /// Hands a packet of `size` bytes (IP) of `flow` to the link at `now`. Returns when it
    /// arrives at the other end (twice when duplicated), or why it was dropped. `reliable`
    /// packets (TCP segments) are not lost: each loss costs a retransmission timeout instead.
    pub fn transmit(
        &mut self,
        now: Duration,
        size: usize,
        reliable: bool,
        flow: FlowKey,
        out: &mut Vec<Duration>,
    ) -> Result<(), LinkDrop> {
        out.clear();
        if size > self.cfg.mtu {
            return Err(LinkDrop::Mtu);
        }
        if self.is_ideal() {
            let at = now.max(self.last_arrival);
            self.last_arrival = at;
            out.push(at);
            return Ok(());
        }
        let state = self.flows.entry(flow).or_default();
        let rng = &mut Self::packet_rng(self.seed, flow, state.packets);
        state.packets += 1;
        let mut penalty = Duration::ZERO;
        loop {
            match Self::loss(&self.cfg, &mut self.bad, rng) {
                None => break,
                Some(why) if !reliable => return Err(why),
                Some(_) => {
                    // TCP: a lost segment is sent again after an RTO (RFC 6298's 1 s floor is
                    // what most stacks lower to 200 ms; this uses 200 ms + the path latency).
                    penalty += Duration::from_millis(200) + self.cfg.latency * 2;
                    if penalty > Duration::from_secs(60) {
                        break;
                    }
                }
            }
        }
        let mut depart = now;
        if let Some(bps) = self.cfg.bandwidth_bps.filter(|b| *b > 0) {
            let backlog = self.busy_until.saturating_sub(now);
            let queued_bytes = (backlog.as_secs_f64() * bps as f64 / 8.0) as usize;
            if queued_bytes + size > self.cfg.queue_bytes {
                return Err(LinkDrop::QueueFull);
            }
            let ser = Duration::from_secs_f64(size as f64 * 8.0 / bps as f64);
            depart = now.max(self.busy_until) + ser;
            self.busy_until = depart;
        }
        let jitter = if self.cfg.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rng.below(self.cfg.jitter.as_nanos() as u64 + 1))
        };
        let mut at = depart + penalty + self.cfg.latency + jitter;
        let state = self.flows.get_mut(&flow).expect("the flow's state was made above");
        if !self.cfg.reorder {
            at = at.max(state.last_arrival);
        }
        state.last_arrival = state.last_arrival.max(at);
        out.push(at);
        if self.cfg.duplicate > 0.0 && rng.unit() < self.cfg.duplicate {
            out.push(at + Duration::from_micros(1));
        }
        Ok(())
    }

    fn loss(cfg: &LinkConfig, bad: &mut bool, rng: &mut Rng) -> Option<LinkDrop> {
        if let Some(ge) = cfg.burst_loss {
            let flip = if *bad { ge.r } else { ge.p };
            if rng.unit() < flip {
                *bad = !*bad;
            }
            let l = if *bad { ge.loss_bad } else { ge.loss_good };
            if rng.unit() < l {
                return Some(LinkDrop::BurstLoss);
            }
        }
        if cfg.loss > 0.0 && rng.unit() < cfg.loss {
            return Some(LinkDrop::Loss);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: FlowKey = 7;

    fn send(l: &mut Link, now_ms: u64, size: usize) -> Result<Vec<Duration>, LinkDrop> {
        send_on(l, FLOW, now_ms, size)
    }

    fn send_on(l: &mut Link, flow: FlowKey, now_ms: u64, size: usize) -> Result<Vec<Duration>, LinkDrop> {
        let mut out = Vec::new();
        l.transmit(Duration::from_millis(now_ms), size, false, flow, &mut out).map(|_| out)
    }

    #[test]
    fn latency_and_order() {
        let seed = 1;
        let mut l = Link::new(
            LinkConfig {
                latency: Duration::from_millis(20),
                jitter: Duration::from_millis(30),
                ..LinkConfig::default()
            },
            seed,
        );
        let mut last = Duration::ZERO;
        for t in 0..200 {
            let at = send(&mut l, t, 100).unwrap()[0];
            assert!(at >= Duration::from_millis(t + 20) && at <= Duration::from_millis(t + 50));
            assert!(at >= last, "order kept without reorder");
            last = at;
        }
    }

    #[test]
    fn bandwidth_queues_then_drops() {
        let seed = 1;
        // 1 Mbit/s, 10 kB queue: 1000-byte packets take 8 ms each.
        let mut l = Link::new(
            LinkConfig { bandwidth_bps: Some(1_000_000), queue_bytes: 10_000, ..LinkConfig::default() },
            seed,
        );
        let first = send(&mut l, 0, 1000).unwrap()[0];
        assert_eq!(first, Duration::from_millis(8));
        let second = send(&mut l, 0, 1000).unwrap()[0];
        assert_eq!(second, Duration::from_millis(16));
        let drops = (0..20).filter(|_| send(&mut l, 0, 1000).is_err()).count();
        assert!(drops >= 10, "a full queue drops ({drops} drops)");
    }

    #[test]
    fn loss_rates_are_close_to_the_setting() {
        let seed = 9;
        let mut l = Link::new(LinkConfig { loss: 0.1, ..LinkConfig::default() }, seed);
        let lost = (0..20_000).filter(|_| send(&mut l, 0, 100).is_err()).count();
        assert!((1700..2300).contains(&lost), "{lost}");
        let ge = GilbertElliott { p: 0.01, r: 0.2, loss_good: 0.0, loss_bad: 1.0 };
        let mut l = Link::new(LinkConfig { burst_loss: Some(ge), ..LinkConfig::default() }, seed);
        let outcomes: Vec<bool> = (0..20_000).map(|_| send(&mut l, 0, 100).is_err()).collect();
        let lost = outcomes.iter().filter(|x| **x).count();
        // Stationary bad share p/(p+r) ≈ 4.8 %; losses come in bursts of mean 1/r = 5.
        assert!((600..1400).contains(&lost), "{lost}");
        let bursts = outcomes.windows(2).filter(|w| !w[0] && w[1]).count();
        assert!(lost as f64 / bursts as f64 > 3.0, "mean burst {}", lost as f64 / bursts as f64);
    }

    #[test]
    fn mtu_duplication_and_reliable_segments() {
        let seed = 2;
        let mut l = Link::new(
            LinkConfig {
                mtu: 1200,
                duplicate: 1.0,
                loss: 0.5,
                latency: Duration::from_millis(10),
                ..LinkConfig::default()
            },
            seed,
        );
        assert_eq!(send(&mut l, 0, 1300), Err(LinkDrop::Mtu));
        let mut out = Vec::new();
        for _ in 0..50 {
            l.transmit(Duration::ZERO, 100, true, FLOW, &mut out).unwrap();
            assert_eq!(out.len(), 2, "duplicated");
        }
    }

    /// A flow's losses and arrival times are the same whatever other flows send between its
    /// packets: the simulator's groups of peers share a server's link without affecting each
    /// other.
    #[test]
    fn a_flow_sees_the_same_link_whatever_other_flows_send() {
        let cfg = LinkConfig {
            latency: Duration::from_millis(15),
            jitter: Duration::from_millis(40),
            loss: 0.3,
            duplicate: 0.1,
            ..LinkConfig::default()
        };
        let (a, b) = (flow_key(17, "10.0.0.1:5000".parse().unwrap(), "192.0.2.1:3478".parse().unwrap()), 99);
        let mut alone = Link::new(cfg.clone(), 5);
        let mut shared = Link::new(cfg.clone(), 5);
        let mut other = Rng::seed(3);
        for t in 0..500 {
            let mine = send_on(&mut alone, a, t, 100);
            for _ in 0..other.below(4) {
                let _ = send_on(&mut shared, b + other.below(3) as FlowKey, t, 100);
            }
            assert_eq!(send_on(&mut shared, a, t, 100), mine, "packet {t}");
        }
        // Another seed, other draws: the seed is what they derive from.
        let mut reseeded = Link::new(cfg, 6);
        let differs = (0..500).any(|t| send_on(&mut reseeded, a, t, 100) != send_on(&mut alone, a, 500 + t, 100));
        assert!(differs);
    }

    /// Order is kept per flow: a TCP segment held back by a retransmission does not hold back
    /// another flow's packets (it does hold back its own flow's).
    #[test]
    fn a_retransmitted_segment_delays_only_its_own_flow() {
        let cfg = LinkConfig { latency: Duration::from_millis(10), loss: 0.5, ..LinkConfig::default() };
        let mut l = Link::new(cfg, 1);
        let mut out = Vec::new();
        // Find a segment that was lost at least once (its arrival carries the 220 ms penalty).
        let mut t = 0;
        loop {
            l.transmit(Duration::from_millis(t), 100, true, FLOW, &mut out).unwrap();
            if out[0] > Duration::from_millis(t + 10) {
                break;
            }
            t += 1;
            assert!(t < 100, "no segment was lost at 50 % loss");
        }
        let held = out[0];
        l.transmit(Duration::from_millis(t), 100, true, FLOW, &mut out).unwrap();
        assert!(out[0] >= held, "the flow's next segment waits for the held one");
        let other = loop {
            if let Ok(at) = send_on(&mut l, 1, t, 100) {
                break at[0];
            }
        };
        assert_eq!(other, Duration::from_millis(t + 10), "another flow is not held");
    }
}
