//! The PeerJS signaling envelope.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// The `type` of a frame. Types this model does not know are kept, not rejected
/// (`peer@1.0.2` silently ignores them; a harness wants to see them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    Open,
    Leave,
    Candidate,
    Offer,
    Answer,
    Expire,
    Heartbeat,
    IdTaken,
    InvalidKey,
    Error,
    Unknown(String),
}

impl MessageType {
    pub fn parse(s: &str) -> Self {
        match s {
            "OPEN" => MessageType::Open,
            "LEAVE" => MessageType::Leave,
            "CANDIDATE" => MessageType::Candidate,
            "OFFER" => MessageType::Offer,
            "ANSWER" => MessageType::Answer,
            "EXPIRE" => MessageType::Expire,
            "HEARTBEAT" => MessageType::Heartbeat,
            "ID-TAKEN" => MessageType::IdTaken,
            "INVALID-KEY" => MessageType::InvalidKey,
            "ERROR" => MessageType::Error,
            other => MessageType::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MessageType::Open => "OPEN",
            MessageType::Leave => "LEAVE",
            MessageType::Candidate => "CANDIDATE",
            MessageType::Offer => "OFFER",
            MessageType::Answer => "ANSWER",
            MessageType::Expire => "EXPIRE",
            MessageType::Heartbeat => "HEARTBEAT",
            MessageType::IdTaken => "ID-TAKEN",
            MessageType::InvalidKey => "INVALID-KEY",
            MessageType::Error => "ERROR",
            MessageType::Unknown(s) => s,
        }
    }

    /// OFFER, ANSWER, CANDIDATE, LEAVE and EXPIRE are relayed peer to peer by `peer@1.0.2`
    /// (protocol.md §2); the others are not.
    pub fn is_relayed(&self) -> bool {
        matches!(
            self,
            MessageType::Offer
                | MessageType::Answer
                | MessageType::Candidate
                | MessageType::Leave
                | MessageType::Expire
        )
    }

    /// OFFER, ANSWER and CANDIDATE are queued for an offline destination; LEAVE and EXPIRE never
    /// are (protocol.md §4.1).
    pub fn is_queued(&self) -> bool {
        matches!(self, MessageType::Offer | MessageType::Answer | MessageType::Candidate)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not JSON at all.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json { line: usize, column: usize, message: String },
    /// JSON, but not a frame: not an object, or a member of the wrong type.
    #[error("not a PeerJS frame: {message}")]
    Shape { message: String },
    /// The payload does not have the shape its type needs.
    #[error("bad {kind} payload: {message}")]
    Payload { kind: String, message: String },
}

impl FrameError {
    fn from_json(e: &serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => FrameError::Shape { message: e.to_string() },
            _ => FrameError::Json { line: e.line(), column: e.column(), message: e.to_string() },
        }
    }
}

/// A PeerJS signaling frame: `{type, src, dst, payload}` and whatever else a sender put in it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// `None` when the frame has no `type` member (or it is `null`).
    pub kind: Option<MessageType>,
    pub src: Option<String>,
    pub dst: Option<String>,
    /// The payload as raw JSON (any JSON value, `null` included), passed through untouched.
    pub payload: Option<Box<RawValue>>,
    /// Other top-level members, in order. The reference broker drops them when relaying.
    pub extra: Vec<(String, Box<RawValue>)>,
}

impl PartialEq for Frame {
    fn eq(&self, o: &Self) -> bool {
        let raw = |a: &Option<Box<RawValue>>| a.as_ref().map(|r| r.get().to_string());
        self.kind == o.kind
            && self.src == o.src
            && self.dst == o.dst
            && raw(&self.payload) == raw(&o.payload)
            && self.extra.len() == o.extra.len()
            && self.extra.iter().zip(&o.extra).all(|(a, b)| a.0 == b.0 && a.1.get() == b.1.get())
    }
}

