//! Every SDP and candidate Chromium produced (golden files under `fixtures/chromium/`, made by
//! `tools/js/gen-sdp.mjs`) parses strictly, passes the JSEP checks, and emits byte for byte.

use peerstorm_model::candidate::{Candidate, IceCandidateInit};
use peerstorm_model::sdp::{SdpType, SessionDescription, check_jsep};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../fixtures/chromium")
}

fn sdp_files() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(fixtures())
        .expect("fixtures/chromium exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sdp"))
        .collect();
    v.sort();
    v
}

#[test]
fn there_are_enough_fixtures() {
    let names: Vec<String> =
        sdp_files().iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["datachannel-offer", "av-data-offer", "simulcast-offer", "ice-restart-offer", "multi-mline-offer"] {
        assert!(names.iter().any(|n| n == want), "missing fixture {want}: {names:?}");
    }
}

#[test]
fn every_chromium_sdp_round_trips_byte_for_byte() {
    for path in sdp_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\r\n"), "{path:?} should be CRLF as Chromium writes it");
        let sdp = SessionDescription::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(sdp.emit(), text, "{path:?} did not round-trip");
        let lenient = SessionDescription::parse_lenient(&text);
        assert!(lenient.diagnostics.is_empty(), "{path:?}: {:?}", lenient.diagnostics);
        let owned = sdp.clone().into_owned();
        assert_eq!(owned.emit(), text);
    }
}

#[test]
fn every_chromium_sdp_passes_jsep_checks() {
    for path in sdp_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let sdp = SessionDescription::parse(&text).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let kind = if name.contains("answer") { SdpType::Answer } else { SdpType::Offer };
        let diags = check_jsep(&sdp, Some(kind));
        assert!(diags.is_empty(), "{name}: {diags:?}");
    }
}

#[test]
fn typed_views_see_what_chromium_wrote() {
    let text = std::fs::read_to_string(fixtures().join("av-data-offer.sdp")).unwrap();
    let sdp = SessionDescription::parse(&text).unwrap();
    assert_eq!(sdp.media.len(), 3);
    assert_eq!(sdp.bundle().unwrap(), ["0", "1", "2"]);
    assert_eq!(sdp.msid_semantic().unwrap().semantics, "WMS");
    let audio = &sdp.media[0];
    assert_eq!(audio.media.kind, "audio");
    assert!(audio.rtcp_mux() && audio.rtcp_rsize());
    assert!(audio.rtpmaps().any(|r| r.encoding == "opus" && r.clock_rate == 48000));
    assert!(audio.ssrcs().any(|s| s.attribute == "cname"));
    assert_eq!(audio.fingerprint().unwrap().bytes().len(), 32);
    let data = &sdp.media[2];
    assert!(data.media.is_datachannel());
    assert_eq!(data.sctp_port(), Some(5000));
    assert!(data.max_message_size().is_some());
    assert!(sdp.candidates().count() >= 3, "vanilla offers carry candidates");

    let text = std::fs::read_to_string(fixtures().join("simulcast-offer.sdp")).unwrap();
    let sdp = SessionDescription::parse(&text).unwrap();
    let video = &sdp.media[0];
    assert_eq!(video.rids().map(|r| r.id).collect::<Vec<_>>(), ["q", "h", "f"]);
    assert_eq!(video.simulcast().unwrap().rids(peerstorm_model::sdp::RidDirection::Send), ["q", "h", "f"]);

    let base = std::fs::read_to_string(fixtures().join("restart-base-offer.sdp")).unwrap();
    let restart = std::fs::read_to_string(fixtures().join("ice-restart-offer.sdp")).unwrap();
    let (base, restart) = (SessionDescription::parse(&base).unwrap(), SessionDescription::parse(&restart).unwrap());
    assert_ne!(base.media[0].ice_ufrag(), restart.media[0].ice_ufrag(), "an ICE restart changes the ufrag");
    assert!(restart.origin().unwrap().session_version_number() > base.origin().unwrap().session_version_number());
}

#[test]
fn every_chromium_candidate_round_trips() {
    let text = std::fs::read_to_string(fixtures().join("candidates.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let init = IceCandidateInit::from_json(line).unwrap();
        let c = init.parsed().expect("not an end-of-candidates marker").unwrap();
        assert_eq!(c.to_string(), init.candidate);
        assert_eq!(Candidate::parse(&format!("a={}", init.candidate)).unwrap(), c);
        assert_eq!(c.ufrag(), init.username_fragment.as_deref());
        n += 1;
    }
    assert!(n >= 10, "only {n} candidates");
}
