//! TLS for peerstorm's WebSocket shells (`wss://`), with rustls and no OpenSSL.
//!
//! The broker's server and the load generator's clients are written against tokio's readiness
//! API (`readable`, `try_read`, `writable`, `try_write`) to keep a connection's idle cost to a
//! socket and a few buffers. [`Stream`] keeps that API and puts rustls's sans-IO connection
//! between it and the socket when the connection is TLS: ciphertext moves between the socket and
//! rustls on every call, plaintext moves between rustls and the caller. A plain connection pays
//! nothing for it (`tls` is `None`).
//!
//! The crypto provider is always named (*ring*): the `rtc` stack's DTLS crate turns rustls's
//! other provider on too, and with both compiled in rustls cannot pick a default.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpStream;

pub use rustls;

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{0}: no PEM certificate in it")]
    NoCertificate(PathBuf),
    #[error("{0}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("no trusted root certificates: {0} (give --ca FILE)")]
    Roots(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.into(), source })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Pem { path: path.into(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate(path.into()));
    }
    Ok(certs)
}

/// A server configuration from a PEM certificate chain and its private key, as peer@1.0.2's
/// `--sslcert`/`--sslkey` take them. ALPN offers `http/1.1` (a WebSocket upgrade is HTTP/1.1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let chain = certificates(cert)?;
    let bytes = std::fs::read(key).map_err(|source| Error::Read { path: key.into(), source })?;
    let key_der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => Error::NoKey(key.into()),
        e => Error::Pem { path: key.into(), message: e.to_string() },
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate (not a CA) for `names` (DNS names or IP addresses), written as
/// `cert.pem` and `key.pem` in `dir`: for benchmarks and tests, which then trust exactly it.
pub fn self_signed(dir: &Path, names: &[&str]) -> Result<(PathBuf, PathBuf), Error> {
    let c = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .map_err(|e| Error::Pem { path: dir.into(), message: e.to_string() })?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write =
        |p: &Path, text: String| std::fs::write(p, text).map_err(|source| Error::Read { path: p.into(), source });
    std::fs::create_dir_all(dir).map_err(|source| Error::Read { path: dir.into(), source })?;
    write(&cert, c.cert.pem())?;
    write(&key, c.signing_key.serialize_pem())?;
    Ok((cert, key))
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// A PEM file of extra trusted roots (a private CA, a self-signed test certificate).
    pub ca: Option<PathBuf>,
    /// Accept any certificate: no check at all (`--insecure`).
    pub insecure: bool,
}

/// A client configuration: the system's trusted roots (Debian's `/etc/ssl/certs`) plus
/// `trust.ca`, or no checking with `trust.insecure`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, Error> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut config = if trust.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnything(provider()))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system root rustls cannot parse is skipped, as browsers skip it.
            let _ = roots.add(cert);
        }
        if let Some(ca) = &trust.ca {
            for cert in certificates(ca)? {
                roots.add(cert)?;
            }
        }
        if roots.is_empty() {
            let why = native.errors.first().map_or("the system has none".to_string(), ToString::to_string);
            return Err(Error::Roots(why));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a client needs to speak TLS to one server.
#[derive(Debug, Clone)]
pub struct Client {
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate must carry (the URL's host), sent as SNI.
    pub server_name: String,
}

impl Client {
    /// For `server_name`, trusting as `trust` says.
    pub fn new(trust: &Trust, server_name: impl Into<String>) -> Result<Self, Error> {
        Ok(Client { config: client_config(trust)?, server_name: server_name.into() })
    }

    /// The TLS handshake on a connected socket.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<Stream> {
        Stream::client(tcp, self.config.clone(), &self.server_name).await
    }
}

/// `--insecure`: every certificate is accepted; signatures are still checked so the handshake
/// itself is sound.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The socket as `std::io` sees it, without waiting: `WouldBlock` when it would.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TCP connection, plain or TLS, behind tokio's readiness API.
///
/// With TLS, `try_read` returns plaintext and `try_write` takes plaintext; what has to be sent
/// (handshake flights, encrypted records) leaves on every call that can write, and
/// [`Stream::writable`] / [`Stream::flush`] wait until it has. The TLS state sits behind a
/// mutex so the stream can be shared (`&Stream`) the way a `TcpStream` is; nothing contends
/// for it.
#[derive(Debug)]
pub struct Stream {
    tcp: TcpStream,
    /// Boxed: a plain connection carries one pointer for it, not rustls's state.
    tls: Option<Box<Mutex<Tls>>>,
}

/// The TLS state of a [`Stream`]. The enum itself lives in the stream's one box, so the server
/// state sits inline there (one allocation per server connection); the client state, which a
/// process has few of, is boxed once more.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Tls {
    /// rustls's buffered connection (clients: the load generator, peers, conformance).
    Buffered(Box<Connection>),
    /// A server connection on rustls's unbuffered API: the buffers are ours, and an idle
    /// connection holds none (a broker holds tens of thousands of idle peers).
    Server(ServerTls),
}

