use crate::peer_connection::event::RTCPeerConnectionEvent;
use crate::peer_connection::event::{RTCEventInternal, TaggedRTCEventInternal};
use crate::peer_connection::message::internal::{
    DTLSMessage, RTCMessageInternal, STUNMessage, TaggedRTCMessageInternal,
};
use crate::peer_connection::transport::ice::IceTransport;
use crate::statistics::accumulator::RTCStatsAccumulator;
use crate::statistics::stats::ice_candidate_pair::RTCStatsIceCandidatePairState;
use log::{debug, trace};
use shared::error::{Error, Result};
use shared::{TransportContext, TransportMessage};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// peerstorm patch: how many early ClientHello datagrams are kept (a ClientHello of a few
/// fragments, and a retransmission of it).
const MAX_EARLY_CLIENT_HELLO_DATAGRAMS: usize = 8;

/// peerstorm patch: a datagram holding a DTLS handshake record (content type 22) whose first
/// message is a ClientHello (handshake type 1, after the 13-byte record header) — any fragment
/// of it.
/// The demuxer ahead of this handler has already tagged it as DTLS.
fn is_dtls_client_hello(message: &RTCMessageInternal) -> bool {
    matches!(
        message,
        RTCMessageInternal::Dtls(DTLSMessage::Raw(bytes))
            if bytes.len() > 13 && bytes[0] == 22 && bytes[13] == 1
    )
}

pub(crate) struct IceHandlerContext {
    pub(crate) ice_transport: IceTransport,

    pub(crate) read_outs: VecDeque<TaggedRTCMessageInternal>,
    pub(crate) write_outs: VecDeque<TaggedRTCMessageInternal>,
    pub(crate) event_outs: VecDeque<TaggedRTCEventInternal>,

    /// Cached stats key of the currently selected ICE candidate pair
    /// (`RTCIceCandidatePair_<local>_<remote>`), refreshed only when the selected
    /// pair changes. The per-packet read/write path looks the pair's stats
    /// accumulator up with this key instead of re-`format!`ing it on every packet
    /// — that formatting was a heap allocation on the hot path in both directions.
    pub(crate) selected_pair_key: Option<String>,

    /// peerstorm patch: keep the DTLS ClientHello datagrams that arrive before a pair is selected
    /// and deliver them once one is (`DtlsHandshakeTiming::keep_early_client_hello`). A list,
    /// not one datagram: Chromium's ClientHello (post-quantum key share) comes in two fragments.
    pub(crate) keep_early_client_hello: bool,
    pub(crate) early_client_hello: VecDeque<TaggedRTCMessageInternal>,
}

impl IceHandlerContext {
    pub(crate) fn new(ice_transport: IceTransport) -> Self {
        Self {
            ice_transport,

            read_outs: VecDeque::new(),
            write_outs: VecDeque::new(),
            event_outs: VecDeque::new(),

            selected_pair_key: None,

            keep_early_client_hello: false,
            early_client_hello: VecDeque::new(),
        }
    }
}

/// IceHandler implements ICE Protocol handling
pub(crate) struct IceHandler<'a> {
    ctx: &'a mut IceHandlerContext,
    stats: &'a mut RTCStatsAccumulator,
}

impl<'a> IceHandler<'a> {
    pub(crate) fn new(ctx: &'a mut IceHandlerContext, stats: &'a mut RTCStatsAccumulator) -> Self {
        IceHandler { ctx, stats }
    }

    pub(crate) fn name(&self) -> &'static str {
        "IceHandler"
    }
}

