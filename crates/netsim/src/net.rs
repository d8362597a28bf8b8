//! The topology: segments (networks) with hosts on them, routers (NAT and firewall) between an
//! inside segment and an outside one, nested as deep as wanted, and the routing of packets hop by
//! hop. Each hop is an event at the time the packet reaches the next node, so NAT state changes
//! at the moment a packet gets there.
//!
//! What is modelled: IPv4; UDP datagrams; TCP as segments that go through the same NATs (their
//! own mappings and lifetime) and firewalls, are never lost (a loss costs a retransmission
//! timeout) and keep their order. No TCP handshake, congestion control or sequence numbers.

use crate::link::{FlowKey, HEADER_BYTES, Link, LinkConfig, LinkDrop, flow_key};
use crate::nat::{Firewall, Nat, NatConfig, NatDrop, Proto};
use crate::pcap::Pcap;
use crate::time::Schedule;
use peerstorm_model::rng::Rng;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct HostId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct RouterId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SegmentId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct IfaceId(pub u32);

/// A packet on the simulated wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub proto: Proto,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

impl Packet {
    /// The flow it belongs to, as a link tells flows apart.
    fn flow(&self) -> FlowKey {
        let proto = match self.proto {
            Proto::Udp => 17,
            Proto::Tcp => 6,
        };
        flow_key(proto, self.src, self.dst)
    }
}

/// The network's events: a packet reaching an interface.
#[derive(Debug, Clone)]
pub struct NetEvent {
    iface: IfaceId,
    pkt: Packet,
    /// The packet has crossed its sender's uplink and enters `iface`'s downlink now (rather
    /// than arriving at `iface`): the downlink sees packets in the order they reach it.
    enter_down: bool,
}

/// A packet that reached a host.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub host: HostId,
    pub at: Duration,
    pub pkt: Packet,
}

#[derive(Debug, Clone, Copy)]
enum Owner {
    Host(HostId),
    RouterInside(RouterId),
    RouterOutside(RouterId),
}

#[derive(Debug)]
struct Iface {
    owner: Owner,
    segment: SegmentId,
    /// Toward the segment.
    up: Link,
    /// From the segment.
    down: Link,
    capture: Option<usize>,
}

#[derive(Debug)]
struct Segment {
    name: String,
    by_ip: FxHashMap<Ipv4Addr, IfaceId>,
    gateway: Option<IfaceId>,
}

#[derive(Debug)]
struct Router {
    nat: Nat,
    /// The NAT's own port choices: one generator per router, so no other router's traffic
    /// moves them.
    rng: Rng,
    firewall: Firewall,
    inside: IfaceId,
    outside: IfaceId,
}

#[derive(Debug)]
struct Host {
    name: String,
    iface: IfaceId,
    ips: Vec<Ipv4Addr>,
}

/// A router: it owns `inside_ip` on the inside segment (and is that segment's gateway) and
/// `external_ips` on the outside one, translates with `nat`, filters with `firewall`, and
/// reaches the outside over `outside_link`.
#[derive(Debug, Clone)]
pub struct RouterSpec {
    pub inside: SegmentId,
    pub outside: SegmentId,
    pub inside_ip: Ipv4Addr,
    pub external_ips: Vec<Ipv4Addr>,
    pub nat: NatConfig,
    pub firewall: Firewall,
    pub outside_link: LinkConfig,
}

/// Why a packet went nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Drop {
    Link(LinkDrop),
    Nat(NatDrop),
    Firewall,
    NoRoute,
}

/// The simulated network.
#[derive(Debug)]
pub struct Network {
    segments: Vec<Segment>,
    ifaces: Vec<Iface>,
    routers: Vec<Router>,
    hosts: Vec<Host>,
    /// What every link's and NAT's randomness derives from.
    seed: u64,
    /// How many interfaces (and NATs) were named by each (kind, address) so far: their seeds
    /// come from what they are, not from the order the network was built in.
    names: FxHashMap<(u8, Ipv4Addr), u32>,
    captures: Vec<Pcap>,
    scratch: Vec<Duration>,
    scratch2: Vec<Duration>,
    /// Packets dropped, by reason.
    pub drops: BTreeMap<Drop, u64>,
    pub delivered: u64,
    trace: u64,
}

