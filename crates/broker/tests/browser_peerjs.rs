//! A real browser: two headless Chromium pages (Debian's `/usr/bin/chromium`, driven by
//! playwright-core) run `peerjs@1.5.5` through the broker, open DataConnections with `binary`,
//! `json` and `raw` serialization and get every message echoed back (one of 40,000 bytes, which
//! PeerJS chunks); a taken ID gives `unavailable-id`, an unknown peer `peer-unavailable`.
//! The same script runs against `peer@1.0.2` as a control. Fails, never skips, when Chromium or
//! the npm packages are missing (`scripts/test.sh` installs them).

mod support;

use support::{Broker, Opts, repo_root};

fn browser_run(b: &Broker) -> serde_json::Value {
    let out = std::process::Command::new("node")
        .arg(repo_root().join("tools/js/browser-peerjs.mjs"))
        .arg(b.addr().port().to_string())
        .arg("6000")
        .output()
        .expect("node is on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!("no result from browser-peerjs.mjs: {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

fn assert_all_passed(name: &str, r: &serde_json::Value) {
    assert_eq!(r["errors"], serde_json::json!([]), "{name}: {r}");
    for s in ["binary", "json", "raw"] {
        assert_eq!(r["checks"]["echo"][s]["same"], true, "{name} {s}: {r}");
    }
    assert_eq!(r["checks"]["echo"]["binary"]["echoed"], 3, "{name}: {r}");
    assert_eq!(r["checks"]["unavailable_id"]["got"], "unavailable-id", "{name}: {r}");
    assert_eq!(r["checks"]["peer_unavailable"]["got"], "peer-unavailable", "{name}: {r}");
    assert_eq!(r["ok"], true, "{name}: {r}");
}

#[test]
fn peerjs_in_chromium_through_peerstorm_and_the_reference() {
    let o = Opts { expire_ms: 1000, ..Opts::default() };
    assert_all_passed("peerstorm", &browser_run(&Broker::ours(&o)));
    assert_all_passed("peer@1.0.2", &browser_run(&Broker::reference(&o)));
}
