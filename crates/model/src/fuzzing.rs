//! The invariants the fuzz targets (`fuzz/`) and the property tests check, in one place: each
//! function takes arbitrary bytes and panics only if an invariant breaks. Parsers must never
//! panic, whatever the input.

use crate::candidate::Candidate;
use crate::peerjs::binarypack::{self, Value};
use crate::peerjs::dataconn::{BinaryReceiver, ReassemblyLimits};
use crate::peerjs::msgpack;
use crate::peerjs::{Frame, FrameRef};
use crate::sdp::{SessionDescription, check_jsep};

/// SDP: the lenient parse never panics; whatever the strict parse accepts emits back to the input
/// byte for byte, and parses again to the same description.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lenient = SessionDescription::parse_lenient(text);
    let _ = check_jsep(&lenient.sdp, None);
    let _ = lenient.sdp.emit();
    if let Ok(sdp) = SessionDescription::parse(text) {
        let emitted = sdp.emit();
        assert_eq!(emitted, text, "strictly parsed SDP must round-trip");
        assert_eq!(SessionDescription::parse(&emitted).as_ref(), Ok(&sdp));
        for m in &sdp.media {
            for a in m.attributes() {
                let _ = a.typed();
            }
        }
    }
}

/// Candidates: whatever parses displays back to its input.
pub fn candidate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = Candidate::parse(text) {
        let s = c.to_string();
        assert_eq!(s, text.strip_prefix("a=").unwrap_or(text), "parsed candidate must round-trip");
        let _ = c.address_kind();
    }
}

/// The borrowed [`FrameRef::parse`] the relay uses accepts exactly the frames
/// [`Frame::parse`] accepts, and relays them to the same bytes.
pub fn frame_ref_agrees(text: &str) {
    let borrowed = FrameRef::parse(text);
    let owned = Frame::parse(text);
    assert_eq!(
        owned.is_ok(),
        borrowed.is_ok(),
        "Frame::parse and FrameRef::parse disagree on {text:?}: {owned:?} vs {borrowed:?}"
    );
    if let (Ok(mut o), Ok(b)) = (owned, borrowed) {
        assert_eq!((&o.kind, o.dst.as_deref()), (&b.kind, b.dst.as_deref()));
        o.src = Some("relay-src".into());
        let mut out = String::new();
        b.write_client_json("relay-src", &mut out);
        assert_eq!(out, o.to_client_json());
    }
}

/// Frames: whatever parses survives both emit shapes and parses to the same frame again.
pub fn frame(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        frame_ref_agrees(text);
    }
    if let Ok(f) = Frame::parse_bytes(data) {
        let server = f.to_server_json();
        assert_eq!(Frame::parse(&server).as_ref(), Ok(&f), "client->server emit must parse back");
        let client = Frame::parse(&f.to_client_json()).expect("server->client emit must parse");
        assert_eq!((&client.kind, &client.src, &client.dst), (&f.kind, &f.src, &f.dst));
        let _ = f.payload_as::<crate::peerjs::payload::OfferPayload>();
    }
}

/// The value BinaryPack can carry back for `v`: undefined packs as null and integral floats pack
/// as integers, as in JavaScript.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Undefined => Value::Null,
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 => Value::Int(*f as i64),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Map(m) => Value::Map(m.iter().map(|(k, x)| (normalize(k), normalize(x))).collect()),
        other => other.clone(),
    }
}

/// BinaryPack: whatever unpacks packs again, and that unpacks to the same (normalized) value;
/// a receiver fed the bytes never panics.
pub fn binarypack(data: &[u8]) {
    if let Ok(v) = binarypack::unpack(data)
        && let Ok(packed) = binarypack::pack(&v)
    {
        let back = binarypack::unpack(&packed).expect("our own packing must unpack");
        assert!(same(&back, &normalize(&v)), "pack/unpack must round-trip");
    }
    let mut r = BinaryReceiver::new(ReassemblyLimits { max_pending: 4, max_message_bytes: 1 << 20 });
    for piece in data.split(|&b| b == 0xff) {
        let _ = r.handle(piece);
    }
}

/// What a value becomes after a trip through `@msgpack/msgpack`: `undefined` is nil, and a
/// double that is a safe integer takes the integer form.
pub fn normalize_msgpack(v: &Value) -> Value {
    match v {
        Value::Undefined => Value::Null,
        Value::Float(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 => Value::Int(*f as i64),
        Value::Array(a) => Value::Array(a.iter().map(normalize_msgpack).collect()),
        Value::Map(m) => Value::Map(m.iter().map(|(k, x)| (normalize_msgpack(k), normalize_msgpack(x))).collect()),
        other => other.clone(),
    }
}

/// MessagePack: whatever unpacks packs again and unpacks to the same (normalized) value; a stream
/// decoder fed the bytes in pieces never panics, and gives the same values as whole-buffer
/// decoding.
pub fn msgpack(data: &[u8]) {
    if let Ok(v) = msgpack::unpack(data)
        && let Ok(packed) = msgpack::pack(&v)
    {
        let back = msgpack::unpack(&packed).expect("our own packing must unpack");
        assert!(same(&back, &normalize_msgpack(&v)), "pack/unpack must round-trip");
    }
    let mut whole = Vec::new();
    let mut rest = data;
    while let Ok((v, used)) = msgpack::unpack_prefix(rest) {
        whole.push(v);
        rest = &rest[used..];
    }
    // The same bytes as data-channel messages of 7 and 100 bytes, through `push` and through
    // `push_whole` (the fast path for a message that is one whole value): the same values, in
    // order, as far as the stream gets.
    for (size, whole_messages) in [(7, false), (7, true), (100, true)] {
        let mut d = msgpack::StreamDecoder::new(1 << 20);
        let mut got = Vec::new();
        'messages: for m in data.chunks(size) {
            if whole_messages {
                if let Some(v) = d.push_whole(m) {
                    got.push(v);
                    continue;
                }
            } else {
                d.push(m);
            }
            loop {
                match d.next_value() {
                    Ok(Some(v)) => got.push(v),
                    Ok(None) => break,
                    Err(_) => break 'messages,
                }
            }
        }
        assert!(got.len() <= whole.len(), "the stream found values the buffer did not");
        for (a, b) in got.iter().zip(&whole) {
            assert!(same(a, b), "stream and buffer decoding must agree");
        }
    }
}

/// Equality where NaN equals NaN (a NaN double unpacks, and cannot equal itself).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
        }
        _ => a == b,
    }
}
