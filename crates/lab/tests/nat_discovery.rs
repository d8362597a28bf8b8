//! Someone else's RFC 5780 client confirms the NAT presets: coturn's `turnutils_natdiscovery`
//! runs in a lab host behind each preset, against peerstorm's STUN server (with its alternate
//! address) on the simulated internet, and reports the mapping and filtering it finds.

use peerstorm_lab::LabBuilder;
use peerstorm_netsim::{LinkConfig, Preset};
use peerstorm_runner::layout::{Layout, place_peer};
use peerstorm_turn::TurnConfig;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// What natdiscovery printed for mapping and filtering.
fn discover(preset: Preset) -> String {
    let mut b = LabBuilder::new(7);
    let net = b.network_mut();
    let internet = net.add_segment("internet");
    let (primary, alternate) = (Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2));
    let stun = net.add_host("stun", internet, &[primary, alternate], LinkConfig::latency(2));
    let (host, ip) = place_peer(net, internet, 1, preset, &LinkConfig::latency(2), &mut Layout::new(true, false));
    let mut cfg = TurnConfig::new("lab", SocketAddr::from((primary, 3478)));
    cfg.alternate = Some(SocketAddr::from((alternate, 3479)));
    b.add_turn(stun, cfg);
    b.adopt("disc", host, ip);
    let mut lab = b.build().expect("the lab needs root, iproute2 and /dev/net/tun");
    let mut child = lab
        .command(host, "turnutils_natdiscovery")
        .unwrap()
        .args(["-m", "-f", "198.51.100.1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("turnutils_natdiscovery (Debian coturn; scripts/test.sh installs it)");
    let finished = lab.run_until(Duration::from_secs(20), || child.try_wait().is_ok_and(|s| s.is_some())).unwrap();
    assert!(finished, "natdiscovery ended within 20 s");
    let out = child.wait_with_output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// RFC 4787's names as natdiscovery prints them.
const EI: &str = "Endpoint Independent";
const AD: &str = "Address Dependent";
const APD: &str = "Address and Port Dependent";

#[test]
fn natdiscovery_finds_each_presets_configured_behaviour() {
    // (preset, mapping, filtering) as configured (crates/netsim/src/nat.rs, `Preset::layers`);
    // an open host looks like EIM + EIF from outside; cgnat is a port-restricted home NAT
    // behind an EIM/EIF carrier NAT, so the home layer's filtering shows.
    let table = [
        (Preset::Open, EI, EI),
        (Preset::FullCone, EI, EI),
        (Preset::RestrictedCone, EI, AD),
        (Preset::PortRestricted, EI, APD),
        (Preset::Symmetric, APD, APD),
        (Preset::Cgnat, EI, APD),
    ];
    for (preset, mapping, filtering) in table {
        let out = discover(preset);
        let found = |what: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix("NAT with ").and_then(|r| r.strip_suffix(&format!(" {what}!"))))
                .unwrap_or("nothing")
                .to_string()
        };
        let (m, f) = (found("Mapping"), found("Filtering"));
        eprintln!("{:<16} mapping {m:<28} filtering {f}", preset.as_str());
        assert_eq!((m.as_str(), f.as_str()), (mapping, filtering), "{}: natdiscovery said:\n{out}", preset.as_str());
    }
}
