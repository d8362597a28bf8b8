//! MessagePack as PeerJS 1.5.5's `MsgPack` serialization speaks it (`peerjs/dist/serializer.msgpack.mjs`,
//! which bundles `@msgpack/msgpack` 2.x with its default options).
//!
//! The connection is a byte stream, not a message per value: each value is encoded and the
//! encoding is cut into [`CHUNK`]-byte data-channel messages; the receiver feeds every message to
//! one stream decoder, which yields each value once its last byte is in. Values use the same
//! [`Value`] type as BinaryPack. Encoding follows `@msgpack/msgpack`'s `Encoder`: integers in the
//! smallest form (unsigned ones as `uint*`, negative ones as `int*`), other numbers as float64,
//! `str8` for 32..255-byte strings (BinaryPack has none), `bin*` for binary, `undefined` as nil.
//! Decoding refuses what carries no [`Value`] (extension types such as timestamps, the never-used
//! byte 0xc1) with the offset, bounds nesting, and bounds what a stream may buffer.

use super::binarypack::{MAX_DEPTH, PackError, Reader, UnpackError, Value};

/// The size PeerJS's `StreamConnection` cuts the byte stream into.
pub const CHUNK: usize = 32 * 1024;

/// Encodes one value as `@msgpack/msgpack`'s `encode` does.
pub fn pack(v: &Value) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::with_capacity(64);
    pack_into(v, &mut out)?;
    Ok(out)
}

