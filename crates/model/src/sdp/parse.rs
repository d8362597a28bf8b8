//! Line splitting and the typed reading of `v o s t c b m a` lines.
//!
//! Every typed field is a slice of the input, and numbers are accepted only in their canonical
//! form (no sign, no leading zero), so that emitting the parsed description reproduces the input.

use super::{
    Attribute, Bandwidth, Connection, Line, LineEnding, Media, MediaSection, Origin, SessionDescription, Timing,
};
use crate::diag::Diagnostic;
use std::borrow::Cow;

/// What a lenient parse returns: the description and everything found on the way.
#[derive(Debug, Clone)]
pub struct ParseOutput<'a> {
    pub sdp: SessionDescription<'a>,
    pub diagnostics: Vec<Diagnostic>,
}

impl ParseOutput<'_> {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The type letters RFC 8866 §5 defines.
const KNOWN_LETTERS: &str = "vosiuepcbtrzkam";

pub(super) fn parse(text: &str) -> ParseOutput<'_> {
    let mut diags = Vec::new();
    let mut sdp = SessionDescription { final_line_ending: true, ..Default::default() };
    if text.is_empty() {
        diags.push(Diagnostic::error("sdp.empty", 0, 0, "the description is empty").expected("v=0"));
        return ParseOutput { sdp, diagnostics: diags };
    }
    sdp.line_ending = detect_line_endings(text, &mut diags);
    let body = match text.strip_suffix('\n') {
        Some(b) => b,
        None => {
            sdp.final_line_ending = false;
            diags.push(
                Diagnostic::warning("sdp.final-line-ending", 0, 0, "the last line has no line ending").expected("CRLF"),
            );
            text
        }
    };
    let mut current: Option<MediaSection<'_>> = None;
    let mut seen_version = false;
    for (idx, raw) in body.split('\n').enumerate() {
        let lineno = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let Some(parsed) = parse_line(line, lineno, &mut diags) else {
            continue;
        };
        if idx == 0 && !matches!(parsed, ParsedLine::Line(Line::Version)) {
            diags.push(
                Diagnostic::error("sdp.version.first", 1, 1, "the first line must be the version line").expected("v=0"),
            );
        }
        match parsed {
            ParsedLine::Media(m) => {
                if let Some(done) = current.take() {
                    sdp.media.push(done);
                }
                current = Some(MediaSection { media: m, lines: Vec::new() });
            }
            ParsedLine::Line(l) => {
                if let Line::Attribute(a) = &l {
                    super::attr::check_attribute(a, lineno, &mut diags);
                }
                if matches!(l, Line::Version) {
                    if seen_version {
                        diags.push(Diagnostic::error("sdp.version.repeated", lineno, 1, "a second v= line"));
                    }
                    seen_version = true;
                }
                match current.as_mut() {
                    Some(m) => {
                        if is_session_only(&l) {
                            diags.push(Diagnostic::error(
                                "sdp.order",
                                lineno,
                                1,
                                "a session-level line inside a media section",
                            ));
                        }
                        m.lines.push(l);
                    }
                    None => sdp.lines.push(l),
                }
            }
        }
    }
    if let Some(done) = current.take() {
        sdp.media.push(done);
    }
    check_required(&sdp, &mut diags);
    ParseOutput { sdp, diagnostics: diags }
}

fn detect_line_endings(text: &str, diags: &mut Vec<Diagnostic>) -> LineEnding {
    let bytes = text.as_bytes();
    let (mut newlines, mut crlf) = (0usize, 0usize);
    for i in memchr_all(bytes) {
        newlines += 1;
        crlf += usize::from(i > 0 && bytes[i - 1] == b'\r');
    }
    if newlines == 0 || crlf == newlines {
        LineEnding::Crlf
    } else if crlf == 0 {
        diags.push(Diagnostic::warning("sdp.line-ending", 0, 0, "lines end with LF only; kept as LF").expected("CRLF"));
        LineEnding::Lf
    } else {
        diags.push(
            Diagnostic::error(
                "sdp.line-ending.mixed",
                0,
                0,
                format!("{crlf} lines end with CRLF and {} with LF only", newlines - crlf),
            )
            .expected("CRLF on every line"),
        );
        LineEnding::Crlf
    }
}

/// Positions of every `\n`.
fn memchr_all(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n').map(|(i, _)| i)
}

