//! The broker's state machine: registrations, relay, queues, expiry, liveness. Sans-IO: it takes
//! `now` and what arrived on a connection, and leaves frames to send and connections to close in
//! an output queue ([`Broker::poll_output`]); [`Broker::poll_timeout`] says when it next needs
//! [`Broker::handle_timeout`]. Drain the outputs after every `handle_*` call.
//!
//! Behaviour follows `peer@1.0.2` as `docs/protocol.md` records it, with the
//! deviations listed in `crates/broker/README.md` (never the reference's failures).

use crate::config::Config;
use crate::metrics::{Metrics, Rejection};
use peerstorm_model::peerjs::payload::{is_valid_peer_id, messages};
use peerstorm_model::peerjs::{Frame, FrameRef, MessageType};
use peerstorm_model::rng::Rng;
use rustc_hash::FxHashMap;
use std::borrow::Borrow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Instant;

/// A connection, numbered by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A peer ID as a client registered it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(Box<str>);

impl PeerId {
    pub fn new(s: &str) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for PeerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a text frame on a connection.
    Send { conn: ConnId, text: String },
    /// Close a connection after what was sent before; `code: None` sends a close frame with no
    /// status, which the client sees as 1005, as the reference does.
    Close { conn: ConnId, code: Option<u16> },
}

/// An output borrowed from the broker's output buffer (see [`Broker::drain_outputs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputRef<'a> {
    Send { conn: ConnId, text: &'a str },
    Close { conn: ConnId, code: Option<u16> },
}

/// An output waiting in the queue; texts live in one arena so relaying allocates nothing.
#[derive(Debug)]
enum Pending {
    Send { conn: ConnId, start: usize, end: usize },
    Close { conn: ConnId, code: Option<u16> },
}

/// The WebSocket query parameters the handshake reads (`URLSearchParams` semantics: later
/// duplicates win; empty counts as missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectParams {
    pub id: Option<String>,
    pub token: Option<String>,
    pub key: Option<String>,
}

impl ConnectParams {
    pub fn from_query(query: &str) -> Self {
        let mut p = Self::default();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = Some(url_decode(v)).filter(|v| !v.is_empty());
            match url_decode(k).as_str() {
                "id" => p.id = v,
                "token" => p.token = v,
                "key" => p.key = v,
                _ => {}
            }
        }
        p
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a bad escape is
/// kept as it is, as `URLSearchParams` does.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
struct Client {
    id: PeerId,
    token: Box<str>,
    conn: ConnId,
    last_ping: Instant,
    serial: u64,
}

#[derive(Debug)]
struct Conn {
    /// The ID this socket connected as (the `src` of everything it sends).
    peer: Option<PeerId>,
    /// The registration it is bound to: (slot, serial). It may have been deregistered since.
    client: Option<(u32, u64)>,
    tokens: f64,
    refilled: Instant,
    last_rate_error: Option<Instant>,
}

#[derive(Debug)]
struct Queued {
    src: PeerId,
    dst: PeerId,
    text: String,
}

#[derive(Debug)]
struct Queue {
    last_read_at: Instant,
    msgs: Vec<Queued>,
    /// The bytes of the queued texts.
    bytes: usize,
}

/// The broker core.
#[derive(Debug)]
pub struct Broker {
    cfg: Config,
    rng: Rng,
    conns: FxHashMap<ConnId, Conn>,
    slots: Vec<Option<Client>>,
    free: Vec<u32>,
    by_id: FxHashMap<PeerId, u32>,
    queues: BTreeMap<PeerId, Queue>,
    queued_now: usize,
    queued_bytes: usize,
    issued: FxHashMap<Box<str>, Instant>,
    /// Hardened: IDs whose connection was lost, held for their token until the instant.
    reserved: FxHashMap<PeerId, (Box<str>, Instant)>,
    out: VecDeque<Pending>,
    arena: String,
    next_check: Instant,
    next_cleanup: Instant,
    serial: u64,
    metrics: Metrics,
}

impl Broker {
    /// A broker started at `now`; `seed` drives the IDs `GET /<key>/id` hands out.
    pub fn new(cfg: Config, now: Instant, seed: u64) -> Self {
        Self {
            next_check: now + cfg.check_interval,
            next_cleanup: now + cfg.cleanup_interval,
            cfg,
            rng: Rng::seed(seed),
            conns: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
            queues: BTreeMap::new(),
            queued_now: 0,
            queued_bytes: 0,
            issued: FxHashMap::default(),
            reserved: FxHashMap::default(),
            out: VecDeque::new(),
            arena: String::new(),
            serial: 0,
            metrics: Metrics::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The Prometheus text for `GET /metrics`.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self.by_id.len(), self.conns.len(), self.queued_now)
    }

