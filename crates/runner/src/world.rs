//! The simulated world: the network, the broker core, the STUN/TURN core and the virtual peers
//! on one virtual clock, with one event queue ([`crate::agenda`]).
//!
//! The call-loop contract, the same for every core (str0m's rule): **after every input the
//! world drains that core's output before it moves on, and wakes each core exactly at the
//! deadline the core's `poll_timeout` asked for last** — never earlier, never at someone else's
//! event. A packet is handed to the host it reached (a peer, the TURN server, or a foreign
//! host the caller owns, see [`World::step`]); a signaling frame reaches the broker or a peer
//! one signaling one-way delay after it was sent.
//!
//! The world does not read a clock: [`World::step`] handles the next entry of the agenda and
//! moves virtual time to it. A driver on the wall clock drives the same world by calling
//! [`World::run_until`] with the wall time elapsed (everything due by then is handled, packets
//! for hosts it owns come back to it, and virtual time stands at the wall time), injecting what
//! arrived from outside with [`World::send`], and sleeping until [`World::next_deadline`].
//!
//! Randomness: the network draws loss, jitter and NAT ports from generators derived from the
//! scenario's seed (per link and flow, per NAT: see `peerstorm_netsim::net::Network::new`), as
//! the broker core does for its IDs; the `rtc` stack's own randomness
//! (certificates, ICE credentials and tie-breakers, SCTP TSNs) is not seedable, which is
//! invisible unless a link is bandwidth-limited (DTLS records then differ in size by a byte or
//! two from run to run, and so does their serialization time).

use crate::agenda::{Agenda, Core, Event};
use peerstorm_broker::{Broker, ConnId, ConnectParams, Output};
use peerstorm_netsim::time::VirtualClock;
use peerstorm_netsim::{Delivery, Flow, HostId, Network, Packet, Proto, tls};
use peerstorm_peer::{Failure, Transmit, VirtualPeer};
use peerstorm_turn::TurnServer;
use peerstorm_turn::sim::SimTurn;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// The most events one world handles before it calls the run a livelock.
pub const MAX_EVENTS: u64 = 200_000_000;

/// The run could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("livelock: more than {limit} events by virtual time {at:?}; unfinished peers: {unfinished}")]
    Livelock { limit: u64, at: Duration, unfinished: String },
    #[error(
        "deadlock at virtual time {at:?}: nothing is left to happen but the servers' sweeps; unfinished peers: {unfinished}"
    )]
    Deadlock { at: Duration, unfinished: String },
}

/// The driver's own events.
#[derive(Debug)]
enum Action {
    Join(usize),
    ToBroker(usize, String),
    ToPeer(usize, String),
    Deadline(usize),
    /// A STUN/TURN answer held back by the answer delay.
    ServerSend(Packet),
}

/// A virtual peer and what the world keeps for it.
#[derive(Debug)]
struct Slot {
    peer: VirtualPeer,
    host: HostId,
    /// What it is called in diagnostics (its NAT preset).
    label: &'static str,
    /// Scheduled to join, and not done yet.
    pending: bool,
    timer: Option<Duration>,
    bytes: u64,
    /// The group it retires with (see [`World::retire_together`]).
    group: Option<u32>,
    /// Retired: its stack is gone, and nothing reaches it or wakes it any more.
    retired: bool,
}

/// Peers that retire together once every one of them is done.
#[derive(Debug)]
struct Group {
    members: std::ops::Range<usize>,
    /// Members not done yet.
    left: usize,
}

/// The STUN/TURN server and its timer.
#[derive(Debug)]
struct Server {
    sim: SimTurn,
    timer: Option<Duration>,
    answer_delay: Duration,
}

/// Counters a run reports.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub events: u64,
    pub peers_started: usize,
    /// Peers scheduled to join and not done yet.
    pub peers_pending: usize,
    /// Peers done with at least one failed connection.
    pub peers_failed: usize,
    /// Signaling frames the broker delivered, in total and per virtual second.
    pub frames_relayed: u64,
    pub frames_per_s: Vec<u64>,
    /// Data-channel bytes moved per virtual second (both directions, both sides).
    pub bytes_per_s: Vec<u64>,
}

fn bump(v: &mut Vec<u64>, t: Duration, k: u64) {
    let sec = t.as_secs() as usize;
    if v.len() <= sec {
        v.resize(sec + 1, 0);
    }
    v[sec] += k;
}

