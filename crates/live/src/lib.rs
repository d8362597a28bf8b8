//! The live runner: virtual peers on real sockets against any PeerServer.
//!
//! [`plan`] turns a load model (open, closed, ramp, churn) into intended start times, bounded in
//! count and time; [`signal`] runs the signaling load: pairs of PeerJS-like WebSocket clients
//! (the `peerstorm-loadgen` client) that join, exchange OFFER, CANDIDATE×k, ANSWER,
//! CANDIDATE×k with realistic sizes, hold with HEARTBEATs and leave. Latencies are measured
//! from the *intended* start (corrected for coordinated omission) with the uncorrected figure
//! beside it, into the report layer's [`peerstorm_report::RunMetrics`].

pub mod fullstack;
pub mod plan;
pub mod run;
pub mod signal;

pub use plan::{LoadModel, Plan};
pub use signal::{LiveConfig, LiveError, Progress, run_signaling};

/// Raises the open-file limit to the hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft < hard {
        rlimit::Resource::NOFILE.set(hard, hard)?;
    }
    Ok(hard)
}
