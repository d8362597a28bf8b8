//! Runs headless Chromium now (Debian's `/usr/bin/chromium` through playwright-core, as
//! `tools/js/gen-sdp.mjs` does) and checks that `peerstorm inspect` round-trips every SDP and
//! candidate this browser produces, byte for byte. Fresh SDPs carry new ufrags, fingerprints and
//! ports each run, so this reaches past the committed golden files.
//!
//! It needs `tools/js/node_modules` and Chromium, which `scripts/test.sh` installs. It fails,
//! never skips, when they are missing.

use std::path::Path;
use std::process::Command;

#[test]
fn fresh_chromium_sdps_round_trip_through_inspect() {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("tools/js/node_modules/playwright-core").exists(),
        "tools/js/node_modules is missing: run scripts/test.sh (it runs npm ci in tools/js)"
    );
    let out_dir = std::env::temp_dir().join(format!("peerstorm-chromium-{}", std::process::id()));
    let gen_out =
        Command::new("node").arg(root.join("tools/js/gen-sdp.mjs")).arg(&out_dir).output().expect("node is on PATH");
    assert!(gen_out.status.success(), "gen-sdp.mjs failed: {}", String::from_utf8_lossy(&gen_out.stderr));
    let mut sdps = 0;
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sdp") {
            continue;
        }
        let text = std::fs::read(&path).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
            .args(["inspect", "sdp", "--emit"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{path:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == text, "{path:?} did not round-trip");
        sdps += 1;
    }
    let candidates = std::fs::read_to_string(out_dir.join("candidates.jsonl")).unwrap();
    let mut n = 0;
    for line in candidates.lines().filter(|l| !l.is_empty()) {
        let out = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
            .args(["inspect", "candidate", "--json", line])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        n += 1;
    }
    std::fs::remove_dir_all(&out_dir).ok();
    assert!(sdps >= 15, "only {sdps} SDPs generated");
    assert!(n >= 10, "only {n} candidates generated");
}
