//! Full-stack virtual peers on real sockets: the simulator's sans-IO [`VirtualPeer`] (the `rtc`
//! stack: ICE, DTLS, SCTP, PeerJS DataConnections, the `rtc-turn` client) driven by a thin tokio
//! shell: a WebSocket to the broker (the loadgen client), one UDP socket on 127.0.0.1, real
//! time. The same code the simulator measures, pointed at real servers.

use peerstorm_loadgen::{Client, Target, client::text_frame};
use peerstorm_peer::{Failure, PeerConfig, Transmit, VirtualPeer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Why a peer could not start.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("binding a UDP socket: {0}")]
    Udp(std::io::Error),
    #[error("joining the broker: {0}")]
    Join(#[from] peerstorm_loadgen::JoinError),
}

/// `n` sockets on `ip`, bound before the peer is configured (their addresses are its host
/// candidates: connection `k` uses socket `k`).
pub async fn bind(ip: std::net::IpAddr, n: usize) -> Result<Vec<Arc<UdpSocket>>, PeerError> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Arc::new(UdpSocket::bind((ip, 0)).await.map_err(PeerError::Udp)?));
    }
    Ok(v)
}

/// Joins the broker, then runs the peer until it is done and `linger` has passed, or until
/// `deadline` (everything unfinished then fails with `timeout`). Returns the peer for its
/// milestones.
pub async fn drive(
    mut peer: VirtualPeer,
    target: &Target,
    sockets: Vec<Arc<UdpSocket>>,
    linger: Duration,
    deadline: Instant,
) -> Result<VirtualPeer, PeerError> {
    let token = format!("t{}", std::process::id());
    let step = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(30));
    let (mut ws, _) = Client::join(target, peer.id(), &token, None, step).await?;
    // One reader task per socket, all into one channel: (from, to, bytes).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(SocketAddr, SocketAddr, Vec<u8>)>(1024);
    let mut by_addr: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut readers = tokio::task::JoinSet::new();
    for s in &sockets {
        let local = s.local_addr().map_err(PeerError::Udp)?;
        by_addr.insert(local, s.clone());
        let (s, tx) = (s.clone(), tx.clone());
        readers.spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, src)) = s.recv_from(&mut buf).await {
                if tx.send((src, local, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let now = Instant::now();
    peer.handle_connected(now);
    // `Client::join` consumed the OPEN frame.
    peer.handle_signal(now, r#"{"type":"OPEN"}"#);
    let mut done_at: Option<Instant> = None;
    let result = loop {
        // Out: frames to the broker, datagrams to wherever the stack sends them.
        let mut ws_lost = false;
        while let Some(t) = peer.poll_transmit() {
            match t {
                Transmit::Signal(text) => ws_lost |= ws.send(&text_frame(&text)).await.is_err(),
                Transmit::Datagram { src, dst, data } => {
                    if let Some(s) = by_addr.get(&src).or_else(|| sockets.first()) {
                        let _ = s.send_to(&data, dst).await;
                    }
                }
            }
        }
        let now = Instant::now();
        if ws_lost {
            peer.fail(Failure::BrokerError("the broker closed the connection".into()), now);
            break peer;
        }
        if peer.is_done() {
            let at = *done_at.get_or_insert(now);
            if now >= at + linger {
                break peer;
            }
        }
        if now >= deadline {
            peer.fail(Failure::Timeout, now);
            break peer;
        }
        let wake = [peer.poll_timeout(), Some(deadline), done_at.map(|t| t + linger)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(deadline)
            .max(now);
        let mut frames: Vec<String> = Vec::new();
        enum Ev {
            Frames,
            WsClosed,
            Datagram(SocketAddr, SocketAddr, Vec<u8>),
            Timer,
        }
        let ev = tokio::select! {
            r = ws.read_frames(|op, p| if op == 1 { frames.push(String::from_utf8_lossy(p).into_owned()) }) => {
                if r.is_ok() { Ev::Frames } else { Ev::WsClosed }
            }
            d = rx.recv() => match d {
                Some((from, to, bytes)) => Ev::Datagram(from, to, bytes),
                None => Ev::Timer,
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => Ev::Timer,
        };
        let now = Instant::now();
        match ev {
            Ev::Frames => {
                for f in &frames {
                    peer.handle_signal(now, f);
                }
            }
            Ev::WsClosed => {
                if !peer.is_done() {
                    peer.fail(Failure::BrokerError("the broker closed the connection".into()), now);
                }
                break peer;
            }
            Ev::Datagram(from, to, bytes) => peer.handle_datagram(now, from, to, &bytes),
            Ev::Timer => peer.handle_timeout(now),
        }
    };
    readers.abort_all();
    Ok(result)
}

/// A configuration for a live peer whose connections use `sockets`.
pub fn config(
    id: String,
    connect: Vec<String>,
    accept: Vec<String>,
    sockets: &[Arc<UdpSocket>],
    base: PeerConfig,
) -> PeerConfig {
    let addrs: Vec<SocketAddr> = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
    PeerConfig {
        id,
        token: "t".into(),
        connect,
        accept,
        host: addrs.first().copied().unwrap_or(base.host),
        sockets: addrs,
        ..base
    }
}
