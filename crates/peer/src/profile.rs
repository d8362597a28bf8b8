//! Stack profiles: whose timers a virtual peer keeps. The `rtc` stack's defaults describe
//! webrtc-rs, not the browsers users have (`../shared/research/browser-timing.md`: a DataConnection
//! opens 2.5–16× slower than Chromium's). A [`Profile`] names a browser; its [`StackTimers`] are
//! every timer and behaviour the profile sets, each with the browser source it comes from.
//!
//! What the `rtc` crate's public `SettingEngineBuilder` can set is set there (check pacing, the
//! acceptance waits). What it could not is set through settings the vendored `rtc` and
//! `rtc-dtls` add (`patches/*/PEERSTORM.md`): no HelloVerifyRequest, DTLS retransmission timers
//! like libwebrtc's, an early ClientHello kept, False Start (DTLS 1.3's round trips, which two
//! Chromiums negotiate), the channel's `open` when the browser fires it; through the vendored
//! `rtc-ice`, nomination on the first check and early checks answered; and the browser's own time
//! to make an offer and an answer, measured in the lab; through the vendored `rtc-sctp`, dcsctp's
//! SCTP retransmission timers.

use std::time::Duration;

/// Whose timers a virtual peer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Chromium's libwebrtc.
    #[default]
    Chrome,
    /// Firefox (nICEr): checks paced every 20 ms.
    Firefox,
    /// The `rtc` stack's own defaults (webrtc-rs 0.21.1): what peerstorm measured before
    /// profiles existed, kept so old baselines stay reproducible and stacks can be compared.
    Rtc,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Chrome, Profile::Firefox, Profile::Rtc];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Chrome => "chrome",
            Profile::Firefox => "firefox",
            Profile::Rtc => "rtc",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Every timer the profile sets.
    pub fn timers(self) -> StackTimers {
        match self {
            Profile::Chrome => StackTimers {
                // libwebrtc p2p/base/p2p_constants.cc: WEAK_PING_INTERVAL = 48 ms, the pace of
                // checks while no pair is writable. The ping loop reposts itself 48 ms after it
                // runs and waits for the metronome (`metronome`): its first check leaves when
                // checks start, the second 48–62.5 ms later at a tick, the rest 4 ticks =
                // 62.5 ms apart. Measured in the lab: Chromium 156's checks leave 61–65 ms apart
                // (`[lab] pcap`, docs/calibration.md).
                check_interval: Duration::from_millis(48),
                // A pair is unwritable after CONNECTION_WRITE_CONNECT_TIMEOUT = 5 s and
                // CONNECTION_WRITE_CONNECT_FAILURES = 5 missed pings (connection.cc): 5 s of
                // checks at 62.5 ms.
                max_binding_requests: 80,
                // basic_ice_controller.cc `SelectConnectionToPing`: one connection per ping
                // interval, a triggered check first, then unpinged connections, least recently
                // pinged, in sorted (priority) order.
                paced_checks: true,
                // libwebrtc accepts any pair the moment its check succeeds: no waits by type.
                host_wait: Duration::ZERO,
                srflx_wait: Duration::ZERO,
                prflx_wait: Duration::ZERO,
                relay_wait: Duration::ZERO,
                dtls: Dtls {
                    // BoringSSL as Chromium configures it sends no HelloVerifyRequest.
                    skip_hello_verify: true,
                    // webrtc/rtc_base/openssl_stream_adapter: 50 ms initial timeout, doubled by
                    // BoringSSL on each retransmission; p2p/dtls/dtls_transport.cc
                    // `ConfigureHandshakeTimeout`: 2 × the ICE RTT, clamped to 50..3,000 ms.
                    initial_retransmit: Some(Duration::from_millis(50)),
                    backoff: true,
                    from_rtt: true,
                    // dtls_transport.cc `cached_client_hello_`.
                    keep_early_client_hello: true,
                    // With a DTLS 1.2 peer (the `rtc` profile), rtc-dtls's False Start
                    // (RFC 7918) gives the client DTLS 1.3's timing.
                    false_start: true,
                    // BoringSSL in Chromium offers DTLS 1.3 (RFC 9147) and two Chromiums
                    // negotiate it: its client sends SCTP's INIT with its Finished, one round
                    // trip after the ClientHello. A Chromium client facing a DTLS 1.2 server
                    // waits a round trip more for the server's Finished.
                    dtls13: true,
                },
                // Chromium's SctpDataChannel fires `open` at the opener once OPEN is sent on a
                // writable association, not on DATA_CHANNEL_ACK.
                open_before_ack: true,
                // libwebrtc's controlling agent sends USE-CANDIDATE from the first check and its
                // controlled agent answers a nominating check at once (p2p/base/connection.cc).
                aggressive_nomination: true,
                // libwebrtc answers a check whose remote ufrag it does not know yet
                // (P2PTransportChannel::OnUnknownAddress), so the answerer's first checks
                // succeed before the answer reaches the offerer.
                answer_early_checks: true,
                // Chromium's own time to make a description, read from a settled browser's page
                // events in the lab (`peerstorm calibrate`, the 0 ms RTT cells, nine pairs
                // each): its OFFER frame leaves a median 5.5-6.5 ms after PeerJS's OPEN, where a
                // virtual offerer's leaves 1.1 ms after `describe_offer`; its ANSWER reaches the
                // offerer 7.7-10.9 ms after the OFFER left, where a virtual answerer's arrives
                // 2.5 ms after `describe_answer` (the broker's two hops), and its first
                // candidate comes 6-9 ms after the offer arrives. Time, not CPU. A browser
                // launched a moment before takes about twice that: 21 and 15 ms were fitted to
                // such browsers before the calibration's pages waited to settle.
                describe_offer: Duration::from_millis(5),
                describe_answer: Duration::from_millis(7),
                // From a CANDIDATE or ANSWER frame's arrival to the TURN CreatePermission it
                // causes: 3.7 and 4.0 ms for CANDIDATEs, 3.1 and 8.2 ms for vanilla ANSWERs
                // (PeerJS's handler, addIceCandidate or setRemoteDescription, the network
                // thread), in the lab's pcap of Chromium pairs on the relay path at 0 ms RTT.
                // Time, not CPU. It decides a race that the stack's own instant would lose:
                // the answerer's first check through the relay reaches the offerer's
                // allocation before its permission does, is dropped, and is sent again a
                // check tick later (Chromium opens ~60 ms after ICE there, and so do virtual
                // peers in the lab).
                apply_remote: Duration::from_millis(3),
                // Those times spread (3.1-8.2 ms above; PeerJS's handler runs when the page's
                // event loop gets to it): each arrival takes `apply_remote` plus a share of
                // this drawn from the connection's seed. It decides the same race when both
                // relays' candidates are found at one metronome tick, as they are in about a
                // third of Chromium's relay pairs at 0 ms RTT: one side applies the other's
                // candidate first, its check reaches an allocation with no permission yet and
                // is dropped, and the pair connects a check loop later (Chromium's opened at
                // 130-149 ms in every such pair). With one fixed time the two sides apply at
                // the same instant, the permissions win every tie, and the pair opens ~60 ms
                // sooner than Chromium's.
                apply_remote_spread: Duration::from_millis(2),
                // At 60 and 200 ms RTT Chromium's ICE → DTLS connected and DTLS connected → open
                // each took 4.3-5.7 ms longer than one RTT (nine pairs per cell, host, srflx and
                // relay, docs/calibration.md of 2026-12-04), where the simulated peers' took the
                // RTT exactly: each is one round trip whose critical path acts on two or three
                // datagrams (the DTLS server's ClientHello, the flight back and the Finished;
                // SCTP's INIT-ACK and COOKIE-ECHO), about 2-2.5 ms each on a machine whose
                // Chromium took 13.6 ms to make an offer, 2.7 × `describe_offer`: 0.9 ms at
                // scale 1. With it at that scale the simulator met every open, ICE and DTLS goal
                // against that run's Chromium figures.
                // Time, not CPU: the network thread's hops, DTLS's cryptography, dcsctp. STUN
                // checks are not charged: Chromium's answer → ICE connected at 60 ms RTT is
                // within 3 ms of the virtual peers' (HMAC-SHA1 is cheap), and charging them too
                // put the simulated ICE at host 0 ms vanilla 20 ms after Chromium's.
                setup_packet: Duration::from_micros(900),
                sctp: Sctp::DCSCTP,
                // p2p/base/port_allocator.h kMinimumStepDelay = 50 ms, which PeerConnection sets;
                // p2p/client/basic_port_allocator.cc: phases UDP, RELAY, TCP one step apart. Each
                // step is a delayed task on the metronome, so after the first the steps run at
                // the same ticks as the checks. In the lab's pcap (vanilla, relay, 0 ms RTT)
                // Chromium's answerer sends its ANSWER ~1 ms after one of its checks every time,
                // so the offerer's permission always misses that check and ICE completes a tick
                // later; with 50 ms steps off the metronome the virtual answer left 12.5 ms
                // before a tick and the next check found the permission in place (vanilla open
                // 0.73× Chromium's).
                gather_step: Duration::from_millis(50),
                // Chromium runs WebRTC's low-precision delayed tasks (the ping loop, the port
                // allocator's steps) at the first tick of a 64 Hz metronome at or after they are
                // due (third_party/webrtc_overrides/metronome_source.cc: kMetronomeTick =
                // base::Hertz(64), phase base::TimeTicks(), the machine's monotonic clock's
                // zero; webrtc_task_queue.cc and thread_wrapper.cc `PostDelayedTask` snap every
                // task that is not high precision). Where a tick falls relative to a pair's
                // network events is random from pair to pair: Chromium's ICE at srflx, 60 ms
                // RTT spread 272–364 ms over nine pairs in the calibration where the virtual
                // peers', ticking from their own start, took 289–290 every time.
                metronome: Some(Duration::from_micros(15_625)),
                // p2p/base/p2p_transport_channel.cc `MaybeStopPortAllocatorSessions` once a
                // connection is writable (continual gathering off): an answerer whose early checks
                // succeed sends its vanilla answer without waiting for its TURN allocation.
                stop_gathering_when_writable: true,
                // p2p/base/turn_port.cc: `CreateConnection` makes a `TurnEntry` for the remote
                // candidate, which sends CreatePermission at once (the lab's pcap shows
                // Chromium's relay asking for the peer's host and srflx addresses before any
                // check goes through it).
                eager_permissions: true,
                // p2p/base/turn_port.cc `TurnEntry::Send`: data to a remote candidate leaves (as a
                // Send indication) as soon as the permission has been asked for, answered or not;
                // the server handles the CreatePermission first. Waiting for the answer cost the
                // virtual peers' relayed checks a round trip to the TURN server: their ICE through
                // a relay came 1.1–1.2 RTT after Chromium's in the calibration (60 and 200 ms).
                send_before_permission: true,
                // p2p/base/connection.cc `MaybeUpdateLocalCandidate`,
                // `MaybeUpdatePeerReflexiveCandidate`: in the calibration's NAT matrix Chromium
                // reported full-cone ↔ full-cone as srflx/srflx where the stack said host/prflx.
                pair_types_like_libwebrtc: true,
            },
            Profile::Firefox => StackTimers {
                // nICEr: Ta = 20 ms between checks (RFC 8445 §14.2's default pacing).
                check_interval: Duration::from_millis(20),
                // RFC 8445's Rc = 7 retransmissions with RTO doubling reach ~39.5 s; nICEr gives
                // a pair up after its STUN transaction times out (~5 s in practice): 250 × 20 ms.
                max_binding_requests: 250,
                // nICEr paces one check per Ta, triggered checks first (RFC 8445 §6.1.4.2).
                paced_checks: true,
                host_wait: Duration::ZERO,
                srflx_wait: Duration::ZERO,
                prflx_wait: Duration::ZERO,
                relay_wait: Duration::ZERO,
                // Firefox's handshakes (NSS, dcsctp since 2024) are not measured here: the
                // `chrome` profile's are the better guess than the `rtc` stack's.
                dtls: Profile::Chrome.timers().dtls,
                open_before_ack: true,
                // Not measured: RFC 8445's regular nomination.
                aggressive_nomination: false,
                answer_early_checks: false,
                // Not measured: Chromium's, the better guess than none.
                describe_offer: Profile::Chrome.timers().describe_offer,
                describe_answer: Profile::Chrome.timers().describe_answer,
                apply_remote: Profile::Chrome.timers().apply_remote,
                apply_remote_spread: Profile::Chrome.timers().apply_remote_spread,
                setup_packet: Profile::Chrome.timers().setup_packet,
                // Firefox has used dcsctp since 2024 (dom/media/webrtc/.../DataChannelDcSctp),
                // with Chromium's options.
                sctp: Sctp::DCSCTP,
                // Firefox's nICEr gathers differently; not measured.
                gather_step: Duration::ZERO,
                // Firefox's timers are not measured here.
                metronome: None,
                stop_gathering_when_writable: false,
                // Not measured.
                eager_permissions: false,
                send_before_permission: false,
                // nICEr's names are not measured: the stack's own.
                pair_types_like_libwebrtc: false,
            },
            Profile::Rtc => StackTimers {
                // rtc-ice 0.21.1 `agent_config.rs` defaults.
                check_interval: Duration::from_millis(200),
                max_binding_requests: 7,
                // rtc-ice 0.21.1 checks every pair each tick, and at once on a new candidate.
                paced_checks: false,
                host_wait: Duration::ZERO,
                srflx_wait: Duration::from_millis(500),
                prflx_wait: Duration::from_millis(1000),
                relay_wait: Duration::from_millis(2000),
                // rtc-dtls 0.21.1: a HelloVerifyRequest, a fixed 1 s timer, early records dropped.
                dtls: Dtls::default(),
                // rtc 0.21.1 fires `open` on DATA_CHANNEL_ACK.
                open_before_ack: false,
                // rtc-ice 0.21.1 nominates with a second check after one has succeeded.
                aggressive_nomination: false,
                // rtc-ice 0.21.1 drops a check that arrives before the remote credentials.
                answer_early_checks: false,
                // rtc-sctp 0.21.1: RTO 1 s initial and minimum, 60 s maximum.
                sctp: Sctp::RTC,
                // The `rtc` stack makes a description at once.
                describe_offer: Duration::ZERO,
                describe_answer: Duration::ZERO,
                apply_remote: Duration::ZERO,
                apply_remote_spread: Duration::ZERO,
                setup_packet: Duration::ZERO,
                gather_step: Duration::ZERO,
                // The `rtc` stack runs each timer when it is due.
                metronome: None,
                stop_gathering_when_writable: false,
                // rtc 0.21.1 asks for a permission when it first sends to a peer, and holds the
                // data until the permission is granted.
                eager_permissions: false,
                send_before_permission: false,
                // The stack's own names for a pair's candidates.
                pair_types_like_libwebrtc: false,
            },
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much slower than the profile's reference machine the browser modelled runs: every time
/// a profile charges for the browser's own work (`describe_offer`, `describe_answer`,
/// `apply_remote` and its spread, `setup_packet`) is multiplied by it; the network's timers
/// are not. 1 is the machine the `chrome` profile's times were read on (its Chromium made an
/// offer 5 ms after PeerJS's OPEN); `peerstorm calibrate` fits it to the machine's own Chromium.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
#[serde(transparent)]
pub struct CpuScale(f64);

impl CpuScale {
    /// The profile's own times.
    pub const ONE: CpuScale = CpuScale(1.0);
    /// The range accepted: a browser from four times faster to ten times slower.
    pub const MIN: f64 = 0.25;
    pub const MAX: f64 = 10.0;

    /// A scale in `MIN..=MAX`.
    pub fn new(x: f64) -> Result<CpuScale, String> {
        if x.is_finite() && (Self::MIN..=Self::MAX).contains(&x) {
            Ok(CpuScale(x))
        } else {
            Err(format!("cpu_scale {x}: expected a number from {} to {}", Self::MIN, Self::MAX))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// `d` on the machine modelled, to the microsecond.
    pub fn apply(self, d: Duration) -> Duration {
        Duration::from_micros((d.as_micros() as f64 * self.0).round() as u64)
    }
}

impl Default for CpuScale {
    fn default() -> Self {
        CpuScale::ONE
    }
}

impl std::str::FromStr for CpuScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CpuScale::new(s.trim().parse().map_err(|_| format!("cpu_scale {s:?}: expected a number, e.g. 2.5"))?)
    }
}

impl<'de> serde::Deserialize<'de> for CpuScale {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CpuScale::new(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for CpuScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl StackTimers {
    /// These timers on a machine `scale` times slower: the browser's own work takes longer,
    /// the network's timers do not change.
    pub fn scaled(self, scale: CpuScale) -> StackTimers {
        StackTimers {
            describe_offer: scale.apply(self.describe_offer),
            describe_answer: scale.apply(self.describe_answer),
            apply_remote: scale.apply(self.apply_remote),
            apply_remote_spread: scale.apply(self.apply_remote_spread),
            setup_packet: scale.apply(self.setup_packet),
            ..self
        }
    }
}

/// The timers and behaviours a profile sets on the `rtc` stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackTimers {
    /// Between connectivity-check rounds while no pair is selected (the ICE agent's tick).
    pub check_interval: Duration,
    /// Checks a pair gets before it is given up.
    pub max_binding_requests: u16,
    /// One check per `check_interval` on the pair libwebrtc would pick (triggered checks wait
    /// for the next tick); otherwise every pair each tick and on every new candidate.
    pub paced_checks: bool,
    /// How long after the agent starts a succeeded pair of each type may be selected.
    pub host_wait: Duration,
    pub srflx_wait: Duration,
    pub prflx_wait: Duration,
    pub relay_wait: Duration,
    /// How the DTLS handshake is timed.
    pub dtls: Dtls,
    /// The opener's `open` fires once DATA_CHANNEL_OPEN is queued on an established
    /// association (ordered channels), not on the peer's DATA_CHANNEL_ACK.
    pub open_before_ack: bool,
    /// Nominate with the first check (controlling) and answer a nominating check at once
    /// (controlled), as libwebrtc does; otherwise rtc-ice's regular nomination, a round trip later.
    pub aggressive_nomination: bool,
    /// Answer a check that arrives before the remote description, if it verifies.
    pub answer_early_checks: bool,
    /// The SCTP association's retransmission timers.
    pub sctp: Sctp,
    /// The browser's own time from `connect()` to its OFFER leaving (createOffer,
    /// setLocalDescription; gathering starts at its end).
    pub describe_offer: Duration,
    /// The browser's own time from an OFFER's arrival to its ANSWER leaving
    /// (setRemoteDescription, createAnswer, setLocalDescription; checks start at its end).
    pub describe_answer: Duration,
    /// The browser's own time from an ANSWER's or CANDIDATE's arrival to its stack having it
    /// (PeerJS's handler, setRemoteDescription or addIceCandidate).
    pub apply_remote: Duration,
    /// On top of `apply_remote`, a share of this drawn per arrival from the connection's seed
    /// (arrivals still take effect in the order they came).
    pub apply_remote_spread: Duration,
    /// The browser's own time to act on a datagram of the connection's setup until its data
    /// channel opens (a call's: until DTLS is connected): each DTLS or TURN ChannelData datagram
    /// reaches the stack this long after it arrived, in arrival order; STUN (checks, TURN's
    /// answers and Data indications) does not wait, nor does anything after setup (throughput
    /// is the network's).
    pub setup_packet: Duration,
    /// Gathering in libwebrtc's port allocator phases, this far apart: host and srflx at once,
    /// the relay's Allocate one step in, and gathering complete no sooner than two steps in
    /// (zero: everything at once, gathering complete when the last source answers).
    pub gather_step: Duration,
    /// The period of a metronome whose ticks the delayed tasks above wait for (the ICE check
    /// loop, the gathering steps): each runs at the first tick at or after it is due. The
    /// ticks fall where the peer's machine's clock puts them (`PeerConfig::metronome_tick`).
    /// `None`: each runs when due.
    pub metronome: Option<Duration>,
    /// Gathering stops (and completes) once a check of ours is answered; a vanilla description
    /// waiting for it leaves then.
    pub stop_gathering_when_writable: bool,
    /// Each relay asks its TURN server for a permission to every remote candidate as soon as
    /// it is known, not when it first sends to it.
    pub eager_permissions: bool,
    /// A relay sends to a remote candidate as soon as it has asked for its permission, not once
    /// the server has granted it.
    pub send_before_permission: bool,
    /// The selected pair's types are reported as libwebrtc's getStats names them: the local
    /// side by the address the peer saw (a NATed host candidate reports as srflx or prflx), a
    /// peer-reflexive remote by the candidate signalled later at its address (`conn::selected`).
    pub pair_types_like_libwebrtc: bool,
}

/// How a profile times the DTLS handshake. The default is the `rtc` stack's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dtls {
    /// A server answers the first ClientHello directly (no cookie exchange): one round trip less.
    pub skip_hello_verify: bool,
    /// The first retransmission timer of a flight (`None`: rtc-dtls's 1 s).
    pub initial_retransmit: Option<Duration>,
    /// The timer doubles on each retransmission of a flight.
    pub backoff: bool,
    /// The timer starts at 2 × the ICE RTT (clamped to `initial_retransmit`..3 s) when known.
    pub from_rtt: bool,
    /// A ClientHello that arrives before ICE selects a pair is kept, not dropped.
    pub keep_early_client_hello: bool,
    /// A client sends application data with its Finished flight (DTLS 1.3's timing).
    pub false_start: bool,
    /// Offer DTLS 1.3 (the `dimpl` engine; DTLS 1.2 with a peer that offers nothing newer).
    pub dtls13: bool,
}

/// The SCTP association's retransmission timers (RFC 9260 §6.3, §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sctp {
    /// RTO before an RTT is measured (RTO.Initial).
    pub rto_initial: Duration,
    /// Bounds of the RTO computed from measured RTTs (RTO.Min, RTO.Max).
    pub rto_min: Duration,
    pub rto_max: Duration,
    /// The smallest RTTVAR the RTO is computed with (zero: none).
    pub min_rttvar: Duration,
    /// The first T1-init/T1-cookie timeout (`None`: the current RTO).
    pub t1: Option<Duration>,
    /// No timer backs off beyond this (`None`: RTO.Max).
    pub max_backoff: Option<Duration>,
    /// The association never gives up retransmitting INIT, COOKIE-ECHO or DATA (the
    /// connection's own timeouts end it); otherwise rtc-sctp's limits (8 INITs, 5 DATA).
    pub unlimited_retransmits: bool,
}

impl Sctp {
    /// dcsctp as Chromium's `DcSctpTransport` configures it (net/dcsctp/public/dcsctp_options.h:
    /// rto_initial 500 ms, rto_min 400 ms, rto_max 60 s, t1_init/t1_cookie 1 s,
    /// min_rtt_variance 220 ms which retransmission_timeout.cc divides by 8;
    /// media/sctp/dcsctp_transport.cc: max_timer_backoff_duration 3 s, max_retransmissions and
    /// max_init_retransmits unset).
    pub const DCSCTP: Sctp = Sctp {
        rto_initial: Duration::from_millis(500),
        rto_min: Duration::from_millis(400),
        rto_max: Duration::from_secs(60),
        min_rttvar: Duration::from_micros(27_500),
        t1: Some(Duration::from_secs(1)),
        max_backoff: Some(Duration::from_secs(3)),
        unlimited_retransmits: true,
    };

    /// rtc-sctp 0.21.1's own (association/timer.rs).
    pub const RTC: Sctp = Sctp {
        rto_initial: Duration::from_secs(1),
        rto_min: Duration::from_secs(1),
        rto_max: Duration::from_secs(60),
        min_rttvar: Duration::ZERO,
        t1: None,
        max_backoff: None,
        unlimited_retransmits: false,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_rtc_keeps_the_stacks_defaults() {
        for p in Profile::ALL {
            assert_eq!(Profile::parse(p.as_str()), Some(p));
        }
        assert_eq!(Profile::default(), Profile::Chrome);
        let rtc = Profile::Rtc.timers();
        assert_eq!((rtc.check_interval, rtc.max_binding_requests), (Duration::from_millis(200), 7));
        assert_eq!(
            (rtc.dtls, rtc.open_before_ack, rtc.aggressive_nomination, rtc.answer_early_checks),
            (Dtls::default(), false, false, false),
            "rtc keeps its handshakes"
        );
        let chrome = Profile::Chrome.timers();
        // A pair is tried about as long as Chromium tries it before calling it failed; the check
        // loop runs every 62.5 ms once on the metronome's ticks.
        let period = chrome.metronome.expect("chrome's delayed tasks wait for the metronome");
        let ticks = chrome.check_interval.as_nanos().div_ceil(period.as_nanos());
        assert_eq!(period * ticks as u32, Duration::from_micros(62_500));
        let tried = period * ticks as u32 * u32::from(chrome.max_binding_requests);
        assert!((Duration::from_secs(4)..=Duration::from_secs(6)).contains(&tried), "{tried:?}");
    }

    #[test]
    fn a_cpu_scale_stretches_the_browsers_work_and_not_the_network() {
        let chrome = Profile::Chrome.timers();
        let slow = chrome.scaled(CpuScale::new(2.5).unwrap());
        assert_eq!(slow.describe_offer, chrome.describe_offer * 5 / 2);
        assert_eq!(slow.describe_answer, chrome.describe_answer * 5 / 2);
        assert_eq!(slow.apply_remote, chrome.apply_remote * 5 / 2);
        assert_eq!(slow.apply_remote_spread, chrome.apply_remote_spread * 5 / 2);
        assert_eq!(slow.setup_packet, Duration::from_micros(2250));
        // Every other timer is the network's or the protocol's.
        let back = StackTimers {
            describe_offer: chrome.describe_offer,
            describe_answer: chrome.describe_answer,
            apply_remote: chrome.apply_remote,
            apply_remote_spread: chrome.apply_remote_spread,
            setup_packet: chrome.setup_packet,
            ..slow
        };
        assert_eq!(back, chrome);
        assert_eq!(chrome.scaled(CpuScale::ONE), chrome);
        assert_eq!(
            Profile::Rtc.timers().scaled(CpuScale::new(4.0).unwrap()),
            Profile::Rtc.timers(),
            "rtc charges nothing"
        );
    }

    #[test]
    fn a_cpu_scale_outside_its_range_is_refused_with_the_range() {
        for bad in ["0", "-1", "NaN", "inf", "11", "0.2", "fast"] {
            let e = bad.parse::<CpuScale>().unwrap_err();
            assert!(e.contains("cpu_scale"), "{bad}: {e}");
        }
        assert_eq!("2.7".parse::<CpuScale>().unwrap().get(), 2.7);
        let e = serde_json::from_str::<CpuScale>("40").unwrap_err();
        assert!(e.to_string().contains("from 0.25 to 10"), "{e}");
    }
}
