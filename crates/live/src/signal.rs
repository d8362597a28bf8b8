//! The signaling load: each pair of virtual peers joins the broker as `peerjs@1.5.5` does
//! (optionally `GET /<key>/id` first), the offerer sends OFFER and k CANDIDATEs, the answerer
//! ANSWER and k CANDIDATEs, both hold with HEARTBEATs, then leave. One task drives both peers
//! of a pair, so every relay latency is measured on one clock.

use crate::plan::{LoadModel, Plan};
use peerstorm_loadgen::{Client, JoinError, Target, candidate_frame, client::text_frame, frame_type};
use peerstorm_report::RunMetrics;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the signaling load does.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub target: Target,
    pub plan: Plan,
    /// CANDIDATE frames each side sends after its description.
    pub candidates: usize,
    /// How long a pair stays connected after its exchange (HEARTBEATs every `heartbeat`).
    pub hold: Duration,
    pub heartbeat: Duration,
    /// Ask the broker for an ID (`GET /<key>/id`) before joining, as PeerJS does without one.
    pub id_request: bool,
    /// The most a single step (join, a relay) may take before the pair fails.
    pub step_timeout: Duration,
    /// Source address for the connections (e.g. 127.0.0.2 for a second generator process).
    pub source: Option<IpAddr>,
    /// Prefix of every peer ID, unique per run and shard.
    pub id_prefix: String,
    /// The broker's PID when it runs on this machine: its CPU and RSS are sampled, and its
    /// death ends the run.
    pub broker_pid: Option<u32>,
    /// The run's label in the summary (`signaling`, or `signaling peer@1.0.2` side by side).
    pub label: String,
    /// Set from outside (Ctrl-C, SIGTERM) to stop the run: no new pairs, the rest cut within
    /// about a second, the metrics marked interrupted.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Why a run stopped when it was asked to.
pub const INTERRUPTED: &str = "interrupted (Ctrl-C or SIGTERM)";

/// Where a live run is.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub elapsed: Duration,
    pub started: usize,
    pub ok: usize,
    pub failed: usize,
    pub connected: usize,
}

/// Why a live run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("the broker at {0} is unreachable: {1}")]
    Unreachable(String, String),
    #[error(
        "this run may hold {need} sockets at once but the open-file hard limit is {hard}: raise it (ulimit -Hn) or run shards in several processes (--shard i/n)"
    )]
    FdLimit { need: u64, hard: u64 },
}

/// A finished (or aborted) live run.
#[derive(Debug)]
pub struct LiveRun {
    pub metrics: RunMetrics,
    /// Why the run ended early (the broker died or stopped answering), if it did.
    pub aborted: Option<String>,
}

/// Shared state of a run.
struct Shared {
    cfg: LiveConfig,
    start: Instant,
    metrics: Mutex<RunMetrics>,
    started: AtomicUsize,
    ok: AtomicUsize,
    failed: AtomicUsize,
    connected: AtomicUsize,
    connected_max: AtomicUsize,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    /// Joins in a row refused at the TCP level: the broker is gone.
    refused_in_a_row: AtomicUsize,
    abort: AtomicBool,
    /// `true` once the run aborts: what held pairs wait on besides their own timers.
    aborted: tokio::sync::watch::Sender<bool>,
    abort_reason: Mutex<Option<String>>,
    /// Held pairs asked to leave (churn).
    churn: ChurnFlags,
}

impl Shared {
    fn second(&self) -> usize {
        self.start.elapsed().as_secs() as usize
    }

    fn with<R>(&self, f: impl FnOnce(&mut RunMetrics) -> R) -> R {
        f(&mut self.metrics.lock().expect("metrics lock"))
    }

    fn abort(&self, why: String) {
        if !self.abort.swap(true, Ordering::SeqCst) {
            *self.abort_reason.lock().expect("lock") = Some(why);
            self.aborted.send_replace(true);
        }
    }

