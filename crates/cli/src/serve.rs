//! `peerstorm serve broker`: the embedded PeerJS broker on real sockets.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use peerstorm_broker::{Config, Hardening, server};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum Serve {
    /// A PeerJS-compatible broker (PeerServer), compatible with peer@1.0.2 by default.
    ///
    /// Options and defaults are the reference's, under the same names. `--hardened` adds limits
    /// for hostile clients; each one answers the client that hit it with an ERROR frame.
    /// Prometheus counters are at GET /metrics. Stops cleanly on Ctrl-C or SIGTERM.
    Broker(BrokerArgs),
    /// A STUN/TURN server (RFC 8489, RFC 8656 UDP relay, UDP and TCP clients; RFC 5780 with
    /// --alt-address). Long-term credentials; peers on loopback or private addresses are
    /// refused (403) unless allowed, as coturn does.
    Turn(TurnArgs),
}

#[derive(Debug, Args)]
pub struct TurnArgs {
    /// Address to listen on (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:3478")]
    listen: SocketAddr,
    /// Authentication realm.
    #[arg(long, default_value = "peerstorm")]
    realm: String,
    /// A user, NAME:PASSWORD (repeat for more).
    #[arg(long = "user", required_unless_present = "auth_secret")]
    users: Vec<String>,
    /// TURN REST API credentials with this shared secret (coturn's `use-auth-secret` with
    /// `static-auth-secret`): username `EXPIRY:NAME` (EXPIRY in Unix seconds), password
    /// base64(HMAC-SHA1(secret, username)), refused (401) once EXPIRY has passed.
    #[arg(long, value_name = "SECRET")]
    auth_secret: Option<String>,
    /// TURN over TLS (RFC 8656 §3.3, `turns:`) on this address too (port 0 picks one), with
    /// --cert and --key; the relay is UDP as for every transport.
    #[arg(long, value_name = "ADDR", requires_all = ["cert", "key"])]
    tls_listen: Option<SocketAddr>,
    /// TLS: the PEM certificate chain (with --tls-listen).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    cert: Option<std::path::PathBuf>,
    /// TLS: the PEM private key (with --tls-listen).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    key: Option<std::path::PathBuf>,
    /// RFC 5780: a second address (another IP and port) for behaviour discovery.
    #[arg(long)]
    alt_address: Option<SocketAddr>,
    /// Address relayed traffic leaves from (default: the listen IP).
    #[arg(long)]
    relay_ip: Option<IpAddr>,
    /// Relay port range, LOW-HIGH.
    #[arg(long, default_value = "49152-65535")]
    relay_ports: String,
    /// Allow peers on loopback addresses (like coturn's --allow-loopback-peers).
    #[arg(long)]
    allow_loopback_peers: bool,
    /// Allow peers on private (RFC 1918), shared (100.64/10) and link-local addresses.
    #[arg(long)]
    allow_private_peers: bool,
    /// Most allocations one user may hold (486 beyond it).
    #[arg(long, default_value_t = 100)]
    max_allocations_per_user: usize,
    /// Most responses kept to answer retransmitted requests alike (for 40 s; the oldest go
    /// first beyond it; only authenticated requests' responses are kept). A few hundred bytes
    /// each: the default bounds the cache to tens of MB.
    #[arg(long, default_value_t = 65_536)]
    max_cached_responses: usize,
    /// Most permissions (peer addresses) one allocation holds; beyond it CreatePermission gets 508.
    #[arg(long, default_value_t = 1024)]
    max_permissions_per_allocation: usize,
    /// Most channels one allocation holds; beyond it ChannelBind gets 508.
    #[arg(long, default_value_t = 1024)]
    max_channels_per_allocation: usize,
    /// TCP: close a connection with no allocation that sends nothing this long (seconds).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    tcp_idle_timeout: f64,
    /// TCP: close a connection that leaves a frame unfinished this long (seconds).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    tcp_frame_timeout: f64,
    /// TCP: close a client that has this many bytes of output it has not read yet, rather than
    /// drop part of a frame.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    tcp_max_unsent: usize,
    /// Unauthenticated answers (401, 438) per second to one client IP; requests beyond it are
    /// dropped unanswered. A 401 is bigger than the request that caused it, so without a limit
    /// an open TURN server reflects spoofed traffic (coturn: --unauthorized-ratelimit). Off by
    /// default, as coturn's.
    #[arg(long, value_name = "N")]
    unauth_rate_limit: Option<u32>,
    /// Accept channel numbers up to 0x7FFF, as RFC 5766 (and coturn, and turnutils_uclient) do;
    /// RFC 8656 allows 0x4000-0x4FFF only.
    #[arg(long)]
    rfc5766_channels: bool,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Address to listen on (the reference listens on every interface).
    #[arg(short = 'H', long, default_value = "::")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one). Required, as in the reference, unless PORT is set.
    #[arg(short, long, env = "PORT")]
    port: u16,
    /// The key clients must send (`key=` on the WebSocket URL).
    #[arg(short, long, default_value = "peerjs")]
    key: String,
    /// Mount path of the HTTP API and of `<path>peerjs`.
    #[arg(long, default_value = "/", env = "PEERSERVER_PATH")]
    path: String,
    /// Milliseconds a message for an offline peer is kept before the sender gets EXPIRE.
    #[arg(short = 't', long, default_value_t = 5000, alias = "expire_timeout")]
    expire_timeout: u64,
    /// Milliseconds without a HEARTBEAT before a client is dropped (the reference CLI's default).
    #[arg(long, default_value_t = 60_000, alias = "alive_timeout")]
    alive_timeout: u64,
    /// Most registered peer IDs.
    #[arg(short = 'c', long, default_value_t = 5000, alias = "concurrent_limit")]
    concurrent_limit: usize,
    /// Serve GET /<key>/peers (the list of every registered ID).
    #[arg(long, alias = "allow_discovery")]
    allow_discovery: bool,
    /// Allowed CORS origins (default: reflect any origin).
    #[arg(long, num_args = 1..)]
    cors: Vec<String>,
    /// TLS: the PEM private key (with --sslcert); the broker then serves wss:// and https://
    /// only, as the reference does with the same two options.
    #[arg(long, value_name = "FILE", requires = "sslcert")]
    sslkey: Option<std::path::PathBuf>,
    /// TLS: the PEM certificate chain (with --sslkey).
    #[arg(long, value_name = "FILE", requires = "sslkey")]
    sslcert: Option<std::path::PathBuf>,
    /// Accepted for compatibility: the reference only passes it to Express ("trust proxy"), and
    /// nothing reads the client address.
    #[arg(long)]
    proxied: bool,
    /// Turn on the limits for hostile clients (the --max-*, --rate-* and --server-issued-ids values).
    #[arg(long)]
    hardened: bool,
    /// Hardened: longest peer ID (IDs must also match the PeerJS client's rule).
    #[arg(long, default_value_t = 64)]
    max_id_length: usize,
    /// Hardened: messages held for one offline peer.
    #[arg(long, default_value_t = 32)]
    max_queue_per_peer: usize,
    /// Hardened: messages held for all offline peers together.
    #[arg(long, default_value_t = 100_000)]
    max_queued_total: usize,
    /// Hardened: bytes held for one offline peer (its queued frames' texts).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    max_queued_bytes_per_peer: usize,
    /// Hardened: bytes held for all offline peers together.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    max_queued_bytes_total: usize,
    /// Hardened, with --server-issued-ids: IDs handed out and not yet claimed; beyond it
    /// GET /<key>/id answers 503 until some are claimed or expire.
    #[arg(long, default_value_t = 100_000)]
    max_issued_ids: usize,
    /// Largest WebSocket message in bytes; a larger one closes its sender with 1009 (default:
    /// 16 MiB, far above any PeerJS frame; the reference takes 100 MiB; 64 KiB hardened).
    #[arg(long)]
    max_frame_bytes: Option<usize>,
    /// Hardened: sustained frames per second per client.
    #[arg(long, default_value_t = 200)]
    rate_limit: u32,
    /// Hardened: frames a client may send in a burst above the rate.
    #[arg(long, default_value_t = 400)]
    rate_burst: u32,
    /// Hardened: only IDs handed out by GET /<key>/id (unused, within 60 s) may register.
    #[arg(long)]
    server_issued_ids: bool,
    /// Hardened: milliseconds a lost client's ID stays reserved for its token, so nobody else
    /// can squat it before the owner reconnects (0: freed at once, as the reference does).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    id_reservation: u64,
    /// Hardened: bytes waiting to be written to one client beyond which it counts as a slow
    /// reader and is disconnected (its frames are queued again, so senders get EXPIRE).
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    max_send_buffer: usize,
    /// Connections not yet upgraded to a WebSocket held at once (slow or idle sockets); beyond
    /// it a new connection gets 503 at once. Each has 10 s to send its request head.
    #[arg(long, default_value_t = 1024)]
    max_handshaking: usize,
    /// Broken on purpose, for the conformance suite's self-test: relay the src a client wrote.
    #[arg(long, hide = true)]
    conformance_break_src: bool,
}

