//! TURN and STUN server cases, from RFC 8489 (STUN), RFC 8656 (TURN) and RFC 5780 (NAT
//! behaviour discovery). Each case uses its own client socket (its own 5-tuple) and its own
//! echo peer on 127.0.0.1 (the server must allow loopback peers). A client deletes its
//! allocation when its case ends (`UdpClient`'s drop), so a run leaves nothing behind on the
//! server and stays within a per-user quota.

use crate::{Case, Check, Fail, Level};
use peerstorm_model::stun::{Class, Message, attr};
use peerstorm_turn::client::{Received, UdpClient};
use peerstorm_turn::server::{method, tattr};
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server under test and its credentials.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub server: SocketAddr,
    pub user: String,
    pub password: String,
    /// The server's alternate address (RFC 5780), if it has one.
    pub alt: Option<SocketAddr>,
    /// The server's allocation quota for this user, if known (for the 486 case).
    pub quota: Option<usize>,
    /// Every socket the cases bound, kept open until the suite ends. A server keeps an
    /// allocation for its 5-tuple for minutes after a case is done with it; were the port handed
    /// to a later case's socket, that case would find itself with an allocation it never made
    /// (`refresh.1` once saw coturn accept its Refresh that way).
    pub held: Arc<Mutex<Vec<UdpSocket>>>,
    /// The server's TURN REST API secret (coturn's `static-auth-secret`), if it takes such
    /// credentials: the expiry cases mint their own with it.
    pub auth_secret: Option<String>,
    /// The server's limit on unauthenticated answers per second per client IP, if it has one
    /// (enables the rate-limit check of sec.5; the amplification ratio is measured either way).
    pub unauth_rate_limit: Option<u32>,
    /// The server's process on this machine, if known: sec.6 reads its memory.
    pub server_pid: Option<u32>,
}

impl Ctx {
    pub fn new(server: SocketAddr, user: &str, password: &str, alt: Option<SocketAddr>, quota: Option<usize>) -> Self {
        Self {
            server,
            user: user.into(),
            password: password.into(),
            alt,
            quota,
            held: Arc::default(),
            auth_secret: None,
            unauth_rate_limit: None,
            server_pid: None,
        }
    }

    /// The same server, running as process `pid` here (sec.6 reads its resident memory).
    pub fn with_server_pid(mut self, pid: Option<u32>) -> Self {
        self.server_pid = pid;
        self
    }

    /// The same server, whose unauthenticated answers are limited to `limit` per second per IP.
    pub fn with_unauth_rate_limit(mut self, limit: Option<u32>) -> Self {
        self.unauth_rate_limit = limit;
        self
    }

    /// The same server, which takes TURN REST API credentials signed with `secret`.
    pub fn with_auth_secret(mut self, secret: Option<String>) -> Self {
        self.auth_secret = secret;
        self
    }

    /// A client with a TURN REST API credential for `name` that expires at `expiry` (Unix time),
    /// or `None` when no secret was given.
    fn rest_client(&self, expiry: u64, name: &str, seed: u64) -> Option<Result<UdpClient, Fail>> {
        let secret = self.auth_secret.as_deref()?;
        let user = format!("{expiry}:{name}");
        let password = peerstorm_turn::auth::rest_password(secret, &user);
        Some(self.client_as(&user, &password, seed))
    }

    /// A UDP socket on loopback (the server's family) whose port no later case can get.
    fn bind(&self, ip: &str) -> Result<UdpSocket, Fail> {
        let s = UdpSocket::bind(ip).map_err(io)?;
        let keep = s.try_clone().map_err(io)?;
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(keep);
        Ok(s)
    }

    fn client_as(&self, user: &str, password: &str, seed: u64) -> Result<UdpClient, Fail> {
        let s = self.bind(if self.server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" })?;
        UdpClient::with_socket(s, self.server, user, password, seed).map_err(io)
    }
}

type Fut = Pin<Box<dyn Future<Output = Check>>>;

/// The wall clock's Unix time, which TURN REST API credentials are stamped with.
fn unix_now() -> Result<u64, Fail> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|e| fail(format!("the clock is before 1970: {e}"), "a Unix time"))
}

fn fail(observed: impl Into<String>, expected: impl Into<String>) -> Fail {
    Fail { observed: observed.into(), expected: expected.into() }
}

fn io(e: std::io::Error) -> Fail {
    fail(format!("no answer ({e})"), "an answer")
}

fn client(c: &Ctx, seed: u64) -> Result<UdpClient, Fail> {
    c.client_as(&c.user, &c.password, seed)
}

/// A client with an allocation; returns it and its relayed address.
fn allocated(c: &Ctx, seed: u64) -> Result<(UdpClient, SocketAddr), Fail> {
    let mut cl = client(c, seed)?;
    let r = cl.allocate().map_err(io)?;
    if !r.is_success() {
        return Err(fail(format!("Allocate: {}", said(&r)), "an allocation"));
    }
    let relay =
        r.msg.address(tattr::XOR_RELAYED_ADDRESS).and_then(Result::ok).ok_or(fail("no XOR-RELAYED-ADDRESS", "one"))?;
    Ok((cl, relay))
}

fn peer(c: &Ctx) -> Result<(UdpSocket, SocketAddr), Fail> {
    peer_at(c, "127.0.0.1:0")
}