    /// Whether the run was asked to stop (Ctrl-C, SIGTERM).
    fn stopping(&self) -> bool {
        self.cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }

    fn fail(&self, cause: &str) {
        if self.stopping() {
            // Cut by the interruption (an embedded broker dies of the same Ctrl-C): neither a
            // failure nor a connection of the report, but counted apart.
            self.with(|m| {
                m.count("connections_cut", 1);
                if let Some(n) = m.counters.get_mut("connections") {
                    *n = n.saturating_sub(1);
                }
            });
            return;
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
        let s = self.second();
        self.with(|m| {
            m.count(format!("failures.{cause}"), 1);
            m.tick("connections_failed", s, 1);
        });
    }

    fn peer_up(&self) {
        let now = self.connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.connected_max.fetch_max(now, Ordering::Relaxed);
    }

    fn peer_down(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// A failure's name in the summary.
fn join_cause(e: &JoinError) -> &'static str {
    match e {
        JoinError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connection_refused",
        JoinError::Io(_) => "join_io",
        JoinError::Http(_) => "join_http_refused",
        JoinError::Refused(_) => "join_refused",
        JoinError::Timeout(_) => "join_timeout",
    }
}

/// `GET /<key>/id` on the broker's HTTP API; the body is the ID.
async fn request_id(t: &Target) -> std::io::Result<String> {
    let base = t.ws_path.trim_end_matches("peerjs");
    let text = t.http_get(&format!("{base}{}/id", t.key)).await?;
    if !text.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(text.lines().next().unwrap_or("no answer").to_string()));
    }
    Ok(text.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string())
}

/// Reads frames until `want` has seen what it needs, or the deadline; counts frames; an
/// ERROR, EXPIRE or ID-TAKEN is a failure named after it.
async fn read_until(
    c: &mut Client,
    sh: &Shared,
    deadline: tokio::time::Instant,
    mut want: impl FnMut(&str, Instant) -> bool,
) -> Result<(), &'static str> {
    // One timer for the whole wait, not one per read.
    let reads = async {
        loop {
            let (mut done, mut bad) = (false, None);
            c.read_frames(|_, p| {
                sh.frames_received.fetch_add(1, Ordering::Relaxed);
                match frame_type(p) {
                    Some("ERROR") => bad = Some("broker_error"),
                    Some("EXPIRE") => bad = Some("expire"),
                    Some("ID-TAKEN") => bad = Some("id_taken"),
                    Some(t) => done |= want(t, Instant::now()),
                    None => {}
                }
            })
            .await
            .map_err(|_| "connection_lost")?;
            if let Some(b) = bad {
                return Err(b);
            }
            if done {
                return Ok(());
            }
        }
    };
    tokio::time::timeout_at(deadline, reads).await.unwrap_or(Err("relay_timeout"))
}

async fn send(c: &Client, sh: &Shared, frame: &[u8]) -> Result<(), &'static str> {
    sh.frames_sent.fetch_add(1, Ordering::Relaxed);
    c.send(frame).await.map_err(|_| "connection_lost")
}

/// Joins one peer, recording connect-to-OPEN.
async fn join(sh: &Shared, id: &str) -> Result<Client, &'static str> {
    let cfg = &sh.cfg;
    let id = if cfg.id_request {
        match tokio::time::timeout(cfg.step_timeout, request_id(&cfg.target)).await {
            Ok(Ok(assigned)) if !assigned.is_empty() => assigned,
            Ok(Ok(_)) | Ok(Err(_)) => return Err("id_request"),
            Err(_) => return Err("id_request"),
        }
    } else {
        id.to_string()
    };
    match Client::join(&cfg.target, &id, "tok", cfg.source, cfg.step_timeout).await {
        Ok((c, took)) => {
            sh.refused_in_a_row.store(0, Ordering::Relaxed);
            sh.peer_up();
            sh.with(|m| m.record("signal.connect_open", us(took)));
            Ok(c)
        }
        Err(e) => {
            let cause = join_cause(&e);
            if cause == "connection_refused" && sh.refused_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= 20 {
                sh.abort(format!("the broker refused 20 connections in a row ({e})"));
            }
            Err(cause)
        }
    }
}

