//! `peerstorm inspect`: human and JSON summaries of SDP, candidates and PeerJS frames.

use crate::{EXIT_INVALID, EXIT_OK};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use peerstorm_model::candidate::{AddressKind, Candidate, CandidateType};
use peerstorm_model::diag::Diagnostic;
use peerstorm_model::peerjs::payload::{AnswerPayload, CandidatePayload, OfferPayload};
use peerstorm_model::peerjs::{Frame, MessageType};
use peerstorm_model::sdp::{SdpType, SessionDescription, check_jsep};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};

#[derive(Debug, Subcommand)]
pub enum Inspect {
    /// Summarise an SDP: sections, codecs, candidates by type, fingerprints, and every problem
    /// found (syntax, and JSEP checks such as a missing ice-ufrag or a BUNDLE naming a missing mid).
    Sdp(SdpArgs),
    /// Explain one ICE candidate (`candidate:...`, `a=candidate:...`, or RTCIceCandidateInit JSON).
    Candidate(CandidateArgs),
    /// Explain PeerJS signaling frames, one JSON frame per line; payload SDPs and candidates are
    /// checked too.
    Peerjs(PeerjsArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SdpKind {
    Offer,
    Answer,
    Pranswer,
}

#[derive(Debug, Args)]
pub struct SdpArgs {
    /// The SDP file, or `-` for standard input.
    file: String,
    /// Print one JSON object instead of the summary.
    #[arg(long, conflicts_with = "emit")]
    json: bool,
    /// Print the SDP as peerstorm emits it (byte-identical to well-formed input) instead of the summary.
    #[arg(long)]
    emit: bool,
    /// Check as an offer or an answer (JSEP `a=setup` rules); without it only the common checks run.
    #[arg(long = "type", value_enum)]
    kind: Option<SdpKind>,
}

#[derive(Debug, Args)]
pub struct CandidateArgs {
    /// `candidate:...`, `a=candidate:...`, or `{"candidate":"candidate:...","sdpMid":...}`.
    candidate: String,
    /// Print JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PeerjsArgs {
    /// A file of frames, one JSON object per line, or `-` for standard input.
    file: String,
    /// Print one JSON summary per frame.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: Inspect) -> Result<u8> {
    match cmd {
        Inspect::Sdp(a) => sdp(&a),
        Inspect::Candidate(a) => candidate(&a),
        Inspect::Peerjs(a) => peerjs(&a),
    }
}

fn read_input(file: &str) -> Result<String> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin().read_to_end(&mut bytes).context("reading standard input")?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{file} is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())
    })
}

fn print_diagnostics(origin: &str, diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{origin}: {d}");
    }
}

// ---------------------------------------------------------------------------------------------
// SDP

#[derive(Debug, Serialize)]
struct SdpSummary {
    valid: bool,
    line_ending: &'static str,
    origin: Option<OriginSummary>,
    session_name: Option<String>,
    bundle: Option<Vec<String>>,
    ice_options: Vec<String>,
    ice_lite: bool,
    msid_semantic: Option<String>,
    fingerprints: Vec<String>,
    sections: Vec<SectionSummary>,
    candidates: CandidateCounts,
    diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Serialize)]
struct OriginSummary {
    username: String,
    session_id: String,
    session_version: String,
    address: String,
}

#[derive(Debug, Serialize)]
struct SectionSummary {
    index: usize,
    kind: String,
    mid: Option<String>,
    port: u16,
    proto: String,
    direction: Option<&'static str>,
    ice_ufrag: Option<String>,
    setup: Option<&'static str>,
    rtcp_mux: bool,
    rtcp_rsize: bool,
    codecs: Vec<String>,
    extmaps: usize,
    ssrcs: Vec<u32>,
    rids: Vec<String>,
    simulcast: Option<String>,
    sctp_port: Option<u16>,
    max_message_size: Option<u64>,
    candidates: CandidateCounts,
    end_of_candidates: bool,
}

#[derive(Debug, Default, Serialize)]
struct CandidateCounts {
    total: usize,
    by_type: BTreeMap<&'static str, usize>,
    mdns: usize,
    ipv6: usize,
    tcp: usize,
}

