//! One PeerJS DataConnection of a virtual peer: an `rtc` peer connection on its own UDP port,
//! application-owned candidate gathering (host; srflx from a STUN Binding; relay from the
//! `rtc-turn` client), trickle or vanilla ICE, and the echo workload in the connection's
//! serialization. Sans-IO: signaling payloads go out through [`Connection::poll_signal`], the
//! peer ([`crate::VirtualPeer`]) wraps them in PeerJS frames.

pub mod call;
mod delayed;
mod gather;
mod selected;
mod workload;

use crate::config::{IceMode, Transmit, TurnServer, Workload};
use crate::milestones::{Failure, Milestone, Milestones};
use crate::profile::{CpuScale, Profile};
use bytes::BytesMut;
use gather::{StunProbe, TurnClient, flush_turn};
use peerstorm_model::candidate::IceCandidateInit;
use peerstorm_model::peerjs::binarypack::Value;
use peerstorm_model::peerjs::dataconn::{Codec, Message, Received};
use peerstorm_model::peerjs::payload::{
    AnswerPayload, CandidatePayload, ConnectionType, OfferPayload, Serialization, SessionDescriptionInit,
};
use rtc::data_channel::{RTCDataChannelId, RTCDataChannelInit};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::{DtlsHandshakeTiming, SettingEngineBuilder};
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
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

/// What every connection of one peer shares.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub ice: IceMode,
    pub stun: Option<SocketAddr>,
    /// Every TURN server: a relayed candidate is gathered from each.
    pub turn: Vec<TurnServer>,
    pub relay_only: bool,
    pub workload: Workload,
    pub profile: Profile,
    /// How much slower than the profile's reference machine the browser modelled runs.
    pub cpu_scale: CpuScale,
    /// An instant at which the peer's metronome ticks (`PeerConfig::metronome_tick`).
    pub metronome_tick: Instant,
}

impl ConnConfig {
    /// The profile's timers on the machine modelled (`cpu_scale`).
    pub fn timers(&self) -> crate::profile::StackTimers {
        self.profile.timers().scaled(self.cpu_scale)
    }

    /// The first tick at or after `due` of the profile's metronome (`due` without one): when a
    /// delayed task due then runs.
    pub fn on_tick(&self, due: Instant) -> Instant {
        match self.metronome() {
            Some((tick, period)) => rtc::ice::agent::snap_to_tick(due, tick, period),
            None => due,
        }
    }

    /// The profile's metronome, as the stack takes it.
    fn metronome(&self) -> Option<(Instant, Duration)> {
        self.profile.timers().metronome.map(|period| (self.metronome_tick, period))
    }
}

/// A signaling payload for the connection's remote peer.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Offer(OfferPayload),
    Answer(AnswerPayload),
    Candidate(CandidatePayload),
}

/// One DataConnection.
pub struct Connection {
    pub offerer: bool,
    /// The other peer's ID.
    pub remote: String,
    pub connection_id: String,
    /// This connection's UDP socket (its host candidate).
    pub host: SocketAddr,
    cfg: ConnConfig,
    /// The peer's start: milestones count from it.
    start: Instant,
    pc: Option<RTCPeerConnection>,
    pub milestones: Milestones,
    out: VecDeque<Transmit>,
    signals: VecDeque<Outgoing>,
    early_candidates: Vec<RTCIceCandidateInit>,
    /// Every remote candidate's address (from descriptions and trickled candidates): with the
    /// `chrome` profile each relay asks its server for a permission to each at once.
    remote_addrs: Vec<SocketAddr>,
    dc: Option<RTCDataChannelId>,
    codec: Option<Codec>,
    /// The serialization in use (the offerer's choice; the answerer reads it from the OFFER).
    serialization: Serialization,
    reliable: bool,
    dc_open_at: Option<Instant>,
    sent: u32,
    echoed: u32,
    pub bytes_moved: u64,
    stun: Option<StunProbe>,
    srflx: Option<SocketAddr>,
    /// A TURN client per server while it is in use (each with its relayed address once
    /// allocated).
    turns: Vec<TurnClient>,
    /// Candidate sources (STUN, TURN) not finished yet.
    gathering: u8,
    gathering_done: bool,
    /// The browser's own time to make a description (the profile's `describe_*`): the offer
    /// or the answer is made when this comes due.
    deferred: Option<(Instant, Deferred)>,
    /// An ANSWER or CANDIDATE that arrived and that the stack gets once the profile's
    /// `apply_remote` has passed, in arrival order.
    inbox: delayed::Delayed<Remote>,
    /// ANSWER and CANDIDATE frames received so far (each draws its share of
    /// `apply_remote_spread`).
    received: u64,
    /// Datagrams that arrived during setup and that the connection acts on once the profile's
    /// `setup_packet` has passed, in arrival order: (source, destination, bytes).
    rx: delayed::Delayed<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// The next allocation phase of gathering, when the profile paces them.
    phase: Option<(Instant, gather::Phase)>,
    /// A MediaConnection's media (`None`: a DataConnection).
    call: Option<call::Call>,
}

