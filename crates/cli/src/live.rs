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

/// A broker to run against: started here (stopped when the `Server` drops) or somebody else's.
fn broker(a: &RunArgs, s: &Scenario, spec: &BrokerSpec) -> Result<(Option<Server>, Target, Option<u32>), String> {
    Ok(match spec {
        BrokerSpec::Named(n) => {
            let started = if n == "reference" {
                start_reference(s.peers.count + 64)
            } else {
                start_peerstorm(s.peers.count + 64)
            };
            let server = started.map_err(|e| format!("starting the {n} broker: {e:#}"))?;
            let t = Target { addr: server.addr, ws_path: "/peerjs".into(), key: "peerjs".into() };
            let pid = server.child.id();
            eprintln!("{} broker on {} (pid {pid})", server.name, server.addr);
            (Some(server), t, Some(pid))
        }
        BrokerSpec::Url(p) => {
            let addr = (p.host.as_str(), p.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut i| i.next())
                .ok_or(format!("servers.broker: cannot resolve {}:{}", p.host, p.port))?;
            let path = if p.path.ends_with('/') { p.path.clone() } else { format!("{}/", p.path) };
            (None, Target { addr, ws_path: format!("{path}peerjs"), key: p.key.clone() }, a.broker_pid)
        }
    })
}

pub fn run(a: &RunArgs, s: &Scenario, text: &str, shard: Shard, thresholds: &[Threshold]) -> Result<u8> {
    let l = s.load.as_ref().expect("checked");
    if l.stack == "full" {
        let (_server, target, _) = match broker(a, s, &s.servers.broker) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("peerstorm: {e}");
                return Ok(EXIT_HARNESS);
            }
        };
        return run_full(a, s, text, shard, thresholds, target);
    }
    // Several brokers (`--broker embedded,reference`): one run each, back to back, in one report.
    let specs = a.brokers.clone().unwrap_or_else(|| vec![s.servers.broker.clone()]);
    let mut runs = Vec::new();
    let mut aborted = None;
    for spec in &specs {
        let label = if specs.len() > 1 {
            match spec {
                BrokerSpec::Named(n) if n == "reference" => "signaling peer@1.0.2".to_string(),
                BrokerSpec::Named(_) => "signaling peerstorm".to_string(),
                BrokerSpec::Url(p) => format!("signaling {}:{}", p.host, p.port),
            }
        } else {
            "signaling".to_string()
        };
        match run_signaling(a, s, shard, spec, label)? {
            Ok(run) => {
                runs.push(run.metrics);
                if run.aborted.is_some() {
                    aborted = run.aborted;
                    break;
                }
            }
            Err(code) => return Ok(code),
        }
    }
    let metrics = Metrics { scenario: s.name.clone(), seed: s.seed, shards: vec![shard.label()], runs };
    let code = write_results(a, s, text, &metrics, thresholds)?;
    if let Some(why) = aborted {
        println!("the run was cut short: {why}; the results above cover only part of the plan (a partial report)");
        // Never a pass: a failed threshold says 1, otherwise the run itself could not be done.
        return Ok(if code == EXIT_OK { EXIT_HARNESS } else { code });
    }
    Ok(code)
}

/// One signaling run against one broker; `Err` is the exit status when it could not run.
fn run_signaling(
    a: &RunArgs,
    s: &Scenario,
    shard: Shard,
    spec: &BrokerSpec,
    label: String,
) -> Result<Result<peerstorm_live::signal::LiveRun, u8>> {
    let max_pairs = s.peers.count / 2;
    let (_server, target, pid) = match broker(a, s, spec) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(Err(EXIT_HARNESS));
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
        label,
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
    match result {
        Ok(r) => Ok(Ok(r)),
        Err(e) => {
            eprintln!("peerstorm: {e}");
            Ok(Err(EXIT_HARNESS))
        }
    }
}

/// The TURN server a full-stack run uses: started here (embedded, coturn; user test:test in
/// realm example.org) or given (`turn:HOST:PORT` with `turn_user`).
fn turn_server(
    s: &Scenario,
) -> Result<(Option<crate::bench_turn::Server>, Option<peerstorm_peer::TurnServer>), String> {
    let t = s.servers.turn.as_str();
    match t {
        "none" => Ok((None, None)),
        "embedded" | "coturn" => {
            let server = crate::bench_turn::start(if t == "embedded" { "peerstorm" } else { "coturn" })
                .map_err(|e| format!("starting the {t} TURN server: {e:#}"))?;
            let ts = peerstorm_peer::TurnServer {
                addr: server.addr,
                user: "test".into(),
                password: "test".into(),
                realm: "example.org".into(),
                transport: s.servers.turn_transport(),
            };
            eprintln!("{} TURN server on {} (pid {})", server.name, server.addr, server.child.id());
            Ok((Some(server), Some(ts)))
        }
        uri => {
            let hp = uri.trim_start_matches("turn:").split('?').next().unwrap_or("");
            let addr = hp
                .to_socket_addrs()
                .ok()
                .and_then(|mut i| i.next())
                .ok_or(format!("servers.turn {uri:?}: cannot resolve"))?;
            let (user, password) =
                s.servers.turn_user.as_deref().and_then(|u| u.split_once(':')).ok_or("servers.turn_user")?;
            let realm = s.servers.turn_realm.clone().unwrap_or_default();
            let transport = s.servers.turn_transport();
            let ts =
                peerstorm_peer::TurnServer { addr, user: user.into(), password: password.into(), realm, transport };
            Ok((None, Some(ts)))
        }
    }
}

