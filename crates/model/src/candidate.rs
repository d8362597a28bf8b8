//! ICE candidates: RFC 8839 §5.1 grammar plus what browsers add (`generation`, `ufrag`,
//! `network-id`, `network-cost`, mDNS `.local` addresses), the `RTCIceCandidateInit` JSON form,
//! and RFC 8445 priority and foundation.
//!
//! Like the SDP model, a [`Candidate`] keeps its text: `Candidate::parse(s)?.to_string() == s`
//! for every well-formed candidate.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// A candidate that did not parse: where (0-based byte column into the value after
/// `candidate:`), what was wrong and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message} (expected {expected})")]
pub struct CandidateError {
    pub column: usize,
    pub message: String,
    pub expected: &'static str,
}

/// `host`, `srflx`, `prflx`, `relay` (RFC 8445 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateType {
    Host,
    Srflx,
    Prflx,
    Relay,
}

impl CandidateType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::Srflx,
            "prflx" => CandidateType::Prflx,
            "relay" => CandidateType::Relay,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
        }
    }

    /// RFC 8445 §5.1.2.2 recommended type preferences.
    pub fn type_preference(self) -> u8 {
        match self {
            CandidateType::Host => 126,
            CandidateType::Prflx => 110,
            CandidateType::Srflx => 100,
            CandidateType::Relay => 0,
        }
    }
}

impl fmt::Display for CandidateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TCP candidate type (RFC 6544 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpType {
    Active,
    Passive,
    So,
}

impl TcpType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => TcpType::Active,
            "passive" => TcpType::Passive,
            "so" => TcpType::So,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TcpType::Active => "active",
            TcpType::Passive => "passive",
            TcpType::So => "so",
        }
    }
}

