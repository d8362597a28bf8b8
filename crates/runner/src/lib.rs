//! The simulator (`peerstorm run` in `mode = "sim"`).
//!
//! [`world`] is the simulated world: the network, the broker core, the STUN/TURN core and
//! real-stack virtual peers on one virtual clock with one event queue ([`agenda`]); every core
//! is woken at its own `poll_timeout` and drained after every input. [`layout`] builds a world
//! from a scenario (topology, NAT presets, address plan) and turns the finished world into a
//! [`RunOutcome`], the type the live runner produces too; `peerstorm-scenario` makes the
//! report layer's metrics from it.
//!
//! Peers run in pairs, stars or mesh rooms behind the scenario's NAT presets, with the embedded
//! STUN/TURN server as a host of the simulated network. Deterministic: the same scenario and
//! seed give the same outcome.

mod agenda;
pub mod layout;
pub mod world;

pub use layout::ScenarioWorld;
pub use peerstorm_netsim::Flow;
pub use peerstorm_report::Summary;
pub use peerstorm_scenario::{RunOutcome, Scenario, Shard};
pub use world::{SimError, Step, World};

use peerstorm_peer::IceMode;
use std::time::Duration;

/// Where a run is: reported about once per virtual second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub ice: IceMode,
    pub virtual_time: Duration,
    pub peers_started: usize,
    /// Peers done (those of other shards count as done), and how many with a failed connection.
    pub peers_done: usize,
    pub peers_failed: usize,
    pub peers: usize,
    /// This run and how many the scenario has (points of a sweep × ICE modes), from 1.
    pub run: (usize, usize),
}

