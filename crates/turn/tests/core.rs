//! The sans-IO core with a virtual clock: the error paths and timers that are awkward to reach
//! over sockets.

use peerstorm_model::stun::{Class, Message, attr};
use peerstorm_turn::auth::{encode_with_integrity, long_term_key};
use peerstorm_turn::server::{
    AnyPort, FiveTuple, Output, RelayPorts, Transport, TurnConfig, TurnServer, method, tattr,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const REALM: &str = "r";

struct T {
    s: TurnServer,
    now: Instant,
    tuple: FiveTuple,
    nonce: Option<Vec<u8>>,
    tid: u32,
    /// The credentials requests are signed with (`u`/`p` unless a test changes them).
    user: String,
    password: String,
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl T {
    fn new(f: impl FnOnce(&mut TurnConfig)) -> Self {
        let mut cfg = TurnConfig::new(REALM, a("198.51.100.1:3478"));
        cfg.add_user("u", "p");
        f(&mut cfg);
        let now = Instant::now();
        let tuple =
            FiveTuple { client: a("203.0.113.5:40000"), server: a("198.51.100.1:3478"), transport: Transport::Udp };
        Self {
            s: TurnServer::new(cfg, now, [7; 16]),
            now,
            tuple,
            nonce: None,
            tid: 0,
            user: "u".into(),
            password: "p".into(),
        }
    }

    /// A transaction ID of its own for every request (so none is answered from the
    /// retransmission cache).
    fn transaction_id(&self) -> [u8; 12] {
        let mut id = [0u8; 12];
        id[8..].copy_from_slice(&self.tid.to_be_bytes());
        id
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.s.poll_output()).collect()
    }

    fn raw(&mut self, bytes: &[u8], ports: &mut dyn RelayPorts) -> Vec<Output> {
        self.s.handle_client(self.now, self.tuple, bytes, ports);
        self.outputs()
    }

    /// A request with credentials (a nonce is fetched first); returns the decoded answer.
    fn req(&mut self, method: u16, f: impl FnOnce(&mut Message)) -> Message {
        self.req_with(method, f, &mut AnyPort)
    }

    fn req_with(&mut self, method: u16, f: impl FnOnce(&mut Message), ports: &mut dyn RelayPorts) -> Message {
        if self.nonce.is_none() {
            self.tid += 1;
            let m = Message::new(method, Class::Request, self.transaction_id());
            let out = self.raw(&m.encode(true), ports);
            let r = answer(&out);
            self.nonce = r.attribute(attr::NONCE).map(<[u8]>::to_vec);
        }
        self.tid += 1;
        let mut m = Message::new(method, Class::Request, self.transaction_id());
        f(&mut m);
        m.push(attr::USERNAME, self.user.as_bytes().to_vec());
        m.push(attr::REALM, REALM.as_bytes().to_vec());
        m.push(attr::NONCE, self.nonce.clone().unwrap());
        let bytes = encode_with_integrity(&m, &long_term_key(&self.user, REALM, &self.password), true);
        let out = self.raw(&bytes, ports);
        answer(&out)
    }

    /// The client moves to another 5-tuple: a new client as far as the server knows, which
    /// starts with an unauthenticated request for a nonce of its own.
    fn move_to(&mut self, client: &str) {
        self.tuple.client = a(client);
        self.nonce = None;
    }

    fn advance(&mut self, secs: u64) -> Vec<Output> {
        self.now += Duration::from_secs(secs);
        self.s.handle_timeout(self.now);
        self.outputs()
    }
}

fn answer(out: &[Output]) -> Message {
    out.iter()
        .find_map(|o| match o {
            Output::ToClient { data, .. } => Message::decode(data).ok(),
            _ => None,
        })
        .expect("an answer")
}

fn code(m: &Message) -> Option<u16> {
    m.attribute(attr::ERROR_CODE).map(|v| u16::from(v[2]) * 100 + u16::from(v[3]))
}

fn udp(m: &mut Message) {
    m.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
}

fn lifetime(m: &Message) -> u32 {
    let v = m.attribute(tattr::LIFETIME).unwrap();
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

#[test]
fn stale_nonce_gives_438_with_a_new_nonce() {
    let mut t = T::new(|c| c.nonce_lifetime = Duration::from_secs(10));
    assert!(code(&t.req(method::ALLOCATE, udp)).is_none());
    t.now += Duration::from_secs(11);
    let r = t.req(method::REFRESH, |_| {});
    assert_eq!(code(&r), Some(438));
    assert!(r.attribute(attr::NONCE).is_some() && r.attribute(attr::REALM).is_some());
    t.nonce = r.attribute(attr::NONCE).map(<[u8]>::to_vec);
    assert!(code(&t.req(method::REFRESH, |_| {})).is_none(), "the new nonce works");
}

#[test]
fn quota_and_capacity() {
    let mut t = T::new(|c| c.max_allocations_per_user = 1);
    assert!(code(&t.req(method::ALLOCATE, udp)).is_none());
    t.move_to("203.0.113.5:40001");
    assert_eq!(code(&t.req(method::ALLOCATE, udp)), Some(486));
    struct Full;
    impl RelayPorts for Full {
        fn open(&mut self, _: SocketAddr) -> bool {
            false
        }
    }
    let mut t = T::new(|_| {});
    assert_eq!(code(&t.req_with(method::ALLOCATE, udp, &mut Full)), Some(508));
}

#[test]
fn loopback_and_private_peers_are_forbidden_unless_allowed() {
    for (peer, allow_lo, allow_priv, want) in [
        ("127.0.0.1:9", false, false, Some(403)),
        ("127.0.0.1:9", true, false, None),
        ("10.1.2.3:9", false, false, Some(403)),
        ("100.64.1.1:9", false, false, Some(403)),
        ("192.168.1.2:9", false, true, None),
        ("203.0.113.9:9", false, false, None),
        ("0.0.0.0:9", true, true, Some(403)),
        // RFC 6890 "this network", reserved space, and loopback spelled as IPv4-mapped IPv6.
        ("0.0.0.1:9", true, true, Some(403)),
        ("240.0.0.1:9", true, true, Some(403)),
        ("[::ffff:127.0.0.1]:9", false, false, Some(403)),
    ] {
        let mut t = T::new(|c| {
            c.allow_loopback_peers = allow_lo;
            c.allow_private_peers = allow_priv;
        });
        t.req(method::ALLOCATE, udp);
        let r = t.req(method::CREATE_PERMISSION, |m| {
            m.push_address(tattr::XOR_PEER_ADDRESS, a(peer));
        });
        assert_eq!(code(&r), want, "{peer}");
    }
}

/// An IPv6 peer for an IPv4 relay gets 443 (RFC 8656 §9.1), in CreatePermission and ChannelBind,
/// even where loopback peers are allowed (`::1`, `::ffff:127.0.0.1`: CVE-2026-27624's class).
#[test]
fn a_peer_of_the_other_address_family_gets_443() {
    for peer in ["[::1]:9", "[::ffff:127.0.0.1]:9", "[2001:db8::1]:9"] {
        let mut t = T::new(|c| c.allow_loopback_peers = true);
        t.req(method::ALLOCATE, udp);
        let r = t.req(method::CREATE_PERMISSION, |m| {
            m.push_address(tattr::XOR_PEER_ADDRESS, a(peer));
        });
        assert_eq!(code(&r), Some(443), "CreatePermission {peer}");
        let r = t.req(method::CHANNEL_BIND, |m| {
            m.push(tattr::CHANNEL_NUMBER, vec![0x40, 0, 0, 0]);
            m.push_address(tattr::XOR_PEER_ADDRESS, a(peer));
        });
        assert_eq!(code(&r), Some(443), "ChannelBind {peer}");
    }
}

/// The server never relays to one of its own listening addresses (a loop through itself), even
/// with a permission for that IP; other ports of the IP are relayed as usual.
#[test]
fn nothing_is_relayed_to_the_servers_own_listening_address() {
    let mut t = T::new(|c| c.allow_private_peers = true);
    t.req(method::ALLOCATE, udp);
    let r = t.req(method::CREATE_PERMISSION, |m| {
        m.push_address(tattr::XOR_PEER_ADDRESS, a("198.51.100.1:1"));
    });
    assert_eq!(code(&r), None);
    for (peer, relayed) in [("198.51.100.1:3478", false), ("198.51.100.1:4000", true)] {
        let mut send = Message::new(method::SEND, Class::Indication, [9; 12]);
        send.push_address(tattr::XOR_PEER_ADDRESS, a(peer));
        send.push(tattr::DATA, b"loop?".to_vec());
        let out = t.raw(&send.encode(true), &mut AnyPort);
        let to_peer = out.iter().any(|o| matches!(o, Output::ToPeer { .. }));
        assert_eq!(to_peer, relayed, "{peer}");
    }
    assert_eq!(t.s.stats.dropped_own_address, 1);
}

/// `unauth_rate_limit`: an IP gets that many unauthenticated answers in a burst and then one
/// per 1/limit seconds; others are dropped unanswered. Authenticated requests are never limited.
#[test]
fn unauthenticated_answers_are_rate_limited_per_ip() {
    let mut t = T::new(|c| c.unauth_rate_limit = Some(5));
    let answers = |t: &mut T, n: u32| {
        (0..n)
            .filter(|i| {
                let m = Message::new(method::ALLOCATE, Class::Request, [*i as u8 + 100; 12]);
                !t.raw(&m.encode(true), &mut AnyPort).is_empty()
            })
            .count()
    };
    assert_eq!(answers(&mut t, 20), 5, "a burst of 5");
    t.now += Duration::from_millis(400);
    assert_eq!(answers(&mut t, 20), 2, "refilled at 5 per second");
    assert_eq!(t.s.stats.unauth_dropped, 33);
    // Another IP has its own allowance.
    t.move_to("203.0.113.6:40000");
    assert_eq!(answers(&mut t, 20), 5);
    // Authenticated traffic is not limited (the nonce was fetched within the allowance).
    let mut t = T::new(|c| c.unauth_rate_limit = Some(1));
    assert!(code(&t.req(method::ALLOCATE, udp)).is_none());
    for _ in 0..10 {
        assert!(code(&t.req(method::REFRESH, |_| {})).is_none());
    }
}

#[test]
fn lifetimes_are_clamped_and_allocations_expire() {
    let mut t = T::new(|_| {});
    let r = t.req(method::ALLOCATE, |m| {
        udp(m);
        m.push(tattr::LIFETIME, 30u32.to_be_bytes().to_vec());
    });
    assert_eq!(lifetime(&r), 600, "below the default: the default");
    let r = t.req(method::REFRESH, |m| {
        m.push(tattr::LIFETIME, 99_999u32.to_be_bytes().to_vec());
    });
    assert_eq!(lifetime(&r), 3600, "above the maximum: the maximum");
    assert_eq!(t.s.allocations(), 1);
    let out = t.advance(3601);
    assert!(out.iter().any(|o| matches!(o, Output::RelayClosed { .. })), "{out:?}");
    assert_eq!(t.s.allocations(), 0);
}

#[test]
fn permissions_expire_after_five_minutes() {
    let mut t = T::new(|_| {});
    let relay = t.req(method::ALLOCATE, udp).address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    let peer = a("203.0.113.9:5000");
    t.req(method::CREATE_PERMISSION, |m| {
        m.push_address(tattr::XOR_PEER_ADDRESS, peer);
    });
    t.s.handle_peer(t.now, relay, peer, b"x");
    assert_eq!(t.outputs().len(), 1, "permitted");
    t.advance(301);
    t.s.handle_peer(t.now, relay, peer, b"x");
    assert!(t.outputs().is_empty(), "expired permission drops");
}

#[test]
fn rfc_5780_binding_with_an_alternate_address() {
    let mut t = T::new(|c| c.alternate = Some(a("198.51.100.2:3479")));
    let mut req = Message::binding_request([1; 12]);
    req.push_change_request(true, true);
    let out = t.raw(&req.encode(true), &mut AnyPort);
    let Output::ToClient { from, data, .. } = &out[0] else { panic!("{out:?}") };
    assert_eq!(*from, a("198.51.100.2:3479"), "answered from the other IP and port");
    let m = Message::decode(data).unwrap();
    assert_eq!(m.address(attr::RESPONSE_ORIGIN).unwrap().unwrap(), a("198.51.100.2:3479"));
    assert_eq!(m.address(attr::OTHER_ADDRESS).unwrap().unwrap(), a("198.51.100.2:3479"));
    assert_eq!(m.address(attr::XOR_MAPPED_ADDRESS).unwrap().unwrap(), t.tuple.client);
    assert_eq!(t.s.listen_addresses().len(), 4);
    // Without an alternate, CHANGE-REQUEST is an unknown attribute (RFC 5780 §7.2).
    let mut t = T::new(|_| {});
    let out = t.raw(&req.encode(true), &mut AnyPort);
    assert_eq!(code(&answer(&out)), Some(420));
}

#[test]
fn even_port_reserves_the_next_port_for_a_token() {
    let mut t = T::new(|_| {});
    let r = t.req(method::ALLOCATE, |m| {
        udp(m);
        m.push(tattr::EVEN_PORT, vec![0x80, 0, 0, 0]);
    });
    let relay = r.address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    assert_eq!(relay.port() % 2, 0);
    let token = r.attribute(tattr::RESERVATION_TOKEN).unwrap().to_vec();
    t.move_to("203.0.113.5:40001");
    let r = t.req(method::ALLOCATE, |m| {
        udp(m);
        m.push(tattr::RESERVATION_TOKEN, token.clone());
    });
    assert_eq!(r.address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap().port(), relay.port() + 1);
    t.move_to("203.0.113.5:40002");
    let r = t.req(method::ALLOCATE, |m| {
        udp(m);
        m.push(tattr::RESERVATION_TOKEN, token);
    });
    assert_eq!(code(&r), Some(508), "a token is good once");
}

#[test]
fn tcp_clients_get_padded_channel_data_and_lose_their_allocation_on_close() {
    let mut t = T::new(|_| {});
    t.tuple.transport = Transport::Tcp;
    let relay = t.req(method::ALLOCATE, udp).address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    let peer = a("203.0.113.9:5000");
    t.req(method::CHANNEL_BIND, |m| {
        m.push(tattr::CHANNEL_NUMBER, vec![0x40, 0x01, 0, 0]);
        m.push_address(tattr::XOR_PEER_ADDRESS, peer);
    });
    t.s.handle_peer(t.now, relay, peer, b"abcde");
    let out = t.outputs();
    let Output::ToClient { data, .. } = &out[0] else { panic!() };
    assert_eq!(data.len(), 12, "4 header + 5 data, padded to 12 over TCP");
    assert_eq!(&data[..4], &[0x40, 0x01, 0, 5]);
    assert_eq!(peerstorm_model::stun::stream_frame_len(data), Ok(Some(12)));
    t.s.handle_client_closed(t.tuple);
    assert_eq!(t.s.allocations(), 0);
}

#[test]
fn the_retransmission_cache_is_bounded_and_keeps_no_challenges() {
    let mut t = T::new(|c| c.max_cached_responses = 4);
    // An unauthenticated flood: every request gets its 401, and none is kept.
    for i in 0..100u8 {
        let m = Message::new(method::ALLOCATE, Class::Request, [i; 12]);
        assert_eq!(code(&answer(&t.raw(&m.encode(true), &mut AnyPort))), Some(401));
    }
    assert_eq!(t.s.cached_responses(), 0);
    // Authenticated requests are kept, the newest four of them.
    let key = long_term_key("u", REALM, "p");
    assert_eq!(code(&t.req(method::REFRESH, |_| {})), Some(437), "learns the nonce; no allocation");
    let nonce = t.nonce.clone().unwrap();
    let signed = |tid: u8, lifetime: u32| {
        let mut m = Message::new(method::ALLOCATE, Class::Request, [tid; 12]);
        udp(&mut m);
        m.push(tattr::LIFETIME, lifetime.to_be_bytes().to_vec());
        m.push(attr::USERNAME, b"u".to_vec());
        m.push(attr::REALM, REALM.as_bytes().to_vec());
        m.push(attr::NONCE, nonce.clone());
        encode_with_integrity(&m, &key, true)
    };
    let first = signed(200, 600);
    let first_answer = t.raw(&first, &mut AnyPort);
    assert!(answer(&first_answer).class == Class::Success);
    let requests: Vec<Vec<u8>> = (201..209).map(|tid| signed(tid, 600)).collect();
    for r in &requests {
        assert_eq!(code(&answer(&t.raw(r, &mut AnyPort))), Some(437), "a second Allocate on the 5-tuple");
    }
    assert_eq!(t.s.cached_responses(), 4);
    assert_eq!(t.s.stats.responses_evicted, 6, "the Refresh, the first Allocate and four more went");
    // The newest is answered from the cache; the evicted Allocate is recomputed and, being the
    // allocation's own transaction, gets the same success.
    let before = t.s.stats.retransmits_answered;
    assert_eq!(code(&answer(&t.raw(&requests[7], &mut AnyPort))), Some(437));
    assert_eq!(t.s.stats.retransmits_answered, before + 1);
    assert_eq!(answer(&t.raw(&first, &mut AnyPort)), answer(&first_answer));
    assert_eq!(t.s.stats.retransmits_answered, before + 1, "not from the cache");
    // The cache empties as its entries pass the transaction lifetime.
    t.advance(41);
    assert_eq!(t.s.cached_responses(), 0);
}

/// A captured authenticated request, replayed from other addresses (the attack that exhausted a
/// victim's quota from 100 source ports): the nonce is bound to the victim's 5-tuple, so every
/// replay gets 438 and allocates nothing.
#[test]
fn a_request_replayed_from_another_address_gets_438_and_allocates_nothing() {
    let mut t = T::new(|_| {});
    assert!(code(&t.req(method::ALLOCATE, udp)).is_none(), "the victim's own allocation");
    // What the attacker captured: the victim's next authenticated Allocate.
    let mut m = Message::new(method::ALLOCATE, Class::Request, [99; 12]);
    udp(&mut m);
    m.push(attr::USERNAME, b"u".to_vec());
    m.push(attr::REALM, REALM.as_bytes().to_vec());
    m.push(attr::NONCE, t.nonce.clone().unwrap());
    let captured = encode_with_integrity(&m, &long_term_key("u", REALM, "p"), true);
    for port in 50000..50020 {
        let from = FiveTuple { client: a(&format!("192.0.2.66:{port}")), ..t.tuple };
        t.s.handle_client(t.now, from, &captured, &mut AnyPort);
        let r = answer(&t.outputs());
        assert_eq!(code(&r), Some(438), "replay from {}", from.client);
        assert!(r.attribute(attr::NONCE).is_some(), "with a nonce of the attacker's own");
    }
    assert_eq!(t.s.allocations(), 1, "only the victim's allocation");
}

/// RFC 8489 §14.5: what follows MESSAGE-INTEGRITY is not covered by it and is ignored. An
/// XOR-PEER-ADDRESS appended to a signed CreatePermission must not open the relay to that peer.
#[test]
fn an_attribute_appended_after_message_integrity_opens_no_permission() {
    let mut t = T::new(|_| {});
    let relay = t.req(method::ALLOCATE, udp).address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    let (asked, smuggled) = (a("203.0.113.10:5000"), a("203.0.113.66:6666"));
    let mut m = Message::new(method::CREATE_PERMISSION, Class::Request, [98; 12]);
    m.push_address(tattr::XOR_PEER_ADDRESS, asked);
    m.push(attr::USERNAME, b"u".to_vec());
    m.push(attr::REALM, REALM.as_bytes().to_vec());
    m.push(attr::NONCE, t.nonce.clone().unwrap());
    let mut bytes = encode_with_integrity(&m, &long_term_key("u", REALM, "p"), false);
    let mut extra = Message::new(method::CREATE_PERMISSION, Class::Request, [0; 12]);
    extra.push_address(tattr::XOR_PEER_ADDRESS, smuggled);
    let tlv = &extra.encode(false)[20..];
    bytes.extend_from_slice(tlv);
    let len = (bytes.len() - 20) as u16;
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    let r = answer(&t.raw(&bytes, &mut AnyPort));
    assert!(code(&r).is_none(), "the signed part is a valid CreatePermission: {r:?}");
    t.s.handle_peer(t.now, relay, asked, b"asked");
    assert_eq!(t.outputs().len(), 1, "the peer the client signed for gets through");
    t.s.handle_peer(t.now, relay, smuggled, b"smuggled");
    assert!(t.outputs().is_empty(), "the smuggled peer has no permission");
}

/// EVEN-PORT with R holds two ports: the reservation counts against the user's quota until it
/// is used (then it is the new allocation's) or expires. One user could pin 500 ports with a
/// quota of 100 before.
#[test]
fn reservations_count_against_the_quota() {
    let mut t = T::new(|c| c.max_allocations_per_user = 3);
    let even_r = |m: &mut Message| {
        udp(m);
        m.push(tattr::EVEN_PORT, vec![0x80, 0, 0, 0]);
    };
    let r = t.req(method::ALLOCATE, even_r);
    assert!(code(&r).is_none(), "an allocation and a reservation: 2 of 3");
    let token = r.attribute(tattr::RESERVATION_TOKEN).unwrap().to_vec();
    t.move_to("203.0.113.5:40001");
    assert_eq!(code(&t.req(method::ALLOCATE, even_r)), Some(486), "two more would make 4");
    t.move_to("203.0.113.5:40002");
    let r = t.req(method::ALLOCATE, |m| {
        udp(m);
        m.push(tattr::RESERVATION_TOKEN, token);
    });
    assert!(code(&r).is_none(), "using its own reservation needs no new room: {r:?}");
    t.move_to("203.0.113.5:40003");
    assert!(code(&t.req(method::ALLOCATE, udp)).is_none(), "the third");
    t.move_to("203.0.113.5:40004");
    assert_eq!(code(&t.req(method::ALLOCATE, udp)), Some(486), "and no fourth");
    // An unused reservation is given back when it expires.
    let mut t = T::new(|c| c.max_allocations_per_user = 2);
    assert!(code(&t.req(method::ALLOCATE, even_r)).is_none());
    t.move_to("203.0.113.5:40001");
    assert_eq!(code(&t.req(method::ALLOCATE, udp)), Some(486), "allocation + reservation = 2 of 2");
    t.advance(31);
    t.move_to("203.0.113.5:40002");
    assert!(code(&t.req(method::ALLOCATE, udp)).is_none(), "the expired reservation's room is back");
}

/// One allocation holds at most the configured permissions and channels (10^6 permissions in
/// 1.5 s grew the server by 87 MiB before); refreshing what it has stays possible.
#[test]
fn permissions_and_channels_per_allocation_are_capped() {
    let mut t = T::new(|c| {
        c.max_permissions_per_allocation = 3;
        c.max_channels_per_allocation = 2;
    });
    assert!(code(&t.req(method::ALLOCATE, udp)).is_none());
    let permit = |t: &mut T, ips: &[&str]| {
        let r = t.req(method::CREATE_PERMISSION, |m| {
            for ip in ips {
                m.push_address(tattr::XOR_PEER_ADDRESS, a(&format!("{ip}:9")));
            }
        });
        code(&r)
    };
    assert_eq!(permit(&mut t, &["203.0.113.1", "203.0.113.2"]), None);
    assert_eq!(permit(&mut t, &["203.0.113.3", "203.0.113.4"]), Some(508), "4 of 3: refused whole");
    assert_eq!(permit(&mut t, &["203.0.113.3"]), None, "the third");
    assert_eq!(permit(&mut t, &["203.0.113.1", "203.0.113.2", "203.0.113.3"]), None, "refreshing is not growing");
    let bind = |t: &mut T, ch: u16, peer: &str| {
        let r = t.req(method::CHANNEL_BIND, |m| {
            m.push(tattr::CHANNEL_NUMBER, vec![(ch >> 8) as u8, ch as u8, 0, 0]);
            m.push_address(tattr::XOR_PEER_ADDRESS, a(peer));
        });
        code(&r)
    };
    assert_eq!(bind(&mut t, 0x4000, "203.0.113.1:9"), None);
    assert_eq!(bind(&mut t, 0x4001, "203.0.113.2:9"), None);
    assert_eq!(bind(&mut t, 0x4002, "203.0.113.3:9"), Some(508), "a third channel");
    assert_eq!(bind(&mut t, 0x4000, "203.0.113.1:9"), None, "rebinding refreshes");
    assert_eq!(permit(&mut t, &["203.0.113.9"]), Some(508), "and the permissions are still full");
}

/// Expiry pops what is due from a queue instead of scanning every permission and channel each
/// second: a refreshed permission outlives its first expiry (the stale entry is ignored), and a
/// client refreshing in a loop cannot grow the queue without bound.
#[test]
fn expiry_follows_refreshes_and_its_queue_stays_bounded() {
    let mut t = T::new(|_| {});
    let relay = t.req(method::ALLOCATE, udp).address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    let peer = a("203.0.113.9:5000");
    let permit = |t: &mut T| {
        t.req(method::CREATE_PERMISSION, |m| {
            m.push_address(tattr::XOR_PEER_ADDRESS, peer);
        });
    };
    permit(&mut t);
    t.advance(200);
    permit(&mut t);
    t.advance(150);
    t.s.handle_peer(t.now, relay, peer, b"x");
    assert_eq!(t.outputs().len(), 1, "350 s in, refreshed at 200 s: still permitted");
    t.advance(151);
    t.s.handle_peer(t.now, relay, peer, b"x");
    assert!(t.outputs().is_empty(), "501 s in: expired 300 s after the refresh");

    // 20,000 refreshes between two sweeps: the queue is compacted as it grows.
    permit(&mut t);
    for _ in 0..20_000 {
        permit(&mut t);
    }
    assert!(t.s.expiry_queue_len() <= 4096 + 4096, "{} entries for 2 live expiries", t.s.expiry_queue_len());
    t.advance(1);
    assert!(t.s.expiry_queue_len() <= 4096, "{}", t.s.expiry_queue_len());
    t.s.handle_peer(t.now, relay, peer, b"x");
    assert_eq!(t.outputs().len(), 1, "the permission is live");
}

/// TURN REST API credentials (coturn's `use-auth-secret`): `EXPIRY:NAME` with the password
/// base64(HMAC-SHA1(secret, username)) allocates until EXPIRY, against the Unix time the driver
/// gave the core; an expired one, a wrong password or a username without a time get 401.
#[test]
fn rest_api_credentials_are_accepted_until_they_expire() {
    const START: u64 = 1_700_000_000;
    let rest = |t: &mut T, user: String, password: String| {
        t.user = user;
        t.password = password;
        code(&t.req(method::ALLOCATE, udp))
    };
    let mut t = T::new(|c| {
        c.auth_secret = Some("s3cret".into());
        c.unix_time_at_start = START;
    });
    let user = format!("{}:alice", START + 3600);
    let password = peerstorm_turn::auth::rest_password("s3cret", &user);
    assert_eq!(rest(&mut t, user.clone(), password.clone()), None, "valid for an hour");
    t.move_to("203.0.113.6:40000");
    assert_eq!(rest(&mut t, user.clone(), "wrong".into()), Some(401));
    assert_eq!(
        rest(&mut t, "alice".into(), peerstorm_turn::auth::rest_password("s3cret", "alice")),
        Some(401),
        "no time"
    );
    let old = format!("{}:alice", START - 1);
    assert_eq!(rest(&mut t, old.clone(), peerstorm_turn::auth::rest_password("s3cret", &old)), Some(401), "expired");
    // The credential expires with the clock: an hour and a second later it is refused.
    t.advance(3601);
    t.move_to("203.0.113.7:40000");
    assert_eq!(rest(&mut t, user, password), Some(401), "expired since");
    // Static users still work beside the secret.
    assert_eq!(rest(&mut t, "u".into(), "p".into()), None);
}
