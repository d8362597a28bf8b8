//! Text outputs: the terminal table, `report.md`, `junit.xml` and HdrHistogram's `.hgrm`
//! percentile distributions.

use crate::summary::{STAGES, Summary};
use crate::thresholds::Outcome;
use hdrhistogram::Histogram;
use std::fmt::Write as _;

fn opt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |g| format!("{g:.0}"))
}

/// Failures by cause in words: `none`, or `3 ice_failed, 1 timeout`.
pub fn failures(f: &std::collections::BTreeMap<String, u64>) -> String {
    if f.is_empty() {
        return "none".to_string();
    }
    f.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
}

/// Bytes with a binary prefix: `812 B`, `4.2 KiB`, `1.6 MiB`, `2.1 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate given in kbit/s, scaled: `267 kbit/s`, `18.2 Mbit/s`, `182 Mbit/s`, `1.2 Gbit/s`.
pub fn rate_kbps(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(k) if k >= 1e6 => format!("{:.1} Gbit/s", k / 1e6),
        Some(k) if k >= 1e5 => format!("{:.0} Mbit/s", k / 1e3),
        Some(k) if k >= 1e3 => format!("{:.1} Mbit/s", k / 1e3),
        Some(k) => format!("{k:.0} kbit/s"),
    }
}

/// The table printed after a run.
/// The live signaling latencies, in the order a pair meets them.
const SIGNAL_ORDER: [&str; 6] =
    ["start_lag", "connect_open", "offer_relay", "answer_relay", "exchange", "exchange_uncorrected"];

/// A live signaling run (its label is `signaling`, or `signaling <broker>` side by side).
fn is_live_signaling(m: &crate::summary::ModeSummary) -> bool {
    !m.signal.is_empty() || m.ice.starts_with("signaling")
}

fn live_lines(o: &mut String, m: &crate::summary::ModeSummary) {
    let _ = writeln!(
        o,
        "live {}: {} pairs, {} ok ({:.1} %), failures: {}, {} frames relayed, at most {} peers connected",
        m.ice,
        m.pairs,
        m.pairs_ok,
        m.success_rate * 100.0,
        failures(&m.failures),
        m.frames_relayed,
        m.resources.get("peers_max").copied().unwrap_or(0.0)
    );
    let res: Vec<String> =
        m.resources.iter().filter(|(k, _)| *k != "peers_max").map(|(k, v)| format!("{k} {v}")).collect();
    if !res.is_empty() {
        let _ = writeln!(o, "  resources: {}", res.join(", "));
    }
    o.push_str("  latency (ms)                     p50      p95      p99      max    count\n");
    for (k, st) in SIGNAL_ORDER.iter().filter_map(|k| m.signal.get_key_value(*k)) {
        let _ = writeln!(
            o,
            "  {k:<30} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}",
            st.p50_ms, st.p95_ms, st.p99_ms, st.max_ms, st.count
        );
    }
}

/// What every output says first about a run that was stopped early.
pub fn interruption_note(s: &Summary) -> Option<String> {
    if !s.interrupted {
        return None;
    }
    let cut: u64 = s.modes.iter().map(|m| m.connections_cut).sum();
    Some(format!(
        "INTERRUPTED: the run was stopped (Ctrl-C or SIGTERM) before it finished; the figures cover what finished before, {cut} connection{} in flight {} cut and counted nowhere, and runs after the stopped one are missing",
        if cut == 1 { "" } else { "s" },
        if cut == 1 { "was" } else { "were" }
    ))
}

/// A media metric's value in its shown unit, in words (`645.1 ms`, `809 kbit/s`, `2.2 %`).
fn media_value(unit: crate::summary::MediaUnit, v: f64) -> String {
    use crate::summary::MediaUnit;
    match unit {
        MediaUnit::Time => format!("{v:.1} ms"),
        MediaUnit::Rate => format!("{v:.0} kbit/s"),
        MediaUnit::Ratio => format!("{:.2} %", v * 100.0),
        MediaUnit::Count => format!("{v:.0}"),
    }
}