    pub fn connected_peers(&self) -> usize {
        self.by_id.len()
    }

    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    pub fn queued(&self) -> usize {
        self.queued_now
    }

    pub fn is_registered(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        let o = match self.out.pop_front()? {
            Pending::Send { conn, start, end } => Output::Send { conn, text: self.arena[start..end].to_string() },
            Pending::Close { conn, code } => Output::Close { conn, code },
        };
        if self.out.is_empty() {
            self.clear_arena();
        }
        Some(o)
    }

    /// Hands every pending output to `f` without copying, in order, and empties the queue. The
    /// allocation-free form of [`Broker::poll_output`].
    pub fn drain_outputs(&mut self, mut f: impl FnMut(OutputRef<'_>)) {
        for p in self.out.drain(..) {
            f(match p {
                Pending::Send { conn, start, end } => OutputRef::Send { conn, text: &self.arena[start..end] },
                Pending::Close { conn, code } => OutputRef::Close { conn, code },
            });
        }
        self.clear_arena();
    }

    fn clear_arena(&mut self) {
        self.arena.clear();
        if self.arena.capacity() > 1 << 20 {
            self.arena.shrink_to(64 << 10);
        }
    }

    fn close(&mut self, conn: ConnId, code: Option<u16>) {
        self.out.push_back(Pending::Close { conn, code });
    }

    /// When [`Broker::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Instant {
        self.next_check.min(self.next_cleanup)
    }

    fn send(&mut self, conn: ConnId, text: &str) {
        self.send_with(conn, |out| out.push_str(text));
    }

    fn send_with(&mut self, conn: ConnId, write: impl FnOnce(&mut String)) {
        let start = self.arena.len();
        write(&mut self.arena);
        self.out.push_back(Pending::Send { conn, start, end: self.arena.len() });
    }

    fn error_and_close(&mut self, conn: ConnId, msg: &str, why: Rejection) {
        self.metrics.reject(why);
        self.send(conn, &Frame::error(msg).to_client_json());
        self.close(conn, None);
    }

    fn error(&mut self, conn: ConnId, msg: &str, why: Rejection) {
        self.metrics.reject(why);
        self.send(conn, &Frame::error(msg).to_client_json());
    }

    fn hardened(&self) -> bool {
        self.cfg.hardening.is_some()
    }

    fn client(&self, key: Option<(u32, u64)>) -> Option<&Client> {
        let (slot, serial) = key?;
        self.slots.get(slot as usize)?.as_ref().filter(|c| c.serial == serial)
    }

