//! peerstorm's STUN/TURN server: RFC 8489 Binding (with RFC 5780 when a second address is
//! configured) and RFC 8656 TURN with long-term credentials, UDP relays, UDP and TCP client
//! transports.
//!
//! - [`server`]: the sans-IO core. Call-loop contract: feed `handle_client` / `handle_peer`,
//!   drain `poll_output` after each call, run `handle_timeout` at `poll_timeout`.
//! - [`auth`]: long-term credentials and MESSAGE-INTEGRITY.
//! - [`shell`]: the tokio driver (`peerstorm serve turn`), reading and writing UDP in batches
//!   (`batch.rs`: `recvmmsg`, `sendmmsg`).
//! - [`sim`]: the driver that makes the server a host of the simulated network.

pub mod auth;
mod batch;
pub mod client;
pub mod config;
pub mod server;
pub mod shell;
pub mod sim;

pub use server::{FiveTuple, Output, RelayPorts, Transport, TurnConfig, TurnServer};
