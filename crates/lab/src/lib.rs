//! The lab: real programs behind peerstorm's simulated network.
//!
//! Each lab host is a network namespace ([`ns`]) whose only interfaces are `lo` and one TUN
//! device owned by this process, with the host's address and a default route into the TUN.
//! The simulator's [`World`] runs on the wall clock: every IPv4 packet a host's kernel writes
//! to its TUN becomes a [`Packet`] sent from that host into the simulated network (links,
//! NATs, firewalls, the embedded servers), and every packet the world delivers to a lab host is
//! written to that host's TUN with its headers and checksums made anew ([`ip`]). Nothing in a
//! lab namespace can reach anything outside the lab: the TUN is its only way out, and the
//! other end of it is the simulation.
//!
//! The call loop: handle everything due by the wall time ([`World::run_until`]), write what
//! reached lab hosts, then wait for the next packet from a TUN or the world's next deadline.
//!
//! Carried today: IPv4 UDP and TCP (the simulated network models TCP segments as delivered in
//! order, so the kernels' TCP sees delay but no loss), multicast within a segment (mDNS works
//! between hosts on one LAN, not across a NAT). ICMP is counted and dropped.

pub mod ip;
pub mod ns;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use ns::{Namespace, NsError};
use peerstorm_broker::{Broker, Config};
use peerstorm_netsim::{HostId, LinkConfig, Network, SegmentId};
use peerstorm_runner::World;
use peerstorm_turn::{TurnConfig, TurnServer};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long before a deadline the forwarder stops sleeping and spins: a little more than a
/// wake-up from the timerfd takes (~0.1 ms), so deadlines are met to a few microseconds.
const EARLY: Duration = Duration::from_micros(200);

/// The forwarder's alarm clock: a timerfd (microsecond wake-ups) for tokio to wait on.
struct Alarm(TimerFd);

impl std::os::fd::AsRawFd for Alarm {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// The lab hosts' MTU.
pub const LAB_MTU: u16 = 1400;

/// Why a lab could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    #[error(transparent)]
    Namespace(#[from] NsError),
    #[error("creating the TUN device {name}: {err} (the lab needs root and /dev/net/tun)")]
    Tun { name: String, err: std::io::Error },
    #[error("the lab's event loop: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    World(#[from] peerstorm_runner::SimError),
    /// SIGINT (Ctrl-C) or SIGTERM arrived while the lab ran; dropping the [`Lab`] removes it.
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
}

/// A host to be: where it sits on the simulated network and what it is called.
#[derive(Debug)]
struct Planned {
    label: String,
    host: HostId,
    ip: Ipv4Addr,
}

/// Lays out a lab: the simulated network (segments, routers with NATs, servers) and the hosts
/// that are namespaces.
#[derive(Debug)]
pub struct LabBuilder {
    net: Network,
    planned: Vec<Planned>,
    turn: Option<(HostId, TurnConfig)>,
}

impl LabBuilder {
    pub fn new(seed: u64) -> Self {
        Self { net: Network::new(seed), planned: Vec::new(), turn: None }
    }

    /// Makes `host`, already on the network (e.g. behind a NAT preset's routers), a lab host.
    pub fn adopt(&mut self, label: &str, host: HostId, ip: Ipv4Addr) {
        self.planned.push(Planned { label: label.to_string(), host, ip });
    }

    /// Runs peerstorm's STUN/TURN core on `host` (a simulated host with every address `cfg`
    /// listens on), as in the simulator.
    pub fn add_turn(&mut self, host: HostId, cfg: TurnConfig) {
        self.turn = Some((host, cfg));
    }

    /// The simulated network, to add segments and routers.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// A lab host: a namespace at `ip` on `segment`, behind `link`.
    pub fn add_host(&mut self, label: &str, segment: SegmentId, ip: Ipv4Addr, link: LinkConfig) -> HostId {
        let host = self.net.add_host(label, segment, &[ip], link);
        self.planned.push(Planned { label: label.to_string(), host, ip });
        host
    }

