//! Scenarios and the simulation driver (`peerstorm run`).
//!
//! [`scenario`] parses the TOML files (`scenarios/README.md` is the schema); [`sim`] runs one
//! on virtual time: the simulated network, the broker core and real-stack virtual peers in one
//! discrete-event loop, deterministic by seed; [`metrics`] turns the milestones into the report
//! layer's histograms, from which `peerstorm-report` makes the summary and every output.
//!
//! Peers run in pairs, stars or mesh rooms behind the scenario's NAT presets, with the embedded
//! STUN/TURN server as a host of the simulated network.

pub mod metrics;
pub mod scenario;
pub mod sim;

pub use peerstorm_report::Summary;
pub use scenario::Scenario;
pub use sim::Shard;

/// Runs every ICE mode of the scenario and summarises.
pub fn run(s: &Scenario) -> Result<Summary, sim::SimError> {
    Ok(run_detailed(s)?.0)
}

/// As [`run`], with every peer's result beside the summary.
pub fn run_detailed(s: &Scenario) -> Result<(Summary, Vec<sim::RunResult>), sim::SimError> {
    let (m, runs) = run_with_progress(s, Shard::WHOLE, &mut |_| {})?;
    Ok((peerstorm_report::summary::summarize(&m), runs))
}

/// Runs one shard of every ICE mode (and RTT of a sweep), reporting progress once per virtual
/// second; returns the metrics and every peer's result.
pub fn run_with_progress(
    s: &Scenario,
    shard: Shard,
    progress: &mut dyn FnMut(sim::Progress),
) -> Result<(peerstorm_report::Metrics, Vec<sim::RunResult>), sim::SimError> {
    let rtts = if s.network.rtt_sweep_ms.is_empty() { vec![s.network.rtt_ms] } else { s.network.rtt_sweep_ms.clone() };
    let mut runs = Vec::new();
    for rtt in rtts {
        let mut v = s.clone();
        if !s.network.rtt_sweep_ms.is_empty() {
            v.network.rtt_ms = rtt;
            v.servers.broker_rtt_ms = rtt;
        }
        for ice in &s.peers.ice {
            runs.push(sim::simulate_with(&v, *ice, shard, progress)?);
        }
    }
    Ok((metrics::collect_all(&s.name, s.seed, shard, &runs), runs))
}
