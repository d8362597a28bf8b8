//! The simulation driver: the simulated network, the broker core and the virtual peers on one
//! virtual clock, as a discrete-event loop. Ties break by insertion order; a step bound turns a
//! livelock into an error; the run ends when every peer is done, failed or timed out.

use crate::scenario::Scenario;
use peerstorm_broker::{Broker, Config, ConnId, ConnectParams, Output};
use peerstorm_model::rng::Rng;
use peerstorm_netsim::net::NetEvent;
use peerstorm_netsim::time::EventQueue;
use peerstorm_netsim::{Firewall, HostId, LinkConfig, Network, Packet, Preset, Proto, RouterSpec};
use peerstorm_peer::{ConnOutcome, Failure, IceMode, PeerConfig, Transmit, TurnTransport, VirtualPeer};
use peerstorm_turn::sim::SimTurn;
use peerstorm_turn::{TurnConfig, TurnServer};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// One peer's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerResult {
    pub id: String,
    /// Whether this run's shard simulated the peer (the others never joined).
    #[serde(skip)]
    pub in_shard: bool,
    /// The NAT preset this peer sits behind.
    pub nat: &'static str,
    /// When it joined, milliseconds of virtual time.
    #[serde(serialize_with = "start_ms")]
    pub start: Duration,
    /// Its DataConnections: those it opened, then those it accepted.
    pub connections: Vec<ConnOutcome>,
}

fn start_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

/// One DataConnection between two peers: `(peer, connection)` indexes on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub offerer: (usize, usize),
    pub answerer: (usize, usize),
}

/// Who connects to whom: per peer, the peers it opens a connection to and those it accepts
/// one from, by the scenario's pattern. In a group (a pair, a star, a room) the higher-indexed
/// members answer: they join first, so every offer finds its answerer OPEN.
pub fn topology(s: &Scenario) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let n = s.peers.count;
    let g = s.group_size().unwrap_or(2);
    let mut connect = vec![Vec::new(); n];
    let mut accept = vec![Vec::new(); n];
    for base in (0..n).step_by(g) {
        let members = base..base + g;
        for a in members.clone() {
            let targets: Vec<usize> = match s.peers.pattern.as_str() {
                // The hub is the group's last member (for a pair, the answerer).
                "rooms" => (a + 1..base + g).collect(),
                _ if a + 1 < base + g => vec![base + g - 1],
                _ => Vec::new(),
            };
            for b in targets {
                connect[a].push(b);
                accept[b].push(a);
            }
        }
    }
    (connect, accept)
}

/// One run (one ICE mode).
#[derive(Debug, Clone)]
pub struct RunResult {
    pub ice: IceMode,
    /// The peer-to-peer RTT this run used.
    pub rtt_ms: u64,
    pub peers: Vec<PeerResult>,
    pub links: Vec<Link>,
    pub virtual_end: Duration,
    pub events: u64,
    pub datagrams_delivered: u64,
    /// Signaling frames the broker delivered, in total and per virtual second.
    pub frames_relayed: u64,
    pub frames_per_s: Vec<u64>,
    /// Data-channel bytes moved per virtual second (both directions, both sides).
    pub bytes_per_s: Vec<u64>,
    /// The shard this run simulated.
    pub shard: Shard,
}

/// A part of a scenario: groups `index`, `index + count`, ... (0-based), so that shards
/// together hold every group once. Groups interact only through the servers, so on a lossless
/// network the shards' results are exactly the whole run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `i/n`, 1-based as written on a command line.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("shard {text:?}: expected i/n, e.g. 1/4"))?;
        let (i, n): (usize, usize) = match (i.trim().parse(), n.trim().parse()) {
            (Ok(i), Ok(n)) => (i, n),
            _ => return Err(format!("shard {text:?}: expected i/n with whole numbers, e.g. 1/4")),
        };
        if n == 0 || i == 0 || i > n {
            return Err(format!("shard {text:?}: need 1 <= i <= n"));
        }
        Ok(Shard { index: i - 1, count: n })
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.index + 1, self.count)
    }

    pub fn holds(&self, group: usize) -> bool {
        group % self.count == self.index
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("livelock: more than {0} events by virtual time {1:?}; unfinished peers: {2}")]
    Livelock(u64, Duration, String),
}

enum Ev {
    Join(usize),
    ToBroker(usize, String),
    ToPeer(usize, String),
    Deadline(usize),
    /// A STUN/TURN answer held back by `servers.answer_delay_ms`.
    ServerSend(Packet),
}

