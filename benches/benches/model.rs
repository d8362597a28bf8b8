//! Message-model hot paths, side by side with webrtc-rs's `rtc-sdp` on the same input in the same
//! run: `cargo bench -p peerstorm-benches --bench model`.
//!
//! - `sdp/*`: a realistic Chromium audio+video+data offer (`fixtures/chromium/av-data-offer.sdp`,
//!   6 candidates, 3 sections), parsed and emitted by peerstorm (lossless) and by `rtc-sdp`.
//! - `peerjs/*`: a PeerJS OFFER frame carrying that SDP: envelope parse and relay re-emit (what a
//!   broker does), and the full typed decode (what a peer does).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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

criterion_group!(benches, sdp, peerjs);
criterion_main!(benches);
