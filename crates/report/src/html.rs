//! `report.html`: one self-contained file (inline CSS and SVG, no script, nothing loaded from
//! the network): threshold verdicts, setup-stage CDFs per NAT class, trickle vs vanilla,
//! candidate-type shares and the per-second time series.

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

fn axes(o: &mut String, title: &str, xlabel: &str, ylabel: &str, xmax: f64, ymax: f64, yfmt: &dyn Fn(f64) -> String) {
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
            fmt_num(f * xmax)
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

/// Lines through points; `series`: name and (x, y) points.
fn line_chart(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(String, Vec<(f64, f64)>)],
    ymax: Option<f64>,
) -> String {
    let mut o = String::new();
    let xmax = nice(series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).fold(0.0, f64::max));
    let ymax =
        ymax.unwrap_or_else(|| nice(series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).fold(0.0, f64::max)));
    let pct = ylabel.contains("fraction");
    let fmt = move |v: f64| if pct { format!("{:.0}%", v * 100.0) } else { fmt_num(v) };
    axes(&mut o, title, xlabel, ylabel, xmax, ymax, &fmt);
    let (pw, ph) = (W - L - R, H - T - B);
    for (i, (_, pts)) in series.iter().enumerate() {
        let d: Vec<String> = pts
            .iter()
            .enumerate()
            .map(|(k, (x, y))| {
                format!("{}{:.1},{:.1}", if k == 0 { "M" } else { "L" }, L + x / xmax * pw, T + ph - y / ymax * ph)
            })
            .collect();
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

/// Stacked horizontal bars of shares (each row sums to 1).
fn share_chart(title: &str, rows: &[(String, Vec<f64>)], parts: &[&str]) -> String {
    let mut o = String::new();
    let h = T + B + 22.0 * rows.len() as f64;
    let (l, pw) = (250.0, W - 250.0 - R);
    let _ = write!(
        o,
        r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="10" y="18" class="title">{t}</text>"#,
        t = esc(title)
    );
    for (r, (row, shares)) in rows.iter().enumerate() {
        let y = T + r as f64 * 22.0;
        let _ =
            write!(o, r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#, l - 6.0, y + 14.0, esc(row));
        let mut x = l;
        for (k, s) in shares.iter().enumerate() {
            let w = s * pw;
            if w > 0.0 {
                let _ = write!(
                    o,
                    r#"<rect class="bar" x="{x:.1}" y="{}" width="{w:.1}" height="16" fill="{}"><title>{}: {} {:.1} %</title></rect>"#,
                    y + 2.0,
                    COLORS[k % COLORS.len()],
                    esc(row),
                    parts[k],
                    s * 100.0
                );
            }
            x += w;
        }
    }
    legend(&mut o, &parts.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    o.push_str("</svg>");
    o
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

fn run_charts(o: &mut String, r: &RunMetrics, label: &str) {
    // The nine classes with the most connections (ten colours: "all" takes one).
    let mut classes = crate::summary::scope_values(r, "class");
    classes.sort_by_key(|c| std::cmp::Reverse(r.counter(&scoped("connections", "class", c))));
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    if let Some(h) = r.histograms.get("setup.dc_open") {
        series.push(("all".into(), cdf(h)));
    }
    for c in classes.iter().take(9) {
        if let Some(h) = r.histograms.get(&scoped("setup.dc_open", "class", c)) {
            series.push((c.clone(), cdf(h)));
        }
    }
    if !series.is_empty() {
        o.push_str(&line_chart(
            &format!("{label}: data channel open, CDF per NAT class (the {} largest)", series.len() - 1),
            "ms from the offerer's start",
            "fraction of connections",
            &series,
            Some(1.0),
        ));
    }
    let ts: Vec<(String, Vec<(f64, f64)>)> = ["peers_started", "connections_open", "connections_failed"]
        .iter()
        .filter_map(|k| {
            // Steps: each second's count held across that second.
            r.series.get(*k).map(|v| {
                let pts = v
                    .iter()
                    .enumerate()
                    .flat_map(|(i, n)| [(i as f64, *n as f64), (i as f64 + 1.0, *n as f64)])
                    .collect();
                (k.replace('_', " "), pts)
            })
        })
        .collect();
    if !ts.is_empty() {
        o.push_str(&line_chart(&format!("{label}: per second"), "second", "count per second", &ts, None));
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
.ok{{color:#176d1a;font-weight:bold}}.fail{{color:#b00;font-weight:bold}}
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
            esc(&md.failures.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")),
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
            o.push_str(&line_chart("live signaling latency, CDF", "ms", "fraction of pairs", &series, Some(1.0)));
        }
    }
    if s.modes.len() > 1 {
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
        o.push_str("<h2>Trickle vs vanilla</h2>");
        o.push_str(&bar_chart("setup stages, p50 per run", "ms from the offerer's start", &rows, &series));
    }
    o.push_str("<h2>Selected candidate types</h2>");
    let mut rows = Vec::new();
    for md in &s.modes {
        rows.push((s.label(md), CANDIDATE_TYPES.iter().map(|t| md.shares.get(*t).copied().unwrap_or(0.0)).collect()));
        for (c, f) in md.classes.iter().take(60) {
            rows.push((
                format!("  {c}"),
                CANDIDATE_TYPES.iter().map(|t| f.shares.get(*t).copied().unwrap_or(0.0)).collect(),
            ));
        }
    }
    o.push_str(&share_chart(
        "selected candidate pair: path type (the more indirect end), share of connected",
        &rows,
        &CANDIDATE_TYPES,
    ));
    let sweep = s.sweep();
    for r in &m.runs {
        let label = r.label(sweep);
        let _ = write!(o, "<h2>{}</h2>", esc(&label));
        run_charts(&mut o, r, &label);
    }
    o.push_str("</body></html>\n");
    o
}
