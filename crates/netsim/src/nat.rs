//! A NAT with the behaviours RFC 4787 names: mapping (§4.1), filtering (§5), port assignment
//! (§4.2.1) and parity (§4.2.2), IP pooling (§4.1 paired/arbitrary), hairpinning (§6), mapping
//! lifetime and refresh (§4.3), and a mapping-table limit. Sans-IO: it takes `now` and endpoints
//! and answers with the translated endpoint or why the packet is dropped.

use peerstorm_model::rng::Rng;
use rustc_hash::FxHashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// RFC 4787 §4.1 mapping and §5 filtering behaviours share these three names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behavior {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

impl Behavior {
    pub const ALL: [Behavior; 3] =
        [Behavior::EndpointIndependent, Behavior::AddressDependent, Behavior::AddressAndPortDependent];

    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::EndpointIndependent => "endpoint-independent",
            Behavior::AddressDependent => "address-dependent",
            Behavior::AddressAndPortDependent => "address-and-port-dependent",
        }
    }

    /// The full name, or the RFC 4787 abbreviation for mapping (`eim`, `adm`, `apdm`) or
    /// filtering (`eif`, `adf`, `apdf`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s || short(*b).contains(&s))
    }
}

fn short(b: Behavior) -> [&'static str; 2] {
    match b {
        Behavior::EndpointIndependent => ["eim", "eif"],
        Behavior::AddressDependent => ["adm", "adf"],
        Behavior::AddressAndPortDependent => ["apdm", "apdf"],
    }
}

/// RFC 4787 §4.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortAssignment {
    /// Keep the internal port when free; otherwise the next free one.
    Preserving,
    /// The next port after the last one given out.
    Sequential,
    /// A random free port.
    Random,
}

/// RFC 4787 §4.1: which external address a new mapping gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// Every mapping of one internal address uses the same external address.
    Paired,
    /// Any external address of the pool.
    Arbitrary,
}

/// The transport a mapping is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Proto {
    Udp,
    Tcp,
}

/// How a NAT behaves.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NatConfig {
    pub mapping: Behavior,
    pub filtering: Behavior,
    pub port_assignment: PortAssignment,
    /// RFC 4787 §4.2.2: keep the internal port's parity.
    pub port_parity: bool,
    pub pooling: Pooling,
    pub hairpinning: bool,
    /// UDP mapping lifetime (RFC 4787 REQ-5: at least 2 minutes).
    #[serde(rename = "udp_lifetime_s", with = "crate::time::serde_duration::secs")]
    pub udp_lifetime: Duration,
    /// TCP mapping lifetime (RFC 5382: at least 2 h 4 min for established connections).
    #[serde(rename = "tcp_lifetime_s", with = "crate::time::serde_duration::secs")]
    pub tcp_lifetime: Duration,
    /// Whether inbound packets refresh a mapping (RFC 4787 §4.3, REQ-6 is outbound only).
    pub inbound_refresh: bool,
    /// Most live mappings; new ones beyond it are refused (the packet is dropped).
    pub max_mappings: usize,
    /// External ports handed out.
    pub port_range: (u16, u16),
    /// False: no translation, only stateful filtering (a firewall in front of public hosts).
    pub translate: bool,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            mapping: Behavior::EndpointIndependent,
            filtering: Behavior::AddressAndPortDependent,
            port_assignment: PortAssignment::Preserving,
            port_parity: false,
            pooling: Pooling::Paired,
            hairpinning: true,
            udp_lifetime: Duration::from_secs(120),
            tcp_lifetime: Duration::from_secs(7440),
            inbound_refresh: false,
            max_mappings: 1 << 20,
            port_range: (1024, 65535),
            translate: true,
        }
    }
}

/// Why the NAT dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum NatDrop {
    /// Inbound to an external port with no live mapping.
    NoMapping,
    /// Inbound from a remote the mapping never sent to (the filtering behaviour).
    Filtered,
    /// The mapping table is full.
    TableFull,
    /// No external port is free.
    PortsExhausted,
    /// Hairpinning is off.
    NoHairpin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    proto: Proto,
    internal: SocketAddrV4,
    /// The destination part the mapping depends on (none, address, or address and port).
    remote: Option<SocketAddrV4>,
}

