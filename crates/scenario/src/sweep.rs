//! `[sweep]`: the scenario once per point — the product of the listed inputs, or the listed
//! points — each run reported beside the others, with every output charted against each input.
//!
//! ```toml
//! [sweep]
//! rtt_ms = [20, 100, 300]
//! loss = [0, 0.02]
//! nat = ["port-restricted ↔ symmetric", "symmetric"]
//! outputs = ["setup.dc_open.p50", "relay_share"]
//! ```
//!
//! A point sets `network.rtt_ms` (and `servers.broker_rtt_ms`, as `rtt_sweep_ms` always did),
//! `network.loss`, `network.bandwidth_kbps`, or the NAT presets: every offerer behind the first
//! of the pair, every answerer behind the second. `ice` sets `peers.ice`, which every point runs.

use crate::serde_time;
use peerstorm_netsim::Preset;
use peerstorm_peer::IceMode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[sweep]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Peer-to-peer RTTs (each also the broker RTT).
    #[serde(default, rename = "rtt_ms", deserialize_with = "serde_time::millis_list")]
    pub rtt: Vec<Duration>,
    /// Loss rates on every access link, per direction (fractions below 1).
    #[serde(default)]
    pub loss: Vec<f64>,
    /// Access-link bandwidths, kbit/s per direction.
    #[serde(default)]
    pub bandwidth_kbps: Vec<u64>,
    /// NAT pairs, `"offerer-preset ↔ answerer-preset"`, or one preset for both sides.
    #[serde(default)]
    pub nat: Vec<NatPair>,
    /// ICE modes: the same as `peers.ice` (every point runs each).
    #[serde(default)]
    pub ice: Vec<IceMode>,
    /// Instead of the product of the lists: these points, each a table of some of `rtt_ms`,
    /// `loss`, `bandwidth_kbps`, `nat` (the rest as `[network]` says).
    #[serde(default)]
    pub points: Vec<PointText>,
    /// Metric paths (as thresholds name them) charted against each swept input; none:
    /// `setup.dc_open.p50`, `setup.dc_open.p95`, `success_rate`.
    #[serde(default)]
    pub outputs: Vec<String>,
}

/// One listed point, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointText {
    #[serde(default)]
    pub rtt_ms: Option<u64>,
    #[serde(default)]
    pub loss: Option<f64>,
    #[serde(default)]
    pub bandwidth_kbps: Option<u64>,
    #[serde(default)]
    pub nat: Option<NatPair>,
}

/// The offerer's and the answerer's NAT preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NatPair {
    pub offerer: Preset,
    pub answerer: Preset,
}

impl TryFrom<String> for NatPair {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let (a, b) = s.split_once('↔').or_else(|| s.split_once("<->")).unwrap_or((&s, &s));
        let preset = |name: &str| {
            Preset::parse(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "sweep.nat {s:?}: unknown preset {:?} (expected \"preset ↔ preset\" or one preset, from {})",
                    name.trim(),
                    known.join(", ")
                )
            })
        };
        Ok(NatPair { offerer: preset(a)?, answerer: preset(b)? })
    }
}

impl std::fmt::Display for NatPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ↔ {}", self.offerer.as_str(), self.answerer.as_str())
    }
}

/// One point of a sweep: the inputs it sets (the rest as the scenario says).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    pub rtt: Option<Duration>,
    pub loss: Option<f64>,
    pub bandwidth_kbps: Option<u64>,
    pub nat: Option<NatPair>,
}

