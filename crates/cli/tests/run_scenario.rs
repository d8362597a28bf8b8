//! `peerstorm run`: the shipped scenario runs, writes summary.json, and bad files exit 2 with
//! the line of the problem.

use std::process::Command;

fn peerstorm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(args)
        .current_dir(format!("{}/../..", std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")))
        .output()
        .unwrap()
}

#[test]
fn the_shipped_scenario_runs_and_writes_a_summary() {
    let out_dir = std::env::temp_dir().join(format!("peerstorm-run-{}", std::process::id()));
    let out = peerstorm(&["run", "scenarios/quickstart.toml", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("trickle ICE at 60 ms RTT: 150 connections") && text.contains("dc_open"), "{text}");
    assert!(text.contains("symmetric ↔ symmetric"), "the per-NAT-pair table: {text}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(j["scenario"], "quickstart");
    assert!(j["modes"][0]["success_rate"].as_f64().unwrap() > 0.95, "{j}");
    assert!(j["modes"][0]["goodput"]["p50_kbps"].as_f64().unwrap() > 0.0, "{j}");
    assert_eq!(j["schema"], "peerstorm.summary/2");
    for f in ["report.md", "report.html", "junit.xml", "metrics.json", "hgrm/trickle.dc_open.hgrm", "scenario.toml"] {
        assert!(out_dir.join(f).exists(), "{f} written");
    }
    let sym = j["modes"][0]["classes"]["symmetric ↔ symmetric"]["selected"].as_object().unwrap();
    assert!(!sym.is_empty() && sym.keys().all(|k| k.contains("relay")), "two symmetric NATs meet through a relay: {j}");
    let peers = std::fs::read_to_string(out_dir.join("peers-trickle.jsonl")).unwrap();
    assert_eq!(peers.lines().count(), 300, "one line per peer");
    std::fs::remove_dir_all(&out_dir).ok();
}

#[test]
fn bad_scenarios_exit_2_with_the_line() {
    let dir = std::env::temp_dir().join(format!("peerstorm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "name = \"x\"\n[peers]\ncount = 2\nspeed = 9\n").unwrap();
    let out = peerstorm(&["run", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("speed"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_shipped_scenario_parses() {
    for entry in std::fs::read_dir(format!(
        "{}/../../scenarios",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = peerstorm_runner::Scenario::parse(&text) {
                panic!("{}: {e}", path.display());
            }
        }
    }
}

/// `peerstorm run scenarios/media-calls.toml` (the "done when"): calls through a NAT mix
/// and TURN, its thresholds held, the media tables in the terminal and report.md, per class.
#[test]
fn the_shipped_media_scenario_runs_its_calls_and_reports_media_per_class() {
    let out_dir = std::env::temp_dir().join(format!("peerstorm-media-{}", std::process::id()));
    let out = peerstorm(&["run", "scenarios/media-calls.toml", "--out", out_dir.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("media calls (per received stream)") && text.contains("video.bitrate"), "{text}");
    assert!(text.contains("media by NAT pair") && text.contains("first frame p50"), "{text}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    let m = &j["modes"][0];
    assert_eq!(m["pairs"], 20, "{m}");
    assert!(m["shares"]["relay"].as_f64().unwrap() > 0.0, "some calls go through TURN: {m}");
    assert_eq!(m["media"]["first_frame"]["count"], 40, "both sides of every call: {m}");
    let class = m["classes"].as_object().unwrap().values().next().unwrap();
    assert!(class["media"]["video.bitrate"]["p50"].as_f64().unwrap() > 700.0, "{class}");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("| media (per received stream) |") && md.contains("| NAT pair | media |"), "{md}");
    std::fs::remove_dir_all(&out_dir).ok();
}

#[test]
fn a_media_workload_with_nothing_to_send_or_in_the_lab_is_refused() {
    let dir = std::env::temp_dir().join(format!("peerstorm-media-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (body, why) in [
        ("[workload.media]\naudio = false\nvideo = false\n", "a call needs audio, video or both"),
        ("[workload.media]\nvideo = { fps = 0 }\n", "fps = 0"),
        ("[workload.media]\naudio = { payload_bytes = 4 }\n", "payload_bytes = 4"),
        (
            "mode = \"lab\"\n[lab]\nofferer = \"virtual\"\nanswerer = \"chromium\"\n[workload.media]\n",
            "calls run between virtual peers",
        ),
        (
            "mode = \"lab\"\n[lab]\nofferer = \"virtual\"\nanswerer = \"virtual\"\n[workload.media]\nvideo = { fps = 15 }\n",
            "stays at its default in the lab",
        ),
    ] {
        let f = dir.join("m.toml");
        let (top, rest) = body.split_at(if body.starts_with("mode") { body.find('\n').unwrap() + 1 } else { 0 });
        std::fs::write(&f, format!("name = \"m\"\n{top}[peers]\ncount = 2\n{rest}")).unwrap();
        let out = peerstorm(&["run", f.to_str().unwrap(), "--dry-run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(why), "{body}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
