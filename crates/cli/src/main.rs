//! `peerstorm`: a protocol test harness and load simulator for WebRTC signaling and NAT traversal.

mod bench;
mod bench_lab;
mod bench_turn;
mod calibrate;
mod children;
mod conform;
mod inspect;
mod interrupt;
mod lab;
mod lab_run;
mod live;
mod nat;
mod peer_cmd;
mod progress;
mod report;
mod results;
mod run;
mod scenarios;
mod serve;

use clap::{Parser, Subcommand};

/// mimalloc, except for `peerstorm serve` (see `peerstorm_alloc`).
#[global_allocator]
static GLOBAL: peerstorm_alloc::Chosen = peerstorm_alloc::Chosen;
use std::process::ExitCode;

/// Exit status: the input (or, later, the system under test) was fine.
pub const EXIT_OK: u8 = 0;
/// Exit status: the input was invalid (or, later, a threshold failed).
pub const EXIT_INVALID: u8 = 1;
/// Exit status: the command could not do its job (usage error, unreadable file, internal error).
pub const EXIT_HARNESS: u8 = 2;

/// `peerstorm -V`: the version and the commit it was built from.
const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PEERSTORM_COMMIT"), " ", env!("PEERSTORM_COMMIT_DATE"), ")");

/// `peerstorm --version`: also the WebRTC stack and the browser profiles this build has.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PEERSTORM_COMMIT"),
    " ",
    env!("PEERSTORM_COMMIT_DATE"),
    ")\nWebRTC stack: rtc ",
    env!("PEERSTORM_RTC_VERSION"),
    " with peerstorm's patches (patches/)\nstack profiles: chrome (default), firefox, rtc"
);

#[derive(Debug, Parser)]
#[command(
    name = "peerstorm",
    version = VERSION,
    long_version = LONG_VERSION,
    about = "Protocol test harness and load simulator for WebRTC signaling (PeerJS) and NAT traversal (STUN/TURN)",
    long_about = "peerstorm speaks real protocol bytes: SDP, ICE candidates, PeerJS frames over WebSocket, \
STUN/TURN. `run` simulates thousands of real-stack peers behind NATs (or drives real servers, or \
real programs in the lab); `conform` checks brokers and TURN servers; `inspect` explains what a \
browser or a broker sent; `serve` runs peerstorm's broker or STUN/TURN server.\n\n\
Exit status: 0 success (thresholds held, input valid), 1 a threshold or a MUST case failed or the \
input was invalid, 2 the command could not do its job (usage, I/O, a scenario it cannot run); \
each command's --help says what its codes mean.",
    after_help = "Examples:\n  \
peerstorm run scenarios/quickstart.toml                 # 300 real-stack peers behind mixed NATs\n  \
peerstorm inspect sdp offer.sdp\n  \
pbpaste | peerstorm inspect sdp - --type offer --json\n  \
peerstorm inspect sdp offer.sdp --emit > same.sdp      # byte-identical re-emit\n  \
peerstorm inspect candidate 'candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host'\n  \
peerstorm inspect peerjs frames.jsonl                   # one frame per line\n  \
peerstorm serve broker --host 127.0.0.1 --port 9000     # a PeerServer, like `peerjs --port 9000`\n  \
peerstorm nat probe --preset symmetric                  # RFC 5780 discovery through a simulated NAT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario: real-stack virtual peers behind simulated NATs with the embedded broker and
    /// STUN/TURN server on a virtual clock (the simulator), on real sockets (mode = "live") or
    /// real programs in the lab (mode = "lab"); prints per-stage percentiles and a table per
    /// NAT-pair class, writes the results directory, exits by the thresholds.
    #[command(after_help = "Examples:\n  \
