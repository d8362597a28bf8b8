//! peerstorm patch: a DTLS server that speaks DTLS 1.3 (RFC 9147) through the `dimpl` crate, as
//! Chromium's BoringSSL does.
//!
//! rtc-dtls speaks DTLS 1.2 only. A Chromium client facing a DTLS 1.2 server sends SCTP's INIT
//! after the server's Finished reaches it, two round trips after its ClientHello; with a
//! DTLS 1.3 server it sends the INIT with its own Finished, one round trip after. This engine
//! answers in whichever version the ClientHello offers (`dimpl::Dtls::new_auto`), so a DTLS 1.2
//! client (rtc-dtls) still gets DTLS 1.2.
//!
//! Only the server role uses it: as a client, rtc-dtls with False Start already sends with its
//! Finished, and dimpl's hybrid ClientHello retransmits after a fixed 1 s where BoringSSL starts
//! at twice the ICE round-trip time.
//!
//! It is sans-IO like the rest of the stack: records in with the time, records and events out,
//! one timer. Its flights are timed as BoringSSL's are (the start RTO doubled, no jitter: a
//! patch in `patches/dimpl`), and the engine's other randomness that is not cryptographic comes
//! from a seed, so a simulated run repeats.

use crate::peer_connection::transport::dtls::fingerprint::RTCDtlsFingerprint;
use crypto::RTCCryptoProvider;
use dimpl::{Config, Dtls, DtlsCertificate, Output, SrtpProfile};
use shared::error::{Error, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many times a flight is sent again before the handshake fails; with the timer doubling
/// from 50 ms this outlasts any setup timeout, which ends a stuck handshake first, as libwebrtc's
/// connection timeouts do.
const FLIGHT_RETRIES: usize = 12;

/// What the engine produced for its owner, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dtls13Event {
    /// A datagram for the peer.
    Transmit(Vec<u8>),
    /// The handshake is complete and the peer's certificate matched its fingerprint.
    Connected(Dtls13Session),
    /// Decrypted application data (SCTP).
    ApplicationData(Vec<u8>),
    /// The peer sent `close_notify`.
    PeerClosed,
}

/// What a completed handshake negotiated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dtls13Session {
    /// "DTLS 1.3", or "DTLS 1.2" when the client offered nothing newer.
    pub(crate) version: &'static str,
    /// The SRTP profile and DTLS-SRTP keying material (RFC 5764 §4.2,
    /// `keying_material_len()` bytes); `None` when the client offered no `use_srtp`.
    pub(crate) srtp: Option<(SrtpProfile, Vec<u8>)>,
    /// The client's leaf certificate, DER.
    pub(crate) peer_certificate: Vec<u8>,
}

/// How the server is set up; kept until the first record so the retransmission timer can still
/// follow the ICE round-trip time.
#[derive(Clone)]
pub(crate) struct Dtls13Setup {
    pub(crate) certificate: DtlsCertificate,
    /// The first retransmission timer of a flight (doubled on each retransmission).
    pub(crate) initial_retransmit: Duration,
    pub(crate) rng_seed: u64,
    /// The client's fingerprints from its SDP; `None` skips the check.
    pub(crate) remote_fingerprints: Option<Vec<RTCDtlsFingerprint>>,
    pub(crate) crypto_provider: Arc<dyn RTCCryptoProvider>,
}

/// One DTLS association, server side, on the dimpl engine.
pub(crate) struct Dtls13 {
    setup: Dtls13Setup,
    /// Built when the first record arrives.
    dtls: Option<Dtls>,
    timeout: Option<Instant>,
    buf: Vec<u8>,
    peer_certificate: Option<Vec<u8>>,
    keying: Option<(Vec<u8>, SrtpProfile)>,
    connected: bool,
    reported: bool,
    /// The handshake failed (a certificate that does not match its fingerprint, a flight never
    /// answered, a fatal alert): nothing more is read, sent or timed.
    failed: bool,
}

impl Dtls13 {
    pub(crate) fn new(setup: Dtls13Setup) -> Self {
        Self {
            setup,
            dtls: None,
            timeout: None,
            buf: vec![0; 2048],
            peer_certificate: None,
            keying: None,
            connected: false,
            reported: false,
            failed: false,
        }
    }

    /// Whether the engine has taken the association (its first record arrived).
    pub(crate) fn is_engaged(&self) -> bool {
        self.dtls.is_some()
    }

