//! `peerstorm conform`: the numbered conformance suites for PeerJS brokers and TURN servers, an
//! end-to-end check through a broker, and the implementation × case matrix.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use peerstorm_conform::{CaseResult, Selection};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum Conform {
    /// Check a PeerJS broker (PeerServer) against the numbered cases.
    #[command(after_help = "Examples:\n  \
peerstorm conform broker http://127.0.0.1:9000/ --list\n  \
peerstorm conform broker http://127.0.0.1:9000/ --expire-timeout 5000 --alive-timeout 60000\n  \
peerstorm conform broker http://127.0.0.1:9000/ --profile hardening --junit conform.xml\n  \
peerstorm conform broker http://127.0.0.1:9000/myapp/ --key sekret --cases 'relay.*,queue.*'\n\n\
Levels: MUST (reference behaviour clients depend on), SHOULD (reference behaviour that is arguably\n\
a bug: NON-STRICT when not met), HARDEN (what a broker facing hostile clients needs).\n\
Exit status: 0 every MUST held (and every HARDEN case asked for, and every SHOULD with --strict),\n\
1 otherwise, 2 when the suite could not run (the broker unreachable, bad arguments).")]
    Broker(BrokerArgs),
    /// Check a STUN/TURN server (RFC 8489, 8656, 5780) against the numbered cases.
    #[command(after_help = "Example:\n  \