/// What a candidate's address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind<'s> {
    Ip(IpAddr),
    /// An mDNS name (`<uuid>.local`) that hides a host address (draft-ietf-mmusic-mdns-ice-candidates).
    Mdns(&'s str),
    /// Any other name.
    Fqdn(&'s str),
}

/// One ICE candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub foundation: Cow<'a, str>,
    pub component: u16,
    /// As written: browsers say `udp`, some stacks `UDP`.
    pub transport: Cow<'a, str>,
    pub priority: u32,
    pub address: Cow<'a, str>,
    pub port: u16,
    pub kind: CandidateType,
    pub related_address: Option<Cow<'a, str>>,
    pub related_port: Option<u16>,
    pub tcp_type: Option<TcpType>,
    /// Extension attributes in order (`generation 0`, `ufrag abcd`, `network-id 1`, ...).
    pub extensions: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

fn err(column: usize, message: impl Into<String>, expected: &'static str) -> CandidateError {
    CandidateError { column, message: message.into(), expected }
}

fn canonical<T: TryFrom<u64>>(s: &str) -> Option<T> {
    crate::sdp_number(s).and_then(|n| T::try_from(n).ok())
}

impl<'a> Candidate<'a> {
    /// Parses `candidate:...` (the `RTCIceCandidateInit.candidate` form) or `a=candidate:...`.
    pub fn parse(s: &'a str) -> Result<Self, CandidateError> {
        let s = s.strip_prefix("a=").unwrap_or(s);
        let Some(v) = s.strip_prefix("candidate:") else {
            return Err(err(0, "missing the candidate: prefix", "candidate:<foundation> ..."));
        };
        Self::parse_value(v).map_err(|mut e| {
            e.column += s.len() - v.len();
            e
        })
    }

    /// Parses the value after `candidate:`.
    pub fn parse_value(v: &'a str) -> Result<Self, CandidateError> {
        let mut fields = Fields { s: v, pos: 0 };
        let foundation = fields.next("foundation")?;
        if foundation.1.len() > 32 || !foundation.1.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            return Err(err(foundation.0, format!("bad foundation {:?}", foundation.1), "1 to 32 ice-chars"));
        }
        let (col, c) = fields.next("component-id")?;
        let component = canonical::<u16>(c)
            .filter(|n| (1..=256).contains(n))
            .ok_or_else(|| err(col, format!("bad component id {c:?}"), "a number from 1 to 256"))?;
        let (col, transport) = fields.next("transport")?;
        if !transport.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(err(col, format!("bad transport {transport:?}"), "udp or tcp"));
        }
        let (col, p) = fields.next("priority")?;
        let priority =
            canonical::<u32>(p).ok_or_else(|| err(col, format!("bad priority {p:?}"), "a number up to 4294967295"))?;
        let (_, address) = fields.next("connection-address")?;
        let (col, p) = fields.next("port")?;
        let port = canonical::<u16>(p).ok_or_else(|| err(col, format!("bad port {p:?}"), "a port number"))?;
        let (col, typ) = fields.next("typ")?;
        if typ != "typ" {
            return Err(err(col, format!("found {typ:?}"), "typ"));
        }
        let (col, t) = fields.next("candidate type")?;
        let kind = CandidateType::parse(t)
            .ok_or_else(|| err(col, format!("unknown candidate type {t:?}"), "host, srflx, prflx or relay"))?;
        let mut c = Candidate {
            foundation: Cow::Borrowed(foundation.1),
            component,
            transport: Cow::Borrowed(transport),
            priority,
            address: Cow::Borrowed(address),
            port,
            kind,
            related_address: None,
            related_port: None,
            tcp_type: None,
            extensions: Vec::new(),
        };
        // After `typ`: raddr, rport, tcptype in that order, then extension pairs. A known key out
        // of that order is kept as an extension so that emitting restores the input.
        let mut stage = 0;
        while let Some((kcol, key)) = fields.opt() {
            let (vcol, value) = fields.next_value(key)?;
            match (key, stage) {
                ("raddr", 0) => {
                    c.related_address = Some(Cow::Borrowed(value));
                    stage = 1;
                }
                ("rport", 1) => {
                    c.related_port = Some(
                        canonical(value).ok_or_else(|| err(vcol, format!("bad rport {value:?}"), "a port number"))?,
                    );
                    stage = 2;
                }
                ("tcptype", 0..=2) => {
                    c.tcp_type = Some(
                        TcpType::parse(value)
                            .ok_or_else(|| err(vcol, format!("bad tcptype {value:?}"), "active, passive or so"))?,
                    );
                    stage = 3;
                }
                _ => {
                    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(err(kcol, format!("bad extension name {key:?}"), "a token"));
                    }
                    c.extensions.push((Cow::Borrowed(key), Cow::Borrowed(value)));
                    stage = 4;
                }
            }
        }
        Ok(c)
    }

    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_ref())
    }

    pub fn generation(&self) -> Option<u32> {
        self.extension("generation").and_then(|v| v.parse().ok())
    }

    pub fn ufrag(&self) -> Option<&str> {
        self.extension("ufrag")
    }

    pub fn network_id(&self) -> Option<u32> {
        self.extension("network-id").and_then(|v| v.parse().ok())
    }

    pub fn network_cost(&self) -> Option<u32> {
        self.extension("network-cost").and_then(|v| v.parse().ok())
    }

    pub fn is_udp(&self) -> bool {
        self.transport.eq_ignore_ascii_case("udp")
    }

    pub fn is_tcp(&self) -> bool {
        self.transport.eq_ignore_ascii_case("tcp")
    }

    pub fn address_kind(&self) -> AddressKind<'_> {
        address_kind(&self.address)
    }

    /// The type preference encoded in the priority (its top 8 bits).
    pub fn priority_type_preference(&self) -> u8 {
        (self.priority >> 24) as u8
    }

    pub fn into_owned(self) -> Candidate<'static> {
        let o = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Candidate {
            foundation: o(self.foundation),
            component: self.component,
            transport: o(self.transport),
            priority: self.priority,
            address: o(self.address),
            port: self.port,
            kind: self.kind,
            related_address: self.related_address.map(o),
            related_port: self.related_port,
            tcp_type: self.tcp_type,
            extensions: self.extensions.into_iter().map(|(k, v)| (o(k), o(v))).collect(),
        }
    }

    /// The value after `candidate:` (what `a=candidate:` carries).
    pub fn value(&self) -> String {
        let s = self.to_string();
        s["candidate:".len()..].to_string()
    }
}

