//! Thresholds: `metric path`, comparison, value with its unit, checked against a [`Summary`].
//!
//! ```toml
//! [thresholds]
//! "setup.dc_open.p95" = "< 800ms"
//! success_rate = ">= 0.99"
//! relay_share = "<= 30%"
//! "dc.goodput.p50" = ">= 5MB/s"
//! "success_rate{class=symmetric ↔ symmetric}" = ">= 0.9"
//! ```
//!
//! A path the suite does not know, a unit that does not fit the metric or a malformed
//! condition is a configuration error (exit 2), found before the run starts. A metric with no
//! samples in the run (no connection got that far) fails its threshold: never a silent pass.
//! Every run (ICE mode × RTT) must hold the threshold unless the path's scope picks some.

use crate::summary::{CANDIDATE_TYPES, Figures, MEDIA, MediaUnit, ModeSummary, STAGES, Summary, media_unit};

/// What a metric measures, which decides the units a condition may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Milliseconds; conditions need a time unit (`us`, `ms`, `s`).
    Time,
    /// kbit/s; conditions need a rate unit (`kbit/s`, `Mbit/s`, `MB/s`, ...).
    Rate,
    /// A fraction; `0.99` or `99%`.
    Ratio,
    /// A plain number.
    Count,
}

#[derive(Debug, Clone, PartialEq)]
enum Metric {
    SuccessRate,
    Pairs,
    PairsOk,
    Failures(Option<String>),
    Share(String),
    Stage(String, String),
    Goodput(String),
    /// Vanilla p50 minus trickle p50 of a stage (what trickle saved), ms.
    TrickleSaving(String),
    /// A live signaling latency (`signal.<name>.<stat>`), ms.
    Signal(String, String),
    /// A live resource figure (`broker.cpu_us_per_frame`, ...).
    Resource(String),
    /// Failed TURN allocations, all or by code.
    TurnErrors(Option<String>),
    /// A media call metric (`media.<name>.<p50|p95|p99|max>`).
    Media(String, String),
}

/// Live signaling latencies a threshold may name.
pub const SIGNAL: [&str; 6] =
    ["connect_open", "offer_relay", "answer_relay", "exchange", "exchange_uncorrected", "start_lag"];
/// Live resource figures a threshold may name (`broker.<x>` / `generator.<x>` / `peers_max`).
pub const RESOURCES: [&str; 7] = [
    "broker_cpu_us_per_frame",
    "broker_rss_kib_per_peer",
    "broker_rss_mib_max",
    "generator_cpu_us_per_frame",
    "broker_cpu_us_per_held_peer_s",
    "generator_cpu_us_per_held_peer_s",
    "peers_max",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
        }
    }
}

/// A metric as thresholds and sweep outputs name it: `setup.dc_open.p95`,
/// `success_rate{class=open ↔ symmetric}`, `relay_share{loss=0.02, rtt=100}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPath {
    /// As written, trimmed.
    pub text: String,
    metric: Metric,
    kind: Kind,
    /// `class`, `ice`, `rtt`, `loss`, `bandwidth_kbps` or `nat`, and the value, normalised;
    /// every one must hold.
    scope: Vec<(String, String)>,
}

/// One threshold from a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written: `setup.dc_open.p95 < 800ms`.
    pub text: String,
    path: MetricPath,
    op: Op,
    /// In the metric's own unit (ms, kbit/s, fraction, count).
    value: f64,
}

/// A threshold that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("threshold {path:?}: {reason}")]
pub struct ThresholdError {
    pub path: String,
    pub reason: String,
}

impl Outcome {
    /// As summary.json carries it.
    pub fn verdict(&self) -> crate::summary::Verdict {
        crate::summary::Verdict {
            threshold: self.threshold.clone(),
            passed: self.passed,
            unit: self.unit.to_string(),
            observed: self
                .observed
                .iter()
                .map(|(run, value)| crate::summary::Observed { run: run.clone(), value: value.map(round) })
                .collect(),
            message: self.message.clone(),
        }
    }
}