impl Network {
    /// An empty network whose randomness (loss, jitter, ports) comes from `seed`: each link
    /// direction and each NAT draws from a generator of its own, derived from `seed` and its
    /// address (not from the order the network was built in: a world may leave hosts out), and
    /// a link draws per flow (see [`crate::link`]). So what one group of hosts sees
    /// does not depend on what other groups do, unless they share a bandwidth-limited link or a
    /// NAT.
    pub fn new(seed: u64) -> Self {
        Self {
            segments: Vec::new(),
            ifaces: Vec::new(),
            routers: Vec::new(),
            hosts: Vec::new(),
            seed,
            names: FxHashMap::default(),
            captures: Vec::new(),
            scratch: Vec::new(),
            scratch2: Vec::new(),
            drops: BTreeMap::new(),
            delivered: 0,
            trace: 0xcbf2_9ce4_8422_2325,
        }
    }

    pub fn add_segment(&mut self, name: &str) -> SegmentId {
        self.segments.push(Segment { name: name.to_string(), by_ip: FxHashMap::default(), gateway: None });
        SegmentId(self.segments.len() as u32 - 1)
    }

    pub fn segment_name(&self, s: SegmentId) -> &str {
        &self.segments[s.0 as usize].name
    }

    /// An interface; `name`: the address its links' seeds come from (see [`Network::link_seeds`]).
    fn add_iface(
        &mut self,
        owner: Owner,
        segment: SegmentId,
        ips: &[Ipv4Addr],
        link: LinkConfig,
        name: Option<Ipv4Addr>,
    ) -> IfaceId {
        let id = IfaceId(self.ifaces.len() as u32);
        let (up, down) = self.link_seeds(owner, name);
        self.ifaces.push(Iface {
            owner,
            segment,
            up: Link::new(link.clone(), up),
            down: Link::new(link, down),
            capture: None,
        });
        for ip in ips {
            let prev = self.segments[segment.0 as usize].by_ip.insert(*ip, id);
            assert!(prev.is_none(), "{ip} is already on segment {segment:?}");
        }
        id
    }

    /// A host on `segment` with these addresses (a server may have several) and an access link
    /// (the same settings both ways; see [`Network::set_link`]).
    pub fn add_host(&mut self, name: &str, segment: SegmentId, ips: &[Ipv4Addr], link: LinkConfig) -> HostId {
        let h = HostId(self.hosts.len() as u32);
        let iface = self.add_iface(Owner::Host(h), segment, ips, link, ips.first().copied());
        self.hosts.push(Host { name: name.to_string(), iface, ips: ips.to_vec() });
        h
    }

    /// A router between two segments (see [`RouterSpec`]).
    pub fn add_router(&mut self, spec: RouterSpec) -> RouterId {
        let r = RouterId(self.routers.len() as u32);
        let name = spec.external_ips.first().copied();
        let in_if = self.add_iface(Owner::RouterInside(r), spec.inside, &[spec.inside_ip], LinkConfig::default(), name);
        let nat_seed = self.name_seed(4, name);
        let out_if = self.add_iface(Owner::RouterOutside(r), spec.outside, &spec.external_ips, spec.outside_link, name);
        self.segments[spec.inside.0 as usize].gateway = Some(in_if);
        self.routers.push(Router {
            nat: Nat::new(spec.nat, spec.external_ips),
            rng: Rng::seed(nat_seed),
            firewall: spec.firewall,
            inside: in_if,
            outside: out_if,
        });
        r
    }

    /// Replaces a host's access link, per direction.
    pub fn set_link(&mut self, host: HostId, up: LinkConfig, down: LinkConfig) {
        // The same links, newly set: their draws start again from their seeds.
        let i = &mut self.ifaces[self.hosts[host.0 as usize].iface.0 as usize];
        i.up = Link::new(up, i.up.seed());
        i.down = Link::new(down, i.down.seed());
    }

    /// The seeds of a new interface's uplink and downlink, from what it is: a host's by its
    /// first address, a router's two by its first external address (a router's inside
    /// address is the same in every home).
    fn link_seeds(&mut self, owner: Owner, name: Option<Ipv4Addr>) -> (u64, u64) {
        let kind = match owner {
            Owner::Host(_) => 1,
            Owner::RouterInside(_) => 2,
            Owner::RouterOutside(_) => 3,
        };
        let mut r = Rng::seed(self.name_seed(kind, name));
        (r.next_u64(), r.next_u64())
    }

    /// A seed for the `n`th thing of `kind` named `ip` (see [`Network::new`]): the same
    /// whichever other hosts and routers the network has, and in whichever order they came.
    fn name_seed(&mut self, kind: u8, ip: Option<Ipv4Addr>) -> u64 {
        let ip = ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let n = self.names.entry((kind, ip)).or_default();
        let key = u64::from(kind) << 56 ^ u64::from(*n) << 32 ^ u64::from(u32::from(ip));
        *n += 1;
        Rng::seed(self.seed ^ Rng::seed(key).next_u64()).next_u64()
    }

