//! The DataConnection serializations of `peerjs@1.5.5` (protocol.md §5, "Data-channel serializations"):
//!
//! - `binary`: each value is BinaryPacked; a packed message over [`CHUNKED_MTU`] bytes is split
//!   into chunks of that size, each sent as the BinaryPack object
//!   `{__peerData: <id>, n: <index>, data: <bytes>, total: <count>}` with a per-connection id
//!   counting from 1, and the receiver reassembles when it has `total` chunks.
//! - `json`: `JSON.stringify` as UTF-8; a message of [`CHUNKED_MTU`] bytes or more is refused
//!   (`message-too-big`), never chunked.
//! - `raw`: the bytes are sent as they are.
//!
//! `{__peerData: {type: "close"}}` asks the other side to close (`close({flush: true})`).

use super::binarypack::{self, PackError, UnpackError, Value};
use std::collections::BTreeMap;

/// PeerJS's chunk size (`util.chunkedMTU`).
pub const CHUNKED_MTU: usize = 16300;

/// A message that could not be sent or received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("message too big for the JSON serialization: {size} bytes (at most {max})")]
    MessageTooBig { size: usize, max: usize },
    #[error("not JSON: {0}")]
    Json(String),
    #[error("bad chunk: {0}")]
    BadChunk(String),
    #[error("reassembly limit: {0}")]
    Limit(String),
    #[error(transparent)]
    Stream(#[from] super::msgpack::StreamError),
}

/// What a receiver got: a value, or the peer's request to close.
#[derive(Debug, Clone, PartialEq)]
pub enum Received<T> {
    Data(T),
    Close,
}

/// The sending side of a `binary` DataConnection.
#[derive(Debug, Clone)]
pub struct BinarySender {
    next_id: u64,
}

impl Default for BinarySender {
    fn default() -> Self {
        Self { next_id: 1 }
    }
}

impl BinarySender {
    pub fn new() -> Self {
        Self::default()
    }

    /// The data-channel messages that carry `value`: one, or the chunks of it.
    pub fn encode(&mut self, value: &Value) -> Result<Vec<Vec<u8>>, DataError> {
        let packed = binarypack::pack(value)?;
        self.encode_packed(packed)
    }

    /// As [`BinarySender::encode`], for bytes already packed.
    pub fn encode_packed(&mut self, packed: Vec<u8>) -> Result<Vec<Vec<u8>>, DataError> {
        if packed.len() <= CHUNKED_MTU {
            return Ok(vec![packed]);
        }
        let id = self.next_id;
        self.next_id += 1;
        let total = packed.len().div_ceil(CHUNKED_MTU);
        packed
            .chunks(CHUNKED_MTU)
            .enumerate()
            .map(|(n, piece)| {
                // Key order as PeerJS's chunker builds the object: __peerData, n, data, total.
                let chunk = Value::Map(vec![
                    (Value::str("__peerData"), Value::Int(id as i64)),
                    (Value::str("n"), Value::Int(n as i64)),
                    (Value::str("data"), Value::Bin(piece.to_vec())),
                    (Value::str("total"), Value::Int(total as i64)),
                ]);
                Ok(binarypack::pack(&chunk)?)
            })
            .collect()
    }

    /// The close request `close({flush: true})` sends.
    pub fn close_message() -> Vec<u8> {
        binarypack::pack(&close_value()).expect("a small map packs")
    }
}

/// MsgPack's close request (`close({flush: true})`): `{__peerData: {type: "close"}}`, as the
/// MsgPack connection's reader checks it (`r.__peerData?.type === "close"`).
fn is_close(v: &Value) -> bool {
    v.get("__peerData").and_then(|p| p.get("type")).and_then(Value::as_str) == Some("close")
}

fn close_value() -> Value {
    Value::object([("__peerData", Value::object([("type", Value::str("close"))]))])
}

