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