/// What [`World::step`] did.
#[derive(Debug)]
pub enum Step {
    /// An event was handled inside the world.
    Handled,
    /// A packet reached a host the world does not run (the caller's).
    Delivered(Delivery),
    /// Nothing is scheduled at all.
    Idle,
}

/// The network, the servers and the peers on one virtual clock.
#[derive(Debug)]
pub struct World {
    clock: VirtualClock,
    net: Network,
    agenda: Agenda<Action>,
    broker: Broker,
    broker_timer: Option<Duration>,
    server: Option<Server>,
    signaling_one_way: Duration,
    peers: Vec<Slot>,
    /// Host index → peer index.
    host_to_peer: Vec<Option<u32>>,
    groups: Vec<Group>,
    stats: Stats,
    max_events: u64,
    scratch: Vec<Packet>,
    /// Peers' TLS connections to the TURN server (`turns:`), by (the peer's address, the
    /// server's): netsim's TLS cost model, client side.
    tls: rustc_hash::FxHashMap<(SocketAddrV4, SocketAddrV4), TlsConn>,
}

/// A modelled TLS connection, client side: the ClientHello is out, and what the peer sends waits
/// for the server's flight.
#[derive(Debug, Default)]
struct TlsConn {
    open: bool,
    held: Vec<Vec<u8>>,
}

impl World {
    /// A world on `net` with a broker made by `broker` (given virtual time 0) and frames taking
    /// `signaling_one_way` between a peer and the broker.
    pub fn new(net: Network, signaling_one_way: Duration, broker: impl FnOnce(Instant) -> Broker) -> Self {
        let clock = VirtualClock::new();
        let broker = broker(clock.now());
        let mut w = Self {
            clock,
            net,
            agenda: Agenda::default(),
            broker,
            broker_timer: None,
            server: None,
            signaling_one_way,
            peers: Vec::new(),
            host_to_peer: Vec::new(),
            groups: Vec::new(),
            stats: Stats::default(),
            max_events: MAX_EVENTS,
            scratch: Vec::new(),
            tls: rustc_hash::FxHashMap::default(),
        };
        w.reschedule_broker();
        w
    }

    /// The `Instant` of virtual time 0 (cores are built with it).
    pub fn base(&self) -> Instant {
        self.clock.instant(Duration::ZERO)
    }

    /// Virtual time now.
    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    pub fn turn(&self) -> Option<&TurnServer> {
        self.server.as_ref().map(|s| &s.sim.core)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Lowers the event bound (tests of the livelock report).
    pub fn set_max_events(&mut self, n: u64) {
        self.max_events = n;
    }

    /// Puts the STUN/TURN core on `host`; its answers (not relayed data) wait `answer_delay`.
    pub fn add_turn(&mut self, host: HostId, core: TurnServer, answer_delay: Duration) {
        self.server = Some(Server { sim: SimTurn::new(host, core), timer: None, answer_delay });
        self.reschedule_turn();
    }

    /// Adds a peer living on `host` (it joins once [`World::schedule_join`] says when); returns
    /// its index, which is also its broker connection's ID.
    pub fn add_peer(&mut self, host: HostId, peer: VirtualPeer, label: &'static str) -> usize {
        let i = self.peers.len();
        let h = host.0 as usize;
        if self.host_to_peer.len() <= h {
            self.host_to_peer.resize(h + 1, None);
        }
        self.host_to_peer[h] = Some(i as u32);
        self.peers.push(Slot { peer, host, label, pending: false, timer: None, bytes: 0, group: None, retired: false });
        i
    }

    /// Peer `i` joins the broker at `at`; if it is not done by `deadline`, it fails (`timeout`).
    pub fn schedule_join(&mut self, i: usize, at: Duration, deadline: Duration) {
        self.peers[i].pending = true;
        self.stats.peers_pending += 1;
        self.agenda.push(at, Action::Join(i));
        self.agenda.push(deadline, Action::Deadline(i));
    }

    /// Once every peer in `members` (scheduled to join) is done, all of them are retired
    /// ([`VirtualPeer::retire`]): their stacks are dropped, packets and frames for them are
    /// discarded on arrival, and they never wake again. For groups whose peers talk only to
    /// each other, nothing measured changes after that: their keepalives would only cost time
    /// and memory until the last group of the run is done, and make the run's datagram count
    /// depend on when that is.
    pub fn retire_together(&mut self, members: std::ops::Range<usize>) {
        let g = self.groups.len() as u32;
        for s in &mut self.peers[members.clone()] {
            s.group = Some(g);
        }
        self.groups.push(Group { left: members.len(), members });
    }

    fn retire_group(&mut self, g: usize) {
        for i in self.groups[g].members.clone() {
            let s = &mut self.peers[i];
            s.retired = true;
            s.peer.retire();
            self.agenda.reschedule(Core::Peer(i), s.timer, None);
            s.timer = None;
        }
    }

    pub fn peer(&self, i: usize) -> &VirtualPeer {
        &self.peers[i].peer
    }

    pub fn peers(&self) -> impl ExactSizeIterator<Item = &VirtualPeer> {
        self.peers.iter().map(|s| &s.peer)
    }

    /// A host the caller owns sends `pkt` now.
    pub fn send(&mut self, host: HostId, pkt: Packet) {
        let now = self.now();
        self.net.send(&mut self.agenda, now, host, pkt);
    }

    /// When the next event is due.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.agenda.peek_time()
    }

