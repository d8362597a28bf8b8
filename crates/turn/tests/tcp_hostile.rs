//! Hostile TCP clients: a half-sent frame and an idle connection are closed at their deadlines
//! (they held a descriptor and a buffer for good before), and a burst to a client that reads
//! slowly arrives as whole frames (a short write used to drop the rest of a frame and
//! desynchronise the stream for good).

mod support;

use peerstorm_model::stun::{Class, Message, attr, stream_frame_len};
use peerstorm_turn::auth::{encode_with_integrity, long_term_key};
use peerstorm_turn::server::{method, tattr};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use support::{PASS, REALM, USER, ours_with};

/// Reads until EOF or `limit`; true when the server closed the connection.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut b = [0u8; 512];
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
fn half_a_frame_and_an_idle_connection_are_closed_at_their_deadlines() {
    let server = ours_with(|c| {
        c.tcp_frame_timeout = Duration::from_millis(500);
        c.tcp_idle_timeout = Duration::from_millis(800);
    });
    let mut half = TcpStream::connect(server.addr()).unwrap();
    half.write_all(&Message::binding_request([1; 12]).encode(true)[..10]).unwrap();
    let mut idle = TcpStream::connect(server.addr()).unwrap();
    assert!(closed_within(&mut half, Duration::from_secs(5)), "half a frame: closed");
    assert!(closed_within(&mut idle, Duration::from_secs(5)), "nothing sent, no allocation: closed");
    // A well-behaved client is served as before.
    let mut ok = TcpStream::connect(server.addr()).unwrap();
    ok.write_all(&Message::binding_request([2; 12]).encode(true)).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 512];
    let n = ok.read(&mut b).unwrap();
    assert_eq!(stream_frame_len(&b[..n]), Ok(Some(n)), "one whole Binding response");
}

/// One request on the stream and its answer.
fn call(s: &mut TcpStream, buf: &mut Vec<u8>, bytes: &[u8]) -> Message {
    s.write_all(bytes).unwrap();
    loop {
        if let Ok(Some(n)) = stream_frame_len(buf) {
            let m = Message::decode(&buf[..n]).unwrap();
            buf.drain(..n);
            return m;
        }
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&b[..n]);
    }
}

#[test]
fn a_burst_to_a_slow_reader_arrives_as_whole_frames() {
    // Room for the whole burst in the server's unsent output (the default closes a client that
    // falls a MiB behind, which a separate case would check).
    let server = ours_with(|c| c.tcp_max_unsent = 64 << 20);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // A small receive buffer, so the server's writes come up short.
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&server.addr().into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut alloc = Message::new(method::ALLOCATE, Class::Request, [1; 12]);
    alloc.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    let nonce = call(&mut s, &mut buf, &alloc.encode(true)).attribute(attr::NONCE).unwrap().to_vec();
    let key = long_term_key(USER, REALM, PASS);
    let signed = |mut m: Message| {
        m.push(attr::USERNAME, USER.as_bytes().to_vec());
        m.push(attr::REALM, REALM.as_bytes().to_vec());
        m.push(attr::NONCE, nonce.clone());
        encode_with_integrity(&m, &key, true)
    };
    let mut alloc = Message::new(method::ALLOCATE, Class::Request, [2; 12]);
    alloc.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    let r = call(&mut s, &mut buf, &signed(alloc));
    let relay: SocketAddr = r.address(tattr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut perm = Message::new(method::CREATE_PERMISSION, Class::Request, [3; 12]);
    perm.push_address(tattr::XOR_PEER_ADDRESS, peer.local_addr().unwrap());
    assert_eq!(call(&mut s, &mut buf, &signed(perm)).class, Class::Success);
    // The burst, while the client reads nothing: 600 Data indications of 8 kB, more than the
    // kernel's send buffer holds, so the server's writes come up short.
    let (n, size) = (600, 8000);
    for i in 0..n {
        peer.send_to(&vec![i as u8; size], relay).unwrap();
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // Now read it all: every frame whole, in order, none cut.
    let mut frames = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while frames < n && Instant::now() < end {
        match stream_frame_len(&buf) {
            Ok(Some(len)) => {
                let m = Message::decode(&buf[..len]).expect("a whole STUN message");
                assert_eq!(m.method, method::DATA);
                assert_eq!(m.attribute(tattr::DATA).map(<[u8]>::len), Some(size));
                buf.drain(..len);
                frames += 1;
            }
            Ok(None) => {
                let mut b = [0u8; 65536];
                match s.read(&mut b) {
                    Ok(0) => break,
                    Ok(k) => buf.extend_from_slice(&b[..k]),
                    Err(_) => break,
                }
            }
            Err(e) => panic!("the stream lost its framing after {frames} frames: {e}"),
        }
    }
    // UDP into the relay may drop some on a busy machine; what arrived arrived whole. (Before,
    // a write that would block dropped its frame: 350 of 600 arrived.)
    assert!(frames >= n * 8 / 10, "{frames} of {n} frames");
}
