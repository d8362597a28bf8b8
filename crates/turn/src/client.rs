//! A small TURN client: builds requests with long-term credentials (learning realm and nonce
//! from 401 and 438), over a blocking UDP socket. Used by the tests against peerstorm's server
//! and coturn, and by tools.

use crate::auth::{encode_with_integrity, long_term_key};
use crate::server::{method, tattr};
use peerstorm_model::rng::Rng;
use peerstorm_model::stun::{Class, Message, attr};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// What came back for a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub msg: Message,
    pub raw: Vec<u8>,
}

impl Reply {
    /// The ERROR-CODE number, if this is an error response.
    pub fn error_code(&self) -> Option<u16> {
        let v = self.msg.attribute(attr::ERROR_CODE)?;
        (v.len() >= 4).then(|| u16::from(v[2] & 7) * 100 + u16::from(v[3]))
    }

    pub fn is_success(&self) -> bool {
        self.msg.class == Class::Success
    }
}

/// What a client received from its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Data { peer: SocketAddr, data: Vec<u8> },
    Channel { channel: u16, data: Vec<u8> },
}

/// A TURN client over UDP.
#[derive(Debug)]
pub struct UdpClient {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    user: String,
    password: String,
    realm: Option<String>,
    nonce: Option<String>,
    rng: Rng,
    /// An Allocate succeeded and no Refresh to 0 has been answered since: dropping the client
    /// releases the allocation.
    allocated: bool,
}

