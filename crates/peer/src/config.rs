//! How a virtual peer is configured and what it asks its driver to carry: the types the peer,
//! its connections and every driver share.

use peerstorm_model::peerjs::payload::Serialization;
use std::net::SocketAddr;
use std::time::Duration;

/// Trickle candidates as they come, or wait for gathering and send them in the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceMode {
    Trickle,
    Vanilla,
}

/// What each DataConnection's offerer sends (its answerer echoes every message back).
#[derive(Debug, Clone)]
pub struct Workload {
    /// Messages to send, one at a time, each after the previous echo.
    pub messages: u32,
    /// Instead of a count: keep sending this long after the channel opens.
    pub duration: Option<Duration>,
    pub message_bytes: usize,
    pub serialization: Serialization,
    /// PeerJS's `reliable`, which it turns into the channel's `ordered`.
    pub reliable: bool,
    /// What this peer's calls send, and what it answers a call with (`call.answer(stream)`);
    /// `None` answers a call with no stream.
    pub media: Option<crate::media::MediaWorkload>,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            messages: 10,
            duration: None,
            message_bytes: 1000,
            serialization: Serialization::Binary,
            reliable: true,
            media: None,
        }
    }
}

/// How one virtual peer behaves.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub id: String,
    pub token: String,
    /// Peers to open a DataConnection to once OPEN.
    pub connect: Vec<String>,
    /// Peers to call (a MediaConnection, `peer.call(id, stream)`) once OPEN, with
    /// `workload.media`.
    pub call: Vec<String>,
    /// Peers whose OFFER this peer waits for (an OFFER from anyone else is answered too).
    pub accept: Vec<String>,
    /// Peers whose call (a media OFFER) this peer waits for; it answers with
    /// `workload.media`'s stream.
    pub answer: Vec<String>,
    pub ice: IceMode,
    /// This peer's address on the (simulated) network: connection `k` has its socket at this
    /// IP and port + `k` (its host candidate), unless `sockets` names it.
    pub host: SocketAddr,
    /// Sockets already bound (live runs): connection `k` uses `sockets[k]` when there is one.
    pub sockets: Vec<SocketAddr>,
    pub heartbeat: Duration,
    pub workload: Workload,
    /// A STUN server for a server-reflexive candidate (RFC 8489 Binding).
    pub stun: Option<SocketAddr>,
    /// TURN servers, a relayed candidate from each (RFC 8656 Allocate, through the `rtc-turn`
    /// client), as a browser given several `iceServers` URLs gathers one per URL.
    pub turn: Vec<TurnServer>,
    /// Use relayed candidates only (`iceTransportPolicy: "relay"`).
    pub relay_only: bool,
    /// Whose timers the stack keeps.
    pub profile: crate::profile::Profile,
    /// How much slower than the profile's reference machine the browser modelled runs
    /// (`CpuScale`; 1: the profile's own times).
    pub cpu_scale: crate::profile::CpuScale,
    /// An instant at which the metronome of this peer's machine ticks, for a profile whose
    /// delayed tasks wait for one (`StackTimers::metronome`): Chromium's ticks fall at whole
    /// multiples of 15.625 ms of the machine's monotonic clock, shared by every browser on it.
    /// `None`: the peer's start.
    pub metronome_tick: Option<std::time::Instant>,
}

/// A TURN server and the long-term credentials for it.
#[derive(Debug, Clone)]
pub struct TurnServer {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    pub realm: String,
    /// How the client reaches the server (`turn:...?transport=udp|tcp`); the relay is UDP either
    /// way (RFC 8656 §3.1).
    pub transport: TurnTransport,
}

/// The transport between a TURN client and its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnTransport {
    #[default]
    Udp,
    /// TCP: what gets a client out of a network that blocks UDP (often on port 443).
    Tcp,
    /// TLS over TCP (`turns:`, RFC 8656 §3.3): what gets through a firewall that lets only
    /// HTTPS-looking traffic out.
    Tls,
}

impl TurnTransport {
    /// Carried on a TCP connection (plain or TLS).
    pub fn is_stream(self) -> bool {
        matches!(self, TurnTransport::Tcp | TurnTransport::Tls)
    }
}

/// What the driver must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A WebSocket text frame to the broker.
    Signal(String),
    /// A UDP datagram.
    Datagram { src: SocketAddr, dst: SocketAddr, data: Vec<u8> },
    /// Bytes on the TCP connection from `src` to `dst` (the driver opens it on first use); each
    /// is one whole TURN message (STUN, or ChannelData padded to four bytes). `tls`: the
    /// connection is TLS (`turns:`), which the driver runs (live) or models (simulator); what the
    /// peer hands over and gets back is the plaintext either way.
    Stream { src: SocketAddr, dst: SocketAddr, data: Vec<u8>, tls: bool },
}
