//! `report.html`: one self-contained file (inline CSS and SVG, no script, nothing loaded from
//! the network): threshold verdicts, the runs, trickle vs vanilla (chart and table),
//! candidate-type shares with the cause where nothing connected, and per run: every NAT class's
//! figures, the setup-time anatomy per class, data-channel open CDFs (steps, one x axis for the
//! whole report, every class) and the per-second series.

use crate::metrics::{Metrics, RunMetrics, scoped};
use crate::summary::{CANDIDATE_TYPES, STAGES, Summary};
use crate::thresholds::Outcome;
use std::fmt::Write as _;

const COLORS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A "nice" upper bound for an axis.
fn nice(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|v| *v >= max).unwrap_or(10.0 * p)
}

const W: f64 = 760.0;
const H: f64 = 300.0;
const L: f64 = 60.0;
const R: f64 = 230.0;
const T: f64 = 30.0;
const B: f64 = 40.0;

/// The frame, grid and labels of a chart; `xmax` `None`: a categorical x axis (no numeric ticks).
fn axes(
    o: &mut String,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    xmax: Option<f64>,
    ymax: f64,
    yfmt: &dyn Fn(f64) -> String,
) {
    let (pw, ph) = (W - L - R, H - T - B);
    let _ = write!(
        o,
        r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="{L}" y="18" class="title">{t}</text>"#,
        t = esc(title)
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let (x, y) = (L + f * pw, T + ph - f * ph);
        let _ = write!(
            o,
            r##"<line x1="{L}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" class="tick" text-anchor="end">{}</text><text x="{x}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
            L + pw,
            L - 4.0,
            y + 4.0,
            esc(&yfmt(f * ymax)),
            T + ph + 14.0,
            xmax.map_or(String::new(), |xmax| fmt_num(f * xmax))
        );
    }
    let _ = write!(
        o,
        r##"<line x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="#333"/><line x1="{L}" x2="{}" y1="{}" y2="{}" stroke="#333"/><text x="{}" y="{}" class="label" text-anchor="middle">{}</text><text x="14" y="{}" class="label" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"##,
        T + ph,
        L + pw,
        T + ph,
        T + ph,
        L + pw / 2.0,
        H - 6.0,
        esc(xlabel),
        T + ph / 2.0,
        T + ph / 2.0,
        esc(ylabel)
    );
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

fn legend(o: &mut String, names: &[String]) {
    for (i, n) in names.iter().enumerate().take(14) {
        let y = T + 6.0 + i as f64 * 16.0;
        let _ = write!(
            o,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            W - R + 10.0,
            y - 9.0,
            COLORS[i % COLORS.len()],
            W - R + 24.0,
            y,
            esc(&if n.chars().count() > 34 {
                format!("{}…", n.chars().take(33).collect::<String>())
            } else {
                n.clone()
            })
        );
    }
}

/// Steps through points (each value held until the next point: CDFs and per-second counts);
/// `series`: name and (x, y) points; `xmax`: a shared x axis (else the data's own).
fn line_chart(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(String, Vec<(f64, f64)>)],
    ymax: Option<f64>,
    xmax: Option<f64>,
) -> String {
    let mut o = String::new();
    let xmax =
        xmax.unwrap_or_else(|| nice(series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).fold(0.0, f64::max)));
    let ymax =
        ymax.unwrap_or_else(|| nice(series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).fold(0.0, f64::max)));
    let pct = ylabel.contains("fraction");
    let fmt = move |v: f64| if pct { format!("{:.0}%", v * 100.0) } else { fmt_num(v) };
    axes(&mut o, title, xlabel, ylabel, Some(xmax), ymax, &fmt);
    let (pw, ph) = (W - L - R, H - T - B);
    for (i, (_, pts)) in series.iter().enumerate() {
        let (sx, sy) = (|x: f64| L + x / xmax * pw, |y: f64| T + ph - y / ymax * ph);
        let mut d: Vec<String> = Vec::with_capacity(pts.len() * 2);
        for (k, (x, y)) in pts.iter().enumerate() {
            if k == 0 {
                d.push(format!("M{:.1},{:.1}", sx(*x), sy(*y)));
            } else {
                d.push(format!("L{:.1},{:.1}", sx(*x), sy(pts[k - 1].1)));
                d.push(format!("L{:.1},{:.1}", sx(*x), sy(*y)));
            }
        }
        let _ = write!(
            o,
            r#"<path class="series" d="{}" fill="none" stroke="{}" stroke-width="1.8"/>"#,
            d.join(" "),
            COLORS[i % COLORS.len()]
        );
    }
    legend(&mut o, &series.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    o.push_str("</svg>");
    o
}

