//! Full-stack virtual peers on real sockets: the simulator's sans-IO [`VirtualPeer`] (the `rtc`
//! stack: ICE, DTLS, SCTP, PeerJS DataConnections, the `rtc-turn` client) driven by a thin tokio
//! shell: a WebSocket to the broker (the loadgen client), one UDP socket on 127.0.0.1 per
//! connection (and a TCP connection to the TURN server when it is reached over TCP), real time.
//! The same code the simulator measures, pointed at real servers.

use peerstorm_loadgen::{Client, Target, client::text_frame};
use peerstorm_peer::{Failure, PeerConfig, Transmit, VirtualPeer};
use peerstorm_scenario::{Link, PeerResult, RunOutcome, Shard};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The servers a peer talks to over TCP: the broker, and the TLS client for a `turns:` TURN
/// server (its configuration and the name its certificate must carry).
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    pub broker: &'a Target,
    pub turn_tls: Option<&'a peerstorm_tls::Client>,
}

impl<'a> From<&'a Target> for Via<'a> {
    fn from(broker: &'a Target) -> Self {
        Via { broker, turn_tls: None }
    }
}

/// Joins the broker, then runs the peer until it is done and `linger` has passed, or until
/// `deadline` (everything unfinished then fails with `timeout`). Returns the peer for its
/// milestones.
pub async fn drive<'a>(
    peer: VirtualPeer,
    target: impl Into<Via<'a>>,
    sockets: Vec<Arc<UdpSocket>>,
    linger: Duration,
    deadline: Instant,
) -> Result<VirtualPeer, PeerError> {
    drive_until(peer, target, sockets, linger, deadline, Arc::new(tokio::sync::Notify::new())).await
}

/// As [`drive`], also stopping when `stop` is notified.
pub async fn drive_until<'a>(
    peer: VirtualPeer,
    target: impl Into<Via<'a>>,
    sockets: Vec<Arc<UdpSocket>>,
    linger: Duration,
    deadline: Instant,
    stop: Arc<tokio::sync::Notify>,
) -> Result<VirtualPeer, PeerError> {
    drive_with(peer, target, sockets, linger, deadline, stop, None).await
}