/// A peer socket on another loopback address (permissions are per IP address, RFC 8656 §9).
fn peer_at(c: &Ctx, addr: &str) -> Result<(UdpSocket, SocketAddr), Fail> {
    let s = c.bind(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(2))).map_err(io)?;
    let a = s.local_addr().map_err(io)?;
    Ok((s, a))
}

/// UDP can drop a datagram on a busy machine: a data-plane check sends up to three times,
/// until `arrived` sees it.
fn three_tries(
    mut send: impl FnMut() -> Result<(), Fail>,
    mut arrived: impl FnMut() -> Result<bool, Fail>,
) -> Result<bool, Fail> {
    for _ in 0..3 {
        send()?;
        if arrived()? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What the peer socket got next from `relay` within `wait`: payload and sender. A datagram from
/// anywhere else (a stray one to a reused loopback port on a busy machine) is skipped; if nothing
/// came from the relay, the last stray one is returned so a failure shows what did arrive.
fn at_peer(p: &UdpSocket, relay: SocketAddr, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = std::time::Instant::now() + wait;
    let mut b = [0u8; 1500];
    let mut stray = None;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || p.set_read_timeout(Some(left)).is_err() {
            return stray;
        }
        match p.recv_from(&mut b) {
            Ok((n, from)) if from == relay => return Some((b[..n].to_vec(), from)),
            Ok((n, from)) => stray = Some((b[..n].to_vec(), from)),
            Err(_) => return stray,
        }
    }
}

/// The client sends (up to three times) and the peer must get `data` from the relayed address.
fn client_to_peer(send: impl FnMut() -> Result<(), Fail>, p: &UdpSocket, data: &[u8], relay: SocketAddr) -> Check {
    let mut got = None;
    three_tries(send, || {
        got = at_peer(p, relay, Duration::from_secs(2));
        Ok(got.as_ref().is_some_and(|(_, from)| *from == relay))
    })?;
    match got {
        Some((d, from)) if d == data && from == relay => Ok(None),
        other => Err(fail(format!("{other:?}"), format!("{:?} from {relay}", String::from_utf8_lossy(data)))),
    }
}

/// The peer sends `data` to the relayed address (up to three times); what the client got.
fn peer_to_client(cl: &mut UdpClient, p: &UdpSocket, relay: SocketAddr, data: &[u8]) -> Result<Option<Received>, Fail> {
    let mut got = None;
    three_tries(
        || p.send_to(data, relay).map(|_| ()).map_err(io),
        || {
            got = cl.recv().ok();
            Ok(got.is_some())
        },
    )?;
    Ok(got)
}

/// A process's resident memory, KiB (`/proc/PID/status` VmRSS).
fn rss_kib(pid: u32) -> Result<u64, Fail> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| fail(format!("/proc/{pid}/status: {e}"), "the server's process on this machine"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| fail("no VmRSS", "the server's resident memory"))
}

/// What a fresh allocation's CreatePermission (or, with `channel`, ChannelBind) to `peer` gets:
/// `None` for success, else the error code (0 for an error without one).
fn peer_request(c: &Ctx, seed: u64, peer: SocketAddr, channel: Option<u16>) -> Result<Option<u16>, Fail> {
    let (mut cl, _) = allocated(c, seed)?;
    let r = match channel {
        None => cl.create_permission(&[peer]),
        Some(ch) => cl.channel_bind(ch, peer),
    }
    .map_err(io)?;
    Ok(if r.is_success() { None } else { Some(r.error_code().unwrap_or(0)) })
}

/// Every (address, request) among `peers` x {CreatePermission, ChannelBind} the server accepted.
fn accepted(c: &Ctx, seed: u64, peers: &[&str]) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let peer: SocketAddr = p.parse().map_err(|e| fail(format!("{p}: {e}"), "an address"))?;
        for (what, channel) in [("CreatePermission", None), ("ChannelBind", Some(0x4000 + i as u16))] {
            if peer_request(c, seed + 2 * i as u64 + u64::from(channel.is_some()), peer, channel)?.is_none() {
                out.push(format!("{what} {p}"));
            }
        }
    }
    Ok(out)
}

/// An Allocate asking for `secs` of LIFETIME: success, and the LIFETIME granted.
fn allocate_for(cl: &mut UdpClient, secs: u32) -> Result<(bool, Option<u32>), Fail> {
    let r = cl
        .call(
            method::ALLOCATE,
            &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]), (tattr::LIFETIME, secs.to_be_bytes().to_vec())],
        )
        .map_err(io)?;
    let granted =
        r.msg.attribute(tattr::LIFETIME).filter(|v| v.len() == 4).map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
    Ok((r.is_success(), granted))
}

fn code(want: u16, got: Option<u16>) -> Check {
    if got == Some(want) { Ok(None) } else { Err(fail(in_words(got), format!("error {want}"))) }
}

/// An answer's ERROR-CODE in words: `error 403`, or `no ERROR-CODE` (a success).
fn in_words(code: Option<u16>) -> String {
    code.map_or_else(|| "no ERROR-CODE".to_string(), |c| format!("error {c}"))
}

/// A relayed address, or that there was none.
fn relay_words(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "no relayed address".to_string(), |a| a.to_string())
}

/// What a reply said: `success` or `error 403`.
fn said(r: &peerstorm_turn::client::Reply) -> String {
    if r.is_success() { "success".to_string() } else { in_words(r.error_code()) }
}