/// A server connection whose buffers are allocated only while they hold something.
struct ServerTls {
    conn: UnbufferedServerConnection,
    /// Ciphertext received that is not yet a whole record.
    incoming: Vec<u8>,
    /// Plaintext decrypted that the caller has not read yet.
    plaintext: Vec<u8>,
    /// Ciphertext waiting for the socket.
    outgoing: Vec<u8>,
    /// The peer sent close_notify.
    peer_closed: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("incoming", &self.incoming.len())
            .field("plaintext", &self.plaintext.len())
            .field("outgoing", &self.outgoing.len())
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}

/// Grows `out` by what `write` needs (it reports `InsufficientSize` with the size) and writes.
fn append_with(out: &mut Vec<u8>, mut write: impl FnMut(&mut [u8]) -> Result<usize, usize>) -> Option<usize> {
    let start = out.len();
    let mut room = 1024;
    for _ in 0..4 {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Some(n);
            }
            Err(0) => break,
            Err(need) => room = need,
        }
    }
    out.truncate(start);
    None
}

impl ServerTls {
    /// Runs the state machine over `input`: records to send into `outgoing`, application data
    /// into `plaintext`. Returns how much of `input` was used (the rest is a partial record).
    /// On an error the alert rustls queued for the peer is in `outgoing` too.
    fn process(&mut self, input: &mut [u8]) -> Result<usize, rustls::Error> {
        let r = self.process_records(input);
        if r.is_err() {
            self.encode_pending();
        }
        r
    }

