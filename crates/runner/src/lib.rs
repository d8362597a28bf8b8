//! Scenarios and the simulation driver (`peerstorm run`).
//!
//! [`scenario`] parses the TOML files (`scenarios/README.md` is the schema); [`sim`] runs one
//! on virtual time: the simulated network, the broker core and real-stack virtual peers in one
//! discrete-event loop, deterministic by seed; [`summary`] turns the milestones into the table
//! and the summary JSON.
//!
//! Peers run in pairs behind the scenario's NAT presets, with the embedded STUN/TURN server as
//! a host of the simulated network.

pub mod scenario;
pub mod sim;
pub mod summary;

pub use scenario::Scenario;

/// Runs every ICE mode of the scenario and summarises.
pub fn run(s: &Scenario) -> Result<summary::Summary, sim::SimError> {
    Ok(run_detailed(s)?.0)
}

/// As [`run`], with every peer's result beside the summary.
pub fn run_detailed(s: &Scenario) -> Result<(summary::Summary, Vec<sim::RunResult>), sim::SimError> {
    run_with_progress(s, &mut |_| {})
}

/// As [`run_detailed`], reporting each run's progress once per virtual second.
pub fn run_with_progress(
    s: &Scenario,
    progress: &mut dyn FnMut(sim::Progress),
) -> Result<(summary::Summary, Vec<sim::RunResult>), sim::SimError> {
    let rtts = if s.network.rtt_sweep_ms.is_empty() { vec![s.network.rtt_ms] } else { s.network.rtt_sweep_ms.clone() };
    let mut runs = Vec::new();
    for rtt in rtts {
        let mut v = s.clone();
        if !s.network.rtt_sweep_ms.is_empty() {
            v.network.rtt_ms = rtt;
            v.servers.broker_rtt_ms = rtt;
        }
        for ice in &s.peers.ice {
            runs.push(sim::simulate_with(&v, *ice, progress)?);
        }
    }
    Ok((summary::summarize(&s.name, s.seed, &runs), runs))
}
