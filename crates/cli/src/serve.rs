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
    /// Largest WebSocket message in bytes (default: 100 MiB like the reference; 64 KiB hardened).
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
            ..Config::default()
        };
        if self.hardened {
            let h = Hardening {
                max_id_len: self.max_id_length,
                max_queue_per_peer: self.max_queue_per_peer,
                max_queued_total: self.max_queued_total,
                max_frame_bytes: self.max_frame_bytes.unwrap_or(64 << 10),
                rate_per_sec: self.rate_limit,
                rate_burst: self.rate_burst,
                server_issued_ids: self.server_issued_ids,
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
    }
}

fn broker(a: &BrokerArgs) -> Result<u8> {
    let limit = server::raise_fd_limit().context("raising the open-files limit")?;
    let config = a.config();
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
            "peerstorm broker listening on {local}: ws://{shown}{}?key={}  http://{shown}{}  metrics http://{shown}/metrics",
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
        server::run(listener, config, shutdown_signal()).await?;
        println!("peerstorm broker stopped");
        Ok::<_, anyhow::Error>(())
    })?;
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