/// Horizontal bars: one group per row label, one bar per series.
fn bar_chart(title: &str, xlabel: &str, rows: &[String], series: &[(String, Vec<Option<f64>>)]) -> String {
    let mut o = String::new();
    let rh = (series.len() as f64 * 9.0 + 6.0).max(14.0);
    let h = T + B + rh * rows.len() as f64;
    let xmax = nice(series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).fold(0.0, f64::max));
    let (l, pw) = (250.0, W - 250.0 - R);
    let _ = write!(
        o,
        r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="10" y="18" class="title">{t}</text>"#,
        t = esc(title)
    );
    for i in 0..=4 {
        let x = l + i as f64 / 4.0 * pw;
        let _ = write!(
            o,
            r##"<line x1="{x}" x2="{x}" y1="{T}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
            h - B,
            h - B + 14.0,
            fmt_num(i as f64 / 4.0 * xmax)
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let y0 = T + r as f64 * rh;
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
            l - 6.0,
            y0 + rh / 2.0 + 4.0,
            esc(row)
        );
        for (k, (name, vals)) in series.iter().enumerate() {
            if let Some(v) = vals.get(r).copied().flatten() {
                let _ = write!(
                    o,
                    r#"<rect class="bar" x="{l}" y="{:.1}" width="{:.1}" height="8" fill="{}"><title>{}: {} = {:.1}</title></rect>"#,
                    y0 + 3.0 + k as f64 * 9.0,
                    (v / xmax * pw).max(0.5),
                    COLORS[k % COLORS.len()],
                    esc(name),
                    esc(row),
                    v
                );
            }
        }
    }
    let _ = write!(
        o,
        r#"<text x="{}" y="{}" class="label" text-anchor="middle">{}</text>"#,
        l + pw / 2.0,
        h - 6.0,
        esc(xlabel)
    );
    legend(&mut o, &series.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    o.push_str("</svg>");
    o
}

/// One row of a stacked bar chart: its label, the parts' values, and what to write instead of
/// a bar when there is nothing to draw (a class where nothing connected, with its failures).
struct StackRow {
    label: String,
    parts: Vec<f64>,
    empty: Option<String>,
}