    /// Handles the next event (moving virtual time to it) and drains what it touched.
    pub fn step(&mut self) -> Result<Step, SimError> {
        let Some((at, ev)) = self.agenda.pop() else { return Ok(Step::Idle) };
        self.stats.events += 1;
        if self.stats.events > self.max_events {
            return Err(SimError::Livelock { limit: self.max_events, at, unfinished: self.unfinished() });
        }
        self.clock.advance_to(at);
        match ev {
            Event::Net(ev) => {
                let now = self.now();
                if let Some(d) = self.net.handle(&mut self.agenda, now, ev) {
                    return Ok(self.deliver(d));
                }
            }
            Event::Driver(a) => self.act(a),
            Event::Wake(Core::Peer(i)) => {
                self.peers[i].timer = None;
                if self.peers[i].retired {
                    return Ok(Step::Handled);
                }
                let t = self.instant();
                self.peers[i].peer.handle_timeout(t);
                self.drain_peer(i);
            }
            Event::Wake(Core::Broker) => {
                self.broker_timer = None;
                let t = self.instant();
                self.broker.handle_timeout(t);
                self.drain_broker();
                self.reschedule_broker();
            }
            Event::Wake(Core::Turn) => {
                let t = self.instant();
                if let Some(s) = self.server.as_mut() {
                    s.timer = None;
                    let out = &mut self.scratch;
                    s.sim.handle_timeout_with(t, &mut |p| out.push(p));
                }
                self.send_server_output();
                self.reschedule_turn();
            }
        }
        Ok(Step::Handled)
    }

    /// Steps until every scheduled peer is done, calling `progress` about once per virtual
    /// second.
    pub fn run(&mut self, progress: &mut dyn FnMut(&World)) -> Result<(), SimError> {
        self.run_stoppable(&mut |w| {
            progress(w);
            Flow::Continue
        })
        .map(|_| ())
    }

    /// As [`World::run`], and `progress` may end the run early by answering [`Flow::Stop`]
    /// (an interrupted run: the peers still in flight are left as they are). It is asked once
    /// per virtual second and at least every [`World::ASK_EVERY`] events, so a stop request is
    /// seen promptly however slowly virtual time moves.
    pub fn run_stoppable(&mut self, progress: &mut dyn FnMut(&World) -> Flow) -> Result<Flow, SimError> {
        let mut next_report = Duration::from_secs(1);
        let mut steps = 0u64;
        while self.stats.peers_pending > 0 {
            if !self.agenda.has_work() {
                return Err(SimError::Deadlock { at: self.now(), unfinished: self.unfinished() });
            }
            steps += 1;
            if self.now() >= next_report || steps % Self::ASK_EVERY == 0 {
                if progress(self) == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                if self.now() >= next_report {
                    next_report = self.now() + Duration::from_secs(1);
                }
            }
            if let Step::Delivered(d) = self.step()? {
                // Packets to hosts nobody runs are lost, as on a real network.
                drop(d);
            }
        }
        Ok(Flow::Continue)
    }

    /// Events between two questions to `run_stoppable`'s callback at most.
    pub const ASK_EVERY: u64 = 65_536;

    /// Steps until `deadline` (virtual time then stands there) or until `on_delivery`, called
    /// for every packet that reaches a host the caller owns, says [`Flow::Stop`].
    pub fn run_until(
        &mut self,
        deadline: Duration,
        mut on_delivery: impl FnMut(&mut World, Delivery) -> Flow,
    ) -> Result<Flow, SimError> {
        while self.agenda.peek_time().is_some_and(|t| t <= deadline) {
            if let Step::Delivered(d) = self.step()?
                && on_delivery(self, d) == Flow::Stop
            {
                return Ok(Flow::Stop);
            }
        }
        self.clock.advance_to(deadline);
        Ok(Flow::Continue)
    }