/// Runs one ICE mode of the scenario at its RTT (one shard of it), reporting progress.
pub fn simulate(
    s: &Scenario,
    ice: IceMode,
    shard: Shard,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunOutcome, SimError> {
    simulate_stoppable(s, ice, shard, &mut |p| {
        progress(p);
        Flow::Continue
    })
}

/// As [`simulate`]; `progress` answering [`Flow::Stop`] ends the run early, and the outcome is
/// marked interrupted.
pub fn simulate_stoppable(
    s: &Scenario,
    ice: IceMode,
    shard: Shard,
    progress: &mut dyn FnMut(Progress) -> Flow,
) -> Result<RunOutcome, SimError> {
    let mut sw = ScenarioWorld::build(s, ice, shard);
    let n = s.peers.count;
    let flow = sw.world.run_stoppable(&mut |w| {
        let st = w.stats();
        progress(Progress {
            ice,
            virtual_time: w.now(),
            peers_started: st.peers_started,
            peers_done: n - st.peers_pending,
            peers_failed: st.peers_failed,
            peers: n,
            run: (1, 1),
        })
    })?;
    Ok(sw.outcome_of(flow == Flow::Stop))
}

/// Runs every ICE mode of the scenario and summarises.
pub fn run(s: &Scenario) -> Result<Summary, SimError> {
    Ok(run_detailed(s)?.0)
}

/// As [`run`], with every run's outcome beside the summary.
pub fn run_detailed(s: &Scenario) -> Result<(Summary, Vec<RunOutcome>), SimError> {
    let (m, runs) = run_with_progress(s, Shard::WHOLE, &mut |_| {})?;
    Ok((peerstorm_report::summary::summarize(&m), runs))
}

/// Runs one shard of every ICE mode (and RTT of a sweep), reporting progress once per virtual
/// second; returns the metrics and every run's outcome.
pub fn run_with_progress(
    s: &Scenario,
    shard: Shard,
    progress: &mut dyn FnMut(Progress),
) -> Result<(peerstorm_report::Metrics, Vec<RunOutcome>), SimError> {
    run_stoppable(s, shard, &mut |p| {
        progress(p);
        Flow::Continue
    })
}

/// As [`run_with_progress`]; `progress` answering [`Flow::Stop`] ends the current run early
/// (marked interrupted) and starts no further one: the metrics then hold the runs so far.
pub fn run_stoppable(
    s: &Scenario,
    shard: Shard,
    progress: &mut dyn FnMut(Progress) -> Flow,
) -> Result<(peerstorm_report::Metrics, Vec<RunOutcome>), SimError> {
    let mut runs = Vec::new();
    let m = run_each(s, shard, progress, &mut |r| runs.push(r))?;
    Ok((m, runs))
}

/// As [`run_stoppable`], handing each run's outcome to `done` as it finishes instead of keeping
/// them all: a sweep of many points holds one run's peers at a time.
pub fn run_each(
    s: &Scenario,
    shard: Shard,
    progress: &mut dyn FnMut(Progress) -> Flow,
    done: &mut dyn FnMut(RunOutcome),
) -> Result<peerstorm_report::Metrics, SimError> {
    let mut m = peerstorm_scenario::collect_all(&s.name, s.seed, shard, &[]);
    m.sweep_outputs = s.sweep.outputs.clone();
    let plan = plan(s);
    for (i, (point, ice)) in plan.iter().enumerate() {
        let mut r = simulate_stoppable(&s.at(point), *ice, shard, &mut |mut p| {
            p.run = (i + 1, plan.len());
            progress(p)
        })?;
        r.point = point.labels();
        let stop = r.interrupted;
        m.runs.push(peerstorm_scenario::collect(&r));
        done(r);
        if stop {
            break;
        }
    }
    Ok(m)
}

/// Every run of a scenario in order: each point of its sweep, each ICE mode at each point.
fn plan(s: &Scenario) -> Vec<(peerstorm_scenario::sweep::Point, IceMode)> {
    s.points().into_iter().flat_map(|p| s.peers.ice.iter().map(move |ice| (p.clone(), *ice))).collect()
}

/// As [`run_each`], with up to `jobs` runs at once, each on a thread of its own. Runs are
/// independent worlds, each deterministic by its seed, so the metrics (and every outcome, handed
/// to `done` in the runs' order) are exactly those of `jobs = 1`. When `progress` says
/// [`Flow::Stop`], the runs going on are cut and no other starts; the metrics hold the runs in
/// order up to the first that was cut.
pub fn run_each_jobs(
    s: &Scenario,
    shard: Shard,
    jobs: usize,
    progress: &(dyn Fn(Progress) -> Flow + Sync),
    done: &mut dyn FnMut(RunOutcome),
) -> Result<peerstorm_report::Metrics, SimError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let plan = plan(s);
    if jobs <= 1 || plan.len() <= 1 {
        return run_each(s, shard, &mut |p| progress(p), done);
    }
    let mut m = peerstorm_scenario::collect_all(&s.name, s.seed, shard, &[]);
    m.sweep_outputs = s.sweep.outputs.clone();
    let (next, stopped) = (AtomicUsize::new(0), AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<RunOutcome, SimError>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(plan.len()) {
            let tx = tx.clone();
            let (plan, next, stopped) = (&plan, &next, &stopped);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= plan.len() || stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    let (point, ice) = &plan[i];
                    let r = simulate_stoppable(&s.at(point), *ice, shard, &mut |mut p| {
                        p.run = (i + 1, plan.len());
                        let flow = progress(p);
                        if flow == Flow::Stop {
                            stopped.store(true, Ordering::Relaxed);
                        }
                        flow
                    });
                    let failed = r.is_err();
                    let r = r.map(|mut r| {
                        r.point = point.labels();
                        r
                    });
                    if failed {
                        stopped.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, r)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Hand the runs on in their order, whichever thread finished first.
        let mut waiting = std::collections::BTreeMap::new();
        let mut want = 0;
        let mut first_error = None;
        let mut cut = false;
        for (i, r) in rx {
            waiting.insert(i, r);
            while let Some(r) = waiting.remove(&want) {
                want += 1;
                if cut || first_error.is_some() {
                    continue;
                }
                match r {
                    Ok(r) => {
                        cut = r.interrupted;
                        m.runs.push(peerstorm_scenario::collect(&r));
                        done(r);
                    }
                    Err(e) => first_error = Some(e),
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(m),
        }
    })
}
