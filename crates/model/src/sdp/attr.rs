//! Typed views of the attributes WebRTC uses. Each borrows from the attribute's text, and each
//! `Display` renders the canonical text, so `T::parse(&t.to_string()) == Ok(t)`.

use super::Attribute;
use crate::candidate::Candidate;
use crate::diag::Diagnostic;
use std::fmt;

/// Why an attribute value did not parse: what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad a={name} value: expected {expected}")]
pub struct AttrError {
    pub name: &'static str,
    pub expected: &'static str,
}

fn bad<T>(name: &'static str, expected: &'static str) -> Result<T, AttrError> {
    Err(AttrError { name, expected })
}

fn num<T: TryFrom<u64>>(s: &str) -> Option<T> {
    crate::sdp_number(s).and_then(|n| T::try_from(n).ok())
}

fn nonempty_fields(s: &str) -> Option<Vec<&str>> {
    let v: Vec<&str> = s.split(' ').collect();
    if v.iter().any(|f| f.is_empty()) { None } else { Some(v) }
}

/// Every attribute this crate reads, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedAttribute<'s> {
    Group(Group<'s>),
    MsidSemantic(MsidSemantic<'s>),
    IceOptions(Vec<&'s str>),
    IceUfrag(&'s str),
    IcePwd(&'s str),
    IceLite,
    Fingerprint(Fingerprint<'s>),
    Setup(Setup),
    Mid(&'s str),
    Direction(Direction),
    RtcpMux,
    RtcpRsize,
    SctpPort(u16),
    MaxMessageSize(u64),
    RtpMap(RtpMap<'s>),
    Fmtp(Fmtp<'s>),
    RtcpFb(RtcpFb<'s>),
    Extmap(Extmap<'s>),
    Msid(Msid<'s>),
    Ssrc(Ssrc<'s>),
    SsrcGroup(SsrcGroup<'s>),
    Rid(Rid<'s>),
    Simulcast(Simulcast<'s>),
    Candidate(Candidate<'s>),
    EndOfCandidates,
    /// An attribute this crate has no typed view of; kept as text.
    Other,
}

impl Attribute<'_> {
    /// The typed view of this attribute, or what was wrong with its value.
    pub fn typed(&self) -> Result<TypedAttribute<'_>, AttrError> {
        let v = self.value.as_deref();
        let flag = |name: &'static str, t: TypedAttribute<'static>| match v {
            None => Ok(t),
            Some(_) => bad(name, "no value"),
        };
        let val = |name: &'static str, expected: &'static str| v.ok_or(AttrError { name, expected });
        Ok(match self.name.as_ref() {
            "group" => TypedAttribute::Group(Group::parse(val("group", "a value")?)?),
            "msid-semantic" => TypedAttribute::MsidSemantic(MsidSemantic::parse(val("msid-semantic", "a value")?)?),
            "ice-options" => {
                let s = val("ice-options", "option tags")?;
                TypedAttribute::IceOptions(
                    nonempty_fields(s)
                        .ok_or(AttrError { name: "ice-options", expected: "option tags separated by single spaces" })?,
                )
            }
            "ice-ufrag" => {
                TypedAttribute::IceUfrag(ice_chars("ice-ufrag", val("ice-ufrag", "4 to 256 ice-chars")?, 4)?)
            }
            "ice-pwd" => TypedAttribute::IcePwd(ice_chars("ice-pwd", val("ice-pwd", "22 to 256 ice-chars")?, 22)?),
            "ice-lite" => flag("ice-lite", TypedAttribute::IceLite)?,
            "fingerprint" => TypedAttribute::Fingerprint(Fingerprint::parse(val("fingerprint", "a value")?)?),
            "setup" => TypedAttribute::Setup(Setup::parse(val("setup", "active, passive, actpass or holdconn")?)?),
            "mid" => {
                let s = val("mid", "an identification tag")?;
                if s.is_empty() || s.contains(' ') {
                    return bad("mid", "a non-empty identification tag without spaces");
                }
                TypedAttribute::Mid(s)
            }
            "sendrecv" | "sendonly" | "recvonly" | "inactive" => match Direction::from_name(&self.name) {
                Some(d) if v.is_none() => TypedAttribute::Direction(d),
                _ => return bad("direction", "no value"),
            },
            "rtcp-mux" => flag("rtcp-mux", TypedAttribute::RtcpMux)?,
            "rtcp-rsize" => flag("rtcp-rsize", TypedAttribute::RtcpRsize)?,
            "end-of-candidates" => flag("end-of-candidates", TypedAttribute::EndOfCandidates)?,
            "sctp-port" => TypedAttribute::SctpPort(
                v.and_then(num).ok_or(AttrError { name: "sctp-port", expected: "a port number" })?,
            ),
            "max-message-size" => TypedAttribute::MaxMessageSize(
                v.and_then(num).ok_or(AttrError { name: "max-message-size", expected: "a byte count" })?,
            ),
            "rtpmap" => TypedAttribute::RtpMap(RtpMap::parse(val("rtpmap", "a value")?)?),
            "fmtp" => TypedAttribute::Fmtp(Fmtp::parse(val("fmtp", "a value")?)?),
            "rtcp-fb" => TypedAttribute::RtcpFb(RtcpFb::parse(val("rtcp-fb", "a value")?)?),
            "extmap" => TypedAttribute::Extmap(Extmap::parse(val("extmap", "a value")?)?),
            "msid" => TypedAttribute::Msid(Msid::parse(val("msid", "a value")?)?),
            "ssrc" => TypedAttribute::Ssrc(Ssrc::parse(val("ssrc", "a value")?)?),
            "ssrc-group" => TypedAttribute::SsrcGroup(SsrcGroup::parse(val("ssrc-group", "a value")?)?),
            "rid" => TypedAttribute::Rid(Rid::parse(val("rid", "a value")?)?),
            "simulcast" => TypedAttribute::Simulcast(Simulcast::parse(val("simulcast", "a value")?)?),
            "candidate" => TypedAttribute::Candidate(
                Candidate::parse_value(val("candidate", "a candidate")?)
                    .map_err(|_| AttrError { name: "candidate", expected: "an RFC 8839 candidate" })?,
            ),
            _ => TypedAttribute::Other,
        })
    }
}

/// Runs the typed parse of a known attribute and reports a failure as a diagnostic.
pub(super) fn check_attribute(a: &Attribute<'_>, lineno: usize, diags: &mut Vec<Diagnostic>) {
    if a.name == "candidate" {
        // Candidates get their own, more precise, diagnostics.
        if let Err(e) = Candidate::parse_value(a.value_str()) {
            let mut d = Diagnostic::error("sdp.candidate", lineno, 13 + e.column, e.message.clone());
            d.expected = Some(e.expected);
            diags.push(d);
        }
        return;
    }
    if let Err(e) = a.typed() {
        diags.push(
            Diagnostic::error("sdp.attribute.value", lineno, 3, format!("bad a={} value {:?}", a.name, a.value_str()))
                .expected(e.expected),
        );
    }
}

/// RFC 8839 §5.4: `ice-char = ALPHA / DIGIT / "+" / "/"`, with a minimum length.
fn ice_chars<'s>(name: &'static str, s: &'s str, min: usize) -> Result<&'s str, AttrError> {
    let ok = (min..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if ok {
        Ok(s)
    } else if min == 4 {
        bad(name, "4 to 256 ice-chars (letters, digits, + and /)")
    } else {
        bad(name, "22 to 256 ice-chars (letters, digits, + and /)")
    }
}

/// `a=group:<semantics> <mid> ...` (RFC 5888, RFC 9143 for BUNDLE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'s> {
    pub semantics: &'s str,
    pub mids: Vec<&'s str>,
}

impl<'s> Group<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let f = nonempty_fields(s)
            .ok_or(AttrError { name: "group", expected: "<semantics> <mid> ... separated by single spaces" })?;
        Ok(Self { semantics: f[0], mids: f[1..].to_vec() })
    }
}

impl fmt::Display for Group<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.semantics)?;
        self.mids.iter().try_for_each(|m| write!(f, " {m}"))
    }
}

/// `a=msid-semantic:` as browsers write it; Chromium puts a space after the colon
/// (`a=msid-semantic: WMS`), which is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsidSemantic<'s> {
    pub leading_space: bool,
    pub semantics: &'s str,
    pub tokens: Vec<&'s str>,
}

impl<'s> MsidSemantic<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let (leading_space, rest) = match s.strip_prefix(' ') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let f =
            nonempty_fields(rest).ok_or(AttrError { name: "msid-semantic", expected: "<semantics> [<token> ...]" })?;
        Ok(Self { leading_space, semantics: f[0], tokens: f[1..].to_vec() })
    }
}

impl fmt::Display for MsidSemantic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.leading_space {
            f.write_str(" ")?;
        }
        f.write_str(self.semantics)?;
        self.tokens.iter().try_for_each(|t| write!(f, " {t}"))
    }
}

/// `a=fingerprint:<hash-func> <XX:XX:...>` (RFC 8122 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint<'s> {
    pub hash: &'s str,
    pub value: &'s str,
}

impl<'s> Fingerprint<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let err = AttrError { name: "fingerprint", expected: "<hash-func> <hex pairs separated by colons>" };
        let (hash, value) = s.split_once(' ').ok_or(err.clone())?;
        let pairs_ok =
            !value.is_empty() && value.split(':').all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if hash.is_empty() || !pairs_ok {
            return Err(err);
        }
        Ok(Self { hash, value })
    }

    /// The fingerprint's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.value.split(':').filter_map(|p| u8::from_str_radix(p, 16).ok()).collect()
    }
}