impl<'a>
    sansio::Protocol<TaggedRTCMessageInternal, TaggedRTCMessageInternal, TaggedRTCEventInternal>
    for IceHandler<'a>
{
    type Rout = TaggedRTCMessageInternal;
    type Wout = TaggedRTCMessageInternal;
    type Eout = TaggedRTCEventInternal;
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedRTCMessageInternal) -> Result<()> {
        if let RTCMessageInternal::Stun(STUNMessage::Raw(message)) = msg.message {
            self.ctx.ice_transport.agent.handle_read(TransportMessage {
                now: msg.now,
                transport: msg.transport,
                message,
            })?;
        } else if self
            .ctx
            .ice_transport
            .agent
            .get_selected_candidate_pair()
            .is_some()
        {
            // only ICE connection is ready and bypass it
            debug!("bypass ice read {:?}", msg.transport.peer_addr);

            // Track packets/bytes received on the selected candidate pair. Look
            // the accumulator up via the cached key (set on the last
            // SelectedCandidatePairChange) to avoid allocating the key per packet.
            let bytes = msg.message.len();
            if let Some(key) = &self.ctx.selected_pair_key
                && let Some(pair) = self.stats.ice_candidate_pairs.get_mut(key)
            {
                pair.on_packet_received(bytes, msg.now);
            }

            // When ICE restarts and the selected candidate pair changes,
            // WebRTC treats this as a path migration, and DTLS continues unchanged, bound to the ICE transport, not to a fixed 5-tuple.
            // Use default for transport to make DTLS tunneled
            msg.transport = TransportContext::default();
            self.ctx.read_outs.push_back(msg);
        } else if self.ctx.keep_early_client_hello && is_dtls_client_hello(&msg.message) {
            debug!(
                "keep an early DTLS ClientHello from {:?} until ICE selects a pair",
                msg.transport.peer_addr
            );
            msg.transport = TransportContext::default();
            // The newest few: a retransmitted ClientHello repeats its fragments, and DTLS
            // discards what it has already seen.
            if self.ctx.early_client_hello.len() == MAX_EARLY_CLIENT_HELLO_DATAGRAMS {
                self.ctx.early_client_hello.pop_front();
            }
            self.ctx.early_client_hello.push_back(msg);
        } else {
            trace!(
                "drop message from {:?} to {:?} before ICE connection is connected",
                msg.transport.peer_addr, msg.transport.local_addr
            );
        }

        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.ctx.read_outs.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedRTCMessageInternal) -> Result<()> {
        if let Some((local, remote)) = self.ctx.ice_transport.agent.get_selected_candidate_pair() {
            // use ICE selected candidate pair to replace local/peer addr and
            // transport protocol: DTLS/SCTP endpoints run on placeholder
            // transport contexts, so without the protocol rewrite their
            // transmits stay stamped UDP even when the selected pair is TCP,
            // and consumers routing poll_write() output by transport_protocol
            // send every non-STUN packet down the wrong transport.
            // Use the local candidate's base address: for (server/peer-)
            // reflexive candidates the candidate address is the NAT mapping,
            // not a bound local socket (RFC 8445 §5.1.1).
            msg.transport.local_addr = local.base_addr();
            msg.transport.peer_addr = remote.addr();
            msg.transport.transport_protocol = local.network_type().to_protocol();
            debug!("Bypass ice write {:?}", msg.transport.peer_addr);

            // Track packets/bytes sent on the selected candidate pair. Look the
            // accumulator up via the cached key to avoid allocating it per packet.
            let bytes = msg.message.len();
            if let Some(key) = &self.ctx.selected_pair_key
                && let Some(pair) = self.stats.ice_candidate_pairs.get_mut(key)
            {
                pair.on_packet_sent(bytes, msg.now);
            }

            self.ctx.write_outs.push_back(msg);
        } else {
            trace!(
                "drop message from {:?} to {:?} before ICE connection is connected",
                msg.transport.local_addr, msg.transport.peer_addr,
            );
        }

        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        while let Some(transmit) = self.ctx.ice_transport.agent.poll_write() {
            self.ctx.write_outs.push_back(TaggedRTCMessageInternal {
                now: transmit.now,
                transport: transmit.transport,
                message: RTCMessageInternal::Stun(STUNMessage::Raw(transmit.message)),
            });
        }

        self.ctx.write_outs.pop_front()
    }

    fn handle_event(&mut self, evt: TaggedRTCEventInternal) -> Result<()> {
        self.ctx.event_outs.push_back(evt);
        Ok(())
    }

    fn poll_event(&mut self) -> Option<Self::Eout> {
        if let Some(evt) = self.ctx.ice_transport.agent.poll_event() {
            // The agent stamps its own events, so this drain *propagates* that instant rather
            // than retaining one: the condition was observed when the agent saw it, not when
            // the pipeline got round to polling for it.
            let now = evt.now;
            match evt.event {
                ::ice::Event::ConnectionStateChange(state) => {
                    let ice_connection_state = state.into();
                    self.ctx.ice_transport.ice_connection_state = ice_connection_state;

                    // Update transport stats for ICE state change
                    // Use the original ice state which converts to RTCIceTransportState
                    self.stats.transport.on_ice_state_changed(state.into());

                    self.ctx.event_outs.push_back(TaggedRTCEventInternal {
                        now,
                        event: RTCEventInternal::RTCPeerConnectionEvent(
                            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                                ice_connection_state,
                            ),
                        ),
                    });
                }
                ::ice::Event::SelectedCandidatePairChange(local, remote) => {
                    debug!(
                        "ice selected candidate pair {:?} <-> {:?}",
                        local.addr(),
                        remote.addr()
                    );

                    // Create/update the candidate pair accumulator
                    let pair = self
                        .stats
                        .get_or_create_candidate_pair(local.id(), remote.id());
                    pair.nominated = true;
                    pair.state = RTCStatsIceCandidatePairState::Succeeded;

                    // Cache the pair's stats key so the per-packet path can look
                    // the accumulator up by borrow instead of re-formatting (and
                    // allocating) the key on every read/write.
                    let key = format!("RTCIceCandidatePair_{}_{}", local.id(), remote.id());
                    self.ctx.selected_pair_key = Some(key.clone());
                    // Update transport stats for selected candidate pair change
                    self.stats.transport.on_selected_candidate_pair_changed(key);

                    // peerstorm patch: the pair's measured round-trip time, if a check measured one.
                    let rtt = self
                        .ctx
                        .ice_transport
                        .agent
                        .get_candidate_pairs_stats(now)
                        .into_iter()
                        .find(|p| {
                            p.local_candidate_id == local.id()
                                && p.remote_candidate_id == remote.id()
                        })
                        .map(|p| p.current_round_trip_time)
                        .filter(|rtt| *rtt > 0.0)
                        .map(Duration::from_secs_f64);
                    self.ctx.event_outs.push_back(TaggedRTCEventInternal {
                        now,
                        event: RTCEventInternal::ICESelectedCandidatePairChange { rtt },
                    });
                    // peerstorm patch: the ClientHello kept while no pair was selected goes to
                    // DTLS now, after the event that tells it a pair exists.
                    self.ctx.read_outs.extend(self.ctx.early_client_hello.drain(..));
                }
                ::ice::Event::RoleChange(is_controlling) => {
                    self.stats.transport.on_ice_role_changed(is_controlling);
                }
                _ => {}
            }
        }

        self.ctx.event_outs.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        self.ctx.ice_transport.agent.handle_timeout(now)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.ctx.ice_transport.agent.poll_timeout()
    }

    fn close(&mut self) -> Result<()> {
        self.ctx.ice_transport.agent.close()
    }
}