#[derive(Debug, Clone)]
struct Mapping {
    key: Key,
    external: SocketAddrV4,
    expires: Duration,
    /// Remotes this mapping sent to (what filtering permits).
    sent_to: Vec<SocketAddrV4>,
}

/// A NAT's state.
#[derive(Debug, Clone)]
pub struct Nat {
    pub cfg: NatConfig,
    pub external_ips: Vec<Ipv4Addr>,
    mappings: Vec<Option<Mapping>>,
    free: Vec<u32>,
    by_key: FxHashMap<Key, u32>,
    by_external: FxHashMap<(Proto, SocketAddrV4), u32>,
    paired: FxHashMap<Ipv4Addr, Ipv4Addr>,
    next_port: u16,
    live: usize,
}

impl Nat {
    pub fn new(cfg: NatConfig, external_ips: Vec<Ipv4Addr>) -> Self {
        assert!(!external_ips.is_empty(), "a NAT needs at least one external address");
        let next_port = cfg.port_range.0;
        Self {
            cfg,
            external_ips,
            mappings: Vec::new(),
            free: Vec::new(),
            by_key: FxHashMap::default(),
            by_external: FxHashMap::default(),
            paired: FxHashMap::default(),
            next_port,
            live: 0,
        }
    }

    /// Live mappings (expired ones not yet swept count until they are touched).
    pub fn mappings(&self) -> usize {
        self.live
    }

    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        self.external_ips.contains(&ip)
    }

    fn lifetime(&self, proto: Proto) -> Duration {
        match proto {
            Proto::Udp => self.cfg.udp_lifetime,
            Proto::Tcp => self.cfg.tcp_lifetime,
        }
    }

    fn key(&self, proto: Proto, internal: SocketAddrV4, dst: SocketAddrV4) -> Key {
        let remote = match self.cfg.mapping {
            Behavior::EndpointIndependent => None,
            Behavior::AddressDependent => Some(SocketAddrV4::new(*dst.ip(), 0)),
            Behavior::AddressAndPortDependent => Some(dst),
        };
        Key { proto, internal, remote }
    }

    fn remove(&mut self, id: u32) {
        if let Some(m) = self.mappings[id as usize].take() {
            self.by_key.remove(&m.key);
            self.by_external.remove(&(m.key.proto, m.external));
            self.free.push(id);
            self.live -= 1;
        }
    }

    /// A live mapping by id; an expired one is removed.
    fn live_mapping(&mut self, id: u32, now: Duration) -> Option<u32> {
        match &self.mappings[id as usize] {
            Some(m) if m.expires > now => Some(id),
            Some(_) => {
                self.remove(id);
                None
            }
            None => None,
        }
    }

    /// Outbound translation: the external source endpoint for `internal` sending to `dst`.
    pub fn outbound(
        &mut self,
        now: Duration,
        proto: Proto,
        internal: SocketAddrV4,
        dst: SocketAddrV4,
        rng: &mut Rng,
    ) -> Result<SocketAddrV4, NatDrop> {
        let key = self.key(proto, internal, dst);
        let lifetime = self.lifetime(proto);
        let id = match self.by_key.get(&key).copied().and_then(|id| self.live_mapping(id, now)) {
            Some(id) => id,
            None => self.create(now, key, rng)?,
        };
        let m = self.mappings[id as usize].as_mut().expect("live mapping");
        m.expires = now + lifetime;
        if !m.sent_to.contains(&dst) {
            m.sent_to.push(dst);
        }
        Ok(m.external)
    }

    fn create(&mut self, now: Duration, key: Key, rng: &mut Rng) -> Result<u32, NatDrop> {
        if self.live >= self.cfg.max_mappings {
            return Err(NatDrop::TableFull);
        }
        let external = if self.cfg.translate {
            let ip = match self.cfg.pooling {
                Pooling::Paired => {
                    let n = self.external_ips.len() as u64;
                    let pick = self.external_ips[rng.below(n) as usize];
                    *self.paired.entry(*key.internal.ip()).or_insert(pick)
                }
                Pooling::Arbitrary => self.external_ips[rng.below(self.external_ips.len() as u64) as usize],
            };
            SocketAddrV4::new(ip, self.assign_port(key.proto, ip, key.internal.port(), now, rng)?)
        } else {
            key.internal
        };
        let m = Mapping { key, external, expires: now + self.lifetime(key.proto), sent_to: Vec::new() };
        let id = match self.free.pop() {
            Some(id) => {
                self.mappings[id as usize] = Some(m);
                id
            }
            None => {
                self.mappings.push(Some(m));
                (self.mappings.len() - 1) as u32
            }
        };
        self.by_key.insert(key, id);
        self.by_external.insert((key.proto, external), id);
        self.live += 1;
        Ok(id)
    }

    fn port_free(&mut self, proto: Proto, ip: Ipv4Addr, port: u16, now: Duration) -> bool {
        match self.by_external.get(&(proto, SocketAddrV4::new(ip, port))).copied() {
            None => true,
            Some(id) => self.live_mapping(id, now).is_none(),
        }
    }

    fn assign_port(
        &mut self,
        proto: Proto,
        ip: Ipv4Addr,
        internal: u16,
        now: Duration,
        rng: &mut Rng,
    ) -> Result<u16, NatDrop> {
        let (lo, hi) = self.cfg.port_range;
        let span = u32::from(hi - lo) + 1;
        let parity_ok = |p: u16, parity: bool| !parity || p % 2 == internal % 2;
        let parity = self.cfg.port_parity;
        if self.cfg.port_assignment == PortAssignment::Preserving
            && (lo..=hi).contains(&internal)
            && self.port_free(proto, ip, internal, now)
        {
            return Ok(internal);
        }
        let start = match self.cfg.port_assignment {
            PortAssignment::Random => lo + rng.below(u64::from(span)) as u16,
            _ => self.next_port,
        };
        for i in 0..span {
            let p = lo + ((u32::from(start - lo) + i) % span) as u16;
            if parity_ok(p, parity) && self.port_free(proto, ip, p, now) {
                if self.cfg.port_assignment != PortAssignment::Random {
                    self.next_port = if p == hi { lo } else { p + 1 };
                }
                return Ok(p);
            }
        }
        Err(NatDrop::PortsExhausted)
    }

    /// Inbound translation: the internal endpoint for a packet from `remote` to `external`,
    /// subject to the filtering behaviour. `hairpin` packets come from inside and skip filtering.
    pub fn inbound(
        &mut self,
        now: Duration,
        proto: Proto,
        remote: SocketAddrV4,
        external: SocketAddrV4,
        hairpin: bool,
    ) -> Result<SocketAddrV4, NatDrop> {
        let id = self.by_external.get(&(proto, external)).copied().ok_or(NatDrop::NoMapping)?;
        let id = self.live_mapping(id, now).ok_or(NatDrop::NoMapping)?;
        let refresh = self.cfg.inbound_refresh;
        let lifetime = self.lifetime(proto);
        let filtering = self.cfg.filtering;
        let m = self.mappings[id as usize].as_mut().expect("live mapping");
        let allowed = hairpin
            || match filtering {
                Behavior::EndpointIndependent => true,
                Behavior::AddressDependent => m.sent_to.iter().any(|d| d.ip() == remote.ip()),
                Behavior::AddressAndPortDependent => m.sent_to.contains(&remote),
            };
        if !allowed {
            return Err(NatDrop::Filtered);
        }
        if refresh {
            m.expires = now + lifetime;
        }
        Ok(m.key.internal)
    }
}