/// Encodes one value, appending to `out`.
pub fn pack_into(v: &Value, out: &mut Vec<u8>) -> Result<(), PackError> {
    match v {
        Value::Null | Value::Undefined => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Int(i) => pack_int(*i, out),
        Value::Uint(u) => match i64::try_from(*u) {
            Ok(i) => pack_int(i, out),
            Err(_) => {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            }
        },
        Value::Float(f) => pack_float(*f, out)?,
        Value::Str(s) => {
            let n = s.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else {
                sized(out, n, Some(0xd9), 0xda, 0xdb, "string")?;
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bin(b) => {
            sized(out, b.len(), Some(0xc4), 0xc5, 0xc6, "binary")?;
            out.extend_from_slice(b);
        }
        Value::Array(a) => {
            if a.len() < 16 {
                out.push(0x90 | a.len() as u8);
            } else {
                sized(out, a.len(), None, 0xdc, 0xdd, "array")?;
            }
            for x in a {
                pack_into(x, out)?;
            }
        }
        Value::Map(m) => {
            if m.len() < 16 {
                out.push(0x80 | m.len() as u8);
            } else {
                sized(out, m.len(), None, 0xde, 0xdf, "map")?;
            }
            for (k, x) in m {
                pack_into(k, out)?;
                pack_into(x, out)?;
            }
        }
    }
    Ok(())
}

/// A length header: 8-bit (when the type has one), 16-bit or 32-bit.
fn sized(out: &mut Vec<u8>, n: usize, b8: Option<u8>, b16: u8, b32: u8, what: &'static str) -> Result<(), PackError> {
    match (b8, u8::try_from(n), u16::try_from(n), u32::try_from(n)) {
        (Some(t), Ok(n), _, _) => out.extend_from_slice(&[t, n]),
        (_, _, Ok(n), _) => {
            out.push(b16);
            out.extend_from_slice(&n.to_be_bytes());
        }
        (_, _, _, Ok(n)) => {
            out.push(b32);
            out.extend_from_slice(&n.to_be_bytes());
        }
        _ => return Err(PackError::TooLong { what, len: n }),
    }
    Ok(())
}

/// JavaScript numbers: safe integers take the integer forms, everything else float64
/// (`@msgpack/msgpack` without `forceFloat32`). NaN and the infinities have float64 encodings.
fn pack_float(f: f64, out: &mut Vec<u8>) -> Result<(), PackError> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE {
        pack_int(f as i64, out);
    } else {
        out.push(0xcb);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    }
    Ok(())
}

fn pack_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=0x7f => out.push(n as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else {
        match n {
            -0x20..=-1 => out.push(n as u8),
            -0x80..=-0x21 => out.extend_from_slice(&[0xd0, n as u8]),
            -0x8000..=-0x81 => {
                out.push(0xd1);
                out.extend_from_slice(&(n as i16).to_be_bytes());
            }
            -0x8000_0000..=-0x8001 => {
                out.push(0xd2);
                out.extend_from_slice(&(n as i32).to_be_bytes());
            }
            _ => {
                out.push(0xd3);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
}

/// The data-channel messages that carry `v`: its encoding cut into [`CHUNK`]-byte pieces.
pub fn encode_messages(v: &Value) -> Result<Vec<Vec<u8>>, PackError> {
    let packed = pack(v)?;
    if packed.len() <= CHUNK {
        return Ok(vec![packed]);
    }
    Ok(packed.chunks(CHUNK).map(<[u8]>::to_vec).collect())
}

/// Decodes one value at the start of `bytes`: the value and the bytes it used.
/// [`UnpackError::Truncated`] means the value is not complete yet.
pub fn unpack_prefix(bytes: &[u8]) -> Result<(Value, usize), UnpackError> {
    if bytes.is_empty() {
        return Err(UnpackError::Truncated { offset: 0, needed: 1 });
    }
    let mut r = Reader::new(bytes, item);
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// Decodes exactly one value that fills `bytes`.
pub fn unpack(bytes: &[u8]) -> Result<Value, UnpackError> {
    if bytes.is_empty() {
        return Err(UnpackError::Empty);
    }
    let (v, used) = unpack_prefix(bytes)?;
    if used != bytes.len() {
        return Err(UnpackError::TrailingBytes { offset: used, count: bytes.len() - used });
    }
    Ok(v)
}

/// Why a stream stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("MessagePack stream, {0}")]
    Unpack(#[from] UnpackError),
    #[error("MessagePack stream: a value still incomplete after {0} bytes (the limit)")]
    TooLarge(usize),
}

/// The receiving side of a `MsgPack` connection: data-channel messages in, values out.
///
/// A value split across messages is not re-parsed on every message: a scanner walks its item
/// headers as bytes arrive (remembering where it stopped and how many items each open array or
/// map still owes), so the total work is linear in the bytes received; the value is decoded once,
/// when the scanner has seen its last byte.
#[derive(Debug)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// Where the next value starts in `buf`.
    start: usize,
    /// Bytes of the value at `start` the scanner has walked.
    scanned: usize,
    /// Items still owed at each open nesting level (empty: no value in progress).
    open: Vec<u64>,
    max_value_bytes: usize,
    failed: Option<StreamError>,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new(256 << 20)
    }
}

impl StreamDecoder {
    /// A decoder that refuses to buffer more than `max_value_bytes` for one value.
    pub fn new(max_value_bytes: usize) -> Self {
        Self { buf: Vec::new(), start: 0, scanned: 0, open: Vec::new(), max_value_bytes, failed: None }
    }

    /// Bytes held for a value not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Adds a data-channel message to the stream.
    pub fn push(&mut self, message: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(message);
    }

    /// The value `message` holds when it is exactly one whole value and nothing is buffered (the
    /// common case: a message under 32 KiB), decoded without copying it into the buffer; else
    /// the message is buffered as [`StreamDecoder::push`] does and `None` returned.
    pub fn push_whole(&mut self, message: &[u8]) -> Option<Value> {
        if self.failed.is_none()
            && self.buffered() == 0
            && let Ok((v, used)) = unpack_prefix(message)
            && used == message.len()
        {
            return Some(v);
        }
        self.push(message);
        None
    }

    /// The next complete value, if there is one. After an error the stream is unusable (its
    /// framing is lost) and every later call returns the error again.
    pub fn next_value(&mut self) -> Result<Option<Value>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buffered() == 0 {
            return Ok(None);
        }
        if self.open.is_empty() {
            self.open.push(1);
            self.scanned = 0;
        }
        while !self.open.is_empty() {
            let at = self.start + self.scanned;
            let (len, children) = match item_extent(&self.buf[at..], self.scanned) {
                Ok(Some(x)) => x,
                Ok(None) => return self.check_size().map(|_| None),
                Err(e) => return Err(self.fail(e.into())),
            };
            self.scanned += len;
            if let Some(owed) = self.open.last_mut() {
                *owed -= 1;
            }
            if children > 0 {
                if self.open.len() > MAX_DEPTH {
                    return Err(self.fail(UnpackError::TooDeep { offset: self.scanned - len, max: MAX_DEPTH }.into()));
                }
                self.open.push(children);
            }
            while self.open.last() == Some(&0) {
                self.open.pop();
            }
        }
        // The scanner has the whole value: decode it once.
        let end = self.start + self.scanned;
        let v = match unpack_prefix(&self.buf[self.start..end]) {
            Ok((v, used)) if used == self.scanned => v,
            Ok((_, used)) => {
                let e = UnpackError::TrailingBytes { offset: used, count: self.scanned - used };
                return Err(self.fail(e.into()));
            }
            Err(e) => return Err(self.fail(e.into())),
        };
        self.start = end;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (64 << 10) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(v))
    }

    fn fail(&mut self, e: StreamError) -> StreamError {
        self.failed = Some(e.clone());
        e
    }

    fn check_size(&mut self) -> Result<(), StreamError> {
        if self.buffered() > self.max_value_bytes {
            return Err(self.fail(StreamError::TooLarge(self.max_value_bytes)));
        }
        Ok(())
    }
}

/// The bytes the item at the start of `b` takes (its header and its own payload, not its
/// children) and how many child items follow it (an array's elements, a map's keys and values),
/// or `None` until `b` holds all of that. `at` is its offset in the value, for errors.
fn item_extent(b: &[u8], at: usize) -> Result<Option<(usize, u64)>, UnpackError> {
    let Some(&t) = b.first() else { return Ok(None) };
    // The big-endian length of `n` bytes after the type byte.
    let len = |n: usize| b.get(1..1 + n).map(|s| s.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x)));
    let (header, payload, children) = match t {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
        0x80..=0x8f => (1, 0, 2 * u64::from(t & 0x0f)),
        0x90..=0x9f => (1, 0, u64::from(t & 0x0f)),
        0xa0..=0xbf => (1, usize::from(t & 0x1f), 0),
        0xcc | 0xd0 => (1, 1, 0),
        0xcd | 0xd1 => (1, 2, 0),
        0xca | 0xce | 0xd2 => (1, 4, 0),
        0xcb | 0xcf | 0xd3 => (1, 8, 0),
        0xc4 | 0xd9 => match len(1) {
            Some(n) => (2, n, 0),
            None => return Ok(None),
        },
        0xc5 | 0xda => match len(2) {
            Some(n) => (3, n, 0),
            None => return Ok(None),
        },
        0xc6 | 0xdb => match len(4) {
            Some(n) => (5, n, 0),
            None => return Ok(None),
        },
        0xdc..=0xdf => {
            let wide = t & 1 == 1;
            let Some(n) = len(if wide { 4 } else { 2 }) else { return Ok(None) };
            let per = if t < 0xde { 1 } else { 2 };
            (if wide { 5 } else { 3 }, 0, per * n as u64)
        }
        0xc1 | 0xc7..=0xc9 | 0xd4..=0xd8 => return Err(UnpackError::UnknownType { offset: at, byte: t }),
    };
    let total = header + payload;
    Ok((b.len() >= total).then_some((total, children)))
}

