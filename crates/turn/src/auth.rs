//! STUN long-term credentials (RFC 8489 §9.2): the key `MD5(username ":" realm ":" password)`,
//! MESSAGE-INTEGRITY as HMAC-SHA1 over the message (§14.5), and nonces that carry their own
//! expiry, authenticated by a server secret, so the server keeps no nonce state.

use md5::{Digest, Md5};
use peerstorm_model::stun::{MAGIC_COOKIE, Message, append_fingerprint, attr};

/// The long-term key for a user.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(format!("{username}:{realm}:{password}").as_bytes());
    h.finalize().into()
}

/// HMAC-SHA1 (RFC 2104).
/// The password of a TURN REST API credential (draft-uberti-behave-turn-rest, as coturn's
/// `use-auth-secret`): base64(HMAC-SHA1(secret, username)).
pub fn rest_password(secret: &str, username: &str) -> String {
    base64(&hmac_sha1(secret.as_bytes(), &[username.as_bytes()]))
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(A[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn hmac_sha1(key: &[u8], data: &[&[u8]]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1_smol::Sha1::from(key).digest().bytes());
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha1_smol::Sha1::new();
    inner.update(&k.map(|b| b ^ 0x36));
    for d in data {
        inner.update(d);
    }
    let mut outer = sha1_smol::Sha1::new();
    outer.update(&k.map(|b| b ^ 0x5c));
    outer.update(&inner.digest().bytes());
    outer.digest().bytes()
}

/// Encodes `m` with MESSAGE-INTEGRITY under `key`, then FINGERPRINT.
pub fn encode_with_integrity(m: &Message, key: &[u8], fingerprint: bool) -> Vec<u8> {
    let mut out = m.encode(false);
    let len = (out.len() - 20 + 24) as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    let mac = hmac_sha1(key, &[&out]);
    out.extend_from_slice(&attr::MESSAGE_INTEGRITY.to_be_bytes());
    out.extend_from_slice(&20u16.to_be_bytes());
    out.extend_from_slice(&mac);
    if fingerprint {
        append_fingerprint(&mut out);
    }
    out
}

/// Checks MESSAGE-INTEGRITY in raw message bytes: `None` when there is none, else whether it
/// matches `key`.
pub fn check_integrity(raw: &[u8], key: &[u8]) -> Option<bool> {
    if raw.len() < 20 || u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) != MAGIC_COOKIE {
        return None;
    }
    let mut at = 20;
    while at + 4 <= raw.len() {
        let typ = u16::from_be_bytes([raw[at], raw[at + 1]]);
        let n = usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
        if typ == attr::MESSAGE_INTEGRITY {
            if n != 20 || at + 24 > raw.len() {
                return Some(false);
            }
            let mut head = raw[..at].to_vec();
            let len = (at - 20 + 24) as u16;
            head[2..4].copy_from_slice(&len.to_be_bytes());
            let mac = hmac_sha1(key, &[&head]);
            return Some(mac == raw[at + 4..at + 24]);
        }
        at = (at + 4 + n).next_multiple_of(4);
    }
    None
}

/// Makes and checks nonces: `<expiry in ms, hex>-<MAC of it and the client's 5-tuple, hex>`.
/// A nonce is good only on the 5-tuple it was issued to, so a captured authenticated request
/// replayed from another address fails the nonce check (438) instead of acting for the victim.
#[derive(Debug, Clone)]
pub struct Nonces {
    secret: [u8; 16],
}

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    Stale,
    Invalid,
}

impl Nonces {
    pub fn new(secret: [u8; 16]) -> Self {
        Self { secret }
    }

    /// A nonce valid until `expires_ms` (milliseconds on the caller's clock) for the client
    /// `binding` names (its 5-tuple, in any fixed encoding).
    pub fn make(&self, expires_ms: u64, binding: &[u8]) -> String {
        let e = format!("{expires_ms:x}");
        let mac = hmac_sha1(&self.secret, &[e.as_bytes(), binding]);
        let tag: String = mac[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{e}-{tag}")
    }

    pub fn check(&self, nonce: &str, now_ms: u64, binding: &[u8]) -> NonceCheck {
        let Some((e, tag)) = nonce.split_once('-') else { return NonceCheck::Invalid };
        let mac = hmac_sha1(&self.secret, &[e.as_bytes(), binding]);
        let want: String = mac[..8].iter().map(|b| format!("{b:02x}")).collect();
        if want != tag {
            return NonceCheck::Invalid;
        }
        match u64::from_str_radix(e, 16) {
            Ok(exp) if exp > now_ms => NonceCheck::Valid,
            Ok(_) => NonceCheck::Stale,
            Err(_) => NonceCheck::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_rest_passwords_match_their_references() {
        // RFC 4648 §10.
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
        // Python: base64.b64encode(hmac.new(b"s3cret", b"1700000000:alice", hashlib.sha1).digest())
        assert_eq!(rest_password("s3cret", "1700000000:alice"), "TtElzSjT0GdnTQ9xdcRNxx96yQs=");
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 5769 §2.1 (short-term credential: the key is the password itself).
    #[test]
    fn rfc_5769_sample_request_integrity() {
        let b = unhex(
            "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573742063
             6c69656e74002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70c
             bfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf",
        );
        assert_eq!(check_integrity(&b, b"VOkJxbRl1RmTxUk/WvJxBt"), Some(true));
        assert_eq!(check_integrity(&b, b"wrong"), Some(false));
    }

    /// RFC 5769 §2.2: the IPv4 response, re-encoded by us with the same key, carries the same
    /// MESSAGE-INTEGRITY and FINGERPRINT.
    #[test]
    fn rfc_5769_ipv4_response_integrity_and_fingerprint() {
        let b = unhex(
            "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563
             746f7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96",
        );
        assert_eq!(check_integrity(&b, b"VOkJxbRl1RmTxUk/WvJxBt"), Some(true));
    }

    /// RFC 5769 §2.4: long-term credentials (the key is MD5 of user:realm:password; the
    /// password after SASLprep is "TheMatrIX").
    #[test]
    fn rfc_5769_long_term_request() {
        let b = unhex(
            "000100602112a442 78ad3433c6ad72c029da412e 00060012e3839ee38388e383aae38383e382afe382b90000
             0015001c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f726700
             00080014f67024656dd64a3e02b8e0712e85c9a28ca89666",
        );
        let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let key = long_term_key(username, "example.org", "TheMatrIX");
        assert_eq!(check_integrity(&b, &key), Some(true));
    }

    #[test]
    fn our_integrity_verifies_and_nonces_expire() {
        let key = long_term_key("u", "r", "p");
        let m = Message::binding_request([1; 12]);
        let b = encode_with_integrity(&m, &key, true);
        assert!(Message::decode(&b).is_ok(), "FINGERPRINT is right");
        assert_eq!(check_integrity(&b, &key), Some(true));
        let n = Nonces::new([9; 16]);
        let nonce = n.make(1000, b"client a");
        assert_eq!(n.check(&nonce, 999, b"client a"), NonceCheck::Valid);
        assert_eq!(n.check(&nonce, 1000, b"client a"), NonceCheck::Stale);
        assert_eq!(n.check(&nonce, 999, b"client b"), NonceCheck::Invalid, "bound to its client");
        assert_eq!(n.check("3e8-0000000000000000", 0, b"client a"), NonceCheck::Invalid);
        assert_eq!(Nonces::new([8; 16]).check(&nonce, 0, b"client a"), NonceCheck::Invalid);
    }
}