impl BrokerArgs {
    fn config(&self) -> Config {
        let mut c = Config {
            key: self.key.clone(),
            path: self.path.clone(),
            expire_timeout: Duration::from_millis(self.expire_timeout),
            alive_timeout: Duration::from_millis(self.alive_timeout),
            concurrent_limit: self.concurrent_limit,
            allow_discovery: self.allow_discovery,
            cors: self.cors.clone(),
            trust_client_src: self.conformance_break_src,
            max_handshaking: self.max_handshaking,
            ..Config::default()
        };
        if self.hardened {
            let h = Hardening {
                max_id_len: self.max_id_length,
                max_queue_per_peer: self.max_queue_per_peer,
                max_queued_total: self.max_queued_total,
                max_queued_bytes_per_peer: self.max_queued_bytes_per_peer,
                max_queued_bytes_total: self.max_queued_bytes_total,
                max_issued_ids: self.max_issued_ids,
                max_frame_bytes: self.max_frame_bytes.unwrap_or(64 << 10),
                rate_per_sec: self.rate_limit,
                rate_burst: self.rate_burst,
                server_issued_ids: self.server_issued_ids,
                id_reservation: Duration::from_millis(self.id_reservation),
                max_send_buffer: self.max_send_buffer.max(1),
                ..Hardening::default()
            };
            c.hardening = Some(h);
        } else if let Some(m) = self.max_frame_bytes {
            c.max_frame_bytes = m;
        }
        c
    }
}

