//! `peerstorm lab SCENARIO` (and `peerstorm run` with `mode = "lab"`): a scenario's pairs as
//! real programs in lab hosts (`crates/lab`): Chromium pages running peerjs@1.5.5, `peerstorm
//! peer`, or any command, each behind its NAT preset, with the broker (peerstorm's or
//! peer@1.0.2) and the STUN/TURN server (the embedded core or coturn) on the simulated
//! internet. Each host prints its milestones as a JSON line; they go through the same metrics
//! and report as a simulation's.
//!
//! Address plan (as the simulator's): STUN/TURN 198.51.100.1:3478, the broker
//! 198.51.100.10:9000, peer `i` at 198.18.x.y or behind its NATs at 10.x.y.z. Each access link
//! carries a quarter of `network.rtt_ms` each way (and the loss and jitter); the TURN host's
//! link is a peer's; the broker's link makes a peer's round trip to it `servers.broker_rtt_ms`.

use crate::EXIT_HARNESS;
use crate::results::Results;
use anyhow::{Context, Result, bail};
use peerstorm_lab::ns::command_in;
use peerstorm_lab::{Lab, LabBuilder, LabError};
use peerstorm_netsim::{HostId, LinkConfig, Preset};
use peerstorm_peer::{ConnOutcome, Failure, IceMode, Milestone, Milestones};
use peerstorm_runner::layout::{Layout, assign_presets, place_peer};
use peerstorm_scenario::{BrokerTarget, HostKind, LabSpec, Link, PeerResult, RunOutcome, Scenario, Shard, SimStats};
use peerstorm_scenario::{TurnTarget, collect_all};
use peerstorm_turn::TurnConfig;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TURN_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const BROKER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const BROKER_PORT: u16 = 9000;
const TURN_PORT: u16 = 3478;
/// How long a host may take to print its first line (Chromium starts in a second or two).
const READY_TIMEOUT: Duration = Duration::from_secs(45);
/// How long an answerer may stay after its offerer finished (it prints its outcome and goes).
const ANSWERER_GRACE: Duration = Duration::from_secs(5);
/// What a host needs on top of `timeouts.setup_s` (launching a browser, printing, exiting).
const HOST_SLACK: Duration = Duration::from_secs(20);

/// A program running in a lab host: its stdout lines as they come, its stderr in a log file.
///
/// Nothing here blocks the forwarder (whose thread calls these between packets): the program
/// is started, and stopped programs are reaped, on threads of their own (starting a process
/// waits until it runs, tens of milliseconds when browsers fill the cores, and every packet in
/// the lab would wait with it).
struct HostProc {
    state: Arc<Mutex<Proc>>,
    lines: Arc<Mutex<Vec<String>>>,
    /// Its stdout reached its end (every line it printed is in `lines`).
    eof: Arc<std::sync::atomic::AtomicBool>,
    started: Instant,
}

enum Proc {
    Starting,
    Running(Child),
    /// It ended by itself (its status) or the lab stopped it (`None`), at that time.
    Ended(Option<std::process::ExitStatus>, Instant),
    /// It could not be started.
    Failed(String),
    /// Stop it as soon as it has started.
    StopWhenStarted,
}

