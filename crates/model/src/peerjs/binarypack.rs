//! BinaryPack, the encoding of PeerJS's `binary` serialization (`peerjs-js-binarypack@2.1.0`,
//! which `peerjs@1.5.5` depends on). It is MessagePack-like with its own type bytes:
//! `0xa0..=0xaf` and `0xda`/`0xdb` are binary ("raw"), `0xb0..=0xbf` and `0xd8`/`0xd9` are UTF-8
//! strings.
//!
//! [`pack`] writes exactly the bytes the JavaScript packer writes for the same value (checked
//! against vectors made by the real library, `fixtures/binarypack/`). [`unpack`] reads everything
//! the JavaScript unpacker reads, but where that one returns `undefined` or garbage for malformed
//! input (unknown type bytes, truncated data, invalid UTF-8) this one returns an error with the
//! offset, and it bounds nesting depth so hostile input cannot exhaust the stack.

use std::fmt;

/// A BinaryPack value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// JavaScript `undefined`: read from `0xc1` and `0xd4..=0xd7`; packed as `null`, as the
    /// JavaScript packer does.
    Undefined,
    Bool(bool),
    Int(i64),
    /// Only for `uint64` values above `i64::MAX`.
    Uint(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    /// Key/value pairs in order (JavaScript objects have string keys; BinaryPack allows any).
    Map(Vec<(Value, Value)>),
}

impl Value {
    pub fn str(s: &str) -> Self {
        Value::Str(s.to_string())
    }

    /// A map with string keys, in the order given.
    pub fn object<'k>(pairs: impl IntoIterator<Item = (&'k str, Value)>) -> Self {
        Value::Map(pairs.into_iter().map(|(k, v)| (Value::str(k), v)).collect())
    }

    /// The value under a string key of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Uint(u) => i64::try_from(u).ok(),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bin(&self) -> Option<&[u8]> {
        match self {
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// JavaScript truthiness, which PeerJS uses to test `__peerData`.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null | Value::Undefined => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0 && !f.is_nan(),
            Value::Str(s) => !s.is_empty(),
            _ => true,
        }
    }

    /// The value as JSON, for display: binary becomes `{"$bin": <length>}`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null | Value::Undefined => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Uint(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Bin(b) => serde_json::json!({ "$bin": b.len() }),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Value::Str(s) => s.clone(),
                            other => other.to_json().to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }

    /// A JSON value as the JavaScript packer would see it after `JSON.parse`.
    pub fn from_json(j: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Value::Int(i),
                (None, Some(u)) => Value::Uint(u),
                _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::Array(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(o.iter().map(|(k, v)| (Value::Str(k.clone()), Value::from_json(v))).collect()),
        }
    }
}

/// A value that cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// JavaScript throws "Invalid integer" for infinities and writes garbage for NaN.
    #[error("{0} cannot be packed (BinaryPack has no encoding for it)")]
    NonFinite(String),
    #[error("a {what} of {len} items or bytes is over BinaryPack's 32-bit length")]
    TooLong { what: &'static str, len: usize },
}

/// Bytes that are not valid BinaryPack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    #[error("at byte {offset}: the data ends early ({needed} more bytes needed)")]
    Truncated { offset: usize, needed: usize },
    #[error("at byte {offset}: unknown type byte 0x{byte:02x}")]
    UnknownType { offset: usize, byte: u8 },
    #[error("at byte {offset}: a string that is not UTF-8")]
    InvalidUtf8 { offset: usize },
    #[error("at byte {offset}: nested deeper than {max} levels")]
    TooDeep { offset: usize, max: usize },
    #[error("{count} bytes left over after the value (at byte {offset})")]
    TrailingBytes { offset: usize, count: usize },
    #[error("empty input")]
    Empty,
}

/// How deep arrays and maps may nest before [`unpack`] gives up.
pub const MAX_DEPTH: usize = 256;

