//! `peerstorm run` with `mode = "live"`: the signaling load on real loopback sockets against
//! peerstorm's broker and the reference peer@1.0.2 (tools/js, installed by scripts/test.sh),
//! every load model, shards from JOB_COMPLETION_INDEX merged, a broker that dies mid-run, and a
//! file-descriptor limit too low for the plan. Small sizes: the capacity runs are benchmarks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peerstorm-live-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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

fn scenario(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, format!("name = \"{name}\"\nmode = \"live\"\n{body}")).unwrap();
    p.to_str().unwrap().to_string()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn open_load_against_peerstorm_and_the_reference_broker() {
    assert!(
        root().join("tools/js/node_modules/peer").exists(),
        "tools/js/node_modules is missing: run scripts/test.sh (it runs npm ci in tools/js)"
    );
    let d = tmp("open");
    for broker in ["embedded", "reference"] {
        let s = scenario(
            &d,
            &format!("open-{broker}"),
            &format!(
                "[servers]\nbroker = \"{broker}\"\n[peers]\ncount = 200\n[load]\nmodel = \"open\"\nrate_per_s = 40\nduration_s = 2\n[signaling]\ncandidates = 3\nhold_s = 0.5\nid_request = true\n[thresholds]\nsuccess_rate = \">= 0.99\"\n\"signal.exchange.count\" = \">= 80\"\n"
            ),
        );
        let out = d.join(broker);
        let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "-q"], &[]);
        assert_eq!(o.status.code(), Some(0), "{broker}: {}", text(&o));
        let j = summary(&out);
        let m = &j["modes"][0];
        assert_eq!(m["pairs"], 80, "{broker}: 40 pairs/s for 2 s: {m}");
        assert_eq!(m["pairs_ok"], 80, "{broker}: {m}");
        // OFFER + 3 CANDIDATE each way, every one relayed and counted.
        assert_eq!(m["frames_relayed"], 80 * 8, "{broker}: {m}");
        for k in ["connect_open", "offer_relay", "answer_relay", "exchange", "exchange_uncorrected"] {
            assert!(m["signal"][k]["count"].as_u64().unwrap() >= 80, "{broker}: {k}: {m}");
        }
        // Latency from the intended start is never less than from the actual start.
        assert!(m["signal"]["exchange"]["p50_ms"].as_f64() >= m["signal"]["exchange_uncorrected"]["p50_ms"].as_f64());
        assert!(m["resources"]["broker_rss_mib_max"].as_f64().unwrap() > 0.0, "{broker}: sampled from /proc: {m}");
        assert!(m["resources"]["peers_max"].as_f64().unwrap() >= 2.0, "{m}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn closed_ramp_and_churn_models_run_bounded() {
    let d = tmp("models");
    for (name, load, check) in [
        ("closed", "model = \"closed\"\nconcurrency = 4\nduration_s = 1.5", "closed"),
        ("ramp", "model = \"ramp\"\nrate_per_s = 10\nrate_to_per_s = 50\nduration_s = 2", "ramp"),
        ("churn", "model = \"churn\"\npairs = 6\nchurn_per_s = 8\nduration_s = 2", "churn"),
    ] {
        let s = scenario(
            &d,
            name,
            &format!(
                "[peers]\ncount = 2000\n[load]\n{load}\n[signaling]\nhold_s = 0\n[thresholds]\nsuccess_rate = \">= 0.99\"\n"
            ),
        );
        let out = d.join(name);
        let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "-q"], &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        let m = &summary(&out)["modes"][0];
        let pairs = m["pairs"].as_u64().unwrap();
        match check {
            // Four at a time, back to back for 1.5 s: many more than four.
            "closed" => assert!(pairs > 8, "{m}"),
            // The mean rate 30/s for 2 s.
            "ramp" => assert_eq!(pairs, 60, "{m}"),
            // Six held, and about 16 replaced (8/s for 2 s), each replacement a new pair.
            _ => {
                let metrics: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
                let churned = metrics["runs"][0]["counters"]["churned_pairs"].as_u64().unwrap();
                assert!((12..=16).contains(&churned), "{churned}");
                assert!(pairs >= 6 + churned - 6, "held pairs are replaced: {pairs} pairs, {churned} churned");
                assert!(m["resources"]["peers_max"].as_f64().unwrap() <= 14.0, "about six pairs held at a time: {m}");
            }
        }
        assert_eq!(m["pairs_ok"], m["pairs"], "{name}: {m}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn shards_from_job_completion_index_merge_into_the_whole_plan() {
    let d = tmp("shards");
    let s =
        scenario(&d, "sharded", "[peers]\ncount = 400\n[load]\nmodel = \"open\"\nrate_per_s = 30\nduration_s = 2\n");
    let mut dirs = Vec::new();
    for (i, ip) in [(0, "127.0.0.2"), (1, "127.0.0.3")] {
        let out = d.join(format!("shard{i}"));
        let o = peerstorm(
            &["run", &s, "--shards", "2", "--source-ip", ip, "--out", out.to_str().unwrap(), "-q"],
            &[("JOB_COMPLETION_INDEX", &i.to_string())],
        );
        assert_eq!(o.status.code(), Some(0), "shard {i}: {}", text(&o));
        assert_eq!(summary(&out)["modes"][0]["pairs"], 30, "half of 60 pairs each");
        dirs.push(out);
    }
    let merged = d.join("merged");
    let o = peerstorm(
        &["merge", dirs[0].to_str().unwrap(), dirs[1].to_str().unwrap(), "--out", merged.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j = summary(&merged);
    assert_eq!(j["shards"], serde_json::json!(["1/2", "2/2"]));
    assert_eq!(j["modes"][0]["pairs"], 60);
    assert_eq!(j["modes"][0]["signal"]["exchange"]["count"], 60);
    let o = peerstorm(&["run", &s, "--shards", "2"], &[]);
    assert_eq!(o.status.code(), Some(2), "no JOB_COMPLETION_INDEX: {}", text(&o));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_broker_that_dies_mid_run_ends_the_run_with_a_partial_report() {
    let d = tmp("dies");
    let mut broker = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["serve", "broker", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out_lines = BufReader::new(broker.stdout.take().unwrap()).lines();
    let banner = out_lines.next().unwrap().unwrap();
    // Keep reading: a closed pipe would kill the broker at its next line.
    std::thread::spawn(move || for _ in out_lines {});
    let addr: std::net::SocketAddr = banner.split_whitespace().nth(4).unwrap().trim_end_matches(':').parse().unwrap();
    let s = scenario(
        &d,
        "dies",
        &format!(
            "[servers]\nbroker = {{ host = \"127.0.0.1\", port = {} }}\n[peers]\ncount = 4000\n[load]\nmodel = \"open\"\nrate_per_s = 20\nduration_s = 60\n[signaling]\nhold_s = 0.2\n",
            addr.port()
        ),
    );
    let out = d.join("out");
    let pid = broker.id().to_string();
    let mut run = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["run", &s, "--broker-pid", &pid, "--out", out.to_str().unwrap(), "-q"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the run get going (its banner is on stderr), then kill the broker.
    let mut err = BufReader::new(run.stderr.take().unwrap()).lines();
    let started = err.by_ref().map_while(Result::ok).any(|l| l.contains("live against"));
    assert!(started, "the run never started");
    std::thread::spawn(move || for _ in err {});
    std::thread::sleep(std::time::Duration::from_millis(2000));
    broker.kill().unwrap();
    broker.wait().unwrap();
    // Bounded: the run must end on its own well before its 60 s plan; a hang fails here.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = run.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(40), "the run did not end after the broker died");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let o = run.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(2), "no threshold failed, but the run could not be done: {}", text(&o));
    assert!(text(&o).contains("cut short") && text(&o).contains("exited"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let m = &summary(&out)["modes"][0];
    assert!(m["pairs_ok"].as_u64().unwrap() >= 5, "the pairs before the death are in the partial report: {m}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn too_low_a_descriptor_limit_is_a_clear_error() {
    let d = tmp("fds");
    let s = scenario(
        &d,
        "fds",
        "[peers]\ncount = 100000\n[load]\nmodel = \"open\"\nrate_per_s = 2000\nduration_s = 5\n[signaling]\nhold_s = 10\n",
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n 256 && exec {} run {s} -q", env!("CARGO_BIN_EXE_peerstorm")))
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("open-file hard limit is 256"), "{}", text(&o));
    std::fs::remove_dir_all(&d).ok();
}

/// Full-stack pairs (the rtc stack on loopback UDP) relay-only through coturn, signaled through
/// peer@1.0.2; through peerstorm's own broker and TURN server; and through coturn over TCP.
#[test]
fn full_stack_pairs_through_the_reference_broker_and_coturn_and_through_ours() {
    let d = tmp("full");
    for (broker, turn, transport) in
        [("reference", "coturn", "udp"), ("embedded", "embedded", "udp"), ("embedded", "coturn", "tcp")]
    {
        let s = scenario(
            &d,
            &format!("full-{turn}-{transport}"),
            &format!(
                "[servers]\nbroker = \"{broker}\"\nturn = \"{turn}\"\nturn_transport = \"{transport}\"\nrelay_only = true\n[peers]\ncount = 100\n[load]\nstack = \"full\"\nmodel = \"open\"\nrate_per_s = 4\nduration_s = 1\n[timeouts]\nsetup_s = 20\n[thresholds]\nsuccess_rate = \">= 1\"\nrelay_share = \">= 1\"\n\"setup.dc_open.count\" = \">= 4\"\n"
            ),
        );
        let out = d.join(format!("{turn}-{transport}"));
        let o = peerstorm(&["run", &s, "--out", out.to_str().unwrap(), "-q"], &[]);
        assert_eq!(o.status.code(), Some(0), "{broker} + {turn} over {transport}: {}", text(&o));
        let m = &summary(&out)["modes"][0];
        assert_eq!(m["pairs"], 4, "{m}");
        assert!(m["goodput"]["p50_kbps"].as_f64().unwrap() > 0.0, "{m}");
        let peers = std::fs::read_to_string(out.join("peers-trickle.jsonl")).unwrap();
        assert_eq!(peers.lines().count(), 8, "every peer's record is kept");
        assert!(text(&o).contains("trickle ICE live, real sockets: 4 connections"), "{}", text(&o));
        // What moved on real sockets is counted too: each pair's OPENs, OFFER, ANSWER and
        // candidates through the broker; its STUN, ICE, DTLS and SCTP datagrams (were 0).
        assert!(m["frames_relayed"].as_u64().unwrap() >= 4 * 4, "{m}");
        assert!(m["datagrams_delivered"].as_u64().unwrap() >= 4 * 20, "{m}");
        assert_eq!(m["live"], true, "{m}");
    }
    std::fs::remove_dir_all(&d).ok();
}

/// Ctrl-C in a terminal reaches the whole process group: peerstorm and the embedded broker it
/// started. The run stops with a partial report marked interrupted and exit 130, and the
/// broker's death by the same Ctrl-C is neither the run's abort reason nor any pair's failure.
#[test]
fn ctrl_c_to_the_process_group_stops_a_live_run_without_blaming_the_broker() {
    use std::os::unix::process::CommandExt;
    let d = tmp("ctrl-c");
    let s = scenario(
        &d,
        "held",
        "[peers]\ncount = 2000\n[load]\nmodel = \"open\"\nrate_per_s = 40\nduration_s = 60\n[signaling]\nhold_s = 1\n",
    );
    let out = d.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["run", &s, "-q", "--out", out.to_str().unwrap()])
        .current_dir(root())
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("running held live") {}
    assert!(line.contains("running held live"), "{line}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    // As a terminal does: SIGINT to every process of the group (peerstorm and its broker).
    let group = format!("-{}", child.id());
    assert!(Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}{rest}");
    assert!(stdout.contains("interrupted (Ctrl-C)") && !stdout.contains("exited"), "{stdout}");
    let j = summary(&out);
    assert_eq!(j["interrupted"], true, "{j}");
    let m = &j["modes"][0];
    assert!(m["pairs"].as_u64().unwrap() >= 40, "three seconds at 40 pairs/s: {m}");
    assert_eq!(m["failures"], serde_json::json!({}), "the broker's death is the interruption's: {m}");
    let _ = std::fs::remove_dir_all(&d);
}