/// Stacked horizontal bars: shares (`xmax` 1, each row summing to 1 or 0) or durations.
fn stack_chart(title: &str, xlabel: &str, rows: &[StackRow], parts: &[&str], xmax: f64, unit: &str) -> String {
    let mut o = String::new();
    let h = T + B + 22.0 * rows.len() as f64;
    let (l, pw) = (250.0, W - 250.0 - R);
    let _ = write!(
        o,
        r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="10" y="18" class="title">{t}</text>"#,
        t = esc(title)
    );
    let pct = unit == "%";
    for i in 0..=4 {
        let (x, v) = (l + i as f64 / 4.0 * pw, i as f64 / 4.0 * xmax);
        let _ = write!(
            o,
            r##"<line x1="{x}" x2="{x}" y1="{T}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
            h - B,
            h - B + 14.0,
            if pct { format!("{:.0}%", v * 100.0) } else { fmt_num(v) }
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let y = T + r as f64 * 22.0;
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
            l - 6.0,
            y + 14.0,
            esc(&row.label)
        );
        if row.parts.iter().all(|v| *v <= 0.0) {
            let note = row.empty.as_deref().unwrap_or("nothing to show");
            let _ = write!(o, r#"<text x="{}" y="{}" class="tick empty">{}</text>"#, l + 4.0, y + 14.0, esc(note));
            continue;
        }
        let mut x = l;
        let end = l + row.parts.iter().map(|v| v.max(0.0)).sum::<f64>() / xmax * pw;
        if let Some(note) = &row.empty {
            // Part of the way, then nothing: say why after the bar.
            let _ = write!(o, r#"<text x="{:.1}" y="{}" class="tick empty">{}</text>"#, end + 4.0, y + 14.0, esc(note));
        }
        for (k, v) in row.parts.iter().enumerate() {
            let w = v.max(0.0) / xmax * pw;
            if w > 0.0 {
                let shown = if pct { format!("{:.1} %", v * 100.0) } else { format!("{v:.1} {unit}") };
                let _ = write!(
                    o,
                    r#"<rect class="bar" x="{x:.1}" y="{}" width="{w:.1}" height="16" fill="{}"><title>{}: {} {shown}</title></rect>"#,
                    y + 2.0,
                    COLORS[k % COLORS.len()],
                    esc(&row.label),
                    parts[k],
                );
            }
            x += w;
        }
    }
    let _ = write!(
        o,
        r#"<text x="{}" y="{}" class="label" text-anchor="middle">{}</text>"#,
        l + pw / 2.0,
        h - 6.0,
        esc(xlabel)
    );
    legend(&mut o, &parts.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    o.push_str("</svg>");
    o
}

/// Failures by cause in words, for a class where nothing connected.
fn nothing_connected(f: &crate::summary::Figures) -> String {
    format!("no connection of {}: {}", f.pairs, crate::render::failures(&f.failures))
}

/// The setup-time anatomy: each part's duration from the medians of the offerer's milestones.
const WATERFALL: [(&str, &str, &str); 6] = [
    ("join", "", "open"),
    ("offer (gathering, when vanilla)", "open", "offer_sent"),
    ("answer", "offer_sent", "answer_received"),
    ("ICE", "answer_received", "ice_connected"),
    ("DTLS", "ice_connected", "dtls_connected"),
    ("SCTP and open", "dtls_connected", "dc_open"),
];

fn waterfall_row(label: String, f: &crate::summary::Figures) -> StackRow {
    let at = |st: &str| if st.is_empty() { Some(0.0) } else { f.stages.get(st).map(|s| s.p50_ms) };
    let parts = WATERFALL
        .iter()
        .map(|(_, from, to)| match (at(from), at(to)) {
            (Some(a), Some(b)) => (b - a).max(0.0),
            _ => 0.0,
        })
        .collect();
    let empty = (f.pairs_ok == 0).then(|| nothing_connected(f));
    StackRow { label, parts, empty }
}

/// Every class of a run, most connections first (ties by name): none left out.
fn classes_in_order(md: &crate::summary::ModeSummary) -> Vec<(&String, &crate::summary::Figures)> {
    let mut v: Vec<_> = md.classes.iter().collect();
    v.sort_by(|a, b| b.1.pairs.cmp(&a.1.pairs).then_with(|| a.0.cmp(b.0)));
    v
}

/// A table of every NAT class of a run: pairs, ok %, stage p50/p95, goodput, paths, failures.
fn class_table(o: &mut String, md: &crate::summary::ModeSummary) {
    const SHOWN: [(&str, &str); 6] = [
        ("offer_sent", "offer"),
        ("answer_received", "answer"),
        ("ice_connected", "ICE"),
        ("dtls_connected", "DTLS"),
        ("dc_open", "open"),
        ("first_echo", "echo"),
    ];
    o.push_str(
        "<p>Milestones of the offerer, p50 / p95 in ms from its start: offer_sent, answer_received, \
         ice_connected, dtls_connected, dc_open, first_echo.</p>",
    );
    o.push_str("<table class=\"classes\"><tr><th>class</th><th>pairs</th><th>ok %</th>");
    for (_, short) in SHOWN {
        let _ = write!(o, "<th>{short}</th>");
    }
    o.push_str("<th>goodput p50</th><th>paths</th><th>failures</th></tr>");
    let mut rows: Vec<(String, &crate::summary::Figures)> = vec![("all".to_string(), &md.all)];
    rows.extend(classes_in_order(md).into_iter().map(|(c, f)| (c.clone(), f)));
    for (label, f) in rows {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{:.1}</td>",
            esc(&label),
            f.pairs,
            if f.pairs_ok == 0 && f.pairs > 0 { "fail" } else { "num" },
            f.success_rate * 100.0
        );
        for (st, _) in SHOWN {
            match f.stages.get(st) {
                Some(x) => {
                    let _ = write!(o, "<td>{:.0} / {:.0}</td>", x.p50_ms, x.p95_ms);
                }
                None => o.push_str("<td>-</td>"),
            }
        }
        let paths: Vec<String> = CANDIDATE_TYPES
            .iter()
            .filter_map(|t| f.shares.get(*t).filter(|v| **v > 0.0).map(|v| format!("{t} {:.0}%", v * 100.0)))
            .collect();
        let _ = write!(
            o,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            crate::render::rate_kbps(f.goodput_kbps_p50()),
            esc(&if paths.is_empty() { "-".to_string() } else { paths.join(", ") }),
            esc(&crate::render::failures(&f.failures))
        );
    }
    o.push_str("</table>");
}

/// The CDF of a histogram of microseconds: (ms, fraction), at most ~200 points.
fn cdf(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len().max(1) as f64;
    let mut pts = vec![(h.min() as f64 / 1000.0, 0.0)];
    let mut acc = 0u64;
    let recorded: Vec<(u64, u64)> = h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
    let step = (recorded.len() / 200).max(1);
    for (i, (v, c)) in recorded.iter().enumerate() {
        acc += c;
        if i % step == 0 || i + 1 == recorded.len() {
            pts.push((*v as f64 / 1000.0, acc as f64 / n));
        }
    }
    pts
}

/// Classes per CDF chart: ten colours, one for "all".
const PER_CHART: usize = 9;

fn run_charts(o: &mut String, r: &RunMetrics, label: &str, xmax: f64) {
    // Every class, most connections first (ties by name), nine to a chart.
    let mut classes = crate::summary::scope_values(r, "class");
    classes.sort_by(|a, b| {
        let n = |c: &str| r.counter(&scoped("connections", "class", c));
        n(b).cmp(&n(a)).then_with(|| a.cmp(b))
    });
    let with_samples: Vec<&String> = classes
        .iter()
        .filter(|c| r.histograms.get(&scoped("setup.dc_open", "class", c)).is_some_and(|h| !h.is_empty()))
        .collect();
    let charts = with_samples.len().div_ceil(PER_CHART).max(1);
    for (k, chunk) in with_samples.chunks(PER_CHART).enumerate().chain(
        // A run where no class opened a channel still gets its "all" chart if it has one.
        (with_samples.is_empty()).then_some((0, &[][..])),
    ) {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        if let Some(h) = r.histograms.get("setup.dc_open").filter(|h| !h.is_empty()) {
            series.push(("all".into(), cdf(h)));
        }
        for c in chunk {
            if let Some(h) = r.histograms.get(&scoped("setup.dc_open", "class", c)) {
                series.push(((*c).clone(), cdf(h)));
            }
        }
        if series.is_empty() {
            continue;
        }
        let part = if charts > 1 { format!(", {} of {charts}", k + 1) } else { String::new() };
        o.push_str(&line_chart(
            &format!("{label}: data channel open, CDF per NAT class{part}"),
            "ms from the offerer's start (one axis for every CDF of the report)",
            "fraction of connections",
            &series,
            Some(1.0),
            Some(xmax),
        ));
    }
    let ts: Vec<(String, Vec<(f64, f64)>)> = ["peers_started", "connections_open", "connections_failed"]
        .iter()
        .filter_map(|k| {
            r.series.get(*k).map(|v| {
                let pts = v
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i as f64, *n as f64))
                    .chain(v.len().checked_sub(1).map(|i| (i as f64 + 1.0, v[i] as f64)))
                    .collect();
                (k.replace('_', " "), pts)
            })
        })
        .collect();
    if !ts.is_empty() {
        o.push_str(&line_chart(&format!("{label}: per second"), "second", "count per second", &ts, None, None));
    }
}