    /// A WebSocket completed its upgrade with these query parameters (protocol.md §1.1, in order).
    pub fn handle_connect(&mut self, now: Instant, conn: ConnId, params: &ConnectParams) {
        self.metrics.connections_total += 1;
        let burst = self.cfg.hardening.as_ref().map_or(0, |h| h.rate_burst);
        self.conns.insert(
            conn,
            Conn { peer: None, client: None, tokens: f64::from(burst), refilled: now, last_rate_error: None },
        );
        let (Some(id), Some(token), Some(key)) = (&params.id, &params.token, &params.key) else {
            return self.error_and_close(conn, messages::NO_ID_TOKEN_OR_KEY, Rejection::MissingParams);
        };
        if *key != self.cfg.key {
            return self.error_and_close(conn, messages::INVALID_KEY, Rejection::InvalidKey);
        }
        if let Some(h) = &self.cfg.hardening
            && (id.len() > h.max_id_len || !is_valid_peer_id(id))
        {
            return self.error_and_close(conn, "Invalid id", Rejection::InvalidId);
        }
        if let Some(&slot) = self.by_id.get(id.as_str()) {
            let c = self.slots[slot as usize].as_mut().expect("by_id points at a live slot");
            if *c.token != **token {
                self.metrics.reject(Rejection::IdTaken);
                self.send(conn, &Frame::id_taken().to_client_json());
                self.close(conn, None);
                return;
            }
            // Same token: this socket takes the registration over. No OPEN (protocol.md §1.1; PR #462).
            let old = std::mem::replace(&mut c.conn, conn);
            let key = (slot, c.serial);
            // Hardened: the socket it took over from is closed, not left open and detached (a
            // client reconnecting in a loop left hundreds). Its close cannot touch the
            // registration: that now names this socket.
            if self.cfg.hardening.is_some() && old != conn {
                self.close(old, None);
            }
            let c = self.conns.get_mut(&conn).expect("inserted above");
            c.peer = Some(PeerId::new(id));
            c.client = Some(key);
            self.replay_queue(id);
            return;
        }
        if let Some((owner, until)) = self.reserved.get(id.as_str()) {
            if *until > now && **owner != **token {
                self.metrics.reject(Rejection::IdReserved);
                self.send(conn, &Frame::id_taken().to_client_json());
                self.close(conn, None);
                return;
            }
            self.reserved.remove(id.as_str());
        }
        if self.by_id.len() >= self.cfg.concurrent_limit {
            return self.error_and_close(conn, messages::CONCURRENT_LIMIT, Rejection::ConcurrentLimit);
        }
        if let Some(h) = &self.cfg.hardening
            && h.server_issued_ids
        {
            match self.issued.remove(id.as_str()) {
                Some(expiry) if expiry > now => {}
                _ => return self.error_and_close(conn, "ID was not issued by this server", Rejection::NotIssued),
            }
        }
        self.serial += 1;
        let client =
            Client { id: PeerId::new(id), token: token.as_str().into(), conn, last_ping: now, serial: self.serial };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(client);
                s
            }
            None => {
                self.slots.push(Some(client));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(PeerId::new(id), slot);
        let c = self.conns.get_mut(&conn).expect("inserted above");
        c.peer = Some(PeerId::new(id));
        c.client = Some((slot, self.serial));
        self.metrics.registered_total += 1;
        self.send(conn, r#"{"type":"OPEN"}"#);
        self.replay_queue(id);
    }

    /// Removes `id`'s queue and takes it off the counts.
    fn take_queue(&mut self, id: &str) -> Option<Queue> {
        let q = self.queues.remove(id)?;
        self.queued_now -= q.msgs.len();
        self.queued_bytes -= q.bytes;
        Some(q)
    }

    /// Bytes held in queues for offline destinations.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    fn replay_queue(&mut self, id: &str) {
        if let Some(q) = self.take_queue(id) {
            let conn = self.by_id.get(id).and_then(|&s| self.slots[s as usize].as_ref()).map(|c| c.conn);
            for m in q.msgs {
                if let Some(conn) = conn {
                    self.metrics.delivered_from_queue += 1;
                    self.send(conn, &m.text);
                }
            }
        }
    }

    /// A binary WebSocket message: decoded as UTF-8 JSON, as the reference does.
    pub fn handle_binary(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.handle_text(now, conn, text),
            Err(_) => self.malformed(conn, "not UTF-8"),
        }
    }

    fn malformed(&mut self, conn: ConnId, why: &str) {
        if self.hardened() {
            self.error(conn, &format!("Invalid message: {why}"), Rejection::Malformed);
        } else {
            // The reference drops it (with an error listener) or wedges the socket (the CLI):
            // we drop it and keep the socket working.
            self.metrics.reject(Rejection::Malformed);
        }
    }

    fn rate_limited(&mut self, now: Instant, conn: ConnId) -> bool {
        let Some(h) = &self.cfg.hardening else { return false };
        let (rate, burst) = (f64::from(h.rate_per_sec), f64::from(h.rate_burst));
        let Some(c) = self.conns.get_mut(&conn) else { return true };
        let dt = now.saturating_duration_since(c.refilled).as_secs_f64();
        c.tokens = (c.tokens + dt * rate).min(burst);
        c.refilled = now;
        if c.tokens >= 1.0 {
            c.tokens -= 1.0;
            return false;
        }
        // One ERROR a second at most, so the answer cannot become the flood.
        let tell = c.last_rate_error.is_none_or(|t| now.saturating_duration_since(t).as_secs() >= 1);
        if tell {
            c.last_rate_error = Some(now);
            self.error(conn, "Rate limit exceeded", Rejection::RateLimited);
        } else {
            self.metrics.reject(Rejection::RateLimited);
        }
        true
    }

    /// A ping from a connection: hardened, it counts against the client's frame rate like any
    /// frame, and a client over its rate gets no pong. True when the shell should answer it.
    pub fn handle_ping(&mut self, now: Instant, conn: ConnId) -> bool {
        !self.rate_limited(now, conn)
    }

