//! A MediaConnection's media on its `rtc` peer connection: the tracks a call or an answer adds
//! (Opus and VP8, one SSRC each), the synthetic [`Source`]s sending on them once DTLS is up
//! (SRTP), and a [`Receiver`] per incoming track that measures it and asks for key frames.

use crate::media::{Kind, MediaWorkload, Receiver, SendStats, Source, StreamStats};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpFecParameters, RTCRtpRtxParameters,
    RtpCodecKind,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a MediaConnection sent and received, in a connection's outcome.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MediaOutcome {
    /// When this side called (`peer.call`) or got the call (OFFER), from the peer's start.
    #[serde(serialize_with = "crate::milestones::ms_opt", deserialize_with = "crate::milestones::ms_opt_de", default)]
    pub call_at: Option<Duration>,
    /// Every incoming track, audio first.
    pub received: Vec<StreamStats>,
    /// Every outgoing track.
    pub sent: Vec<(Kind, SendStats)>,
    /// NACKs this side's senders got (each asks for lost packets again).
    pub nacks_received: u64,
    /// The `metadata` of the call's OFFER, as the answering side got it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// The median RTT from RTCP reception reports (RFC 3550 §6.4.1), ms; none before a report
    /// came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// A media engine with Opus and VP8 (rtc's defaults) and the interceptors a browser runs for
/// what these streams carry: NACK both ways, RTCP sender and receiver reports, and an
/// [`RtcpTap`] (PLIs and NACKs to the call, RTT from the reports) whose samples come back.
/// Left out of rtc's defaults: the transport-wide congestion control receiver (the synthetic
/// senders send at their set rate and stamp no transport-wide sequence numbers) and the
/// simulcast header extensions.
pub fn media_engine() -> Result<(MediaEngine, rtc::interceptor::Registry, RttSamples), String> {
    use rtc::peer_connection::configuration::interceptor_registry::{configure_nack, configure_rtcp_reports};
    let mut me = MediaEngine::default();
    me.register_default_codecs().map_err(|e| format!("registering codecs: {e}"))?;
    let rtts = RttSamples::default();
    // Wire-most (below the congestion controller's 1,000): it sees every Sender Report leave
    // and every report come in.
    let registry = configure_rtcp_reports(configure_nack(rtc::interceptor::Registry::new(), &mut me))
        .with(rtc::interceptor::Slot::Custom(500), RtcpTap::new(rtts.clone()));
    Ok((me, registry, rtts))
}

#[derive(Debug)]
struct Outgoing {
    id: RTCRtpSenderId,
    ssrc: u32,
    source: Option<Source>,
    kind: Kind,
}

/// One call's media state.
#[derive(Debug)]
pub struct Call {
    pub w: MediaWorkload,
    seed: u64,
    senders: Vec<Outgoing>,
    /// Incoming tracks by track ID: the receiver that measures it and its `rtc` receiver.
    receivers: BTreeMap<String, (RTCRtpReceiverId, Receiver)>,
    start: Instant,
    pub started: Option<Instant>,
    pub outcome: MediaOutcome,
    /// RTT samples from RTCP (see [`RtcpTap`]), once the peer connection exists.
    pub rtts: Option<RttSamples>,
}

impl Call {
    pub fn new(w: MediaWorkload, seed: u64, start: Instant) -> Self {
        Self {
            w,
            seed,
            senders: Vec::new(),
            receivers: BTreeMap::new(),
            start,
            started: None,
            outcome: MediaOutcome::default(),
            rtts: None,
        }
    }

