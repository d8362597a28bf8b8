//! `wss://` brokers: `serve broker --sslkey/--sslcert` (as peer@1.0.2 spells them) serves the
//! live runner (signaling and full stack), `peerstorm peer` and `conform broker` over TLS, and
//! so does peer@1.0.2 started with the same two options; a certificate the client does not
//! trust, a TLS server reached as `ws://` and a plain server reached as `wss://` each end with
//! one clear line and exit 2, never a hang or a run of failed pairs. The certificate is made
//! here (rcgen, a self-signed one for localhost and 127.0.0.1).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{Proc, root, start_peerstorm};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peerstorm-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A self-signed certificate (not a CA) for localhost and 127.0.0.1: (cert.pem, key.pem).
fn certificate(dir: &Path) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string())
}

fn peerstorm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(args).current_dir(root()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `serve broker` with these extra options; its port.
fn ours(extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["serve", "broker", "--host", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    let (p, banner) = start_peerstorm(&args);
    // "peerstorm broker listening on 127.0.0.1:PORT: wss://..."
    let port = banner.split_whitespace().nth(4).unwrap().trim_end_matches(':').rsplit(':').next().unwrap();
    (p, port.parse().unwrap())
}

/// peer@1.0.2 over TLS with the same two options.
fn reference_tls(cert: &str, key: &str) -> (Proc, u16) {
    let bin = root().join("tools/js/node_modules/peer/dist/bin/peerjs.js");
    assert!(bin.exists(), "tools/js/node_modules is missing: run scripts/test.sh (it runs npm ci in tools/js)");
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new("node");
        cmd.arg(&bin).args(["--port", &port.to_string(), "--host", "127.0.0.1", "--sslkey", key, "--sslcert", cert]);
        if let Some((p, banner)) = support::try_start(&mut cmd) {
            assert!(banner.contains("Started PeerServer"), "{banner}");
            return (p, port);
        }
    }
    panic!("peer@1.0.2 did not start with --sslkey/--sslcert on three free ports");
}

/// A live scenario file: signaling or full stack, every pair must connect.
fn scenario(dir: &Path, stack: &str) -> String {
    let p = dir.join(format!("{stack}.toml"));
    let load = if stack == "full" {
        "[peers]\ncount = 8\n[load]\nstack = \"full\"\nmodel = \"open\"\nrate_per_s = 4\nduration_s = 1\n[timeouts]\nsetup_s = 15\n"
    } else {
        "[peers]\ncount = 40\n[load]\nmodel = \"open\"\nrate_per_s = 20\nduration_s = 1\n"
    };
    std::fs::write(
        &p,
        format!("name = \"wss-{stack}\"\nmode = \"live\"\n{load}[thresholds]\nsuccess_rate = \">= 1\"\n"),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_live_runner_peers_and_conformance_speak_wss_to_peerstorm_and_to_peer_1_0_2() {
    let d = tmp("live");
    let (cert, key) = certificate(&d);
    let (_ours, ours_port) = ours(&["--sslkey", &key, "--sslcert", &cert]);
    let (_reference, reference_port) = reference_tls(&cert, &key);
    for (who, port, stacks) in [
        ("peerstorm", ours_port, &["signaling", "full"][..]),
        ("peer@1.0.2", reference_port, &["signaling", "full"][..]),
    ] {
        // The certificate names localhost: the URL's host is what is checked (and sent as SNI).
        let url = format!("wss://localhost:{port}/peerjs?key=peerjs");
        for stack in stacks {
            let out = d.join(format!("out-{port}-{stack}"));
            let s = scenario(&d, stack);
            let o = peerstorm(&["run", &s, "--broker", &url, "--ca", &cert, "--out", out.to_str().unwrap(), "-q"]);
            assert_eq!(o.status.code(), Some(0), "{who} {stack}: {}", text(&o));
            let m = &summary(&out)["modes"][0];
            assert!(m["pairs"].as_u64().unwrap() >= 4, "{who} {stack}: {m}");
            assert_eq!(m["pairs_ok"], m["pairs"], "{who} {stack}: {m}");
        }
    }
    // A virtual peer joins over wss:// and says so.
    let url = format!("wss://localhost:{ours_port}/peerjs?key=peerjs");
    let (_peer, banner) =
        start_peerstorm(&["peer", "--broker", &url, "--ca", &cert, "--id", "tls-peer", "--for", "10"]);
    assert!(banner.starts_with("peerstorm peer tls-peer on udp ") && banner.contains(" via wss://"), "{banner}");
    // The broker conformance suite over TLS: every case that runs passes.
    let json = d.join("conform.json");
    let o = peerstorm(&["conform", "broker", &url, "--ca", &cert, "--fast", "--json", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = j["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "{}", cases.len());
    assert!(cases.iter().all(|c| matches!(c["verdict"].as_str(), Some("OK" | "INFO"))), "{j}");
    std::fs::remove_dir_all(&d).ok();
}

/// One clear line and exit 2 for each mistake, from `run`, `peer` and `conform broker` alike.
#[test]
fn tls_mistakes_are_one_clear_line_and_exit_2() {
    let d = tmp("mistakes");
    let (cert, key) = certificate(&d);
    let (_tls, tls_port) = ours(&["--sslkey", &key, "--sslcert", &cert]);
    let (_plain, plain_port) = ours(&[]);
    let s = scenario(&d, "signaling");
    let out = d.join("out");
    let cases = [
        // (what, URL, extra options, what the line must say)
        ("an untrusted certificate", format!("wss://localhost:{tls_port}/peerjs?key=peerjs"), vec![], "--ca FILE"),
        (
            "a TLS server as ws://",
            format!("ws://localhost:{tls_port}/peerjs?key=peerjs"),
            vec![],
            "answered in TLS: use",
        ),
        (
            "a plain server as wss://",
            format!("wss://localhost:{plain_port}/peerjs?key=peerjs"),
            vec!["--insecure"],
            "plain ws:// server",
        ),
    ];
    for (what, url, extra, says) in &cases {
        let mut run = vec!["run", s.as_str(), "--broker", url, "--out", out.to_str().unwrap(), "--force", "-q"];
        run.extend(extra.iter().copied());
        let mut peer = vec!["peer", "--broker", url, "--id", "p", "--for", "5"];
        peer.extend(extra.iter().copied());
        let conform_url = url.replace("ws://", "http://").replace("wss://", "https://");
        let mut conform = vec!["conform", "broker", conform_url.as_str(), "--fast"];
        conform.extend(extra.iter().copied());
        for args in [&run, &peer, &conform] {
            let o = peerstorm(args);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "{what}, {}: {t}", args[0]);
            assert!(t.contains(says), "{what}, {}: {t}", args[0]);
        }
    }
    // --ca and --insecure on a plain URL are a usage mistake, named.
    let o = peerstorm(&["peer", "--broker", &format!("ws://127.0.0.1:{plain_port}/peerjs"), "--id", "p", "--insecure"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("are for a wss:// broker"), "{}", text(&o));
    std::fs::remove_dir_all(&d).ok();
}

/// Chromium running peerjs@1.5.5 with `secure: true` reaches `serve broker --sslcert` over
/// wss:// (trusting exactly the test certificate's key) and talks to a virtual peer that joined
/// over wss:// too, in the binary, json and MsgPack serializations.
#[test]
fn chromium_peerjs_talks_over_wss_through_serve_broker_sslcert() {
    let d = tmp("chromium");
    let (cert, key) = certificate(&d);
    let (_broker, port) = ours(&["--sslkey", &key, "--sslcert", &cert]);
    let url = format!("wss://127.0.0.1:{port}/peerjs?key=peerjs");
    let (_echo, banner) =
        start_peerstorm(&["peer", "--broker", &url, "--ca", &cert, "--id", "wss-echo", "--for", "60"]);
    assert!(banner.contains(" via wss://"), "{banner}");
    let out = Command::new("node")
        .arg(root().join("tools/js/browser-virtual-peer.mjs"))
        .args([&port.to_string(), "wss-echo", &cert])
        .output()
        .expect("node is on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for ser in ["binary", "json", "MsgPack"] {
        assert_eq!(j["checks"][ser]["same"], true, "{ser}: {j}");
    }
    std::fs::remove_dir_all(&d).ok();
}

/// The production shape in one run: a `wss://` PeerServer and a `turns:` TURN server with TURN
/// REST API credentials minted per peer; every pair connects relay-only over TLS.
#[test]
fn a_run_against_a_wss_broker_and_a_turns_server_with_rest_credentials() {
    let d = tmp("production");
    let (cert, key) = certificate(&d);
    let (_broker, port) = ours(&["--sslkey", &key, "--sslcert", &cert]);
    let (_turn, banner) = start_peerstorm(&[
        "serve",
        "turn",
        "--listen",
        "127.0.0.1:0",
        "--realm",
        "example.org",
        "--allow-loopback-peers",
        "--auth-secret",
        "s3cret",
        "--tls-listen",
        "127.0.0.1:0",
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    let tls = banner.split(" and tls ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let s = d.join("production.toml");
    std::fs::write(
        &s,
        format!(
            "name = \"production\"\nmode = \"live\"\n[servers]\nbroker = \"wss://localhost:{port}/peerjs?key=peerjs\"\nturn = \"turns:{tls}\"\nturn_secret = \"s3cret\"\nturn_realm = \"example.org\"\nturn_ca = \"{cert}\"\nrelay_only = true\n[peers]\ncount = 8\n[load]\nstack = \"full\"\nmodel = \"open\"\nrate_per_s = 4\nduration_s = 0.5\n[timeouts]\nsetup_s = 15\n[thresholds]\nsuccess_rate = \">= 1\"\nrelay_share = \">= 1\"\n"
        ),
    )
    .unwrap();
    let out = d.join("out");
    let o = peerstorm(&["run", s.to_str().unwrap(), "--ca", &cert, "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = &summary(&out)["modes"][0];
    assert!(m["pairs"].as_u64().unwrap() >= 2, "{m}");
    assert_eq!(m["pairs_ok"], m["pairs"], "{m}");
    std::fs::remove_dir_all(&d).ok();
}