peerstorm conform turn turn:127.0.0.1:3478 --user test:test --alt-address 127.0.0.2:3479")]
    Turn(TurnArgs),
    /// Two full-stack virtual peers connect through the broker and exchange data in every
    /// PeerJS serialization; --browser makes one side Chromium running peerjs@1.5.5.
    E2e(E2eArgs),
    /// Run every suite against peerstorm's servers, peer@1.0.2 and coturn (all started here)
    /// and write the implementation × case matrix.
    Matrix(MatrixArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// Comma-separated case patterns (`relay.*,queue.1`); default: every case of the profile.
    #[arg(long)]
    cases: Option<String>,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
    /// NON-STRICT (a SHOULD not met) fails the run too.
    #[arg(long)]
    strict: bool,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// The PeerServer: http://HOST:PORT/PATH/, the ws://…/peerjs?key=KEY URL `serve broker`
    /// prints, https:// or wss:// for TLS, or HOST:PORT.
    url: String,
    /// TLS: trust the certificates in this PEM file too, besides the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// TLS: do not check the server's certificate at all.
    #[arg(long)]
    insecure: bool,
    #[arg(long, default_value = "peerjs")]
    key: String,
    /// The mount path, if not in the URL.
    #[arg(long)]
    path: Option<String>,
    /// peerjs-1.0 (MUST and SHOULD), hardening (HARDEN), all.
    #[arg(long, default_value = "peerjs-1.0")]
    profile: String,
    /// The broker's expire_timeout (reference default 5000).
    #[arg(long, default_value_t = 5000)]
    expire_timeout: u64,
    /// The broker's alive_timeout (the reference CLI's default is 60000).
    #[arg(long, default_value_t = 60000)]
    alive_timeout: u64,
    /// The broker's concurrent_limit: enables handshake.16 (run it alone: --cases handshake.16).
    #[arg(long)]
    concurrent_limit: Option<usize>,
    /// Leave out the cases that would wait out one of the server's timeouts longer than 10 s
    /// (the alive.* cases wait the alive timeout: 60 s with the reference CLI's default); they
    /// are listed as not run. Give --expire-timeout/--alive-timeout when the server's own are
    /// shorter, and those cases run quickly instead.
    #[arg(long)]
    fast: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct TurnArgs {
    /// turn:HOST:PORT (UDP), or HOST:PORT. The server must relay to peers on 127.0.0.1 (the
    /// cases' peers): `peerstorm serve turn --allow-loopback-peers`, coturn likewise.
    uri: String,
    /// NAME:PASSWORD (long-term credentials).
    #[arg(long, required_unless_present = "auth_secret", conflicts_with = "auth_secret")]
    user: Option<String>,
    /// The server's TURN REST API secret (coturn's static-auth-secret, `serve turn
    /// --auth-secret`): the suite mints its credentials with it (EXPIRY:peerstorm-conform, valid
    /// for a day) and case auth.7 checks that an expired one is refused. Instead of --user.
    #[arg(long, value_name = "SECRET")]
    auth_secret: Option<String>,
    /// The server's limit on unauthenticated answers per second per client IP (peerstorm's
    /// --unauth-rate-limit, coturn's --unauthorized-ratelimit): case sec.5 checks a burst gets no
    /// more. Run sec.5 alone then (every case's first request is unauthenticated, from one IP).
    #[arg(long, value_name = "N")]
    unauth_rate_limit: Option<u32>,
    /// The server's process ID on this machine: case sec.6 reads its memory before and after a
    /// flood of unauthenticated requests (a server that keeps state per request grows).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// The server's alternate address for RFC 5780 cases.
    #[arg(long)]
    alt_address: Option<SocketAddr>,
    /// The server's allocation quota for this user (enables the 486 case; use a server nobody
    /// else is allocating on). Every case deletes the allocations it made (Refresh to 0) when
    /// it ends, so the suite never holds more than the quota (a server that deletes on a timer,
    /// as coturn does about a second later, can lag behind that).
    #[arg(long)]
    quota: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct E2eArgs {
    /// The PeerServer: http://HOST:PORT/PATH/ (or HOST:PORT).
    url: String,
    #[arg(long, default_value = "peerjs")]
    key: String,
    /// One side is Chromium running peerjs@1.5.5 (Debian's /usr/bin/chromium, tools/js).
    #[arg(long)]
    browser: bool,
    /// Milliseconds between the virtual peers' HEARTBEATs (peerjs@1.5.5 sends one every 5,000):
    /// keep it below the broker's alive timeout, or the broker drops the peers mid-test.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    heartbeat: u64,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Where to write the Markdown matrix.
    #[arg(long, default_value = "docs/conformance.md")]
    out: PathBuf,
}

/// `http://host:port/path/` → (address, path).
fn parse_url(url: &str) -> Result<(SocketAddr, String, Option<String>)> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let key = query.split('&').find_map(|kv| kv.strip_prefix("key=")).map(str::to_string);
    let (hp, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = hp
        .to_socket_addrs()
        .ok()
        .and_then(|mut i| i.next())
        .with_context(|| format!("{url:?}: cannot resolve {hp:?}"))?;
    // A WebSocket URL names the endpoint, `<mount path>peerjs`, as `serve broker` prints it.
    let path = match scheme {
        "ws" | "wss" => path.trim_end_matches('/').strip_suffix("peerjs").unwrap_or(path),
        _ => path,
    };
    let path = if path.ends_with('/') { path.to_string() } else { format!("{path}/") };
    Ok((addr, path, key))
}

/// Before any case runs: is there a PeerServer with `key` at `path`? (`GET <path><key>/id`,
/// which every PeerServer answers with an ID.) `Err` says what is wrong, for exit status 2: a
/// wrong URL or key must never be reported as the server's failures.
fn preflight(addr: SocketAddr, path: &str, key: &str, tls: Option<peerstorm_tls::Client>) -> Result<(), String> {
    let mut target = peerstorm_loadgen::Target::new(addr, format!("{path}peerjs"), key.to_string());
    target.tls = tls;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let reply = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(5), target.http_get(&format!("{path}{key}/id"))).await
        })
        .map_err(|_| format!("{}://{addr}: no answer in 5 s", target.scheme()))?
        .map_err(|e| format!("cannot connect to {}://{addr}: {e}", target.scheme()))?;
    if target.tls.is_none() && reply.as_bytes().first() == Some(&0x15) {
        return Err(format!("{addr} answered in TLS: use https:// or wss://"));
    }
    let status = reply.lines().next().unwrap_or("no answer").to_string();
    let hint = "give the mount path, e.g. http://HOST:PORT/, or the ws:// URL `serve broker` prints, and the key";
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!(
            "no PeerServer with key {key:?} at path {path:?} on {addr}: GET {path}{key}/id answered {status:?} ({hint})"
        ));
    }
    // The HTTP API takes any key; a join tells whether this one is the broker's.
    // Join as PeerJS does without an ID: with the one `/id` just handed out (a broker that
    // accepts only IDs it issued takes it too).
    let text = reply;
    let issued = text.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_string()).filter(|b| !b.is_empty());
    let id = issued.unwrap_or_else(|| format!("preflight{}", std::process::id()));
    let joined = rt.block_on(peerstorm_loadgen::Client::join(&target, &id, "preflight", None, Duration::from_secs(5)));
    match joined {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("no PeerServer with key {key:?} at path {path:?} on {addr}: a join got {e} ({hint})")),
    }
}

