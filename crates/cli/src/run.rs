//! `peerstorm run SCENARIO`: a scenario on the simulator.

use anyhow::{Context, Result};
use clap::Args;
use peerstorm_runner::Scenario;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML; see scenarios/README.md).
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write summary.json and peers-<ice>.jsonl (default reports/out/<scenario>-<unix time>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: &RunArgs) -> Result<u8> {
    let text = std::fs::read_to_string(&a.scenario).with_context(|| format!("reading {}", a.scenario.display()))?;
    let mut s = match Scenario::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("peerstorm: {}: {e}", a.scenario.display());
            return Ok(crate::EXIT_HARNESS);
        }
    };
    if let Some(seed) = a.seed {
        s.seed = seed;
    }
    if !s.thresholds.is_empty() {
        eprintln!(
            "peerstorm: {}: [thresholds] are evaluated by the report layer, which this build does not have yet; remove them to run",
            a.scenario.display()
        );
        return Ok(crate::EXIT_HARNESS);
    }
    eprintln!("running {} (seed {}, {} peers, ICE {:?}) on the simulator", s.name, s.seed, s.peers.count, s.peers.ice);
    let wall = Instant::now();
    // Progress on stderr at most every 5 wall seconds, once a run has taken 3.
    let mut last = Instant::now();
    let mut report = |p: peerstorm_runner::sim::Progress| {
        if wall.elapsed().as_secs() >= 3 && last.elapsed().as_secs() >= 5 {
            last = Instant::now();
            eprintln!(
                "  {:?} ICE: virtual {:.0} s, {} of {} peers done, wall {:.0} s",
                p.ice,
                p.virtual_time.as_secs_f64(),
                p.peers_done,
                p.peers,
                wall.elapsed().as_secs_f64()
            );
        }
    };
    let (summary, runs) =
        peerstorm_runner::run_with_progress(&s, &mut report).with_context(|| format!("simulating {}", s.name))?;
    let secs = wall.elapsed().as_secs_f64();
    print!("{}", summary.table());
    let dir = a.out.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PathBuf::from(format!("reports/out/{}-{t}", s.name))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    for r in &runs {
        let mode = serde_json::to_value(r.ice)?.as_str().unwrap_or("ice").to_string();
        let mut lines = String::new();
        for p in &r.peers {
            lines.push_str(&serde_json::to_string(p)?);
            lines.push('\n');
        }
        let p = dir.join(format!("peers-{mode}.jsonl"));
        std::fs::write(&p, lines).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("wall time {secs:.2} s; summary and per-peer results (peers-<ice>.jsonl) written to {}", dir.display());
    Ok(crate::EXIT_OK)
}
