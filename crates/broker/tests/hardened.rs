//! `--hardened` limits and the never-lose-a-frame path, driven through the sans-IO core with a
//! virtual clock: every limit answers the client that hit it with an ERROR frame and leaves the
//! others alone.

use peerstorm_broker::{Broker, Config, ConnId, ConnectParams, Hardening, Output};
use std::time::{Duration, Instant};

struct World {
    b: Broker,
    now: Instant,
}

impl World {
    fn new(h: Option<Hardening>) -> Self {
        let now = Instant::now();
        let cfg = Config { hardening: h, ..Config::default() };
        Self { b: Broker::new(cfg, now, 7), now }
    }

    fn hardened() -> Self {
        Self::new(Some(Hardening::default()))
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.b.poll_output()).collect()
    }

    fn join(&mut self, conn: u64, id: &str) -> Vec<Output> {
        let p = ConnectParams { id: Some(id.into()), token: Some("t".into()), key: Some("peerjs".into()) };
        self.b.handle_connect(self.now, ConnId(conn), &p);
        self.drain()
    }

    fn join_with(&mut self, conn: u64, id: &str, token: &str) -> Vec<Output> {
        let p = ConnectParams { id: Some(id.into()), token: Some(token.into()), key: Some("peerjs".into()) };
        self.b.handle_connect(self.now, ConnId(conn), &p);
        self.drain()
    }

    fn send(&mut self, conn: u64, text: &str) -> Vec<Output> {
        self.b.handle_text(self.now, ConnId(conn), text);
        self.drain()
    }

    fn advance(&mut self, ms: u64) -> Vec<Output> {
        self.now += Duration::from_millis(ms);
        self.b.handle_timeout(self.now);
        self.drain()
    }
}

fn texts_to(out: &[Output], conn: u64) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, text } if c.0 == conn => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn closed(out: &[Output], conn: u64) -> bool {
    out.iter().any(|o| matches!(o, Output::Close { conn: c, .. } if c.0 == conn))
}

