//! The summary (`summary.json`, schema [`SCHEMA`], documented in `crates/report/README.md`):
//! success, failure causes, candidate types and HDR percentiles of every setup stage, per run
//! (ICE mode × RTT), overall, per NAT-pair class and per selected candidate pair, with
//! trickle-minus-vanilla deltas. Computed from [`Metrics`] alone, so a merge of shards or a
//! re-render gives the same summary as the run did. Deterministic: no wall-clock field.

use crate::metrics::{Metrics, RunMetrics, scoped, split_scope};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// The summary's schema name and version.
pub const SCHEMA: &str = "peerstorm.summary/2";

/// The setup stages, in order (milestones on the offerer's side, from its start).
pub const STAGES: [&str; 14] = [
    "signaling_connected",
    "open",
    "offer_sent",
    "first_local_candidate",
    "first_srflx",
    "first_relay",
    "gathering_complete",
    "answer_received",
    "turn_permission",
    "ice_connected",
    "dtls_connected",
    "dc_open",
    "first_echo",
    "workload_done",
];

/// Candidate types, for the `<type>_share` figures.
/// Candidate types, from the most direct to the most indirect.
pub const CANDIDATE_TYPES: [&str; 4] = ["host", "srflx", "prflx", "relay"];

/// Percentiles of one histogram of durations, in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Stage {
    /// From a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| round3(us as f64 / 1000.0);
        Stage {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: round3(h.mean() / 1000.0),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// A statistic by name (`p95`, `max`, `count`, ...), in milliseconds.
    pub fn stat(&self, name: &str) -> Option<f64> {
        Some(match name {
            "count" => self.count as f64,
            "min" => self.min_ms,
            "mean" => self.mean_ms,
            "p50" | "median" => self.p50_ms,
            "p90" => self.p90_ms,
            "p95" => self.p95_ms,
            "p99" => self.p99_ms,
            "p999" => self.p999_ms,
            "max" => self.max_ms,
            _ => return None,
        })
    }
}

/// Data-channel goodput per connection (bytes both ways over the time from channel open to
/// the end of the workload), kbit/s.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Goodput {
    pub count: u64,
    pub p5_kbps: f64,
    pub p50_kbps: f64,
    pub p95_kbps: f64,
}

impl Goodput {
    /// From a histogram of bit/s.
    pub fn of(h: &Histogram<u64>) -> Self {
        let k = |q: f64| (h.value_at_quantile(q) as f64 / 100.0).round() / 10.0;
        Goodput { count: h.len(), p5_kbps: k(0.05), p50_kbps: k(0.5), p95_kbps: k(0.95) }
    }
}

/// How a media metric is kept (its histogram's integer unit) and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaUnit {
    /// Histogram in µs, shown in ms.
    Time,
    /// Histogram in bit/s, shown in kbit/s.
    Rate,
    /// Histogram in parts per million, shown as a fraction.
    Ratio,
    /// A plain count.
    Count,
}

/// Media metrics (`media.<name>` histograms, one sample per received stream unless said):
/// name, unit, what it is.
pub const MEDIA: [(&str, MediaUnit, &str); 11] = [
    ("first_packet", MediaUnit::Time, "call() to the first RTP packet received, per receiving side"),
    (
        "first_frame",
        MediaUnit::Time,
        "call() to the first complete key frame (audio: first packet), per receiving side",
    ),
    ("audio.bitrate", MediaUnit::Rate, "audio payload bit rate received"),
    ("video.bitrate", MediaUnit::Rate, "video payload bit rate received (VP8 frames)"),
    ("loss", MediaUnit::Ratio, "packets lost after retransmission, of those sent, every stream"),
    ("audio.loss", MediaUnit::Ratio, "audio packets lost (audio has no NACK)"),
    ("video.loss", MediaUnit::Ratio, "video packets lost after NACK retransmission"),
    ("jitter", MediaUnit::Time, "RFC 3550 interarrival jitter at the end, every stream"),
    ("delay", MediaUnit::Time, "mean one-way delay (shared clock only), every stream"),
    ("freezes", MediaUnit::Count, "gaps of more than two frame intervals between complete frames, per video stream"),
    ("rtt", MediaUnit::Time, "median RTT from RTCP reception reports (RFC 3550 LSR/DLSR), per call side"),
];