enum ParsedLine<'a> {
    Media(Media<'a>),
    Line(Line<'a>),
}

fn is_session_only(l: &Line<'_>) -> bool {
    matches!(l, Line::Version | Line::Origin(_) | Line::SessionName(_) | Line::Timing(_))
        || matches!(l, Line::Other { kind, .. } if "uepzrk".contains(*kind))
}

fn parse_line<'a>(line: &'a str, lineno: usize, diags: &mut Vec<Diagnostic>) -> Option<ParsedLine<'a>> {
    let bytes = line.as_bytes();
    if bytes.is_empty() {
        diags.push(Diagnostic::error("sdp.line.empty", lineno, 1, "an empty line").expected("<type>=<value>"));
        return None;
    }
    if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
        diags.push(
            Diagnostic::error("sdp.line.syntax", lineno, 1, format!("not an SDP line: {:?}", truncate(line)))
                .expected("<type>=<value> with a lowercase type letter"),
        );
        return None;
    }
    let kind = bytes[0] as char;
    let value = &line[2..];
    let other = |diags: &mut Vec<Diagnostic>, d: Diagnostic| {
        diags.push(d);
        Some(ParsedLine::Line(Line::Other { kind, value: Cow::Borrowed(value) }))
    };
    let result = match kind {
        'v' => {
            if value == "0" {
                Ok(ParsedLine::Line(Line::Version))
            } else {
                Err(Diagnostic::error("sdp.version", lineno, 3, format!("unsupported version {value:?}")).expected("0"))
            }
        }
        'o' => parse_origin(value, lineno).map(|o| ParsedLine::Line(Line::Origin(Box::new(o)))),
        's' => Ok(ParsedLine::Line(Line::SessionName(Cow::Borrowed(value)))),
        't' => parse_timing(value, lineno).map(|t| ParsedLine::Line(Line::Timing(t))),
        'c' => parse_connection(value, lineno).map(|c| ParsedLine::Line(Line::Connection(c))),
        'b' => parse_bandwidth(value, lineno).map(|b| ParsedLine::Line(Line::Bandwidth(b))),
        'm' => parse_media(value, lineno).map(ParsedLine::Media),
        'a' => parse_attribute(value, lineno).map(|a| ParsedLine::Line(Line::Attribute(a))),
        _ => {
            if !KNOWN_LETTERS.contains(kind) {
                diags.push(Diagnostic::warning(
                    "sdp.line.unknown-type",
                    lineno,
                    1,
                    format!("unknown type letter '{kind}'; kept as it is"),
                ));
            }
            Ok(ParsedLine::Line(Line::Other { kind, value: Cow::Borrowed(value) }))
        }
    };
    match result {
        Ok(p) => Some(p),
        Err(d) if kind == 'm' => {
            // A media line that does not parse cannot start a section; report and drop it.
            diags.push(d);
            None
        }
        Err(d) => other(diags, d),
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Splits on single spaces; `None` if any field is empty (two spaces in a row, or a space at an
/// end), which well-formed SDP never has.
fn fields(value: &str) -> Option<Vec<&str>> {
    let v: Vec<&str> = value.split(' ').collect();
    if v.iter().any(|f| f.is_empty()) { None } else { Some(v) }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_origin(value: &str, lineno: usize) -> Result<Origin<'_>, Diagnostic> {
    let err = |msg: String| {
        Diagnostic::error("sdp.origin", lineno, 3, msg)
            .expected("<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>")
    };
    let f = fields(value).ok_or_else(|| err("fields must be separated by single spaces".into()))?;
    if f.len() != 6 {
        return Err(err(format!("{} fields", f.len())));
    }
    if !digits(f[1]) || !digits(f[2]) {
        return Err(err("sess-id and sess-version must be digits".into()));
    }
    Ok(Origin {
        username: Cow::Borrowed(f[0]),
        session_id: Cow::Borrowed(f[1]),
        session_version: Cow::Borrowed(f[2]),
        net_type: Cow::Borrowed(f[3]),
        addr_type: Cow::Borrowed(f[4]),
        address: Cow::Borrowed(f[5]),
    })
}

fn parse_timing(value: &str, lineno: usize) -> Result<Timing<'_>, Diagnostic> {
    match fields(value).as_deref() {
        Some([start, stop]) if digits(start) && digits(stop) => {
            Ok(Timing { start: Cow::Borrowed(start), stop: Cow::Borrowed(stop) })
        }
        _ => Err(Diagnostic::error("sdp.timing", lineno, 3, format!("bad timing {value:?}"))
            .expected("<start-time> <stop-time>")),
    }
}

fn parse_connection(value: &str, lineno: usize) -> Result<Connection<'_>, Diagnostic> {
    match fields(value).as_deref() {
        Some([n, a, addr]) => {
            Ok(Connection { net_type: Cow::Borrowed(n), addr_type: Cow::Borrowed(a), address: Cow::Borrowed(addr) })
        }
        _ => Err(Diagnostic::error("sdp.connection", lineno, 3, format!("bad connection line {value:?}"))
            .expected("<nettype> <addrtype> <connection-address>")),
    }
}

fn parse_bandwidth(value: &str, lineno: usize) -> Result<Bandwidth<'_>, Diagnostic> {
    let parsed = value.split_once(':').and_then(|(t, n)| {
        let ok = !t.is_empty() && t.bytes().all(is_token_char);
        Some(Bandwidth { bw_type: Cow::Borrowed(t), bandwidth: crate::sdp_number(n).filter(|_| ok)? })
    });
    parsed.ok_or_else(|| {
        Diagnostic::error("sdp.bandwidth", lineno, 3, format!("bad bandwidth line {value:?}"))
            .expected("<bwtype>:<bandwidth>")
    })
}

