//! peerstorm patch: reports and NACKs leave in SSRC order, whatever order the streams were
//! bound in and in every process (a HashMap's iteration order differs per process, which made
//! seeded simulations of calls with loss differ run to run).

use rtc_interceptor::{
    AttributedPacket, Interceptor, NackGeneratorBuilder, Packet, ReceiverReportBuilder, Registry, SenderReportBuilder,
    Slot, StreamInfo, TaggedPacket,
};
use sansio::Protocol;
use shared::TransportContext;
use std::time::{Duration, Instant};

const SSRCS: [u32; 5] = [0x9000_0000, 0x1000_0000, 0xF000_0000, 0x5000_0000, 0x3000_0000];

fn info(ssrc: u32) -> StreamInfo {
    StreamInfo {
        ssrc,
        clock_rate: 90_000,
        mime_type: "video/VP8".to_string(),
        rtcp_feedback: vec![rtc_interceptor::RTCPFeedback { typ: "nack".into(), parameter: String::new() }],
        ..Default::default()
    }
}

fn rtp(now: Instant, ssrc: u32, seq: u16) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(Packet::Rtp(rtp::Packet {
            header: rtp::header::Header { ssrc, sequence_number: seq, timestamp: u32::from(seq) * 3000, ..Default::default() },
            payload: vec![0u8; 100].into(),
            ..Default::default()
        })),
    }
}

/// The SSRC each RTCP packet the chain writes is about, in order.
fn written(chain: &mut impl Protocol<TaggedPacket, TaggedPacket, (), Wout = TaggedPacket>) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(p) = chain.poll_write() {
        if let Packet::Rtcp(packets) = &p.message.packet {
            for p in packets {
                let any = p.as_any();
                if let Some(rr) = any.downcast_ref::<rtcp::receiver_report::ReceiverReport>() {
                    out.extend(rr.reports.iter().map(|r| r.ssrc));
                } else if let Some(sr) = any.downcast_ref::<rtcp::sender_report::SenderReport>() {
                    out.push(sr.ssrc);
                } else if let Some(n) =
                    any.downcast_ref::<rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack>()
                {
                    out.push(n.media_ssrc);
                }
            }
        }
    }
    out
}

fn sorted() -> Vec<u32> {
    let mut s = SSRCS.to_vec();
    s.sort();
    s
}

#[test]
fn receiver_reports_come_in_ssrc_order() {
    let mut chain = Registry::new()
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().with_interval(Duration::from_millis(100)).build())
        .build();
    let t0 = Instant::now();
    for ssrc in SSRCS {
        chain.bind_remote_stream(&info(ssrc));
        chain.handle_read(rtp(t0, ssrc, 1)).unwrap();
    }
    while chain.poll_read().is_some() {}
    chain.handle_timeout(t0 + Duration::from_millis(150)).unwrap();
    assert_eq!(written(&mut chain), sorted());
}

#[test]
fn sender_reports_come_in_ssrc_order() {
    let mut chain = Registry::new()
        .with(Slot::SenderReport, SenderReportBuilder::new().with_interval(Duration::from_millis(100)).build())
        .build();
    let t0 = Instant::now();
    for ssrc in SSRCS {
        chain.bind_local_stream(&info(ssrc));
        chain.handle_write(rtp(t0, ssrc, 1)).unwrap();
    }
    while chain.poll_write().is_some() {}
    chain.handle_timeout(t0 + Duration::from_millis(150)).unwrap();
    assert_eq!(written(&mut chain), sorted());
}

#[test]
fn nacks_come_in_ssrc_order() {
    let mut chain = Registry::new()
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().with_interval(Duration::from_millis(100)).build())
        .build();
    let t0 = Instant::now();
    for ssrc in SSRCS {
        chain.bind_remote_stream(&info(ssrc));
        // 1, 2, then 5: 3 and 4 are missing.
        for seq in [1, 2, 5, 6, 7] {
            chain.handle_read(rtp(t0, ssrc, seq)).unwrap();
        }
    }
    while chain.poll_read().is_some() {}
    chain.handle_timeout(t0 + Duration::from_millis(150)).unwrap();
    assert_eq!(written(&mut chain), sorted());
}
