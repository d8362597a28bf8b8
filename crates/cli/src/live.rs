//! `peerstorm run` for `mode = "live"`: the glue between the command line and
//! `peerstorm_live::run` — servers started as child processes ([`crate::children`]), progress
//! on stderr, the results directory written like a simulation's.

use crate::children::Children;
use crate::progress::Progress;
use crate::results::Results;
use crate::{EXIT_HARNESS, EXIT_OK};
use anyhow::Result;
use peerstorm_live::run::Overrides;
use peerstorm_report::Threshold;
use peerstorm_scenario::{Scenario, Shard};
use std::path::Path;

pub fn run(
    s: &Scenario,
    text: &str,
    shard: Shard,
    overrides: &Overrides,
    thresholds: &[Threshold],
    dir: &Path,
    quiet: bool,
) -> Result<u8> {
    let stop = crate::interrupt::Interrupt::install()?;
    let overrides = Overrides { stop: Some(stop.flag()), ..overrides.clone() };
    let mut progress = Progress::new(quiet);
    let outcome = peerstorm_live::run::run(s, shard, &overrides, &mut Children, &mut |e| progress.live(e));
    progress.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    let results = Results {
        metrics: &outcome.metrics,
        thresholds,
        scenario: Some(text),
        files: crate::results::peer_files(&outcome.outcomes, false)?,
        wall_secs: None,
    };
    let code = crate::results::write(dir, &results)?;
    if let Some(status) = stop.status() {
        println!("the run was interrupted ({}): a partial report (exit {status})", stop.name());
        return Ok(status);
    }
    if let Some(why) = outcome.aborted {
        println!("the run was cut short: {why}; the results above cover only part of the plan (a partial report)");
        // Never a pass: a failed threshold says 1, otherwise the run itself could not be done.
        return Ok(if code == EXIT_OK { EXIT_HARNESS } else { code });
    }
    Ok(code)
}