impl CandidateCounts {
    fn add(&mut self, c: &Candidate<'_>) {
        self.total += 1;
        *self.by_type.entry(c.kind.as_str()).or_default() += 1;
        match c.address_kind() {
            AddressKind::Mdns(_) => self.mdns += 1,
            AddressKind::Ip(ip) if ip.is_ipv6() => self.ipv6 += 1,
            _ => {}
        }
        if c.is_tcp() {
            self.tcp += 1;
        }
    }

    fn describe(&self) -> String {
        if self.total == 0 {
            return "none".into();
        }
        let types: Vec<String> = self.by_type.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let mut s = format!("{} ({})", self.total, types.join(", "));
        for (n, what) in [(self.mdns, "mDNS"), (self.ipv6, "IPv6"), (self.tcp, "TCP")] {
            if n > 0 {
                s.push_str(&format!(", {n} {what}"));
            }
        }
        s
    }
}

fn summarize_sdp(sdp: &SessionDescription<'_>, diagnostics: Vec<Diagnostic>) -> SdpSummary {
    let mut all = CandidateCounts::default();
    let mut fingerprints: Vec<String> = sdp.fingerprint().map(|f| f.to_string()).into_iter().collect();
    let sections = sdp
        .media
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let mut counts = CandidateCounts::default();
            for c in m.candidates() {
                counts.add(&c);
                all.add(&c);
            }
            if let Some(f) = m.fingerprint().map(|f| f.to_string())
                && !fingerprints.contains(&f)
            {
                fingerprints.push(f);
            }
            SectionSummary {
                index,
                kind: m.media.kind.to_string(),
                mid: m.mid().map(str::to_string),
                port: m.media.port,
                proto: m.media.proto.to_string(),
                direction: m.direction().map(|d| d.as_str()),
                ice_ufrag: m.ice_ufrag().or(sdp.ice_ufrag()).map(str::to_string),
                setup: m.setup().or(sdp.setup()).map(|s| s.as_str()),
                rtcp_mux: m.rtcp_mux(),
                rtcp_rsize: m.rtcp_rsize(),
                codecs: m.rtpmaps().map(|r| r.to_string()).collect(),
                extmaps: m.extmaps().count(),
                ssrcs: {
                    let mut v: Vec<u32> = m.ssrcs().map(|s| s.ssrc).collect();
                    v.dedup();
                    v
                },
                rids: m.rids().map(|r| r.id.to_string()).collect(),
                simulcast: m.simulcast().map(|s| s.to_string()),
                sctp_port: m.sctp_port(),
                max_message_size: m.max_message_size(),
                candidates: counts,
                end_of_candidates: m.end_of_candidates(),
            }
        })
        .collect();
    SdpSummary {
        valid: !diagnostics.iter().any(Diagnostic::is_error),
        line_ending: match sdp.line_ending {
            peerstorm_model::sdp::LineEnding::Crlf => "CRLF",
            peerstorm_model::sdp::LineEnding::Lf => "LF",
        },
        origin: sdp.origin().map(|o| OriginSummary {
            username: o.username.to_string(),
            session_id: o.session_id.to_string(),
            session_version: o.session_version.to_string(),
            address: o.address.to_string(),
        }),
        session_name: sdp.session_name().map(str::to_string),
        bundle: sdp.bundle().map(|b| b.into_iter().map(str::to_string).collect()),
        ice_options: sdp.ice_options().into_iter().map(str::to_string).collect(),
        ice_lite: sdp.ice_lite(),
        msid_semantic: sdp.msid_semantic().map(|m| m.to_string().trim_start().to_string()),
        fingerprints,
        sections,
        candidates: all,
        diagnostics,
    }
}

fn check_sdp(text: &str, kind: Option<SdpKind>) -> (SessionDescription<'_>, Vec<Diagnostic>) {
    let out = SessionDescription::parse_lenient(text);
    let mut diags = out.diagnostics;
    let kind = kind.map(|k| match k {
        SdpKind::Offer => SdpType::Offer,
        SdpKind::Answer => SdpType::Answer,
        SdpKind::Pranswer => SdpType::Pranswer,
    });
    diags.extend(check_jsep(&out.sdp, kind));
    (out.sdp, diags)
}

