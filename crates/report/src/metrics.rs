//! What a run measured, in a form that merges exactly: HDR histograms (values in microseconds,
//! or bit/s for goodput), counters and per-second time series, per run (ICE mode × RTT).
//! Saved as `metrics.json`: histograms in HdrHistogram's V2 encoding, base64, so any HdrHistogram
//! implementation reads them; merging shards adds counts, so the merge of shards equals the
//! combined run.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use std::collections::BTreeMap;

/// The metrics file's schema name and version.
pub const SCHEMA: &str = "peerstorm.metrics/1";

/// Largest recordable value: an hour in microseconds, or a terabit per second.
const HIGHEST: u64 = 1_000_000_000_000;

/// A histogram with the bounds every peerstorm histogram has (1 ..= 10^12, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST, 3).expect("valid bounds")
}

/// One run: one ICE mode at one RTT.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    pub ice: String,
    pub rtt_ms: u64,
    /// The point of a `[sweep]` this run is, beyond its ICE mode and RTT: `loss` (a fraction),
    /// `bandwidth_kbps`, `nat` (`offerer ↔ answerer` presets); empty outside a sweep.
    pub point: BTreeMap<String, String>,
    /// `peers`, `connections`, `connections_ok`, `failures.<cause>`, `selected.<local>/<remote>`,
    /// `frames_relayed`, `bytes_moved`, `datagrams`; scoped ones end in `{class=...}`.
    pub counters: BTreeMap<String, u64>,
    /// `setup.<stage>` (µs from the offerer's start), `dc.goodput` (bit/s); overall and scoped
    /// by `{class=...}` or `{selected=...}`.
    pub histograms: BTreeMap<String, Histogram<u64>>,
    /// Per virtual second: `peers_started`, `connections_open`, `connections_failed`,
    /// `frames_relayed`, `bytes_moved`.
    pub series: BTreeMap<String, Vec<u64>>,
    /// When the last peer finished, milliseconds of virtual (or wall) time.
    pub end_ms: f64,
}

impl RunMetrics {
    pub fn new(ice: &str, rtt_ms: u64) -> Self {
        Self {
            ice: ice.into(),
            rtt_ms,
            point: BTreeMap::new(),
            counters: BTreeMap::new(),
            histograms: BTreeMap::new(),
            series: BTreeMap::new(),
            end_ms: 0.0,
        }
    }

    pub fn count(&mut self, key: impl Into<String>, n: u64) {
        *self.counters.entry(key.into()).or_insert(0) += n;
    }

    pub fn counter(&self, key: &str) -> u64 {
        self.counters.get(key).copied().unwrap_or(0)
    }

    /// Records `value` (saturating at the bounds) into the histogram `key`.
    pub fn record(&mut self, key: impl Into<String>, value: u64) {
        self.histograms.entry(key.into()).or_insert_with(histogram).saturating_record(value.max(1));
    }

    /// Records `value` as it is, zero included (a loss of 0, no freezes), saturating at the
    /// bounds.
    pub fn record_exact(&mut self, key: impl Into<String>, value: u64) {
        self.histograms.entry(key.into()).or_insert_with(histogram).saturating_record(value);
    }

    /// Adds `n` to second `second` of the series `key`.
    pub fn tick(&mut self, key: &str, second: usize, n: u64) {
        let s = self.series.entry(key.into()).or_default();
        if s.len() <= second {
            s.resize(second + 1, 0);
        }
        s[second] += n;
    }

    /// A label for this run: `trickle`, or in a sweep `trickle @ 100 ms` and the point's other
    /// inputs (`trickle @ 100 ms, loss 1 %, 2 Mbit/s, NAT open ↔ symmetric`).
    pub fn label(&self, sweep: bool) -> String {
        run_label(&self.ice, self.rtt_ms, &self.point, sweep)
    }

    /// Whether `other` is the same run of the scenario (ICE mode, RTT and sweep point).
    pub fn same_run(&self, other: &RunMetrics) -> bool {
        self.ice == other.ice && self.rtt_ms == other.rtt_ms && self.point == other.point
    }

