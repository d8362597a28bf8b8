//! The simulation runner end to end: real-stack peers in pairs over the simulated network.

use peerstorm_runner::{Scenario, run};

fn scenario(extra: &str) -> Scenario {
    Scenario::parse(&format!("name = \"t\"\nseed = 5\n{extra}")).unwrap()
}

#[test]
fn same_seed_same_summary_another_seed_another() {
    let text = "[network]\nrtt_ms = 40\nloss = 0.02\n[peers]\ncount = 20\narrival = { rate_per_s = 50 }\nice = [\"trickle\", \"vanilla\"]\n";
    let a = serde_json::to_string(&run(&scenario(text)).unwrap()).unwrap();
    let b = serde_json::to_string(&run(&scenario(text)).unwrap()).unwrap();
    assert_eq!(a, b, "same scenario and seed: byte-identical summary");
    let mut other = scenario(text);
    other.seed = 6;
    let c = serde_json::to_string(&run(&other).unwrap()).unwrap();
    assert_ne!(a, c, "another seed changes the lossy run");
    let s: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(s["schema"], "peerstorm.summary/1");
    assert_eq!(s["modes"][0]["pairs"], 10);
    assert!(s["modes"][0]["success_rate"].as_f64().unwrap() >= 0.9, "{s}");
}

/// With no NAT and fixed latencies, setup time is a count of round trips plus the ICE agent's
/// fixed timer waits: the slope against RTT is that count.
#[test]
fn setup_time_grows_with_the_rtt_by_a_fixed_count() {
    let open_at = |rtt: u64| {
        let s = scenario(&format!("[network]\nrtt_ms = {rtt}\n[servers]\nbroker_rtt_ms = {rtt}\n[peers]\ncount = 2\n"));
        let summary = run(&s).unwrap();
        let m = &summary.modes[0];
        assert_eq!(m.pairs_ok, 1, "rtt {rtt}: {m:?}");
        m.stages["dc_open"].p50_ms
    };
    let (a, b, c) = (open_at(20), open_at(40), open_at(80));
    let slope1 = (b - a) / 20.0;
    let slope2 = (c - b) / 40.0;
    eprintln!(
        "data channel open: {a} ms at 20 ms RTT, {b} at 40, {c} at 80; round trips per RTT step: {slope1:.2}, {slope2:.2}"
    );
    assert!((slope1 - slope2).abs() < 0.3, "linear in the RTT: {slope1} vs {slope2}");
    assert!((5.0..=14.0).contains(&slope1), "a plausible round-trip count: {slope1}");
}

#[test]
fn everything_fails_cleanly_when_the_network_drops_everything() {
    let s = scenario("[network]\nloss = 0.999\n[peers]\ncount = 2\n[timeouts]\nsetup_s = 5\n");
    let summary = run(&s).unwrap();
    let m = &summary.modes[0];
    assert_eq!(m.pairs_ok, 0);
    assert!(m.failures.values().sum::<usize>() >= 1, "{m:?}");
}

fn class_rates(text: &str) -> std::collections::BTreeMap<String, (f64, Vec<String>)> {
    let summary = run(&scenario(text)).unwrap();
    summary.modes[0]
        .classes
        .iter()
        .map(|(k, c)| (k.clone(), (c.success_rate, c.selected.keys().cloned().collect())))
        .collect()
}

/// RFC 4787 without a relay: endpoint-independent mappings meet through server-reflexive
/// candidates; a symmetric NAT meets only a peer whose filter lets its fresh port in.
#[test]
fn without_turn_the_nat_matrix_connects_where_rfc_4787_allows() {
    let m = class_rates(
        "[network]\npairing = \"matrix\"\nnat_mix = { open = 1, port-restricted = 1, restricted-cone = 1, symmetric = 1, udp-blocked = 1 }\n[servers]\nturn = \"none\"\n[peers]\ncount = 50\n[timeouts]\nsetup_s = 12\n",
    );
    let rate = |k: &str| m.get(k).unwrap_or_else(|| panic!("class {k} in {m:?}")).0;
    assert_eq!(rate("port-restricted ↔ port-restricted"), 1.0, "{m:?}");
    assert!(
        m["port-restricted ↔ port-restricted"].1.iter().all(|t| t.ends_with("/srflx") || t.ends_with("/prflx")),
        "{m:?}"
    );
    assert_eq!(rate("open ↔ symmetric"), 1.0);
    assert_eq!(rate("restricted-cone ↔ symmetric"), 1.0, "address-dependent filtering admits the new port");
    assert_eq!(rate("port-restricted ↔ symmetric"), 0.0, "port-dependent filtering refuses it");
    assert_eq!(rate("symmetric ↔ symmetric"), 0.0);
    assert_eq!(rate("open ↔ udp-blocked"), 0.0);
}

