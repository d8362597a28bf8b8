//! `peerstorm run SCENARIO`: a scenario on the simulator, its results written for the report
//! layer, the exit status from its thresholds.

use crate::EXIT_HARNESS;
use crate::progress::Progress;
use crate::results::Results;
use anyhow::{Context, Result};
use clap::Args;
use peerstorm_live::run::Overrides;
use peerstorm_scenario::{BrokerTarget, Mode, Scenario, Shard};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario file (TOML; see scenarios/README.md; `peerstorm scenarios` lists the shipped
    /// ones).
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long, env = "PEERSTORM_SEED")]
    seed: Option<u64>,
    /// Where to write the results (default reports/<scenario>-<UTC time>/). A directory that
    /// holds files is refused unless --force.
    #[arg(long, env = "PEERSTORM_OUT")]
    out: Option<PathBuf>,
    /// Write into a --out directory that already holds files (they are overwritten).
    #[arg(long)]
    force: bool,
    /// Change one scenario key before it is checked, as TOML: `--set peers.count=1000`,
    /// `--set network.rtt_ms=120`, `--set 'peers.ice=["vanilla"]'`,
    /// `--set 'thresholds."setup.dc_open.p95"="< 2s"'`; a value that is not TOML is taken as a
    /// string. Repeatable; PEERSTORM_SET takes several separated by `;`. The results directory
    /// keeps the scenario as changed.
    #[arg(long = "set", value_name = "KEY=VALUE", env = "PEERSTORM_SET", value_delimiter = ';')]
    set: Vec<String>,
    /// Parse and check the scenario (and every override), print the plan and the memory
    /// estimate, and exit without running: 0 when it would run, 2 when it would be refused.
    #[arg(long)]
    dry_run: bool,
    /// Also copy summary.json (figures, and every threshold's verdict and observed values)
    /// here; `-` prints it on stdout and sends everything else to stderr, for CI:
    /// `peerstorm run s.toml --summary - | jq '.thresholds[] | select(.passed | not)'`.
    #[arg(long, value_name = "FILE|-", env = "PEERSTORM_SUMMARY")]
    summary: Option<PathBuf>,
    /// Simulate one shard: groups i, i+n, i+2n, ... (1-based, e.g. 2/4); `peerstorm merge`
    /// combines the shards' directories.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Simulator: run up to N cells at once, each on a core of its own; 0: one per core. A run
    /// (an ICE mode at a point of a sweep) is split into peers.cells independent worlds (by
    /// default one per 500 groups, at most 16). The results are exactly those of --jobs 1 (each
    /// cell is its own deterministic world, merged in a fixed order); memory grows with N (the
    /// plan's estimate counts it).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1, env = "PEERSTORM_JOBS")]
    jobs: usize,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    /// Live: the number of shards when the shard index comes from JOB_COMPLETION_INDEX (as a
    /// Kubernetes Indexed Job sets it).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Live: connect from this local address (e.g. 127.0.0.2 for a second generator process).
    #[arg(long, value_name = "IP")]
    source_ip: Option<std::net::IpAddr>,
    /// Live: talk to this broker instead of the scenario's: `embedded`, `reference`
    /// (peer@1.0.2 from tools/js), a URL (`ws://HOST:PORT/PATH/peerjs?key=KEY` as `serve
    /// broker` prints it, `wss://…` for TLS) or HOST:PORT (plain, path /, key peerjs).
    /// Several, comma-separated (`embedded,reference`): one run each, side by side in one report.
    #[arg(long, value_name = "BROKER")]
    broker: Option<String>,
    /// Live, wss://: trust the certificates in this PEM file too (a private CA, a self-signed
    /// certificate), besides the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Live, wss://: do not check the broker's certificate at all.
    #[arg(long)]
    insecure: bool,
    /// Live, full stack: use this TURN server instead of the scenario's: `embedded`, `coturn`,
    /// `none`, or `turn:HOST:PORT` (with the scenario's turn_user). Several, comma-separated
    /// (`embedded,coturn`), run the pairs through each in turn, side by side in one report.
    #[arg(long, value_name = "TURN")]
    turn: Option<String>,
    /// Live: the PID of a broker running on this machine (embedded and reference brokers are
    /// known): its CPU and RSS are sampled and its exit ends the run.
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
}