/// One MessagePack value (the shared [`Reader`] does lengths, strings, arrays and maps).
fn item(r: &mut Reader<'_>, depth: usize) -> Result<Value, UnpackError> {
    let offset = r.pos;
    let t = r.array::<1>()?[0];
    Ok(match t {
        0x00..=0x7f => Value::Int(i64::from(t)),
        0xe0..=0xff => Value::Int(i64::from(t as i8)),
        0x80..=0x8f => r.map(usize::from(t & 0x0f), depth, offset)?,
        0x90..=0x9f => r.seq(usize::from(t & 0x0f), depth, offset)?,
        0xa0..=0xbf => r.string(usize::from(t & 0x1f))?,
        0xc0 => Value::Null,
        0xc2 => Value::Bool(false),
        0xc3 => Value::Bool(true),
        0xc4 => {
            let n = r.len8()?;
            r.bin(n)?
        }
        0xc5 => {
            let n = r.len16()?;
            r.bin(n)?
        }
        0xc6 => {
            let n = r.len32()?;
            r.bin(n)?
        }
        0xca..=0xd3 => r.number(t)?,
        0xd9 => {
            let n = r.len8()?;
            r.string(n)?
        }
        0xda => {
            let n = r.len16()?;
            r.string(n)?
        }
        0xdb => {
            let n = r.len32()?;
            r.string(n)?
        }
        0xdc..=0xdf => r.container(t, depth, offset)?,
        // 0xc1 is never used; 0xc7..=0xc9 and 0xd4..=0xd8 are extension types (e.g. the
        // timestamp a JavaScript Date becomes), which have no Value.
        0xc1 | 0xc7..=0xc9 | 0xd4..=0xd8 => return Err(UnpackError::UnknownType { offset, byte: t }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_and_string_forms_follow_msgpack() {
        let cases: &[(Value, &[u8])] = &[
            (Value::Int(5), &[0x05]),
            (Value::Int(-1), &[0xff]),
            (Value::Int(200), &[0xcc, 200]),
            (Value::Int(-100), &[0xd0, 0x9c]),
            (Value::Int(60000), &[0xcd, 0xea, 0x60]),
            (Value::Float(42.0), &[0x2a]),
            (Value::Float(0.5), &[0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]),
            (Value::str("hi"), &[0xa2, b'h', b'i']),
            (Value::Bin(vec![1, 2]), &[0xc4, 2, 1, 2]),
            (Value::Undefined, &[0xc0]),
        ];
        for (v, want) in cases {
            assert_eq!(pack(v).unwrap(), *want, "{v:?}");
        }
        // 32..255-byte strings take str8, which BinaryPack lacks.
        assert_eq!(pack(&Value::str(&"x".repeat(40))).unwrap()[..2], [0xd9, 40]);
    }

    #[test]
    fn a_stream_cut_anywhere_gives_every_value_once() {
        let many = Value::Array((0..5_000).map(|i| Value::Map(vec![(Value::str("i"), Value::Int(i))])).collect());
        let values = [
            Value::str("a"),
            Value::Bin(vec![7; 100_000]),
            Value::Array(vec![Value::Int(1), Value::Null]),
            many,
            Value::Map(vec![(Value::str(&"k".repeat(300)), Value::Array(vec![Value::Float(0.5); 3]))]),
        ];
        let mut stream = Vec::new();
        for v in &values {
            for m in encode_messages(v).unwrap() {
                assert!(m.len() <= CHUNK);
                stream.extend(m);
            }
        }
        for cut in [1, 7, 4096, CHUNK, 100_003] {
            let mut d = StreamDecoder::default();
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                d.push(piece);
                while let Some(v) = d.next_value().unwrap() {
                    got.push(v);
                }
            }
            assert_eq!(got, values, "pieces of {cut}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn bad_streams_are_errors() {
        let mut d = StreamDecoder::default();
        d.push(&[0xd6, 0xff, 0, 0, 0, 0]); // a timestamp extension
        assert!(matches!(d.next_value(), Err(StreamError::Unpack(UnpackError::UnknownType { byte: 0xd6, .. }))));
        assert!(d.next_value().is_err(), "the stream stays failed");
        let mut d = StreamDecoder::new(1000);
        d.push(&[0xc6, 0, 0, 0x10, 0]); // a 4 KiB binary announced
        d.push(&[0; 1200]);
        assert_eq!(d.next_value(), Err(StreamError::TooLarge(1000)));
        // A hostile count does not allocate: it waits for bytes that never come.
        let mut d = StreamDecoder::default();
        d.push(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.next_value(), Ok(None));
        assert!(matches!(unpack(&[0x91; 1000]), Err(UnpackError::TooDeep { .. })));
        // Nesting past the limit is refused by the stream's scanner too, piece by piece.
        let mut d = StreamDecoder::default();
        for _ in 0..1000 {
            d.push(&[0x91]);
            if d.next_value().is_err() {
                break;
            }
        }
        assert!(matches!(d.next_value(), Err(StreamError::Unpack(UnpackError::TooDeep { .. }))));
    }
}