/// `load.stack = "full"`: pairs of full-stack virtual peers, one run per ICE mode.
fn run_full(
    a: &RunArgs,
    s: &Scenario,
    text: &str,
    shard: Shard,
    thresholds: &[Threshold],
    target: Target,
) -> Result<u8> {
    let (turn_server, turn) = match turn_server(s) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    let l = s.load.as_ref().expect("checked");
    let stun = if s.servers.stun == "none" { None } else { turn.as_ref().map(|t| t.addr) };
    let mut runs = Vec::new();
    let mut files = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for ice in &s.peers.ice {
        let base = peerstorm_peer::PeerConfig {
            id: String::new(),
            token: String::new(),
            connect: Vec::new(),
            accept: Vec::new(),
            ice: *ice,
            host: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            sockets: Vec::new(),
            heartbeat: Duration::from_secs(5),
            workload: s.workload.datachannel.workload(),
            stun,
            turn: turn.clone(),
            relay_only: s.servers.relay_only,
        };
        let ice_name = peerstorm_runner::metrics::ice_name(*ice);
        let cfg = peerstorm_live::fullstack::FullConfig {
            target: target.clone(),
            plan: Plan {
                model: model(s),
                duration: Duration::from_secs_f64(l.duration_s),
                max_pairs: s.peers.count / 2,
                shard: (shard.index, shard.count),
            },
            peer: base,
            setup_timeout: Duration::from_secs(s.timeouts.setup_s),
            id_prefix: format!("ps{}s{}{ice_name}", std::process::id(), shard.index + 1),
            ip: a.source_ip.unwrap_or([127, 0, 0, 1].into()),
        };
        eprintln!(
            "running {} live, full stack, {ice_name} ICE, against {} ({} load for {:.0} s)",
            s.name, target.addr, l.model, l.duration_s
        );
        let mut progress = Progress::new(a.quiet);
        let quiet = a.quiet;
        let total = (s.peers.count / 2) as u64;
        let turn_pid = turn_server.as_ref().map(|t| t.child.id());
        let turn0 = turn_pid.and_then(|p| peerstorm_loadgen::proc::sample(p).ok());
        let (run, unbound) = rt.block_on(peerstorm_live::fullstack::run_full(cfg, |p| {
            let msg = format!("{} peers running, {:.0} s", p.connected, p.elapsed.as_secs_f64());
            progress.show(&format!("live {ice_name}"), p.started as u64, total, &msg, quiet);
        }));
        progress.finish();
        let mut m = peerstorm_runner::metrics::collect(&run);
        if let (Some(a), Some(b)) = (turn0, turn_pid.and_then(|p| peerstorm_loadgen::proc::sample(p).ok())) {
            m.count("turn.cpu_us", ((b.cpu_s - a.cpu_s) * 1e6) as u64);
        }
        if unbound > 0 {
            m.count("connections", unbound as u64);
            m.count("failures.udp_bind", unbound as u64);
        }
        runs.push(m);
        // Every peer's record, as the simulator writes them.
        let mut lines = String::new();
        for p in &run.peers {
            lines.push_str(&serde_json::to_string(p)?);
            lines.push('\n');
        }
        files.push((format!("peers-{ice_name}.jsonl"), lines));
    }
    let metrics = Metrics { scenario: s.name.clone(), seed: s.seed, shards: vec![shard.label()], runs };
    write_results_with(a, s, text, &metrics, thresholds, &files)
}

/// Writes the results directory, prints the table and verdicts; the exit status.
fn write_results(a: &RunArgs, s: &Scenario, text: &str, metrics: &Metrics, thresholds: &[Threshold]) -> Result<u8> {
    write_results_with(a, s, text, metrics, thresholds, &[])
}

/// As [`write_results`], with more files (name, contents) in the directory.
fn write_results_with(
    a: &RunArgs,
    s: &Scenario,
    text: &str,
    metrics: &Metrics,
    thresholds: &[Threshold],
    extra: &[(String, String)],
) -> Result<u8> {
    let dir = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("reports/{}-{}", s.name, utc_stamp())));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("scenario.toml"), text).with_context(|| format!("writing into {}", dir.display()))?;
    for (name, contents) in extra {
        std::fs::write(dir.join(name), contents).with_context(|| format!("writing {name}"))?;
    }
    let (summary, outcomes) =
        peerstorm_report::write_dir(&dir, metrics, thresholds).with_context(|| format!("writing {}", dir.display()))?;
    print!("{}", peerstorm_report::render::table(&summary));
    Ok(finish(&dir, &outcomes, None))
}
