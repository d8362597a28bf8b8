//! What a run is asked to do and what it produced, shared by both drivers.
//!
//! [`Scenario`] is the typed scenario file (`scenarios/README.md` is the schema): every option
//! is an enum or a typed value ([`Duration`](std::time::Duration)s, the model's
//! [`Serialization`](peerstorm_model::peerjs::payload::Serialization), NAT [`Preset`](peerstorm_netsim::Preset)s,
//! [`TurnTarget`] and [`BrokerTarget`]), checked once in [`Scenario::parse`], so no driver
//! matches strings. [`RunOutcome`] is what one run (one ICE mode, one RTT) produced, made by the
//! simulator (`peerstorm-runner`) and by the live runner (`peerstorm-live`) alike, and
//! [`collect`] turns it into the report layer's metrics in one place.

pub mod collect;
pub mod outcome;
mod serde_time;
pub mod spec;
pub mod sweep;
pub mod targets;

pub use collect::{collect, collect_all, failure_name, ice_name};
pub use outcome::{Link, PeerResult, RunOutcome, Shard, SimStats};
pub use spec::{
    DataChannel, HostKind, LabSpec, Load, LoadModel, Mode, NatMix, Network, Pairing, Pattern, Peers, Scenario,
    ScenarioError, Servers, Signaling, Stack,
};
pub use targets::{BrokerTarget, PeerServer, StunTarget, TurnTarget, TurnUri};
