//! RFC 5780 NAT behaviour discovery inside the simulator: a STUN responder with two addresses
//! and two ports (answering CHANGE-REQUEST from the other address/port and reporting
//! OTHER-ADDRESS and RESPONSE-ORIGIN), a client running the mapping tests I–III (§4.3), the
//! filtering tests (§4.4) and the hairpinning test (§4.5), and [`probe`], which builds a topology
//! around a preset or custom NAT layers and reports configured against discovered behaviour.

use crate::link::LinkConfig;
use crate::nat::{Behavior, Firewall, NatConfig, Preset, Proto};
use crate::net::{Delivery, HostId, Network, Packet};
use crate::sim::{Flow, Sim};
use peerstorm_model::rng::Rng;
use peerstorm_model::stun::{self, Class, Message, attr};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// The responder's two addresses, each with the primary and alternate port.
#[derive(Debug, Clone, Copy)]
pub struct StunServer {
    pub host: HostId,
    pub ip1: Ipv4Addr,
    pub ip2: Ipv4Addr,
    pub port1: u16,
    pub port2: u16,
}

fn v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

impl StunServer {
    pub fn primary(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip1, self.port1)
    }

    /// Answers a Binding request that reached the responder (RFC 5780 §6: the response comes
    /// from the address CHANGE-REQUEST asks for). Returns false for anything else.
    pub fn respond(&self, sim: &mut Sim, d: &Delivery) -> bool {
        if d.host != self.host || d.pkt.proto != Proto::Udp {
            return false;
        }
        let Ok(req) = Message::decode(&d.pkt.payload) else { return false };
        if req.method != stun::BINDING || req.class != Class::Request {
            return false;
        }
        let (change_ip, change_port) = req.change_request().unwrap_or((false, false));
        let local = d.pkt.dst;
        let other_ip = if *local.ip() == self.ip1 { self.ip2 } else { self.ip1 };
        let other_port = if local.port() == self.port1 { self.port2 } else { self.port1 };
        let from = SocketAddrV4::new(
            if change_ip { other_ip } else { *local.ip() },
            if change_port { other_port } else { local.port() },
        );
        let mut resp = Message::new(stun::BINDING, Class::Success, req.transaction_id);
        resp.push_address(attr::XOR_MAPPED_ADDRESS, SocketAddr::V4(d.pkt.src));
        resp.push_address(attr::RESPONSE_ORIGIN, SocketAddr::V4(from));
        resp.push_address(attr::OTHER_ADDRESS, SocketAddr::V4(SocketAddrV4::new(other_ip, other_port)));
        sim.send(self.host, Packet { proto: Proto::Udp, src: from, dst: d.pkt.src, payload: resp.encode(true) });
        true
    }
}

/// What discovery found. `None` where a test could not run (no response at all: UDP blocked).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discovered {
    pub mapping: Option<Behavior>,
    pub filtering: Option<Behavior>,
    pub hairpinning: Option<bool>,
    /// The mapped address from test I.
    pub mapped_address: Option<SocketAddrV4>,
    /// No Binding response arrived at all.
    pub udp_blocked: bool,
}

/// One Binding transaction from `local` to `dst`: the XOR-MAPPED-ADDRESS, or `None` after three
/// tries (500 ms apart, RFC 8489's initial RTO).
fn transact(
    sim: &mut Sim,
    client: HostId,
    server: &StunServer,
    local: SocketAddrV4,
    dst: SocketAddrV4,
    change: (bool, bool),
    rng: &mut Rng,
) -> Option<SocketAddrV4> {
    let mut tid = [0u8; 12];
    rng.fill(&mut tid);
    let mut req = Message::binding_request(tid);
    if change != (false, false) {
        req.push_change_request(change.0, change.1);
    }
    let bytes = req.encode(true);
    for _ in 0..3 {
        sim.send(client, Packet { proto: Proto::Udp, src: local, dst, payload: bytes.clone() });
        let mut got = None;
        let deadline = sim.now() + Duration::from_millis(500);
        let r = sim.run_until(deadline, |sim, d| {
            if server.respond(sim, &d) {
                return Flow::Continue;
            }
            if d.host == client
                && d.pkt.dst == local
                && let Ok(m) = Message::decode(&d.pkt.payload)
                && m.transaction_id == tid
                && m.class == Class::Success
            {
                got = m.address(attr::XOR_MAPPED_ADDRESS).and_then(Result::ok).and_then(v4);
                return Flow::Stop;
            }
            Flow::Continue
        });
        if r.is_err() {
            return None;
        }
        if got.is_some() {
            return got;
        }
    }
    None
}