/// As [`drive_until`], notifying `ready` once the broker has said OPEN (the peer can be called).
pub async fn drive_with<'a>(
    mut peer: VirtualPeer,
    via: impl Into<Via<'a>>,
    sockets: Vec<Arc<UdpSocket>>,
    linger: Duration,
    deadline: Instant,
    stop: Arc<tokio::sync::Notify>,
    ready: Option<Arc<tokio::sync::Notify>>,
) -> Result<VirtualPeer, PeerError> {
    let via = via.into();
    let target = via.broker;
    let token = format!("t{}", std::process::id());
    let step = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(30));
    let mut ws = match Client::join(target, peer.id(), &token, None, step).await {
        Ok((ws, _)) => {
            if let Some(r) = &ready {
                r.notify_one();
            }
            ws
        }
        Err(e) => {
            // A peer that could not join has failed; its record is kept like any other.
            peer.fail(Failure::BrokerError(format!("joining the broker: {e}")), Instant::now());
            return Ok(peer);
        }
    };
    // One reader task per socket (and per TCP connection), all into one channel:
    // (over TCP?, from, to, bytes).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(bool, SocketAddr, SocketAddr, Vec<u8>)>(1024);
    // TCP connections to TURN servers, by (the connection's UDP socket, the server).
    type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
    let mut streams: HashMap<(SocketAddr, SocketAddr), Writer> = HashMap::new();
    let mut by_addr: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut readers = tokio::task::JoinSet::new();
    for s in &sockets {
        let local = s.local_addr().map_err(PeerError::Udp)?;
        by_addr.insert(local, s.clone());
        let (s, tx) = (s.clone(), tx.clone());
        readers.spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, src)) = s.recv_from(&mut buf).await {
                if tx.send((false, src, local, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        });
    }
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
                Transmit::Stream { src, dst, data, tls } => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = streams.entry((src, dst)) {
                        // A connection that cannot be made (a certificate not trusted, a server
                        // that does not speak TLS) leaves the TURN client's transaction to time
                        // out, and the failure is counted there.
                        let Ok(Ok(tcp)) = tokio::time::timeout(step, tokio::net::TcpStream::connect(dst)).await else {
                            continue;
                        };
                        let _ = tcp.set_nodelay(true);
                        let (mut r, w): (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Writer) =
                            match (tls, via.turn_tls) {
                                (false, _) => {
                                    let (r, w) = tcp.into_split();
                                    (Box::new(r), Box::new(w))
                                }
                                (true, Some(client)) => {
                                    let Ok(Ok(s)) = tokio::time::timeout(step, client.connect(tcp)).await else {
                                        continue;
                                    };
                                    let (r, w) = tokio::io::split(s);
                                    (Box::new(r), Box::new(w))
                                }
                                // turns: without a TLS client configured: nothing to speak it with.
                                (true, None) => continue,
                            };
                        slot.insert(w);
                        let tx = tx.clone();
                        readers.spawn(async move {
                            use tokio::io::AsyncReadExt;
                            let mut buf = vec![0u8; 65536];
                            while let Ok(n) = r.read(&mut buf).await {
                                if n == 0 || tx.send((true, dst, src, buf[..n].to_vec())).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    if let Some(w) = streams.get_mut(&(src, dst)) {
                        use tokio::io::AsyncWriteExt;
                        if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                            streams.remove(&(src, dst));
                        }
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
            Stream(SocketAddr, SocketAddr, Vec<u8>),
            Timer,
            Stop,
        }
        let ev = tokio::select! {
            r = ws.read_frames(|op, p| if op == 1 { frames.push(String::from_utf8_lossy(p).into_owned()) }) => {
                if r.is_ok() { Ev::Frames } else { Ev::WsClosed }
            }
            d = rx.recv() => match d {
                Some((false, from, to, bytes)) => Ev::Datagram(from, to, bytes),
                Some((true, from, to, bytes)) => Ev::Stream(from, to, bytes),
                None => Ev::Timer,
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => Ev::Timer,
            _ = stop.notified() => Ev::Stop,
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
            Ev::Stream(from, to, bytes) => peer.handle_stream(now, from, to, &bytes),
            Ev::Timer => peer.handle_timeout(now),
            Ev::Stop => break peer,
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
    // With media the pair calls (and, with its `with_data`, connects too).
    let (connect, call, accept, answer) = match base.workload.media.as_ref().map(|m| m.with_data) {
        None => (connect, Vec::new(), accept, Vec::new()),
        Some(true) => (connect.clone(), connect, accept.clone(), accept),
        Some(false) => (Vec::new(), connect, Vec::new(), accept),
    };
    PeerConfig {
        id,
        token: "t".into(),
        connect,
        call,
        accept,
        answer,
        host: addrs.first().copied().unwrap_or(base.host),
        sockets: addrs,
        metronome_tick: base.metronome_tick.or_else(|| Some(machine_metronome_tick())),
        ..base
    }
}

/// An instant at which a browser's 64 Hz metronome ticks on this machine: Chromium's ticks fall
/// at whole multiples of 15.625 ms of `CLOCK_MONOTONIC` (its `base::TimeTicks`, whose zero is
/// the metronome's phase), so every browser and every live virtual peer on one machine tick
/// together, as in the lab.
pub fn machine_metronome_tick() -> std::time::Instant {
    const PERIOD_NS: u64 = 15_625_000;
    let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC);
    let now = std::time::Instant::now();
    let Ok(mono) = mono else { return now };
    let mono_ns = u64::try_from(mono.tv_sec()).unwrap_or(0).wrapping_mul(1_000_000_000)
        + u64::try_from(mono.tv_nsec()).unwrap_or(0);
    now.checked_sub(std::time::Duration::from_nanos(mono_ns % PERIOD_NS)).unwrap_or(now)
}

/// What the full-stack load does.
#[derive(Debug, Clone)]
pub struct FullConfig {
    pub target: Target,
    pub plan: crate::Plan,
    /// Each peer's settings (ICE mode, workload, STUN/TURN); IDs and sockets are filled in.
    pub peer: PeerConfig,
    /// A pair not done this long after its intended start has failed (`timeout`).
    pub setup_timeout: Duration,
    pub id_prefix: String,
    pub ip: std::net::IpAddr,
    /// Set from outside (Ctrl-C, SIGTERM): no pair starts after it; those running finish within
    /// their setup timeout, and the outcome is marked interrupted.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// A TURN REST API secret and lifetime: each peer mints its own credential
    /// (`EXPIRY:PEER-ID`) when its pair starts, instead of `peer.turn`'s user.
    pub turn_secret: Option<(String, Duration)>,
    /// A `turns:` TURN server: the TLS client the peers reach it with.
    pub turn_tls: Option<peerstorm_tls::Client>,
}

impl FullConfig {
    /// The settings of the peer `id`: the shared ones with its own TURN credential, if minted.
    fn peer_for(&self, id: &str) -> PeerConfig {
        let mut peer = self.peer.clone();
        if let Some((secret, ttl)) = &self.turn_secret {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            for turn in &mut peer.turn {
                turn.user = format!("{}:{id}", now.as_secs() + ttl.as_secs());
                turn.password = peerstorm_turn::auth::rest_password(secret, &turn.user);
            }
        }
        peer
    }
}

/// One pair: both peers driven at once; the answerer stops when the offerer is done.
async fn pair(cfg: Arc<FullConfig>, n: usize, intended: Instant) -> Option<(VirtualPeer, VirtualPeer, Instant)> {
    // A socket per connection: a call and a DataConnection side by side take two.
    let media = cfg.peer.workload.media.as_ref();
    let per = if media.is_some_and(|m| m.with_data) { 2 } else { 1 };
    let (Ok(so), Ok(sa)) = (bind(cfg.ip, per).await, bind(cfg.ip, per).await) else { return None };
    let (oid, aid) = (format!("{}-{n}o", cfg.id_prefix), format!("{}-{n}a", cfg.id_prefix));
    let o = VirtualPeer::new(config(oid.clone(), vec![aid.clone()], Vec::new(), &so, cfg.peer_for(&oid)), intended);
    let a = VirtualPeer::new(config(aid.clone(), Vec::new(), vec![oid], &sa, cfg.peer_for(&aid)), intended);
    let via = Via { broker: &cfg.target, turn_tls: cfg.turn_tls.as_ref() };
    // A call sends for its duration once connected: the deadline covers both.
    let deadline = intended + cfg.setup_timeout + media.map_or(Duration::ZERO, |m| m.duration);
    let stop = Arc::new(tokio::sync::Notify::new());
    let answerer = drive_until(a, via, sa, deadline.saturating_duration_since(Instant::now()), deadline, stop.clone());
    let offerer = async {
        // The answerer first, as a PeerJS app would be there before anyone calls it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = drive(o, via, so, Duration::ZERO, deadline).await;
        stop.notify_one();
        r
    };
    let (ra, ro) = tokio::join!(answerer, offerer);
    match (ro, ra) {
        (Ok(o), Ok(a)) => Some((o, a, intended)),
        _ => None,
    }
}

/// Finished pairs: number, offerer, answerer, intended start.
type Finished = Arc<std::sync::Mutex<Vec<(usize, VirtualPeer, VirtualPeer, Instant)>>>;

/// Runs the full-stack load: pairs by the plan (open, ramp or closed), each through the broker
/// and the configured STUN/TURN server. Returns the peers' outcomes (NAT `live`), the same type
/// the simulator produces, and how many pairs could not even bind their UDP sockets.
pub async fn run_full(cfg: FullConfig, mut progress: impl FnMut(crate::Progress)) -> (RunOutcome, usize) {
    let start = Instant::now();
    let cfg = Arc::new(cfg);
    let results: Finished = Arc::default();
    let unbound = Arc::new(AtomicUsize::new(0));
    let run = {
        let (cfg, results, unbound) = (cfg.clone(), results.clone(), unbound.clone());
        move |n: usize, intended: Instant, _slot: Option<usize>| {
            let (cfg, results, unbound) = (cfg.clone(), results.clone(), unbound.clone());
            async move {
                match pair(cfg, n, intended).await {
                    Some((o, a, at)) => results.lock().expect("lock").push((n, o, a, at)),
                    None => {
                        unbound.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    };
    let on_start = |n: usize, in_flight: usize| {
        progress(crate::Progress {
            elapsed: start.elapsed(),
            started: n + 1,
            ok: 0,
            failed: 0,
            connected: in_flight * 2,
        })
    };
    let stop = cfg.stop.clone();
    let stopped = move || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    cfg.plan.dispatch(start, Arc::new(stopped.clone()), run, on_start).await;
    let mut done = std::mem::take(&mut *results.lock().expect("lock"));
    done.sort_by_key(|(n, ..)| *n);
    let mut peers = Vec::new();
    let mut links = Vec::new();
    // No network of its own to count: the frames the broker relayed to the peers and the
    // datagrams (and TCP segments) they received.
    let (mut frames, mut datagrams) = (0, 0);
    for (_, o, a, at) in done {
        let s = at.saturating_duration_since(start);
        links.push(Link { offerer: (peers.len(), 0), answerer: (peers.len() + 1, 0) });
        for p in [o, a] {
            frames += p.received().frames;
            datagrams += p.received().datagrams;
            peers.push(PeerResult {
                id: p.id().to_string(),
                in_shard: true,
                nat: "live",
                start: s,
                connections: p.connections(),
            });
        }
    }
    let run = RunOutcome {
        ice: cfg.peer.ice,
        peers,
        links,
        end: start.elapsed(),
        frames_relayed: frames,
        frames_per_s: Vec::new(),
        bytes_per_s: Vec::new(),
        shard: Shard { index: cfg.plan.shard.0, count: cfg.plan.shard.1 },
        sim: None,
        datagrams,
        interrupted: stopped(),
        point: Default::default(),
    };
    (run, unbound.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tick falls on a whole multiple of 15.625 ms of `CLOCK_MONOTONIC`, at most one period
    /// ago.
    #[test]
    fn the_metronome_ticks_on_the_monotonic_clocks_64_hz_grid() {
        let tick = machine_metronome_tick();
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
        let since = std::time::Instant::now().duration_since(tick);
        assert!(since < Duration::from_micros(15_625) + Duration::from_millis(50), "{since:?}");
        let mono_ns = mono.tv_sec() as u128 * 1_000_000_000 + mono.tv_nsec() as u128;
        // The tick's own monotonic time, give or take the microseconds between the two reads.
        let off = (mono_ns - since.as_nanos()) % 15_625_000;
        let off = off.min(15_625_000 - off);
        assert!(off < 1_000_000, "{off} ns off the grid");
    }
}