/// The STUN/TURN server's address on the simulated internet.
pub const SERVER_ADDR: std::net::SocketAddrV4 = std::net::SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 3478);
/// The user the virtual peers authenticate to the embedded TURN server as.
pub const TURN_USER: (&str, &str) = ("peerstorm", "peerstorm");
const NO_PEER: usize = usize::MAX;

const MAX_EVENTS: u64 = 200_000_000;

fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18 + (i >> 16) as u8, ((i >> 8) & 0xff) as u8, (i & 0xff) as u8)
}

/// A STUN success or error response (the answers `answer_delay_ms` holds back; relayed data,
/// Data indications and ChannelData, go at once).
fn is_stun_response(b: &[u8]) -> bool {
    if b.len() < 20 || b[0] >= 0x40 {
        return false;
    }
    let t = u16::from_be_bytes([b[0], b[1]]);
    ((t >> 7) & 0x2) | ((t >> 4) & 0x1) >= 2
}

fn private_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i >> 16) as u8, ((i >> 8) & 0xff) as u8, (i & 0xff) as u8)
}

/// Each peer's NAT preset. `mix`: exact counts by share (largest remainder), shuffled by the
/// seed; `matrix`: pair `k` takes combination `k mod m²` of the `m` presets with a share.
pub fn assign_presets(s: &Scenario) -> Vec<Preset> {
    let n = s.peers.count;
    let mix: Vec<(Preset, f64)> = s
        .network
        .nat_mix
        .iter()
        .filter(|(_, share)| **share > 0.0)
        .filter_map(|(k, share)| Preset::parse(k).map(|p| (p, *share)))
        .collect();
    if mix.is_empty() {
        return vec![Preset::Open; n];
    }
    if s.network.pairing == "matrix" {
        let m = mix.len();
        return (0..n)
            .map(|i| {
                let combo = (i / 2) % (m * m);
                mix[if i % 2 == 0 { combo / m } else { combo % m }].0
            })
            .collect();
    }
    let total: f64 = mix.iter().map(|(_, w)| w).sum();
    let exact: Vec<f64> = mix.iter().map(|(_, w)| w / total * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..mix.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    for &k in order.iter().cycle().take(n - counts.iter().sum::<usize>()) {
        counts[k] += 1;
    }
    let mut out: Vec<Preset> = mix.iter().zip(&counts).flat_map(|((p, _), c)| std::iter::repeat_n(*p, *c)).collect();
    let mut rng = Rng::seed(s.seed ^ 0x006e_6174_5f6d_6978);
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out
}

/// Puts peer `i` on the network behind `preset`'s NAT layers; returns its host and address.
/// How NATs are laid out beyond each peer's own preset.
struct Layout {
    /// Every NAT layer hairpins (RFC 4787 §6) or none does.
    hairpinning: bool,
    /// The carrier segment all `cgnat` peers share, once its carrier NAT exists.
    shared_carrier: Option<peerstorm_netsim::SegmentId>,
    share_cgnat: bool,
}

/// The shared carrier NAT's public address.
const SHARED_CGNAT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

fn add_peer(
    net: &mut Network,
    internet: peerstorm_netsim::SegmentId,
    i: usize,
    preset: Preset,
    link: &LinkConfig,
    layout: &mut Layout,
) -> (HostId, Ipv4Addr) {
    let mut layers = preset.layers();
    for l in &mut layers {
        l.hairpinning = layout.hairpinning;
    }
    if layers.is_empty() {
        return (net.add_host("peer", internet, &[host_ip(i)], link.clone()), host_ip(i));
    }
    let mut inner = net.add_segment("home");
    let host = net.add_host("peer", inner, &[private_ip(i)], link.clone());
    for (k, nat) in layers.iter().enumerate() {
        let last = k + 1 == layers.len();
        let shared = preset == Preset::Cgnat && layout.share_cgnat;
        let outer = if last {
            internet
        } else if shared {
            // Subscribers behind one carrier NAT: peers of this preset meet by hairpinning.
            *layout.shared_carrier.get_or_insert_with(|| {
                let carrier = net.add_segment("carrier");
                net.add_router(RouterSpec {
                    inside: carrier,
                    outside: internet,
                    inside_ip: Ipv4Addr::new(100, 127, 255, 254),
                    external_ips: vec![SHARED_CGNAT_IP],
                    nat: layers[k + 1].clone(),
                    firewall: Firewall::default(),
                    outside_link: LinkConfig::default(),
                });
                carrier
            })
        } else {
            net.add_segment("carrier")
        };
        let inside_ip = if k == 0 { Ipv4Addr::new(10, 255, 255, 254) } else { Ipv4Addr::new(100, 127, 255, 254) };
        let external = if last {
            host_ip(i)
        } else {
            Ipv4Addr::new(100, 64 + (i >> 16) as u8, ((i >> 8) & 0xff) as u8, (i & 0xff) as u8)
        };
        net.add_router(RouterSpec {
            inside: inner,
            outside: outer,
            inside_ip,
            external_ips: vec![external],
            nat: nat.clone(),
            firewall: if last { preset.firewall() } else { Firewall::default() },
            outside_link: LinkConfig::default(),
        });
        if shared {
            break;
        }
        inner = outer;
    }
    (host, private_ip(i))
}

/// Where a run is: reported once per virtual second to [`simulate_with`]'s callback.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub ice: IceMode,
    pub virtual_time: Duration,
    pub peers_started: usize,
    /// Peers done, and how many of those with a failed connection.
    pub peers_done: usize,
    pub peers_failed: usize,
    pub peers: usize,
}

