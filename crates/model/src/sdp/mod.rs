//! SDP (RFC 8866) as WebRTC uses it (JSEP, RFC 9429): a lossless parse and emit.
//!
//! The model keeps every line, in order, as the text it came from: values are `Cow<str>` slices of
//! the input, so parsing allocates only the line vectors, and [`SessionDescription::emit`] gives
//! back the input byte for byte for any well-formed (CRLF) description. Typed views (origin,
//! `m=` lines, and every attribute WebRTC uses through [`Attribute::typed`]) are read from those
//! lines, so nothing is ever normalised away. LF-only input is accepted with a warning and emitted
//! with LF again.
//!
//! ```
//! use peerstorm_model::sdp::SessionDescription;
//! let text = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
//!             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
//!             a=mid:0\r\na=sctp-port:5000\r\n";
//! let sdp = SessionDescription::parse(text).unwrap();
//! assert_eq!(sdp.media[0].mid(), Some("0"));
//! assert_eq!(sdp.emit(), text);
//! ```

mod attr;
mod jsep;
mod parse;

pub use attr::{
    Direction, Extmap, Fingerprint, Fmtp, Group, Msid, MsidSemantic, Rid, RidDirection, RtcpFb, RtpMap, Setup,
    Simulcast, Ssrc, SsrcGroup, TypedAttribute,
};
pub use jsep::{SdpType, check_jsep};
pub use parse::ParseOutput;

use crate::candidate::Candidate;
use crate::diag::Diagnostic;
use std::borrow::Cow;
use std::fmt::Write as _;

/// A strict parse failed: the first error found, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SdpError(pub Diagnostic);

/// How lines end. Well-formed SDP uses CRLF; LF is accepted with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum LineEnding {
    #[default]
    Crlf,
    Lf,
}

impl LineEnding {
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Crlf => "\r\n",
            LineEnding::Lf => "\n",
        }
    }
}

/// A whole session description: session-level lines, then media sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription<'a> {
    /// Session-level lines in input order, `v=` first.
    pub lines: Vec<Line<'a>>,
    pub media: Vec<MediaSection<'a>>,
    pub line_ending: LineEnding,
    /// False only for lenient parses of input whose last line had no line ending.
    pub final_line_ending: bool,
}

/// One media section: its `m=` line and the lines after it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection<'a> {
    pub media: Media<'a>,
    pub lines: Vec<Line<'a>>,
}

/// One `x=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// `v=0`
    Version,
    /// Boxed: it appears once, and keeping it inline would make every line as large as it.
    Origin(Box<Origin<'a>>),
    /// `s=`
    SessionName(Cow<'a, str>),
    Timing(Timing<'a>),
    Connection(Connection<'a>),
    Bandwidth(Bandwidth<'a>),
    Attribute(Attribute<'a>),
    /// Any other line (`i=`, `u=`, `e=`, `p=`, `r=`, `z=`, `k=`, or, in a lenient parse, a line
    /// whose value did not parse), kept as it was.
    Other {
        kind: char,
        value: Cow<'a, str>,
    },
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    pub username: Cow<'a, str>,
    pub session_id: Cow<'a, str>,
    pub session_version: Cow<'a, str>,
    pub net_type: Cow<'a, str>,
    pub addr_type: Cow<'a, str>,
    pub address: Cow<'a, str>,
}

impl Origin<'_> {
    /// The session version as a number (it is digits by RFC 8866 §5.2).
    pub fn session_version_number(&self) -> Option<u64> {
        self.session_version.parse().ok()
    }
}

/// `t=<start-time> <stop-time>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing<'a> {
    pub start: Cow<'a, str>,
    pub stop: Cow<'a, str>,
}

/// `c=<nettype> <addrtype> <connection-address>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    pub net_type: Cow<'a, str>,
    pub addr_type: Cow<'a, str>,
    pub address: Cow<'a, str>,
}

/// `b=<bwtype>:<bandwidth>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth<'a> {
    pub bw_type: Cow<'a, str>,
    pub bandwidth: u64,
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    pub kind: Cow<'a, str>,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: Cow<'a, str>,
    /// The format list as written (space separated); see [`Media::formats`].
    pub formats: Cow<'a, str>,
}

impl Media<'_> {
    pub fn formats(&self) -> impl Iterator<Item = &str> {
        self.formats.split(' ')
    }

    /// True for the SCTP data-channel section (`UDP/DTLS/SCTP webrtc-datachannel`).
    pub fn is_datachannel(&self) -> bool {
        self.kind == "application" && self.proto.ends_with("SCTP")
    }

    /// True for RTP media (`audio`/`video` with an `RTP/...` profile).
    pub fn is_rtp(&self) -> bool {
        self.proto.contains("RTP/")
    }
}

