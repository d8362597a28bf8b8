//! Network namespaces for lab hosts, made and removed with iproute2 (`ip netns`). A
//! [`Namespace`] is deleted when dropped, with everything in it (its TUN device included); the
//! names carry the lab's process ID so `peerstorm lab clean` can find what a killed run left.

use std::process::{Command, Output};

/// Every lab namespace's name starts with this.
pub const PREFIX: &str = "psl";

/// Why the lab could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NsError {
    #[error("`{cmd}` could not run: {err} (the lab needs iproute2's `ip` and root)")]
    Spawn { cmd: String, err: std::io::Error },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
}

/// Runs `ip ARGS`, turning a failure into an error that shows the command and what it said.
pub fn ip(args: &[&str]) -> Result<Output, NsError> {
    let cmd = format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|err| NsError::Spawn { cmd: cmd.clone(), err })?;
    if !out.status.success() {
        return Err(NsError::Failed { cmd, stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(out)
}

/// A network namespace that exists while this value does.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// `psl-<pid>-<label>`; `label` is short and made of `[a-z0-9-]`.
    pub fn create(label: &str) -> Result<Self, NsError> {
        let name = format!("{PREFIX}-{}-{label}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Namespace { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, NsError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        command_in(&self.name, program)
    }
}

/// A command that runs `program` inside namespace `name` (`ip netns exec NAME program`): for
/// callers that start programs while the lab runs and hold only its namespaces' names.
pub fn command_in(name: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", name, program]);
    c
}

/// Whether something in namespace `name` listens on `addr` (UDP, or TCP), by iproute2's `ss`:
/// how the lab knows a server in a host is up when the server does not say so itself.
pub fn listening(name: &str, udp: bool, addr: std::net::SocketAddr) -> bool {
    let out = Command::new("ip").args(["netns", "exec", name, "ss", "-Hln", if udp { "-u" } else { "-t" }]).output();
    out.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout).lines().any(|l| l.split_whitespace().nth(3) == Some(&addr.to_string()))
    })
}

impl Namespace {
    /// The processes running in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.name)
    }
}

fn pids_in(name: &str) -> Vec<u32> {
    ip(&["netns", "pids", name])
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Stops every process in namespace `name` (they were started there by the lab), then deletes
/// it. Deleting a namespace alone would leave its processes running, holding it alive.
fn remove(name: &str) {
    for _ in 0..20 {
        let pids = pids_in(name);
        if pids.is_empty() {
            break;
        }
        let _ = Command::new("kill").arg("-KILL").args(pids.iter().map(u32::to_string)).output();
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = ip(&["netns", "del", name]);
}

impl Drop for Namespace {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// Removes lab namespaces whose lab process is gone (a run that was killed), with whatever
/// still runs in them; returns their names. Namespaces of running labs are left alone.
pub fn clean() -> Result<Vec<String>, NsError> {
    let mut removed = Vec::new();
    for name in existing()? {
        let owner = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = owner.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            remove(&name);
            removed.push(name);
        }
    }
    Ok(removed)
}

/// The lab namespaces that exist now (this process's and any other's).
pub fn existing() -> Result<Vec<String>, NsError> {
    let out = ip(&["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{PREFIX}-")))
        .map(str::to_string)
        .collect())
}