/// The media rows of a set of connections: name, count and p50/p95/p99/max in words.
pub fn media_rows(f: &crate::summary::Figures) -> Vec<(&'static str, u64, [String; 4])> {
    crate::summary::MEDIA
        .iter()
        .filter_map(|(name, unit, _)| {
            let st = f.media.get(*name)?;
            Some((*name, st.count, [st.p50, st.p95, st.p99, st.max].map(|v| media_value(*unit, v))))
        })
        .collect()
}

/// What the TURN server relayed of the calls, when the run measured its CPU.
fn turn_media_line(m: &crate::summary::ModeSummary) -> Option<String> {
    let r = &m.resources;
    let rate = r.get("media_relayed_mbit_s")?;
    let mut line = format!("TURN relayed media: {rate:.2} Mbit/s (the relayed streams' rates added up)");
    if let (Some(p), Some(b), Some(cpu)) =
        (r.get("turn_media_packets_per_cpu_s"), r.get("turn_media_mbit_per_cpu_s"), r.get("turn_cpu_ms"))
    {
        let _ = write!(line, "; per TURN CPU-second: {p:.0} packets, {b:.1} Mbit (TURN CPU {cpu:.0} ms)");
    }
    Some(line)
}

/// The TURN servers of a side-by-side run (`turn` in each run's point), relayed media per
/// server CPU-second, and each against the first.
pub fn turn_media_ratios(s: &Summary) -> Option<String> {
    let rows: Vec<(&str, f64, f64)> = s
        .modes
        .iter()
        .filter_map(|m| {
            let name = m.point.get("turn")?;
            Some((
                name.as_str(),
                *m.resources.get("turn_media_packets_per_cpu_s")?,
                *m.resources.get("turn_media_mbit_per_cpu_s")?,
            ))
        })
        .collect();
    if rows.len() < 2 {
        return None;
    }
    let mut o =
        String::from("TURN servers side by side, relayed media per server CPU-second (same generator, same run):\n");
    let (_, p0, _) = rows[0];
    for (name, p, mbit) in &rows {
        let _ = writeln!(o, "  {name:<24} {p:>10.0} packets {mbit:>8.1} Mbit   ratio {:.2}", p / p0);
    }
    Some(o)
}

/// A class's media in one cell: first frame p50/p95, video bit rate p50, loss p95, jitter p95.
pub fn media_cell(media: &std::collections::BTreeMap<String, crate::summary::MediaStat>) -> String {
    use crate::summary::MediaUnit;
    let get = |name: &str, stat: &str, unit| media.get(name).and_then(|s| s.get(stat)).map(|v| media_value(unit, v));
    let parts = [
        get("first_frame", "p50", MediaUnit::Time).map(|v| format!("first frame p50 {v}")),
        get("first_frame", "p95", MediaUnit::Time).map(|v| format!("p95 {v}")),
        get("video.bitrate", "p50", MediaUnit::Rate).map(|v| format!("video {v}")),
        get("loss", "p95", MediaUnit::Ratio).map(|v| format!("loss p95 {v}")),
        get("jitter", "p95", MediaUnit::Time).map(|v| format!("jitter p95 {v}")),
        get("rtt", "p50", MediaUnit::Time).map(|v| format!("RTT p50 {v}")),
    ];
    parts.into_iter().flatten().collect::<Vec<_>>().join(", ")
}