/// One pair, from its intended start to its leaving. `hold_until` overrides the hold (churn).
async fn pair(sh: Arc<Shared>, n: usize, intended: Instant, hold: Hold) {
    if sh.abort.load(Ordering::Relaxed) {
        return;
    }
    let actual = Instant::now();
    sh.started.fetch_add(1, Ordering::Relaxed);
    let second = sh.second();
    sh.with(|m| {
        m.count("connections", 1);
        m.tick("peers_started", second, 2);
        m.count("peers", 2);
        // How late the generator started this pair (coordinated omission shows here).
        m.record("signal.start_lag", us(actual.saturating_duration_since(intended)));
    });
    let (oid, aid) = (format!("{}-{n}o", sh.cfg.id_prefix), format!("{}-{n}a", sh.cfg.id_prefix));
    let (ra, ro) = tokio::join!(join(&sh, &aid), join(&sh, &oid));
    let (mut a, mut o) = match (ra, ro) {
        (Ok(a), Ok(o)) => (a, o),
        (ra, ro) => {
            let cause = ra.as_ref().err().or(ro.as_ref().err()).copied().unwrap_or("join");
            for _ in [ra.is_ok(), ro.is_ok()].iter().filter(|ok| **ok) {
                sh.peer_down();
            }
            return sh.fail(cause);
        }
    };
    let r = exchange(&sh, &mut o, &mut a, intended, actual).await;
    let r = match r {
        Ok(()) => hold_pair(&sh, &mut o, &mut a, hold).await,
        Err(e) => Err(e),
    };
    if r.is_ok() && !sh.abort.load(Ordering::Relaxed) && !sh.stopping() {
        // Both leave as a browser tab does (PeerJS's `destroy()`: `WebSocket.close()`), so the
        // broker answers and closes its end first, as it would for real clients.
        let t = sh.cfg.step_timeout;
        let (ro, ra) = tokio::join!(o.close(t), a.close(t));
        let unanswered = [ro, ra].into_iter().filter(|r| !matches!(r, Ok(true))).count();
        if unanswered > 0 {
            sh.with(|m| m.count("closes_unanswered", unanswered as u64));
        }
    }
    sh.peer_down();
    sh.peer_down();
    match r {
        Ok(()) => {
            sh.ok.fetch_add(1, Ordering::Relaxed);
            sh.with(|m| m.count("connections_ok", 1));
        }
        Err(cause) => sh.fail(cause),
    }
}

/// One leg: `from` sends `first` (an OFFER or ANSWER of type `kind`) and k CANDIDATEs; `to`
/// reads until it has all of them. Returns the description's relay latency.
async fn leg(
    sh: &Shared,
    from: &Client,
    to: &mut Client,
    first: &[u8],
    kind: &str,
    deadline: tokio::time::Instant,
) -> Result<Duration, &'static str> {
    let k = sh.cfg.candidates;
    let sent = Instant::now();
    send(from, sh, first).await?;
    for i in 0..k {
        send(from, sh, &text_frame(&candidate_frame(&to.id, i))).await?;
    }
    let (mut at, mut cands) = (None, 0);
    read_until(to, sh, deadline, |t, when| {
        if t == kind {
            at = Some(when);
        } else if t == "CANDIDATE" {
            cands += 1;
        }
        at.is_some() && cands >= k
    })
    .await?;
    Ok(at.map_or(Duration::ZERO, |t| t - sent))
}

