//! `peerstorm calibrate`: the virtual peers against real Chromium, stage by stage, behind the
//! same simulated network. Each cell (a path — host, srflx or relay — at an RTT) runs Chromium
//! pairs in the lab, virtual pairs in the lab (`peerstorm peer`, real sockets) and virtual pairs
//! in the simulator, with the same topology, broker and TURN core; optionally mixed pairs both
//! ways, and the NAT matrix's selected path types. The markdown (default
//! `docs/calibration.md`) shows every stage's p50 with the ratio to Chromium's.

use crate::lab_run::{self, Stopped};
use anyhow::{Context, Result};
use clap::Args;
use peerstorm_peer::{CpuScale, IceMode, Milestone, Profile};
use peerstorm_report::summary::{ModeSummary, summarize};
use peerstorm_scenario::RunOutcome;
use peerstorm_scenario::{Scenario, Shard, collect_all};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Cells PATH:RTT_MS (path: host, srflx or relay), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = DEFAULT_CELLS,
        value_parser = parse_cell
    )]
    cells: Vec<Cell>,
    /// Pairs per cell and kind (Chromium, virtual in the lab, virtual simulated). Nine by
    /// default: at 0 ms RTT a median of five is decided by which side of a 62.5 ms check tick a
    /// few milliseconds of Chromium's own CPU time land, so two slow pairs flip a cell. A full
    /// run with `--mixed --matrix` takes about 70 minutes on two cores.
    #[arg(long, default_value_t = PAIRS)]
    pairs: usize,
    /// The virtual peers' profile.
    #[arg(long, default_value = "chrome", value_parser = |s: &str| Profile::parse(s).ok_or(format!("{s:?}: expected chrome, firefox or rtc")))]
    profile: Profile,
    /// How much slower than the profile's reference machine the virtual peers' browser work
    /// runs (`[peers] cpu_scale`). `auto` (default) fits it to this machine's Chromium: every
    /// Chromium pair runs first, and the scale is the median of the trickle cells' p50 from
    /// OPEN to the OFFER leaving, over the profile's `describe_offer` (a stage no goal judges).
    /// A number fixes it: `--cpu-scale 1` runs the profile's own times.
    #[arg(long, default_value = "auto", value_name = "auto|X", value_parser = parse_scale)]
    cpu_scale: ScaleArg,
    /// Also run mixed pairs in each cell: Chromium offering to a virtual peer, and the reverse
    /// (trickle ICE).
    #[arg(long)]
    mixed: bool,
    /// ICE modes, comma-separated: each cell runs once per mode, and with both the markdown has
    /// what trickle saves over vanilla (Chromium pages send a vanilla offer or answer by holding
    /// PeerJS's until gathering is complete).
    #[arg(long, value_delimiter = ',', default_value = "trickle,vanilla", value_parser = parse_ice)]
    ice: Vec<IceMode>,
    /// Also run the NAT matrix (open, full-cone, port-restricted, symmetric: 16 pairs) with
    /// Chromium in the lab and virtual peers in the simulator, and compare the selected paths.
    #[arg(long)]
    matrix: bool,
    /// Where the markdown goes.
    #[arg(long, default_value = "docs/calibration.md")]
    out: PathBuf,
    /// Where each run's results go (default reports/calibrate-<UTC time>/).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Run nothing: write the markdown again from the results of an earlier calibration (each
    /// run's `figures.json` in this directory), e.g. after changing how it is presented. The
    /// other options must be the ones it ran with.
    #[arg(long, value_name = "RESULTS_DIR", conflicts_with = "results")]
    from: Option<PathBuf>,
}

/// The default of `--cells`: every path at every RTT.
const DEFAULT_CELLS: &str = "host:0,host:60,host:200,srflx:0,srflx:60,srflx:200,relay:0,relay:60,relay:200";

fn default_cells() -> Vec<Cell> {
    DEFAULT_CELLS.split(',').map(|c| parse_cell(c).expect("the default cells parse")).collect()
}

/// The default of `--pairs`.
const PAIRS: usize = 9;

/// A calibration cell: a path at an RTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    path: Path,
    rtt_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Both peers on public addresses: host candidates meet.
    Host,
    /// Both behind full-cone NATs: server-reflexive candidates meet.
    Srflx,
    /// Relayed candidates only (`iceTransportPolicy: "relay"`), public addresses.
    Relay,
}

impl Path {
    fn as_str(self) -> &'static str {
        match self {
            Path::Host => "host",
            Path::Srflx => "srflx",
            Path::Relay => "relay",
        }
    }
}

/// `--cpu-scale`: fitted to the machine's Chromium, or given.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ScaleArg {
    Auto,
    Fixed(CpuScale),
}

fn parse_scale(s: &str) -> Result<ScaleArg, String> {
    if s == "auto" { Ok(ScaleArg::Auto) } else { s.parse().map(ScaleArg::Fixed) }
}

/// The CPU scale the virtual peers run with, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    scale: CpuScale,
    /// Fitted: the median of the Chromium trickle cells' OPEN → OFFER p50s, ms, and how many
    /// cells it is the median of.
    fitted_from: Option<(f64, usize)>,
}

/// Fits the CPU scale to Chromium's OPEN → OFFER p50s in trickle cells (a vanilla offer waits
/// for gathering): their median over the profile's `describe_offer`, to 0.01. `None` when no
/// trickle cell has the figure (results of a version that did not keep it); the scale of a
/// profile that charges nothing to describe an offer is 1.
fn fit_scale(rows: &[Row], profile: Profile) -> Option<Scale> {
    let mut offers: Vec<f64> = rows
        .iter()
        .filter(|r| r.ice == IceMode::Trickle)
        .filter_map(|r| r.get(Kind::Chromium).and_then(|f| p50(f, Milestone::OfferSent)))
        .collect();
    if offers.is_empty() {
        return None;
    }
    offers.sort_by(f64::total_cmp);
    let n = offers.len();
    let median = if n % 2 == 1 { offers[n / 2] } else { (offers[n / 2 - 1] + offers[n / 2]) / 2.0 };
    let charged = profile.timers().describe_offer.as_secs_f64() * 1000.0;
    let x = if charged > 0.0 { (median / charged * 100.0).round() / 100.0 } else { 1.0 };
    let scale = CpuScale::new(x.clamp(CpuScale::MIN, CpuScale::MAX)).ok()?;
    Some(Scale { scale, fitted_from: Some((median, n)) })
}