    fn instant(&self) -> Instant {
        self.clock.now()
    }

    fn act(&mut self, a: Action) {
        let at = self.instant();
        match a {
            Action::Join(i) => {
                self.stats.peers_started += 1;
                let query = self.peers[i].peer.query("peerjs");
                self.broker.handle_connect(at, ConnId(i as u64), &ConnectParams::from_query(&query));
                self.drain_broker();
                self.peers[i].peer.handle_connected(at);
                self.drain_peer(i);
            }
            Action::ToBroker(i, text) => {
                self.broker.handle_text(at, ConnId(i as u64), &text);
                self.drain_broker();
            }
            Action::ToPeer(i, text) => {
                self.stats.frames_relayed += 1;
                let now = self.now();
                bump(&mut self.stats.frames_per_s, now, 1);
                if self.peers[i].retired {
                    return;
                }
                self.peers[i].peer.handle_signal(at, &text);
                self.drain_peer(i);
            }
            Action::Deadline(i) => {
                if self.peers[i].pending {
                    self.peers[i].peer.fail(Failure::Timeout, at);
                    self.drain_peer(i);
                }
            }
            Action::ServerSend(p) => {
                if let Some(host) = self.server.as_ref().map(|s| s.sim.host) {
                    let now = self.now();
                    self.net.send(&mut self.agenda, now, host, p);
                }
            }
        }
    }

    /// A packet reached `d.host`: the server's, a peer's, or the caller's.
    fn deliver(&mut self, d: Delivery) -> Step {
        let at = self.instant();
        if let Some(s) = self.server.as_mut() {
            let out = &mut self.scratch;
            if s.sim.handle_with(at, &d, &mut |p| out.push(p)) {
                self.send_server_output();
                return Step::Handled;
            }
        }
        let Some(i) = self.host_to_peer.get(d.host.0 as usize).copied().flatten() else {
            return Step::Delivered(d);
        };
        let i = i as usize;
        if self.peers[i].retired {
            return Step::Handled;
        }
        let (src, dst) = (SocketAddr::V4(d.pkt.src), SocketAddr::V4(d.pkt.dst));
        match d.pkt.proto {
            Proto::Udp => self.peers[i].peer.handle_datagram(at, src, dst, &d.pkt.payload),
            Proto::Tcp => match self.tls.get_mut(&(d.pkt.dst, d.pkt.src)) {
                None => self.peers[i].peer.handle_stream(at, src, dst, &d.pkt.payload),
                // The server's flight: the client sends its Finished and then what it held.
                Some(c) if !c.open && tls::is_handshake(&d.pkt.payload) => {
                    c.open = true;
                    let held = std::mem::take(&mut c.held);
                    let (now, host) = (self.now(), self.peers[i].host);
                    let (src, dst) = (d.pkt.dst, d.pkt.src);
                    let finished = std::iter::once(tls::client_finished());
                    for payload in finished.chain(held.iter().map(|m| tls::seal(m))) {
                        self.net.send(&mut self.agenda, now, host, Packet { proto: Proto::Tcp, src, dst, payload });
                    }
                }
                Some(_) => {
                    if let Some(plain) = tls::open(&d.pkt.payload).filter(|p| !p.is_empty()) {
                        self.peers[i].peer.handle_stream(at, src, dst, &plain);
                    }
                }
            },
        }
        self.drain_peer(i);
        Step::Handled
    }

    /// Sends what the server produced: its own STUN/TURN answers (from a listening address)
    /// after the answer delay, relayed data at once — including the STUN responses peers relay
    /// to each other (ICE checks through a relay), which leave from a relay address.
    fn send_server_output(&mut self) {
        let Some(s) = self.server.as_ref() else { return };
        let (host, delay) = (s.sim.host, s.answer_delay);
        let listen = if delay.is_zero() { Vec::new() } else { s.sim.core.listen_addresses() };
        let now = self.now();
        for p in std::mem::take(&mut self.scratch) {
            let answer = is_stun_response(&p.payload) && listen.contains(&std::net::SocketAddr::V4(p.src));
            if answer {
                self.agenda.push(now + delay, Action::ServerSend(p));
            } else {
                self.net.send(&mut self.agenda, now, host, p);
            }
        }
    }