fn sdp(a: &SdpArgs) -> Result<u8> {
    let text = read_input(&a.file)?;
    let (sdp, diags) = check_sdp(&text, a.kind);
    let valid = !diags.iter().any(Diagnostic::is_error);
    let origin = if a.file == "-" { "<stdin>" } else { a.file.as_str() };
    let mut out = std::io::stdout().lock();
    if a.emit {
        if valid {
            out.write_all(sdp.emit().as_bytes())?;
        }
        print_diagnostics(origin, &diags);
    } else if a.json {
        let summary = summarize_sdp(&sdp, diags.clone());
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
        print_diagnostics(origin, &diags);
    } else {
        let summary = summarize_sdp(&sdp, Vec::new());
        write_sdp_text(&mut out, &summary)?;
        print_diagnostics(origin, &diags);
        writeln!(out, "{}", verdict(&diags))?;
    }
    Ok(if valid { EXIT_OK } else { EXIT_INVALID })
}

fn verdict(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    match (errors, warnings) {
        (0, 0) => "valid: no problems found".into(),
        (0, w) => format!("valid: {w} warning(s) on stderr"),
        (e, w) => format!("INVALID: {e} error(s), {w} warning(s) on stderr"),
    }
}

fn write_sdp_text(out: &mut impl Write, s: &SdpSummary) -> std::io::Result<()> {
    if let Some(o) = &s.origin {
        writeln!(
            out,
            "session      o={} {} v{} {}  s={}",
            o.username,
            o.session_id,
            o.session_version,
            o.address,
            s.session_name.as_deref().unwrap_or("?")
        )?;
    }
    let mut flags = vec![format!("line endings {}", s.line_ending)];
    if let Some(b) = &s.bundle {
        flags.push(format!("BUNDLE {}", b.join(" ")));
    }
    if !s.ice_options.is_empty() {
        flags.push(format!("ice-options {}", s.ice_options.join(" ")));
    }
    if s.ice_lite {
        flags.push("ice-lite".into());
    }
    if let Some(m) = &s.msid_semantic {
        flags.push(format!("msid-semantic {m}"));
    }
    writeln!(out, "             {}", flags.join(", "))?;
    writeln!(out, "sections     {}", s.sections.len())?;
    for m in &s.sections {
        let mut head = format!(
            "  #{} {:<11} mid={:<3} port {} {}",
            m.index,
            m.kind,
            m.mid.as_deref().unwrap_or("-"),
            m.port,
            m.proto
        );
        if let Some(d) = m.direction {
            head.push_str(&format!(" {d}"));
        }
        writeln!(out, "{head}")?;
        let mut ice = Vec::new();
        if let Some(u) = &m.ice_ufrag {
            ice.push(format!("ufrag {u}"));
        }
        if let Some(s) = m.setup {
            ice.push(format!("setup {s}"));
        }
        if m.rtcp_mux {
            ice.push("rtcp-mux".into());
        }
        if m.rtcp_rsize {
            ice.push("rtcp-rsize".into());
        }
        if !ice.is_empty() {
            writeln!(out, "      {}", ice.join(", "))?;
        }
        if !m.codecs.is_empty() {
            let shown: Vec<&str> = m.codecs.iter().take(6).map(String::as_str).collect();
            let more = m.codecs.len().saturating_sub(6);
            let more = if more > 0 { format!(" (+{more} more)") } else { String::new() };
            writeln!(out, "      codecs {}{more}", shown.join(", "))?;
        }
        if m.extmaps > 0 || !m.ssrcs.is_empty() {
            writeln!(out, "      {} header extensions, ssrcs {:?}", m.extmaps, m.ssrcs)?;
        }
        if !m.rids.is_empty() {
            writeln!(out, "      rids {}  simulcast {}", m.rids.join(" "), m.simulcast.as_deref().unwrap_or("-"))?;
        }
        if let Some(p) = m.sctp_port {
            writeln!(
                out,
                "      sctp-port {p}, max-message-size {}",
                m.max_message_size.map_or("-".into(), |n| n.to_string())
            )?;
        }
        writeln!(
            out,
            "      candidates {}{}",
            m.candidates.describe(),
            if m.end_of_candidates { ", end-of-candidates" } else { "" }
        )?;
    }
    writeln!(out, "candidates   {}", s.candidates.describe())?;
    for f in &s.fingerprints {
        writeln!(out, "fingerprint  {f}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Candidates

#[derive(Debug, Serialize)]
struct CandidateSummary {
    foundation: String,
    component: u16,
    transport: String,
    priority: u32,
    type_preference: u8,
    local_preference: u16,
    address: String,
    address_kind: &'static str,
    port: u16,
    #[serde(rename = "type")]
    kind: CandidateType,
    related_address: Option<String>,
    related_port: Option<u16>,
    tcp_type: Option<&'static str>,
    extensions: BTreeMap<String, String>,
    sdp_mid: Option<String>,
    sdp_m_line_index: Option<u16>,
}

fn candidate(a: &CandidateArgs) -> Result<u8> {
    let input = a.candidate.trim();
    let (text, mid, index) = if input.starts_with('{') {
        match peerstorm_model::candidate::IceCandidateInit::from_json(input) {
            Ok(init) => (init.candidate, init.sdp_mid, init.sdp_m_line_index),
            Err(e) => {
                eprintln!("candidate: not RTCIceCandidateInit JSON: {e}");
                return Ok(EXIT_INVALID);
            }
        }
    } else {
        (input.to_string(), None, None)
    };
    let c = match Candidate::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("candidate: error: {e}");
            eprintln!("  {text}");
            eprintln!("  {}^", " ".repeat(e.column.min(text.len())));
            return Ok(EXIT_INVALID);
        }
    };
    let summary = CandidateSummary {
        foundation: c.foundation.to_string(),
        component: c.component,
        transport: c.transport.to_string(),
        priority: c.priority,
        type_preference: c.priority_type_preference(),
        local_preference: ((c.priority >> 8) & 0xffff) as u16,
        address: c.address.to_string(),
        address_kind: match c.address_kind() {
            AddressKind::Ip(ip) if ip.is_ipv4() => "ipv4",
            AddressKind::Ip(_) => "ipv6",
            AddressKind::Mdns(_) => "mdns",
            AddressKind::Fqdn(_) => "fqdn",
        },
        port: c.port,
        kind: c.kind,
        related_address: c.related_address.as_ref().map(|s| s.to_string()),
        related_port: c.related_port,
        tcp_type: c.tcp_type.map(|t| t.as_str()),
        extensions: c.extensions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        sdp_mid: mid,
        sdp_m_line_index: index,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        let s = &summary;
        writeln!(out, "type         {} ({} {}:{}, {})", s.kind, s.transport, s.address, s.port, s.address_kind)?;
        writeln!(
            out,
            "priority     {} (type preference {}, local preference {}, component {})",
            s.priority, s.type_preference, s.local_preference, s.component
        )?;
        writeln!(out, "foundation   {}", s.foundation)?;
        if let (Some(a), Some(p)) = (&s.related_address, s.related_port) {
            writeln!(out, "related      {a}:{p}")?;
        }
        if let Some(t) = s.tcp_type {
            writeln!(out, "tcptype      {t}")?;
        }
        for (k, v) in &s.extensions {
            writeln!(out, "{k:<12} {v}")?;
        }
        if let Some(m) = &s.sdp_mid {
            writeln!(out, "sdpMid       {m} (m-line {})", s.sdp_m_line_index.map_or("-".into(), |i| i.to_string()))?;
        }
    }
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// PeerJS frames

#[derive(Debug, Serialize)]
struct FrameSummary {
    line: usize,
    #[serde(rename = "type")]
    kind: Option<String>,
    known_type: bool,
    src: Option<String>,
    dst: Option<String>,
    payload_bytes: usize,
    extra_members: Vec<String>,
    detail: Option<String>,
    problems: Vec<String>,
}

fn frame_detail(f: &Frame) -> (Option<String>, Vec<String>) {
    let mut problems = Vec::new();
    let detail = match &f.kind {
        Some(MessageType::Offer) if f.payload.is_some() => match f.payload_as::<OfferPayload>() {
            Ok(p) => {
                problems.extend(sdp_problems(&p.sdp.sdp, SdpType::Offer));
                let ser: Option<String> = p.serialization.clone().map(Into::into);
                Some(format!(
                    "{:?} connection {} label {} reliable {} serialization {}",
                    p.connection_type,
                    p.connection_id,
                    p.label.as_deref().unwrap_or("-"),
                    p.reliable.map_or("-".into(), |r| r.to_string()),
                    ser.as_deref().unwrap_or("-")
                ))
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        Some(MessageType::Answer) if f.payload.is_some() => match f.payload_as::<AnswerPayload>() {
            Ok(p) => {
                problems.extend(sdp_problems(&p.sdp.sdp, SdpType::Answer));
                Some(format!("{:?} connection {}", p.connection_type, p.connection_id))
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        Some(MessageType::Candidate) if f.payload.is_some() => match f.payload_as::<CandidatePayload>() {
            Ok(p) => match p.candidate.parsed() {
                Some(Ok(c)) => Some(format!(
                    "{:?} connection {}: {} {} {}:{}",
                    p.connection_type, p.connection_id, c.kind, c.transport, c.address, c.port
                )),
                Some(Err(e)) => {
                    problems.push(format!("candidate: {e}"));
                    None
                }
                None => Some(format!("{:?} connection {}: end of candidates", p.connection_type, p.connection_id)),
            },
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        Some(MessageType::Error | MessageType::IdTaken) if f.payload.is_some() => f
            .payload_as::<peerstorm_model::peerjs::payload::ErrorPayload>()
            .map(|p| p.msg)
            .map_err(|e| problems.push(e.to_string()))
            .ok(),
        _ => None,
    };
    (detail, problems)
}

fn sdp_problems(text: &str, kind: SdpType) -> Vec<String> {
    let out = SessionDescription::parse_lenient(text);
    let mut d = out.diagnostics;
    d.extend(check_jsep(&out.sdp, Some(kind)));
    d.into_iter().filter(Diagnostic::is_error).map(|d| format!("payload sdp: {d}")).collect()
}

fn peerjs(a: &PeerjsArgs) -> Result<u8> {
    let text = read_input(&a.file)?;
    let origin = if a.file == "-" { "<stdin>" } else { a.file.as_str() };
    let mut out = std::io::stdout().lock();
    let (mut frames, mut invalid) = (0, 0);
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        frames += 1;
        let f = match Frame::parse(line) {
            Ok(f) => f,
            Err(e) => {
                invalid += 1;
                eprintln!("{origin}:{lineno}: error: {e}");
                continue;
            }
        };
        let (detail, problems) = frame_detail(&f);
        if !problems.is_empty() {
            invalid += 1;
            for p in &problems {
                eprintln!("{origin}:{lineno}: error: {p}");
            }
        }
        let s = FrameSummary {
            line: lineno,
            kind: f.kind.as_ref().map(|k| k.as_str().to_string()),
            known_type: !matches!(f.kind, Some(MessageType::Unknown(_)) | None),
            src: f.src.clone(),
            dst: f.dst.clone(),
            payload_bytes: f.payload.as_ref().map_or(0, |p| p.get().len()),
            extra_members: f.extra.iter().map(|(k, _)| k.clone()).collect(),
            detail,
            problems,
        };
        if a.json {
            serde_json::to_writer(&mut out, &s)?;
            writeln!(out)?;
        } else {
            let kind = match (&s.kind, s.known_type) {
                (Some(k), true) => k.clone(),
                (Some(k), false) => format!("{k} (unknown type)"),
                (None, _) => "(no type)".into(),
            };
            let route = format!("{} -> {}", s.src.as_deref().unwrap_or("?"), s.dst.as_deref().unwrap_or("?"));
            let mut line = format!("{lineno:>4}  {kind:<12} {route:<24} payload {} B", s.payload_bytes);
            if let Some(d) = &s.detail {
                line.push_str(&format!("  {d}"));
            }
            if !s.extra_members.is_empty() {
                line.push_str(&format!("  extra members: {}", s.extra_members.join(", ")));
            }
            writeln!(out, "{line}")?;
        }
    }
    if !a.json {
        writeln!(out, "{frames} frame(s), {invalid} invalid")?;
    }
    Ok(if invalid == 0 { EXIT_OK } else { EXIT_INVALID })
}
