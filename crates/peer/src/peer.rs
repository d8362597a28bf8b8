//! The virtual peer: one PeerJS signaling session and any number of DataConnections
//! ([`Connection`]), sans-IO, on the clock the driver passes in. Once OPEN it opens a
//! DataConnection to each peer in `connect` as `peerjs@1.5.5` does (OFFER with connectionId,
//! label, serialization, reliable); it answers every OFFER it gets, counting those from `accept`
//! towards being done. Frames for a connection are routed by `connectionId`, as PeerJS does.

use crate::config::{PeerConfig, Transmit};
use crate::conn::{ConnConfig, Connection, Outgoing};
use crate::milestones::{Failure, Milestone, Milestones};
use crate::signaling::{SignalEvent, SignalingClient};
use peerstorm_model::peerjs::payload::ConnectionType;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// One connection's outcome, its milestones including the peer's own (signaling, OPEN). The
/// JSON line `peerstorm peer` prints, and that any lab host may print to be measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConnOutcome {
    pub remote: String,
    pub offerer: bool,
    pub milestones: Milestones,
    pub bytes_moved: u64,
    /// A MediaConnection's media (absent for a DataConnection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::MediaOutcome>,
}

/// One virtual peer.
pub struct VirtualPeer {
    cfg: PeerConfig,
    start: Instant,
    signaling: SignalingClient,
    /// Signaling connected and OPEN, and failures of the whole session.
    milestones: Milestones,
    conns: Vec<Connection>,
    out: VecDeque<Transmit>,
    /// Frames for a connection that does not exist yet (PeerJS's `_lostMessages`).
    lost: Vec<(String, SignalEvent)>,
    received: Received,
}

/// What a peer received: signaling frames (what the broker relayed to it, OPEN included) and
/// datagrams or stream segments on its sockets. A live run has no network of its own to count
/// them, so it adds these up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub frames: u64,
    pub datagrams: u64,
}

impl std::fmt::Debug for VirtualPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualPeer").field("id", &self.cfg.id).field("connections", &self.conns).finish()
    }
}

impl VirtualPeer {
    pub fn new(cfg: PeerConfig, now: Instant) -> Self {
        let signaling = SignalingClient::new(&cfg.id, &cfg.token, cfg.heartbeat);
        let mut p = Self {
            start: now,
            signaling,
            milestones: Milestones::default(),
            conns: Vec::new(),
            out: VecDeque::new(),
            lost: Vec::new(),
            received: Received::default(),
            cfg,
        };
        for remote in p.cfg.connect.clone() {
            let k = p.conns.len();
            let id = if k == 0 { format!("dc_{}", p.cfg.id) } else { format!("dc_{}_{k}", p.cfg.id) };
            p.add_connection(true, remote, id);
        }
        for (k, remote) in p.cfg.call.clone().into_iter().enumerate() {
            // PeerJS names a MediaConnection `mc_` + a random string.
            let id = if k == 0 { format!("mc_{}", p.cfg.id) } else { format!("mc_{}_{k}", p.cfg.id) };
            let c = p.add_connection(true, remote, id);
            p.conns[c].make_call();
        }
        for remote in p.cfg.accept.clone() {
            // The connection ID comes with the OFFER.
            p.add_connection(false, remote, String::new());
        }
        for remote in p.cfg.answer.clone() {
            let c = p.add_connection(false, remote, String::new());
            p.conns[c].make_call();
        }
        p
    }

