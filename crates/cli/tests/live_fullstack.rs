//! Full-stack virtual peers on real sockets (`peerstorm peer`: the rtc stack and PeerJS
//! DataConnections): a Chromium page running peerjs@1.5.5 talks to one through the broker in
//! the binary, json and MsgPack serializations; two of them connect relay-only through peerstorm's TURN
//! server and through coturn. Chromium, coturn and tools/js come from scripts/test.sh; the tests
//! fail, never skip, without them.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use support::{Proc, coturn, coturn_with, root, start_peerstorm as start};

fn broker() -> (Proc, SocketAddr) {
    let (p, banner) = start(&["serve", "broker", "--host", "127.0.0.1", "--port", "0"]);
    let addr = banner.split_whitespace().nth(4).unwrap().trim_end_matches(':').parse().unwrap();
    (p, addr)
}

#[test]
fn chromium_peerjs_talks_to_a_virtual_peer_in_binary_json_and_msgpack() {
    assert!(
        root().join("tools/js/node_modules/peerjs").exists(),
        "tools/js/node_modules is missing: run scripts/test.sh (it runs npm ci in tools/js)"
    );
    let (_broker, addr) = broker();
    let b = addr.to_string();
    let (_echo, banner) = start(&["peer", "--broker", &b, "--id", "virtual-echo", "--for", "60"]);
    assert!(banner.starts_with("peerstorm peer virtual-echo on udp 127.0.0.1:"), "{banner}");
    let out = Command::new("node")
        .arg(root().join("tools/js/browser-virtual-peer.mjs"))
        .arg(addr.port().to_string())
        .arg("virtual-echo")
        .output()
        .expect("node is on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    for ser in ["binary", "json", "MsgPack"] {
        assert_eq!(j["checks"][ser]["same"], true, "{ser}: {j}");
        assert_eq!(j["checks"][ser]["echoed"], j["checks"][ser]["sent"], "{ser}: {j}");
    }
}

/// Two virtual peers, relay-only through `turn`: the connecting one must finish its workload
/// over a relayed pair.
fn relay_through(turn: SocketAddr, realm: &str, transport: &str) {
    relay_with(turn, realm, transport, &["--turn-user", "test:test"]);
}

/// As [`relay_through`], with these credential options.
fn relay_with(turn: SocketAddr, realm: &str, transport: &str, credentials: &[&str]) {
    let (_broker, addr) = broker();
    let (b, t) = (addr.to_string(), turn.to_string());
    let mut common = vec!["--turn", t.as_str(), "--turn-realm", realm, "--relay-only", "--turn-transport", transport];
    common.extend_from_slice(credentials);
    let mut answer = vec!["peer", "--broker", &b, "--id", "relay-echo", "--for", "40"];
    answer.extend(common.iter().copied());
    let (_echo, _) = start(&answer);
    let mut connect = vec!["peer", "--broker", &b, "--id", "relay-client", "--connect", "relay-echo", "--for", "30"];
    connect.extend(common.iter().copied());
    let out = Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(&connect).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let conn: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(conn["milestones"]["selected"][0], "relay", "relay-only: {conn}");
    assert!(conn["milestones"]["at"]["first_relay"].is_number(), "{conn}");
    assert!(conn["bytes_moved"].as_u64().unwrap() >= 20_000, "ten 1000-byte messages out and back: {conn}");
}

/// `peerstorm serve turn` in realm example.org relaying to loopback peers, with these
/// credential options; returns it and its address.
fn peerstorm_turn(credentials: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["serve", "turn", "--listen", "127.0.0.1:0", "--realm", "example.org", "--allow-loopback-peers"];
    args.extend_from_slice(credentials);
    let (p, banner) = start(&args);
    // "peerstorm turn listening on udp 127.0.0.1:PORT and tcp ..."
    (p, banner.split_whitespace().nth(5).unwrap().trim_end_matches(',').parse().unwrap())
}

#[test]
fn virtual_peers_connect_relay_only_through_peerstorms_turn_server() {
    let (_turn, addr) = peerstorm_turn(&["--user", "test:test"]);
    relay_through(addr, "example.org", "udp");
    relay_through(addr, "example.org", "tcp");
}