fn parse_ice(s: &str) -> Result<IceMode, String> {
    match s {
        "trickle" => Ok(IceMode::Trickle),
        "vanilla" => Ok(IceMode::Vanilla),
        _ => Err(format!("{s:?}: expected trickle or vanilla")),
    }
}

fn parse_cell(s: &str) -> Result<Cell, String> {
    let (p, r) = s.split_once(':').ok_or(format!("{s:?}: expected PATH:RTT_MS, e.g. host:60"))?;
    let path = match p {
        "host" => Path::Host,
        "srflx" => Path::Srflx,
        "relay" => Path::Relay,
        _ => return Err(format!("{s:?}: the path is host, srflx or relay")),
    };
    let rtt_ms: u64 = r.parse().map_err(|_| format!("{s:?}: the RTT is whole milliseconds"))?;
    if rtt_ms > 2000 {
        return Err(format!("{s:?}: at most 2000 ms"));
    }
    Ok(Cell { path, rtt_ms })
}

/// Who runs a pair's two sides, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chromium,
    VirtualLab,
    Simulated,
    ChromiumToVirtual,
    VirtualToChromium,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Chromium => "Chromium ↔ Chromium (lab)",
            Kind::VirtualLab => "virtual ↔ virtual (lab)",
            Kind::Simulated => "virtual ↔ virtual (simulator)",
            Kind::ChromiumToVirtual => "Chromium → virtual (lab)",
            Kind::VirtualToChromium => "virtual → Chromium (lab)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::Chromium => "chromium",
            Kind::VirtualLab => "virtual-lab",
            Kind::Simulated => "sim",
            Kind::ChromiumToVirtual => "chromium-to-virtual",
            Kind::VirtualToChromium => "virtual-to-chromium",
        }
    }

    /// (offerer, answerer) in a lab, `None` in the simulator.
    fn hosts(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Chromium => Some(("chromium", "chromium")),
            Kind::VirtualLab => Some(("virtual", "virtual")),
            Kind::Simulated => None,
            Kind::ChromiumToVirtual => Some(("chromium", "virtual")),
            Kind::VirtualToChromium => Some(("virtual", "chromium")),
        }
    }
}

/// The stages compared, in order: times from the offerer's PeerJS OPEN (when a page calls
/// `peer.connect()`, and when a virtual peer opens its connection), so that how long each side
/// took to reach the broker does not count.
const STAGES: [Milestone; 5] = [
    Milestone::AnswerReceived,
    Milestone::IceConnected,
    Milestone::DtlsConnected,
    Milestone::DataChannelOpen,
    Milestone::WorkloadDone,
];

/// One cell in one ICE mode: each kind's figures.
struct Row {
    cell: Cell,
    ice: IceMode,
    kinds: Vec<(Kind, Figures)>,
}

impl Row {
    fn get(&self, kind: Kind) -> Option<&Figures> {
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, f)| f)
    }
}

/// Runs one cell in one ICE mode with each kind.
fn run_cell(
    a: &CalibrateArgs,
    cell: Cell,
    ice: IceMode,
    kinds: &[Kind],
    scale: CpuScale,
    results: &std::path::Path,
    t0: std::time::Instant,
) -> Result<Vec<(Kind, Figures)>> {
    let mut row = Vec::new();
    for &kind in kinds {
        let mode = if ice == IceMode::Vanilla { "-vanilla" } else { "" };
        let name = format!("calibrate-{}-{}ms{mode}-{}", cell.path.as_str(), cell.rtt_ms, kind.short());
        let nat = if cell.path == Path::Srflx { "{ full-cone = 1 }" } else { "{ open = 1 }" };
        let text = scenario(&name, nat, cell, a.pairs, (a.profile, scale), kind, ice);
        eprintln!(
            "calibrate: [{:>5.0} s] {} at {} ms, {}: {}",
            t0.elapsed().as_secs_f64(),
            cell.path.as_str(),
            cell.rtt_ms,
            peerstorm_scenario::ice_name(ice),
            kind.label()
        );
        let m = match &a.from {
            Some(_) => load(&results.join(&name))?,
            None => run_one(&text, &results.join(&name))?,
        };
        if m.summary.all.pairs != a.pairs as u64 {
            anyhow::bail!(
                "{}: {} pairs where --pairs says {}: pass the --pairs it ran with",
                results.join(&name).display(),
                m.summary.all.pairs,
                a.pairs
            );
        }
        eprintln!(
            "           open p50 {} ms after connect(), {} of {} pairs ok, selected {}",
            ms(p50(&m, Milestone::DataChannelOpen)),
            m.summary.all.pairs_ok,
            m.summary.all.pairs,
            selected(&m.summary)
        );
        row.push((kind, m));
    }
    Ok(row)
}

/// One kind's figures in a cell (each run's `figures.json`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Figures {
    summary: ModeSummary,
    /// p50 of each stage (and of the OFFER leaving), ms after the offerer's OPEN.
    p50: BTreeMap<Milestone, f64>,
    /// Per NAT-pair class (`a ↔ b`, as the summary's classes), the median time from the answer
    /// reaching the offerer to its ICE connected, ms (absent in runs made before it was kept).
    #[serde(default)]
    ice_after_answer: BTreeMap<String, f64>,
}

/// Each stage's p50 over the offerers' connections, from their OPEN.
fn from_open(runs: &[RunOutcome]) -> BTreeMap<Milestone, f64> {
    // OfferSent too: the CPU scale is fitted to it (no goal judges it).
    let mut all: BTreeMap<Milestone, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for l in &r.links {
            let Some(c) = r.peers.get(l.offerer.0).and_then(|p| p.connections.get(l.offerer.1)) else { continue };
            let Some(open) = c.milestones.get(Milestone::Open) else { continue };
            for stage in std::iter::once(Milestone::OfferSent).chain(STAGES) {
                if let Some(t) = c.milestones.get(stage) {
                    all.entry(stage).or_default().push(t.saturating_sub(open).as_secs_f64() * 1000.0);
                }
            }
        }
    }
    medians(all)
}

/// Each key's median: the lower one for an even count, as the report's HDR p50 does.
fn medians<K: Ord>(all: BTreeMap<K, Vec<f64>>) -> BTreeMap<K, f64> {
    all.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            (k, v[(v.len() - 1) / 2])
        })
        .collect()
}