pub fn table(s: &Summary) -> String {
    let mut o = String::new();
    if let Some(note) = interruption_note(s) {
        let _ = writeln!(o, "{note}");
    }
    for m in s.modes.iter().filter(|m| is_live_signaling(m)) {
        live_lines(&mut o, m);
    }
    for m in s.modes.iter().filter(|m| !is_live_signaling(m)) {
        // A live full-stack run has no simulated RTT.
        let live = m.live;
        let _ = writeln!(
            o,
            "{}: {} connections, {} ok ({:.1} %), failures: {}, {} moved (echo goodput p50 {} per connection), {} frames relayed, {} datagrams, end {:.0} ms",
            if live { format!("{} ICE live, real sockets", m.ice) } else { m.heading() },
            m.pairs,
            m.pairs_ok,
            m.success_rate * 100.0,
            failures(&m.failures),
            bytes(m.bytes_moved),
            rate_kbps(m.goodput_kbps_p50()),
            m.frames_relayed,
            m.datagrams_delivered,
            m.end_ms
        );
        o.push_str("  stage (offerer, ms from start)   p50      p95      p99      max\n");
        for (k, st) in STAGES.iter().filter_map(|st| m.stages.get_key_value(*st)) {
            let _ =
                writeln!(o, "  {k:<30} {:>8.1} {:>8.1} {:>8.1} {:>8.1}", st.p50_ms, st.p95_ms, st.p99_ms, st.max_ms);
        }
    }
    for m in s.modes.iter().filter(|m| !m.all.media.is_empty()) {
        let _ = writeln!(
            o,
            "{}, media calls (per received stream)      count        p50        p95        p99        max",
            m.heading()
        );
        for (name, count, v) in media_rows(&m.all) {
            let _ = writeln!(o, "  {name:<40} {count:>6} {:>10} {:>10} {:>10} {:>10}", v[0], v[1], v[2], v[3]);
        }
        if let Some(line) = turn_media_line(m) {
            let _ = writeln!(o, "  {line}");
        }
        if m.classes.len() >= 2 {
            let _ = writeln!(o, "{}, media by NAT pair", m.heading());
            for (k, c) in &m.classes {
                let _ = writeln!(o, "  {k:<36} {}", media_cell(&c.media));
            }
        }
        if !m.media_by_selected.is_empty() {
            let _ = writeln!(o, "{}, media by selected pair (caller local/remote)", m.heading());
            for (k, media) in &m.media_by_selected {
                let _ = writeln!(o, "  {k:<36} {}", media_cell(media));
            }
        }
    }
    for m in &s.modes {
        if m.classes.len() < 2 {
            continue;
        }
        let _ = writeln!(
            o,
            "{}, by NAT pair  pairs   ok %   dc_open p50/p95 ms   kbit/s   selected (offerer local/remote)",
            m.heading()
        );
        for (k, c) in &m.classes {
            let dc = c.stages.get("dc_open").map_or("-".to_string(), |st| format!("{:.0}/{:.0}", st.p50_ms, st.p95_ms));
            let sel: Vec<String> = c.selected.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let _ = writeln!(
                o,
                "  {k:<36} {:>5} {:>6.1}   {dc:>18} {:>8}   {}",
                c.pairs,
                c.success_rate * 100.0,
                opt(c.goodput_kbps_p50()),
                if sel.is_empty() { "-".to_string() } else { sel.join(", ") }
            );
        }
    }
    if let Some(t) = turn_media_ratios(s) {
        o.push_str(&t);
    }
    if !s.trickle_minus_vanilla_p50_ms.is_empty() {
        o.push_str("trickle minus vanilla, p50 (ms; negative: trickle is faster):\n  stage                          ");
        let width =
            s.trickle_minus_vanilla_p50_ms.iter().map(|d| d.label().chars().count() + 2).max().unwrap_or(9).max(9);
        for d in &s.trickle_minus_vanilla_p50_ms {
            let _ = write!(o, "{:>width$}", d.label().trim_end_matches(" RTT"));
        }
        o.push('\n');
        for st in STAGES {
            if s.trickle_minus_vanilla_p50_ms.iter().all(|d| !d.stages.contains_key(st)) {
                continue;
            }
            let _ = write!(o, "  {st:<30} ");
            for d in &s.trickle_minus_vanilla_p50_ms {
                match d.stages.get(st) {
                    Some(v) => {
                        let _ = write!(o, "{v:>+width$.1}");
                    }
                    None => {
                        let _ = write!(o, "{:>width$}", "-");
                    }
                }
            }
            o.push('\n');
        }
    }
    if let Some(t) = &s.sweep {
        o.push_str(&sweep_text(t));
    }
    o
}

