//! `live::run`: a scenario on real sockets, the live mirror of the simulator's run. It reads
//! the same typed [`Scenario`], runs its plan once per broker (signaling) or per ICE mode
//! (full stack), and returns the report layer's metrics with every full-stack peer's outcome,
//! the same [`RunOutcome`] the simulator produces.
//!
//! Starting servers is the caller's: a [`Launcher`] starts what a scenario calls `embedded`,
//! `reference` or `coturn` (the CLI runs them as child processes, so their CPU and memory are
//! their own); servers given by address are resolved here.

use crate::fullstack::{FullConfig, run_full};
use crate::plan::Plan;
use crate::signal::{LiveConfig, LiveError, run_signaling};
use peerstorm_loadgen::Target;
use peerstorm_peer::{PeerConfig, TurnServer};
use peerstorm_report::{Metrics, RunMetrics};
use peerstorm_scenario::{BrokerTarget, RunOutcome, Scenario, Shard, Stack, StunTarget, TurnTarget, collect, ice_name};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A server the launcher started; dropping `guard` stops it.
pub struct Started<T> {
    pub value: T,
    /// Its process, when it runs on this machine: CPU and memory are sampled from `/proc`.
    pub pid: Option<u32>,
    pub guard: Box<dyn std::any::Any>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Started<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").field("value", &self.value).field("pid", &self.pid).finish()
    }
}

/// Starts the servers a scenario names rather than addresses.
pub trait Launcher {
    /// `embedded` or `reference`, for at most `peers` peers.
    fn broker(&mut self, which: &BrokerTarget, peers: usize) -> Result<Started<Target>, String>;
    /// `embedded` or `coturn`; the address it answers on and its user `test:test` in realm
    /// `example.org`.
    fn turn(&mut self, which: &TurnTarget) -> Result<Started<SocketAddr>, String>;
}

/// What a command line changes in a scenario's live run.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Run the signaling load against each of these in turn, side by side in one report.
    pub brokers: Option<Vec<BrokerTarget>>,
    /// Connect from this local address (a second generator process).
    pub source_ip: Option<IpAddr>,
    /// A broker on this machine that somebody else started: sample it.
    pub broker_pid: Option<u32>,
    /// Full stack: run the pairs through each of these TURN servers in turn, side by side in
    /// one report (each run's point names it: `turn = peerstorm`, `coturn`, `HOST:PORT`).
    pub turns: Option<Vec<TurnTarget>>,
    /// Set from outside (Ctrl-C, SIGTERM) to stop the run early with a partial report.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What a live run tells its caller as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// A line worth printing (a server started, a run begins).
    Note(String),
    /// `done` of `total` pairs, and a status line.
    Tick { label: String, done: u64, total: u64, message: String },
    /// The run of `label` is over.
    Finished,
}

/// A finished live run.
#[derive(Debug)]
pub struct LiveOutcome {
    pub metrics: Metrics,
    /// Every full-stack run's outcome (none for signaling runs).
    pub outcomes: Vec<RunOutcome>,
    /// Why the run ended early, if it did: the results cover part of the plan.
    pub aborted: Option<String>,
}

/// Why a live run could not be done at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("{0}")]
    Servers(String),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("mode = \"live\" needs a [load] table")]
    NoLoad,
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

fn resolve(host: &str, port: u16, what: &str) -> Result<SocketAddr, RunError> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut i| i.next())
        .ok_or_else(|| RunError::Servers(format!("{what}: cannot resolve {host}:{port}")))
}

/// A broker to run against: started by the launcher, or somebody else's by address.
fn broker(
    launcher: &mut dyn Launcher,
    s: &Scenario,
    which: &BrokerTarget,
    o: &Overrides,
    events: &mut dyn FnMut(Event),
) -> Result<Started<Target>, RunError> {
    match which {
        BrokerTarget::Server(p) => {
            let addr = resolve(&p.host, p.port, "servers.broker")?;
            let path = if p.path.ends_with('/') { p.path.clone() } else { format!("{}/", p.path) };
            let mut target = Target::new(addr, format!("{path}peerjs"), p.key.clone());
            if p.secure {
                let trust = peerstorm_tls::Trust { ca: p.ca.clone(), insecure: p.insecure };
                let tls = peerstorm_tls::Client::new(&trust, p.host.clone())
                    .map_err(|e| RunError::Servers(format!("servers.broker ({}): {e}", p.ws_url())))?;
                target.tls = Some(tls);
            }
            Ok(Started { value: target, pid: o.broker_pid, guard: Box::new(()) })
        }
        named => {
            let b = launcher
                .broker(named, s.peers.count + 64)
                .map_err(|e| RunError::Servers(format!("starting the {named} broker: {e}")))?;
            events(Event::Note(format!("{named} broker on {} (pid {})", b.value.addr, b.pid.unwrap_or(0))));
            Ok(b)
        }
    }
}

