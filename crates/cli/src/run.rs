//! `peerstorm run SCENARIO`: a scenario on the simulator, its results written for the report
//! layer, the exit status from its thresholds.

use crate::EXIT_HARNESS;
use crate::progress::Progress;
use crate::results::Results;
use anyhow::{Context, Result};
use clap::Args;
use peerstorm_live::run::Overrides;
use peerstorm_scenario::{BrokerTarget, Mode, Scenario, Shard};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario file (TOML; see scenarios/README.md).
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the results (default reports/<scenario>-<UTC time>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Simulate one shard: groups i, i+n, i+2n, ... (1-based, e.g. 2/4); `peerstorm merge`
    /// combines the shards' directories.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    /// Live: the number of shards when the shard index comes from JOB_COMPLETION_INDEX (as a
    /// Kubernetes Indexed Job sets it).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Live: connect from this local address (e.g. 127.0.0.2 for a second generator process).
    #[arg(long, value_name = "IP")]
    source_ip: Option<std::net::IpAddr>,
    /// Live: talk to this broker instead of the scenario's: `embedded`, `reference`
    /// (peer@1.0.2 from tools/js) or HOST:PORT (a PeerServer at path / with key peerjs).
    /// Several, comma-separated (`embedded,reference`): one run each, side by side in one report.
    #[arg(long, value_name = "BROKER")]
    broker: Option<String>,
    /// Live, full stack: use this TURN server instead of the scenario's: `embedded`, `coturn`,
    /// `none`, or `turn:HOST:PORT` (with the scenario's turn_user).
    #[arg(long, value_name = "TURN")]
    turn: Option<String>,
    /// Live: the PID of a broker running on this machine (embedded and reference brokers are
    /// known): its CPU and RSS are sampled and its exit ends the run.
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
}

/// The shard: `--shard i/n`, or JOB_COMPLETION_INDEX (0-based) with `--shards n`.
fn shard_of(a: &RunArgs) -> Result<Shard, String> {
    match (&a.shard, a.shards) {
        (Some(_), Some(_)) => Err("give --shard i/n or --shards n (with JOB_COMPLETION_INDEX), not both".into()),
        (Some(s), None) => Shard::parse(s).map_err(|e| format!("--shard: {e}")),
        (None, Some(n)) => {
            let i = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                "--shards needs JOB_COMPLETION_INDEX in the environment (a Kubernetes Indexed Job sets it)".to_string()
            })?;
            let i: usize = i.trim().parse().map_err(|_| format!("JOB_COMPLETION_INDEX = {i:?}: not a number"))?;
            Shard::parse(&format!("{}/{n}", i + 1))
                .map_err(|e| format!("JOB_COMPLETION_INDEX {i} with --shards {n}: {e}"))
        }
        (None, None) => Ok(Shard::WHOLE),
    }
}

/// Reads and checks a scenario; `Err` carries the message for exit status 2.
pub fn load_scenario(path: &Path) -> Result<(Scenario, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let s = Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((s, text))
}

pub fn run(a: &RunArgs) -> Result<u8> {
    let (mut s, text) = match load_scenario(&a.scenario) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    if let Some(seed) = a.seed {
        s.seed = seed;
    }
    let overridden = shard_of(a).and_then(|shard| overrides(a, &mut s).map(|o| (shard, o)));
    let (shard, overrides) = match overridden {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    let thresholds = s.thresholds().map_err(|e| anyhow::anyhow!("{e}"))?;
    if s.mode == Mode::Lab {
        let dir = crate::results::dir_for(a.out.as_ref(), &s.name);
        return crate::lab_run::run(&s, &text, &dir, &thresholds, a.quiet);
    }
    if s.mode == Mode::Live {
        let dir = crate::results::dir_for(a.out.as_ref(), &s.name);
        return crate::live::run(&s, &text, shard, &overrides, &thresholds, &dir, a.quiet);
    }
    eprintln!(
        "running {} (seed {}, {} peers, {} pattern, ICE {:?}{}) on the simulator",
        s.name,
        s.seed,
        s.peers.count,
        s.peers.pattern.as_str(),
        s.peers.ice,
        if shard == Shard::WHOLE { String::new() } else { format!(", shard {}", shard.label()) }
    );
    let mut progress = Progress::new(a.quiet);
    let result = peerstorm_runner::run_with_progress(&s, shard, &mut |p| progress.simulation(&p));
    progress.finish();
    let (metrics, runs) = result.with_context(|| format!("simulating {}", s.name))?;
    let results = Results {
        metrics: &metrics,
        thresholds: &thresholds,
        scenario: Some(&text),
        files: crate::results::peer_files(&runs, !s.network.rtt_sweep.is_empty())?,
        wall_secs: Some(progress.wall_secs()),
    };
    crate::results::write(&crate::results::dir_for(a.out.as_ref(), &s.name), &results)
}

/// The command line's changes to the scenario: `--broker` (several for a side-by-side live
/// run), `--turn`, `--source-ip`, `--broker-pid`.
fn overrides(a: &RunArgs, s: &mut Scenario) -> Result<Overrides, String> {
    let mut o = Overrides { brokers: None, source_ip: a.source_ip, broker_pid: a.broker_pid };
    if let Some(b) = &a.broker {
        let brokers = b
            .split(',')
            .map(|one| one.trim().parse::<BrokerTarget>().map_err(|e| format!("--broker {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        s.servers.broker = brokers[0].clone();
        o.brokers = Some(brokers);
    }
    if let Some(t) = &a.turn {
        s.servers.turn = t.parse().map_err(|e| format!("--turn {e}"))?;
    }
    // The scenario as changed must still hold together (a simulation cannot take coturn).
    s.check().map_err(|e| format!("{}: {e}", a.scenario.display()))?;
    Ok(o)
}
