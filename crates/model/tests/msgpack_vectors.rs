//! MessagePack against vectors made by the encoder peerjs@1.5.5's `MsgPack` serialization uses
//! (`fixtures/msgpack/vectors.jsonl`, from `tools/js/gen-msgpack.mjs`).

mod support;

use peerstorm_model::peerjs::binarypack::Value;
use peerstorm_model::peerjs::dataconn::{Codec, Message, Received};
use peerstorm_model::peerjs::msgpack;
use peerstorm_model::peerjs::payload::Serialization;

#[test]
fn encoding_gives_the_javascript_bytes_and_chunks() {
    let vs = support::vectors("msgpack/vectors.jsonl");
    assert!(vs.len() >= 30);
    for v in &vs {
        let ours = msgpack::encode_messages(&v.value).unwrap();
        assert_eq!(ours.len(), v.messages.len(), "{}: message count", v.name);
        for (i, (a, b)) in ours.iter().zip(&v.messages).enumerate() {
            assert!(
                a == b,
                "{}: message {i} differs: ours {:02x?}.. theirs {:02x?}..",
                v.name,
                &a[..a.len().min(12)],
                &b[..b.len().min(12)]
            );
        }
    }
    assert!(vs.iter().any(|v| v.messages.len() > 2), "a value spans several 32 KiB messages");
}

#[test]
fn one_stream_decodes_every_javascript_value_in_order() {
    // The vectors one after another on one connection, as a PeerJS MsgPack sender writes them.
    let vs = support::vectors("msgpack/vectors.jsonl");
    let mut codec = Codec::for_serialization(&Serialization::MsgPack).unwrap();
    let mut got = Vec::new();
    for m in vs.iter().flat_map(|v| &v.messages) {
        let mut next = codec.decode(m).unwrap();
        while let Some(r) = next {
            got.push(r);
            next = codec.next_buffered().unwrap();
        }
    }
    assert_eq!(got.len(), vs.len());
    for (v, r) in vs.iter().zip(got) {
        let want = if v.name == "close" { Received::Close } else { Received::Data(Message::Packed(v.value.clone())) };
        assert_eq!(r, want, "{}", v.name);
    }
}

#[test]
fn float_values_survive_a_round_trip() {
    for f in [0.1, -2.5, 1e300, f64::INFINITY] {
        let bytes = msgpack::pack(&Value::Float(f)).unwrap();
        assert_eq!(msgpack::unpack(&bytes).unwrap(), Value::Float(f));
    }
}
