//! `peerstorm lab clean`: what a killed lab run left behind is removed, nothing else.

mod support;

/// A lab run that was killed leaves its namespace and a program in it; `lab clean` removes
/// both and leaves a live lab's namespaces (here: none) alone.
#[test]
fn lab_clean_removes_what_a_killed_lab_left() {
    // A namespace as a lab names them, owned by a process that no longer exists.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    let _ = { dead }.wait();
    let name = format!("psl-{pid}-orphan");
    assert!(std::process::Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
    let mut sleeper = std::process::Command::new("ip").args(["netns", "exec", &name, "sleep", "600"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(["lab", "clean"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(&name), "{out}");
    assert!(!sleeper.wait().unwrap().success(), "the program in it was stopped");
    let list = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
}

/// Ctrl-C (SIGINT) and SIGTERM in the middle of a lab run: the run exits 130 and its
/// namespaces, and the programs running in them, are gone.
#[test]
fn an_interrupted_lab_run_removes_its_lab() {
    let dir = std::env::temp_dir().join(format!("peerstorm-lab-interrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    // Both sides wait a minute: the run is interrupted long before.
    std::fs::write(
        &file,
        "name = \"interrupt\"\nmode = \"lab\"\n[peers]\ncount = 2\n[lab]\nofferer = \"command\"\nanswerer = \"command\"\n\
         command = \"echo up; sleep 60\"\n",
    )
    .unwrap();
    for signal in ["-INT", "-TERM"] {
        let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_peerstorm"))
            .arg("lab")
            .arg(&file)
            .arg("--out")
            .arg(dir.join("out"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = run.id();
        // Until both hosts' programs run (the offerer starts after the answerer printed).
        let t0 = std::time::Instant::now();
        let sleeping = || {
            support::lab_namespaces_of(pid).iter().filter(|ns| ns.ends_with("-p0") || ns.ends_with("-p1")).all(|ns| {
                let pids = std::process::Command::new("ip").args(["netns", "pids", ns]).output().unwrap();
                !pids.stdout.is_empty()
            }) && support::lab_namespaces_of(pid).len() >= 3
        };
        while !sleeping() {
            assert!(t0.elapsed().as_secs() < 30, "the lab came up");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let namespaces = support::lab_namespaces_of(pid);
        assert!(std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status().unwrap().success());
        let status = run.wait().unwrap();
        let want = if signal == "-INT" { 130 } else { 143 };
        assert_eq!(status.code(), Some(want), "{signal}: interrupted");
        assert!(support::lab_namespaces_of(pid).is_empty(), "{signal}: {namespaces:?} were removed");
        // A partial report of the pair that had started (it was cut: no connection counted).
        let summary = std::fs::read_to_string(dir.join("out/summary.json")).expect("a partial report");
        let j: serde_json::Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(j["interrupted"], true, "{signal}: {j}");
        assert_eq!(
            (j["modes"][0]["pairs"].as_u64(), j["modes"][0]["connections_cut"].as_u64()),
            (Some(0), Some(1)),
            "{signal}"
        );
        std::fs::remove_dir_all(dir.join("out")).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Ctrl-C during `peerstorm calibrate`, even while its lab is still being made: exit 130 as `lab`
/// does (it was 2, "harness error", or death by the signal with the namespaces left), the lab
/// removed and no markdown written.
#[test]
fn an_interrupted_calibration_exits_130() {
    let dir = std::env::temp_dir().join(format!("peerstorm-calibrate-interrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let md = dir.join("c.md");
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["calibrate", "--cells", "host:60", "--pairs", "1", "--ice", "trickle", "--out"])
        .arg(&md)
        .arg("--results")
        .arg(dir.join("runs"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = run.id();
    // As soon as the first cell's lab has namespaces, while it is still being made: the signal
    // is held until the lab forwards, then the lab is removed (before, the process died of the
    // signal and left its namespaces).
    let t0 = std::time::Instant::now();
    while support::lab_namespaces_of(pid).is_empty() {
        assert!(t0.elapsed().as_secs() < 30, "the first cell's lab came up");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(std::process::Command::new("kill").arg("-INT").arg(pid.to_string()).status().unwrap().success());
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted");
    assert!(support::lab_namespaces_of(pid).is_empty(), "the lab was removed");
    assert!(!md.exists(), "no markdown from a cut-short run");
    std::fs::remove_dir_all(&dir).ok();
}

/// A panic while a lab runs unwinds through the `Lab`, which removes its namespaces.
#[test]
fn a_panic_inside_a_lab_removes_it() {
    let result = std::panic::catch_unwind(|| {
        let mut b = peerstorm_lab::LabBuilder::new(1);
        let internet = b.network_mut().add_segment("internet");
        b.add_host(
            "panic",
            internet,
            std::net::Ipv4Addr::new(198, 51, 100, 5),
            peerstorm_netsim::LinkConfig::default(),
        );
        let mut lab = b.build().expect("the lab needs root");
        let _ = lab.run_until(std::time::Duration::from_secs(5), || panic!("in the middle of a lab"));
    });
    assert!(result.is_err());
    assert!(support::lab_namespaces_of(std::process::id()).is_empty(), "the lab's namespace is gone");
}