    /// Encodes what rustls has queued to send (a fatal alert after an error).
    fn encode_pending(&mut self) {
        let ServerTls { conn, outgoing, .. } = self;
        for _ in 0..8 {
            match conn.process_tls_records(&mut []).state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    append_with(outgoing, |buf| match e.encode(buf) {
                        Ok(n) => Ok(n),
                        Err(EncodeError::InsufficientSize(s)) => Err(s.required_size),
                        Err(EncodeError::AlreadyEncoded) => Err(0),
                    });
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                _ => return,
            }
        }
    }

    fn process_records(&mut self, input: &mut [u8]) -> Result<usize, rustls::Error> {
        let ServerTls { conn, plaintext, outgoing, peer_closed, .. } = self;
        let mut used = 0;
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut input[used..]);
            let mut stop = false;
            match state? {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        let record = record?;
                        plaintext.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    append_with(outgoing, |buf| match e.encode(buf) {
                        Ok(n) => Ok(n),
                        Err(EncodeError::InsufficientSize(s)) => Err(s.required_size),
                        Err(EncodeError::AlreadyEncoded) => Err(0),
                    });
                }
                // The records are in `outgoing`; the stream sends them as the socket takes them.
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    *peer_closed = true;
                    stop = true;
                }
                // BlockedHandshake (more records needed), WriteTraffic (idle, handshake done).
                _ => stop = true,
            }
            used += discard;
            if stop {
                return Ok(used);
            }
        }
    }

    /// Encrypts `data` into `outgoing`; `Ok(false)` while the handshake is not done.
    fn encrypt(&mut self, data: &[u8]) -> Result<bool, rustls::Error> {
        loop {
            let ServerTls { conn, outgoing, .. } = self;
            let UnbufferedStatus { state, .. } = conn.process_tls_records(&mut []);
            match state? {
                ConnectionState::WriteTraffic(mut w) => {
                    let wrote = append_with(outgoing, |buf| match w.encrypt(data, buf) {
                        Ok(n) => Ok(n),
                        Err(EncryptError::InsufficientSize(s)) => Err(s.required_size),
                        Err(EncryptError::EncryptExhausted) => Err(0),
                    });
                    return if wrote.is_some() { Ok(true) } else { Err(rustls::Error::EncryptError) };
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    append_with(outgoing, |buf| match e.encode(buf) {
                        Ok(n) => Ok(n),
                        Err(EncodeError::InsufficientSize(s)) => Err(s.required_size),
                        Err(EncodeError::AlreadyEncoded) => Err(0),
                    });
                }
                ConnectionState::TransmitTlsData(t) => t.done(),
                _ => return Ok(false),
            }
        }
    }

    /// Sends `outgoing` as far as the socket takes it. `Ok(true)`: nothing is left.
    fn push(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        let mut sent = 0;
        let result = loop {
            if sent == self.outgoing.len() {
                break Ok(true);
            }
            match tcp.try_write(&self.outgoing[sent..]) {
                Ok(0) => break Err(io::Error::new(io::ErrorKind::WriteZero, "the connection is closed")),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        self.outgoing.drain(..sent);
        if self.outgoing.is_empty() {
            // Hold no memory while idle.
            self.outgoing = Vec::new();
        }
        result
    }

    /// Queues close_notify.
    fn close(&mut self) {
        let ServerTls { conn, outgoing, .. } = self;
        if let Ok(ConnectionState::WriteTraffic(mut w)) = conn.process_tls_records(&mut []).state {
            append_with(outgoing, |buf| match w.queue_close_notify(buf) {
                Ok(n) => Ok(n),
                Err(EncryptError::InsufficientSize(s)) => Err(s.required_size),
                Err(EncryptError::EncryptExhausted) => Err(0),
            });
        }
    }
}

/// Sends what a buffered connection has queued, without waiting. `Ok(true)`: nothing is left.
fn push_buffered(c: &mut Connection, tcp: &TcpStream) -> io::Result<bool> {
    while c.wants_write() {
        match c.write_tls(&mut NonBlocking(tcp)) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the connection is closed")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl Tls {
    fn wants_write(&self) -> bool {
        match self {
            Tls::Buffered(c) => c.wants_write(),
            Tls::Server(s) => !s.outgoing.is_empty(),
        }
    }

    /// Sends what is queued, without waiting. `Ok(true)`: nothing is left.
    fn push(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        match self {
            Tls::Buffered(c) => push_buffered(c, tcp),
            Tls::Server(s) => s.push(tcp),
        }
    }

    /// Plaintext is waiting, or the peer closed: a read would not block.
    fn readable_now(&mut self) -> io::Result<bool> {
        match self {
            Tls::Buffered(c) => {
                let state = c.process_new_packets().map_err(tls_error)?;
                Ok(state.plaintext_bytes_to_read() > 0 || state.peer_has_closed())
            }
            Tls::Server(s) => Ok(!s.plaintext.is_empty() || s.peer_closed),
        }
    }

    fn try_read(&mut self, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Tls::Buffered(c) => loop {
                match c.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                match c.read_tls(&mut NonBlocking(tcp)) {
                    Ok(0) => return Ok(0),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
                if let Err(e) = c.process_new_packets() {
                    let _ = push_buffered(c, tcp);
                    return Err(tls_error(e));
                }
                // Handshake flights and alerts leave as soon as they are made.
                push_buffered(c, tcp)?;
            },
            Tls::Server(s) => loop {
                if !s.plaintext.is_empty() {
                    let n = buf.len().min(s.plaintext.len());
                    buf[..n].copy_from_slice(&s.plaintext[..n]);
                    s.plaintext.drain(..n);
                    if s.plaintext.is_empty() {
                        s.plaintext = Vec::new();
                    }
                    return Ok(n);
                }
                if s.peer_closed {
                    return Ok(0);
                }
                let mut scratch = [0u8; 16 << 10];
                let n = match tcp.try_read(&mut scratch) {
                    Ok(0) => return Ok(0),
                    Ok(n) => n,
                    Err(e) => return Err(e),
                };
                if s.incoming.is_empty() {
                    // The usual case: whole records straight from the stack; only a trailing
                    // partial record is kept.
                    let used = match s.process(&mut scratch[..n]) {
                        Ok(used) => used,
                        Err(e) => {
                            let _ = s.push(tcp);
                            return Err(tls_error(e));
                        }
                    };
                    s.incoming.extend_from_slice(&scratch[used..n]);
                } else {
                    let mut incoming = std::mem::take(&mut s.incoming);
                    incoming.extend_from_slice(&scratch[..n]);
                    let used = match s.process(&mut incoming) {
                        Ok(used) => used,
                        Err(e) => {
                            let _ = s.push(tcp);
                            return Err(tls_error(e));
                        }
                    };
                    incoming.drain(..used);
                    s.incoming = if incoming.is_empty() { Vec::new() } else { incoming };
                }
                if s.incoming.len() > 1 << 20 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "a TLS record over 1 MiB"));
                }
                s.push(tcp)?;
            },
        }
    }

    fn try_write(&mut self, tcp: &TcpStream, data: &[u8]) -> io::Result<usize> {
        if !self.push(tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = match self {
            Tls::Buffered(c) => c.writer().write(data)?,
            Tls::Server(s) => {
                if !s.encrypt(data).map_err(tls_error)? {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "written before the TLS handshake completed",
                    ));
                }
                data.len()
            }
        };
        self.push(tcp)?;
        Ok(n)
    }

    fn close(&mut self, tcp: &TcpStream) {
        match self {
            Tls::Buffered(c) => c.send_close_notify(),
            Tls::Server(s) => s.close(),
        }
        let _ = self.push(tcp);
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    let text = match &e {
        rustls::Error::InvalidMessage(_) => {
            format!("{e}: the other side does not speak TLS (a plain ws:// server, or plain http://?)")
        }
        rustls::Error::InvalidCertificate(c) if format!("{c:?}").contains("CaUsedAsEndEntity") => format!(
            "{e}: the server's certificate is a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by default), which may not be a server's own; make it with -addext basicConstraints=critical,CA:FALSE, or skip the check with --insecure"
        ),
        rustls::Error::InvalidCertificate(_) => format!(
            "the server's certificate is not trusted ({e}): trust it with --ca FILE (or `ca` in the scenario), or skip the check with --insecure"
        ),
        _ => e.to_string(),
    };
    io::Error::new(io::ErrorKind::InvalidData, text)
}