/// `a=<name>[:<value>]`, kept as text; [`Attribute::typed`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub name: Cow<'a, str>,
    pub value: Option<Cow<'a, str>>,
}

impl<'a> Attribute<'a> {
    /// An attribute from its name and value (`a=name:value`).
    pub fn new(name: impl Into<Cow<'a, str>>, value: Option<Cow<'a, str>>) -> Self {
        Self { name: name.into(), value }
    }

    /// A flag attribute (`a=name`).
    pub fn flag(name: impl Into<Cow<'a, str>>) -> Self {
        Self::new(name, None)
    }

    /// An attribute whose value is rendered from a typed value, e.g. a [`Fingerprint`].
    pub fn from_display(name: &'a str, value: &impl std::fmt::Display) -> Self {
        Self::new(name, Some(Cow::Owned(value.to_string())))
    }

    pub fn value_str(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }

    pub fn into_owned(self) -> Attribute<'static> {
        Attribute { name: Cow::Owned(self.name.into_owned()), value: self.value.map(|v| Cow::Owned(v.into_owned())) }
    }
}

impl<'a> SessionDescription<'a> {
    /// Strict parse: the first error ends it. Warnings (LF line endings) do not.
    pub fn parse(text: &'a str) -> Result<Self, SdpError> {
        let out = parse::parse(text);
        match out.diagnostics.into_iter().find(Diagnostic::is_error) {
            Some(d) => Err(SdpError(d)),
            None => Ok(out.sdp),
        }
    }

    /// Lenient parse: always returns a description (lines that did not parse are kept as
    /// [`Line::Other`]) and every diagnostic found, typed attribute checks included.
    pub fn parse_lenient(text: &'a str) -> ParseOutput<'a> {
        parse::parse(text)
    }

    /// The description as text. For a description parsed from well-formed input, this is the
    /// input, byte for byte.
    pub fn emit(&self) -> String {
        let mut out = String::with_capacity(self.estimated_len());
        self.emit_into(&mut out);
        out
    }

    pub fn emit_into(&self, out: &mut String) {
        let eol = self.line_ending.as_str();
        let session = self.lines.iter().map(LineRef::Line);
        let media = self.media.iter().flat_map(MediaSection::all_lines);
        let mut first = true;
        for line in session.chain(media) {
            if !first {
                out.push_str(eol);
            }
            first = false;
            write_line(out, line);
        }
        if !first && self.final_line_ending {
            out.push_str(eol);
        }
    }

    fn estimated_len(&self) -> usize {
        64 * (self.lines.len() + self.media.iter().map(|m| m.lines.len() + 1).sum::<usize>())
    }

    pub fn origin(&self) -> Option<&Origin<'a>> {
        self.lines.iter().find_map(|l| match l {
            Line::Origin(o) => Some(&**o),
            _ => None,
        })
    }

    pub fn session_name(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::SessionName(s) => Some(s.as_ref()),
            _ => None,
        })
    }

    pub fn timing(&self) -> Option<&Timing<'a>> {
        self.lines.iter().find_map(|l| match l {
            Line::Timing(t) => Some(t),
            _ => None,
        })
    }

    /// Session-level attributes in order.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute<'a>> {
        attributes(&self.lines)
    }

    /// The first session-level attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<&Attribute<'a>> {
        self.attributes().find(|a| a.name == name)
    }

    /// `a=group:` lines (e.g. `BUNDLE 0 1 2`).
    pub fn groups(&self) -> impl Iterator<Item = Group<'_>> {
        self.attributes().filter(|a| a.name == "group").filter_map(|a| Group::parse(a.value_str()).ok())
    }

    /// The mids of the first `a=group:BUNDLE`, if any.
    pub fn bundle(&self) -> Option<Vec<&str>> {
        self.groups().find(|g| g.semantics == "BUNDLE").map(|g| g.mids)
    }

    pub fn msid_semantic(&self) -> Option<MsidSemantic<'_>> {
        self.attribute("msid-semantic").and_then(|a| MsidSemantic::parse(a.value_str()).ok())
    }

    /// `a=ice-options:` tokens at session level (e.g. `trickle`).
    pub fn ice_options(&self) -> Vec<&str> {
        self.attribute("ice-options").map(|a| a.value_str().split(' ').collect()).unwrap_or_default()
    }

    pub fn ice_lite(&self) -> bool {
        self.attribute("ice-lite").is_some()
    }

    /// A session-level `a=fingerprint`, if there is one.
    pub fn fingerprint(&self) -> Option<Fingerprint<'_>> {
        self.attribute("fingerprint").and_then(|a| Fingerprint::parse(a.value_str()).ok())
    }

    pub fn setup(&self) -> Option<Setup> {
        self.attribute("setup").and_then(|a| Setup::parse(a.value_str()).ok())
    }

    pub fn ice_ufrag(&self) -> Option<&str> {
        self.attribute("ice-ufrag").map(Attribute::value_str)
    }

    pub fn ice_pwd(&self) -> Option<&str> {
        self.attribute("ice-pwd").map(Attribute::value_str)
    }

    /// The media section with this `a=mid`.
    pub fn media_by_mid(&self, mid: &str) -> Option<&MediaSection<'a>> {
        self.media.iter().find(|m| m.mid() == Some(mid))
    }

    /// Every candidate of every media section, with the section's index; unparsable ones skipped
    /// (a lenient parse reports them).
    pub fn candidates(&self) -> impl Iterator<Item = (usize, Candidate<'_>)> {
        self.media.iter().enumerate().flat_map(|(i, m)| m.candidates().map(move |c| (i, c)))
    }

    /// A copy that borrows nothing from the input.
    pub fn into_owned(self) -> SessionDescription<'static> {
        SessionDescription {
            lines: self.lines.into_iter().map(Line::into_owned).collect(),
            media: self
                .media
                .into_iter()
                .map(|m| MediaSection {
                    media: m.media.into_owned(),
                    lines: m.lines.into_iter().map(Line::into_owned).collect(),
                })
                .collect(),
            line_ending: self.line_ending,
            final_line_ending: self.final_line_ending,
        }
    }
}