impl UdpClient {
    pub fn connect(server: SocketAddr, user: &str, password: &str, seed: u64) -> io::Result<Self> {
        let socket = UdpSocket::bind(if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" })?;
        Self::with_socket(socket, server, user, password, seed)
    }

    /// A client on a socket the caller bound (and may keep a clone of, so that its port is not
    /// handed to another socket while the server still has state for this 5-tuple).
    pub fn with_socket(
        socket: UdpSocket,
        server: SocketAddr,
        user: &str,
        password: &str,
        seed: u64,
    ) -> io::Result<Self> {
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(Self {
            socket,
            server,
            user: user.into(),
            password: password.into(),
            realm: None,
            nonce: None,
            rng: Rng::seed(seed),
            allocated: false,
        })
    }

    /// Sets what the client believes the realm and nonce are (a conformance probe sends a
    /// stale nonce on purpose).
    pub fn set_credentials_state(&mut self, realm: Option<String>, nonce: Option<String>) {
        self.realm = realm;
        self.nonce = nonce;
    }

    /// The client's socket, for a caller that takes the allocation over (it is not released
    /// when the client goes).
    pub fn into_socket(mut self) -> io::Result<UdpSocket> {
        self.allocated = false;
        self.socket.try_clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound")
    }

    pub fn new_tid(&mut self) -> [u8; 12] {
        let mut t = [0u8; 12];
        self.rng.fill(&mut t);
        t
    }

    /// Encodes a request, with credentials once a realm and nonce are known.
    pub fn encode(&self, method: u16, tid: [u8; 12], attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = Message::new(method, Class::Request, tid);
        for (t, v) in attrs {
            m.push(*t, v.clone());
        }
        self.encode_message(&m, true)
    }

    /// Encodes `m` with credentials once a realm and nonce are known (USERNAME, REALM, NONCE,
    /// MESSAGE-INTEGRITY), and FINGERPRINT when asked.
    pub fn encode_message(&self, m: &Message, fingerprint: bool) -> Vec<u8> {
        let mut m = m.clone();
        match (&self.realm, &self.nonce) {
            (Some(realm), Some(nonce)) => {
                m.push(attr::USERNAME, self.user.as_bytes().to_vec());
                m.push(attr::REALM, realm.as_bytes().to_vec());
                m.push(attr::NONCE, nonce.as_bytes().to_vec());
                encode_with_integrity(&m, &long_term_key(&self.user, realm, &self.password), fingerprint)
            }
            _ => m.encode(fingerprint),
        }
    }

    /// Sends raw bytes and waits for the response with `tid` (other traffic is skipped),
    /// retransmitting the same bytes after the read timeout (500 ms by default), doubling it up
    /// to 2 s, six times at most: about 9.5 s in all (RFC 8489 §6.2.1's RTO doubling, capped),
    /// so that a server on a busy machine is not declared dead after a stall.
    pub fn exchange(&mut self, bytes: &[u8], tid: [u8; 12]) -> io::Result<Reply> {
        let base = self.base_timeout()?;
        self.exchange_within(bytes, tid, base, 6)
    }

    fn base_timeout(&self) -> io::Result<Duration> {
        Ok(self.socket.read_timeout()?.unwrap_or(Duration::from_millis(500)))
    }

    /// `exchange` with its own first wait and number of sends.
    fn exchange_within(&mut self, bytes: &[u8], tid: [u8; 12], base: Duration, tries: u32) -> io::Result<Reply> {
        let mut buf = vec![0u8; 65536];
        let mut last = io::Error::new(io::ErrorKind::TimedOut, "no response");
        let before = self.socket.read_timeout()?;
        let result = self.exchange_with(bytes, tid, base, tries, &mut buf, &mut last);
        self.socket.set_read_timeout(before)?;
        let r = result.ok_or(last)?;
        self.track(&r);
        Ok(r)
    }

    /// Notes whether this 5-tuple has an allocation, from the answers seen.
    fn track(&mut self, r: &Reply) {
        match (r.msg.method, r.msg.class) {
            (method::ALLOCATE, Class::Success) => self.allocated = true,
            (method::REFRESH, Class::Success) if r.msg.attribute(tattr::LIFETIME) == Some(&[0, 0, 0, 0][..]) => {
                self.allocated = false
            }
            _ => {}
        }
    }

    /// Deletes this client's allocation (a Refresh with LIFETIME 0), if it has one, waiting at
    /// most about a second in all: a client that goes away should not hold a relayed address,
    /// and a place in the user's quota, for the rest of the allocation's lifetime. Run on drop.
    pub fn release(&mut self) {
        if self.allocated {
            // Answered or not, there is nothing more to do: an error (437) means there was no
            // allocation after all.
            let _ = self.call_within(
                method::REFRESH,
                &[(tattr::LIFETIME, vec![0, 0, 0, 0])],
                Duration::from_millis(150),
                3,
            );
            self.allocated = false;
        }
    }

    fn exchange_with(
        &mut self,
        bytes: &[u8],
        tid: [u8; 12],
        base: Duration,
        tries: u32,
        buf: &mut [u8],
        last: &mut io::Error,
    ) -> Option<Reply> {
        for k in 0..tries {
            let wait = (base * (1 << k)).min(base.max(Duration::from_secs(2)));
            if self.socket.set_read_timeout(Some(wait)).is_err() || self.socket.send_to(bytes, self.server).is_err() {
                return None;
            }
            loop {
                match self.socket.recv_from(buf) {
                    Ok((n, _)) => {
                        if let Ok(msg) = Message::decode(&buf[..n])
                            && msg.transaction_id == tid
                        {
                            return Some(Reply { msg, raw: buf[..n].to_vec() });
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::ConnectionRefused
                        ) =>
                    {
                        *last = e;
                        break;
                    }
                    Err(e) => {
                        *last = e;
                        return None;
                    }
                }
            }
        }
        None
    }

    /// A request with credentials: a 401 or 438 teaches the realm and nonce and it is sent once
    /// more with a new transaction ID.
    pub fn call(&mut self, method: u16, attrs: &[(u16, Vec<u8>)]) -> io::Result<Reply> {
        let base = self.base_timeout()?;
        self.call_within(method, attrs, base, 6)
    }

    /// `call` with `exchange_within`'s first wait and number of sends.
    fn call_within(&mut self, method: u16, attrs: &[(u16, Vec<u8>)], base: Duration, tries: u32) -> io::Result<Reply> {
        for _ in 0..3 {
            let tid = self.new_tid();
            let bytes = self.encode(method, tid, attrs);
            let r = self.exchange_within(&bytes, tid, base, tries)?;
            match r.error_code() {
                Some(401) if self.nonce.is_none() || r.msg.attribute(attr::NONCE).is_some() && self.realm.is_none() => {
                    self.learn(&r)
                }
                Some(438) => self.learn(&r),
                _ => return Ok(r),
            }
        }
        Err(io::Error::other("no answer but challenges"))
    }

    fn learn(&mut self, r: &Reply) {
        if let Some(v) = r.msg.attribute(attr::REALM) {
            self.realm = Some(String::from_utf8_lossy(v).into_owned());
        }
        if let Some(v) = r.msg.attribute(attr::NONCE) {
            self.nonce = Some(String::from_utf8_lossy(v).into_owned());
        }
    }

    pub fn allocate(&mut self) -> io::Result<Reply> {
        self.call(method::ALLOCATE, &[(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])])
    }

    pub fn refresh(&mut self, lifetime: u32) -> io::Result<Reply> {
        self.call(method::REFRESH, &[(tattr::LIFETIME, lifetime.to_be_bytes().to_vec())])
    }

    fn peer_attr(&self, peer: SocketAddr, tid: [u8; 12]) -> Vec<u8> {
        let mut m = Message::new(0, Class::Request, tid);
        m.push_address(tattr::XOR_PEER_ADDRESS, peer);
        m.attributes.remove(0).1
    }

    /// XOR-PEER-ADDRESS values depend on the transaction ID, so these build the message
    /// themselves.
    fn call_with_peers(&mut self, method: u16, peers: &[SocketAddr], extra: &[(u16, Vec<u8>)]) -> io::Result<Reply> {
        for _ in 0..3 {
            let tid = self.new_tid();
            let mut attrs: Vec<(u16, Vec<u8>)> = extra.to_vec();
            for p in peers {
                attrs.push((tattr::XOR_PEER_ADDRESS, self.peer_attr(*p, tid)));
            }
            let bytes = self.encode(method, tid, &attrs);
            let r = self.exchange(&bytes, tid)?;
            match r.error_code() {
                Some(401) if self.realm.is_none() => self.learn(&r),
                Some(438) => self.learn(&r),
                _ => return Ok(r),
            }
        }
        Err(io::Error::other("no answer but challenges"))
    }

    pub fn create_permission(&mut self, peers: &[SocketAddr]) -> io::Result<Reply> {
        self.call_with_peers(method::CREATE_PERMISSION, peers, &[])
    }

    pub fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> io::Result<Reply> {
        let ch = vec![(channel >> 8) as u8, channel as u8, 0, 0];
        self.call_with_peers(method::CHANNEL_BIND, &[peer], &[(tattr::CHANNEL_NUMBER, ch)])
    }

    /// A Send indication.
    pub fn send(&mut self, peer: SocketAddr, data: &[u8]) -> io::Result<()> {
        let tid = self.new_tid();
        let mut m = Message::new(method::SEND, Class::Indication, tid);
        m.push_address(tattr::XOR_PEER_ADDRESS, peer);
        m.push(tattr::DATA, data.to_vec());
        self.socket.send_to(&m.encode(true), self.server).map(|_| ())
    }

    pub fn channel_data(&mut self, channel: u16, data: &[u8]) -> io::Result<()> {
        let mut v = channel.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        self.socket.send_to(&v, self.server).map(|_| ())
    }

    /// The next Data indication or ChannelData from the server (waiting up to six read
    /// timeouts).
    pub fn recv(&mut self) -> io::Result<Received> {
        let mut buf = vec![0u8; 65536];
        let mut waits = 0;
        loop {
            let (n, _) = match self.socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) && waits < 5 => {
                    waits += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let b = &buf[..n];
            if n >= 4 && (0x40..0x80).contains(&b[0]) {
                let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
                return Ok(Received::Channel {
                    channel: u16::from_be_bytes([b[0], b[1]]),
                    data: b[4..4 + len.min(n - 4)].to_vec(),
                });
            }
            if let Ok(m) = Message::decode(b)
                && m.method == method::DATA
                && m.class == Class::Indication
                && let (Some(Ok(peer)), Some(data)) = (m.address(tattr::XOR_PEER_ADDRESS), m.attribute(tattr::DATA))
            {
                return Ok(Received::Data { peer, data: data.to_vec() });
            }
        }
    }
}

impl Drop for UdpClient {
    fn drop(&mut self) {
        self.release();
    }
}