impl Stream {
    /// A plain TCP connection.
    pub fn plain(tcp: TcpStream) -> Self {
        Stream { tcp, tls: None }
    }

    /// The server side of a TLS connection; the handshake happens as the connection is read.
    pub fn server(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let tls =
            ServerTls { conn, incoming: Vec::new(), plaintext: Vec::new(), outgoing: Vec::new(), peer_closed: false };
        Ok(Stream { tcp, tls: Some(Box::new(Mutex::new(Tls::Server(tls)))) })
    }

    /// The client side of a TLS connection to `server_name`, handshake done (so a bad
    /// certificate is an error here, not a silent close later).
    pub async fn client(tcp: TcpStream, config: Arc<ClientConfig>, server_name: &str) -> io::Result<Self> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{server_name:?}: {e}")))?;
        let conn = ClientConnection::new(config, name).map_err(tls_error)?;
        let s = Stream { tcp, tls: Some(Box::new(Mutex::new(Tls::Buffered(Box::new(conn.into()))))) };
        loop {
            s.flush().await?;
            if !s.lock().is_some_and(|t| matches!(&*t, Tls::Buffered(c) if c.is_handshaking())) {
                return Ok(s);
            }
            s.tcp.readable().await?;
            let mut guard = s.lock().expect("a TLS stream");
            let Tls::Buffered(c) = &mut *guard else { unreachable!("a client is buffered") };
            match c.read_tls(&mut NonBlocking(&s.tcp)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the TLS handshake (a plain ws:// server?)",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = c.process_new_packets() {
                // Tell the server why (the alert rustls queued), then give up.
                let _ = c.write_tls(&mut NonBlocking(&s.tcp));
                return Err(tls_error(e));
            }
        }
    }