/// OFFER + k CANDIDATE one way, ANSWER + k CANDIDATE back, with relay latencies.
async fn exchange(
    sh: &Shared,
    o: &mut Client,
    a: &mut Client,
    intended: Instant,
    actual: Instant,
) -> Result<(), &'static str> {
    let deadline = tokio::time::Instant::now() + sh.cfg.step_timeout;
    let offer = text_frame(&peerstorm_loadgen::offer_frame(&a.id));
    let offer_relay = leg(sh, o, a, &offer, "OFFER", deadline).await?;
    let answer = text_frame(&peerstorm_loadgen::answer_frame(&o.id));
    let answer_relay = leg(sh, a, o, &answer, "ANSWER", deadline).await?;
    let done = Instant::now();
    let s = sh.second();
    sh.with(|m| {
        m.record("signal.offer_relay", us(offer_relay));
        m.record("signal.answer_relay", us(answer_relay));
        m.record("signal.exchange", us(done - intended));
        m.record("signal.exchange_uncorrected", us(done - actual));
        m.tick("connections_open", s, 1);
    });
    Ok(())
}

/// How long a pair stays.
#[derive(Debug, Clone, Copy)]
enum Hold {
    For(Duration),
    /// Until the run's end or until churn picks it (the flag).
    Churn(usize),
}

async fn hold_pair(sh: &Shared, o: &mut Client, a: &mut Client, hold: Hold) -> Result<(), &'static str> {
    let end = match hold {
        Hold::For(d) => Instant::now() + d,
        Hold::Churn(_) => sh.start + sh.cfg.plan.duration,
    };
    let beat = text_frame(r#"{"type":"HEARTBEAT"}"#);
    let mut next = beat_slot(sh.start, Instant::now() + sh.cfg.heartbeat);
    let leave = match hold {
        Hold::Churn(slot) => sh.churn.slot(slot),
        Hold::For(_) => Arc::new(tokio::sync::Notify::new()),
    };
    let mut aborted = sh.aborted.subscribe();
    loop {
        let now = Instant::now();
        if now >= end || sh.abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Asleep until a heartbeat is due, the hold ends, a socket has something (a frame, or
        // EOF: the broker dropped the peer; only that socket is read), churn asks this pair to
        // leave, or the run aborts: an idle pair wakes only for its heartbeats.
        let readable = tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(end.min(next))) => None,
            _ = o.stream.readable() => Some(0),
            _ = a.stream.readable() => Some(1),
            _ = leave.notified() => return Ok(()),
            _ = aborted.wait_for(|a| *a) => return Ok(()),
        };
        if let Some(k) = readable {
            let c = if k == 0 { &mut *o } else { &mut *a };
            match c.drain_now() {
                Ok(true) => {}
                Ok(false) | Err(_) => return Err("connection_lost"),
            }
        }
        if Instant::now() >= next {
            send(o, sh, &beat).await?;
            send(a, sh, &beat).await?;
            next += sh.cfg.heartbeat;
        }
    }
}

/// Held pairs' HEARTBEATs are due on a grid of this step from the run's start, so the pairs
/// whose beats fall in one step share a wakeup of the generator (thousands of peers otherwise
/// wake it for every beat). Each pair still beats every 5 s; a beat is at most this late. (A
/// browser aligns the timers of a background tab far more coarsely: to whole seconds.)
const BEAT_STEP: Duration = Duration::from_millis(20);

/// `at` rounded up to the heartbeat grid from `start`.
fn beat_slot(start: Instant, at: Instant) -> Instant {
    let since = at.saturating_duration_since(start).as_nanos();
    let step = BEAT_STEP.as_nanos();
    start + Duration::from_nanos((since.div_ceil(step) * step) as u64)
}

/// Churn requests: one notification per held pair slot (a request made before the slot's pair
/// is holding waits for it).
struct ChurnFlags(Mutex<Vec<Arc<tokio::sync::Notify>>>);

impl ChurnFlags {
    fn slot(&self, slot: usize) -> Arc<tokio::sync::Notify> {
        let mut v = self.0.lock().expect("churn lock");
        if v.len() <= slot {
            v.resize_with(slot + 1, Default::default);
        }
        v[slot].clone()
    }

    fn set(&self, slot: usize) {
        self.slot(slot).notify_one();
    }
}

