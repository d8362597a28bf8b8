//! The run summary: success, failure causes, and percentiles of every setup stage, per ICE mode,
//! with trickle-minus-vanilla deltas when both ran. Deterministic: no wall-clock field.

use crate::sim::RunResult;
use peerstorm_peer::ConnOutcome;
use peerstorm_peer::{Failure, IceMode, Milestone};
use std::collections::BTreeMap;
use std::time::Duration;

/// The summary's schema name and version.
pub const SCHEMA: &str = "peerstorm.summary/1";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stage {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassSummary {
    pub pairs: usize,
    pub pairs_ok: usize,
    pub success_rate: f64,
    pub failures: BTreeMap<String, usize>,
    /// Selected candidate pair types on the offerer's side (`local/remote`), by count.
    pub selected: BTreeMap<String, usize>,
    /// Offerer-side stages, milliseconds from the pair's start.
    pub stages: BTreeMap<&'static str, Stage>,
    /// Data-channel goodput of the echo workload per pair (bytes both ways over the time from
    /// channel open to the last echo), kbit/s, p50.
    pub goodput_kbps_p50: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModeSummary {
    pub ice: IceMode,
    pub rtt_ms: u64,
    pub peers: usize,
    pub pairs: usize,
    /// Connections whose offerer finished its workload (every echo back).
    pub pairs_ok: usize,
    pub success_rate: f64,
    pub failures: BTreeMap<String, usize>,
    /// Offerer-side stages, milliseconds from the pair's start.
    pub stages: BTreeMap<&'static str, Stage>,
    /// Echo-workload goodput per pair, kbit/s, p50 (see [`ClassSummary::goodput_kbps_p50`]).
    pub goodput_kbps_p50: Option<f64>,
    /// Selected candidate pair types on the offerer's side (`local/remote`), by count.
    pub selected: BTreeMap<String, usize>,
    /// The same figures per NAT-pair class (`offerer-preset ↔ answerer-preset`, sorted).
    pub classes: BTreeMap<String, ClassSummary>,
    pub bytes_moved: u64,
    pub virtual_end_ms: f64,
    pub datagrams_delivered: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delta {
    pub rtt_ms: u64,
    pub stages: BTreeMap<&'static str, f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub schema: &'static str,
    pub scenario: String,
    pub seed: u64,
    pub modes: Vec<ModeSummary>,
    /// p50 of each stage, trickle minus vanilla (negative: trickle is faster), per RTT.
    pub trickle_minus_vanilla_p50_ms: Vec<Delta>,
}

fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

const STAGES: [Milestone; 10] = [
    Milestone::Open,
    Milestone::OfferSent,
    Milestone::FirstLocalCandidate,
    Milestone::GatheringComplete,
    Milestone::AnswerReceived,
    Milestone::IceConnected,
    Milestone::DtlsConnected,
    Milestone::DataChannelOpen,
    Milestone::FirstEcho,
    Milestone::WorkloadDone,
];

fn ice_name(ice: IceMode) -> &'static str {
    match ice {
        IceMode::Trickle => "trickle",
        IceMode::Vanilla => "vanilla",
    }
}

fn failure_name(f: &Failure) -> String {
    match f {
        Failure::IceFailed => "ice_failed".into(),
        Failure::DtlsFailed => "dtls_failed".into(),
        Failure::Expire => "expire".into(),
        Failure::IdTaken => "id_taken".into(),
        Failure::BrokerError(_) => "broker_error".into(),
        Failure::Timeout => "timeout".into(),
    }
}

/// One DataConnection as the summary sees it.
struct LinkView<'a> {
    offerer: &'a ConnOutcome,
    answerer: &'a ConnOutcome,
    /// `offerer-preset ↔ answerer-preset`, the presets sorted.
    class: String,
}

fn class_of(a: &str, b: &str) -> String {
    if a <= b { format!("{a} ↔ {b}") } else { format!("{b} ↔ {a}") }
}

/// Figures over a set of connections (offerer-side stages; failures from both sides).
fn over_pairs(links: &[&LinkView<'_>]) -> ClassSummary {
    let mut failures = BTreeMap::new();
    for c in links.iter().flat_map(|l| [l.offerer, l.answerer]) {
        if let Some(f) = &c.milestones.failure {
            *failures.entry(failure_name(f)).or_insert(0) += 1;
        }
    }
    let offerers: Vec<&ConnOutcome> = links.iter().map(|l| l.offerer).collect();
    let pairs_ok = offerers
        .iter()
        .filter(|p| p.milestones.failure.is_none() && p.milestones.get(Milestone::WorkloadDone).is_some())
        .count();
    let mut selected = BTreeMap::new();
    for p in &offerers {
        if let Some((l, r)) = &p.milestones.selected {
            *selected.entry(format!("{l}/{r}")).or_insert(0) += 1;
        }
    }
    let mut stages = BTreeMap::new();
    for st in STAGES {
        let mut v: Vec<Duration> = offerers.iter().filter_map(|p| p.milestones.get(st)).collect();
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        stages.insert(
            st.as_str(),
            Stage {
                count: v.len(),
                p50_ms: ms(pct(&v, 0.5)),
                p95_ms: ms(pct(&v, 0.95)),
                p99_ms: ms(pct(&v, 0.99)),
                max_ms: ms(*v.last().expect("not empty")),
            },
        );
    }
    let mut goodput: Vec<f64> = offerers
        .iter()
        .filter_map(|p| {
            let span = p
                .milestones
                .get(Milestone::WorkloadDone)?
                .checked_sub(p.milestones.get(Milestone::DataChannelOpen)?)?;
            (!span.is_zero()).then(|| p.bytes_moved as f64 * 8.0 / 1000.0 / span.as_secs_f64())
        })
        .collect();
    goodput.sort_by(f64::total_cmp);
    let goodput_kbps_p50 = (!goodput.is_empty()).then(|| {
        let i = ((goodput.len() as f64 * 0.5).ceil() as usize).clamp(1, goodput.len()) - 1;
        (goodput[i] * 10.0).round() / 10.0
    });
    ClassSummary {
        goodput_kbps_p50,
        pairs: offerers.len(),
        pairs_ok,
        success_rate: if offerers.is_empty() { 0.0 } else { pairs_ok as f64 / offerers.len() as f64 },
        failures,
        selected,
        stages,
    }
}

pub fn summarize_mode(r: &RunResult) -> ModeSummary {
    let links: Vec<LinkView<'_>> = r
        .links
        .iter()
        .map(|l| {
            let (a, b) = (&r.peers[l.offerer.0], &r.peers[l.answerer.0]);
            LinkView {
                offerer: &a.connections[l.offerer.1],
                answerer: &b.connections[l.answerer.1],
                class: class_of(a.nat, b.nat),
            }
        })
        .collect();
    let all = over_pairs(&links.iter().collect::<Vec<_>>());
    let mut by_class: BTreeMap<&str, Vec<&LinkView<'_>>> = BTreeMap::new();
    for l in &links {
        by_class.entry(&l.class).or_default().push(l);
    }
    let classes = by_class.into_iter().map(|(k, v)| (k.to_string(), over_pairs(&v))).collect();
    ModeSummary {
        ice: r.ice,
        rtt_ms: r.rtt_ms,
        peers: r.peers.len(),
        pairs: all.pairs,
        pairs_ok: all.pairs_ok,
        success_rate: all.success_rate,
        failures: all.failures,
        stages: all.stages,
        goodput_kbps_p50: all.goodput_kbps_p50,
        selected: all.selected,
        classes,
        bytes_moved: r.peers.iter().flat_map(|p| &p.connections).map(|c| c.bytes_moved).sum(),
        virtual_end_ms: ms(r.virtual_end),
        datagrams_delivered: r.datagrams_delivered,
    }
}

pub fn summarize(scenario: &str, seed: u64, runs: &[RunResult]) -> Summary {
    let modes: Vec<ModeSummary> = runs.iter().map(summarize_mode).collect();
    let mut deltas = Vec::new();
    for t in modes.iter().filter(|m| m.ice == IceMode::Trickle) {
        let Some(v) = modes.iter().find(|m| m.ice == IceMode::Vanilla && m.rtt_ms == t.rtt_ms) else { continue };
        let mut stages = BTreeMap::new();
        for (k, st) in &t.stages {
            if let Some(vs) = v.stages.get(k) {
                stages.insert(*k, ((st.p50_ms - vs.p50_ms) * 1000.0).round() / 1000.0);
            }
        }
        deltas.push(Delta { rtt_ms: t.rtt_ms, stages });
    }
    Summary { schema: SCHEMA, scenario: scenario.to_string(), seed, modes, trickle_minus_vanilla_p50_ms: deltas }
}

impl Summary {
    /// The table printed after a run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for m in &self.modes {
            s.push_str(&format!(
                "{} ICE at {} ms RTT: {} pairs, {} ok ({:.1} %), failures {:?}, {} bytes moved (echo goodput p50 {} kbit/s per pair), {} datagrams, virtual end {:.0} ms\n",
                ice_name(m.ice),
                m.rtt_ms,
                m.pairs,
                m.pairs_ok,
                m.success_rate * 100.0,
                m.failures,
                m.bytes_moved,
                m.goodput_kbps_p50.map_or("-".to_string(), |g| format!("{g:.0}")),
                m.datagrams_delivered,
                m.virtual_end_ms
            ));
            s.push_str("  stage (offerer, ms from start)   p50      p95      p99      max\n");
            for (k, st) in STAGES.iter().filter_map(|st| m.stages.get_key_value(st.as_str())) {
                s.push_str(&format!(
                    "  {k:<30} {:>8.1} {:>8.1} {:>8.1} {:>8.1}\n",
                    st.p50_ms, st.p95_ms, st.p99_ms, st.max_ms
                ));
            }
        }
        for m in &self.modes {
            if m.classes.len() < 2 {
                continue;
            }
            s.push_str(&format!(
                "{} ICE at {} ms RTT, by NAT pair  pairs   ok %   dc_open p50/p95 ms   kbit/s   selected (offerer local/remote)\n",
                ice_name(m.ice),
                m.rtt_ms
            ));
            for (k, c) in &m.classes {
                let dc = c
                    .stages
                    .get(Milestone::DataChannelOpen.as_str())
                    .map_or("-".to_string(), |st| format!("{:.0}/{:.0}", st.p50_ms, st.p95_ms));
                let sel: Vec<String> = c.selected.iter().map(|(t, n)| format!("{t} {n}")).collect();
                s.push_str(&format!(
                    "  {k:<36} {:>5} {:>6.1}   {dc:>18} {:>8}   {}\n",
                    c.pairs,
                    c.success_rate * 100.0,
                    c.goodput_kbps_p50.map_or("-".to_string(), |g| format!("{g:.0}")),
                    if sel.is_empty() { "-".to_string() } else { sel.join(", ") }
                ));
            }
        }
        if !self.trickle_minus_vanilla_p50_ms.is_empty() {
            s.push_str(
                "trickle minus vanilla, p50 (ms; negative: trickle is faster):\n  stage                          ",
            );
            for d in &self.trickle_minus_vanilla_p50_ms {
                s.push_str(&format!("{:>9}", format!("{} ms", d.rtt_ms)));
            }
            s.push('\n');
            for st in STAGES {
                if self.trickle_minus_vanilla_p50_ms.iter().all(|d| !d.stages.contains_key(st.as_str())) {
                    continue;
                }
                s.push_str(&format!("  {:<30} ", st.as_str()));
                for d in &self.trickle_minus_vanilla_p50_ms {
                    match d.stages.get(st.as_str()) {
                        Some(v) => s.push_str(&format!("{v:>+9.1}")),
                        None => s.push_str(&format!("{:>9}", "-")),
                    }
                }
                s.push('\n');
            }
        }
        s
    }
}