impl fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.hash, self.value)
    }
}

/// `a=setup:` (RFC 4145 §4, RFC 8842).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Setup {
    Active,
    Passive,
    Actpass,
    Holdconn,
}

impl Setup {
    pub fn parse(s: &str) -> Result<Self, AttrError> {
        Ok(match s {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::Actpass,
            "holdconn" => Setup::Holdconn,
            _ => return bad("setup", "active, passive, actpass or holdconn"),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::Actpass => "actpass",
            Setup::Holdconn => "holdconn",
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The media direction attributes (RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Sendrecv,
    Sendonly,
    Recvonly,
    Inactive,
}

impl Direction {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Direction::Sendrecv,
            "sendonly" => Direction::Sendonly,
            "recvonly" => Direction::Recvonly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sendrecv => "sendrecv",
            Direction::Sendonly => "sendonly",
            Direction::Recvonly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap<'s> {
    pub payload_type: u8,
    pub encoding: &'s str,
    pub clock_rate: u32,
    pub params: Option<&'s str>,
}

impl<'s> RtpMap<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let err = AttrError { name: "rtpmap", expected: "<payload type> <encoding>/<clock rate>[/<params>]" };
        let (pt, rest) = s.split_once(' ').ok_or(err.clone())?;
        let mut parts = rest.splitn(3, '/');
        let encoding = parts.next().filter(|e| !e.is_empty() && !e.contains(' ')).ok_or(err.clone())?;
        let clock_rate = parts.next().and_then(num).ok_or(err.clone())?;
        let params = parts.next();
        if params.is_some_and(|p| p.is_empty() || p.contains(' ')) {
            return Err(err);
        }
        Ok(Self { payload_type: num::<u8>(pt).filter(|&p| p < 128).ok_or(err)?, encoding, clock_rate, params })
    }
}

impl fmt::Display for RtpMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.payload_type, self.encoding, self.clock_rate)?;
        if let Some(p) = self.params {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

/// `a=fmtp:<format> <format specific parameters>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp<'s> {
    pub format: &'s str,
    pub params: &'s str,
}

impl<'s> Fmtp<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        match s.split_once(' ') {
            Some((format, params)) if !format.is_empty() && !params.is_empty() => Ok(Self { format, params }),
            _ => bad("fmtp", "<format> <parameters>"),
        }
    }

    /// `key=value` pairs separated by `;` (the form codecs use); a part without `=` has no value.
    pub fn pairs(&self) -> impl Iterator<Item = (&'s str, Option<&'s str>)> {
        self.params.split(';').map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (p.trim(), None),
        })
    }
}

