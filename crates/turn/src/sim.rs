//! The server as a host of the simulated network: packets to its listen addresses are client
//! traffic, packets to its relay addresses peer traffic; what it sends goes back into the
//! simulator from the right address.

use crate::server::{AnyPort, FiveTuple, Output, Transport, TurnServer};
use peerstorm_netsim::{Delivery, HostId, Packet, Proto, Sim, tls};
use std::collections::BTreeSet;
use std::net::{SocketAddr, SocketAddrV4};

/// A TURN server living on `host`.
#[derive(Debug)]
pub struct SimTurn {
    pub host: HostId,
    pub core: TurnServer,
    /// TCP connections that opened with a TLS ClientHello (netsim's TLS cost model, server side):
    /// a port takes TLS and plain TURN alike, told apart by the first byte, as coturn does.
    tls: BTreeSet<FiveTuple>,
}

fn v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

impl SimTurn {
    pub fn new(host: HostId, core: TurnServer) -> Self {
        SimTurn { host, core, tls: BTreeSet::new() }
    }

    /// Handles a delivery if it is for this server's host; returns whether it was.
    pub fn handle(&mut self, sim: &mut Sim, d: &Delivery) -> bool {
        let now = sim.clock.now();
        let host = self.host;
        self.handle_with(now, d, &mut |p| sim.send(host, p))
    }

    /// As [`SimTurn::handle`], for drivers that run the network themselves: what the server sends
    /// goes to `send` (to be sent from this server's host).
    pub fn handle_with(&mut self, now: std::time::Instant, d: &Delivery, send: &mut dyn FnMut(Packet)) -> bool {
        if d.host != self.host {
            return false;
        }
        let dst = SocketAddr::V4(d.pkt.dst);
        let src = SocketAddr::V4(d.pkt.src);
        let transport = match d.pkt.proto {
            Proto::Udp => Transport::Udp,
            Proto::Tcp => Transport::Tcp,
        };
        if self.core.listen_addresses().contains(&dst) {
            let tuple = FiveTuple { client: src, server: dst, transport };
            let mut payload = std::borrow::Cow::Borrowed(&d.pkt.payload[..]);
            if transport == Transport::Tcp && tls::is_handshake(&payload) {
                // A ClientHello gets the server's flight; the client's Finished needs nothing.
                if self.tls.insert(tuple) {
                    send(Packet { proto: Proto::Tcp, src: d.pkt.dst, dst: d.pkt.src, payload: tls::server_flight() });
                }
                return true;
            }
            if transport == Transport::Tcp && self.tls.contains(&tuple) {
                match tls::open(&payload) {
                    Some(plain) => payload = std::borrow::Cow::Owned(plain),
                    None => return true,
                }
            }
            self.core.handle_client(now, tuple, &payload, &mut AnyPort);
        } else {
            self.core.handle_peer(now, dst, src, &d.pkt.payload);
        }
        self.flush_with(send);
        true
    }

    /// Runs the core's timers at the simulator's time.
    pub fn tick(&mut self, sim: &mut Sim) {
        let host = self.host;
        self.handle_timeout_with(sim.clock.now(), &mut |p| sim.send(host, p));
    }

    /// As [`SimTurn::tick`], for drivers that run the network themselves (wake it at
    /// `core.poll_timeout()`): allocations, permissions and channels expire here.
    pub fn handle_timeout_with(&mut self, now: std::time::Instant, send: &mut dyn FnMut(Packet)) {
        self.core.handle_timeout(now);
        self.flush_with(send);
    }

    fn flush_with(&mut self, send: &mut dyn FnMut(Packet)) {
        while let Some(o) = self.core.poll_output() {
            let pkt = match o {
                Output::ToClient { tuple, from, mut data } => {
                    let proto = if tuple.transport == Transport::Tcp { Proto::Tcp } else { Proto::Udp };
                    if self.tls.contains(&tuple) {
                        data = tls::seal(&data);
                    }
                    match (v4(from), v4(tuple.client)) {
                        (Some(src), Some(dst)) => Packet { proto, src, dst, payload: data },
                        _ => continue,
                    }
                }
                Output::ToPeer { relay, peer, data } => match (v4(relay), v4(peer)) {
                    (Some(src), Some(dst)) => Packet { proto: Proto::Udp, src, dst, payload: data },
                    _ => continue,
                },
                Output::RelayClosed { .. } => continue,
            };
            send(pkt);
        }
    }
}
