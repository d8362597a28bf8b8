//! Two signaling clients exchange OFFER, ANSWER and CANDIDATE through the broker core, with
//! heartbeats keeping them alive past the alive timeout.

use peerstorm_broker::{Broker, Config, ConnId, ConnectParams, Output};
use peerstorm_model::candidate::IceCandidateInit;
use peerstorm_model::peerjs::payload::{
    AnswerPayload, CandidatePayload, ConnectionType, OfferPayload, Serialization, SessionDescriptionInit,
};
use peerstorm_peer::{SignalEvent, SignalingClient};
use std::time::{Duration, Instant};

fn deliver(b: &mut Broker, clients: &mut [(ConnId, SignalingClient)], now: Instant) -> Vec<(usize, SignalEvent)> {
    let mut events = Vec::new();
    loop {
        let mut moved = false;
        for (conn, c) in clients.iter_mut() {
            while let Some(f) = c.poll_frame() {
                b.handle_text(now, *conn, &f);
                moved = true;
            }
        }
        while let Some(o) = b.poll_output() {
            moved = true;
            if let Output::Send { conn, text } = o
                && let Some(i) = clients.iter().position(|(c, _)| *c == conn)
            {
                let ev = clients[i].1.handle_frame(&text);
                events.push((i, ev));
            }
        }
        if !moved {
            return events;
        }
    }
}

#[test]
fn offer_answer_candidates_and_heartbeats() {
    let start = Instant::now();
    let cfg = Config { alive_timeout: Duration::from_secs(12), ..Config::default() };
    let mut b = Broker::new(cfg, start, 1);
    let mut clients = vec![
        (ConnId(1), SignalingClient::new("alice", "ta", Duration::from_secs(5))),
        (ConnId(2), SignalingClient::new("bob", "tb", Duration::from_secs(5))),
    ];
    for (conn, c) in clients.iter_mut() {
        let q = c.query("peerjs");
        b.handle_connect(start, *conn, &ConnectParams::from_query(&q));
        c.handle_connected(start);
    }
    let ev = deliver(&mut b, &mut clients, start);
    assert_eq!(ev.iter().filter(|(_, e)| *e == SignalEvent::Open).count(), 2);
    let offer = OfferPayload::data("v=0\r\n".into(), "dc_1", Serialization::Binary, true);
    clients[0].1.send_offer("bob", &offer);
    let cand = CandidatePayload {
        candidate: IceCandidateInit {
            candidate: "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        },
        connection_type: ConnectionType::Data,
        connection_id: "dc_1".into(),
    };
    clients[0].1.send_candidate("bob", &cand);
    let ev = deliver(&mut b, &mut clients, start);
    assert!(
        matches!(&ev[0], (1, SignalEvent::Offer { src, payload }) if src == "alice" && payload.connection_id == "dc_1"),
        "{ev:?}"
    );
    assert!(matches!(&ev[1], (1, SignalEvent::Candidate { src, .. }) if src == "alice"));
    let answer = AnswerPayload {
        sdp: SessionDescriptionInit { kind: "answer".into(), sdp: "v=0\r\n".into() },
        connection_type: ConnectionType::Data,
        connection_id: "dc_1".into(),
        browser: None,
    };
    clients[1].1.send_answer("alice", &answer);
    let ev = deliver(&mut b, &mut clients, start);
    assert!(matches!(&ev[0], (0, SignalEvent::Answer { .. })));
    // 30 s of virtual time with heartbeats every 5 s: nobody is dropped by the 12 s alive timeout.
    let mut now = start;
    for _ in 0..300 {
        now += Duration::from_millis(100);
        for (_, c) in clients.iter_mut() {
            c.handle_timeout(now);
        }
        deliver(&mut b, &mut clients, now);
        b.handle_timeout(now);
        while let Some(o) = b.poll_output() {
            assert!(!matches!(o, Output::Close { .. }), "a heartbeating client was dropped");
        }
    }
    assert!(b.is_registered("alice") && b.is_registered("bob"));
    assert!(clients[0].1.sent_frames >= 2 + 6, "offer, candidate and six heartbeats");
    // A peer that goes quiet is dropped.
    let quiet = SignalingClient::new("carol", "tc", Duration::from_secs(3600));
    b.handle_connect(now, ConnId(3), &ConnectParams::from_query(&quiet.query("peerjs")));
    while b.poll_output().is_some() {}
    b.handle_timeout(now + Duration::from_secs(13));
    assert!(!b.is_registered("carol"));
}