impl<'a> MediaSection<'a> {
    fn all_lines(&self) -> impl Iterator<Item = LineRef<'_, 'a>> {
        std::iter::once(LineRef::Media(&self.media)).chain(self.lines.iter().map(LineRef::Line))
    }

    pub fn attributes(&self) -> impl Iterator<Item = &Attribute<'a>> {
        attributes(&self.lines)
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute<'a>> {
        self.attributes().find(|a| a.name == name)
    }

    /// Every attribute with this name, in order.
    pub fn attributes_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Attribute<'a>> + 's {
        self.attributes().filter(move |a| a.name == name)
    }

    pub fn connection(&self) -> Option<&Connection<'a>> {
        self.lines.iter().find_map(|l| match l {
            Line::Connection(c) => Some(c),
            _ => None,
        })
    }

    pub fn mid(&self) -> Option<&str> {
        self.attribute("mid").map(Attribute::value_str)
    }

    /// The direction attribute; none means `sendrecv` (RFC 8866 §6.7).
    pub fn direction(&self) -> Option<Direction> {
        self.attributes().find_map(|a| Direction::from_name(&a.name))
    }

    pub fn ice_ufrag(&self) -> Option<&str> {
        self.attribute("ice-ufrag").map(Attribute::value_str)
    }

    pub fn ice_pwd(&self) -> Option<&str> {
        self.attribute("ice-pwd").map(Attribute::value_str)
    }

    pub fn ice_options(&self) -> Vec<&str> {
        self.attribute("ice-options").map(|a| a.value_str().split(' ').collect()).unwrap_or_default()
    }

    pub fn fingerprint(&self) -> Option<Fingerprint<'_>> {
        self.attribute("fingerprint").and_then(|a| Fingerprint::parse(a.value_str()).ok())
    }

    pub fn setup(&self) -> Option<Setup> {
        self.attribute("setup").and_then(|a| Setup::parse(a.value_str()).ok())
    }

    pub fn rtcp_mux(&self) -> bool {
        self.attribute("rtcp-mux").is_some()
    }

    pub fn rtcp_rsize(&self) -> bool {
        self.attribute("rtcp-rsize").is_some()
    }

    pub fn sctp_port(&self) -> Option<u16> {
        self.attribute("sctp-port").and_then(|a| a.value_str().parse().ok())
    }

    pub fn max_message_size(&self) -> Option<u64> {
        self.attribute("max-message-size").and_then(|a| a.value_str().parse().ok())
    }

    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap<'_>> {
        self.attributes_named("rtpmap").filter_map(|a| RtpMap::parse(a.value_str()).ok())
    }

    pub fn fmtps(&self) -> impl Iterator<Item = Fmtp<'_>> {
        self.attributes_named("fmtp").filter_map(|a| Fmtp::parse(a.value_str()).ok())
    }

    pub fn rtcp_fbs(&self) -> impl Iterator<Item = RtcpFb<'_>> {
        self.attributes_named("rtcp-fb").filter_map(|a| RtcpFb::parse(a.value_str()).ok())
    }

    pub fn extmaps(&self) -> impl Iterator<Item = Extmap<'_>> {
        self.attributes_named("extmap").filter_map(|a| Extmap::parse(a.value_str()).ok())
    }

    pub fn msids(&self) -> impl Iterator<Item = Msid<'_>> {
        self.attributes_named("msid").filter_map(|a| Msid::parse(a.value_str()).ok())
    }

    pub fn ssrcs(&self) -> impl Iterator<Item = Ssrc<'_>> {
        self.attributes_named("ssrc").filter_map(|a| Ssrc::parse(a.value_str()).ok())
    }

    pub fn ssrc_groups(&self) -> impl Iterator<Item = SsrcGroup<'_>> {
        self.attributes_named("ssrc-group").filter_map(|a| SsrcGroup::parse(a.value_str()).ok())
    }

    pub fn rids(&self) -> impl Iterator<Item = Rid<'_>> {
        self.attributes_named("rid").filter_map(|a| Rid::parse(a.value_str()).ok())
    }

    pub fn simulcast(&self) -> Option<Simulcast<'_>> {
        self.attribute("simulcast").and_then(|a| Simulcast::parse(a.value_str()).ok())
    }

    /// `a=candidate` lines that parse.
    pub fn candidates(&self) -> impl Iterator<Item = Candidate<'_>> {
        self.attributes_named("candidate").filter_map(|a| Candidate::parse_value(a.value_str()).ok())
    }

    pub fn end_of_candidates(&self) -> bool {
        self.attribute("end-of-candidates").is_some()
    }
}

