//! `peerstorm run SCENARIO`: a scenario on the simulator, its results written for the report
//! layer, the exit status from its thresholds.

use crate::{EXIT_HARNESS, EXIT_OK};
use anyhow::{Context, Result};
use clap::Args;
use peerstorm_runner::{Scenario, Shard};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario file (TOML; see scenarios/README.md).
    pub(crate) scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the results (default reports/<scenario>-<UTC time>/).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Simulate one shard: groups i, i+n, i+2n, ... (1-based, e.g. 2/4); `peerstorm merge`
    /// combines the shards' directories.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// No progress display.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Live: the number of shards when the shard index comes from JOB_COMPLETION_INDEX (as a
    /// Kubernetes Indexed Job sets it).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Live: connect from this local address (e.g. 127.0.0.2 for a second generator process).
    #[arg(long, value_name = "IP")]
    pub(crate) source_ip: Option<std::net::IpAddr>,
    /// Live: talk to this broker instead of the scenario's: `embedded`, `reference`
    /// (peer@1.0.2 from tools/js) or HOST:PORT (a PeerServer at path / with key peerjs).
    /// Several, comma-separated (`embedded,reference`): one run each, side by side in one report.
    #[arg(long, value_name = "BROKER")]
    broker: Option<String>,
    #[arg(skip)]
    pub(crate) brokers: Option<Vec<peerstorm_runner::scenario::BrokerSpec>>,
    /// Live, full stack: use this TURN server instead of the scenario's: `embedded`, `coturn`,
    /// `none`, or `turn:HOST:PORT` (with the scenario's turn_user).
    #[arg(long, value_name = "TURN")]
    turn: Option<String>,
    /// Live: the PID of a broker running on this machine (embedded and reference brokers are
    /// known): its CPU and RSS are sampled and its exit ends the run.
    #[arg(long, value_name = "PID")]
    pub(crate) broker_pid: Option<u32>,
}