impl Frame {
    /// Parses one frame (a WebSocket text message, or a binary one decoded as UTF-8).
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let frame = de.deserialize_any(FrameVisitor).map_err(|e| FrameError::from_json(&e))?;
        de.end().map_err(|e| FrameError::from_json(&e))?;
        Ok(frame)
    }

    /// Parses a binary WebSocket message: `peer@1.0.2` decodes it as UTF-8 JSON (protocol.md §2).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, FrameError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| FrameError::Shape { message: format!("not UTF-8 at byte {}", e.valid_up_to()) })?;
        Self::parse(text)
    }

    fn new(kind: MessageType) -> Self {
        Self { kind: Some(kind), src: None, dst: None, payload: None, extra: Vec::new() }
    }

    /// `{"type":"OPEN"}`
    pub fn open() -> Self {
        Self::new(MessageType::Open)
    }

    /// `{"type":"HEARTBEAT"}`
    pub fn heartbeat() -> Self {
        Self::new(MessageType::Heartbeat)
    }

    /// `{"type":"ERROR","payload":{"msg":...}}`
    pub fn error(msg: &str) -> Self {
        Self::new(MessageType::Error).with_payload(&super::payload::ErrorPayload { msg: msg.to_string() })
    }

    /// `{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}`
    pub fn id_taken() -> Self {
        Self::new(MessageType::IdTaken).with_payload(&super::payload::ErrorPayload { msg: "ID is taken".into() })
    }

    /// `{"type":"EXPIRE","src":<unreachable>,"dst":<original sender>}`
    pub fn expire(src: &str, dst: &str) -> Self {
        Self::new(MessageType::Expire).with_src(src).with_dst(dst)
    }

    /// A frame a client sends to `dst` (no `src`: the broker sets it).
    pub fn to_peer(kind: MessageType, dst: &str, payload: &impl serde::Serialize) -> Self {
        Self::new(kind).with_dst(dst).with_payload(payload)
    }

    #[must_use]
    pub fn with_src(mut self, src: &str) -> Self {
        self.src = Some(src.to_string());
        self
    }

    #[must_use]
    pub fn with_dst(mut self, dst: &str) -> Self {
        self.dst = Some(dst.to_string());
        self
    }

    #[must_use]
    pub fn with_payload(mut self, payload: &impl serde::Serialize) -> Self {
        let json = serde_json::to_string(payload).expect("payload types serialize");
        self.payload = Some(RawValue::from_string(json).expect("serde_json output is valid JSON"));
        self
    }

    #[must_use]
    pub fn with_raw_payload(mut self, payload: Box<RawValue>) -> Self {
        self.payload = Some(payload);
        self
    }

    /// The payload read as `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, FrameError> {
        let kind = self.kind.as_ref().map_or("untyped", MessageType::as_str).to_string();
        let raw = self
            .payload
            .as_ref()
            .ok_or_else(|| FrameError::Payload { kind: kind.clone(), message: "the frame has no payload".into() })?;
        serde_json::from_str(raw.get()).map_err(|e| FrameError::Payload { kind, message: e.to_string() })
    }

    /// The JSON a client sends: `{"type":..,"payload":..,"dst":..}` as `peerjs@1.5.5` writes it,
    /// then `src` and extra members if a (forging) client set them.
    pub fn to_server_json(&self) -> String {
        let mut w = JsonObject::with_capacity(self.estimated_len());
        self.write_type(&mut w);
        w.raw("payload", self.payload.as_deref());
        w.string("dst", self.dst.as_deref());
        w.string("src", self.src.as_deref());
        for (k, v) in &self.extra {
            w.raw(k, Some(v));
        }
        w.finish()
    }

    /// The JSON the broker sends: exactly `{"type","src","dst","payload"}` in that order, absent
    /// members omitted, extra members dropped (protocol.md §2, "Server → client relay").
    pub fn to_client_json(&self) -> String {
        let mut w = JsonObject::with_capacity(self.estimated_len());
        self.write_type(&mut w);
        w.string("src", self.src.as_deref());
        w.string("dst", self.dst.as_deref());
        w.raw("payload", self.payload.as_deref());
        w.finish()
    }

    fn write_type(&self, w: &mut JsonObject) {
        w.string("type", self.kind.as_ref().map(MessageType::as_str));
    }

    fn estimated_len(&self) -> usize {
        48 + self.payload.as_ref().map_or(0, |p| p.get().len())
    }
}

/// Writes a JSON object member by member, in the order asked.
struct JsonObject {
    out: String,
    first: bool,
}