/// A sweep's table for the terminal: a row per run, its inputs, then each output.
fn sweep_text(t: &crate::summary::SweepTable) -> String {
    let mut o = String::from("sweep: each output per run\n");
    let mut head: Vec<String> = t.inputs.clone();
    head.extend(t.outputs.iter().map(|x| x.path.clone()));
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| {
            let mut cells: Vec<String> = t
                .inputs
                .iter()
                .map(|i| r.inputs.get(i).map_or("-".into(), |v| crate::summary::SweepTable::words(i, v)))
                .collect();
            cells.extend(t.outputs.iter().zip(&r.values).map(|(out, v)| sweep_value(&out.unit, *v)));
            cells
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([head[c].chars().count()]).max().unwrap_or(1))
        .collect();
    for line in std::iter::once(&head).chain(&rows) {
        o.push(' ');
        for (c, cell) in line.iter().enumerate() {
            let _ = write!(o, " {cell:>w$}", w = widths[c]);
        }
        o.push('\n');
    }
    o
}

/// An output's value for a table: `731.1` ms, `96.5 %`, `-` for no samples.
pub(crate) fn sweep_value(unit: &str, v: Option<f64>) -> String {
    match (unit, v) {
        (_, None) => "-".into(),
        ("fraction", Some(v)) => format!("{:.1} %", v * 100.0),
        ("kbit/s", Some(v)) => rate_kbps(Some(v)),
        ("ms", Some(v)) => format!("{v:.1} ms"),
        (_, Some(v)) => format!("{v}"),
    }
}