impl Point {
    /// The inputs besides the RTT, as runs carry them into the report (`loss` → `0.02`,
    /// `bandwidth_kbps` → `2000`, `nat` → `open ↔ symmetric`).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(l) = self.loss {
            m.insert("loss".into(), peerstorm_report::thresholds::loss_key(l));
        }
        if let Some(b) = self.bandwidth_kbps {
            m.insert("bandwidth_kbps".into(), b.to_string());
        }
        if let Some(n) = self.nat {
            m.insert("nat".into(), n.to_string());
        }
        m
    }

    /// A short tag for file names: `100ms-loss0.02-2000kbps-open-symmetric`.
    pub fn tag(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.rtt {
            parts.push(format!("{}ms", r.as_millis()));
        }
        if let Some(l) = self.loss {
            parts.push(format!("loss{l}"));
        }
        if let Some(b) = self.bandwidth_kbps {
            parts.push(format!("{b}kbps"));
        }
        if let Some(n) = self.nat {
            parts.push(format!("{}-{}", n.offerer.as_str(), n.answerer.as_str()));
        }
        parts.join("-")
    }
}

/// Most runs one scenario may ask for (points × ICE modes).
pub const MAX_RUNS: usize = 1000;

impl Sweep {
    pub fn is_empty(&self) -> bool {
        *self == Sweep::default()
    }

    /// Whether any list or point sets the RTT.
    pub fn sweeps_rtt(&self) -> bool {
        !self.rtt.is_empty() || self.points.iter().any(|p| p.rtt_ms.is_some())
    }

    /// The points: the listed ones, or the product of the lists (RTT outermost, then loss,
    /// bandwidth, NAT); one empty point when nothing is swept.
    pub fn points(&self) -> Vec<Point> {
        if !self.points.is_empty() {
            return self
                .points
                .iter()
                .map(|p| Point {
                    rtt: p.rtt_ms.map(Duration::from_millis),
                    loss: p.loss,
                    bandwidth_kbps: p.bandwidth_kbps,
                    nat: p.nat,
                })
                .collect();
        }
        fn axis<T: Copy>(v: &[T]) -> Vec<Option<T>> {
            if v.is_empty() { vec![None] } else { v.iter().copied().map(Some).collect() }
        }
        let mut out = Vec::new();
        for rtt in axis(&self.rtt) {
            for loss in axis(&self.loss) {
                for bandwidth_kbps in axis(&self.bandwidth_kbps) {
                    for nat in axis(&self.nat) {
                        out.push(Point { rtt, loss, bandwidth_kbps, nat });
                    }
                }
            }
        }
        out
    }

    /// The presets the points put peers behind.
    pub fn presets(&self) -> Vec<Preset> {
        let mut out = Vec::new();
        for p in self.points() {
            if let Some(n) = p.nat {
                out.extend([n.offerer, n.answerer]);
            }
        }
        out
    }

    /// How many points the lists make (without building them: a hostile file may ask for
    /// billions).
    fn count(&self) -> u128 {
        if !self.points.is_empty() {
            return self.points.len() as u128;
        }
        [self.rtt.len(), self.loss.len(), self.bandwidth_kbps.len(), self.nat.len()]
            .iter()
            .map(|n| (*n).max(1) as u128)
            .product()
    }