/// How long after a program's exit its last lines are waited for (a child it left behind may
/// hold its stdout open).
const LAST_LINES: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HostProc {
    fn spawn(mut cmd: Command, log: &Path) -> Result<Self> {
        let err = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err);
        let state = Arc::new(Mutex::new(Proc::Starting));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let eof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (st, l, e) = (state.clone(), lines.clone(), eof.clone());
        std::thread::spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(err) => {
                    *lock(&st) = Proc::Failed(format!("starting {cmd:?}: {err}"));
                    e.store(true, std::sync::atomic::Ordering::Release);
                    return;
                }
            };
            let out = child.stdout.take();
            {
                let mut s = lock(&st);
                if matches!(*s, Proc::StopWhenStarted) {
                    let _ = child.kill();
                    *s = Proc::Ended(None, Instant::now());
                    drop(s);
                    let _ = child.wait();
                    e.store(true, std::sync::atomic::Ordering::Release);
                    return;
                }
                *s = Proc::Running(child);
            }
            if let Some(out) = out {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lock(&l).push(line);
                }
            }
            e.store(true, std::sync::atomic::Ordering::Release);
        });
        Ok(Self { state, lines, eof, started: Instant::now() })
    }

    fn printed(&self) -> bool {
        !lock(&self.lines).is_empty()
    }

    /// It ended (or never started), and its output has been read.
    fn exited(&mut self) -> bool {
        let mut s = lock(&self.state);
        if let Proc::Running(c) = &mut *s
            && let Ok(Some(status)) = c.try_wait()
        {
            *s = Proc::Ended(Some(status), Instant::now());
        }
        match &*s {
            Proc::Ended(_, at) => self.eof.load(std::sync::atomic::Ordering::Acquire) || at.elapsed() > LAST_LINES,
            Proc::Failed(_) => true,
            _ => false,
        }
    }

    /// Kills it if it still runs; its reaping happens on a thread of its own.
    fn stop(&mut self) {
        let mut s = lock(&self.state);
        match std::mem::replace(&mut *s, Proc::Ended(None, Instant::now())) {
            Proc::Running(mut c) => {
                let _ = c.kill();
                std::thread::spawn(move || c.wait());
            }
            Proc::Starting | Proc::StopWhenStarted => *s = Proc::StopWhenStarted,
            other => *s = other,
        }
    }

    /// The last line that is a connection outcome, or what can be said without one (call it
    /// before [`HostProc::stop`]). `killed`: the lab is stopping it (its time was up).
    fn outcome(&mut self, remote: &str, offerer: bool, timeout: Duration, killed: bool) -> ConnOutcome {
        if let Some(o) = lock(&self.lines).iter().rev().find_map(|l| serde_json::from_str::<ConnOutcome>(l).ok()) {
            return o;
        }
        let mut milestones = Milestones::default();
        let status = match &*lock(&self.state) {
            Proc::Ended(status, _) => *status,
            _ => None,
        };
        match status {
            _ if !offerer => {}
            _ if killed => milestones.fail(Failure::Timeout, timeout),
            // A command that reports no milestones: its exit is the only time there is.
            Some(s) if s.success() => milestones.mark(Milestone::WorkloadDone, self.started.elapsed()),
            _ => milestones.fail(Failure::HostExited, self.started.elapsed()),
        }
        ConnOutcome { remote: remote.to_string(), offerer, milestones, bytes_moved: 0, media: None }
    }

    /// Why it could not start, if it could not.
    fn failed(&self) -> Option<String> {
        match &*lock(&self.state) {
            Proc::Failed(why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// One pair's hosts and where it stands.
struct Pair {
    offerer: Side,
    answerer: Side,
    state: PairState,
}

struct Side {
    host: HostId,
    ip: Ipv4Addr,
    preset: Preset,
    label: String,
    id: String,
    /// When its program started, from the lab's start.
    start: Duration,
    outcome: Option<ConnOutcome>,
}

enum PairState {
    Waiting,
    /// The answerer is starting; the offerer starts once it printed its first line.
    Answering(HostProc),
    Running(HostProc, HostProc),
    /// The offerer is done; the answerer gets [`ANSWERER_GRACE`] to print and exit.
    Finishing(HostProc, Instant),
    Done,
}

/// How hosts authenticate to the lab's TURN server.
enum Creds {
    /// One static user for everyone (`turn_user`).
    Static(String, String),
    /// TURN REST API credentials minted per host (`turn_secret`, `turn_ttl_s`).
    Secret(String, Duration),
}

/// Everything the hosts' programs need to know.
struct Plan<'a> {
    s: &'a Scenario,
    lab: &'a LabSpec,
    turn: Option<Creds>,
    root: PathBuf,
    exe: PathBuf,
    logs: PathBuf,
}

impl Plan<'_> {
    /// The TURN user name and password host `id` uses: the static user, or a REST credential
    /// minted for it now (`EXPIRY:ID`), as a web app's backend hands one to each page.
    fn creds_for(&self, id: &str) -> Option<(String, String)> {
        match self.turn.as_ref()? {
            Creds::Static(u, p) => Some((u.clone(), p.clone())),
            Creds::Secret(secret, ttl) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let user = format!("{}:{id}", now.as_secs() + ttl.as_secs());
                let password = peerstorm_turn::auth::rest_password(secret, &user);
                Some((user, password))
            }
        }
    }

    /// A pair's time: its setup timeout, and a call's sending time after it.
    fn timeout(&self) -> Duration {
        self.s.timeouts.setup + self.s.workload.media.as_ref().map_or(Duration::ZERO, |m| m.duration)
    }

    /// The run's one ICE mode (validation keeps a lab to one).
    fn ice(&self) -> IceMode {
        self.s.peers.ice.first().copied().unwrap_or(IceMode::Trickle)
    }

    fn command(&self, ns: &str, kind: HostKind, side: &Side, connect: Option<&str>) -> Result<Command> {
        let dc = &self.s.workload.datachannel;
        let messages = dc.messages.unwrap_or(10);
        let broker = format!("{BROKER_IP}:{BROKER_PORT}");
        let turn_addr = format!("{TURN_IP}:{TURN_PORT}");
        let program = match kind {
            HostKind::Chromium => "node",
            HostKind::Virtual => self.exe.to_str().context("the peerstorm binary's path is not UTF-8")?,
            HostKind::Command => "sh",
        };
        let mut c = command_in(ns, program);
        match kind {
            HostKind::Chromium => {
                let mut ice = vec![serde_json::json!({ "urls": format!("stun:{turn_addr}") })];
                if let Some((user, password)) = self.creds_for(&side.id) {
                    ice.push(serde_json::json!({ "urls": format!("turn:{turn_addr}"), "username": user, "credential": password }));
                }
                let cfg = serde_json::json!({
                    "broker": broker,
                    "id": side.id,
                    "connect": connect,
                    "iceServers": ice,
                    "messages": messages,
                    "messageBytes": dc.message_bytes,
                    "relayOnly": self.s.servers.relay_only,
                    "vanilla": self.ice() == IceMode::Vanilla,
                    "timeoutMs": self.timeout().as_millis() as u64,
                });
                c.arg(self.root.join("tools/js/lab-peer.mjs")).arg(cfg.to_string());
            }
            HostKind::Virtual => {
                c.args(["peer", "--broker", &broker, "--id", &side.id, "--bind", &side.ip.to_string()])
                    .args(["--stun", &turn_addr, "--messages", &messages.to_string()])
                    .args(["--message-bytes", &dc.message_bytes.to_string()])
                    .args(["--serialization", &String::from(dc.serialization.clone())])
                    .args(["--profile", self.s.peers.profile.as_str()])
                    .args(["--cpu-scale", &self.s.peers.cpu_scale.to_string()])
                    .args(["--ice", peerstorm_scenario::ice_name(self.ice())]);
                match &self.turn {
                    Some(Creds::Static(user, password)) => {
                        c.args(["--turn", &turn_addr, "--turn-user", &format!("{user}:{password}")]);
                    }
                    Some(Creds::Secret(secret, ttl)) => {
                        c.args([
                            "--turn",
                            &turn_addr,
                            "--turn-secret",
                            secret,
                            "--turn-ttl",
                            &ttl.as_secs().to_string(),
                        ]);
                    }
                    None => {}
                }
                if self.turn.is_some() {
                    c.args(["--turn-realm", "peerstorm"]);
                }
                if self.s.servers.relay_only {
                    c.arg("--relay-only");
                }
                // Calls (`[workload.media]`): the offerer calls, the answerer answers with the
                // same stream.
                if let Some(m) = &self.s.workload.media {
                    c.args(["--media-for", &m.duration.as_secs_f64().to_string()]);
                    let video = m.video_kbps();
                    c.args(["--video-kbps", &video.to_string()]);
                    if !m.sends_audio() {
                        c.arg("--no-audio");
                    }
                }
                let how = if self.s.workload.media.is_some() { "--call" } else { "--connect" };
                match connect {
                    Some(remote) => c.args([how, remote, "--for", &self.timeout().as_secs_f64().to_string()]),
                    None => c.args(["--for", &(self.timeout() + HOST_SLACK).as_secs_f64().to_string()]),
                };
            }
            HostKind::Command => {
                let line = self.lab.command.as_deref().unwrap_or_default();
                let user = self.creds_for(&side.id).map(|(u, p)| format!("{u}:{p}")).unwrap_or_default();
                let line = line
                    .replace("{id}", &side.id)
                    .replace("{connect}", connect.unwrap_or(""))
                    .replace("{broker}", &broker)
                    .replace("{stun}", &turn_addr)
                    .replace("{turn}", if self.turn.is_some() { &turn_addr } else { "" })
                    .replace("{turn_user}", &user)
                    .replace("{bind}", &side.ip.to_string())
                    .replace("{messages}", &messages.to_string())
                    .replace("{message_bytes}", &dc.message_bytes.to_string())
                    .replace("{timeout_s}", &self.timeout().as_secs().to_string())
                    .replace("{ice}", peerstorm_scenario::ice_name(self.ice()));
                c.args(["-c", &line]);
            }
        }
        Ok(c)
    }
}

