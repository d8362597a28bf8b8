//! The STUN/TURN server core, sans-IO. Clients' bytes come in through
//! [`TurnServer::handle_client`], peers' through [`TurnServer::handle_peer`]; what to send comes
//! out of [`TurnServer::poll_output`]; [`TurnServer::handle_timeout`] expires allocations,
//! permissions, channels and cached responses. Relay addresses are opened through the
//! [`RelayPorts`] the driver passes in, so the core never touches a socket.
//!
//! RFC 8489 (STUN), RFC 5780 (behaviour discovery: RESPONSE-ORIGIN, OTHER-ADDRESS,
//! CHANGE-REQUEST), RFC 8656 (TURN over UDP and TCP, UDP relay).

use crate::auth::{NonceCheck, Nonces, check_integrity, encode_with_integrity};
use peerstorm_model::stun::{self, Class, Message, attr};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// TURN methods (RFC 8656 §17).
pub mod method {
    pub const ALLOCATE: u16 = 0x003;
    pub const REFRESH: u16 = 0x004;
    pub const SEND: u16 = 0x006;
    pub const DATA: u16 = 0x007;
    pub const CREATE_PERMISSION: u16 = 0x008;
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// TURN attributes (RFC 8656 §18).
pub mod tattr {
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
}

/// How the client reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
}

/// RFC 8656's 5-tuple: client, server address, transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiveTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// The main listening address (RFC 5780's primary address and port).
    pub primary: SocketAddr,
    pub realm: String,
    /// Users and their long-term keys (see [`crate::auth::long_term_key`]).
    pub users: BTreeMap<String, [u8; 16]>,
    pub software: String,
    /// The address relayed traffic comes from.
    pub relay_ip: IpAddr,
    pub relay_ports: (u16, u16),
    /// RFC 5780: the other address and port (the server also answers on the mixes of the two).
    pub alternate: Option<SocketAddr>,
    /// Like coturn's `--allow-loopback-peers`.
    pub allow_loopback_peers: bool,
    /// Peers on private, shared (100.64/10) or link-local addresses.
    pub allow_private_peers: bool,
    pub max_allocations_per_user: usize,
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
    pub permission_lifetime: Duration,
    pub channel_lifetime: Duration,
    pub nonce_lifetime: Duration,
    /// How long a response is kept to answer a retransmitted request the same way (RFC 8489
    /// §6.3.1 suggests 40 s).
    pub transaction_lifetime: Duration,
    /// At most this many responses are kept for retransmissions; beyond it the oldest goes (a
    /// retransmission then gets a recomputed answer: Allocate recognises its own transaction,
    /// and the other methods are idempotent). Only authenticated requests' responses are kept:
    /// a challenge costs nothing to recompute, and an unauthenticated flood must not fill memory.
    pub max_cached_responses: usize,
    /// Accept channel numbers 0x4000–0x7FFF as RFC 5766 did (coturn does; its `turnutils_uclient`
    /// uses them); RFC 8656 §12 allows 0x4000–0x4FFF only.
    pub rfc5766_channels: bool,
    /// More addresses clients may reach the server on (e.g. TCP on port 443 for clients behind
    /// a firewall that lets only web traffic out); answered like the primary.
    pub extra_listen: Vec<SocketAddr>,
}

impl TurnConfig {
    pub fn new(realm: &str, primary: SocketAddr) -> Self {
        Self {
            primary,
            realm: realm.to_string(),
            users: BTreeMap::new(),
            software: "peerstorm".into(),
            relay_ip: primary.ip(),
            relay_ports: (49152, 65535),
            alternate: None,
            allow_loopback_peers: false,
            allow_private_peers: false,
            max_allocations_per_user: 100,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            nonce_lifetime: Duration::from_secs(600),
            transaction_lifetime: Duration::from_secs(40),
            max_cached_responses: 65_536,
            rfc5766_channels: false,
            extra_listen: Vec::new(),
        }
    }