    /// Makes the namespaces and their TUN devices. Half-built labs are not left behind: what
    /// was made is removed when this fails.
    pub fn build(self) -> Result<Lab, LabError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // From before the first namespace: a Ctrl-C while the lab is being made or its programs
        // started is held here and ends the first forwarding with `Interrupted` (the caller drops
        // the lab, which removes it), instead of killing the process with namespaces left.
        let signals = {
            use tokio::signal::unix::{SignalKind, signal};
            let _in_rt = rt.enter();
            Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? }
        };
        let mut hosts = BTreeMap::new();
        for (k, p) in self.planned.iter().enumerate() {
            let ns = Namespace::create(&p.label)?;
            let name = format!("pst{}x{k}", std::process::id() % 100_000);
            // Below netsim's 1,500-byte link MTU with room for how it counts headers, so no
            // packet a host sends is dropped for its size.
            let dev = rt
                .block_on(async { tun_rs::DeviceBuilder::new().name(&name).mtu(LAB_MTU).build_async() })
                .map_err(|err| LabError::Tun { name: name.clone(), err })?;
            // Made in this namespace, then moved: the file descriptor stays ours.
            ns::ip(&["link", "set", "dev", &name, "netns", ns.name()])?;
            ns.ip(&["addr", "add", &format!("{}/32", p.ip), "dev", &name])?;
            // Multicast on, so mDNS (224.0.0.251) reaches the hosts of the same segment.
            ns.ip(&["link", "set", &name, "multicast", "on", "up"])?;
            ns.ip(&["route", "add", "default", "dev", &name])?;
            hosts.insert(p.host, LabHost { ns, dev: Arc::new(dev), ip: p.ip });
        }
        let mut world = World::new(self.net, Duration::ZERO, |base| Broker::new(Config::default(), base, 1));
        if let Some((host, cfg)) = self.turn {
            let core = TurnServer::new(cfg, world.base(), [5; 16]);
            world.add_turn(host, core, Duration::ZERO);
        }
        realtime();
        let wake_latency = hold_wake_latency();
        Ok(Lab { rt, world, hosts, stats: LabStats::default(), pcap: None, signals, _wake_latency: wake_latency })
    }
}

/// Asks the kernel's CPU-idle governor (PM QoS, `/dev/cpu_dma_latency`) for a wake-up latency
/// of 0 while the lab exists: idle CPUs poll instead of halting, so the forwarder (and the
/// hosts) wake on a packet or a deadline in microseconds rather than after a halted (virtual)
/// CPU is resumed. What `tuned`'s latency-performance profile does; the request ends when the
/// file is closed (the lab dropped). Measured on the 2-core VM: UDP echo RTT p50 over 40 ms
/// configured 41.0–41.4 → 40.5 ms, scheduling error p50 170 → 98 µs. Best effort: without the
/// device (or root) the lab runs, less precisely.
fn hold_wake_latency() -> Option<std::fs::File> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().write(true).open("/dev/cpu_dma_latency").ok()?;
    f.write_all(&0i32.to_ne_bytes()).ok()?;
    Some(f)
}

/// Puts the calling thread (the forwarder: labs run on the thread that built them) in the
/// real-time class, SCHED_FIFO at the lowest priority, with SCHED_RESET_ON_FORK so that
/// nothing it starts inherits it. The network runs before the programs on it: a browser that
/// fills both cores delays its own work, not every packet in the lab (measured with two
/// Chromium pairs on two cores: scheduling error p99 from 13.7 ms at nice -10 to 0.57 ms).
/// The forwarder sleeps between deadlines (on a timerfd), so it does not hold a core; best
/// effort (`chrt` from util-linux): without it the lab still runs.
fn realtime() {
    let Ok(me) = std::fs::read_link("/proc/thread-self") else { return };
    let Some(tid) = me.file_name().and_then(|t| t.to_str()).map(str::to_string) else { return };
    let _ = Command::new("chrt").args(["-f", "-R", "-p", "1", &tid]).output();
}

/// A lab host: its namespace and the TUN device that is its only way out.
struct LabHost {
    ns: Namespace,
    dev: Arc<tun_rs::AsyncDevice>,
    ip: Ipv4Addr,
}