    pub fn host_ips(&self, h: HostId) -> &[Ipv4Addr] {
        &self.hosts[h.0 as usize].ips
    }

    pub fn host_name(&self, h: HostId) -> &str {
        &self.hosts[h.0 as usize].name
    }

    pub fn nat(&self, r: RouterId) -> &Nat {
        &self.routers[r.0 as usize].nat
    }

    /// Starts a pcap of everything that leaves or reaches this host's interface.
    pub fn capture_host(&mut self, h: HostId) -> usize {
        let i = self.hosts[h.0 as usize].iface;
        self.capture_iface(i)
    }

    /// Starts a pcap of a router's outside interface (what the NAT sends and receives).
    pub fn capture_router_outside(&mut self, r: RouterId) -> usize {
        let i = self.routers[r.0 as usize].outside;
        self.capture_iface(i)
    }

    fn capture_iface(&mut self, i: IfaceId) -> usize {
        self.captures.push(Pcap::new());
        let id = self.captures.len() - 1;
        self.ifaces[i.0 as usize].capture = Some(id);
        id
    }

    pub fn pcap(&self, id: usize) -> &Pcap {
        &self.captures[id]
    }

    /// A hash of every event handled so far: equal runs give equal hashes.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    fn note(&mut self, now: Duration, iface: IfaceId, pkt: &Packet) {
        let mut h = self.trace;
        let mut eat = |v: u64| {
            h ^= v;
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        eat(now.as_nanos() as u64);
        eat(u64::from(iface.0));
        eat(u64::from(u32::from(*pkt.src.ip())) << 16 | u64::from(pkt.src.port()));
        eat(u64::from(u32::from(*pkt.dst.ip())) << 16 | u64::from(pkt.dst.port()));
        eat(pkt.payload.len() as u64);
        self.trace = h;
    }

    fn drop(&mut self, why: Drop) {
        *self.drops.entry(why).or_default() += 1;
    }

    /// A host sends a packet from `src` (one of its addresses) at `now`.
    pub fn send(&mut self, q: &mut impl Schedule<NetEvent>, now: Duration, host: HostId, pkt: Packet) {
        let iface = self.hosts[host.0 as usize].iface;
        self.forward(q, now, iface, pkt);
    }

    /// Puts a packet from `from` onto its segment, toward the interface that owns the destination
    /// address or else the segment's gateway.
    fn forward(&mut self, q: &mut impl Schedule<NetEvent>, now: Duration, from: IfaceId, pkt: Packet) {
        if let Some(c) = self.ifaces[from.0 as usize].capture {
            self.captures[c].record(now, pkt.proto, pkt.src, pkt.dst, &pkt.payload);
        }
        if pkt.dst.ip().is_multicast() {
            return self.multicast(q, now, from, pkt);
        }
        let seg = &self.segments[self.ifaces[from.0 as usize].segment.0 as usize];
        let to = match seg.by_ip.get(pkt.dst.ip()) {
            Some(&t) => t,
            None => match seg.gateway {
                Some(g) if g != from => g,
                _ => return self.drop(Drop::NoRoute),
            },
        };
        let size = pkt.payload.len() + HEADER_BYTES;
        let reliable = pkt.proto == Proto::Tcp;
        let mut up = std::mem::take(&mut self.scratch);
        match self.ifaces[from.0 as usize].up.transmit(now, size, reliable, pkt.flow(), &mut up) {
            Err(e) => self.drop(Drop::Link(e)),
            Ok(()) => {
                // Every copy but the last is a clone (duplication); the last takes the packet.
                if let Some((&last, rest)) = up.split_last() {
                    for &t in rest {
                        self.enter_down(q, now, t, to, pkt.clone());
                    }
                    self.enter_down(q, now, last, to, pkt);
                }
            }
        }
        self.scratch = up;
    }

