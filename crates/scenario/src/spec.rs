//! Scenario files (TOML), typed. Unknown keys are errors that name the key and its line; a
//! value of the wrong kind (an unknown preset, pattern, serialization or TURN target) is refused
//! while parsing, with its line; [`Scenario::check`] holds every rule that spans several keys.
//! `scenarios/README.md` is the schema.

use crate::serde_time;
use crate::sweep::{Point, Sweep};
use crate::targets::{BrokerTarget, StunTarget, TurnTarget};
use peerstorm_model::peerjs::payload::Serialization;
use peerstorm_netsim::Preset;
use peerstorm_peer::{CpuScale, IceMode, Profile, TurnTransport};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub servers: Servers,
    pub peers: Peers,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The live runner's load model.
    #[serde(default)]
    pub load: Option<Load>,
    #[serde(default)]
    pub signaling: Signaling,
    /// `mode = "lab"`: what runs in the lab's hosts.
    #[serde(default)]
    pub lab: Option<LabSpec>,
    /// Metric path → condition (`"setup.dc_open.p95" = "< 800ms"`), checked by the report
    /// layer; dotted keys written unquoted are nested tables, flattened back into paths.
    #[serde(default)]
    pub thresholds: toml::Table,
    /// The scenario once per point of these inputs (the simulator).
    #[serde(default)]
    pub sweep: Sweep,
}

fn default_seed() -> u64 {
    1
}

/// Which driver runs the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The simulator: virtual time, the simulated network, deterministic by seed.
    #[default]
    Sim,
    /// Real sockets on this machine against real servers.
    Live,
    /// Real programs (Chromium, `peerstorm peer`, any command) in network namespaces behind
    /// the simulated network, on the wall clock (`peerstorm lab SCENARIO`; needs root).
    Lab,
}

impl Mode {
    /// As scenarios spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sim => "sim",
            Mode::Live => "live",
            Mode::Lab => "lab",
        }
    }
}

/// `[lab]`: the programs a lab scenario's pairs run, and how many pairs run at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// What each pair's offerer runs.
    #[serde(default)]
    pub offerer: HostKind,
    /// What each pair's answerer runs.
    #[serde(default)]
    pub answerer: HostKind,
    /// For `kind = "command"`: the program line, run with `sh -c` in the host's namespace, with
    /// `{id}`, `{connect}` (the answerer's ID for an offerer, empty for an answerer), `{broker}`
    /// (HOST:PORT), `{stun}`, `{turn}` (HOST:PORT, empty without), `{turn_user}`, `{bind}` (the
    /// host's address), `{messages}`, `{message_bytes}`, `{timeout_s}` and `{ice}` (`trickle` or
    /// `vanilla`) replaced. It prints a first line once it can be called, then one JSON line as
    /// `peerstorm peer` does (its milestones); without one its exit status says whether it worked.
    #[serde(default)]
    pub command: Option<String>,
    /// Pairs running at once (each Chromium host is a browser: about one pair per core).
    #[serde(default = "one")]
    pub concurrency: usize,
    /// Record every packet the hosts send and get into `lab.pcap` in the results.
    #[serde(default = "yes")]
    pub pcap: bool,
}

fn one() -> usize {
    1
}

/// What a lab host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// Headless Chromium (Debian's) running peerjs@1.5.5 in a page (tools/js/lab-peer.mjs),
    /// its milestones from RTCPeerConnection events and getStats.
    #[default]
    Chromium,
    /// `peerstorm peer`: the virtual peer (the rtc stack) on the host's address.
    Virtual,
    /// `[lab] command`.
    Command,
}

impl HostKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Chromium => "chromium",
            HostKind::Virtual => "virtual",
            HostKind::Command => "command",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Round-trip time between two peers (each access link carries a quarter of it each way).
    #[serde(default = "default_rtt", rename = "rtt_ms", deserialize_with = "serde_time::millis")]
    pub rtt: Duration,
    /// Random loss on every access link, per direction.
    #[serde(default)]
    pub loss: f64,
    /// Access-link bandwidth per direction, kbit/s (a drop-tail queue of 256 KiB); none: unlimited.
    #[serde(default)]
    pub bandwidth_kbps: Option<u64>,
    /// Extra one-way delay per access link, uniform in 0..=jitter (packets keep their order).
    #[serde(default, rename = "jitter_ms", deserialize_with = "serde_time::millis")]
    pub jitter: Duration,
    /// NAT presets by share of peers.
    #[serde(default)]
    pub nat_mix: NatMix,
    #[serde(default)]
    pub pairing: Pairing,
    /// Run the scenario once per RTT here (each value sets `rtt` and the broker RTT), for
    /// trickle-vs-vanilla across distances; empty runs `rtt` once. The same as `[sweep] rtt_ms`.
    #[serde(default, rename = "rtt_sweep_ms", deserialize_with = "serde_time::millis_list")]
    pub rtt_sweep: Vec<Duration>,
    /// Set by a sweep point: every offerer behind the first preset, every answerer behind the
    /// second (instead of `nat_mix`).
    #[serde(skip)]
    pub nat_pair: Option<crate::sweep::NatPair>,
    /// Every NAT layer hairpins (RFC 4787 §6, REQ-9); `false` turns it off everywhere.
    #[serde(default = "yes")]
    pub hairpinning: bool,
    /// All `cgnat` peers sit behind one carrier NAT (198.51.100.100), so two of them meet
    /// only by hairpinning through it (or a relay).
    #[serde(default)]
    pub shared_cgnat: bool,
}

fn yes() -> bool {
    true
}

fn default_rtt() -> Duration {
    Duration::from_millis(40)
}

impl Default for Network {
    fn default() -> Self {
        Self {
            rtt: default_rtt(),
            loss: 0.0,
            bandwidth_kbps: None,
            jitter: Duration::ZERO,
            nat_mix: NatMix::default(),
            pairing: Pairing::default(),
            rtt_sweep: Vec::new(),
            nat_pair: None,
            hairpinning: true,
            shared_cgnat: false,
        }
    }
}

/// NAT presets with their shares, in the order of the presets' names (the order the seeded
/// assignment walks, so it must not change).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "BTreeMap<String, f64>")]
pub struct NatMix(pub Vec<(Preset, f64)>);

impl Default for NatMix {
    fn default() -> Self {
        NatMix(vec![(Preset::Open, 1.0)])
    }
}

impl TryFrom<BTreeMap<String, f64>> for NatMix {
    type Error = String;

    fn try_from(m: BTreeMap<String, f64>) -> Result<Self, String> {
        let mut out = Vec::with_capacity(m.len());
        for (name, share) in m {
            let Some(p) = Preset::parse(&name) else {
                let known: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
                return Err(format!("network.nat_mix: unknown preset {name:?} (expected one of {})", known.join(", ")));
            };
            if !(share.is_finite() && share >= 0.0) {
                return Err(format!("network.nat_mix.{name} = {share}: expected a share of zero or more"));
            }
            out.push((p, share));
        }
        if out.iter().map(|(_, s)| s).sum::<f64>() <= 0.0 {
            return Err("network.nat_mix: the shares add up to zero".into());
        }
        Ok(NatMix(out))
    }
}