    /// Every rule of `[sweep]` itself; `ice_modes` is how many ICE modes each point runs.
    pub fn check(&self, ice_modes: usize) -> Result<(), String> {
        let lists =
            !(self.rtt.is_empty() && self.loss.is_empty() && self.bandwidth_kbps.is_empty() && self.nat.is_empty());
        if lists && !self.points.is_empty() {
            return Err("sweep: give lists (rtt_ms, loss, bandwidth_kbps, nat) or points, not both".into());
        }
        if let Some((i, _)) = self.points.iter().enumerate().find(|(_, p)| **p == PointText::default()) {
            return Err(format!("sweep.points[{i}] is empty: set rtt_ms, loss, bandwidth_kbps or nat"));
        }
        let runs = self.count().saturating_mul(ice_modes.max(1) as u128);
        if runs > MAX_RUNS as u128 {
            return Err(format!(
                "sweep: {runs} runs ({} points x {} ICE modes); at most {MAX_RUNS}: sweep fewer values, or split it into several scenarios",
                self.count(),
                ice_modes.max(1)
            ));
        }
        for p in self.points() {
            if let Some(l) = p.loss
                && !(l.is_finite() && (0.0..1.0).contains(&l))
            {
                return Err(format!("sweep.loss: {l} is not a probability below 1 (write 0.02 for 2 %)"));
            }
            if p.bandwidth_kbps == Some(0) {
                return Err(
                    "sweep.bandwidth_kbps: 0 would carry nothing (leave bandwidth out for an unlimited link)".into()
                );
            }
            if let Some(r) = p.rtt
                && r > Duration::from_secs(60)
            {
                return Err(format!("sweep.rtt_ms: {} ms is more than a minute", r.as_millis()));
            }
        }
        for (what, n) in
            [("rtt_ms", self.rtt.len()), ("loss", self.loss.len()), ("bandwidth_kbps", self.bandwidth_kbps.len())]
        {
            if n == 1 {
                return Err(format!(
                    "sweep.{what} has one value: put it in [network] (a sweep varies an input over several)"
                ));
            }
        }
        for o in &self.outputs {
            let p = peerstorm_report::thresholds::MetricPath::parse(o).map_err(|e| format!("sweep.outputs: {e}"))?;
            if !p.per_run() {
                return Err(format!(
                    "sweep.outputs: {o:?} compares two ICE modes, not a figure of one run; chart setup stages instead"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(text: &str) -> Sweep {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_lists_make_their_product_rtt_outermost() {
        let s = sweep("rtt_ms = [20, 100]\nloss = [0, 0.02]\nnat = [\"open\", \"port-restricted ↔ symmetric\"]\n");
        let points = s.points();
        assert_eq!(points.len(), 8);
        assert_eq!(points[0].tag(), "20ms-loss0-open-open");
        assert_eq!(points[7].tag(), "100ms-loss0.02-port-restricted-symmetric");
        let l = points[7].labels();
        assert_eq!(l["loss"], "0.02");
        assert_eq!(l["nat"], "port-restricted ↔ symmetric");
        assert!(!l.contains_key("rtt"), "the RTT is carried by the run itself");
        s.check(2).unwrap();
    }

    #[test]
    fn listed_points_are_taken_as_they_are() {
        let s = sweep("points = [{ rtt_ms = 20, loss = 0.01 }, { bandwidth_kbps = 500 }]\n");
        let p = s.points();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].rtt, p[0].loss, p[1].bandwidth_kbps),
            (Some(Duration::from_millis(20)), Some(0.01), Some(500))
        );
        s.check(1).unwrap();
    }

    #[test]
    fn bad_sweeps_are_refused_with_the_reason() {
        for (text, why) in [
            ("rtt_ms = [20, 100]\npoints = [{ loss = 0.1 }]\n", "not both"),
            ("points = [{}]\n", "is empty"),
            ("loss = [0, 1.5]\n", "probability below 1"),
            ("bandwidth_kbps = [0, 100]\n", "carry nothing"),
            ("rtt_ms = [20, 100000]\n", "more than a minute"),
            ("loss = [0.01]\n", "one value"),
            ("outputs = [\"setup.dc_opn.p50\"]\nloss = [0, 0.1]\n", "unknown stage"),
            ("outputs = [\"trickle_saving.dc_open.p50\"]\nloss = [0, 0.1]\n", "compares two ICE modes"),
        ] {
            let e = sweep(text).check(1).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
        // A hostile product is counted, never built.
        let big: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let text = format!(
            "rtt_ms = [{0}]\nbandwidth_kbps = [{1}]\n",
            big.join(","),
            (1..=100).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
        assert!(sweep(&text).check(1).unwrap_err().contains("10000 runs"));
        let e = toml::from_str::<Sweep>("nat = [\"open ↔ moon\"]\n").unwrap_err().to_string();
        assert!(e.contains("unknown preset \"moon\""), "{e}");
    }
}