fn parse_media(value: &str, lineno: usize) -> Result<Media<'_>, Diagnostic> {
    let err = |msg: String| {
        Diagnostic::error("sdp.media", lineno, 3, msg).expected("<media> <port>[/<number of ports>] <proto> <fmt> ...")
    };
    let mut it = value.splitn(4, ' ');
    let (Some(kind), Some(port), Some(proto), Some(formats)) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(err(format!("too few fields in {value:?}")));
    };
    if kind.is_empty() || proto.is_empty() || fields(formats).is_none() {
        return Err(err("fields must be separated by single spaces".into()));
    }
    let (port, count) = match port.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port, None),
    };
    let num = |s: &str| crate::sdp_number(s).and_then(|n| u16::try_from(n).ok());
    let port = num(port).ok_or_else(|| err(format!("bad port {port:?}")))?;
    let port_count = match count {
        Some(c) => Some(num(c).ok_or_else(|| err(format!("bad number of ports {c:?}")))?),
        None => None,
    };
    Ok(Media {
        kind: Cow::Borrowed(kind),
        port,
        port_count,
        proto: Cow::Borrowed(proto),
        formats: Cow::Borrowed(formats),
    })
}

/// RFC 8866 §9 `token-char`.
pub(crate) fn is_token_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

fn parse_attribute(value: &str, lineno: usize) -> Result<Attribute<'_>, Diagnostic> {
    let (name, val) = match value.split_once(':') {
        Some((n, v)) => (n, Some(Cow::Borrowed(v))),
        None => (value, None),
    };
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(Diagnostic::error(
            "sdp.attribute.name",
            lineno,
            3,
            format!("bad attribute name {:?}", truncate(name)),
        )
        .expected("a token, e.g. a=mid:0"));
    }
    Ok(Attribute { name: Cow::Borrowed(name), value: val })
}

fn check_required(sdp: &SessionDescription<'_>, diags: &mut Vec<Diagnostic>) {
    let has = |f: fn(&Line<'_>) -> bool| sdp.lines.iter().any(f);
    if !has(|l| matches!(l, Line::Origin(_))) {
        diags.push(Diagnostic::error("sdp.origin.missing", 0, 0, "no o= line").expected("o=<username> <sess-id> ..."));
    }
    if !has(|l| matches!(l, Line::SessionName(_))) {
        diags.push(Diagnostic::error("sdp.session-name.missing", 0, 0, "no s= line").expected("s=-"));
    }
    if !has(|l| matches!(l, Line::Timing(_))) {
        diags.push(Diagnostic::error("sdp.timing.missing", 0, 0, "no t= line").expected("t=0 0"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    fn lenient(s: &str) -> Vec<&'static str> {
        parse(s).diagnostics.iter().map(|d| d.code).collect()
    }

    #[test]
    fn minimal_round_trip() {
        let p = parse(MIN);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(p.sdp.emit(), MIN);
    }

    #[test]
    fn lf_only_is_a_warning_and_kept() {
        let lf = MIN.replace("\r\n", "\n");
        let p = parse(&lf);
        assert_eq!(p.sdp.line_ending, LineEnding::Lf);
        assert_eq!(p.diagnostics.len(), 1);
        assert!(!p.diagnostics[0].is_error());
        assert_eq!(p.sdp.emit(), lf);
    }

    #[test]
    fn mixed_line_endings_are_an_error() {
        assert!(lenient("v=0\r\no=- 1 2 IN IP4 127.0.0.1\ns=-\r\nt=0 0\r\n").contains(&"sdp.line-ending.mixed"));
    }

    #[test]
    fn missing_final_newline_is_kept() {
        let s = MIN.trim_end();
        let p = parse(s);
        assert_eq!(p.sdp.emit(), s);
        assert_eq!(lenient(s), vec!["sdp.final-line-ending"]);
    }

    #[test]
    fn errors_carry_line_and_expectation() {
        let s = "v=0\r\no=- 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        let err = SessionDescription::parse(s).unwrap_err().0;
        assert_eq!((err.code, err.line), ("sdp.origin", 2));
        assert!(err.expected.unwrap().contains("sess-version"));
    }

    #[test]
    fn lenient_reports_every_problem() {
        let s = "v=1\r\no=x\r\ns=-\r\nt=zero 0\r\nm=audio x RTP/AVP 0\r\na=\r\n";
        let codes = lenient(s);
        for c in ["sdp.version", "sdp.origin", "sdp.timing", "sdp.media", "sdp.attribute.name"] {
            assert!(codes.contains(&c), "{c} missing from {codes:?}");
        }
    }

    #[test]
    fn non_canonical_numbers_are_rejected() {
        assert!(parse_media("audio 09 RTP/AVP 0", 1).is_err());
        assert!(parse_media("audio 9/02 RTP/AVP 0", 1).is_err());
        assert!(parse_bandwidth("AS:+5", 1).is_err());
        assert_eq!(parse_media("audio 9/2 RTP/AVP 0 8", 1).unwrap().port_count, Some(2));
    }

    #[test]
    fn session_lines_inside_media_are_errors() {
        let s = format!("{MIN}m=audio 9 RTP/AVP 0\r\nt=0 0\r\n");
        assert!(lenient(&s).contains(&"sdp.order"));
    }
}