/// Per NAT-pair class, the median of the offerers' ICE connected after their answer arrived.
fn ice_after_answer(runs: &[RunOutcome]) -> BTreeMap<String, f64> {
    let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for l in &r.links {
            let (Some(o), Some(a)) = (r.peers.get(l.offerer.0), r.peers.get(l.answerer.0)) else { continue };
            let Some(c) = o.connections.get(l.offerer.1) else { continue };
            let (Some(answer), Some(ice)) =
                (c.milestones.get(Milestone::AnswerReceived), c.milestones.get(Milestone::IceConnected))
            else {
                continue;
            };
            let class =
                if o.nat <= a.nat { format!("{} ↔ {}", o.nat, a.nat) } else { format!("{} ↔ {}", a.nat, o.nat) };
            all.entry(class).or_default().push(ice.saturating_sub(answer).as_secs_f64() * 1000.0);
        }
    }
    medians(all)
}

/// A scenario for one cell (its RTT; relayed candidates only for the relay path) and kind.
fn scenario(
    name: &str,
    nat_mix: &str,
    cell: Cell,
    pairs: usize,
    (profile, cpu_scale): (Profile, CpuScale),
    kind: Kind,
    ice: IceMode,
) -> String {
    let mut t = format!(
        "name = \"{name}\"\nseed = 1\nmode = \"{mode}\"\n\
         [network]\nrtt_ms = {rtt_ms}\nnat_mix = {nat_mix}\n{pairing}\
         [servers]\nbroker_rtt_ms = {rtt_ms}\nturn = \"embedded\"\nturn_user = \"calib:calib\"\nrelay_only = {relay_only}\n\
         [peers]\ncount = {count}\nprofile = \"{profile}\"\ncpu_scale = {cpu_scale}\nice = [\"{ice}\"]\n\
         [workload.datachannel]\nmessages = 3\n\
         [timeouts]\nsetup_s = 30\n",
        mode = if kind == Kind::Simulated { "sim" } else { "lab" },
        pairing = if nat_mix.contains(',') { "pairing = \"matrix\"\n" } else { "" },
        count = 2 * pairs,
        rtt_ms = cell.rtt_ms,
        relay_only = cell.path == Path::Relay,
        ice = peerstorm_scenario::ice_name(ice),
    );
    if let Some((o, a)) = kind.hosts() {
        let _ = write!(t, "[lab]\nofferer = \"{o}\"\nanswerer = \"{a}\"\nconcurrency = 1\npcap = false\n");
    }
    t
}

/// Runs one scenario (lab or simulator) and summarizes it.
fn run_one(text: &str, dir: &std::path::Path) -> Result<Figures> {
    let s = Scenario::parse(text).map_err(|e| anyhow::anyhow!("calibration scenario: {e}\n{text}"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("scenario.toml"), text)?;
    let runs = if s.mode == peerstorm_scenario::Mode::Lab {
        match lab_run::execute(&s, dir, true) {
            // A calibration cut short is no calibration: nothing is written.
            Ok(r) => match r.interrupted {
                Some(sig) => return Err(Interrupted(sig).into()),
                None => vec![r.outcome],
            },
            Err(Stopped::Harness(why)) => anyhow::bail!("{why}"),
        }
    } else {
        peerstorm_runner::run_with_progress(&s, Shard::WHOLE, &mut |_| {}).context("simulating")?.1
    };
    let files = crate::results::peer_files(&runs, false)?;
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents)?;
    }
    let metrics = collect_all(&s.name, s.seed, Shard::WHOLE, &runs);
    let summary = summarize(&metrics).modes.into_iter().next().context("no run in the summary")?;
    let figures = Figures { summary, p50: from_open(&runs), ice_after_answer: ice_after_answer(&runs) };
    std::fs::write(dir.join(FIGURES), serde_json::to_string_pretty(&figures)?)?;
    // The page is written from the figures as `--from` reads them: serde_json parses some
    // floats a ULP off (no float_roundtrip), which can move a rounded half-millisecond.
    load(dir)
}

/// Each run's figures in its directory, what `--from` reads.
const FIGURES: &str = "figures.json";

/// A run's figures from an earlier calibration (`--from`).
fn load(dir: &std::path::Path) -> Result<Figures> {
    let path = dir.join(FIGURES);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("reading {} (was it made by this version of `peerstorm calibrate`, with the same --cells, --ice, --mixed and --matrix?)", path.display())
    })?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a calibration run's figures", path.display()))
}

fn p50(f: &Figures, stage: Milestone) -> Option<f64> {
    f.p50.get(&stage).copied()
}

/// Whole milliseconds; never "-0" for a value that rounds to zero.
fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.0}", v.round() + 0.0))
}

fn ratio(v: Option<f64>, reference: Option<f64>) -> String {
    match (v, reference) {
        (Some(v), Some(r)) if r > 0.0 => format!("{:.2}×", (v / r * 100.0).round() / 100.0 + 0.0),
        _ => "–".into(),
    }
}

