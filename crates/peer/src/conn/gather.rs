//! Candidate gathering for one connection: the host candidate, a server-reflexive one from a
//! STUN Binding of its own, a relayed one from the `rtc-turn` client (over UDP or TCP), and the
//! TURN client as the relayed candidate's transport.

use super::*;
use crate::config::TurnTransport;

/// A STUN Binding in flight for the srflx candidate.
#[derive(Debug, Clone)]
pub(super) struct StunProbe {
    pub(super) tid: [u8; 12],
    pub(super) bytes: Vec<u8>,
    pub(super) next: Instant,
    pub(super) tries: u32,
}

/// libwebrtc's port allocator phases after the first (UDP: host and srflx at once): RELAY one
/// step in, then TCP a step later, the last (`p2p/client/basic_port_allocator.cc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Relay,
    Last,
}

/// The `rtc-turn` client and its Allocate transaction.
pub(super) struct TurnClient {
    pub(super) client: rtc::turn::client::Client,
    pub(super) allocate: Option<rtc::stun::message::TransactionId>,
    /// Datagrams waiting for their peer's permission.
    pub(super) waiting: Vec<(SocketAddr, Vec<u8>)>,
    /// The peer IPs a CreatePermission has been sent for (a permission is per IP, RFC 8656 §9).
    pub(super) permitted: Vec<std::net::IpAddr>,
    /// How many of the connection's `remote_addrs` have been through `permitted` already.
    pub(super) permits_seen: usize,
    pub(super) tcp: bool,
    /// Over TCP: bytes from the server not yet a whole message.
    pub(super) stream_in: Vec<u8>,
    /// The TCP connection is TLS (`turns:`).
    pub(super) tls: bool,
    /// The server it talks to.
    pub(super) server: SocketAddr,
    /// Its own address: the connection's socket over UDP; over TCP or TLS an address of its
    /// own (in the simulator the TCP connection's source, live only a key), so that two stream
    /// clients to one server (TCP and TLS on one port, as coturn serves them) stay apart.
    pub(super) local: SocketAddr,
    /// The relayed address once allocated.
    pub(super) relay: Option<SocketAddr>,
}

