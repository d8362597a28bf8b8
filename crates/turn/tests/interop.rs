//! The same client checks against peerstorm's TURN server and against coturn started by the
//! test: binding, the 401 challenge, allocate, idempotent retransmission, 437, permissions,
//! relay both ways by Send/Data indications and by channels, channel rules, 403, 442, refresh
//! and refresh to 0. Both must pass; differences found are asserted and documented.

mod support;

use peerstorm_model::stun::{Class, Message, attr};
use peerstorm_turn::client::{Received, UdpClient};
use peerstorm_turn::server::{method, tattr};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use support::{PASS, Server, USER, coturn, ours, ours_with};

fn echo_peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn suite(server: &Server) {
    let name = server.name();
    let mut c = UdpClient::connect(server.addr(), USER, PASS, 11).unwrap();
    // Binding: the mapped address is our socket's.
    let tid = c.new_tid();
    let r = c.exchange(&Message::binding_request(tid).encode(true), tid).unwrap();
    assert_eq!(r.msg.address(attr::XOR_MAPPED_ADDRESS).unwrap().unwrap(), c.local_addr(), "{name}: binding");
    // An unauthenticated Allocate gets 401 with REALM and NONCE.
    let tid = c.new_tid();
    let raw = c.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])]);
    let r = c.exchange(&raw, tid).unwrap();
    assert_eq!(r.error_code(), Some(401), "{name}: challenge");
    assert!(
        r.msg.attribute(attr::REALM).is_some() && r.msg.attribute(attr::NONCE).is_some(),
        "{name}: realm and nonce"
    );
    // The client learns them from this 401 on its first call.
    let r = c.call(method::REFRESH, &[]).unwrap();
    assert_eq!(r.error_code(), Some(437), "{name}: refresh without an allocation");
    // Allocate, then the very same request again: the same answer (RFC 8489 §6.3.1).
    let tid = c.new_tid();
    let raw = c.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])]);
    let first = c.exchange(&raw, tid).unwrap();
    assert!(first.is_success(), "{name}: allocate: {:?}", first.error_code());
    let relay = first.msg.address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    assert_eq!(relay.ip().to_string(), "127.0.0.1", "{name}: relay address");
    assert!(first.msg.attribute(tattr::LIFETIME).is_some());
    let again = c.exchange(&raw, tid).unwrap();
    assert!(again.is_success(), "{name}: retransmitted allocate");
    assert_eq!(
        again.msg.address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap(),
        relay,
        "{name}: same relay on retransmission"
    );
    // A new Allocate on the same 5-tuple: 437.
    assert_eq!(c.allocate().unwrap().error_code(), Some(437), "{name}: allocation mismatch");
    // No relaying without a permission.
    let (peer, peer_addr) = echo_peer();
    c.send(peer_addr, b"too early").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(peer.recv_from(&mut [0u8; 64]).is_err(), "{name}: relayed without a permission");
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // Permission, then Send indication -> peer, and peer -> Data indication.
    assert!(c.create_permission(&[peer_addr]).unwrap().is_success(), "{name}: create permission");
    c.send(peer_addr, b"hello peer").unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"hello peer"[..], relay), "{name}: send indication");
    peer.send_to(b"hello client", relay).unwrap();
    assert_eq!(
        c.recv().unwrap(),
        Received::Data { peer: peer_addr, data: b"hello client".to_vec() },
        "{name}: data indication"
    );
    // Channels: bind, relay both ways.
    assert!(c.channel_bind(0x4001, peer_addr).unwrap().is_success(), "{name}: channel bind");
    c.channel_data(0x4001, b"via channel").unwrap();
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"via channel", "{name}: channel data to peer");
    peer.send_to(b"channel back", relay).unwrap();
    assert_eq!(
        c.recv().unwrap(),
        Received::Channel { channel: 0x4001, data: b"channel back".to_vec() },
        "{name}: channel data to client"
    );
    // Channel rules: the number range, one peer per channel, rebinding the same pair.
    let (_fresh, fresh_addr) = echo_peer();
    assert_eq!(c.channel_bind(0x3FFF, fresh_addr).unwrap().error_code(), Some(400), "{name}: channel below range");
    // 0x5000: reserved by RFC 8656 §12 (peerstorm: 400); RFC 5766 allowed up to 0x7FFF, and
    // coturn 4.6.1 still does.
    let above = c.channel_bind(0x5000, fresh_addr).unwrap().error_code();
    assert_eq!(above, if name == "peerstorm" { Some(400) } else { None }, "{name}: channel 0x5000");
    let (_other, other_addr) = echo_peer();
    assert_eq!(
        c.channel_bind(0x4001, other_addr).unwrap().error_code(),
        Some(400),
        "{name}: channel already bound elsewhere"
    );
    assert_eq!(c.channel_bind(0x4002, peer_addr).unwrap().error_code(), Some(400), "{name}: peer already on a channel");
    let _ = fresh_addr;
    assert!(c.channel_bind(0x4001, peer_addr).unwrap().is_success(), "{name}: rebinding refreshes");
    // Several peers in one CreatePermission; a forbidden (multicast) peer gets 403.
    assert!(c.create_permission(&[peer_addr, other_addr]).unwrap().is_success(), "{name}: several peers");
    let mcast: SocketAddr = "224.0.0.1:5000".parse().unwrap();
    assert_eq!(c.create_permission(&[mcast]).unwrap().error_code(), Some(403), "{name}: forbidden peer");
    // Refresh, then refresh to 0 deletes the allocation.
    let r = c.refresh(1200).unwrap();
    assert!(r.is_success(), "{name}: refresh");
    let r = c.refresh(0).unwrap();
    assert!(r.is_success(), "{name}: refresh to 0");
    // peerstorm deletes at once and answers 437 (RFC 8656 §7.3, §9). coturn 4.6.1 keeps
    // honouring the allocation for about a second (it deletes on a timer tick) and then answers
    // 400 Bad Request instead of 437: a documented difference.
    if name == "peerstorm" {
        assert_eq!(c.create_permission(&[peer_addr]).unwrap().error_code(), Some(437), "{name}: deleted at once");
    } else {
        let mut waited = Duration::ZERO;
        let code = loop {
            let code = c.create_permission(&[peer_addr]).unwrap().error_code();
            if code.is_some() || waited >= Duration::from_secs(5) {
                break code;
            }
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        };
        assert!(
            matches!(code, Some(400 | 437)),
            "{name}: the allocation must go away after refresh to 0, got {code:?}"
        );
        assert!(waited <= Duration::from_secs(2), "{name}: deleted within 2 s (took {} ms)", waited.as_millis());
    }
    // TCP relaying (RFC 6062) asked for over a UDP control connection: 442.
    let mut d = UdpClient::connect(server.addr(), USER, PASS, 12).unwrap();
    let r = d.call(method::ALLOCATE, &[(tattr::REQUESTED_TRANSPORT, vec![6, 0, 0, 0])]).unwrap();
    assert_eq!(r.error_code(), Some(442), "{name}: unsupported transport");
    // An unknown protocol number: RFC 8656 §7.2 says 442; coturn 4.6.1 answers 400.
    let r = d.call(method::ALLOCATE, &[(tattr::REQUESTED_TRANSPORT, vec![99, 0, 0, 0])]).unwrap();
    let want = if name == "peerstorm" { 442 } else { 400 };
    assert_eq!(r.error_code(), Some(want), "{name}: unknown transport protocol");
    // A wrong password: 401 again.
    let mut e = UdpClient::connect(server.addr(), USER, "wrong", 13).unwrap();
    let r = e.allocate().unwrap();
    assert_eq!(r.error_code(), Some(401), "{name}: wrong password");
    let _ = Class::Error;
}