    /// Sets the first retransmission timer; no effect once the handshake has begun.
    pub(crate) fn set_initial_retransmit(&mut self, rto: Duration) {
        if self.dtls.is_none() {
            self.setup.initial_retransmit = rto;
        }
    }

    fn build(&self, now: Instant) -> Result<Dtls> {
        let config = Config::builder()
            // BoringSSL as Chromium configures it asks for no cookie (no HelloVerifyRequest in
            // DTLS 1.2, no HelloRetryRequest in DTLS 1.3).
            .use_server_cookie(false)
            .require_client_certificate(true)
            .flight_start_rto(self.setup.initial_retransmit)
            .flight_rto_jitter(false)
            .flight_retries(FLIGHT_RETRIES)
            .dangerously_set_rng_seed(self.setup.rng_seed)
            .build()
            .map_err(|e| Error::Other(format!("dtls 1.3 config: {e}")))?;
        let mut dtls = Dtls::new_auto(Arc::new(config), self.setup.certificate.clone(), now);
        dtls.set_active(false);
        Ok(dtls)
    }

    /// A datagram from the client.
    pub(crate) fn read(&mut self, now: Instant, packet: &[u8]) -> Result<Vec<Dtls13Event>> {
        if self.failed {
            return Ok(vec![]);
        }
        if self.dtls.is_none() {
            self.dtls = Some(self.build(now)?);
        }
        self.step(now, |dtls| dtls.handle_packet(packet))
    }

    /// Application data for the client.
    pub(crate) fn write(&mut self, now: Instant, data: &[u8]) -> Result<Vec<Dtls13Event>> {
        if self.failed || self.dtls.is_none() {
            return Err(Error::ErrConnClosed);
        }
        self.step(now, |dtls| dtls.send_application_data(data))
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<Vec<Dtls13Event>> {
        if self.failed || self.dtls.is_none() || self.timeout.is_none_or(|at| at > now) {
            return Ok(vec![]);
        }
        self.step(now, |_| Ok(()))
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.failed { None } else { self.timeout }
    }

    /// Sends `close_notify` when connected; drops a handshake in progress.
    pub(crate) fn close(&mut self, now: Instant) -> Result<Vec<Dtls13Event>> {
        if self.failed || self.dtls.is_none() {
            return Ok(vec![]);
        }
        if !self.connected {
            self.dtls = None;
            self.timeout = None;
            return Ok(vec![]);
        }
        let events = self.step(now, Dtls::close);
        self.timeout = None;
        events
    }

    /// Runs `input` on the engine at `now` and takes what it has to say. The engine is told the
    /// time before the input (its clock) and after it (dimpl arms the timer of a flight it has
    /// just sent only then). An error fails the handshake for good: it is returned once, and the
    /// engine is never timed again.
    fn step(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Dtls) -> std::result::Result<(), dimpl::Error>,
    ) -> Result<Vec<Dtls13Event>> {
        let dtls = self.dtls.as_mut().expect("callers build the engine first");
        let outcome = dtls
            .handle_timeout(now)
            .and_then(|()| input(dtls))
            .and_then(|()| dtls.handle_timeout(now))
            .map_err(|e| Error::Other(format!("dtls: {e:?}")))
            .and_then(|()| self.drain());
        if outcome.is_err() {
            self.failed = true;
            self.timeout = None;
        }
        outcome
    }

