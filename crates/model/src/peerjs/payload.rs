//! Typed payloads as `peerjs@1.5.5` writes them (`lib/negotiator.ts`; protocol.md §2.1). Field order
//! in each struct is the order PeerJS emits, so serializing gives PeerJS's bytes.

use crate::candidate::IceCandidateInit;
use serde::{Deserialize, Deserializer, Serialize};

/// `{"type":"offer"|"answer","sdp":"v=0..."}`, an `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescriptionInit {
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

/// `payload.type`: which kind of PeerJS connection the signaling is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionType {
    Data,
    Media,
}

/// A DataConnection's serialization, as named on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Serialization {
    /// `binary`: BinaryPack, chunked over 16,300 bytes. PeerJS sends `default` as `binary`.
    Binary,
    /// `binary-utf8`: the same BinaryPack codec in 1.5.x.
    BinaryUtf8,
    /// `json`: `JSON.stringify` as UTF-8, at most 16,299 bytes.
    Json,
    /// `raw`: passed to the data channel unchanged.
    Raw,
    /// `MsgPack`: the experimental stream serializer.
    MsgPack,
    /// Anything else (a custom serializer, or `default` from an old client).
    Other(String),
}

impl From<String> for Serialization {
    fn from(s: String) -> Self {
        match s.as_str() {
            "binary" => Serialization::Binary,
            "binary-utf8" => Serialization::BinaryUtf8,
            "json" => Serialization::Json,
            "raw" => Serialization::Raw,
            "MsgPack" => Serialization::MsgPack,
            _ => Serialization::Other(s),
        }
    }
}

impl From<Serialization> for String {
    fn from(s: Serialization) -> Self {
        match s {
            Serialization::Binary => "binary".into(),
            Serialization::BinaryUtf8 => "binary-utf8".into(),
            Serialization::Json => "json".into(),
            Serialization::Raw => "raw".into(),
            Serialization::MsgPack => "MsgPack".into(),
            Serialization::Other(s) => s,
        }
    }
}

/// Keeps an explicit `null` as `Some(Null)`; a missing member stays `None` (through `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// An OFFER payload. Data connections carry `label`, `reliable` and `serialization`; media
/// connections do not. `browser` is the pre-1.5.0 field, accepted and kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferPayload {
    pub sdp: SessionDescriptionInit,
    #[serde(rename = "type")]
    pub connection_type: ConnectionType,
    #[serde(rename = "connectionId")]
    pub connection_id: String,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialization: Option<Serialization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
}

impl OfferPayload {
    /// A MediaConnection offer as `peerjs@1.5.5` builds it for `peer.call(id, stream)`:
    /// `{sdp, type: "media", connectionId}` (its `metadata` only when the call has some).
    pub fn media(sdp: String, connection_id: &str) -> Self {
        Self {
            sdp: SessionDescriptionInit { kind: "offer".into(), sdp },
            connection_type: ConnectionType::Media,
            connection_id: connection_id.to_string(),
            metadata: None,
            label: None,
            reliable: None,
            serialization: None,
            browser: None,
        }
    }

    /// A DataConnection offer as `peerjs@1.5.5` builds it (label defaults to the connection id).
    pub fn data(sdp: String, connection_id: &str, serialization: Serialization, reliable: bool) -> Self {
        Self {
            sdp: SessionDescriptionInit { kind: "offer".into(), sdp },
            connection_type: ConnectionType::Data,
            connection_id: connection_id.to_string(),
            metadata: None,
            label: Some(connection_id.to_string()),
            reliable: Some(reliable),
            serialization: Some(serialization),
            browser: None,
        }
    }
}

/// An ANSWER payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerPayload {
    pub sdp: SessionDescriptionInit,
    #[serde(rename = "type")]
    pub connection_type: ConnectionType,
    #[serde(rename = "connectionId")]
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
}

