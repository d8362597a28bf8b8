//! The world's one event queue. Events are ordered by time, then by lane, then within a lane:
//! packets reaching an interface first (in the order they were sent), then the driver's own
//! events (joins, signaling frames, deadlines, held server answers; in the order they were
//! scheduled), then the peers' timers (by peer index), then the servers' timers. The order is a
//! total order that does not depend on anything but the run, so ties break the same way every
//! time.
//!
//! A core's timer has one entry at most: rescheduling it removes the old one, so a woken core
//! is always woken at the deadline it asked for last.

use peerstorm_netsim::net::NetEvent;
use peerstorm_netsim::time::Schedule;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where an entry sorts among those at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lane {
    Net,
    Driver,
    PeerTimer,
    ServerTimer,
}

/// A core whose timer the agenda holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Core {
    Peer(usize),
    Broker,
    Turn,
}

impl Core {
    fn key(self, at: Duration) -> Key {
        match self {
            Core::Peer(i) => (at, Lane::PeerTimer, i as u64),
            Core::Broker => (at, Lane::ServerTimer, 0),
            Core::Turn => (at, Lane::ServerTimer, 1),
        }
    }
}

type Key = (Duration, Lane, u64);

/// What the world does next.
#[derive(Debug)]
pub(crate) enum Event<D> {
    Net(NetEvent),
    Driver(D),
    Wake(Core),
}

#[derive(Debug)]
pub(crate) struct Agenda<D> {
    entries: BTreeMap<Key, Event<D>>,
    seq: u64,
    /// Entries that are not server timers: when none is left, nothing can ever happen again
    /// but the servers' periodic sweeps.
    others: usize,
}

impl<D> Default for Agenda<D> {
    fn default() -> Self {
        Self { entries: BTreeMap::new(), seq: 0, others: 0 }
    }
}

impl<D> Agenda<D> {
    fn insert(&mut self, key: Key, ev: Event<D>) {
        if key.1 != Lane::ServerTimer {
            self.others += 1;
        }
        let old = self.entries.insert(key, ev);
        debug_assert!(old.is_none(), "agenda keys are unique by construction");
    }

    /// A driver event at `at`, after every driver event already scheduled for that instant.
    pub(crate) fn push(&mut self, at: Duration, ev: D) {
        self.seq += 1;
        self.insert((at, Lane::Driver, self.seq), Event::Driver(ev));
    }

    /// Sets `core`'s timer: from `old` (what it was) to `new`.
    pub(crate) fn reschedule(&mut self, core: Core, old: Option<Duration>, new: Option<Duration>) {
        if old == new {
            return;
        }
        if let Some(t) = old
            && self.entries.remove(&core.key(t)).is_some()
            && core.key(t).1 != Lane::ServerTimer
        {
            self.others -= 1;
        }
        if let Some(t) = new {
            self.insert(core.key(t), Event::Wake(core));
        }
    }

    pub(crate) fn peek_time(&self) -> Option<Duration> {
        self.entries.first_key_value().map(|(k, _)| k.0)
    }

    pub(crate) fn pop(&mut self) -> Option<(Duration, Event<D>)> {
        let ((at, lane, _), ev) = self.entries.pop_first()?;
        if lane != Lane::ServerTimer {
            self.others -= 1;
        }
        Some((at, ev))
    }

    /// Whether anything but a server's sweep is still to come.
    pub(crate) fn has_work(&self) -> bool {
        self.others > 0
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<D> Schedule<NetEvent> for Agenda<D> {
    fn schedule(&mut self, at: Duration, event: NetEvent) {
        self.seq += 1;
        self.insert((at, Lane::Net, self.seq), Event::Net(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(a: &mut Agenda<&'static str>) -> Vec<String> {
        std::iter::from_fn(|| a.pop())
            .map(|(t, e)| match e {
                Event::Driver(d) => format!("{}:{d}", t.as_millis()),
                Event::Wake(c) => format!("{}:{c:?}", t.as_millis()),
                Event::Net(_) => format!("{}:net", t.as_millis()),
            })
            .collect()
    }

    #[test]
    fn ties_break_by_lane_then_by_order_and_index() {
        let ms = Duration::from_millis;
        let mut a = Agenda::default();
        a.reschedule(Core::Turn, None, Some(ms(5)));
        a.reschedule(Core::Peer(2), None, Some(ms(5)));
        a.reschedule(Core::Peer(1), None, Some(ms(5)));
        a.push(ms(5), "b");
        a.push(ms(5), "c");
        a.push(ms(1), "a");
        a.reschedule(Core::Broker, None, Some(ms(5)));
        assert_eq!(order(&mut a), ["1:a", "5:b", "5:c", "5:Peer(1)", "5:Peer(2)", "5:Broker", "5:Turn"]);
    }

    #[test]
    fn a_rescheduled_timer_fires_once_at_its_new_deadline() {
        let ms = Duration::from_millis;
        let mut a: Agenda<&str> = Agenda::default();
        a.reschedule(Core::Peer(0), None, Some(ms(10)));
        assert!(a.has_work());
        a.reschedule(Core::Peer(0), Some(ms(10)), Some(ms(3)));
        a.reschedule(Core::Broker, None, Some(ms(300)));
        assert_eq!(a.len(), 2);
        assert_eq!(order(&mut a), ["3:Peer(0)", "300:Broker"]);
        a.reschedule(Core::Broker, None, Some(ms(600)));
        assert!(!a.has_work(), "only a server sweep is left");
    }
}