/// The shard: `--shard i/n`, or JOB_COMPLETION_INDEX (0-based) with `--shards n`.
fn shard_of(a: &RunArgs) -> Result<Shard, String> {
    match (&a.shard, a.shards) {
        (Some(_), Some(_)) => Err("give --shard i/n or --shards n (with JOB_COMPLETION_INDEX), not both".into()),
        (Some(s), None) => Shard::parse(s).map_err(|e| format!("--shard: {e}")),
        (None, Some(n)) => {
            let i = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                "--shards needs JOB_COMPLETION_INDEX in the environment (a Kubernetes Indexed Job sets it)".to_string()
            })?;
            let i: usize = i.trim().parse().map_err(|_| format!("JOB_COMPLETION_INDEX = {i:?}: not a number"))?;
            Shard::parse(&format!("{}/{n}", i + 1))
                .map_err(|e| format!("JOB_COMPLETION_INDEX {i} with --shards {n}: {e}"))
        }
        (None, None) => Ok(Shard::WHOLE),
    }
}

/// Reads and checks a scenario; `Err` carries the message for exit status 2.
pub fn load_scenario(path: &Path) -> Result<(Scenario, String), String> {
    load_with(path, &[])
}

/// Reads a scenario, applies `--set` overrides (`KEY=VALUE`, TOML) and checks it; returns it
/// with the text to keep beside the results (the file as written, or as changed).
fn load_with(path: &Path, set: &[String]) -> Result<(Scenario, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = if set.is_empty() { text } else { with_overrides(&text, set).map_err(|e| format!("--set {e}"))? };
    let s = Scenario::parse(&text).map_err(|e| {
        let e = e.to_string();
        // The changed text is nowhere on disk: show the line the error points at.
        let line = e
            .strip_prefix("line ")
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| text.lines().nth(n - 1));
        match line {
            Some(l) if !set.is_empty() => format!("{} with --set: {e} (at `{}`)", path.display(), l.trim()),
            _ => format!("{}: {e}", path.display()),
        }
    })?;
    Ok((s, text))
}

/// The scenario text with every `KEY=VALUE` merged in. The key is a TOML dotted key (quotes
/// allowed: `thresholds."setup.dc_open.p95"`), the value a TOML value or else a string.
fn with_overrides(text: &str, set: &[String]) -> Result<String, String> {
    let mut doc: toml::Table =
        toml::from_str(text).map_err(|e| format!("the scenario is not TOML: {}", e.message()))?;
    for kv in set {
        let (key, value) =
            kv.split_once('=').ok_or_else(|| format!("{kv:?}: expected KEY=VALUE, e.g. peers.count=1000"))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(format!("{kv:?}: the key is empty"));
        }
        // The key's segments, as TOML reads a dotted key (quotes keep a dot inside one).
        let mut probe: toml::Table = toml::from_str(&format!("{key} = 0"))
            .map_err(|e| format!("{kv:?}: {key:?} is not a key ({})", e.message().trim()))?;
        let mut path = Vec::new();
        loop {
            let Some((k, v)) = probe.into_iter().next() else { break };
            path.push(k);
            match v {
                toml::Value::Table(t) => probe = t,
                _ => break,
            }
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        set_at(&mut doc, &path, value).map_err(|why| format!("{kv:?}: {why}"))?;
    }
    let mut out = format!("# the scenario with --set {}\n", set.join(" --set "));
    out.push_str(&toml::to_string(&doc).map_err(|e| e.to_string())?);
    Ok(out)
}