/// A threshold checked against a summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub threshold: String,
    pub passed: bool,
    /// The unit of the observed values: `ms`, `kbit/s`, `fraction` or `count`.
    pub unit: &'static str,
    /// Per run: its label and the observed value (none: no samples).
    pub observed: Vec<(String, Option<f64>)>,
    /// Observed against expected, in words.
    pub message: String,
}

const STATS: [&str; 10] = ["count", "min", "mean", "p50", "median", "p90", "p95", "p99", "p999", "max"];

fn parse_metric(name: &str) -> Result<(Metric, Kind), String> {
    let parts: Vec<&str> = name.split('.').collect();
    let known = || {
        format!(
            "unknown metric {name:?}; known: success_rate, pairs, pairs_ok, failures[.<cause>], <host|srflx|prflx|relay>_share, setup.<stage>.<stat>, dc.goodput.<p5|p50|p95>, trickle_saving.<stage>.p50, signal.<latency>.<stat>, broker.cpu_us_per_frame, broker.rss_kib_per_peer, broker.rss_mib_max, generator.cpu_us_per_frame, <broker|generator>.cpu_us_per_held_peer_s, peers_max, media.<name>.<p50|p95|p99|max> (stages: {}; stats: {})",
            STAGES.join(", "),
            STATS.join(", ")
        )
    };
    Ok(match parts.as_slice() {
        ["success_rate"] => (Metric::SuccessRate, Kind::Ratio),
        ["pairs" | "connections"] => (Metric::Pairs, Kind::Count),
        ["pairs_ok" | "connections_ok"] => (Metric::PairsOk, Kind::Count),
        ["failures"] => (Metric::Failures(None), Kind::Count),
        ["failures", cause] => (Metric::Failures(Some(cause.to_string())), Kind::Count),
        [share] if share.ends_with("_share") => {
            let t = share.trim_end_matches("_share");
            if !CANDIDATE_TYPES.contains(&t) {
                return Err(known());
            }
            (Metric::Share(t.to_string()), Kind::Ratio)
        }
        ["setup", stage, stat] => {
            if !STAGES.contains(stage) {
                return Err(format!("unknown stage {stage:?}; stages: {}", STAGES.join(", ")));
            }
            if !STATS.contains(stat) {
                return Err(format!("unknown statistic {stat:?}; statistics: {}", STATS.join(", ")));
            }
            let kind = if *stat == "count" { Kind::Count } else { Kind::Time };
            (Metric::Stage(stage.to_string(), stat.to_string()), kind)
        }
        ["dc", "goodput", stat] => {
            if !["p5", "p50", "p95"].contains(stat) {
                return Err(format!("dc.goodput has p5, p50 and p95, not {stat:?}"));
            }
            (Metric::Goodput(stat.to_string()), Kind::Rate)
        }
        ["signal", name, stat] => {
            if !SIGNAL.contains(name) {
                return Err(format!("unknown signaling latency {name:?}; known: {}", SIGNAL.join(", ")));
            }
            if !STATS.contains(stat) {
                return Err(format!("unknown statistic {stat:?}; statistics: {}", STATS.join(", ")));
            }
            let kind = if *stat == "count" { Kind::Count } else { Kind::Time };
            (Metric::Signal(name.to_string(), stat.to_string()), kind)
        }
        [who @ ("broker" | "generator" | "turn"), what] if RESOURCES.contains(&format!("{who}_{what}").as_str()) => {
            (Metric::Resource(format!("{who}_{what}")), Kind::Count)
        }
        ["peers_max"] => (Metric::Resource("peers_max".into()), Kind::Count),
        ["media", rest @ .., stat] if !rest.is_empty() => {
            let name = rest.join(".");
            let Some(unit) = media_unit(&name) else {
                let names: Vec<&str> = MEDIA.iter().map(|(n, _, _)| *n).collect();
                return Err(format!("unknown media metric {name:?}; known: {}", names.join(", ")));
            };
            if !["p50", "p95", "p99", "max"].contains(stat) {
                return Err(format!("media.{name} has p50, p95, p99 and max, not {stat:?}"));
            }
            let kind = match unit {
                MediaUnit::Time => Kind::Time,
                MediaUnit::Rate => Kind::Rate,
                MediaUnit::Ratio => Kind::Ratio,
                MediaUnit::Count => Kind::Count,
            };
            (Metric::Media(name, stat.to_string()), kind)
        }
        ["turn_errors"] => (Metric::TurnErrors(None), Kind::Count),
        ["turn_errors", code] => (Metric::TurnErrors(Some(code.to_string())), Kind::Count),
        ["trickle_saving", stage, "p50"] if STAGES.contains(stage) => {
            (Metric::TrickleSaving(stage.to_string()), Kind::Time)
        }
        _ => return Err(known()),
    })
}