/// What the remote peer sent, on its way from the WebSocket to the stack.
enum Remote {
    Answer(AnswerPayload),
    Candidate(CandidatePayload),
}

/// A description the connection makes once the profile's processing time has passed.
enum Deferred {
    Offer,
    Answer(Box<OfferPayload>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote)
            .field("offerer", &self.offerer)
            .field("milestones", &self.milestones)
            .finish()
    }
}

/// A bare `rtc` peer connection with `profile`'s timers and behaviours, as a virtual peer's
/// DataConnection uses it (for benchmarks that compare the bare stack with the harness).
pub fn bare_stack(now: Instant, profile: Profile, seed: u64) -> Result<RTCPeerConnection, Failure> {
    let metronome = profile.timers().metronome.map(|period| (now, period));
    build_pc(now, profile, metronome, seed, None)
}

/// `seed` seeds what the stack draws at random without a cryptographic need (the DTLS 1.3
/// engine's retransmission jitter), so a simulated run repeats.
fn build_pc(
    now: Instant,
    profile: Profile,
    metronome: Option<(Instant, Duration)>,
    seed: u64,
    call: Option<&mut call::Call>,
) -> Result<RTCPeerConnection, Failure> {
    let t = profile.timers();
    let se = SettingEngineBuilder::new()
        .with_answering_dtls_role(RTCDtlsRole::Client)
        .with_ice_connection_attempts(Some(t.check_interval), Some(t.max_binding_requests))
        .with_host_acceptance_min_wait(Some(t.host_wait))
        .with_srflx_acceptance_min_wait(Some(t.srflx_wait))
        .with_prflx_acceptance_min_wait(Some(t.prflx_wait))
        .with_relay_acceptance_min_wait(Some(t.relay_wait))
        .with_dtls_handshake_timing(DtlsHandshakeTiming {
            skip_hello_verify: t.dtls.skip_hello_verify,
            initial_retransmit: t.dtls.initial_retransmit,
            retransmit_backoff: t.dtls.backoff,
            initial_retransmit_from_rtt: t.dtls.from_rtt,
            keep_early_client_hello: t.dtls.keep_early_client_hello,
            false_start: t.dtls.false_start,
            dtls13: t.dtls.dtls13,
            rng_seed: seed,
        })
        .with_data_channel_open_before_ack(t.open_before_ack)
        .with_ice_aggressive_nomination(t.aggressive_nomination)
        .with_ice_answer_early_checks(t.answer_early_checks)
        .with_ice_paced_checks(t.paced_checks)
        .with_ice_metronome(metronome)
        .with_sctp_timer_config(sctp_timers(&t.sctp))
        .build();
    let mut builder = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(se);
    if let Some(call) = call {
        let (me, registry, rtts) = call::media_engine().map_err(Failure::BrokerError)?;
        builder = builder.with_media_engine(me).with_interceptor_registry(registry);
        call.rtts = Some(rtts);
    }
    builder.build(now).map_err(|e| Failure::BrokerError(format!("building the peer connection: {e}")))
}

/// rtc-sctp's timer settings for a profile's SCTP timers.
fn sctp_timers(t: &crate::profile::Sctp) -> rtc::sctp::TimerConfig {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut config = rtc::sctp::TimerConfig {
        rto_initial_ms: ms(t.rto_initial),
        rto_min_ms: ms(t.rto_min),
        rto_max_ms: ms(t.rto_max),
        // rtc-sctp keeps whole milliseconds; dcsctp's 27.5 ms floor rounds up.
        min_rttvar_ms: u64::try_from(t.min_rttvar.as_micros().div_ceil(1000)).unwrap_or(u64::MAX),
        t1_timeout_ms: t.t1.map(ms),
        max_backoff_ms: t.max_backoff.map(ms),
        ..Default::default()
    };
    if t.unlimited_retransmits {
        config.max_t1_init_retrans = usize::MAX;
        config.max_t1_cookie_retrans = usize::MAX;
        config.max_t3_rtx_retrans = usize::MAX;
    }
    config
}

/// The fields every candidate of this connection shares: UDP, component 1, at `addr`.
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

/// Hands a datagram to the peer connection and lets every handler act on it at once.
/// `rtc` 0.21.1 queues some output only in `handle_timeout`: the DTLS ClientHello that
/// selecting a pair starts (`handler/dtls.rs`, `handle_event` → `connect`) would otherwise wait
/// for the next ICE tick, up to 200 ms later (seen in captures: ICE done at 1.3 ms, ClientHello
/// at 202.7 ms). Every handler's timeout is deadline-gated, so this moves only output that is
/// already due.
fn read_and_flush(pc: &mut RTCPeerConnection, msg: TaggedBytesMut, now: Instant) {
    let _ = pc.handle_read(msg);
    let _ = pc.handle_timeout(now);
}