pub fn address_kind(a: &str) -> AddressKind<'_> {
    if let Ok(ip) = a.parse::<IpAddr>() {
        AddressKind::Ip(ip)
    } else if a.ends_with(".local") {
        AddressKind::Mdns(a)
    } else {
        AddressKind::Fqdn(a)
    }
}

struct Fields<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Fields<'a> {
    /// The next single-space-separated field, with its column.
    fn opt(&mut self) -> Option<(usize, &'a str)> {
        if self.pos > self.s.len() {
            return None;
        }
        let rest = &self.s[self.pos..];
        let start = self.pos;
        let end = rest.find(' ').map_or(self.s.len(), |i| start + i);
        self.pos = end + 1;
        Some((start, &self.s[start..end]))
    }

    fn next(&mut self, what: &'static str) -> Result<(usize, &'a str), CandidateError> {
        match self.opt() {
            Some((col, f)) if !f.is_empty() => Ok((col, f)),
            Some((col, _)) => Err(err(col, "an empty field (two spaces, or a trailing space)", what)),
            None => Err(err(self.s.len(), "the candidate ends early", what)),
        }
    }

    fn next_value(&mut self, key: &str) -> Result<(usize, &'a str), CandidateError> {
        if key.is_empty() {
            return Err(err(
                self.pos.saturating_sub(1),
                "an empty field (two spaces, or a trailing space)",
                "<name> <value>",
            ));
        }
        self.next("a value after the extension name")
    }
}

impl fmt::Display for Candidate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "candidate:{} {} {} {} {} {} typ {}",
            self.foundation, self.component, self.transport, self.priority, self.address, self.port, self.kind
        )?;
        if let Some(a) = &self.related_address {
            write!(f, " raddr {a}")?;
        }
        if let Some(p) = self.related_port {
            write!(f, " rport {p}")?;
        }
        if let Some(t) = self.tcp_type {
            write!(f, " tcptype {}", t.as_str())?;
        }
        for (k, v) in &self.extensions {
            write!(f, " {k} {v}")?;
        }
        Ok(())
    }
}

/// RFC 8445 §5.1.2.1: `priority = 2^24 * type preference + 2^8 * local preference + (256 - component)`.
pub fn priority(type_preference: u8, local_preference: u16, component: u16) -> u32 {
    (u32::from(type_preference) << 24) + (u32::from(local_preference) << 8) + (256 - u32::from(component.clamp(1, 256)))
}

/// RFC 8445 §5.1.1.3: candidates share a foundation when they have the same type, base address,
/// STUN/TURN server and transport. This derives one deterministically from those four (FNV-1a,
/// printed in decimal as browsers do).
pub fn foundation(kind: CandidateType, base: IpAddr, server: Option<IpAddr>, transport: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0193);
    };
    eat(kind.as_str().as_bytes());
    eat(base.to_string().as_bytes());
    eat(server.map(|s| s.to_string()).unwrap_or_default().as_bytes());
    eat(transport.to_ascii_lowercase().as_bytes());
    h.to_string()
}

/// The JSON form of an `RTCIceCandidate` (`RTCIceCandidateInit`), as PeerJS sends it inside a
/// CANDIDATE payload. Absent members are `null`, as `RTCIceCandidate.toJSON()` writes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IceCandidateInit {
    pub candidate: String,
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_m_line_index: Option<u16>,
    #[serde(rename = "usernameFragment", default)]
    pub username_fragment: Option<String>,
}

