//! What a TURN server is configured with: realm, users, addresses, lifetimes and limits.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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
    /// The most permissions (peer addresses) and channels one allocation holds; beyond them
    /// CreatePermission and ChannelBind get 508 (RFC 8656 §9.2, §12.2), so one client cannot
    /// make the server hold (and sweep) millions of entries.
    pub max_permissions_per_allocation: usize,
    pub max_channels_per_allocation: usize,
    /// TCP clients: a connection with no allocation that sends nothing this long is closed, and
    /// so is one that leaves a frame unfinished this long (a slow-loris holds a descriptor and a
    /// buffer otherwise); unsent output beyond `tcp_max_unsent` closes the connection rather
    /// than cut a frame in two.
    pub tcp_idle_timeout: Duration,
    pub tcp_frame_timeout: Duration,
    pub tcp_max_unsent: usize,
    /// Accept channel numbers 0x4000–0x7FFF as RFC 5766 did (coturn does; its `turnutils_uclient`
    /// uses them); RFC 8656 §12 allows 0x4000–0x4FFF only.
    pub rfc5766_channels: bool,
    /// More addresses clients may reach the server on (e.g. TCP on port 443 for clients behind
    /// a firewall that lets only web traffic out); answered like the primary.
    pub extra_listen: Vec<SocketAddr>,
    /// The "TURN REST API" shared secret (coturn's `use-auth-secret`/`static-auth-secret`): a
    /// username `EXPIRY:NAME` (or `EXPIRY`), EXPIRY in Unix seconds, with the password
    /// base64(HMAC-SHA1(secret, username)) is accepted until EXPIRY. Static users still work.
    pub auth_secret: Option<String>,
    /// Unix time (seconds) at the core's start `Instant`: the core never reads the wall clock,
    /// so the driver says where its clock stands (the shell: the system time; the simulator: 0
    /// or a value it picks). REST credentials expire against it.
    pub unix_time_at_start: u64,
    /// Unauthenticated answers (the 401s and 438s a request without valid credentials gets) per
    /// second to one client IP, beyond which requests are dropped unanswered (a burst of as many
    /// is allowed): a 401 is larger than the request that caused it, so an open server is a
    /// reflector for spoofed sources (coturn's `--unauthorized-ratelimit`). `None`: no limit.
    pub unauth_rate_limit: Option<u32>,
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
            max_permissions_per_allocation: 1024,
            max_channels_per_allocation: 1024,
            tcp_idle_timeout: Duration::from_secs(60),
            tcp_frame_timeout: Duration::from_secs(10),
            tcp_max_unsent: 1 << 20,
            rfc5766_channels: false,
            extra_listen: Vec::new(),
            auth_secret: None,
            unix_time_at_start: 0,
            unauth_rate_limit: None,
        }
    }

    pub fn add_user(&mut self, name: &str, password: &str) -> &mut Self {
        let key = crate::auth::long_term_key(name, &self.realm, password);
        self.users.insert(name.to_string(), key);
        self
    }
}