    fn drain_broker(&mut self) {
        let due = self.now() + self.signaling_one_way;
        while let Some(o) = self.broker.poll_output() {
            if let Output::Send { conn, text } = o {
                self.agenda.push(due, Action::ToPeer(conn.0 as usize, text));
            }
        }
    }

    fn reschedule_broker(&mut self) {
        let t = Some(self.broker.poll_timeout().saturating_duration_since(self.base()).max(self.now()));
        self.agenda.reschedule(Core::Broker, self.broker_timer, t);
        self.broker_timer = t;
    }

    fn reschedule_turn(&mut self) {
        let base = self.base();
        let now = self.now();
        if let Some(s) = self.server.as_mut() {
            let t = Some(s.sim.core.poll_timeout().saturating_duration_since(base).max(now));
            self.agenda.reschedule(Core::Turn, s.timer, t);
            s.timer = t;
        }
    }

    /// Everything peer `i` wants sent, its next wake-up, its bytes, whether it is done.
    fn drain_peer(&mut self, i: usize) {
        let now = self.now();
        let due = now + self.signaling_one_way;
        let slot = &mut self.peers[i];
        while let Some(t) = slot.peer.poll_transmit() {
            let (proto, src, dst, payload) = match t {
                Transmit::Signal(text) => {
                    self.agenda.push(due, Action::ToBroker(i, text));
                    continue;
                }
                Transmit::Datagram { src, dst, data } => (Proto::Udp, src, dst, data),
                // TCP: segments in order, retransmitted on loss (netsim's model).
                Transmit::Stream { src, dst, data, tls: false } => (Proto::Tcp, src, dst, data),
                // TLS: netsim's cost model. The first message opens the connection with a
                // ClientHello and waits, with any that follow, for the server's flight.
                Transmit::Stream { src, dst, data, tls: true } => {
                    let (SocketAddr::V4(s4), SocketAddr::V4(d4)) = (src, dst) else { continue };
                    match self.tls.entry((s4, d4)) {
                        std::collections::hash_map::Entry::Occupied(mut c) => {
                            if c.get().open {
                                (Proto::Tcp, src, dst, tls::seal(&data))
                            } else {
                                c.get_mut().held.push(data);
                                continue;
                            }
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(TlsConn { open: false, held: vec![data] });
                            (Proto::Tcp, src, dst, tls::client_hello())
                        }
                    }
                }
            };
            // The simulated network is IPv4.
            if let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) {
                self.net.send(&mut self.agenda, now, slot.host, Packet { proto, src, dst, payload });
            }
        }
        let base = self.clock.instant(Duration::ZERO);
        let t = slot.peer.poll_timeout().map(|t| t.saturating_duration_since(base).max(now));
        self.agenda.reschedule(Core::Peer(i), slot.timer, t);
        slot.timer = t;
        let b = slot.peer.bytes_moved();
        if b != slot.bytes {
            bump(&mut self.stats.bytes_per_s, now, b - slot.bytes);
            slot.bytes = b;
        }
        if slot.pending && slot.peer.is_done() {
            slot.pending = false;
            self.stats.peers_pending -= 1;
            self.stats.peers_failed += usize::from(slot.peer.failed());
            if let Some(g) = slot.group.map(|g| g as usize) {
                self.groups[g].left -= 1;
                if self.groups[g].left == 0 {
                    self.retire_group(g);
                }
            }
        }
    }

    /// The first few peers still pending, for an error message.
    fn unfinished(&self) -> String {
        let pending: Vec<&Slot> = self.peers.iter().filter(|s| s.pending).collect();
        let shown: Vec<String> = pending
            .iter()
            .take(5)
            .map(|s| {
                let last = s.peer.last_milestone().map_or("none", |m| m.as_str());
                format!("{} ({}, last milestone {last})", s.peer.id(), s.label)
            })
            .collect();
        format!("{} and {} more", shown.join(", "), pending.len() - shown.len())
    }
}

/// A STUN success or error response (what the answer delay holds back; relayed data, Data
/// indications and ChannelData, goes at once).
fn is_stun_response(b: &[u8]) -> bool {
    // Inside a TLS record (netsim's model of `turns:`), the message follows the record header.
    let b = if b.first() == Some(&0x17) { b.get(5..).unwrap_or_default() } else { b };
    if b.len() < 20 || b[0] >= 0x40 {
        return false;
    }
    let t = u16::from_be_bytes([b[0], b[1]]);
    ((t >> 7) & 0x2) | ((t >> 4) & 0x1) >= 2
}
