//! `peerstorm conform`: numbered conformance cases for PeerJS brokers ([`broker`]) and TURN
//! servers ([`turn`]), run against any implementation over the wire, in the manner of h2spec
//! and Autobahn|Testsuite: each case has an ID, a level, the section of the protocol notes it
//! checks, and a verdict with what was observed against what was expected.

pub mod broker;
pub mod client;
pub mod turn;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// How much a case matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Reference behaviour that clients depend on.
    Must,
    /// Reference behaviour that is arguably a bug: either answer is tolerated.
    Should,
    /// What a production broker facing hostile clients needs.
    Harden,
}

/// A case that did not see what it expected.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fail {
    pub observed: String,
    pub expected: String,
}

/// `Ok(None)`: passed; `Ok(Some(note))`: passed, with an observation worth reporting.
pub type Check = Result<Option<String>, Fail>;

/// One numbered case.
pub struct Case<C> {
    pub id: &'static str,
    pub level: Level,
    pub section: &'static str,
    pub description: &'static str,
    pub run: fn(C) -> Pin<Box<dyn Future<Output = Check>>>,
}

impl<C> std::fmt::Debug for Case<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?}, {})", self.id, self.level, self.section)
    }
}

/// A case's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "FAILED")]
    Failed,
    /// A SHOULD not met.
    #[serde(rename = "NON-STRICT")]
    NonStrict,
    /// Passed, with an observation.
    #[serde(rename = "INFO")]
    Info,
}

/// One case's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    pub id: String,
    pub level: Level,
    pub section: String,
    pub description: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub ms: u64,
}

/// Which cases to run.
#[derive(Debug, Clone)]
pub struct Selection {
    /// `peerjs-1.0` (MUST and SHOULD), `hardening` (HARDEN), `all`.
    pub profile: String,
    /// Shell-style patterns on case IDs (`relay.*`); empty: every case of the profile.
    pub patterns: Vec<String>,
    /// Case IDs left out whatever the patterns say (`--fast`).
    pub exclude: Vec<String>,
}

/// `*` and `?` globbing.
pub fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

impl Selection {
    pub fn wants(&self, id: &str, level: Level) -> bool {
        let in_profile = match self.profile.as_str() {
            "hardening" => level == Level::Harden,
            "all" => true,
            _ => level != Level::Harden,
        };
        in_profile
            && (self.patterns.is_empty() || self.patterns.iter().any(|p| glob(p, id)))
            && !self.exclude.iter().any(|x| x == id)
    }
}

/// Runs the selected cases, `parallel` at a time (each case uses its own IDs and sockets);
/// `last` cases (IDs) run alone at the end. Every case is bounded by `case_timeout`.
pub async fn run<C: Clone + 'static>(
    cases: Vec<Case<C>>,
    ctx: C,
    sel: &Selection,
    parallel: usize,
    case_timeout: Duration,
    last: &[&str],
    mut progress: impl FnMut(&CaseResult),
) -> Vec<CaseResult> {
    let chosen: Vec<Case<C>> = cases.into_iter().filter(|c| sel.wants(c.id, c.level)).collect();
    let (later, now): (Vec<_>, Vec<_>) = chosen.into_iter().partition(|c| last.contains(&c.id));
    let local = tokio::task::LocalSet::new();
    let mut results = local
        .run_until(async {
            let sem = std::rc::Rc::new(tokio::sync::Semaphore::new(parallel.max(1)));
            // Results arrive as cases finish, so `progress` streams them (a slow case does not
            // hold back the report of those that finished after it started).
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut handles = Vec::with_capacity(now.len());
            for case in now {
                let (ctx, sem, tx) = (ctx.clone(), sem.clone(), tx.clone());
                let about = (case.id, case.level, case.section, case.description);
                handles.push((
                    about,
                    tokio::task::spawn_local(async move {
                        let _permit = sem.acquire().await;
                        let _ = tx.send(one(case, ctx, case_timeout).await);
                    }),
                ));
            }
            drop(tx);
            let mut out = Vec::with_capacity(handles.len());
            while let Some(r) = rx.recv().await {
                progress(&r);
                out.push(r);
            }
            // A case that panicked sent nothing: it is a failure of that case, never a gap.
            for ((id, level, section, description), h) in handles {
                if let Err(e) = h.await {
                    let r = CaseResult {
                        id: id.into(),
                        level,
                        section: section.into(),
                        description: description.into(),
                        verdict: Verdict::Failed,
                        observed: Some(format!("the case itself failed: {e}")),
                        expected: Some("a verdict".into()),
                        note: None,
                        ms: 0,
                    };
                    progress(&r);
                    out.push(r);
                }
            }
            for case in later {
                let r = one(case, ctx.clone(), case_timeout).await;
                progress(&r);
                out.push(r);
            }
            out
        })
        .await;
    results.sort_by_key(|r| natural(&r.id));
    results
}

/// `relay.10` after `relay.9`.
fn natural(id: &str) -> (String, u32) {
    let (area, n) = id.rsplit_once('.').unwrap_or((id, "0"));
    (area.to_string(), n.parse().unwrap_or(0))
}