/// The x axis every dc_open CDF of the report shares: the slowest opening of any run.
fn shared_cdf_axis(m: &Metrics) -> f64 {
    let slowest = m
        .runs
        .iter()
        .filter_map(|r| r.histograms.get("setup.dc_open").filter(|h| !h.is_empty()))
        .map(|h| h.max() as f64 / 1000.0)
        .fold(0.0, f64::max);
    nice(slowest)
}

/// Points joined by straight lines, with a marker at each: an output against the values an
/// input takes (evenly spaced, in the order the runs took them); a gap where a run had no samples.
fn xy_chart(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
    pct: bool,
) -> String {
    let mut o = String::new();
    let top = series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).fold(0.0, f64::max);
    let ymax = if pct { 1.0 } else { nice(top) };
    let fmt = move |v: f64| if pct { format!("{:.0}%", v * 100.0) } else { fmt_num(v) };
    let (pw, ph) = (W - L - R, H - T - B);
    axes(&mut o, title, xlabel, ylabel, None, ymax, &fmt);
    let n = categories.len().max(1);
    let x = |i: usize| L + (i as f64 + 0.5) / n as f64 * pw;
    let y = |v: f64| T + ph - (v / ymax).clamp(0.0, 1.0) * ph;
    for (i, c) in categories.iter().enumerate() {
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{}" class="tick category" text-anchor="middle">{}</text>"#,
            x(i),
            T + ph + 14.0,
            esc(c)
        );
    }
    for (k, (_, vals)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in vals.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x(i), y(*v));
                    let _ =
                        write!(o, r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#, x(i), y(*v));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                o,
                r#"<path class="series" d="{}" fill="none" stroke="{color}" stroke-width="1.8"/>"#,
                d.trim_end()
            );
        }
    }
    legend(&mut o, &series.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    o.push_str("</svg>");
    o
}