/// Splits `<op> <number><unit>`.
fn parse_condition(cond: &str, kind: Kind) -> Result<(Op, f64), String> {
    let c = cond.trim();
    let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("<", Op::Lt), (">", Op::Gt), ("=", Op::Eq)]
        .iter()
        .find_map(|(s, op)| c.strip_prefix(s).map(|r| (*op, r.trim())))
        .ok_or_else(|| format!("condition {cond:?} must start with <, <=, >, >= or =="))?;
    let split =
        rest.find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-' || ch == 'e')).unwrap_or(rest.len());
    let (num, unit) = (rest[..split].trim(), rest[split..].trim());
    let n: f64 = num.parse().map_err(|_| format!("condition {cond:?}: {num:?} is not a number"))?;
    if !n.is_finite() {
        return Err(format!("condition {cond:?}: not a finite number"));
    }
    let v = match (kind, unit) {
        (Kind::Time, "us" | "µs") => n / 1000.0,
        (Kind::Time, "ms") => n,
        (Kind::Time, "s") => n * 1000.0,
        (Kind::Time, "") => return Err(format!("condition {cond:?}: give a time unit (us, ms, s), e.g. \"< 800ms\"")),
        (Kind::Rate, "bit/s" | "bps") => n / 1000.0,
        (Kind::Rate, "kbit/s" | "kbps") => n,
        (Kind::Rate, "Mbit/s" | "Mbps") => n * 1000.0,
        (Kind::Rate, "Gbit/s" | "Gbps") => n * 1e6,
        (Kind::Rate, "B/s") => n * 8.0 / 1000.0,
        (Kind::Rate, "kB/s" | "KB/s") => n * 8.0,
        (Kind::Rate, "MB/s") => n * 8000.0,
        (Kind::Rate, "GB/s") => n * 8e6,
        (Kind::Rate, "") => return Err(format!("condition {cond:?}: give a rate unit (kbit/s, Mbit/s, MB/s, ...)")),
        (Kind::Ratio, "%") => n / 100.0,
        (Kind::Ratio, "") => n,
        (Kind::Count, "") => n,
        (_, u) => return Err(format!("condition {cond:?}: unit {u:?} does not fit this metric")),
    };
    Ok((op, v))
}

/// One `kind=value` of a scope, normalised (`rtt=100ms` → `rtt`, `100`; `loss=2%` → `loss`,
/// `0.02`; `class=b <-> a` → `class`, `a ↔ b`; `nat=a` → `nat`, `a ↔ a`).
fn scope_item(item: &str) -> Result<(String, String), String> {
    let (k, v) = item.split_once('=').ok_or_else(|| format!("scope {{{item}}}: expected {{kind=value}}"))?;
    let (k, v) = (k.trim(), v.trim());
    let pair = |v: &str| {
        let (a, b) = v.split_once('↔').or_else(|| v.split_once("<->")).unwrap_or((v, v));
        (a.trim().to_string(), b.trim().to_string())
    };
    Ok(match k {
        "class" => {
            if !(v.contains('↔') || v.contains("<->")) {
                return Err(format!("class {v:?}: expected \"preset ↔ preset\""));
            }
            let (a, b) = pair(v);
            // Classes are named with their presets sorted.
            ("class".into(), if a <= b { format!("{a} ↔ {b}") } else { format!("{b} ↔ {a}") })
        }
        "nat" => {
            // A sweep's NAT point keeps its order: the offerer's preset first.
            let (a, b) = pair(v);
            ("nat".into(), format!("{a} ↔ {b}"))
        }
        "ice" if v == "trickle" || v == "vanilla" => ("ice".into(), v.into()),
        "rtt" | "rtt_ms" if v.trim_end_matches("ms").trim().parse::<u64>().is_ok() => {
            ("rtt".into(), v.trim_end_matches("ms").trim().to_string())
        }
        "loss" => {
            let f = match v.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                None => v.parse::<f64>(),
            }
            .map_err(|_| format!("loss={v}: expected a fraction (0.02) or a percentage (2%)"))?;
            ("loss".into(), loss_key(f))
        }
        "bandwidth" | "bandwidth_kbps" => {
            let b: u64 = v
                .trim_end_matches("kbit/s")
                .trim()
                .parse()
                .map_err(|_| format!("bandwidth={v}: expected whole kbit/s, e.g. bandwidth=2000"))?;
            ("bandwidth_kbps".into(), b.to_string())
        }
        _ => {
            return Err(format!(
                "scope {{{item}}}: expected class=..., ice=trickle|vanilla, rtt=<ms>, or a swept loss=, bandwidth= or nat="
            ));
        }
    })
}