/// One look at the run from the watcher.
#[derive(Debug, Clone, Copy)]
struct IdleSample {
    at: Instant,
    /// Pairs started, ok, failed; peers connected.
    state: [usize; 4],
    generator: Option<peerstorm_loadgen::proc::Sample>,
    broker: Option<peerstorm_loadgen::proc::Sample>,
}

/// The CPU spent while connected peers only hold: every stretch of watcher ticks in which no
/// pair started, finished or failed and no peer joined or left. Whole stretches are measured
/// (CPU from `/proc` counts in 10 ms ticks), in peer-milliseconds held and CPU microseconds.
#[derive(Debug, Default)]
struct Idle {
    last: Option<IdleSample>,
    /// Where the current quiet stretch began.
    since: Option<IdleSample>,
    peer_ms: u64,
    generator_us: u64,
    broker_us: u64,
}

impl Idle {
    fn tick(&mut self, now: IdleSample) {
        let quiet = self.last.is_some_and(|l| l.state == now.state && now.state[3] > 0);
        if quiet {
            self.since = self.since.or(self.last);
        } else {
            self.close();
        }
        self.last = Some(now);
    }

    /// Ends the current quiet stretch at the last tick (the one after it is not quiet).
    fn close(&mut self) {
        let (Some(a), Some(b)) = (self.since.take(), self.last) else { return };
        let (Some(ga), Some(gb)) = (a.generator, b.generator) else { return };
        let ms = (b.at - a.at).as_millis() as u64;
        self.peer_ms += ms * b.state[3] as u64;
        self.generator_us += ((gb.cpu_s - ga.cpu_s) * 1e6).max(0.0).round() as u64;
        if let (Some(ba), Some(bb)) = (a.broker, b.broker) {
            self.broker_us += ((bb.cpu_s - ba.cpu_s) * 1e6).max(0.0).round() as u64;
        }
    }
}

