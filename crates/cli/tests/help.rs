//! The top-level help says what each command family holds and what the exit codes mean for all
//! of them (it once listed only the broker for `serve` and `bench`, and `inspect`'s codes).

#[test]
fn top_level_help_names_every_server_and_benchmark_and_general_exit_codes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peerstorm")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    let line = |cmd: &str| help.lines().find(|l| l.trim_start().starts_with(cmd)).unwrap_or_default().to_string();
    assert!(line("serve").contains("STUN/TURN"), "{help}");
    let bench = help.split("bench").nth(1).unwrap_or_default();
    assert!(bench.contains("coturn") && bench.contains("lab"), "{help}");
    assert!(help.contains("a threshold or a MUST case failed"), "{help}");
    assert!(!help.contains("0 valid input, 1 invalid input (diagnostics on stderr), 2 usage or I/O error"), "{help}");
}

/// `peerstorm … | head`: when the reader closes the pipe, peerstorm ends quietly with the
/// SIGPIPE status (141), not a panic and its backtrace (exit 101).
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    // A pipe whose reader is gone before the program starts: its first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["conform", "broker", "http://127.0.0.1:9/", "--list", "--profile", "all"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn peerstorm(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(args).output().unwrap()
}

/// `--version` says which commit, which WebRTC stack and which browser profiles a report came
/// from (it said only "peerstorm 0.1.0").
#[test]
fn version_names_the_commit_the_stack_and_the_profiles() {
    let out = peerstorm(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let v = String::from_utf8_lossy(&out.stdout);
    let commit = v.split("(commit ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default();
    assert!(commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{v}");
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim(), "the commit checked out: {v}");
    assert!(v.contains("rtc 0.21.1"), "{v}");
    for p in peerstorm_peer::Profile::ALL {
        assert!(v.contains(p.as_str()), "profile {} missing: {v}", p.as_str());
    }
    let short = peerstorm(&["-V"]);
    assert!(String::from_utf8_lossy(&short.stdout).contains(commit), "-V names the commit too");
}

/// Completion scripts that the shell itself accepts, naming every command.
#[test]
fn completion_scripts_parse_in_their_shell() {
    let out = peerstorm(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8_lossy(&out.stdout).to_string();
    for cmd in ["run", "conform", "calibrate", "scenarios", "man"] {
        assert!(script.contains(cmd), "{cmd} missing");
    }
    let dir = std::env::temp_dir().join(format!("peerstorm-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("peerstorm.bash");
    std::fs::write(&file, &script).unwrap();
    let check = std::process::Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    let bad = peerstorm(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Manual pages: one per command, in roff, with the command's own help in them.
#[test]
fn man_writes_a_page_per_command() {
    let dir = std::env::temp_dir().join(format!("peerstorm-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = peerstorm(&["man", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for page in ["peerstorm.1", "peerstorm-run.1", "peerstorm-conform-broker.1", "peerstorm-calibrate.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH "), "{page} is not roff");
    }
    let run = std::fs::read_to_string(dir.join("peerstorm-run.1")).unwrap();
    assert!(run.contains("dry") && run.contains("PEERSTORM_SET"), "the run page carries its options");
    let top = peerstorm(&["man"]);
    assert!(String::from_utf8_lossy(&top.stdout).contains(".TH peerstorm 1"));
    let _ = std::fs::remove_dir_all(&dir);
}