fn host_candidate(addr: SocketAddr) -> Option<RTCIceCandidateInit> {
    let c = CandidateHostConfig { base_config: udp_candidate(addr), ..Default::default() }.new_candidate_host().ok()?;
    RTCIceCandidate::from(&c).to_json().ok()
}

impl Connection {
    pub fn new(
        offerer: bool,
        remote: String,
        connection_id: String,
        host: SocketAddr,
        cfg: ConnConfig,
        start: Instant,
    ) -> Self {
        Self {
            offerer,
            remote,
            connection_id,
            host,
            serialization: cfg.workload.serialization.clone(),
            // PeerJS's MsgPack connection is a byte stream and always reliable.
            reliable: cfg.workload.reliable || cfg.workload.serialization == Serialization::MsgPack,
            cfg,
            start,
            pc: None,
            milestones: Milestones::default(),
            out: VecDeque::new(),
            signals: VecDeque::new(),
            early_candidates: Vec::new(),
            remote_addrs: Vec::new(),
            dc: None,
            codec: None,
            dc_open_at: None,
            sent: 0,
            echoed: 0,
            bytes_moved: 0,
            stun: None,
            srflx: None,
            turns: Vec::new(),
            gathering: 0,
            gathering_done: false,
            deferred: None,
            inbox: delayed::Delayed::default(),
            received: 0,
            rx: delayed::Delayed::default(),
            phase: None,
            call: None,
        }
    }

    /// Makes this (offering) connection a MediaConnection: `peer.call(remote, stream)` with the
    /// workload's media.
    pub fn make_call(&mut self) {
        let w = self.cfg.workload.media.clone().unwrap_or_default();
        self.call = Some(call::Call::new(w, self.seed(), self.start));
    }

