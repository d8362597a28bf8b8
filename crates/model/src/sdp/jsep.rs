//! JSEP (RFC 9429) checks of an offer or an answer: what a WebRTC endpoint needs before it can
//! apply the description. Each finding is a [`Diagnostic`] with `line` pointing at the `m=` line
//! of the section concerned (or 0 for the session).

use super::{Line, MediaSection, SessionDescription, Setup};
use crate::diag::Diagnostic;
use std::collections::BTreeSet;

/// Which side of the offer/answer exchange a description is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    Offer,
    Answer,
    Pranswer,
}

impl SdpType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "offer" => SdpType::Offer,
            "answer" => SdpType::Answer,
            "pranswer" => SdpType::Pranswer,
            _ => return None,
        })
    }
}

/// The 1-based line number of each media section's `m=` line.
fn media_lines(sdp: &SessionDescription<'_>) -> Vec<usize> {
    let mut n = sdp.lines.len();
    sdp.media
        .iter()
        .map(|m| {
            let at = n + 1;
            n += 1 + m.lines.len();
            at
        })
        .collect()
}

/// Checks `sdp` as a JSEP description of type `kind`. `kind = None` runs the checks common to
/// both sides.
pub fn check_jsep(sdp: &SessionDescription<'_>, kind: Option<SdpType>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let lines = media_lines(sdp);
    let mut mids = BTreeSet::new();
    let session_conn = sdp.lines.iter().any(|l| matches!(l, Line::Connection(_)));
    for (m, &line) in sdp.media.iter().zip(&lines) {
        check_section(sdp, m, line, kind, session_conn, &mut out);
        if let Some(mid) = m.mid()
            && !mids.insert(mid)
        {
            out.push(Diagnostic::error(
                "jsep.duplicate-mid",
                line,
                1,
                format!("a=mid:{mid} is used by more than one section"),
            ));
        }
    }
    for g in sdp.groups().filter(|g| g.semantics == "BUNDLE") {
        for mid in &g.mids {
            if !mids.contains(mid) {
                out.push(Diagnostic::error(
                    "jsep.bundle-missing-mid",
                    0,
                    0,
                    format!("a=group:BUNDLE names mid {mid:?}, which no section has"),
                ));
            }
        }
    }
    if sdp.media.is_empty() {
        out.push(Diagnostic::warning("jsep.no-media", 0, 0, "the description has no media sections"));
    }
    out
}

