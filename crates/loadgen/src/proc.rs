//! CPU time and resident memory of a process, read from `/proc` (Linux).

use std::io;

/// A process's accumulated CPU time and its resident set, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// user + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on; /proc/self/stat cannot tell.
    100.0
}

/// Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS).
pub fn sample(pid: u32) -> io::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks =
        |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| io::Error::other("bad /proc stat field"));
    let cpu_s = (ticks(11)? + ticks(12)?) as f64 / clock_ticks();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))?;
    Ok(Sample { cpu_s, rss_kib })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.cpu_s >= 0.0);
    }
}
