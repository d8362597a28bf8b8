//! Property tests: round trips of every parser, and "never panics" on mutated real input.

use peerstorm_model::candidate::{Candidate, CandidateType};
use peerstorm_model::fuzzing;
use peerstorm_model::peerjs::binarypack::{self, Value};
use peerstorm_model::peerjs::dataconn::{BinaryReceiver, BinarySender, Received};
use peerstorm_model::peerjs::msgpack;
use peerstorm_model::peerjs::{Frame, MessageType};
use peerstorm_model::sdp::SessionDescription;
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{1,12}"
}

fn attribute_line() -> impl Strategy<Value = String> {
    prop_oneof![
        token().prop_map(|t| format!("a=mid:{t}")),
        "[A-Za-z0-9+/]{4,10}".prop_map(|t| format!("a=ice-ufrag:{t}")),
        "[A-Za-z0-9+/]{22,30}".prop_map(|t| format!("a=ice-pwd:{t}")),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(|b| {
            let hex: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
            format!("a=fingerprint:sha-256 {}", hex.join(":"))
        }),
        prop::sample::select(vec!["active", "passive", "actpass"]).prop_map(|s| format!("a=setup:{s}")),
        (0u8..128, "[A-Za-z0-9-]{1,10}", 1u32..200_000).prop_map(|(pt, e, r)| format!("a=rtpmap:{pt} {e}/{r}")),
        (0u16..15, "[a-z:.-]{3,30}").prop_map(|(i, u)| format!("a=extmap:{i} {u}")),
        (1u32.., token()).prop_map(|(s, c)| format!("a=ssrc:{s} cname:{c}")),
        "[a-z-]{1,12}(:[ -~]{0,20})?".prop_map(|a| format!("a={a}")),
        Just("a=rtcp-mux".to_string()),
        Just("a=sendrecv".to_string()),
        candidate_string().prop_map(|c| format!("a={c}")),
    ]
}

fn sdp_text() -> impl Strategy<Value = (String, usize)> {
    let media = (
        prop::sample::select(vec!["audio", "video", "application"]),
        0u16..,
        prop::collection::vec(attribute_line(), 0..8),
    );
    (any::<u64>(), prop::collection::vec(attribute_line(), 0..5), prop::collection::vec(media, 0..4), any::<bool>())
        .prop_map(|(ver, session_attrs, media, lf)| {
            let mut lines =
                vec!["v=0".to_string(), format!("o=- 1 {ver} IN IP4 127.0.0.1"), "s=-".into(), "t=0 0".into()];
            lines.extend(session_attrs);
            let n = media.len();
            for (kind, port, attrs) in media {
                lines.push(format!("m={kind} {port} UDP/TLS/RTP/SAVPF 111 0"));
                lines.push("c=IN IP4 0.0.0.0".into());
                lines.extend(attrs);
            }
            let eol = if lf { "\n" } else { "\r\n" };
            (lines.iter().map(|l| format!("{l}{eol}")).collect(), n)
        })
}

