//! A generator peer leaves as a browser tab does: a close frame, then the broker's close frame
//! and the broker's end of the connection — against peerstorm's broker and `peer@1.0.2`.

#[path = "../../broker/tests/support/mod.rs"]
mod support;

use peerstorm_loadgen::{Client, Target};
use std::time::Duration;
use support::{Broker, Opts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn join(addr: std::net::SocketAddr, id: &str) -> Client {
    let target = Target::new(addr, "/peerjs", "peerjs");
    Client::join(&target, id, "tok", None, Duration::from_secs(5)).await.expect("joins").0
}

#[test]
fn both_brokers_answer_a_leaving_peers_close_and_close_first() {
    let o = Opts::default();
    for broker in [Broker::ours(&o), Broker::reference(&o)] {
        let addr = broker.addr();
        rt().block_on(async {
            let c = join(addr, "leaver").await;
            assert!(
                c.close(Duration::from_secs(5)).await.expect("the close frame is written"),
                "{addr}: the broker answers the close frame and ends the connection"
            );
            // The ID is free again at once: a new peer takes it and gets OPEN.
            let again = join(addr, "leaver").await;
            assert!(again.close(Duration::from_secs(5)).await.unwrap());
        });
    }
}

/// A server that upgrades, says OPEN and then ignores everything: the close gives up after its
/// timeout and says so, having sent a masked close frame with no status.
#[test]
fn an_unanswered_close_gives_up_after_its_timeout() {
    rt().block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                .await
                .unwrap();
            let open = br#"{"type":"OPEN"}"#;
            s.write_all(&[0x81, open.len() as u8]).await.unwrap();
            s.write_all(open).await.unwrap();
            // The client's close frame: FIN + close, masked, no payload.
            let mut frame = [0u8; 6];
            s.read_exact(&mut frame).await.unwrap();
            // Hold the connection open past the client's timeout.
            let mut rest = [0u8; 1];
            let n = s.read(&mut rest).await.unwrap_or(0);
            (frame, n)
        });
        let c = join(addr, "ignored").await;
        let answered = c.close(Duration::from_millis(200)).await.expect("the close frame is written");
        assert!(!answered, "nobody answered");
        let (frame, after) = server.await.unwrap();
        assert_eq!(frame[..2], [0x88, 0x80], "a final, masked close frame with no status");
        assert_eq!(after, 0, "the client dropped the connection after giving up, sending nothing more");
    });
}