impl JsonObject {
    fn with_capacity(n: usize) -> Self {
        let mut out = String::with_capacity(n);
        out.push('{');
        Self { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_string(&mut self.out, k);
        self.out.push(':');
    }

    fn string(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.key(k);
            push_json_string(&mut self.out, v);
        }
    }

    fn raw(&mut self, k: &str, v: Option<&RawValue>) {
        if let Some(v) = v {
            self.key(k);
            self.out.push_str(v.get());
        }
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a JSON string, escaped as `JSON.stringify` does.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A frame parsed without copying, for the relay's hot path: `src`/`dst` and the payload borrow
/// from the input (a string with escapes is unescaped into an owned one). It accepts exactly the
/// frames [`Frame::parse`] accepts (`fuzzing::frame_ref_agrees` holds it to that).
#[derive(Debug, Clone)]
pub struct FrameRef<'a> {
    pub kind: Option<MessageType>,
    pub src: Option<std::borrow::Cow<'a, str>>,
    pub dst: Option<std::borrow::Cow<'a, str>>,
    /// The payload as sent.
    pub payload: Option<&'a RawValue>,
}

impl<'a> FrameRef<'a> {
    /// Parses like [`Frame::parse`] (same errors), borrowing from `text`.
    pub fn parse(text: &'a str) -> Result<Self, FrameError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let frame = de.deserialize_any(FrameRefVisitor).map_err(|e| FrameError::from_json(&e))?;
        de.end().map_err(|e| FrameError::from_json(&e))?;
        Ok(frame)
    }

    /// Appends the server→client JSON (`{type,src,dst,payload}`) with `src` set to `src`.
    pub fn write_client_json(&self, src: &str, out: &mut String) {
        out.push('{');
        let mut first = true;
        let mut key = |out: &mut String, k: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(k);
            out.push_str("\":");
        };
        if let Some(k) = &self.kind {
            key(out, "type");
            push_json_string(out, k.as_str());
        }
        key(out, "src");
        push_json_string(out, src);
        if let Some(d) = &self.dst {
            key(out, "dst");
            push_json_string(out, d);
        }
        if let Some(p) = self.payload {
            key(out, "payload");
            out.push_str(p.get());
        }
        out.push('}');
    }
}

struct FrameRefVisitor;

fn borrowed_string_member<'de, E: de::Error>(
    name: &str,
    raw: &'de RawValue,
) -> Result<Option<std::borrow::Cow<'de, str>>, E> {
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if !text.starts_with('"') {
        return Err(E::custom(format!("member \"{name}\" must be a string, found {}", truncate(text))));
    }
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Ok(Some(std::borrow::Cow::Borrowed(inner)));
    }
    serde_json::from_str::<String>(text).map(|s| Some(std::borrow::Cow::Owned(s))).map_err(E::custom)
}

impl<'de> Visitor<'de> for FrameRefVisitor {
    type Value = FrameRef<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a PeerJS frame (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FrameRef<'de>, A::Error> {
        let mut frame = FrameRef { kind: None, src: None, dst: None, payload: None };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            match key.as_ref() {
                "type" => frame.kind = borrowed_string_member("type", value)?.map(|s| MessageType::parse(&s)),
                "src" => frame.src = borrowed_string_member("src", value)?,
                "dst" => frame.dst = borrowed_string_member("dst", value)?,
                "payload" => frame.payload = Some(value),
                _ => {}
            }
        }
        Ok(frame)
    }
}

struct FrameVisitor;