impl std::fmt::Debug for LabHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabHost").field("ns", &self.ns).field("ip", &self.ip).finish()
    }
}

/// What the lab carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabStats {
    /// Packets read from the hosts' TUN devices and sent into the simulated network.
    pub into_network: u64,
    /// Packets the network delivered to lab hosts and written to their TUN devices.
    pub out_of_network: u64,
    /// Packets not carried, by reason (`IP protocol 1 is not carried`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// How late each packet reached its host's TUN device after the simulated network's
    /// delivery time (the forwarder's scheduling error), microseconds; the first
    /// [`LATENESS_SAMPLES`] packets.
    pub lateness_us: Vec<u32>,
}

/// How many packets' lateness [`LabStats`] keeps.
pub const LATENESS_SAMPLES: usize = 1 << 20;

impl LabStats {
    /// The `q` quantile (0..=1) of the forwarder's scheduling error; `None` before any packet.
    pub fn lateness(&self, q: f64) -> Option<Duration> {
        if self.lateness_us.is_empty() {
            return None;
        }
        let mut v = self.lateness_us.clone();
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        Some(Duration::from_micros(u64::from(v[i])))
    }
}

/// The lab's SIGINT and SIGTERM streams.
#[derive(Debug)]
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

/// A running lab: the namespaces exist until it is dropped.
#[derive(Debug)]
pub struct Lab {
    rt: tokio::runtime::Runtime,
    world: World,
    hosts: BTreeMap<HostId, LabHost>,
    stats: LabStats,
    /// Every packet the hosts' kernels sent and got, as they were (LINKTYPE_RAW), once asked for.
    pcap: Option<peerstorm_netsim::pcap::Pcap>,
    /// SIGINT and SIGTERM, registered when the lab was built.
    signals: Signals,
    /// The PM QoS request held while the lab exists ([`hold_wake_latency`]).
    _wake_latency: Option<std::fs::File>,
}

impl Lab {
    /// From now on, records every packet a lab host's kernel sends or gets, byte for byte, with
    /// the lab's clock (wall time since the lab was built).
    pub fn capture(&mut self) {
        self.pcap.get_or_insert_with(peerstorm_netsim::pcap::Pcap::new);
    }

    /// The capture as a pcap file (empty without [`Lab::capture`]).
    pub fn pcap(&self) -> &[u8] {
        self.pcap.as_ref().map_or(&[], |p| p.bytes())
    }

    /// The namespace of a lab host.
    pub fn namespace(&self, host: HostId) -> Option<&str> {
        self.hosts.get(&host).map(|h| h.ns.name())
    }

    /// A command that runs `program` inside a lab host's namespace.
    pub fn command(&self, host: HostId, program: &str) -> Option<Command> {
        self.hosts.get(&host).map(|h| h.ns.command(program))
    }

    pub fn stats(&self) -> &LabStats {
        &self.stats
    }

    /// Forwards between the hosts and the simulated network for `d` of wall time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), LabError> {
        self.run_until(d, || false).map(|_| ())
    }

    /// Forwards until `done()` says so (asked at least every 50 ms) or `max` has passed;
    /// returns whether `done` ended it. SIGINT or SIGTERM ends it with
    /// [`LabError::Interrupted`]: the caller drops the lab, which removes it.
    pub fn run_until(&mut self, max: Duration, mut done: impl FnMut() -> bool) -> Result<bool, LabError> {
        let Lab { rt, world, hosts, stats, pcap, signals, .. } = self;
        rt.block_on(forward(world, hosts, stats, pcap, signals, Instant::now() + max, &mut done))
    }
}

