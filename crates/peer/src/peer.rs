//! The virtual peer: PeerJS signaling and an `rtc` peer connection, sans-IO, on the clock the
//! driver passes in. The offerer opens a DataConnection to its remote as `peerjs@1.5.5` does
//! (OFFER with connectionId, label, `serialization: binary`, reliable), the answerer answers;
//! candidates are trickled or, in vanilla mode, carried in the description once gathering ends.
//! The data-channel workload sends BinaryPack messages that the answerer echoes.

use crate::milestones::{Failure, Milestone, Milestones};
use crate::signaling::{SignalEvent, SignalingClient};
use bytes::BytesMut;
use peerstorm_model::candidate::IceCandidateInit;
use peerstorm_model::peerjs::binarypack::Value;
use peerstorm_model::peerjs::dataconn::{BinaryReceiver, BinarySender, Received};
use peerstorm_model::peerjs::payload::{
    AnswerPayload, CandidatePayload, ConnectionType, OfferPayload, Serialization, SessionDescriptionInit,
};
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateRelayConfig, CandidateServerReflexiveConfig, RTCDtlsRole,
    RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::turn::client::Event as TurnEvent;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Trickle candidates as they come, or wait for gathering and send them in the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceMode {
    Trickle,
    Vanilla,
}

/// How one virtual peer behaves.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub id: String,
    pub token: String,
    /// The peer to connect to; `None` waits for an OFFER.
    pub remote: Option<String>,
    pub ice: IceMode,
    /// This peer's address on the (simulated) network; its host candidate.
    pub host: SocketAddr,
    pub heartbeat: Duration,
    /// Messages to send and get echoed once the data channel is open.
    pub messages: u32,
    pub message_bytes: usize,
    /// A STUN server for a server-reflexive candidate (RFC 8489 Binding).
    pub stun: Option<SocketAddr>,
    /// A TURN server for a relayed candidate (RFC 8656 Allocate, through the `rtc-turn` client).
    pub turn: Option<TurnServer>,
    /// Use relayed candidates only (`iceTransportPolicy: "relay"`).
    pub relay_only: bool,
}

/// A TURN server and the long-term credentials for it.
#[derive(Debug, Clone)]
pub struct TurnServer {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    pub realm: String,
}

/// A STUN Binding in flight for the srflx candidate.
#[derive(Debug, Clone)]
struct StunProbe {
    tid: [u8; 12],
    bytes: Vec<u8>,
    next: Instant,
    tries: u32,
}

/// The `rtc-turn` client and its Allocate transaction.
struct TurnClient {
    client: rtc::turn::client::Client,
    allocate: Option<rtc::stun::message::TransactionId>,
    /// Datagrams waiting for their peer's permission.
    waiting: Vec<(SocketAddr, Vec<u8>)>,
}

impl TurnClient {
    fn start(now: Instant, local: SocketAddr, t: &TurnServer) -> Result<Self, String> {
        let provider = rtc::turn::crypto::default_provider().map_err(|e| format!("{e:?}"))?;
        let mut client = rtc::turn::client::Client::new(
            rtc::turn::client::ClientConfig {
                stun_serv_addr: String::new(),
                turn_serv_addr: t.addr.to_string(),
                local_addr: local,
                transport_protocol: TransportProtocol::UDP,
                username: t.user.clone(),
                password: t.password.clone(),
                realm: t.realm.clone(),
                software: String::new(),
                rto_in_ms: 0,
                allocation_refresh_interval_cap: None,
            },
            provider,
        )
        .map_err(|e| e.to_string())?;
        let allocate = Some(client.allocate(now).map_err(|e| e.to_string())?);
        Ok(Self { client, allocate, waiting: Vec::new() })
    }
}

/// What the driver must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A WebSocket text frame to the broker.
    Signal(String),
    /// A UDP datagram.
    Datagram { src: SocketAddr, dst: SocketAddr, data: Vec<u8> },
}

/// One virtual peer.
pub struct VirtualPeer {
    cfg: PeerConfig,
    start: Instant,
    signaling: SignalingClient,
    pc: Option<RTCPeerConnection>,
    milestones: Milestones,
    out: VecDeque<Transmit>,
    early_candidates: Vec<RTCIceCandidateInit>,
    connection_id: String,
    remote: Option<String>,
    dc: Option<RTCDataChannelId>,
    sender: BinarySender,
    receiver: BinaryReceiver,
    sent: u32,
    echoed: u32,
    pub bytes_moved: u64,
    stun: Option<StunProbe>,
    srflx: Option<SocketAddr>,
    /// The TURN client while it is in use, and the relayed address once allocated.
    turn: Option<TurnClient>,
    relay: Option<SocketAddr>,
    /// Candidate sources (STUN, TURN) not finished yet.
    gathering: u8,
    gathering_done: bool,
}

