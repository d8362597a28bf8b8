//! The STUN/TURN server core, sans-IO. Clients' bytes come in through
//! [`TurnServer::handle_client`], peers' through [`TurnServer::handle_peer`]; what to send comes
//! out of [`TurnServer::poll_output`]; [`TurnServer::handle_timeout`] expires allocations,
//! permissions, channels and cached responses. Relay addresses are opened through the
//! [`RelayPorts`] the driver passes in, so the core never touches a socket.
//!
//! RFC 8489 (STUN), RFC 5780 (behaviour discovery: RESPONSE-ORIGIN, OTHER-ADDRESS,
//! CHANGE-REQUEST), RFC 8656 (TURN over UDP and TCP, UDP relay).

mod allocate;
mod relay;

use crate::auth::{NonceCheck, Nonces, check_integrity, encode_with_integrity};
pub use crate::config::TurnConfig;
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
    /// Data for a peer that is one of the server's own listening addresses, dropped (a relay
    /// loop through the server itself).
    pub dropped_own_address: u64,
    /// Unauthenticated requests left unanswered by `unauth_rate_limit`.
    pub unauth_dropped: u64,
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
    reservations: FxHashMap<[u8; 8], (SocketAddr, Instant, String)>,
    /// Every expiry that was set, by when: the sweep pops what is due instead of scanning every
    /// allocation, permission and channel (O(expired), not O(state)). An entry whose thing was
    /// refreshed or removed since is stale and dropped when popped; the queue is rebuilt when
    /// stale entries pile up (a client refreshing in a loop).
    expiries: BTreeMap<(Instant, u64), Expiring>,
    expiry_seq: u64,
    /// The addresses clients reach the server on: never a peer (a relay to itself).
    own: Vec<SocketAddr>,
    /// `unauth_rate_limit`: tokens left and when they were counted, per client IP.
    unauth: FxHashMap<IpAddr, (f64, Instant)>,
    pub stats: Stats,
}

/// Client IPs the unauthenticated-answer limit tracks at once; beyond it the oldest half goes
/// (a flood from many sources must not grow the table without bound).
const UNAUTH_TRACKED: usize = 65_536;

/// What an entry of the expiry queue is about.
#[derive(Debug, Clone, Copy)]
enum Expiring {
    Allocation(FiveTuple),
    Permission(FiveTuple, IpAddr),
    Channel(FiveTuple, u16),
    Reservation([u8; 8]),
}

/// A response kept for retransmissions: when, sent from where, the bytes.
type CachedResponse = (Instant, SocketAddr, Vec<u8>);
type CacheKey = (FiveTuple, [u8; 12]);

/// What a nonce is bound to: the client's 5-tuple (RFC 8489 §9.2 leaves the nonce's content
/// to the server; binding it to the 5-tuple makes a captured request useless elsewhere, as
/// coturn does).
fn nonce_binding(t: &FiveTuple) -> Vec<u8> {
    format!("{}|{}|{:?}", t.client, t.server, t.transport).into_bytes()
}