    pub fn add_user(&mut self, name: &str, password: &str) -> &mut Self {
        let key = crate::auth::long_term_key(name, &self.realm, password);
        self.users.insert(name.to_string(), key);
        self
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes to a client, over the 5-tuple, sent from `from` (a different local address only
    /// for RFC 5780 CHANGE-REQUEST).
    ToClient { tuple: FiveTuple, from: SocketAddr, data: Vec<u8> },
    /// A datagram from a relay address to a peer.
    ToPeer { relay: SocketAddr, peer: SocketAddr, data: Vec<u8> },
    /// A relay address is no longer used.
    RelayClosed { relay: SocketAddr },
}

/// Opens relay addresses for the core (the driver binds sockets; the simulator says yes).
pub trait RelayPorts {
    /// Try to take `addr`; false if it is in use.
    fn open(&mut self, addr: SocketAddr) -> bool;
}

/// Every address is free (for the simulator and tests).
#[derive(Debug, Default)]
pub struct AnyPort;

impl RelayPorts for AnyPort {
    fn open(&mut self, _: SocketAddr) -> bool {
        true
    }
}

#[derive(Debug)]
struct Allocation {
    user: String,
    relay: SocketAddr,
    expires: Instant,
    tid: [u8; 12],
    perms: FxHashMap<IpAddr, Instant>,
    channels: FxHashMap<u16, (SocketAddr, Instant)>,
    peer_channel: FxHashMap<SocketAddr, u16>,
}

/// Counters.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub binding_responses: u64,
    pub allocations: u64,
    pub to_peer: u64,
    pub to_client: u64,
    pub retransmits_answered: u64,
    /// Cached responses dropped, oldest first, to stay within `max_cached_responses`.
    pub responses_evicted: u64,
    pub errors: BTreeMap<u16, u64>,
    pub dropped_no_permission: u64,
}

/// The server.
#[derive(Debug)]
pub struct TurnServer {
    cfg: TurnConfig,
    nonces: Nonces,
    start: Instant,
    allocs: FxHashMap<FiveTuple, Allocation>,
    by_relay: FxHashMap<SocketAddr, FiveTuple>,
    per_user: FxHashMap<String, usize>,
    cache: FxHashMap<CacheKey, CachedResponse>,
    /// The cache's keys in the order they were stored (their times never decrease), to expire
    /// and evict the oldest without scanning.
    cache_order: VecDeque<(CacheKey, Instant)>,
    out: VecDeque<Output>,
    next_port: u16,
    next_sweep: Instant,
    /// RFC 8656 §7.2: ports held for a later Allocate with RESERVATION-TOKEN, by token.
    reservations: FxHashMap<[u8; 8], (SocketAddr, Instant)>,
    pub stats: Stats,
}

/// A response kept for retransmissions: when, sent from where, the bytes.
type CachedResponse = (Instant, SocketAddr, Vec<u8>);
type CacheKey = (FiveTuple, [u8; 12]);

/// An error response: code and reason.
struct Reject(u16, &'static str);

fn is_forbidden(ip: IpAddr, cfg: &TurnConfig) -> bool {
    if ip.is_unspecified() || ip.is_multicast() {
        return true;
    }
    if ip.is_loopback() {
        return !cfg.allow_loopback_peers;
    }
    let private = match ip {
        IpAddr::V4(v) => {
            v.is_private()
                || v.is_link_local()
                || v.is_broadcast()
                || (v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => (v.segments()[0] & 0xfe00) == 0xfc00 || (v.segments()[0] & 0xffc0) == 0xfe80,
    };
    private && !cfg.allow_private_peers
}

/// The comprehension-required attributes of `req` (below 0x8000) not in `known`, as the
/// UNKNOWN-ATTRIBUTES value lists them (RFC 8489 §6.3.1, §14.9).
fn unknown_attributes(req: &Message, known: &[u16]) -> Vec<u8> {
    req.attributes
        .iter()
        .filter(|(t, _)| *t < 0x8000 && !known.contains(t))
        .flat_map(|(t, _)| t.to_be_bytes())
        .collect()
}

impl TurnServer {
    /// A server started at `now`; `secret` keys its nonces.
    pub fn new(cfg: TurnConfig, now: Instant, secret: [u8; 16]) -> Self {
        Self {
            next_port: cfg.relay_ports.0,
            cfg,
            nonces: Nonces::new(secret),
            start: now,
            allocs: FxHashMap::default(),
            by_relay: FxHashMap::default(),
            per_user: FxHashMap::default(),
            cache: FxHashMap::default(),
            cache_order: VecDeque::new(),
            out: VecDeque::new(),
            next_sweep: now + Duration::from_secs(1),
            reservations: FxHashMap::default(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &TurnConfig {
        &self.cfg
    }

    pub fn allocations(&self) -> usize {
        self.allocs.len()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_millis() as u64
    }

    /// Bytes from a client on `tuple`: a STUN message or ChannelData.
    pub fn handle_client(&mut self, now: Instant, tuple: FiveTuple, data: &[u8], ports: &mut dyn RelayPorts) {
        if data.len() >= 4 && (0x40..0x80).contains(&data[0]) {
            return self.client_channel_data(now, tuple, data);
        }
        let Ok(msg) = Message::decode(data) else { return };
        match (msg.class, msg.method) {
            (Class::Indication, method::SEND) => self.send_indication(now, tuple, &msg),
            (Class::Request, m) => {
                if let Some((at, from, resp)) = self.cache.get(&(tuple, msg.transaction_id))
                    && now.saturating_duration_since(*at) < self.cfg.transaction_lifetime
                {
                    // RFC 8489 §6.3: a retransmitted request gets the same answer.
                    self.stats.retransmits_answered += 1;
                    self.out.push_back(Output::ToClient { tuple, from: *from, data: resp.clone() });
                    return;
                }
                if m == stun::BINDING {
                    // Binding is idempotent: recomputing gives the same answer, so it is not
                    // cached (a cache entry per Binding would grow without bound under load).
                    let (from, resp) = self.binding(tuple, &msg);
                    self.out.push_back(Output::ToClient { tuple, from, data: resp });
                    return;
                }
                let (resp, authenticated) = self.turn_request(now, tuple, &msg, data, ports);
                if authenticated {
                    self.remember(now, (tuple, msg.transaction_id), tuple.server, resp.clone());
                }
                self.out.push_back(Output::ToClient { tuple, from: tuple.server, data: resp });
            }
            _ => {}
        }
    }

    fn error(
        &mut self,
        req: &Message,
        code: u16,
        reason: &str,
        key: Option<&[u8]>,
        extra: &[(u16, Vec<u8>)],
    ) -> Vec<u8> {
        *self.stats.errors.entry(code).or_default() += 1;
        let mut m = Message::new(req.method, Class::Error, req.transaction_id);
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        m.push(attr::ERROR_CODE, v);
        for (t, val) in extra {
            m.push(*t, val.clone());
        }
        m.push(attr::SOFTWARE, self.cfg.software.as_bytes().to_vec());
        match key {
            Some(k) => encode_with_integrity(&m, k, true),
            None => m.encode(true),
        }
    }

    /// RFC 8489 Binding, with RFC 5780 when an alternate address is configured: the response
    /// says where it came from (RESPONSE-ORIGIN) and where the other address is (OTHER-ADDRESS),
    /// and CHANGE-REQUEST moves the response to the other IP and/or port.
    fn binding(&mut self, tuple: FiveTuple, req: &Message) -> (SocketAddr, Vec<u8>) {
        let primary = self.cfg.primary;
        let alt = self.cfg.alternate.filter(|_| tuple.transport == Transport::Udp);
        let other = alt.map(|alt| {
            let ip = if tuple.server.ip() == primary.ip() { alt.ip() } else { primary.ip() };
            let port = if tuple.server.port() == primary.port() { alt.port() } else { primary.port() };
            SocketAddr::new(ip, port)
        });
        let mut from = tuple.server;
        // RFC 8489 §6.3.1: unknown comprehension-required attributes get 420, listing them.
        let known = [
            attr::MAPPED_ADDRESS,
            attr::CHANGE_REQUEST,
            attr::USERNAME,
            attr::MESSAGE_INTEGRITY,
            attr::REALM,
            attr::NONCE,
            attr::XOR_MAPPED_ADDRESS,
            attr::PADDING,
            attr::RESPONSE_PORT,
        ];
        let unknown = unknown_attributes(req, &known);
        if !unknown.is_empty() {
            return (from, self.error(req, 420, "Unknown Attribute", None, &[(attr::UNKNOWN_ATTRIBUTES, unknown)]));
        }
        if let Some((change_ip, change_port)) = req.change_request() {
            let Some(other) = other else {
                return (
                    from,
                    self.error(
                        req,
                        420,
                        "Unknown Attribute",
                        None,
                        &[(attr::UNKNOWN_ATTRIBUTES, attr::CHANGE_REQUEST.to_be_bytes().to_vec())],
                    ),
                );
            };
            from = SocketAddr::new(
                if change_ip { other.ip() } else { from.ip() },
                if change_port { other.port() } else { from.port() },
            );
        }
        self.stats.binding_responses += 1;
        let mut m = Message::new(stun::BINDING, Class::Success, req.transaction_id);
        m.push_address(attr::XOR_MAPPED_ADDRESS, tuple.client);
        if let Some(other) = other {
            m.push_address(attr::RESPONSE_ORIGIN, from);
            m.push_address(attr::OTHER_ADDRESS, other);
        }
        m.push(attr::SOFTWARE, self.cfg.software.as_bytes().to_vec());
        (from, m.encode(true))
    }

    /// RFC 8489 §9.2.4: long-term credentials. `Ok` with the user and key, or the error response.
    fn authenticate(&mut self, now: Instant, req: &Message, raw: &[u8]) -> Result<(String, [u8; 16]), Vec<u8>> {
        let realm = (attr::REALM, self.cfg.realm.as_bytes().to_vec());
        let fresh_nonce =
            |s: &Self| (attr::NONCE, s.nonces.make(s.ms(now) + s.cfg.nonce_lifetime.as_millis() as u64).into_bytes());
        if req.attribute(attr::MESSAGE_INTEGRITY).is_none() {
            let n = fresh_nonce(self);
            return Err(self.error(req, 401, "Unauthorized", None, &[realm, n]));
        }
        let (Some(user), Some(_), Some(nonce)) =
            (req.attribute(attr::USERNAME), req.attribute(attr::REALM), req.attribute(attr::NONCE))
        else {
            return Err(self.error(req, 400, "Bad Request", None, &[]));
        };
        let user = String::from_utf8_lossy(user).into_owned();
        let nonce = String::from_utf8_lossy(nonce).into_owned();
        match self.nonces.check(&nonce, self.ms(now)) {
            NonceCheck::Valid => {}
            NonceCheck::Stale | NonceCheck::Invalid => {
                let n = fresh_nonce(self);
                return Err(self.error(req, 438, "Stale Nonce", None, &[realm, n]));
            }
        }
        let Some(key) = self.cfg.users.get(&user).copied() else {
            let n = fresh_nonce(self);
            return Err(self.error(req, 401, "Unauthorized", None, &[realm, n]));
        };
        if check_integrity(raw, &key) != Some(true) {
            let n = fresh_nonce(self);
            return Err(self.error(req, 401, "Unauthorized", None, &[realm, n]));
        }
        Ok((user, key))
    }

    /// The response to a TURN request, and whether the request was authenticated.
    fn turn_request(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        req: &Message,
        raw: &[u8],
        ports: &mut dyn RelayPorts,
    ) -> (Vec<u8>, bool) {
        match self.authenticate(now, req, raw) {
            Ok((user, key)) => (self.authenticated_request(now, tuple, req, &user, &key, ports), true),
            Err(resp) => (resp, false),
        }
    }

    fn authenticated_request(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        req: &Message,
        user: &str,
        key: &[u8; 16],
        ports: &mut dyn RelayPorts,
    ) -> Vec<u8> {
        let known = [
            attr::USERNAME,
            attr::MESSAGE_INTEGRITY,
            attr::REALM,
            attr::NONCE,
            tattr::LIFETIME,
            tattr::REQUESTED_TRANSPORT,
            tattr::XOR_PEER_ADDRESS,
            tattr::CHANNEL_NUMBER,
            tattr::DATA,
            tattr::DONT_FRAGMENT,
            tattr::REQUESTED_ADDRESS_FAMILY,
            tattr::EVEN_PORT,
            tattr::RESERVATION_TOKEN,
        ];
        let unknown = unknown_attributes(req, &known);
        if !unknown.is_empty() {
            return self.error(req, 420, "Unknown Attribute", Some(key), &[(attr::UNKNOWN_ATTRIBUTES, unknown)]);
        }
        let result = match req.method {
            method::ALLOCATE => self.allocate(now, tuple, req, user, ports),
            method::REFRESH => self.refresh(now, tuple, req),
            method::CREATE_PERMISSION => self.create_permission(now, tuple, req),
            method::CHANNEL_BIND => self.channel_bind(now, tuple, req),
            _ => Err(Reject(400, "Bad Request")),
        };
        match result {
            Ok(mut m) => {
                m.push(attr::SOFTWARE, self.cfg.software.as_bytes().to_vec());
                encode_with_integrity(&m, key, true)
            }
            Err(Reject(code, reason)) => self.error(req, code, reason, Some(key), &[]),
        }
    }

    /// RFC 8656 §7.2: LIFETIME is min(requested, maximum), but never below the default.
    fn lifetime(&self, req: &Message) -> Duration {
        let requested = req
            .attribute(tattr::LIFETIME)
            .filter(|v| v.len() == 4)
            .map(|v| Duration::from_secs(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))));
        match requested {
            Some(r) => r.min(self.cfg.max_lifetime).max(self.cfg.default_lifetime),
            None => self.cfg.default_lifetime,
        }
    }

    fn allocate(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        req: &Message,
        user: &str,
        ports: &mut dyn RelayPorts,
    ) -> Result<Message, Reject> {
        if let Some(a) = self.allocs.get(&tuple) {
            if a.tid != req.transaction_id {
                return Err(Reject(437, "Allocation Mismatch"));
            }
            return Ok(self.allocate_success(tuple, req));
        }
        match req.attribute(tattr::REQUESTED_TRANSPORT) {
            None => return Err(Reject(400, "Bad Request")),
            Some(v) if v.first() != Some(&17) => return Err(Reject(442, "Unsupported Transport Protocol")),
            Some(_) => {}
        }
        if req.attribute(tattr::REQUESTED_ADDRESS_FAMILY).is_some_and(|v| v.first() != Some(&1))
            || !self.cfg.relay_ip.is_ipv4()
        {
            return Err(Reject(440, "Address Family not Supported"));
        }
        if self.per_user.get(user).copied().unwrap_or(0) >= self.cfg.max_allocations_per_user {
            return Err(Reject(486, "Allocation Quota Reached"));
        }
        let even = req.attribute(tattr::EVEN_PORT);
        let token = req.attribute(tattr::RESERVATION_TOKEN);
        let mut reserved_token = None;
        let relay = match (even, token) {
            (Some(_), Some(_)) => return Err(Reject(400, "Bad Request")),
            (None, Some(t)) => {
                let t: [u8; 8] = t.try_into().map_err(|_| Reject(400, "Bad Request"))?;
                match self.reservations.remove(&t) {
                    Some((addr, exp)) if exp > now => addr,
                    Some((addr, _)) => {
                        self.out.push_back(Output::RelayClosed { relay: addr });
                        return Err(Reject(508, "Insufficient Capacity"));
                    }
                    None => return Err(Reject(508, "Insufficient Capacity")),
                }
            }
            (Some(e), None) => {
                let reserve = e.first().is_some_and(|b| b & 0x80 != 0);
                let (relay, next) = self.take_even_port(ports, reserve).ok_or(Reject(508, "Insufficient Capacity"))?;
                if let Some(next) = next {
                    let mut t = [0u8; 8];
                    t[..2].copy_from_slice(&next.port().to_be_bytes());
                    t[2..].copy_from_slice(&req.transaction_id[..6]);
                    self.reservations.insert(t, (next, now + Duration::from_secs(30)));
                    reserved_token = Some(t);
                }
                relay
            }
            (None, None) => self.take_port(ports).ok_or(Reject(508, "Insufficient Capacity"))?,
        };
        let expires = now + self.lifetime(req);
        self.allocs.insert(
            tuple,
            Allocation {
                user: user.to_string(),
                relay,
                expires,
                tid: req.transaction_id,
                perms: FxHashMap::default(),
                channels: FxHashMap::default(),
                peer_channel: FxHashMap::default(),
            },
        );
        self.by_relay.insert(relay, tuple);
        *self.per_user.entry(user.to_string()).or_default() += 1;
        self.stats.allocations += 1;
        let mut m = self.allocate_success(tuple, req);
        if let Some(t) = reserved_token {
            m.push(tattr::RESERVATION_TOKEN, t.to_vec());
        }
        Ok(m)
    }

    fn allocate_success(&self, tuple: FiveTuple, req: &Message) -> Message {
        let a = &self.allocs[&tuple];
        let mut m = Message::new(method::ALLOCATE, Class::Success, req.transaction_id);
        m.push_address(tattr::XOR_RELAYED_ADDRESS, a.relay);
        m.push(tattr::LIFETIME, (self.lifetime(req).as_secs() as u32).to_be_bytes().to_vec());
        m.push_address(attr::XOR_MAPPED_ADDRESS, tuple.client);
        m
    }

    fn take_port(&mut self, ports: &mut dyn RelayPorts) -> Option<SocketAddr> {
        let (lo, hi) = self.cfg.relay_ports;
        let span = u32::from(hi - lo) + 1;
        if self.by_relay.len() + self.reservations.len() >= span as usize {
            // Every port is taken: answer at once instead of scanning the whole range.
            return None;
        }
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= hi { lo } else { p + 1 };
            let addr = SocketAddr::new(self.cfg.relay_ip, p);
            let reserved = self.reservations.values().any(|(r, _)| *r == addr);
            if !self.by_relay.contains_key(&addr) && !reserved && ports.open(addr) {
                return Some(addr);
            }
        }
        None
    }

    /// An even relay port (RFC 8656 §7.2 EVEN-PORT); with `reserve`, the next port is held too.
    fn take_even_port(
        &mut self,
        ports: &mut dyn RelayPorts,
        reserve: bool,
    ) -> Option<(SocketAddr, Option<SocketAddr>)> {
        let (lo, hi) = self.cfg.relay_ports;
        let span = u32::from(hi - lo) + 1;
        let in_use =
            |s: &Self, a: SocketAddr| s.by_relay.contains_key(&a) || s.reservations.values().any(|(r, _)| *r == a);
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= hi { lo } else { p + 1 };
            if p % 2 != 0 || (reserve && p >= hi) {
                continue;
            }
            let addr = SocketAddr::new(self.cfg.relay_ip, p);
            let next = SocketAddr::new(self.cfg.relay_ip, p + 1);
            if in_use(self, addr) || (reserve && in_use(self, next)) {
                continue;
            }
            if !ports.open(addr) {
                continue;
            }
            if reserve {
                if !ports.open(next) {
                    self.out.push_back(Output::RelayClosed { relay: addr });
                    continue;
                }
                return Some((addr, Some(next)));
            }
            return Some((addr, None));
        }
        None
    }

    fn delete(&mut self, tuple: FiveTuple) {
        if let Some(a) = self.allocs.remove(&tuple) {
            self.by_relay.remove(&a.relay);
            if let Some(n) = self.per_user.get_mut(&a.user) {
                *n = n.saturating_sub(1);
            }
            self.out.push_back(Output::RelayClosed { relay: a.relay });
        }
    }

    fn refresh(&mut self, now: Instant, tuple: FiveTuple, req: &Message) -> Result<Message, Reject> {
        if !self.allocs.contains_key(&tuple) {
            return Err(Reject(437, "Allocation Mismatch"));
        }
        let zero = req.attribute(tattr::LIFETIME).is_some_and(|v| v == [0, 0, 0, 0]);
        let mut m = Message::new(method::REFRESH, Class::Success, req.transaction_id);
        if zero {
            self.delete(tuple);
            m.push(tattr::LIFETIME, vec![0, 0, 0, 0]);
        } else {
            let life = self.lifetime(req);
            self.allocs.get_mut(&tuple).expect("checked").expires = now + life;
            m.push(tattr::LIFETIME, (life.as_secs() as u32).to_be_bytes().to_vec());
        }
        Ok(m)
    }

    fn peers(req: &Message) -> Result<Vec<SocketAddr>, Reject> {
        let v: Vec<SocketAddr> = req
            .addresses(tattr::XOR_PEER_ADDRESS)
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|_| Reject(400, "Bad Request"))?;
        if v.is_empty() { Err(Reject(400, "Bad Request")) } else { Ok(v) }
    }

    fn create_permission(&mut self, now: Instant, tuple: FiveTuple, req: &Message) -> Result<Message, Reject> {
        if !self.allocs.contains_key(&tuple) {
            return Err(Reject(437, "Allocation Mismatch"));
        }
        let peers = Self::peers(req)?;
        if peers.iter().any(|p| is_forbidden(p.ip(), &self.cfg)) {
            return Err(Reject(403, "Forbidden"));
        }
        let life = self.cfg.permission_lifetime;
        let a = self.allocs.get_mut(&tuple).expect("checked");
        for p in peers {
            a.perms.insert(p.ip(), now + life);
        }
        Ok(Message::new(method::CREATE_PERMISSION, Class::Success, req.transaction_id))
    }

    fn channel_bind(&mut self, now: Instant, tuple: FiveTuple, req: &Message) -> Result<Message, Reject> {
        if !self.allocs.contains_key(&tuple) {
            return Err(Reject(437, "Allocation Mismatch"));
        }
        let ch =
            req.attribute(tattr::CHANNEL_NUMBER).filter(|v| v.len() == 4).map(|v| u16::from_be_bytes([v[0], v[1]]));
        let top = if self.cfg.rfc5766_channels { 0x7FFF } else { 0x4FFF };
        let Some(ch) = ch.filter(|c| (0x4000..=top).contains(c)) else {
            return Err(Reject(400, "Bad Request"));
        };
        let peers = Self::peers(req)?;
        let peer = peers[0];
        if is_forbidden(peer.ip(), &self.cfg) {
            return Err(Reject(403, "Forbidden"));
        }
        let (clife, plife) = (self.cfg.channel_lifetime, self.cfg.permission_lifetime);
        let a = self.allocs.get_mut(&tuple).expect("checked");
        // RFC 8656 §12.2: a channel is bound to one peer and a peer to one channel; rebinding the
        // same pair refreshes it.
        if let Some((bound, exp)) = a.channels.get(&ch)
            && *exp > now
            && *bound != peer
        {
            return Err(Reject(400, "Bad Request"));
        }
        if let Some(other) = a.peer_channel.get(&peer)
            && *other != ch
            && a.channels.get(other).is_some_and(|(_, exp)| *exp > now)
        {
            return Err(Reject(400, "Bad Request"));
        }
        a.channels.insert(ch, (peer, now + clife));
        a.peer_channel.insert(peer, ch);
        a.perms.insert(peer.ip(), now + plife);
        Ok(Message::new(method::CHANNEL_BIND, Class::Success, req.transaction_id))
    }

    fn send_indication(&mut self, now: Instant, tuple: FiveTuple, msg: &Message) {
        let (Some(Ok(peer)), Some(data)) = (msg.address(tattr::XOR_PEER_ADDRESS), msg.attribute(tattr::DATA)) else {
            return;
        };
        let Some(a) = self.allocs.get(&tuple) else { return };
        if a.perms.get(&peer.ip()).is_some_and(|exp| *exp > now) {
            self.stats.to_peer += 1;
            self.out.push_back(Output::ToPeer { relay: a.relay, peer, data: data.to_vec() });
        } else {
            self.stats.dropped_no_permission += 1;
        }
    }

    fn client_channel_data(&mut self, now: Instant, tuple: FiveTuple, data: &[u8]) {
        if let Some((relay, peer, payload)) = self.route_channel_data(now, tuple, data) {
            self.out.push_back(Output::ToPeer { relay, peer, data: payload.to_vec() });
        }
    }

    /// The allocation-free form of ChannelData from a client: where it goes (relay address,
    /// peer) and the payload to send, or `None` to drop it. A driver may call this for bytes whose
    /// first byte is 0x40–0x7F instead of [`TurnServer::handle_client`].
    pub fn route_channel_data<'d>(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        data: &'d [u8],
    ) -> Option<(SocketAddr, SocketAddr, &'d [u8])> {
        if data.len() < 4 {
            return None;
        }
        let ch = u16::from_be_bytes([data[0], data[1]]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let payload = data.get(4..4 + len)?;
        let a = self.allocs.get(&tuple)?;
        let (peer, exp) = a.channels.get(&ch)?;
        if *exp <= now || a.perms.get(&peer.ip()).is_none_or(|e| *e <= now) {
            self.stats.dropped_no_permission += 1;
            return None;
        }
        self.stats.to_peer += 1;
        Some((a.relay, *peer, payload))
    }

    /// A TCP client connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn handle_client_closed(&mut self, tuple: FiveTuple) {
        self.delete(tuple);
    }

    /// The addresses the server answers clients on: the primary, and with an alternate the three
    /// other IP/port combinations RFC 5780 needs.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        let p = self.cfg.primary;
        let mut v = match self.cfg.alternate {
            None => vec![p],
            Some(a) => vec![p, SocketAddr::new(a.ip(), p.port()), SocketAddr::new(p.ip(), a.port()), a],
        };
        v.extend(self.cfg.extra_listen.iter().copied());
        v
    }

