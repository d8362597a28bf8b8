//! TLS 1.3 over the simulated TCP, as a cost model: the handshake's flights and their sizes, and
//! each record's overhead, with no cryptography. What a `turns:` connection costs in time and
//! bytes comes from these: the client's first TURN message leaves one round trip after the
//! connection opens, with its Finished (RFC 8446 §2), and every message after that carries 22
//! bytes more. The shapes are real record headers, so a capture reads as TLS.
//!
//! The sizes are rustls's with a self-signed P-256 certificate, measured by
//! `crates/tls/tests/flights.rs` against a real handshake (which fails if the model drifts more
//! than a quarter from it, or has other flights). A production chain (a leaf and an intermediate,
//! ~2.5 KB more) and Chromium's post-quantum key share (~1.2 KB more in its ClientHello) make the
//! flights bigger but not more: both still fit one congestion window.
//!
//! The driver keeps the model's state per connection: the client sends [`client_hello`] and
//! holds its data; the server answers a [`client_hello`] with [`server_flight`]; the client then
//! sends [`client_finished`] and its data, each message [`seal`]ed; the receiver [`open`]s them.

/// A TLS record's header: content type, legacy version, length.
const HEADER: usize = 5;
/// TLS 1.3's AEAD tag (AES-GCM, ChaCha20-Poly1305) and the inner content type byte.
const TRAILER: usize = 17;
/// What a sealed record adds to its plaintext.
pub const RECORD_OVERHEAD: usize = HEADER + TRAILER;

const HANDSHAKE: u8 = 0x16;
const APPLICATION_DATA: u8 = 0x17;

/// The measured sizes (bytes on the wire) of each handshake flight.
const CLIENT_HELLO_BYTES: usize = 258;
const SERVER_FLIGHT_BYTES: usize = 685;
const CLIENT_FINISHED_BYTES: usize = 80;

fn record(kind: u8, total: usize) -> Vec<u8> {
    let len = total - HEADER;
    let mut r = Vec::with_capacity(total);
    r.extend_from_slice(&[kind, 0x03, 0x03, (len >> 8) as u8, len as u8]);
    r.resize(total, 0);
    r
}

/// The client's first flight.
pub fn client_hello() -> Vec<u8> {
    record(HANDSHAKE, CLIENT_HELLO_BYTES)
}

/// The server's one flight: ServerHello to Finished.
pub fn server_flight() -> Vec<u8> {
    record(HANDSHAKE, SERVER_FLIGHT_BYTES)
}

/// The client's second flight (its Finished), which its first data follows.
pub fn client_finished() -> Vec<u8> {
    record(HANDSHAKE, CLIENT_FINISHED_BYTES)
}

/// Whether `bytes` is a handshake message of the model (not application data).
pub fn is_handshake(bytes: &[u8]) -> bool {
    bytes.first() == Some(&HANDSHAKE)
}

/// `data` as one application-data record (at most 16 KiB of plaintext, as TLS allows; the
/// simulated TCP carries one TURN message per packet, far below it).
pub fn seal(data: &[u8]) -> Vec<u8> {
    let len = data.len() + TRAILER;
    let mut r = Vec::with_capacity(HEADER + len);
    r.extend_from_slice(&[APPLICATION_DATA, 0x03, 0x03, (len >> 8) as u8, len as u8]);
    r.extend_from_slice(data);
    r.resize(HEADER + len, 0);
    r
}

/// The plaintext of the application-data records in `bytes` (handshake records are skipped);
/// `None` when `bytes` is not whole records.
pub fn open(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = bytes.get(..HEADER)?;
        let len = usize::from(h[3]) << 8 | usize::from(h[4]);
        let body = bytes.get(HEADER..HEADER + len)?;
        if h[0] == APPLICATION_DATA {
            out.extend_from_slice(body.get(..len.checked_sub(TRAILER)?)?);
        }
        bytes = &bytes[HEADER + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_records_open_to_their_plaintext_and_handshakes_are_skipped() {
        let mut wire = client_finished();
        wire.extend(seal(b"one"));
        wire.extend(seal(b"two"));
        assert_eq!(open(&wire).unwrap(), b"onetwo");
        assert_eq!(seal(b"x").len(), 1 + RECORD_OVERHEAD);
        assert!(is_handshake(&client_hello()) && is_handshake(&server_flight()) && !is_handshake(&seal(b"")));
        assert_eq!(open(&wire[..wire.len() - 1]), None, "a cut record is not whole");
        assert_eq!(open(&[0x17, 3, 3, 0, 2, 0, 0]), None, "shorter than its trailer");
    }
}