fn attributes<'s, 'a>(lines: &'s [Line<'a>]) -> impl Iterator<Item = &'s Attribute<'a>> {
    lines.iter().filter_map(|l| match l {
        Line::Attribute(a) => Some(a),
        _ => None,
    })
}

enum LineRef<'s, 'a> {
    Media(&'s Media<'a>),
    Line(&'s Line<'a>),
}

fn write_line(out: &mut String, line: LineRef<'_, '_>) {
    match line {
        LineRef::Media(m) => {
            out.push_str("m=");
            out.push_str(&m.kind);
            out.push(' ');
            push_num(out, u64::from(m.port));
            if let Some(c) = m.port_count {
                out.push('/');
                push_num(out, u64::from(c));
            }
            out.push(' ');
            out.push_str(&m.proto);
            out.push(' ');
            out.push_str(&m.formats);
        }
        LineRef::Line(l) => match l {
            Line::Version => out.push_str("v=0"),
            Line::Origin(o) => {
                out.push_str("o=");
                for (i, f) in [&o.username, &o.session_id, &o.session_version, &o.net_type, &o.addr_type, &o.address]
                    .into_iter()
                    .enumerate()
                {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(f);
                }
            }
            Line::SessionName(s) => {
                out.push_str("s=");
                out.push_str(s);
            }
            Line::Timing(t) => {
                out.push_str("t=");
                out.push_str(&t.start);
                out.push(' ');
                out.push_str(&t.stop);
            }
            Line::Connection(c) => {
                out.push_str("c=");
                out.push_str(&c.net_type);
                out.push(' ');
                out.push_str(&c.addr_type);
                out.push(' ');
                out.push_str(&c.address);
            }
            Line::Bandwidth(b) => {
                out.push_str("b=");
                out.push_str(&b.bw_type);
                out.push(':');
                push_num(out, b.bandwidth);
            }
            Line::Attribute(a) => {
                out.push_str("a=");
                out.push_str(&a.name);
                if let Some(v) = &a.value {
                    out.push(':');
                    out.push_str(v);
                }
            }
            Line::Other { kind, value } => {
                out.push(*kind);
                out.push('=');
                out.push_str(value);
            }
        },
    }
}

fn push_num(out: &mut String, n: u64) {
    // `write!` into a String cannot fail.
    let _ = write!(out, "{n}");
}

impl Line<'_> {
    pub fn into_owned(self) -> Line<'static> {
        fn o(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Line::Version => Line::Version,
            Line::Origin(x) => Line::Origin(Box::new(Origin {
                username: o(x.username),
                session_id: o(x.session_id),
                session_version: o(x.session_version),
                net_type: o(x.net_type),
                addr_type: o(x.addr_type),
                address: o(x.address),
            })),
            Line::SessionName(s) => Line::SessionName(o(s)),
            Line::Timing(t) => Line::Timing(Timing { start: o(t.start), stop: o(t.stop) }),
            Line::Connection(c) => Line::Connection(Connection {
                net_type: o(c.net_type),
                addr_type: o(c.addr_type),
                address: o(c.address),
            }),
            Line::Bandwidth(b) => Line::Bandwidth(Bandwidth { bw_type: o(b.bw_type), bandwidth: b.bandwidth }),
            Line::Attribute(a) => Line::Attribute(a.into_owned()),
            Line::Other { kind, value } => Line::Other { kind, value: o(value) },
        }
    }
}

impl Media<'_> {
    pub fn into_owned(self) -> Media<'static> {
        Media {
            kind: Cow::Owned(self.kind.into_owned()),
            port: self.port,
            port_count: self.port_count,
            proto: Cow::Owned(self.proto.into_owned()),
            formats: Cow::Owned(self.formats.into_owned()),
        }
    }
}

impl std::fmt::Display for SessionDescription<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.emit())
    }
}