pub fn run(cmd: Serve) -> Result<u8> {
    match cmd {
        Serve::Broker(a) => broker(&a),
        Serve::Turn(a) => turn(&a),
    }
}

fn broker(a: &BrokerArgs) -> Result<u8> {
    let limit = server::raise_fd_limit().context("raising the open-files limit")?;
    let config = a.config();
    let tls = match (&a.sslcert, &a.sslkey) {
        (Some(cert), Some(key)) => Some(peerstorm_tls::server_config(cert, key).context("--sslcert/--sslkey")?),
        _ => None,
    };
    let (ws, http) = if tls.is_some() { ("wss", "https") } else { ("ws", "http") };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let addr = SocketAddr::new(a.host, a.port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) if a.host.is_ipv6() && a.host.is_unspecified() => {
                // No IPv6 here: fall back to every IPv4 interface.
                tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], a.port)))
                    .await
                    .with_context(|| format!("binding {addr} ({e}) and 0.0.0.0:{}", a.port))?
            }
            Err(e) => return Err(e).with_context(|| format!("binding {addr}")),
        };
        let local = listener.local_addr()?;
        let shown = match local.ip() {
            ip if ip.is_unspecified() => SocketAddr::new(IpAddr::from([127, 0, 0, 1]), local.port()),
            _ => local,
        };
        println!(
            "peerstorm broker listening on {local}: {ws}://{shown}{}?key={}  {http}://{shown}{}  metrics {http}://{shown}/metrics",
            config.ws_path(),
            config.key,
            config.mount()
        );
        println!(
            "mode {}, expire {} ms, alive {} ms, concurrent limit {}, open-files limit {limit}",
            if config.hardening.is_some() { "hardened" } else { "compatible (peer@1.0.2)" },
            a.expire_timeout,
            a.alive_timeout,
            a.concurrent_limit
        );
        server::run_with(listener, config, tls, shutdown_signal()).await?;
        println!("peerstorm broker stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(crate::EXIT_OK)
}