/// Why the lab cannot run here, before anything is made: not root, no TUN device, missing tools.
/// The lab makes network namespaces and TUN devices: only root can. Checked first, before
/// anything else is looked at or made.
pub fn check_root() -> Result<(), String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().next().map(str::to_string)))
        })
        .flatten();
    if uid.as_deref() != Some("0") {
        return Err("the lab needs root (it makes network namespaces and TUN devices): run it as root".into());
    }
    Ok(())
}

fn preflight(s: &Scenario, lab: &LabSpec, root: Option<&Path>) -> Result<(), String> {
    check_root()?;
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun is missing: the lab needs the tun module (modprobe tun)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("`ip` (iproute2) is missing: apt-get install iproute2".into());
    }
    let kinds = [lab.offerer, lab.answerer];
    let node_tools = kinds.contains(&HostKind::Chromium) || s.servers.broker == BrokerTarget::Reference;
    if node_tools {
        let Some(root) = root else {
            return Err(
                "run the lab from the peerstorm checkout: Chromium hosts and peer@1.0.2 come from tools/js".into()
            );
        };
        if !root.join("tools/js/node_modules/peerjs").exists() {
            return Err("tools/js/node_modules is missing: run scripts/test.sh or `npm ci` in tools/js".into());
        }
    }
    let chromium = peerstorm_chromium();
    if kinds.contains(&HostKind::Chromium) && !Path::new(&chromium).exists() {
        return Err(format!("{chromium} is missing: apt-get install chromium"));
    }
    if s.servers.turn == TurnTarget::Coturn && !Path::new("/usr/bin/turnserver").exists() {
        return Err("servers.turn = \"coturn\" but coturn is not installed: apt-get install coturn".into());
    }
    Ok(())
}

