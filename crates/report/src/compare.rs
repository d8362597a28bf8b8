//! `peerstorm compare BASE NEW`: the headline figures of two summaries side by side, run by
//! run (matched by ICE mode and RTT, else by place and ICE mode), and which got worse by more than a tolerance.

use crate::summary::{ModeSummary, Summary};
use std::fmt::Write as _;

/// One figure of one run in both summaries.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub run: String,
    pub metric: String,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// (new − base) / base; positive: the figure went up.
    pub change: Option<f64>,
    /// Worse by more than the tolerance (or present in BASE and missing in NEW).
    pub regressed: bool,
}

/// The compared figures: name, value, whether higher is better.
fn figures(m: &ModeSummary) -> Vec<(String, Option<f64>, bool)> {
    let mut v = vec![("success_rate".to_string(), Some(m.success_rate), true)];
    for st in ["ice_connected", "dtls_connected", "dc_open", "first_echo", "workload_done"] {
        for (stat, val) in [
            ("p50", m.stages.get(st).map(|s| s.p50_ms)),
            ("p95", m.stages.get(st).map(|s| s.p95_ms)),
            ("p99", m.stages.get(st).map(|s| s.p99_ms)),
        ] {
            v.push((format!("setup.{st}.{stat} (ms)"), val, false));
        }
    }
    v.push(("dc.goodput.p50 (kbit/s)".into(), m.goodput_kbps_p50(), true));
    v
}

/// Compares every figure; `tolerance` is a fraction (0.05 for 5 %).
pub fn compare(base: &Summary, new: &Summary, tolerance: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, b) in base.modes.iter().enumerate() {
        let run = base.label(b);
        // The same ICE mode at the same RTT and sweep point; else the run in the same place
        // with the same ICE
        // mode (a scenario whose RTT changed between the two).
        let n = new
            .modes
            .iter()
            .find(|n| n.ice == b.ice && n.rtt_ms == b.rtt_ms && n.point == b.point)
            .or_else(|| new.modes.get(i).filter(|n| n.ice == b.ice));
        for (metric, bv, higher_better) in figures(b) {
            let nv = n.and_then(|n| figures(n).into_iter().find(|(k, _, _)| *k == metric).and_then(|(_, v, _)| v));
            let change = match (bv, nv) {
                (Some(b), Some(n)) if b != 0.0 => Some((n - b) / b),
                (Some(b), Some(n)) if b == n => Some(0.0),
                _ => None,
            };
            let regressed = match (bv, nv) {
                (Some(_), None) => true,
                (Some(b), Some(n)) => {
                    let worse = if higher_better { b - n } else { n - b };
                    worse > tolerance * b.abs().max(f64::EPSILON)
                }
                _ => false,
            };
            rows.push(Row { run: run.clone(), metric, base: bv, new: nv, change, regressed });
        }
    }
    rows
}

/// The regression table.
pub fn table(rows: &[Row], tolerance: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<16} {:<34} {:>12} {:>12} {:>9}  (tolerance {:.1} %)",
        "run",
        "metric",
        "base",
        "new",
        "change",
        tolerance * 100.0
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for r in rows {
        let _ = writeln!(
            o,
            "{:<16} {:<34} {:>12} {:>12} {:>9}  {}",
            r.run,
            r.metric,
            f(r.base),
            f(r.new),
            r.change.map_or("-".to_string(), |c| format!("{:+.1}%", c * 100.0)),
            if r.regressed { "REGRESSED" } else { "" }
        );
    }
    o
}