    /// Adds another shard's run: counters and histogram counts add, series add second by second;
    /// the server's own figures (`broker.*`, `turn.cpu_us`), sampled by every shard, take the
    /// largest.
    pub fn merge(&mut self, other: &RunMetrics) -> Result<(), MetricsError> {
        for (k, v) in &other.counters {
            if k.starts_with("broker.") || k.starts_with("turn.cpu") {
                // Shards of one run sample the same server: its figures are not additive.
                let e = self.counters.entry(k.clone()).or_insert(0);
                *e = (*e).max(*v);
            } else {
                self.count(k.clone(), *v);
            }
        }
        for (k, h) in &other.histograms {
            self.histograms
                .entry(k.clone())
                .or_insert_with(histogram)
                .add(h)
                .map_err(|e| MetricsError::Merge(format!("{k}: {e:?}")))?;
        }
        for (k, v) in &other.series {
            let s = self.series.entry(k.clone()).or_default();
            if s.len() < v.len() {
                s.resize(v.len(), 0);
            }
            for (a, b) in s.iter_mut().zip(v) {
                *a += b;
            }
        }
        self.end_ms = self.end_ms.max(other.end_ms);
        Ok(())
    }
}

/// A run's label: the ICE mode, and in a sweep the RTT and the point's other inputs.
pub fn run_label(ice: &str, rtt_ms: u64, point: &BTreeMap<String, String>, sweep: bool) -> String {
    if sweep { format!("{ice} @ {rtt_ms} ms{}", point_words(point)) } else { ice.to_string() }
}

/// A sweep point's inputs besides the RTT, in words, each after `, `: `, loss 1 %`,
/// `, 2 Mbit/s`, `, NAT open ↔ symmetric`; empty for no point.
pub fn point_words(point: &BTreeMap<String, String>) -> String {
    let mut o = String::new();
    for (k, v) in point {
        o.push_str(", ");
        match k.as_str() {
            "loss" => o.push_str("loss "),
            "nat" => o.push_str("NAT "),
            "bandwidth_kbps" => {}
            _ => {
                o.push_str(k);
                o.push(' ');
            }
        }
        o.push_str(&input_words(k, v));
    }
    o
}

/// One sweep input's value in words: `2 %` (a loss of 0.02), `2 Mbit/s` (bandwidth_kbps 2000),
/// `100 ms` (rtt_ms), anything else as it is.
pub fn input_words(key: &str, value: &str) -> String {
    // Six decimals at most: 0.07 × 100 is 7.000000000000001 in binary floating point.
    let short = |x: f64| (x * 1e6).round() / 1e6;
    match key {
        "loss" => value.parse::<f64>().map_or_else(|_| value.to_string(), |l| format!("{} %", short(l * 100.0))),
        "bandwidth_kbps" => value.parse::<f64>().map_or_else(
            |_| format!("{value} kbit/s"),
            |b| if b >= 1000.0 { format!("{} Mbit/s", short(b / 1000.0)) } else { format!("{b} kbit/s") },
        ),
        "rtt_ms" => format!("{value} ms"),
        _ => value.to_string(),
    }
}

/// The metric paths a sweep charts when its scenario names none.
pub const DEFAULT_SWEEP_OUTPUTS: [&str; 3] = ["setup.dc_open.p50", "setup.dc_open.p95", "success_rate"];

