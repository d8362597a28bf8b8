//! Runs one scripted case against a broker and records what each client saw: the reference
//! `peer@1.0.2` (started with node on a free loopback port) or peerstorm's broker (in-process).

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use peerstorm_broker::{Config, server};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Broker options both implementations are started with.
#[derive(Debug, Clone)]
pub struct Opts {
    pub key: String,
    pub path: String,
    pub expire_ms: u64,
    pub alive_ms: u64,
    pub limit: usize,
    pub discovery: bool,
    pub cors: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            key: "peerjs".into(),
            path: "/".into(),
            expire_ms: 1000,
            alive_ms: 60_000,
            limit: 5000,
            discovery: false,
            cors: vec![],
        }
    }
}

impl Opts {
    pub fn config(&self) -> Config {
        Config {
            key: self.key.clone(),
            path: self.path.clone(),
            expire_timeout: Duration::from_millis(self.expire_ms),
            alive_timeout: Duration::from_millis(self.alive_ms),
            concurrent_limit: self.limit,
            allow_discovery: self.discovery,
            cors: self.cors.clone(),
            ..Config::default()
        }
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `child` prints peer@1.0.2's "Started PeerServer" banner within `within`; a thread
/// keeps draining its log so it never blocks on a full pipe.
fn banner(child: &mut Child, within: Duration) -> bool {
    let Some(out) = child.stdout.take() else { return false };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("Started PeerServer") => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// A running broker of either kind; stopped on drop.
pub enum Broker {
    Reference { addr: SocketAddr, child: Child },
    Ours(server::Handle),
}

impl Broker {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Broker::Reference { addr, .. } => *addr,
            Broker::Ours(h) => h.addr,
        }
    }

    /// Starts `peer@1.0.2`'s CLI (`tools/js/node_modules/peer`) and waits for its banner.
    pub fn reference(o: &Opts) -> Broker {
        let bin = repo_root().join("tools/js/node_modules/peer/dist/bin/peerjs.js");
        assert!(bin.exists(), "{bin:?} is missing: run scripts/test.sh (it runs npm ci in tools/js)");
        // The port is picked free and released, so another process may take it first; peer@1.0.2
        // then runs on silently (its `uncaughtException` handler only logs the listen error):
        // a banner that does not come in 20 s means stop it and try another port.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut cmd = Command::new("node");
            cmd.arg(&bin)
                .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--key", &o.key, "--path", &o.path])
                .args(["--expire_timeout", &o.expire_ms.to_string(), "--alive_timeout", &o.alive_ms.to_string()])
                .args(["--concurrent_limit", &o.limit.to_string()]);
            if o.discovery {
                cmd.arg("--allow_discovery");
            }
            if !o.cors.is_empty() {
                cmd.arg("--cors").args(&o.cors);
            }
            let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("node is on PATH");
            if banner(&mut child, Duration::from_secs(20)) {
                return Broker::Reference { addr: SocketAddr::from(([127, 0, 0, 1], port)), child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("peer@1.0.2 did not start on three free ports within 20 s each")
    }

    pub fn ours(o: &Opts) -> Broker {
        Broker::Ours(server::spawn("127.0.0.1:0".parse().unwrap(), o.config()).unwrap())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Reference { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Step {
    /// Open a WebSocket as client `who` with this path and query.
    Connect(&'static str, String),
    /// `Connect` with `/peerjs?key=peerjs&id=ID&token=TOKEN&version=1.5.5` under the mount.
    Join(&'static str, &'static str, &'static str),
    Send(&'static str, String),
    SendBinary(&'static str, String),
    Close(&'static str),
    /// Stop reading and writing without a close frame (the TCP connection is dropped).
    Drop(&'static str),
    Wait(u64),
    /// Start a heartbeat every `ms` on this client.
    Heartbeat(&'static str, u64),
    /// An HTTP request: method, path, extra headers.
    Http(&'static str, String, Vec<(&'static str, &'static str)>),
}

/// What each client saw, in order, with times from the start of the case.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    pub events: BTreeMap<String, Vec<(u64, String)>>,
}

impl Transcript {
    /// Events without their times.
    pub fn plain(&self) -> BTreeMap<String, Vec<String>> {
        self.events.iter().map(|(k, v)| (k.clone(), v.iter().map(|(_, e)| e.clone()).collect())).collect()
    }

    pub fn time_of(&self, who: &str, prefix: &str) -> Option<u64> {
        self.events.get(who)?.iter().find(|(_, e)| e.starts_with(prefix)).map(|(t, _)| *t)
    }
}

/// A JSON text frame normalised (parsed and written back, key order kept; UUIDs replaced).
pub fn normalise(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v.to_string(),
        Err(_) => format!("<not json: {text}>"),
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// Runs `steps` against the broker at `addr`; `settle_ms` after the last step, collects.
pub async fn run(addr: SocketAddr, o: &Opts, steps: &[Step], settle_ms: u64) -> Transcript {
    let start = Instant::now();
    let log: Arc<Mutex<Transcript>> = Arc::default();
    let mut sinks: BTreeMap<&'static str, Sink> = BTreeMap::new();
    let mut tasks = Vec::new();
    let push = |log: &Arc<Mutex<Transcript>>, who: &str, e: String| {
        let t = start.elapsed().as_millis() as u64;
        log.lock().unwrap().events.entry(who.to_string()).or_default().push((t, e));
    };
    let mount = o.config().mount();
    for step in steps {
        match step {
            Step::Connect(who, target) => connect(addr, who, target, &log, &mut sinks, &mut tasks, start).await,
            Step::Join(who, id, token) => {
                let target = format!("{mount}peerjs?key={}&id={id}&token={token}&version=1.5.5", o.key);
                connect(addr, who, &target, &log, &mut sinks, &mut tasks, start).await
            }
            Step::Send(who, text) => {
                let _ = sinks.get_mut(who).expect("connected").send(Message::text(text.clone())).await;
            }
            Step::SendBinary(who, text) => {
                let _ = sinks.get_mut(who).expect("connected").send(Message::binary(text.clone().into_bytes())).await;
            }
            Step::Close(who) => {
                if let Some(mut s) = sinks.remove(who) {
                    let _ = s.send(Message::Close(None)).await;
                    let _ = s.flush().await;
                }
            }
            Step::Drop(who) => {
                // Abort the reader and drop the writer: the socket closes with no close frame.
                sinks.remove(who);
            }
            Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Heartbeat(who, every) => {
                let mut sink = sinks.remove(who).expect("connected");
                let every = *every;
                tasks.push(tokio::spawn(async move {
                    loop {
                        if sink.send(Message::text(r#"{"type":"HEARTBEAT"}"#)).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(every)).await;
                    }
                }));
            }
            Step::Http(method, path, headers) => {
                let r = http(addr, method, path, headers).await;
                push(&log, "http", r);
            }
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    tokio::time::sleep(Duration::from_millis(settle_ms)).await;
    for t in tasks {
        t.abort();
    }
    drop(sinks);
    log.lock().unwrap().clone()
}

#[allow(clippy::too_many_arguments)]
async fn connect(
    addr: SocketAddr,
    who: &'static str,
    target: &str,
    log: &Arc<Mutex<Transcript>>,
    sinks: &mut BTreeMap<&'static str, Sink>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    start: Instant,
) {
    let url = format!("ws://{addr}{target}");
    let record = |e: String| {
        let t = start.elapsed().as_millis() as u64;
        log.lock().unwrap().events.entry(who.to_string()).or_default().push((t, e));
    };
    // No size limits of the client's own: what a broker relays must arrive whatever its size.
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.max_frame_size = None;
    config.max_message_size = None;
    match tokio_tungstenite::connect_async_with_config(url, Some(config), false).await {
        Ok((ws, _)) => {
            let (sink, mut stream) = ws.split();
            sinks.insert(who, sink);
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let record = |e: String| {
                    let t = start.elapsed().as_millis() as u64;
                    log.lock().unwrap().events.entry(who.to_string()).or_default().push((t, e));
                };
                while let Some(m) = stream.next().await {
                    match m {
                        Ok(Message::Text(t)) => record(format!("frame {}", normalise(&t))),
                        Ok(Message::Binary(b)) => record(format!("binary {}", normalise(&String::from_utf8_lossy(&b)))),
                        Ok(Message::Close(c)) => {
                            let code = c.map_or(1005, |c| u16::from(c.code));
                            record(format!("close {code}"));
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => {
                            record("reset".into());
                            break;
                        }
                    }
                }
            }));
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => record(format!("http {}", resp.status().as_u16())),
        Err(e) => record(format!("connect error {e}")),
    }
}

/// A minimal HTTP/1.1 request; returns "STATUS content-type=.. acao=.. vary=.. acam=.. body=..".
async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("?").to_string();
    let mut h: BTreeMap<String, String> = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().to_string();
            h.entry(k).and_modify(|e| e.push_str(&format!(", {v}"))).or_insert(v);
        }
    }
    // Express may send the body chunked; both bodies here are small and whole.
    let body =
        if h.get("transfer-encoding").is_some_and(|t| t == "chunked") { dechunk(body) } else { body.to_string() };
    let body = if is_uuid(body.trim()) { "<uuid>".to_string() } else { body };
    let get = |k: &str| h.get(k).cloned().unwrap_or_default();
    format!(
        "{status} type={} acao={} vary={} acam={} acah={} body={}",
        get("content-type"),
        get("access-control-allow-origin"),
        get("vary"),
        get("access-control-allow-methods"),
        get("access-control-allow-headers"),
        body
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs the case on both brokers at once and returns (reference, ours).
pub fn both(o: &Opts, steps: &[Step], settle_ms: u64) -> (Transcript, Transcript) {
    let reference = Broker::reference(o);
    let ours = Broker::ours(o);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        tokio::join!(run(reference.addr(), o, steps, settle_ms), run(ours.addr(), o, steps, settle_ms))
    })
}

/// Runs on both and asserts every client saw the same frames in the same order.
pub fn same(o: &Opts, steps: &[Step], settle_ms: u64) -> (Transcript, Transcript) {
    let (r, u) = both(o, steps, settle_ms);
    assert_eq!(
        u.plain(),
        r.plain(),
        "\nours (right) differs from peer@1.0.2 (left)\nreference: {:#?}\nours: {:#?}",
        r.events,
        u.events
    );
    (r, u)
}

/// A JSON frame as text.
pub fn j(v: serde_json::Value) -> String {
    v.to_string()
}