fn selected(m: &ModeSummary) -> String {
    let total: u64 = m.all.selected.values().sum();
    if total == 0 {
        return "–".into();
    }
    m.all.selected.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// SIGINT or SIGTERM during a lab run: the lab is gone, nothing is written, exit 130 as `lab`.
#[derive(Debug)]
struct Interrupted(&'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

pub fn run(a: &CalibrateArgs) -> Result<u8> {
    match calibrate(a) {
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(Interrupted(sig)) => {
                eprintln!(
                    "peerstorm: {e}: the lab is removed (namespaces, TUN devices, programs); no markdown written"
                );
                Ok(lab_run::signal_status(sig))
            }
            None => Err(e),
        },
        r => r,
    }
}

fn calibrate(a: &CalibrateArgs) -> Result<u8> {
    if !(1..=50).contains(&a.pairs) {
        eprintln!("peerstorm: --pairs 1..=50");
        return Ok(crate::EXIT_HARNESS);
    }
    let results = a
        .from
        .clone()
        .or_else(|| a.results.clone())
        .unwrap_or_else(|| PathBuf::from(format!("reports/calibrate-{}", crate::results::utc_stamp())));
    let t0 = std::time::Instant::now();
    // Chromium's pairs first, every cell: the CPU scale is fitted to them.
    let mut cells: Vec<Row> = Vec::new();
    for cell in &a.cells {
        for &ice in &a.ice {
            let kinds = run_cell(a, *cell, ice, &[Kind::Chromium], CpuScale::ONE, &results, t0)?;
            cells.push(Row { cell: *cell, ice, kinds });
        }
    }
    let scale = match a.cpu_scale {
        ScaleArg::Fixed(scale) => Scale { scale, fitted_from: None },
        ScaleArg::Auto => fit_scale(&cells, a.profile).with_context(|| {
            format!(
                "no Chromium trickle cell with the time its OFFER left in {} (made by an older version?): pass --cpu-scale",
                results.display()
            )
        })?,
    };
    match scale.fitted_from {
        Some((offer, n)) => eprintln!(
            "calibrate: CPU scale {}: this machine's Chromium sent its offer {offer:.1} ms after OPEN (median of {n} trickle cells' p50s), the `{}` profile charges {:.1} ms",
            scale.scale,
            a.profile,
            a.profile.timers().describe_offer.as_secs_f64() * 1000.0
        ),
        None => eprintln!("calibrate: CPU scale {} (--cpu-scale)", scale.scale),
    }
    for r in &mut cells {
        let mut kinds = vec![Kind::VirtualLab, Kind::Simulated];
        if a.mixed && r.ice == IceMode::Trickle {
            kinds.extend([Kind::ChromiumToVirtual, Kind::VirtualToChromium]);
        }
        r.kinds.extend(run_cell(a, r.cell, r.ice, &kinds, scale.scale, &results, t0)?);
    }
    let matrix = if a.matrix {
        let nat = "{ open = 1, full-cone = 1, port-restricted = 1, symmetric = 1 }";
        let mut out = Vec::new();
        for kind in [Kind::Chromium, Kind::Simulated] {
            let name = format!("calibrate-matrix-{}", kind.short());
            eprintln!("calibrate: [{:>5.0} s] NAT matrix: {}", t0.elapsed().as_secs_f64(), kind.label());
            let mut text = scenario(
                &name,
                nat,
                Cell { path: Path::Host, rtt_ms: 60 },
                16,
                (a.profile, scale.scale),
                kind,
                IceMode::Trickle,
            );
            text = text.replace("concurrency = 1", "concurrency = 2");
            let dir = results.join(&name);
            out.push((kind, if a.from.is_some() { load(&dir)? } else { run_one(&text, &dir)? }));
        }
        Some(out)
    } else {
        None
    };
    let md = markdown(a, scale, &cells, matrix.as_deref(), &results);
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, &md).with_context(|| format!("writing {}", a.out.display()))?;
    print!("{md}");
    println!("written to {} (runs in {})", a.out.display(), results.display());
    Ok(crate::EXIT_OK)
}