/// Every run of one scenario (or of several shards of it, merged).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub scenario: String,
    pub seed: u64,
    /// The shards these metrics hold (`1/1` for a whole run; `1/2`, `2/2` after a merge).
    pub shards: Vec<String>,
    pub runs: Vec<RunMetrics>,
    /// The metric paths a sweep's report charts against each swept input (`[sweep] outputs`);
    /// empty: [`DEFAULT_SWEEP_OUTPUTS`].
    pub sweep_outputs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("not a peerstorm metrics file: {0}")]
    Format(String),
    #[error("cannot merge: {0}")]
    Merge(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RunFile {
    ice: String,
    rtt_ms: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    point: BTreeMap<String, String>,
    end_ms: f64,
    counters: BTreeMap<String, u64>,
    series: BTreeMap<String, Vec<u64>>,
    /// HdrHistogram V2 encoding, base64.
    histograms: BTreeMap<String, String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MetricsFile {
    schema: String,
    scenario: String,
    seed: u64,
    shards: Vec<String>,
    runs: Vec<RunFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sweep_outputs: Vec<String>,
}

impl Metrics {
    /// The `metrics.json` text.
    pub fn to_json(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let runs = self
            .runs
            .iter()
            .map(|r| RunFile {
                ice: r.ice.clone(),
                rtt_ms: r.rtt_ms,
                point: r.point.clone(),
                end_ms: r.end_ms,
                counters: r.counters.clone(),
                series: r.series.clone(),
                histograms: r
                    .histograms
                    .iter()
                    .map(|(k, h)| {
                        let mut buf = Vec::new();
                        V2Serializer::new().serialize(h, &mut buf).expect("a histogram serialises into memory");
                        (k.clone(), b64.encode(buf))
                    })
                    .collect(),
            })
            .collect();
        let f = MetricsFile {
            schema: SCHEMA.into(),
            scenario: self.scenario.clone(),
            seed: self.seed,
            shards: self.shards.clone(),
            runs,
            sweep_outputs: self.sweep_outputs.clone(),
        };
        serde_json::to_string_pretty(&f).expect("plain data serialises") + "\n"
    }

    /// Reads `metrics.json`.
    pub fn from_json(text: &str) -> Result<Self, MetricsError> {
        let f: MetricsFile = serde_json::from_str(text).map_err(|e| MetricsError::Format(e.to_string()))?;
        if f.schema != SCHEMA {
            return Err(MetricsError::Format(format!("schema {:?}, this build reads {SCHEMA:?}", f.schema)));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut runs = Vec::new();
        for r in f.runs {
            let mut histograms = BTreeMap::new();
            for (k, v) in r.histograms {
                let bytes =
                    b64.decode(v.as_bytes()).map_err(|e| MetricsError::Format(format!("histogram {k}: {e}")))?;
                let h: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .map_err(|e| MetricsError::Format(format!("histogram {k}: {e:?}")))?;
                histograms.insert(k, h);
            }
            runs.push(RunMetrics {
                ice: r.ice,
                rtt_ms: r.rtt_ms,
                point: r.point,
                counters: r.counters,
                histograms,
                series: r.series,
                end_ms: r.end_ms,
            });
        }
        Ok(Self { scenario: f.scenario, seed: f.seed, shards: f.shards, runs, sweep_outputs: f.sweep_outputs })
    }

    /// Merges shards of one scenario: runs are matched by ICE mode, RTT and sweep point.
    pub fn merge(parts: &[Metrics]) -> Result<Metrics, MetricsError> {
        let Some(first) = parts.first() else { return Err(MetricsError::Merge("nothing to merge".into())) };
        let mut out = Metrics {
            scenario: first.scenario.clone(),
            seed: first.seed,
            shards: Vec::new(),
            runs: Vec::new(),
            sweep_outputs: first.sweep_outputs.clone(),
        };
        for p in parts {
            if p.scenario != out.scenario {
                return Err(MetricsError::Merge(format!(
                    "shards of different scenarios ({:?} and {:?})",
                    out.scenario, p.scenario
                )));
            }
            for s in &p.shards {
                if out.shards.contains(s) {
                    return Err(MetricsError::Merge(format!("shard {s} given twice")));
                }
                out.shards.push(s.clone());
            }
            for r in &p.runs {
                match out.runs.iter_mut().find(|o| o.same_run(r)) {
                    Some(o) => o.merge(r)?,
                    None => out.runs.push(r.clone()),
                }
            }
        }
        out.shards.sort();
        check_complete(&out.shards)?;
        Ok(out)
    }
}

/// Shards `i/n` from one split, every one of them: a merge with one missing would be a report
/// on part of the run that says nothing about it.
fn check_complete(shards: &[String]) -> Result<(), MetricsError> {
    let parse = |s: &str| {
        let (i, n) = s.split_once('/')?;
        Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?))
    };
    let parsed: Vec<(usize, usize)> = shards
        .iter()
        .map(|s| parse(s).ok_or_else(|| MetricsError::Merge(format!("shard {s:?}: expected i/n"))))
        .collect::<Result<_, _>>()?;
    let Some(&(_, n)) = parsed.first() else { return Ok(()) };
    if parsed.iter().any(|&(_, m)| m != n) {
        return Err(MetricsError::Merge(format!(
            "shards of different splits ({}): merge the shards of one --shard i/n split",
            shards.join(", ")
        )));
    }
    let missing: Vec<String> =
        (1..=n).filter(|i| !parsed.iter().any(|&(j, _)| j == *i)).map(|i| format!("{i}/{n}")).collect();
    if !missing.is_empty() {
        return Err(MetricsError::Merge(format!(
            "shard{} {} missing: a merge needs every shard of the split (given {})",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ") + if missing.len() == 1 { " is" } else { " are" },
            shards.join(", ")
        )));
    }
    Ok(())
}

/// Splits `name{scope}` into the name and the scope (`class=...`), if any.
pub fn split_scope(key: &str) -> (&str, Option<&str>) {
    match key.find('{') {
        Some(i) if key.ends_with('}') => (&key[..i], Some(&key[i + 1..key.len() - 1])),
        _ => (key, None),
    }
}

/// `name{kind=value}`.
pub fn scoped(name: &str, kind: &str, value: &str) -> String {
    format!("{name}{{{kind}={value}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64) -> RunMetrics {
        let mut r = RunMetrics::new("trickle", 40);
        let mut x = seed;
        for i in 0..1000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            r.record("setup.dc_open", 1000 + (x >> 40) % 5_000_000);
            r.record(scoped("setup.dc_open", "class", "open ↔ open"), 1000 + i);
            r.tick("peers_started", (i / 100) as usize, 1);
        }
        r.count("connections", 1000);
        r
    }

    #[test]
    fn metrics_round_trip_through_json() {
        let m = Metrics {
            scenario: "s".into(),
            seed: 1,
            shards: vec!["1/1".into()],
            runs: vec![sample(3)],
            sweep_outputs: Vec::new(),
        };
        let back = Metrics::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn sweep_inputs_read_as_words() {
        let mut p = BTreeMap::new();
        p.insert("loss".to_string(), "0.07".to_string());
        p.insert("bandwidth_kbps".to_string(), "2500".to_string());
        p.insert("nat".to_string(), "open ↔ symmetric".to_string());
        assert_eq!(point_words(&p), ", 2.5 Mbit/s, loss 7 %, NAT open ↔ symmetric");
        assert_eq!(input_words("bandwidth_kbps", "300"), "300 kbit/s");
        assert_eq!(input_words("rtt_ms", "20"), "20 ms");
    }

    #[test]
    fn shards_merge_run_by_sweep_point() {
        let (mut a, mut b) = (sample(1), sample(2));
        a.point.insert("loss".into(), "0".into());
        b.point.insert("loss".into(), "0.02".into());
        let shard = |s: &str| Metrics {
            scenario: "s".into(),
            seed: 1,
            shards: vec![s.into()],
            runs: vec![a.clone(), b.clone()],
            sweep_outputs: vec!["relay_share".into()],
        };
        let merged = Metrics::merge(&[shard("1/2"), shard("2/2")]).unwrap();
        assert_eq!(merged.runs.len(), 2, "two points stay two runs");
        assert_eq!(merged.runs[1].point["loss"], "0.02");
        let back = Metrics::from_json(&merged.to_json()).unwrap();
        assert_eq!(back, merged, "the point and the outputs survive metrics.json");
    }

    #[test]
    fn merging_adds_counts_exactly() {
        let (a, b) = (sample(1), sample(2));
        let shard = |r: &RunMetrics, s: &str| Metrics {
            scenario: "s".into(),
            seed: 1,
            shards: vec![s.into()],
            runs: vec![r.clone()],
            sweep_outputs: Vec::new(),
        };
        let merged = Metrics::merge(&[shard(&a, "1/2"), shard(&b, "2/2")]).unwrap();
        let mut whole = histogram();
        whole.add(&a.histograms["setup.dc_open"]).unwrap();
        whole.add(&b.histograms["setup.dc_open"]).unwrap();
        let h = &merged.runs[0].histograms["setup.dc_open"];
        assert_eq!(h.len(), 2000);
        assert_eq!(h, &whole);
        assert_eq!(merged.runs[0].counter("connections"), 2000);
        assert_eq!(merged.runs[0].series["peers_started"], vec![200; 10]);
        let e = Metrics::merge(&[shard(&a, "1/2"), shard(&b, "1/2")]).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        // A shard missing, or shards of two splits, are refused rather than merged into half a run.
        let e = Metrics::merge(&[shard(&a, "1/2")]).unwrap_err().to_string();
        assert!(e.contains("2/2 is missing"), "{e}");
        let e = Metrics::merge(&[shard(&a, "1/3"), shard(&b, "3/3")]).unwrap_err().to_string();
        assert!(e.contains("2/3 is missing"), "{e}");
        let e = Metrics::merge(&[shard(&a, "1/2"), shard(&b, "2/3")]).unwrap_err().to_string();
        assert!(e.contains("different splits"), "{e}");
        assert!(Metrics::merge(&[shard(&a, "1/1")]).is_ok());
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(Metrics::from_json("{}").is_err());
        let bad = r#"{"schema":"peerstorm.metrics/1","scenario":"s","seed":1,"shards":[],"runs":[{"ice":"trickle","rtt_ms":1,"end_ms":0,"counters":{},"series":{},"histograms":{"x":"AAAA"}}]}"#;
        let e = Metrics::from_json(bad).unwrap_err().to_string();
        assert!(e.contains("histogram x"), "{e}");
        assert_eq!(split_scope("setup.dc_open{class=a ↔ b}"), ("setup.dc_open", Some("class=a ↔ b")));
        assert_eq!(split_scope("success_rate"), ("success_rate", None));
    }
}
