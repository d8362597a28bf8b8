//! The CI contract end to end through the binary: thresholds → exit codes (0 held, 1 failed,
//! 2 the harness could not run), shards that merge into exactly the whole run's histograms,
//! re-rendering, `compare`, a JUnit consumer reading junit.xml, and report.html in Chromium.
//!
//! The JUnit and browser checks need Debian's python3-junitparser and chromium and
//! tools/js/node_modules, which `scripts/test.sh` installs; they fail, never skip, without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..")
}

fn peerstorm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(args).current_dir(root()).output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peerstorm-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small scenario with `thresholds` (TOML lines) written into `dir`.
fn scenario(dir: &Path, extra: &str, thresholds: &str) -> String {
    let p = dir.join("s.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"small\"\nseed = 4\n[network]\nrtt_ms = 40\nnat_mix = {{ open = 0.4, port-restricted = 0.3, symmetric = 0.3 }}\n{extra}\n[peers]\ncount = 24\narrival = {{ rate_per_s = 20 }}\nice = [\"trickle\", \"vanilla\"]\n[thresholds]\n{thresholds}\n"
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn each_exit_code_from_a_scenario_built_to_produce_it() {
    let d = tmp("exit");
    let out = d.join("held");
    let held = scenario(
        &d,
        "",
        "success_rate = \">= 0.9\"\nsetup.dc_open.p95 = \"< 10s\"\n\"relay_share{class=symmetric ↔ symmetric}\" = \">= 0.5\"\n",
    );
    let o = peerstorm(&["run", &held, "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("ok   success_rate >= 0.9"), "{}", text(&o));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 3, "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");

    let out = d.join("failed");
    let failed = scenario(&d, "", "success_rate = \">= 0.9\"\nsetup.dc_open.p50 = \"< 1ms\"\n");
    let o = peerstorm(&["run", &failed, "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL setup.dc_open.p50 < 1ms"), "{}", text(&o));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("**FAIL**"));

    // Nothing connected: a latency threshold has no samples, which fails it (never a pass).
    let out = d.join("nothing");
    let nothing = scenario(&d, "loss = 0.999\n[timeouts]\nsetup_s = 5", "setup.dc_open.p95 = \"< 60s\"\n");
    let o = peerstorm(&["run", &nothing, "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no samples"), "{}", text(&o));

    // An unknown metric path is a configuration error, found before anything runs.
    let out = d.join("typo");
    let typo = scenario(&d, "", "setup.dc_opn.p95 = \"< 800ms\"\n");
    let o = peerstorm(&["run", &typo, "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unknown stage \"dc_opn\""), "{}", text(&o));
    assert!(!out.exists(), "nothing ran, nothing written");
    let o = peerstorm(&["run", &held, "--shard", "3/2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    std::fs::remove_dir_all(&d).ok();
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn two_shards_merge_into_exactly_the_whole_run() {
    let d = tmp("merge");
    let s = scenario(&d, "", "success_rate = \">= 0.9\"\n");
    let (whole, a, b, merged) = (d.join("whole"), d.join("a"), d.join("b"), d.join("merged"));
    for (dir, shard) in [(&whole, None), (&a, Some("1/2")), (&b, Some("2/2"))] {
        let mut args = vec!["run", &s, "--out", dir.to_str().unwrap(), "-q"];
        if let Some(sh) = shard {
            args.extend(["--shard", sh]);
        }
        let o = peerstorm(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let o = peerstorm(&["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", merged.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (w, m, sa) = (metrics(&whole), metrics(&merged), metrics(&a));
    assert_eq!(m["shards"], serde_json::json!(["1/2", "2/2"]));
    let runs = w["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "trickle and vanilla");
    for (rw, rm) in runs.iter().zip(m["runs"].as_array().unwrap()) {
        let hw = rw["histograms"].as_object().unwrap();
        assert!(hw.len() > 30, "stages × classes × selected pairs: {}", hw.len());
        assert_eq!(
            rw["histograms"], rm["histograms"],
            "{}: the merged histograms are the whole run's, bit for bit",
            rw["ice"]
        );
        for (k, v) in rw["counters"].as_object().unwrap() {
            // Datagrams include keepalives until each run's own end: not additive.
            if k != "datagrams" {
                assert_eq!(&rm["counters"][k], v, "{}: counter {k}", rw["ice"]);
            }
        }
    }
    assert_ne!(sa["runs"][0]["histograms"], w["runs"][0]["histograms"], "a shard alone is not the whole run");
    assert_eq!(sa["runs"][0]["counters"]["connections"], 6, "every other pair of 12");
    // Merging a shard twice is refused.
    let o = peerstorm(&["merge", a.to_str().unwrap(), a.to_str().unwrap(), "--out", d.join("x").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // So is a merge with a shard missing (it used to exit 0 with half the run).
    let o = peerstorm(&["merge", a.to_str().unwrap(), "--out", d.join("half").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("2/2 is missing"), "{}", text(&o));
    assert!(!d.join("half").exists(), "a refused merge leaves no directory behind");
    // Merging into a directory that holds results (here: a shard's own) needs --force.
    let o = peerstorm(&["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already holds files") && text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(metrics(&b)["shards"], serde_json::json!(["2/2"]), "the shard is untouched");
    let o =
        peerstorm(&["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", merged.to_str().unwrap(), "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn report_rerenders_and_compare_finds_regressions() {
    let d = tmp("compare");
    let fast = scenario(&d, "", "success_rate = \">= 0.9\"\n");
    let base = d.join("base");
    assert_eq!(peerstorm(&["run", &fast, "--out", base.to_str().unwrap(), "-q"]).status.code(), Some(0));
    let again = d.join("again");
    let o = peerstorm(&["report", base.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(base.join("summary.json")).unwrap(),
        std::fs::read_to_string(again.join("summary.json")).unwrap(),
        "re-rendered from metrics.json, the same summary"
    );
    let o = peerstorm(&["compare", base.to_str().unwrap(), again.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The same peers three times as far apart: setup takes longer, a regression.
    let slow_dir = d.join("slowsrc");
    std::fs::create_dir_all(&slow_dir).unwrap();
    let slow = scenario(&slow_dir, "", "success_rate = \">= 0.9\"\n");
    std::fs::write(&slow, std::fs::read_to_string(&slow).unwrap().replace("rtt_ms = 40", "rtt_ms = 120")).unwrap();
    let new = d.join("new");
    assert_eq!(peerstorm(&["run", &slow, "--out", new.to_str().unwrap(), "-q"]).status.code(), Some(0));
    let o = peerstorm(&["compare", base.to_str().unwrap(), new.to_str().unwrap(), "--tolerance", "5%"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("setup.dc_open.p50 (ms)") && text(&o).contains("REGRESSED"), "{}", text(&o));
    let o = peerstorm(&["compare", base.to_str().unwrap(), new.to_str().unwrap(), "--tolerance", "1000%"]);
    assert_eq!(o.status.code(), Some(0), "a loose enough tolerance: {}", text(&o));
    let o = peerstorm(&["compare", base.to_str().unwrap(), d.join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = peerstorm(&["report", d.join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    std::fs::remove_dir_all(&d).ok();
}

/// A class where nothing connected is shown with its cause, not as an empty bar; every class is
/// drawn, more than nine spreading over several CDF charts on one shared axis.
#[test]
fn report_html_shows_every_class_and_why_a_class_failed() {
    let d = tmp("classes");
    let p = d.join("m.toml");
    std::fs::write(
        &p,
        "name = \"m\"\n[network]\npairing = \"matrix\"\nnat_mix = { open = 1, full-cone = 1, restricted-cone = 1, symmetric = 1, udp-blocked = 1 }\n[peers]\ncount = 100\n[timeouts]\nsetup_s = 6\n",
    )
    .unwrap();
    let out = d.join("out");
    let o = peerstorm(&["run", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // udp-blocked ↔ udp-blocked: 2 connections, neither reachable (TURN over UDP only).
    assert!(html.contains("no connection of 2: 2 udp_blocked"), "the cause is written where the bar would be");
    // 15 classes, 10 of them with an open channel: two CDF charts, "1 of 2" and "2 of 2".
    assert!(html.contains("CDF per NAT class, 1 of 2") && html.contains("CDF per NAT class, 2 of 2"));
    assert!(html.contains("one x axis for every CDF of the report") || html.contains("one axis for every CDF"));
    for class in ["open ↔ udp-blocked", "full-cone ↔ symmetric", "restricted-cone ↔ udp-blocked"] {
        assert!(html.contains(&format!("<tr><td>{class}</td>")), "{class} has its row");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn junit_xml_reads_in_a_junit_consumer_and_report_html_renders_in_chromium() {
    let d = tmp("consumers");
    let s = scenario(
        &d,
        "",
        "success_rate = \">= 0.9\"\nsetup.dc_open.p50 = \"< 1ms\"\n\"dc.goodput.p50\" = \">= 1kbit/s\"\n",
    );
    let out = d.join("out");
    let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let py = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys, json\nfrom junitparser import JUnitXml, Failure\nx = JUnitXml.fromfile(sys.argv[1])\ncases = [c for s in x for c in s]\nprint(json.dumps({'tests': x.tests, 'failures': x.failures, 'names': [c.name for c in cases], 'failed': [c.name for c in cases if any(isinstance(r, Failure) for r in c.result)]}))",
        )
        .arg(out.join("junit.xml"))
        .output()
        .expect("/usr/bin/python3 runs");
    assert!(
        py.status.success(),
        "junitparser could not read junit.xml (scripts/test.sh installs python3-junitparser): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(j["tests"], 3, "{j}");
    assert_eq!(j["failures"], 1, "{j}");
    assert_eq!(j["failed"], serde_json::json!(["setup.dc_open.p50 < 1ms"]), "{j}");

    assert!(
        root().join("tools/js/node_modules/playwright-core").exists(),
        "tools/js/node_modules is missing: run scripts/test.sh (it runs npm ci in tools/js)"
    );
    let shot = out.join("report.png");
    let node = Command::new("node")
        .arg(root().join("tools/js/check-report.mjs"))
        .arg(out.join("report.html"))
        .arg(&shot)
        .output()
        .expect("node is on PATH");
    assert!(node.status.success(), "check-report.mjs: {}", String::from_utf8_lossy(&node.stderr));
    let page: serde_json::Value = serde_json::from_slice(&node.stdout).unwrap();
    assert_eq!(page["errors"], serde_json::json!([]), "no console errors: {page}");
    let requests = page["requests"].as_array().unwrap();
    assert!(requests.iter().all(|r| r.as_str().unwrap().starts_with("file://")), "nothing from the network: {page}");
    let charts = page["charts"].as_array().unwrap();
    let titles: Vec<&str> = charts.iter().map(|c| c["title"].as_str().unwrap()).collect();
    for want in ["CDF per NAT class", "p50 per run", "path type", "per second", "setup-time anatomy per NAT class"] {
        assert!(titles.iter().any(|t| t.contains(want)), "a chart of {want:?}: {titles:?}");
    }
    for c in charts {
        assert!(c["marks"].as_u64().unwrap() > 0, "every chart draws something: {c}");
        assert!(c["width"].as_f64().unwrap() > 100.0 && c["height"].as_f64().unwrap() > 50.0, "{c}");
    }
    assert_eq!(page["failCells"], 1, "the failed threshold shows as failed: {page}");
    // Every class of every run in its table (and the "all" row), the trickle-minus-vanilla
    // table (a row per stage of the summary's delta), nothing wider than a page.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let classes = summary["modes"][0]["classes"].as_object().unwrap().len() as u64;
    assert!(classes >= 4, "open, port-restricted and symmetric meet in several classes: {classes}");
    assert_eq!(page["classRows"], serde_json::json!([classes + 1, classes + 1]), "{}", page["classRows"]);
    let deltas = summary["trickle_minus_vanilla_p50_ms"][0]["stages"].as_object().unwrap().len();
    assert_eq!(page["trickleRows"], deltas, "{}", page["trickleRows"]);
    assert_eq!(page["wideTables"], serde_json::json!([]), "no table wider than 1280 px: {}", page["wideTables"]);
    // One dc_open CDF chart per run holds all six classes (nine to a chart).
    assert_eq!(titles.iter().filter(|t| t.contains("CDF per NAT class")).count(), 2, "{titles:?}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot was taken");
    std::fs::remove_dir_all(&d).ok();
}

/// `[sweep]`: one run per point (RTT × NAT pair, both ICE modes), the points' inputs in every
/// label, the sweep table in summary.json and report.md, thresholds scoped to a point, and in
/// Chromium a chart per output against each swept input.
#[test]
fn a_sweep_runs_every_point_and_charts_each_output_against_each_input() {
    let d = tmp("sweep");
    let s = d.join("sweep.toml");
    std::fs::write(
        &s,
        "name = \"sweep\"\nseed = 3\n[sweep]\nrtt_ms = [20, 100]\nnat = [\"open\", \"port-restricted ↔ symmetric\"]\nice = [\"trickle\", \"vanilla\"]\n\
         [peers]\ncount = 6\narrival = { rate_per_s = 20 }\n[thresholds]\n\"success_rate{nat=open}\" = \">= 100%\"\n\
         \"setup.dc_open.p50{rtt=20, nat=open}\" = \"< 1ms\"\n",
    )
    .unwrap();
    let s = s.to_str().unwrap();
    let plan = peerstorm(&["run", s, "--dry-run"]);
    assert!(text(&plan).contains("sweep      4 points") && text(&plan).contains("runs       8"), "{}", text(&plan));
    let out = d.join("out");
    let o = peerstorm(&["run", s, "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(1), "the 1 ms threshold fails: {}", text(&o));

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let modes = summary["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 8, "2 RTTs x 2 NAT pairs x 2 ICE modes");
    for m in modes {
        // Each point puts its peers behind its own presets: one class per run.
        let nat = m["point"]["nat"].as_str().unwrap();
        let classes: Vec<&String> = m["classes"].as_object().unwrap().keys().collect();
        let want = if nat == "open ↔ open" { "open ↔ open" } else { "port-restricted ↔ symmetric" };
        assert_eq!(classes, [want], "{nat}");
        assert_eq!(m["pairs"], 3, "{m}");
    }
    let sweep = &summary["sweep"];
    assert_eq!(sweep["inputs"], serde_json::json!(["ice", "rtt_ms", "nat"]), "{sweep}");
    let outputs: Vec<&str> = sweep["outputs"].as_array().unwrap().iter().map(|o| o["path"].as_str().unwrap()).collect();
    assert_eq!(outputs, ["setup.dc_open.p50", "setup.dc_open.p95", "success_rate"]);
    let rows = sweep["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    let p50 = |ice: &str, rtt: &str, nat: &str| {
        let r = rows
            .iter()
            .find(|r| r["inputs"]["ice"] == ice && r["inputs"]["rtt_ms"] == rtt && r["inputs"]["nat"] == nat)
            .unwrap_or_else(|| panic!("a row for {ice} {rtt} {nat}: {sweep}"));
        r["values"][0].as_f64().unwrap()
    };
    for ice in ["trickle", "vanilla"] {
        for nat in ["open ↔ open", "port-restricted ↔ symmetric"] {
            assert!(p50(ice, "100", nat) > p50(ice, "20", nat) + 100.0, "a longer RTT, a later open: {ice} {nat}");
        }
        assert!(p50(ice, "20", "port-restricted ↔ symmetric") > p50(ice, "20", "open ↔ open"), "the relay costs");
    }
    // Trickle minus vanilla per point, not per RTT alone.
    let deltas = summary["trickle_minus_vanilla_p50_ms"].as_array().unwrap();
    assert_eq!(deltas.len(), 4, "{deltas:?}");
    assert!(deltas.iter().all(|d| d["point"]["nat"].is_string()), "{deltas:?}");
    // The scoped thresholds looked at their points only.
    let verdicts = summary["thresholds"].as_array().unwrap();
    assert_eq!(verdicts[0]["passed"], true, "{verdicts:?}");
    assert_eq!(verdicts[0]["observed"].as_array().unwrap().len(), 4, "nat=open: 2 RTTs x 2 ICE modes");
    let point = verdicts[1]["observed"].as_array().unwrap();
    assert_eq!(point.len(), 2, "rtt=20 and nat=open: one run per ICE mode: {point:?}");
    assert!(point.iter().all(|o| o["run"].as_str().unwrap().contains("@ 20 ms, NAT open ↔ open")), "{point:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let table = md.split("## Sweep").nth(1).expect("report.md has the sweep");
    assert_eq!(table.lines().filter(|l| l.starts_with("| trickle") || l.starts_with("| vanilla")).count(), 8);
    let peer_files = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("peers-"))
        .count();
    assert_eq!(peer_files, 8, "a peers file per run");

    let node = Command::new("node")
        .arg(root().join("tools/js/check-report.mjs"))
        .arg(out.join("report.html"))
        .arg(out.join("report.png"))
        .output()
        .expect("node is on PATH");
    assert!(node.status.success(), "check-report.mjs: {}", String::from_utf8_lossy(&node.stderr));
    let page: serde_json::Value = serde_json::from_slice(&node.stdout).unwrap();
    assert_eq!(page["errors"], serde_json::json!([]), "no console errors: {page}");
    assert_eq!(page["sweepRows"], 8, "{page}");
    let charts = page["charts"].as_array().unwrap();
    for output in outputs {
        for input in ["ice", "rtt_ms", "nat"] {
            let title = format!("{output} against {input}");
            let c = charts
                .iter()
                .find(|c| c["title"] == title.as_str())
                .unwrap_or_else(|| panic!("a chart {title:?} in {charts:?}"));
            // A point per run, whatever the lines (the other inputs' combinations).
            assert_eq!(c["points"], 8, "{c}");
        }
    }
    assert_eq!(page["wideTables"], serde_json::json!([]), "{}", page["wideTables"]);
    std::fs::remove_dir_all(&d).ok();
}