#[cfg(test)]
mod peerstorm_tests {
    //! peerstorm patch: a DTLS ClientHello that arrives before ICE has selected a pair.

    use super::*;
    use crate::peer_connection::transport::{RTCTransportId, TransportKind};
    use bytes::BytesMut;
    use ice::agent::agent_config::AgentConfig;
    use sansio::Protocol;

    fn context(keep_early_client_hello: bool) -> IceHandlerContext {
        let crypto_provider =
            crypto::default_provider().expect("a built-in crypto provider is enabled for tests");
        let transport = IceTransport::new(
            Instant::now(),
            AgentConfig::default(),
            crypto_provider,
            RTCTransportId::new(1, TransportKind::Ice),
        )
        .expect("ice transport");
        let mut ctx = IceHandlerContext::new(transport);
        ctx.keep_early_client_hello = keep_early_client_hello;
        ctx
    }

    /// A DTLS record header (handshake, DTLS 1.0 version, epoch 0) and a handshake message of
    /// `message_type`.
    fn record(message_type: u8) -> TaggedRTCMessageInternal {
        let mut bytes = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12];
        bytes.extend_from_slice(&[message_type, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 8]);
        TaggedRTCMessageInternal {
            now: Instant::now(),
            transport: TransportContext::default(),
            // As the demuxer hands it on.
            message: RTCMessageInternal::Dtls(DTLSMessage::Raw(BytesMut::from(&bytes[..]))),
        }
    }

    #[test]
    fn an_early_client_hello_is_kept_only_when_asked() {
        let mut stats = RTCStatsAccumulator::default();
        for keep in [false, true] {
            let mut ctx = context(keep);
            let mut handler = IceHandler::new(&mut ctx, &mut stats);
            handler.handle_read(record(1)).unwrap();
            // A ServerHello (type 2) is not what libwebrtc keeps either.
            handler.handle_read(record(2)).unwrap();
            // The second fragment of the same ClientHello: both are kept.
            handler.handle_read(record(1)).unwrap();
            assert!(
                handler.poll_read().is_none(),
                "nothing reaches DTLS before a pair exists"
            );
            let kept = if keep { 2 } else { 0 };
            assert_eq!(ctx.early_client_hello.len(), kept, "keep = {keep}");
        }
    }

    #[test]
    fn only_a_handshake_record_opening_with_a_client_hello_counts() {
        assert!(is_dtls_client_hello(&record(1).message));
        assert!(!is_dtls_client_hello(&record(2).message));
        let application_data =
            RTCMessageInternal::Dtls(DTLSMessage::Raw(BytesMut::from(&[23u8; 40][..])));
        assert!(!is_dtls_client_hello(&application_data));
        assert!(!is_dtls_client_hello(&RTCMessageInternal::Raw(
            BytesMut::from(&[22u8, 1][..])
        )));
    }
}
