//! `peerstorm bench turn` as a process, small: both servers complete every round trip, and the
//! allocations are made in waves held at once, each released before the next, so the count
//! measured is not bound by the open-files limit.

use std::process::Command;

#[test]
fn both_servers_relay_everything_and_allocations_come_in_released_waves() {
    let out = std::env::temp_dir().join(format!("peerstorm-test-bench-turn-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_peerstorm"))
        .args(["bench", "turn", "--clients", "4", "--round-trips", "2000", "--window", "2"])
        .args(["--allocations", "250", "--held", "100", "--against", "peerstorm,coturn", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("releasing this wave"), "{stderr}");
    let file = std::fs::read_dir(&out).unwrap().next().expect("a results file").unwrap().path();
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in rows {
        // Waves of 100, 100 and 50: a server that kept a released allocation's port or quota
        // would refuse some, and `errors` would name them.
        assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r}");
        assert_eq!((r["allocations"].as_u64(), r["held"].as_u64()), (Some(250), Some(100)), "{r}");
        assert_eq!(r["relayed_datagrams"].as_u64(), Some(4000), "{r}");
    }
}