impl fmt::Display for Fmtp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format, self.params)
    }
}

/// `a=rtcp-fb:<payload type or *> <type> [<parameter>]` (RFC 4585 §4.2)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpFb<'s> {
    pub payload_type: &'s str,
    pub kind: &'s str,
    pub param: Option<&'s str>,
}

impl<'s> RtcpFb<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let mut it = s.splitn(3, ' ');
        match (it.next(), it.next(), it.next()) {
            (Some(pt), Some(kind), param)
                if (pt == "*" || num::<u8>(pt).is_some()) && !kind.is_empty() && param != Some("") =>
            {
                Ok(Self { payload_type: pt, kind, param })
            }
            _ => bad("rtcp-fb", "<payload type or *> <feedback type> [<parameter>]"),
        }
    }
}

impl fmt::Display for RtcpFb<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.payload_type, self.kind)?;
        if let Some(p) = self.param {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// `a=extmap:<id>[/<direction>] <uri> [<extension attributes>]` (RFC 8285 §8)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extmap<'s> {
    pub id: u16,
    pub direction: Option<&'s str>,
    pub uri: &'s str,
    pub attributes: Option<&'s str>,
}

impl<'s> Extmap<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let err = AttrError { name: "extmap", expected: "<id>[/<direction>] <uri> [<attributes>]" };
        let mut it = s.splitn(3, ' ');
        let (Some(idd), Some(uri), attributes) = (it.next(), it.next(), it.next()) else {
            return Err(err);
        };
        let (id, direction) = match idd.split_once('/') {
            Some((i, d)) => (i, Some(d)),
            None => (idd, None),
        };
        if uri.is_empty() || attributes == Some("") || direction == Some("") {
            return Err(err);
        }
        Ok(Self { id: num(id).ok_or(err)?, direction, uri, attributes })
    }
}

