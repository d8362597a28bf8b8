//! `peerstorm peer`: one full-stack virtual peer on real sockets, for interop. Without
//! `--connect` or `--call` it answers every DataConnection offered to it and echoes what it gets,
//! and answers every call with its synthetic stream (what a PeerJS app in a browser can talk
//! to); with `--connect REMOTE` it opens one, runs the echo workload and exits 0 when it
//! finished; with `--call REMOTE` it calls, sends media for `--media-for` seconds and exits 0
//! when it did.

use anyhow::{Context, Result, bail};
use clap::Args;
use peerstorm_loadgen::Target;
use peerstorm_peer::{IceMode, PeerConfig, TurnServer, TurnTransport, VirtualPeer, Workload};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct PeerArgs {
    /// The PeerServer: a URL (`ws://HOST:PORT/PATH/peerjs?key=KEY` as `serve broker` prints it,
    /// `wss://…` for TLS), or HOST:PORT (plain, WebSocket at <path>peerjs with --key).
    #[arg(long)]
    broker: String,
    /// The PeerJS `path` option, for a HOST:PORT broker (a URL carries its own).
    #[arg(long, default_value = "/")]
    path: String,
    /// The PeerJS `key` option, for a HOST:PORT broker (a URL carries its own).
    #[arg(long, default_value = "peerjs")]
    key: String,
    /// wss://: trust the certificates in this PEM file too, besides the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// wss://: do not check the broker's certificate at all.
    #[arg(long)]
    insecure: bool,
    /// This peer's ID.
    #[arg(long)]
    id: String,
    /// Open a DataConnection to this peer and run the workload (default: answer and echo).
    #[arg(long)]
    connect: Option<String>,
    /// Call this peer (a PeerJS MediaConnection, `peer.call(id, stream)`) with a synthetic
    /// stream and measure what comes back (default: answer calls with the same stream).
    #[arg(long, conflicts_with = "connect")]
    call: Option<String>,
    /// How long each side of a call sends, seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    media_for: f64,
    /// The call's video bit rate, kbit/s (VP8-shaped, 30 fps); 0 sends no video.
    #[arg(long, default_value_t = 800, value_name = "KBPS")]
    video_kbps: u32,
    /// Send no audio (Opus-shaped, 32 kbit/s, by default).
    #[arg(long)]
    no_audio: bool,
    /// With --call: PeerJS's call `metadata`, as JSON (`'{"room":"lobby"}'`).
    #[arg(long, value_name = "JSON", requires = "call")]
    metadata: Option<String>,
    /// binary, binary-utf8, json or raw (with --connect).
    #[arg(long, default_value = "binary")]
    serialization: String,
    #[arg(long, default_value_t = 10)]
    messages: u32,
    #[arg(long, default_value_t = 1000)]
    message_bytes: usize,
    /// Trickle ICE (default) or vanilla.
    #[arg(long, default_value = "trickle")]
    ice: String,
    /// A STUN server HOST:PORT for a srflx candidate.
    #[arg(long)]
    stun: Option<String>,
    /// A TURN server for a relayed candidate: HOST:PORT, or a URI (`turn:HOST:PORT[?transport=tcp]`,
    /// `turns:HOST:PORT` for TLS), whose transport wins over --turn-transport. Repeat it for
    /// several (a relayed candidate from each, as a browser given several iceServers URLs).
    #[arg(long)]
    turn: Vec<String>,
    /// How to reach the TURN server: udp, tcp, or tls (TLS over TCP, `turns:`); the relay is
    /// UDP either way.
    #[arg(long, default_value = "udp", value_name = "udp|tcp|tls")]
    turn_transport: String,
    /// turns:: trust the certificates in this PEM file too, besides the system's roots.
    #[arg(long, value_name = "FILE")]
    turn_ca: Option<std::path::PathBuf>,
    /// turns:: do not check the TURN server's certificate.
    #[arg(long)]
    turn_insecure: bool,
    /// TURN credentials NAME:PASSWORD.
    #[arg(long, default_value = "peerstorm:peerstorm", conflicts_with = "turn_secret")]
    turn_user: String,
    /// Mint TURN REST API credentials with this shared secret instead (as a web app's backend
    /// does for coturn's use-auth-secret): username EXPIRY:ID, password
    /// base64(HMAC-SHA1(secret, username)), valid for --turn-ttl seconds.
    #[arg(long, value_name = "SECRET")]
    turn_secret: Option<String>,
    /// How long minted REST credentials stay valid, seconds.
    #[arg(long, default_value_t = 86_400, value_name = "SECS")]
    turn_ttl: u64,
    #[arg(long, default_value = "peerstorm")]
    turn_realm: String,
    /// Relayed candidates only.
    #[arg(long)]
    relay_only: bool,
    /// Whose timers the stack keeps: chrome (libwebrtc's check pacing, no acceptance waits),
    /// firefox (checks every 20 ms) or rtc (the stack's own defaults).
    #[arg(long, default_value = "chrome", value_parser = parse_profile)]
    profile: peerstorm_peer::Profile,
    /// How much slower than the profile's reference machine this browser runs: the profile's
    /// times for the browser's own work are multiplied by it (0.25 to 10).
    #[arg(long, default_value = "1", value_name = "X")]
    cpu_scale: peerstorm_peer::CpuScale,
    /// How long to run (answering) or the most the workload may take (connecting), seconds.
    #[arg(long = "for", default_value_t = 30.0)]
    duration: f64,
    /// DataConnections this peer can hold (one UDP socket each).
    #[arg(long, default_value_t = 8)]
    max_connections: usize,
    /// The address to bind the peer's UDP sockets to: its host candidates (e.g. its address in
    /// a lab host). A specific address, not 0.0.0.0.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    bind: std::net::IpAddr,
}

