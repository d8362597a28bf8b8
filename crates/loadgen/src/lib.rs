//! Signaling load for PeerJS brokers: the seed of peerstorm's live runner.
//!
//! - [`client`]: a PeerJS-like WebSocket client (connect, OPEN, masked frames, batched reads).
//! - [`relay`]: closed-loop relay between pairs with a window of messages in flight, and idle
//!   holding with HEARTBEATs every 5 s as `peerjs@1.5.5` sends them.
//! - [`proc`]: a process's CPU seconds and RSS from `/proc`, to measure the broker.

pub mod client;
pub mod proc;
pub mod relay;

pub use client::{Client, JoinError, Target};

/// The `q`-quantile (0..=1) of unsorted samples, by sorting a copy; 0 when empty.
pub fn quantile(samples: &[u32], q: f64) -> u32 {
    if samples.is_empty() {
        return 0;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// An OFFER frame of about 700 bytes (a realistic data-channel offer, as the notes' baseline
/// used), from a client to `dst`.
pub fn offer_frame(dst: &str) -> String {
    let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:P5Ci\r\na=ice-pwd:qbUIgMCPtf6Nlly//YcrHL8k\r\na=ice-options:trickle\r\na=fingerprint:sha-256 C4:97:CB:0E:B6:DF:50:BE:56:BC:C5:49:88:5D:1B:82:5B:6D:A9:72:E9:C7:05:C8:06:46:DA:A9:E2:5B:D1:1B\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";
    let payload = serde_json::json!({
        "sdp": {"type": "offer", "sdp": sdp},
        "type": "data",
        "connectionId": "dc_k3j4h5g6f7",
        "label": "dc_k3j4h5g6f7",
        "reliable": true,
        "serialization": "binary"
    });
    serde_json::json!({"type": "OFFER", "payload": payload, "dst": dst}).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn offer_is_offer_sized() {
        let n = super::offer_frame("peer-00001").len();
        assert!((650..=800).contains(&n), "{n} bytes");
    }

    #[test]
    fn quantiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(super::quantile(&v, 0.5), 51);
        assert_eq!(super::quantile(&v, 0.99), 99);
        assert_eq!(super::quantile(&[], 0.5), 0);
    }
}
