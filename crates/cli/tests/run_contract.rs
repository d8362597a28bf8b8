//! `peerstorm run` refuses what it cannot do well before it starts (an occupied or unwritable
//! results directory, a run larger than the machine, a threshold that names nothing the scenario
//! runs), shows its plan with --dry-run, and takes overrides from --set and the environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..")
}

fn peerstorm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peerstorm"));
    c.args(args).current_dir(root());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peerstorm-run-contract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Ten pairs on open addresses: a fraction of a second.
fn small(dir: &Path, thresholds: &str) -> String {
    let p = dir.join("s.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"small\"\nseed = 3\n[network]\nrtt_ms = 40\n[peers]\ncount = 20\n[thresholds]\n{thresholds}\n"
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn an_out_directory_that_holds_files_is_refused_unless_forced() {
    let d = tmp("force");
    let s = small(&d, "success_rate = \">= 90%\"");
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "-q"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already holds files") && text(&o).contains("--force"), "{}", text(&o));
    assert!(!out.join("summary.json").exists(), "nothing may be written into it");
    let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "-q", "--force"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.join("summary.json").exists());
    // An empty directory is fine as it is.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = peerstorm(&["run", &s, "--out", empty.to_str().unwrap(), "-q"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_unwritable_out_is_refused_before_the_run() {
    let d = tmp("unwritable");
    let s = small(&d, "success_rate = \">= 90%\"");
    // A path under a regular file can never be created, not even by root.
    std::fs::write(d.join("file"), "x").unwrap();
    let out = d.join("file/results");
    let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot create it"), "{}", text(&o));
    assert!(!text(&o).contains("on the simulator"), "refused before the run started: {}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let d = tmp("dry");
    let s = small(&d, "\"setup.dc_open.p95\" = \"< 2s\"");
    let out = d.join("out");
    let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "--dry-run"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for want in [
        "scenario   small (mode sim, seed 3)",
        "peers      20 in pairs",
        "RTT 40 ms",
        "memory     about",
        "setup.dc_open.p95 < 2s",
        "dry run",
    ] {
        assert!(text(&o).contains(want), "{want:?} missing:\n{}", text(&o));
    }
    assert!(!out.exists(), "a dry run writes nothing");
    let _ = std::fs::remove_dir_all(&d);
}

/// MemAvailable, GiB.
fn memory_available_gib() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = info.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

#[test]
fn a_run_larger_than_the_machine_is_refused_with_the_estimate() {
    // 1,000,000 peers in one world at the measured ~170 KiB each is ~160 GiB: more than any CI
    // machine has.
    let o = peerstorm(
        &["run", "scenarios/quickstart.toml", "--set", "peers.count=1000000", "--set", "peers.cells=1", "--dry-run"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("GiB available") && text(&o).contains("--shard"), "{}", text(&o));
    assert!(text(&o).contains("set peers.cells to"), "{}", text(&o));
    // In its 16 cells by default, one at a time, 62,500 peers at once fit (~10 GiB) ...
    let o = peerstorm(&["run", "scenarios/quickstart.toml", "--set", "peers.count=1000000", "--dry-run"], &[]);
    let fits = memory_available_gib().is_some_and(|g| g > 11.0);
    assert_eq!(o.status.code(), Some(if fits { 0 } else { 2 }), "{}", text(&o));
    // ... and sixteen at once do not.
    let o = peerstorm(
        &["run", "scenarios/quickstart.toml", "--set", "peers.count=1000000", "--jobs", "16", "--dry-run"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("give fewer --jobs"), "{}", text(&o));
    // A sweep keeps every finished run's histograms until the report: 1,000 points of storm-10k's
    // NAT mix (21 classes, ~0.1 GiB a run) are refused the same way, with what to do instead.
    let sweep = "sweep.rtt_ms=[1,2,3,4,5,6,7,8,9,10];sweep.loss=[0,0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09];sweep.bandwidth_kbps=[100,200,300,400,500,600,700,800,900,1000]";
    let o = peerstorm(&["run", "scenarios/storm-10k.toml", "--dry-run"], &[("PEERSTORM_SET", sweep)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("in 1000 runs") && text(&o).contains("sweep fewer points"), "{}", text(&o));
    // Calls with video hold ~1.4 MiB more a peer (the NACK responder's packet history): 20,000
    // peers in one world fit as DataConnections (~3.3 GiB) but not with video (~31 GiB), and
    // the estimate says what a peer costs.
    let o = peerstorm(
        &["run", "scenarios/media-calls.toml", "--set", "peers.count=20000", "--set", "peers.cells=1", "--dry-run"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("(1700 KiB per peer of each cell going on, measured)"), "{}", text(&o));
}

#[test]
fn set_and_the_environment_change_the_scenario_and_the_results_keep_the_change() {
    let d = tmp("set");
    let s = small(&d, "success_rate = \">= 90%\"");
    let out = d.join("out");
    let o = peerstorm(
        &[
            "run",
            &s,
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--set",
            "peers.count=8",
            "--set",
            "thresholds.pairs=\"== 4\"",
        ],
        &[("PEERSTORM_SEED", "11")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("ok   pairs == 4"), "{}", text(&o));
    let kept = std::fs::read_to_string(out.join("scenario.toml")).unwrap();
    assert!(kept.contains("count = 8") && kept.contains("--set peers.count=8"), "{kept}");
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"seed\": 11"), "PEERSTORM_SEED is --seed");

    let o = peerstorm(&["run", &s, "--dry-run"], &[("PEERSTORM_SET", "peers.count=6;peers.ice=[\"vanilla\"]")]);
    assert!(text(&o).contains("peers      6 in pairs") && text(&o).contains("ICE vanilla"), "{}", text(&o));

    for (set, why) in [
        ("peers=3", "peers is a table"),
        ("peers.count.x=3", "peers.count is a value"),
        ("network.rtt_ms=100ms", "\"100ms\" is a string: this key takes a number of milliseconds"),
        ("nonsense", "expected KEY=VALUE"),
    ] {
        let o = peerstorm(&["run", &s, "--dry-run", "--set", set], &[]);
        assert_eq!(o.status.code(), Some(2), "{set}: {}", text(&o));
        assert!(text(&o).contains(why), "{set}: {}", text(&o));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_threshold_scoped_to_something_the_scenario_does_not_run_is_refused_before_it() {
    let d = tmp("scope");
    let s = small(&d, "\"success_rate{class=open ↔ symetric}\" = \">= 90%\"");
    let o = peerstorm(&["run", &s, "-q", "--out", d.join("out").to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("\"symetric\" is not in network.nat_mix"), "{}", text(&o));
    assert!(!d.join("out").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn scenarios_lists_every_shipped_scenario_with_its_purpose() {
    let o = peerstorm(&["scenarios"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let listed = text(&o);
    for f in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let name = p.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(listed.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} not listed:\n{listed}");
        }
    }
    assert!(!listed.contains("does not load"), "{listed}");
    assert!(listed.contains("quickstart       sim · 300 peers"), "{listed}");
}

/// summary.json carries every threshold's verdict, unit and observed values; `--summary -`
/// prints it alone on stdout (everything else on stderr) and `--summary FILE` copies it.
#[test]
fn summary_json_carries_the_verdicts_and_summary_dash_prints_only_it() {
    let d = tmp("summary");
    let s = small(&d, "success_rate = \">= 90%\"\n\"setup.dc_open.p50\" = \"< 1ms\"");
    let out = d.join("out");
    let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "--summary", "-"], &[]);
    assert_eq!(o.status.code(), Some(1), "one threshold fails: {}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is summary.json alone");
    assert_eq!(
        j,
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
    );
    let t = j["thresholds"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0]["threshold"].as_str(), t[0]["passed"].as_bool(), t[0]["unit"].as_str()),
        (Some("success_rate >= 90%"), Some(true), Some("fraction"))
    );
    assert_eq!(t[0]["observed"][0]["value"], 1.0);
    assert_eq!(t[0]["message"], "trickle: 100.0 %", "a share in percent");
    assert_eq!((t[1]["passed"].as_bool(), t[1]["unit"].as_str()), (Some(false), Some("ms")));
    assert!(t[1]["observed"][0]["value"].as_f64().unwrap() > 1.0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("FAIL setup.dc_open.p50 < 1ms") && err.contains("results in"),
        "the human output is on stderr: {err}"
    );

    let copy = d.join("copy.json");
    let o = peerstorm(
        &["run", &s, "--out", d.join("out2").to_str().unwrap(), "-q", "--summary", copy.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(d.join("out2/summary.json")).unwrap());
    let _ = std::fs::remove_dir_all(&d);
}

/// SIGTERM (or Ctrl-C) during a simulation: the run stops, writes a partial report marked
/// interrupted in every output, and exits 143 (130). Before, the process died with the signal
/// and wrote nothing.
#[test]
fn a_signal_stops_the_run_with_a_partial_report_marked_interrupted() {
    use std::io::{BufRead, BufReader};
    let d = tmp("signal");
    let out = d.join("out");
    // 5,000 pairs at 10 per second: minutes of virtual time, so the signal always comes mid-run.
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["run", "scenarios/storm-10k.toml", "-q", "--out", out.to_str().unwrap()])
        .args(["--set", "peers.arrival={ rate_per_s = 10 }"])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The handler is in place once the run says it is running.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("on the simulator") {}
    assert!(line.contains("running storm-10k"), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(143), "{stdout}{rest}");
    assert!(rest.contains("SIGTERM: stopping"), "{rest}");
    assert!(stdout.starts_with("INTERRUPTED") && stdout.contains("interrupted (SIGTERM)"), "{stdout}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    let m = &summary["modes"][0];
    assert_eq!(m["interrupted"], true);
    let (pairs, peers) = (m["pairs"].as_u64().unwrap(), m["peers"].as_u64().unwrap());
    assert!(peers > 0 && peers < 10_000, "only the peers that started: {peers}");
    assert!(pairs + m["connections_cut"].as_u64().unwrap_or(0) <= peers / 2, "{m}");
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("**INTERRUPTED"));
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("id=\"interrupted\""));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("errors=\"1\"") && junit.contains("type=\"interrupted\""), "{junit}");
    // The mark survives a re-render from metrics.json.
    let again = d.join("again");
    let o = peerstorm(&["report", out.to_str().unwrap(), "--out", again.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(std::fs::read_to_string(again.join("summary.json")).unwrap().contains("\"interrupted\": true"));
    let _ = std::fs::remove_dir_all(&d);
}

/// The results files of a run directory, by name: summary, metrics and every peers file.
fn result_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "jsonl"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// Runs `scenario` with `sets` into `out`, asserting it succeeds.
fn run_into(scenario: &str, sets: &[&str], extra: &[&str], out: &std::path::Path) {
    let mut args = vec!["run", scenario, "-q", "--out", out.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    args.extend(extra);
    let o = peerstorm(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// `--jobs 2` runs two cells at once (several runs, and several cells of one run) and writes
/// exactly what `--jobs 1` writes: summary.json, metrics.json and every peers file, byte for
/// byte, on quickstart, nat-matrix and trickle-ab.
#[test]
fn two_jobs_write_exactly_what_one_job_writes() {
    let d = tmp("jobs");
    let cases: [(&str, &[&str], usize); 3] = [
        ("scenarios/trickle-ab.toml", &["peers.count=20", "peers.cells=2"], 6),
        ("scenarios/quickstart.toml", &["peers.cells=3"], 1),
        ("scenarios/nat-matrix.toml", &["peers.cells=3"], 1),
    ];
    for (k, (scenario, sets, runs)) in cases.iter().enumerate() {
        let dir = |j: &str| d.join(format!("{k}-jobs{j}"));
        for j in ["1", "2"] {
            run_into(scenario, sets, &["--jobs", j], &dir(j));
        }
        let (one, two) = (result_files(&dir("1")), result_files(&dir("2")));
        assert_eq!(one.iter().filter(|(f, _)| f.starts_with("peers-")).count(), *runs, "{scenario}");
        assert_eq!(one.len(), two.len(), "{scenario}");
        for ((f, a), (_, b)) in one.iter().zip(&two) {
            assert!(a == b, "{scenario}: {f} differs between --jobs 1 and --jobs 2");
        }
    }
    // The plan says so; PEERSTORM_JOBS sets it too; never more jobs than cells (six here).
    let plan = peerstorm(&["run", "scenarios/trickle-ab.toml", "--dry-run"], &[("PEERSTORM_JOBS", "9")]);
    assert!(text(&plan).contains("jobs       6 cells at once"), "{}", text(&plan));
    let plan = peerstorm(&["run", "scenarios/storm-10k.toml", "--dry-run"], &[]);
    assert!(text(&plan).contains("cells      10 per run"), "{}", text(&plan));
    let _ = std::fs::remove_dir_all(&d);
}

/// Cells are independent worlds: without loss or jitter (no random draws at all) a run split
/// into three cells writes exactly what it writes as one world, so merging loses and invents
/// nothing — peers, links, the datagram count (finished pairs retire, so it does not depend on
/// when the last cell ends) and the per-second series.
#[test]
fn a_lossless_run_in_three_cells_writes_what_one_world_writes() {
    let d = tmp("cells");
    for cells in ["1", "3"] {
        let sets = ["network.loss=0".to_string(), format!("peers.cells={cells}")];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        run_into("scenarios/quickstart.toml", &sets, &[], &d.join(cells));
    }
    let (one, three) = (result_files(&d.join("1")), result_files(&d.join("3")));
    assert!(one.iter().any(|(f, _)| f == "summary.json"));
    for ((f, a), (_, b)) in one.iter().zip(&three) {
        assert!(a == b, "{f} differs between one cell and three");
    }
    // A scenario whose peers share something cells would split refuses more than one.
    let o = peerstorm(
        &[
            "run",
            "scenarios/quickstart.toml",
            "--dry-run",
            "--set",
            "network.shared_cgnat=true",
            "--set",
            "peers.cells=2",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("network.shared_cgnat"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}