    fn lock(&self) -> Option<MutexGuard<'_, Tls>> {
        self.tls.as_ref().map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether this connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TCP socket (for its address and socket options; never read or write it directly).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Whether TLS records are waiting to be sent.
    pub fn wants_write(&self) -> bool {
        self.lock().is_some_and(|c| c.wants_write())
    }

    /// Waits until everything queued (TLS records) has been handed to the socket.
    pub async fn flush(&self) -> io::Result<()> {
        loop {
            let done = match self.lock() {
                None => true,
                Some(mut c) => c.push(&self.tcp)?,
            };
            if done {
                return Ok(());
            }
            self.tcp.writable().await?;
        }
    }

    /// Waits until [`Stream::try_read`] may have something: plaintext rustls already holds, or
    /// bytes on the socket. Sends queued TLS records meanwhile.
    pub async fn readable(&self) -> io::Result<()> {
        loop {
            let pending_write = match self.lock() {
                None => false,
                Some(mut c) => {
                    if c.readable_now()? {
                        return Ok(());
                    }
                    !c.push(&self.tcp)?
                }
            };
            if !pending_write {
                return self.tcp.readable().await;
            }
            tokio::select! {
                r = self.tcp.readable() => return r,
                w = self.tcp.writable() => w?,
            }
        }
    }

    /// Waits until [`Stream::try_write`] can take bytes: with TLS, once the records already
    /// queued have been sent.
    pub async fn writable(&self) -> io::Result<()> {
        self.flush().await?;
        self.tcp.writable().await
    }

    /// Reads what is there without waiting (`WouldBlock` when nothing is); `Ok(0)` is the end
    /// of the stream.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.lock() {
            None => self.tcp.try_read(buf),
            Some(mut c) => c.try_read(&self.tcp, buf),
        }
    }

    /// [`Stream::try_read`] appending to `buf` (reserve capacity first).
    pub fn try_read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.try_read_buf(buf);
        }
        let start = buf.len();
        buf.resize(buf.capacity().max(start + 1024), 0);
        let r = self.try_read(&mut buf[start..]);
        buf.truncate(start + *r.as_ref().unwrap_or(&0));
        r
    }

    /// Writes without waiting; `WouldBlock` when it would. With TLS every byte taken is
    /// encrypted and queued, and as much as the socket takes is sent; the rest leaves on the
    /// next call or [`Stream::writable`]/[`Stream::flush`]. Nothing is taken while earlier
    /// records are still queued, so the queue stays one write deep.
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self.lock() {
            None => self.tcp.try_write(data),
            Some(mut c) => c.try_write(&self.tcp, data),
        }
    }

    /// Sends TLS's close_notify (a no-op on a plain stream), without waiting.
    pub fn close(&self) {
        if let Some(mut c) = self.lock() {
            c.close(&self.tcp);
        }
    }
}

