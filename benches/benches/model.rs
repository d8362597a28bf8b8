//! Message-model hot paths, side by side with webrtc-rs's `rtc-sdp` on the same input in the same
//! run: `cargo bench -p peerstorm-benches --bench model`.
//!
//! - `sdp/*`: a realistic Chromium audio+video+data offer (`fixtures/chromium/av-data-offer.sdp`,
//!   6 candidates, 3 sections), parsed and emitted by peerstorm (lossless) and by `rtc-sdp`.
//! - `peerjs/*`: a PeerJS OFFER frame carrying that SDP: envelope parse and relay re-emit (what a
//!   broker does), and the full typed decode (what a peer does).
//! - `dataconn/*`: one DataConnection message sent and received (encode, then decode every
//!   data-channel message it became) in the `binary` (BinaryPack) and `MsgPack` serializations: a
//!   16,000-byte binary value (BinaryPack sends one message, MsgPack one) and a 40,000-byte one
//!   (BinaryPack chunks it in three, MsgPack cuts its stream in two), and a small object.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use peerstorm_model::peerjs::binarypack::Value;
use peerstorm_model::peerjs::dataconn::{Codec, Message};
use peerstorm_model::peerjs::payload::{OfferPayload, Serialization};
use peerstorm_model::peerjs::{Frame, MessageType};
use peerstorm_model::sdp::SessionDescription;
use std::hint::black_box;
use std::io::Cursor;

fn offer_sdp() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/chromium/av-data-offer.sdp"))
        .expect("fixture")
}

fn sdp(c: &mut Criterion) {
    let text = offer_sdp();
    // What each parser gives back: peerstorm must be lossless; rtc-sdp is measured as it is.
    assert_eq!(SessionDescription::parse(&text).unwrap().emit(), text);
    let rtc = rtc_sdp::SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).unwrap().marshal();
    eprintln!("sdp input {} bytes; rtc-sdp re-emit is byte-identical: {}", text.len(), rtc == text);

    let mut g = c.benchmark_group("sdp");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_with_input(BenchmarkId::new("parse+emit", "peerstorm"), &text, |b, t| {
        b.iter(|| {
            let sdp = SessionDescription::parse(black_box(t)).unwrap();
            black_box(sdp.emit())
        })
    });
    g.bench_with_input(BenchmarkId::new("parse+emit", "rtc-sdp"), &text, |b, t| {
        b.iter(|| {
            let sdp = rtc_sdp::SessionDescription::unmarshal(&mut Cursor::new(black_box(t).as_bytes())).unwrap();
            black_box(sdp.marshal())
        })
    });
    g.bench_with_input(BenchmarkId::new("parse", "peerstorm"), &text, |b, t| {
        b.iter(|| black_box(SessionDescription::parse(black_box(t)).unwrap()))
    });
    g.bench_with_input(BenchmarkId::new("parse", "rtc-sdp"), &text, |b, t| {
        b.iter(|| black_box(rtc_sdp::SessionDescription::unmarshal(&mut Cursor::new(black_box(t).as_bytes())).unwrap()))
    });
    g.finish();
}

fn peerjs(c: &mut Criterion) {
    let payload = OfferPayload::data(offer_sdp(), "dc_k3j4h5g6f7", Serialization::Binary, true);
    let sent = Frame::to_peer(MessageType::Offer, "bob", &payload).to_server_json();
    let mut g = c.benchmark_group("peerjs");
    g.throughput(Throughput::Bytes(sent.len() as u64));
    g.bench_with_input(BenchmarkId::new("offer-frame", "parse+relay-emit"), &sent, |b, s| {
        b.iter(|| {
            let mut f = Frame::parse(black_box(s)).unwrap();
            f.src = Some("alice".into());
            black_box(f.to_client_json())
        })
    });
    g.bench_with_input(BenchmarkId::new("offer-frame", "parse+typed-payload+sdp"), &sent, |b, s| {
        b.iter(|| {
            let f = Frame::parse(black_box(s)).unwrap();
            let p: OfferPayload = f.payload_as().unwrap();
            black_box(SessionDescription::parse(&p.sdp.sdp).unwrap().media.len())
        })
    });
    g.finish();
}

fn dataconn(c: &mut Criterion) {
    let object = Value::object([
        ("kind", Value::str("chat")),
        ("text", Value::str("hello from a virtual peer")),
        ("seq", Value::Int(4711)),
        ("at", Value::Float(1.7e12 + 0.5)),
        ("tags", Value::Array(vec![Value::str("a"), Value::str("b")])),
    ]);
    let values = [
        ("bin-16000", Value::Bin(vec![0x5a; 16_000])),
        ("bin-40000", Value::Bin(vec![0x5a; 40_000])),
        ("object", object),
    ];
    let mut g = c.benchmark_group("dataconn");
    for (vname, v) in &values {
        for (sname, ser) in [("binary", Serialization::Binary), ("MsgPack", Serialization::MsgPack)] {
            let m = Message::Packed(v.clone());
            g.bench_with_input(BenchmarkId::new(format!("{sname}/send+receive"), vname), &m, |b, m| {
                let mut codec = Codec::for_serialization(&ser).expect("a codec");
                b.iter(|| {
                    let mut got = None;
                    for wire in codec.encode(black_box(m)).unwrap() {
                        if let Some(r) = codec.decode(&wire).unwrap() {
                            got = Some(r);
                        }
                    }
                    black_box(got.expect("a whole message"))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, sdp, peerjs, dataconn);
criterion_main!(benches);