/// How presets are given to peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pairing {
    /// Each peer draws its preset by share (a seeded shuffle of exact counts).
    #[default]
    Mix,
    /// Pair after pair walks every (offerer, answerer) combination of the presets in `nat_mix`.
    Matrix,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Servers {
    #[serde(default = "embedded_broker")]
    pub broker: BrokerTarget,
    /// Round-trip time between a peer and the broker.
    #[serde(default = "default_rtt", rename = "broker_rtt_ms", deserialize_with = "serde_time::millis")]
    pub broker_rtt: Duration,
    #[serde(default = "embedded_stun")]
    pub stun: StunTarget,
    #[serde(default = "embedded_turn")]
    pub turn: TurnTarget,
    /// Extra time the STUN/TURN server takes before each of its own answers (what it relays,
    /// ICE checks between peers included, is not held): a slow srflx/relay server, the case
    /// trickle ICE is for.
    #[serde(default, rename = "answer_delay_ms", deserialize_with = "serde_time::millis")]
    pub answer_delay: Duration,
    /// Live: credentials for a `turn:` URI, `NAME:PASSWORD`.
    #[serde(default)]
    pub turn_user: Option<TurnUser>,
    #[serde(default)]
    pub turn_realm: Option<String>,
    /// The TURN REST API secret (coturn's `static-auth-secret`): each peer mints its own
    /// credential, username `EXPIRY:PEER-ID` and password base64(HMAC-SHA1(secret, username)),
    /// valid `turn_ttl_s` from when it joins, as a web app's backend hands them out. Instead of
    /// `turn_user`. In the simulator the embedded TURN server takes them (and refuses them once
    /// expired, Refreshes included).
    #[serde(default)]
    pub turn_secret: Option<String>,
    #[serde(default = "default_turn_ttl", rename = "turn_ttl_s", deserialize_with = "serde_time::secs")]
    pub turn_ttl: Duration,
    /// Simulator: the embedded TURN server's allocations per user (coturn's `user-quota`), 486
    /// beyond. With the one static credential every peer shares (as an app that ships one TURN
    /// credential), the server's whole capacity; with `turn_secret` each peer is its own user.
    /// None: unlimited.
    #[serde(default)]
    pub turn_user_quota: Option<usize>,
    /// Gather relayed candidates only (`iceTransportPolicy: "relay"`); needs `turn`.
    #[serde(default)]
    pub relay_only: bool,
    /// How peers reach the TURN server (in the simulator TCP goes to port 443, which a
    /// `udp-blocked` network lets through). A `turn:` URI may say `?transport=tcp` too.
    #[serde(default)]
    pub turn_transport: TurnTransport,
    /// Several transports at once (`["udp", "tcp", "tls"]`): a relayed candidate over each from
    /// the embedded TURN server, as a browser given a UDP, a TCP and a TLS TURN URL gathers one
    /// per URL. Empty: `turn_transport` alone. Simulator only for now.
    #[serde(default)]
    pub turn_transports: Vec<TurnTransport>,
    /// Live, full stack: more TURN URIs besides `turn` (`"turn:H:P?transport=tcp"`,
    /// `"turns:H:P"`), the same credentials: each peer gathers a relayed candidate from every
    /// one, as a browser given several iceServers URLs.
    #[serde(default)]
    pub turn_also: Vec<TurnTarget>,
    /// Live, `turns:`: a PEM file of extra trusted roots for the TURN server's certificate.
    #[serde(default)]
    pub turn_ca: Option<std::path::PathBuf>,
    /// Live, `turns:`: do not check the TURN server's certificate.
    #[serde(default)]
    pub turn_insecure: bool,
}

/// A day: what coturn's documentation and most deployments hand out.
fn default_turn_ttl() -> Duration {
    Duration::from_secs(86_400)
}

fn embedded_broker() -> BrokerTarget {
    BrokerTarget::Embedded
}

fn embedded_stun() -> StunTarget {
    StunTarget::Embedded
}

fn embedded_turn() -> TurnTarget {
    TurnTarget::Embedded
}

impl Default for Servers {
    fn default() -> Self {
        Self {
            broker: embedded_broker(),
            broker_rtt: default_rtt(),
            stun: embedded_stun(),
            turn: embedded_turn(),
            turn_user: None,
            turn_realm: None,
            turn_secret: None,
            turn_ttl: default_turn_ttl(),
            turn_user_quota: None,
            answer_delay: Duration::ZERO,
            relay_only: false,
            turn_transport: TurnTransport::Udp,
            turn_transports: Vec::new(),
            turn_also: Vec::new(),
            turn_ca: None,
            turn_insecure: false,
        }
    }
}

impl Servers {
    /// Every transport peers reach the TURN server over: `turn_transports`, or the one of
    /// [`Servers::turn_transport`].
    pub fn turn_transports(&self) -> Vec<TurnTransport> {
        if self.turn_transports.is_empty() {
            vec![self.turn_transport()]
        } else {
            let mut v = self.turn_transports.clone();
            v.dedup();
            v
        }
    }

    /// The TURN transport: TCP when `turn_transport` or a `turn:` URI's `?transport=` says so.
    pub fn turn_transport(&self) -> TurnTransport {
        match &self.turn {
            TurnTarget::Uri(u) if u.transport.is_some_and(TurnTransport::is_stream) => {
                u.transport.unwrap_or(TurnTransport::Tcp)
            }
            _ => self.turn_transport,
        }
    }
}

/// `NAME:PASSWORD` for a TURN server's long-term credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TurnUser {
    pub name: String,
    pub password: String,
}

impl TryFrom<String> for TurnUser {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            Some((n, p)) if !n.is_empty() => Ok(TurnUser { name: n.into(), password: p.into() }),
            _ => Err(format!("servers.turn_user = {s:?}: expected \"NAME:PASSWORD\"")),
        }
    }
}

/// The live runner's load (`[load]`), typed: the model with exactly the numbers it needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "LoadText")]
pub struct Load {
    pub model: LoadModel,
    pub stack: Stack,
    /// How long pairs keep starting (and churn goes on).
    pub duration: Duration,
}

/// How load is offered.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    /// Pairs start at `rate` per second for the duration, whatever the broker's speed: latency
    /// counts from each pair's intended start.
    Open { rate: f64 },
    /// `concurrency` pairs at a time, each starting when the previous one of its slot finished.
    Closed { concurrency: usize },
    /// Like open, the rate going linearly from `from` to `to` over the duration.
    Ramp { from: f64, to: f64 },
    /// `pairs` pairs join and stay; then held peers disconnect and rejoin at `rate` per second.
    Churn { pairs: usize, rate: f64 },
}

impl LoadModel {
    pub fn name(&self) -> &'static str {
        match self {
            LoadModel::Open { .. } => "open",
            LoadModel::Closed { .. } => "closed",
            LoadModel::Ramp { .. } => "ramp",
            LoadModel::Churn { .. } => "churn",
        }
    }
}

/// What a live run's peers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// PeerJS frames only: OFFER, CANDIDATEs, ANSWER, CANDIDATEs.
    #[default]
    Signaling,
    /// Virtual peers with the rtc stack on loopback UDP, the data-channel workload, TURN.
    Full,
}

/// `[load]` as written: a flat table whose numbers depend on the model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadText {
    #[serde(default = "default_model")]
    model: String,
    #[serde(default)]
    stack: Stack,
    #[serde(default)]
    rate_per_s: f64,
    #[serde(default)]
    rate_to_per_s: f64,
    #[serde(default)]
    concurrency: usize,
    #[serde(default)]
    pairs: usize,
    #[serde(default)]
    churn_per_s: f64,
    duration_s: f64,
}

fn default_model() -> String {
    "open".into()
}

impl TryFrom<LoadText> for Load {
    type Error = String;

    fn try_from(l: LoadText) -> Result<Self, String> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if !(pos(l.duration_s) && l.duration_s <= 24.0 * 3600.0) {
            return Err(format!("load.duration_s = {}: expected seconds above 0, at most a day", l.duration_s));
        }
        let model = match l.model.as_str() {
            "open" if pos(l.rate_per_s) => LoadModel::Open { rate: l.rate_per_s },
            "ramp" if pos(l.rate_per_s) && pos(l.rate_to_per_s) => {
                LoadModel::Ramp { from: l.rate_per_s, to: l.rate_to_per_s }
            }
            "closed" if l.concurrency > 0 => LoadModel::Closed { concurrency: l.concurrency },
            "churn" if l.pairs > 0 && pos(l.churn_per_s) => LoadModel::Churn { pairs: l.pairs, rate: l.churn_per_s },
            "open" => return Err("load.model = \"open\" needs rate_per_s > 0".into()),
            "ramp" => return Err("load.model = \"ramp\" needs rate_per_s and rate_to_per_s > 0".into()),
            "closed" => return Err("load.model = \"closed\" needs concurrency > 0".into()),
            "churn" => return Err("load.model = \"churn\" needs pairs > 0 and churn_per_s > 0".into()),
            m => return Err(format!("load.model {m:?}: expected open, closed, ramp or churn")),
        };
        Ok(Load { model, stack: l.stack, duration: Duration::from_secs_f64(l.duration_s) })
    }
}

/// The live signaling exchange (`[signaling]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signaling {
    /// CANDIDATE frames each side sends after its OFFER or ANSWER.
    #[serde(default = "two")]
    pub candidates: usize,
    /// How long each pair stays connected after its exchange, sending HEARTBEATs.
    #[serde(default, rename = "hold_s", deserialize_with = "serde_time::secs_f64")]
    pub hold: Duration,
    /// `GET /<key>/id` before joining, as PeerJS does when no ID is given.
    #[serde(default)]
    pub id_request: bool,
    /// The most one step (a join, a relay) may take before the pair fails.
    #[serde(default = "ten_s", rename = "step_timeout_s", deserialize_with = "serde_time::secs_f64")]
    pub step_timeout: Duration,
}

fn two() -> usize {
    2
}

fn ten_s() -> Duration {
    Duration::from_secs(10)
}

impl Default for Signaling {
    fn default() -> Self {
        Self { candidates: 2, hold: Duration::ZERO, id_request: false, step_timeout: ten_s() }
    }
}