    /// A seed for this connection's SSRCs and first sequence numbers, from what makes it unique
    /// in a run (deterministic: no clock, no global RNG).
    fn seed(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.remote.bytes().chain(self.host.to_string().bytes()).chain([u8::from(self.offerer)]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// A MediaConnection (or one waiting for a call).
    pub fn is_call(&self) -> bool {
        self.call.is_some()
    }

    /// What the connection is, as PeerJS's frames name it.
    fn connection_type(&self) -> ConnectionType {
        if self.call.is_some() { ConnectionType::Media } else { ConnectionType::Data }
    }

    /// A MediaConnection's media so far (`None` for a DataConnection).
    /// Drops the stack and everything kept to drive it; the outcome stays (see
    /// [`crate::VirtualPeer::retire`]).
    pub(crate) fn retire(&mut self) {
        self.pc = None;
        self.out = VecDeque::new();
        self.signals = VecDeque::new();
        self.early_candidates = Vec::new();
        self.remote_addrs = Vec::new();
        self.stun = None;
        self.turns = Vec::new();
        self.deferred = None;
        self.inbox.clear();
        self.phase = None;
    }

    pub fn media(&self) -> Option<call::MediaOutcome> {
        self.call.as_ref().map(call::Call::outcome)
    }

    /// Finished: the workload is done (offerer) or the channel is open (answerer), or failed.
    /// A call is done when this side has sent for the workload's duration.
    pub fn is_done(&self) -> bool {
        self.milestones.failure.is_some()
            || if self.offerer || self.call.is_some() {
                self.milestones.get(Milestone::WorkloadDone).is_some()
            } else {
                self.dc.is_some()
            }
    }

    pub(crate) fn mark(&mut self, m: Milestone, now: Instant) {
        self.milestones.mark(m, now.saturating_duration_since(self.start));
    }

    pub fn fail(&mut self, f: Failure, now: Instant) {
        self.milestones.fail(f, now.saturating_duration_since(self.start));
    }

    /// A seed for the stack's own non-cryptographic randomness: the same for the same
    /// connection (its ID, its side) in every run, different for its two ends.
    fn stack_seed(&self) -> u64 {
        // FNV-1a: stable across runs and platforms, unlike std's hasher.
        let side: &[u8] = if self.offerer { b"offerer" } else { b"answerer" };
        [self.connection_id.as_bytes(), b"/", self.remote.as_bytes(), b"/", side]
            .concat()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_signal(&mut self) -> Option<Outgoing> {
        self.signals.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let pc = self.pc.as_mut().and_then(|pc| pc.poll_timeout());
        let turn = self.turns.iter_mut().filter_map(|t| t.client.poll_timeout()).min();
        let deferred = [self.deferred.as_ref().map(|(at, _)| *at), self.inbox.next_due(), self.rx.next_due()]
            .into_iter()
            .flatten()
            .min();
        let phase = self.phase.map(|(at, _)| at);
        let call = self
            .call
            .as_ref()
            .filter(|_| self.milestones.get(Milestone::WorkloadDone).is_none())
            .and_then(call::Call::poll_timeout);
        [pc, self.stun.as_ref().map(|p| p.next), turn, deferred, phase, call].into_iter().flatten().min()
    }

    /// The offerer's start (after OPEN): a data channel, the offer (sent now when trickling),
    /// and gathering, once the profile's time to make an offer has passed.
    pub fn start_offer(&mut self, now: Instant) {
        let wait = self.cfg.timers().describe_offer;
        if wait.is_zero() {
            self.make_offer(now);
        } else {
            self.deferred = Some((now + wait, Deferred::Offer));
        }
    }

    fn make_offer(&mut self, now: Instant) {
        let mut pc = match build_pc(now, self.cfg.profile, self.cfg.metronome(), self.stack_seed(), self.call.as_mut())
        {
            Ok(pc) => pc,
            Err(f) => return self.fail(f, now),
        };
        if let Some(call) = self.call.as_mut() {
            call.outcome.call_at = Some(now.saturating_duration_since(self.start));
            if let Err(e) = call.add_tracks(&mut pc) {
                return self.fail(Failure::BrokerError(e), now);
            }
            // PeerJS 1.5.5's negotiator opens a data channel for every connection it
            // originates, a call too (`createDataChannel(label, { ordered: !!reliable })`: a
            // MediaConnection has neither, so "undefined" and unordered); the call uses it to
            // tell the other side it closed.
            let init = RTCDataChannelInit { ordered: false, ..Default::default() };
            if pc.create_data_channel("undefined", Some(init)).is_err() {
                return self.fail(Failure::BrokerError("create_data_channel".into()), now);
            }
        } else {
            // PeerJS 1.5.5 creates the channel with `{ ordered: !!reliable }` and nothing else.
            let init = RTCDataChannelInit { ordered: self.reliable, ..Default::default() };
            if pc.create_data_channel(&self.connection_id, Some(init)).is_err() {
                return self.fail(Failure::BrokerError("create_data_channel".into()), now);
            }
        }
        let Ok(offer) = pc.create_offer(None) else {
            return self.fail(Failure::BrokerError("create_offer".into()), now);
        };
        if pc.set_local_description(now, offer.clone()).is_err() {
            return self.fail(Failure::BrokerError("set_local_description".into()), now);
        }
        self.pc = Some(pc);
        match Codec::for_serialization(&self.serialization) {
            Some(c) => self.codec = Some(c),
            None => return self.fail(Failure::BrokerError(format!("serialization {:?}", self.serialization)), now),
        }
        if self.cfg.ice == IceMode::Trickle {
            self.send_offer(now, offer.sdp);
        }
        self.gather(now);
        self.service(now);
    }

    fn send_offer(&mut self, now: Instant, sdp: String) {
        let p = if let Some(call) = &self.call {
            OfferPayload { metadata: call.w.metadata.clone(), ..OfferPayload::media(sdp, &self.connection_id) }
        } else {
            OfferPayload::data(sdp, &self.connection_id, self.serialization.clone(), self.reliable)
        };
        self.signals.push_back(Outgoing::Offer(p));
        self.mark(Milestone::OfferSent, now);
    }

    /// The remote's OFFER (this connection answers, once the profile's time to make an answer
    /// has passed; candidates that arrive meanwhile wait for the description).
    pub fn on_offer(&mut self, now: Instant, payload: OfferPayload) {
        self.mark(Milestone::OfferReceived, now);
        let wait = self.cfg.timers().describe_answer;
        if wait.is_zero() {
            self.make_answer(now, payload);
        } else {
            self.deferred = Some((now + wait, Deferred::Answer(Box::new(payload))));
        }
    }

    fn make_answer(&mut self, now: Instant, payload: OfferPayload) {
        self.connection_id = payload.connection_id.clone();
        if payload.connection_type == ConnectionType::Media || self.call.is_some() {
            // A call: answered with this peer's media (`call.answer(stream)`), or none.
            let w = self.cfg.workload.media.clone().unwrap_or(crate::media::MediaWorkload {
                audio: None,
                video: None,
                ..Default::default()
            });
            let mut c = call::Call::new(w, self.seed(), self.start);
            c.outcome.call_at = self.milestones.get(Milestone::OfferReceived);
            c.outcome.metadata = payload.metadata.clone();
            self.call = Some(c);
        }
        // PeerJS answers an OFFER without these as `binary` and unreliable.
        self.serialization = payload.serialization.clone().unwrap_or(Serialization::Binary);
        self.reliable = payload.reliable.unwrap_or(false);
        match Codec::for_serialization(&self.serialization) {
            Some(c) => self.codec = Some(c),
            None => return self.fail(Failure::BrokerError(format!("serialization {:?}", self.serialization)), now),
        }
        let mut pc = match build_pc(now, self.cfg.profile, self.cfg.metronome(), self.stack_seed(), self.call.as_mut())
        {
            Ok(pc) => pc,
            Err(f) => return self.fail(f, now),
        };
        self.note_remote_sdp(&payload.sdp.sdp);
        let Ok(desc) = RTCSessionDescription::offer(payload.sdp.sdp) else {
            return self.fail(Failure::BrokerError("bad offer".into()), now);
        };
        if pc.set_remote_description(now, desc).is_err() {
            return self.fail(Failure::BrokerError("set_remote_description".into()), now);
        }
        if let Some(call) = self.call.as_mut()
            && let Err(e) = call.add_tracks(&mut pc)
        {
            return self.fail(Failure::BrokerError(e), now);
        }
        self.pc = Some(pc);
        self.apply_early_candidates();
        let Some(pc) = self.pc.as_mut() else { return };
        let Ok(answer) = pc.create_answer(None) else {
            return self.fail(Failure::BrokerError("create_answer".into()), now);
        };
        if pc.set_local_description(now, answer.clone()).is_err() {
            return self.fail(Failure::BrokerError("set_local_description".into()), now);
        }
        if self.cfg.ice == IceMode::Trickle {
            self.send_answer(answer.sdp);
        }
        self.gather(now);
        self.service(now);
    }

    fn send_answer(&mut self, sdp: String) {
        self.signals.push_back(Outgoing::Answer(AnswerPayload {
            sdp: SessionDescriptionInit { kind: "answer".into(), sdp },
            connection_type: self.connection_type(),
            connection_id: self.connection_id.clone(),
            browser: None,
        }));
    }

    /// The remote's ANSWER: received now, in the stack once the profile's `apply_remote` has
    /// passed.
    pub fn on_answer(&mut self, now: Instant, payload: AnswerPayload) {
        self.mark(Milestone::AnswerReceived, now);
        self.receive(now, Remote::Answer(payload));
    }

    /// The remote's CANDIDATE: in the stack once the profile's `apply_remote` has passed.
    pub fn on_candidate(&mut self, now: Instant, payload: CandidatePayload) {
        self.receive(now, Remote::Candidate(payload));
    }

    fn receive(&mut self, now: Instant, r: Remote) {
        let t = self.cfg.timers();
        self.received += 1;
        let wait = t.apply_remote + spread(t.apply_remote_spread, self.stack_seed(), self.received);
        // In arrival order, as PeerJS's handlers and the browser's operations chain take them.
        if self.inbox.must_wait(wait) {
            self.inbox.push(now, wait, r);
        } else {
            self.apply(now, r);
        }
    }

    fn apply(&mut self, now: Instant, r: Remote) {
        match r {
            Remote::Answer(a) => self.apply_answer(now, a),
            Remote::Candidate(c) => self.apply_candidate(now, c),
        }
    }

    fn apply_answer(&mut self, now: Instant, payload: AnswerPayload) {
        self.note_remote_sdp(&payload.sdp.sdp);
        if let (Some(pc), Ok(desc)) = (self.pc.as_mut(), RTCSessionDescription::answer(payload.sdp.sdp))
            && pc.set_remote_description(now, desc).is_ok()
        {
            self.apply_early_candidates();
        }
        self.service(now);
    }

    fn apply_candidate(&mut self, now: Instant, payload: CandidatePayload) {
        self.note_remote(&payload.candidate.candidate);
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
        self.service(now);
    }

    /// Remembers the address of every `a=candidate` line of a remote description.
    fn note_remote_sdp(&mut self, sdp: &str) {
        for line in sdp.lines() {
            if let Some(c) = line.trim_end().strip_prefix("a=") {
                self.note_remote(c);
            }
        }
    }

    /// Remembers a remote candidate's address (`candidate:F C udp PRIO IP PORT typ …`); a line
    /// that is not a UDP candidate with a literal IP is ignored, and so is any beyond the 64th
    /// address (a peer cannot make us ask for unbounded permissions).
    fn note_remote(&mut self, candidate: &str) {
        let f: Vec<&str> = candidate.strip_prefix("candidate:").unwrap_or("").split_whitespace().collect();
        let (Some(proto), Some(ip), Some(port)) = (f.get(2), f.get(4), f.get(5)) else { return };
        if !proto.eq_ignore_ascii_case("udp") {
            return;
        }
        if let (Ok(ip), Ok(port)) = (ip.parse::<std::net::IpAddr>(), port.parse::<u16>()) {
            let addr = SocketAddr::new(ip, port);
            if !self.remote_addrs.contains(&addr) && self.remote_addrs.len() < 64 {
                self.remote_addrs.push(addr);
            }
        }
    }

    /// libwebrtc's TurnPort asks for a permission to every remote candidate as soon as it makes
    /// the connection (`TurnPort::CreateConnection` → `TurnEntry`), not when it first sends to
    /// it: a peer's check through our relay is let in before our own check to that peer. With
    /// the `chrome` profile each relay does so once per peer IP.
    /// Runs after every input: it does nothing unless a relay or a remote address is new.
    fn permit_remotes(&mut self, now: Instant) {
        let n = self.remote_addrs.len();
        if self.turns.iter().all(|t| t.relay.is_none() || t.permits_seen == n) || !self.cfg.timers().eager_permissions {
            return;
        }
        for t in &mut self.turns {
            let Some(relay) = t.relay else { continue };
            let new = &self.remote_addrs[t.permits_seen..];
            t.permits_seen = n;
            for addr in new {
                if t.permitted.contains(&addr.ip()) {
                    continue;
                }
                if let Ok(mut r) = t.client.relay(relay)
                    && r.create_permission(now, *addr).is_ok()
                {
                    t.permitted.push(addr.ip());
                }
            }
        }
    }

    fn apply_early_candidates(&mut self) {
        if let Some(pc) = self.pc.as_mut() {
            for c in self.early_candidates.drain(..) {
                let _ = pc.add_remote_candidate(c);
            }
        }
    }

    /// A datagram that arrived on this connection's socket: acted on now, or during setup once
    /// the profile's `setup_packet` has passed (and after any still waiting).
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        // STUN (RFC 7983: first byte 0-3) is not delayed: checks and TURN's answers are cheap.
        let wait = if self.in_setup() && data.first().is_some_and(|b| *b > 3) {
            self.cfg.timers().setup_packet
        } else {
            Duration::ZERO
        };
        if self.rx.must_wait(wait) {
            self.rx.push(now, wait, (src, dst, data.to_vec()));
        } else {
            self.act_on_datagram(now, src, dst, data);
        }
    }

    /// Until the data channel opens (a call: until DTLS is connected, when its media starts).
    fn in_setup(&self) -> bool {
        let done = if self.call.is_some() { Milestone::DtlsConnected } else { Milestone::DataChannelOpen };
        self.milestones.get(done).is_none()
    }

    fn act_on_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        if let Some(probe) = &self.stun
            && Some(src) == self.cfg.stun
            && let Ok(m) = peerstorm_model::stun::Message::decode(data)
            && m.transaction_id == probe.tid
        {
            let mapped = m.address(peerstorm_model::stun::attr::XOR_MAPPED_ADDRESS).and_then(Result::ok);
            self.on_stun_answer(now, mapped);
        } else if let Some(t) = self.turns.iter_mut().find(|t| !t.tcp && t.server == src) {
            let _ = t.client.handle_read(udp_in(now, dst, src, BytesMut::from(data)));
            self.turn_events(now);
        } else if let Some(pc) = self.pc.as_mut() {
            read_and_flush(pc, udp_in(now, dst, src, BytesMut::from(data)), now);
            self.stop_gathering_if_writable(now);
        }
        self.service(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deferred.as_ref().is_some_and(|(at, _)| *at <= now) {
            match self.deferred.take().map(|(_, d)| d) {
                Some(Deferred::Offer) => self.make_offer(now),
                Some(Deferred::Answer(payload)) => self.make_answer(now, *payload),
                None => {}
            }
        }
        while let Some(r) = self.inbox.pop_due(now) {
            self.apply(now, r);
        }
        while let Some((src, dst, data)) = self.rx.pop_due(now) {
            self.act_on_datagram(now, src, dst, &data);
        }
        if self.phase.is_some_and(|(at, _)| at <= now) {
            self.next_phase(now);
        }
        if let Some(p) = self.stun.as_mut()
            && now >= p.next
        {
            if p.tries >= 3 {
                // No answer after three tries (RFC 8489's RTO doubling, shortened): gather without it.
                self.on_stun_answer(now, None);
            } else {
                p.tries += 1;
                p.next = now + Duration::from_millis(500) * (1 << p.tries);
                let (src, dst, data) = (self.host, self.cfg.stun.expect("probing"), p.bytes.clone());
                self.out.push_back(Transmit::Datagram { src, dst, data });
            }
        }
        let mut fired = false;
        for t in self.turns.iter_mut() {
            if t.client.poll_timeout().is_some_and(|at| at <= now) {
                let _ = t.client.handle_timeout(now);
                fired = true;
            }
        }
        if fired {
            self.turn_events(now);
        }
        if let Some(pc) = self.pc.as_mut() {
            let _ = pc.handle_timeout(now);
        }
        self.pump_call(now);
        self.service(now);
    }

    /// A call's frames that are due go out; once this side has sent for the workload's
    /// duration, its work is done.
    fn pump_call(&mut self, now: Instant) {
        let (Some(call), Some(pc)) = (self.call.as_mut(), self.pc.as_mut()) else { return };
        if self.milestones.at.contains_key(&Milestone::WorkloadDone) {
            return;
        }
        call.send_due(pc, now);
        if call.end().is_some_and(|end| end <= now) {
            // The caller hangs up as PeerJS's `call.close()` does: it closes the call's data
            // channel, whose close the other side's PeerJS takes as the call ending.
            if self.offerer
                && let Some(mut dc) = self.dc.and_then(|id| pc.data_channel(id))
            {
                let _ = dc.close();
            }
            self.mark(Milestone::WorkloadDone, now);
        }
    }

    /// Drains the peer connection: datagrams out, events into milestones, messages into the
    /// workload.
    fn service(&mut self, now: Instant) {
        self.permit_remotes(now);
        let send_before_permission = self.cfg.timers().send_before_permission;
        loop {
            let Some(pc) = self.pc.as_mut() else { return };
            let mut progressed = false;
            let mut relayed = false;
            while let Some(w) = pc.poll_write() {
                progressed = true;
                let local = w.transport.local_addr;
                if let Some(t) = self.turns.iter_mut().find(|t| t.relay == Some(local)) {
                    // From a relayed candidate: through its TURN server (permission and
                    // ChannelBind are the client's business).
                    if let Ok(mut r) = t.client.relay(local) {
                        let peer = w.transport.peer_addr;
                        use rtc::shared::error::Error::ErrNoPermission;
                        if send_before_permission {
                            // As libwebrtc: ask for the permission if nobody has, and send at once.
                            if let Err(ErrNoPermission) = r.send_to_requested(now, &w.message, peer) {
                                let _ = r.create_permission(now, peer);
                                let _ = r.send_to_requested(now, &w.message, peer);
                            }
                        } else if let Err(ErrNoPermission) = r.send_to(now, &w.message, peer) {
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
                flush_turn(&mut self.turns, self.host, &mut self.out);
            }
            let mut events = Vec::new();
            while let Some(ev) = pc.poll_event() {
                events.push(ev);
            }
            if !events.is_empty() {
                // Handling an event can queue output only `handle_timeout` moves (the DTLS
                // ClientHello a selected pair starts, see `read_and_flush`); it leaves now, not
                // at the next wake.
                let _ = pc.handle_timeout(now);
            }
            let mut messages = Vec::new();
            let mut media = Vec::new();
            while let Some(m) = pc.poll_read() {
                match m.message {
                    RTCMessage::DataChannelMessage(_, msg) => messages.push(msg.data.to_vec()),
                    m @ (RTCMessage::RtpPacket(..) | RTCMessage::RtcpPacket(..)) => media.push(m),
                    _ => {}
                }
            }
            progressed |= !events.is_empty() || !messages.is_empty() || !media.is_empty();
            for ev in events {
                self.on_event(now, ev);
            }
            if let (Some(call), Some(pc)) = (self.call.as_mut(), self.pc.as_mut()) {
                for m in media {
                    match m {
                        RTCMessage::RtpPacket(track, p) => call.on_rtp(pc, now, &track, &p),
                        RTCMessage::RtcpPacket(_, packets) => call.on_rtcp(&packets),
                        _ => {}
                    }
                }
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
                    && let Ok(init) = e.candidate.to_json()
                {
                    self.signals.push_back(Outgoing::Candidate(CandidatePayload {
                        candidate: IceCandidateInit {
                            candidate: init.candidate,
                            sdp_mid: init.sdp_mid,
                            sdp_m_line_index: init.sdp_mline_index,
                            username_fragment: init.username_fragment,
                        },
                        connection_type: self.connection_type(),
                        connection_id: self.connection_id.clone(),
                    }));
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(s) => match s {
                RTCIceConnectionState::Connected | RTCIceConnectionState::Completed => {
                    self.mark(Milestone::IceConnected, now);
                }
                RTCIceConnectionState::Failed => self.fail(Failure::IceFailed, now),
                _ => {}
            },
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                if let (Some(call), Some(pc)) = (self.call.as_mut(), self.pc.as_mut()) {
                    call.on_track(pc, init.track_id, init.receiver_id);
                }
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => match s {
                RTCPeerConnectionState::Connected => {
                    self.mark(Milestone::DtlsConnected, now);
                    if let (Some(call), Some(pc)) = (self.call.as_mut(), self.pc.as_mut()) {
                        // SRTP keys exist: the call's media starts (PeerJS's `stream` event
                        // fires on the first track; sending needs only DTLS).
                        call.start(now);
                        self.milestones.selected = call.selected(pc, self.cfg.timers().pair_types_like_libwebrtc);
                        call.send_due(pc, now);
                    }
                }
                RTCPeerConnectionState::Failed => self.fail(Failure::DtlsFailed, now),
                _ => {}
            },
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                self.dc = Some(id);
                self.dc_open_at = Some(now);
                self.mark(Milestone::DataChannelOpen, now);
                let sctp = self.pc.as_ref().and_then(|pc| pc.sctp());
                self.milestones.dtls = sctp.as_ref().and_then(|s| s.transport().tls_version()).map(str::to_owned);
                let like_libwebrtc = self.cfg.timers().pair_types_like_libwebrtc;
                if let Some(pair) =
                    sctp.and_then(|sctp| selected::selected_types(&sctp.transport().ice_transport(), like_libwebrtc))
                {
                    self.milestones.selected = Some(pair);
                }
                self.check_workload_done(now);
            }
            _ => {}
        }
    }
}

/// The `n`th arrival's share of `spread`, from the connection's seed: uniform over
/// [0, spread) in whole microseconds, the same for the same connection in every run
/// (SplitMix64 of the seed and `n`).
fn spread(spread: Duration, seed: u64, n: u64) -> Duration {
    let us = spread.as_micros() as u64;
    if us == 0 {
        return Duration::ZERO;
    }
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Duration::from_micros(z % us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Sctp;

    #[test]
    fn arrivals_spread_over_the_range_and_repeat() {
        let range = Duration::from_millis(2);
        let draws: Vec<Duration> = (1..=200).map(|n| spread(range, 42, n)).collect();
        assert!(draws.iter().all(|d| *d < range));
        assert!(draws.iter().any(|d| *d < Duration::from_micros(500)));
        assert!(draws.iter().any(|d| *d > Duration::from_micros(1500)));
        assert_eq!(draws, (1..=200).map(|n| spread(range, 42, n)).collect::<Vec<_>>(), "same seed, same draws");
        assert_ne!(spread(range, 42, 1), spread(range, 43, 1), "another connection, another draw");
        assert_eq!(spread(Duration::ZERO, 42, 1), Duration::ZERO);
    }

    /// During setup a DTLS datagram waits the profile's `setup_packet` (at the run's CPU scale)
    /// and a STUN one behind it keeps its place; alone a STUN datagram does not wait; after the
    /// data channel opens nothing does.
    #[test]
    fn setup_datagrams_wait_their_time_in_arrival_order() {
        let now = Instant::now();
        let cfg = ConnConfig {
            ice: IceMode::Trickle,
            stun: None,
            turn: Vec::new(),
            relay_only: false,
            workload: Workload::default(),
            profile: Profile::Chrome,
            cpu_scale: CpuScale::new(2.0).unwrap(),
            metronome_tick: now,
        };
        let addr = |port| SocketAddr::from(([198, 51, 100, 1], port));
        let mut c = Connection::new(true, "b".into(), "dc_1".into(), addr(5000), cfg, now);
        let wait = Duration::from_micros(1800);
        let (dtls, stun) = ([22u8, 0xfe, 0xfd, 0, 0], [0u8, 1, 0, 0]);
        c.handle_datagram(now, addr(6000), addr(5000), &stun);
        assert!(c.rx.is_empty(), "STUN alone is acted on at once");
        c.handle_datagram(now, addr(6000), addr(5000), &dtls);
        assert_eq!(c.poll_timeout(), Some(now + wait), "DTLS waits 2 × 0.9 ms");
        let later = now + Duration::from_micros(500);
        c.handle_datagram(later, addr(6000), addr(5000), &stun);
        assert_eq!(c.rx.len(), 2, "STUN behind a waiting datagram keeps its place");
        assert_eq!(c.rx[1].0, now + wait, "and goes with it, not before");
        c.handle_timeout(now + wait - Duration::from_micros(1));
        assert_eq!(c.rx.len(), 2, "not due yet");
        c.handle_timeout(now + wait);
        assert!(c.rx.is_empty() && c.poll_timeout().is_none(), "both acted on when due");
        c.mark(Milestone::DataChannelOpen, now + wait);
        c.handle_datagram(now + wait, addr(6000), addr(5000), &dtls);
        assert!(c.rx.is_empty(), "after setup nothing waits");
    }

    #[test]
    fn sctp_timers_carry_the_profile_to_rtc_sctp() {
        let chrome = sctp_timers(&Profile::Chrome.timers().sctp);
        assert_eq!((chrome.rto_initial_ms, chrome.rto_min_ms, chrome.rto_max_ms), (500, 400, 60_000));
        assert_eq!((chrome.t1_timeout_ms, chrome.max_backoff_ms, chrome.min_rttvar_ms), (Some(1000), Some(3000), 28));
        assert_eq!(chrome.max_t1_init_retrans, usize::MAX, "dcsctp never gives up an INIT");
        assert_eq!(chrome.max_t3_rtx_retrans, usize::MAX);
        // `rtc` keeps every one of rtc-sctp's own defaults.
        let rtc = sctp_timers(&Sctp::RTC);
        let upstream = rtc::sctp::TimerConfig::default();
        assert_eq!(
            (
                rtc.rto_initial_ms,
                rtc.rto_min_ms,
                rtc.rto_max_ms,
                rtc.min_rttvar_ms,
                rtc.t1_timeout_ms,
                rtc.max_backoff_ms
            ),
            (
                upstream.rto_initial_ms,
                upstream.rto_min_ms,
                upstream.rto_max_ms,
                upstream.min_rttvar_ms,
                upstream.t1_timeout_ms,
                upstream.max_backoff_ms
            )
        );
        assert_eq!(
            (rtc.max_t1_init_retrans, rtc.max_t3_rtx_retrans),
            (upstream.max_t1_init_retrans, upstream.max_t3_rtx_retrans)
        );
    }
}