    fn add_connection(&mut self, offerer: bool, remote: String, connection_id: String) -> usize {
        let k = self.conns.len();
        let host = self
            .cfg
            .sockets
            .get(k)
            .copied()
            .unwrap_or_else(|| SocketAddr::new(self.cfg.host.ip(), self.cfg.host.port().wrapping_add(k as u16)));
        let cfg = ConnConfig {
            ice: self.cfg.ice,
            stun: self.cfg.stun,
            turn: self.cfg.turn.clone(),
            relay_only: self.cfg.relay_only,
            workload: self.cfg.workload.clone(),
            profile: self.cfg.profile,
            cpu_scale: self.cfg.cpu_scale,
            metronome_tick: self.cfg.metronome_tick.unwrap_or(self.start),
        };
        self.conns.push(Connection::new(offerer, remote, connection_id, host, cfg, self.start));
        k
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    /// The WebSocket query to connect with.
    pub fn query(&self, key: &str) -> String {
        self.signaling.query(key)
    }

    /// The session's own milestones (signaling connected, OPEN) and failure.
    pub fn milestones(&self) -> &Milestones {
        &self.milestones
    }

    /// Every connection's outcome, in order: those this peer opened, then those it accepted.
    pub fn connections(&self) -> Vec<ConnOutcome> {
        self.conns
            .iter()
            .map(|c| {
                let mut m = c.milestones.clone();
                for (k, t) in &self.milestones.at {
                    m.mark(*k, *t);
                }
                if let (Some(f), Some(t)) = (&self.milestones.failure, self.milestones.failed_at) {
                    m.fail(f.clone(), t);
                }
                ConnOutcome {
                    remote: c.remote.clone(),
                    offerer: c.offerer,
                    milestones: m,
                    bytes_moved: c.bytes_moved,
                    media: c.media(),
                }
            })
            .collect()
    }

    /// The most advanced milestone across the session and its connections (for diagnostics).
    pub fn last_milestone(&self) -> Option<Milestone> {
        self.conns.iter().map(|c| &c.milestones).chain([&self.milestones]).flat_map(|m| m.at.keys()).max().copied()
    }

    pub fn bytes_moved(&self) -> u64 {
        self.conns.iter().map(|c| c.bytes_moved).sum()
    }

    /// Whether the session or any connection failed.
    pub fn failed(&self) -> bool {
        self.milestones.failure.is_some() || self.conns.iter().any(|c| c.milestones.failure.is_some())
    }

    /// Finished: every connection is done (see [`Connection::is_done`]), or the session failed.
    pub fn is_done(&self) -> bool {
        self.milestones.failure.is_some() || self.conns.iter().all(Connection::is_done)
    }

    fn mark(&mut self, m: Milestone, now: Instant) {
        self.milestones.mark(m, now.saturating_duration_since(self.start));
    }

    /// Lets go of everything but the outcome: every connection's stack, sockets' state and
    /// queued output. For a driver whose peer is done and whose partners are too (nothing
    /// measured can change any more): it must not hand this peer input or wake it again.
    pub fn retire(&mut self) {
        self.out.clear();
        self.lost.clear();
        for c in &mut self.conns {
            c.retire();
        }
    }

    /// Fails every unfinished connection (a timeout decided by the driver, for instance).
    pub fn fail(&mut self, f: Failure, now: Instant) {
        for c in self.conns.iter_mut().filter(|c| !c.is_done()) {
            c.fail(f.clone(), now);
        }
    }

    pub fn handle_connected(&mut self, now: Instant) {
        self.mark(Milestone::SignalingConnected, now);
        self.signaling.handle_connected(now);
        self.flush_signaling();
    }

    fn flush_signaling(&mut self) {
        while let Some(f) = self.signaling.poll_frame() {
            self.out.push_back(Transmit::Signal(f));
        }
    }

    /// Moves connection `k`'s datagrams and signaling payloads out.
    fn drain(&mut self, k: usize) {
        let c = &mut self.conns[k];
        while let Some(t) = c.poll_transmit() {
            self.out.push_back(t);
        }
        while let Some(s) = c.poll_signal() {
            match s {
                Outgoing::Offer(p) => self.signaling.send_offer(&c.remote, &p),
                Outgoing::Answer(p) => self.signaling.send_answer(&c.remote, &p),
                Outgoing::Candidate(p) => self.signaling.send_candidate(&c.remote, &p),
            }
        }
        self.flush_signaling();
    }

    fn by_connection_id(&self, id: &str) -> Option<usize> {
        self.conns.iter().position(|c| !c.connection_id.is_empty() && c.connection_id == id)
    }

    /// A frame from the broker.
    /// What this peer received so far.
    pub fn received(&self) -> Received {
        self.received
    }

    pub fn handle_signal(&mut self, now: Instant, text: &str) {
        self.received.frames += 1;
        let ev = self.signaling.handle_frame(text);
        self.on_signal(now, ev);
    }

    fn on_signal(&mut self, now: Instant, ev: SignalEvent) {
        match ev {
            SignalEvent::Open => {
                self.mark(Milestone::Open, now);
                for k in 0..self.conns.len() {
                    if self.conns[k].offerer {
                        self.conns[k].start_offer(now);
                        self.drain(k);
                    }
                }
            }
            SignalEvent::Offer { src, payload } => {
                if self.by_connection_id(&payload.connection_id).is_some() {
                    // A second OFFER for a live connection (renegotiation): not part of the workload.
                    return;
                }
                // A waiting connection of the OFFER's kind (a call or a DataConnection).
                let media = payload.connection_type == ConnectionType::Media;
                let waiting = |c: &Connection| {
                    !c.offerer && c.remote == src && c.connection_id.is_empty() && c.is_call() == media
                };
                let k = match self.conns.iter().position(waiting) {
                    Some(k) => k,
                    None => self.add_connection(false, src, String::new()),
                };
                let cid = payload.connection_id.clone();
                self.conns[k].connection_id = cid.clone();
                self.conns[k].on_offer(now, payload);
                self.drain(k);
                let (now_for, later): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.lost).into_iter().partition(|(id, _)| *id == cid);
                self.lost = later;
                for (_, ev) in now_for {
                    self.on_signal(now, ev);
                }
            }
            SignalEvent::Answer { payload, .. } => match self.by_connection_id(&payload.connection_id) {
                Some(k) => {
                    self.conns[k].on_answer(now, payload);
                    self.drain(k);
                }
                None => {
                    self.keep_lost(payload.connection_id.clone(), SignalEvent::Answer { src: String::new(), payload })
                }
            },
            SignalEvent::Candidate { src, payload } => match self.by_connection_id(&payload.connection_id) {
                Some(k) => {
                    self.conns[k].on_candidate(now, payload);
                    self.drain(k);
                }
                None => self.keep_lost(payload.connection_id.clone(), SignalEvent::Candidate { src, payload }),
            },
            SignalEvent::Expire { src } => {
                // The broker could not deliver to `src`: the connections to it fail.
                for c in self.conns.iter_mut().filter(|c| c.remote == src && !c.is_done()) {
                    c.fail(Failure::Expire, now);
                }
            }
            SignalEvent::IdTaken => self.fail_session(Failure::IdTaken, now),
            SignalEvent::Error(m) => self.fail_session(Failure::BrokerError(m), now),
            SignalEvent::Leave { .. } | SignalEvent::Ignored(_) => {}
        }
    }