/// Who connects to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Peer 2k opens a DataConnection to peer 2k+1.
    #[default]
    Pairs,
    /// Groups of `group_size`, every other member connecting to the group's hub.
    Star,
    /// Groups of `group_size` in a full mesh.
    Rooms,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Pairs => "pairs",
            Pattern::Star => "star",
            Pattern::Rooms => "rooms",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    pub count: usize,
    #[serde(default)]
    pub pattern: Pattern,
    /// Peers per star (the hub and its leaves) or room; 2 for pairs.
    #[serde(default)]
    pub group_size: Option<usize>,
    #[serde(default)]
    pub arrival: Arrival,
    /// `["trickle"]`, `["vanilla"]`, or both: an A/B on the same peers and seed.
    #[serde(default = "default_ice")]
    pub ice: Vec<IceMode>,
    /// Whose timers the virtual peers keep: `"chrome"` (libwebrtc's), `"firefox"`, or `"rtc"`
    /// (the stack's own defaults, as peerstorm measured before profiles).
    #[serde(default)]
    pub profile: Profile,
    /// How much slower than the profile's reference machine the browsers modelled run: the
    /// profile's times for the browser's own work (making and applying descriptions, acting on
    /// setup packets) are multiplied by it, the network's are not. 1 (default): the machine
    /// the `chrome` profile was read on; 2.5 for a browser on a slower or busier machine
    /// (`peerstorm calibrate` fits it to the machine's own Chromium). 0.25 to 10.
    #[serde(default)]
    pub cpu_scale: CpuScale,
    /// Simulator: how many independent worlds (cells) a run is split into, each with the groups
    /// `c, c + cells, ...` and its own broker and STUN/TURN server; `peerstorm run --jobs N`
    /// runs N cells at once, and the results never depend on N. Absent: one cell per 500
    /// groups, at most 16 (one when the peers share a link or a quota that cells would split:
    /// `network.bandwidth_kbps`, `network.shared_cgnat`, `servers.turn_user_quota`).
    #[serde(default)]
    pub cells: Option<usize>,
}

fn default_ice() -> Vec<IceMode> {
    vec![IceMode::Trickle]
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// Groups started per second; 0 or absent starts everyone at once.
    #[serde(default)]
    pub rate_per_s: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default)]
    pub datachannel: DataChannel,
    /// PeerJS media calls instead of DataConnections (`[workload.media]`).
    #[serde(default)]
    pub media: Option<Media>,
}

/// `[workload.media]`: each pair's offerer calls its partner (`peer.call(id, stream)`), which
/// answers with a stream of its own (`call.answer(stream)`); both send for `duration_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// `true` (Opus-shaped, 80-byte payloads: 32 kbit/s), `false`, or `{ payload_bytes = N }`.
    #[serde(default = "audio_on")]
    pub audio: Toggle<MediaAudio>,
    /// `true` (VP8-shaped, 1,500 kbit/s, 30 fps), `false`, or
    /// `{ bitrate_kbps, fps, keyframe_interval, keyframe_ratio }`.
    #[serde(default = "video_on")]
    pub video: Toggle<MediaVideo>,
    #[serde(default = "default_media_duration", rename = "duration_s", deserialize_with = "serde_time::secs_f64")]
    pub duration: Duration,
    /// A DataConnection between the same two peers alongside each call (the datachannel
    /// workload runs on it).
    #[serde(default)]
    pub datachannel: bool,
    /// PeerJS's call `metadata` (any TOML value; it travels as JSON in the OFFER).
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// `true`, `false` or the settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Toggle<T> {
    On(bool),
    With(T),
}

impl Media {
    pub fn sends_audio(&self) -> bool {
        self.audio.get().is_some()
    }

    pub fn sends_video(&self) -> bool {
        self.video.get().is_some()
    }

    /// The video bit rate, kbit/s; 0 without video.
    pub fn video_kbps(&self) -> u32 {
        self.video.get().map_or(0, |v| v.bitrate_kbps)
    }
}

impl<T: Clone + Default> Toggle<T> {
    fn get(&self) -> Option<T> {
        match self {
            Toggle::On(true) => Some(T::default()),
            Toggle::On(false) => None,
            Toggle::With(t) => Some(t.clone()),
        }
    }
}

fn audio_on() -> Toggle<MediaAudio> {
    Toggle::On(true)
}

fn video_on() -> Toggle<MediaVideo> {
    Toggle::On(true)
}

fn default_media_duration() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaAudio {
    #[serde(default = "default_audio_bytes")]
    pub payload_bytes: usize,
}

fn default_audio_bytes() -> usize {
    peerstorm_peer::media::AudioSpec::default().payload_bytes
}