/// A loss rate as sweep points and scopes spell it: the shortest decimal (`0.02`).
pub fn loss_key(loss: f64) -> String {
    format!("{loss}")
}

impl MetricPath {
    pub fn parse(path: &str) -> Result<Self, ThresholdError> {
        let err = |reason: String| ThresholdError { path: path.to_string(), reason };
        let (name, scope) = crate::metrics::split_scope(path.trim());
        let mut items: Vec<(String, String)> = Vec::new();
        for item in scope.into_iter().flat_map(|s| s.split(',')) {
            let (k, v) = scope_item(item.trim()).map_err(err)?;
            if items.iter().any(|(seen, _)| *seen == k) {
                return Err(err(format!("the scope names {k} twice")));
            }
            items.push((k, v));
        }
        let (metric, kind) = parse_metric(name).map_err(err)?;
        if matches!(metric, Metric::TrickleSaving(_)) && items.iter().any(|(k, _)| k == "class" || k == "ice") {
            return Err(err(
                "trickle_saving compares the two ICE modes: only an rtt scope (or a swept loss, bandwidth or nat) fits"
                    .into(),
            ));
        }
        Ok(MetricPath { text: path.trim().to_string(), metric, kind, scope: items })
    }

    /// The scope's items as normalised (`("class", "open ↔ symmetric")`, `("ice", "trickle")`,
    /// `("rtt", "100")`, `("loss", "0.02")`), so a scenario can check it names something it runs.
    pub fn scopes(&self) -> &[(String, String)] {
        &self.scope
    }

    /// Whether it is a figure of each run (all but `trickle_saving`, which compares two).
    pub fn per_run(&self) -> bool {
        !matches!(self.metric, Metric::TrickleSaving(_))
    }

