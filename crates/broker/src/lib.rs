//! A PeerJS-compatible broker (PeerServer): peerstorm's default signaling target and the
//! reference its conformance suite is held against.
//!
//! - [`core`]: the sans-IO state machine (registry, tokens, queues, expiry, liveness). It takes
//!   `now` and what arrived, and returns frames to send, connections to close and when to wake.
//!   The call-loop contract: after every `handle_*` call, drain [`core::Broker::poll_output`];
//!   call [`core::Broker::handle_timeout`] at [`core::Broker::poll_timeout`].
//! - [`ws`]: RFC 6455 framing, sans-IO.
//! - [`http`]: the HTTP API (`/`, `/<key>/id`, `/<key>/peers`, `/metrics`, CORS), sans-IO.
//! - [`server`]: the tokio shell: `server::run(listener, config, shutdown)`.

pub mod config;
pub mod core;
pub mod http;
pub mod metrics;
pub mod server;

pub use config::{Config, Hardening};
pub use core::{Broker, ConnId, ConnectParams, Output, OutputRef, PeerId};