/// With the embedded TURN server, the pairs that no direct path serves meet through a relay,
/// and the selected pair says so; udp-blocked would need TURN over TCP, which the virtual peer
/// does not speak, so it still fails.
#[test]
fn with_turn_symmetric_pairs_meet_through_a_relay() {
    let m = class_rates(
        "[network]\npairing = \"matrix\"\nnat_mix = { port-restricted = 1, symmetric = 1, udp-blocked = 1 }\n[peers]\ncount = 18\n[timeouts]\nsetup_s = 12\n",
    );
    for k in ["symmetric ↔ symmetric", "port-restricted ↔ symmetric"] {
        assert_eq!(m[k].0, 1.0, "{k}: {m:?}");
        assert!(m[k].1.iter().all(|t| t.contains("relay")), "{k} selects a relayed pair: {m:?}");
    }
    assert_eq!(m["port-restricted ↔ port-restricted"].0, 1.0);
    assert!(!m["port-restricted ↔ port-restricted"].1.iter().any(|t| t.contains("relay")), "a direct path wins: {m:?}");
    assert_eq!(m["symmetric ↔ udp-blocked"].0, 0.0);
}

/// Relay-only policy: every selected pair is relayed on the local side, whatever the NAT.
#[test]
fn relay_only_policy_relays_everything() {
    let m = class_rates("[servers]\nrelay_only = true\n[peers]\ncount = 4\n");
    let (rate, selected) = &m["open ↔ open"];
    assert_eq!(*rate, 1.0, "{m:?}");
    assert!(selected.iter().all(|t| t.starts_with("relay/")), "{m:?}");
}

/// Trickle against vanilla with a slow STUN/TURN server on open addresses (the host path works
/// at once): vanilla sends the offer after the offerer's gathering and the answer after the
/// answerer's, so trickle's data channel opens earlier by about both gathering delays.
#[test]
fn trickle_beats_vanilla_by_the_gathering_delay_when_the_server_is_slow() {
    let s = scenario(
        "[network]\nrtt_ms = 40\n[servers]\nbroker_rtt_ms = 40\nanswer_delay_ms = 500\n[peers]\ncount = 2\nice = [\"trickle\", \"vanilla\"]\n",
    );
    let summary = run(&s).unwrap();
    let (t, v) = (&summary.modes[0], &summary.modes[1]);
    assert_eq!((t.pairs_ok, v.pairs_ok), (1, 1), "{summary:?}");
    let gathering = v.stages["gathering_complete"].p50_ms - v.stages["open"].p50_ms;
    assert!(gathering >= 1000.0, "two slow TURN answers: {gathering} ms");
    let saved = v.stages["dc_open"].p50_ms - t.stages["dc_open"].p50_ms;
    eprintln!("gathering {gathering} ms; trickle saves {saved} ms of dc_open");
    assert!(
        (saved - 2.0 * gathering).abs() <= 0.15 * gathering,
        "trickle saves about both sides' gathering: saved {saved} ms, gathering {gathering} ms"
    );
}

/// Two subscribers behind one carrier NAT reach each other's server-reflexive address only if
/// the carrier NAT hairpins (RFC 4787 §6); without hairpinning they need the relay.
#[test]
fn peers_behind_one_carrier_nat_meet_by_hairpinning_or_through_the_relay() {
    let run_with = |hairpinning: bool, turn: &str| {
        class_rates(&format!(
            "[network]\nnat_mix = {{ cgnat = 1 }}\nshared_cgnat = true\nhairpinning = {hairpinning}\n[servers]\nturn = \"{turn}\"\n[peers]\ncount = 8\n[timeouts]\nsetup_s = 12\n"
        ))
        .remove("cgnat ↔ cgnat")
        .unwrap()
    };
    let (rate, selected) = run_with(true, "none");
    assert_eq!(rate, 1.0);
    assert!(selected.iter().all(|t| t == "host/srflx"), "{selected:?}");
    assert_eq!(run_with(false, "none").0, 0.0, "no hairpinning, no relay: no path");
    let (rate, selected) = run_with(false, "embedded");
    assert_eq!(rate, 1.0);
    assert!(selected.iter().all(|t| t.contains("relay")), "{selected:?}");
}
