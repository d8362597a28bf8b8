//! Media calls between Chromium (peerjs@1.5.5 with its fake camera and microphone) and
//! peerstorm's virtual peers, both ways, through `peerstorm serve broker` on loopback: Chromium
//! must receive and decode the virtual peer's VP8-shaped video (`framesDecoded` > 0) and its
//! Opus-shaped audio; the virtual peers must receive Chromium's audio and video (packets, bit
//! rate, key frames). Chromium and tools/js come from scripts/test.sh; the test fails, never
//! skips, without them.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use support::{root, start_peerstorm as start};

/// The received streams of the call in a `peerstorm peer` outcome line.
fn received(line: &serde_json::Value) -> Vec<serde_json::Value> {
    line["media"]["received"].as_array().cloned().unwrap_or_default()
}

fn check_from_chromium(who: &str, streams: &[serde_json::Value]) {
    let kind =
        |k: &str| streams.iter().find(|s| s["kind"] == k).unwrap_or_else(|| panic!("{who}: no {k}: {streams:?}"));
    let (audio, video) = (kind("audio"), kind("video"));
    assert!(audio["packets"].as_u64().unwrap() > 100, "{who}: Chromium's audio: {audio}");
    assert!(video["packets"].as_u64().unwrap() > 50, "{who}: Chromium's video: {video}");
    assert!(video["keyframes"].as_u64().unwrap() >= 1, "{who}: a complete VP8 key frame from Chromium: {video}");
    assert!(video["frames"].as_u64().unwrap() > 30, "{who}: complete frames: {video}");
    assert!(video["first_frame"].as_f64().is_some(), "{who}: {video}");
}

#[test]
fn chromium_and_virtual_peers_call_each_other_with_audio_and_video() {
    assert!(
        root().join("tools/js/node_modules/peerjs").exists(),
        "tools/js/node_modules is missing: run scripts/test.sh (it runs npm ci in tools/js)"
    );
    let (_broker, banner) = start(&["serve", "broker", "--host", "127.0.0.1", "--port", "0"]);
    let addr: std::net::SocketAddr = banner.split_whitespace().nth(4).unwrap().trim_end_matches(':').parse().unwrap();
    let b = addr.to_string();
    // The answering virtual peer: answers Chromium's call with its synthetic stream.
    let mut answerer = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["peer", "--broker", &b, "--id", "virtual-media", "--for", "80", "--media-for", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut answerer_out = BufReader::new(answerer.stdout.take().unwrap());
    let mut line = String::new();
    answerer_out.read_line(&mut line).unwrap();
    assert!(line.starts_with("peerstorm peer virtual-media"), "{line}");
    let mut node = Command::new("node")
        .arg(root().join("tools/js/browser-media.mjs"))
        .arg(addr.port().to_string())
        .arg("virtual-media")
        .arg("6")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is on PATH");
    let mut node_out = BufReader::new(node.stdout.take().unwrap());
    let mut ready = String::new();
    node_out.read_line(&mut ready).unwrap();
    let browser = ready.trim().strip_prefix("ready ").unwrap_or_else(|| {
        let mut err = String::new();
        node.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        panic!("the page did not get ready: {ready} {err}")
    });
    // A virtual peer calls the page.
    let caller = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["peer", "--broker", &b, "--id", "virtual-caller", "--call", browser, "--media-for", "8", "--for", "40"])
        .args(["--metadata", r#"{"room":"lobby","n":2}"#])
        .output()
        .unwrap();
    let caller_text = String::from_utf8_lossy(&caller.stdout);
    assert_eq!(caller.status.code(), Some(0), "{caller_text}\n{}", String::from_utf8_lossy(&caller.stderr));
    let mut rest = String::new();
    node_out.read_to_string(&mut rest).unwrap();
    let status = node.wait().unwrap();
    let page: serde_json::Value =
        serde_json::from_str(rest.trim().lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {rest}"));
    assert!(status.success(), "{page}");
    eprintln!("Chromium: {page}");
    // Chromium received and decoded what the virtual peers sent, both ways.
    for way in ["calling", "answering"] {
        let (audio, video) = (&page[way]["audio"], &page[way]["video"]);
        assert!(audio["packetsReceived"].as_u64().unwrap() > 100, "{way}: audio {audio}");
        assert!(video["packetsReceived"].as_u64().unwrap() > 100, "{way}: video {video}");
        assert!(video["framesDecoded"].as_u64().unwrap() > 30, "{way}: VP8 decoded: {video}");
        assert!(video["keyFramesDecoded"].as_u64().unwrap() >= 1, "{way}: {video}");
    }
    assert_eq!(
        page["answering"]["metadata"],
        serde_json::json!({ "room": "lobby", "n": 2 }),
        "PeerJS got the call's metadata"
    );
    // The virtual caller hung up after its 8 s: PeerJS saw its call close.
    assert!(page["answering"]["closedByRemoteAfterS"].as_f64().is_some(), "the call closed on the page: {page}");
    // The virtual peers received Chromium's streams.
    let caller_line: serde_json::Value = caller_text
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("the calling peer's outcome: {caller_text}"));
    eprintln!("virtual caller: {caller_line}");
    check_from_chromium("the calling virtual peer", &received(&caller_line));
    assert!(Command::new("kill").args(["-TERM", &answerer.id().to_string()]).status().unwrap().success());
    let mut answered = String::new();
    answerer_out.read_to_string(&mut answered).unwrap();
    let _ = answerer.wait();
    let call: serde_json::Value = answered
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["media"].is_object())
        .unwrap_or_else(|| panic!("the answering peer's call: {answered}"));
    eprintln!("virtual answerer: {call}");
    check_from_chromium("the answering virtual peer", &received(&call));
}