/// `YYYYMMDDTHHMMSSZ` for a directory name.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Progress on stderr: a bar on a terminal, otherwise (or with CI=true) a plain line every
/// five seconds once a run has taken three.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    wall: Instant,
    last: Instant,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var("CI").map_or(true, |v| v != "true");
        let bar = (!quiet && tty).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} peers done  {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b
        });
        Self { bar, wall: Instant::now(), last: Instant::now() }
    }

    fn update(&mut self, p: &peerstorm_runner::sim::Progress, quiet: bool) {
        let msg = format!(
            "started {}, failed {}, virtual {:.0} s, wall {:.0} s",
            p.peers_started,
            p.peers_failed,
            p.virtual_time.as_secs_f64(),
            self.wall.elapsed().as_secs_f64()
        );
        let prefix = format!("{:?} ICE", p.ice).to_lowercase();
        self.show(&prefix, p.peers_done as u64, p.peers as u64, &msg, quiet);
    }

    /// One progress report: `pos` of `len` done, and a message.
    pub(crate) fn show(&mut self, prefix: &str, pos: u64, len: u64, msg: &str, quiet: bool) {
        if let Some(b) = &self.bar {
            b.set_length(len);
            b.set_position(pos);
            b.set_prefix(prefix.to_string());
            b.set_message(msg.to_string());
        } else if !quiet && self.wall.elapsed().as_secs() >= 3 && self.last.elapsed().as_secs() >= 5 {
            self.last = Instant::now();
            eprintln!("  {prefix}: {pos} of {len} done; {msg}");
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
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
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let s = Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((s, text))
}

pub fn run(a: &RunArgs) -> Result<u8> {
    let (mut s, text) = match load_scenario(&a.scenario) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    if let Some(seed) = a.seed {
        s.seed = seed;
    }
    let shard = match shard_of(a) {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("peerstorm: {e}");
            return Ok(EXIT_HARNESS);
        }
    };
    let mut a_brokers = None;
    if let Some(b) = &a.broker {
        use peerstorm_runner::scenario::{BrokerSpec, PeerServer};
        let mut specs = Vec::new();
        for one in b.split(',').map(str::trim) {
            specs.push(match one {
                "embedded" | "reference" => BrokerSpec::Named(one.to_string()),
                hp => match hp.rsplit_once(':').and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p))) {
                    Some((host, port)) => BrokerSpec::Url(PeerServer {
                        host: host.to_string(),
                        port,
                        path: "/".into(),
                        key: "peerjs".into(),
                        secure: false,
                    }),
                    None => {
                        eprintln!("peerstorm: --broker {hp:?}: expected embedded, reference or HOST:PORT");
                        return Ok(EXIT_HARNESS);
                    }
                },
            });
        }
        s.servers.broker = specs[0].clone();
        a_brokers = Some(specs);
    }
    if let Some(t) = &a.turn {
        s.servers.turn = t.clone();
    }
    let thresholds = s.thresholds().map_err(|e| anyhow::anyhow!("{e}"))?;
    if s.mode == "live" {
        let a = RunArgs { brokers: a_brokers, ..a.clone() };
        return crate::live::run(&a, &s, &text, shard, &thresholds);
    }
    eprintln!(
        "running {} (seed {}, {} peers, {} pattern, ICE {:?}{}) on the simulator",
        s.name,
        s.seed,
        s.peers.count,
        s.peers.pattern,
        s.peers.ice,
        if shard == Shard::WHOLE { String::new() } else { format!(", shard {}", shard.label()) }
    );
    let mut progress = Progress::new(a.quiet);
    let wall = Instant::now();
    let result = peerstorm_runner::run_with_progress(&s, shard, &mut |p| progress.update(&p, a.quiet));
    progress.finish();
    let (metrics, runs) = result.with_context(|| format!("simulating {}", s.name))?;
    let secs = wall.elapsed().as_secs_f64();
    let dir = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("reports/{}-{}", s.name, utc_stamp())));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("scenario.toml"), &text).with_context(|| format!("writing into {}", dir.display()))?;
    for r in &runs {
        let mode = peerstorm_runner::metrics::ice_name(r.ice);
        let mut lines = String::new();
        for p in r.peers.iter().filter(|p| p.in_shard) {
            lines.push_str(&serde_json::to_string(p)?);
            lines.push('\n');
        }
        let name = if s.network.rtt_sweep_ms.is_empty() {
            format!("peers-{mode}.jsonl")
        } else {
            format!("peers-{mode}-{}ms.jsonl", r.rtt_ms)
        };
        std::fs::write(dir.join(&name), lines).with_context(|| format!("writing {name}"))?;
    }
    let (summary, outcomes) = peerstorm_report::write_dir(&dir, &metrics, &thresholds)
        .with_context(|| format!("writing {}", dir.display()))?;
    print!("{}", peerstorm_report::render::table(&summary));
    Ok(finish(&dir, &outcomes, Some(secs)))
}

/// Prints the verdicts and where the results are; the exit status from the thresholds.
pub fn finish(dir: &Path, outcomes: &[peerstorm_report::Outcome], wall: Option<f64>) -> u8 {
    if !outcomes.is_empty() {
        println!("thresholds:");
        print!("{}", peerstorm_report::render::verdicts(outcomes));
    }
    if let Some(secs) = wall {
        println!("wall time {secs:.2} s");
    }
    println!("results in {}: summary.json, report.md, report.html, junit.xml, metrics.json, hgrm/", dir.display());
    let failed = outcomes.iter().filter(|t| !t.passed).count();
    if failed > 0 {
        println!("{failed} of {} thresholds failed (exit 1)", outcomes.len());
        1
    } else {
        if outcomes.is_empty() {
            println!("no thresholds in the scenario: the exit status says only that the run completed");
        }
        EXIT_OK
    }
}