fn offer(dst: &str) -> String {
    format!(r#"{{"type":"OFFER","payload":{{"connectionId":"dc"}},"dst":"{dst}"}}"#)
}

#[test]
fn ids_must_follow_the_peerjs_rule_and_length() {
    let mut w = World::hardened();
    for (conn, bad) in [(1, "../etc"), (2, "<script>"), (3, "a b "), (4, &"x".repeat(65) as &str)] {
        let out = w.join(conn, bad);
        assert!(texts_to(&out, conn)[0].contains("Invalid id"), "{bad}: {out:?}");
        assert!(closed(&out, conn));
    }
    assert!(texts_to(&w.join(5, "good-id_1"), 5)[0].contains("OPEN"));
    // Compatible mode accepts anything, as the reference does.
    let mut w = World::new(None);
    assert!(texts_to(&w.join(1, "../etc"), 1)[0].contains("OPEN"));
}

#[test]
fn queues_are_bounded_per_peer_and_in_total() {
    let mut w = World::new(Some(Hardening { max_queue_per_peer: 2, max_queued_total: 3, ..Hardening::default() }));
    w.join(1, "alice");
    assert!(w.send(1, &offer("ghost")).is_empty());
    assert!(w.send(1, &offer("ghost")).is_empty());
    let out = w.send(1, &offer("ghost"));
    assert!(texts_to(&out, 1)[0].contains("Queue for ghost is full"), "{out:?}");
    assert!(w.send(1, &offer("ghost2")).is_empty());
    let out = w.send(1, &offer("ghost3"));
    assert!(texts_to(&out, 1)[0].contains("Server message queue is full"), "{out:?}");
    assert_eq!(w.b.queued(), 3);
    // Everyone else is still served.
    w.join(2, "bob");
    assert_eq!(texts_to(&w.send(1, &offer("bob")), 2).len(), 1);
}

#[test]
fn rate_limit_tells_once_and_recovers() {
    let mut w = World::new(Some(Hardening { rate_per_sec: 10, rate_burst: 5, ..Hardening::default() }));
    w.join(1, "alice");
    w.join(2, "bob");
    let mut relayed = 0;
    let mut errors = 0;
    for _ in 0..20 {
        let out = w.send(1, &offer("bob"));
        relayed += texts_to(&out, 2).len();
        errors += texts_to(&out, 1).iter().filter(|t| t.contains("Rate limit exceeded")).count();
    }
    assert_eq!(relayed, 5, "the burst passes, the rest is dropped");
    assert_eq!(errors, 1, "one ERROR, not one per dropped frame");
    assert_eq!(texts_to(&w.send(2, &offer("alice")), 1).len(), 1, "bob is not limited by alice's flood");
    w.advance(1000);
    assert_eq!(texts_to(&w.send(1, &offer("bob")), 2).len(), 1, "tokens come back with time");
}

#[test]
fn forged_control_frames_are_refused() {
    let mut w = World::hardened();
    w.join(1, "alice");
    w.join(2, "bob");
    for forged in [r#"{"type":"EXPIRE","dst":"bob"}"#, r#"{"type":"LEAVE","dst":"bob"}"#, r#"{"type":"LEAVE"}"#] {
        let out = w.send(1, forged);
        assert!(texts_to(&out, 2).is_empty(), "{forged} reached bob");
        assert!(texts_to(&out, 1)[0].contains("may not be sent by clients"));
    }
    assert!(w.b.is_registered("alice"));
}

#[test]
fn malformed_and_oversized_frames_get_an_error() {
    let mut w = World::hardened();
    w.join(1, "alice");
    let out = w.send(1, "{not json");
    assert!(texts_to(&out, 1)[0].contains("Invalid message"), "{out:?}");
    w.b.handle_oversize(w.now, ConnId(1));
    assert!(texts_to(&w.drain(), 1)[0].contains("Message too large"));
}

#[test]
fn server_issued_ids_only() {
    let mut w = World::new(Some(Hardening { server_issued_ids: true, ..Hardening::default() }));
    let out = w.join(1, "chosen");
    assert!(texts_to(&out, 1)[0].contains("not issued"), "{out:?}");
    let id = w.b.generate_id(w.now).unwrap();
    assert!(texts_to(&w.join(2, &id), 2)[0].contains("OPEN"));
    w.b.handle_close(w.now, ConnId(2));
    assert!(texts_to(&w.join(3, &id), 3)[0].contains("not issued"), "an issued ID is good once");
    let late = w.b.generate_id(w.now).unwrap();
    w.advance(61_000);
    assert!(texts_to(&w.join(4, &late), 4)[0].contains("not issued"), "issued IDs expire");
}

#[test]
fn frames_a_closing_socket_could_not_take_come_back_as_expire() {
    let mut w = World::new(Some(Hardening::default()));
    w.join(1, "alice");
    w.join(2, "bob");
    let out = w.send(1, &offer("bob"));
    let lost = texts_to(&out, 2);
    assert_eq!(lost.len(), 1);
    // The shell could not write it: bob's socket died.
    w.b.handle_close(w.now, ConnId(2));
    w.b.handle_undelivered(w.now, ConnId(2), lost);
    assert!(w.drain().is_empty());
    assert_eq!(w.b.queued(), 1);
    let out = w.advance(6000);
    assert_eq!(texts_to(&out, 1), [r#"{"type":"EXPIRE","src":"bob","dst":"alice"}"#]);
}

#[test]
fn same_inputs_same_outputs() {
    let script = |w: &mut World| {
        let mut all = Vec::new();
        all.extend(w.join(1, "alice"));
        all.extend(w.send(1, &offer("ghost")));
        all.extend(w.advance(7000));
        all.push(Output::Send { conn: ConnId(0), text: w.b.generate_id(w.now).unwrap() });
        all
    };
    let (mut a, mut b) = (World::hardened(), World::hardened());
    a.now = b.now;
    a.b = Broker::new(Config { hardening: Some(Hardening::default()), ..Config::default() }, a.now, 7);
    assert_eq!(script(&mut a), script(&mut b));
}

#[test]
fn a_lost_connection_reserves_its_id_for_its_token() {
    let mut w = World::hardened();
    assert!(texts_to(&w.join_with(1, "victim", "secret"), 1)[0].contains("OPEN"));
    assert!(texts_to(&w.join(2, "caller"), 2)[0].contains("OPEN"));
    w.b.handle_close(w.now, ConnId(1));
    // The squatter, 100 ms later: ID-TAKEN, and nothing meant for the victim reaches it.
    w.advance(100);
    let out = w.join_with(3, "victim", "squatter");
    assert!(texts_to(&out, 3)[0].contains("ID-TAKEN") && closed(&out, 3), "{out:?}");
    w.b.handle_close(w.now, ConnId(3));
    // Meanwhile a message for the victim is queued; the owner's reconnect gets OPEN and it.
    assert!(texts_to(&w.send(2, &offer("victim")), 2).is_empty());
    w.advance(1000);
    let out = w.join_with(4, "victim", "secret");
    let got = texts_to(&out, 4);
    assert!(got[0].contains("OPEN") && got[1].contains(r#""src":"caller""#), "{out:?}");
    // Once the owner is gone for longer than the reservation, the ID is free again.
    w.b.handle_close(w.now, ConnId(4));
    w.advance(5_001);
    assert!(texts_to(&w.join_with(5, "victim", "someone-else"), 5)[0].contains("OPEN"));
    assert!(w.b.render_metrics().contains(r#"reason="id_reserved"} 1"#), "{}", w.b.render_metrics());
    // Off, or in compatible mode: freed at once, as the reference does.
    for h in [None, Some(Hardening { id_reservation: Duration::ZERO, ..Hardening::default() })] {
        let mut w = World::new(h);
        w.join_with(1, "victim", "secret");
        w.b.handle_close(w.now, ConnId(1));
        assert!(texts_to(&w.join_with(2, "victim", "squatter"), 2)[0].contains("OPEN"));
    }
}

#[test]
fn an_alive_timeout_reserves_the_id_too() {
    let mut w = World::hardened();
    w.join_with(1, "quiet", "secret");
    let out = w.advance(Config::default().alive_timeout.as_millis() as u64 + 10_000);
    assert!(closed(&out, 1), "{out:?}");
    w.b.handle_close(w.now, ConnId(1));
    assert!(texts_to(&w.join_with(2, "quiet", "squatter"), 2)[0].contains("ID-TAKEN"));
    assert!(texts_to(&w.join_with(3, "quiet", "secret"), 3)[0].contains("OPEN"));
}

/// Issue 20 item 11: frames a cut-off socket hands back that its peer's queue cannot take are
/// not dropped in silence: their sender gets an EXPIRE at once (and the queued ones expire as
/// usual), so every frame ends delivered or its sender is told.
#[test]
fn frames_handed_back_beyond_the_queue_limit_expire_at_once() {
    let mut w = World::hardened();
    w.join(1, "alice");
    w.join(2, "bob");
    let limit = Hardening::default().max_queue_per_peer;
    let mut lost = Vec::new();
    for _ in 0..limit + 8 {
        lost.extend(texts_to(&w.send(1, &offer("bob")), 2));
    }
    assert_eq!(lost.len(), limit + 8, "relayed to bob while he was online");
    w.b.handle_close(w.now, ConnId(2));
    w.b.handle_undelivered(w.now, ConnId(2), lost);
    let out = w.drain();
    let told = texts_to(&out, 1);
    assert_eq!(told, [r#"{"type":"EXPIRE","src":"bob","dst":"alice"}"#], "the overflow is not silent, told once");
    assert_eq!(w.b.queued(), limit);
    // Bob comes back within the reservation: the queued frames are his.
    let out = w.join(3, "bob");
    assert_eq!(texts_to(&out, 3).len(), 1 + limit, "OPEN and the queue");
}

/// Issue 20 item 12: queues are bounded in bytes as well as messages, per destination and in
/// total; a sender over either gets an ERROR and nothing is held for it.
#[test]
fn queues_are_bounded_in_bytes() {
    let h = Hardening { max_queued_bytes_per_peer: 10_000, max_queued_bytes_total: 25_000, ..Hardening::default() };
    let mut w = World::new(Some(h));
    w.join(1, "alice");
    let big = |dst: &str| format!(r#"{{"type":"OFFER","payload":{{"sdp":"{}"}},"dst":"{dst}"}}"#, "x".repeat(3000));
    let mut errors = 0;
    for _ in 0..5 {
        let out = w.send(1, &big("ghost1"));
        errors += texts_to(&out, 1).iter().filter(|t| t.contains("is full (10000 bytes)")).count();
    }
    assert_eq!((w.b.queued(), errors), (3, 2), "three 3 kB frames fit in 10 kB");
    assert!(w.b.queued_bytes() <= 10_000);
    for dst in ["ghost2", "ghost3"] {
        for _ in 0..3 {
            w.send(1, &big(dst));
        }
    }
    assert!(w.b.queued_bytes() <= 25_000, "{}", w.b.queued_bytes());
    let out = w.send(1, &big("ghost4"));
    assert!(texts_to(&out, 1)[0].contains("Server message queue is full"), "{out:?}");
    // Expiry gives the bytes back.
    w.advance(Config::default().expire_timeout.as_millis() as u64 + 6_000);
    assert_eq!((w.b.queued(), w.b.queued_bytes()), (0, 0));
}

/// Issue 20 item 12: with server-issued IDs, unclaimed IDs are bounded; beyond the bound
/// `GET /<key>/id` is refused until some expire.
#[test]
fn unclaimed_issued_ids_are_bounded() {
    let h = Hardening { server_issued_ids: true, max_issued_ids: 100, ..Hardening::default() };
    let mut w = World::new(Some(h));
    let issued = (0..150).filter_map(|_| w.b.generate_id(w.now)).count();
    assert_eq!(issued, 100);
    assert!(w.b.render_metrics().contains(r#"reason="too_many_issued_ids"} 50"#), "{}", w.b.render_metrics());
    w.advance(61_000);
    assert!(w.b.generate_id(w.now).is_some(), "expired ones make room");
}