impl fmt::Display for Extmap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(d) = self.direction {
            write!(f, "/{d}")?;
        }
        write!(f, " {}", self.uri)?;
        if let Some(a) = self.attributes {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// `a=msid:<stream id> [<track id>]` (RFC 8830)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid<'s> {
    pub stream: &'s str,
    pub track: Option<&'s str>,
}

impl<'s> Msid<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        match nonempty_fields(s).as_deref() {
            Some([stream]) => Ok(Self { stream, track: None }),
            Some([stream, track]) => Ok(Self { stream, track: Some(track) }),
            _ => bad("msid", "<stream id> [<track id>]"),
        }
    }
}

impl fmt::Display for Msid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.stream)?;
        if let Some(t) = self.track {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576 §4.1)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssrc<'s> {
    pub ssrc: u32,
    pub attribute: &'s str,
    pub value: Option<&'s str>,
}

impl<'s> Ssrc<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let err = AttrError { name: "ssrc", expected: "<ssrc> <attribute>[:<value>]" };
        let (id, rest) = s.split_once(' ').ok_or(err.clone())?;
        let (attribute, value) = match rest.split_once(':') {
            Some((a, v)) => (a, Some(v)),
            None => (rest, None),
        };
        if attribute.is_empty() {
            return Err(err);
        }
        Ok(Self { ssrc: num(id).ok_or(err)?, attribute, value })
    }
}

impl fmt::Display for Ssrc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.ssrc, self.attribute)?;
        if let Some(v) = self.value {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

/// `a=ssrc-group:<semantics> <ssrc> ...` (RFC 5576 §4.2)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup<'s> {
    pub semantics: &'s str,
    pub ssrcs: Vec<u32>,
}

impl<'s> SsrcGroup<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let err = AttrError { name: "ssrc-group", expected: "<semantics> <ssrc> ..." };
        let f = nonempty_fields(s).ok_or(err.clone())?;
        let ssrcs = f[1..].iter().map(|x| num::<u32>(x)).collect::<Option<Vec<_>>>().ok_or(err)?;
        Ok(Self { semantics: f[0], ssrcs })
    }
}

impl fmt::Display for SsrcGroup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.semantics)?;
        self.ssrcs.iter().try_for_each(|s| write!(f, " {s}"))
    }
}

/// The direction of a `rid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RidDirection {
    Send,
    Recv,
}

/// `a=rid:<id> <send|recv> [<restrictions>]` (RFC 8851 §10)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rid<'s> {
    pub id: &'s str,
    pub direction: RidDirection,
    pub restrictions: Option<&'s str>,
}

impl<'s> Rid<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let mut it = s.splitn(3, ' ');
        let err = AttrError { name: "rid", expected: "<rid-id> send|recv [<restrictions>]" };
        let (Some(id), Some(dir), restrictions) = (it.next(), it.next(), it.next()) else {
            return Err(err);
        };
        let direction = match dir {
            "send" => RidDirection::Send,
            "recv" => RidDirection::Recv,
            _ => return Err(err),
        };
        let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok || restrictions == Some("") {
            return Err(err);
        }
        Ok(Self { id, direction, restrictions })
    }
}