fn markdown(
    a: &CalibrateArgs,
    scale: Scale,
    cells: &[Row],
    matrix: Option<&[(Kind, Figures)]>,
    results: &std::path::Path,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Calibration: virtual peers against Chromium\n");
    let ice: Vec<&str> = a.ice.iter().map(|i| peerstorm_scenario::ice_name(*i)).collect();
    let _ = writeln!(
        md,
        "Made by `sudo peerstorm calibrate{}{}{}{}{}{}{}` {} (results in `{}`). Each cell runs {} pairs of each \
         kind behind the same simulated network (the lab: real programs in network namespaces; the \
         simulator: the same topology on virtual time), the embedded broker and STUN/TURN core; the \
         virtual peers use the `{}` profile. Times are p50, ms after the offerer's PeerJS OPEN (when a \
         page calls `peer.connect()`; when a virtual peer opens its connection), so reaching the broker \
         does not count; the ratio is to Chromium's. Each Chromium page waits 1 s after its browser \
         starts before it joins the broker, so the browser has settled (`tools/js/lab-peer.mjs`). Vanilla ICE: every offer and answer leaves once \
         gathering is complete with every candidate in it (a Chromium page holds PeerJS's OFFER or \
         ANSWER until then and drops its CANDIDATE frames); mixed pairs run with trickle ICE only.\n",
        if a.cells == default_cells() {
            String::new()
        } else {
            let cells: Vec<String> = a.cells.iter().map(|c| format!("{}:{}", c.path.as_str(), c.rtt_ms)).collect();
            format!(" --cells {}", cells.join(","))
        },
        if a.pairs == PAIRS { String::new() } else { format!(" --pairs {}", a.pairs) },
        if a.profile == Profile::Chrome { String::new() } else { format!(" --profile {}", a.profile) },
        if a.mixed { " --mixed" } else { "" },
        if a.matrix { " --matrix" } else { "" },
        if ice == ["trickle", "vanilla"] { String::new() } else { format!(" --ice {}", ice.join(",")) },
        match a.cpu_scale {
            ScaleArg::Auto => String::new(),
            ScaleArg::Fixed(x) => format!(" --cpu-scale {x}"),
        },
        match &a.from {
            None => format!("on {}", crate::results::utc_stamp()),
            Some(_) => format!("and written again from its results on {} with `--from`", crate::results::utc_stamp()),
        },
        results.display(),
        a.pairs,
        a.profile
    );
    let _ = writeln!(md, "{}", scale_paragraph(scale, a.profile));
    let _ = writeln!(md, "## Open (the DataConnection's `open`), every cell\n");
    // Every kind any row ran, in the order they run.
    let mut kinds: Vec<Kind> = Vec::new();
    for r in cells {
        for (k, _) in &r.kinds {
            if !kinds.contains(k) {
                kinds.push(*k);
            }
        }
    }
    let mut head = "| path | RTT | ICE | Chromium |".to_string();
    let mut rule = "|---|---|---|---|".to_string();
    for k in kinds.iter().filter(|k| **k != Kind::Chromium) {
        let _ = write!(head, " {} | ratio |", k.label());
        rule.push_str("---|---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for r in cells {
        let chromium = r.get(Kind::Chromium).and_then(|m| p50(m, Milestone::DataChannelOpen));
        let _ = write!(
            md,
            "| {} | {} ms | {} | {} |",
            r.cell.path.as_str(),
            r.cell.rtt_ms,
            peerstorm_scenario::ice_name(r.ice),
            ms(chromium)
        );
        for k in kinds.iter().filter(|k| **k != Kind::Chromium) {
            let v = r.get(*k).and_then(|m| p50(m, Milestone::DataChannelOpen));
            let _ = write!(md, " {} | {} |", ms(v), ratio(v, chromium));
        }
        md.push('\n');
    }
    savings(&mut md, cells);
    goals(&mut md, cells, &kinds, matrix);
    cpu_steps(&mut md, cells, a.profile, scale.scale);
    for r in cells {
        let ice = if r.ice == IceMode::Vanilla { ", vanilla ICE" } else { "" };
        let _ = writeln!(md, "\n## {} at {} ms RTT{ice}\n", r.cell.path.as_str(), r.cell.rtt_ms);
        let _ = write!(md, "| stage |");
        for (k, _) in &r.kinds {
            let _ = write!(md, " {} |", k.label());
        }
        let _ = write!(md, "\n|---|");
        for _ in &r.kinds {
            md.push_str("---|");
        }
        md.push('\n');
        let chromium = r.get(Kind::Chromium);
        for stage in STAGES {
            let _ = write!(md, "| {} |", stage.as_str());
            for (k, m) in &r.kinds {
                let v = p50(m, stage);
                if *k == Kind::Chromium {
                    let _ = write!(md, " {} |", ms(v));
                } else {
                    let _ = write!(md, " {} ({}) |", ms(v), ratio(v, chromium.and_then(|c| p50(c, stage))));
                }
            }
            md.push('\n');
        }
        let _ = write!(md, "| pairs ok |");
        for (_, m) in &r.kinds {
            let _ = write!(md, " {} of {} |", m.summary.all.pairs_ok, m.summary.all.pairs);
        }
        let _ = write!(md, "\n| selected (offerer local/remote) |");
        for (_, m) in &r.kinds {
            let _ = write!(md, " {} |", selected(&m.summary));
        }
        md.push('\n');
    }
    if let Some(matrix) = matrix {
        let _ = writeln!(md, "\n## Selected path per NAT-pair class (60 ms RTT, one pair per ordered combination)\n");
        let _ = writeln!(
            md,
            "| class | Chromium (lab) | virtual (simulator) | same | ICE after the answer, Chromium | virtual |\n|---|---|---|---|---|---|"
        );
        let (c, v) = (&matrix[0].1.summary, &matrix[1].1.summary);
        let (ct, vt) = (&matrix[0].1.ice_after_answer, &matrix[1].1.ice_after_answer);
        let mut off = Vec::new();
        let relayed = |f: &peerstorm_report::summary::Figures| {
            let n: u64 = f.selected.iter().filter(|(k, _)| k.contains("relay")).map(|(_, n)| n).sum();
            n > 0
        };
        let (mut same, mut total) = (0, 0);
        let (mut named_alike, mut connections) = (0, 0);
        for (class, cf) in &c.classes {
            let vf = v.classes.get(class);
            connections += cf.selected.values().sum::<u64>();
            named_alike += exact_types(cf, vf);
            let join = |f: &peerstorm_report::summary::Figures| {
                f.selected.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
            };
            let agree = vf.is_some_and(|vf| relayed(vf) == relayed(cf));
            total += 1;
            same += usize::from(agree);
            let (cms, vms) = (ct.get(class).copied(), vt.get(class).copied());
            if let (Some(c), Some(v)) = (cms, vms) {
                off.push((v - c).abs());
            }
            let _ = writeln!(
                md,
                "| {class} | {} | {} | {} | {} | {} |",
                join(cf),
                vf.map_or("–".into(), join),
                if agree { "yes" } else { "**no**" },
                ms(cms),
                ms(vms)
            );
        }
        let _ = writeln!(
            md,
            "\nRelayed or not, the same in {same} of {total} classes; relay share Chromium {:.0} %, virtual {:.0} %. \
             The candidate types exactly as Chromium's getStats names them (offerer local/remote, where a \
             direct path through a NAT's mapping may be named srflx or prflx): {named_alike} of {connections} connections.",
            relay_share(c),
            relay_share(v)
        );
        if !off.is_empty() {
            let within = off.iter().filter(|d| **d <= 30.0).count();
            let _ = writeln!(
                md,
                "From the answer's arrival to ICE connected (the offerer's), per class: the virtual peers' median is {:.0} ms from Chromium's on average, within 30 ms (half a check loop) in {within} of {} classes. One pair per ordered combination: a class's figure is one or two pairs, and where Chromium's metronome ticks for a pair moves it by up to a check loop.",
                off.iter().sum::<f64>() / off.len() as f64,
                off.len()
            );
        }
    }
    md
}

/// How many of a class's Chromium connections the virtual peers' selected pairs match exactly
/// (type names on both sides), count for count.
fn exact_types(
    chromium: &peerstorm_report::summary::Figures,
    virtual_: Option<&peerstorm_report::summary::Figures>,
) -> u64 {
    let Some(v) = virtual_ else { return 0 };
    chromium.selected.iter().map(|(k, n)| (*n).min(v.selected.get(k).copied().unwrap_or(0))).sum()
}

fn relay_share(m: &ModeSummary) -> f64 {
    m.all.shares.get("relay").copied().unwrap_or(0.0) * 100.0
}

/// The open goal's tolerance: 15 % of Chromium's figure or 20 ms, whichever is larger.
fn open_tolerance(chromium: f64) -> f64 {
    (0.15 * chromium).max(20.0)
}

/// ICE and DTLS connected: within one RTT of Chromium's, and at 0 ms RTT within the open goal's
/// floor of 20 ms (one RTT of nothing would ask for the same millisecond).
fn stage_tolerance(rtt_ms: u64) -> f64 {
    (rtt_ms as f64).max(20.0)
}

/// One goal over the cells: how many meet it, and the ones that do not.
struct Tally {
    goal: String,
    met: usize,
    total: usize,
    off: Vec<String>,
    /// The share of cells that must meet it, in percent.
    need_pct: usize,
}

impl Tally {
    fn new(goal: impl Into<String>) -> Self {
        Tally { goal: goal.into(), met: 0, total: 0, off: Vec::new(), need_pct: 100 }
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.total += 1;
        if ok {
            self.met += 1;
        } else {
            self.off.push(what());
        }
    }

    fn row(&self, md: &mut String) {
        let met = self.total > 0 && self.met * 100 >= self.need_pct * self.total;
        let verdict = if met { "met" } else { "**not met**" };
        let off = if self.off.is_empty() { "–".to_string() } else { self.off.join("; ") };
        let _ = writeln!(md, "| {} | {verdict} | {} of {} | {off} |", self.goal, self.met, self.total);
    }
}

/// Each goal of the calibration, judged from this run's figures: met or not, and where not.
fn goals(md: &mut String, cells: &[Row], kinds: &[Kind], matrix: Option<&[(Kind, Figures)]>) {
    let _ = writeln!(
        md,
        "\n## Goals\n\nJudged from the p50s above. Open: within 15 % of Chromium's or 20 ms, whichever is \
         larger. ICE and DTLS connected: within one RTT of Chromium's (20 ms at 0 ms RTT). Trickle's \
         saving: within 15 % of Chromium's. The simulator and the lab: open within 15 % or 20 ms of each \
         other.\n\n| goal | verdict | cells | off (virtual vs Chromium, ms) |\n|---|---|---|---|"
    );
    let name =
        |r: &Row| format!("{} {} ms {}", r.cell.path.as_str(), r.cell.rtt_ms, peerstorm_scenario::ice_name(r.ice));
    for k in kinds.iter().filter(|k| **k != Kind::Chromium) {
        let mut open = Tally::new(format!("open, {}", k.label()));
        let mut ice = Tally::new(format!("ICE connected, {}", k.label()));
        let mut dtls = Tally::new(format!("DTLS connected, {}", k.label()));
        for r in cells {
            let (Some(c), Some(v)) = (r.get(Kind::Chromium), r.get(*k)) else { continue };
            let stage = |t: &mut Tally, m: Milestone, tolerance: &dyn Fn(f64) -> f64| {
                if let (Some(c), Some(v)) = (p50(c, m), p50(v, m)) {
                    t.check((v - c).abs() <= tolerance(c), || {
                        format!("{}: {} vs {}", name(r), ms(Some(v)), ms(Some(c)))
                    });
                }
            };
            stage(&mut open, Milestone::DataChannelOpen, &open_tolerance);
            stage(&mut ice, Milestone::IceConnected, &|_| stage_tolerance(r.cell.rtt_ms));
            stage(&mut dtls, Milestone::DtlsConnected, &|_| stage_tolerance(r.cell.rtt_ms));
        }
        for t in [open, ice, dtls] {
            t.row(md);
        }
    }
    let open = |r: &Row, k: Kind| r.get(k).and_then(|m| p50(m, Milestone::DataChannelOpen));
    for k in [Kind::VirtualLab, Kind::Simulated] {
        let mut t = Tally::new(format!("trickle's saving, {}", k.label()));
        for tr in cells.iter().filter(|r| r.ice == IceMode::Trickle) {
            let Some(va) = cells.iter().find(|v| v.ice == IceMode::Vanilla && v.cell == tr.cell) else { continue };
            let saves = |k: Kind| open(va, k).zip(open(tr, k)).map(|(v, t)| v - t);
            if let (Some(c), Some(v)) = (saves(Kind::Chromium), saves(k)) {
                t.check(c > 0.0 && (v - c).abs() <= 0.15 * c, || {
                    format!("{} {} ms: saves {} vs {}", tr.cell.path.as_str(), tr.cell.rtt_ms, ms(Some(v)), ms(Some(c)))
                });
            }
        }
        if t.total > 0 {
            t.row(md);
        }
    }
    let mut agree = Tally::new("open, simulator against lab (same profile)");
    for r in cells {
        if let (Some(lab), Some(sim)) = (open(r, Kind::VirtualLab), open(r, Kind::Simulated)) {
            agree.check((sim - lab).abs() <= open_tolerance(lab), || {
                format!("{}: simulator {} vs lab {}", name(r), ms(Some(sim)), ms(Some(lab)))
            });
        }
    }
    agree.row(md);
    if let Some([(_, c), (_, v)]) = matrix {
        let relayed = |f: Option<&peerstorm_report::summary::Figures>| {
            f.map(|f| f.selected.iter().filter(|(k, _)| k.contains("relay")).map(|(_, n)| n).sum::<u64>() > 0)
        };
        let mut same = Tally::new("selected path (relayed or not) per NAT-pair class, in ≥ 95 % of classes");
        same.need_pct = 95;
        for (class, cf) in &c.summary.classes {
            same.check(relayed(Some(cf)) == relayed(v.summary.classes.get(class)), || class.clone());
        }
        same.row(md);
        let mut share = Tally::new("relay share within 2 points of Chromium's");
        let (cs, vs) = (relay_share(&c.summary), relay_share(&v.summary));
        share.check((cs - vs).abs() <= 2.0, || format!("{vs:.0} % vs {cs:.0} %"));
        share.row(md);
    }
}

/// What the virtual peers' CPU scale was, and how it was found.
fn scale_paragraph(scale: Scale, profile: Profile) -> String {
    let t = profile.timers();
    let ms_of = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let how = match scale.fitted_from {
        Some((offer, n)) => format!(
            "fitted to this machine's Chromium: its OFFER left {offer:.1} ms after PeerJS's OPEN (the median of \
             {n} trickle cells' p50s; no goal judges that stage), where the profile charges {:.0} ms to describe an offer",
            ms_of(t.describe_offer)
        ),
        None => "given with `--cpu-scale`".into(),
    };
    format!(
        "The virtual peers ran with `cpu_scale = {}` ({how}): every time the `{profile}` profile charges for \
         the browser's own work was multiplied by it — describing an offer {:.1} ms and an answer {:.1} ms, \
         applying a remote description {:.1} ms plus up to {:.1}, acting on a datagram during setup {:.1} ms — \
         and no timer of the network's or the protocol's. The profile's own times describe a machine whose \
         Chromium describes an offer in about {:.0} ms; a Chromium on a slower or busier machine takes longer \
         for each, and at 0 ms RTT nothing else takes time.\n",
        scale.scale,
        ms_of(scale.scale.apply(t.describe_offer)),
        ms_of(scale.scale.apply(t.describe_answer)),
        ms_of(scale.scale.apply(t.apply_remote)),
        ms_of(scale.scale.apply(t.apply_remote_spread)),
        ms_of(scale.scale.apply(t.setup_packet)),
        ms_of(t.describe_offer),
    )
}

/// Where the time goes at 0 ms RTT, where none of it is the network: each step (the difference
/// of two stages' p50s) for Chromium and for the simulated virtual peers, beside the CPU times
/// the profile charges at the run's scale. Nothing when no 0 ms cell ran both kinds.
fn cpu_steps(md: &mut String, cells: &[Row], profile: Profile, scale: CpuScale) {
    let rows: Vec<(&Row, &Figures, &Figures)> = cells
        .iter()
        .filter(|r| r.cell.rtt_ms == 0)
        .filter_map(|r| Some((r, r.get(Kind::Chromium)?, r.get(Kind::Simulated)?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let t = profile.timers().scaled(scale);
    let ms_of = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let _ = writeln!(
        md,
        "\n## Where the time goes at 0 ms RTT\n\n\
         With no delay on any link every millisecond is a program's own work, so these cells measure \
         the machine as much as the browser. Each step is the difference of two stages' p50s, \
         Chromium / the simulator. At CPU scale {scale} the `{profile}` profile charges {:.1} ms to describe an \
         offer, {:.1} ms to describe an answer, {:.1}–{:.1} ms to apply a remote description and {:.1} ms to \
         act on each datagram until the channel opens (a step of one round trip acts on two or three).\n\n\
         | path | ICE | OPEN → answer arrives | answer → ICE connected | ICE → DTLS connected | DTLS → open |\n\
         |---|---|---|---|---|---|",
        ms_of(t.describe_offer),
        ms_of(t.describe_answer),
        ms_of(t.apply_remote),
        ms_of(t.apply_remote + t.apply_remote_spread),
        ms_of(t.setup_packet),
    );
    for (r, c, s) in rows {
        let step = |f: &Figures, from: Option<Milestone>, to: Milestone| {
            let end = p50(f, to)?;
            Some(match from {
                None => end,
                Some(from) => end - p50(f, from)?,
            })
        };
        let _ = write!(md, "| {} | {} |", r.cell.path.as_str(), peerstorm_scenario::ice_name(r.ice));
        for (from, to) in [
            (None, Milestone::AnswerReceived),
            (Some(Milestone::AnswerReceived), Milestone::IceConnected),
            (Some(Milestone::IceConnected), Milestone::DtlsConnected),
            (Some(Milestone::DtlsConnected), Milestone::DataChannelOpen),
        ] {
            let _ = write!(md, " {} / {} |", ms(step(c, from, to)), ms(step(s, from, to)));
        }
        md.push('\n');
    }
}

/// What trickle ICE saves over vanilla (vanilla open − trickle open), per cell run both ways.
fn savings(md: &mut String, cells: &[Row]) {
    let pairs: Vec<(&Row, &Row)> = cells
        .iter()
        .filter(|r| r.ice == IceMode::Trickle)
        .filter_map(|t| cells.iter().find(|v| v.ice == IceMode::Vanilla && v.cell == t.cell).map(|v| (t, v)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## What trickle ICE saves (vanilla open − trickle open, ms)\n\n\
         | path | RTT | Chromium vanilla | Chromium trickle | Chromium saves | virtual ↔ virtual (lab) saves | ratio | \
         virtual ↔ virtual (simulator) saves | ratio |\n|---|---|---|---|---|---|---|---|---|"
    );
    let open = |r: &Row, k: Kind| r.get(k).and_then(|m| p50(m, Milestone::DataChannelOpen));
    for (t, v) in pairs {
        let saves = |k: Kind| open(v, k).zip(open(t, k)).map(|(v, t)| v - t);
        let c = saves(Kind::Chromium);
        let (lab, sim) = (saves(Kind::VirtualLab), saves(Kind::Simulated));
        let _ = writeln!(
            md,
            "| {} | {} ms | {} | {} | {} | {} | {} | {} | {} |",
            t.cell.path.as_str(),
            t.cell.rtt_ms,
            ms(open(v, Kind::Chromium)),
            ms(open(t, Kind::Chromium)),
            ms(c),
            ms(lab),
            ratio(lab, c),
            ms(sim),
            ratio(sim, c)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A calibration scenario of `pairs` simulated pairs at the `chrome` profile's own times: its
    /// runs and their summary.
    fn simulate(nat_mix: &str, rtt_ms: u64, pairs: usize) -> (Vec<RunOutcome>, ModeSummary) {
        let cell = Cell { path: Path::Host, rtt_ms };
        let text =
            scenario("t", nat_mix, cell, pairs, (Profile::Chrome, CpuScale::ONE), Kind::Simulated, IceMode::Trickle);
        let s = Scenario::parse(&text).unwrap();
        let runs = peerstorm_runner::run_with_progress(&s, Shard::WHOLE, &mut |_| {}).unwrap().1;
        let summary = summarize(&collect_all(&s.name, s.seed, Shard::WHOLE, &runs)).modes.remove(0);
        (runs, summary)
    }

    /// The NAT matrix's per-class timing, from a simulated matrix of open and full-cone peers:
    /// every class named as the summary names it, and two open peers connect one 60 ms check
    /// round trip after the answer takes effect (the profile's `apply_remote`, 3 ms plus a
    /// seeded share of 2, and the setup datagrams' own time).
    #[test]
    fn ice_after_the_answer_is_kept_per_class() {
        let (runs, summary) = simulate("{ open = 1, full-cone = 1 }", 60, 4);
        let per_class = ice_after_answer(&runs);
        assert_eq!(per_class.keys().collect::<Vec<_>>(), summary.classes.keys().collect::<Vec<_>>());
        let open = per_class["open ↔ open"];
        assert!((63.0..=66.0).contains(&open), "open ↔ open: ICE {open} ms after the answer");
        assert!(per_class.values().all(|ms| *ms >= open), "{per_class:?}");
    }

    /// The 0 ms section: each step is the difference of two stages' p50s for Chromium and for
    /// the simulator, the profile's CPU times are its own, and cells with delay are left out.
    #[test]
    fn the_zero_rtt_steps_are_differences_of_p50s() {
        let figures = |stages: [f64; 4]| {
            let summary = simulate("{ open = 1 }", 0, 1).1;
            let p50 = [
                Milestone::AnswerReceived,
                Milestone::IceConnected,
                Milestone::DtlsConnected,
                Milestone::DataChannelOpen,
            ]
            .into_iter()
            .zip(stages)
            .collect();
            Figures { summary, p50, ice_after_answer: BTreeMap::new() }
        };
        let row = |rtt_ms| Row {
            cell: Cell { path: Path::Srflx, rtt_ms },
            ice: IceMode::Vanilla,
            kinds: vec![
                (Kind::Chromium, figures([27.0, 38.0, 43.0, 49.0])),
                (Kind::Simulated, figures([12.0, 16.0, 16.0, 16.0])),
            ],
        };
        let mut md = String::new();
        cpu_steps(&mut md, &[row(60)], Profile::Chrome, CpuScale::ONE);
        assert!(md.is_empty(), "{md}");
        cpu_steps(&mut md, &[row(60), row(0)], Profile::Chrome, CpuScale::ONE);
        assert!(
            md.contains("5.0 ms to describe an offer, 7.0 ms to describe an answer, 3.0–5.0 ms to apply a remote description and 0.9 ms to act on each datagram"),
            "{md}"
        );
        assert!(md.ends_with("| srflx | vanilla | 27 / 12 | 11 / 4 | 5 / 0 | 6 / 0 |\n"), "{md}");
        assert_eq!(md.matches("| srflx |").count(), 1, "{md}");
        let mut doubled = String::new();
        cpu_steps(&mut doubled, &[row(0)], Profile::Chrome, CpuScale::new(2.0).unwrap());
        assert!(
            doubled.contains("At CPU scale 2 the `chrome` profile charges 10.0 ms to describe an offer, 14.0 ms"),
            "{doubled}"
        );
    }

    /// The CPU scale is the median of Chromium's OPEN → OFFER over its trickle cells, over the
    /// profile's `describe_offer`; vanilla cells (whose offer waits for gathering) and the
    /// virtual kinds do not count.
    #[test]
    fn the_cpu_scale_is_fitted_to_chromiums_offers_in_trickle_cells() {
        let summary = simulate("{ open = 1 }", 0, 1).1;
        let fig = |offer: f64| Figures {
            summary: summary.clone(),
            p50: [(Milestone::OfferSent, offer)].into_iter().collect(),
            ice_after_answer: BTreeMap::new(),
        };
        let row = |ice, chromium: f64, virtual_: f64| Row {
            cell: Cell { path: Path::Host, rtt_ms: 0 },
            ice,
            kinds: vec![(Kind::Chromium, fig(chromium)), (Kind::Simulated, fig(virtual_))],
        };
        let rows = [
            row(IceMode::Trickle, 9.6, 5.0),
            row(IceMode::Trickle, 14.4, 5.0),
            row(IceMode::Trickle, 13.6, 5.0),
            row(IceMode::Vanilla, 127.5, 125.0),
        ];
        let fitted = fit_scale(&rows, Profile::Chrome).unwrap();
        assert_eq!(fitted.scale, CpuScale::new(2.72).unwrap(), "13.6 / 5");
        assert_eq!(fitted.fitted_from, Some((13.6, 3)));
        let even = fit_scale(&rows[..2], Profile::Chrome).unwrap();
        assert_eq!(even.scale, CpuScale::new(2.4).unwrap(), "(9.6 + 14.4) / 2 / 5");
        assert_eq!(fit_scale(&rows, Profile::Rtc).unwrap().scale, CpuScale::ONE, "rtc charges nothing to scale");
        assert!(fit_scale(&rows[3..], Profile::Chrome).is_none(), "no trickle cell, no fit");
        let para = scale_paragraph(fitted, Profile::Chrome);
        assert!(para.contains("`cpu_scale = 2.72`") && para.contains("13.6 ms after PeerJS's OPEN"), "{para}");
        assert!(para.contains("describing an offer 13.6 ms"), "{para}");
    }

    /// A class's connections count as named alike pair for pair: one prflx/relay against a
    /// srflx/relay is one of two.
    #[test]
    fn exact_types_count_matching_pairs_count_for_count() {
        let summary = simulate("{ open = 1 }", 0, 1).1;
        let with = |pairs: &[(&str, u64)]| {
            let mut f = summary.all.clone();
            f.selected = pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect();
            f
        };
        let chromium = with(&[("prflx/relay", 1), ("relay/prflx", 1)]);
        assert_eq!(exact_types(&chromium, Some(&with(&[("prflx/relay", 1), ("relay/prflx", 1)]))), 2);
        assert_eq!(exact_types(&chromium, Some(&with(&[("prflx/relay", 1), ("srflx/relay", 1)]))), 1);
        assert_eq!(exact_types(&chromium, Some(&with(&[("prflx/relay", 2)]))), 1, "no more than Chromium's count");
        assert_eq!(exact_types(&chromium, None), 0);
    }

    #[test]
    fn tolerances_are_the_goals() {
        // Open: 15 % of Chromium's, at least 20 ms.
        assert_eq!(open_tolerance(40.0), 20.0);
        assert_eq!(open_tolerance(1000.0), 150.0);
        // ICE and DTLS: one RTT, at least 20 ms.
        assert_eq!(stage_tolerance(0), 20.0);
        assert_eq!(stage_tolerance(200), 200.0);
    }

    #[test]
    fn a_goal_is_met_only_when_enough_cells_meet_it() {
        let row = |t: &Tally| {
            let mut md = String::new();
            t.row(&mut md);
            md
        };
        let mut all = Tally::new("every cell");
        all.check(true, || unreachable!("a cell that meets the goal is not listed"));
        all.check(false, || "host 0 ms trickle: 40 vs 66".into());
        assert_eq!(row(&all), "| every cell | **not met** | 1 of 2 | host 0 ms trickle: 40 vs 66 |\n");
        let mut most = Tally::new("95 %");
        most.need_pct = 95;
        for k in 0..20 {
            most.check(k != 7, || "one class".into());
        }
        assert!(row(&most).starts_with("| 95 % | met | 19 of 20 |"), "{}", row(&most));
        most.check(false, || "another".into());
        assert!(row(&most).contains("**not met**"), "{}", row(&most));
        // Nothing judged is not a goal met.
        assert!(row(&Tally::new("none")).contains("**not met** | 0 of 0 | – |"));
    }

    #[test]
    fn the_default_cells_are_every_path_at_every_rtt() {
        let cells = default_cells();
        assert_eq!(cells.len(), 9);
        for path in [Path::Host, Path::Srflx, Path::Relay] {
            for rtt_ms in [0, 60, 200] {
                assert!(cells.contains(&Cell { path, rtt_ms }), "{path:?} {rtt_ms}");
            }
        }
    }
}