/// Runs the scenario with one ICE mode.
pub fn simulate(s: &Scenario, ice: IceMode) -> Result<RunResult, SimError> {
    simulate_with(s, ice, Shard::WHOLE, &mut |_| {})
}

/// As [`simulate`], for one shard, calling `progress` once per virtual second.
pub fn simulate_with(
    s: &Scenario,
    ice: IceMode,
    shard: Shard,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunResult, SimError> {
    let base = Instant::now();
    let mut net = Network::new(s.seed);
    let internet = net.add_segment("internet");
    let quarter = Duration::from_micros(s.network.rtt_ms * 250);
    let link = LinkConfig {
        latency: quarter,
        jitter: Duration::from_millis(s.network.jitter_ms),
        loss: s.network.loss,
        bandwidth_bps: s.network.bandwidth_kbps.map(|k| k * 1000),
        ..LinkConfig::default()
    };
    let n = s.peers.count;
    let presets = assign_presets(s);
    let server_host = net.add_host("stun-turn", internet, &[*SERVER_ADDR.ip()], link.clone());
    let mut layout =
        Layout { hairpinning: s.network.hairpinning, shared_carrier: None, share_cgnat: s.network.shared_cgnat };
    let mut host_to_peer = vec![NO_PEER];
    let mut hosts = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for (i, p) in presets.iter().enumerate() {
        let (h, ip) = add_peer(&mut net, internet, i, *p, &link, &mut layout);
        if host_to_peer.len() <= h.0 as usize {
            host_to_peer.resize(h.0 as usize + 1, NO_PEER);
        }
        host_to_peer[h.0 as usize] = i;
        hosts.push(h);
        addrs.push(ip);
    }
    let mut turn_cfg = TurnConfig::new("peerstorm", SocketAddr::V4(SERVER_ADDR));
    turn_cfg.add_user(TURN_USER.0, TURN_USER.1);
    // Every virtual peer is the same user here; the per-user quota is not what a run measures.
    turn_cfg.max_allocations_per_user = usize::MAX;
    turn_cfg.relay_ports = (1024, 65535);
    // TURN over TCP on 443, as deployments offer it to clients whose networks block UDP.
    let turn_tcp = SocketAddr::V4(SocketAddrV4::new(*SERVER_ADDR.ip(), 443));
    turn_cfg.extra_listen.push(turn_tcp);
    let mut server = SimTurn { host: server_host, core: TurnServer::new(turn_cfg, base, [7; 16]) };
    let stun = (s.servers.stun == "embedded").then_some(SocketAddr::V4(SERVER_ADDR));
    let transport = s.servers.turn_transport();
    let turn = (s.servers.turn == "embedded").then(|| peerstorm_peer::TurnServer {
        addr: if transport == TurnTransport::Tcp { turn_tcp } else { SocketAddr::V4(SERVER_ADDR) },
        user: TURN_USER.0.into(),
        password: TURN_USER.1.into(),
        realm: "peerstorm".into(),
        transport,
    });
    let answer_delay = Duration::from_millis(s.servers.answer_delay_ms);
    let mut server_out: Vec<Packet> = Vec::new();
    let sig_one_way = Duration::from_micros(s.servers.broker_rtt_ms * 500);
    let mut broker = Broker::new(Config { concurrent_limit: n + 1, ..Config::default() }, base, s.seed);
    let group = s.group_size().unwrap_or(2);
    let starts: Vec<Duration> = (0..n)
        .map(|i| {
            if s.peers.arrival.rate_per_s > 0.0 {
                Duration::from_secs_f64((i / group) as f64 / s.peers.arrival.rate_per_s)
            } else {
                Duration::ZERO
            }
        })
        .collect();
    let (connect, accept) = topology(s);
    let name = |i: usize| format!("peer-{i:06}");
    let workload = s.workload.datachannel.workload();
    let mut peers: Vec<VirtualPeer> = (0..n)
        .map(|i| {
            let cfg = PeerConfig {
                id: name(i),
                token: format!("t{i}"),
                connect: connect[i].iter().map(|&b| name(b)).collect(),
                accept: accept[i].iter().map(|&a| name(a)).collect(),
                ice,
                host: SocketAddr::from((addrs[i], 5000)),
                sockets: Vec::new(),
                heartbeat: Duration::from_secs(5),
                workload: workload.clone(),
                stun,
                turn: turn.clone(),
                relay_only: s.servers.relay_only,
            };
            // Milestones count from the moment this peer joins.
            VirtualPeer::new(cfg, base + starts[i])
        })
        .collect();
    let mut links = Vec::new();
    for (a, targets) in connect.iter().enumerate() {
        for (ka, &b) in targets.iter().enumerate() {
            let kb = connect[b].len() + accept[b].iter().position(|&x| x == a).expect("accept mirrors connect");
            links.push(Link { offerer: (a, ka), answerer: (b, kb) });
        }
    }
    let mut netq: EventQueue<NetEvent> = EventQueue::default();
    let mut q: EventQueue<Ev> = EventQueue::default();
    let mut done = 0usize;
    let mut is_done = vec![false; n];
    // Answerers join before their offerers at the same instant (insertion order breaks the tie):
    // each group's members join last first. Peers of other shards never join and count as done.
    for first in (0..n).step_by(group) {
        if !shard.holds(first / group) {
            is_done[first..first + group].fill(true);
            done += group;
            continue;
        }
        for i in (first..first + group).rev() {
            q.push(starts[i], Ev::Join(i));
            q.push(starts[i] + Duration::from_secs(s.timeouts.setup_s), Ev::Deadline(i));
        }
    }
    let mut timers: BTreeSet<(Duration, usize)> = BTreeSet::new();
    let mut timer_of: Vec<Option<Duration>> = vec![None; n];
    let mut touched: Vec<usize> = Vec::new();
    let mut now = Duration::ZERO;
    let (mut started, mut failed) = (0usize, 0usize);
    let mut frames_relayed = 0u64;
    let mut frames_per_s: Vec<u64> = Vec::new();
    let mut bytes_per_s: Vec<u64> = Vec::new();
    let mut last_bytes = vec![0u64; n];
    let bump = |v: &mut Vec<u64>, t: Duration, k: u64| {
        let sec = t.as_secs() as usize;
        if v.len() <= sec {
            v.resize(sec + 1, 0);
        }
        v[sec] += k;
    };
    let mut events = 0u64;
    let mut next_report = Duration::from_secs(1);
    while done < n {
        // Move everything the broker and the touched peers produced.
        while let Some(o) = broker.poll_output() {
            if let Output::Send { conn, text } = o {
                q.push(now + sig_one_way, Ev::ToPeer(conn.0 as usize, text));
            }
        }
        for &i in &touched {
            while let Some(t) = peers[i].poll_transmit() {
                match t {
                    Transmit::Signal(text) => q.push(now + sig_one_way, Ev::ToBroker(i, text)),
                    Transmit::Datagram { src: SocketAddr::V4(src), dst: SocketAddr::V4(dst), data } => {
                        net.send(&mut netq, now, hosts[i], Packet { proto: Proto::Udp, src, dst, payload: data });
                    }
                    // TCP: segments in order, retransmitted on loss (netsim's model); one
                    // TURN message per segment.
                    Transmit::Stream { src: SocketAddr::V4(src), dst: SocketAddr::V4(dst), data } => {
                        net.send(&mut netq, now, hosts[i], Packet { proto: Proto::Tcp, src, dst, payload: data });
                    }
                    Transmit::Datagram { .. } | Transmit::Stream { .. } => {}
                }
            }
            let t = peers[i].poll_timeout().map(|t| t.saturating_duration_since(base).max(now));
            if t != timer_of[i] {
                if let Some(old) = timer_of[i] {
                    timers.remove(&(old, i));
                }
                if let Some(new) = t {
                    timers.insert((new, i));
                }
                timer_of[i] = t;
            }
            let b = peers[i].bytes_moved();
            if b != last_bytes[i] {
                bump(&mut bytes_per_s, now, b - last_bytes[i]);
                last_bytes[i] = b;
            }
            if !is_done[i] && peers[i].is_done() {
                is_done[i] = true;
                done += 1;
                failed += usize::from(peers[i].failed());
            }
        }
        touched.clear();
        if done == n {
            break;
        }
        events += 1;
        if events > MAX_EVENTS {
            let unfinished: Vec<String> = (0..n)
                .filter(|&i| !is_done[i])
                .take(5)
                .map(|i| {
                    let last = peers[i].last_milestone().map_or("none", |m| m.as_str());
                    format!("{} ({}, last milestone {last})", peers[i].id(), presets[i].as_str())
                })
                .collect();
            let more = (n - done).saturating_sub(unfinished.len());
            return Err(SimError::Livelock(MAX_EVENTS, now, format!("{} and {more} more", unfinished.join(", "))));
        }
        if now >= next_report {
            progress(Progress {
                ice,
                virtual_time: now,
                peers_started: started,
                peers_done: done,
                peers_failed: failed,
                peers: n,
            });
            next_report = now + Duration::from_secs(1);
        }
        let next_timer = timers.first().map(|(t, _)| *t);
        let Some(t) = [netq.peek_time(), q.peek_time(), next_timer].into_iter().flatten().min() else { break };
        now = now.max(t);
        let at = base + now;
        if netq.peek_time() == Some(t) {
            let (_, ev) = netq.pop().expect("peeked");
            if let Some(d) = net.handle(&mut netq, now, ev) {
                if server.handle_with(at, &d, &mut |p| server_out.push(p)) {
                    for p in server_out.drain(..) {
                        if answer_delay.is_zero() || !is_stun_response(&p.payload) {
                            net.send(&mut netq, now, server_host, p);
                        } else {
                            q.push(now + answer_delay, Ev::ServerSend(p));
                        }
                    }
                } else {
                    let i = host_to_peer.get(d.host.0 as usize).copied().unwrap_or(NO_PEER);
                    if i != NO_PEER {
                        let (src, dst) = (SocketAddr::V4(d.pkt.src), SocketAddr::V4(d.pkt.dst));
                        match d.pkt.proto {
                            Proto::Udp => peers[i].handle_datagram(at, src, dst, &d.pkt.payload),
                            Proto::Tcp => peers[i].handle_stream(at, src, dst, &d.pkt.payload),
                        }
                        touched.push(i);
                    }
                }
            }
        } else if q.peek_time() == Some(t) {
            match q.pop().expect("peeked").1 {
                Ev::Join(i) => {
                    started += 1;
                    let query = peers[i].query("peerjs");
                    broker.handle_connect(at, ConnId(i as u64), &ConnectParams::from_query(&query));
                    peers[i].handle_connected(at);
                    touched.push(i);
                }
                Ev::ToBroker(i, text) => broker.handle_text(at, ConnId(i as u64), &text),
                Ev::ToPeer(i, text) => {
                    frames_relayed += 1;
                    bump(&mut frames_per_s, now, 1);
                    peers[i].handle_signal(at, &text);
                    touched.push(i);
                }
                Ev::ServerSend(p) => net.send(&mut netq, now, server_host, p),
                Ev::Deadline(i) => {
                    if !is_done[i] {
                        peers[i].fail(Failure::Timeout, at);
                        touched.push(i);
                    }
                }
            }
        } else {
            let (_, i) = timers.pop_first().expect("a timer was next");
            timer_of[i] = None;
            peers[i].handle_timeout(at);
            touched.push(i);
        }
        broker.handle_timeout(at);
    }
    let mut in_shard = vec![false; n];
    for first in (0..n).step_by(group).filter(|f| shard.holds(f / group)) {
        in_shard[first..first + group].fill(true);
    }
    links.retain(|l| in_shard[l.offerer.0]);
    let results = peers
        .iter()
        .enumerate()
        .map(|(i, p)| PeerResult {
            in_shard: in_shard[i],
            id: p.id().to_string(),
            nat: presets[i].as_str(),
            start: starts[i],
            connections: p.connections(),
        })
        .collect();
    Ok(RunResult {
        ice,
        rtt_ms: s.network.rtt_ms,
        peers: results,
        links,
        virtual_end: now,
        events,
        datagrams_delivered: net.delivered,
        frames_relayed,
        frames_per_s,
        bytes_per_s,
        shard,
    })
}