    /// A text message from a connection.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        let Some(c) = self.conns.get(&conn) else { return };
        let (Some(src), client) = (c.peer.clone(), c.client) else { return };
        if self.rate_limited(now, conn) {
            return;
        }
        let frame = match FrameRef::parse(text) {
            Ok(f) => f,
            Err(e) => return self.malformed(conn, &e.to_string()),
        };
        let Some(kind) = frame.kind.clone() else {
            return self.metrics.reject(Rejection::UnknownType);
        };
        match kind {
            MessageType::Heartbeat => {
                if let Some((slot, serial)) = client
                    && let Some(c) = self.slots[slot as usize].as_mut().filter(|c| c.serial == serial)
                {
                    c.last_ping = now;
                }
            }
            MessageType::Leave | MessageType::Expire if self.hardened() => {
                self.error(conn, "LEAVE and EXPIRE may not be sent by clients", Rejection::ForgedControl);
            }
            MessageType::Offer
            | MessageType::Answer
            | MessageType::Candidate
            | MessageType::Leave
            | MessageType::Expire => {
                // The reference rebuilds the frame as {type, src, dst, payload} with src forced
                // (unless deliberately broken for the conformance self-test).
                let written = match frame.src.as_deref() {
                    Some(forged) if self.cfg.trust_client_src => forged,
                    _ => src.as_str(),
                };
                let body = Body::Frame { frame: &frame, src: written };
                let msg = Relayed { kind: &kind, src: &src, dst: frame.dst.as_deref(), body };
                self.relay(now, msg, Some(conn), client);
            }
            _ => self.metrics.reject(Rejection::UnknownType),
        }
    }

    /// The transmission handler of the reference: deliver, queue, or drop.
    fn relay(&mut self, now: Instant, msg: Relayed<'_>, from: Option<ConnId>, from_client: Option<(u32, u64)>) {
        let Relayed { kind, src, dst, body } = msg;
        let Some(dst) = dst else {
            if *kind == MessageType::Leave {
                // LEAVE without dst deregisters the sender, but only its own registration: the
                // reference removes whoever holds the ID (protocol.md §4.6, the eviction primitive).
                if let Some(&slot) = self.by_id.get(src.as_str())
                    && from_client.is_some_and(|(s, serial)| s == slot && self.client(Some((s, serial))).is_some())
                {
                    self.deregister(slot);
                }
            } else {
                self.metrics.reject(Rejection::NoDestination);
            }
            return;
        };
        if let Some(&slot) = self.by_id.get(dst) {
            let to = self.slots[slot as usize].as_ref().expect("by_id points at a live slot").conn;
            *self.metrics.relayed.entry(static_name(kind)).or_default() += 1;
            self.send_with(to, |out| body.write(out));
            return;
        }
        if !kind.is_queued() {
            return;
        }
        let text = body.into_string();
        if let Some(why) = self.queue_full(dst, text.len()) {
            match from {
                Some(from) => self.error(from, &why, Rejection::QueueFull),
                // Hardened: a frame a closed socket handed back, with no one to answer: its sender
                // is told at once that the destination is gone, as the queue's expiry would tell
                // it. (An EXPIRE that cannot be queued for an offline sender is not answered.)
                None if *kind != MessageType::Expire => self.expire_now(now, src, dst),
                None => self.metrics.reject(Rejection::QueueFull),
            }
            return;
        }
        let q = self.queues.entry(PeerId::new(dst)).or_insert_with(|| Queue {
            last_read_at: now,
            msgs: Vec::new(),
            bytes: 0,
        });
        let len = text.len();
        q.bytes += len;
        q.msgs.push(Queued { src: src.clone(), dst: PeerId::new(dst), text });
        self.queued_now += 1;
        self.queued_bytes += len;
        self.metrics.queued_total += 1;
    }

    /// Hardened: why a frame of `len` bytes cannot be queued for `dst` (messages and bytes per
    /// destination and in total), or `None`.
    fn queue_full(&self, dst: &str, len: usize) -> Option<String> {
        let h = self.cfg.hardening.as_ref()?;
        let (msgs, bytes) = self.queues.get(dst).map_or((0, 0), |q| (q.msgs.len(), q.bytes));
        if msgs >= h.max_queue_per_peer {
            Some(format!("Queue for {dst} is full ({} messages)", h.max_queue_per_peer))
        } else if bytes + len > h.max_queued_bytes_per_peer {
            Some(format!("Queue for {dst} is full ({} bytes)", h.max_queued_bytes_per_peer))
        } else if self.queued_now >= h.max_queued_total || self.queued_bytes + len > h.max_queued_bytes_total {
            Some("Server message queue is full".to_string())
        } else {
            None
        }
    }

    /// Tells `src` now that its frames for `dst` will not be delivered: an EXPIRE from `dst`.
    fn expire_now(&mut self, now: Instant, src: &PeerId, dst: &str) {
        self.metrics.expire_sent += 1;
        let dst = PeerId::new(dst);
        let text = Frame::expire(dst.as_str(), src.as_str()).to_client_json();
        let msg = Relayed { kind: &MessageType::Expire, src: &dst, dst: Some(src.as_str()), body: Body::Text(text) };
        self.relay(now, msg, None, None);
    }

    fn deregister(&mut self, slot: u32) -> Option<Client> {
        let c = self.slots[slot as usize].take()?;
        if self.by_id.get(c.id.as_str()) == Some(&slot) {
            self.by_id.remove(c.id.as_str());
        }
        self.free.push(slot);
        Some(c)
    }

    /// Deregisters a client whose connection was lost (not one that left): hardened, its ID
    /// stays reserved for its token for `id_reservation`.
    fn lost(&mut self, now: Instant, slot: u32) {
        let Some(c) = self.deregister(slot) else { return };
        if let Some(h) = &self.cfg.hardening
            && !h.id_reservation.is_zero()
        {
            self.reserved.insert(c.id, (c.token, now + h.id_reservation));
        }
    }

    /// The connection is gone (close frame, EOF, or an I/O error). It deregisters its ID only if
    /// it still holds the registration: a socket replaced by a same-token takeover, or one that
    /// sent LEAVE without dst, never removes someone else's registration (protocol.md §4.6).
    pub fn handle_close(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else { return };
        if let Some((slot, serial)) = c.client
            && self.slots[slot as usize].as_ref().is_some_and(|cl| cl.serial == serial && cl.conn == conn)
        {
            self.lost(now, slot);
        }
    }

    /// Hardened: the shell is dropping `conn` because its client stopped reading (more than
    /// `max_send_buffer` bytes waiting). Counted; [`Broker::handle_close`] and
    /// [`Broker::handle_undelivered`] follow as for any lost connection.
    pub fn handle_slow_reader(&mut self, _now: Instant, conn: ConnId) {
        let _ = conn;
        self.metrics.reject(Rejection::SlowReader);
    }

    /// Frames the shell had for `conn` but could not write before it closed. The reference loses
    /// them (protocol.md §4.1.2); here they are relayed again: delivered if their peer is back (a
    /// reconnect), queued otherwise, so the sender gets its EXPIRE instead of silence.
    pub fn handle_undelivered(&mut self, now: Instant, conn: ConnId, texts: Vec<String>) {
        let _ = conn;
        // Senders whose frames no queue could take, told once each after the loop.
        let mut told: Vec<(PeerId, PeerId)> = Vec::new();
        for text in texts {
            let Ok(frame) = Frame::parse(&text) else { continue };
            let (Some(kind), Some(src)) = (frame.kind.clone(), frame.src.clone()) else { continue };
            if !kind.is_queued() {
                continue;
            }
            self.metrics.undelivered_requeued += 1;
            let dst = frame.dst.clone();
            if let Some(d) = dst.as_deref()
                && !self.by_id.contains_key(d)
                && kind != MessageType::Expire
                && self.queue_full(d, text.len()).is_some()
            {
                let pair = (PeerId::new(&src), PeerId::new(d));
                if !told.contains(&pair) {
                    told.push(pair);
                }
                continue;
            }
            let msg = Relayed { kind: &kind, src: &PeerId::new(&src), dst: dst.as_deref(), body: Body::Text(text) };
            self.relay(now, msg, None, None);
        }
        for (src, dst) in told {
            self.expire_now(now, &src, dst.as_str());
        }
    }

    /// A message over the size limit arrived on `conn`; the shell closes it with 1009. Hardened,
    /// the client is told why first.
    pub fn handle_oversize(&mut self, _now: Instant, conn: ConnId) {
        if self.hardened() {
            self.error(conn, "Message too large", Rejection::FrameTooLarge);
        } else {
            self.metrics.reject(Rejection::FrameTooLarge);
        }
    }

    /// Runs the sweeps that are due: liveness every `check_interval`, queue expiry every
    /// `cleanup_interval`, each on its own fixed cadence as the reference's timers run.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_check {
            self.check_alive(now);
            while self.next_check <= now {
                self.next_check += self.cfg.check_interval;
            }
        }
        if now >= self.next_cleanup {
            self.expire_queues(now);
            self.issued.retain(|_, exp| *exp > now);
            self.reserved.retain(|_, (_, until)| *until > now);
            while self.next_cleanup <= now {
                self.next_cleanup += self.cfg.cleanup_interval;
            }
        }
    }

    /// protocol.md §4.3: a client whose last HEARTBEAT is `alive_timeout` old is closed, its queue
    /// cleared and its ID freed. Nobody is told.
    fn check_alive(&mut self, now: Instant) {
        let timeout = self.cfg.alive_timeout;
        for slot in 0..self.slots.len() {
            let Some(c) = &self.slots[slot] else { continue };
            if now.saturating_duration_since(c.last_ping) < timeout {
                continue;
            }
            let (conn, id) = (c.conn, c.id.clone());
            self.metrics.alive_timeouts += 1;
            self.close(conn, None);
            self.take_queue(id.as_str());
            self.lost(now, slot as u32);
        }
    }

    /// protocol.md §4.2: a queue `expire_timeout` old (from its creation; reads delete it) is dropped,
    /// and each original sender still online gets one EXPIRE per (sender, destination).
    fn expire_queues(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .queues
            .iter()
            .filter(|(_, q)| now.saturating_duration_since(q.last_read_at) >= self.cfg.expire_timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for dst in due {
            let q = self.take_queue(dst.as_str()).expect("collected above");
            self.metrics.expired_queues += 1;
            let mut seen: Vec<(&PeerId, &PeerId)> = Vec::new();
            for m in &q.msgs {
                if seen.contains(&(&m.src, &m.dst)) {
                    continue;
                }
                seen.push((&m.src, &m.dst));
                self.expire_now(now, &m.src, m.dst.as_str());
            }
        }
    }

    /// `GET /<key>/id`: a random UUID not currently registered. Hardened with server-issued IDs,
    /// it is remembered as claimable for `issued_id_ttl`; `None` when `max_issued_ids` are
    /// already waiting to be claimed (the request gets 503).
    pub fn generate_id(&mut self, now: Instant) -> Option<String> {
        let mut id = self.rng.uuid_v4();
        while self.by_id.contains_key(id.as_str()) || self.reserved.contains_key(id.as_str()) {
            id = self.rng.uuid_v4();
        }
        if let Some(h) = &self.cfg.hardening
            && h.server_issued_ids
        {
            if self.issued.len() >= h.max_issued_ids {
                self.issued.retain(|_, exp| *exp > now);
                if self.issued.len() >= h.max_issued_ids {
                    self.metrics.reject(Rejection::TooManyIssuedIds);
                    return None;
                }
            }
            self.issued.insert(id.as_str().into(), now + h.issued_id_ttl);
        }
        Some(id)
    }

    /// `GET /<key>/peers`: every registered ID in registration order, when discovery is on.
    pub fn peer_ids(&self) -> Option<Vec<String>> {
        if !self.cfg.allow_discovery {
            return None;
        }
        let mut v: Vec<(u64, &str)> = self.slots.iter().flatten().map(|c| (c.serial, c.id.as_str())).collect();
        v.sort_unstable();
        Some(v.into_iter().map(|(_, id)| id.to_string()).collect())
    }
}

/// A frame on its way through the relay: its type, who sent it, where to, and what the
/// destination receives.
struct Relayed<'m> {
    kind: &'m MessageType,
    src: &'m PeerId,
    dst: Option<&'m str>,
    body: Body<'m>,
}

/// The JSON a destination receives: written from the parsed frame straight into the output
/// buffer (the hot path), or already made.
enum Body<'m> {
    Frame { frame: &'m FrameRef<'m>, src: &'m str },
    Text(String),
}

impl Body<'_> {
    fn write(&self, out: &mut String) {
        match self {
            Body::Frame { frame, src } => frame.write_client_json(src, out),
            Body::Text(t) => out.push_str(t),
        }
    }

    fn into_string(self) -> String {
        match self {
            Body::Text(t) => t,
            b @ Body::Frame { .. } => {
                let mut s = String::new();
                b.write(&mut s);
                s
            }
        }
    }
}

fn static_name(kind: &MessageType) -> &'static str {
    match kind {
        MessageType::Offer => "OFFER",
        MessageType::Answer => "ANSWER",
        MessageType::Candidate => "CANDIDATE",
        MessageType::Leave => "LEAVE",
        MessageType::Expire => "EXPIRE",
        _ => "OTHER",
    }
}