    /// Takes everything the engine has to say, up to its timer.
    fn drain(&mut self) -> Result<Vec<Dtls13Event>> {
        let mut events = vec![];
        let dtls = self.dtls.as_mut().expect("callers build the engine first");
        loop {
            match dtls.poll_output(&mut self.buf) {
                Output::Packet(p) => events.push(Dtls13Event::Transmit(p.to_vec())),
                Output::BufferTooSmall { needed } => self.buf.resize(needed, 0),
                Output::Timeout(at) => {
                    self.timeout = Some(at);
                    break;
                }
                Output::Connected => self.connected = true,
                Output::PeerCert(der) => {
                    if let Some(fingerprints) = &self.setup.remote_fingerprints {
                        super::verify_fingerprint(
                            self.setup.crypto_provider.as_ref(),
                            fingerprints,
                            der,
                        )?;
                    }
                    self.peer_certificate = Some(der.to_vec());
                }
                Output::KeyingMaterial(material, profile) => {
                    self.keying = Some((material.to_vec(), profile));
                }
                Output::ApplicationData(data) => {
                    events.push(Dtls13Event::ApplicationData(data.to_vec()))
                }
                Output::CloseNotify => events.push(Dtls13Event::PeerClosed),
                _ => {}
            }
        }
        if self.connected && !self.reported {
            let Some(peer_certificate) = self.peer_certificate.clone() else {
                return Err(Error::ErrNonCertificate);
            };
            self.reported = true;
            let version = match dtls.protocol_version() {
                Some(dimpl::ProtocolVersion::DTLS1_3) => "DTLS 1.3",
                _ => "DTLS 1.2",
            };
            // The session goes before whatever data arrived with the last flight, as
            // rtc-dtls reports HandshakeComplete first.
            let at = events
                .iter()
                .position(|e| !matches!(e, Dtls13Event::Transmit(_)))
                .unwrap_or(events.len());
            events.insert(
                at,
                Dtls13Event::Connected(Dtls13Session {
                    version,
                    srtp: self.keying.take().map(|(material, profile)| (profile, material)),
                    peer_certificate,
                }),
            );
        }
        Ok(events)
    }
}

/// Whether `packet`, a client's DTLS datagram, is a ClientHello that offers DTLS 1.3 (`None`:
/// not a ClientHello). It offers it when its
/// `supported_versions` extension (RFC 8446 §4.2.1) lists DTLS 1.3 (0xfefc, RFC 9147 §5.3). A
/// ClientHello split over several records (a post-quantum key share does that) counts as
/// offering it: only DTLS 1.3 clients send one that large, and the engine reassembles it and
/// falls back to DTLS 1.2 itself if need be.
pub(crate) fn offers_dtls13(packet: &[u8]) -> Option<bool> {
    const HANDSHAKE: u8 = 22;
    const CLIENT_HELLO: u8 = 1;
    const SUPPORTED_VERSIONS: u16 = 43;
    const DTLS13: [u8; 2] = [0xfe, 0xfc];
    // Record header (13 bytes), then the handshake header (12 bytes).
    if packet.len() < 25 || packet[0] != HANDSHAKE || packet[13] != CLIENT_HELLO {
        return None;
    }
    let record_len = usize::from(u16::from_be_bytes([packet[11], packet[12]]));
    let record = packet.get(13..13 + record_len).filter(|r| r.len() >= 12)?;
    let be24 = |b: &[u8]| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
    let (length, offset, fragment_length) = (be24(&record[1..4]), be24(&record[6..9]), be24(&record[9..12]));
    if offset != 0 {
        // A later fragment, reordered ahead of the first: the first one will tell.
        return None;
    }
    if fragment_length != length {
        return Some(fragment_length < length);
    }
    let Some(body) = record.get(12..12 + length) else {
        return Some(false);
    };
    Some(parse_offers_dtls13(body, SUPPORTED_VERSIONS, DTLS13).unwrap_or(false))
}