/// Sets `path` in `doc` to `value`, making the tables on the way; the last key is replaced
/// whole (`network.nat_mix={ open = 1 }` is the whole mix). `Err` when the way runs into a
/// value or the last key would replace a table with a value.
fn set_at(doc: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, way) = path.split_last().ok_or("the key is empty")?;
    let mut table = doc;
    for (i, k) in way.iter().enumerate() {
        let next = table.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = next.as_table_mut().ok_or_else(|| format!("{} is a value, not a table", path[..=i].join(".")))?;
    }
    if table.get(last).is_some_and(toml::Value::is_table) && !value.is_table() {
        return Err(format!("{} is a table: set one of its keys ({0}.KEY=VALUE)", path.join(".")));
    }
    table.insert(last.clone(), value);
    Ok(())
}

/// What the simulator holds per peer, measured: storm-10k peaked at 1.59 GiB for 10,000 peers
/// (167 KB each) and 100,000 peers at 15.4 GiB (154 KB each), with the `chrome` profile.
const SIM_BYTES_PER_PEER: u64 = 170 * 1024;

/// What a call adds per peer, measured on `scenarios/media-sim-cost.toml` (200 peers): with
/// 1.5 Mbit/s video 317 MB at peak (~1.4 MiB a peer more than a DataConnection: the NACK
/// responder keeps the last packets sent, up to 1,200 bytes each), audio alone 53 MB (~95 KiB).
const SIM_BYTES_PER_VIDEO_PEER: u64 = 1434 * 1024;
const SIM_BYTES_PER_AUDIO_PEER: u64 = 96 * 1024;

/// The simulator's bytes per peer for this scenario's workload.
fn sim_bytes_per_peer(s: &Scenario) -> u64 {
    let media = s.workload.media.as_ref();
    SIM_BYTES_PER_PEER
        + u64::from(media.is_some_and(|m| m.sends_video())) * SIM_BYTES_PER_VIDEO_PEER
        + u64::from(media.is_some_and(|m| m.sends_audio())) * SIM_BYTES_PER_AUDIO_PEER
}

/// What a finished run keeps until the report is written: its HDR histograms, 256 KiB each
/// (1 µs to 10^12 at 3 significant digits), about 13 per NAT class and per selected pair type
/// and 13 overall. Measured: a sweep point of `loss-sweep` (one class) keeps 16.7 MiB, one of
/// storm-10k (21 classes) about 106 MiB.
const RUN_BYTES_PER_SCOPE: u64 = 13 * 256 * 1024;

/// Scopes a run's histograms take: overall, each NAT class, and (a guess that fits the
/// measurements) four selected-pair types.
fn scopes_per_run(s: &Scenario, point: &peerstorm_scenario::sweep::Point) -> u64 {
    let presets = if point.nat.is_some() {
        1
    } else {
        s.network.nat_mix.0.iter().filter(|(_, share)| *share > 0.0).count().max(1) as u64
    };
    1 + presets * (presets + 1) / 2 + 4
}

/// Cells at once: `--jobs`, 0 for one per core, never more than the scenario has (the cells
/// of every run: ICE modes x sweep points x `peers.cells`).
fn jobs_for(a: &RunArgs, s: &Scenario) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cells: usize = s.points().iter().map(|p| s.at(p).cells()).sum::<usize>() * s.peers.ice.len();
    (if a.jobs == 0 { cores } else { a.jobs }).clamp(1, cells.max(1))
}

/// The simulator's memory for this run (the shard's share of the groups), an upper estimate:
/// `jobs` cells' peers at a time, plus what each finished run of a sweep keeps.
fn sim_memory_estimate(s: &Scenario, shard: Shard, jobs: usize) -> u64 {
    let groups = (s.peers.count / s.group_size().max(1)) as u64;
    let mine = groups.div_ceil(shard.count as u64).div_ceil(s.cells() as u64);
    let peers = mine * s.group_size() as u64 * sim_bytes_per_peer(s) * jobs as u64;
    let kept: u64 =
        s.points().iter().map(|p| scopes_per_run(s, p) * RUN_BYTES_PER_SCOPE).sum::<u64>() * s.peers.ice.len() as u64;
    peers + kept
}

/// MemAvailable from /proc/meminfo, bytes.
fn memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn gib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    }
}