fn string_member<E: de::Error>(name: &str, raw: &RawValue) -> Result<Option<String>, E> {
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if !text.starts_with('"') {
        return Err(E::custom(format!("member \"{name}\" must be a string, found {}", truncate(text))));
    }
    serde_json::from_str::<String>(text).map(Some).map_err(E::custom)
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl<'de> Visitor<'de> for FrameVisitor {
    type Value = Frame;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a PeerJS frame (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Frame, A::Error> {
        let mut frame = Frame { kind: None, src: None, dst: None, payload: None, extra: Vec::new() };
        // Later duplicates win, as with JSON.parse.
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: Box<RawValue> = map.next_value()?;
            match key.as_ref() {
                "type" => frame.kind = string_member("type", &value)?.map(|s| MessageType::parse(&s)),
                "src" => frame.src = string_member("src", &value)?,
                "dst" => frame.dst = string_member("dst", &value)?,
                "payload" => frame.payload = Some(value),
                _ => {
                    frame.extra.retain(|(k, _)| k != key.as_ref());
                    frame.extra.push((key.into_owned(), value));
                }
            }
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_shape_matches_the_reference() {
        // protocol.md §2: src spoofed and an extra member; the server rebuilds {type,src,dst,payload}.
        let sent = r#"{"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data"},"dst":"bob","src":"mallory","extra":42}"#;
        let mut f = Frame::parse(sent).unwrap();
        assert_eq!(f.kind, Some(MessageType::Offer));
        assert_eq!(f.extra.len(), 1);
        assert_eq!(f.to_server_json(), sent);
        f.src = Some("alice".into());
        assert_eq!(
            f.to_client_json(),
            r#"{"type":"OFFER","src":"alice","dst":"bob","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data"}}"#
        );
    }

    #[test]
    fn server_frames_have_the_reference_bytes() {
        assert_eq!(Frame::open().to_client_json(), r#"{"type":"OPEN"}"#);
        assert_eq!(Frame::heartbeat().to_server_json(), r#"{"type":"HEARTBEAT"}"#);
        assert_eq!(Frame::id_taken().to_client_json(), r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#);
        assert_eq!(
            Frame::error("Invalid key provided").to_client_json(),
            r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#
        );
        assert_eq!(
            Frame::expire("nobody", "alice").to_client_json(),
            r#"{"type":"EXPIRE","src":"nobody","dst":"alice"}"#
        );
    }

    #[test]
    fn unknown_and_missing_types_are_kept() {
        assert_eq!(
            Frame::parse(r#"{"type":"FOO","dst":"bob"}"#).unwrap().kind,
            Some(MessageType::Unknown("FOO".into()))
        );
        let f = Frame::parse(r#"{"dst":"bob","payload":{}}"#).unwrap();
        assert_eq!(f.kind, None);
        assert_eq!(f.payload.unwrap().get(), "{}");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(matches!(Frame::parse("{not json"), Err(FrameError::Json { line: 1, .. })));
        for s in ["null", "42", "\"str\"", "[]"] {
            let e = Frame::parse(s).unwrap_err();
            assert!(matches!(e, FrameError::Shape { .. }), "{s}: {e:?}");
            assert!(e.to_string().contains("JSON object"), "{e}");
        }
        let e = Frame::parse(r#"{"type":5}"#).unwrap_err();
        assert!(e.to_string().contains("\"type\" must be a string"), "{e}");
        assert!(Frame::parse(r#"{"type":"OPEN"} x"#).is_err());
        assert!(Frame::parse_bytes(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn borrowed_frames_agree_with_owned_ones() {
        for text in [
            r#"{"type":"OFFER","payload":{"a":[1,"x\"y"]},"dst":"bo\u0062","src":"mallory","extra":42}"#,
            r#"{"type":"CANDIDATE","dst":"bob"}"#,
            r#"{"dst":"bob","payload":null}"#,
        ] {
            let owned = Frame::parse(text).unwrap();
            let borrowed = FrameRef::parse(text).unwrap();
            assert_eq!(borrowed.kind, owned.kind);
            assert_eq!(borrowed.dst.as_deref(), owned.dst.as_deref());
            let mut with_src = owned.clone();
            with_src.src = Some("alice".into());
            let mut out = String::new();
            borrowed.write_client_json("alice", &mut out);
            assert_eq!(out, with_src.to_client_json());
        }
        for bad in ["{not json", "null", "[]", r#"{"type":5}"#, r#"{"dst":7}"#] {
            assert_eq!(FrameRef::parse(bad).is_err(), Frame::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_members_count_as_absent_but_a_null_payload_is_kept() {
        let f = Frame::parse(r#"{"type":"OFFER","dst":null,"payload":null}"#).unwrap();
        assert_eq!(f.dst, None);
        assert_eq!(f.to_client_json(), r#"{"type":"OFFER","payload":null}"#);
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        let f = Frame::expire("a\"b\\c\u{1}\n", "ü");
        assert_eq!(f.to_client_json(), "{\"type\":\"EXPIRE\",\"src\":\"a\\\"b\\\\c\\u0001\\n\",\"dst\":\"ü\"}");
        assert_eq!(Frame::parse(&f.to_client_json()).unwrap(), f);
    }
}
