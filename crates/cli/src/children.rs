//! The servers peerstorm starts as child processes (its own broker and TURN server, peer@1.0.2,
//! coturn), each behind one guard that stops it (by its PID, through `Child`) when dropped. Every
//! command that runs a server for a benchmark, a conformance matrix or a live run starts it here.

use anyhow::{Context, Result, anyhow, bail};
use peerstorm_live::run::{Launcher, Started};
use peerstorm_loadgen::Target;
use peerstorm_scenario::{BrokerTarget, TurnTarget};
use peerstorm_turn::client::UdpClient;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A server process that is stopped when this is dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) child: std::process::Child,
    pub(crate) addr: SocketAddr,
    /// A scratch directory of its own, removed with it.
    dir: Option<PathBuf>,
}

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The checkout's root (where `tools/js` is): the reference server and scripts live there.
pub(crate) fn repo_root() -> Result<PathBuf> {
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join("tools/js/package.json").exists() {
            return Ok(dir);
        }
        if !dir.pop() {
            bail!("run this from the peerstorm checkout (tools/js/ not found above the current directory)");
        }
    }
}

/// Runs `peerstorm ARGS` and reads the address from word `word` of its first line (the banner
/// every `serve` command prints once it listens); the rest of its output is drained.
fn start_own(name: &str, args: &[&str], word: usize) -> Result<Server> {
    start_own_banner(name, args, word).map(|(s, _)| s)
}

/// As [`start_own`], also returning the banner.
fn start_own_banner(name: &str, args: &[&str], word: usize) -> Result<(Server, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let Some(banner) = wait_for_line(&mut child, Duration::from_secs(30), |_| true) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{name} printed nothing within 30 s");
    };
    let addr = banner.split_whitespace().nth(word).and_then(|a| a.trim_end_matches([':', ',']).parse().ok());
    match addr {
        Some(addr) => Ok((Server { name: name.into(), child, addr, dir: None }, banner)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(anyhow!("{name}: unexpected banner: {banner}"))
        }
    }
}