impl std::fmt::Debug for VirtualPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualPeer").field("id", &self.cfg.id).field("milestones", &self.milestones).finish()
    }
}

fn build_pc(now: Instant) -> Result<RTCPeerConnection, Failure> {
    let se = SettingEngineBuilder::new().with_answering_dtls_role(RTCDtlsRole::Client).build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(se)
        .build(now)
        .map_err(|e| Failure::BrokerError(format!("building the peer connection: {e}")))
}

/// The fields every candidate of this peer shares: UDP, component 1, at `addr`.
fn udp_candidate(addr: SocketAddr) -> CandidateConfig {
    CandidateConfig {
        network: "udp".to_owned(),
        address: addr.ip().to_string(),
        port: addr.port(),
        component: 1,
        ..Default::default()
    }
}

/// A UDP datagram for a sans-IO `handle_read`.
fn udp_in(now: Instant, local: SocketAddr, peer: SocketAddr, message: BytesMut) -> TaggedBytesMut {
    TaggedBytesMut {
        now,
        transport: TransportContext {
            local_addr: local,
            peer_addr: peer,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message,
    }
}

/// Moves what the TURN client wants sent into `out`, from the peer's host address.
fn flush_turn(turn: &mut Option<TurnClient>, host: SocketAddr, out: &mut VecDeque<Transmit>) {
    if let Some(t) = turn.as_mut() {
        while let Some(w) = t.client.poll_write() {
            out.push_back(Transmit::Datagram { src: host, dst: w.transport.peer_addr, data: w.message.to_vec() });
        }
    }
}

fn host_candidate(addr: SocketAddr) -> Option<RTCIceCandidateInit> {
    let c = CandidateHostConfig { base_config: udp_candidate(addr), ..Default::default() }.new_candidate_host().ok()?;
    RTCIceCandidate::from(&c).to_json().ok()
}

impl VirtualPeer {
    pub fn new(cfg: PeerConfig, now: Instant) -> Self {
        let signaling = SignalingClient::new(&cfg.id, &cfg.token, cfg.heartbeat);
        let connection_id = format!("dc_{}", cfg.id);
        Self {
            remote: cfg.remote.clone(),
            cfg,
            start: now,
            signaling,
            pc: None,
            milestones: Milestones::default(),
            out: VecDeque::new(),
            early_candidates: Vec::new(),
            connection_id,
            dc: None,
            sender: BinarySender::new(),
            receiver: BinaryReceiver::default(),
            sent: 0,
            echoed: 0,
            bytes_moved: 0,
            stun: None,
            srflx: None,
            turn: None,
            relay: None,
            gathering: 0,
            gathering_done: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    /// The WebSocket query to connect with.
    pub fn query(&self, key: &str) -> String {
        self.signaling.query(key)
    }

    pub fn milestones(&self) -> &Milestones {
        &self.milestones
    }

    /// Finished: the workload is done (offerer) or the channel is open (answerer), or failed.
    pub fn is_done(&self) -> bool {
        self.milestones.failure.is_some()
            || if self.cfg.remote.is_some() {
                self.echoed >= self.cfg.messages && self.milestones.get(Milestone::DataChannelOpen).is_some()
            } else {
                self.milestones.get(Milestone::DataChannelOpen).is_some()
            }
    }

    fn mark(&mut self, m: Milestone, now: Instant) {
        self.milestones.mark(m, now.saturating_duration_since(self.start));
    }

    /// Fails the peer (a timeout decided by the driver, for instance).
    pub fn fail(&mut self, f: Failure) {
        self.milestones.fail(f);
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

    /// A frame from the broker.
    pub fn handle_signal(&mut self, now: Instant, text: &str) {
        match self.signaling.handle_frame(text) {
            SignalEvent::Open => {
                self.mark(Milestone::Open, now);
                if self.cfg.remote.is_some() {
                    self.start_offer(now);
                }
            }
            SignalEvent::Offer { src, payload } => self.on_offer(now, src, payload),
            SignalEvent::Answer { payload, .. } => {
                self.mark(Milestone::AnswerReceived, now);
                if let (Some(pc), Ok(desc)) = (self.pc.as_mut(), RTCSessionDescription::answer(payload.sdp.sdp))
                    && pc.set_remote_description(now, desc).is_ok()
                {
                    self.apply_early_candidates(now);
                }
            }
            SignalEvent::Candidate { payload, .. } => {
                let c = RTCIceCandidateInit {
                    candidate: payload.candidate.candidate,
                    sdp_mid: payload.candidate.sdp_mid,
                    sdp_mline_index: payload.candidate.sdp_m_line_index,
                    username_fragment: payload.candidate.username_fragment,
                    ..Default::default()
                };
                match self.pc.as_mut() {
                    Some(pc) if pc.remote_description().is_some() => {
                        let _ = pc.add_remote_candidate(c);
                    }
                    // PeerJS keeps candidates that arrive before the description (`_lostMessages`).
                    _ => self.early_candidates.push(c),
                }
            }
            SignalEvent::Expire { .. } => self.milestones.fail(Failure::Expire),
            SignalEvent::IdTaken => self.milestones.fail(Failure::IdTaken),
            SignalEvent::Error(m) => self.milestones.fail(Failure::BrokerError(m)),
            SignalEvent::Leave { .. } | SignalEvent::Ignored(_) => {}
        }
        self.service(now);
    }

    fn apply_early_candidates(&mut self, _now: Instant) {
        if let Some(pc) = self.pc.as_mut() {
            for c in self.early_candidates.drain(..) {
                let _ = pc.add_remote_candidate(c);
            }
        }
    }

    /// Host candidate now; with a STUN server, a Binding from the host socket whose answer
    /// becomes the srflx candidate. Gathering completes when that is done or given up.
    fn gather(&mut self, now: Instant) {
        if !self.cfg.relay_only {
            let Some(c) = host_candidate(self.cfg.host) else { return };
            if let Some(pc) = self.pc.as_mut() {
                let _ = pc.add_local_candidate(c);
            }
            self.mark(Milestone::FirstLocalCandidate, now);
        }
        if let Some(server) = self.cfg.stun.filter(|_| !self.cfg.relay_only) {
            let mut tid = [0u8; 12];
            let h = self
                .cfg
                .id
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
            tid[..8].copy_from_slice(&h.to_be_bytes());
            let bytes = peerstorm_model::stun::Message::binding_request(tid).encode(true);
            self.out.push_back(Transmit::Datagram { src: self.cfg.host, dst: server, data: bytes.clone() });
            self.stun = Some(StunProbe { tid, bytes, next: now + Duration::from_millis(500), tries: 1 });
            self.gathering += 1;
        }
        if let Some(t) = self.cfg.turn.clone() {
            match TurnClient::start(now, self.cfg.host, &t) {
                Ok(c) => {
                    self.turn = Some(c);
                    self.gathering += 1;
                    self.flush_turn();
                }
                Err(_) => self.milestones.fail(Failure::BrokerError("starting the TURN client".into())),
            }
        }
        if self.gathering == 0 {
            self.finish_gathering(now);
        }
    }

    /// One candidate source finished (with or without a candidate).
    fn source_done(&mut self, now: Instant) {
        self.gathering = self.gathering.saturating_sub(1);
        if self.gathering == 0 {
            self.finish_gathering(now);
        }
    }

    fn flush_turn(&mut self) {
        flush_turn(&mut self.turn, self.cfg.host, &mut self.out);
    }

    /// Drains the TURN client's events: the relayed address becomes a candidate; data from
    /// peers goes into the peer connection as if it arrived on the relayed address.
    fn turn_events(&mut self, now: Instant) {
        loop {
            let Some(ev) = self.turn.as_mut().and_then(|t| t.client.poll_event()) else { break };
            match ev {
                TurnEvent::AllocateResponse(_, relayed) => {
                    self.relay = Some(relayed);
                    let base = self.srflx.unwrap_or(self.cfg.host);
                    let c = CandidateRelayConfig {
                        base_config: udp_candidate(relayed),
                        rel_addr: base.ip().to_string(),
                        rel_port: base.port(),
                        ..Default::default()
                    };
                    if let (Ok(c), Some(pc)) = (c.new_candidate_relay(), self.pc.as_mut())
                        && let Ok(init) = RTCIceCandidate::from(&c).to_json()
                        && pc.add_local_candidate(init).is_ok()
                    {
                        self.mark(Milestone::FirstLocalCandidate, now);
                        self.mark(Milestone::FirstRelay, now);
                    }
                    self.source_done(now);
                }
                TurnEvent::AllocateError(..) => self.source_done(now),
                TurnEvent::CreatePermissionResponse(_, peer) => {
                    if let (Some(t), Some(relay)) = (self.turn.as_mut(), self.relay) {
                        let (ready, rest): (Vec<_>, Vec<_>) =
                            std::mem::take(&mut t.waiting).into_iter().partition(|(p, _)| *p == peer);
                        t.waiting = rest;
                        if let Ok(mut r) = t.client.relay(relay) {
                            for (p, data) in ready {
                                let _ = r.send_to(now, &data, p);
                            }
                        }
                    }
                }
                TurnEvent::TransactionTimeout(id) if self.turn.as_ref().is_some_and(|t| t.allocate == Some(id)) => {
                    self.source_done(now)
                }
                TurnEvent::DataIndicationOrChannelData(_, from, data) => {
                    if let (Some(relay), Some(pc)) = (self.relay, self.pc.as_mut()) {
                        let _ = pc.handle_read(udp_in(now, relay, from, data));
                    }
                }
                _ => {}
            }
        }
        if let Some(t) = self.turn.as_mut()
            && self.relay.is_none()
            && !t.client.has_transaction(&t.allocate.unwrap_or_default())
            && self.gathering_done
        {
            // No relay and nothing in flight: the client has nothing left to do.
            self.turn = None;
        }
        self.flush_turn();
    }

    fn finish_gathering(&mut self, now: Instant) {
        if self.gathering_done {
            return;
        }
        self.gathering_done = true;
        self.stun = None;
        if let Some(pc) = self.pc.as_mut() {
            let _ = pc.add_local_candidate(RTCIceCandidateInit::default());
        }
        self.mark(Milestone::GatheringComplete, now);
        if self.cfg.ice == IceMode::Vanilla {
            // Vanilla: the description goes out now, with every candidate in it.
            let sdp = self.pc.as_ref().and_then(|pc| pc.local_description()).map(|d| d.sdp.clone());
            if let Some(sdp) = sdp {
                if self.cfg.remote.is_some() {
                    self.send_offer(now, sdp);
                } else {
                    self.send_answer(sdp);
                }
            }
        }
    }

    fn on_stun_answer(&mut self, now: Instant, mapped: Option<SocketAddr>) {
        if let Some(addr) = mapped {
            let c = CandidateServerReflexiveConfig {
                base_config: udp_candidate(addr),
                rel_addr: self.cfg.host.ip().to_string(),
                rel_port: self.cfg.host.port(),
                ..Default::default()
            };
            if let (Ok(c), Some(pc)) = (c.new_candidate_server_reflexive(), self.pc.as_mut())
                && let Ok(init) = RTCIceCandidate::from(&c).to_json()
                && pc.add_local_candidate(init).is_ok()
            {
                self.srflx = Some(addr);
                self.mark(Milestone::FirstSrflx, now);
            }
        }
        self.stun = None;
        self.source_done(now);
    }

    fn start_offer(&mut self, now: Instant) {
        let mut pc = match build_pc(now) {
            Ok(pc) => pc,
            Err(f) => return self.milestones.fail(f),
        };
        if pc.create_data_channel(&self.connection_id, None).is_err() {
            return self.milestones.fail(Failure::BrokerError("create_data_channel".into()));
        }
        let Ok(offer) = pc.create_offer(None) else {
            return self.milestones.fail(Failure::BrokerError("create_offer".into()));
        };
        if pc.set_local_description(now, offer.clone()).is_err() {
            return self.milestones.fail(Failure::BrokerError("set_local_description".into()));
        }
        self.pc = Some(pc);
        if self.cfg.ice == IceMode::Trickle {
            self.send_offer(now, offer.sdp);
        }
        self.gather(now);
    }

    fn send_offer(&mut self, now: Instant, sdp: String) {
        let Some(remote) = self.remote.clone() else { return };
        let p = OfferPayload::data(sdp, &self.connection_id, Serialization::Binary, true);
        self.signaling.send_offer(&remote, &p);
        self.mark(Milestone::OfferSent, now);
        self.flush_signaling();
    }

    fn on_offer(&mut self, now: Instant, src: String, payload: OfferPayload) {
        self.mark(Milestone::OfferReceived, now);
        self.remote = Some(src.clone());
        self.connection_id = payload.connection_id.clone();
        let mut pc = match build_pc(now) {
            Ok(pc) => pc,
            Err(f) => return self.milestones.fail(f),
        };
        let Ok(desc) = RTCSessionDescription::offer(payload.sdp.sdp) else {
            return self.milestones.fail(Failure::BrokerError("bad offer".into()));
        };
        if pc.set_remote_description(now, desc).is_err() {
            return self.milestones.fail(Failure::BrokerError("set_remote_description".into()));
        }
        self.pc = Some(pc);
        self.apply_early_candidates(now);
        let Some(pc) = self.pc.as_mut() else { return };
        let Ok(answer) = pc.create_answer(None) else {
            return self.milestones.fail(Failure::BrokerError("create_answer".into()));
        };
        if pc.set_local_description(now, answer.clone()).is_err() {
            return self.milestones.fail(Failure::BrokerError("set_local_description".into()));
        }
        if self.cfg.ice == IceMode::Trickle {
            self.send_answer(answer.sdp);
        }
        self.gather(now);
    }

    fn send_answer(&mut self, sdp: String) {
        let Some(src) = self.remote.clone() else { return };
        let p = AnswerPayload {
            sdp: SessionDescriptionInit { kind: "answer".into(), sdp },
            connection_type: ConnectionType::Data,
            connection_id: self.connection_id.clone(),
            browser: None,
        };
        self.signaling.send_answer(&src, &p);
        self.flush_signaling();
    }

    /// A datagram for this peer.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        if let Some(probe) = &self.stun
            && Some(src) == self.cfg.stun
            && let Ok(m) = peerstorm_model::stun::Message::decode(data)
            && m.transaction_id == probe.tid
        {
            let mapped = m.address(peerstorm_model::stun::attr::XOR_MAPPED_ADDRESS).and_then(Result::ok);
            self.on_stun_answer(now, mapped);
            self.service(now);
            return;
        }
        if let Some(t) = self.turn.as_mut()
            && self.cfg.turn.as_ref().is_some_and(|c| c.addr == src)
        {
            let _ = t.client.handle_read(udp_in(now, dst, src, BytesMut::from(data)));
            self.turn_events(now);
            self.service(now);
            return;
        }
        if let Some(pc) = self.pc.as_mut() {
            let _ = pc.handle_read(udp_in(now, dst, src, BytesMut::from(data)));
        }
        self.service(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(p) = self.stun.as_mut()
            && now >= p.next
        {
            if p.tries >= 3 {
                // No answer after three tries (RFC 8489's RTO doubling, shortened): gather without it.
                self.on_stun_answer(now, None);
            } else {
                p.tries += 1;
                p.next = now + Duration::from_millis(500) * (1 << p.tries);
                let (src, dst, data) = (self.cfg.host, self.cfg.stun.expect("probing"), p.bytes.clone());
                self.out.push_back(Transmit::Datagram { src, dst, data });
            }
        }
        self.signaling.handle_timeout(now);
        self.flush_signaling();
        if let Some(t) = self.turn.as_mut()
            && t.client.poll_timeout().is_some_and(|at| at <= now)
        {
            let _ = t.client.handle_timeout(now);
            self.turn_events(now);
        }
        if let Some(pc) = self.pc.as_mut() {
            let _ = pc.handle_timeout(now);
        }
        self.service(now);
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let pc = self.pc.as_mut().and_then(|pc| pc.poll_timeout());
        let turn = self.turn.as_mut().and_then(|t| t.client.poll_timeout());
        [pc, self.signaling.poll_timeout(), self.stun.as_ref().map(|p| p.next), turn].into_iter().flatten().min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Drains the peer connection: datagrams out, events into milestones, messages into the
    /// workload.
    fn service(&mut self, now: Instant) {
        loop {
            let Some(pc) = self.pc.as_mut() else { return };
            let mut progressed = false;
            let mut relayed = false;
            while let Some(w) = pc.poll_write() {
                progressed = true;
                if Some(w.transport.local_addr) == self.relay {
                    // From the relayed candidate: through the TURN server (permission and
                    // ChannelBind are the client's business).
                    if let (Some(t), Some(relay)) = (self.turn.as_mut(), self.relay)
                        && let Ok(mut r) = t.client.relay(relay)
                    {
                        let peer = w.transport.peer_addr;
                        if let Err(rtc::shared::error::Error::ErrNoPermission) = r.send_to(now, &w.message, peer) {
                            // CreatePermission first (once per peer); the datagram waits for it.
                            let _ = r.create_permission(now, peer);
                            if t.waiting.len() < 64 {
                                t.waiting.push((peer, w.message.to_vec()));
                            }
                        }
                        relayed = true;
                    }
                    continue;
                }
                self.out.push_back(Transmit::Datagram {
                    src: w.transport.local_addr,
                    dst: w.transport.peer_addr,
                    data: w.message.to_vec(),
                });
            }
            if relayed {
                flush_turn(&mut self.turn, self.cfg.host, &mut self.out);
            }
            let mut events = Vec::new();
            while let Some(ev) = pc.poll_event() {
                events.push(ev);
            }
            let mut messages = Vec::new();
            while let Some(m) = pc.poll_read() {
                if let RTCMessage::DataChannelMessage(_, msg) = m.message {
                    messages.push(msg.data.to_vec());
                }
            }
            progressed |= !events.is_empty() || !messages.is_empty();
            for ev in events {
                self.on_event(now, ev);
            }
            for m in messages {
                self.on_message(now, &m);
            }
            progressed |= self.pump_workload(now);
            if !progressed {
                return;
            }
        }
    }

    fn on_event(&mut self, now: Instant, ev: RTCPeerConnectionEvent) {
        match ev {
            RTCPeerConnectionEvent::OnIceCandidateEvent(e) => {
                if self.cfg.ice == IceMode::Trickle
                    && let (Some(remote), Ok(init)) = (self.remote.clone(), e.candidate.to_json())
                {
                    let p = CandidatePayload {
                        candidate: IceCandidateInit {
                            candidate: init.candidate,
                            sdp_mid: init.sdp_mid,
                            sdp_m_line_index: init.sdp_mline_index,
                            username_fragment: init.username_fragment,
                        },
                        connection_type: ConnectionType::Data,
                        connection_id: self.connection_id.clone(),
                    };
                    self.signaling.send_candidate(&remote, &p);
                    self.flush_signaling();
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(s) => match s {
                RTCIceConnectionState::Connected | RTCIceConnectionState::Completed => {
                    self.mark(Milestone::IceConnected, now)
                }
                RTCIceConnectionState::Failed => self.milestones.fail(Failure::IceFailed),
                _ => {}
            },
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => match s {
                RTCPeerConnectionState::Connected => self.mark(Milestone::DtlsConnected, now),
                RTCPeerConnectionState::Failed => self.milestones.fail(Failure::DtlsFailed),
                _ => {}
            },
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                self.dc = Some(id);
                self.mark(Milestone::DataChannelOpen, now);
                let pair = self
                    .pc
                    .as_ref()
                    .and_then(|pc| pc.sctp())
                    .and_then(|sctp| sctp.transport().ice_transport().get_selected_candidate_pair());
                if let Some(pair) = pair {
                    self.milestones.selected = Some((pair.local().typ.to_string(), pair.remote().typ.to_string()));
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, now: Instant, data: &[u8]) {
        self.bytes_moved += data.len() as u64;
        let Ok(Some(Received::Data(v))) = self.receiver.handle(data) else { return };
        if self.cfg.remote.is_some() {
            self.echoed += 1;
            self.mark(Milestone::FirstEcho, now);
            if self.echoed >= self.cfg.messages {
                self.mark(Milestone::WorkloadDone, now);
            }
        } else {
            // The answerer echoes what it gets, as the interop tests' PeerJS pages do.
            self.send_value(now, &v);
        }
    }

    fn send_value(&mut self, now: Instant, v: &Value) {
        let (Some(id), Some(pc)) = (self.dc, self.pc.as_mut()) else { return };
        let Ok(msgs) = self.sender.encode(v) else { return };
        if let Some(mut dc) = pc.data_channel(id) {
            for m in msgs {
                self.bytes_moved += m.len() as u64;
                let _ = dc.send(now, BytesMut::from(&m[..]));
            }
        }
    }

    /// The offerer sends its messages one at a time, each after the previous echo.
    fn pump_workload(&mut self, now: Instant) -> bool {
        if self.cfg.remote.is_none() || self.dc.is_none() || self.sent >= self.cfg.messages || self.sent > self.echoed {
            return false;
        }
        self.sent += 1;
        let v = Value::Bin(vec![0x5a; self.cfg.message_bytes]);
        self.send_value(now, &v);
        true
    }
}
