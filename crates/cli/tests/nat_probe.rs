//! `peerstorm nat probe`: every preset, the documented JSON shape, and the exit codes.

use std::process::Command;

fn probe(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peerstorm")).args(["nat", "probe"]).args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn every_preset_probes_and_matches() {
    for preset in ["open", "full-cone", "restricted-cone", "port-restricted", "symmetric", "cgnat", "udp-blocked"] {
        let (code, out, err) = probe(&["--preset", preset, "--json"]);
        assert_eq!(code, Some(0), "{preset}: {err}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["preset"], preset);
        assert_eq!(j["match"], true);
        // Durations are numbers with their unit in the key, not serde's {"secs", "nanos"}.
        if let Some(layer) = j["configured"]["layers"].get(0) {
            assert_eq!(layer["udp_lifetime_s"], 120.0, "{preset}: {layer}");
            assert_eq!(layer["tcp_lifetime_s"], 7440.0, "{preset}: {layer}");
        }
        assert!(!out.contains("\"nanos\""), "{preset}: {out}");
        for side in ["configured", "discovered"] {
            for key in ["mapping", "filtering", "hairpinning"] {
                assert!(j[side].get(key).is_some(), "{preset}: {side}.{key} missing");
            }
        }
        if preset != "udp-blocked" {
            let allowed = ["endpoint-independent", "address-dependent", "address-and-port-dependent"];
            assert!(allowed.contains(&j["discovered"]["mapping"].as_str().unwrap()));
            assert!(allowed.contains(&j["discovered"]["filtering"].as_str().unwrap()));
            assert!(j["discovered"]["hairpinning"].is_boolean());
        } else {
            assert_eq!(j["discovered"]["udp_blocked"], true);
        }
    }
    let (_, out, _) = probe(&["--preset", "symmetric"]);
    assert!(out.contains("address-and-port-dependent") && out.contains("matches"), "{out}");
}

#[test]
fn custom_behaviour_and_errors() {
    let (code, out, _) =
        probe(&["--mapping", "address-dependent", "--filtering", "eif", "--hairpin", "false", "--json"]);
    assert_eq!(code, Some(0));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["discovered"]["mapping"], "address-dependent");
    assert_eq!(j["discovered"]["filtering"], "endpoint-independent");
    assert_eq!(j["discovered"]["hairpinning"], false);
    let (code, _, err) = probe(&["--preset", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("open, full-cone"), "{err}");
    assert_eq!(probe(&["--mapping", "eim"]).0, Some(2));
}
