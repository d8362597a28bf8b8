//! From a scenario to a [`World`]: who connects to whom, which NAT each peer sits behind, the
//! address plan, the servers and the peers' configuration; and from the finished world back
//! to a [`RunOutcome`].
//!
//! Address plan: the STUN/TURN server at 198.51.100.1 (3478 UDP, 443 TCP); peer `i`'s public
//! address 198.18.x.y and, behind a NAT, 10.x.y.z on its own home segment (100.64.x.y between
//! two NAT layers); the shared carrier NAT at 198.51.100.100.

use crate::world::World;
use peerstorm_broker::{Broker, Config};
use peerstorm_model::rng::Rng;
use peerstorm_netsim::{Firewall, HostId, LinkConfig, Network, Preset, RouterSpec, SegmentId};
use peerstorm_peer::{IceMode, PeerConfig, VirtualPeer};
use peerstorm_scenario::{
    Link, Pairing, Pattern, PeerResult, RunOutcome, Scenario, Shard, SimStats, StunTarget, TurnTarget,
};
use peerstorm_turn::{TurnConfig, TurnServer};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// The STUN/TURN server's address on the simulated internet.
pub const SERVER_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 3478);
/// The user the virtual peers authenticate to the embedded TURN server as.
pub const TURN_USER: (&str, &str) = ("peerstorm", "peerstorm");
/// The shared carrier NAT's public address.
const SHARED_CGNAT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18 + (i >> 16) as u8, ((i >> 8) & 0xff) as u8, (i & 0xff) as u8)
}

fn private_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i >> 16) as u8, ((i >> 8) & 0xff) as u8, (i & 0xff) as u8)
}

/// Who connects to whom: per peer, the peers it opens a connection to and those it accepts
/// one from, by the scenario's pattern. In a group (a pair, a star, a room) the higher-indexed
/// members answer: they join first, so every offer finds its answerer OPEN.
pub fn topology(s: &Scenario) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let n = s.peers.count;
    let g = s.group_size();
    let mut connect = vec![Vec::new(); n];
    let mut accept = vec![Vec::new(); n];
    for base in (0..n).step_by(g) {
        let members = base..base + g;
        for a in members {
            let targets: Vec<usize> = match s.peers.pattern {
                // The hub is the group's last member (for a pair, the answerer).
                Pattern::Rooms => (a + 1..base + g).collect(),
                Pattern::Pairs | Pattern::Star if a + 1 < base + g => vec![base + g - 1],
                Pattern::Pairs | Pattern::Star => Vec::new(),
            };
            for b in targets {
                connect[a].push(b);
                accept[b].push(a);
            }
        }
    }
    (connect, accept)
}