/// The presets people name, each with its RFC 4787 settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// No NAT: the host has a public address.
    Open,
    /// EIM + EIF ("full cone").
    FullCone,
    /// EIM + ADF ("restricted cone").
    RestrictedCone,
    /// EIM + APDF ("port-restricted cone"), the usual home router.
    PortRestricted,
    /// APDM + APDF with random ports ("symmetric").
    Symmetric,
    /// NAT444: a port-restricted home NAT behind a carrier-grade NAT (EIM + EIF, random ports,
    /// paired pooling, hairpinning; RFC 6888).
    Cgnat,
    /// A port-restricted NAT whose firewall blocks UDP and allows TCP to ports 80 and 443 only.
    UdpBlocked,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::Open,
        Preset::FullCone,
        Preset::RestrictedCone,
        Preset::PortRestricted,
        Preset::Symmetric,
        Preset::Cgnat,
        Preset::UdpBlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Open => "open",
            Preset::FullCone => "full-cone",
            Preset::RestrictedCone => "restricted-cone",
            Preset::PortRestricted => "port-restricted",
            Preset::Symmetric => "symmetric",
            Preset::Cgnat => "cgnat",
            Preset::UdpBlocked => "udp-blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The NAT layers from the host outwards (empty for `open`).
    pub fn layers(self) -> Vec<NatConfig> {
        let nat = |mapping, filtering| NatConfig { mapping, filtering, ..NatConfig::default() };
        use Behavior::*;
        match self {
            Preset::Open => vec![],
            Preset::FullCone => vec![nat(EndpointIndependent, EndpointIndependent)],
            Preset::RestrictedCone => vec![nat(EndpointIndependent, AddressDependent)],
            Preset::PortRestricted | Preset::UdpBlocked => vec![nat(EndpointIndependent, AddressAndPortDependent)],
            Preset::Symmetric => vec![NatConfig {
                port_assignment: PortAssignment::Random,
                ..nat(AddressAndPortDependent, AddressAndPortDependent)
            }],
            Preset::Cgnat => vec![
                nat(EndpointIndependent, AddressAndPortDependent),
                NatConfig {
                    port_assignment: PortAssignment::Random,
                    pooling: Pooling::Paired,
                    ..nat(EndpointIndependent, EndpointIndependent)
                },
            ],
        }
    }

    /// The firewall in front of the outermost layer.
    pub fn firewall(self) -> Firewall {
        match self {
            Preset::UdpBlocked => Firewall { block_udp: true, tcp_ports: Some(vec![80, 443]) },
            _ => Firewall::default(),
        }
    }
}