fn candidate_string() -> impl Strategy<Value = String> {
    let typ = prop::sample::select(vec![
        CandidateType::Host,
        CandidateType::Srflx,
        CandidateType::Prflx,
        CandidateType::Relay,
    ]);
    let addr = prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
        "[0-9a-f]{8}-[0-9a-f]{4}\\.local",
    ];
    let related = prop::option::of((any::<std::net::Ipv4Addr>(), any::<u16>()));
    let exts = prop::collection::vec(("[a-z][a-z-]{0,10}", "[A-Za-z0-9+/]{1,8}"), 0..4);
    (
        "[A-Za-z0-9+/]{1,32}",
        1u16..=256,
        prop::sample::select(vec!["udp", "UDP", "tcp"]),
        any::<u32>(),
        addr,
        any::<u16>(),
        typ,
        related,
        exts,
    )
        .prop_map(|(f, comp, tr, prio, addr, port, typ, related, exts)| {
            let mut s = format!("candidate:{f} {comp} {tr} {prio} {addr} {port} typ {typ}");
            if let Some((ra, rp)) = related {
                s.push_str(&format!(" raddr {ra} rport {rp}"));
            }
            for (k, v) in exts {
                s.push_str(&format!(" {k} {v}"));
            }
            s
        })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::Float),
        ".{0,40}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bin),
    ];
    leaf.prop_recursive(4, 64, 20, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            prop::collection::vec((".{0,10}".prop_map(Value::Str), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_sdp_round_trips((text, media) in sdp_text()) {
        let out = SessionDescription::parse_lenient(&text);
        prop_assert_eq!(out.sdp.emit(), text.as_str());
        prop_assert_eq!(out.sdp.media.len(), media);
        if let Ok(sdp) = SessionDescription::parse(&text) {
            prop_assert_eq!(sdp.emit(), text.as_str());
        }
        fuzzing::sdp(text.as_bytes());
    }

    #[test]
    fn mutated_chromium_sdp_never_panics(cut in 0usize..4000, insert in ".{0,8}", idx in 0usize..20) {
        let files = ["av-data-offer.sdp", "simulcast-offer.sdp", "datachannel-answer.sdp"];
        let path = format!("{}/../../fixtures/chromium/{}", std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"), files[idx % files.len()]);
        let text = std::fs::read_to_string(path).unwrap();
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) { at -= 1; }
        let mutated = format!("{}{insert}{}", &text[..at], &text[at..]);
        fuzzing::sdp(mutated.as_bytes());
    }

    #[test]
    fn candidates_round_trip(s in candidate_string()) {
        let c = Candidate::parse(&s).unwrap();
        prop_assert_eq!(c.to_string(), s.clone());
        let owned = c.into_owned();
        prop_assert_eq!(owned.to_string(), s);
    }

    #[test]
    fn arbitrary_candidate_text_never_panics(s in "(candidate:)?[ -~]{0,120}") {
        fuzzing::candidate(s.as_bytes());
    }

    #[test]
    fn binarypack_round_trips(v in value()) {
        let packed = binarypack::pack(&v).unwrap();
        prop_assert_eq!(binarypack::unpack(&packed).unwrap(), fuzzing::normalize(&v));
    }

    #[test]
    fn msgpack_round_trips(v in value()) {
        let packed = msgpack::pack(&v).unwrap();
        prop_assert_eq!(msgpack::unpack(&packed).unwrap(), fuzzing::normalize_msgpack(&v));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::binarypack(&b);
        fuzzing::msgpack(&b);
        fuzzing::frame(&b);
        fuzzing::sdp(&b);
    }

    #[test]
    fn chunked_messages_reassemble_in_any_order(len in 0usize..60_000, seed in any::<u64>()) {
        let v = Value::Bin((0..len).map(|i| (i as u64 ^ seed) as u8).collect());
        let mut msgs = BinarySender::new().encode(&v).unwrap();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..msgs.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            msgs.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut r = BinaryReceiver::default();
        let mut got = None;
        for m in &msgs {
            if let Some(x) = r.handle(m).unwrap() { got = Some(x); }
        }
        prop_assert_eq!(got, Some(Received::Data(v)));
        prop_assert_eq!(r.pending(), 0);
    }

    #[test]
    fn skimmed_frames_agree_with_serde(cut in 0usize..400, insert in prop::sample::select(vec!["", "\"", "\\", "{", "}", "[", "]", ",", ":", "1", "-", "e", ".", "null", "\u{1}", " ", "\\u00e9", "\\x"]), idx in 0usize..6) {
        let frames = [
            r#"{"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},"type":"data","connectionId":"dc_1","metadata":{"n":[1,2.5e3,-0,true,false,null]}},"dst":"bob"}"#,
            r#"{"type":"CANDIDATE","payload":{"candidate":{"candidate":"candidate:1 1 udp 2 1.2.3.4 5 typ host","sdpMid":"0","sdpMLineIndex":0}},"dst":"b\u00e9b"}"#,
            r#" { "type" : "HEARTBEAT" } "#,
            r#"{"typ\u0065":"LEAVE","dst":null,"payload":[]}"#,
            r#"{"type":"EXPIRE","src":"x","dst":"y","extra":{"deep":[[[[1]]]]}}"#,
            r#"[{"type":"OFFER"}]"#,
        ];
        let f = frames[idx % frames.len()];
        let mut at = cut.min(f.len());
        while !f.is_char_boundary(at) { at -= 1; }
        fuzzing::frame_ref_agrees(f);
        fuzzing::frame_ref_agrees(&format!("{}{insert}{}", &f[..at], &f[at..]));
        fuzzing::frame_ref_agrees(&f[..at]);
    }

    #[test]
    fn frames_round_trip(kind in "[A-Z-]{1,12}", src in prop::option::of(".{0,20}"), dst in prop::option::of(".{0,20}"), payload in prop::option::of(value())) {
        let mut f = Frame::parse(&format!("{{\"type\":{}}}", serde_json::to_string(&kind).unwrap())).unwrap();
        prop_assert_eq!(f.kind.clone(), Some(MessageType::parse(&kind)));
        f.src = src;
        f.dst = dst;
        if let Some(p) = payload {
            f = f.with_payload(&p.to_json());
        }
        prop_assert_eq!(Frame::parse(&f.to_server_json()).unwrap(), f.clone());
        prop_assert_eq!(Frame::parse(&f.to_client_json()).unwrap(), f);
    }
}