/// The browser tools/js/chromium.mjs will launch (it reads the same variable).
fn peerstorm_chromium() -> String {
    std::env::var("PEERSTORM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// What one lab run produced.
pub struct LabRun {
    pub outcome: RunOutcome,
    pub stats: peerstorm_lab::LabStats,
    pub pcap: Vec<u8>,
    /// `lab.json`.
    pub summary: serde_json::Value,
    pub logs: PathBuf,
    pub wall: Duration,
    /// Stopped by this signal (`SIGINT`, `SIGTERM`): the lab is removed and the outcome holds
    /// the pairs that had started, marked interrupted.
    pub interrupted: Option<&'static str>,
}

/// Why a lab run did not produce results.
pub enum Stopped {
    /// The lab could not run (exit 2), and why.
    Harness(String),
}

/// The exit status for a run stopped by `sig`: 128 + its number, as a shell reports it.
pub fn signal_status(sig: &str) -> u8 {
    if sig == "SIGTERM" { 143 } else { 130 }
}

/// Runs a checked `mode = "lab"` scenario; the hosts' logs go to `dir/hosts/`.
pub fn execute(s: &Scenario, dir: &Path, quiet: bool) -> Result<LabRun, Stopped> {
    let Some(spec) = &s.lab else {
        return Err(Stopped::Harness("mode = \"lab\" needs a [lab] table".into()));
    };
    let root = crate::children::repo_root().ok();
    preflight(s, spec, root.as_deref()).map_err(Stopped::Harness)?;
    let logs = dir.join("hosts");
    std::fs::create_dir_all(&logs).map_err(|e| Stopped::Harness(format!("creating {}: {e}", logs.display())))?;
    let turn = match (&s.servers.turn, &s.servers.turn_secret) {
        (TurnTarget::None, _) => None,
        (_, Some(secret)) => Some(Creds::Secret(secret.clone(), s.servers.turn_ttl)),
        (_, None) => {
            Some(s.servers.turn_user.as_ref().map_or(Creds::Static("peerstorm".into(), "peerstorm".into()), |u| {
                Creds::Static(u.name.clone(), u.password.clone())
            }))
        }
    };
    let exe = std::env::current_exe().map_err(|e| Stopped::Harness(format!("finding the peerstorm binary: {e}")))?;
    let plan = Plan { s, lab: spec, turn, root: root.unwrap_or_default(), exe, logs };
    let (builder, mut pairs, server_hosts) = layout(s, &plan);
    let n_pairs = pairs.len();
    if !quiet {
        eprintln!(
            "lab {}: {n_pairs} pair(s) ({} → {}, profile {}), {} at a time, RTT {} ms, broker {}, TURN {}",
            s.name,
            spec.offerer.as_str(),
            spec.answerer.as_str(),
            s.peers.profile,
            spec.concurrency,
            s.network.rtt.as_millis(),
            broker_name(&s.servers.broker),
            turn_name(&s.servers.turn)
        );
        for (k, p) in pairs.iter().enumerate() {
            eprintln!(
                "  pair {k}: {} {} ({}) → {} {} ({})",
                p.offerer.label,
                p.offerer.ip,
                p.offerer.preset.as_str(),
                p.answerer.label,
                p.answerer.ip,
                p.answerer.preset.as_str()
            );
        }
    }
    let mut lab = builder.build().map_err(|e| Stopped::Harness(format!("building the lab: {e}")))?;
    if spec.pcap {
        lab.capture();
    }
    let t0 = Instant::now();
    let result = drive(&mut lab, &plan, &mut pairs, server_hosts, quiet);
    let wall = t0.elapsed();
    let stats = lab.stats().clone();
    let pcap = lab.pcap().to_vec();
    // Removes every namespace and stops everything in them.
    drop(lab);
    let interrupted = match result {
        Ok(()) => None,
        Err(e) => match e.downcast_ref::<LabError>() {
            Some(LabError::Interrupted(sig)) => Some(*sig),
            _ => return Err(Stopped::Harness(format!("the lab run failed: {e:#}"))),
        },
    };
    let mut outcome = outcome(s, &pairs, wall, &stats);
    if interrupted.is_some() {
        // The pairs that never started are no part of the run; those running were cut.
        let started: Vec<bool> = pairs.iter().map(|p| !matches!(p.state, PairState::Waiting)).collect();
        outcome.links.retain(|l| started[l.offerer.0 / 2]);
        for (k, p) in outcome.peers.iter_mut().enumerate() {
            p.in_shard = started[k / 2];
        }
        outcome.interrupted = true;
    }
    let summary = lab_summary(&stats, &pairs, spec);
    Ok(LabRun { outcome, stats, pcap, summary, logs: plan.logs, wall, interrupted })
}

/// Runs a checked `mode = "lab"` scenario and writes its results into `dir`.
pub fn run(
    s: &Scenario,
    text: &str,
    dir: &Path,
    thresholds: &[peerstorm_report::Threshold],
    quiet: bool,
) -> Result<u8> {
    let r = match execute(s, dir, quiet) {
        Ok(r) => r,
        Err(Stopped::Harness(why)) => {
            eprintln!("peerstorm: {why}");
            return Ok(EXIT_HARNESS);
        }
    };
    let metrics = collect_all(&s.name, s.seed, Shard::WHOLE, std::slice::from_ref(&r.outcome));
    let mut files = crate::results::peer_files(std::slice::from_ref(&r.outcome), false)?;
    files.push(("lab.json".into(), serde_json::to_string_pretty(&r.summary)?));
    if s.lab.as_ref().is_some_and(|l| l.pcap) {
        std::fs::write(dir.join("lab.pcap"), &r.pcap).context("writing lab.pcap")?;
    }
    let results =
        Results { metrics: &metrics, thresholds, scenario: Some(text), files, wall_secs: Some(r.wall.as_secs_f64()) };
    let code = crate::results::write(dir, &results)?;
    println!(
        "lab: {} packets into the network, {} out; forwarder scheduling error p50 {} p99 {}; hosts' stderr in {}",
        r.stats.into_network,
        r.stats.out_of_network,
        fmt_opt(r.stats.lateness(0.5)),
        fmt_opt(r.stats.lateness(0.99)),
        r.logs.display()
    );
    if let Some(sig) = r.interrupted {
        let status = signal_status(sig);
        println!(
            "the run was interrupted ({sig}): the lab is removed (namespaces, TUN devices, programs); a partial report of the pairs that had started (exit {status})"
        );
        return Ok(status);
    }
    Ok(code)
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.3} ms", d.as_secs_f64() * 1000.0))
}

fn broker_name(b: &BrokerTarget) -> &'static str {
    if *b == BrokerTarget::Reference { "peer@1.0.2" } else { "embedded" }
}