impl IceCandidateInit {
    /// The parsed candidate; `None` for the empty end-of-candidates form (`candidate: ""`).
    pub fn parsed(&self) -> Option<Result<Candidate<'_>, CandidateError>> {
        if self.candidate.is_empty() { None } else { Some(Candidate::parse(&self.candidate)) }
    }

    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings and numbers always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_SRFLX: &str = "candidate:842163049 1 udp 1677729535 192.0.2.10 53421 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999";

    #[test]
    fn parses_and_emits_browser_candidates() {
        for s in [
            CHROME_SRFLX,
            "candidate:1 1 UDP 2122252543 3c4e0a2b-6a39-4b6f-9d2e-1f7c9f6a0c11.local 54321 typ host",
            "candidate:3 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active generation 0 network-id 1",
            "candidate:4 2 udp 41885695 2001:db8::1 3478 typ relay raddr 198.51.100.1 rport 60000 generation 0",
            "candidate:5 1 udp 1 10.0.0.1 1 typ prflx weird-ext x rport 5",
        ] {
            let c = Candidate::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(c.to_string(), s);
        }
        let c = Candidate::parse(CHROME_SRFLX).unwrap();
        assert_eq!(c.kind, CandidateType::Srflx);
        assert_eq!((c.related_address.as_deref(), c.related_port), (Some("0.0.0.0"), Some(0)));
        assert_eq!((c.generation(), c.ufrag(), c.network_cost()), (Some(0), Some("abcd"), Some(999)));
    }

    #[test]
    fn knows_address_kinds() {
        let c = Candidate::parse("candidate:1 1 udp 2 abc.local 1 typ host").unwrap();
        assert!(matches!(c.address_kind(), AddressKind::Mdns("abc.local")));
        let c = Candidate::parse("candidate:1 1 udp 2 ::1 1 typ host").unwrap();
        assert!(matches!(c.address_kind(), AddressKind::Ip(IpAddr::V6(_))));
    }

    #[test]
    fn errors_point_at_the_field() {
        let e = Candidate::parse("candidate:1 1 udp 12x 1.2.3.4 5 typ host").unwrap_err();
        assert_eq!(e.column, "candidate:1 1 udp ".len());
        assert!(e.expected.contains("number"));
        let e = Candidate::parse("candidate:1 1 udp 1 1.2.3.4 5 typ cone").unwrap_err();
        assert!(e.message.contains("cone"));
        assert!(Candidate::parse("candidate:1 1 udp 1 1.2.3.4 5 typ host generation").is_err());
        assert!(Candidate::parse("candidate:1 0 udp 1 1.2.3.4 5 typ host").is_err());
        assert!(Candidate::parse("candidate:1 1 udp 1 1.2.3.4 5  typ host").is_err());
        assert!(Candidate::parse("1 1 udp 1 1.2.3.4 5 typ host").is_err());
    }

    #[test]
    fn priority_matches_rfc_8445() {
        // RFC 8445 §5.1.2.1 with host type preference 126, local preference 65535, component 1.
        assert_eq!(priority(126, 65535, 1), 2130706431);
        assert_eq!(priority(100, 65535, 1), 1694498815);
        assert_eq!(priority(0, 65535, 2), 16777214);
        let c = Candidate::parse(CHROME_SRFLX).unwrap();
        assert_eq!(c.priority_type_preference(), 100);
    }

    #[test]
    fn foundation_depends_on_the_four_inputs() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let stun: IpAddr = "192.0.2.1".parse().unwrap();
        let a = foundation(CandidateType::Srflx, ip, Some(stun), "udp");
        assert_eq!(a, foundation(CandidateType::Srflx, ip, Some(stun), "UDP"));
        assert_ne!(a, foundation(CandidateType::Host, ip, Some(stun), "udp"));
        assert_ne!(a, foundation(CandidateType::Srflx, ip, None, "udp"));
        assert_ne!(a, foundation(CandidateType::Srflx, ip, Some(stun), "tcp"));
        assert!(a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn init_json_form() {
        let j = r#"{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.10 53421 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#;
        let init = IceCandidateInit::from_json(j).unwrap();
        assert_eq!(init.to_json(), j);
        assert_eq!(init.parsed().unwrap().unwrap().port, 53421);
        let end = IceCandidateInit::from_json(
            r#"{"candidate":"","sdpMid":null,"sdpMLineIndex":null,"usernameFragment":null}"#,
        )
        .unwrap();
        assert!(end.parsed().is_none());
    }
}
