//! `peerstorm inspect` end to end: exit codes, byte-identical `--emit` of every golden Chromium
//! SDP, and golden `--json` summaries (regenerate with `UPDATE_GOLDEN=1 cargo test`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..")
}

fn peerstorm(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn chromium_sdps() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("fixtures/chromium"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sdp"))
        .collect();
    v.sort();
    v
}

#[test]
fn emit_reproduces_every_chromium_sdp_byte_for_byte() {
    let files = chromium_sdps();
    assert!(files.len() >= 10);
    for f in files {
        let text = std::fs::read(&f).unwrap();
        let out = peerstorm(&["inspect", "sdp", f.to_str().unwrap(), "--emit"], None);
        assert_eq!(out.status.code(), Some(0), "{f:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == text, "{f:?}: --emit differs from the input");
        // Through standard input too.
        let out = peerstorm(&["inspect", "sdp", "-", "--emit"], Some(&text));
        assert!(out.stdout == text);
    }
}

#[test]
fn json_summaries_match_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for name in ["av-data-offer", "simulcast-offer", "datachannel-answer", "ice-restart-offer"] {
        let f = root().join(format!("fixtures/chromium/{name}.sdp"));
        let kind = if name.contains("answer") { "answer" } else { "offer" };
        let out = peerstorm(&["inspect", "sdp", f.to_str().unwrap(), "--json", "--type", kind], None);
        assert_eq!(out.status.code(), Some(0));
        let golden = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/inspect-{name}.json"));
        if update {
            std::fs::write(&golden, &out.stdout).unwrap();
        }
        let want =
            std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("{golden:?} missing: run with UPDATE_GOLDEN=1"));
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want, "{name}");
    }
}

#[test]
fn invalid_sdp_exits_1_with_diagnostics_on_stderr() {
    let text = "v=0\r\no=- 1 IN IP4 x\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n";
    let out = peerstorm(&["inspect", "sdp", "-"], Some(text.as_bytes()));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 2") && err.contains("sdp.origin"), "{err}");
    assert!(err.contains("jsep.missing-ice-ufrag"), "{err}");
    assert!(String::from_utf8(out.stdout).unwrap().contains("INVALID"));
}

#[test]
fn lf_only_sdp_is_valid_with_a_warning_and_emitted_as_is() {
    let text =
        std::fs::read_to_string(root().join("fixtures/chromium/datachannel-offer.sdp")).unwrap().replace("\r\n", "\n");
    let out = peerstorm(&["inspect", "sdp", "-", "--emit"], Some(text.as_bytes()));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
    assert!(String::from_utf8(out.stderr).unwrap().contains("sdp.line-ending"));
}

#[test]
fn candidate_exit_codes_and_json() {
    let ok = peerstorm(
        &["inspect", "candidate", "a=candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host generation 0", "--json"],
        None,
    );
    assert_eq!(ok.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(j["type"], "host");
    assert_eq!(j["type_preference"], 126);
    assert_eq!(j["extensions"]["generation"], "0");
    let init = r#"{"candidate":"candidate:1 1 udp 1 abc.local 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}"#;
    let ok = peerstorm(&["inspect", "candidate", init, "--json"], None);
    let j: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!((j["address_kind"].as_str(), j["sdp_mid"].as_str()), (Some("mdns"), Some("0")));
    let bad = peerstorm(&["inspect", "candidate", "candidate:1 1 udp 1 1.2.3.4 5 typ cone"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8(bad.stderr).unwrap().contains("host, srflx, prflx or relay"));
}

#[test]
fn peerjs_frames_one_per_line() {
    let f = root().join("fixtures/peerjs/server-to-client.jsonl");
    let out = peerstorm(&["inspect", "peerjs", f.to_str().unwrap(), "--json"], None);
    // The captured OFFER and CANDIDATE on lines 8 and 9 carry stub payloads (the notes' raw
    // client sent `{"connectionId":"dc_q1"}`), which no PeerJS client could use: both flagged.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jsonl:8: error: bad OFFER payload: missing field `sdp`"), "{err}");
    assert!(err.contains("jsonl:9: error: bad CANDIDATE payload"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[4]["type"], "ID-TAKEN");
    assert_eq!(lines[4]["detail"], "ID is taken");
    let relayed: String = std::fs::read_to_string(root().join("fixtures/peerjs/relay.jsonl"))
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", serde_json::from_str::<serde_json::Value>(l).unwrap()["received"].as_str().unwrap()))
        .collect();
    let out = peerstorm(&["inspect", "peerjs", "-"], Some(relayed.as_bytes()));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("CANDIDATE") && text.contains("srflx udp 192.0.2.10:53421"), "{text}");
    let bad = peerstorm(&["inspect", "peerjs", "fixtures/peerjs/malformed.txt"], None);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(err.lines().count(), 8, "{err}");
    assert!(err.contains("malformed.txt:6:"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(peerstorm(&["inspect", "sdp"], None).status.code(), Some(2));
    assert_eq!(peerstorm(&["inspect", "bogus"], None).status.code(), Some(2));
    let out = peerstorm(&["inspect", "sdp", "/nonexistent/offer.sdp"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/offer.sdp"));
    assert_eq!(peerstorm(&["--help"], None).status.code(), Some(0));
}