pub fn run(a: &RunArgs) -> Result<u8> {
    // `--summary -`: stdout carries summary.json alone; what the run prints goes to stderr.
    let json_out = match a.summary.as_deref() {
        Some(p) if p == Path::new("-") => Some(stdout_to_stderr().context("--summary -: redirecting stdout")?),
        _ => None,
    };
    let (code, dir) = match prepare(a) {
        Ok(Some(p)) => {
            let dir = p.dir.clone();
            (execute(a, p)?, Some(dir))
        }
        Ok(None) => (crate::EXIT_OK, None),
        Err(e) => {
            eprintln!("peerstorm: {e}");
            (EXIT_HARNESS, None)
        }
    };
    let summary = dir.map(|d| d.join("summary.json")).filter(|p| p.exists());
    match (summary, json_out, a.summary.as_deref()) {
        (Some(s), Some(mut out), _) => {
            use std::io::Write;
            out.write_all(&std::fs::read(&s).with_context(|| format!("reading {}", s.display()))?)?;
        }
        (Some(s), None, Some(copy)) => {
            std::fs::copy(&s, copy).with_context(|| format!("--summary {}", copy.display()))?;
        }
        _ => {}
    }
    Ok(code)
}

/// Points file descriptor 1 at stderr and returns the original stdout.
fn stdout_to_stderr() -> std::io::Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::AsFd;
    std::io::stdout().flush()?;
    let original = std::io::stdout().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2_stdout(std::io::stderr().as_fd()).map_err(std::io::Error::from)?;
    Ok(std::fs::File::from(original))
}

/// A run, checked and ready.
struct Prepared {
    s: Scenario,
    text: String,
    shard: Shard,
    overrides: Overrides,
    thresholds: Vec<peerstorm_report::Threshold>,
    dir: PathBuf,
}

/// Everything that can refuse the run before it starts; `None` for a dry run (the plan printed).
fn prepare(a: &RunArgs) -> Result<Option<Prepared>, String> {
    let (mut s, text) = load_with(&a.scenario, &a.set)?;
    if let Some(seed) = a.seed {
        s.seed = seed;
    }
    let shard = shard_of(a)?;
    let overrides = overrides(a, &mut s)?;
    let thresholds = s.thresholds().map_err(|e| e.to_string())?;
    let dir = crate::results::dir_for(a.out.as_ref(), &s.name);
    let jobs = jobs_for(a, &s);
    let memory = (s.mode == Mode::Sim).then(|| sim_memory_estimate(&s, shard, jobs));
    let available = memory_available();
    if a.dry_run {
        print_plan(&s, shard, &thresholds, &dir, memory, available, jobs);
    }
    if let (Some(need), Some(have)) = (memory, available)
        && need > have
    {
        let runs = s.points().len() * s.peers.ice.len();
        if runs > 1 {
            return Err(format!(
                "{} peers in {runs} runs, {jobs} at a time, need about {} on the simulator ({} KiB per peer of each run going on, and each finished run's histograms until the report is written) and this machine has {} available: {}sweep fewer points, or split the sweep into several scenarios",
                s.peers.count,
                gib(need),
                sim_bytes_per_peer(&s) / 1024,
                gib(have),
                if jobs > 1 { "give fewer --jobs, " } else { "" }
            ));
        }
        return Err(format!(
            "{} peers in {} cells, {jobs} at a time, need about {} on the simulator ({} KiB per peer of each cell going on, measured) and this machine has {} available: {}set peers.cells to {c} or more, or run it in shards (--shard 1/{n} ... {n}/{n}, on several machines or one after another, then peerstorm merge)",
            s.peers.count,
            s.cells(),
            gib(need),
            sim_bytes_per_peer(&s) / 1024,
            gib(have),
            if jobs > 1 { "give fewer --jobs, " } else { "" },
            c = need.div_ceil(have.max(1)).max(2) * s.cells() as u64,
            n = need.div_ceil(have.max(1)).max(2) * shard.count as u64
        ));
    }
    if a.dry_run {
        println!("dry run: the scenario would run (nothing was simulated or written)");
        return Ok(None);
    }
    if s.mode == Mode::Lab {
        crate::lab_run::check_root()?;
    }
    crate::results::prepare_out(&dir, a.force)?;
    Ok(Some(Prepared { s, text, shard, overrides, thresholds, dir }))
}