/// The `media.*` histograms under `key(name)`, as [`MediaStat`]s by [`MEDIA`] name.
fn media_stats(r: &RunMetrics, key: impl Fn(&str) -> String) -> BTreeMap<String, MediaStat> {
    MEDIA
        .iter()
        .filter_map(|(name, unit, _)| {
            let h = r.histograms.get(&key(&format!("media.{name}")))?;
            Some((name.to_string(), MediaStat::of(h, *unit)))
        })
        .collect()
}

/// The unit of a media metric by name.
pub fn media_unit(name: &str) -> Option<MediaUnit> {
    MEDIA.iter().find(|(n, _, _)| *n == name).map(|(_, u, _)| *u)
}

/// One media metric's distribution, in its shown unit (ms, kbit/s, fraction, count).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MediaStat {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl MediaStat {
    pub fn of(h: &Histogram<u64>, unit: MediaUnit) -> Self {
        let scale = match unit {
            MediaUnit::Time | MediaUnit::Rate => 1000.0,
            MediaUnit::Ratio => 1e6,
            MediaUnit::Count => 1.0,
        };
        let v = |x: u64| (x as f64 / scale * 1e6).round() / 1e6;
        MediaStat {
            count: h.len(),
            p50: v(h.value_at_quantile(0.5)),
            p95: v(h.value_at_quantile(0.95)),
            p99: v(h.value_at_quantile(0.99)),
            max: v(h.max()),
        }
    }

    pub fn get(&self, stat: &str) -> Option<f64> {
        Some(match stat {
            "p50" => self.p50,
            "p95" => self.p95,
            "p99" => self.p99,
            "max" => self.max,
            _ => return None,
        })
    }
}

/// The figures of a set of connections.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    /// DataConnections (an offerer and an answerer each).
    pub pairs: u64,
    /// Connections whose offerer finished its workload.
    pub pairs_ok: u64,
    pub success_rate: f64,
    pub failures: BTreeMap<String, u64>,
    /// Selected candidate pair types on the offerer's side (`local/remote`), by count.
    pub selected: BTreeMap<String, u64>,
    /// Share of connected pairs by path type: `relay` when either end of the selected pair is
    /// a relayed candidate, else `prflx`, `srflx`, `host` by the more indirect end.
    pub shares: BTreeMap<String, f64>,
    pub stages: BTreeMap<String, Stage>,
    pub goodput: Option<Goodput>,
    /// Media calls' metrics by [`MEDIA`] name (none without calls).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub media: BTreeMap<String, MediaStat>,
}