    /// The unit of its values: `ms`, `kbit/s`, `fraction` or `count`.
    pub fn unit(&self) -> &'static str {
        match self.kind {
            Kind::Time => "ms",
            Kind::Rate => "kbit/s",
            Kind::Ratio => "fraction",
            Kind::Count => "count",
        }
    }

    /// Whether a run is one the scope picks (a class scope picks within each run).
    pub fn applies_to(&self, m: &ModeSummary) -> bool {
        self.scope.iter().all(|(k, v)| match k.as_str() {
            "ice" => *v == m.ice,
            "rtt" => *v == m.rtt_ms.to_string(),
            "loss" | "bandwidth_kbps" | "nat" => m.point.get(k) == Some(v),
            _ => true,
        })
    }

    /// The value in one run: `None` when nothing got that far (or for `trickle_saving`).
    pub fn value(&self, m: &ModeSummary) -> Option<f64> {
        match &self.metric {
            Metric::Signal(name, stat) => m.signal.get(name).and_then(|s| s.stat(stat)),
            Metric::Resource(name) => m.resources.get(name).copied(),
            Metric::TurnErrors(None) => Some(m.turn_errors.values().sum::<u64>() as f64),
            Metric::TurnErrors(Some(c)) => Some(m.turn_errors.get(c).copied().unwrap_or(0) as f64),
            _ => self.figures(m).and_then(|f| self.value_in(f)),
        }
    }

    fn figures<'a>(&self, m: &'a ModeSummary) -> Option<&'a Figures> {
        match self.scope.iter().find(|(k, _)| k == "class") {
            Some((_, c)) => m.classes.get(c),
            None => Some(&m.all),
        }
    }

    fn value_in(&self, f: &Figures) -> Option<f64> {
        match &self.metric {
            Metric::SuccessRate => (f.pairs > 0).then_some(f.success_rate),
            Metric::Pairs => Some(f.pairs as f64),
            Metric::PairsOk => Some(f.pairs_ok as f64),
            Metric::Failures(None) => Some(f.failures.values().sum::<u64>() as f64),
            Metric::Failures(Some(c)) => Some(f.failures.get(c).copied().unwrap_or(0) as f64),
            Metric::Share(t) => (!f.selected.is_empty()).then(|| f.shares.get(t).copied().unwrap_or(0.0)),
            Metric::Stage(st, stat) => f.stages.get(st).and_then(|s| s.stat(stat)),
            Metric::Goodput(stat) => f.goodput.as_ref().map(|g| match stat.as_str() {
                "p5" => g.p5_kbps,
                "p95" => g.p95_kbps,
                _ => g.p50_kbps,
            }),
            Metric::Media(name, stat) => f.media.get(name).and_then(|s| s.get(stat)),
            Metric::TrickleSaving(_) | Metric::Signal(..) | Metric::Resource(_) | Metric::TurnErrors(_) => None,
        }
    }

    /// A value in words: `96.5 %`, `731.1 ms`, `1.8 s`, `267.5 kbit/s`, `182 Mbit/s`, `12`.
    pub fn human(&self, v: f64) -> String {
        match self.kind {
            Kind::Ratio => format!("{:.1} %", v * 100.0),
            Kind::Time if v.abs() >= 10_000.0 => format!("{:.1} s", v / 1000.0),
            Kind::Time => format!("{} ms", round(v)),
            Kind::Rate if v.abs() >= 1e6 => format!("{:.1} Gbit/s", v / 1e6),
            Kind::Rate if v.abs() >= 1e4 => format!("{:.0} Mbit/s", v / 1e3),
            Kind::Rate if v.abs() >= 1e3 => format!("{:.1} Mbit/s", v / 1e3),
            Kind::Rate => format!("{} kbit/s", round(v)),
            Kind::Count => format!("{}", round(v)),
        }
    }
}

impl Threshold {
    /// `path` as in the scenario's `[thresholds]` table, `condition` its value.
    pub fn parse(path: &str, condition: &str) -> Result<Self, ThresholdError> {
        let err = |reason: String| ThresholdError { path: path.to_string(), reason };
        let p = MetricPath::parse(path)?;
        let (op, value) = parse_condition(condition, p.kind).map_err(err)?;
        let share = matches!(p.metric, Metric::SuccessRate | Metric::Share(_));
        if share && !(0.0..=1.0).contains(&value) {
            return Err(err(format!(
                "condition {:?}: a share lies between 0 and 1 (0 % and 100 %), so this could never {}",
                condition.trim(),
                if matches!(op, Op::Ge | Op::Gt | Op::Eq) == (value > 1.0) { "hold" } else { "fail" }
            )));
        }
        Ok(Threshold { text: format!("{} {}", path.trim(), condition.trim()), path: p, op, value })
    }

    /// Its metric path (with the scope as normalised).
    pub fn path(&self) -> &MetricPath {
        &self.path
    }