fn print_plan(
    s: &Scenario,
    shard: Shard,
    thresholds: &[peerstorm_report::Threshold],
    dir: &Path,
    memory: Option<u64>,
    available: Option<u64>,
    jobs: usize,
) {
    let ice: Vec<&str> = s.peers.ice.iter().map(|m| peerstorm_scenario::ice_name(*m)).collect();
    let rtts: Vec<String> = s.rtts().iter().map(|r| format!("{} ms", r.as_millis())).collect();
    let mix: Vec<String> = s.network.nat_mix.0.iter().map(|(p, x)| format!("{} {}", p.as_str(), x)).collect();
    println!("scenario   {} (mode {}, seed {})", s.name, s.mode.as_str(), s.seed);
    println!(
        "peers      {} in {} of {} ({} groups), ICE {}",
        s.peers.count,
        s.peers.pattern.as_str(),
        s.group_size(),
        s.peers.count / s.group_size().max(1),
        ice.join(" and ")
    );
    if s.mode != Mode::Live {
        let points = s.points();
        let swept = |f: &dyn Fn(&peerstorm_scenario::sweep::Point) -> bool| points.iter().any(f);
        let loss = if swept(&|p| p.loss.is_some()) { "swept".to_string() } else { s.network.loss.to_string() };
        let nats = if swept(&|p| p.nat.is_some()) { "swept".to_string() } else { mix.join(", ") };
        let bw = match (swept(&|p| p.bandwidth_kbps.is_some()), s.network.bandwidth_kbps) {
            (true, _) => ", bandwidth swept".to_string(),
            (false, Some(b)) => format!(", bandwidth {b} kbit/s"),
            (false, None) => String::new(),
        };
        println!("network    RTT {}, loss {loss}{bw}, NATs {nats}", rtts.join(", "));
    }
    if shard != Shard::WHOLE {
        println!("shard      {}", shard.label());
    }
    let points = s.points();
    if s.mode == Mode::Sim && s.is_sweep() {
        println!("sweep      {} points", points.len());
        for p in points.iter().take(20) {
            let v = s.at(p);
            println!("  RTT {} ms{}", v.network.rtt.as_millis(), peerstorm_report::metrics::point_words(&p.labels()));
        }
        if points.len() > 20 {
            println!("  ... and {} more", points.len() - 20);
        }
        let outputs = if s.sweep.outputs.is_empty() {
            peerstorm_report::metrics::DEFAULT_SWEEP_OUTPUTS.iter().map(|o| o.to_string()).collect()
        } else {
            s.sweep.outputs.clone()
        };
        println!("outputs    {} (charted against each swept input)", outputs.join(", "));
    }
    println!(
        "runs       {} (ICE modes x sweep points)",
        ice.len() * if s.mode == Mode::Sim { points.len() } else { 1 }
    );
    if s.mode == Mode::Sim && s.cells() > 1 {
        println!("cells      {} per run (independent worlds; the results do not depend on --jobs)", s.cells());
    }
    if s.mode == Mode::Sim && jobs > 1 {
        println!("jobs       {jobs} cells at once");
    }
    match (memory, available) {
        (Some(m), Some(h)) => println!("memory     about {} of {} available", gib(m), gib(h)),
        (Some(m), None) => println!("memory     about {}", gib(m)),
        _ => {}
    }
    println!("thresholds {}", thresholds.len());
    for t in thresholds {
        println!("  {}", t.text);
    }
    println!("results    {}", dir.display());
}

