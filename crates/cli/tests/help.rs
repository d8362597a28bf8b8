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
