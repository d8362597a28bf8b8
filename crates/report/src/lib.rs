//! Metrics, reports and the CI contract.
//!
//! [`metrics`] holds what a run measured (HDR histograms, counters, per-second series) in a
//! form that merges exactly; [`summary`] derives the versioned summary from it; [`thresholds`]
//! checks a scenario's thresholds (exit 0 held, 1 failed, 2 the harness could not run);
//! [`render`] and [`html`] write the text, Markdown, JUnit, `.hgrm` and HTML outputs;
//! [`compare`] puts two summaries side by side. [`write_dir`] writes a results directory.

pub mod compare;
pub mod html;
pub mod metrics;
pub mod render;
pub mod summary;
pub mod thresholds;

pub use metrics::{Metrics, RunMetrics};
pub use summary::Summary;
pub use thresholds::{Outcome, Threshold, ThresholdError};

use std::path::Path;

/// The exit status: 0 when every threshold held, 1 when one failed.
pub fn exit_status(outcomes: &[Outcome]) -> u8 {
    if outcomes.iter().all(|t| t.passed) { 0 } else { 1 }
}

/// A histogram's `.hgrm` file name: `<run>.<stage>[.<scope value>].hgrm`, with anything but
/// letters, digits, `.`, `-` and `_` as `_` (`trickle.dc_open.open-symmetric.hgrm`).
fn file_name(run: &str, key: &str) -> String {
    let clean = |s: &str| {
        s.replace(" ↔ ", "-")
            .replace(['/', ' '], "-")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect::<String>()
    };
    let (name, scope) = metrics::split_scope(key);
    let stage = name.trim_start_matches("setup.");
    match scope.and_then(|s| s.split_once('=')) {
        Some(("selected", v)) => format!("{}.{stage}.selected-{}.hgrm", clean(run), clean(v)),
        Some((_, v)) => format!("{}.{stage}.{}.hgrm", clean(run), clean(v)),
        None => format!("{}.{stage}.hgrm", clean(run)),
    }
}

/// Writes `metrics.json`, `summary.json`, `report.md`, `report.html`, `junit.xml` and
/// `hgrm/*.hgrm` into `dir`; returns the summary and the thresholds' outcomes.
pub fn write_dir(dir: &Path, m: &Metrics, thresholds: &[Threshold]) -> std::io::Result<(Summary, Vec<Outcome>)> {
    std::fs::create_dir_all(dir.join("hgrm"))?;
    let mut s = summary::summarize(m);
    let outcomes = thresholds::check_all(thresholds, &s);
    s.thresholds = outcomes.iter().map(Outcome::verdict).collect();
    std::fs::write(dir.join("metrics.json"), m.to_json())?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&s).expect("plain data") + "\n")?;
    std::fs::write(dir.join("report.md"), render::markdown(&s, &outcomes))?;
    std::fs::write(dir.join("report.html"), html::html(&s, m, &outcomes))?;
    std::fs::write(dir.join("junit.xml"), render::junit(&s, &outcomes))?;
    let sweep = s.sweep();
    for r in &m.runs {
        for (k, h) in &r.histograms {
            // Every stage overall; the data channel's opening per class and selected pair too.
            if k.starts_with("setup.") && (!k.contains('{') || k.starts_with("setup.dc_open{")) {
                std::fs::write(dir.join("hgrm").join(file_name(&r.label(sweep), k)), render::hgrm(h))?;
            }
        }
    }
    Ok((s, outcomes))
}
