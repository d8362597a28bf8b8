//! BinaryPack and chunking against vectors made by the real JavaScript code peerjs@1.5.5 runs
//! (`fixtures/binarypack/vectors.jsonl`, from `tools/js/gen-binarypack.mjs`).

use peerstorm_model::peerjs::binarypack::{self, Value};
use peerstorm_model::peerjs::dataconn::{BinaryReceiver, BinarySender, Received};

mod support;

use support::Vector;

fn vectors() -> Vec<Vector> {
    support::vectors("binarypack/vectors.jsonl")
}

#[test]
fn packing_gives_the_javascript_bytes() {
    let vs = vectors();
    assert!(vs.len() >= 30);
    // The generator used one chunker for every vector (PeerJS's `util` singleton), so chunk ids
    // count up across the file; one sender here does the same.
    let mut sender = BinarySender::new();
    for v in &vs {
        let msgs = sender.encode(&v.value).unwrap();
        assert_eq!(msgs.len(), v.messages.len(), "{}: message count", v.name);
        for (i, (ours, theirs)) in msgs.iter().zip(&v.messages).enumerate() {
            assert!(ours == theirs, "{}: message {i} differs", v.name);
        }
    }
}

#[test]
fn unpacking_the_javascript_bytes_gives_the_value() {
    for v in vectors() {
        let mut r = BinaryReceiver::default();
        let mut got = None;
        for (i, m) in v.messages.iter().enumerate() {
            let out = r.handle(m).unwrap_or_else(|e| panic!("{}: {e}", v.name));
            if i + 1 < v.messages.len() {
                assert_eq!(out, None, "{}: complete too early", v.name);
            } else {
                got = out;
            }
        }
        let want = if v.name == "close" { Received::Close } else { Received::Data(v.value.clone()) };
        assert_eq!(got, Some(want), "{}", v.name);
    }
}

#[test]
fn chunked_vectors_really_are_chunked() {
    let vs = vectors();
    let big = vs.iter().find(|v| v.name == "chunked_bin_40000").unwrap();
    assert_eq!(big.messages.len(), 3);
    let first = binarypack::unpack(&big.messages[0]).unwrap();
    assert_eq!(first.get("total"), Some(&Value::Int(3)));
}