/// RFC 5780 §4.5: send a Binding request to our own mapped address and see whether it comes
/// back to us.
fn hairpin(
    sim: &mut Sim,
    client: HostId,
    server: &StunServer,
    local: SocketAddrV4,
    mapped: SocketAddrV4,
    rng: &mut Rng,
) -> bool {
    let mut tid = [0u8; 12];
    rng.fill(&mut tid);
    let bytes = Message::binding_request(tid).encode(true);
    sim.send(client, Packet { proto: Proto::Udp, src: local, dst: mapped, payload: bytes });
    let mut seen = false;
    let deadline = sim.now() + Duration::from_millis(1500);
    let _ = sim.run_until(deadline, |sim, d| {
        if server.respond(sim, &d) {
            return Flow::Continue;
        }
        if d.host == client
            && let Ok(m) = Message::decode(&d.pkt.payload)
            && m.transaction_id == tid
        {
            seen = true;
            return Flow::Stop;
        }
        Flow::Continue
    });
    seen
}

/// Runs every RFC 5780 test from `client`, each sequence from its own local port so one test's
/// mappings and permissions cannot colour another's.
pub fn discover(sim: &mut Sim, client: HostId, server: &StunServer, seed: u64) -> Discovered {
    let mut rng = Rng::seed(seed);
    let ip = sim.net.host_ips(client)[0];
    let (p_map, p_filter) = (SocketAddrV4::new(ip, 40000), SocketAddrV4::new(ip, 40002));
    let mut out =
        Discovered { mapping: None, filtering: None, hairpinning: None, mapped_address: None, udp_blocked: true };
    // §4.3 mapping: test I to (ip1, port1); II to (ip2, port1); III to (ip2, port2).
    let Some(x1) = transact(sim, client, server, p_map, server.primary(), (false, false), &mut rng) else { return out };
    out.udp_blocked = false;
    out.mapped_address = Some(x1);
    let x2 =
        transact(sim, client, server, p_map, SocketAddrV4::new(server.ip2, server.port1), (false, false), &mut rng);
    out.mapping = match x2 {
        _ if x1 == p_map => Some(Behavior::EndpointIndependent),
        Some(x2) if x2 == x1 => Some(Behavior::EndpointIndependent),
        Some(x2) => match transact(
            sim,
            client,
            server,
            p_map,
            SocketAddrV4::new(server.ip2, server.port2),
            (false, false),
            &mut rng,
        ) {
            Some(x3) if x3 == x2 => Some(Behavior::AddressDependent),
            Some(_) => Some(Behavior::AddressAndPortDependent),
            None => None,
        },
        None => None,
    };
    // §4.4 filtering, from a fresh port: test I, then II (change IP and port), then III (port).
    if transact(sim, client, server, p_filter, server.primary(), (false, false), &mut rng).is_some() {
        out.filtering = if transact(sim, client, server, p_filter, server.primary(), (true, true), &mut rng).is_some() {
            Some(Behavior::EndpointIndependent)
        } else if transact(sim, client, server, p_filter, server.primary(), (false, true), &mut rng).is_some() {
            Some(Behavior::AddressDependent)
        } else {
            Some(Behavior::AddressAndPortDependent)
        };
    }
    // §4.5 hairpinning, from the mapping test's port toward its own mapped address.
    out.hairpinning = Some(hairpin(sim, client, server, p_map, x1, &mut rng));
    out
}