/// A CANDIDATE payload: the `RTCIceCandidate` JSON plus the connection it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidatePayload {
    pub candidate: IceCandidateInit,
    #[serde(rename = "type")]
    pub connection_type: ConnectionType,
    #[serde(rename = "connectionId")]
    pub connection_id: String,
}

/// The payload of ERROR and ID-TAKEN: `{"msg":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    pub msg: String,
}

/// The three handshake error messages of `peer@1.0.2` (protocol.md §1.1).
pub mod messages {
    pub const NO_ID_TOKEN_OR_KEY: &str = "No id, token, or key supplied to websocket server";
    pub const INVALID_KEY: &str = "Invalid key provided";
    pub const CONCURRENT_LIMIT: &str = "Server has reached its concurrent user limit";
    pub const ID_TAKEN: &str = "ID is taken";
}

/// The ID rule the PeerJS client applies on its side (protocol.md §5): `^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$`.
pub fn is_valid_peer_id(id: &str) -> bool {
    let mut prev_sep = true;
    for b in id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
            b' ' | b'_' | b'-' if !prev_sep => prev_sep = true,
            _ => return false,
        }
    }
    !id.is_empty() && !prev_sep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peerjs::{Frame, MessageType};

    /// The captured OFFER of protocol.md §6, byte for byte.
    const CAPTURED_OFFER: &str = r#"{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data","connectionId":"dc_k3j4h5g6f7","metadata":{"hello":"world"},"label":"dc_k3j4h5g6f7","reliable":false,"serialization":"binary"}"#;

    #[test]
    fn offer_round_trips_in_peerjs_order() {
        let p: OfferPayload = serde_json::from_str(CAPTURED_OFFER).unwrap();
        assert_eq!(p.serialization, Some(Serialization::Binary));
        assert_eq!(p.reliable, Some(false));
        assert_eq!(serde_json::to_string(&p).unwrap(), CAPTURED_OFFER);
    }

    #[test]
    fn media_offer_and_legacy_browser_field() {
        let j = r#"{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"media","connectionId":"mc_abc","metadata":null,"browser":"chrome"}"#;
        let p: OfferPayload = serde_json::from_str(j).unwrap();
        assert_eq!(p.connection_type, ConnectionType::Media);
        assert_eq!(p.metadata, Some(serde_json::Value::Null));
        assert_eq!(p.browser.as_deref(), Some("chrome"));
        assert_eq!(serde_json::to_string(&p).unwrap(), j);
    }

    #[test]
    fn candidate_payload_from_a_frame() {
        let f = Frame::parse(r#"{"type":"CANDIDATE","payload":{"candidate":{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.10 53421 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"},"type":"data","connectionId":"dc_k3j4h5g6f7"},"dst":"bob"}"#).unwrap();
        let p: CandidatePayload = f.payload_as().unwrap();
        assert_eq!(p.candidate.parsed().unwrap().unwrap().port, 53421);
        assert!(f.payload_as::<OfferPayload>().is_err());
        assert!(Frame::open().payload_as::<ErrorPayload>().unwrap_err().to_string().contains("no payload"));
    }

    #[test]
    fn building_a_client_offer() {
        let p = OfferPayload::data("v=0\r\n".into(), "dc_1", Serialization::Json, true);
        let f = Frame::to_peer(MessageType::Offer, "bob", &p);
        assert_eq!(
            f.to_server_json(),
            r#"{"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data","connectionId":"dc_1","label":"dc_1","reliable":true,"serialization":"json"},"dst":"bob"}"#
        );
    }

    #[test]
    fn peer_id_rule() {
        for ok in ["a", "alice", "a b", "a_b-c", "A1"] {
            assert!(is_valid_peer_id(ok), "{ok}");
        }
        for bad in ["", " a", "a ", "a  b", "a__b", "../etc", "<script>", "ünï"] {
            assert!(!is_valid_peer_id(bad), "{bad}");
        }
    }
}