fn turn(a: &TurnArgs) -> Result<u8> {
    let _ = server::raise_fd_limit();
    let mut listen = a.listen;
    if listen.port() == 0 {
        // One free port for both UDP and TCP.
        listen = (0..100)
            .find_map(|_| {
                let u = std::net::UdpSocket::bind(SocketAddr::new(listen.ip(), 0)).ok()?;
                let addr = u.local_addr().ok()?;
                std::net::TcpListener::bind(addr).ok().map(|_| addr)
            })
            .context("finding a free port")?;
    }
    let mut cfg = peerstorm_turn::TurnConfig::new(&a.realm, listen);
    for u in &a.users {
        let Some((name, pass)) = u.split_once(':') else {
            anyhow::bail!("--user {u:?}: expected NAME:PASSWORD");
        };
        cfg.add_user(name, pass);
    }
    let Some((lo, hi)) = a
        .relay_ports
        .split_once('-')
        .and_then(|(l, h)| Some((l.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
        .filter(|(l, h)| l <= h)
    else {
        anyhow::bail!("--relay-ports {:?}: expected LOW-HIGH, e.g. 49152-65535", a.relay_ports);
    };
    cfg.relay_ports = (lo, hi);
    cfg.alternate = a.alt_address;
    if let Some(ip) = a.relay_ip {
        cfg.relay_ip = ip;
    }
    cfg.allow_loopback_peers = a.allow_loopback_peers;
    cfg.allow_private_peers = a.allow_private_peers;
    cfg.max_allocations_per_user = a.max_allocations_per_user;
    cfg.max_cached_responses = a.max_cached_responses;
    cfg.max_permissions_per_allocation = a.max_permissions_per_allocation;
    cfg.max_channels_per_allocation = a.max_channels_per_allocation;
    for (flag, secs) in [("--tcp-idle-timeout", a.tcp_idle_timeout), ("--tcp-frame-timeout", a.tcp_frame_timeout)] {
        if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
            anyhow::bail!("{flag} {secs}: expected seconds above 0, at most a day");
        }
    }
    cfg.tcp_idle_timeout = std::time::Duration::from_secs_f64(a.tcp_idle_timeout);
    cfg.tcp_frame_timeout = std::time::Duration::from_secs_f64(a.tcp_frame_timeout);
    cfg.tcp_max_unsent = a.tcp_max_unsent;
    cfg.rfc5766_channels = a.rfc5766_channels;
    if a.unauth_rate_limit == Some(0) {
        anyhow::bail!(
            "--unauth-rate-limit 0 would answer no unauthenticated request, so no client could learn a nonce"
        );
    }
    cfg.unauth_rate_limit = a.unauth_rate_limit;
    if let Some(secret) = &a.auth_secret {
        if secret.is_empty() {
            anyhow::bail!("--auth-secret: the secret is empty");
        }
        cfg.auth_secret = Some(secret.clone());
    }
    let tls = match (a.tls_listen, &a.cert, &a.key) {
        (Some(mut at), Some(cert), Some(key)) => {
            let config = peerstorm_tls::server_config(cert, key).context("--cert/--key")?;
            if at.port() == 0 {
                at = std::net::TcpListener::bind(at).and_then(|l| l.local_addr()).context("finding a free TLS port")?;
            }
            Some(peerstorm_turn::shell::Tls { listen: at, config })
        }
        _ => None,
    };
    let tls_note = tls.as_ref().map(|t| format!(" and tls {}", t.listen)).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (realm, users, relay) = (a.realm.clone(), cfg.users.len(), cfg.relay_ip);
    let ready = move |udp: &[SocketAddr]| {
        let udp: Vec<String> = udp.iter().map(|a| a.to_string()).collect();
        println!(
            "peerstorm turn listening on udp {} and tcp {listen}{tls_note} (realm {realm}, {users} user(s), relay {relay}:{lo}-{hi})",
            udp.join(", ")
        );
    };
    rt.block_on(peerstorm_turn::shell::run_with(cfg, tls, ready, shutdown_signal())).context("serving TURN")?;
    println!("peerstorm turn stopped");
    Ok(crate::EXIT_OK)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