fn turn_name(t: &TurnTarget) -> &'static str {
    match t {
        TurnTarget::Coturn => "coturn",
        TurnTarget::None => "none",
        _ => "embedded",
    }
}

/// Where the servers run: the broker's lab host, and coturn's when it is the TURN server.
struct ServerHosts {
    broker: HostId,
    coturn: Option<HostId>,
}

/// The network: the servers on the internet, every pair's hosts behind their presets.
fn layout(s: &Scenario, plan: &Plan<'_>) -> (LabBuilder, Vec<Pair>, ServerHosts) {
    let mut b = LabBuilder::new(s.seed);
    let link = LinkConfig {
        latency: s.network.rtt / 4,
        jitter: s.network.jitter,
        loss: s.network.loss,
        ..LinkConfig::default()
    };
    let net = b.network_mut();
    let internet = net.add_segment("internet");
    let broker_link =
        LinkConfig { latency: (s.servers.broker_rtt / 2).saturating_sub(s.network.rtt / 4), ..LinkConfig::default() };
    let presets = assign_presets(s);
    let mut lay = Layout::new(s.network.hairpinning, s.network.shared_cgnat);
    let placed: Vec<(HostId, Ipv4Addr)> =
        // From 1: peer 0 would get 10.0.0.0.
        presets.iter().enumerate().map(|(i, p)| place_peer(net, internet, i + 1, *p, &link, &mut lay)).collect();
    let broker = b.add_host("broker", internet, BROKER_IP, broker_link);
    let coturn = match s.servers.turn {
        TurnTarget::Coturn => Some(b.add_host("coturn", internet, TURN_IP, link.clone())),
        _ => {
            let host = b.network_mut().add_host("stun-turn", internet, &[TURN_IP], link.clone());
            let mut cfg = TurnConfig::new("peerstorm", SocketAddr::from((TURN_IP, TURN_PORT)));
            match &plan.turn {
                Some(Creds::Static(u, p)) => {
                    cfg.add_user(u, p);
                }
                Some(Creds::Secret(secret, _)) => {
                    cfg.auth_secret = Some(secret.clone());
                    // The core runs on the lab's wall clock from now.
                    cfg.unix_time_at_start =
                        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                }
                None => {}
            }
            b.add_turn(host, cfg);
            None
        }
    };
    let mut pairs = Vec::new();
    for k in 0..presets.len() / 2 {
        let side = |i: usize| {
            let (host, ip) = placed[i];
            Side {
                host,
                ip,
                preset: presets[i],
                label: format!("p{i}"),
                id: format!("peer-{i:06}"),
                start: Duration::ZERO,
                outcome: None,
            }
        };
        let (o, a) = (side(2 * k), side(2 * k + 1));
        b.adopt(&o.label, o.host, o.ip);
        b.adopt(&a.label, a.host, a.ip);
        pairs.push(Pair { offerer: o, answerer: a, state: PairState::Waiting });
    }
    (b, pairs, ServerHosts { broker, coturn })
}

