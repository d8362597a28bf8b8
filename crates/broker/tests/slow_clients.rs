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