impl fmt::Display for Rid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match self.direction {
            RidDirection::Send => "send",
            RidDirection::Recv => "recv",
        };
        write!(f, "{} {d}", self.id)?;
        if let Some(r) = self.restrictions {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

/// `a=simulcast:send <alternatives> [recv <alternatives>]` (RFC 8853 §5.1), as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulcast<'s> {
    /// `(direction, streams)` in the order written; streams are `;`-separated lists of
    /// `,`-separated alternatives, a leading `~` marking a paused one.
    pub parts: Vec<(RidDirection, &'s str)>,
}

impl<'s> Simulcast<'s> {
    pub fn parse(s: &'s str) -> Result<Self, AttrError> {
        let err = AttrError { name: "simulcast", expected: "send|recv <rid;rid...> [send|recv <rid;rid...>]" };
        let f = nonempty_fields(s).ok_or(err.clone())?;
        if f.len() != 2 && f.len() != 4 {
            return Err(err);
        }
        let mut parts = Vec::new();
        for pair in f.chunks(2) {
            let dir = match pair[0] {
                "send" => RidDirection::Send,
                "recv" => RidDirection::Recv,
                _ => return Err(err),
            };
            parts.push((dir, pair[1]));
        }
        Ok(Self { parts })
    }

    /// The rids of one direction, each stream's alternatives flattened, `~` stripped.
    pub fn rids(&self, dir: RidDirection) -> Vec<&'s str> {
        self.parts
            .iter()
            .filter(|(d, _)| *d == dir)
            .flat_map(|(_, s)| s.split([';', ',']))
            .map(|r| r.trim_start_matches('~'))
            .collect()
    }
}

impl fmt::Display for Simulcast<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (d, s)) in self.parts.iter().enumerate() {
            let d = match d {
                RidDirection::Send => "send",
                RidDirection::Recv => "recv",
            };
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{d} {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every typed view renders back to the text it came from.
    #[test]
    fn typed_views_round_trip() {
        fn rt<'s, T: fmt::Display + PartialEq + fmt::Debug>(s: &'s str, p: fn(&'s str) -> Result<T, AttrError>) {
            let v = p(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(v.to_string(), s);
        }
        rt("BUNDLE 0 1 2", Group::parse);
        rt("LS", Group::parse);
        rt(" WMS", MsidSemantic::parse);
        rt("WMS * a", MsidSemantic::parse);
        rt("sha-256 4F:A0:1B", Fingerprint::parse);
        rt("111 opus/48000/2", RtpMap::parse);
        rt("96 VP8/90000", RtpMap::parse);
        rt("111 minptime=10;useinbandfec=1", Fmtp::parse);
        rt("96 goog-remb", RtcpFb::parse);
        rt("96 nack pli", RtcpFb::parse);
        rt("* ccm fir", RtcpFb::parse);
        rt("1 urn:ietf:params:rtp-hdrext:ssrc-audio-level", Extmap::parse);
        rt("3/sendrecv urn:x attr", Extmap::parse);
        rt("- 0b9c2a", Msid::parse);
        rt("stream", Msid::parse);
        rt("1234 cname:abc", Ssrc::parse);
        rt("1234 label", Ssrc::parse);
        rt("FID 1 2", SsrcGroup::parse);
        rt("q send", Rid::parse);
        rt("h recv pt=96;max-width=640", Rid::parse);
        rt("send q;h;~f", Simulcast::parse);
        rt("send q recv a,b", Simulcast::parse);
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        assert_eq!(RtpMap::parse("1111 opus/48000").unwrap_err().name, "rtpmap");
        assert!(Fingerprint::parse("sha-256 zz:00").is_err());
        assert!(Setup::parse("ACTIVE").is_err());
        assert!(Ssrc::parse("01 cname:x").is_err());
        assert!(Simulcast::parse("up q").is_err());
        let a = Attribute::new("ice-ufrag", Some("ab".into()));
        assert!(a.typed().unwrap_err().expected.contains("4 to 256"));
        assert!(Attribute::flag("rtcp-mux").typed().is_ok());
        assert!(Attribute::new("rtcp-mux", Some("x".into())).typed().is_err());
    }

    #[test]
    fn simulcast_lists_rids() {
        let s = Simulcast::parse("send q;h,~f recv r").unwrap();
        assert_eq!(s.rids(RidDirection::Send), ["q", "h", "f"]);
        assert_eq!(s.rids(RidDirection::Recv), ["r"]);
    }

    #[test]
    fn fmtp_pairs() {
        let f = Fmtp::parse("96 profile-level-id=42e01f;packetization-mode=1;x").unwrap();
        let p: Vec<_> = f.pairs().collect();
        assert_eq!(p[0], ("profile-level-id", Some("42e01f")));
        assert_eq!(p[2], ("x", None));
    }
}
