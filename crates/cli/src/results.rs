//! The results directory every run writes (`peerstorm run`, live or simulated, `report`,
//! `merge`): the scenario beside the report layer's files and any per-peer records, the table on
//! stdout, the verdicts, and the exit status from the thresholds.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use peerstorm_report::{Metrics, Threshold};
use std::path::{Path, PathBuf};

/// `YYYYMMDDTHHMMSSZ` for a directory name.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `--out`, or `reports/<scenario>-<UTC time>/`.
pub fn dir_for(out: Option<&PathBuf>, scenario: &str) -> PathBuf {
    out.cloned().unwrap_or_else(|| PathBuf::from(format!("reports/{scenario}-{}", utc_stamp())))
}

/// The results directory must be writable and hold nothing (unless `--force`), checked before
/// the run so a long run never ends in a write error or mixes its files with another's.
pub(crate) fn prepare_out(dir: &Path, force: bool) -> Result<(), String> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
        && !force
    {
        return Err(format!("{} already holds files: give another --out, or --force to overwrite them", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("--out {}: cannot create it: {e}", dir.display()))?;
    let probe = dir.join(".peerstorm-write-check");
    std::fs::write(&probe, b"").map_err(|e| format!("--out {}: cannot write into it: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// What goes into a results directory.
pub struct Results<'a> {
    pub metrics: &'a Metrics,
    pub thresholds: &'a [Threshold],
    /// The scenario file's text, kept as `scenario.toml` so `report` can check it again.
    pub scenario: Option<&'a str>,
    /// More files (name, contents), e.g. `peers-trickle.jsonl`.
    pub files: Vec<(String, String)>,
    /// The run's wall time, printed when known.
    pub wall_secs: Option<f64>,
}

/// Writes the directory, prints the table, the verdicts and where the results are; returns
/// the exit status from the thresholds.
pub fn write(dir: &Path, r: &Results<'_>) -> Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(text) = r.scenario {
        std::fs::write(dir.join("scenario.toml"), text).with_context(|| format!("writing into {}", dir.display()))?;
    }
    for (name, contents) in &r.files {
        std::fs::write(dir.join(name), contents).with_context(|| format!("writing {name}"))?;
    }
    let (summary, outcomes) = peerstorm_report::write_dir(dir, r.metrics, r.thresholds)
        .with_context(|| format!("writing {}", dir.display()))?;
    print!("{}", peerstorm_report::render::table(&summary));
    if !outcomes.is_empty() {
        println!("thresholds:");
        print!("{}", peerstorm_report::render::verdicts(&outcomes));
    }
    if let Some(secs) = r.wall_secs {
        println!("wall time {secs:.2} s");
    }
    println!("results in {}: summary.json, report.md, report.html, junit.xml, metrics.json, hgrm/", dir.display());
    let failed = outcomes.iter().filter(|t| !t.passed).count();
    if failed > 0 {
        println!("{failed} of {} thresholds failed (exit 1)", outcomes.len());
        Ok(1)
    } else {
        if outcomes.is_empty() && !summary.interrupted {
            println!("no thresholds in the scenario: the exit status says only that the run completed");
        }
        Ok(EXIT_OK)
    }
}

/// One line per peer of every run (`peers-<ice>.jsonl`; in a sweep
/// `peers-<ice>-<rtt>ms[-<point>].jsonl`), as both drivers write them.
pub fn peer_files(runs: &[peerstorm_scenario::RunOutcome], sweep: bool) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for r in runs {
        let mode = peerstorm_scenario::ice_name(r.ice);
        let mut lines = String::new();
        for p in r.peers.iter().filter(|p| p.in_shard) {
            lines.push_str(&serde_json::to_string(p)?);
            lines.push('\n');
        }
        let rtt = r.sim.as_ref().map_or(0, |s| s.rtt.as_millis());
        let name = if sweep {
            let mut tag = format!("{rtt}ms");
            for (k, v) in &r.point {
                let v: String = v
                    .replace(" ↔ ", "-")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' })
                    .collect();
                tag.push_str(&format!("-{}{v}", if k == "loss" { "loss" } else { "" }));
                if k == "bandwidth_kbps" {
                    tag.push_str("kbps");
                }
            }
            format!("peers-{mode}-{tag}.jsonl")
        } else {
            format!("peers-{mode}.jsonl")
        };
        files.push((name, lines));
    }
    Ok(files)
}

/// A benchmark's rows as JSON in `out` (default `reports/out/`), named by the time.
pub(crate) fn write_json(out: Option<&PathBuf>, name: &str, value: &impl serde::Serialize) -> Result<()> {
    let dir = out.cloned().unwrap_or_else(|| PathBuf::from("reports/out"));
    std::fs::create_dir_all(&dir)?;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let path = dir.join(format!("{name}-{secs}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)?)?;
    println!("results written to {}", path.display());
    Ok(())
}
