//! Closed-loop relay between pairs of clients, and idle holding with heartbeats.

use crate::client::{Client, text_frame};
use std::io;
use std::time::{Duration, Instant};

/// What a relay run measured.
#[derive(Debug, Clone, Default)]
pub struct RelayResult {
    pub messages: u64,
    pub elapsed: Duration,
    /// One-way latency (send to receipt, through the broker) of every 64th message, µs.
    pub latency_us: Vec<u32>,
}

/// Relays `total` OFFER-sized frames from the first to the second client of each pair, each
/// pair keeping `window` in flight: a new one goes out as soon as one arrives.
pub async fn relay_pairs(
    pairs: Vec<(Client, Client)>,
    total: u64,
    window: u64,
    frame_for: fn(&str) -> String,
) -> io::Result<(RelayResult, Vec<(Client, Client)>)> {
    let n = pairs.len() as u64;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, (a, b)) in pairs.into_iter().enumerate() {
        let share = total / n + u64::from((i as u64) < total % n);
        let frame = text_frame(&frame_for(&b.id));
        set.spawn(pair(a, b, share, window.max(1), frame));
    }
    let mut result = RelayResult::default();
    let mut back = Vec::new();
    while let Some(r) = set.join_next().await {
        let (a, b, lat, count) = r.map_err(io::Error::other)??;
        result.latency_us.extend(lat);
        result.messages += count;
        back.push((a, b));
    }
    result.elapsed = start.elapsed();
    Ok((result, back))
}

async fn pair(a: Client, mut b: Client, n: u64, w: u64, frame: Vec<u8>) -> io::Result<(Client, Client, Vec<u32>, u64)> {
    let mut sent_at = vec![Instant::now(); w as usize];
    let mut lat = Vec::new();
    let first = w.min(n);
    let now = Instant::now();
    for k in 0..first {
        sent_at[(k % w) as usize] = now;
    }
    a.send(&frame.repeat(first as usize)).await?;
    let (mut sent, mut received) = (first, 0u64);
    while received < n {
        let mut got = 0u64;
        b.read_frames(|op, _| got += u64::from(op == 1)).await?;
        let now = Instant::now();
        for k in received..received + got {
            if k % 64 == 0 {
                lat.push(now.duration_since(sent_at[(k % w) as usize]).as_micros() as u32);
            }
        }
        received += got;
        let more = got.min(n - sent);
        if more > 0 {
            for k in sent..sent + more {
                sent_at[(k % w) as usize] = now;
            }
            a.send(&frame.repeat(more as usize)).await?;
            sent += more;
        }
    }
    Ok((a, b, lat, received))
}

/// Holds `clients` connected for `duration`, each sending `{"type":"HEARTBEAT"}` every
/// `every` (spread evenly, as independent browsers would). Returns how many connections the
/// broker closed meanwhile.
pub async fn hold(clients: &mut [Client], duration: Duration, every: Duration) -> usize {
    let hb = text_frame(r#"{"type":"HEARTBEAT"}"#);
    let tick = Duration::from_millis(100);
    let slots = (every.as_millis() / tick.as_millis()).max(1) as usize;
    let end = Instant::now() + duration;
    let mut lost = vec![false; clients.len()];
    let mut round = 0usize;
    while Instant::now() < end {
        for (i, c) in clients.iter_mut().enumerate() {
            if lost[i] {
                continue;
            }
            if i % slots == round % slots && !matches!(c.try_send(&hb), Ok(true)) {
                lost[i] = true;
            }
            if !matches!(c.drain_now(), Ok(true)) {
                lost[i] = true;
            }
        }
        round += 1;
        tokio::time::sleep(tick).await;
    }
    lost.iter().filter(|l| **l).count()
}