/// Before any load: the broker answers, in the protocol its URL says (a certificate problem, or
/// TLS against plain, is the user's to fix, not a run of failed pairs).
fn probe(target: &Target, rt: &tokio::runtime::Runtime) -> Result<(), RunError> {
    let url = format!("{}://{}{}", target.scheme(), target.addr, target.ws_path);
    match rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), target.probe()).await }) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(RunError::Servers(format!("the broker at {url} is unreachable: {e}"))),
        Err(_) => Err(RunError::Servers(format!("the broker at {url} did not answer in 5 s"))),
    }
}

/// The TURN servers of `servers.turn_also`, with `first`'s credentials.
fn also(s: &Scenario, first: &TurnServer) -> Result<Vec<TurnServer>, RunError> {
    s.servers
        .turn_also
        .iter()
        .filter_map(|t| match t {
            TurnTarget::Uri(u) => Some(u),
            _ => None,
        })
        .map(|u| {
            let addr = resolve(&u.host, u.port, "servers.turn_also")?;
            let transport = u.transport.unwrap_or_default();
            Ok(TurnServer { addr, transport, ..first.clone() })
        })
        .collect()
}

/// The TURN server a full-stack run uses (and its process, if started here).
fn turn(
    launcher: &mut dyn Launcher,
    s: &Scenario,
    events: &mut dyn FnMut(Event),
) -> Result<Option<Started<TurnServer>>, RunError> {
    let transport = s.servers.turn_transport();
    match &s.servers.turn {
        TurnTarget::None => Ok(None),
        TurnTarget::Uri(u) => {
            let addr = resolve(&u.host, u.port, "servers.turn")?;
            // With servers.turn_secret each peer mints its own credential (FullConfig::peer_for).
            let (user, password) = match (&s.servers.turn_user, &s.servers.turn_secret) {
                (Some(u), _) => (u.name.clone(), u.password.clone()),
                (None, Some(_)) => (String::new(), String::new()),
                (None, None) => return Err(RunError::Servers("servers.turn_user".into())),
            };
            let realm = s.servers.turn_realm.clone().unwrap_or_default();
            let value = TurnServer { addr, user, password, realm, transport };
            Ok(Some(Started { value, pid: None, guard: Box::new(()) }))
        }
        which => {
            let t = launcher
                .turn(which)
                .map_err(|e| RunError::Servers(format!("starting the {which} TURN server: {e}")))?;
            events(Event::Note(format!("{which} TURN server on {} (pid {})", t.value, t.pid.unwrap_or(0))));
            let value = TurnServer {
                addr: t.value,
                user: "test".into(),
                password: "test".into(),
                realm: "example.org".into(),
                transport,
            };
            Ok(Some(Started { value, pid: t.pid, guard: t.guard }))
        }
    }
}

/// The TLS client for a `turns:` TURN server (the URI's host is the name its certificate must
/// carry), or `None`.
fn turn_tls(s: &Scenario) -> Result<Option<peerstorm_tls::Client>, RunError> {
    let tls =
        |t: &&TurnTarget| matches!(t, TurnTarget::Uri(u) if u.transport == Some(peerstorm_peer::TurnTransport::Tls));
    let first_tls = std::iter::once(&s.servers.turn).chain(&s.servers.turn_also).find(tls);
    let any = s.servers.turn_transport() == peerstorm_peer::TurnTransport::Tls || first_tls.is_some();
    match first_tls.or(Some(&s.servers.turn)).filter(|_| any) {
        Some(TurnTarget::Uri(u)) => {
            let trust = peerstorm_tls::Trust { ca: s.servers.turn_ca.clone(), insecure: s.servers.turn_insecure };
            peerstorm_tls::Client::new(&trust, u.host.clone())
                .map(Some)
                .map_err(|e| RunError::Servers(format!("servers.turn ({u}): {e}")))
        }
        _ => Ok(None),
    }
}