/// Starts the servers, then the pairs, `concurrency` at a time, until every pair is done.
fn drive(lab: &mut Lab, plan: &Plan<'_>, pairs: &mut [Pair], servers: ServerHosts, quiet: bool) -> Result<()> {
    let s = plan.s;
    let ns = |host: HostId| lab.namespace(host).map(str::to_string).context("a lab host without its namespace");
    let broker_ns = ns(servers.broker)?;
    let broker_cmd = match s.servers.broker {
        BrokerTarget::Reference => {
            let mut c = command_in(&broker_ns, "node");
            c.arg(plan.root.join("tools/js/node_modules/peer/dist/bin/peerjs.js")).args([
                "--port",
                &BROKER_PORT.to_string(),
                "--host",
                &BROKER_IP.to_string(),
            ]);
            c
        }
        _ => {
            let mut c = command_in(&broker_ns, plan.exe.to_str().unwrap_or("peerstorm"));
            c.args(["serve", "broker", "--host", &BROKER_IP.to_string(), "--port", &BROKER_PORT.to_string()]);
            c
        }
    };
    let mut broker = HostProc::spawn(broker_cmd, &plan.logs.join("broker.log"))?;
    let coturn_log = plan.logs.join("turnserver.log");
    let mut coturn = match servers.coturn {
        Some(host) => Some(start_coturn(&ns(host)?, &coturn_log, plan)?),
        None => None,
    };
    let names: Vec<(String, String)> =
        pairs.iter().map(|p| Ok((ns(p.offerer.host)?, ns(p.answerer.host)?))).collect::<Result<_>>()?;
    let coturn_ns = servers.coturn.map(ns).transpose()?;
    let turn_addr = SocketAddr::from((TURN_IP, TURN_PORT));
    let ready = lab.run_until(READY_TIMEOUT, || {
        broker.printed() && coturn_ns.as_deref().is_none_or(|n| peerstorm_lab::ns::listening(n, true, turn_addr))
    })?;
    if !ready || broker.exited() || coturn.as_mut().is_some_and(HostProc::exited) {
        broker.stop();
        if let Some(c) = coturn.as_mut() {
            c.stop();
        }
        bail!(
            "the servers did not start within {} s (see {}{})",
            READY_TIMEOUT.as_secs(),
            plan.logs.join("broker.log").display(),
            if servers.coturn.is_some() { format!(" and {}", coturn_log.display()) } else { String::new() }
        );
    }
    let start = Instant::now();
    let mut error: Option<anyhow::Error> = None;
    let total = pairs.len();
    let per_pair = plan.timeout() + HOST_SLACK + READY_TIMEOUT + ANSWERER_GRACE;
    let max = per_pair * (total.div_ceil(plan.lab.concurrency) as u32) + Duration::from_secs(10);
    let mut done_count = 0usize;
    let finished = lab.run_until(max, || {
        let running = pairs.iter().filter(|p| !matches!(p.state, PairState::Waiting | PairState::Done)).count();
        let mut free = plan.lab.concurrency.saturating_sub(running);
        for (k, pair) in pairs.iter_mut().enumerate() {
            if matches!(pair.state, PairState::Waiting) {
                if free == 0 {
                    continue;
                }
                free -= 1;
            }
            let was_done = matches!(pair.state, PairState::Done);
            if let Err(e) = step(pair, plan, &names[k], start) {
                error = Some(e);
                return true;
            }
            if !was_done && matches!(pair.state, PairState::Done) {
                done_count += 1;
                if !quiet {
                    eprintln!("lab: [{:>5.1} s] {done_count}/{total} {}", start.elapsed().as_secs_f64(), pair.line());
                }
            }
        }
        done_count == total
    });
    for pair in pairs.iter_mut() {
        pair.stop();
    }
    broker.stop();
    if let Some(c) = coturn.as_mut() {
        c.stop();
    }
    if let Some(e) = error {
        return Err(e);
    }
    if !finished? {
        bail!("the pairs did not finish within {} s", max.as_secs());
    }
    Ok(())
}

