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
    let runs = s.peers.ice.iter().map(|ice| sim::simulate(s, *ice)).collect::<Result<Vec<_>, _>>()?;
    Ok((summary::summarize(&s.name, s.seed, &runs), runs))
}