/// Runs a live scenario (one shard of it).
pub fn run(
    s: &Scenario,
    shard: Shard,
    o: &Overrides,
    launcher: &mut dyn Launcher,
    events: &mut dyn FnMut(Event),
) -> Result<LiveOutcome, RunError> {
    let load = s.load.as_ref().ok_or(RunError::NoLoad)?;
    let plan = Plan::of(s, shard).ok_or(RunError::NoLoad)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RunError::Runtime)?;
    let (runs, outcomes, aborted) = match load.stack {
        Stack::Full => {
            let b = broker(launcher, s, &s.servers.broker, o, events)?;
            probe(&b.value, &rt)?;
            let mut runs = Vec::new();
            let mut outcomes = Vec::new();
            let turns = o.turns.clone().unwrap_or_else(|| vec![s.servers.turn.clone()]);
            for which in &turns {
                let mut one = s.clone();
                one.servers.turn = which.clone();
                let (mut r, mut out) = full(&one, shard, &plan, &b.value, o, launcher, events, &rt)?;
                if turns.len() > 1 {
                    let name = match which {
                        TurnTarget::Embedded => "peerstorm".to_string(),
                        other => other.to_string(),
                    };
                    for m in &mut r {
                        m.point.insert("turn".into(), name.clone());
                    }
                    for x in &mut out {
                        x.point.insert("turn".into(), name.clone());
                    }
                }
                runs.extend(r);
                outcomes.extend(out);
            }
            (runs, outcomes, None)
        }
        Stack::Signaling => {
            let (runs, aborted) = signaling(s, shard, &plan, o, launcher, events, &rt)?;
            (runs, Vec::new(), aborted)
        }
    };
    let metrics = Metrics {
        scenario: s.name.clone(),
        seed: s.seed,
        shards: vec![shard.label()],
        runs,
        sweep_outputs: Vec::new(),
    };
    Ok(LiveOutcome { metrics, outcomes, aborted })
}

/// The signaling load against each broker in turn; stops at the first that aborts.
fn signaling(
    s: &Scenario,
    shard: Shard,
    plan: &Plan,
    o: &Overrides,
    launcher: &mut dyn Launcher,
    events: &mut dyn FnMut(Event),
    rt: &tokio::runtime::Runtime,
) -> Result<(Vec<RunMetrics>, Option<String>), RunError> {
    let brokers = o.brokers.clone().unwrap_or_else(|| vec![s.servers.broker.clone()]);
    let mut runs = Vec::new();
    for which in &brokers {
        let label = match which {
            _ if brokers.len() == 1 => "signaling".to_string(),
            BrokerTarget::Reference => "signaling peer@1.0.2".to_string(),
            BrokerTarget::Embedded => "signaling peerstorm".to_string(),
            BrokerTarget::Server(p) => format!("signaling {}:{}", p.host, p.port),
        };
        let b = broker(launcher, s, which, o, events)?;
        probe(&b.value, rt)?;
        let cfg = LiveConfig {
            target: b.value.clone(),
            plan: plan.clone(),
            candidates: s.signaling.candidates,
            hold: s.signaling.hold,
            heartbeat: Duration::from_secs(5),
            id_request: s.signaling.id_request,
            step_timeout: s.signaling.step_timeout,
            source: o.source_ip,
            id_prefix: format!("ps{}s{}", std::process::id(), shard.index + 1),
            broker_pid: b.pid,
            label,
            stop: o.stop.clone(),
        };
        let shard_note = if shard == Shard::WHOLE { String::new() } else { format!(", shard {}", shard.label()) };
        events(Event::Note(format!(
            "running {} live against {} ({} load for {:.0} s, at most {} pairs{shard_note})",
            s.name,
            cfg.target.addr,
            plan.model.name(),
            plan.duration.as_secs_f64(),
            plan.max_pairs
        )));
        let total = plan.max_pairs as u64;
        let r = rt.block_on(run_signaling(cfg, |p| {
            let message = format!(
                "ok {}, failed {}, connected {}, {:.0} s",
                p.ok,
                p.failed,
                p.connected,
                p.elapsed.as_secs_f64()
            );
            events(Event::Tick { label: "live pairs".into(), done: p.started as u64, total, message });
        }));
        events(Event::Finished);
        let r = r?;
        runs.push(r.metrics);
        if r.aborted.is_some() {
            return Ok((runs, r.aborted));
        }
    }
    Ok((runs, None))
}