fn selection(profile: &str, c: &Common) -> Selection {
    Selection {
        profile: profile.into(),
        patterns: c
            .cases
            .as_deref()
            .map(|p| p.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default(),
        exclude: Vec::new(),
    }
}

/// What a JSON report says besides the cases: which server, with which options, and which
/// cases were left out and why.
struct RunFacts {
    target: String,
    options: serde_json::Value,
    not_run: Vec<(String, String)>,
}

fn report(suite: &str, results: &[CaseResult], c: &Common, cx: &RunFacts) -> Result<u8> {
    print!("{}", peerstorm_conform::table(results));
    for (id, why) in &cx.not_run {
        println!("not run     {id:<18} {why}");
    }
    let code = if results.is_empty() { crate::EXIT_HARNESS } else { peerstorm_conform::exit_status(results, c.strict) };
    if let Some(p) = &c.junit {
        std::fs::write(p, peerstorm_conform::junit(suite, results, c.strict))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &c.json {
        let count = |v: &str| results.iter().filter(|r| r.verdict_name() == v).count();
        let j = serde_json::json!({
            "suite": suite,
            "target": cx.target,
            "peerstorm": env!("CARGO_PKG_VERSION"),
            "options": cx.options,
            "totals": {
                "cases": results.len(),
                "OK": count("OK"),
                "INFO": count("INFO"),
                "NON-STRICT": count("NON-STRICT"),
                "FAILED": count("FAILED"),
                "not_run": cx.not_run.len(),
            },
            "exit_status": code,
            "not_run": cx.not_run.iter().map(|(id, why)| serde_json::json!({"id": id, "why": why})).collect::<Vec<_>>(),
            "cases": results,
        });
        std::fs::write(p, serde_json::to_string_pretty(&j)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if results.is_empty() {
        eprintln!("peerstorm: no case matched");
    }
    Ok(code)
}

/// Prints each result on stderr as its case finishes (the table on stdout comes at the end).
fn streaming(total: usize) -> impl FnMut(&CaseResult) {
    let mut done = 0;
    move |r: &CaseResult| {
        done += 1;
        eprintln!("[{done:>3}/{total}] {:<10} {:<13} {:>6} ms", r.verdict_name(), r.id, r.ms);
    }
}

fn list<C>(cases: &[peerstorm_conform::Case<C>], sel: &Selection) {
    for c in cases.iter().filter(|c| sel.wants(c.id, c.level)) {
        println!("{:<13} {:<7} {:<26} {}", c.id, format!("{:?}", c.level).to_uppercase(), c.section, c.description);
    }
}

/// Runs the broker suite; `None` when the broker is unreachable.
pub fn broker_suite(
    target: peerstorm_conform::client::Target,
    sel: &Selection,
    (expire, alive): (u64, u64),
    concurrent_limit: Option<usize>,
    progress: &mut dyn FnMut(&CaseResult),
) -> Result<Option<Vec<CaseResult>>> {
    if std::net::TcpStream::connect_timeout(&target.addr, Duration::from_secs(3)).is_err() {
        return Ok(None);
    }
    let ctx = peerstorm_conform::broker::Ctx {
        target,
        expire: Duration::from_millis(expire),
        alive: Duration::from_millis(alive),
        prefix: format!("cf{}", std::process::id()),
        concurrent_limit,
    };
    let timeout = Duration::from_millis(expire.max(alive)) + Duration::from_secs(20);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(Some(rt.block_on(peerstorm_conform::run(
        peerstorm_conform::broker::cases(),
        ctx,
        sel,
        16,
        timeout,
        &["robust.8"],
        progress,
    ))))
}

/// Runs the TURN suite (one case at a time: the client is blocking).
pub fn turn_suite(
    ctx: peerstorm_conform::turn::Ctx,
    sel: &Selection,
    progress: &mut dyn FnMut(&CaseResult),
) -> Result<Vec<CaseResult>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(peerstorm_conform::run(
        peerstorm_conform::turn::cases(),
        ctx,
        sel,
        1,
        Duration::from_secs(30),
        &[],
        progress,
    )))
}

pub fn run(cmd: Conform) -> Result<u8> {
    match cmd {
        Conform::Broker(a) => {
            let sel = selection(&a.profile, &a.common);
            if !["peerjs-1.0", "hardening", "all"].contains(&a.profile.as_str()) {
                bail!("--profile {:?}: expected peerjs-1.0, hardening or all", a.profile);
            }
            if a.common.list {
                list(&peerstorm_conform::broker::cases(), &sel);
                return Ok(crate::EXIT_OK);
            }
            let server = if a.url.contains("://") {
                peerstorm_scenario::PeerServer::from_url(&a.url).map_err(|e| anyhow::anyhow!(e))?
            } else {
                let (addr, _, _) = parse_url(&a.url)?;
                peerstorm_scenario::PeerServer::at(addr.ip().to_string(), addr.port())
            };
            let addr = (server.host.as_str(), server.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut i| i.next())
                .with_context(|| format!("{:?}: cannot resolve {}", a.url, server.host))?;
            let path =
                a.path.clone().map(|p| if p.ends_with('/') { p } else { format!("{p}/") }).unwrap_or(server.path);
            // A URL that names its key wins; otherwise --key.
            let key = if a.url.contains("key=") { server.key } else { a.key.clone() };
            if !server.secure && (a.ca.is_some() || a.insecure) {
                bail!("--ca and --insecure are for an https:// or wss:// server");
            }
            let tls = if server.secure {
                let trust = peerstorm_tls::Trust { ca: a.ca.clone(), insecure: a.insecure };
                Some(peerstorm_tls::Client::new(&trust, server.host.clone())?)
            } else {
                None
            };
            if let Err(why) = preflight(addr, &path, &key, tls.clone()) {
                eprintln!("peerstorm: {why}");
                return Ok(crate::EXIT_HARNESS);
            }
            let mut sel = sel;
            let mut not_run = Vec::new();
            if a.fast {
                let (expire, alive) = (Duration::from_millis(a.expire_timeout), Duration::from_millis(a.alive_timeout));
                for c in peerstorm_conform::broker::cases().iter().filter(|c| sel.wants(c.id, c.level)) {
                    if let Some(wait) = peerstorm_conform::broker::waits_out(c.id, expire, alive)
                        && wait > Duration::from_secs(10)
                    {
                        not_run.push((
                            c.id.to_string(),
                            format!("--fast: waits out a {} s server timeout", wait.as_secs()),
                        ));
                    }
                }
                sel.exclude = not_run.iter().map(|(id, _)| id.clone()).collect();
            }
            let total = peerstorm_conform::broker::cases().iter().filter(|c| sel.wants(c.id, c.level)).count();
            let options = serde_json::json!({
                "profile": a.profile, "key": key, "path": path, "expire_timeout_ms": a.expire_timeout,
                "alive_timeout_ms": a.alive_timeout, "concurrent_limit": a.concurrent_limit, "fast": a.fast,
                "cases": a.common.cases, "strict": a.common.strict,
            });
            let cx = RunFacts { target: a.url.clone(), options, not_run };
            let progress = &mut streaming(total);
            let target =
                peerstorm_conform::client::Target { tls, ..peerstorm_conform::client::Target::new(addr, path, key) };
            match broker_suite(target, &sel, (a.expire_timeout, a.alive_timeout), a.concurrent_limit, progress)? {
                Some(results) => report("broker", &results, &a.common, &cx),
                None => {
                    eprintln!("peerstorm: the broker at {addr} does not accept connections");
                    Ok(crate::EXIT_HARNESS)
                }
            }
        }
        Conform::Turn(a) => {
            let sel = selection("all", &a.common);
            if a.common.list {
                list(&peerstorm_conform::turn::cases(), &sel);
                return Ok(crate::EXIT_OK);
            }
            let (hp, query) = a
                .uri
                .trim_start_matches("turn:")
                .trim_start_matches("stun:")
                .split_once('?')
                .unwrap_or((a.uri.trim_start_matches("turn:").trim_start_matches("stun:"), ""));
            if a.uri.starts_with("turns:")
                || query.split('&').any(|kv| kv.starts_with("transport=") && kv != "transport=udp")
            {
                eprintln!(
                    "peerstorm: {:?}: the TURN cases run over UDP; give the server's UDP address (without ?transport=tcp)",
                    a.uri
                );
                return Ok(crate::EXIT_HARNESS);
            }
            let server = hp
                .to_socket_addrs()
                .ok()
                .and_then(|mut i| i.next())
                .with_context(|| format!("{:?}: cannot resolve", a.uri))?;
            let (user, password) = match (&a.user, &a.auth_secret) {
                (Some(u), _) => {
                    let (user, password) = u.split_once(':').context("--user: expected NAME:PASSWORD")?;
                    (user.to_string(), password.to_string())
                }
                (None, Some(secret)) => {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
                    let user = format!("{}:peerstorm-conform", now + 86_400);
                    let password = peerstorm_turn::auth::rest_password(secret, &user);
                    (user, password)
                }
                (None, None) => unreachable!("clap requires --user or --auth-secret"),
            };
            let (user, password) = (user.as_str(), password.as_str());
            // Reachable? One Binding.
            let mut probe = peerstorm_turn::client::UdpClient::connect(server, user, password, 99)?;
            let tid = probe.new_tid();
            if probe.exchange(&peerstorm_model::stun::Message::binding_request(tid).encode(true), tid).is_err() {
                eprintln!("peerstorm: no STUN answer from {server}");
                return Ok(crate::EXIT_HARNESS);
            }
            let total = peerstorm_conform::turn::cases().iter().filter(|c| sel.wants(c.id, c.level)).count();
            let ctx = peerstorm_conform::turn::Ctx::new(server, user, password, a.alt_address, a.quota)
                .with_auth_secret(a.auth_secret.clone())
                .with_unauth_rate_limit(a.unauth_rate_limit)
                .with_server_pid(a.server_pid);
            let results = turn_suite(ctx, &sel, &mut streaming(total))?;
            let options = serde_json::json!({
                "user": user, "auth_secret": a.auth_secret.is_some(), "alt_address": a.alt_address.map(|x| x.to_string()), "quota": a.quota,
                "cases": a.common.cases, "strict": a.common.strict,
            });
            let cx = RunFacts { target: a.uri.clone(), options, not_run: Vec::new() };
            let code = report("turn", &results, &a.common, &cx)?;
            let forbidden = results.iter().filter(|r| r.observed.as_deref().is_some_and(|o| o.contains("403"))).count();
            if forbidden > 0 {
                eprintln!(
                    "peerstorm: {forbidden} case(s) got 403 Forbidden: the cases relay to peers on 127.0.0.1, which a \
                     TURN server refuses unless told otherwise; start it with --allow-loopback-peers \
                     (`peerstorm serve turn` and coturn both take that flag)"
                );
            }
            Ok(code)
        }
        Conform::E2e(a) => e2e(&a),
        Conform::Matrix(a) => matrix(&a),
    }
}

/// Two full-stack virtual peers through the broker, once per serialization (or a browser and
/// a virtual peer).
fn e2e(a: &E2eArgs) -> Result<u8> {
    if a.url.starts_with("https://") || a.url.starts_with("wss://") {
        eprintln!(
            "peerstorm: {:?}: conform e2e runs over plain ws:// (its browser page too); `conform broker` and `run` speak wss://",
            a.url
        );
        return Ok(crate::EXIT_HARNESS);
    }
    let (addr, path, url_key) = parse_url(&a.url)?;
    let key = url_key.unwrap_or_else(|| a.key.clone());
    if let Err(why) = preflight(addr, &path, &key, None) {
        eprintln!("peerstorm: {why}");
        return Ok(crate::EXIT_HARNESS);
    }
    let target = peerstorm_loadgen::Target::new(addr, format!("{path}peerjs"), key);
    if a.browser {
        let root = crate::children::repo_root()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let id = format!("e2e-echo-{}", std::process::id());
        let echo = echo_peer(&id, a.heartbeat);
        let local = tokio::task::LocalSet::new();
        let out = local.block_on(&rt, async {
            let t = target.clone();
            let ready = std::sync::Arc::new(tokio::sync::Notify::new());
            let ready2 = ready.clone();
            let handle = tokio::task::spawn_local(async move {
                let sockets = peerstorm_live::fullstack::bind([127, 0, 0, 1].into(), 4).await?;
                let cfg = peerstorm_live::fullstack::config(echo.id.clone(), vec![], vec![], &sockets, echo);
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                let peer = peerstorm_peer::VirtualPeer::new(cfg, std::time::Instant::now());
                let stop = std::sync::Arc::new(tokio::sync::Notify::new());
                peerstorm_live::fullstack::drive_with(
                    peer,
                    &t,
                    sockets,
                    Duration::from_secs(60),
                    deadline,
                    stop,
                    Some(ready2),
                )
                .await
            });
            // The browser calls the echo peer only once the broker has it (else: peer-unavailable).
            if tokio::time::timeout(Duration::from_secs(15), ready.notified()).await.is_err() {
                handle.abort();
                return Err(std::io::Error::other("the virtual echo peer did not get OPEN from the broker in 15 s"));
            }
            let (script, port, peer_id) =
                (root.join("tools/js/browser-virtual-peer.mjs"), addr.port().to_string(), id.clone());
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("node").arg(script).arg(port).arg(peer_id).output()
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
            handle.abort();
            out
        })?;
        println!("{}", String::from_utf8_lossy(&out.stdout).trim());
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());
        }
        return Ok(match out.status.code() {
            Some(0) => crate::EXIT_OK,
            // The script's own usage or setup error: the harness could not do its job.
            Some(2) => crate::EXIT_HARNESS,
            _ => 1,
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut failed = 0;
    for ser in ["binary", "binary-utf8", "json", "raw", "MsgPack"] {
        let run = rt.block_on(async {
            let cfg = peerstorm_live::fullstack::FullConfig {
                target: target.clone(),
                plan: peerstorm_live::Plan {
                    model: peerstorm_live::LoadModel::Open { rate: 1.0 },
                    duration: Duration::from_secs(1),
                    max_pairs: 1,
                    shard: (0, 1),
                },
                peer: peerstorm_peer::PeerConfig {
                    workload: peerstorm_peer::Workload { serialization: ser.to_string().into(), ..Default::default() },
                    ..echo_peer("", a.heartbeat)
                },
                setup_timeout: Duration::from_secs(20),
                id_prefix: format!("e2e{}{}", std::process::id(), ser.replace('-', "")),
                ip: [127, 0, 0, 1].into(),
                stop: None,
                turn_secret: None,
                turn_tls: None,
            };
            peerstorm_live::fullstack::run_full(cfg, |_| {}).await.0
        });
        let ok = run.peers.first().and_then(|p| p.connections.first()).is_some_and(|c| {
            c.milestones.failure.is_none() && c.milestones.get(peerstorm_peer::Milestone::WorkloadDone).is_some()
        });
        let bytes = run.peers.first().and_then(|p| p.connections.first()).map_or(0, |c| c.bytes_moved);
        println!(
            "{:<11} {ser}: ten 1,000-byte messages echoed, {bytes} bytes on the channel",
            if ok { "OK" } else { "FAILED" }
        );
        failed += usize::from(!ok);
    }
    Ok(u8::from(failed > 0))
}

fn echo_peer(id: &str, heartbeat_ms: u64) -> peerstorm_peer::PeerConfig {
    peerstorm_peer::PeerConfig {
        id: id.into(),
        token: "t".into(),
        connect: vec![],
        call: Vec::new(),
        accept: vec![],
        answer: Vec::new(),
        ice: peerstorm_peer::IceMode::Trickle,
        host: SocketAddr::from(([127, 0, 0, 1], 0)),
        sockets: vec![],
        heartbeat: Duration::from_millis(heartbeat_ms.max(1)),
        workload: peerstorm_peer::Workload::default(),
        stun: None,
        turn: Vec::new(),
        relay_only: false,
        profile: peerstorm_peer::Profile::Chrome,
        cpu_scale: peerstorm_peer::CpuScale::ONE,
        metronome_tick: None,
    }
}

/// Every suite against peerstorm's broker (default and --hardened), peer@1.0.2, peerstorm's
/// TURN and coturn, started here with short timeouts; the matrix as Markdown.
fn matrix(a: &MatrixArgs) -> Result<u8> {
    let (expire, alive) = (1000u64, 3000u64);
    let start_ours = |extra: &[&str]| {
        let mut args = vec!["--expire-timeout", "1000", "--alive-timeout", "3000"];
        args.extend_from_slice(extra);
        crate::children::serve_broker(&args)
    };
    let all = Selection { profile: "all".into(), patterns: vec![], exclude: vec![] };
    let mut columns: Vec<(String, Vec<CaseResult>)> = Vec::new();
    {
        let s = start_ours(&[])?;
        eprintln!("conform: peerstorm broker");
        columns.push((
            "peerstorm".into(),
            broker_suite(
                peerstorm_conform::client::Target::new(s.addr, "/", "peerjs"),
                &all,
                (expire, alive),
                None,
                &mut |_| {},
            )?
            .context("peerstorm broker unreachable")?,
        ));
    }
    {
        let s = start_ours(&["--hardened"])?;
        eprintln!("conform: peerstorm broker --hardened");
        columns.push((
            "peerstorm --hardened".into(),
            broker_suite(
                peerstorm_conform::client::Target::new(s.addr, "/", "peerjs"),
                &all,
                (expire, alive),
                None,
                &mut |_| {},
            )?
            .context("unreachable")?,
        ));
    }
    {
        let s =
            crate::children::start_reference_with(10_000, &["--expire_timeout", "1000", "--alive_timeout", "3000"])?;
        eprintln!("conform: peer@1.0.2");
        columns.push((
            "peer@1.0.2".into(),
            broker_suite(
                peerstorm_conform::client::Target::new(s.addr, "/", "peerjs"),
                &all,
                (expire, alive),
                None,
                &mut |_| {},
            )?
            .context("peer@1.0.2 unreachable")?,
        ));
    }
    let mut turn_cols: Vec<(String, Vec<CaseResult>)> = Vec::new();
    for which in ["peerstorm", "coturn"] {
        let s = crate::children::start_turn(which)?;
        eprintln!("conform: {which} TURN");
        turn_cols.push((
            which.into(),
            turn_suite(
                peerstorm_conform::turn::Ctx::new(s.addr, "test", "test", None, None).with_server_pid(Some(s.pid())),
                &all,
                &mut |_| {},
            )?,
        ));
    }
    let md = matrix_markdown(&columns, &turn_cols, expire, alive);
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, &md).with_context(|| format!("writing {}", a.out.display()))?;
    println!("{md}");
    Ok(crate::EXIT_OK)
}

fn matrix_markdown(
    broker: &[(String, Vec<CaseResult>)],
    turn: &[(String, Vec<CaseResult>)],
    expire: u64,
    alive: u64,
) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "# Conformance matrix\n");
    let _ = writeln!(
        o,
        "Generated by `peerstorm conform matrix` (rerun it to refresh this file): every broker case against\n\
peerstorm's broker (default and `--hardened`) and `peer@1.0.2`, all started with expire_timeout {expire} ms\n\
and alive_timeout {alive} ms; every TURN case against peerstorm's TURN server and coturn (Debian 4.6.1),\n\
user test:test, no alternate address. Levels and verdicts: `peerstorm conform broker --help`.\n"
    );
    let hardened_musts: Vec<&str> = broker
        .iter()
        .find(|(n, _)| n.contains("--hardened"))
        .map(|(_, col)| {
            col.iter()
                .filter(|r| r.level == peerstorm_conform::Level::Must && r.verdict_name() == "FAILED")
                .map(|r| r.id.as_str())
                .collect()
        })
        .unwrap_or_default();
    if !hardened_musts.is_empty() {
        let _ = writeln!(
            o,
            "`peerstorm --hardened` fails {} MUST cases on purpose: {}.\n\
It refuses LEAVE and EXPIRE from clients and frames over 64 KiB, and keeps a lost client's ID\n\
for its token for 5 s (crates/broker/README.md). Its column shows what hardening costs in\n\
compatibility.\n",
            hardened_musts.len(),
            hardened_musts.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "handshake.16, alloc.9 and the rfc5780 cases are INFO here because the matrix passes no concurrent\n\
limit, quota or alternate address (the test suite does, and they pass).\n"
    );
    let table = |o: &mut String, title: &str, cols: &[(String, Vec<CaseResult>)]| {
        let _ = writeln!(o, "## {title}\n");
        let _ = write!(o, "| case | level | section | what |");
        for (n, _) in cols {
            let _ = write!(o, " {n} |");
        }
        let _ = write!(o, "\n|---|---|---|---|");
        for _ in cols {
            o.push_str("---|");
        }
        o.push('\n');
        if let Some((_, first)) = cols.first() {
            for (i, r) in first.iter().enumerate() {
                let _ =
                    write!(o, "| {} | {:?} | {} | {} |", r.id, r.level, r.section, r.description.replace('|', "\\|"));
                for (_, col) in cols {
                    let v = col.get(i).map_or("-", |c| c.verdict_name());
                    let _ = write!(o, " {v} |");
                }
                o.push('\n');
            }
        }
        o.push('\n');
        for (n, col) in cols {
            let findings: Vec<String> = col
                .iter()
                .filter(|r| r.observed.is_some())
                .map(|r| {
                    format!(
                        "- `{}` {}: observed {}; expected {}",
                        r.id,
                        r.verdict_name(),
                        r.observed.as_deref().unwrap_or(""),
                        r.expected.as_deref().unwrap_or("")
                    )
                })
                .collect();
            if !findings.is_empty() {
                let _ = writeln!(o, "{n}:\n\n{}\n", findings.join("\n"));
            }
        }
    };
    table(&mut o, "PeerJS brokers", broker);
    table(&mut o, "STUN/TURN servers", turn);
    o
}
