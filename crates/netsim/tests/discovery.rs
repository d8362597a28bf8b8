//! RFC 5780 discovery, run inside the simulator, must classify every NAT as it is configured:
//! every preset, and every mapping × filtering × hairpinning combination.

use peerstorm_netsim::discovery::{probe, probe_preset};
use peerstorm_netsim::{Behavior, Firewall, NatConfig, PortAssignment, Preset};

#[test]
fn every_preset_is_discovered_as_configured() {
    for p in Preset::ALL {
        let r = probe_preset(p, 42);
        assert!(r.matches(), "{}: configured {:?} discovered {:?}", p.as_str(), r.configured, r.discovered);
    }
    // Spot checks of what the presets mean.
    let open = probe_preset(Preset::Open, 1);
    assert_eq!(open.discovered.mapped_address.unwrap().to_string(), "203.0.113.10:40000");
    let sym = probe_preset(Preset::Symmetric, 1);
    assert_eq!(sym.discovered.mapping, Some(Behavior::AddressAndPortDependent));
    let blocked = probe_preset(Preset::UdpBlocked, 1);
    assert!(blocked.discovered.udp_blocked && blocked.discovered.mapping.is_none());
    let cgnat = probe_preset(Preset::Cgnat, 1);
    assert_eq!(cgnat.configured.layers.len(), 2);
    assert!(
        cgnat.discovered.mapped_address.unwrap().ip().octets()[0] == 203,
        "the carrier NAT's address is what the server sees"
    );
}

#[test]
fn every_mapping_filtering_and_hairpin_combination() {
    let mut n = 0;
    for mapping in Behavior::ALL {
        for filtering in Behavior::ALL {
            for hairpinning in [true, false] {
                for port_assignment in [PortAssignment::Preserving, PortAssignment::Random] {
                    let cfg = NatConfig { mapping, filtering, hairpinning, port_assignment, ..NatConfig::default() };
                    let r = probe("custom", &[cfg], Firewall::default(), 7 + n);
                    assert!(
                        r.matches(),
                        "{mapping:?}/{filtering:?}/hairpin {hairpinning}/{port_assignment:?}: discovered {:?}",
                        r.discovered
                    );
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 36);
}

#[test]
fn nested_nats_compose() {
    // A symmetric carrier NAT behind a full-cone home NAT looks symmetric from outside.
    let home = NatConfig {
        mapping: Behavior::EndpointIndependent,
        filtering: Behavior::EndpointIndependent,
        ..NatConfig::default()
    };
    let carrier = NatConfig {
        mapping: Behavior::AddressAndPortDependent,
        filtering: Behavior::AddressDependent,
        port_assignment: PortAssignment::Random,
        ..NatConfig::default()
    };
    let r = probe("nested", &[home, carrier], Firewall::default(), 3);
    assert!(r.matches(), "{:?}", r.discovered);
    assert_eq!(r.discovered.mapping, Some(Behavior::AddressAndPortDependent));
    assert_eq!(r.discovered.filtering, Some(Behavior::AddressDependent));
}