peerstorm run scenarios/quickstart.toml          # 300 peers, mixed NATs, under a second\n  \
peerstorm run scenarios/nat-matrix.toml          # every NAT preset against every preset\n  \
peerstorm run scenarios/trickle-ab.toml          # trickle vs vanilla at 20/100/300 ms RTT\n  \
peerstorm run scenarios/storm-10k.toml --seed 7  # 10,000 peers, another seed\n  \
peerstorm run scenarios/storm-10k.toml --shard 1/2 --out a   # half the groups; merge a and b later\n  \
peerstorm run scenarios/quickstart.toml --dry-run --set peers.count=100000   # the plan and its memory\n  \
PEERSTORM_SET='network.rtt_ms=120;peers.ice=[\"vanilla\"]' peerstorm run scenarios/quickstart.toml\n\n\
Everything is checked before the run (exit 2): the scenario and every --set, threshold scopes,\n\
the memory the simulator would need against what is available, and --out (writable; a directory\n\
that holds files only with --force). `peerstorm scenarios` lists the shipped scenarios.\n\n\
Writes into --out (default reports/<scenario>-<UTC time>/): summary.json, report.md, report.html,\n\
junit.xml (one testcase per threshold), metrics.json (HDR histograms, mergeable), hgrm/*.hgrm,\n\
peers-<ice>.jsonl, scenario.toml. The same scenario and seed give a byte-identical summary.json.\n\n\
Exit status: 0 every threshold held (or there were none), 1 a threshold failed,\n\
2 the harness could not do its job (bad scenario, unknown metric path, internal error).")]
    Run(run::RunArgs),
    /// The scenarios shipped in scenarios/: each one's mode, size and purpose.
    Scenarios(scenarios::ScenariosArgs),
    /// One full-stack virtual peer (the rtc stack, PeerJS DataConnections) on real sockets:
    /// answers and echoes every connection offered to it, or with --connect runs the workload.
    #[command(after_help = "Examples:\n  \
peerstorm peer --broker 127.0.0.1:9000 --id echo --for 60          # a PeerJS app can connect to \"echo\"\n  \
peerstorm peer --broker 127.0.0.1:9000 --id a --connect echo --serialization json\n  \
peerstorm peer --broker 127.0.0.1:9000 --id a --connect echo --turn 127.0.0.1:3478 --turn-user u:p --relay-only\n\n\
Prints one JSON line per connection (milestones, failure, selected pair, bytes). Exit 0 when the\n\
workload finished (with --connect), 1 when it did not, 2 on usage errors.")]
    Peer(peer_cmd::PeerArgs),
    /// Virtual peers against real Chromium behind the same simulated network, stage by stage:
    /// host, srflx and relay paths at several RTTs, Chromium pairs and virtual pairs in the lab
    /// and in the simulator, optionally mixed pairs and the NAT matrix; writes docs/calibration.md.
    /// Needs root (the lab).
    #[command(after_help = "Examples:\n  \
sudo peerstorm calibrate                                  # every cell, 9 pairs each: docs/calibration.md\n  \
sudo peerstorm calibrate --cells host:60 --pairs 2 --out /tmp/c.md\n  \
sudo peerstorm calibrate --mixed --matrix --profile rtc   # the stack's own timers, for comparison
  \
sudo peerstorm calibrate --ice trickle                    # trickle cells only (no vanilla, no savings table)
  \
sudo peerstorm calibrate --cpu-scale 1                    # the profile's own CPU times, not fitted to this machine

\
Each cell runs with trickle and vanilla ICE by default, and the markdown shows what trickle saves.
\
Exit 0 when the markdown is written, 2 when a run could not be made, 130 on Ctrl-C or SIGTERM (the
\
lab is removed).")]
    Calibrate(calibrate::CalibrateArgs),
    /// Conformance suites: numbered cases for PeerJS brokers and STUN/TURN servers, an
    /// end-to-end check, and the implementation × case matrix.
    #[command(subcommand)]
    Conform(conform::Conform),
    /// Re-render a results directory (summary, Markdown, HTML, JUnit, .hgrm) from its
    /// metrics.json and re-check the thresholds of its scenario.toml; exit status as `run`.
    Report(report::ReportArgs),
    /// Merge results directories of shards (`run --shard i/n`) exactly: histogram counts,
    /// counters and series add; then render and check thresholds as `run` does.
    #[command(after_help = "Example:\n  \
peerstorm run s.toml --shard 1/2 --out a && peerstorm run s.toml --shard 2/2 --out b\n  \
peerstorm merge a b --out ab")]
    Merge(report::MergeArgs),
    /// Compare two results (directories or summary.json files): a regression table; exit 1
    /// when a figure got worse than the tolerance allows, 2 when they cannot be read.
    #[command(after_help = "Example:\n  \
peerstorm compare reports/baselines/quickstart reports/quickstart-20261121T101500Z --tolerance 5%")]
    Compare(report::CompareArgs),
    /// Parse and explain protocol messages: SDP, ICE candidates, PeerJS frames.
    #[command(subcommand)]
    Inspect(inspect::Inspect),
    /// Run a server: peerstorm's PeerJS broker (`serve broker`) or its STUN/TURN server
    /// (`serve turn`).
    #[command(subcommand)]
    Serve(serve::Serve),
    /// Benchmarks on real sockets: peerstorm's broker beside peer@1.0.2, its TURN server beside
    /// coturn, and the lab's forwarder.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Simulated NATs: check a NAT type with RFC 5780 discovery.
    #[command(subcommand)]
    Nat(nat::Nat),
    /// The lab: real programs (Chromium, `peerstorm peer`, any command, coturn, peer@1.0.2) in
    /// network namespaces behind the simulated network's NATs, on the wall clock: run a lab
    /// scenario, measure a lab from inside (echo, ping), clean up after a killed run.
    Lab(lab::LabCmd),
    /// Print a shell completion script: `peerstorm completions bash > /etc/bash_completion.d/peerstorm`.
    #[command(after_help = "Examples:\n  \
peerstorm completions bash > ~/.local/share/bash-completion/completions/peerstorm\n  \
peerstorm completions zsh > \"${fpath[1]}/_peerstorm\"\n  \
peerstorm completions fish > ~/.config/fish/completions/peerstorm.fish")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (peerstorm.1 and one per command, e.g. peerstorm-run.1) into a
    /// directory, or print peerstorm.1 when no directory is given.
    #[command(after_help = "Examples:\n  \
peerstorm man --out /usr/local/share/man/man1 && man peerstorm-run\n  \
peerstorm man | man -l -")]
    Man {
        /// The directory for every page (made if missing).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

/// `peerstorm completions SHELL`.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "peerstorm", &mut std::io::stdout());
    Ok(EXIT_OK)
}

/// `peerstorm man [--out DIR]`.
fn man(out: Option<&std::path::Path>) -> anyhow::Result<u8> {
    use anyhow::Context;
    let cmd = <Cli as clap::CommandFactory>::command();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing into {}", dir.display()))?;
            println!("manual pages written to {}: man -M {} peerstorm-run", dir.display(), dir.display());
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(EXIT_OK)
}

/// Exit status when stdout's reader went away (`peerstorm … | head`): what a shell reports for
/// a process killed by SIGPIPE (128 + 13).
const EXIT_BROKEN_PIPE: i32 = 141;

/// Rust ignores SIGPIPE, so `println!` into a closed pipe panics ("failed printing to stdout:
/// Broken pipe"). That is the reader's choice, not a bug: end quietly with the SIGPIPE status,
/// as `cat` does; every other panic goes to the default hook.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_HARNESS } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Run(r) => run::run(&r),
        Command::Scenarios(s) => scenarios::run(&s),
        Command::Report(r) => report::report(&r),
        Command::Peer(p) => peer_cmd::run(&p),
        Command::Conform(c) => conform::run(c),
        Command::Merge(m) => report::merge(&m),
        Command::Compare(c) => report::compare(&c),
        Command::Inspect(i) => inspect::run(i),
        Command::Serve(s) => serve::run(s),
        Command::Bench(b) => bench::run(b),
        Command::Nat(n) => nat::run(n),
        Command::Lab(l) => lab::run(l),
        Command::Calibrate(c) => calibrate::run(&c),
        Command::Completions { shell } => completions(shell),
        Command::Man { out } => man(out.as_deref()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("peerstorm: error: {e:#}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}
