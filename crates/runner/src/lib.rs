//! Scenarios and the simulation driver (`peerstorm run`).
//!
//! [`scenario`] parses the TOML files (`scenarios/README.md` is the schema); [`sim`] runs one
//! on virtual time: the simulated network, the broker core and real-stack virtual peers in one
//! discrete-event loop, deterministic by seed; [`summary`] turns the milestones into the table
//! and the summary JSON.
//!
//! This build runs peers on open (un-NATed) addresses with host candidates, in pairs; NAT
//! presets need srflx/relay gathering in the virtual peer and are refused with a clear error.

pub mod scenario;
pub mod sim;
pub mod summary;

pub use scenario::Scenario;

/// Runs every ICE mode of the scenario and summarises.
pub fn run(s: &Scenario) -> Result<summary::Summary, sim::SimError> {
    let runs = s.peers.ice.iter().map(|ice| sim::simulate(s, *ice)).collect::<Result<Vec<_>, _>>()?;
    Ok(summary::summarize(&s.name, s.seed, &runs))
}