/// The ClientHello body (RFC 6347 §4.2.1): version, random, session ID, cookie, cipher suites,
/// compression methods, extensions. `None` when it ends early.
fn parse_offers_dtls13(body: &[u8], supported_versions: u16, dtls13: [u8; 2]) -> Option<bool> {
    let mut at = 2 + 32;
    for length_bytes in [1, 1, 2, 1] {
        let length = match length_bytes {
            1 => usize::from(*body.get(at)?),
            _ => usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?])),
        };
        at += length_bytes + length;
    }
    let extensions_len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    let mut extensions = body.get(at + 2..at + 2 + extensions_len)?;
    while extensions.len() >= 4 {
        let kind = u16::from_be_bytes([extensions[0], extensions[1]]);
        let len = usize::from(u16::from_be_bytes([extensions[2], extensions[3]]));
        let data = extensions.get(4..4 + len)?;
        if kind == supported_versions {
            // A one-byte list length, then two bytes per version.
            let versions = data.get(1..1 + usize::from(*data.first()?))?;
            return Some(versions.chunks_exact(2).any(|v| v == dtls13));
        }
        extensions = &extensions[4 + len..];
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_connection::certificate::RTCCertificate;
    use rcgen::CertificateParams;

    struct Identity {
        certificate: DtlsCertificate,
        fingerprint: RTCDtlsFingerprint,
    }

    fn provider() -> Arc<dyn RTCCryptoProvider> {
        crypto::default_provider().expect("a built-in crypto provider is enabled for tests")
    }

    fn identity() -> Identity {
        let provider = provider();
        let cert = RTCCertificate::generate(
            provider.crypto(),
            crypto::SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["peerstorm".to_owned()]).unwrap(),
        )
        .unwrap();
        let fingerprint = cert.get_fingerprints(provider.crypto()).unwrap().remove(0);
        let private_key = cert
            .dtls_certificate
            .private_key
            .signing_key
            .to_pkcs8_der()
            .unwrap()
            .expect("the default provider's keys export");
        Identity {
            certificate: DtlsCertificate {
                certificate: cert.dtls_certificate.certificate[0].to_vec(),
                private_key: private_key.as_ref().to_vec(),
            },
            fingerprint,
        }
    }

    fn server(client_fingerprint: RTCDtlsFingerprint, initial_retransmit: Duration) -> Dtls13 {
        Dtls13::new(Dtls13Setup {
            certificate: identity().certificate,
            initial_retransmit,
            rng_seed: 7,
            remote_fingerprints: Some(vec![client_fingerprint]),
            crypto_provider: provider(),
        })
    }

    /// A DTLS client on dimpl: `dtls13` offers only DTLS 1.3, otherwise only DTLS 1.2.
    fn client(identity: &Identity, dtls13: bool, now: Instant) -> Dtls {
        let config = Arc::new(Config::builder().build().unwrap());
        let mut dtls = if dtls13 {
            Dtls::new_13(config, identity.certificate.clone(), now)
        } else {
            Dtls::new_12(config, identity.certificate.clone(), now)
        };
        dtls.set_active(true);
        dtls.handle_timeout(now).unwrap();
        dtls
    }

    #[derive(Default)]
    struct Drained {
        packets: Vec<Vec<u8>>,
        connected: bool,
        keying: Option<Vec<u8>>,
        data: Vec<Vec<u8>>,
    }

    fn drain(dtls: &mut Dtls) -> Drained {
        let mut out = Drained::default();
        let mut buf = vec![0; 4096];
        loop {
            match dtls.poll_output(&mut buf) {
                Output::Packet(p) => out.packets.push(p.to_vec()),
                Output::Connected => out.connected = true,
                Output::KeyingMaterial(k, _) => out.keying = Some(k.to_vec()),
                Output::ApplicationData(d) => out.data.push(d.to_vec()),
                Output::Timeout(_) => return out,
                _ => {}
            }
        }
    }

    fn transmits(events: &[Dtls13Event]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                Dtls13Event::Transmit(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_a_client_hello_that_lists_dtls13_offers_it() {
        let now = Instant::now();
        let id = identity();
        let hello13 = drain(&mut client(&id, true, now)).packets.remove(0);
        let hello12 = drain(&mut client(&id, false, now)).packets.remove(0);
        assert_eq!(offers_dtls13(&hello13), Some(true));
        assert_eq!(offers_dtls13(&hello12), Some(false));
        // Not a ClientHello: an application data record, a ServerHello.
        let mut data = hello12.clone();
        data[0] = 23;
        assert_eq!(offers_dtls13(&data), None);
        let mut server_hello = hello12.clone();
        server_hello[13] = 2;
        assert_eq!(offers_dtls13(&server_hello), None);
        // The first fragment of a ClientHello too large for one record.
        let mut first_fragment = hello12.clone();
        first_fragment[22..25].copy_from_slice(&[0, 0, 8]);
        assert_eq!(offers_dtls13(&first_fragment), Some(true));
        // A later fragment that overtook the first cannot tell.
        let mut later_fragment = first_fragment.clone();
        later_fragment[19..22].copy_from_slice(&[0, 0, 4]);
        assert_eq!(offers_dtls13(&later_fragment), None);
        // Cut anywhere, or with a lying length, it is never a panic.
        for packet in [&hello13, &hello12] {
            for end in 0..packet.len() {
                let _ = offers_dtls13(&packet[..end]);
            }
            for at in [11, 12, 14, 15, 16, 24, 60, 80] {
                let mut bad = packet.to_vec();
                bad[at] = 0xff;
                let _ = offers_dtls13(&bad);
            }
        }
    }

    #[test]
    fn a_dtls13_client_completes_with_srtp_keys_and_data_both_ways() {
        let mut now = Instant::now();
        let id = identity();
        let mut client = client(&id, true, now);
        let mut server = server(id.fingerprint.clone(), Duration::from_millis(50));
        let mut session = None;
        let mut client_out = drain(&mut client);
        for _ in 0..10 {
            let mut to_client = vec![];
            for p in client_out.packets.drain(..) {
                for e in server.read(now, &p).unwrap() {
                    match e {
                        Dtls13Event::Transmit(p) => to_client.push(p),
                        Dtls13Event::Connected(s) => session = Some(s),
                        other => panic!("nothing else before data: {other:?}"),
                    }
                }
            }
            for p in &to_client {
                client.handle_packet(p).unwrap();
            }
            let drained = drain(&mut client);
            client_out.packets = drained.packets;
            client_out.connected |= drained.connected;
            client_out.keying = drained.keying.or(client_out.keying);
            if session.is_some() && client_out.connected {
                break;
            }
            now += Duration::from_millis(10);
        }
        let session = session.expect("the server completed the handshake");
        assert_eq!(session.version, "DTLS 1.3");
        assert_eq!(session.peer_certificate, id.certificate.certificate);
        let (profile, keying) = session.srtp.expect("dimpl's client offers use_srtp");
        assert_eq!(keying.len(), profile.keying_material_len());
        assert_eq!(Some(keying), client_out.keying, "both ends derive the same SRTP keys");

        client.send_application_data(b"INIT").unwrap();
        let mut received = vec![];
        for p in drain(&mut client).packets {
            received.extend(server.read(now, &p).unwrap());
        }
        assert!(received.contains(&Dtls13Event::ApplicationData(b"INIT".to_vec())));
        for p in transmits(&server.write(now, b"INIT ACK").unwrap()) {
            client.handle_packet(&p).unwrap();
        }
        assert_eq!(drain(&mut client).data, vec![b"INIT ACK".to_vec()]);
    }

    #[test]
    fn a_certificate_that_does_not_match_the_fingerprint_fails_the_handshake_for_good() {
        let now = Instant::now();
        let id = identity();
        let mut client = client(&id, true, now);
        let mut server = server(identity().fingerprint, Duration::from_millis(50));
        let mut failed = false;
        let mut to_server = drain(&mut client).packets;
        for _ in 0..4 {
            let mut to_client = vec![];
            for p in to_server.drain(..) {
                match server.read(now, &p) {
                    Ok(events) => {
                        assert!(!events.iter().any(|e| matches!(e, Dtls13Event::Connected(_))));
                        to_client.extend(transmits(&events));
                    }
                    Err(e) => {
                        assert!(matches!(e, Error::ErrNoMatchingCertificateFingerprint), "{e}");
                        failed = true;
                    }
                }
            }
            for p in &to_client {
                let _ = client.handle_packet(p);
            }
            to_server = drain(&mut client).packets;
        }
        assert!(failed, "the client's certificate was refused");
        assert_eq!(server.poll_timeout(), None, "a failed handshake is never timed again");
        assert!(server.write(now, b"data").is_err());
    }

    /// BoringSSL's timer: the start RTO, doubled on each retransmission, no jitter (upstream
    /// dimpl adds ±250 ms, which would swamp a 120 ms timer).
    #[test]
    fn the_server_flight_is_sent_again_at_the_start_rto_then_twice_it() {
        let t0 = Instant::now();
        let id = identity();
        let hello = drain(&mut client(&id, true, t0)).packets.remove(0);
        let mut server = server(id.fingerprint, Duration::from_millis(50));
        server.set_initial_retransmit(Duration::from_millis(120));
        let flight = transmits(&server.read(t0, &hello).unwrap());
        assert!(!flight.is_empty());
        let mut at = t0;
        for rto in [120, 240, 480] {
            let next = server.poll_timeout().expect("the flight is timed");
            assert_eq!(next - at, Duration::from_millis(rto));
            assert!(server.handle_timeout(next - Duration::from_millis(1)).unwrap().is_empty());
            let again = transmits(&server.handle_timeout(next).unwrap());
            assert!(!again.is_empty(), "the flight went again at {rto} ms");
            at = next;
        }
        // Once the handshake has begun the timer no longer follows the ICE RTT.
        server.set_initial_retransmit(Duration::from_millis(50));
        assert_eq!(server.poll_timeout().unwrap() - at, Duration::from_millis(960));
    }
}