/// Packs a value as the JavaScript packer does.
pub fn pack(v: &Value) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::with_capacity(64);
    pack_into(v, &mut out)?;
    Ok(out)
}

/// Packs a value, appending to `out`.
pub fn pack_into(v: &Value, out: &mut Vec<u8>) -> Result<(), PackError> {
    match v {
        Value::Null | Value::Undefined => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Int(i) => pack_integer(*i, out),
        Value::Uint(u) => match i64::try_from(*u) {
            Ok(i) => pack_integer(i, out),
            Err(_) => {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            }
        },
        Value::Float(f) => pack_number(*f, out)?,
        Value::Str(s) => {
            header(out, s.len(), 0xb0, 0xd8, 0xd9, "string")?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bin(b) => {
            header(out, b.len(), 0xa0, 0xda, 0xdb, "binary")?;
            out.extend_from_slice(b);
        }
        Value::Array(a) => {
            header(out, a.len(), 0x90, 0xdc, 0xdd, "array")?;
            for x in a {
                pack_into(x, out)?;
            }
        }
        Value::Map(m) => {
            header(out, m.len(), 0x80, 0xde, 0xdf, "map")?;
            for (k, x) in m {
                pack_into(k, out)?;
                pack_into(x, out)?;
            }
        }
    }
    Ok(())
}

fn header(out: &mut Vec<u8>, len: usize, fix: u8, b16: u8, b32: u8, what: &'static str) -> Result<(), PackError> {
    if len <= 0x0f {
        out.push(fix + len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(b16);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(len) {
        out.push(b32);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        return Err(PackError::TooLong { what, len });
    }
    Ok(())
}

/// JavaScript numbers: integral values go through `pack_integer`, others as a double.
fn pack_number(f: f64, out: &mut Vec<u8>) -> Result<(), PackError> {
    if !f.is_finite() {
        return Err(PackError::NonFinite(f.to_string()));
    }
    if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 {
        pack_integer(f as i64, out);
    } else {
        out.push(0xcb);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    }
    Ok(())
}

/// The JavaScript packer's integer ladder, in its order (uint8 before int8, and so on). The arms
/// overlap on purpose: the first that matches wins, as the `if` chain in JavaScript does.
#[allow(clippy::match_overlapping_arm)]
fn pack_integer(n: i64, out: &mut Vec<u8>) {
    match n {
        -0x20..=0x7f => out.push(n as u8),
        0..=0xff => {
            out.push(0xcc);
            out.push(n as u8);
        }
        -0x80..=0x7f => {
            out.push(0xd0);
            out.push(n as u8);
        }
        0..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        -0x8000..=0x7fff => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        0..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        -0x8000_0000..=0x7fff_ffff => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Reads one value that fills `bytes` exactly.
pub fn unpack(bytes: &[u8]) -> Result<Value, UnpackError> {
    if bytes.is_empty() {
        return Err(UnpackError::Empty);
    }
    let mut r = Reader::new(bytes, Reader::binarypack_item);
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(UnpackError::TrailingBytes { offset: r.pos, count: bytes.len() - r.pos });
    }
    Ok(v)
}

/// A cursor over MessagePack-family bytes, shared by BinaryPack and [`super::msgpack`]: the
/// length, string, array and map readers are common, `item` reads one value in the format.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    pub(crate) pos: usize,
    item: fn(&mut Reader<'a>, usize) -> Result<Value, UnpackError>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8], item: fn(&mut Reader<'a>, usize) -> Result<Value, UnpackError>) -> Self {
        Self { b, pos: 0, item }
    }

    /// One value in the reader's format, nested `depth` deep.
    pub(crate) fn value(&mut self, depth: usize) -> Result<Value, UnpackError> {
        (self.item)(self, depth)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], UnpackError> {
        let remaining = self.b.len() - self.pos;
        if n > remaining {
            return Err(UnpackError::Truncated { offset: self.pos, needed: n - remaining });
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], UnpackError> {
        let s = self.take(N)?;
        Ok(s.try_into().expect("take returned N bytes"))
    }

    pub(crate) fn len8(&mut self) -> Result<usize, UnpackError> {
        Ok(usize::from(self.array::<1>()?[0]))
    }

    pub(crate) fn len16(&mut self) -> Result<usize, UnpackError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    pub(crate) fn len32(&mut self) -> Result<usize, UnpackError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    /// One BinaryPack value.
    fn binarypack_item(&mut self, depth: usize) -> Result<Value, UnpackError> {
        let offset = self.pos;
        let t = self.array::<1>()?[0];
        Ok(match t {
            0x00..=0x7f => Value::Int(i64::from(t)),
            0xe0..=0xff => Value::Int(i64::from(t as i8)),
            0xa0..=0xaf => self.bin(usize::from(t & 0x0f))?,
            0xb0..=0xbf => self.string(usize::from(t & 0x0f))?,
            0x90..=0x9f => self.seq(usize::from(t & 0x0f), depth, offset)?,
            0x80..=0x8f => self.map(usize::from(t & 0x0f), depth, offset)?,
            0xc0 => Value::Null,
            0xc1 | 0xd4..=0xd7 => Value::Undefined,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xca..=0xd3 => self.number(t)?,
            0xd8 => {
                let n = self.len16()?;
                self.string(n)?
            }
            0xd9 => {
                let n = self.len32()?;
                self.string(n)?
            }
            0xda => {
                let n = self.len16()?;
                self.bin(n)?
            }
            0xdb => {
                let n = self.len32()?;
                self.bin(n)?
            }
            0xdc..=0xdf => self.container(t, depth, offset)?,
            0xc4..=0xc9 => return Err(UnpackError::UnknownType { offset, byte: t }),
        })
    }

    /// The array16/32 and map16/32 forms BinaryPack and MessagePack share (0xdc..=0xdf).
    pub(crate) fn container(&mut self, t: u8, depth: usize, offset: usize) -> Result<Value, UnpackError> {
        let n = if t & 1 == 0 { self.len16()? } else { self.len32()? };
        if t < 0xde { self.seq(n, depth, offset) } else { self.map(n, depth, offset) }
    }

    /// The number forms BinaryPack and MessagePack share (0xca..=0xd3).
    pub(crate) fn number(&mut self, t: u8) -> Result<Value, UnpackError> {
        Ok(match t {
            0xca => Value::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Value::Float(f64::from_be_bytes(self.array()?)),
            0xcc => Value::Int(i64::from(self.array::<1>()?[0])),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.array()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.array()?))),
            0xcf => {
                let u = u64::from_be_bytes(self.array()?);
                i64::try_from(u).map_or(Value::Uint(u), Value::Int)
            }
            0xd0 => Value::Int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.array()?)),
            _ => return Err(UnpackError::UnknownType { offset: self.pos - 1, byte: t }),
        })
    }

    pub(crate) fn bin(&mut self, n: usize) -> Result<Value, UnpackError> {
        Ok(Value::Bin(self.take(n)?.to_vec()))
    }

    pub(crate) fn string(&mut self, n: usize) -> Result<Value, UnpackError> {
        let offset = self.pos;
        let s = self.take(n)?;
        std::str::from_utf8(s)
            .map(|s| Value::Str(s.to_string()))
            .map_err(|e| UnpackError::InvalidUtf8 { offset: offset + e.valid_up_to() })
    }

    /// Every item takes at least one byte, so a count larger than what is left is truncated
    /// input; checking it first keeps a hostile count from reserving gigabytes.
    fn check_count(&self, n: usize, min_bytes: usize) -> Result<(), UnpackError> {
        let remaining = self.b.len() - self.pos;
        if n.saturating_mul(min_bytes) > remaining {
            return Err(UnpackError::Truncated { offset: self.pos, needed: n.saturating_mul(min_bytes) - remaining });
        }
        Ok(())
    }

    pub(crate) fn seq(&mut self, n: usize, depth: usize, offset: usize) -> Result<Value, UnpackError> {
        if depth >= MAX_DEPTH {
            return Err(UnpackError::TooDeep { offset, max: MAX_DEPTH });
        }
        self.check_count(n, 1)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(v))
    }

    pub(crate) fn map(&mut self, n: usize, depth: usize, offset: usize) -> Result<Value, UnpackError> {
        if depth >= MAX_DEPTH {
            return Err(UnpackError::TooDeep { offset, max: MAX_DEPTH });
        }
        self.check_count(n, 2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let x = self.value(depth + 1)?;
            v.push((k, x));
        }
        Ok(Value::Map(v))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn integer_ladder_follows_the_javascript_packer() {
        for (n, want) in [
            (0, "00"),
            (127, "7f"),
            (-1, "ff"),
            (-32, "e0"),
            (128, "cc80"),
            (255, "ccff"),
            (-33, "d0df"),
            (-128, "d080"),
            (256, "cd0100"),
            (65535, "cdffff"),
            (-129, "d1ff7f"),
            (65536, "ce00010000"),
            (4294967295, "ceffffffff"),
            (-32769, "d2ffff7fff"),
            (4294967296, "d30000000100000000"),
            (-2147483649, "d3ffffffff7fffffff"),
        ] {
            assert_eq!(hex(&pack(&Value::Int(n)).unwrap()), want, "{n}");
            assert_eq!(unpack(&pack(&Value::Int(n)).unwrap()).unwrap(), Value::Int(n));
        }
    }

    #[test]
    fn numbers_that_are_integral_pack_as_integers() {
        assert_eq!(pack(&Value::Float(1.0)).unwrap(), [0x01]);
        assert_eq!(pack(&Value::Float(-0.0)).unwrap(), [0x00]);
        assert_eq!(hex(&pack(&Value::Float(0.5)).unwrap()), "cb3fe0000000000000");
        assert!(pack(&Value::Float(f64::INFINITY)).is_err());
        assert!(pack(&Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn strings_and_binary_have_their_own_type_bytes() {
        assert_eq!(hex(&pack(&Value::str("hi")).unwrap()), "b26869");
        assert_eq!(hex(&pack(&Value::Bin(vec![1, 2])).unwrap()), "a20102");
        let long = Value::Str("x".repeat(16));
        assert_eq!(&pack(&long).unwrap()[..3], &[0xd8, 0, 16]);
        assert_eq!(pack(&Value::Undefined).unwrap(), [0xc0]);
    }

    #[test]
    fn bad_bytes_are_errors_with_offsets() {
        assert_eq!(unpack(&[]), Err(UnpackError::Empty));
        assert_eq!(unpack(&[0xc4]), Err(UnpackError::UnknownType { offset: 0, byte: 0xc4 }));
        assert_eq!(unpack(&[0xb3, b'a']), Err(UnpackError::Truncated { offset: 1, needed: 2 }));
        assert_eq!(unpack(&[0xb2, 0xff, 0xfe]), Err(UnpackError::InvalidUtf8 { offset: 1 }));
        assert_eq!(unpack(&[0x01, 0x02]), Err(UnpackError::TrailingBytes { offset: 1, count: 1 }));
        // A 4-billion-element array in five bytes is refused before anything is allocated.
        assert!(matches!(unpack(&[0xdd, 0xff, 0xff, 0xff, 0xff]), Err(UnpackError::Truncated { .. })));
        let deep = vec![0x91; MAX_DEPTH + 1];
        assert!(matches!(unpack(&deep), Err(UnpackError::TooDeep { .. })));
    }

    #[test]
    fn undefined_forms_read_as_undefined() {
        for b in [0xc1, 0xd4, 0xd5, 0xd6, 0xd7] {
            assert_eq!(unpack(&[b]).unwrap(), Value::Undefined);
        }
    }
}