/// `peerstorm serve broker` on a free loopback port, with `extra` options.
pub(crate) fn serve_broker(extra: &[&str]) -> Result<Server> {
    let mut args = vec!["serve", "broker", "--host", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    // "peerstorm broker listening on 127.0.0.1:PORT: ..."
    start_own("peerstorm", &args, 4)
}

/// peerstorm's broker for at most `limit` peers.
pub(crate) fn start_peerstorm(limit: usize) -> Result<Server> {
    serve_broker(&["--concurrent-limit", &limit.to_string()])
}

/// `peer@1.0.2` from tools/js for at most `limit` peers.
pub(crate) fn start_reference(limit: usize) -> Result<Server> {
    start_reference_with(limit, &[])
}

/// `peer@1.0.2` with extra options (e.g. `--expire_timeout 1000`).
pub(crate) fn start_reference_with(limit: usize, extra: &[&str]) -> Result<Server> {
    let bin = repo_root()?.join("tools/js/node_modules/peer/dist/bin/peerjs.js");
    if !bin.exists() {
        bail!("{} is missing: run scripts/test.sh or `npm ci` in tools/js", bin.display());
    }
    // The port is picked free and released, so another process may take it first; peer@1.0.2
    // then runs on silently (its `uncaughtException` handler only logs the listen error), so a
    // banner that does not come within the deadline means: stop it and try another port.
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new("node")
            .arg(&bin)
            .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--concurrent_limit", &limit.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting node")?;
        if wait_for_line(&mut child, Duration::from_secs(20), |l| l.contains("Started PeerServer")).is_some() {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            return Ok(Server { name: "peer@1.0.2".into(), child, addr, dir: None });
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!("peer@1.0.2 did not start on three free ports within 20 s each")
}

/// Waits at most `within` for a line of `child`'s stdout that `wanted` accepts and returns it; a
/// thread keeps reading the rest (a closed pipe would kill a server at its next line). `None`
/// when the process closes its stdout first or the time runs out.
pub(crate) fn wait_for_line(
    child: &mut std::process::Child,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Option<String> {
    let out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // Once the banner is taken nobody listens: the lines are drained and dropped.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(line) if wanted(&line) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// A TURN server with user `test:test` in realm `example.org`, relaying to loopback peers:
/// `peerstorm` (its own) or `coturn`.
pub(crate) fn start_turn(which: &str) -> Result<Server> {
    match which {
        // Port 0: the server picks one free for UDP and TCP and prints it
        // ("peerstorm turn listening on udp 127.0.0.1:PORT and tcp ...").
        "peerstorm" => start_own(
            "peerstorm",
            &[
                "serve",
                "turn",
                "--listen",
                "127.0.0.1:0",
                "--realm",
                "example.org",
                "--user",
                "test:test",
                "--allow-loopback-peers",
                // Below the ephemeral ports the generator's sockets take, room for the bench's
                // 20,000 idle allocations.
                "--relay-ports",
                "10000-31999",
                "--max-allocations-per-user",
                "100000",
            ],
            5,
        ),
        "coturn" => {
            // A port picked then released can be taken before coturn binds it: try three.
            let mut last = None;
            for _ in 0..3 {
                match start_coturn(&[]) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.expect("three attempts were made"))
        }
        other => bail!("unknown TURN server {other:?} (use peerstorm, coturn)"),
    }
}

/// peerstorm's TURN server or coturn taking TURN over TLS with this certificate, and the address
/// TLS clients connect to (peerstorm: its `--tls-listen`; coturn: its listening port, where it
/// tells TLS from plain TCP by the first byte).
pub(crate) fn start_turn_tls(which: &str, cert: &str, key: &str) -> Result<(Server, SocketAddr)> {
    match which {
        "peerstorm" => {
            let args = [
                "serve",
                "turn",
                "--listen",
                "127.0.0.1:0",
                "--realm",
                "example.org",
                "--user",
                "test:test",
                "--allow-loopback-peers",
                "--relay-ports",
                "52000-56999",
                "--max-allocations-per-user",
                "100000",
                "--tls-listen",
                "127.0.0.1:0",
                "--cert",
                cert,
                "--key",
                key,
            ];
            let (mut s, banner) = start_own_banner("peerstorm", &args, 5)?;
            s.name = "peerstorm (tls)".into();
            // "... and tcp ADDR and tls ADDR (realm ..."
            let tls = banner
                .split(" and tls ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| anyhow!("no TLS address in the banner: {banner}"))?;
            Ok((s, tls))
        }
        "coturn" => {
            let mut s = start_coturn(&["--cert", cert, "--pkey", key])?;
            s.name = "coturn (tls)".into();
            let addr = s.addr;
            Ok((s, addr))
        }
        other => bail!("unknown TURN server {other:?} (use peerstorm, coturn)"),
    }
}

fn start_coturn(extra: &[&str]) -> Result<Server> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    if !std::path::Path::new("/usr/bin/turnserver").exists() {
        bail!("coturn is not installed (apt-get install coturn, or scripts/test.sh)");
    }
    let dir = std::env::temp_dir().join(format!("peerstorm-bench-coturn-{port}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("turnserver.conf"), "# settings are on the command line\n")?;
    let child = Command::new("turnserver")
        .arg("-c")
        .arg(dir.join("turnserver.conf"))
        .args(["--lt-cred-mech", "--user", "test:test", "--realm", "example.org", "--no-dtls", "--no-cli"])
        // With a certificate coturn takes TLS on its listening port too.
        .args(if extra.contains(&"--cert") { &[][..] } else { &["--no-tls"][..] })
        .args(extra)
        .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", &port.to_string()])
        .args(["--min-port", "10000", "--max-port", "31999", "--allow-loopback-peers", "--no-multicast-peers"])
        .arg("--simple-log")
        .arg("--log-file")
        .arg(dir.join("turnserver.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting turnserver")?;
    // From here on the guard stops it, whatever happens.
    let mut server = Server { name: "coturn".into(), child, addr, dir: Some(dir) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = server.dir.as_ref().map(|d| d.join("turnserver.log").display().to_string());
            bail!("coturn exited at start ({status}); see {}", log.unwrap_or_default());
        }
        let mut c = UdpClient::connect(addr, "test", "test", 1)?;
        c.socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let tid = c.new_tid();
        if c.exchange(&peerstorm_model::stun::Message::binding_request(tid).encode(true), tid).is_ok() {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("coturn did not answer in 20 s");
        }
    }
}

/// The live runner's [`Launcher`]: servers as child processes, kept until the run drops them.
#[derive(Debug, Default)]
pub(crate) struct Children;

impl Launcher for Children {
    fn broker(&mut self, which: &BrokerTarget, peers: usize) -> Result<Started<Target>, String> {
        let started = match which {
            BrokerTarget::Reference => start_reference(peers),
            _ => start_peerstorm(peers),
        };
        let s = started.map_err(|e| format!("{e:#}"))?;
        let value = Target::new(s.addr, "/peerjs", "peerjs");
        Ok(Started { value, pid: Some(s.pid()), guard: Box::new(s) })
    }

    fn turn(&mut self, which: &TurnTarget) -> Result<Started<SocketAddr>, String> {
        let s = start_turn(if *which == TurnTarget::Coturn { "coturn" } else { "peerstorm" })
            .map_err(|e| format!("{e:#}"))?;
        Ok(Started { value: s.addr, pid: Some(s.pid()), guard: Box::new(s) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// peer@1.0.2 on a port that is already taken neither exits nor prints: only the deadline
    /// notices (before it, a test that met a taken port waited for its banner forever).
    #[test]
    fn a_reference_on_a_taken_port_is_noticed_by_the_deadline() {
        let root =
            PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../..");
        let bin = root.join("tools/js/node_modules/peer/dist/bin/peerjs.js");
        assert!(bin.exists(), "{bin:?} is missing: run scripts/test.sh (it runs npm ci in tools/js)");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port().to_string();
        let mut child = Command::new("node")
            .arg(&bin)
            .args(["--port", &port, "--host", "127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let banner = wait_for_line(&mut child, Duration::from_secs(3), |l| l.contains("Started PeerServer"));
        let still_running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(banner, None);
        assert!(still_running, "peer@1.0.2 exited on a taken port: the deadline is then not the only guard");
    }

    #[test]
    fn the_banner_is_returned_when_it_comes() {
        let mut child = Command::new("sh")
            .args(["-c", "echo starting; echo 'Started PeerServer on 127.0.0.1'; echo more; exec sleep 5"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let line = wait_for_line(&mut child, Duration::from_secs(5), |l| l.contains("Started"));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(line.as_deref(), Some("Started PeerServer on 127.0.0.1"));
    }
}