#[test]
fn client_checks_pass_against_peerstorm() {
    suite(&ours());
}

#[test]
fn client_checks_pass_against_coturn() {
    // Without TCP relaying (peerstorm has none either), coturn answers 442 for TCP; with it, a
    // TCP allocation asked for over UDP gets 400 (RFC 6062 wants a TCP control connection).
    suite(&coturn(&["--no-tcp-relay"]));
}

#[test]
fn a_client_that_goes_releases_its_allocation() {
    // One allocation per user: the second client can allocate only once the first has deleted
    // its own (a Refresh to 0 when the client is dropped).
    let server = ours_with(|c| c.max_allocations_per_user = 1);
    let mut a = UdpClient::connect(server.addr(), USER, PASS, 21).unwrap();
    assert!(a.allocate().unwrap().is_success());
    let mut b = UdpClient::connect(server.addr(), USER, PASS, 22).unwrap();
    assert_eq!(b.allocate().unwrap().error_code(), Some(486), "the quota holds while the first client is there");
    drop(a);
    assert!(b.allocate().unwrap().is_success(), "the first client's allocation went with it");
    // A client that hands its socket over keeps the allocation: the quota is full again.
    let socket = b.into_socket().unwrap();
    let mut c = UdpClient::connect(server.addr(), USER, PASS, 23).unwrap();
    assert_eq!(c.allocate().unwrap().error_code(), Some(486));
    drop(socket);
}