/// Outbound rules on a router.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Firewall {
    /// Drop all UDP.
    pub block_udp: bool,
    /// When set, TCP may only go to these destination ports.
    pub tcp_ports: Option<Vec<u16>>,
}

impl Firewall {
    pub fn allows(&self, proto: Proto, dst_port: u16) -> bool {
        match proto {
            Proto::Udp => !self.block_udp,
            Proto::Tcp => self.tcp_ports.as_ref().is_none_or(|p| p.contains(&dst_port)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn nat(mapping: Behavior, filtering: Behavior) -> Nat {
        Nat::new(NatConfig { mapping, filtering, ..NatConfig::default() }, vec!["203.0.113.1".parse().unwrap()])
    }

    #[test]
    fn mapping_behaviours() {
        let mut rng = Rng::seed(1);
        let t = Duration::ZERO;
        let inside = a("10.0.0.2:5000");
        for (b, same_ip_other_port, other_ip) in [
            (Behavior::EndpointIndependent, true, true),
            (Behavior::AddressDependent, true, false),
            (Behavior::AddressAndPortDependent, false, false),
        ] {
            let mut n = nat(b, Behavior::EndpointIndependent);
            let x1 = n.outbound(t, Proto::Udp, inside, a("198.51.100.1:3478"), &mut rng).unwrap();
            let x2 = n.outbound(t, Proto::Udp, inside, a("198.51.100.1:3479"), &mut rng).unwrap();
            let x3 = n.outbound(t, Proto::Udp, inside, a("198.51.100.2:3478"), &mut rng).unwrap();
            assert_eq!(x1 == x2, same_ip_other_port, "{b:?}");
            assert_eq!(x1 == x3, other_ip, "{b:?}");
            assert_eq!(x1.port(), 5000, "ports are preserved when free");
        }
    }

    #[test]
    fn filtering_behaviours() {
        let mut rng = Rng::seed(1);
        let t = Duration::ZERO;
        let inside = a("10.0.0.2:5000");
        for (b, other_port_ok, other_ip_ok) in [
            (Behavior::EndpointIndependent, true, true),
            (Behavior::AddressDependent, true, false),
            (Behavior::AddressAndPortDependent, false, false),
        ] {
            let mut n = nat(Behavior::EndpointIndependent, b);
            let x = n.outbound(t, Proto::Udp, inside, a("198.51.100.1:3478"), &mut rng).unwrap();
            assert_eq!(n.inbound(t, Proto::Udp, a("198.51.100.1:3478"), x, false), Ok(inside));
            assert_eq!(n.inbound(t, Proto::Udp, a("198.51.100.1:9999"), x, false).is_ok(), other_port_ok, "{b:?}");
            assert_eq!(n.inbound(t, Proto::Udp, a("198.51.100.9:3478"), x, false).is_ok(), other_ip_ok, "{b:?}");
            assert_eq!(
                n.inbound(t, Proto::Udp, a("198.51.100.9:3478"), x, true),
                Ok(inside),
                "hairpin skips filtering"
            );
        }
    }

    #[test]
    fn lifetimes_refresh_and_limits() {
        let mut rng = Rng::seed(1);
        let cfg = NatConfig { udp_lifetime: Duration::from_secs(30), max_mappings: 2, ..NatConfig::default() };
        let mut n = Nat::new(cfg, vec!["203.0.113.1".parse().unwrap()]);
        let x = n.outbound(Duration::ZERO, Proto::Udp, a("10.0.0.2:1"), a("198.51.100.1:1"), &mut rng).unwrap();
        assert!(n.inbound(Duration::from_secs(29), Proto::Udp, a("198.51.100.1:1"), x, false).is_ok());
        assert_eq!(
            n.inbound(Duration::from_secs(30), Proto::Udp, a("198.51.100.1:1"), x, false),
            Err(NatDrop::NoMapping),
            "inbound did not refresh"
        );
        n.outbound(Duration::from_secs(31), Proto::Udp, a("10.0.0.2:2"), a("198.51.100.1:1"), &mut rng).unwrap();
        n.outbound(Duration::from_secs(31), Proto::Udp, a("10.0.0.2:3"), a("198.51.100.1:1"), &mut rng).unwrap();
        assert_eq!(
            n.outbound(Duration::from_secs(31), Proto::Udp, a("10.0.0.2:4"), a("198.51.100.1:1"), &mut rng),
            Err(NatDrop::TableFull)
        );
    }

    #[test]
    fn port_assignment_and_parity() {
        let mut rng = Rng::seed(1);
        let ip = vec!["203.0.113.1".parse().unwrap()];
        let mut seq = Nat::new(
            NatConfig { port_assignment: PortAssignment::Sequential, port_range: (2000, 2010), ..NatConfig::default() },
            ip.clone(),
        );
        let p: Vec<u16> = (0..3)
            .map(|i| {
                seq.outbound(
                    Duration::ZERO,
                    Proto::Udp,
                    a(&format!("10.0.0.{}:5000", i + 2)),
                    a("198.51.100.1:1"),
                    &mut rng,
                )
                .unwrap()
                .port()
            })
            .collect();
        assert_eq!(p, [2000, 2001, 2002]);
        let mut pres = Nat::new(NatConfig { port_parity: true, ..NatConfig::default() }, ip.clone());
        let x1 = pres.outbound(Duration::ZERO, Proto::Udp, a("10.0.0.2:5001"), a("198.51.100.1:1"), &mut rng).unwrap();
        let x2 = pres.outbound(Duration::ZERO, Proto::Udp, a("10.0.0.3:5001"), a("198.51.100.1:1"), &mut rng).unwrap();
        assert_eq!(x1.port(), 5001);
        assert_ne!(x2.port(), 5001, "taken: falls back");
        assert_eq!(x2.port() % 2, 1, "parity kept");
    }
}
