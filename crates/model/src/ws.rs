//! The server side of RFC 6455 WebSocket framing, sans-IO: the handshake's accept key, a decoder
//! that reads masked client frames out of a byte buffer (fragmentation, control frames, size
//! limit), and encoders for unmasked server frames.
//!
//! The decoder works on whatever bytes a read returned: it consumes every complete frame and
//! reports how many bytes it used, so the caller keeps only a partial frame between reads.

use base64::Engine;

/// RFC 6455 §1.3: the GUID appended to `Sec-WebSocket-Key`.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes (RFC 6455 §7.4.1).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message (reassembled if it was fragmented).
    Text(&'a [u8]),
    /// A complete binary message.
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong,
    /// The peer's close frame: its code, if it sent one.
    Close(Option<u16>),
}

/// A violation that ends the connection with the given close code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("websocket protocol error ({code}): {reason}")]
pub struct ProtocolError {
    pub code: u16,
    pub reason: &'static str,
}

fn violation(code: u16, reason: &'static str) -> ProtocolError {
    ProtocolError { code, reason }
}

/// Per-connection decoder state: only a fragmented message in progress, which is empty (and
/// allocates nothing) for the usual unfragmented traffic.
#[derive(Debug, Default)]
pub struct Decoder {
    fragments: Vec<u8>,
    fragment_op: Option<u8>,
}

/// One parsed frame header.
struct Header {
    fin: bool,
    op: u8,
    header_len: usize,
    payload_len: usize,
    mask: [u8; 4],
}

fn parse_header(buf: &[u8], max: usize) -> Result<Option<Header>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(violation(close::PROTOCOL_ERROR, "reserved bits set"));
    }
    if b1 & 0x80 == 0 {
        return Err(violation(close::PROTOCOL_ERROR, "client frames must be masked"));
    }
    let (len, mut at) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            (u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > max as u64 {
        return Err(violation(close::TOO_BIG, "frame over the size limit"));
    }
    if buf.len() < at + 4 {
        return Ok(None);
    }
    let mask = buf[at..at + 4].try_into().expect("4 bytes");
    at += 4;
    Ok(Some(Header { fin: b0 & 0x80 != 0, op: b0 & 0x0f, header_len: at, payload_len: len as usize, mask }))
}

fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let m = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ m;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

impl Decoder {
    /// Decodes the complete frames at the start of `buf` (unmasking them in place), calling
    /// `on_event` for each. Returns how many bytes were consumed; the rest is a partial frame to
    /// keep for the next read. `max` bounds a message's size.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        max: usize,
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<usize, ProtocolError> {
        let mut used = 0;
        while let Some(h) = parse_header(&buf[used..], max)? {
            let total = h.header_len + h.payload_len;
            if buf.len() - used < total {
                break;
            }
            let start = used + h.header_len;
            let payload = &mut buf[start..start + h.payload_len];
            unmask(payload, h.mask);
            used += total;
            match h.op {
                OP_TEXT | OP_BINARY => {
                    if self.fragment_op.is_some() {
                        return Err(violation(close::PROTOCOL_ERROR, "a new message inside a fragmented one"));
                    }
                    if h.fin {
                        on_event(if h.op == OP_TEXT { Event::Text(payload) } else { Event::Binary(payload) });
                    } else {
                        self.fragment_op = Some(h.op);
                        self.fragments.extend_from_slice(payload);
                    }
                }
                OP_CONT => {
                    let Some(op) = self.fragment_op else {
                        return Err(violation(close::PROTOCOL_ERROR, "a continuation frame with nothing to continue"));
                    };
                    if self.fragments.len() + payload.len() > max {
                        return Err(violation(close::TOO_BIG, "message over the size limit"));
                    }
                    self.fragments.extend_from_slice(payload);
                    if h.fin {
                        let msg = std::mem::take(&mut self.fragments);
                        self.fragment_op = None;
                        on_event(if op == OP_TEXT { Event::Text(&msg) } else { Event::Binary(&msg) });
                    }
                }
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !h.fin || h.payload_len > 125 {
                        return Err(violation(close::PROTOCOL_ERROR, "a fragmented or oversized control frame"));
                    }
                    match h.op {
                        OP_PING => on_event(Event::Ping(payload)),
                        OP_PONG => on_event(Event::Pong),
                        _ => {
                            let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                            on_event(Event::Close(code));
                        }
                    }
                }
                _ => return Err(violation(close::PROTOCOL_ERROR, "unknown opcode")),
            }
        }
        Ok(used)
    }

    /// Bytes held for a fragmented message in progress.
    pub fn buffered(&self) -> usize {
        self.fragments.capacity()
    }
}

