//! `peerstorm nat probe`: RFC 5780 behaviour discovery against a simulated NAT.

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use peerstorm_netsim::discovery::{ProbeReport, probe};
use peerstorm_netsim::{Behavior, Firewall, NatConfig, PortAssignment, Preset};

#[derive(Debug, Subcommand)]
pub enum Nat {
    /// Build a simulated NAT (a preset, or custom behaviour) and run RFC 5780 discovery through
    /// it: binding tests I–III, the filtering tests and the hairpinning test against a STUN
    /// responder with two addresses. Prints configured next to discovered; exit 1 if they differ.
    ///
    /// Presets: open, full-cone, restricted-cone, port-restricted, symmetric, cgnat (NAT444),
    /// udp-blocked. Behaviours: endpoint-independent, address-dependent,
    /// address-and-port-dependent (or eim, adm, apdm).
    Probe(ProbeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Ports {
    Preserving,
    Sequential,
    Random,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A named NAT type; omit it to describe one with the flags below.
    #[arg(long)]
    preset: Option<String>,
    /// Custom NAT: mapping behaviour (RFC 4787 §4.1).
    #[arg(long)]
    mapping: Option<String>,
    /// Custom NAT: filtering behaviour (RFC 4787 §5).
    #[arg(long)]
    filtering: Option<String>,
    /// Custom NAT: hairpinning (RFC 4787 §6).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    hairpin: bool,
    /// Custom NAT: port assignment (RFC 4787 §4.2.1).
    #[arg(long, value_enum, default_value = "preserving")]
    ports: Ports,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object: {"preset", "configured": {...}, "discovered": {...}}.
    #[arg(long)]
    json: bool,
}

fn behavior(s: &str, what: &str) -> Result<Behavior> {
    match Behavior::parse(s) {
        Some(b) => Ok(b),
        None => bail!(
            "unknown {what} behaviour {s:?}: use endpoint-independent, address-dependent or address-and-port-dependent"
        ),
    }
}

pub fn run(cmd: Nat) -> Result<u8> {
    match cmd {
        Nat::Probe(a) => probe_cmd(&a),
    }
}

fn show(b: Option<Behavior>) -> &'static str {
    b.map_or("- (no UDP)", Behavior::as_str)
}

fn probe_cmd(a: &ProbeArgs) -> Result<u8> {
    let report: ProbeReport = match (&a.preset, &a.mapping, &a.filtering) {
        (Some(p), None, None) => {
            let Some(preset) = Preset::parse(p) else {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
                bail!("unknown preset {p:?}: use one of {}", names.join(", "));
            };
            probe(preset.as_str(), &preset.layers(), preset.firewall(), a.seed)
        }
        (None, Some(m), Some(f)) => {
            let cfg = NatConfig {
                mapping: behavior(m, "mapping")?,
                filtering: behavior(f, "filtering")?,
                hairpinning: a.hairpin,
                port_assignment: match a.ports {
                    Ports::Preserving => PortAssignment::Preserving,
                    Ports::Sequential => PortAssignment::Sequential,
                    Ports::Random => PortAssignment::Random,
                },
                ..NatConfig::default()
            };
            probe("custom", &[cfg], Firewall::default(), a.seed)
        }
        _ => bail!("give either --preset NAME, or both --mapping and --filtering"),
    };
    let ok = report.matches();
    if a.json {
        let j = serde_json::json!({
            "preset": report.preset,
            "configured": {
                "mapping": report.configured.mapping.map(Behavior::as_str),
                "filtering": report.configured.filtering.map(Behavior::as_str),
                "hairpinning": report.configured.hairpinning,
                "layers": report.configured.layers,
                "firewall": report.configured.firewall,
            },
            "discovered": {
                "mapping": report.discovered.mapping.map(Behavior::as_str),
                "filtering": report.discovered.filtering.map(Behavior::as_str),
                "hairpinning": report.discovered.hairpinning,
                "mapped_address": report.discovered.mapped_address.map(|a| a.to_string()),
                "udp_blocked": report.discovered.udp_blocked,
            },
            "match": ok,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        let c = &report.configured;
        let d = &report.discovered;
        println!(
            "NAT {} ({} layer(s){})",
            report.preset,
            c.layers.len(),
            if c.firewall.block_udp { ", UDP blocked" } else { "" }
        );
        println!("              {:<28} discovered (RFC 5780)", "configured");
        println!("  mapping     {:<28} {}", show(c.mapping), show(d.mapping));
        println!("  filtering   {:<28} {}", show(c.filtering), show(d.filtering));
        let hp = |h: Option<bool>| h.map_or("-", |b| if b { "yes" } else { "no" });
        println!("  hairpinning {:<28} {}", hp(c.hairpinning), hp(d.hairpinning));
        if let Some(m) = d.mapped_address {
            println!("  mapped address {m}");
        }
        println!(
            "{}",
            if ok {
                "discovered behaviour matches the configuration"
            } else {
                "MISMATCH between configuration and discovery"
            }
        );
    }
    Ok(if ok { crate::EXIT_OK } else { crate::EXIT_INVALID })
}