/// The thresholds' verdicts for the terminal.
pub fn verdicts(outcomes: &[Outcome]) -> String {
    let mut o = String::new();
    for t in outcomes {
        let _ = writeln!(o, "  {} {:<44} {}", if t.passed { "ok  " } else { "FAIL" }, t.threshold, t.message);
    }
    o
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// `report.md`.
pub fn markdown(s: &Summary, outcomes: &[Outcome]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# peerstorm report: {}\n", s.scenario);
    let _ = writeln!(o, "Seed {}, shards {}, schema `{}`.\n", s.seed, s.shards.join(", "), s.schema);
    if let Some(note) = interruption_note(s) {
        let _ = writeln!(o, "> **{note}.**\n");
    }
    if !outcomes.is_empty() {
        let failed = outcomes.iter().filter(|t| !t.passed).count();
        let _ = writeln!(
            o,
            "## Thresholds: {}\n\n| | threshold | observed |\n|---|---|---|",
            if failed == 0 { "all held".to_string() } else { format!("{failed} of {} failed", outcomes.len()) }
        );
        for t in outcomes {
            let _ = writeln!(
                o,
                "| {} | `{}` | {} |",
                if t.passed { "ok" } else { "**FAIL**" },
                md_escape(&t.threshold),
                md_escape(&t.message)
            );
        }
        o.push('\n');
    }
    for m in s.modes.iter().filter(|m| is_live_signaling(m)) {
        let _ = writeln!(o, "## Live {}\n\n```", m.ice);
        live_lines(&mut o, m);
        o.push_str("```\n\n");
    }
    for m in s.modes.iter().filter(|m| !is_live_signaling(m)) {
        let _ = writeln!(o, "## {}\n", m.heading());
        let _ = writeln!(
            o,
            "{} peers, {} connections, {} ok ({:.1} %); failures: {}; moved {}; frames relayed {}.\n",
            m.peers,
            m.pairs,
            m.pairs_ok,
            m.success_rate * 100.0,
            failures(&m.failures),
            bytes(m.bytes_moved),
            m.frames_relayed
        );
        o.push_str("| stage (offerer, ms from start) | count | p50 | p90 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for (k, st) in STAGES.iter().filter_map(|st| m.stages.get_key_value(*st)) {
            let _ = writeln!(
                o,
                "| {k} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                st.count, st.p50_ms, st.p90_ms, st.p95_ms, st.p99_ms, st.max_ms
            );
        }
        o.push('\n');
        if !m.all.media.is_empty() {
            o.push_str(
                "| media (per received stream) | count | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n",
            );
            for (name, count, v) in media_rows(&m.all) {
                let _ = writeln!(o, "| {name} | {count} | {} | {} | {} | {} |", v[0], v[1], v[2], v[3]);
            }
            if let Some(line) = turn_media_line(m) {
                let _ = writeln!(o, "{line}\n");
            }
            o.push('\n');
            if !m.classes.is_empty() {
                o.push_str("| NAT pair | media |\n|---|---|\n");
                for (k, c) in &m.classes {
                    let _ = writeln!(o, "| {k} | {} |", media_cell(&c.media));
                }
                o.push('\n');
            }
        }
        if !m.classes.is_empty() {
            o.push_str("| NAT pair | pairs | ok % | dc_open p50 / p95 ms | goodput p50 kbit/s | selected (offerer local/remote) |\n|---|---:|---:|---:|---:|---|\n");
            for (k, c) in &m.classes {
                let dc = c
                    .stages
                    .get("dc_open")
                    .map_or("-".to_string(), |st| format!("{:.0} / {:.0}", st.p50_ms, st.p95_ms));
                let sel: Vec<String> = c.selected.iter().map(|(t, n)| format!("{t} {n}")).collect();
                let _ = writeln!(
                    o,
                    "| {k} | {} | {:.1} | {dc} | {} | {} |",
                    c.pairs,
                    c.success_rate * 100.0,
                    opt(c.goodput_kbps_p50()),
                    sel.join(", ")
                );
            }
            o.push('\n');
        }
    }
    if let Some(t) = turn_media_ratios(s) {
        let _ = writeln!(o, "```\n{t}```\n");
    }
    if !s.trickle_minus_vanilla_p50_ms.is_empty() {
        o.push_str("## Trickle minus vanilla (p50, ms; negative: trickle is faster)\n\n| stage |");
        for d in &s.trickle_minus_vanilla_p50_ms {
            let _ = write!(o, " {} |", md_escape(&d.label()));
        }
        o.push_str("\n|---|");
        o.push_str(&"---:|".repeat(s.trickle_minus_vanilla_p50_ms.len()));
        o.push('\n');
        for st in STAGES {
            if s.trickle_minus_vanilla_p50_ms.iter().all(|d| !d.stages.contains_key(st)) {
                continue;
            }
            let _ = write!(o, "| {st} |");
            for d in &s.trickle_minus_vanilla_p50_ms {
                let _ = write!(o, " {} |", d.stages.get(st).map_or("-".to_string(), |v| format!("{v:+.1}")));
            }
            o.push('\n');
        }
        o.push('\n');
    }
    if let Some(t) = &s.sweep {
        o.push_str("## Sweep\n\nEach output per run (charts per input in report.html).\n\n|");
        for h in t.inputs.iter().chain(t.outputs.iter().map(|x| &x.path)) {
            let _ = write!(o, " {} |", md_escape(h));
        }
        o.push_str("\n|");
        o.push_str(&"---|".repeat(t.inputs.len()));
        o.push_str(&"---:|".repeat(t.outputs.len()));
        o.push('\n');
        for r in &t.rows {
            o.push('|');
            for i in &t.inputs {
                let v = r.inputs.get(i).map_or("-".into(), |v| crate::summary::SweepTable::words(i, v));
                let _ = write!(o, " {} |", md_escape(&v));
            }
            for (out, v) in t.outputs.iter().zip(&r.values) {
                let _ = write!(o, " {} |", sweep_value(&out.unit, *v));
            }
            o.push('\n');
        }
    }
    o
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// `junit.xml`: one testcase per threshold, a failure element for each that failed.
pub fn junit(s: &Summary, outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|t| !t.passed).count();
    // An interrupted run is one more test case, in error: CI must not read it as complete.
    let note = interruption_note(s);
    let (tests, errors) = (outcomes.len() + usize::from(note.is_some()), usize::from(note.is_some()));
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ =
        writeln!(o, "<testsuites name=\"peerstorm\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">");
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\">",
        xml(&format!("thresholds.{}", s.scenario)),
    );
    if let Some(note) = &note {
        let _ = writeln!(
            o,
            "    <testcase classname=\"{}\" name=\"the run completed\">\n      <error message=\"interrupted\" type=\"interrupted\">{}</error>\n    </testcase>",
            xml(&format!("peerstorm.{}", s.scenario)),
            xml(note)
        );
    }
    for t in outcomes {
        let _ = write!(
            o,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(&format!("peerstorm.{}", s.scenario)),
            xml(&t.threshold)
        );
        if t.passed {
            let _ = writeln!(o, ">\n      <system-out>{}</system-out>\n    </testcase>", xml(&t.message));
        } else {
            let _ = writeln!(
                o,
                ">\n      <failure message=\"{}\" type=\"threshold\">observed {}; expected {}</failure>\n    </testcase>",
                xml(&t.message),
                xml(&t.message),
                xml(&t.threshold)
            );
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

/// A histogram of microseconds as HdrHistogram's `outputPercentileDistribution` prints it,
/// values in milliseconds (output value unit scaling ratio 1000), five ticks per half distance.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if h.is_empty() {
        let _ = writeln!(o, "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]", 0.0, 0.0);
        let _ = writeln!(o, "#[Max     = {:>12.3}, Total count    = {:>12}]", 0.0, 0);
        return o;
    }
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / 1000.0;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(o, "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q));
        } else {
            let _ = writeln!(o, "{value:>12.3} {q:>2.12} {total:>10}");
        }
    }
    let _ = writeln!(o, "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]", h.mean() / 1000.0, h.stdev() / 1000.0);
    let _ = writeln!(o, "#[Max     = {:>12.3}, Total count    = {:>12}]", h.max() as f64 / 1000.0, h.len());
    let _ = writeln!(o, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), h.distinct_values());
    o
}

