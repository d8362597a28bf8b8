//! peerstorm's message model: SDP, ICE candidates, PeerJS frames and payloads.
//!
//! Everything here parses and emits; nothing does I/O or reads a clock. Parsers never panic on
//! input: they return typed errors with a position and what was expected, and the lenient forms
//! return every diagnostic they find.
//!
//! - [`sdp`]: session descriptions, lossless (`emit(parse(x)) == x`), with JSEP checks.
//! - [`candidate`]: ICE candidates (RFC 8839 plus browser extensions), priorities, foundations.
//! - [`peerjs`]: PeerJS signaling frames and payloads as `peer@1.0.2` and `peerjs@1.5.5` speak
//!   them, and the DataConnection serializations (BinaryPack with chunking, JSON, raw).
//! - [`stun`]: STUN and TURN messages, and TURN's framing on a TCP stream (RFC 8656 §12.5).
//! - [`ws`]: RFC 6455 WebSocket framing, both sides (servers, clients and load generators share it).

pub mod candidate;
pub mod diag;
#[doc(hidden)]
pub mod fuzzing;
pub mod peerjs;
pub mod rng;
pub mod sdp;
pub mod stun;
pub mod ws;

pub use diag::{Diagnostic, Severity};

/// A number in canonical decimal form (digits, no leading zero but "0"), as SDP and candidate
/// fields must be for a lossless round trip.
pub(crate) fn sdp_number(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    s.parse().ok()
}