async fn one<C>(case: Case<C>, ctx: C, timeout: Duration) -> CaseResult {
    let start = Instant::now();
    let r = match tokio::time::timeout(timeout, (case.run)(ctx)).await {
        Ok(r) => r,
        Err(_) => {
            Err(Fail { observed: format!("no verdict in {} s", timeout.as_secs()), expected: "a verdict".into() })
        }
    };
    let (verdict, observed, expected, note) = match r {
        Ok(None) => (Verdict::Ok, None, None, None),
        Ok(Some(n)) => (Verdict::Info, None, None, Some(n)),
        Err(f) => (
            if case.level == Level::Should { Verdict::NonStrict } else { Verdict::Failed },
            Some(f.observed),
            Some(f.expected),
            None,
        ),
    };
    CaseResult {
        id: case.id.into(),
        level: case.level,
        section: case.section.into(),
        description: case.description.into(),
        verdict,
        observed,
        expected,
        note,
        ms: start.elapsed().as_millis() as u64,
    }
}

/// Exit status: 1 when a MUST failed (or a HARDEN case in a profile that asked for them, or a
/// SHOULD with `strict`), else 0.
pub fn exit_status(results: &[CaseResult], strict: bool) -> u8 {
    let bad = results.iter().any(|r| match (r.level, r.verdict) {
        (Level::Must | Level::Harden, Verdict::Failed) => true,
        (Level::Should, Verdict::NonStrict) => strict,
        _ => false,
    });
    u8::from(bad)
}

/// The summary table.
pub fn table(results: &[CaseResult]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for r in results {
        let _ = write!(
            o,
            "{:<11} {:<7} {:<10} {:<6} {}",
            r.verdict_name(),
            format!("{:?}", r.level).to_uppercase(),
            r.id,
            r.section,
            r.description
        );
        if let (Some(obs), Some(exp)) = (&r.observed, &r.expected) {
            let _ = write!(o, "\n{:>37}observed: {}\n{:>37}expected: {}", "", clip(obs), "", clip(exp));
        }
        if let Some(n) = &r.note {
            let _ = write!(o, "\n{:>37}{}", "", clip(n));
        }
        o.push('\n');
    }
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        o,
        "{} cases: {} OK, {} INFO, {} NON-STRICT, {} FAILED",
        results.len(),
        count(Verdict::Ok),
        count(Verdict::Info),
        count(Verdict::NonStrict),
        count(Verdict::Failed)
    );
    o
}

fn clip(s: &str) -> String {
    if s.chars().count() > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s.to_string() }
}

impl CaseResult {
    pub fn verdict_name(&self) -> &'static str {
        match self.verdict {
            Verdict::Ok => "OK",
            Verdict::Failed => "FAILED",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Info => "INFO",
        }
    }
}

/// JUnit XML: one testcase per case; FAILED (and NON-STRICT with `strict`) as failures.
pub fn junit(suite: &str, results: &[CaseResult], strict: bool) -> String {
    let x = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failing = |r: &CaseResult| r.verdict == Verdict::Failed || (strict && r.verdict == Verdict::NonStrict);
    let failures = results.iter().filter(|r| failing(r)).count();
    let mut o = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"peerstorm conform\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n",
        results.len(),
        x(suite),
        results.len()
    );
    for r in results {
        o.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{} {}\" time=\"{:.3}\">",
            x(suite),
            x(&r.id),
            x(&r.description),
            r.ms as f64 / 1000.0
        ));
        if failing(r) {
            o.push_str(&format!(
                "<failure type=\"{}\" message=\"{}\">observed: {}\nexpected: {}</failure>",
                r.verdict_name(),
                x(r.observed.as_deref().unwrap_or("")),
                x(r.observed.as_deref().unwrap_or("")),
                x(r.expected.as_deref().unwrap_or(""))
            ));
        } else if let Some(n) = r.note.as_ref().or(r.observed.as_ref()) {
            o.push_str(&format!("<system-out>{}: {}</system-out>", r.verdict_name(), x(n)));
        }
        o.push_str("</testcase>\n");
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_profiles_select_cases() {
        assert!(glob("relay.*", "relay.12"));
        assert!(!glob("relay.*", "queue.1"));
        assert!(glob("*.1", "http.1"));
        let sel = Selection { profile: "peerjs-1.0".into(), patterns: vec![], exclude: vec![] };
        assert!(
            sel.wants("relay.1", Level::Must)
                && sel.wants("relay.4", Level::Should)
                && !sel.wants("robust.1", Level::Harden)
        );
        let sel = Selection { profile: "hardening".into(), patterns: vec![], exclude: vec![] };
        assert!(!sel.wants("relay.1", Level::Must) && sel.wants("robust.1", Level::Harden));
    }

    #[test]
    fn exit_status_follows_the_levels() {
        let r = |level, verdict| CaseResult {
            id: "x.1".into(),
            level,
            section: "§1".into(),
            description: String::new(),
            verdict,
            observed: None,
            expected: None,
            note: None,
            ms: 0,
        };
        assert_eq!(exit_status(&[r(Level::Must, Verdict::Ok), r(Level::Should, Verdict::NonStrict)], false), 0);
        assert_eq!(exit_status(&[r(Level::Should, Verdict::NonStrict)], true), 1);
        assert_eq!(exit_status(&[r(Level::Must, Verdict::Failed)], false), 1);
        assert!(broker::cases().len() >= 50, "at least 50 broker cases");
        let ids: std::collections::BTreeSet<&str> = broker::cases().iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), broker::cases().len(), "case IDs are unique");
    }
}