/// Limits on what a receiver holds while reassembling, so a peer cannot make it buffer without
/// bound (PeerJS itself has none).
#[derive(Debug, Clone, Copy)]
pub struct ReassemblyLimits {
    /// Most chunked messages in flight at once.
    pub max_pending: usize,
    /// Largest reassembled message, in bytes.
    pub max_message_bytes: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self { max_pending: 64, max_message_bytes: 256 << 20 }
    }
}

#[derive(Debug)]
struct Pending {
    total: usize,
    parts: Vec<Option<Vec<u8>>>,
    have: usize,
}

/// The receiving side of a `binary` DataConnection.
#[derive(Debug, Default)]
pub struct BinaryReceiver {
    pending: BTreeMap<i64, Pending>,
    limits: ReassemblyLimits,
}

impl BinaryReceiver {
    pub fn new(limits: ReassemblyLimits) -> Self {
        Self { pending: BTreeMap::new(), limits }
    }

    /// Chunked messages still waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Handles one data-channel message: `Ok(None)` while a chunked message is incomplete.
    pub fn handle(&mut self, message: &[u8]) -> Result<Option<Received<Value>>, DataError> {
        let v = binarypack::unpack(message)?;
        let Some(peer_data) = v.get("__peerData").filter(|p| p.is_truthy()) else {
            return Ok(Some(Received::Data(v)));
        };
        if peer_data.get("type").and_then(Value::as_str) == Some("close") {
            return Ok(Some(Received::Close));
        }
        let Some(whole) = self.handle_chunk(&v)? else {
            return Ok(None);
        };
        let v = binarypack::unpack(&whole)?;
        if v.get("__peerData").is_some_and(Value::is_truthy) {
            return Err(DataError::BadChunk("a reassembled message is itself a chunk".into()));
        }
        Ok(Some(Received::Data(v)))
    }

    fn handle_chunk(&mut self, v: &Value) -> Result<Option<Vec<u8>>, DataError> {
        let bad = |m: &str| DataError::BadChunk(m.to_string());
        let id = v.get("__peerData").and_then(Value::as_i64).ok_or_else(|| bad("__peerData is not an integer id"))?;
        let n = v.get("n").and_then(Value::as_i64).ok_or_else(|| bad("n is not an integer"))?;
        let total = v.get("total").and_then(Value::as_i64).ok_or_else(|| bad("total is not an integer"))?;
        let data = v.get("data").and_then(Value::as_bin).ok_or_else(|| bad("data is not binary"))?;
        let max_total = self.limits.max_message_bytes.div_ceil(CHUNKED_MTU) as i64;
        if total < 1 || total > max_total {
            return Err(DataError::Limit(format!("total {total} chunks (at most {max_total})")));
        }
        if n < 0 || n >= total {
            return Err(bad(&format!("chunk index {n} outside 0..{total}")));
        }
        if !self.pending.contains_key(&id) && self.pending.len() >= self.limits.max_pending {
            return Err(DataError::Limit(format!("{} chunked messages already pending", self.pending.len())));
        }
        let p = self.pending.entry(id).or_insert_with(|| Pending {
            total: total as usize,
            parts: vec![None; total as usize],
            have: 0,
        });
        if p.total != total as usize {
            return Err(bad(&format!("chunk {n} of message {id} says total {total}, earlier chunks {}", p.total)));
        }
        let slot = &mut p.parts[n as usize];
        if slot.is_some() {
            return Err(bad(&format!("chunk {n} of message {id} arrived twice")));
        }
        *slot = Some(data.to_vec());
        p.have += 1;
        if p.have < p.total {
            return Ok(None);
        }
        let p = self.pending.remove(&id).expect("the entry was just used");
        // Part by part (a byte-by-byte collect of the flattened parts cost ~100 µs for 40 kB).
        let parts: Vec<Vec<u8>> = p.parts.into_iter().flatten().collect();
        let mut whole = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        for part in &parts {
            whole.extend_from_slice(part);
        }
        Ok(Some(whole))
    }
}