/// Each peer's NAT preset. A sweep's NAT point: as its pair says. `mix`: exact counts by share (largest remainder), shuffled by the
/// seed; `matrix`: pair `k` takes combination `k mod m²` of the `m` presets with a share.
pub fn assign_presets(s: &Scenario) -> Vec<Preset> {
    let n = s.peers.count;
    if let Some(pair) = s.network.nat_pair {
        // A sweep's NAT point: the last peer of each group (a pair's answerer, a star's hub)
        // behind the second preset, the others behind the first.
        let g = s.group_size().max(1);
        return (0..n).map(|i| if i % g == g - 1 { pair.answerer } else { pair.offerer }).collect();
    }
    let mix: Vec<(Preset, f64)> = s.network.nat_mix.0.iter().copied().filter(|(_, share)| *share > 0.0).collect();
    if mix.is_empty() {
        return vec![Preset::Open; n];
    }
    if s.network.pairing == Pairing::Matrix {
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

/// How NATs are laid out beyond each peer's own preset.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Every NAT layer hairpins (RFC 4787 §6) or none does.
    hairpinning: bool,
    /// The carrier segment all `cgnat` peers share, once its carrier NAT exists.
    shared_carrier: Option<SegmentId>,
    share_cgnat: bool,
}

impl Layout {
    pub fn new(hairpinning: bool, share_cgnat: bool) -> Self {
        Self { hairpinning, shared_carrier: None, share_cgnat }
    }
}

/// Puts peer `i` on the network behind `preset`'s NAT layers (its own home segment, a carrier
/// segment for `cgnat`); returns its host and address. Peer `i`'s public address is
/// 198.18.x.y, its private one 10.x.y.z.
pub fn place_peer(
    net: &mut Network,
    internet: SegmentId,
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

/// The Unix time the simulation starts at, which TURN REST API credentials are stamped against
/// (2026-01-01T00:00:00Z): virtual time has no wall clock, and a fixed one keeps runs repeatable.
const SIM_UNIX_EPOCH: u64 = 1_767_225_600;

/// The embedded STUN/TURN core: one user for every peer (or the REST API secret they mint
/// credentials with), UDP on 3478 and TCP on 443.
/// Where the metronome of run group `g`'s machine ticks, after virtual time 0: anywhere in a
/// 64 Hz period, drawn from the seed. The peers of a group share it, as two browsers on one
/// machine do (the lab, where the calibration measures Chromium pairs); groups do not, as the
/// lab's pairs start at random instants of its clock. Drawn from the group's index, not a shared
/// sequence, so a shard builds the same phases as the whole run.
fn metronome_phase(seed: u64, g: usize) -> Duration {
    let mut rng = Rng::seed(seed ^ 0x6d65_7472_6f6e_6f6d ^ (g as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    Duration::from_nanos(rng.below(15_625_000))
}

fn turn_core(base: std::time::Instant, secret: Option<&str>, quota: Option<usize>) -> TurnServer {
    let mut cfg = TurnConfig::new("peerstorm", SocketAddr::V4(SERVER_ADDR));
    cfg.add_user(TURN_USER.0, TURN_USER.1);
    cfg.auth_secret = secret.map(str::to_string);
    cfg.unix_time_at_start = SIM_UNIX_EPOCH;
    // Every virtual peer is the same user here (unless it mints REST credentials): no quota
    // unless the scenario sets one.
    cfg.max_allocations_per_user = quota.unwrap_or(usize::MAX);
    cfg.relay_ports = (1024, 65535);
    // TURN over TCP on 443, as deployments offer it to clients whose networks block UDP.
    cfg.extra_listen.push(turn_tcp_addr());
    TurnServer::new(cfg, base, [7; 16])
}

fn turn_tcp_addr() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(*SERVER_ADDR.ip(), 443))
}

/// Whether group `g` is run by `cell` of `shard`: the shard's groups are dealt to its cells in
/// turn.
fn runs_group(shard: Shard, cell: Shard, g: usize) -> bool {
    shard.holds(g) && cell.holds(g / shard.count)
}

/// A virtual peer's ID in the simulator.
fn peer_name(i: usize) -> String {
    format!("peer-{i:06}")
}

/// How many peers `cell` of `shard` runs.
pub fn cell_peers(s: &Scenario, shard: Shard, cell: Shard) -> usize {
    let (n, group) = (s.peers.count, s.group_size());
    (0..n).step_by(group).filter(|f| runs_group(shard, cell, f / group)).map(|f| group.min(n - f)).sum()
}

/// A scenario's world for one ICE mode and shard, with what is needed to report on it.
#[derive(Debug)]
pub struct ScenarioWorld {
    pub world: World,
    ice: IceMode,
    rtt: Duration,
    shard: Shard,
    presets: Vec<Preset>,
    starts: Vec<Duration>,
    links: Vec<Link>,
    /// Each of the scenario's peers' index in the world, if this world runs it (its shard's
    /// and cell's groups); the others are not built.
    world_index: Vec<Option<usize>>,
}

impl ScenarioWorld {
    /// Builds the network, the servers and every peer; schedules the joins of the shard's groups.
    pub fn build(s: &Scenario, ice: IceMode, shard: Shard) -> Self {
        Self::build_cell(s, ice, shard, Shard::WHOLE)
    }

    /// As [`ScenarioWorld::build`], for one cell of the shard (see
    /// [`peerstorm_scenario::Scenario::cells`]): of the shard's groups, those whose position in
    /// it `cell` holds.
    pub fn build_cell(s: &Scenario, ice: IceMode, shard: Shard, cell: Shard) -> Self {
        let mut net = Network::new(s.seed);
        let internet = net.add_segment("internet");
        let link = LinkConfig {
            // At least a microsecond: with every hop at exactly zero, a reply arrives at the
            // instant its request left and the `rtc` stack's "time has passed" checks fail (an
            // ICE tick and a 200 ms DTLS wait at rtt_ms = 0: open at 248 ms instead of ~1 ms).
            // No scenario with rtt_ms >= 1 is affected.
            latency: (s.network.rtt / 4).max(Duration::from_micros(1)),
            jitter: s.network.jitter,
            loss: s.network.loss,
            bandwidth_bps: s.network.bandwidth_kbps.map(|k| k * 1000),
            ..LinkConfig::default()
        };
        let n = s.peers.count;
        let presets = assign_presets(s);
        let server_host = net.add_host("stun-turn", internet, &[*SERVER_ADDR.ip()], link.clone());
        let mut layout = Layout::new(s.network.hairpinning, s.network.shared_cgnat);
        let group = s.group_size();
        let runs = |i: usize| runs_group(shard, cell, i / group);
        // Only the peers this world runs are on its network (the network's randomness is
        // drawn by address, so leaving the others out changes nothing for these).
        let placed: Vec<Option<(HostId, Ipv4Addr)>> = presets
            .iter()
            .enumerate()
            .map(|(i, p)| runs(i).then(|| place_peer(&mut net, internet, i, *p, &link, &mut layout)))
            .collect();
        let mut world = World::new(net, s.servers.broker_rtt / 2, |base| {
            Broker::new(Config { concurrent_limit: n + 1, ..Config::default() }, base, s.seed)
        });
        let base = world.base();
        world.add_turn(
            server_host,
            turn_core(base, s.servers.turn_secret.as_deref(), s.servers.turn_user_quota),
            s.servers.answer_delay,
        );
        let stun = (s.servers.stun == StunTarget::Embedded).then_some(SocketAddr::V4(SERVER_ADDR));
        // One TURN server entry per transport (a browser's iceServers URLs).
        let turns: Vec<peerstorm_peer::TurnServer> = if s.servers.turn == TurnTarget::Embedded {
            s.servers
                .turn_transports()
                .into_iter()
                .map(|transport| peerstorm_peer::TurnServer {
                    // TLS shares 443 with plain TCP: the server tells them apart by the first byte.
                    addr: if transport.is_stream() { turn_tcp_addr() } else { SocketAddr::V4(SERVER_ADDR) },
                    user: TURN_USER.0.into(),
                    password: TURN_USER.1.into(),
                    realm: "peerstorm".into(),
                    transport,
                })
                .collect()
        } else {
            Vec::new()
        };
        let rate = s.peers.arrival.rate_per_s;
        let starts: Vec<Duration> = (0..n)
            .map(|i| if rate > 0.0 { Duration::from_secs_f64((i / group) as f64 / rate) } else { Duration::ZERO })
            .collect();
        let (connect, accept) = topology(s);
        let name = peer_name;
        // One clock for every peer: calls measure one-way delay on it.
        let workload = s.workload.peer_workload(Some(base));
        // With `[workload.media]` the pairs call (and, with its `datachannel`, connect too).
        let media = workload.media.as_ref().map(|m| m.with_data);
        let data = media.is_none_or(|with_data| with_data);
        let none = Vec::new;
        let mut world_index = vec![None; n];
        for (i, (host, ip)) in placed.iter().enumerate().filter_map(|(i, p)| Some((i, p.as_ref()?))) {
            // A REST API credential of its own, minted when the peer joins, as a web app's
            // backend hands one to each page.
            let turn: Vec<peerstorm_peer::TurnServer> = match &s.servers.turn_secret {
                Some(secret) => {
                    let expiry = SIM_UNIX_EPOCH + starts[i].as_secs() + s.servers.turn_ttl.as_secs();
                    let user = format!("{expiry}:{}", name(i));
                    let password = peerstorm_turn::auth::rest_password(secret, &user);
                    let t = |t: &peerstorm_peer::TurnServer| peerstorm_peer::TurnServer {
                        user: user.clone(),
                        password: password.clone(),
                        ..t.clone()
                    };
                    turns.iter().map(t).collect()
                }
                None => turns.clone(),
            };
            let cfg = PeerConfig {
                id: name(i),
                token: format!("t{i}"),
                connect: if data { connect[i].iter().map(|&b| name(b)).collect() } else { none() },
                call: if media.is_some() { connect[i].iter().map(|&b| name(b)).collect() } else { none() },
                accept: if data { accept[i].iter().map(|&a| name(a)).collect() } else { none() },
                answer: if media.is_some() { accept[i].iter().map(|&a| name(a)).collect() } else { none() },
                ice,
                host: SocketAddr::from((*ip, 5000)),
                sockets: Vec::new(),
                heartbeat: Duration::from_secs(5),
                workload: workload.clone(),
                stun,
                turn,
                relay_only: s.servers.relay_only,
                profile: s.peers.profile,
                cpu_scale: s.peers.cpu_scale,
                metronome_tick: Some(base + metronome_phase(s.seed, i / group)),
            };
            // Milestones count from the moment this peer joins.
            world_index[i] = Some(world.add_peer(*host, VirtualPeer::new(cfg, base + starts[i]), presets[i].as_str()));
        }
        let mut links = Vec::new();
        for (a, targets) in connect.iter().enumerate() {
            for (ka, &b) in targets.iter().enumerate() {
                // A peer's connections: connect, call, accept, answer (see `VirtualPeer::new`).
                // A link is the DataConnection when there is one, else the call.
                let at = accept[b].iter().position(|&x| x == a).expect("accept mirrors connect");
                let kb = if data {
                    connect[b].len() + if media.is_some() { connect[b].len() } else { 0 } + at
                } else {
                    connect[b].len() + at
                };
                links.push(Link { offerer: (a, ka), answerer: (b, kb) });
            }
        }
        // Answerers join before their offerers at the same instant (insertion order breaks the
        // tie): each group's members join last first. Peers of other shards and cells are not
        // built.
        // A call sends for its duration after it connects: the deadline covers both.
        let call_time = s.workload.media.as_ref().map_or(Duration::ZERO, |m| m.duration);
        for first in (0..n).step_by(group).filter(|f| runs(*f)) {
            let members = first..(first + group).min(n);
            let at = |i: usize| world_index[i].expect("a run group's peers are built");
            for i in members.clone().rev() {
                world.schedule_join(at(i), starts[i], starts[i] + s.timeouts.setup + call_time);
            }
            // A group's peers talk only to each other: once all are done nothing measured
            // changes. Calls keep receiving what the other side sent last, so they stay.
            if media.is_none() {
                world.retire_together(at(members.start)..at(members.end - 1) + 1);
            }
        }
        links.retain(|l| world_index[l.offerer.0].is_some());
        ScenarioWorld { world, ice, rtt: s.network.rtt, shard, presets, starts, links, world_index }
    }

    /// Every peer's outcome once the world has run.
    pub fn outcome(self) -> RunOutcome {
        self.outcome_of(false)
    }

    /// Every peer's outcome; `interrupted`: the run was stopped before every peer was done.
    pub fn outcome_of(self, interrupted: bool) -> RunOutcome {
        let w = &self.world;
        let peers = self
            .world_index
            .iter()
            .enumerate()
            .map(|(i, at)| {
                let p = at.map(|k| w.peer(k));
                PeerResult {
                    in_shard: p.is_some(),
                    id: p.map_or_else(|| peer_name(i), |p| p.id().to_string()),
                    nat: self.presets[i].as_str(),
                    start: self.starts[i],
                    connections: p.map_or_else(Vec::new, VirtualPeer::connections),
                }
            })
            .collect();
        let stats = w.stats();
        RunOutcome {
            ice: self.ice,
            peers,
            links: self.links,
            end: w.now(),
            frames_relayed: stats.frames_relayed,
            frames_per_s: stats.frames_per_s.clone(),
            bytes_per_s: stats.bytes_per_s.clone(),
            shard: self.shard,
            sim: Some(SimStats { rtt: self.rtt, events: stats.events, datagrams_delivered: w.network().delivered }),
            datagrams: w.network().delivered,
            interrupted,
            point: Default::default(),
        }
    }
}
