//! Clients that never finish their request head are closed at the head deadline (300 such
//! sockets held every descriptor before, and new clients got 503 for minutes).

use peerstorm_broker::Config;
use peerstorm_broker::server::spawn;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut b = [0u8; 256];
    while Instant::now() < end {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_closed() {
    let cfg = Config { head_timeout: Duration::from_millis(500), ..Config::default() };
    let h = spawn("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let mut silent = TcpStream::connect(h.addr).unwrap();
    let mut trickle = TcpStream::connect(h.addr).unwrap();
    trickle.write_all(b"GET /peerjs?key=peerjs&id=a&token=t HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)), "a silent connection is closed");
    assert!(closed_within(&mut trickle, Duration::from_secs(5)), "an unfinished head is closed");
    // A client that sends its head in time is answered as before.
    let mut ok = TcpStream::connect(h.addr).unwrap();
    ok.write_all(b"GET /peerjs/id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    ok.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = ok.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// A WebSocket client joined as `id` (the OPEN frame read), with its socket.
fn joined(addr: std::net::SocketAddr, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let req = format!(
        "GET /peerjs?key=peerjs&id={id}&token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("OPEN") {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed before OPEN");
        got.extend_from_slice(&b[..n]);
    }
    s
}

/// Pongs read within `wait` (frames after the handshake's OPEN).
fn pongs_within(s: &mut TcpStream, wait: Duration) -> usize {
    let end = Instant::now() + wait;
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let (mut buf, mut pongs) = (Vec::new(), 0);
    let mut b = [0u8; 65536];
    while Instant::now() < end {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
            Err(_) => {}
        }
        let used = peerstorm_model::ws::for_each_server_frame(&buf, |op, _, _| {
            pongs += usize::from(op == peerstorm_model::ws::OP_PONG);
        });
        buf.drain(..used);
    }
    pongs
}

#[test]
fn a_ping_is_answered_at_once_and_a_ping_flood_with_few_pongs() {
    let h = spawn("127.0.0.1:0".parse().unwrap(), Config::default()).unwrap();
    // An idle client's ping: the pong comes now, not whenever another frame goes its way.
    let mut one = joined(h.addr, "pinger");
    let mut ping = Vec::new();
    peerstorm_model::ws::encode_masked(&mut ping, peerstorm_model::ws::OP_PING, b"hi", [1, 2, 3, 4]);
    one.write_all(&ping).unwrap();
    assert_eq!(pongs_within(&mut one, Duration::from_secs(2)), 1, "one ping, one pong, promptly");
    // 20,000 pings at once: answered, but with one pong per batch the broker read, not 20,000
    // queued pongs (a GB of pings grew the broker by 930 MiB before).
    let mut flood = joined(h.addr, "flooder");
    let mut pings = Vec::new();
    for _ in 0..20_000 {
        peerstorm_model::ws::encode_masked(&mut pings, peerstorm_model::ws::OP_PING, b"flood", [5, 6, 7, 8]);
    }
    flood.write_all(&pings).unwrap();
    let n = pongs_within(&mut flood, Duration::from_secs(2));
    assert!((1..=2_000).contains(&n), "{n} pongs for 20,000 pings");
}

/// The whole answer to a raw request, or what came before the connection closed.
fn answer(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(request);
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn an_oversized_head_gets_431_and_a_bare_lf_head_an_answer() {
    let h = spawn("127.0.0.1:0".parse().unwrap(), Config::default()).unwrap();
    let mut big = b"GET /peerjs/id HTTP/1.1\r\nX-Long: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 << 10));
    assert!(answer(h.addr, &big).starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "a 64 KiB header line");
    let lf = answer(h.addr, b"GET /peerjs/id HTTP/1.1\nHost: x\nConnection: close\n\n");
    assert!(lf.starts_with("HTTP/1.1 "), "a head with bare LFs is answered, not held: {lf:?}");
}

#[test]
fn hardened_a_same_token_takeover_closes_the_socket_it_replaced() {
    let cfg = Config { hardening: Some(peerstorm_broker::Hardening::default()), ..Config::default() };
    let h = spawn("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let mut first = joined(h.addr, "same");
    // The same ID and token again: it takes the registration over (no OPEN, as in PeerJS).
    let mut second = TcpStream::connect(h.addr).unwrap();
    second
        .write_all(b"GET /peerjs?key=peerjs&id=same&token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    assert!(closed_within(&mut first, Duration::from_secs(5)), "the replaced socket is closed");
    // The new one holds the ID: a third client with another token is refused it.
    let mut third = TcpStream::connect(h.addr).unwrap();
    third
        .write_all(b"GET /peerjs?key=peerjs&id=same&token=other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    third.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("ID-TAKEN") {
        match third.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    assert!(String::from_utf8_lossy(&got).contains("ID-TAKEN"), "{}", String::from_utf8_lossy(&got));
    drop(second);
}

/// Descriptors this process holds (the broker runs on a thread of the test process).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Issue 20 item 9: idle sockets that never send a head are bounded by `max_handshaking`: the
/// next one gets 503 at once instead of a descriptor, a registered client keeps working, and
/// once the idle ones are gone new clients are served again.
#[test]
fn connections_in_their_handshake_are_capped() {
    let cfg = Config { max_handshaking: 20, ..Config::default() };
    let h = spawn("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let mut member = joined(h.addr, "member");
    let before = open_fds();
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(h.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // 40 more: each answered 503 and closed, none held.
    for _ in 0..40 {
        let mut s = TcpStream::connect(h.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply:?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    // The test's 20 idle client sockets and the broker's 20 ends, and nothing for the 40.
    let held = open_fds().saturating_sub(before);
    assert!(held <= 40 + 2, "descriptors held: {held}");
    // The registered client still gets its pong and its frames.
    member.write_all(&[0x89, 0x80, 1, 2, 3, 4]).unwrap();
    let mut b = [0u8; 64];
    member.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let n = member.read(&mut b).unwrap();
    assert!(n >= 2 && b[0] == 0x8A, "a pong: {:?}", &b[..n]);
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let mut ok = TcpStream::connect(h.addr).unwrap();
    ok.write_all(b"GET /peerjs/id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    ok.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = ok.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "served again once the idle sockets left: {reply}");
}
