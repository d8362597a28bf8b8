//! Broker options: the reference's, under the same names and defaults, plus the `--hardened`
//! limits.

use std::time::Duration;

/// How the broker behaves. `Config::default()` is `peer@1.0.2`'s CLI defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Must equal the WebSocket `key` query parameter (`peerjs`).
    pub key: String,
    /// Mount path of the HTTP API and of `<path>peerjs` (`/`).
    pub path: String,
    /// Age at which a queue for an offline peer is dropped and EXPIRE sent (5 s).
    pub expire_timeout: Duration,
    /// How often queues are swept (1 s, `cleanup_out_msgs`).
    pub cleanup_interval: Duration,
    /// A client with no HEARTBEAT for this long is dropped (60 s, the CLI default).
    pub alive_timeout: Duration,
    /// How often liveness is checked (300 ms, hard-coded in the reference).
    pub check_interval: Duration,
    /// Most registered IDs (5000).
    pub concurrent_limit: usize,
    /// Serve `GET /<key>/peers`.
    pub allow_discovery: bool,
    /// Allowed CORS origins; empty reflects any origin (the reference's `origin: true`).
    pub cors: Vec<String>,
    /// Largest WebSocket message accepted: 16 MiB, thousands of times any PeerJS signaling frame
    /// (an SDP offer is a few KiB) yet far below the reference's 100 MiB (ws's `maxPayload`), so
    /// one client cannot make the broker buffer 100 MiB per connection.
    pub max_frame_bytes: usize,
    /// The most a connection may take to send its HTTP request head (10 s); then it is closed.
    pub head_timeout: std::time::Duration,
    /// Connections not yet upgraded to a WebSocket (plain HTTP, or a head still coming) held
    /// at once; beyond it a new connection gets 503 at once, so slow or idle sockets cannot
    /// take every descriptor from the clients that register.
    pub max_handshaking: usize,
    /// `None` is the compatible mode; `Some` turns on the limits in [`Hardening`].
    pub hardening: Option<Hardening>,
    /// Deliberately non-conforming, for the conformance suite's self-test only: relay the `src`
    /// a client wrote instead of forcing the sender's ID. Never use it to serve anyone.
    pub trust_client_src: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            key: "peerjs".into(),
            path: "/".into(),
            expire_timeout: Duration::from_millis(5000),
            cleanup_interval: Duration::from_millis(1000),
            alive_timeout: Duration::from_millis(60_000),
            check_interval: Duration::from_millis(300),
            concurrent_limit: 5000,
            allow_discovery: false,
            cors: Vec::new(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            head_timeout: std::time::Duration::from_secs(10),
            max_handshaking: 1024,
            hardening: None,
            trust_client_src: false,
        }
    }
}

impl Config {
    /// The path the WebSocket endpoint answers on: `<path>/peerjs` with slashes normalised.
    pub fn ws_path(&self) -> String {
        format!("{}peerjs", self.mount())
    }

    /// The mount path, starting and ending with `/`.
    pub fn mount(&self) -> String {
        let p = self.path.trim_matches('/');
        if p.is_empty() { "/".into() } else { format!("/{p}/") }
    }

    /// The limit on a WebSocket message, hardened or not.
    pub fn frame_limit(&self) -> usize {
        self.hardening.as_ref().map_or(self.max_frame_bytes, |h| h.max_frame_bytes.min(self.max_frame_bytes))
    }
}

/// [`Config::max_frame_bytes`]'s default.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

/// What `--hardened` adds. Every limit answers the client that hit it with an ERROR frame and
/// leaves everyone else alone.
#[derive(Debug, Clone)]
pub struct Hardening {
    /// IDs must match the PeerJS client's rule and be at most this long.
    pub max_id_len: usize,
    /// Messages held for one offline destination.
    pub max_queue_per_peer: usize,
    /// Messages held for all offline destinations together.
    pub max_queued_total: usize,
    /// Bytes held for one offline destination (the texts of its queued frames).
    pub max_queued_bytes_per_peer: usize,
    /// Bytes held for all offline destinations together.
    pub max_queued_bytes_total: usize,
    /// IDs handed out by `GET /<key>/id` and not yet claimed, with `server_issued_ids`: beyond
    /// it the request gets 503 until some are claimed or expire (each costs about 100 bytes).
    pub max_issued_ids: usize,
    /// Largest frame (64 KiB).
    pub max_frame_bytes: usize,
    /// Sustained frames per second per client, and the burst above it.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// Only IDs handed out by `GET /<key>/id` (and not yet used) may register.
    pub server_issued_ids: bool,
    /// How long an issued ID stays claimable.
    pub issued_id_ttl: Duration,
    /// After a registered client's connection is lost (closed, dropped, or timed out), its ID
    /// stays reserved for its token this long: another token gets ID-TAKEN, the owner's
    /// reconnect gets OPEN and the messages queued meanwhile. Zero frees the ID at once, as the
    /// reference does (which lets anyone squat it, protocol.md §4.6).
    pub id_reservation: Duration,
    /// Bytes waiting to be written to one connection beyond which the shell treats its client as
    /// a reader too slow to keep: the connection is dropped and the frames it did not take are
    /// relayed again (queued, so their senders get EXPIRE). Bounds the memory a non-reading
    /// client can make the broker hold; keep it above the largest burst sent at once (a queue
    /// replay: `max_queue_per_peer` × `max_frame_bytes`).
    pub max_send_buffer: usize,
}

impl Default for Hardening {
    fn default() -> Self {
        Self {
            max_id_len: 64,
            max_queue_per_peer: 32,
            max_queued_total: 100_000,
            // A PeerJS signaling frame is a few KiB (an SDP); 32 of them fit in 1 MiB.
            max_queued_bytes_per_peer: 1 << 20,
            max_queued_bytes_total: 64 << 20,
            max_issued_ids: 100_000,
            max_frame_bytes: 64 << 10,
            rate_per_sec: 200,
            rate_burst: 400,
            server_issued_ids: false,
            issued_id_ttl: Duration::from_secs(60),
            id_reservation: Duration::from_secs(5),
            max_send_buffer: 4 << 20,
        }
    }
}