/// Encodes a value for the `json` serialization; refuses messages of [`CHUNKED_MTU`] bytes or
/// more, as PeerJS does (`>=`, not `>`).
pub fn json_encode(value: &serde_json::Value) -> Result<Vec<u8>, DataError> {
    let bytes = serde_json::to_vec(value).map_err(|e| DataError::Json(e.to_string()))?;
    if bytes.len() >= CHUNKED_MTU {
        return Err(DataError::MessageTooBig { size: bytes.len(), max: CHUNKED_MTU - 1 });
    }
    Ok(bytes)
}

/// Decodes a `json` message; the close request is recognised.
pub fn json_decode(message: &[u8]) -> Result<Received<serde_json::Value>, DataError> {
    let v: serde_json::Value = serde_json::from_slice(message).map_err(|e| DataError::Json(e.to_string()))?;
    if v.get("__peerData").and_then(|p| p.get("type")).and_then(|t| t.as_str()) == Some("close") {
        return Ok(Received::Close);
    }
    Ok(Received::Data(v))
}

/// A message as the application sees it, in each serialization's own terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `binary` / `binary-utf8`: a BinaryPack value; `MsgPack`: a MessagePack value.
    Packed(Value),
    /// `json`: a JSON value.
    Json(serde_json::Value),
    /// `raw`: bytes handed to the data channel unchanged.
    Raw(Vec<u8>),
}

/// One DataConnection's codec, chosen by its `serialization`: what goes on the data channel for
/// each message, and what each received data-channel message means.
#[derive(Debug)]
pub enum Codec {
    Binary { sender: BinarySender, receiver: BinaryReceiver },
    Json,
    Raw,
    MsgPack(super::msgpack::StreamDecoder),
}

impl Codec {
    /// The codec for a serialization name; `None` for ones peerstorm does not speak (custom
    /// serializers).
    pub fn for_serialization(s: &super::payload::Serialization) -> Option<Self> {
        use super::payload::Serialization as S;
        match s {
            S::Binary | S::BinaryUtf8 => {
                Some(Codec::Binary { sender: BinarySender::new(), receiver: BinaryReceiver::default() })
            }
            S::Json => Some(Codec::Json),
            S::Raw => Some(Codec::Raw),
            S::MsgPack => Some(Codec::MsgPack(super::msgpack::StreamDecoder::default())),
            S::Other(_) => None,
        }
    }

    /// The data-channel messages that carry `m`. A message of the wrong kind for this codec is
    /// converted the way PeerJS would see it (raw bytes become BinaryPack binary, and so on).
    pub fn encode(&mut self, m: &Message) -> Result<Vec<Vec<u8>>, DataError> {
        match (self, m) {
            (Codec::Binary { sender, .. }, Message::Packed(v)) => sender.encode(v),
            (Codec::Binary { sender, .. }, Message::Raw(b)) => sender.encode(&Value::Bin(b.clone())),
            (Codec::Binary { sender, .. }, Message::Json(j)) => sender.encode(&Value::from_json(j)),
            (Codec::Json, Message::Json(j)) => Ok(vec![json_encode(j)?]),
            (Codec::Json, Message::Packed(v)) => Ok(vec![json_encode(&v.to_json())?]),
            (Codec::Json, Message::Raw(b)) => {
                Err(DataError::Json(format!("{} raw bytes cannot go over a json connection", b.len())))
            }
            (Codec::Raw, Message::Raw(b)) => Ok(vec![b.clone()]),
            (Codec::Raw, Message::Json(j)) => {
                Ok(vec![serde_json::to_vec(j).map_err(|e| DataError::Json(e.to_string()))?])
            }
            (Codec::Raw, Message::Packed(v)) => Ok(vec![binarypack::pack(v)?]),
            (Codec::MsgPack(_), Message::Packed(v)) => Ok(super::msgpack::encode_messages(v)?),
            (Codec::MsgPack(_), Message::Raw(b)) => Ok(super::msgpack::encode_messages(&Value::Bin(b.clone()))?),
            (Codec::MsgPack(_), Message::Json(j)) => Ok(super::msgpack::encode_messages(&Value::from_json(j))?),
        }
    }