/// Runs the signaling load; `progress` is called about once a second.
pub async fn run_signaling(cfg: LiveConfig, mut progress: impl FnMut(Progress)) -> Result<LiveRun, LiveError> {
    let hard = crate::raise_fd_limit().unwrap_or(u64::MAX);
    let per_pair = 2u64;
    // The most pairs connected at once: those started within a pair's longest life, never
    // more than the plan starts.
    let life = (cfg.hold + cfg.step_timeout * 3).as_secs_f64();
    let in_flight = match cfg.plan.model {
        LoadModel::Open { rate } => ((rate * life).ceil() as u64).min(cfg.plan.schedule().len() as u64),
        LoadModel::Ramp { from, to } => ((from.max(to) * life).ceil() as u64).min(cfg.plan.schedule().len() as u64),
        LoadModel::Closed { .. } | LoadModel::Churn { .. } => cfg.plan.slots() as u64,
    }
    .min(cfg.plan.max_pairs as u64);
    let need = in_flight * per_pair + 64;
    if need > hard {
        return Err(LiveError::FdLimit { need, hard });
    }
    // Reachable at all? One TCP connect before any load.
    if let Err(e) = tokio::time::timeout(Duration::from_secs(5), cfg.target.connect(None))
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map(drop).map_err(|e| e.to_string()))
    {
        return Err(LiveError::Unreachable(cfg.target.addr.to_string(), e));
    }
    let label = cfg.label.clone();
    let label = label.as_str();
    let sh = Arc::new(Shared {
        start: Instant::now(),
        metrics: Mutex::new(RunMetrics::new(label, 0)),
        started: AtomicUsize::new(0),
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        connected_max: AtomicUsize::new(0),
        frames_sent: AtomicU64::new(0),
        frames_received: AtomicU64::new(0),
        refused_in_a_row: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        aborted: tokio::sync::watch::channel(false).0,
        abort_reason: Mutex::new(None),
        churn: ChurnFlags(Mutex::new(Vec::new())),
        cfg,
    });
    let me = std::process::id();
    let gen0 = peerstorm_loadgen::proc::sample(me).ok();
    let broker0 = sh.cfg.broker_pid.and_then(|p| peerstorm_loadgen::proc::sample(p).ok());
    let mut tasks = tokio::task::JoinSet::new();
    let plan = sh.cfg.plan.clone();
    let end = sh.start + plan.duration;
    // The driver: spawns pairs by the model; churn also rotates held pairs out.
    {
        let sh = sh.clone();
        tasks.spawn(async move {
            let stop: Arc<dyn Fn() -> bool + Send + Sync> = {
                let sh = sh.clone();
                Arc::new(move || sh.abort.load(Ordering::Relaxed))
            };
            let churn = matches!(plan.model, LoadModel::Churn { .. });
            let run = {
                let sh = sh.clone();
                move |n: usize, intended: Instant, slot: Option<usize>| {
                    let hold = match slot {
                        Some(slot) if churn => Hold::Churn(slot),
                        _ => Hold::For(sh.cfg.hold),
                    };
                    pair(sh.clone(), n, intended, hold)
                }
            };
            let rotate = async {
                let LoadModel::Churn { rate, .. } = plan.model else { return };
                let slots = plan.slots();
                // Every 1/rate seconds one held pair leaves (round robin) and a new one joins.
                let per = Duration::from_secs_f64(plan.shard.1 as f64 / rate.max(1e-6));
                let mut k = 0usize;
                let mut at = sh.start + per;
                while at < end && slots > 0 && !sh.abort.load(Ordering::Relaxed) {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    sh.churn.set(k % slots);
                    sh.with(|m| m.count("churned_pairs", 1));
                    k += 1;
                    at += per;
                }
            };
            tokio::join!(plan.dispatch(sh.start, stop, run, |_, _| {}), rotate);
        });
    }
    // The watcher: progress, broker liveness and memory, and the CPU both processes spend
    // while every connected peer only holds.
    let mut rss_max = broker0.map_or(0, |s| s.rss_kib);
    let mut idle = Idle::default();
    let hard_end = end + sh.cfg.hold + sh.cfg.step_timeout * 4 + Duration::from_secs(5);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_progress = Instant::now();
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = tick.tick() => {
                // First: a Ctrl-C reaches an embedded broker in the same process group too, and
                // its death is then the interruption's doing, not the broker's failure.
                if sh.cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                    sh.abort(INTERRUPTED.into());
                }
                let broker = sh.cfg.broker_pid.map(|pid| (pid, peerstorm_loadgen::proc::sample(pid)));
                if let Some((pid, b)) = &broker {
                    match b {
                        Ok(s) => rss_max = rss_max.max(s.rss_kib),
                        Err(_) => sh.abort(format!("the broker (pid {pid}) exited")),
                    }
                }
                idle.tick(IdleSample {
                    at: Instant::now(),
                    state: [&sh.started, &sh.ok, &sh.failed, &sh.connected].map(|a| a.load(Ordering::Relaxed)),
                    generator: peerstorm_loadgen::proc::sample(me).ok(),
                    broker: broker.and_then(|(_, b)| b.ok()),
                });
                if Instant::now() >= hard_end {
                    sh.abort("the run overran its bound (duration + hold + 4 step timeouts); remaining pairs were stopped".into());
                    tasks.abort_all();
                }
                if last_progress.elapsed() >= Duration::from_secs(1) {
                    last_progress = Instant::now();
                    progress(Progress {
                        elapsed: sh.start.elapsed(),
                        started: sh.started.load(Ordering::Relaxed),
                        ok: sh.ok.load(Ordering::Relaxed),
                        failed: sh.failed.load(Ordering::Relaxed),
                        connected: sh.connected.load(Ordering::Relaxed),
                    });
                }
            }
        }
        if sh.abort.load(Ordering::Relaxed) {
            // Give pairs a moment to notice, then stop what is left: never hang.
            tokio::time::sleep(Duration::from_millis(300)).await;
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            break;
        }
    }
    let elapsed = sh.start.elapsed();
    let gen1 = peerstorm_loadgen::proc::sample(me).ok();
    let broker1 = sh.cfg.broker_pid.and_then(|p| peerstorm_loadgen::proc::sample(p).ok());
    let aborted = sh.abort_reason.lock().expect("lock").clone();
    let mut m = std::mem::replace(&mut *sh.metrics.lock().expect("lock"), RunMetrics::new(label, 0));
    let relayed = sh.frames_received.load(Ordering::Relaxed);
    m.count("frames_sent", sh.frames_sent.load(Ordering::Relaxed));
    m.count("frames_relayed", relayed);
    m.count("peers_max", sh.connected_max.load(Ordering::Relaxed) as u64);
    idle.close();
    if idle.peer_ms > 0 {
        m.count("idle.peer_ms", idle.peer_ms);
        m.count("idle.generator_cpu_us", idle.generator_us);
        if sh.cfg.broker_pid.is_some() {
            m.count("idle.broker_cpu_us", idle.broker_us);
        }
    }
    if let (Some(a), Some(b)) = (gen0, gen1) {
        m.count("generator.cpu_us", ((b.cpu_s - a.cpu_s) * 1e6) as u64);
    }
    if let (Some(a), Some(b)) = (broker0, broker1) {
        m.count("broker.cpu_us", ((b.cpu_s - a.cpu_s) * 1e6) as u64);
        m.count("broker.rss_kib_start", a.rss_kib);
        m.count("broker.rss_kib_max", rss_max.max(b.rss_kib));
    }
    for key in ["peers_started", "connections_open", "connections_failed"] {
        m.series.entry(key.into()).or_default();
    }
    m.end_ms = elapsed.as_secs_f64() * 1000.0;
    if aborted.as_deref() == Some(INTERRUPTED) {
        m.count("interrupted", 1);
    }
    Ok(LiveRun { metrics: m, aborted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerstorm_loadgen::proc::Sample;

    fn at(base: Instant, ms: u64, state: [usize; 4], gen_cpu: f64) -> IdleSample {
        IdleSample {
            at: base + Duration::from_millis(ms),
            state,
            generator: Some(Sample { cpu_s: gen_cpu, rss_kib: 1 }),
            broker: Some(Sample { cpu_s: gen_cpu / 2.0, rss_kib: 1 }),
        }
    }

    /// Only stretches of ticks in which nothing started, ended or joined count, from the tick
    /// before the first quiet one to the last quiet one; with no peer connected nothing counts.
    #[test]
    fn held_time_is_the_quiet_stretches() {
        let base = Instant::now();
        let (busy, held) = ([5, 0, 0, 8], [10, 0, 0, 20]);
        let mut idle = Idle::default();
        idle.tick(at(base, 0, busy, 0.0));
        idle.tick(at(base, 250, held, 0.5)); // joins happened before this tick: not quiet
        idle.tick(at(base, 500, held, 0.6)); // quiet from 250
        idle.tick(at(base, 750, held, 0.7));
        idle.tick(at(base, 1000, [10, 2, 0, 16], 1.5)); // two pairs left: the stretch ends at 750
        idle.tick(at(base, 1250, [10, 2, 0, 16], 1.6)); // quiet again
        idle.close();
        assert_eq!(idle.peer_ms, 500 * 20 + 250 * 16);
        assert_eq!(idle.generator_us, 300_000);
        assert_eq!(idle.broker_us, 150_000);
        let mut empty = Idle::default();
        for ms in [0, 250, 500] {
            empty.tick(at(base, ms, [3, 3, 0, 0], 1.0));
        }
        empty.close();
        assert_eq!(empty.peer_ms, 0);
    }

    #[test]
    fn beats_fall_on_the_grid() {
        let start = Instant::now();
        assert_eq!(beat_slot(start, start + Duration::from_millis(5001)), start + Duration::from_millis(5020));
        assert_eq!(beat_slot(start, start + Duration::from_millis(5020)), start + Duration::from_millis(5020));
    }
}