impl Default for MediaAudio {
    fn default() -> Self {
        Self { payload_bytes: default_audio_bytes() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaVideo {
    #[serde(default = "default_video_kbps")]
    pub bitrate_kbps: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// A key frame every this many frames (and on PLI).
    #[serde(default = "default_key_interval")]
    pub keyframe_interval: u32,
    /// A key frame's size as a multiple of a delta frame's.
    #[serde(default = "default_key_ratio")]
    pub keyframe_ratio: u32,
}

fn default_video_kbps() -> u32 {
    peerstorm_peer::media::VideoSpec::default().bitrate_kbps
}
fn default_fps() -> u32 {
    peerstorm_peer::media::VideoSpec::default().fps
}
fn default_key_interval() -> u32 {
    peerstorm_peer::media::VideoSpec::default().keyframe_interval
}
fn default_key_ratio() -> u32 {
    peerstorm_peer::media::VideoSpec::default().keyframe_ratio
}

impl Default for MediaVideo {
    fn default() -> Self {
        Self {
            bitrate_kbps: default_video_kbps(),
            fps: default_fps(),
            keyframe_interval: default_key_interval(),
            keyframe_ratio: default_key_ratio(),
        }
    }
}

impl Workload {
    /// The virtual peers' workload: the data channel's, and the calls' media when
    /// `[workload.media]` is there (`epoch`: the clock every peer shares, for one-way delay).
    pub fn peer_workload(&self, epoch: Option<std::time::Instant>) -> peerstorm_peer::Workload {
        let mut w = self.datachannel.workload();
        w.media = self.media.as_ref().map(|m| peerstorm_peer::MediaWorkload {
            audio: m.audio.get().map(|a| peerstorm_peer::media::AudioSpec { payload_bytes: a.payload_bytes }),
            video: m.video.get().map(|v| peerstorm_peer::media::VideoSpec {
                bitrate_kbps: v.bitrate_kbps,
                fps: v.fps,
                keyframe_interval: v.keyframe_interval,
                keyframe_ratio: v.keyframe_ratio,
            }),
            duration: m.duration,
            with_data: m.datachannel,
            epoch,
            metadata: m.metadata.clone(),
        });
        w
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataChannel {
    #[serde(default = "default_bytes")]
    pub message_bytes: usize,
    /// Messages each offerer sends (one at a time, each after the previous echo); 10 unless
    /// `duration` is given.
    #[serde(default)]
    pub messages: Option<u32>,
    /// Instead of a count: keep sending this long after the channel opens.
    #[serde(default, rename = "duration_s", deserialize_with = "serde_time::secs_f64_option")]
    pub duration: Option<Duration>,
    /// The DataConnection's serialization, as PeerJS names it on the wire.
    #[serde(default = "default_serialization")]
    pub serialization: Serialization,
    /// PeerJS's `reliable` (it becomes the channel's `ordered`).
    #[serde(default = "yes")]
    pub reliable: bool,
}

fn default_bytes() -> usize {
    1000
}

fn default_serialization() -> Serialization {
    Serialization::Binary
}

impl Default for DataChannel {
    fn default() -> Self {
        Self {
            message_bytes: default_bytes(),
            messages: None,
            duration: None,
            serialization: default_serialization(),
            reliable: true,
        }
    }
}

impl DataChannel {
    /// The virtual peers' workload.
    pub fn workload(&self) -> peerstorm_peer::Workload {
        peerstorm_peer::Workload {
            messages: self.messages.unwrap_or(if self.duration.is_some() { 0 } else { 10 }),
            duration: self.duration,
            message_bytes: self.message_bytes,
            serialization: self.serialization.clone(),
            reliable: self.reliable,
            media: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// A pair not done this long after it started has failed (`timeout`).
    #[serde(default = "default_setup", rename = "setup_s", deserialize_with = "serde_time::secs")]
    pub setup: Duration,
}

fn default_setup() -> Duration {
    Duration::from_secs(30)
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { setup: default_setup() }
    }
}

/// A scenario that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    #[error("{0}")]
    Toml(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("[thresholds] {0}")]
    Threshold(String),
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn bad<T>(m: impl Into<String>) -> Result<T, ScenarioError> {
    Err(ScenarioError::Unsupported(m.into()))
}

impl Scenario {
    /// Parses and checks a scenario. Errors name the key and its line.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|r| 1 + text[..r.start.min(text.len())].matches('\n').count());
            ScenarioError::Toml(match at {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_string(),
            })
        })?;
        if !s.sweep.ice.is_empty() {
            s.peers.ice = s.sweep.ice.clone();
        }
        s.check()?;
        Ok(s)
    }

    /// Peers per group: 2 for pairs, `group_size` for stars and rooms (checked by [`Scenario::parse`]).
    pub fn group_size(&self) -> usize {
        match self.peers.pattern {
            Pattern::Pairs => 2,
            Pattern::Star | Pattern::Rooms => self.peers.group_size.unwrap_or(2),
        }
    }

    /// Groups of peers a cell holds at most when `peers.cells` is left out.
    pub const GROUPS_PER_CELL: usize = 500;
    /// The most cells `peers.cells` left out gives.
    pub const AUTO_CELLS_MAX: usize = 16;

    /// The cells each simulated run is split into (see [`Peers::cells`]).
    pub fn cells(&self) -> usize {
        let groups = self.peers.count.div_ceil(self.group_size().max(1)).max(1);
        match self.peers.cells {
            Some(c) => c.clamp(1, groups),
            None if self.cells_share_something().is_some() => 1,
            None => groups.div_ceil(Self::GROUPS_PER_CELL).min(Self::AUTO_CELLS_MAX),
        }
    }

    /// What every peer of a run shares that separate cells would not, if anything.
    fn cells_share_something(&self) -> Option<&'static str> {
        if self.network.bandwidth_kbps.is_some() {
            Some("network.bandwidth_kbps (the servers' link is one queue for every peer)")
        } else if self.network.shared_cgnat {
            Some("network.shared_cgnat (one NAT for every peer)")
        } else if self.servers.turn_user_quota.is_some() {
            Some("servers.turn_user_quota (one quota for every peer)")
        } else {
            None
        }
    }

    /// Whether the scenario runs several points (`[sweep]` or `network.rtt_sweep_ms`).
    pub fn is_sweep(&self) -> bool {
        !self.network.rtt_sweep.is_empty() || self.sweep.points().len() > 1 || !self.sweep.points.is_empty()
    }

    /// The points to run: `network.rtt_sweep_ms` (a sweep of the RTT alone), `[sweep]`, or
    /// one point that changes nothing.
    pub fn points(&self) -> Vec<Point> {
        if self.network.rtt_sweep.is_empty() {
            self.sweep.points()
        } else {
            self.network.rtt_sweep.iter().map(|r| Point { rtt: Some(*r), ..Point::default() }).collect()
        }
    }

    /// The RTTs the runs take, each once, in order.
    pub fn rtts(&self) -> Vec<Duration> {
        let mut out: Vec<Duration> = Vec::new();
        for r in self.points().iter().map(|p| p.rtt.unwrap_or(self.network.rtt)) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }

    /// The scenario at one point of its sweep: the RTT sets the peers' and the broker's RTT.
    pub fn at(&self, p: &Point) -> Scenario {
        let mut v = self.clone();
        if let Some(rtt) = p.rtt {
            v.network.rtt = rtt;
            v.servers.broker_rtt = rtt;
        }
        if let Some(loss) = p.loss {
            v.network.loss = loss;
        }
        if let Some(b) = p.bandwidth_kbps {
            v.network.bandwidth_kbps = Some(b);
        }
        if let Some(n) = p.nat {
            v.network.nat_pair = Some(n);
        }
        v
    }

    /// The thresholds, parsed: an unknown metric, a unit that does not fit or a malformed
    /// condition is an error here, before anything runs.
    pub fn thresholds(&self) -> Result<Vec<peerstorm_report::Threshold>, ScenarioError> {
        let v = serde_json::to_value(&self.thresholds).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        let mut pairs = Vec::new();
        let thresholds_err = |e: peerstorm_report::ThresholdError| ScenarioError::Threshold(e.to_string());
        peerstorm_report::thresholds::flatten("", &v, &mut pairs).map_err(thresholds_err)?;
        pairs.into_iter().map(|(p, c)| peerstorm_report::Threshold::parse(&p, &c).map_err(thresholds_err)).collect()
    }

    /// Every rule that spans several keys, for both modes, then the mode's own.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let thresholds = self.thresholds()?;
        // The name becomes a directory under reports/: nothing that leaves it or hides in it.
        let n = &self.name;
        let plain = n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if n.is_empty() || n.len() > 100 || !plain || n.starts_with('.') {
            return bad(format!(
                "name = {n:?}: the name becomes a directory under reports/; use 1 to 100 letters, digits, '-', '_' or '.', not starting with '.'"
            ));
        }
        if self.timeouts.setup.is_zero() {
            return bad("timeouts.setup_s = 0: a pair needs some time to connect");
        }
        if self.servers.relay_only && self.servers.turn == TurnTarget::None {
            return bad(
                "servers.relay_only needs a TURN server: servers.turn = \"none\" leaves nothing to relay through",
            );
        }
        if self.servers.turn_secret.is_some() {
            if self.servers.turn_user.is_some() {
                return bad(
                    "servers.turn_secret and servers.turn_user both give TURN credentials: keep one (turn_secret mints a REST API credential per peer; turn_user is one static NAME:PASSWORD)",
                );
            }
            if self.servers.turn == TurnTarget::None {
                return bad("servers.turn_secret needs a TURN server: servers.turn = \"none\"");
            }
            if self.servers.turn_ttl.is_zero() {
                return bad("servers.turn_ttl_s = 0: every credential would be expired when it is made");
            }
        }
        if self.network.pairing == Pairing::Mix {
            let sum: f64 = self.network.nat_mix.0.iter().map(|(_, s)| s).sum();
            if (sum - 1.0).abs() > 1e-6 {
                return bad(format!(
                    "network.nat_mix: the shares add up to {}; they are the fractions of the peers behind each preset and must add up to 1 (with pairing = \"matrix\" any positive numbers do)",
                    (sum * 1e6).round() / 1e6
                ));
            }
        }
        if self.mode == Mode::Live && self.network != Network::default() {
            return bad(
                "[network] sets the simulated links and NATs, which a live run does not have (it uses this machine's real network): remove it, or run the scenario with mode = \"sim\" or \"lab\"",
            );
        }
        if self.servers.turn_user_quota.is_some() && self.mode != Mode::Sim {
            return bad(
                "servers.turn_user_quota sets the simulator's embedded TURN server; a real one takes its own setting (peerstorm serve turn --max-allocations-per-user, coturn's user-quota)",
            );
        }
        if self.peers.cells.is_some() && self.mode != Mode::Sim {
            return bad(format!(
                "peers.cells splits a simulated run into worlds; a {} run has one (remove it)",
                self.mode.as_str()
            ));
        }
        self.check_sweep()?;
        for t in &thresholds {
            self.check_scope(t)?;
        }
        match self.mode {
            Mode::Sim => self.check_sim(),
            Mode::Live => self.check_live(),
            Mode::Lab => self.check_lab(),
        }
    }

    fn check_sweep(&self) -> Result<(), ScenarioError> {
        if self.sweep.is_empty() {
            return Ok(());
        }
        if self.mode != Mode::Sim {
            return bad(format!(
                "[sweep] runs the simulator (mode = \"sim\"): a {} run takes one point; run it once per point with --set",
                self.mode.as_str()
            ));
        }
        if !self.network.rtt_sweep.is_empty() && self.sweep.sweeps_rtt() {
            return bad("network.rtt_sweep_ms and [sweep] rtt_ms both sweep the RTT: keep [sweep] rtt_ms");
        }
        self.sweep.check(self.peers.ice.len()).map_err(ScenarioError::Unsupported)?;
        if !self.sweep.presets().is_empty() && self.network.pairing == Pairing::Matrix {
            return bad("[sweep] nat puts every pair behind the point's presets: drop network.pairing = \"matrix\"");
        }
        Ok(())
    }

    /// A threshold's scope must name a class, ICE mode, RTT or sweep point this scenario runs:
    /// a typo would otherwise run the whole scenario and then fail with "no samples".
    fn check_scope(&self, t: &peerstorm_report::Threshold) -> Result<(), ScenarioError> {
        for (kind, value) in t.path().scopes() {
            self.check_scope_item(t, kind, value)?;
        }
        Ok(())
    }

    fn check_scope_item(&self, t: &peerstorm_report::Threshold, kind: &str, value: &str) -> Result<(), ScenarioError> {
        let refuse = |why: String| Err(ScenarioError::Threshold(format!("threshold {:?}: {why}", t.text)));
        let points = self.points();
        let swept = |key: &str| -> Vec<String> {
            let mut v: Vec<String> = Vec::new();
            for p in &points {
                if let Some(x) = p.labels().remove(key)
                    && !v.contains(&x)
                {
                    v.push(x);
                }
            }
            v
        };
        match kind {
            "class" if self.mode != Mode::Live => {
                let mut presets: Vec<&str> = self.network.nat_mix.0.iter().map(|(p, _)| p.as_str()).collect();
                let mut from = "network.nat_mix";
                if !self.sweep.presets().is_empty() {
                    presets = self.sweep.presets().iter().map(|p| p.as_str()).collect();
                    presets.sort_unstable();
                    presets.dedup();
                    from = "the sweep's NAT points";
                }
                for side in value.split('↔').map(str::trim) {
                    if !presets.contains(&side) {
                        return refuse(format!("class {value:?}: {side:?} is not in {from} ({})", presets.join(", ")));
                    }
                }
            }
            "loss" | "bandwidth_kbps" | "nat" => {
                let values = swept(kind);
                if !values.iter().any(|v| v == value) {
                    return refuse(if values.is_empty() {
                        format!("{kind}={value}: the scenario does not sweep {kind}")
                    } else {
                        format!("{kind}={value}: the sweep runs {kind} = {}", values.join(", "))
                    });
                }
            }
            "ice" => {
                let modes: Vec<&str> = self.peers.ice.iter().map(|m| crate::collect::ice_name(*m)).collect();
                if !modes.contains(&value) {
                    return refuse(format!("ice={value}: the scenario runs peers.ice = {modes:?}"));
                }
            }
            "rtt" if self.mode != Mode::Live => {
                let rtts: Vec<String> = self.rtts().iter().map(|r| r.as_millis().to_string()).collect();
                if !rtts.iter().any(|r| r == value) {
                    return refuse(format!("rtt={value}: the scenario runs at {} ms", rtts.join(", ")));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Most pairs a lab scenario may hold (two namespaces each, servers apart).
    pub const LAB_MAX_PAIRS: usize = 100;

    fn check_lab(&self) -> Result<(), ScenarioError> {
        let Some(lab) = &self.lab else {
            return bad("mode = \"lab\" needs a [lab] table (offerer, answerer: chromium, virtual or command)");
        };
        if self.peers.pattern != Pattern::Pairs {
            return bad("mode = \"lab\" runs pairs (peers.pattern = \"pairs\")");
        }
        let pairs = self.peers.count / 2;
        if self.peers.count % 2 != 0 || !(1..=Self::LAB_MAX_PAIRS).contains(&pairs) {
            return bad(format!(
                "peers.count = {}: a lab runs pairs, an even count from 2 to {}",
                self.peers.count,
                2 * Self::LAB_MAX_PAIRS
            ));
        }
        if !(1..=pairs).contains(&lab.concurrency) {
            return bad(format!("lab.concurrency = {}: expected 1 to the number of pairs ({pairs})", lab.concurrency));
        }
        let uses_command = lab.offerer == HostKind::Command || lab.answerer == HostKind::Command;
        match (&lab.command, uses_command) {
            (None, true) => return bad("lab: kind \"command\" needs lab.command (the program line)"),
            (Some(_), false) => return bad("lab.command is set but neither offerer nor answerer is \"command\""),
            _ => {}
        }
        if !matches!(self.servers.broker, BrokerTarget::Embedded | BrokerTarget::Reference) {
            return bad("mode = \"lab\": servers.broker is \"embedded\" or \"reference\" (run in a lab host)");
        }
        if !matches!(self.servers.turn, TurnTarget::Embedded | TurnTarget::Coturn | TurnTarget::None) {
            return bad("mode = \"lab\": servers.turn is \"embedded\", \"coturn\" or \"none\"");
        }
        if self.servers.stun != StunTarget::Embedded {
            return bad("mode = \"lab\": the STUN server is the TURN server's host (leave servers.stun out)");
        }
        if self.peers.ice.len() != 1 {
            return bad("mode = \"lab\": one ICE mode per run, peers.ice = [\"trickle\"] or [\"vanilla\"]");
        }
        if !self.network.rtt_sweep.is_empty() {
            return bad("mode = \"lab\": one RTT per run (network.rtt_sweep_ms is for the simulator)");
        }
        if self.network.bandwidth_kbps.is_some() {
            return bad("mode = \"lab\": network.bandwidth_kbps is not supported in a lab yet");
        }
        if self.timeouts.setup > Duration::from_secs(600) {
            return bad("mode = \"lab\": timeouts.setup_s is at most 600 (each pair runs in real time)");
        }
        if self.workload.datachannel.duration.is_some() {
            return bad("mode = \"lab\": workload.datachannel counts messages (duration_s is not supported)");
        }
        if let Some(m) = &self.workload.media {
            if lab.offerer != HostKind::Virtual || lab.answerer != HostKind::Virtual {
                return bad(
                    "mode = \"lab\": [workload.media] calls run between virtual peers (offerer and answerer \"virtual\")",
                );
            }
            // `peerstorm peer` sends the default frame rate, key-frame interval and audio size.
            let plain = m.video.get().is_none_or(|v| {
                v.fps == default_fps()
                    && v.keyframe_interval == default_key_interval()
                    && v.keyframe_ratio == default_key_ratio()
            }) && m.audio.get().is_none_or(|a| a.payload_bytes == default_audio_bytes());
            if !plain || m.datachannel || m.metadata.is_some() {
                return bad(
                    "mode = \"lab\": [workload.media] takes audio, video.bitrate_kbps and duration_s (the rest stays at its default in the lab)",
                );
            }
        }
        if self.workload.datachannel.message_bytes > 65_536 {
            return bad("mode = \"lab\": workload.datachannel.message_bytes is at most 65,536");
        }
        self.check_datachannel()
    }

    fn check_group(&self) -> Result<usize, ScenarioError> {
        match (self.peers.pattern, self.peers.group_size) {
            (Pattern::Pairs, None | Some(2)) => Ok(2),
            (Pattern::Pairs, Some(g)) => {
                bad(format!("peers.group_size = {g}: pairs have 2 (use pattern \"star\" or \"rooms\")"))
            }
            (Pattern::Star | Pattern::Rooms, Some(g)) if (2..=1000).contains(&g) => Ok(g),
            (Pattern::Star | Pattern::Rooms, Some(g)) => bad(format!("peers.group_size = {g}: expected 2 to 1000")),
            (p, None) => bad(format!(
                "peers.pattern = {:?} needs peers.group_size (peers per {})",
                p.as_str(),
                if p == Pattern::Star { "star: the hub and its leaves" } else { "room" }
            )),
        }
    }

    fn check_live(&self) -> Result<(), ScenarioError> {
        let Some(load) = &self.load else {
            return bad("mode = \"live\" needs a [load] table (model, rate_per_s or concurrency, duration_s)");
        };
        if self.peers.count < 2 || self.peers.count % 2 != 0 {
            return bad(format!(
                "peers.count = {}: the most peers a live run starts, in pairs: an even count of at least 2",
                self.peers.count
            ));
        }
        if let BrokerTarget::Server(p) = &self.servers.broker
            && !p.secure
            && (p.ca.is_some() || p.insecure)
        {
            return bad(
                "servers.broker: ca and insecure are for a TLS server (secure = true, or a wss:// URL); this one is plain ws://",
            );
        }
        if self.peers.pattern != Pattern::Pairs {
            return bad("mode = \"live\" runs pairs (peers.pattern = \"pairs\")");
        }
        if load.stack == Stack::Full && matches!(load.model, LoadModel::Churn { .. }) {
            return bad("load.stack = \"full\" runs the open, ramp and closed models");
        }
        if self.workload.media.is_some() && load.stack != Stack::Full {
            return bad(
                "[workload.media]: calls need virtual peers (load.stack = \"full\"); the signaling stack sends no media",
            );
        }
        self.check_media()?;
        if matches!(self.servers.turn, TurnTarget::Uri(_))
            && self.servers.turn_user.is_none()
            && self.servers.turn_secret.is_none()
        {
            return bad(
                "servers.turn = \"turn:...\" needs credentials: servers.turn_user = \"NAME:PASSWORD\" or servers.turn_secret (TURN REST API)",
            );
        }
        if !self.servers.turn_also.is_empty() && !matches!(self.servers.turn, TurnTarget::Uri(_)) {
            return bad("servers.turn_also adds URIs to a turn: URI in servers.turn");
        }
        if let Some(t) = self.servers.turn_also.iter().find(|t| !matches!(t, TurnTarget::Uri(_))) {
            return bad(format!("servers.turn_also = [.., \"{t}\", ..]: only turn: and turns: URIs"));
        }
        if self.servers.turn_transports.len() > 1 {
            return bad(
                "servers.turn_transports: several transports of one server are for the simulator; a live run lists its URIs in servers.turn and servers.turn_also",
            );
        }
        if self.servers.turn_transport() == TurnTransport::Tls && !matches!(self.servers.turn, TurnTarget::Uri(_)) {
            return bad(
                "servers.turn_transport = \"tls\" in a live run is for a server you name (servers.turn = \"turns:HOST:PORT\", e.g. `peerstorm serve turn --tls-listen ADDR --cert F --key F`); the embedded and coturn servers a live run starts speak UDP and TCP",
            );
        }
        let any_tls = self.servers.turn_transport() == TurnTransport::Tls
            || self
                .servers
                .turn_also
                .iter()
                .any(|t| matches!(t, TurnTarget::Uri(u) if u.transport == Some(TurnTransport::Tls)));
        if (self.servers.turn_ca.is_some() || self.servers.turn_insecure) && !any_tls {
            return bad("servers.turn_ca and turn_insecure are for a turns: (TLS) TURN server");
        }
        if self.servers.turn_secret.is_some() && !matches!(self.servers.turn, TurnTarget::Uri(_)) {
            return bad(
                "servers.turn_secret in a live run is for a server you name (servers.turn = \"turn:HOST:PORT\", started with its secret, e.g. `peerstorm serve turn --auth-secret S` or coturn's use-auth-secret); the embedded and coturn servers a live run starts take user test:test",
            );
        }
        let sig = &self.signaling;
        if sig.step_timeout.is_zero()
            || sig.step_timeout > Duration::from_secs(600)
            || sig.hold > Duration::from_secs(86_400)
        {
            return bad("signaling.step_timeout_s must be in (0, 600] and hold_s in [0, 86400]");
        }
        if sig.candidates > 100 {
            return bad(format!("signaling.candidates = {}: at most 100", sig.candidates));
        }
        self.check_datachannel()
    }

    fn check_media(&self) -> Result<(), ScenarioError> {
        let Some(m) = &self.workload.media else { return Ok(()) };
        let (audio, video) = (m.audio.get(), m.video.get());
        if audio.is_none() && video.is_none() {
            return bad("workload.media: a call needs audio, video or both (both are false)");
        }
        if m.duration.is_zero() || m.duration > Duration::from_secs(3600) {
            return bad(format!(
                "workload.media.duration_s = {}: expected seconds above 0, at most 3600",
                m.duration.as_secs_f64()
            ));
        }
        let mark = peerstorm_peer::media::MARK_LEN + 1;
        if let Some(a) = audio
            && !(mark..=1000).contains(&a.payload_bytes)
        {
            return bad(format!(
                "workload.media.audio.payload_bytes = {}: expected {mark} to 1000 (80 is Opus at 32 kbit/s)",
                a.payload_bytes
            ));
        }
        if let Some(v) = video {
            if !(16..=50_000).contains(&v.bitrate_kbps) {
                return bad(format!("workload.media.video.bitrate_kbps = {}: expected 16 to 50,000", v.bitrate_kbps));
            }
            if !(1..=120).contains(&v.fps) {
                return bad(format!("workload.media.video.fps = {}: expected 1 to 120", v.fps));
            }
            if !(1..=10_000).contains(&v.keyframe_interval) {
                return bad(format!(
                    "workload.media.video.keyframe_interval = {}: expected 1 to 10,000 frames",
                    v.keyframe_interval
                ));
            }
            if !(1..=50).contains(&v.keyframe_ratio) {
                return bad(format!(
                    "workload.media.video.keyframe_ratio = {}: expected 1 to 50 (a key frame's size in delta frames)",
                    v.keyframe_ratio
                ));
            }
        }
        Ok(())
    }

    fn check_datachannel(&self) -> Result<(), ScenarioError> {
        let dc = &self.workload.datachannel;
        if let Serialization::Other(name) = &dc.serialization {
            return bad(format!(
                "workload.datachannel.serialization {name:?}: expected \"binary\", \"binary-utf8\", \"json\", \"raw\" or \"MsgPack\""
            ));
        }
        if dc.messages.is_some() && dc.duration.is_some() {
            return bad("workload.datachannel: give messages or duration_s, not both");
        }
        if let Some(d) = dc.duration
            && (d.is_zero() || d > Duration::from_secs(3600))
        {
            return bad(format!(
                "workload.datachannel.duration_s = {}: expected seconds above 0, at most 3600",
                d.as_secs_f64()
            ));
        }
        // PeerJS refuses a json message of 16,300 bytes or more (the string and its quotes).
        if dc.serialization == Serialization::Json && dc.message_bytes > 16_297 {
            return bad(format!(
                "workload.datachannel.message_bytes = {}: a json message must stay under 16,300 bytes (at most 16,297 here)",
                dc.message_bytes
            ));
        }
        // Raw messages are not chunked: one SCTP message each, within the 65,536 bytes browsers announce.
        if dc.serialization == Serialization::Raw && dc.message_bytes > 65_536 {
            return bad(format!(
                "workload.datachannel.message_bytes = {}: raw messages are not chunked; at most 65,536",
                dc.message_bytes
            ));
        }
        if dc.message_bytes > 16 << 20 {
            return bad(format!("workload.datachannel.message_bytes = {}: at most 16 MiB", dc.message_bytes));
        }
        if self.peers.ice.is_empty() {
            return bad("peers.ice is empty: use [\"trickle\"], [\"vanilla\"] or both");
        }
        Ok(())
    }

    fn check_sim(&self) -> Result<(), ScenarioError> {
        let group = self.check_group()?;
        if self.peers.count < group || self.peers.count % group != 0 {
            return bad(if group == 2 {
                format!("peers.count = {}: pairs need an even count of at least 2", self.peers.count)
            } else {
                format!(
                    "peers.count = {}: {} of {group} need a multiple of {group}",
                    self.peers.count,
                    self.peers.pattern.as_str()
                )
            });
        }
        if self.peers.count > 1_000_000 {
            return bad(format!(
                "peers.count = {}: the simulator's address plan holds at most 1,000,000 peers",
                self.peers.count
            ));
        }
        if self.network.pairing == Pairing::Matrix && self.peers.pattern != Pattern::Pairs {
            return bad("network.pairing = \"matrix\" pairs presets pair by pair: it needs peers.pattern = \"pairs\"");
        }
        self.check_datachannel()?;
        self.check_media()?;
        if !matches!(self.servers.turn, TurnTarget::Embedded | TurnTarget::None) {
            return bad(format!(
                "servers.turn = {:?}: the simulator runs \"embedded\" or \"none\"",
                self.servers.turn.to_string()
            ));
        }
        if self.servers.broker != BrokerTarget::Embedded {
            return bad("servers.broker: the simulator runs the embedded broker (mode = \"live\" talks to others)");
        }
        if self.load.is_some() {
            return bad("[load] is for mode = \"live\"; the simulator's arrivals are [peers] arrival");
        }
        if self.network.bandwidth_kbps == Some(0) {
            return bad("network.bandwidth_kbps = 0: leave it out for an unlimited link");
        }
        match (self.peers.cells, self.cells_share_something()) {
            (Some(0), _) => return bad("peers.cells = 0: expected 1 or more (leave it out to choose by size)"),
            (Some(c), Some(what)) if c > 1 => {
                return bad(format!(
                    "peers.cells = {c}: the peers share {what}, which separate cells would split; leave peers.cells out or set it to 1"
                ));
            }
            _ => {}
        }
        if self.servers.turn_user_quota.is_some() && self.servers.turn == TurnTarget::None {
            return bad("servers.turn_user_quota limits the embedded TURN server: servers.turn = \"none\" has none");
        }
        if !(0.0..1.0).contains(&self.network.loss) {
            return bad(format!("network.loss = {}: expected a probability below 1", self.network.loss));
        }
        let rate = self.peers.arrival.rate_per_s;
        if !(rate.is_finite() && rate >= 0.0) {
            return bad(format!("peers.arrival.rate_per_s = {rate:?}: expected groups per second, zero or more"));
        }
        // Every time in the run must fit the simulator's clock with room to spare: the last
        // group's start plus its setup timeout stays within a day, links within a minute.
        let groups = (self.peers.count / group) as f64;
        if rate > 0.0 && (groups - 1.0) / rate > DAY.as_secs_f64() {
            return bad(format!(
                "peers.arrival.rate_per_s = {rate:?}: {groups} groups at that rate take longer than a day to start"
            ));
        }
        let limits = [
            ("network.rtt_ms", self.network.rtt, MINUTE),
            ("network.jitter_ms", self.network.jitter, MINUTE),
            ("servers.broker_rtt_ms", self.servers.broker_rtt, MINUTE),
            ("servers.answer_delay_ms", self.servers.answer_delay, MINUTE),
            ("timeouts.setup_s", self.timeouts.setup, DAY),
        ];
        for (key, v, max) in limits {
            if v > max {
                return bad(format!("{key}: {v:?} is more than {max:?}, the most a simulated run takes"));
            }
        }
        if let Some(rtt) = self.network.rtt_sweep.iter().find(|r| **r > MINUTE) {
            return bad(format!("network.rtt_sweep_ms: {rtt:?} is more than {MINUTE:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_their_line() {
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 2\ncolour = \"blue\"\n").unwrap_err().to_string();
        assert!(e.starts_with("line 4:") && e.contains("colour"), "{e}");
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 2\n[network]\nrtt = 5\n").unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("rtt"), "{e}");
    }

    #[test]
    fn nat_shares_must_add_up_to_one_when_peers_draw_by_share() {
        let mix = |m: &str, pairing: &str| {
            Scenario::parse(&format!("name = \"x\"\n[network]\nnat_mix = {{ {m} }}\n{pairing}[peers]\ncount = 2\n"))
        };
        let e = mix("open = 0.3, symmetric = 0.9", "").unwrap_err().to_string();
        assert!(e.contains("add up to 1.2") && e.contains("must add up to 1"), "{e}");
        mix("open = 0.3, symmetric = 0.7", "").unwrap();
        mix("open = 0.1, symmetric = 0.2, cgnat = 0.7", "").unwrap();
        mix("open = 1, symmetric = 1", "pairing = \"matrix\"\n").unwrap();
    }

    #[test]
    fn turn_secret_is_one_way_to_give_credentials_where_a_server_takes_them() {
        let sim = |servers: &str| Scenario::parse(&format!("name = \"x\"\n[servers]\n{servers}[peers]\ncount = 2\n"));
        let s = sim("turn_secret = \"s\"\n").unwrap();
        assert_eq!((s.servers.turn_secret.as_deref(), s.servers.turn_ttl), (Some("s"), Duration::from_secs(86_400)));
        assert_eq!(sim("turn_secret = \"s\"\nturn_ttl_s = 60\n").unwrap().servers.turn_ttl, Duration::from_secs(60));
        for (servers, why) in [
            ("turn_secret = \"s\"\nturn_user = \"a:b\"\n", "keep one"),
            ("turn_secret = \"s\"\nturn = \"none\"\n", "needs a TURN server"),
            ("turn_secret = \"s\"\nturn_ttl_s = 0\n", "expired when it is made"),
        ] {
            let e = sim(servers).unwrap_err().to_string();
            assert!(e.contains(why), "{servers}: {e}");
        }
        let live = |servers: &str| {
            Scenario::parse(&format!(
                "name = \"x\"\nmode = \"live\"\n[servers]\n{servers}[peers]\ncount = 2\n[load]\nstack = \"full\"\nrate_per_s = 1\nduration_s = 1\n"
            ))
        };
        live("turn = \"turn:127.0.0.1:3478\"\nturn_secret = \"s\"\n").unwrap();
        let e = live("turn = \"turn:127.0.0.1:3478\"\n").unwrap_err().to_string();
        assert!(e.contains("turn_user") && e.contains("turn_secret"), "{e}");
        let e = live("turn = \"coturn\"\nturn_secret = \"s\"\n").unwrap_err().to_string();
        assert!(e.contains("a server you name"), "{e}");
    }

    #[test]
    fn turn_also_adds_uris_to_a_turn_uri() {
        let live = |servers: &str| {
            Scenario::parse(&format!(
                "name = \"x\"\nmode = \"live\"\n[servers]\n{servers}turn_user = \"a:b\"\n[peers]\ncount = 2\n[load]\nstack = \"full\"\nrate_per_s = 1\nduration_s = 1\n"
            ))
        };
        let s = live("turn = \"turn:h:3478\"\nturn_also = [\"turn:h:3478?transport=tcp\", \"turns:h:5349\"]\nturn_ca = \"ca.pem\"\n")
            .unwrap();
        assert_eq!(s.servers.turn_also.len(), 2);
        let e = live("turn = \"coturn\"\nturn_also = [\"turns:h:5349\"]\n").unwrap_err().to_string();
        assert!(e.contains("adds URIs to a turn: URI"), "{e}");
        let e = live("turn = \"turn:h:3478\"\nturn_also = [\"coturn\"]\n").unwrap_err().to_string();
        assert!(e.contains("only turn: and turns: URIs"), "{e}");
        let e = live("turn = \"turn:h:3478\"\nturn_ca = \"ca.pem\"\n").unwrap_err().to_string();
        assert!(e.contains("for a turns: (TLS) TURN server"), "{e}");
    }

    #[test]
    fn a_live_run_refuses_network_settings_it_would_ignore() {
        let live = "name = \"x\"\nmode = \"live\"\n[peers]\ncount = 2\n[load]\nrate_per_s = 1\nduration_s = 1\n";
        Scenario::parse(live).unwrap();
        let e = Scenario::parse(&format!("{live}[network]\nrtt_ms = 100\n")).unwrap_err().to_string();
        assert!(e.contains("[network]") && e.contains("live run"), "{e}");
    }

    #[test]
    fn threshold_scopes_must_name_what_the_scenario_runs() {
        let with = |extra: &str, t: &str| {
            Scenario::parse(&format!(
                "name = \"x\"\n[network]\nrtt_ms = 60\nnat_mix = {{ open = 0.5, symmetric = 0.5 }}\n{extra}[peers]\ncount = 2\n[thresholds]\n{t}\n"
            ))
        };
        for (extra, t, why) in [
            (
                "",
                r#""success_rate{class=open ↔ symetric}" = ">= 90%""#,
                "\"symetric\" is not in network.nat_mix (open, symmetric)",
            ),
            ("", r#""success_rate{ice=vanilla}" = ">= 90%""#, "peers.ice = [\"trickle\"]"),
            ("", r#""success_rate{rtt=100}" = ">= 90%""#, "runs at 60 ms"),
            ("rtt_sweep_ms = [20, 80]\n", r#""success_rate{rtt=60}" = ">= 90%""#, "runs at 20, 80 ms"),
        ] {
            let e = with(extra, t).unwrap_err().to_string();
            assert!(e.contains(why), "{t}: {e}");
        }
        for (extra, t) in [
            ("", r#""success_rate{class=symmetric <-> open}" = ">= 90%""#),
            ("", r#""success_rate{ice=trickle}" = ">= 90%""#),
            ("", r#""success_rate{rtt=60ms}" = ">= 90%""#),
            ("rtt_sweep_ms = [20, 80]\n", r#""success_rate{rtt=80}" = ">= 90%""#),
        ] {
            with(extra, t).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
    }

    #[test]
    fn a_sweep_is_checked_and_its_points_scope_thresholds() {
        let with = |mode: &str, sweep: &str, t: &str| {
            Scenario::parse(&format!(
                "name = \"x\"\n{mode}[sweep]\n{sweep}[peers]\ncount = 2\n{}[thresholds]\n{t}\n",
                if mode.is_empty() { "" } else { "[load]\nrate_per_s = 1\nduration_s = 1\n" }
            ))
        };
        let sweep =
            "loss = [0, 0.02]\nnat = [\"open\", \"port-restricted <-> symmetric\"]\nice = [\"trickle\", \"vanilla\"]\n";
        let s = with("", sweep, r#""success_rate{loss=2%, nat=port-restricted ↔ symmetric}" = ">= 90%""#).unwrap();
        assert_eq!(s.points().len(), 4);
        assert_eq!(s.peers.ice.len(), 2, "[sweep] ice sets peers.ice");
        let at = s.at(&s.points()[3]);
        assert_eq!(
            (at.network.loss, at.network.nat_pair.unwrap().to_string()),
            (0.02, "port-restricted ↔ symmetric".into())
        );
        // A class scope names the sweep's presets (nat_mix is not what runs).
        with("", sweep, r#""success_rate{class=symmetric ↔ port-restricted}" = ">= 90%""#).unwrap();
        for (mode, sweep, t, why) in [
            ("", "loss = [0, 0.02]\n", r#""success_rate{loss=0.05}" = ">= 90%""#, "the sweep runs loss = 0, 0.02"),
            ("", "loss = [0, 0.02]\n", r#""success_rate{nat=open}" = ">= 90%""#, "does not sweep nat"),
            (
                "",
                "nat = [\"open\", \"cgnat\"]\n",
                r#""success_rate{class=open ↔ symmetric}" = ">= 90%""#,
                "\"symmetric\" is not in the sweep's NAT points (cgnat, open)",
            ),
            ("mode = \"live\"\n", "loss = [0, 0.02]\n", "", "[sweep] runs the simulator"),
            ("", "rtt_ms = [20, 40]\npoints = [{ loss = 0.1 }]\n", "", "not both"),
            ("", "bandwidth_kbps = [0, 10]\n", "", "carry nothing"),
        ] {
            let e = with(mode, sweep, t).unwrap_err().to_string();
            assert!(e.contains(why), "{sweep} {t}: {e}");
        }
        let e = Scenario::parse(
            "name = \"x\"\n[network]\nrtt_sweep_ms = [20, 40]\n[sweep]\nrtt_ms = [10, 30]\n[peers]\ncount = 2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("both sweep the RTT"), "{e}");
        // A bandwidth point sets the access links' rate, a listed point only what it names.
        let s = Scenario::parse(
            "name = \"x\"\n[network]\nrtt_ms = 30\n[sweep]\npoints = [{ bandwidth_kbps = 500 }, { rtt_ms = 90, loss = 0.01 }]\n[peers]\ncount = 2\n",
        )
        .unwrap();
        let (a, b) = (s.at(&s.points()[0]), s.at(&s.points()[1]));
        assert_eq!(
            (a.network.bandwidth_kbps, a.network.rtt, a.network.loss),
            (Some(500), Duration::from_millis(30), 0.0)
        );
        assert_eq!(
            (b.network.bandwidth_kbps, b.servers.broker_rtt, b.network.loss),
            (None, Duration::from_millis(90), 0.01)
        );
        // rtt_sweep_ms is a sweep of the RTT alone.
        let s = Scenario::parse("name = \"x\"\n[network]\nrtt_sweep_ms = [20, 40]\n[peers]\ncount = 2\n").unwrap();
        assert_eq!(s.points().iter().map(|p| p.rtt.unwrap().as_millis()).collect::<Vec<_>>(), [20, 40]);
        assert!(s.is_sweep());
    }

    #[test]
    fn unsupported_settings_are_refused_clearly() {
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 3\n").unwrap_err().to_string();
        assert!(e.contains("even count"), "{e}");
        let e = Scenario::parse("name = \"x\"\n[network]\nnat_mix = { symetric = 1.0 }\n[peers]\ncount = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown preset \"symetric\"") && e.starts_with("line 3"), "{e}");
        let e = Scenario::parse("name = \"x\"\n[network]\npairing = \"grid\"\n[peers]\ncount = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grid") && e.starts_with("line 3"), "{e}");
        let e = Scenario::parse("name = \"x\"\n[servers]\nturn = \"turn:x\"\n[peers]\ncount = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("servers.turn"), "{e}");
        let s = Scenario::parse("name = \"x\"\n[peers]\ncount = 4\nice = [\"trickle\", \"vanilla\"]\n").unwrap();
        assert_eq!(s.peers.ice, [IceMode::Trickle, IceMode::Vanilla]);
        assert_eq!(s.network.rtt, Duration::from_millis(40));
    }

    #[test]
    fn options_are_typed_values() {
        let s = Scenario::parse(
            "name = \"x\"\n[network]\nrtt_ms = 60\njitter_ms = 3\nrtt_sweep_ms = [20, 100]\n[servers]\nanswer_delay_ms = 250\nturn_transport = \"tcp\"\n[peers]\ncount = 6\npattern = \"rooms\"\ngroup_size = 3\n[workload.datachannel]\nserialization = \"MsgPack\"\nduration_s = 1.5\n[timeouts]\nsetup_s = 12\n",
        )
        .unwrap();
        assert_eq!(s.network.rtt, Duration::from_millis(60));
        assert_eq!(s.network.jitter, Duration::from_millis(3));
        assert_eq!(s.rtts(), [Duration::from_millis(20), Duration::from_millis(100)]);
        assert_eq!(s.at(&s.points()[1]).servers.broker_rtt, Duration::from_millis(100));
        assert_eq!(s.servers.answer_delay, Duration::from_millis(250));
        assert_eq!(s.servers.turn_transport(), TurnTransport::Tcp);
        assert_eq!((s.peers.pattern, s.group_size()), (Pattern::Rooms, 3));
        assert_eq!(s.workload.datachannel.serialization, Serialization::MsgPack);
        assert_eq!(s.workload.datachannel.duration, Some(Duration::from_millis(1500)));
        assert_eq!(s.timeouts.setup, Duration::from_secs(12));
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 2\n[workload.datachannel]\nduration_s = -1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 5") && e.contains("-1"), "{e}");
    }

    #[test]
    fn hostile_numbers_are_refused_not_panicked_on() {
        let parse =
            |extra: &str| Scenario::parse(&format!("name = \"x\"\n{extra}")).map(|_| ()).map_err(|e| e.to_string());
        let e = parse("[peers]\ncount = 4\narrival = { rate_per_s = 1e-300 }\n").unwrap_err();
        assert!(e.contains("longer than a day"), "{e}");
        let e = parse("[network]\nrtt_ms = 18446744073709551615\n[peers]\ncount = 2\n").unwrap_err();
        assert!(e.contains("network.rtt_ms"), "{e}");
        let e = parse("[peers]\ncount = 2\n[timeouts]\nsetup_s = 18446744073709551615\n").unwrap_err();
        assert!(e.contains("timeouts.setup_s"), "{e}");
        let e = parse("[network]\nrtt_sweep_ms = [20, 9999999]\n[peers]\ncount = 2\n").unwrap_err();
        assert!(e.contains("rtt_sweep_ms"), "{e}");
        assert!(parse("[peers]\ncount = 4\narrival = { rate_per_s = 0.5 }\n").is_ok());
    }

    #[test]
    fn names_that_would_leave_reports_and_zero_setup_times_are_refused_in_every_mode() {
        let parse = |text: &str| Scenario::parse(text).map(|_| ()).map_err(|e| e.to_string());
        for name in ["../x", "a/b", "", ".hidden", "sp ace", "x\\y"] {
            let e = parse(&format!("name = {name:?}\n[peers]\ncount = 2\n")).unwrap_err();
            assert!(e.contains("becomes a directory"), "{name:?}: {e}");
        }
        assert!(parse("name = \"storm-10k.v2_b\"\n[peers]\ncount = 2\n").is_ok());
        let lab = "mode = \"lab\"\n[lab]\n";
        let live = "mode = \"live\"\n[load]\nrate_per_s = 1\nduration_s = 1\n";
        for mode in ["", lab, live] {
            let e = parse(&format!("name = \"x\"\n{mode}[peers]\ncount = 2\n[timeouts]\nsetup_s = 0\n")).unwrap_err();
            assert!(e.contains("setup_s = 0"), "{mode}: {e}");
        }
    }

    #[test]
    fn live_loads_are_typed_by_model() {
        let live = |load: &str| {
            Scenario::parse(&format!("name = \"x\"\nmode = \"live\"\n[peers]\ncount = 2\n[load]\n{load}\n"))
        };
        let s = live("model = \"ramp\"\nrate_per_s = 1\nrate_to_per_s = 5\nduration_s = 2").unwrap();
        let l = s.load.unwrap();
        assert_eq!(
            (l.model, l.stack, l.duration),
            (LoadModel::Ramp { from: 1.0, to: 5.0 }, Stack::Signaling, Duration::from_secs(2))
        );
        let e = live("model = \"closed\"\nduration_s = 2").unwrap_err().to_string();
        assert!(e.contains("needs concurrency > 0"), "{e}");
        let e = live("model = \"churn\"\nstack = \"full\"\npairs = 2\nchurn_per_s = 1\nduration_s = 2").unwrap_err();
        assert!(e.to_string().contains("open, ramp and closed"), "{e}");
    }

    #[test]
    fn thresholds_parse_before_the_run() {
        let s = Scenario::parse(
            "name = \"x\"\n[network]\nnat_mix = { open = 0.5, symmetric = 0.5 }\n[peers]\ncount = 2\n[thresholds]\nsetup.dc_open.p95 = \"< 800ms\"\nsuccess_rate = \">= 99%\"\n\"relay_share{class=open ↔ symmetric}\" = \"<= 0.3\"\n",
        )
        .unwrap();
        let t = s.thresholds().unwrap();
        let texts: Vec<&str> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            ["setup.dc_open.p95 < 800ms", "success_rate >= 99%", "relay_share{class=open ↔ symmetric} <= 0.3"]
        );
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 2\n[thresholds]\nsetup.dc_opn.p95 = \"< 800ms\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[thresholds]") && e.contains("unknown stage \"dc_opn\""), "{e}");
    }
}
