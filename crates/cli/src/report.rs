//! `peerstorm report`, `merge` and `compare`: saved results re-rendered, shards combined,
//! two runs side by side.

use crate::{EXIT_HARNESS, EXIT_OK};
use anyhow::Result;
use clap::Args;
use peerstorm_report::{Metrics, Summary, Threshold};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results directory (written by `peerstorm run` or `merge`).
    dir: PathBuf,
    /// Write the outputs here instead of into DIR.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Results directories of shards of one scenario (`peerstorm run --shard i/n`).
    #[arg(required = true, num_args = 1..)]
    dirs: Vec<PathBuf>,
    /// Where to write the merged results; a directory that already holds files is refused
    /// unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Write into an --out directory that already holds files (they are overwritten).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a results directory or a summary.json.
    base: PathBuf,
    /// The new results: a results directory or a summary.json.
    new: PathBuf,
    /// How much worse a figure may get before it counts as a regression (e.g. 5% or 0.05).
    #[arg(long, default_value = "5%")]
    tolerance: String,
}

fn read_metrics(dir: &Path) -> Result<Metrics, String> {
    let p = dir.join("metrics.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Metrics::from_json(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// The thresholds of the scenario saved beside the results (none when there is no copy).
fn read_thresholds(dir: &Path) -> Result<(Vec<Threshold>, Option<String>), String> {
    let p = dir.join("scenario.toml");
    if !p.exists() {
        return Ok((Vec::new(), None));
    }
    let (s, text) = crate::run::load_scenario(&p)?;
    Ok((s.thresholds().map_err(|e| format!("{}: {e}", p.display()))?, Some(text)))
}

fn render(out: &Path, m: &Metrics, thresholds: &[Threshold], scenario: Option<&str>) -> Result<u8> {
    let r = crate::results::Results { metrics: m, thresholds, scenario, files: Vec::new(), wall_secs: None };
    crate::results::write(out, &r)
}

pub fn report(a: &ReportArgs) -> Result<u8> {
    let loaded = read_metrics(&a.dir).and_then(|m| read_thresholds(&a.dir).map(|t| (m, t)));
    let (m, (thresholds, scenario)) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    let out = a.out.clone().unwrap_or_else(|| a.dir.clone());
    render(&out, &m, &thresholds, scenario.as_deref())
}

pub fn merge(a: &MergeArgs) -> Result<u8> {
    let mut parts = Vec::new();
    for d in &a.dirs {
        match read_metrics(d) {
            Ok(m) => parts.push(m),
            Err(e) => {
                eprintln!("peerstorm: {e}");
                return Ok(EXIT_HARNESS);
            }
        }
    }
    let merged = match Metrics::merge(&parts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    let (thresholds, scenario) = match read_thresholds(&a.dirs[0]) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    if let Err(e) = crate::results::prepare_out(&a.out, a.force) {
        eprintln!("peerstorm: {e}");
        return Ok(EXIT_HARNESS);
    }
    eprintln!("merged shards {} of {}", merged.shards.join(", "), merged.scenario);
    render(&a.out, &merged, &thresholds, scenario.as_deref())
}

fn read_summary(p: &Path) -> Result<Summary, String> {
    let file = if p.is_dir() { p.join("summary.json") } else { p.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let s: Summary = serde_json::from_str(&text).map_err(|e| format!("{}: not a summary: {e}", file.display()))?;
    if s.schema != peerstorm_report::summary::SCHEMA {
        return Err(format!(
            "{}: schema {:?}; this build compares {:?} (re-render older results with `peerstorm report`)",
            file.display(),
            s.schema,
            peerstorm_report::summary::SCHEMA
        ));
    }
    Ok(s)
}

/// `5%` or `0.05`.
fn parse_tolerance(t: &str) -> Result<f64, String> {
    let v = match t.trim().strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.trim().parse::<f64>(),
    }
    .map_err(|_| format!("--tolerance {t:?}: expected a percentage such as 5% or a fraction such as 0.05"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("--tolerance {t:?}: out of range"));
    }
    Ok(v)
}

pub fn compare(a: &CompareArgs) -> Result<u8> {
    let loaded = parse_tolerance(&a.tolerance)
        .and_then(|t| read_summary(&a.base).and_then(|b| read_summary(&a.new).map(|n| (t, b, n))));
    let (tol, base, new) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    if base.scenario != new.scenario {
        eprintln!("peerstorm: note: comparing different scenarios ({:?} and {:?})", base.scenario, new.scenario);
    }
    let rows = peerstorm_report::compare::compare(&base, &new, tol);
    print!("{}", peerstorm_report::compare::table(&rows, tol));
    let regressed = rows.iter().filter(|r| r.regressed).count();
    if regressed > 0 {
        println!("{regressed} figures regressed beyond {:.1} % (exit 1)", tol * 100.0);
        Ok(1)
    } else {
        println!("no regression beyond {:.1} %", tol * 100.0);
        Ok(EXIT_OK)
    }
}