fn success(r: &peerstorm_turn::client::Reply, what: &str) -> Check {
    if r.is_success() { Ok(None) } else { Err(fail(said(r), format!("{what} success"))) }
}

macro_rules! case {
    ($id:expr, $level:ident, $section:expr, $desc:expr, $body:expr) => {
        Case::<Ctx> {
            id: $id,
            level: Level::$level,
            section: $section,
            description: $desc,
            run: |c: Ctx| -> Fut { Box::pin(async move { $body(c) }) },
        }
    };
}

const UDP: u8 = 17;

pub fn cases() -> Vec<Case<Ctx>> {
    vec![
        case!(
            "binding.1",
            Must,
            "RFC 8489 §14.2",
            "a Binding request gets XOR-MAPPED-ADDRESS = the client's address",
            |c: Ctx| {
                let mut cl = client(&c, 1)?;
                let tid = cl.new_tid();
                let r = cl.exchange(&Message::binding_request(tid).encode(true), tid).map_err(io)?;
                let mapped = r.msg.address(attr::XOR_MAPPED_ADDRESS).and_then(Result::ok);
                if r.msg.class == Class::Success && mapped == Some(cl.local_addr()) {
                    Ok(None)
                } else {
                    Err(fail(format!("{mapped:?}"), cl.local_addr().to_string()))
                }
            }
        ),
        case!(
            "binding.2",
            Should,
            "RFC 8489 §14.7",
            "a response to a request with FINGERPRINT carries FINGERPRINT",
            |c: Ctx| {
                let mut cl = client(&c, 2)?;
                let tid = cl.new_tid();
                let r = cl.exchange(&Message::binding_request(tid).encode(true), tid).map_err(io)?;
                if r.msg.attribute(attr::FINGERPRINT).is_some() {
                    Ok(None)
                } else {
                    Err(fail("no FINGERPRINT", "FINGERPRINT"))
                }
            }
        ),
        case!("binding.3", Must, "RFC 8489 §6.3", "a request with a wrong FINGERPRINT is not answered", |c: Ctx| {
            let mut cl = client(&c, 3)?;
            let tid = cl.new_tid();
            let mut raw = Message::binding_request(tid).encode(true);
            let n = raw.len();
            raw[n - 1] ^= 0xff;
            cl.socket.set_read_timeout(Some(Duration::from_millis(400))).map_err(io)?;
            cl.socket.send_to(&raw, c.server).map_err(io)?;
            match cl.socket.recv_from(&mut [0u8; 1500]) {
                Err(_) => Ok(None),
                Ok(_) => Err(fail("an answer", "silence (the message is discarded)")),
            }
        }),
        case!(
            "binding.4",
            Must,
            "RFC 8489 §6.3.1",
            "an unknown comprehension-required attribute gets 420 with UNKNOWN-ATTRIBUTES",
            |c: Ctx| {
                let mut cl = client(&c, 4)?;
                let tid = cl.new_tid();
                let mut m = Message::binding_request(tid);
                m.push(0x0031, vec![0, 0, 0, 0]);
                let r = cl.exchange(&m.encode(true), tid).map_err(io)?;
                let listed =
                    r.msg.attribute(attr::UNKNOWN_ATTRIBUTES).is_some_and(|v| v.chunks(2).any(|t| t == [0x00, 0x31]));
                if r.error_code() == Some(420) && listed { Ok(None) } else { Err(fail(said(&r), "420 listing 0x0031")) }
            }
        ),
        case!(
            "auth.1",
            Must,
            "RFC 8656 §7.2, RFC 8489 §9.2",
            "an Allocate without credentials gets 401 with REALM and NONCE",
            |c: Ctx| {
                let mut cl = client(&c, 10)?;
                let tid = cl.new_tid();
                let raw = cl.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
                let r = cl.exchange(&raw, tid).map_err(io)?;
                let ok = r.error_code() == Some(401)
                    && r.msg.attribute(attr::REALM).is_some()
                    && r.msg.attribute(attr::NONCE).is_some();
                if ok { Ok(None) } else { Err(fail(said(&r), "401 with REALM and NONCE")) }
            }
        ),
        case!("auth.2", Must, "RFC 8489 §9.2.4", "a wrong password gets 401", |c: Ctx| {
            let mut cl = c.client_as(&c.user, "definitely-wrong", 11)?;
            code(401, cl.allocate().map_err(io)?.error_code())
        }),
        case!("auth.3", Must, "RFC 8489 §9.2.4", "an unknown user gets 401", |c: Ctx| {
            let mut cl = c.client_as("no-such-user-xyz", "x", 12)?;
            code(401, cl.allocate().map_err(io)?.error_code())
        }),
        case!("auth.4", Must, "RFC 8489 §9.2.4", "a stale or unknown NONCE gets 438 with a fresh NONCE", |c: Ctx| {
            let mut cl = client(&c, 13)?;
            cl.allocate().map_err(io)?; // learns realm and a good nonce
            let (mut d, _) = (client(&c, 14)?, ());
            let tid = d.new_tid();
            let raw0 = d.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
            let r0 = d.exchange(&raw0, tid).map_err(io)?;
            let realm =
                r0.msg.attribute(attr::REALM).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            d.set_credentials_state(Some(realm), Some("obviouslystalenonce0123".into()));
            let tid = d.new_tid();
            let raw = d.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
            let r = d.exchange(&raw, tid).map_err(io)?;
            if r.error_code() == Some(438) && r.msg.attribute(attr::NONCE).is_some() {
                Ok(None)
            } else {
                Err(fail(said(&r), "438 with a NONCE"))
            }
        }),
        case!(
            "auth.5",
            Harden,
            "RFC 8489 §9.2, §16",
            "an authenticated request replayed from another address is refused (nonces bound to the 5-tuple)",
            |c: Ctx| {
                let (mut victim, _) = allocated(&c, 15)?;
                // What an attacker on the path captured: the victim's next signed Allocate.
                let tid = victim.new_tid();
                let captured =
                    victim.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
                let mut attacker = client(&c, 16)?;
                let r = attacker.exchange(&captured, tid).map_err(io)?;
                match r.error_code() {
                    Some(438 | 401) => Ok(None),
                    got => Err(fail(format!("{got:?} (None: an allocation for the attacker)"), "438 or 401")),
                }
            }
        ),
        case!(
            "auth.6",
            Must,
            "RFC 8489 §14.5",
            "an attribute appended after MESSAGE-INTEGRITY is ignored (an appended XOR-PEER-ADDRESS gets no permission)",
            |c: Ctx| {
                let (mut cl, relay) = allocated(&c, 17)?;
                let (asked, asked_addr) = peer(&c)?;
                // On another IP: a permission covers every port of its peer's address.
                let (smuggled, smuggled_addr) = peer_at(&c, "127.0.0.2:0")?;
                // A CreatePermission signed for one peer, then a second peer appended after
                // MESSAGE-INTEGRITY (and no FINGERPRINT, which would have to come last).
                let tid = cl.new_tid();
                let mut m = Message::new(method::CREATE_PERMISSION, Class::Request, tid);
                m.push_address(tattr::XOR_PEER_ADDRESS, asked_addr);
                let mut bytes = cl.encode_message(&m, false);
                let mut extra = Message::new(method::CREATE_PERMISSION, Class::Request, tid);
                extra.push_address(tattr::XOR_PEER_ADDRESS, smuggled_addr);
                bytes.extend_from_slice(&extra.encode(false)[20..]);
                let len = (bytes.len() - 20) as u16;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
                success(&cl.exchange(&bytes, tid).map_err(io)?, "CreatePermission (its signed part)")?;
                if peer_to_client(&mut cl, &asked, relay, b"asked")?.is_none() {
                    return Err(fail("nothing from the peer the client signed for", "a Data indication"));
                }
                match peer_to_client(&mut cl, &smuggled, relay, b"smuggled")? {
                    None => Ok(None),
                    Some(_) => Err(fail("the smuggled peer's data reached the client", "dropped: no permission")),
                }
            }
        ),
        case!(
            "auth.7",
            Must,
            "draft-uberti-behave-turn-rest-00 §2.2",
            "a TURN REST API credential (EXPIRY:NAME, HMAC-SHA1 password) is taken until it expires, then refused with 401",
            |c: Ctx| {
                let now = unix_now()?;
                let Some(fresh) = c.rest_client(now + 600, "conform-fresh", 18) else {
                    return Ok(Some("no --auth-secret given: not checked".into()));
                };
                let r = fresh?.allocate().map_err(io)?;
                if !r.is_success() {
                    return Err(fail(said(&r), "a credential that expires in 10 minutes allocates"));
                }
                let expired =
                    c.rest_client(now.saturating_sub(60), "conform-expired", 19).expect("the secret is given");
                let r = expired?.allocate().map_err(io)?;
                if r.error_code() == Some(401) {
                    Ok(None)
                } else {
                    Err(fail(format!("{} for a credential that expired a minute ago", said(&r)), "401"))
                }
            }
        ),
        case!(
            "sec.1",
            Harden,
            "CVE-2020-26262; RFC 8656 §9.1",
            "a permission or channel to the unspecified address (0.0.0.0, [::], [::ffff:0.0.0.0]) is refused: on Linux it reaches the server's own host",
            |c: Ctx| {
                let got = accepted(&c, 300, &["0.0.0.0:9", "[::]:9", "[::ffff:0.0.0.0]:9"])?;
                if got.is_empty() {
                    Ok(None)
                } else {
                    Err(fail(format!("accepted: {}", got.join(", ")), "every one refused"))
                }
            }
        ),
        case!(
            "sec.2",
            Harden,
            "CVE-2026-27624; RFC 8656 §9.1",
            "loopback spelled as IPv6 ([::ffff:127.0.0.1], [::1]) gets no more than 127.0.0.1 does: refused, or 443 on an IPv4 relay",
            |c: Ctx| {
                // The suite's own peers are on 127.0.0.1, so this server may allow loopback; what
                // it must not do is let another spelling through where 127.0.0.1 is refused, or
                // relay an IPv4 allocation to an IPv6 address at all.
                let plain = peer_request(&c, 310, SocketAddr::from(([127, 0, 0, 1], 9)), None)?;
                let got = accepted(&c, 312, &["[::ffff:127.0.0.1]:9", "[::1]:9"])?;
                match (plain, got.is_empty()) {
                    (_, true) => Ok(None),
                    (None, false) => Err(fail(
                        format!(
                            "accepted on an IPv4 relay: {} (loopback is allowed here, but the family is wrong)",
                            got.join(", ")
                        ),
                        "443 Peer Address Family Mismatch",
                    )),
                    (Some(code), false) => Err(fail(
                        format!("127.0.0.1 gets {code}, yet accepted: {}", got.join(", ")),
                        "refused like 127.0.0.1",
                    )),
                }
            }
        ),
        case!(
            "sec.3",
            Harden,
            "RFC 6890; RFC 1918; RFC 6598; Enable Security 2026",
            "private, shared, link-local (169.254.169.254: cloud metadata), multicast, broadcast and reserved peers are refused by default",
            |c: Ctx| {
                let got = accepted(
                    &c,
                    320,
                    &[
                        "10.0.0.1:9",
                        "172.16.0.1:9",
                        "192.168.0.1:9",
                        "100.64.0.1:9",
                        "169.254.169.254:80",
                        "224.0.0.1:9",
                        "239.255.255.250:1900",
                        "255.255.255.255:9",
                        "240.0.0.1:9",
                    ],
                )?;
                if got.is_empty() {
                    Ok(None)
                } else {
                    Err(fail(
                        format!("accepted: {}", got.join(", ")),
                        "every one refused unless the operator allows them",
                    ))
                }
            }
        ),
        case!(
            "sec.4",
            Harden,
            "RFC 8656 §21 (relay loops); Enable Security 2026",
            "nothing is relayed to the server's own listening address (a Send there carrying a Binding request brings no Data indication back)",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 340)?;
                let r = cl.create_permission(&[c.server]).map_err(io)?;
                if !r.is_success() {
                    return Ok(Some(format!("a permission to the server's own address is refused ({})", said(&r))));
                }
                let tid = cl.new_tid();
                let probe = Message::binding_request(tid).encode(true);
                cl.send(c.server, &probe).map_err(io)?;
                cl.socket.set_read_timeout(Some(Duration::from_millis(150))).map_err(io)?;
                match cl.recv() {
                    Ok(Received::Data { peer, .. }) if peer == c.server => Err(fail(
                        "a Data indication from the server's own address (it answered itself through the relay)",
                        "nothing: the server never relays to itself",
                    )),
                    _ => Ok(None),
                }
            }
        ),
        case!(
            "sec.5",
            Harden,
            "RFC 8489 §16.1.1 (amplification); coturn --unauthorized-ratelimit",
            "unauthenticated requests are answered at a bounded rate (a 401's amplification is measured; the limit is checked when --unauth-rate-limit names it)",
            |c: Ctx| {
                let mut cl = client(&c, 350)?;
                let tid = cl.new_tid();
                let req = cl.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
                cl.socket.send_to(&req, c.server).map_err(io)?;
                cl.socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(io)?;
                let mut b = [0u8; 1500];
                let n = cl.socket.recv(&mut b).map_err(io)?;
                let ratio = n as f64 / req.len() as f64;
                let measured = format!("a {n}-byte 401 for a {}-byte request: {ratio:.1}x amplification", req.len());
                let Some(limit) = c.unauth_rate_limit else {
                    return Ok(Some(format!("{measured}; no --unauth-rate-limit given: the limit not checked")));
                };
                // The first request took a token: wait until the bucket is full again.
                std::thread::sleep(Duration::from_millis(1100));
                let burst = 3 * limit.max(1) as usize;
                for _ in 0..burst {
                    let tid = cl.new_tid();
                    let r = cl.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
                    cl.socket.send_to(&r, c.server).map_err(io)?;
                }
                cl.socket.set_read_timeout(Some(Duration::from_millis(300))).map_err(io)?;
                let mut answers = 0;
                while cl.socket.recv(&mut b).is_ok() {
                    answers += 1;
                }
                // The burst takes a few ms: a token may be refilled meanwhile.
                if answers <= limit as usize + 1 {
                    Ok(None)
                } else {
                    Err(fail(
                        format!("{answers} answers to a burst of {burst} ({measured})"),
                        format!("at most {limit} (+1)"),
                    ))
                }
            }
        ),
        case!(
            "sec.6",
            Harden,
            "RFC 8489 §9.2 (stateless nonces); RFC 8656 §7.2",
            "unauthenticated requests make the server keep nothing: 20,000 unauthenticated Allocates from one client grow its memory by less than 1 MiB (checked with --server-pid)",
            |c: Ctx| {
                let Some(pid) = c.server_pid else {
                    return Ok(Some("no --server-pid given: the server's memory cannot be read".into()));
                };
                let mut cl = client(&c, 360)?;
                let before = rss_kib(pid)?;
                for i in 0..20_000u32 {
                    let tid = cl.new_tid();
                    let req = cl.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
                    cl.socket.send_to(&req, c.server).map_err(io)?;
                    if i % 200 == 199 {
                        // Pace the flood so the server reads it rather than the kernel dropping it.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
                let grew = rss_kib(pid)?.saturating_sub(before);
                if grew < 1024 {
                    Ok(None)
                } else {
                    Err(fail(
                        format!("its memory grew {grew} KiB"),
                        "less than 1,024 KiB: no state per unauthenticated request",
                    ))
                }
            }
        ),
        case!(
            "alloc.1",
            Must,
            "RFC 8656 §7.3",
            "Allocate succeeds with XOR-RELAYED-ADDRESS, LIFETIME and XOR-MAPPED-ADDRESS",
            |c: Ctx| {
                let mut cl = client(&c, 20)?;
                let r = cl.allocate().map_err(io)?;
                let ok = r.is_success()
                    && r.msg.attribute(tattr::XOR_RELAYED_ADDRESS).is_some()
                    && r.msg.attribute(tattr::LIFETIME).is_some()
                    && r.msg.attribute(attr::XOR_MAPPED_ADDRESS).is_some();
                if ok { Ok(None) } else { Err(fail(said(&r), "success with the three attributes")) }
            }
        ),
        case!(
            "alloc.2",
            Must,
            "RFC 8656 §7.2, RFC 8489 §6.3.1",
            "a retransmitted Allocate (same transaction) gets the same relayed address",
            |c: Ctx| {
                let mut cl = client(&c, 21)?;
                cl.refresh(600).map_err(io)?; // learn realm and nonce (437 expected)
                let tid = cl.new_tid();
                let raw = cl.encode(method::ALLOCATE, tid, &[(tattr::REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
                let a = cl.exchange(&raw, tid).map_err(io)?;
                let b = cl.exchange(&raw, tid).map_err(io)?;
                let (ra, rb) = (
                    a.msg.address(tattr::XOR_RELAYED_ADDRESS).and_then(Result::ok),
                    b.msg.address(tattr::XOR_RELAYED_ADDRESS).and_then(Result::ok),
                );
                if a.is_success() && b.is_success() && ra == rb {
                    Ok(None)
                } else {
                    Err(fail(
                        format!("{} then {} ({})", relay_words(ra), relay_words(rb), said(&b)),
                        "the same success twice",
                    ))
                }
            }
        ),
        case!(
            "alloc.3",
            Must,
            "RFC 8656 §7.2",
            "a second Allocate (new transaction) on an allocated 5-tuple gets 437",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 22)?;
                code(437, cl.allocate().map_err(io)?.error_code())
            }
        ),
        case!(
            "alloc.4",
            Must,
            "RFC 8656 §7.2, RFC 6062 §5.1",
            "REQUESTED-TRANSPORT TCP over UDP is refused: 442 (no TCP relays) or 400 (RFC 6062 servers)",
            |c: Ctx| {
                let mut cl = client(&c, 23)?;
                match cl
                    .call(method::ALLOCATE, &[(tattr::REQUESTED_TRANSPORT, vec![6, 0, 0, 0])])
                    .map_err(io)?
                    .error_code()
                {
                    Some(442) => Ok(None),
                    Some(400) => {
                        Ok(Some("400: the server relays TCP (RFC 6062), but not for a UDP control connection".into()))
                    }
                    other => Err(fail(format!("{other:?}"), "442 or 400")),
                }
            }
        ),
        case!(
            "alloc.5",
            Should,
            "RFC 8656 §7.2",
            "an unknown transport protocol gets 442 (coturn answers 400)",
            |c: Ctx| {
                let mut cl = client(&c, 24)?;
                code(
                    442,
                    cl.call(method::ALLOCATE, &[(tattr::REQUESTED_TRANSPORT, vec![99, 0, 0, 0])])
                        .map_err(io)?
                        .error_code(),
                )
            }
        ),
        case!("alloc.6", Must, "RFC 8656 §7.2", "an Allocate without REQUESTED-TRANSPORT gets 400", |c: Ctx| {
            let mut cl = client(&c, 25)?;
            code(400, cl.call(method::ALLOCATE, &[]).map_err(io)?.error_code())
        }),
        case!(
            "alloc.7",
            Must,
            "RFC 8656 §7.2",
            "a requested LIFETIME below the default is raised to it (600 s)",
            |c: Ctx| {
                let (ok, l) = allocate_for(&mut client(&c, 26)?, 30)?;
                if ok && l.is_some_and(|l| l >= 600) {
                    Ok(Some(format!("granted {} s", l.unwrap_or(0))))
                } else {
                    Err(fail(format!("{l:?}"), "at least 600"))
                }
            }
        ),
        case!("alloc.8", Should, "RFC 8656 §7.2", "a huge requested LIFETIME is capped (at most 3600 s)", |c: Ctx| {
            let (ok, l) = allocate_for(&mut client(&c, 27)?, 1_000_000)?;
            if ok && l.is_some_and(|l| l <= 3600) {
                Ok(Some(format!("granted {} s", l.unwrap_or(0))))
            } else {
                Err(fail(format!("{l:?}"), "at most 3600"))
            }
        }),
        case!(
            "alloc.9",
            Must,
            "RFC 8656 §7.2",
            "with a known per-user quota, the allocation beyond it gets 486 (INFO without --quota)",
            |c: Ctx| {
                let Some(q) = c.quota else { return Ok(Some("no --quota given: not checked".into())) };
                let mut held = Vec::new();
                for i in 0..q {
                    let (cl, _) = allocated(&c, 100 + i as u64)?;
                    held.push(cl);
                }
                let mut extra = client(&c, 100 + q as u64)?;
                code(486, extra.allocate().map_err(io)?.error_code())
            }
        ),
        case!("refresh.1", Must, "RFC 8656 §7.3", "Refresh without an allocation gets 437", |c: Ctx| {
            let mut cl = client(&c, 30)?;
            code(437, cl.refresh(600).map_err(io)?.error_code())
        }),
        case!("refresh.2", Must, "RFC 8656 §7.3", "Refresh of an allocation succeeds with a LIFETIME", |c: Ctx| {
            let (mut cl, _) = allocated(&c, 31)?;
            let r = cl.refresh(1200).map_err(io)?;
            if r.is_success() && r.msg.attribute(tattr::LIFETIME).is_some() {
                Ok(None)
            } else {
                Err(fail(said(&r), "success with LIFETIME"))
            }
        }),
        case!(
            "refresh.3",
            Must,
            "RFC 8656 §7.3",
            "Refresh to 0 deletes the allocation (gone within 2 s)",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 32)?;
                success(&cl.refresh(0).map_err(io)?, "Refresh to 0")?;
                let (_p, pa) = peer(&c)?;
                for _ in 0..20 {
                    if cl.create_permission(&[pa]).map_err(io)?.error_code().is_some() {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fail("CreatePermission still succeeds after 2 s", "an error: no allocation"))
            }
        ),
        case!(
            "refresh.4",
            Should,
            "RFC 8656 §7.3, §9",
            "after Refresh to 0, requests get 437 at once (coturn: 400 after a tick)",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 33)?;
                success(&cl.refresh(0).map_err(io)?, "Refresh to 0")?;
                let (_p, pa) = peer(&c)?;
                code(437, cl.create_permission(&[pa]).map_err(io)?.error_code())
            }
        ),
        case!("perm.1", Must, "RFC 8656 §9", "nothing is relayed to a peer without a permission", |c: Ctx| {
            let (mut cl, relay) = allocated(&c, 40)?;
            let (p, pa) = peer(&c)?;
            cl.send(pa, b"too early").map_err(io)?;
            match at_peer(&p, relay, Duration::from_millis(400)) {
                Some((_, from)) if from == relay => Err(fail("relayed", "dropped")),
                _ => Ok(None),
            }
        }),
        case!(
            "perm.2",
            Must,
            "RFC 8656 §9, §11",
            "with a permission, a Send indication reaches the peer from the relayed address",
            |c: Ctx| {
                let (mut cl, relay) = allocated(&c, 41)?;
                let (p, pa) = peer(&c)?;
                success(&cl.create_permission(&[pa]).map_err(io)?, "CreatePermission")?;
                client_to_peer(|| cl.send(pa, b"hello peer").map_err(io), &p, b"hello peer", relay)
            }
        ),
        case!(
            "perm.3",
            Must,
            "RFC 8656 §11",
            "the peer's answer comes back as a Data indication with XOR-PEER-ADDRESS",
            |c: Ctx| {
                let (mut cl, relay) = allocated(&c, 42)?;
                let (p, pa) = peer(&c)?;
                success(&cl.create_permission(&[pa]).map_err(io)?, "CreatePermission")?;
                match peer_to_client(&mut cl, &p, relay, b"hello client")? {
                    Some(Received::Data { peer, data }) if peer == pa && data == b"hello client" => Ok(None),
                    other => Err(fail(format!("{other:?}"), "a Data indication from the peer")),
                }
            }
        ),
        case!(
            "perm.4",
            Must,
            "RFC 8656 §9",
            "data from an address without a permission is dropped (permissions are per IP)",
            |c: Ctx| {
                let (mut cl, relay) = allocated(&c, 43)?;
                let (_p, pa) = peer(&c)?;
                // Another IP: a permission covers every port of its IP address.
                let stranger = c.bind("127.0.0.2:0")?;
                success(&cl.create_permission(&[pa]).map_err(io)?, "CreatePermission")?;
                stranger.send_to(b"unsolicited", relay).map_err(io)?;
                cl.socket.set_read_timeout(Some(Duration::from_millis(400))).map_err(io)?;
                match cl.recv() {
                    Err(_) => Ok(None),
                    Ok(r) => Err(fail(format!("{r:?}"), "nothing")),
                }
            }
        ),
        case!("perm.5", Must, "RFC 8656 §10", "one CreatePermission can install several peers", |c: Ctx| {
            let (mut cl, _) = allocated(&c, 44)?;
            let ((_a, aa), (_b, ba)) = (peer(&c)?, peer(&c)?);
            success(&cl.create_permission(&[aa, ba]).map_err(io)?, "CreatePermission")
        }),
        case!("perm.6", Must, "RFC 8656 §10.2", "CreatePermission without XOR-PEER-ADDRESS gets 400", |c: Ctx| {
            let (mut cl, _) = allocated(&c, 45)?;
            code(400, cl.call(method::CREATE_PERMISSION, &[]).map_err(io)?.error_code())
        }),
        case!("perm.7", Should, "RFC 8656 §10.2", "a forbidden peer (multicast) gets 403", |c: Ctx| {
            let (mut cl, _) = allocated(&c, 46)?;
            code(403, cl.create_permission(&["224.0.0.1:5000".parse().expect("literal")]).map_err(io)?.error_code())
        }),
        case!(
            "chan.1",
            Must,
            "RFC 8656 §11",
            "ChannelBind 0x4000 succeeds and ChannelData reaches the peer",
            |c: Ctx| {
                let (mut cl, relay) = allocated(&c, 50)?;
                let (p, pa) = peer(&c)?;
                success(&cl.channel_bind(0x4000, pa).map_err(io)?, "ChannelBind")?;
                client_to_peer(|| cl.channel_data(0x4000, b"via channel").map_err(io), &p, b"via channel", relay)
            }
        ),
        case!(
            "chan.2",
            Must,
            "RFC 8656 §12.5",
            "the peer's answer comes back as ChannelData on the bound channel",
            |c: Ctx| {
                let (mut cl, relay) = allocated(&c, 51)?;
                let (p, pa) = peer(&c)?;
                success(&cl.channel_bind(0x4001, pa).map_err(io)?, "ChannelBind")?;
                match peer_to_client(&mut cl, &p, relay, b"channel back")? {
                    Some(Received::Channel { channel: 0x4001, data }) if data == b"channel back" => Ok(None),
                    other => Err(fail(format!("{other:?}"), "ChannelData on 0x4001")),
                }
            }
        ),
        case!("chan.3", Must, "RFC 8656 §11.1", "a channel number below 0x4000 gets 400", |c: Ctx| {
            let (mut cl, _) = allocated(&c, 52)?;
            let (_p, pa) = peer(&c)?;
            code(400, cl.channel_bind(0x3FFF, pa).map_err(io)?.error_code())
        }),
        case!(
            "chan.4",
            Should,
            "RFC 8656 §12",
            "channel 0x5000 (reserved since RFC 8656; RFC 5766 allowed it) gets 400",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 53)?;
                let (_p, pa) = peer(&c)?;
                code(400, cl.channel_bind(0x5000, pa).map_err(io)?.error_code())
            }
        ),
        case!(
            "chan.5",
            Must,
            "RFC 8656 §11.2",
            "a channel bound to one peer cannot be bound to another (400)",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 54)?;
                let ((_a, aa), (_b, ba)) = (peer(&c)?, peer(&c)?);
                success(&cl.channel_bind(0x4002, aa).map_err(io)?, "ChannelBind")?;
                code(400, cl.channel_bind(0x4002, ba).map_err(io)?.error_code())
            }
        ),
        case!(
            "chan.6",
            Must,
            "RFC 8656 §11.2",
            "a peer bound to one channel cannot be bound to another (400)",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 55)?;
                let (_a, aa) = peer(&c)?;
                success(&cl.channel_bind(0x4003, aa).map_err(io)?, "ChannelBind")?;
                code(400, cl.channel_bind(0x4004, aa).map_err(io)?.error_code())
            }
        ),
        case!(
            "chan.7",
            Must,
            "RFC 8656 §11.2",
            "rebinding the same channel to the same peer succeeds (a refresh)",
            |c: Ctx| {
                let (mut cl, _) = allocated(&c, 56)?;
                let (_a, aa) = peer(&c)?;
                success(&cl.channel_bind(0x4005, aa).map_err(io)?, "ChannelBind")?;
                success(&cl.channel_bind(0x4005, aa).map_err(io)?, "the second ChannelBind")
            }
        ),
        case!("chan.8", Must, "RFC 8656 §11.2", "a ChannelBind installs the permission too", |c: Ctx| {
            let (mut cl, relay) = allocated(&c, 57)?;
            let (p, pa) = peer(&c)?;
            success(&cl.channel_bind(0x4006, pa).map_err(io)?, "ChannelBind")?;
            match peer_to_client(&mut cl, &p, relay, b"no CreatePermission needed")? {
                Some(Received::Channel { channel: 0x4006, .. }) => Ok(None),
                other => Err(fail(format!("{other:?}"), "ChannelData on 0x4006")),
            }
        }),
        case!(
            "rfc5780.1",
            Must,
            "RFC 5780 §7.3",
            "with an alternate address, a Binding response carries OTHER-ADDRESS (INFO when the server has none)",
            |c: Ctx| {
                let mut cl = client(&c, 60)?;
                let tid = cl.new_tid();
                let r = cl.exchange(&Message::binding_request(tid).encode(true), tid).map_err(io)?;
                let other = r.msg.address(attr::OTHER_ADDRESS).and_then(Result::ok);
                match (c.alt, other) {
                    (Some(alt), Some(o)) if o == alt => Ok(None),
                    (Some(alt), o) => Err(fail(format!("{o:?}"), format!("OTHER-ADDRESS {alt}"))),
                    (None, o) => Ok(Some(format!("no --alt-address given; OTHER-ADDRESS {o:?}"))),
                }
            }
        ),
        case!(
            "rfc5780.2",
            Must,
            "RFC 5780 §7.2",
            "CHANGE-REQUEST (IP and port) is answered from the alternate address (INFO without one)",
            |c: Ctx| {
                let Some(alt) = c.alt else { return Ok(Some("no --alt-address given: not checked".into())) };
                let mut cl = client(&c, 61)?;
                let tid = cl.new_tid();
                let mut m = Message::binding_request(tid);
                m.push(attr::CHANGE_REQUEST, vec![0, 0, 0, 0x06]);
                cl.socket.send_to(&m.encode(true), c.server).map_err(io)?;
                cl.socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(io)?;
                let mut b = [0u8; 1500];
                let (n, from) = cl.socket.recv_from(&mut b).map_err(io)?;
                let ok = Message::decode(&b[..n]).is_ok_and(|r| r.transaction_id == tid) && from == alt;
                if ok { Ok(None) } else { Err(fail(format!("an answer from {from}"), format!("an answer from {alt}"))) }
            }
        ),
    ]
}