/// For callers written against `AsyncRead`/`AsyncWrite` (the conformance client): the same
/// stream through tokio's poll interface.
impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        loop {
            if self.wants_write() {
                // Queued records (a handshake flight) must leave for an answer to come.
                if let Poll::Ready(Err(e)) = self.tcp.poll_write_ready(cx) {
                    return Poll::Ready(Err(e));
                }
                if let Some(mut c) = self.lock() {
                    c.push(&self.tcp)?;
                }
            }
            match self.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            std::task::ready!(self.tcp.poll_read_ready(cx))?;
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        loop {
            match self.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return std::task::Poll::Ready(r),
            }
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        loop {
            let done = match self.lock() {
                None => true,
                Some(mut c) => c.push(&self.tcp)?,
            };
            if done {
                return std::task::Poll::Ready(Ok(()));
            }
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.close();
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
    fn cert(dir: &Path) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("peerstorm-tls-{}-{name}", std::process::id()))
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    async fn read_exact(s: &Stream, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < n {
            s.readable().await?;
            match s.try_read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn write_all(s: &Stream, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            s.writable().await?;
            match s.try_write(b) {
                Ok(k) => b = &b[k..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        s.flush().await
    }

    #[tokio::test]
    async fn a_megabyte_each_way_through_tls_with_a_trusted_ca() {
        let d = dir("each-way");
        let (cert, key) = cert(&d);
        let server_cfg = server_config(&cert, &key).unwrap();
        let client_cfg = client_config(&Trust { ca: Some(cert), insecure: false }).unwrap();
        let (c, s) = pair().await;
        let server = tokio::spawn(async move {
            let s = Stream::server(s, server_cfg).unwrap();
            let got = read_exact(&s, 1 << 20).await.unwrap();
            write_all(&s, &got).await.unwrap();
        });
        let c = Stream::client(c, client_cfg, "localhost").await.unwrap();
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        // Written and read at once: neither side waits for the other to drain first.
        let (w, r) = tokio::join!(write_all(&c, &data), read_exact(&c, data.len()));
        w.unwrap();
        assert_eq!(r.unwrap(), data, "echoed byte for byte");
        server.await.unwrap();
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_clear_error_unless_insecure() {
        let d = dir("untrusted");
        let (cert, key) = cert(&d);
        let server_cfg = server_config(&cert, &key).unwrap();
        for insecure in [false, true] {
            let (c, s) = pair().await;
            let cfg = server_cfg.clone();
            let server = tokio::spawn(async move {
                let s = Stream::server(s, cfg).unwrap();
                let _ = read_exact(&s, 1).await;
            });
            let r = Stream::client(c, client_config(&Trust { ca: None, insecure }).unwrap(), "localhost").await;
            if insecure {
                let c = r.unwrap();
                write_all(&c, b"x").await.unwrap();
            } else {
                let e = r.unwrap_err().to_string();
                assert!(e.contains("certificate") && e.contains("--ca FILE"), "{e}");
            }
            server.await.unwrap();
        }
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn a_plain_server_reached_with_tls_is_named_not_waited_on() {
        // A plain HTTP server answers the ClientHello with an HTTP error and closes.
        let (c, s) = pair().await;
        tokio::spawn(async move {
            let s = Stream::plain(s);
            let _ = read_exact(&s, 5).await;
            write_all(&s, b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n").await.unwrap();
        });
        let cfg = client_config(&Trust { ca: None, insecure: true }).unwrap();
        let e = Stream::client(c, cfg, "localhost").await.unwrap_err().to_string();
        assert!(e.contains("does not speak TLS") || e.contains("plain ws://"), "{e}");
    }

    #[tokio::test]
    async fn async_read_and_write_speak_through_tls_too() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let d = dir("async");
        let (cert, key) = cert(&d);
        let server_cfg = server_config(&cert, &key).unwrap();
        let client_cfg = client_config(&Trust { ca: Some(cert), insecure: false }).unwrap();
        let (c, s) = pair().await;
        let server = tokio::spawn(async move {
            let mut s = Stream::server(s, server_cfg).unwrap();
            let mut got = [0u8; 5];
            s.read_exact(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
            s.shutdown().await.unwrap();
        });
        let mut c = Stream::client(c, client_cfg, "localhost").await.unwrap();
        c.write_all(b"hello").await.unwrap();
        c.flush().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello", "echoed, then a clean close_notify ends the stream");
        server.await.unwrap();
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn bad_pem_files_name_themselves() {
        let d = dir("pem");
        std::fs::create_dir_all(&d).unwrap();
        let empty = d.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let (cert, _) = cert(&d);
        assert!(matches!(server_config(&empty, &empty), Err(Error::NoCertificate(_))));
        let e = server_config(&cert, &empty).unwrap_err();
        assert!(matches!(e, Error::NoKey(_)), "{e}");
        let missing = d.join("missing.pem");
        let e = server_config(&missing, &missing).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        std::fs::remove_dir_all(&d).ok();
    }
}