#[cfg(test)]
mod words {
    use super::*;

    #[test]
    fn figures_are_printed_in_words_and_scaled_units() {
        let mut f = std::collections::BTreeMap::new();
        assert_eq!(failures(&f), "none");
        f.insert("ice_failed".to_string(), 3);
        f.insert("timeout".to_string(), 1);
        assert_eq!(failures(&f), "3 ice_failed, 1 timeout");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4300), "4.2 KiB");
        assert_eq!(bytes(1_700_000), "1.6 MiB");
        assert_eq!(rate_kbps(Some(267.5)), "268 kbit/s");
        assert_eq!(rate_kbps(Some(18_200.0)), "18.2 Mbit/s");
        assert_eq!(rate_kbps(Some(182_000.0)), "182 Mbit/s");
        assert_eq!(rate_kbps(None), "-");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_lists_percentiles_up_to_the_max() {
        let mut h = crate::metrics::histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Value") && lines[0].contains("1/(1-Percentile)"));
        let last = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        let cols: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(cols[1], "1.000000000000", "{last}");
        assert_eq!(cols[2], "1000", "{last}");
        assert!(text.contains("Total count    =         1000"), "{text}");
        let median = lines.iter().find(|l| l.split_whitespace().nth(1) == Some("0.500000000000")).unwrap();
        let v: f64 = median.split_whitespace().next().unwrap().parse().unwrap();
        assert!((499.0..=501.0).contains(&v), "{median}");
    }
}