impl Figures {
    /// Goodput p50, kbit/s.
    pub fn goodput_kbps_p50(&self) -> Option<f64> {
        self.goodput.as_ref().map(|g| g.p50_kbps)
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModeSummary {
    pub ice: String,
    pub rtt_ms: u64,
    /// The sweep point's other inputs (`loss`, `bandwidth_kbps`, `nat`); empty outside a sweep.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub point: BTreeMap<String, String>,
    pub peers: u64,
    #[serde(flatten)]
    pub all: Figures,
    /// The same figures per NAT-pair class (`preset ↔ preset`, sorted).
    pub classes: BTreeMap<String, Figures>,
    /// Setup stages per selected candidate pair (`local/remote`).
    pub by_selected: BTreeMap<String, BTreeMap<String, Stage>>,
    /// Media calls' metrics per selected candidate pair of the caller (`local/remote`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub media_by_selected: BTreeMap<String, BTreeMap<String, MediaStat>>,
    /// Live signaling latencies (`signal.<name>` histograms): `connect_open`, `offer_relay`,
    /// `answer_relay`, `exchange` (from the intended start: corrected for coordinated
    /// omission), `exchange_uncorrected` (from the actual start), `start_lag`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signal: BTreeMap<String, Stage>,
    /// Resource figures of a live run: `broker_cpu_us_per_frame`, `broker_rss_kib_per_peer`,
    /// `broker_rss_mib_max`, `generator_cpu_us_per_frame`, `generator_cpu_ms_per_pair`, `peers_max`, and while connected
    /// peers only hold, `generator_cpu_us_per_held_peer_s` and `broker_cpu_us_per_held_peer_s`;
    /// `closes_unanswered` when the broker left leaving peers' close frames unanswered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, f64>,
    /// TURN allocations that failed, by error code (`437`, `486`, `timeout`, `other`); a
    /// connection may still have succeeded without a relay.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub turn_errors: BTreeMap<String, u64>,
    pub bytes_moved: u64,
    pub frames_relayed: u64,
    pub datagrams_delivered: u64,
    pub end_ms: f64,
    /// The run was stopped early (Ctrl-C, SIGTERM): its figures cover what finished before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The run was on real sockets (a live full-stack run): no simulated RTT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
    /// Connections still in flight when the run was stopped; in no other figure.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub connections_cut: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl std::ops::Deref for ModeSummary {
    type Target = Figures;
    fn deref(&self) -> &Figures {
        &self.all
    }
}

impl ModeSummary {
    /// `trickle ICE at 40 ms RTT`, and a sweep point's other inputs (`, loss 2 %`).
    pub fn heading(&self) -> String {
        format!("{} ICE at {} ms RTT{}", self.ice, self.rtt_ms, crate::metrics::point_words(&self.point))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delta {
    pub rtt_ms: u64,
    /// The sweep point's other inputs, as in [`ModeSummary::point`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub point: BTreeMap<String, String>,
    pub stages: BTreeMap<String, f64>,
}

impl Delta {
    /// `100 ms RTT`, and a sweep point's other inputs.
    pub fn label(&self) -> String {
        format!("{} ms RTT{}", self.rtt_ms, crate::metrics::point_words(&self.point))
    }
}

/// A sweep's outputs against its inputs: a row per run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepTable {
    /// The inputs that vary between runs: `ice`, `rtt_ms`, `loss`, `bandwidth_kbps`, `nat`.
    pub inputs: Vec<String>,
    pub outputs: Vec<SweepOutput>,
    pub rows: Vec<SweepRow>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepOutput {
    /// A metric path as thresholds name it (`setup.dc_open.p50`, `relay_share`).
    pub path: String,
    /// `ms`, `kbit/s`, `fraction` or `count`.
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepRow {
    pub run: String,
    /// Each input's value in this run.
    pub inputs: BTreeMap<String, String>,
    /// Each output's value, in the order of `outputs`; null when nothing got that far.
    pub values: Vec<Option<f64>>,
}

impl SweepTable {
    /// The values an input takes, in the order the runs took them.
    pub fn values_of(&self, input: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rows {
            if let Some(v) = r.inputs.get(input)
                && !out.contains(v)
            {
                out.push(v.clone());
            }
        }
        out
    }

    /// An input's value in words: `2 %` for a loss, `2 Mbit/s`, `100 ms`, `open ↔ symmetric`.
    pub fn words(input: &str, value: &str) -> String {
        crate::metrics::input_words(input, value)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub schema: String,
    pub scenario: String,
    pub seed: u64,
    pub shards: Vec<String>,
    pub modes: Vec<ModeSummary>,
    /// p50 of each stage, trickle minus vanilla (negative: trickle is faster), per RTT (and
    /// sweep point).
    pub trickle_minus_vanilla_p50_ms: Vec<Delta>,
    /// A sweep's outputs per run against its inputs (when runs differ in more than ICE mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepTable>,
    /// Every threshold of the scenario with its verdict and what was observed, in the order
    /// of the scenario (filled when the results are written; empty in a bare summary).
    #[serde(default)]
    pub thresholds: Vec<Verdict>,
    /// The run was stopped early (Ctrl-C, SIGTERM): a partial report. Runs after the one that
    /// was stopped are missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// A threshold's verdict as summary.json carries it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    /// As written: `setup.dc_open.p95 < 800ms`.
    pub threshold: String,
    pub passed: bool,
    /// The unit of `observed`: `ms`, `kbit/s`, `fraction` or `count`.
    pub unit: String,
    /// Per run it applies to (ICE mode, RTT): the value, or null when nothing got that far.
    pub observed: Vec<Observed>,
    /// Observed against expected, in words.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    pub run: String,
    pub value: Option<f64>,
}

/// A selected pair's path type: the more indirect of its two ends (relay > prflx > srflx > host).
pub fn path_type(pair: &str) -> &'static str {
    let rank = |t: &str| CANDIDATE_TYPES.iter().position(|c| *c == t).unwrap_or(0);
    let worst = pair.split('/').map(rank).max().unwrap_or(0);
    CANDIDATE_TYPES[worst]
}

fn figures(r: &RunMetrics, scope: Option<(&str, &str)>) -> Figures {
    let key = |name: &str| match scope {
        Some((k, v)) => scoped(name, k, v),
        None => name.to_string(),
    };
    let pairs = r.counter(&key("connections"));
    let pairs_ok = r.counter(&key("connections_ok"));
    let mut failures = BTreeMap::new();
    let mut selected = BTreeMap::new();
    for (k, v) in &r.counters {
        let (name, s) = split_scope(k);
        if s != scope.map(|(a, b)| format!("{a}={b}")).as_deref() {
            continue;
        }
        if let Some(cause) = name.strip_prefix("failures.") {
            failures.insert(cause.to_string(), *v);
        } else if let Some(pair) = name.strip_prefix("selected.") {
            selected.insert(pair.to_string(), *v);
        }
    }
    let connected: u64 = selected.values().sum();
    let mut shares = BTreeMap::new();
    for t in CANDIDATE_TYPES {
        let n: u64 = selected.iter().filter(|(k, _)| path_type(k) == t).map(|(_, v)| v).sum();
        shares.insert(t.to_string(), if connected == 0 { 0.0 } else { round3(n as f64 / connected as f64) });
    }
    let stages = STAGES
        .iter()
        .filter_map(|st| r.histograms.get(&key(&format!("setup.{st}"))).map(|h| (st.to_string(), Stage::of(h))))
        .collect();
    Figures {
        pairs,
        pairs_ok,
        success_rate: if pairs == 0 { 0.0 } else { (pairs_ok as f64 / pairs as f64 * 1e6).round() / 1e6 },
        failures,
        selected,
        shares,
        stages,
        goodput: r.histograms.get(&key("dc.goodput")).map(Goodput::of),
        media: media_stats(r, key),
    }
}

/// The values a scope kind takes in a run (`class` → every NAT-pair class seen).
pub fn scope_values(r: &RunMetrics, kind: &str) -> Vec<String> {
    let prefix = format!("{kind}=");
    let mut v: Vec<String> = r
        .counters
        .keys()
        .chain(r.histograms.keys())
        .filter_map(|k| split_scope(k).1.and_then(|s| s.strip_prefix(&prefix)).map(str::to_string))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Resource figures from the live runner's counters (none for a simulation).
fn resources(r: &RunMetrics) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let frames = r.counter("frames_relayed");
    let peers = r.counter("peers_max");
    if r.counters.contains_key("peers_max") {
        out.insert("peers_max".to_string(), peers as f64);
    }
    if let Some(cpu) = r.counters.get("broker.cpu_us")
        && frames > 0
    {
        out.insert("broker_cpu_us_per_frame".into(), round3(*cpu as f64 / frames as f64));
    }
    if let (Some(a), Some(b)) = (r.counters.get("broker.rss_kib_start"), r.counters.get("broker.rss_kib_max")) {
        out.insert("broker_rss_mib_max".into(), round3(*b as f64 / 1024.0));
        if peers > 0 {
            out.insert("broker_rss_kib_per_peer".into(), round3(b.saturating_sub(*a) as f64 / peers as f64));
        }
    }
    // Signaling peers leave with a close frame; a broker that did not answer it and close its
    // end within the step timeout shows here.
    if r.counter("closes_unanswered") > 0 {
        out.insert("closes_unanswered".into(), r.counter("closes_unanswered") as f64);
    }
    if r.counters.contains_key("turn.allocations") {
        out.insert("turn_allocations".into(), r.counter("turn.allocations") as f64);
    }
    if r.counters.contains_key("media.relayed_packets") {
        // The relayed media streams' rates added up: what the TURN server carried at once
        // when every call overlapped.
        out.insert("media_relayed_mbit_s".into(), round3(r.counter("media.relayed_bps") as f64 / 1e6));
        if let Some(cpu) = r.counters.get("turn.cpu_us").filter(|c| **c > 0) {
            let cpu_s = *cpu as f64 / 1e6;
            out.insert(
                "turn_media_packets_per_cpu_s".into(),
                round3(r.counter("media.relayed_packets") as f64 / cpu_s),
            );
            out.insert(
                "turn_media_mbit_per_cpu_s".into(),
                round3(r.counter("media.relayed_bytes") as f64 * 8.0 / 1e6 / cpu_s),
            );
        }
    }
    if let Some(cpu) = r.counters.get("turn.cpu_us") {
        out.insert("turn_cpu_ms".into(), round3(*cpu as f64 / 1000.0));
        let n = r.counter("turn.allocations");
        if n > 0 {
            out.insert("turn_cpu_us_per_allocation".into(), round3(*cpu as f64 / n as f64));
        }
    }
    // Per frame for the signaling generator only (it counts `frames_sent`): a full-stack
    // generator's CPU goes to its peers' stacks, not to frames.
    if let Some(cpu) = r.counters.get("generator.cpu_us")
        && frames > 0
        && r.counters.contains_key("frames_sent")
    {
        out.insert("generator_cpu_us_per_frame".into(), round3(*cpu as f64 / frames as f64));
    }
    if let Some(cpu) = r.counters.get("generator.cpu_us")
        && r.counter("connections") > 0
    {
        out.insert("generator_cpu_ms_per_pair".into(), round3(*cpu as f64 / 1000.0 / r.counter("connections") as f64));
    }
    // While every connected peer only held (HEARTBEATs): CPU per peer per second held.
    let held_s = r.counter("idle.peer_ms") as f64 / 1000.0;
    if held_s > 0.0 {
        for who in ["generator", "broker"] {
            if let Some(cpu) = r.counters.get(&format!("idle.{who}_cpu_us")) {
                out.insert(format!("{who}_cpu_us_per_held_peer_s"), round3(*cpu as f64 / held_s));
            }
        }
    }
    out
}

pub fn summarize_run(r: &RunMetrics) -> ModeSummary {
    let classes = scope_values(r, "class").into_iter().map(|c| (c.clone(), figures(r, Some(("class", &c))))).collect();
    let by_selected = scope_values(r, "selected")
        .into_iter()
        .map(|s| {
            let stages = STAGES
                .iter()
                .filter_map(|st| {
                    r.histograms
                        .get(&scoped(&format!("setup.{st}"), "selected", &s))
                        .map(|h| (st.to_string(), Stage::of(h)))
                })
                .collect();
            (s, stages)
        })
        .collect();
    let media_by_selected = scope_values(r, "selected")
        .into_iter()
        .map(|s| {
            let stats = media_stats(r, |name| scoped(name, "selected", &s));
            (s, stats)
        })
        .filter(|(_, stats)| !stats.is_empty())
        .collect();
    let signal = r
        .histograms
        .iter()
        .filter_map(|(k, h)| {
            k.strip_prefix("signal.").filter(|n| !n.contains('{')).map(|n| (n.to_string(), Stage::of(h)))
        })
        .collect();
    ModeSummary {
        ice: r.ice.clone(),
        rtt_ms: r.rtt_ms,
        point: r.point.clone(),
        peers: r.counter("peers"),
        all: figures(r, None),
        classes,
        by_selected,
        media_by_selected,
        signal,
        resources: resources(r),
        turn_errors: r
            .counters
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("turn_errors.").filter(|k| !k.contains('{')).map(|c| (c.to_string(), *v))
            })
            .collect(),
        bytes_moved: r.counter("bytes_moved"),
        frames_relayed: r.counter("frames_relayed"),
        datagrams_delivered: r.counter("datagrams"),
        end_ms: round3(r.end_ms),
        interrupted: r.counter("interrupted") > 0,
        live: r.counter("live") > 0,
        connections_cut: r.counter("connections_cut"),
    }
}

pub fn summarize(m: &Metrics) -> Summary {
    let modes: Vec<ModeSummary> = m.runs.iter().map(summarize_run).collect();
    let interrupted = modes.iter().any(|m| m.interrupted);
    let mut deltas = Vec::new();
    for t in modes.iter().filter(|m| m.ice == "trickle") {
        let Some(v) = modes.iter().find(|m| m.ice == "vanilla" && m.rtt_ms == t.rtt_ms && m.point == t.point) else {
            continue;
        };
        let mut stages = BTreeMap::new();
        for (k, st) in &t.stages {
            if let Some(vs) = v.stages.get(k) {
                stages.insert(k.clone(), round3(st.p50_ms - vs.p50_ms));
            }
        }
        deltas.push(Delta { rtt_ms: t.rtt_ms, point: t.point.clone(), stages });
    }
    let sweep = sweep_table(&modes, &m.sweep_outputs);
    Summary {
        schema: SCHEMA.into(),
        scenario: m.scenario.clone(),
        seed: m.seed,
        shards: m.shards.clone(),
        modes,
        trickle_minus_vanilla_p50_ms: deltas,
        sweep,
        thresholds: Vec::new(),
        interrupted,
    }
}

/// Whether the runs are points of a sweep: they differ in RTT or in a point's inputs.
fn is_sweep(modes: &[ModeSummary]) -> bool {
    modes.iter().any(|m| m.rtt_ms != modes[0].rtt_ms || m.point != modes[0].point)
}

/// The sweep's table: every run's inputs and the outputs (a path that does not parse is left
/// out; scenarios check theirs before running).
fn sweep_table(modes: &[ModeSummary], outputs: &[String]) -> Option<SweepTable> {
    if !is_sweep(modes) {
        return None;
    }
    let inputs_of = |m: &ModeSummary| {
        let mut i = m.point.clone();
        i.insert("ice".into(), m.ice.clone());
        i.insert("rtt_ms".into(), m.rtt_ms.to_string());
        i
    };
    let all: Vec<BTreeMap<String, String>> = modes.iter().map(inputs_of).collect();
    let inputs: Vec<String> = ["ice", "rtt_ms", "loss", "bandwidth_kbps", "nat"]
        .iter()
        .filter(|k| all.iter().any(|i| i.get(**k) != all[0].get(**k)))
        .map(|k| k.to_string())
        .collect();
    let defaults: Vec<String> = crate::metrics::DEFAULT_SWEEP_OUTPUTS.iter().map(|s| s.to_string()).collect();
    let paths: Vec<crate::thresholds::MetricPath> = (if outputs.is_empty() { &defaults[..] } else { outputs })
        .iter()
        .filter_map(|p| crate::thresholds::MetricPath::parse(p).ok())
        .filter(|p| p.per_run())
        .collect();
    let rows = modes
        .iter()
        .zip(all)
        .map(|(m, i)| SweepRow {
            run: crate::metrics::run_label(&m.ice, m.rtt_ms, &m.point, true),
            inputs: i.into_iter().filter(|(k, _)| inputs.contains(k)).collect(),
            values: paths.iter().map(|p| if p.applies_to(m) { p.value(m).map(round3) } else { None }).collect(),
        })
        .collect();
    let outputs = paths.iter().map(|p| SweepOutput { path: p.text.clone(), unit: p.unit().to_string() }).collect();
    Some(SweepTable { inputs, outputs, rows })
}

impl Summary {
    /// Whether the runs are points of a sweep (labels then carry the RTT and the point).
    pub fn sweep(&self) -> bool {
        is_sweep(&self.modes)
    }

    pub fn label(&self, m: &ModeSummary) -> String {
        crate::metrics::run_label(&m.ice, m.rtt_ms, &m.point, self.sweep())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_as_indirect_as_its_more_indirect_end() {
        assert_eq!(path_type("host/host"), "host");
        assert_eq!(path_type("host/srflx"), "srflx");
        assert_eq!(path_type("prflx/srflx"), "prflx");
        assert_eq!(path_type("host/relay"), "relay");
        assert_eq!(path_type("relay/host"), "relay");
    }

    /// Unanswered close frames show only when there were some.
    #[test]
    fn unanswered_closes_show_only_when_there_were_some() {
        let mut m = RunMetrics::new("signaling", 0);
        m.count("connections", 4);
        assert!(!resources(&m).contains_key("closes_unanswered"));
        m.count("closes_unanswered", 3);
        assert_eq!(resources(&m)["closes_unanswered"], 3.0);
    }

    /// The generator's figures: per frame only for the signaling generator, per pair for both,
    /// per held peer-second only when peers held.
    #[test]
    fn generator_figures_divide_by_what_they_name() {
        let mut sig = RunMetrics::new("signaling", 0);
        sig.count("connections", 4);
        sig.count("frames_sent", 40);
        sig.count("frames_relayed", 40);
        sig.count("generator.cpu_us", 2_000);
        let r = resources(&sig);
        assert_eq!(r["generator_cpu_us_per_frame"], 50.0);
        assert_eq!(r["generator_cpu_ms_per_pair"], 0.5);
        assert!(!r.contains_key("generator_cpu_us_per_held_peer_s"));
        sig.count("idle.peer_ms", 10_000);
        sig.count("idle.generator_cpu_us", 30);
        sig.count("idle.broker_cpu_us", 20);
        let r = resources(&sig);
        assert_eq!(r["generator_cpu_us_per_held_peer_s"], 3.0);
        assert_eq!(r["broker_cpu_us_per_held_peer_s"], 2.0);
        // A full-stack run relays frames too, but its generator runs the peers' stacks.
        let mut full = RunMetrics::new("trickle", 0);
        full.count("connections", 2);
        full.count("frames_relayed", 30);
        full.count("generator.cpu_us", 8_000);
        let r = resources(&full);
        assert!(!r.contains_key("generator_cpu_us_per_frame"));
        assert_eq!(r["generator_cpu_ms_per_pair"], 4.0);
    }

    #[test]
    fn the_summary_comes_from_the_histograms() {
        let mut r = RunMetrics::new("trickle", 40);
        for (i, sel) in ["host/host", "host/relay", "srflx/host", "host/relay"].iter().enumerate() {
            r.count("connections", 1);
            r.count("connections_ok", 1);
            r.count(format!("selected.{sel}"), 1);
            r.record("setup.dc_open", 1000 * (i as u64 + 1) * 100);
        }
        r.count("connections", 1);
        r.count("failures.timeout", 1);
        let m = Metrics {
            scenario: "s".into(),
            seed: 1,
            shards: vec!["1/1".into()],
            runs: vec![r],
            sweep_outputs: Vec::new(),
        };
        let s = summarize(&m);
        let f = &s.modes[0].all;
        assert_eq!((f.pairs, f.pairs_ok), (5, 4));
        assert_eq!(f.success_rate, 0.8);
        assert_eq!(f.shares["relay"], 0.5);
        assert_eq!(f.shares["srflx"], 0.25);
        assert_eq!(f.failures["timeout"], 1);
        let dc = &f.stages["dc_open"];
        assert_eq!(dc.count, 4);
        assert!((199.0..=201.0).contains(&dc.p50_ms), "{dc:?}");
        assert!((399.0..=401.0).contains(&dc.max_ms), "{dc:?}");
    }
}
