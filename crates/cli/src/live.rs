//! `peerstorm run` for `mode = "live"`: the broker started (embedded, reference) or resolved
//! (a PeerServer address), the signaling load run on real sockets, the results written and the
//! thresholds checked like a simulation's.

use crate::bench::{Server, start_peerstorm, start_reference};
use crate::run::{Progress, RunArgs, finish, utc_stamp};
use crate::{EXIT_HARNESS, EXIT_OK};
use anyhow::{Context, Result};
use peerstorm_live::{LiveConfig, LoadModel, Plan};
use peerstorm_loadgen::Target;
use peerstorm_report::{Metrics, Threshold};
use peerstorm_runner::Shard;
use peerstorm_runner::scenario::{BrokerSpec, Scenario};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

fn model(s: &Scenario) -> LoadModel {
    let l = s.load.as_ref().expect("checked: live scenarios have [load]");
    match l.model.as_str() {
        "closed" => LoadModel::Closed { concurrency: l.concurrency },
        "ramp" => LoadModel::Ramp { from: l.rate_per_s, to: l.rate_to_per_s },
        "churn" => LoadModel::Churn { pairs: l.pairs, rate: l.churn_per_s },
        _ => LoadModel::Open { rate: l.rate_per_s },
    }
}

pub fn run(a: &RunArgs, s: &Scenario, text: &str, shard: Shard, thresholds: &[Threshold]) -> Result<u8> {
    let max_pairs = s.peers.count / 2;
    // The broker: started here (and stopped when `_server` drops) or somebody else's.
    let (_server, target, pid): (Option<Server>, Target, Option<u32>) = match &s.servers.broker {
        BrokerSpec::Named(n) => {
            let started = if n == "reference" {
                start_reference(s.peers.count + 64)
            } else {
                start_peerstorm(s.peers.count + 64)
            };
            let server = match started {
                Ok(sv) => sv,
                Err(e) => {
                    eprintln!("peerstorm: starting the {n} broker: {e:#}");
                    return Ok(EXIT_HARNESS);
                }
            };
            let t = Target { addr: server.addr, ws_path: "/peerjs".into(), key: "peerjs".into() };
            let pid = server.child.id();
            eprintln!("{} broker on {} (pid {pid})", server.name, server.addr);
            (Some(server), t, Some(pid))
        }
        BrokerSpec::Url(p) => {
            let addr = match (p.host.as_str(), p.port).to_socket_addrs().map(|mut i| i.next()) {
                Ok(Some(addr)) => addr,
                Ok(None) | Err(_) => {
                    eprintln!("peerstorm: servers.broker: cannot resolve {}:{}", p.host, p.port);
                    return Ok(EXIT_HARNESS);
                }
            };
            let path = if p.path.ends_with('/') { p.path.clone() } else { format!("{}/", p.path) };
            (None, Target { addr, ws_path: format!("{path}peerjs"), key: p.key.clone() }, a.broker_pid)
        }
    };
    let l = s.load.as_ref().expect("checked");
    let cfg = LiveConfig {
        target: target.clone(),
        plan: Plan {
            model: model(s),
            duration: Duration::from_secs_f64(l.duration_s),
            max_pairs,
            shard: (shard.index, shard.count),
        },
        candidates: s.signaling.candidates,
        hold: Duration::from_secs_f64(s.signaling.hold_s),
        heartbeat: Duration::from_secs(5),
        id_request: s.signaling.id_request,
        step_timeout: Duration::from_secs_f64(s.signaling.step_timeout_s),
        source: a.source_ip,
        id_prefix: format!("ps{}s{}", std::process::id(), shard.index + 1),
        broker_pid: pid,
    };
    eprintln!(
        "running {} live against {} ({} load for {:.0} s, at most {max_pairs} pairs{})",
        s.name,
        target.addr,
        l.model,
        l.duration_s,
        if shard == Shard::WHOLE { String::new() } else { format!(", shard {}", shard.label()) }
    );
    let mut progress = Progress::new(a.quiet);
    let quiet = a.quiet;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let total = max_pairs as u64;
    let result = rt.block_on(peerstorm_live::run_signaling(cfg, |p| {
        let msg =
            format!("ok {}, failed {}, connected {}, {:.0} s", p.ok, p.failed, p.connected, p.elapsed.as_secs_f64());
        progress.show("live pairs", p.started as u64, total, &msg, quiet);
    }));
    progress.finish();
    let run = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    let metrics =
        Metrics { scenario: s.name.clone(), seed: s.seed, shards: vec![shard.label()], runs: vec![run.metrics] };
    let dir = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("reports/{}-{}", s.name, utc_stamp())));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("scenario.toml"), text).with_context(|| format!("writing into {}", dir.display()))?;
    let (summary, outcomes) = peerstorm_report::write_dir(&dir, &metrics, thresholds)
        .with_context(|| format!("writing {}", dir.display()))?;
    print!("{}", peerstorm_report::render::table(&summary));
    let code = finish(&dir, &outcomes, None);
    if let Some(why) = run.aborted {
        println!("the run was cut short: {why}; the results above cover only part of the plan (a partial report)");
        // Never a pass: a failed threshold says 1, otherwise the run itself could not be done.
        return Ok(if code == EXIT_OK { EXIT_HARNESS } else { code });
    }
    Ok(code)
}