    /// Checks the threshold on every run it applies to.
    pub fn check(&self, s: &Summary) -> Outcome {
        let p = &self.path;
        let mut observed = Vec::new();
        if let Metric::TrickleSaving(stage) = &p.metric {
            for d in &s.trickle_minus_vanilla_p50_ms {
                let applies = p.scope.iter().all(|(k, v)| match k.as_str() {
                    "rtt" => *v == d.rtt_ms.to_string(),
                    _ => d.point.get(k) == Some(v),
                });
                if applies {
                    observed.push((d.label(), d.stages.get(stage).map(|x| -x)));
                }
            }
        } else {
            for m in s.modes.iter().filter(|m| p.applies_to(m)) {
                observed.push((s.label(m), p.value(m)));
            }
        }
        let passed =
            !observed.is_empty() && observed.iter().all(|(_, v)| v.is_some_and(|v| self.op.holds(v, self.value)));
        let message = if observed.is_empty() {
            "no run this threshold applies to (check its scope and the scenario's ICE modes, RTTs and sweep)"
                .to_string()
        } else {
            observed
                .iter()
                .map(|(l, v)| match v {
                    Some(v) => format!("{l}: {}", p.human(*v)),
                    None => format!("{l}: no samples"),
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        Outcome { threshold: self.text.clone(), passed, unit: p.unit(), observed, message }
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Flattens a TOML-like nested table of thresholds into `path → condition` pairs
/// (`setup.dc_open.p95 = "< 800ms"` written unquoted is a nested table in TOML).
pub fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) -> Result<(), ThresholdError> {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&p, v, out)?;
            }
            Ok(())
        }
        serde_json::Value::String(s) => {
            out.push((prefix.to_string(), s.clone()));
            Ok(())
        }
        other => Err(ThresholdError {
            path: prefix.to_string(),
            reason: format!("expected a condition string such as \"< 800ms\", found {other}"),
        }),
    }
}

