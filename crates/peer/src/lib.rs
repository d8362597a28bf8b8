//! The virtual peer: a PeerJS signaling client ([`signaling`]) and, on top, an `rtc` peer
//! connection with application-owned candidate gathering and a data-channel workload, recording
//! [`milestones`] on the virtual clock. Sans-IO: the driver (the simulator, or the live runner)
//! moves frames, datagrams and time in and out.

pub mod config;
pub mod conn;
pub mod media;
pub mod milestones;
pub mod peer;
pub mod profile;
pub mod signaling;

pub use config::{IceMode, PeerConfig, Transmit, TurnServer, TurnTransport, Workload};
pub use conn::call::MediaOutcome;
pub use media::{MediaWorkload, StreamStats};
pub use milestones::{Failure, Milestone, Milestones};
pub use peer::{ConnOutcome, Received, VirtualPeer};
pub use profile::{CpuScale, Profile, StackTimers};
pub use signaling::{SignalEvent, SignalingClient};
