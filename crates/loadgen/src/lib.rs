//! Signaling load for PeerJS brokers: the seed of peerstorm's live runner.
//!
//! - [`client`]: a PeerJS-like WebSocket client (connect, OPEN, masked frames, batched reads).
//! - [`relay`]: closed-loop relay between pairs with a window of messages in flight, and idle
//!   holding with HEARTBEATs every 5 s as `peerjs@1.5.5` sends them.
//! - [`proc`]: a process's CPU seconds and RSS from `/proc`, to measure the broker.

pub mod client;
pub mod proc;
pub mod relay;

use std::sync::LazyLock;

pub use client::{Client, JoinError, Target, Tls};

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
    static T: LazyLock<Template> = LazyLock::new(|| Template::of(offer_json));
    T.fill(dst).unwrap_or_else(|| offer_json(dst))
}

fn offer_json(dst: &str) -> String {
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

/// An ANSWER frame of about 600 bytes, from a client to `dst`.
pub fn answer_frame(dst: &str) -> String {
    static T: LazyLock<Template> = LazyLock::new(|| Template::of(answer_json));
    T.fill(dst).unwrap_or_else(|| answer_json(dst))
}

fn answer_json(dst: &str) -> String {
    let sdp = "v=0\r\no=- 3902145771852213485 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:Xk2b\r\na=ice-pwd:3f9HQmZ8c1gq0ZlTn2yVhR4w\r\na=ice-options:trickle\r\na=fingerprint:sha-256 1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09\r\na=setup:active\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";
    let payload = serde_json::json!({
        "sdp": {"type": "answer", "sdp": sdp},
        "type": "data",
        "connectionId": "dc_k3j4h5g6f7"
    });
    serde_json::json!({"type": "ANSWER", "payload": payload, "dst": dst}).to_string()
}

/// A CANDIDATE frame of about 330 bytes (an srflx candidate with browser extensions), to `dst`;
/// `n` picks its port.
pub fn candidate_frame(dst: &str, n: usize) -> String {
    // The generator sends millions of these: the JSON is built once per port, not per frame.
    thread_local! {
        static T: std::cell::RefCell<std::collections::HashMap<usize, Template>> = Default::default();
    }
    let n = n % 10000;
    T.with_borrow_mut(|t| t.entry(n).or_insert_with(|| Template::of(|d| candidate_json(d, n))).fill(dst))
        .unwrap_or_else(|| candidate_json(dst, n))
}

fn candidate_json(dst: &str, n: usize) -> String {
    let payload = serde_json::json!({
        "candidate": {
            "candidate": format!("candidate:842163049 1 udp 1677729535 192.0.2.10 {} typ srflx raddr 10.0.0.2 rport 53421 generation 0 ufrag abcd network-id 1 network-cost 10", 50000 + n % 10000),
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "abcd"
        },
        "type": "data",
        "connectionId": "dc_k3j4h5g6f7"
    });
    serde_json::json!({"type": "CANDIDATE", "payload": payload, "dst": dst}).to_string()
}

/// A frame's JSON split around its destination, so that filling it in is one copy.
struct Template {
    head: String,
    tail: String,
}

impl Template {
    /// What never needs escaping in JSON and so is copied as it is: peer IDs as this generator
    /// and PeerServers make them.
    const MARK: &'static str = "@@DST@@";

    fn of(json: impl Fn(&str) -> String) -> Template {
        let text = json(Self::MARK);
        let (head, tail) = text.split_once(Self::MARK).expect("the destination in the frame");
        Template { head: head.to_string(), tail: tail.to_string() }
    }

    /// The frame to `dst`, or `None` when `dst` holds a character JSON would escape.
    fn fill(&self, dst: &str) -> Option<String> {
        if !dst.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
            return None;
        }
        let mut out = String::with_capacity(self.head.len() + dst.len() + self.tail.len());
        out.push_str(&self.head);
        out.push_str(dst);
        out.push_str(&self.tail);
        Some(out)
    }
}

/// The `type` of a frame from the broker, read from its start (`{"type":"OFFER",...`; both
/// peer@1.0.2 and peerstorm's broker write `type` first), without parsing the rest.
pub fn frame_type(frame: &[u8]) -> Option<&str> {
    let rest = frame.strip_prefix(br#"{"type":""#)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_have_their_sizes_and_types() {
        let a = super::answer_frame("peer-00001");
        let c = super::candidate_frame("peer-00001", 3);
        assert!((500..=700).contains(&a.len()), "{}", a.len());
        assert!((250..=400).contains(&c.len()), "{}", c.len());
        assert_eq!(super::frame_type(a.as_bytes()), Some("ANSWER"));
        assert_eq!(super::frame_type(br#"{"type":"OPEN"}"#), Some("OPEN"));
        assert_eq!(super::frame_type(b"junk"), None);
    }

    /// The templates write exactly what serde_json writes, and a destination JSON must escape
    /// goes through serde_json.
    #[test]
    fn templated_frames_are_the_json_frames() {
        for dst in ["peer-00001", "ps123s1-42o", "a"] {
            assert_eq!(super::offer_frame(dst), super::offer_json(dst));
            assert_eq!(super::answer_frame(dst), super::answer_json(dst));
            for n in [0, 3, 10_003] {
                assert_eq!(super::candidate_frame(dst, n), super::candidate_json(dst, n % 10000));
            }
        }
        let odd = "quote\"and\\slash";
        let v: serde_json::Value = serde_json::from_str(&super::candidate_frame(odd, 1)).unwrap();
        assert_eq!(v["dst"], odd);
        let v: serde_json::Value = serde_json::from_str(&super::offer_frame(odd)).unwrap();
        assert_eq!(v["dst"], odd);
    }

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