impl TurnClient {
    pub(super) fn start(now: Instant, local: SocketAddr, t: &TurnServer) -> Result<Self, String> {
        let provider = rtc::turn::crypto::default_provider().map_err(|e| format!("{e:?}"))?;
        let mut client = rtc::turn::client::Client::new(
            rtc::turn::client::ClientConfig {
                stun_serv_addr: String::new(),
                turn_serv_addr: t.addr.to_string(),
                local_addr: local,
                transport_protocol: match t.transport {
                    TurnTransport::Udp => TransportProtocol::UDP,
                    TurnTransport::Tcp | TurnTransport::Tls => TransportProtocol::TCP,
                },
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
        Ok(Self {
            client,
            allocate,
            waiting: Vec::new(),
            permitted: Vec::new(),
            permits_seen: 0,
            tcp: t.transport.is_stream(),
            tls: t.transport == TurnTransport::Tls,
            server: t.addr,
            relay: None,
            local,
            stream_in: Vec::new(),
        })
    }
}

/// Moves what the TURN client wants sent into `out`, from the connection's host address (as
/// datagrams, or on its TCP connection to the server).
pub(super) fn flush_turn(turns: &mut [TurnClient], host: SocketAddr, out: &mut VecDeque<Transmit>) {
    for t in turns.iter_mut() {
        while let Some(w) = t.client.poll_write() {
            let (src, dst, data) = (if t.tcp { t.local } else { host }, w.transport.peer_addr, w.message.to_vec());
            out.push_back(if t.tcp {
                Transmit::Stream { src, dst, data, tls: t.tls }
            } else {
                Transmit::Datagram { src, dst, data }
            });
        }
    }
}

/// A STUN transaction ID that is the same on every run: a hash of the connection's socket and
/// remote peer.
fn transaction_id(host: SocketAddr, remote: &str) -> [u8; 12] {
    let h = host
        .to_string()
        .bytes()
        .chain(remote.bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let mut tid = [0u8; 12];
    tid[..8].copy_from_slice(&h.to_be_bytes());
    tid
}

/// The error code in what the rtc-turn client says ("Allocate error response (error 437:
/// Allocation Mismatch)" → `437`), or a short slug of it when there is none.
fn turn_error_code(text: &str) -> String {
    text.split("error ")
        .skip(1)
        .find_map(|rest| rest.get(..3).filter(|c| c.chars().all(|ch| ch.is_ascii_digit())))
        .map_or_else(
            || {
                text.chars()
                    .take(40)
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
                    .collect()
            },
            str::to_string,
        )
}

impl Connection {
    /// Host candidate now; with a STUN server, a Binding from the host socket whose answer
    /// becomes the srflx candidate; with a TURN server, an Allocate. Gathering completes when
    /// every source is done or given up. With the profile's `gather_step` (libwebrtc's port
    /// allocator phases), the Allocate waits one step and gathering cannot complete before the
    /// last phase, two steps in; each step runs at the profile's metronome's next tick.
    pub(super) fn gather(&mut self, now: Instant) {
        if !self.cfg.relay_only {
            let Some(c) = host_candidate(self.host) else { return };
            if let Some(pc) = self.pc.as_mut() {
                let _ = pc.add_local_candidate(c);
            }
            self.mark(Milestone::FirstLocalCandidate, now);
        }
        if let Some(server) = self.cfg.stun.filter(|_| !self.cfg.relay_only) {
            let tid = transaction_id(self.host, &self.remote);
            let bytes = peerstorm_model::stun::Message::binding_request(tid).encode(true);
            self.out.push_back(Transmit::Datagram { src: self.host, dst: server, data: bytes.clone() });
            self.stun = Some(StunProbe { tid, bytes, next: now + Duration::from_millis(500), tries: 1 });
            self.gathering += 1;
        }
        let step = self.cfg.profile.timers().gather_step;
        if step.is_zero() {
            self.start_turn(now);
        } else {
            // The phases are a source of their own until the last one starts.
            self.gathering += 1;
            self.phase = Some((self.cfg.on_tick(now + step), Phase::Relay));
        }
        if self.gathering == 0 {
            self.finish_gathering(now);
        }
    }

    /// The next allocation phase is due: the relay's Allocate, then the end of the phases.
    pub(super) fn next_phase(&mut self, now: Instant) {
        match self.phase.take() {
            Some((_, Phase::Relay)) => {
                self.start_turn(now);
                self.phase = Some((self.cfg.on_tick(now + self.cfg.profile.timers().gather_step), Phase::Last));
            }
            Some((_, Phase::Last)) => self.source_done(now),
            None => {}
        }
    }

    /// An Allocate to every TURN server configured, each a candidate source of its own (a
    /// browser given UDP, TCP and TLS TURN URLs gathers a relayed candidate over each).
    fn start_turn(&mut self, now: Instant) {
        for (i, t) in self.cfg.turn.clone().into_iter().enumerate() {
            let local = if t.transport.is_stream() {
                let port = self.host.port().wrapping_add(20_000).wrapping_add(1_000u16.wrapping_mul(i as u16));
                SocketAddr::new(self.host.ip(), port)
            } else {
                self.host
            };
            match TurnClient::start(now, local, &t) {
                Ok(c) => {
                    self.turns.push(c);
                    self.gathering += 1;
                }
                Err(_) => return self.fail(Failure::BrokerError("starting the TURN client".into()), now),
            }
        }
        flush_turn(&mut self.turns, self.host, &mut self.out);
    }

    /// One candidate source finished (with or without a candidate).
    pub(super) fn source_done(&mut self, now: Instant) {
        self.gathering = self.gathering.saturating_sub(1);
        if self.gathering == 0 {
            self.finish_gathering(now);
        }
    }

    /// Drains the TURN client's events: the relayed address becomes a candidate; data from
    /// peers goes into the peer connection as if it arrived on the relayed address.
    pub(super) fn turn_events(&mut self, now: Instant) {
        for i in 0..self.turns.len() {
            self.client_events(now, i);
        }
        // A client with no relay and nothing in flight once gathering is over has nothing left
        // to do.
        if self.gathering_done {
            self.turns.retain(|t| t.relay.is_some() || t.client.has_transaction(&t.allocate.unwrap_or_default()));
        }
        flush_turn(&mut self.turns, self.host, &mut self.out);
    }

    /// The events of TURN client `i`.
    fn client_events(&mut self, now: Instant, i: usize) {
        loop {
            let Some(ev) = self.turns.get_mut(i).and_then(|t| t.client.poll_event()) else { break };
            match ev {
                TurnEvent::AllocateResponse(_, relayed) => {
                    self.turns[i].relay = Some(relayed);
                    self.milestones.relays += 1;
                    let base = self.srflx.unwrap_or(self.host);
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
                TurnEvent::AllocateError(_, e) => {
                    self.milestones.turn_error.get_or_insert_with(|| turn_error_code(&e.to_string()));
                    self.source_done(now)
                }
                TurnEvent::CreatePermissionResponse(_, peer) => {
                    self.mark(Milestone::TurnPermission, now);
                    let t = &mut self.turns[i];
                    if let Some(relay) = t.relay {
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
                TurnEvent::TransactionTimeout(id) if self.turns[i].allocate == Some(id) => {
                    self.milestones.turn_error.get_or_insert_with(|| "timeout".into());
                    self.source_done(now)
                }
                TurnEvent::DataIndicationOrChannelData(_, from, data) => {
                    if let (Some(relay), Some(pc)) = (self.turns[i].relay, self.pc.as_mut()) {
                        read_and_flush(pc, udp_in(now, relay, from, data), now);
                        self.stop_gathering_if_writable(now);
                    }
                }
                _ => {}
            }
        }
    }

    /// With the profile's `stop_gathering_when_writable`: once a check of ours has been
    /// answered (a pair is writable, in libwebrtc's words), sources still gathering are given up
    /// and gathering completes now, as libwebrtc stops its port allocator sessions then
    /// (GATHER_ONCE, `P2PTransportChannel::MaybeStopPortAllocatorSessions`). A vanilla
    /// description waiting for gathering leaves now. A relay already allocated stays.
    pub(super) fn stop_gathering_if_writable(&mut self, now: Instant) {
        if self.gathering_done || !self.cfg.profile.timers().stop_gathering_when_writable {
            return;
        }
        let Some(pc) = self.pc.as_ref() else { return };
        if !pc.ice_has_writable_pair(now) {
            return;
        }
        self.stun = None;
        self.phase = None;
        self.turns.retain(|t| t.relay.is_some());
        self.gathering = 0;
        self.finish_gathering(now);
    }

    pub(super) fn finish_gathering(&mut self, now: Instant) {
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
                if self.offerer {
                    self.send_offer(now, sdp);
                } else {
                    self.send_answer(sdp);
                }
            }
        }
    }

    pub(super) fn on_stun_answer(&mut self, now: Instant, mapped: Option<SocketAddr>) {
        if let Some(addr) = mapped {
            let c = CandidateServerReflexiveConfig {
                base_config: udp_candidate(addr),
                rel_addr: self.host.ip().to_string(),
                rel_port: self.host.port(),
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

    /// Whether one of this connection's TURN clients speaks TCP or TLS from `local`.
    pub fn has_stream_local(&self, local: SocketAddr) -> bool {
        self.turns.iter().any(|t| t.tcp && t.local == local)
    }

    /// Bytes on this connection's TCP connection to its TURN server.
    pub fn handle_stream(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        let Some(t) = self.turns.iter_mut().find(|t| t.tcp && t.server == src && t.local == dst) else {
            return;
        };
        t.stream_in.extend_from_slice(data);
        loop {
            match peerstorm_model::stun::stream_frame_len(&t.stream_in) {
                Ok(Some(n)) => {
                    let frame: Vec<u8> = t.stream_in.drain(..n).collect();
                    let msg = TaggedBytesMut {
                        now,
                        transport: TransportContext {
                            local_addr: dst,
                            peer_addr: src,
                            ecn: None,
                            transport_protocol: TransportProtocol::TCP,
                        },
                        message: BytesMut::from(&frame[..]),
                    };
                    let _ = t.client.handle_read(msg);
                }
                Ok(None) => break,
                Err(_) => {
                    // Not TURN: the stream is unusable (a real client would close it).
                    t.stream_in.clear();
                    break;
                }
            }
        }
        self.turn_events(now);
        self.service(now);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn turn_errors_are_named_by_their_code() {
        assert_eq!(super::turn_error_code("Allocate error response (error 437: Allocation Mismatch)"), "437");
        assert_eq!(super::turn_error_code("error 486: Allocation Quota Reached"), "486");
        assert_eq!(super::turn_error_code("attribute not found"), "attribute_not_found");
    }
}