/// Full-stack pairs, one run per ICE mode.
#[allow(clippy::too_many_arguments)]
fn full(
    s: &Scenario,
    shard: Shard,
    plan: &Plan,
    target: &Target,
    o: &Overrides,
    launcher: &mut dyn Launcher,
    events: &mut dyn FnMut(Event),
    rt: &tokio::runtime::Runtime,
) -> Result<(Vec<RunMetrics>, Vec<RunOutcome>), RunError> {
    let turn = turn(launcher, s, events)?;
    let stun = match s.servers.stun {
        StunTarget::None => None,
        StunTarget::Embedded => turn.as_ref().map(|t| t.value.addr),
    };
    let mut runs = Vec::new();
    let mut outcomes = Vec::new();
    for ice in &s.peers.ice {
        let peer = PeerConfig {
            id: String::new(),
            token: String::new(),
            connect: Vec::new(),
            call: Vec::new(),
            accept: Vec::new(),
            answer: Vec::new(),
            ice: *ice,
            host: SocketAddr::from(([127, 0, 0, 1], 0)),
            sockets: Vec::new(),
            heartbeat: Duration::from_secs(5),
            // The peers run in this process: one clock, so calls measure one-way delay.
            workload: s.workload.peer_workload(Some(std::time::Instant::now())),
            stun,
            turn: match &turn {
                Some(t) => std::iter::once(Ok(t.value.clone()))
                    .chain(also(s, &t.value)?.into_iter().map(Ok))
                    .collect::<Result<Vec<_>, RunError>>()?,
                None => Vec::new(),
            },
            relay_only: s.servers.relay_only,
            profile: s.peers.profile,
            cpu_scale: s.peers.cpu_scale,
            metronome_tick: None,
        };
        let name = ice_name(*ice);
        let cfg = FullConfig {
            target: target.clone(),
            plan: plan.clone(),
            peer,
            setup_timeout: s.timeouts.setup,
            id_prefix: format!("ps{}s{}{name}", std::process::id(), shard.index + 1),
            ip: o.source_ip.unwrap_or([127, 0, 0, 1].into()),
            stop: o.stop.clone(),
            turn_secret: s.servers.turn_secret.clone().map(|secret| (secret, s.servers.turn_ttl)),
            turn_tls: turn_tls(s)?,
        };
        events(Event::Note(format!(
            "running {} live, full stack, {name} ICE, against {} ({} load for {:.0} s)",
            s.name,
            target.addr,
            plan.model.name(),
            plan.duration.as_secs_f64()
        )));
        let total = plan.max_pairs as u64;
        let turn_pid = turn.as_ref().and_then(|t| t.pid);
        let turn0 = turn_pid.and_then(|p| peerstorm_loadgen::proc::sample(p).ok());
        let gen0 = peerstorm_loadgen::proc::sample(std::process::id()).ok();
        let (run, unbound) = rt.block_on(run_full(cfg, |p| {
            let message = format!("{} peers running, {:.0} s", p.connected, p.elapsed.as_secs_f64());
            events(Event::Tick { label: format!("live {name}"), done: p.started as u64, total, message });
        }));
        events(Event::Finished);
        let gen1 = peerstorm_loadgen::proc::sample(std::process::id()).ok();
        let mut m = collect(&run);
        if let (Some(a), Some(b)) = (gen0, gen1) {
            m.count("generator.cpu_us", ((b.cpu_s - a.cpu_s) * 1e6) as u64);
        }
        if let (Some(a), Some(b)) = (turn0, turn_pid.and_then(|p| peerstorm_loadgen::proc::sample(p).ok())) {
            m.count("turn.cpu_us", ((b.cpu_s - a.cpu_s) * 1e6) as u64);
        }
        if unbound > 0 {
            m.count("connections", unbound as u64);
            m.count("failures.udp_bind", unbound as u64);
        }
        runs.push(m);
        outcomes.push(run);
    }
    Ok((runs, outcomes))
}
