//! One direction of a link: latency, jitter, random and bursty (Gilbert–Elliott) loss, bandwidth
//! with a bounded drop-tail queue, MTU, duplication, optional reordering. Each direction is a FIFO
//! in the order packets are handed to it.

use peerstorm_model::rng::Rng;
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

/// The state of one link direction.
#[derive(Debug, Clone)]
pub struct Link {
    pub cfg: LinkConfig,
    bad: bool,
    busy_until: Duration,
    last_arrival: Duration,
}

/// IPv4 + UDP/TCP header bytes added to a payload on the wire.
pub const HEADER_BYTES: usize = 28;

impl Link {
    pub fn new(cfg: LinkConfig) -> Self {
        Self { cfg, bad: false, busy_until: Duration::ZERO, last_arrival: Duration::ZERO }
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

    /// Hands a packet of `size` bytes (IP) to the link at `now`. Returns when it arrives at the
    /// other end (twice when duplicated), or why it was dropped. `reliable` packets (TCP
    /// segments) are not lost: each loss costs a retransmission timeout instead.
    pub fn transmit(
        &mut self,
        now: Duration,
        size: usize,
        reliable: bool,
        rng: &mut Rng,
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
        let mut penalty = Duration::ZERO;
        loop {
            match self.loss(rng) {
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
        if !self.cfg.reorder {
            at = at.max(self.last_arrival);
        }
        self.last_arrival = self.last_arrival.max(at);
        out.push(at);
        if self.cfg.duplicate > 0.0 && rng.unit() < self.cfg.duplicate {
            out.push(at + Duration::from_micros(1));
        }
        Ok(())
    }

    fn loss(&mut self, rng: &mut Rng) -> Option<LinkDrop> {
        if let Some(ge) = self.cfg.burst_loss {
            let flip = if self.bad { ge.r } else { ge.p };
            if rng.unit() < flip {
                self.bad = !self.bad;
            }
            let l = if self.bad { ge.loss_bad } else { ge.loss_good };
            if rng.unit() < l {
                return Some(LinkDrop::BurstLoss);
            }
        }
        if self.cfg.loss > 0.0 && rng.unit() < self.cfg.loss {
            return Some(LinkDrop::Loss);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(l: &mut Link, now_ms: u64, size: usize, rng: &mut Rng) -> Result<Vec<Duration>, LinkDrop> {
        let mut out = Vec::new();
        l.transmit(Duration::from_millis(now_ms), size, false, rng, &mut out).map(|_| out)
    }

    #[test]
    fn latency_and_order() {
        let mut rng = Rng::seed(1);
        let mut l = Link::new(LinkConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(30),
            ..LinkConfig::default()
        });
        let mut last = Duration::ZERO;
        for t in 0..200 {
            let at = send(&mut l, t, 100, &mut rng).unwrap()[0];
            assert!(at >= Duration::from_millis(t + 20) && at <= Duration::from_millis(t + 50));
            assert!(at >= last, "order kept without reorder");
            last = at;
        }
    }

    #[test]
    fn bandwidth_queues_then_drops() {
        let mut rng = Rng::seed(1);
        // 1 Mbit/s, 10 kB queue: 1000-byte packets take 8 ms each.
        let mut l =
            Link::new(LinkConfig { bandwidth_bps: Some(1_000_000), queue_bytes: 10_000, ..LinkConfig::default() });
        let first = send(&mut l, 0, 1000, &mut rng).unwrap()[0];
        assert_eq!(first, Duration::from_millis(8));
        let second = send(&mut l, 0, 1000, &mut rng).unwrap()[0];
        assert_eq!(second, Duration::from_millis(16));
        let drops = (0..20).filter(|_| send(&mut l, 0, 1000, &mut rng).is_err()).count();
        assert!(drops >= 10, "a full queue drops ({drops} drops)");
    }

    #[test]
    fn loss_rates_are_close_to_the_setting() {
        let mut rng = Rng::seed(9);
        let mut l = Link::new(LinkConfig { loss: 0.1, ..LinkConfig::default() });
        let lost = (0..20_000).filter(|_| send(&mut l, 0, 100, &mut rng).is_err()).count();
        assert!((1700..2300).contains(&lost), "{lost}");
        let ge = GilbertElliott { p: 0.01, r: 0.2, loss_good: 0.0, loss_bad: 1.0 };
        let mut l = Link::new(LinkConfig { burst_loss: Some(ge), ..LinkConfig::default() });
        let outcomes: Vec<bool> = (0..20_000).map(|_| send(&mut l, 0, 100, &mut rng).is_err()).collect();
        let lost = outcomes.iter().filter(|x| **x).count();
        // Stationary bad share p/(p+r) ≈ 4.8 %; losses come in bursts of mean 1/r = 5.
        assert!((600..1400).contains(&lost), "{lost}");
        let bursts = outcomes.windows(2).filter(|w| !w[0] && w[1]).count();
        assert!(lost as f64 / bursts as f64 > 3.0, "mean burst {}", lost as f64 / bursts as f64);
    }

    #[test]
    fn mtu_duplication_and_reliable_segments() {
        let mut rng = Rng::seed(2);
        let mut l = Link::new(LinkConfig {
            mtu: 1200,
            duplicate: 1.0,
            loss: 0.5,
            latency: Duration::from_millis(10),
            ..LinkConfig::default()
        });
        assert_eq!(send(&mut l, 0, 1300, &mut rng), Err(LinkDrop::Mtu));
        let mut out = Vec::new();
        for _ in 0..50 {
            l.transmit(Duration::ZERO, 100, true, &mut rng, &mut out).unwrap();
            assert_eq!(out.len(), 2, "duplicated");
        }
    }
}