fn parse_profile(s: &str) -> Result<peerstorm_peer::Profile, String> {
    peerstorm_peer::Profile::parse(s).ok_or_else(|| format!("{s:?}: expected chrome, firefox or rtc"))
}

fn resolve(what: &str, s: &str) -> Result<SocketAddr> {
    s.to_socket_addrs().ok().and_then(|mut i| i.next()).with_context(|| format!("{what} {s:?}: expected HOST:PORT"))
}

pub fn run(a: &PeerArgs) -> Result<u8> {
    if a.bind.is_unspecified() {
        eprintln!("peerstorm: --bind {}: give the specific address the host candidates should carry", a.bind);
        return Ok(crate::EXIT_HARNESS);
    }
    let server = if a.broker.contains("://") {
        peerstorm_scenario::PeerServer::from_url(&a.broker).map_err(|e| anyhow::anyhow!("--broker {e}"))?
    } else {
        let hp = a.broker.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)));
        let Some((host, port)) = hp else {
            anyhow::bail!("--broker {:?}: expected a ws:// or wss:// URL, or HOST:PORT", a.broker)
        };
        peerstorm_scenario::PeerServer {
            path: a.path.clone(),
            key: a.key.clone(),
            ..peerstorm_scenario::PeerServer::at(host.trim_matches(['[', ']']), port)
        }
    };
    if !server.secure && (a.ca.is_some() || a.insecure) {
        anyhow::bail!("--ca and --insecure are for a wss:// broker; {} is plain", server.ws_url());
    }
    let broker = resolve("--broker", &format!("{}:{}", server.host, server.port))?;
    let ice = match a.ice.as_str() {
        "trickle" => IceMode::Trickle,
        "vanilla" => IceMode::Vanilla,
        other => bail!("--ice {other:?}: expected trickle or vanilla"),
    };
    if !["binary", "binary-utf8", "json", "raw", "MsgPack"].contains(&a.serialization.as_str()) {
        bail!("--serialization {:?}: expected binary, binary-utf8, json, raw or MsgPack", a.serialization);
    }
    let transport = match a.turn_transport.as_str() {
        "udp" => TurnTransport::Udp,
        "tcp" => TurnTransport::Tcp,
        "tls" => TurnTransport::Tls,
        other => bail!("--turn-transport {other:?}: expected udp, tcp or tls"),
    };
    // Each --turn is one of the browser's iceServers URLs: a URI names host, port and transport;
    // HOST:PORT takes --turn-transport.
    let mut servers: Vec<(String, String, TurnTransport)> = Vec::new();
    for t in &a.turn {
        if t.starts_with("turn:") || t.starts_with("turns:") {
            let uri: peerstorm_scenario::TurnUri = t.parse().map_err(|e| anyhow::anyhow!("--turn {e}"))?;
            servers.push((uri.host.clone(), format!("{}:{}", uri.host, uri.port), uri.transport.unwrap_or(transport)));
        } else {
            let host = t.rsplit_once(':').map_or(t.as_str(), |(h, _)| h).trim_matches(['[', ']']).to_string();
            servers.push((host, t.clone(), transport));
        }
    }
    let tls_hosts: std::collections::BTreeSet<&str> =
        servers.iter().filter(|s| s.2 == TurnTransport::Tls).map(|s| s.0.as_str()).collect();
    if (a.turn_ca.is_some() || a.turn_insecure) && tls_hosts.is_empty() {
        bail!("--turn-ca and --turn-insecure are for a TLS TURN server (turns:, --turn-transport tls)");
    }
    if tls_hosts.len() > 1 {
        bail!("--turn: TLS TURN servers on {} hosts; this peer speaks TLS to one host at a time", tls_hosts.len());
    }
    let turn_tls = match tls_hosts.first() {
        Some(host) => {
            let trust = peerstorm_tls::Trust { ca: a.turn_ca.clone(), insecure: a.turn_insecure };
            Some(peerstorm_tls::Client::new(&trust, host.to_string()).context("--turn (TLS)")?)
        }
        None => None,
    };
    let (user, password) = match &a.turn_secret {
        Some(secret) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let user = format!("{}:{}", now.saturating_add(a.turn_ttl), a.id);
            let password = peerstorm_turn::auth::rest_password(secret, &user);
            (user, password)
        }
        None => {
            let (u, p) = a.turn_user.split_once(':').context("--turn-user: expected NAME:PASSWORD")?;
            (u.to_string(), p.to_string())
        }
    };
    let turn = servers
        .iter()
        .map(|(_, hp, transport)| {
            Ok(TurnServer {
                addr: resolve("--turn", hp)?,
                user: user.clone(),
                password: password.clone(),
                realm: a.turn_realm.clone(),
                transport: *transport,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let stun = a.stun.as_deref().map(|s| resolve("--stun", s)).transpose()?;
    let path = if server.path.ends_with('/') { server.path.clone() } else { format!("{}/", server.path) };
    let mut target = Target::new(broker, format!("{path}peerjs"), server.key.clone());
    if server.secure {
        let trust = peerstorm_tls::Trust { ca: a.ca.clone(), insecure: a.insecure };
        target.tls = Some(peerstorm_tls::Client::new(&trust, server.host.clone()).context("--broker (TLS)")?);
    }
    let workload = Workload {
        messages: a.messages,
        duration: None,
        message_bytes: a.message_bytes,
        serialization: a.serialization.clone().into(),
        reliable: true,
        media: None,
    };
    if !(a.media_for > 0.0 && a.media_for <= 3600.0) {
        bail!("--media-for {}: expected seconds above 0, at most 3600", a.media_for);
    }
    if a.no_audio && a.video_kbps == 0 {
        bail!("--no-audio with --video-kbps 0: a call needs audio, video or both");
    }
    if a.video_kbps > 50_000 || (a.video_kbps > 0 && a.video_kbps < 16) {
        bail!("--video-kbps {}: expected 0 or 16 to 50,000", a.video_kbps);
    }
    let media = peerstorm_peer::MediaWorkload {
        audio: (!a.no_audio).then(peerstorm_peer::media::AudioSpec::default),
        video: (a.video_kbps > 0).then(|| peerstorm_peer::media::VideoSpec {
            bitrate_kbps: a.video_kbps,
            ..peerstorm_peer::media::VideoSpec::default()
        }),
        duration: Duration::from_secs_f64(a.media_for),
        with_data: false,
        // The other end is another process (a browser, another peer): no shared clock.
        epoch: None,
        metadata: a
            .metadata
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--metadata: not JSON: {e}"))?,
    };
    let outgoing = a.connect.is_some() || a.call.is_some();
    let n = if outgoing { 1 } else { a.max_connections.max(1) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let signalled = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let signals = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        std::io::Result::Ok((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
    })?;
    // The broker first: a URL, certificate or TLS mismatch is one clear line, not a silent peer.
    let url = format!("{}://{}{}", target.scheme(), broker, target.ws_path);
    match rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), target.probe()).await }) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("peerstorm peer: the broker at {url} is unreachable: {e}");
            return Ok(crate::EXIT_HARNESS);
        }
        Err(_) => {
            eprintln!("peerstorm peer: the broker at {url} did not answer in 5 s");
            return Ok(crate::EXIT_HARNESS);
        }
    }
    let peer = rt.block_on(async {
        let sockets = peerstorm_live::fullstack::bind(a.bind, n).await?;
        let base = PeerConfig {
            id: String::new(),
            token: String::new(),
            connect: Vec::new(),
            call: Vec::new(),
            accept: Vec::new(),
            answer: Vec::new(),
            ice,
            host: SocketAddr::new(a.bind, 0),
            sockets: Vec::new(),
            heartbeat: Duration::from_secs(5),
            workload,
            stun,
            turn,
            relay_only: a.relay_only,
            profile: a.profile,
            cpu_scale: a.cpu_scale,
            metronome_tick: None,
        };
        let mut cfg = peerstorm_live::fullstack::config(
            a.id.clone(),
            a.connect.iter().cloned().collect(),
            Vec::new(),
            &sockets,
            base,
        );
        // Calls go out with --call and come in to an answering peer, which answers each with
        // this stream (the DataConnections it answers are unaffected).
        cfg.call = a.call.iter().cloned().collect();
        cfg.workload.media = Some(media);
        let addrs: Vec<String> = cfg.sockets.iter().map(|s| s.to_string()).collect();
        // The banner once the broker has said OPEN: from then on the peer can be called.
        let banner = format!(
            "peerstorm peer {} on udp {} via {}://{}{}peerjs",
            a.id,
            addrs.join(", "),
            target.scheme(),
            broker,
            path
        );
        let ready = std::sync::Arc::new(tokio::sync::Notify::new());
        let on_ready = ready.clone();
        tokio::spawn(async move {
            on_ready.notified().await;
            println!("{banner}");
        });
        let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
        // Answering: stay the whole time; connecting or calling: stop once the workload is done.
        // A call lingers half a second after hanging up, so its close reaches the other side.
        let linger = match (outgoing, a.call.is_some()) {
            (true, true) => Duration::from_millis(500),
            (true, false) => Duration::ZERO,
            (false, _) => Duration::from_secs_f64(a.duration),
        };
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        // Ctrl-C or SIGTERM ends the peer early: its connections are printed all the same.
        {
            let (mut int, mut term) = signals;
            let (stop, signalled) = (stop.clone(), signalled.clone());
            tokio::spawn(async move {
                let status = tokio::select! {
                    _ = int.recv() => 130,
                    _ = term.recv() => 143,
                };
                signalled.store(status, std::sync::atomic::Ordering::Relaxed);
                stop.notify_one();
            });
        }
        let peer = VirtualPeer::new(cfg, Instant::now());
        let via = peerstorm_live::fullstack::Via { broker: &target, turn_tls: turn_tls.as_ref() };
        peerstorm_live::fullstack::drive_with(peer, via, sockets, linger, deadline, stop, Some(ready)).await
    })?;
    if peer.milestones().get(peerstorm_peer::Milestone::SignalingConnected).is_none() {
        eprintln!(
            "peerstorm peer: {} never joined the broker at {url} (it answered the probe, then refused the peer)",
            a.id
        );
        return Ok(crate::EXIT_HARNESS);
    }
    let conns = peer.connections();
    for c in &conns {
        println!("{}", serde_json::to_string(c)?);
    }
    let ok = |c: &peerstorm_peer::ConnOutcome| {
        c.milestones.failure.is_none() && c.milestones.get(peerstorm_peer::Milestone::DataChannelOpen).is_some()
    };
    let status = signalled.load(std::sync::atomic::Ordering::Relaxed);
    if status != 0 {
        eprintln!("peerstorm peer: stopped by {} (exit {status})", if status == 130 { "Ctrl-C" } else { "SIGTERM" });
        return Ok(status);
    }
    Ok(if a.call.is_some() {
        // The call connected and this side sent for its duration.
        let done = conns.first().is_some_and(|c| {
            c.milestones.failure.is_none() && c.milestones.get(peerstorm_peer::Milestone::WorkloadDone).is_some()
        });
        if done { crate::EXIT_OK } else { 1 }
    } else if a.connect.is_some() {
        let done =
            conns.first().is_some_and(|c| ok(c) && c.milestones.get(peerstorm_peer::Milestone::WorkloadDone).is_some());
        if done { crate::EXIT_OK } else { 1 }
    } else {
        crate::EXIT_OK
    })
}