    /// Adds this side's tracks (the stream of `call(id, stream)` or `answer(stream)`).
    pub fn add_tracks(&mut self, pc: &mut RTCPeerConnection) -> Result<(), String> {
        let kinds = [(Kind::Audio, self.w.audio.is_some()), (Kind::Video, self.w.video.is_some())];
        for (i, kind) in kinds.into_iter().filter(|(_, on)| *on).map(|(k, _)| k).enumerate() {
            let ssrc = (self.seed as u32).wrapping_add(i as u32 * 0x9E37_79B9) | 1;
            let (codec, rtc_kind, name) = match kind {
                Kind::Audio => (
                    RTCRtpCodec {
                        mime_type: MIME_TYPE_OPUS.to_owned(),
                        clock_rate: 48_000,
                        channels: 2,
                        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                        rtcp_feedback: vec![],
                    },
                    RtpCodecKind::Audio,
                    "audio",
                ),
                Kind::Video => (
                    RTCRtpCodec {
                        mime_type: MIME_TYPE_VP8.to_owned(),
                        clock_rate: 90_000,
                        channels: 0,
                        sdp_fmtp_line: String::new(),
                        rtcp_feedback: vec![],
                    },
                    RtpCodecKind::Video,
                    "video",
                ),
            };
            let track = MediaStreamTrack::new(
                format!("peerstorm-{:08x}", self.seed as u32),
                format!("{name}-{ssrc:08x}"),
                name.to_owned(),
                rtc_kind,
                vec![RTCRtpEncodingParameters {
                    // The repair flows' SSRCs too, from the same seed: left unset, rtc draws them
                    // from the thread's RNG, and the order of streams keyed by them then differs
                    // run to run (a seeded simulation with loss did not repeat itself).
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        rtx: Some(RTCRtpRtxParameters { ssrc: ssrc.rotate_left(16) ^ 0x5254_5831 }),
                        fec: Some(RTCRtpFecParameters { ssrc: ssrc.rotate_left(8) ^ 0x4645_4331 }),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            );
            let id = pc.add_track(track).map_err(|e| format!("add_track: {e}"))?;
            self.senders.push(Outgoing { id, ssrc, source: None, kind });
        }
        Ok(())
    }

    /// DTLS is up: the sources start.
    pub fn start(&mut self, now: Instant) {
        if self.started.is_some() {
            return;
        }
        self.started = Some(now);
        for (i, s) in self.senders.iter_mut().enumerate() {
            let seed = self.seed.rotate_left(17 * (i as u32 + 1)) ^ u64::from(s.ssrc);
            s.source = Some(Source::new(s.kind, &self.w, now, seed));
        }
    }

    /// When this side has sent for its duration (and so is done).
    pub fn end(&self) -> Option<Instant> {
        self.started.map(|t| t + self.w.duration)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.senders.iter().filter_map(|s| s.source.as_ref()?.poll_timeout()).min();
        [next, self.end()].into_iter().flatten().min()
    }

    /// Sends every frame that is due.
    pub fn send_due(&mut self, pc: &mut RTCPeerConnection, now: Instant) {
        for s in &mut self.senders {
            let Some(source) = s.source.as_mut() else { continue };
            let packets = source.poll(now);
            if packets.is_empty() {
                continue;
            }
            let Some(mut sender) = pc.rtp_sender(s.id) else { continue };
            let Some(pt) = sender.get_parameters().rtp_parameters.codecs.first().map(|c| c.payload_type) else {
                continue;
            };
            for p in packets {
                let packet = rtc::rtp::Packet {
                    header: rtc::rtp::Header {
                        version: 2,
                        marker: p.marker,
                        payload_type: pt,
                        sequence_number: p.sequence_number,
                        timestamp: p.timestamp,
                        ssrc: s.ssrc,
                        ..Default::default()
                    },
                    payload: p.payload.into(),
                };
                let _ = sender.write_rtp(now, packet);
            }
        }
    }

    /// A new incoming track.
    pub fn on_track(&mut self, pc: &mut RTCPeerConnection, track_id: String, receiver_id: RTCRtpReceiverId) {
        let kind = match pc.rtp_receiver(receiver_id).map(|r| r.track().kind()) {
            Some(RtpCodecKind::Audio) => Kind::Audio,
            Some(RtpCodecKind::Video) => Kind::Video,
            _ => return,
        };
        self.receivers.entry(track_id).or_insert_with(|| (receiver_id, Receiver::new(kind, self.start, self.w.epoch)));
    }

    /// An RTP packet on an incoming track; a PLI goes back when the receiver asks for one.
    pub fn on_rtp(&mut self, pc: &mut RTCPeerConnection, now: Instant, track_id: &str, p: &rtc::rtp::Packet) {
        let Some((receiver_id, r)) = self.receivers.get_mut(track_id) else { return };
        let h = &p.header;
        if r.on_rtp(now, h.sequence_number, h.timestamp, h.marker, &p.payload)
            && let Some(mut receiver) = pc.rtp_receiver(*receiver_id)
        {
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: h.ssrc };
            let _ = receiver.write_rtcp(now, vec![Box::new(pli)]);
        }
    }

    /// RTCP about one of this side's tracks: a PLI asks that source for a key frame.
    pub fn on_rtcp(&mut self, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
        for p in packets {
            if let Some(pli) = p.as_any().downcast_ref::<PictureLossIndication>() {
                let source = self.senders.iter_mut().find(|s| s.ssrc == pli.media_ssrc).and_then(|s| s.source.as_mut());
                if let Some(s) = source {
                    s.on_pli();
                }
            } else if p.as_any().is::<TransportLayerNack>() {
                self.outcome.nacks_received += 1;
            }
        }
    }

    /// The outcome so far.
    pub fn outcome(&self) -> MediaOutcome {
        let mut o = self.outcome.clone();
        o.received = self.receivers.values().map(|(_, r)| r.stats.clone()).collect();
        o.received.sort_by_key(|s| s.kind);
        o.sent = self.senders.iter().filter_map(|s| Some((s.kind, s.source.as_ref()?.stats))).collect();
        if let Some(Ok(v)) = self.rtts.as_ref().map(|r| r.lock()) {
            let mut v: Vec<Duration> = v.clone();
            v.sort();
            o.rtt_ms = v.get(v.len() / 2).map(|d| d.as_secs_f64() * 1000.0);
        }
        o
    }
}

impl Call {
    /// The selected candidate pair's types (local, remote), read through a sender's or a
    /// receiver's DTLS transport (a call has no SCTP transport to ask); with `like_libwebrtc`
    /// named as Chromium's getStats names them (see `selected`).
    pub fn selected(&self, pc: &mut RTCPeerConnection, like_libwebrtc: bool) -> Option<(String, String)> {
        if let Some(s) = self.senders.first() {
            super::selected::selected_types(&pc.rtp_sender(s.id)?.transport()?.ice_transport(), like_libwebrtc)
        } else {
            let id = self.receivers.values().next()?.0;
            super::selected::selected_types(&pc.rtp_receiver(id)?.transport()?.ice_transport(), like_libwebrtc)
        }
    }
}

/// RTT samples an [`RtcpTap`] measured, shared with its call.
pub type RttSamples = std::sync::Arc<std::sync::Mutex<Vec<Duration>>>;

/// An interceptor at the wire end of the chain that (1) lets PLIs and NACKs through to the
/// application — `rtc`'s chain ends inbound RTCP at its terminus unless an interceptor marks a
/// packet `DeliverToApplication`, and a virtual sender needs PLIs to send a key frame — and
/// (2) measures the RTT as RFC 3550 §6.4.1 does: each Sender Report that leaves is remembered by
/// the middle 32 bits of its NTP time, and a reception report that comes back naming it (LSR)
/// gives RTT = arrival − departure − DLSR. Instants only: no wall clock.
#[derive(Default)]
pub struct RtcpTap {
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    /// Sender Reports sent: (LSR, when), the last 64.
    sent: std::collections::VecDeque<(u32, Instant)>,
    rtts: RttSamples,
}

impl RtcpTap {
    pub fn new(rtts: RttSamples) -> Self {
        Self { rtts, ..Self::default() }
    }

