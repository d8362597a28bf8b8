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
/// marked interrupted. The run's cells ([`Scenario::cells`]) go one after the other.
pub fn simulate_stoppable(
    s: &Scenario,
    ice: IceMode,
    shard: Shard,
    progress: &mut dyn FnMut(Progress) -> Flow,
) -> Result<RunOutcome, SimError> {
    let cells = s.cells();
    let tally = std::sync::Mutex::new(Tally::new(s, shard, cells));
    let mut parts = Vec::with_capacity(cells);
    for c in 0..cells {
        let cell = Shard { index: c, count: cells };
        let r = if parts.iter().any(|r: &RunOutcome| r.interrupted) {
            ScenarioWorld::build_cell(s, ice, shard, cell).outcome_of(true)
        } else {
            simulate_cell(s, ice, shard, cell, &tally, &mut |p| progress(p))?
        };
        parts.push(r);
    }
    Ok(RunOutcome::merge_cells(parts).expect("a run has one cell at least"))
}

/// One cell of one run, its progress summed with its siblings' in `tally`.
fn simulate_cell(
    s: &Scenario,
    ice: IceMode,
    shard: Shard,
    cell: Shard,
    tally: &std::sync::Mutex<Tally>,
    progress: &mut dyn FnMut(Progress) -> Flow,
) -> Result<RunOutcome, SimError> {
    let mut sw = ScenarioWorld::build_cell(s, ice, shard, cell);
    let report = |w: &World| {
        let mut t = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.update(cell.index, w);
        t.progress(ice)
    };
    let flow = sw.world.run_stoppable(&mut |w| progress(report(w)))?;
    report(&sw.world);
    Ok(sw.outcome_of(flow == Flow::Stop))
}

/// A run's progress, summed over its cells.
#[derive(Debug)]
struct Tally {
    peers: usize,
    /// Per cell: peers not done yet (all of them before the cell starts), started, failed.
    pending: Vec<usize>,
    started: Vec<usize>,
    failed: Vec<usize>,
    time: Duration,
}

impl Tally {
    fn new(s: &Scenario, shard: Shard, cells: usize) -> Self {
        let pending = (0..cells).map(|c| layout::cell_peers(s, shard, Shard { index: c, count: cells })).collect();
        Tally { peers: s.peers.count, pending, started: vec![0; cells], failed: vec![0; cells], time: Duration::ZERO }
    }

    fn update(&mut self, cell: usize, w: &World) {
        let st = w.stats();
        self.pending[cell] = st.peers_pending;
        self.started[cell] = st.peers_started;
        self.failed[cell] = st.peers_failed;
        self.time = self.time.max(w.now());
    }

    fn progress(&self, ice: IceMode) -> Progress {
        Progress {
            ice,
            virtual_time: self.time,
            peers_started: self.started.iter().sum(),
            peers_done: self.peers - self.pending.iter().sum::<usize>(),
            peers_failed: self.failed.iter().sum(),
            peers: self.peers,
            run: (1, 1),
        }
    }
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

/// As [`run_each`], with up to `jobs` cells at once ([`Scenario::cells`] of each run: points of
/// a sweep, ICE modes), each on a thread of its own. Cells are independent worlds, each
/// deterministic by its seed, merged in a fixed order, so the metrics (and every outcome,
/// handed to `done` in the runs' order) are exactly those of `jobs = 1`. When `progress` says
/// [`Flow::Stop`], the cells going on are cut and no other starts; the metrics hold the runs in
/// order up to the first that was cut.
pub fn run_each_jobs(
    s: &Scenario,
    shard: Shard,
    jobs: usize,
    progress: &(dyn Fn(Progress) -> Flow + Sync),
    done: &mut dyn FnMut(RunOutcome),
) -> Result<peerstorm_report::Metrics, SimError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let plan = plan(s);
    let cells: Vec<usize> = plan.iter().map(|(point, _)| s.at(point).cells()).collect();
    // Every (run, cell), runs in order.
    let tasks: Vec<(usize, usize)> = cells.iter().enumerate().flat_map(|(i, &n)| (0..n).map(move |c| (i, c))).collect();
    if jobs <= 1 || tasks.len() <= 1 {
        return run_each(s, shard, &mut |p| progress(p), done);
    }
    let mut m = peerstorm_scenario::collect_all(&s.name, s.seed, shard, &[]);
    m.sweep_outputs = s.sweep.outputs.clone();
    let tallies: Vec<Mutex<Tally>> =
        plan.iter().zip(&cells).map(|((point, _), &n)| Mutex::new(Tally::new(&s.at(point), shard, n))).collect();
    let (next, stopped) = (AtomicUsize::new(0), AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<(usize, usize, Result<RunOutcome, SimError>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(tasks.len()) {
            let tx = tx.clone();
            let (plan, cells, tasks, tallies, next, stopped) = (&plan, &cells, &tasks, &tallies, &next, &stopped);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= tasks.len() || stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    let (i, c) = tasks[k];
                    let (point, ice) = &plan[i];
                    let cell = Shard { index: c, count: cells[i] };
                    let r = simulate_cell(&s.at(point), *ice, shard, cell, &tallies[i], &mut |mut p| {
                        p.run = (i + 1, plan.len());
                        let flow = progress(p);
                        if flow == Flow::Stop {
                            stopped.store(true, Ordering::Relaxed);
                        }
                        flow
                    });
                    let failed = r.is_err();
                    if failed || r.as_ref().is_ok_and(|r| r.interrupted) {
                        stopped.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, c, r)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Merge each run's cells once all are in and hand the runs on in their order,
        // whichever thread finished first.
        let mut waiting: Vec<Vec<Option<RunOutcome>>> = cells.iter().map(|&n| (0..n).map(|_| None).collect()).collect();
        let mut want = 0;
        let mut first_error = None;
        let mut cut = false;
        let mut hand_on = |i: usize, parts: Vec<RunOutcome>, m: &mut peerstorm_report::Metrics, cut: &mut bool| {
            let mut r = RunOutcome::merge_cells(parts).expect("a run has one cell at least");
            r.point = plan[i].0.labels();
            *cut = r.interrupted;
            m.runs.push(peerstorm_scenario::collect(&r));
            done(r);
        };
        for (i, c, r) in rx {
            match r {
                Ok(r) => waiting[i][c] = Some(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            while want < plan.len() && waiting[want].iter().all(Option::is_some) {
                let parts = waiting[want].drain(..).flatten().collect();
                if !cut && first_error.is_none() {
                    hand_on(want, parts, &mut m, &mut cut);
                }
                want += 1;
            }
        }
        // A stop left the run it cut with cells that never started: they are in the outcome
        // as peers that never joined, as in one world stopped early.
        if !cut && first_error.is_none() && want < plan.len() && waiting[want].iter().any(Option::is_some) {
            let (point, ice) = &plan[want];
            let sp = s.at(point);
            let parts = waiting[want]
                .drain(..)
                .enumerate()
                .map(|(c, r)| {
                    r.unwrap_or_else(|| {
                        ScenarioWorld::build_cell(&sp, *ice, shard, Shard { index: c, count: cells[want] })
                            .outcome_of(true)
                    })
                })
                .collect();
            hand_on(want, parts, &mut m, &mut cut);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(m),
        }
    })
}