/// Checks every threshold; the run passes when all hold.
pub fn check_all(ts: &[Threshold], s: &Summary) -> Vec<Outcome> {
    ts.iter().map(|t| t.check(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_with_their_units() {
        let t = Threshold::parse("setup.dc_open.p95", "< 800ms").unwrap();
        assert_eq!((t.op, t.value, t.path.kind), (Op::Lt, 800.0, Kind::Time));
        assert_eq!(Threshold::parse("setup.dc_open.p95", "<= 1.5 s").unwrap().value, 1500.0);
        assert_eq!(Threshold::parse("success_rate", ">= 99%").unwrap().value, 0.99);
        assert_eq!(Threshold::parse("relay_share", "<= 0.3").unwrap().value, 0.3);
        assert_eq!(Threshold::parse("dc.goodput.p50", ">= 5MB/s").unwrap().value, 40_000.0);
        assert_eq!(Threshold::parse("dc.goodput.p50", ">= 2 Mbit/s").unwrap().value, 2000.0);
        let t = Threshold::parse("success_rate{class=symmetric <-> open}", ">= 0.9").unwrap();
        assert_eq!(t.path.scopes(), [("class".to_string(), "open ↔ symmetric".to_string())]);
        let t = Threshold::parse("relay_share{loss=2%, rtt=100ms, bandwidth=2000, nat=symmetric}", "< 50%").unwrap();
        let want = [("loss", "0.02"), ("rtt", "100"), ("bandwidth_kbps", "2000"), ("nat", "symmetric ↔ symmetric")];
        assert_eq!(t.path.scopes(), want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(Threshold::parse("signal.exchange.p99", "< 50ms").unwrap().path.kind, Kind::Time);
        assert_eq!(Threshold::parse("broker.cpu_us_per_frame", "<= 20").unwrap().value, 20.0);
    }

    #[test]
    fn bad_thresholds_are_configuration_errors() {
        for (path, cond, why) in [
            ("setup.dc_opn.p95", "< 1s", "unknown stage"),
            ("setup.dc_open.p97", "< 1s", "unknown statistic"),
            ("sucess_rate", ">= 0.9", "unknown metric"),
            ("setup.dc_open.p95", "< 800", "give a time unit"),
            ("setup.dc_open.p95", "< 800 MB/s", "does not fit"),
            ("dc.goodput.p50", ">= 5", "give a rate unit"),
            ("success_rate", "about 0.9", "must start with"),
            ("success_rate", ">= lots", "not a number"),
            ("success_rate{colour=red}", ">= 0.9", "scope"),
            ("trickle_saving.dc_open.p50{ice=trickle}", "> 1s", "only an rtt scope"),
            ("success_rate{rtt=20, rtt=40}", ">= 0.9", "twice"),
            ("success_rate{loss=lots}", ">= 0.9", "expected a fraction"),
            ("signal.connect_opn.p99", "< 1s", "unknown signaling latency"),
            ("broker.cpu", "< 1", "unknown metric"),
            ("success_rate", ">= 120%", "could never hold"),
            ("relay_share", "< 1.5", "could never fail"),
            ("host_share", "<= -1%", "could never hold"),
        ] {
            let e = Threshold::parse(path, cond).unwrap_err().to_string();
            assert!(e.contains(why), "{path} {cond}: {e}");
        }
    }

    #[test]
    fn media_thresholds_take_their_metrics_units() {
        assert_eq!(Threshold::parse("media.loss.p95", "< 2%").unwrap().value, 0.02);
        assert_eq!(Threshold::parse("media.first_frame.p95", "< 1s").unwrap().value, 1000.0);
        assert_eq!(Threshold::parse("media.video.bitrate.p50", ">= 1.4 Mbit/s").unwrap().value, 1400.0);
        assert_eq!(Threshold::parse("media.freezes.max", "<= 2").unwrap().value, 2.0);
        for (path, cond, why) in [
            ("media.lost.p95", "< 2%", "unknown media metric"),
            ("media.loss.p90", "< 2%", "p50, p95, p99 and max"),
            ("media.jitter.p95", "< 30", "give a time unit"),
            ("media.video.bitrate.p50", ">= 1 s", "does not fit"),
        ] {
            let e = Threshold::parse(path, cond).unwrap_err().to_string();
            assert!(e.contains(why), "{path} {cond}: {e}");
        }
    }

    #[test]
    fn shares_at_their_bounds_are_thresholds() {
        for cond in [">= 100%", "<= 0%", "== 1", "> 0"] {
            Threshold::parse("success_rate", cond).unwrap();
        }
        // A count is not a share: 120 failures is a fine bound.
        Threshold::parse("failures", "< 120").unwrap();
    }

    #[test]
    fn a_scope_picks_the_runs_of_its_sweep_point() {
        use crate::metrics::{Metrics, RunMetrics};
        let run = |ice: &str, rtt: u64, loss: &str, ok: u64| {
            let mut r = RunMetrics::new(ice, rtt);
            r.point.insert("loss".into(), loss.into());
            r.count("connections", 10);
            r.count("connections_ok", ok);
            r
        };
        let runs = vec![run("trickle", 20, "0", 10), run("trickle", 20, "0.05", 7), run("vanilla", 100, "0.05", 8)];
        let m = Metrics { scenario: "s".into(), seed: 1, shards: vec!["1/1".into()], runs, sweep_outputs: Vec::new() };
        let s = crate::summary::summarize(&m);
        let t = Threshold::parse("success_rate{loss=5%}", ">= 0.75").unwrap().check(&s);
        assert!(!t.passed, "70 % at one of the two lossy runs: {t:?}");
        assert_eq!(t.observed.len(), 2, "{t:?}");
        assert_eq!(t.observed[0].0, "trickle @ 20 ms, loss 5 %");
        let t = Threshold::parse("success_rate{loss=0.05, ice=vanilla}", ">= 0.75").unwrap().check(&s);
        assert!(t.passed && t.observed.len() == 1, "{t:?}");
        let t = Threshold::parse("success_rate{loss=0.01}", ">= 0.75").unwrap().check(&s);
        assert!(!t.passed && t.observed.is_empty(), "a point nobody ran never passes: {t:?}");
        // The sweep table: loss and the others vary; rtt and ice too.
        let table = s.sweep.as_ref().unwrap();
        assert_eq!(table.inputs, ["ice", "rtt_ms", "loss"]);
        assert_eq!(table.rows[1].values[2], Some(0.7), "success_rate is the third default output");
    }

    #[test]
    fn nested_tables_flatten_to_paths() {
        let v = serde_json::json!({"setup": {"dc_open": {"p95": "< 800ms"}}, "success_rate": ">= 0.99"});
        let mut out = Vec::new();
        flatten("", &v, &mut out).unwrap();
        assert_eq!(
            out,
            [("setup.dc_open.p95".to_string(), "< 800ms".to_string()), ("success_rate".into(), ">= 0.99".into())]
        );
        let mut out = Vec::new();
        assert!(flatten("", &serde_json::json!({"success_rate": 0.99}), &mut out).is_err());
    }
}