    /// Multicast stays on its segment: one transmission on the sender's uplink, and a copy down
    /// to every other host on the segment. Routers forward no multicast (RFC 5771's local
    /// network control block, mDNS's 224.0.0.251 among it, is never forwarded anyway), so mDNS
    /// works between hosts on one LAN and not across a NAT, as in life.
    fn multicast(&mut self, q: &mut impl Schedule<NetEvent>, now: Duration, from: IfaceId, pkt: Packet) {
        let seg = self.ifaces[from.0 as usize].segment;
        let mut to: Vec<IfaceId> = self.segments[seg.0 as usize]
            .by_ip
            .values()
            .copied()
            .filter(|&i| i != from && matches!(self.ifaces[i.0 as usize].owner, Owner::Host(_)))
            .collect();
        // Ordered, and once per host however many addresses it has.
        to.sort_unstable();
        to.dedup();
        if to.is_empty() {
            return self.drop(Drop::NoRoute);
        }
        let size = pkt.payload.len() + HEADER_BYTES;
        let mut up = std::mem::take(&mut self.scratch);
        match self.ifaces[from.0 as usize].up.transmit(now, size, false, pkt.flow(), &mut up) {
            Err(e) => self.drop(Drop::Link(e)),
            Ok(()) => {
                for &t in &up {
                    for &target in &to {
                        self.enter_down(q, now, t, target, pkt.clone());
                    }
                }
            }
        }
        self.scratch = up;
    }

    /// A packet reaches `to`'s downlink at `t`: at once when that is now, else as an event at
    /// `t`, so that the downlink serves packets in the order they reach it (a packet that left
    /// a slower uplink earlier must not hold up one that reaches the downlink first).
    fn enter_down(&mut self, q: &mut impl Schedule<NetEvent>, now: Duration, t: Duration, to: IfaceId, pkt: Packet) {
        if t > now {
            q.schedule(t, NetEvent { iface: to, pkt, enter_down: true });
            return;
        }
        let size = pkt.payload.len() + HEADER_BYTES;
        let reliable = pkt.proto == Proto::Tcp;
        let mut down = std::mem::take(&mut self.scratch2);
        match self.ifaces[to.0 as usize].down.transmit(t, size, reliable, pkt.flow(), &mut down) {
            Err(e) => self.drop(Drop::Link(e)),
            Ok(()) => {
                if let Some((&last, rest)) = down.split_last() {
                    for &t in rest {
                        q.schedule(t, NetEvent { iface: to, pkt: pkt.clone(), enter_down: false });
                    }
                    q.schedule(last, NetEvent { iface: to, pkt, enter_down: false });
                }
            }
        }
        self.scratch2 = down;
    }

    /// Handles one event at `now`: forwards the packet on, or hands it to a host.
    pub fn handle(&mut self, q: &mut impl Schedule<NetEvent>, now: Duration, ev: NetEvent) -> Option<Delivery> {
        let NetEvent { iface, mut pkt, enter_down } = ev;
        if enter_down {
            self.enter_down(q, now, now, iface, pkt);
            return None;
        }
        self.note(now, iface, &pkt);
        if let Some(c) = self.ifaces[iface.0 as usize].capture {
            self.captures[c].record(now, pkt.proto, pkt.src, pkt.dst, &pkt.payload);
        }
        match self.ifaces[iface.0 as usize].owner {
            Owner::Host(h) => {
                self.delivered += 1;
                Some(Delivery { host: h, at: now, pkt })
            }
            Owner::RouterInside(r) => {
                let router = &mut self.routers[r.0 as usize];
                if !router.firewall.allows(pkt.proto, pkt.dst.port()) {
                    self.drop(Drop::Firewall);
                    return None;
                }
                let hairpin = router.nat.owns(*pkt.dst.ip());
                if hairpin && !router.nat.cfg.hairpinning {
                    self.drop(Drop::Nat(NatDrop::NoHairpin));
                    return None;
                }
                let ext = match router.nat.outbound(now, pkt.proto, pkt.src, pkt.dst, &mut router.rng) {
                    Ok(e) => e,
                    Err(e) => {
                        self.drop(Drop::Nat(e));
                        return None;
                    }
                };
                if hairpin {
                    // RFC 4787 §6: the packet turns around with the sender's external endpoint
                    // as its source. It came from inside, so inbound filtering does not apply.
                    let inside = router.inside;
                    match router.nat.inbound(now, pkt.proto, ext, pkt.dst, true) {
                        Ok(internal) => {
                            pkt.src = ext;
                            pkt.dst = internal;
                            self.forward(q, now, inside, pkt);
                        }
                        Err(e) => self.drop(Drop::Nat(e)),
                    }
                } else {
                    let outside = router.outside;
                    pkt.src = ext;
                    self.forward(q, now, outside, pkt);
                }
                None
            }
            Owner::RouterOutside(r) => {
                let router = &mut self.routers[r.0 as usize];
                match router.nat.inbound(now, pkt.proto, pkt.src, pkt.dst, false) {
                    Ok(internal) => {
                        let inside = router.inside;
                        pkt.dst = internal;
                        self.forward(q, now, inside, pkt);
                    }
                    Err(e) => self.drop(Drop::Nat(e)),
                }
                None
            }
        }
    }
}