fn execute(a: &RunArgs, p: Prepared) -> Result<u8> {
    let Prepared { s, text, shard, overrides, thresholds, dir } = p;
    if s.mode == Mode::Lab {
        return crate::lab_run::run(&s, &text, &dir, &thresholds, a.quiet);
    }
    if s.mode == Mode::Live {
        return crate::live::run(&s, &text, shard, &overrides, &thresholds, &dir, a.quiet);
    }
    let stop = crate::interrupt::Interrupt::install().context("installing the Ctrl-C handler")?;
    eprintln!(
        "running {} (seed {}, {} peers, {} pattern, {} ICE{}) on the simulator",
        s.name,
        s.seed,
        s.peers.count,
        s.peers.pattern.as_str(),
        s.peers.ice.iter().map(|m| peerstorm_scenario::ice_name(*m)).collect::<Vec<_>>().join(" and "),
        if shard == Shard::WHOLE { String::new() } else { format!(", shard {}", shard.label()) }
    );
    let progress = std::sync::Mutex::new(Progress::new(a.quiet));
    // Each run's peers become their file as the run ends, so a sweep holds one run at a time.
    let (mut files, mut interrupted, mut file_error) = (Vec::new(), false, None);
    let sweep = s.is_sweep();
    let result = peerstorm_runner::run_each_jobs(
        &s,
        shard,
        jobs_for(a, &s),
        &|p| {
            progress.lock().unwrap_or_else(|e| e.into_inner()).simulation(&p);
            if stop.requested() { peerstorm_runner::Flow::Stop } else { peerstorm_runner::Flow::Continue }
        },
        &mut |r| {
            interrupted |= r.interrupted;
            match crate::results::peer_files(std::slice::from_ref(&r), sweep) {
                Ok(f) => files.extend(f),
                Err(e) => file_error = Some(e),
            }
        },
    );
    let progress = progress.into_inner().unwrap_or_else(|e| e.into_inner());
    progress.finish();
    let metrics = result.with_context(|| format!("simulating {}", s.name))?;
    if let Some(e) = file_error {
        return Err(e.context("writing the peers' records"));
    }
    if stop.requested() {
        eprintln!(
            "{}: stopping; writing a partial report of what finished (another {} ends at once)",
            stop.name(),
            stop.name()
        );
    }
    let results = Results {
        metrics: &metrics,
        thresholds: &thresholds,
        scenario: Some(&text),
        files,
        wall_secs: Some(progress.wall_secs()),
    };
    let code = crate::results::write(&dir, &results)?;
    match stop.status() {
        Some(status) if interrupted => {
            println!("the run was interrupted ({}): a partial report (exit {status})", stop.name());
            Ok(status)
        }
        Some(status) => {
            println!("{} came after the simulation finished: the report is complete (exit {status})", stop.name());
            Ok(status)
        }
        None => Ok(code),
    }
}

/// The command line's changes to the scenario: `--broker` (several for a side-by-side live
/// run), `--turn`, `--source-ip`, `--broker-pid`.
fn overrides(a: &RunArgs, s: &mut Scenario) -> Result<Overrides, String> {
    let mut o = Overrides { brokers: None, source_ip: a.source_ip, broker_pid: a.broker_pid, stop: None, turns: None };
    if let Some(b) = &a.broker {
        let brokers = b
            .split(',')
            .map(|one| one.trim().parse::<BrokerTarget>().map_err(|e| format!("--broker {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        s.servers.broker = brokers[0].clone();
        o.brokers = Some(brokers);
    }
    if a.ca.is_some() || a.insecure {
        let mut any = false;
        for b in std::iter::once(&mut s.servers.broker).chain(o.brokers.iter_mut().flatten()) {
            if let BrokerTarget::Server(p) = b
                && p.secure
            {
                p.ca = a.ca.clone().or(p.ca.take());
                p.insecure |= a.insecure;
                any = true;
            }
        }
        if !any {
            return Err("--ca and --insecure are for a wss:// broker; this run has none".into());
        }
    }
    if let Some(t) = &a.turn {
        let turns = t
            .split(',')
            .map(|one| one.trim().parse::<peerstorm_scenario::TurnTarget>().map_err(|e| format!("--turn {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        s.servers.turn = turns[0].clone();
        if turns.len() > 1 {
            if s.mode != peerstorm_scenario::Mode::Live {
                return Err("--turn with several servers is for a live run (mode = \"live\")".into());
            }
            o.turns = Some(turns);
        }
    }
    // The scenario as changed must still hold together (a simulation cannot take coturn).
    s.check().map_err(|e| format!("{}: {e}", a.scenario.display()))?;
    Ok(o)
}