fn check_section(
    sdp: &SessionDescription<'_>,
    m: &MediaSection<'_>,
    line: usize,
    kind: Option<SdpType>,
    session_conn: bool,
    out: &mut Vec<Diagnostic>,
) {
    let name = format!("m={} section", m.media.kind);
    let rejected = m.media.port == 0 && m.attribute("bundle-only").is_none();
    if m.mid().is_none() {
        out.push(
            Diagnostic::error("jsep.missing-mid", line, 1, format!("{name} has no a=mid"))
                .expected("a=mid:<tag> (RFC 9429 §5.2.1)"),
        );
    }
    if rejected {
        return;
    }
    if !session_conn && m.connection().is_none() {
        out.push(Diagnostic::error(
            "jsep.missing-connection",
            line,
            1,
            format!("{name} has no c= line and the session has none"),
        ));
    }
    if m.ice_ufrag().or(sdp.ice_ufrag()).is_none() {
        out.push(
            Diagnostic::error("jsep.missing-ice-ufrag", line, 1, format!("{name} has no a=ice-ufrag"))
                .expected("a=ice-ufrag (RFC 8839 §5.4)"),
        );
    }
    if m.ice_pwd().or(sdp.ice_pwd()).is_none() {
        out.push(
            Diagnostic::error("jsep.missing-ice-pwd", line, 1, format!("{name} has no a=ice-pwd"))
                .expected("a=ice-pwd (RFC 8839 §5.4)"),
        );
    }
    if m.fingerprint().or(sdp.fingerprint()).is_none() {
        out.push(
            Diagnostic::error("jsep.missing-fingerprint", line, 1, format!("{name} has no a=fingerprint"))
                .expected("a=fingerprint (RFC 8122, RFC 8842)"),
        );
    }
    match (m.setup().or(sdp.setup()), kind) {
        (None, _) => out.push(
            Diagnostic::error("jsep.missing-setup", line, 1, format!("{name} has no a=setup"))
                .expected("a=setup (RFC 8842 §5)"),
        ),
        (Some(s), Some(SdpType::Offer)) if s != Setup::Actpass => out.push(
            Diagnostic::warning("jsep.offer-setup", line, 1, format!("an offer with a=setup:{s}"))
                .expected("actpass (RFC 9429 §5.2.1)"),
        ),
        (Some(s), Some(SdpType::Answer | SdpType::Pranswer)) if !matches!(s, Setup::Active | Setup::Passive) => out
            .push(
                Diagnostic::error("jsep.answer-setup", line, 1, format!("an answer with a=setup:{s}"))
                    .expected("active or passive (RFC 8842 §5.3)"),
            ),
        _ => {}
    }
    if m.attributes().filter(|a| super::Direction::from_name(&a.name).is_some()).count() > 1 {
        out.push(Diagnostic::error(
            "jsep.directions",
            line,
            1,
            format!("{name} has more than one direction attribute"),
        ));
    }
    if m.media.is_datachannel() && m.sctp_port().is_none() {
        out.push(
            Diagnostic::error("jsep.missing-sctp-port", line, 1, format!("{name} has no a=sctp-port"))
                .expected("a=sctp-port (RFC 8841 §5)"),
        );
    }
    if m.media.is_rtp() {
        if !m.rtcp_mux() {
            out.push(
                Diagnostic::error("jsep.missing-rtcp-mux", line, 1, format!("{name} has no a=rtcp-mux"))
                    .expected("a=rtcp-mux (RFC 9429 §5.2.1)"),
            );
        }
        let formats: BTreeSet<&str> = m.media.formats().collect();
        for r in m.rtpmaps() {
            if !formats.contains(r.payload_type.to_string().as_str()) {
                out.push(Diagnostic::error(
                    "jsep.rtpmap-unlisted",
                    line,
                    1,
                    format!("a=rtpmap:{} names a payload type the m= line does not list", r.payload_type),
                ));
            }
        }
        for f in m.fmtps() {
            if !formats.contains(f.format) {
                out.push(Diagnostic::error(
                    "jsep.fmtp-unlisted",
                    line,
                    1,
                    format!("a=fmtp:{} names a payload type the m= line does not list", f.format),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789012345678901\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\na=mid:0\r\n\
a=sctp-port:5000\r\n";

    fn codes(text: &str, kind: SdpType) -> Vec<&'static str> {
        let sdp = SessionDescription::parse(text).unwrap();
        check_jsep(&sdp, Some(kind)).into_iter().map(|d| d.code).collect()
    }

    #[test]
    fn a_good_offer_passes() {
        assert!(codes(OFFER, SdpType::Offer).is_empty());
    }

    #[test]
    fn each_missing_piece_is_named() {
        for (line, code) in [
            ("a=ice-ufrag:abcd\r\n", "jsep.missing-ice-ufrag"),
            ("a=ice-pwd:0123456789012345678901\r\n", "jsep.missing-ice-pwd"),
            ("a=fingerprint:sha-256 AB:CD\r\n", "jsep.missing-fingerprint"),
            ("a=setup:actpass\r\n", "jsep.missing-setup"),
            ("a=sctp-port:5000\r\n", "jsep.missing-sctp-port"),
            ("c=IN IP4 0.0.0.0\r\n", "jsep.missing-connection"),
        ] {
            let text = OFFER.replace(line, "");
            assert!(codes(&text, SdpType::Offer).contains(&code), "{code}");
        }
        let text = OFFER.replace("a=mid:0\r\n", "");
        let c = codes(&text, SdpType::Offer);
        assert!(c.contains(&"jsep.missing-mid") && c.contains(&"jsep.bundle-missing-mid"), "{c:?}");
    }

    #[test]
    fn setup_roles_follow_the_side() {
        assert!(codes(OFFER, SdpType::Answer).contains(&"jsep.answer-setup"));
        let answer = OFFER.replace("actpass", "active");
        assert!(codes(&answer, SdpType::Answer).is_empty());
        assert!(codes(&answer, SdpType::Offer).contains(&"jsep.offer-setup"));
    }
}