fn header(out: &mut Vec<u8>, op: u8, n: usize, mask_bit: u8) {
    out.push(0x80 | op);
    if n < 126 {
        out.push(mask_bit | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

/// Appends an unmasked server frame.
pub fn encode(out: &mut Vec<u8>, op: u8, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    header(out, op, payload.len(), 0);
    out.extend_from_slice(payload);
}

/// Appends a close frame: with no status (the peer sees 1005, as `peer@1.0.2`'s `close()` gives)
/// or with a code.
pub fn encode_close(out: &mut Vec<u8>, code: Option<u16>) {
    match code {
        None => encode(out, OP_CLOSE, &[]),
        Some(c) => encode(out, OP_CLOSE, &c.to_be_bytes()),
    }
}

/// Walks the unmasked (server) frames at the start of `b`, calling `on_frame(opcode, payload,
/// end offset)` for each complete one; returns the bytes they take. The shell uses it to recover
/// unwritten frames, clients to read what a server sent.
pub fn for_each_server_frame(b: &[u8], mut on_frame: impl FnMut(u8, &[u8], usize)) -> usize {
    let mut at = 0;
    while b.len() - at >= 2 {
        let op = b[at] & 0x0f;
        let (len, hl) = match b[at + 1] & 0x7f {
            126 if b.len() - at >= 4 => (usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]])), 4),
            127 if b.len() - at >= 10 => {
                (u64::from_be_bytes(b[at + 2..at + 10].try_into().expect("8 bytes")) as usize, 10)
            }
            126 | 127 => break,
            n => (usize::from(n), 2),
        };
        if b.len() - at < hl + len {
            break;
        }
        on_frame(op, &b[at + hl..at + hl + len], at + hl + len);
        at += hl + len;
    }
    at
}

/// Appends a masked client frame (for tests and the load generator).
pub fn encode_masked(out: &mut Vec<u8>, op: u8, payload: &[u8], mask: [u8; 4]) {
    out.reserve(payload.len() + 14);
    header(out, op, payload.len(), 0x80);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn events(buf: &[u8], max: usize) -> (Result<usize, ProtocolError>, Vec<String>) {
        let mut d = Decoder::default();
        let mut buf = buf.to_vec();
        let mut seen = Vec::new();
        let r = d.decode(&mut buf, max, |e| {
            seen.push(match e {
                Event::Text(t) => format!("text:{}", String::from_utf8_lossy(t)),
                Event::Binary(b) => format!("bin:{}", b.len()),
                Event::Ping(p) => format!("ping:{}", p.len()),
                Event::Pong => "pong".into(),
                Event::Close(c) => format!("close:{c:?}"),
            })
        });
        (r, seen)
    }

    #[test]
    fn decodes_masked_frames_of_every_length_form() {
        let mut buf = Vec::new();
        for n in [0usize, 5, 125, 126, 300, 70_000] {
            encode_masked(&mut buf, OP_TEXT, "x".repeat(n).as_bytes(), [1, 2, 3, 4]);
        }
        encode_masked(&mut buf, OP_CLOSE, &1000u16.to_be_bytes(), [9, 9, 9, 9]);
        let (r, seen) = events(&buf, 1 << 20);
        assert_eq!(r, Ok(buf.len()));
        assert_eq!(seen.len(), 7);
        assert_eq!(seen[1], "text:xxxxx");
        assert_eq!(seen[5].len(), 5 + 70_000);
        assert_eq!(seen[6], "close:Some(1000)");
    }

    #[test]
    fn partial_frames_are_left_for_the_next_read() {
        let mut buf = Vec::new();
        encode_masked(&mut buf, OP_TEXT, b"hello", [1, 2, 3, 4]);
        encode_masked(&mut buf, OP_TEXT, b"world", [1, 2, 3, 4]);
        let cut = buf.len() - 3;
        let (r, seen) = events(&buf[..cut], 100);
        assert_eq!(r, Ok(11));
        assert_eq!(seen, ["text:hello"]);
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut buf = Vec::new();
        encode_masked(&mut buf, OP_TEXT, b"hel", [1, 2, 3, 4]);
        buf[0] &= 0x7f; // not FIN
        encode_masked(&mut buf, OP_PING, b"p", [1, 2, 3, 4]);
        encode_masked(&mut buf, OP_CONT, b"lo", [5, 6, 7, 8]);
        let (r, seen) = events(&buf, 100);
        assert_eq!(r, Ok(buf.len()));
        assert_eq!(seen, ["ping:1", "text:hello"]);
    }

    #[test]
    fn violations_carry_close_codes() {
        let mut unmasked = Vec::new();
        encode(&mut unmasked, OP_TEXT, b"hi");
        assert_eq!(events(&unmasked, 100).0.unwrap_err().code, close::PROTOCOL_ERROR);
        let mut big = Vec::new();
        encode_masked(&mut big, OP_TEXT, &[0; 200], [0; 4]);
        assert_eq!(events(&big, 100).0.unwrap_err().code, close::TOO_BIG);
        let mut cont = Vec::new();
        encode_masked(&mut cont, OP_CONT, b"x", [0; 4]);
        assert_eq!(events(&cont, 100).0.unwrap_err().code, close::PROTOCOL_ERROR);
    }

    #[test]
    fn server_frames() {
        let mut out = Vec::new();
        encode(&mut out, OP_TEXT, b"{\"type\":\"OPEN\"}");
        assert_eq!(&out[..2], &[0x81, 15]);
        let mut out = Vec::new();
        encode_close(&mut out, None);
        assert_eq!(out, [0x88, 0]);
    }
}