/// An error response: code and reason.
struct Reject(u16, &'static str);

fn is_forbidden(ip: IpAddr, cfg: &TurnConfig) -> bool {
    // An IPv4-mapped IPv6 address is the IPv4 address it carries (::ffff:127.0.0.1 is loopback).
    let ip = match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return true;
    }
    // RFC 6890: 0.0.0.0/8 is "this network" and 240.0.0.0/4 reserved (the broadcast address
    // among it): never a peer.
    if let IpAddr::V4(v) = ip
        && (v.octets()[0] == 0 || v.octets()[0] >= 240)
    {
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
        let mut own = vec![cfg.primary];
        if let Some(a) = cfg.alternate {
            own.extend([a, SocketAddr::new(a.ip(), cfg.primary.port()), SocketAddr::new(cfg.primary.ip(), a.port())]);
        }
        own.extend(cfg.extra_listen.iter().copied());
        Self {
            own,
            unauth: FxHashMap::default(),
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
            expiries: BTreeMap::new(),
            expiry_seq: 0,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &TurnConfig {
        &self.cfg
    }

    /// Whether `tuple` has an allocation.
    pub fn has_allocation(&self, tuple: &FiveTuple) -> bool {
        self.allocs.contains_key(tuple)
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
        let Ok(mut msg) = Message::decode(data) else { return };
        msg.ignore_after_integrity();
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
                } else if !self.unauth_allowed(now, tuple.client.ip()) {
                    self.stats.unauth_dropped += 1;
                    return;
                }
                self.out.push_back(Output::ToClient { tuple, from: tuple.server, data: resp });
            }
            _ => {}
        }
    }

    /// `unauth_rate_limit`: whether `ip` may get one more unauthenticated answer now (a token
    /// bucket per IP, refilled at the limit per second, holding at most a second's worth).
    fn unauth_allowed(&mut self, now: Instant, ip: IpAddr) -> bool {
        let Some(rate) = self.cfg.unauth_rate_limit.map(f64::from) else { return true };
        if self.unauth.len() >= UNAUTH_TRACKED && !self.unauth.contains_key(&ip) {
            let mut times: Vec<Instant> = self.unauth.values().map(|(_, t)| *t).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.unauth.retain(|_, (_, t)| *t > cut);
        }
        let (tokens, at) = self.unauth.entry(ip).or_insert((rate, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
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
    fn authenticate(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        req: &Message,
        raw: &[u8],
    ) -> Result<(String, [u8; 16]), Vec<u8>> {
        let realm = (attr::REALM, self.cfg.realm.as_bytes().to_vec());
        let binding = nonce_binding(&tuple);
        let fresh_nonce = |s: &Self| {
            let expires = s.ms(now) + s.cfg.nonce_lifetime.as_millis() as u64;
            (attr::NONCE, s.nonces.make(expires, &binding).into_bytes())
        };
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
        match self.nonces.check(&nonce, self.ms(now), &binding) {
            NonceCheck::Valid => {}
            NonceCheck::Stale | NonceCheck::Invalid => {
                let n = fresh_nonce(self);
                return Err(self.error(req, 438, "Stale Nonce", None, &[realm, n]));
            }
        }
        let key = match self.cfg.users.get(&user).copied() {
            Some(key) => Some(key),
            None => self.rest_key(now, &user),
        };
        let Some(key) = key else {
            let n = fresh_nonce(self);
            return Err(self.error(req, 401, "Unauthorized", None, &[realm, n]));
        };
        if check_integrity(raw, &key) != Some(true) {
            let n = fresh_nonce(self);
            return Err(self.error(req, 401, "Unauthorized", None, &[realm, n]));
        }
        Ok((user, key))
    }

    /// The long-term key of a TURN REST API username (`EXPIRY[:NAME]`) that has not expired,
    /// when the server has a shared secret; `None` otherwise (then 401, as coturn answers an
    /// expired or malformed one).
    fn rest_key(&self, now: Instant, user: &str) -> Option<[u8; 16]> {
        let secret = self.cfg.auth_secret.as_deref()?;
        let expiry: u64 = user.split(':').next()?.parse().ok()?;
        let unix_now = self.cfg.unix_time_at_start + now.saturating_duration_since(self.start).as_secs();
        if expiry <= unix_now {
            return None;
        }
        let password = crate::auth::rest_password(secret, user);
        Some(crate::auth::long_term_key(user, &self.cfg.realm, &password))
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
        match self.authenticate(now, tuple, req, raw) {
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

    /// Expires allocations, permissions, channels and cached responses; every second.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + Duration::from_secs(1);
        while let Some(entry) = self.expiries.first_entry() {
            let &(at, _) = entry.key();
            if at > now {
                break;
            }
            let what = entry.remove();
            self.expire(at, what);
        }
        self.compact_expiries();
        let ttl = self.cfg.transaction_lifetime;
        while self.cache_order.front().is_some_and(|(_, at)| now.saturating_duration_since(*at) >= ttl) {
            self.forget_oldest();
        }
    }

    /// Queues `what` to expire at `at` (called whenever an expiry is set or refreshed).
    fn expire_at(&mut self, at: Instant, what: Expiring) {
        self.expiry_seq += 1;
        self.expiries.insert((at, self.expiry_seq), what);
        // Stale entries from a refresh loop are bounded between sweeps too (the check costs
        // O(allocations), once per 4,096 entries).
        if self.expiry_seq % 4096 == 0 {
            self.compact_expiries();
        }
    }

    /// An expiry came due: removes the thing if its expiry is still `at` (else it was refreshed
    /// or is gone, and the entry was stale).
    fn expire(&mut self, at: Instant, what: Expiring) {
        match what {
            Expiring::Allocation(t) => {
                if self.allocs.get(&t).is_some_and(|a| a.expires == at) {
                    self.delete(t);
                }
            }
            Expiring::Permission(t, ip) => {
                if let Some(a) = self.allocs.get_mut(&t)
                    && a.perms.get(&ip) == Some(&at)
                {
                    a.perms.remove(&ip);
                }
            }
            Expiring::Channel(t, ch) => {
                if let Some(a) = self.allocs.get_mut(&t)
                    && let Some(&(peer, exp)) = a.channels.get(&ch)
                    && exp == at
                {
                    a.channels.remove(&ch);
                    if a.peer_channel.get(&peer) == Some(&ch) {
                        a.peer_channel.remove(&peer);
                    }
                }
            }
            Expiring::Reservation(token) => {
                if self.reservations.get(&token).is_some_and(|(_, e, _)| *e == at)
                    && let Some((addr, _, owner)) = self.reservations.remove(&token)
                {
                    self.uncount(&owner);
                    self.out.push_back(Output::RelayClosed { relay: addr });
                }
            }
        }
    }

    /// Expiries that can still come due.
    fn live_expiries(&self) -> usize {
        self.reservations.len() + self.allocs.values().map(|a| 1 + a.perms.len() + a.channels.len()).sum::<usize>()
    }

    /// Rebuilds the queue from what is live when stale entries outnumber live ones (counting
    /// the live ones is O(allocations): done only once the queue is large).
    fn compact_expiries(&mut self) {
        const SMALL: usize = 4096;
        if self.expiries.len() <= SMALL || self.expiries.len() <= 2 * self.live_expiries() {
            return;
        }
        let mut live = Vec::with_capacity(self.live_expiries());
        for (t, a) in &self.allocs {
            live.push((a.expires, Expiring::Allocation(*t)));
            live.extend(a.perms.iter().map(|(ip, e)| (*e, Expiring::Permission(*t, *ip))));
            live.extend(a.channels.iter().map(|(ch, (_, e))| (*e, Expiring::Channel(*t, *ch))));
        }
        live.extend(self.reservations.iter().map(|(tok, (_, e, _))| (*e, Expiring::Reservation(*tok))));
        self.expiries.clear();
        for (at, what) in live {
            self.expire_at(at, what);
        }
    }

    /// Entries in the expiry queue (live and stale), for tests of its bound.
    pub fn expiry_queue_len(&self) -> usize {
        self.expiries.len()
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