impl Pair {
    /// One line for the progress display: the classes, the verdict, the setup time.
    fn line(&self) -> String {
        let o = self.offerer.outcome.as_ref().map(|c| &c.milestones);
        let verdict = match o {
            Some(m) if m.failure.is_none() && m.get(Milestone::WorkloadDone).is_some() => {
                let open = m.get(Milestone::DataChannelOpen).map_or("-".into(), |t| format!("{} ms", t.as_millis()));
                let sel = m.selected.as_ref().map_or("?".into(), |(l, r)| format!("{l}/{r}"));
                format!("ok: dc open {open}, {sel}")
            }
            Some(m) => {
                format!("FAILED: {}", m.failure.as_ref().map_or("workload not done", peerstorm_scenario::failure_name))
            }
            None => "FAILED: no outcome".into(),
        };
        format!(
            "{} ({}) → {} ({}): {verdict}",
            self.offerer.id,
            self.offerer.preset.as_str(),
            self.answerer.id,
            self.answerer.preset.as_str()
        )
    }

    /// Stops what still runs (a run cut short).
    fn stop(&mut self) {
        match std::mem::replace(&mut self.state, PairState::Done) {
            PairState::Answering(mut a) | PairState::Finishing(mut a, _) => a.stop(),
            PairState::Running(mut a, mut o) => {
                a.stop();
                o.stop();
            }
            PairState::Waiting | PairState::Done => {}
        }
    }
}

/// Moves one pair on: start its answerer, then its offerer once the answerer is up, then wait
/// for the offerer, give the answerer its grace, read both outcomes.
fn step(pair: &mut Pair, plan: &Plan<'_>, ns: &(String, String), start: Instant) -> Result<()> {
    let timeout = plan.timeout();
    pair.state = match std::mem::replace(&mut pair.state, PairState::Done) {
        PairState::Waiting => {
            pair.answerer.start = start.elapsed();
            let cmd = plan.command(&ns.1, plan.lab.answerer, &pair.answerer, None)?;
            PairState::Answering(HostProc::spawn(cmd, &plan.logs.join(format!("{}.log", pair.answerer.label)))?)
        }
        PairState::Answering(mut a) => {
            if a.printed() {
                pair.offerer.start = start.elapsed();
                let cmd = plan.command(&ns.0, plan.lab.offerer, &pair.offerer, Some(&pair.answerer.id))?;
                let o = HostProc::spawn(cmd, &plan.logs.join(format!("{}.log", pair.offerer.label)))?;
                PairState::Running(a, o)
            } else if a.exited() || a.started.elapsed() > READY_TIMEOUT {
                // The answerer never came up: the pair failed before its offerer started.
                let killed = !a.exited();
                let mut o = ConnOutcome {
                    remote: pair.answerer.id.clone(),
                    offerer: true,
                    milestones: Milestones::default(),
                    bytes_moved: 0,
                    media: None,
                };
                // The offerer never ran: its answerer's program ended or never printed.
                o.milestones.fail(Failure::HostExited, Duration::ZERO);
                if let Some(why) = a.failed() {
                    eprintln!("lab: {}: {why}", pair.answerer.label);
                }
                pair.offerer.start = start.elapsed();
                pair.offerer.outcome = Some(o);
                pair.answerer.outcome = Some(a.outcome(&pair.offerer.id, false, timeout, killed));
                a.stop();
                PairState::Done
            } else {
                PairState::Answering(a)
            }
        }
        PairState::Running(a, mut o) => {
            let exited = o.exited();
            if exited || o.started.elapsed() > timeout + HOST_SLACK {
                if let Some(why) = o.failed() {
                    eprintln!("lab: {}: {why}", pair.offerer.label);
                }
                pair.offerer.outcome = Some(o.outcome(&pair.answerer.id, true, timeout, !exited));
                o.stop();
                PairState::Finishing(a, Instant::now())
            } else {
                PairState::Running(a, o)
            }
        }
        PairState::Finishing(mut a, since) => {
            let exited = a.exited();
            if exited || since.elapsed() > ANSWERER_GRACE {
                pair.answerer.outcome = Some(a.outcome(&pair.offerer.id, false, timeout, !exited));
                a.stop();
                PairState::Done
            } else {
                PairState::Finishing(a, since)
            }
        }
        PairState::Done => PairState::Done,
    };
    Ok(())
}

