//! Differential tests: each script runs against the real `peer@1.0.2` and against peerstorm's
//! broker at once, and every client must see the same frames, close codes and HTTP answers.
//! Rows refer to the tables of `docs/protocol.md` (§1.1, §1.2, §2, §4.1–4.4).

mod support;

use serde_json::json;
use support::{Opts, Step::*, j, same};

fn offer(dst: &str, id: &str) -> String {
    j(
        json!({"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data","connectionId":id,"label":id,"reliable":false,"serialization":"binary"},"dst":dst}),
    )
}

fn candidate(dst: &str, id: &str) -> String {
    j(
        json!({"type":"CANDIDATE","payload":{"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"},"type":"data","connectionId":id},"dst":dst}),
    )
}

// ---- §1.1 handshake --------------------------------------------------------------------------

#[test]
fn t01_connect_gets_open() {
    let (r, _) = same(&Opts::default(), &[Join("a", "alice", "tA")], 100);
    assert_eq!(r.plain()["a"], [r#"frame {"type":"OPEN"}"#]);
}

#[test]
fn t02_missing_or_empty_params_get_error_then_close() {
    let (r, _) = same(
        &Opts::default(),
        &[
            Connect("noid", "/peerjs?key=peerjs&token=t1".into()),
            Connect("notoken", "/peerjs?key=peerjs&id=x".into()),
            Connect("emptytoken", "/peerjs?key=peerjs&id=x&token=".into()),
            Connect("nokey", "/peerjs?id=x&token=t".into()),
        ],
        200,
    );
    assert_eq!(r.plain()["noid"][1], "close 1005");
}

#[test]
fn t03_invalid_key() {
    same(&Opts::default(), &[Connect("k", "/peerjs?key=nope&id=x&token=t".into())], 200);
}

#[test]
fn t04_id_taken_by_another_token_and_the_owner_keeps_working() {
    let (r, _) = same(
        &Opts::default(),
        &[
            Join("a", "alice", "tA"),
            Join("imp", "alice", "tX"),
            Join("b", "bob", "tB"),
            Send("b", offer("alice", "dc_1")),
        ],
        200,
    );
    assert!(r.plain()["imp"][0].contains("ID-TAKEN"));
    assert_eq!(r.plain()["a"].len(), 2);
}

#[test]
fn t05_same_token_takeover_gets_no_open_and_takes_the_relay() {
    same(
        &Opts::default(),
        &[
            Join("a1", "alice", "tA"),
            Join("a2", "alice", "tA"),
            Join("b", "bob", "tB"),
            Send("b", offer("alice", "dc_1")),
        ],
        200,
    );
}

#[test]
fn t06_closing_the_replaced_socket_keeps_the_registration() {
    same(
        &Opts::default(),
        &[
            Join("a1", "alice", "tA"),
            Join("a2", "alice", "tA"),
            Close("a1"),
            Wait(100),
            Join("b", "bob", "tB"),
            Send("b", offer("alice", "dc_1")),
        ],
        200,
    );
}

#[test]
fn t07_concurrent_limit_and_takeover_at_the_limit() {
    let o = Opts { limit: 2, ..Opts::default() };
    let (r, _) = same(&o, &[Join("a", "a", "t"), Join("b", "b", "t"), Join("c", "c", "t"), Join("a2", "a", "t")], 200);
    assert!(r.plain()["c"][0].contains("concurrent user limit"));
    assert!(!r.plain().contains_key("a2"), "a same-token takeover at the limit gets nothing");
}

#[test]
fn t08_wrong_paths_are_refused_with_400() {
    let (r, _) = same(
        &Opts::default(),
        &[
            Connect("foo", "/foo?key=peerjs&id=x&token=t".into()),
            Connect("slash", "/peerjs/?key=peerjs&id=x&token=t".into()),
        ],
        100,
    );
    assert_eq!(r.plain()["foo"], ["http 400"]);
}

#[test]
fn t09_query_order_and_extra_parameters_do_not_matter() {
    same(&Opts::default(), &[Connect("a", "/peerjs?version=1.5.5&token=t&foo=bar&id=alice&key=peerjs".into())], 100);
}

#[test]
fn t10_path_and_key_options() {
    let o = Opts { path: "/myapp".into(), key: "sekret".into(), ..Opts::default() };
    same(
        &o,
        &[
            Connect("ok", "/myapp/peerjs?key=sekret&id=a&token=t".into()),
            Connect("root", "/peerjs?key=sekret&id=b&token=t".into()),
            Connect("badkey", "/myapp/peerjs?key=peerjs&id=c&token=t".into()),
        ],
        150,
    );
}

// ---- §2 messages -------------------------------------------------------------------------------

#[test]
fn t11_relay_forces_src_and_drops_extra_members() {
    let spoofed = j(
        json!({"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data","connectionId":"dc_1","metadata":{"hello":"world"}},"dst":"bob","src":"mallory","extra":42}),
    );
    let (r, _) = same(&Opts::default(), &[Join("a", "alice", "tA"), Join("b", "bob", "tB"), Send("a", spoofed)], 200);
    assert!(r.plain()["b"][1].contains(r#""src":"alice""#));
}

#[test]
fn t12_offer_candidate_answer_exchange() {
    let answer = j(
        json!({"type":"ANSWER","payload":{"sdp":{"type":"answer","sdp":"v=0\r\n"},"type":"data","connectionId":"dc_1"},"dst":"alice"}),
    );
    same(
        &Opts::default(),
        &[
            Join("a", "alice", "tA"),
            Join("b", "bob", "tB"),
            Send("a", offer("bob", "dc_1")),
            Send("a", candidate("bob", "dc_1")),
            Send("b", answer),
            Send("b", candidate("alice", "dc_1")),
        ],
        200,
    );
}

#[test]
fn t13_heartbeat_gets_no_reply() {
    same(&Opts::default(), &[Join("a", "alice", "tA"), Send("a", r#"{"type":"HEARTBEAT"}"#.into())], 300);
}

#[test]
fn t14_unknown_types_are_ignored_and_the_socket_stays_usable() {
    same(
        &Opts::default(),
        &[
            Join("a", "alice", "tA"),
            Join("b", "bob", "tB"),
            Send("a", r#"{"type":"FOO","payload":{},"dst":"bob"}"#.into()),
            Send("a", r#"{"type":"OPEN","dst":"bob"}"#.into()),
            Send("a", r#"{"type":"ERROR","payload":{"msg":"x"},"dst":"bob"}"#.into()),
            Send("a", r#"{"type":"ID-TAKEN","dst":"bob"}"#.into()),
            Send("a", r#"{"payload":{},"dst":"bob"}"#.into()),
            Send("a", r#"{"type":"OFFER","payload":{"connectionId":"nodst"}}"#.into()),
            Send("a", r#"[]"#.into()),
            Send("a", offer("bob", "dc_after")),
        ],
        200,
    );
}

#[test]
fn t15_client_sent_expire_and_leave_are_relayed() {
    same(
        &Opts::default(),
        &[
            Join("a", "alice", "tA"),
            Join("b", "bob", "tB"),
            Send("a", r#"{"type":"EXPIRE","dst":"bob"}"#.into()),
            Send("a", r#"{"type":"LEAVE","dst":"bob"}"#.into()),
        ],
        200,
    );
}

#[test]
fn t16_message_to_self_and_binary_frames() {
    same(
        &Opts::default(),
        &[
            Join("a", "alice", "tA"),
            Join("b", "bob", "tB"),
            Send("a", r#"{"type":"OFFER","payload":{"connectionId":"self"},"dst":"alice"}"#.into()),
            SendBinary("a", r#"{"type":"OFFER","payload":{"connectionId":"bin"},"dst":"bob"}"#.into()),
            Send("a", r#"{"type":"CANDIDATE","dst":"bob"}"#.into()),
        ],
        200,
    );
}

// ---- §4.1–4.2 queues and EXPIRE ---------------------------------------------------------------

#[test]
fn t17_queued_messages_are_replayed_in_order_after_open() {
    let (r, _) = same(
        &Opts { expire_ms: 5000, ..Opts::default() },
        &[
            Join("a", "alice", "tA"),
            Send("a", offer("carol", "dc_q1")),
            Send("a", candidate("carol", "dc_q1")),
            Wait(300),
            Join("c", "carol", "tC"),
        ],
        200,
    );
    let c = &r.plain()["c"];
    assert!(c[0].contains("OPEN") && c[1].contains("OFFER") && c[2].contains("CANDIDATE"), "{c:?}");
}

#[test]
fn t18_unknown_peer_gives_one_expire_within_the_window() {
    let o = Opts { expire_ms: 1000, ..Opts::default() };
    let (r, u) = same(
        &o,
        &[
            Join("a", "alice", "tA"),
            Send("a", offer("nobody", "dc_1")),
            Send("a", candidate("nobody", "dc_1")),
            Send("a", candidate("nobody", "dc_1")),
        ],
        2600,
    );
    assert_eq!(r.plain()["a"][1], r#"frame {"type":"EXPIRE","src":"nobody","dst":"alice"}"#);
    // EXPIRE comes between expire_timeout and expire_timeout + one sweep (+ slack) after the OFFER.
    for t in [&r, &u] {
        let sent = t.time_of("a", "frame {\"type\":\"OPEN\"").unwrap() + 60;
        let at = t.time_of("a", "frame {\"type\":\"EXPIRE\"").unwrap() - sent;
        assert!((900..=2400).contains(&at), "EXPIRE after {at} ms");
    }
}

#[test]
fn t19_expire_is_dropped_when_the_sender_left() {
    same(
        &Opts::default(),
        &[
            Join("a", "alice", "tA"),
            Send("a", offer("nobody", "dc_1")),
            Close("a"),
            Wait(100),
            Join("w", "watcher", "tW"),
        ],
        2300,
    );
}

#[test]
fn t20_queues_belong_to_the_id_not_the_token() {
    same(
        &Opts { expire_ms: 5000, ..Opts::default() },
        &[Join("a", "alice", "tA"), Send("a", offer("bob", "dc_1")), Wait(100), Join("x", "bob", "anyone-token")],
        200,
    );
}

// ---- §4.3–4.4 liveness and close ---------------------------------------------------------------

#[test]
fn t21_alive_timeout_drops_silent_and_offer_only_clients_not_heartbeating_ones() {
    let o = Opts { alive_ms: 1000, ..Opts::default() };
    let (r, u) = same(
        &o,
        &[
            Join("silent", "s", "t"),
            Join("hb", "h", "t"),
            Heartbeat("hb", 250),
            Join("talker", "o", "t"),
            Send("talker", offer("h", "x1")),
            Wait(200),
            Send("talker", offer("h", "x2")),
            Wait(200),
            Send("talker", offer("h", "x3")),
        ],
        1200,
    );
    for t in [&r, &u] {
        assert!(t.plain()["silent"].last().unwrap().starts_with("close"), "{:?}", t.plain());
        let at = t.time_of("silent", "close").unwrap();
        assert!((900..=1800).contains(&at), "silent client closed after {at} ms");
    }
}

#[test]
fn t22_close_sends_nothing_to_others_and_later_messages_expire() {
    same(
        &Opts::default(),
        &[Join("a", "alice", "tA"), Join("b", "bob", "tB"), Close("b"), Wait(100), Send("a", offer("bob", "dc_1"))],
        2300,
    );
}

#[test]
fn t23_reconnect_after_close_gets_open_again() {
    same(&Opts::default(), &[Join("a", "alice", "tA"), Close("a"), Wait(150), Join("a2", "alice", "tA")], 150);
}

#[test]
fn t24_leave_without_dst_deregisters_the_sender() {
    same(
        &Opts::default(),
        &[
            Join("a", "alice", "tA"),
            Send("a", r#"{"type":"LEAVE"}"#.into()),
            Join("v", "alice", "other"),
            Join("b", "bob", "tB"),
            Send("b", offer("alice", "dc_1")),
        ],
        200,
    );
}

// ---- §1.2 HTTP ----------------------------------------------------------------------------------

#[test]
fn t25_http_api() {
    let (r, _) = same(
        &Opts::default(),
        &[
            Http("GET", "/".into(), vec![]),
            Http("GET", "/peerjs/id?ts=123&version=1.5.5".into(), vec![]),
            Http("GET", "/wrongkey/id".into(), vec![]),
            Http("GET", "/peerjs/peers".into(), vec![]),
            Http("GET", "/x".into(), vec![]),
            Http("GET", "/peerjs".into(), vec![]),
        ],
        50,
    );
    assert!(r.plain()["http"][1].starts_with("200 type=text/html; charset=utf-8"), "{:?}", r.plain());
}

#[test]
fn t26_cors_reflects_and_answers_preflight() {
    same(
        &Opts::default(),
        &[
            Http("GET", "/".into(), vec![("Origin", "http://app.example")]),
            Http(
                "OPTIONS",
                "/peerjs/id".into(),
                vec![
                    ("Origin", "http://app.example"),
                    ("Access-Control-Request-Method", "GET"),
                    ("Access-Control-Request-Headers", "x-custom"),
                ],
            ),
        ],
        50,
    );
    let o = Opts { cors: vec!["http://ok.example".into()], ..Opts::default() };
    same(
        &o,
        &[
            Http("GET", "/".into(), vec![("Origin", "http://ok.example")]),
            Http("GET", "/".into(), vec![("Origin", "http://evil.example")]),
        ],
        50,
    );
}

#[test]
fn t27_discovery_and_path_option_over_http() {
    let o = Opts { path: "/myapp".into(), discovery: true, ..Opts::default() };
    same(
        &o,
        &[
            Connect("a", "/myapp/peerjs?key=peerjs&id=b1&token=t".into()),
            Connect("b", "/myapp/peerjs?key=peerjs&id=b2&token=t".into()),
            Http("GET", "/myapp/peerjs/peers".into(), vec![]),
            Http("GET", "/myapp/anything/id".into(), vec![]),
            Http("GET", "/peerjs/id".into(), vec![]),
        ],
        50,
    );
}