    fn on_reports(&mut self, now: Instant, reports: &[rtc::rtcp::reception_report::ReceptionReport]) {
        for r in reports.iter().filter(|r| r.last_sender_report != 0) {
            let Some(&(_, at)) = self.sent.iter().find(|(lsr, _)| *lsr == r.last_sender_report) else { continue };
            // DLSR is in units of 1/65,536 s.
            let held = Duration::from_micros(u64::from(r.delay) * 1_000_000 / 65_536);
            if let Some(rtt) = now.saturating_duration_since(at).checked_sub(held)
                && let Ok(mut v) = self.rtts.lock()
                && v.len() < 10_000
            {
                v.push(rtt);
            }
        }
    }
}

impl std::fmt::Debug for RtcpTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcpTap").field("read", &self.read.len()).field("sent", &self.sent.len()).finish()
    }
}

/// Whether an RTCP compound carries feedback the application acts on (PLI or NACK).
fn is_feedback(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    packets.iter().any(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<TransportLayerNack>())
}

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()> for RtcpTap {
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        use rtc::rtcp::{receiver_report::ReceiverReport, sender_report::SenderReport};
        if let rtc::interceptor::Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(rr) = p.as_any().downcast_ref::<ReceiverReport>() {
                    self.on_reports(msg.now, &rr.reports);
                } else if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                    self.on_reports(msg.now, &sr.reports);
                }
            }
            if is_feedback(packets) {
                msg.message = msg.message.with(rtc::interceptor::Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        if let rtc::interceptor::Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(sr) = p.as_any().downcast_ref::<rtc::rtcp::sender_report::SenderReport>() {
                    if self.sent.len() == 64 {
                        self.sent.pop_front();
                    }
                    self.sent.push_back(((sr.ntp_time >> 16) as u32, msg.now));
                }
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}
