//! peerstorm's simulated network: hosts on segments, NAT routers between them (RFC 4787
//! behaviours, nestable: a home NAT behind a carrier-grade NAT), per-direction links with latency,
//! jitter, loss, bandwidth and a bounded queue, a virtual clock, pcap output, and RFC 5780
//! discovery to check the NATs do what they are configured to do.
//!
//! Sans-IO and deterministic: no sockets, no wall clock; all randomness comes from the seed given
//! to [`net::Network::new`]. The call loop: [`net::Network::send`] and
//! [`net::Network::handle`] take `now` and an [`time::EventQueue`]; the driver pops the next
//! event, advances its clock, and hands it back to `handle`, which forwards the packet a hop or
//! returns a [`net::Delivery`] for a host. [`sim::Sim`] is such a driver.

pub mod discovery;
pub mod link;
pub mod nat;
pub mod net;
pub mod pcap;
pub mod sim;
pub mod time;
pub mod tls;

pub use link::{GilbertElliott, LinkConfig};
pub use nat::{Behavior, Firewall, NatConfig, Pooling, PortAssignment, Preset, Proto};
pub use net::{Delivery, HostId, Network, Packet, RouterId, RouterSpec, SegmentId};
pub use sim::{Flow, Sim};