/// Peers that mint TURN REST API credentials (`--turn-secret`, as a web app's backend would)
/// connect relay-only through `serve turn --auth-secret` and through coturn's use-auth-secret.
#[test]
fn virtual_peers_mint_rest_credentials_for_peerstorms_turn_server_and_coturn() {
    let (_turn, addr) = peerstorm_turn(&["--auth-secret", "s3cret"]);
    relay_with(addr, "example.org", "udp", &["--turn-secret", "s3cret"]);
    let dir = std::env::temp_dir().join(format!("peerstorm-fullstack-rest-{}", std::process::id()));
    let (_coturn, addr) = coturn_with(&dir, (41000, 41999), &["--use-auth-secret", "--static-auth-secret", "s3cret"]);
    relay_with(addr, "example.org", "udp", &["--turn-secret", "s3cret"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn virtual_peers_connect_relay_only_through_coturn() {
    let dir = std::env::temp_dir().join(format!("peerstorm-fullstack-coturn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_turn, addr) = coturn(&dir, (45000, 47999));
    relay_through(addr, "example.org", "udp");
    std::fs::remove_dir_all(&dir).ok();
}

/// TURN over TCP against a coturn that takes no UDP from clients (`--no-udp`; its relay is still
/// UDP): only a client that really speaks TCP to it gets a relayed candidate.
#[test]
fn virtual_peers_connect_relay_only_through_coturn_over_tcp() {
    let dir = std::env::temp_dir().join(format!("peerstorm-fullstack-coturn-tcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_turn, addr) = coturn_with(&dir, (42000, 44999), &["--no-udp"]);
    relay_through(addr, "example.org", "tcp");
    std::fs::remove_dir_all(&dir).ok();
}

/// An answering peer stopped by SIGTERM still prints what its connections did (one JSON line
/// each) and exits 143; before, it died with the signal and printed nothing.
#[test]
fn a_peer_stopped_by_sigterm_prints_its_connections() {
    use std::io::{BufRead, BufReader, Read};
    let (_broker, addr) = broker();
    let b = addr.to_string();
    let mut echo = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["peer", "--broker", &b, "--id", "term-echo", "--for", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(echo.stdout.take().unwrap());
    let mut banner = String::new();
    out.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("peerstorm peer term-echo"), "{banner}");
    let caller = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["peer", "--broker", &b, "--id", "term-caller", "--connect", "term-echo", "--for", "30"])
        .output()
        .unwrap();
    assert_eq!(caller.status.code(), Some(0), "{}", String::from_utf8_lossy(&caller.stderr));
    assert!(Command::new("kill").args(["-TERM", &echo.id().to_string()]).status().unwrap().success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = echo.wait().unwrap();
    let mut err = String::new();
    echo.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    let line: serde_json::Value = serde_json::from_str(rest.lines().next().unwrap_or_default()).expect("a JSON line");
    assert_eq!(line["remote"], "term-caller", "{rest}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
}

/// `peerstorm run` in live mode against a TURN server named by URI with `servers.turn_secret`:
/// every peer mints its own REST API credential (`EXPIRY:PEER-ID`); the pairs connect relay-only
/// through `serve turn --auth-secret`. With the wrong secret every pair fails, refused by the
/// TURN server (its 401s), and the run says so.
#[test]
fn a_live_run_mints_a_rest_credential_per_peer() {
    let (_turn, addr) = peerstorm_turn(&["--auth-secret", "s3cret"]);
    let dir = std::env::temp_dir().join(format!("peerstorm-live-rest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (secret, ok) in [("s3cret", true), ("not-the-secret", false)] {
        let (o, text, summary, out) = run_live(
            &dir,
            &format!("rest-{ok}"),
            &format!(
                "[servers]\nturn = \"turn:{addr}\"\nturn_secret = \"{secret}\"\nturn_ttl_s = 600\nturn_realm = \"example.org\"\nrelay_only = true\n[peers]\ncount = 100\n[load]\nstack = \"full\"\nmodel = \"open\"\nrate_per_s = 4\nduration_s = 0.5\n[timeouts]\nsetup_s = 10\n[thresholds]\nsuccess_rate = \">= 1\"\n"
            ),
        );
        let m = &summary["modes"][0];
        let pairs = m["pairs"].as_u64().unwrap();
        assert!(pairs >= 2, "{m}");
        if ok {
            assert_eq!(o.status.code(), Some(0), "{text}");
            assert_eq!(m["pairs_ok"].as_u64(), Some(pairs), "{m}");
        } else {
            assert_eq!(o.status.code(), Some(1), "the success_rate threshold fails: {text}");
            assert_eq!(m["pairs_ok"].as_u64(), Some(0), "{m}");
            assert!(m["failures"].to_string().contains("turn_refused"), "the TURN server refused: {m}");
        }
        let peers = std::fs::read_to_string(out.join("peers-trickle.jsonl")).unwrap();
        assert_eq!(peers.lines().count() as u64, 2 * pairs, "every peer's record is kept");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `peerstorm run` of a live scenario named `name` (`mode = "live"` and `body`) written in
/// `dir`: its output, its stdout and stderr, its summary.json and its results directory.
fn run_live(
    dir: &std::path::Path,
    name: &str,
    body: &str,
) -> (std::process::Output, String, serde_json::Value, std::path::PathBuf) {
    let s = dir.join(format!("{name}.toml"));
    std::fs::write(&s, format!("name = \"{name}\"\nmode = \"live\"\n{body}")).unwrap();
    let out = dir.join(format!("out-{name}"));
    let o = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["run", s.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"])
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(out.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("{name}: no summary.json: {text}"));
    (o, text, summary, out)
}

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM files in `dir`.
fn certificate(dir: &std::path::Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string())
}

/// `turns:` (TLS over TCP, RFC 8656 §3.3): virtual peers gather relayed candidates over TLS and
/// connect relay-only through `serve turn --tls-listen` with TURN REST API credentials, and
/// through Debian's coturn given the same certificate (it takes TLS on its listening port) and
/// use-auth-secret. With a certificate they do not trust the allocation never happens.
#[test]
fn virtual_peers_relay_over_tls_through_peerstorms_turn_and_coturn() {
    let dir = std::env::temp_dir().join(format!("peerstorm-fullstack-turns-{}", std::process::id()));
    let (cert, key) = certificate(&dir);
    let (_turn, banner) = start(&[
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
    // "... and tcp ADDR and tls ADDR (realm ..."
    let tls: std::net::SocketAddr =
        banner.split(" and tls ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let creds = ["--turn-secret", "s3cret", "--turn-ca", cert.as_str()];
    relay_with(tls, "example.org", "tls", &creds);
    let (_coturn, addr) = coturn_with(
        &dir,
        (42000, 42999),
        &["--use-auth-secret", "--static-auth-secret", "s3cret", "--cert", &cert, "--pkey", &key],
    );
    relay_with(addr, "example.org", "tls", &creds);
    // A certificate nobody vouches for: no allocation, so no relayed path, so no connection.
    let other = dir.join("other");
    let (other_cert, _) = certificate(&other);
    let (_broker, b) = broker();
    let b = b.to_string();
    let t = tls.to_string();
    let common = [
        "--turn",
        t.as_str(),
        "--turn-realm",
        "example.org",
        "--relay-only",
        "--turn-transport",
        "tls",
        "--turn-secret",
        "s3cret",
        "--turn-ca",
        other_cert.as_str(),
    ];
    let mut answer = vec!["peer", "--broker", b.as_str(), "--id", "untrusted-echo", "--for", "20"];
    answer.extend(common);
    let (_echo, _) = start(&answer);
    let mut connect =
        vec!["peer", "--broker", b.as_str(), "--id", "untrusted-client", "--connect", "untrusted-echo", "--for", "8"];
    connect.extend(common);
    let out = Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(&connect).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let conn: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(conn["milestones"]["at"]["first_relay"].is_null(), "no relayed candidate over an untrusted TLS: {conn}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Several ICE servers at once, as a browser's iceServers list: the TURN server over UDP, TCP
/// and TLS (`--turn` three times). With vanilla ICE gathering runs to its end, and each peer has
/// a relayed candidate from every one; the pair connects relay-only.
#[test]
fn a_peer_gathers_a_relayed_candidate_from_every_turn_url() {
    let dir = std::env::temp_dir().join(format!("peerstorm-fullstack-urls-{}", std::process::id()));
    let (cert, key) = certificate(&dir);
    let (_turn, banner) = start(&[
        "serve",
        "turn",
        "--listen",
        "127.0.0.1:0",
        "--realm",
        "example.org",
        "--allow-loopback-peers",
        "--user",
        "test:test",
        "--tls-listen",
        "127.0.0.1:0",
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    let udp = banner.split_whitespace().nth(5).unwrap().trim_end_matches(',').to_string();
    let tls = banner.split(" and tls ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let urls = [format!("turn:{udp}"), format!("turn:{udp}?transport=tcp"), format!("turns:{tls}")];
    let (_broker, b) = broker();
    let b = b.to_string();
    let mut common: Vec<&str> = vec!["--turn-user", "test:test", "--turn-realm", "example.org", "--relay-only"];
    common.extend(["--ice", "vanilla", "--turn-ca", cert.as_str()]);
    for u in &urls {
        common.extend(["--turn", u.as_str()]);
    }
    let mut answer = vec!["peer", "--broker", b.as_str(), "--id", "urls-echo", "--for", "30"];
    answer.extend(common.iter().copied());
    let (_echo, _) = start(&answer);
    let mut connect =
        vec!["peer", "--broker", b.as_str(), "--id", "urls-client", "--connect", "urls-echo", "--for", "20"];
    connect.extend(common.iter().copied());
    let out = Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(&connect).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let conn: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(conn["milestones"]["relays"], 3, "a relayed candidate over UDP, TCP and TLS: {conn}");
    assert_eq!(conn["milestones"]["selected"][0], "relay", "{conn}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `peerstorm run` live with `servers.turn` and `servers.turn_also`: the TURN server over UDP,
/// TCP and TLS as three iceServers URLs; every pair connects relay-only (vanilla ICE, so every
/// peer gathers all three relayed candidates).
#[test]
fn a_live_run_gives_each_peer_every_turn_url() {
    let dir = std::env::temp_dir().join(format!("peerstorm-live-urls-{}", std::process::id()));
    let (cert, key) = certificate(&dir);
    let (_turn, banner) = start(&[
        "serve",
        "turn",
        "--listen",
        "127.0.0.1:0",
        "--realm",
        "example.org",
        "--allow-loopback-peers",
        "--user",
        "test:test",
        "--tls-listen",
        "127.0.0.1:0",
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    let udp = banner.split_whitespace().nth(5).unwrap().trim_end_matches(',').to_string();
    let tls = banner.split(" and tls ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let s = dir.join("urls.toml");
    std::fs::write(
        &s,
        format!(
            "name = \"urls\"\nmode = \"live\"\n[servers]\nturn = \"turn:{udp}\"\nturn_also = [\"turn:{udp}?transport=tcp\", \"turns:{tls}\"]\nturn_user = \"test:test\"\nturn_realm = \"example.org\"\nturn_ca = \"{cert}\"\nrelay_only = true\n[peers]\ncount = 8\nice = [\"vanilla\"]\n[load]\nstack = \"full\"\nmodel = \"open\"\nrate_per_s = 4\nduration_s = 0.5\n[timeouts]\nsetup_s = 15\n[thresholds]\nsuccess_rate = \">= 1\"\n"
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["run", s.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"])
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{text}");
    let peers = std::fs::read_to_string(out.join("peers-vanilla.jsonl")).unwrap();
    let relays: Vec<u64> = peers
        .lines()
        .flat_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["connections"].as_array().unwrap().clone())
        .map(|c| c["milestones"]["relays"].as_u64().unwrap())
        .collect();
    assert!(relays.len() >= 4 && relays.iter().all(|r| *r == 3), "three relayed candidates each: {relays:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A live run of media calls (`[workload.media]`, virtual peers on real sockets) relay-only
/// through `peerstorm serve turn` and through coturn: on loopback nothing is lost, and the
/// received bit rates are within 5 % of what was sent.
#[test]
fn live_calls_relay_only_keep_their_bitrate_through_peerstorms_turn_and_coturn() {
    let (_turn, ours) = peerstorm_turn(&["--user", "test:test"]);
    let dir = std::env::temp_dir().join(format!("peerstorm-live-media-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_coturn, theirs) = coturn(&dir.join("coturn"), (42000, 42499));
    for (name, addr) in [("peerstorm", ours), ("coturn", theirs)] {
        let (o, text, summary, _) = run_live(
            &dir,
            &format!("media-{name}"),
            &format!(
                "[servers]\nturn = \"turn:{addr}\"\nturn_user = \"test:test\"\nturn_realm = \"example.org\"\nrelay_only = true\n[peers]\ncount = 4\n[load]\nstack = \"full\"\nmodel = \"open\"\nrate_per_s = 4\nduration_s = 0.5\n[workload.media]\nvideo = {{ bitrate_kbps = 600 }}\nduration_s = 4\n[timeouts]\nsetup_s = 15\n[thresholds]\nsuccess_rate = \">= 1\"\n\"media.loss.max\" = \"== 0\"\n"
            ),
        );
        assert_eq!(o.status.code(), Some(0), "{name}: {text}");
        let m = &summary["modes"][0];
        assert!(m["pairs"].as_u64().unwrap() >= 1, "{name}: {m}");
        assert_eq!(m["shares"]["relay"], 1.0, "{name}: relay only: {m}");
        let media = &m["media"];
        for (key, target) in [("audio.bitrate", 32.0), ("video.bitrate", 600.0)] {
            for stat in ["p50", "max"] {
                let v = media[key][stat].as_f64().unwrap_or_else(|| panic!("{name}: {key}: {media}"));
                assert!((v - target).abs() / target < 0.05, "{name}: {key} {stat} {v} kbit/s for {target}: {media}");
            }
        }
        assert!(media["first_frame"]["p50"].as_f64().is_some(), "{name}: {media}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