    /// A datagram from `peer` reached the relay address `relay`: to the client as ChannelData
    /// when a channel is bound to the peer, as a Data indication otherwise; dropped without a
    /// permission.
    pub fn handle_peer(&mut self, now: Instant, relay: SocketAddr, peer: SocketAddr, data: &[u8]) {
        let mut out = Vec::new();
        if let Some((tuple, from)) = self.route_peer_data(now, relay, peer, data, &mut out) {
            self.out.push_back(Output::ToClient { tuple, from, data: out });
        }
    }

    /// The allocation-free form of [`TurnServer::handle_peer`]: writes what the client gets
    /// (ChannelData, or a Data indication) into `out` and says where it goes (the 5-tuple, and
    /// the local address to send from), or `None` to drop it.
    pub fn route_peer_data(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<(FiveTuple, SocketAddr)> {
        out.clear();
        let &tuple = self.by_relay.get(&relay)?;
        let a = &self.allocs[&tuple];
        if a.perms.get(&peer.ip()).is_none_or(|exp| *exp <= now) {
            self.stats.dropped_no_permission += 1;
            return None;
        }
        match a.peer_channel.get(&peer).filter(|ch| a.channels.get(ch).is_some_and(|(p, e)| *p == peer && *e > now)) {
            Some(&ch) => {
                out.extend_from_slice(&ch.to_be_bytes());
                out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                out.extend_from_slice(data);
                if tuple.transport == Transport::Tcp {
                    // RFC 8656 §12.5: over TCP, ChannelData is padded to a multiple of four.
                    out.resize(out.len().next_multiple_of(4), 0);
                }
            }
            None => {
                let mut m = Message::new(method::DATA, Class::Indication, self.tid_for_indication());
                m.push_address(tattr::XOR_PEER_ADDRESS, peer);
                m.push(tattr::DATA, data.to_vec());
                out.extend_from_slice(&m.encode(false));
            }
        }
        self.stats.to_client += 1;
        Some((tuple, tuple.server))
    }

    fn tid_for_indication(&mut self) -> [u8; 12] {
        let n = self.stats.to_client.to_be_bytes();
        let mut t = [0u8; 12];
        t[4..].copy_from_slice(&n);
        t
    }

    /// Expires allocations, permissions, channels and cached responses; every second.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + Duration::from_secs(1);
        let dead: Vec<FiveTuple> = self.allocs.iter().filter(|(_, a)| a.expires <= now).map(|(t, _)| *t).collect();
        for t in dead {
            self.delete(t);
        }
        for a in self.allocs.values_mut() {
            a.perms.retain(|_, e| *e > now);
            a.channels.retain(|_, (_, e)| *e > now);
            let live: Vec<SocketAddr> = a.channels.values().map(|(p, _)| *p).collect();
            a.peer_channel.retain(|p, _| live.contains(p));
        }
        let expired: Vec<[u8; 8]> = self.reservations.iter().filter(|(_, (_, e))| *e <= now).map(|(t, _)| *t).collect();
        for t in expired {
            if let Some((addr, _)) = self.reservations.remove(&t) {
                self.out.push_back(Output::RelayClosed { relay: addr });
            }
        }
        let ttl = self.cfg.transaction_lifetime;
        while self.cache_order.front().is_some_and(|(_, at)| now.saturating_duration_since(*at) >= ttl) {
            self.forget_oldest();
        }
    }

    /// Keeps a response for retransmissions of its request, within `max_cached_responses`.
    fn remember(&mut self, now: Instant, key: CacheKey, from: SocketAddr, resp: Vec<u8>) {
        if self.cfg.max_cached_responses == 0 {
            return;
        }
        while self.cache.len() >= self.cfg.max_cached_responses && !self.cache_order.is_empty() {
            if self.forget_oldest() {
                self.stats.responses_evicted += 1;
            }
        }
        self.cache.insert(key, (now, from, resp));
        self.cache_order.push_back((key, now));
    }

    /// Drops the oldest entry of the order; true if it was still the cached response (a key
    /// stored again later has a newer entry, which stays).
    fn forget_oldest(&mut self) -> bool {
        let Some((key, at)) = self.cache_order.pop_front() else { return false };
        if self.cache.get(&key).is_some_and(|(t, _, _)| *t == at) {
            self.cache.remove(&key);
            true
        } else {
            false
        }
    }

    /// How many responses are kept for retransmissions now.
    pub fn cached_responses(&self) -> usize {
        self.cache.len()
    }
}