    fn keep_lost(&mut self, id: String, ev: SignalEvent) {
        // Bounded: a broker that sends frames for connections that never come cannot grow this.
        if self.lost.len() < 256 {
            self.lost.push((id, ev));
        }
    }

    fn fail_session(&mut self, f: Failure, now: Instant) {
        self.milestones.fail(f.clone(), now.saturating_duration_since(self.start));
        self.fail(f, now);
    }

    /// The connection whose socket is `dst`.
    fn by_socket(&self, dst: SocketAddr) -> Option<usize> {
        if !self.cfg.sockets.is_empty() {
            return self.conns.iter().position(|c| c.host == dst);
        }
        let k = usize::from(dst.port().wrapping_sub(self.cfg.host.port()));
        (k < self.conns.len() && self.conns[k].host.port() == dst.port()).then_some(k)
    }

    /// A datagram for this peer (`dst`: the socket it arrived on).
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        self.received.datagrams += 1;
        if let Some(k) = self.by_socket(dst) {
            self.conns[k].handle_datagram(now, src, dst, data);
            self.drain(k);
        }
    }

    /// Bytes that arrived on the TCP connection between `dst` (one of this peer's sockets) and
    /// `src` (its TURN server); they need not be whole messages.
    pub fn handle_stream(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        self.received.datagrams += 1;
        // A stream's local address is its TURN client's own (see `TurnClient::local`).
        let k = self.by_socket(dst).or_else(|| self.conns.iter().position(|c| c.has_stream_local(dst)));
        if let Some(k) = k {
            self.conns[k].handle_stream(now, src, dst, data);
            self.drain(k);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.signaling.handle_timeout(now);
        self.flush_signaling();
        for k in 0..self.conns.len() {
            if self.conns[k].poll_timeout().is_some_and(|t| t <= now) {
                self.conns[k].handle_timeout(now);
                self.drain(k);
            }
        }
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let conns = self.conns.iter_mut().filter_map(|c| c.poll_timeout()).min();
        [self.signaling.poll_timeout(), conns].into_iter().flatten().min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
}