/// coturn in its lab host, with the scenario's user, on 198.51.100.1:3478; its log in the
/// results' hosts/.
fn start_coturn(ns: &str, log: &Path, plan: &Plan<'_>) -> Result<HostProc> {
    let conf = plan.logs.join("turnserver.conf");
    std::fs::write(&conf, "# peerstorm lab: settings are on the command line\n")?;
    let mut c = command_in(ns, "turnserver");
    c.arg("-c").arg(&conf).args(["--no-tls", "--no-dtls", "--no-cli", "--simple-log", "--no-multicast-peers"]);
    c.args(["--listening-ip", &TURN_IP.to_string(), "--relay-ip", &TURN_IP.to_string()]);
    c.args(["--listening-port", &TURN_PORT.to_string(), "--min-port", "49152", "--max-port", "65535"]);
    c.arg("--log-file").arg(log);
    match &plan.turn {
        Some(Creds::Static(u, p)) => c.args(["--lt-cred-mech", "--user", &format!("{u}:{p}"), "--realm", "peerstorm"]),
        Some(Creds::Secret(secret, _)) => {
            c.args(["--use-auth-secret", "--static-auth-secret", secret, "--realm", "peerstorm"])
        }
        None => c.arg("--no-auth"),
    };
    HostProc::spawn(c, &plan.logs.join("coturn.stderr.log"))
}

/// The pairs as a run's outcome: offerer `2k`, answerer `2k + 1`, as the simulator numbers them.
fn outcome(s: &Scenario, pairs: &[Pair], wall: Duration, stats: &peerstorm_lab::LabStats) -> RunOutcome {
    let mut peers = Vec::new();
    let mut links = Vec::new();
    for p in pairs {
        for side in [&p.offerer, &p.answerer] {
            let missing = || ConnOutcome {
                remote: String::new(),
                offerer: std::ptr::eq(side, &p.offerer),
                milestones: Milestones::default(),
                bytes_moved: 0,
                media: None,
            };
            peers.push(PeerResult {
                id: side.id.clone(),
                in_shard: true,
                nat: side.preset.as_str(),
                start: side.start,
                connections: vec![side.outcome.clone().unwrap_or_else(missing)],
            });
        }
        links.push(Link { offerer: (peers.len() - 2, 0), answerer: (peers.len() - 1, 0) });
    }
    RunOutcome {
        ice: s.peers.ice.first().copied().unwrap_or(IceMode::Trickle),
        peers,
        links,
        end: wall,
        frames_relayed: 0,
        frames_per_s: Vec::new(),
        bytes_per_s: Vec::new(),
        shard: Shard::WHOLE,
        sim: Some(SimStats { rtt: s.network.rtt, events: 0, datagrams_delivered: stats.out_of_network }),
        datagrams: stats.out_of_network,
        interrupted: false,
        point: Default::default(),
    }
}

/// `lab.json`: what the lab carried and how precisely, and who ran where.
fn lab_summary(stats: &peerstorm_lab::LabStats, pairs: &[Pair], spec: &LabSpec) -> serde_json::Value {
    let ms = |q: f64| stats.lateness(q).map(|d| d.as_secs_f64() * 1000.0);
    let hosts: Vec<serde_json::Value> = pairs
        .iter()
        .flat_map(|p| {
            [(&p.offerer, spec.offerer), (&p.answerer, spec.answerer)].map(|(side, kind)| {
                serde_json::json!({
                    "label": side.label, "id": side.id, "kind": kind.as_str(),
                    "nat": side.preset.as_str(), "ip": side.ip.to_string(),
                })
            })
        })
        .collect();
    serde_json::json!({
        "packets_into_network": stats.into_network,
        "packets_out_of_network": stats.out_of_network,
        "skipped": stats.skipped,
        "scheduling_error_ms": { "p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0) },
        "hosts": hosts,
    })
}