/// The sweep: its table, then a chart per output against each swept input, a line per
/// combination of the other inputs.
fn sweep_section(o: &mut String, t: &crate::summary::SweepTable) {
    use crate::summary::SweepTable;
    o.push_str("<h2 id=\"sweep\">Sweep</h2><table class=\"sweep\"><tr>");
    for h in t.inputs.iter().chain(t.outputs.iter().map(|x| &x.path)) {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>");
    for r in &t.rows {
        o.push_str("<tr>");
        for i in &t.inputs {
            let v = r.inputs.get(i).map_or("-".into(), |v| SweepTable::words(i, v));
            let _ = write!(o, "<td>{}</td>", esc(&v));
        }
        for (out, v) in t.outputs.iter().zip(&r.values) {
            let _ = write!(o, "<td>{}</td>", esc(&crate::render::sweep_value(&out.unit, *v)));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    for (k, out) in t.outputs.iter().enumerate() {
        for input in &t.inputs {
            let categories = t.values_of(input);
            let others: Vec<&String> = t.inputs.iter().filter(|i| *i != input).collect();
            // One line per combination of the other inputs, in the order the runs took them.
            let mut series: Vec<(String, Vec<Option<f64>>)> = Vec::new();
            for r in &t.rows {
                let name = if others.is_empty() {
                    out.path.clone()
                } else {
                    others
                        .iter()
                        .map(|i| r.inputs.get(*i).map_or("-".into(), |v| SweepTable::words(i, v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let Some(at) = r.inputs.get(input).and_then(|v| categories.iter().position(|c| c == v)) else {
                    continue;
                };
                let idx = match series.iter().position(|(n, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        series.push((name, vec![None; categories.len()]));
                        series.len() - 1
                    }
                };
                series[idx].1[at] = r.values[k];
            }
            let words: Vec<String> = categories.iter().map(|c| SweepTable::words(input, c)).collect();
            o.push_str(&xy_chart(
                &format!("{} against {input}", out.path),
                input,
                &format!("{} ({})", out.path, out.unit),
                &words,
                &series,
                out.unit == "fraction",
            ));
        }
    }
}

/// `report.html`.
pub fn html(s: &Summary, m: &Metrics, outcomes: &[Outcome]) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>peerstorm: {t}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.ok{{color:#176d1a;font-weight:bold}}.fail{{color:#b00;font-weight:bold}}.empty{{fill:#b00}}
table.classes,table.trickle{{font-size:12px}}table.classes td,table.classes th,table.trickle td{{white-space:nowrap;font-variant-numeric:tabular-nums}}
svg.chart{{display:block;margin:1em 0;background:#fff;border:1px solid #eee}}
.title{{font-weight:bold;font-size:13px}}.tick{{font-size:11px;fill:#555}}.label{{font-size:12px}}.legend{{font-size:11px}}
</style></head><body><h1>peerstorm report: {t}</h1><p>Seed {seed}; shards {shards}; schema <code>{schema}</code>.</p>"#,
        t = esc(&s.scenario),
        seed = s.seed,
        shards = esc(&s.shards.join(", ")),
        schema = esc(&s.schema)
    );
    if let Some(note) = crate::render::interruption_note(s) {
        let _ = write!(o, r#"<p class="fail" id="interrupted">{}.</p>"#, esc(&note));
    }
    if !outcomes.is_empty() {
        let failed = outcomes.iter().filter(|t| !t.passed).count();
        let _ = write!(
            o,
            r#"<h2 id="thresholds">Thresholds: <span class="{}">{}</span></h2><table><tr><th>threshold</th><th>verdict</th><th>observed</th></tr>"#,
            if failed == 0 { "ok" } else { "fail" },
            if failed == 0 { "all held".to_string() } else { format!("{failed} of {} failed", outcomes.len()) }
        );
        for t in outcomes {
            let _ = write!(
                o,
                r#"<tr><td><code>{}</code></td><td class="{}">{}</td><td>{}</td></tr>"#,
                esc(&t.threshold),
                if t.passed { "ok" } else { "fail" },
                if t.passed { "ok" } else { "FAIL" },
                esc(&t.message)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("<h2>Runs</h2><table><tr><th>run</th><th>peers</th><th>connections</th><th>ok %</th><th>failures</th><th>dc_open p50 ms</th><th>p95</th><th>p99</th><th>goodput p50 kbit/s</th></tr>");
    for md in &s.modes {
        let dc = md.stages.get("dc_open");
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.label(md)),
            md.peers,
            md.pairs,
            md.success_rate * 100.0,
            esc(&crate::render::failures(&md.failures)),
            f(dc.map(|d| d.p50_ms)),
            f(dc.map(|d| d.p95_ms)),
            f(dc.map(|d| d.p99_ms)),
            f(md.goodput_kbps_p50())
        );
    }
    o.push_str("</table>");
    for md in s.modes.iter().filter(|m| !m.signal.is_empty()) {
        o.push_str("<h2>Live signaling latency</h2><table><tr><th>latency (ms)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>");
        for (k, st) in &md.signal {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                esc(k),
                st.count,
                st.p50_ms,
                st.p90_ms,
                st.p99_ms,
                st.max_ms
            );
        }
        o.push_str("</table>");
        if !md.resources.is_empty() {
            o.push_str("<table><tr><th>resource</th><th>value</th></tr>");
            for (k, v) in &md.resources {
                let _ = write!(o, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
            }
            o.push_str("</table>");
        }
        let series: Vec<(String, Vec<(f64, f64)>)> = ["connect_open", "exchange", "exchange_uncorrected"]
            .iter()
            .filter_map(|k| {
                m.runs.iter().find_map(|r| r.histograms.get(&format!("signal.{k}"))).map(|h| (k.to_string(), cdf(h)))
            })
            .collect();
        if !series.is_empty() {
            o.push_str(&line_chart("live signaling latency, CDF", "ms", "fraction of pairs", &series, Some(1.0), None));
        }
    }
    if let Some(t) = &s.sweep {
        sweep_section(&mut o, t);
    }
    // Every stage of every run side by side; a larger sweep has its charts per input instead.
    if s.modes.len() > 1 && (s.sweep.is_none() || s.modes.len() <= 6) {
        let rows: Vec<String> = STAGES
            .iter()
            .filter(|st| s.modes.iter().any(|m| m.stages.contains_key(**st)))
            .map(|s| s.to_string())
            .collect();
        let series: Vec<(String, Vec<Option<f64>>)> = s
            .modes
            .iter()
            .map(|m| (s.label(m), rows.iter().map(|st| m.stages.get(st).map(|x| x.p50_ms)).collect()))
            .collect();
        let both = s.modes.iter().any(|m| m.ice == "trickle") && s.modes.iter().any(|m| m.ice == "vanilla");
        o.push_str(if both {
            "<h2 id=\"trickle\">Trickle vs vanilla</h2>"
        } else {
            "<h2 id=\"stages\">Setup stages per run</h2>"
        });
        o.push_str(&bar_chart("setup stages, p50 per run", "ms from the offerer's start", &rows, &series));
    }
    if !s.trickle_minus_vanilla_p50_ms.is_empty() {
        let stages: Vec<&str> = STAGES
            .iter()
            .copied()
            .filter(|st| s.trickle_minus_vanilla_p50_ms.iter().any(|d| d.stages.contains_key(*st)))
            .collect();
        o.push_str("<p>Trickle minus vanilla, p50 per stage (ms; negative: trickle is sooner).</p><table class=\"trickle\"><tr><th>stage</th>");
        for d in &s.trickle_minus_vanilla_p50_ms {
            let _ = write!(o, "<th>at {}</th>", esc(&d.label()));
        }
        o.push_str("</tr>");
        for st in &stages {
            let _ = write!(o, "<tr><td>{st}</td>");
            for d in &s.trickle_minus_vanilla_p50_ms {
                match d.stages.get(*st) {
                    Some(v) => {
                        let _ = write!(o, "<td>{v:+.1}</td>");
                    }
                    None => o.push_str("<td>-</td>"),
                }
            }
            o.push_str("</tr>");
        }
        o.push_str("</table>");
    }
    o.push_str("<h2>Selected candidate types</h2>");
    let mut rows = Vec::new();
    for md in &s.modes {
        let shares = |f: &crate::summary::Figures| {
            CANDIDATE_TYPES.iter().map(|t| f.shares.get(*t).copied().unwrap_or(0.0)).collect()
        };
        rows.push(StackRow {
            label: s.label(md),
            parts: shares(&md.all),
            empty: (md.pairs_ok == 0).then(|| nothing_connected(&md.all)),
        });
        for (c, f) in classes_in_order(md) {
            let empty = f.selected.is_empty().then(|| nothing_connected(f));
            rows.push(StackRow { label: format!("  {c}"), parts: shares(f), empty });
        }
    }
    o.push_str(&stack_chart(
        "selected candidate pair: path type (the more indirect end), share of connected",
        "share of the connections that connected",
        &rows,
        &CANDIDATE_TYPES,
        1.0,
        "%",
    ));
    let sweep = s.sweep();
    let xmax = shared_cdf_axis(m);
    for (r, md) in m.runs.iter().zip(&s.modes) {
        let label = r.label(sweep);
        let _ = write!(o, "<h2>{}</h2>", esc(&label));
        if !md.all.media.is_empty() {
            o.push_str("<h3>Media calls (per received stream)</h3><table><tr><th>metric</th><th>count</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>");
            for (name, count, v) in crate::render::media_rows(&md.all) {
                let _ = write!(
                    o,
                    "<tr><td>{name}</td><td>{count}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&v[0]),
                    esc(&v[1]),
                    esc(&v[2]),
                    esc(&v[3])
                );
            }
            o.push_str("</table>");
            if md.classes.len() > 1 {
                o.push_str("<table><tr><th>NAT class</th><th>media</th></tr>");
                for (c, f) in classes_in_order(md) {
                    let _ =
                        write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(c), esc(&crate::render::media_cell(&f.media)));
                }
                o.push_str("</table>");
            }
        }
        if md.signal.is_empty() {
            o.push_str("<h3>Every NAT class</h3>");
            class_table(&mut o, md);
            let mut rows = vec![waterfall_row("all".into(), &md.all)];
            rows.extend(classes_in_order(md).into_iter().map(|(c, f)| waterfall_row(c.clone(), f)));
            let longest = rows.iter().map(|r| r.parts.iter().sum::<f64>()).fold(0.0, f64::max);
            let parts: Vec<&str> = WATERFALL.iter().map(|(name, _, _)| *name).collect();
            o.push_str(&stack_chart(
                &format!("{label}: setup-time anatomy per NAT class (differences of the offerer's milestone medians)"),
                "ms from the offerer's start",
                &rows,
                &parts,
                nice(longest),
                "ms",
            ));
        }
        run_charts(&mut o, r, &label, xmax);
    }
    o.push_str("</body></html>\n");
    o
}