    /// Handles one data-channel message: `Ok(None)` while a chunked message is incomplete.
    /// `MsgPack` is a byte stream, so one message may complete several values: after `decode`,
    /// call [`Codec::next_buffered`] until it returns `None`.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Option<Received<Message>>, DataError> {
        Ok(match self {
            Codec::Binary { receiver, .. } => receiver.handle(bytes)?.map(|r| match r {
                Received::Data(v) => Received::Data(Message::Packed(v)),
                Received::Close => Received::Close,
            }),
            Codec::Json => Some(match json_decode(bytes)? {
                Received::Data(j) => Received::Data(Message::Json(j)),
                Received::Close => Received::Close,
            }),
            Codec::Raw => Some(Received::Data(Message::Raw(bytes.to_vec()))),
            Codec::MsgPack(d) => match d.push_whole(bytes) {
                Some(v) => Some(if is_close(&v) { Received::Close } else { Received::Data(Message::Packed(v)) }),
                None => return self.next_buffered(),
            },
        })
    }

    /// A further value completed by the last [`Codec::decode`] (`MsgPack` only).
    pub fn next_buffered(&mut self) -> Result<Option<Received<Message>>, DataError> {
        let Codec::MsgPack(d) = self else { return Ok(None) };
        Ok(d.next_value()?.map(|v| if is_close(&v) { Received::Close } else { Received::Data(Message::Packed(v)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_go_in_one_message() {
        let mut s = BinarySender::new();
        let m = s.encode(&Value::str("hello")).unwrap();
        assert_eq!(m.len(), 1);
        let mut r = BinaryReceiver::default();
        assert_eq!(r.handle(&m[0]).unwrap(), Some(Received::Data(Value::str("hello"))));
    }

    #[test]
    fn large_values_are_chunked_at_16300_and_reassembled_in_any_order() {
        let big = Value::Bin((0..40_000u32).map(|i| i as u8).collect());
        let mut s = BinarySender::new();
        let mut msgs = s.encode(&big).unwrap();
        assert_eq!(msgs.len(), 3, "40,005 packed bytes make 3 chunks");
        let first = binarypack::unpack(&msgs[0]).unwrap();
        assert_eq!(first.get("__peerData"), Some(&Value::Int(1)));
        assert_eq!(first.get("total"), Some(&Value::Int(3)));
        assert_eq!(first.get("data").unwrap().as_bin().unwrap().len(), CHUNKED_MTU);
        msgs.swap(0, 2);
        let mut r = BinaryReceiver::default();
        assert_eq!(r.handle(&msgs[0]).unwrap(), None);
        assert_eq!(r.handle(&msgs[1]).unwrap(), None);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.handle(&msgs[2]).unwrap(), Some(Received::Data(big)));
        assert_eq!(r.pending(), 0);
        // The next chunked message gets the next id.
        let again = s.encode(&Value::Bin(vec![0; 20_000])).unwrap();
        assert_eq!(binarypack::unpack(&again[0]).unwrap().get("__peerData"), Some(&Value::Int(2)));
    }

    #[test]
    fn exactly_16300_packed_bytes_is_not_chunked() {
        // A binary value of n bytes packs to n + 3 bytes (0xda + a 16-bit length).
        let mut s = BinarySender::new();
        assert_eq!(s.encode(&Value::Bin(vec![7; CHUNKED_MTU - 3])).unwrap().len(), 1);
        assert_eq!(s.encode(&Value::Bin(vec![7; CHUNKED_MTU - 2])).unwrap().len(), 2);
    }

    #[test]
    fn hostile_chunks_are_refused() {
        let chunk = |id: i64, n: i64, total: i64| {
            binarypack::pack(&Value::object([
                ("__peerData", Value::Int(id)),
                ("n", Value::Int(n)),
                ("data", Value::Bin(vec![1])),
                ("total", Value::Int(total)),
            ]))
            .unwrap()
        };
        let mut r = BinaryReceiver::new(ReassemblyLimits { max_pending: 2, max_message_bytes: 1 << 20 });
        assert!(matches!(r.handle(&chunk(1, 5, 3)), Err(DataError::BadChunk(_))));
        assert!(matches!(r.handle(&chunk(1, 0, 1_000_000)), Err(DataError::Limit(_))));
        assert_eq!(r.handle(&chunk(1, 0, 2)).unwrap(), None);
        assert!(matches!(r.handle(&chunk(1, 0, 2)), Err(DataError::BadChunk(m)) if m.contains("twice")));
        assert!(matches!(r.handle(&chunk(1, 1, 3)), Err(DataError::BadChunk(_))));
        assert_eq!(r.handle(&chunk(2, 0, 2)).unwrap(), None);
        assert!(matches!(r.handle(&chunk(3, 0, 2)), Err(DataError::Limit(_))));
    }

    #[test]
    fn codecs_by_serialization_name() {
        use crate::peerjs::payload::Serialization;
        let mut raw = Codec::for_serialization(&Serialization::Raw).unwrap();
        assert_eq!(raw.encode(&Message::Raw(vec![1, 2, 3])).unwrap(), vec![vec![1, 2, 3]]);
        assert_eq!(raw.decode(&[9]).unwrap(), Some(Received::Data(Message::Raw(vec![9]))));
        let mut json = Codec::for_serialization(&Serialization::Json).unwrap();
        let wire = json.encode(&Message::Json(serde_json::json!({"n": 1}))).unwrap();
        assert_eq!(wire, vec![br#"{"n":1}"#.to_vec()]);
        assert!(json.encode(&Message::Raw(vec![0])).is_err());
        let mut bin = Codec::for_serialization(&Serialization::Binary).unwrap();
        let wire = bin.encode(&Message::Raw(vec![0; 20_000])).unwrap();
        assert_eq!(wire.len(), 2);
        assert_eq!(bin.decode(&wire[0]).unwrap(), None);
        assert_eq!(bin.decode(&wire[1]).unwrap(), Some(Received::Data(Message::Packed(Value::Bin(vec![0; 20_000])))));
        // MsgPack: a byte stream; two values in one message both come out, and the close
        // request is recognised.
        let mut mp = Codec::for_serialization(&Serialization::MsgPack).unwrap();
        let mut wire = mp.encode(&Message::Packed(Value::Int(1))).unwrap().concat();
        wire.extend(mp.encode(&Message::Packed(close_value())).unwrap().concat());
        assert_eq!(mp.decode(&wire).unwrap(), Some(Received::Data(Message::Packed(Value::Int(1)))));
        assert_eq!(mp.next_buffered().unwrap(), Some(Received::Close));
        assert_eq!(mp.next_buffered().unwrap(), None);
        assert!(Codec::for_serialization(&Serialization::Other("custom".into())).is_none());
    }

    #[test]
    fn close_is_recognised() {
        let mut r = BinaryReceiver::default();
        assert_eq!(r.handle(&BinarySender::close_message()).unwrap(), Some(Received::Close));
        assert_eq!(json_decode(br#"{"__peerData":{"type":"close"}}"#).unwrap(), Received::Close);
    }

    #[test]
    fn json_refuses_16300_bytes_or_more() {
        let ok = serde_json::Value::String("x".repeat(CHUNKED_MTU - 3));
        assert_eq!(json_encode(&ok).unwrap().len(), CHUNKED_MTU - 1);
        let big = serde_json::Value::String("x".repeat(CHUNKED_MTU - 2));
        assert_eq!(json_encode(&big), Err(DataError::MessageTooBig { size: CHUNKED_MTU, max: CHUNKED_MTU - 1 }));
        let v = serde_json::json!({"a": [1, 2.5, "ü"]});
        assert_eq!(json_decode(&json_encode(&v).unwrap()).unwrap(), Received::Data(v));
    }
}
