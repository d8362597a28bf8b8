//! Virtual time: a clock that is a real `Instant` plus a simulated offset (so stacks that take
//! `std::time::Instant`, such as `rtc`, can be driven with it), and an event queue ordered by
//! (time, sequence) so that ties break the same way every run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The simulation's clock. `now()` only moves when the driver advances it.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    base: Instant,
    offset: Duration,
}

impl VirtualClock {
    /// A clock starting now (virtual time 0 is this real instant).
    pub fn new() -> Self {
        Self { base: Instant::now(), offset: Duration::ZERO }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.offset
    }

    /// The current virtual time as an `Instant`.
    pub fn now(&self) -> Instant {
        self.base + self.offset
    }

    /// The `Instant` for a virtual time.
    pub fn instant(&self, at: Duration) -> Instant {
        self.base + at
    }

    /// Moves the clock forward; time never goes back.
    pub fn advance_to(&mut self, at: Duration) {
        debug_assert!(at >= self.offset, "virtual time must not go back");
        self.offset = self.offset.max(at);
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

struct Entry<E> {
    at: Duration,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Where the network puts the events it makes (a packet reaching its next interface): an
/// [`EventQueue`] of its own, or a driver's queue that holds other events too.
pub trait Schedule<E> {
    fn schedule(&mut self, at: Duration, event: E);
}

impl<E> Schedule<E> for EventQueue<E> {
    fn schedule(&mut self, at: Duration, event: E) {
        self.push(at, event);
    }
}

/// Events ordered by (time, insertion sequence).
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    seq: u64,
}

impl<E> std::fmt::Debug for EventQueue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue").field("len", &self.heap.len()).field("seq", &self.seq).finish()
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Duration, event: E) {
        self.seq += 1;
        self.heap.push(Reverse(Entry { at, seq: self.seq, event }));
    }

    /// The time of the next event.
    pub fn peek_time(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    pub fn pop(&mut self) -> Option<(Duration, E)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.event))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_break_by_insertion_order() {
        let mut q = EventQueue::default();
        q.push(Duration::from_millis(5), "b");
        q.push(Duration::from_millis(1), "a");
        q.push(Duration::from_millis(5), "c");
        let order: Vec<_> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn clock_maps_virtual_time_to_instants() {
        let mut c = VirtualClock::new();
        let t0 = c.now();
        c.advance_to(Duration::from_secs(3));
        assert_eq!(c.now() - t0, Duration::from_secs(3));
        assert_eq!(c.instant(Duration::from_secs(1)) - t0, Duration::from_secs(1));
    }
}

/// Durations in JSON as a number with the unit in the key's name (`udp_lifetime_s: 120`,
/// `latency_ms: 15`), never serde's `{"secs": 120, "nanos": 0}`.
pub mod serde_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    fn from_f64<E: serde::de::Error>(v: f64, scale: f64) -> Result<Duration, E> {
        let secs = v / scale;
        if v.is_finite() && (0.0..=1e9).contains(&secs) {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(E::custom(format!("{v}: expected a duration, zero or more")))
        }
    }

    /// Seconds, with a fraction when there is one.
    pub mod secs {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_f64(d.as_secs_f64())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            from_f64(f64::deserialize(d)?, 1.0)
        }
    }

    /// Milliseconds, with a fraction when there is one.
    pub mod millis {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_f64(d.as_secs_f64() * 1000.0)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            from_f64(f64::deserialize(d)?, 1000.0)
        }
    }
}