/// The behaviour a chain of NAT layers shows from outside: the most dependent mapping and the
/// most restrictive filtering win; hairpinning needs every layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Configured {
    pub mapping: Option<Behavior>,
    pub filtering: Option<Behavior>,
    pub hairpinning: Option<bool>,
    pub layers: Vec<NatConfig>,
    pub firewall: Firewall,
}

impl Configured {
    pub fn of(layers: &[NatConfig], firewall: &Firewall) -> Self {
        let udp = !firewall.block_udp;
        let worst = |f: fn(&NatConfig) -> Behavior| layers.iter().map(f).max().unwrap_or(Behavior::EndpointIndependent);
        Self {
            mapping: udp.then(|| worst(|c| c.mapping)),
            filtering: udp.then(|| worst(|c| c.filtering)),
            hairpinning: udp.then(|| layers.iter().all(|c| c.hairpinning)),
            layers: layers.to_vec(),
            firewall: firewall.clone(),
        }
    }
}

/// A probe's result: configured next to discovered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    pub preset: String,
    pub configured: Configured,
    pub discovered: Discovered,
}

impl ProbeReport {
    /// Discovered equals configured.
    pub fn matches(&self) -> bool {
        let c = &self.configured;
        let d = &self.discovered;
        (c.mapping, c.filtering, c.hairpinning) == (d.mapping, d.filtering, d.hairpinning)
            && d.udp_blocked == c.mapping.is_none()
    }
}

/// Builds client → NAT layers (innermost first) → internet ← STUN responder, and runs discovery.
pub fn probe(name: &str, layers: &[NatConfig], firewall: Firewall, seed: u64) -> ProbeReport {
    let mut net = Network::new(seed);
    let internet = net.add_segment("internet");
    let (ip1, ip2): (Ipv4Addr, Ipv4Addr) = ("198.51.100.1".parse().expect("ip"), "198.51.100.2".parse().expect("ip"));
    let server_host = net.add_host("stun", internet, &[ip1, ip2], LinkConfig::latency(10));
    let server = StunServer { host: server_host, ip1, ip2, port1: 3478, port2: 3479 };
    let client = if layers.is_empty() {
        net.add_host("client", internet, &["203.0.113.10".parse().expect("ip")], LinkConfig::latency(5))
    } else {
        let mut inner = net.add_segment("home");
        let client = net.add_host("client", inner, &["192.168.1.10".parse().expect("ip")], LinkConfig::latency(5));
        for (i, cfg) in layers.iter().enumerate() {
            let last = i + 1 == layers.len();
            let outer = if last { internet } else { net.add_segment(&format!("carrier-{i}")) };
            let inside_ip: Ipv4Addr =
                if i == 0 { "192.168.1.1".parse().expect("ip") } else { Ipv4Addr::new(100, 64, i as u8 - 1, 1) };
            let external: Vec<Ipv4Addr> = if last {
                vec![Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(203, 0, 113, 2)]
            } else {
                vec![Ipv4Addr::new(100, 64, i as u8, 2)]
            };
            let fw = if last { firewall.clone() } else { Firewall::default() };
            net.add_router(crate::net::RouterSpec {
                inside: inner,
                outside: outer,
                inside_ip,
                external_ips: external,
                nat: cfg.clone(),
                firewall: fw,
                outside_link: LinkConfig::latency(5),
            });
            inner = outer;
        }
        client
    };
    let mut sim = Sim::new(net);
    let discovered = discover(&mut sim, client, &server, seed ^ 0x5780);
    ProbeReport { preset: name.to_string(), configured: Configured::of(layers, &firewall), discovered }
}

/// [`probe`] for a named preset.
pub fn probe_preset(p: Preset, seed: u64) -> ProbeReport {
    probe(p.as_str(), &p.layers(), p.firewall(), seed)
}