async fn forward(
    world: &mut World,
    hosts: &BTreeMap<HostId, LabHost>,
    stats: &mut LabStats,
    pcap: &mut Option<peerstorm_netsim::pcap::Pcap>,
    signals: &mut Signals,
    end: Instant,
    done: &mut dyn FnMut() -> bool,
) -> Result<bool, LabError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(HostId, Vec<u8>)>(4096);
    let mut readers = tokio::task::JoinSet::new();
    for (&host, h) in hosts {
        let (dev, tx) = (h.dev.clone(), tx.clone());
        readers.spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = dev.recv(&mut buf).await {
                if tx.send((host, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        });
    }
    let Signals { int, term } = signals;
    // Deprecated in tokio 1.54 for types that could close their descriptor while registered
    // (the replacement is `unsafe`, which this workspace forbids); `Alarm` owns its timerfd
    // for as long as the AsyncFd holds it and never replaces it.
    #[allow(deprecated)]
    let alarm = tokio::io::unix::AsyncFd::with_interest(
        Alarm(TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK).map_err(std::io::Error::from)?),
        tokio::io::Interest::READABLE,
    )?;
    let base = world.base();
    let mut out = Vec::new();
    let result = loop {
        // Everything due by now, then what reached lab hosts onto their TUN devices.
        let now = Instant::now().saturating_duration_since(base);
        if let Err(e) = world.run_until(now.max(world.now()), |_, d| {
            out.push(d);
            peerstorm_netsim::Flow::Continue
        }) {
            break Err(e.into());
        }
        for d in out.drain(..) {
            let (Some(h), Some(bytes)) = (hosts.get(&d.host), ip::emit(&d.pkt)) else { continue };
            if let Some(p) = pcap.as_mut() {
                p.record_raw(Instant::now().saturating_duration_since(base), &bytes);
            }
            if h.dev.send(&bytes).await.is_ok() {
                stats.out_of_network += 1;
                if stats.lateness_us.len() < LATENESS_SAMPLES {
                    let late = Instant::now().saturating_duration_since(base + d.at);
                    stats.lateness_us.push(late.as_micros().min(u128::from(u32::MAX)) as u32);
                }
            }
        }
        if done() {
            break Ok(true);
        }
        if Instant::now() >= end {
            break Ok(false);
        }
        let poll = Instant::now() + Duration::from_millis(50);
        let wake = world.next_deadline().map_or(end, |t| (base + t).min(end)).min(poll);
        let left = wake.saturating_duration_since(Instant::now());
        if left.is_zero() {
            continue;
        }
        let got = if left > EARLY {
            // A timerfd, not tokio's timer (whole milliseconds, late by up to one), set EARLY
            // before the deadline: waking takes about 0.1 ms, the rest is spun below.
            let until = TimeSpec::from_duration(left - EARLY);
            alarm
                .get_ref()
                .0
                .set(Expiration::OneShot(until), TimerSetTimeFlags::empty())
                .map_err(std::io::Error::from)?;
            tokio::select! {
                got = rx.recv() => got,
                ready = alarm.readable() => {
                    let mut ready = ready?;
                    // Drains the expiry count (EAGAIN when a stale readiness woke us).
                    let _ = ready.get_inner().0.wait();
                    ready.clear_ready();
                    continue;
                }
                _ = int.recv() => break Err(LabError::Interrupted("SIGINT")),
                _ = term.recv() => break Err(LabError::Interrupted("SIGTERM")),
            }
        } else {
            // The last stretch: spin, yielding so the TUN readers still run.
            loop {
                match rx.try_recv() {
                    Ok(got) => break Some(got),
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break None,
                    Err(_) if Instant::now() >= wake => break None,
                    Err(_) => tokio::task::yield_now().await,
                }
            }
        };
        let Some((host, bytes)) = got else { continue };
        if let Some(p) = pcap.as_mut() {
            p.record_raw(Instant::now().saturating_duration_since(base), &bytes);
        }
        match ip::parse(&bytes) {
            Ok(pkt) => {
                let now = Instant::now().saturating_duration_since(base);
                if let Err(e) = world.run_until(now.max(world.now()), |_, d| {
                    out.push(d);
                    peerstorm_netsim::Flow::Continue
                }) {
                    break Err(e.into());
                }
                world.send(host, pkt);
                stats.into_network += 1;
            }
            Err(why) => *stats.skipped.entry(why.to_string()).or_default() += 1,
        }
    };
    readers.abort_all();
    result
}
