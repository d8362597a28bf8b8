//! Inputs the modelled browser takes in arrival order, each once its own wait has passed: an
//! input is due at the later of its arrival plus its wait and the one before it (a chain of
//! operations, as the browser's operations chain and PeerJS's handlers take them).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An arrival-ordered queue of inputs, each with the instant it is due.
#[derive(Debug)]
pub(super) struct Delayed<T>(VecDeque<(Instant, T)>);

impl<T> Default for Delayed<T> {
    fn default() -> Self {
        Delayed(VecDeque::new())
    }
}

impl<T> Delayed<T> {
    /// Whether an input that arrives now with `wait` must queue: it has a wait of its own, or
    /// something is waiting ahead of it. (If not, the caller acts on it at once.)
    pub(super) fn must_wait(&self, wait: Duration) -> bool {
        !wait.is_zero() || !self.0.is_empty()
    }

    /// Queues `item`, arrived at `now`, due after `wait` and after whatever is ahead of it.
    pub(super) fn push(&mut self, now: Instant, wait: Duration, item: T) {
        let at = self.0.back().map_or(now + wait, |(last, _)| (*last).max(now + wait));
        self.0.push_back((at, item));
    }

    /// When the first waiting input is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.0.front().map(|(at, _)| *at)
    }

    /// The first waiting input if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.next_due()? <= now { self.0.pop_front().map(|(_, item)| item) } else { None }
    }

    pub(super) fn clear(&mut self) {
        self.0 = VecDeque::new();
    }
}

/// Read access to what waits: (due, input), first due first.
impl<T> std::ops::Deref for Delayed<T> {
    type Target = VecDeque<(Instant, T)>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No wait and nothing ahead: at once. Otherwise each is due at its own wait or after the
    /// one before it, whichever is later, and leaves in arrival order.
    #[test]
    fn inputs_leave_in_arrival_order_each_after_its_wait() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = Delayed::default();
        assert!(!q.must_wait(Duration::ZERO), "no wait and nothing ahead: at once");
        assert!(q.must_wait(ms(10)));
        q.push(t0, ms(10), 'b');
        // No wait of its own, but behind 'b': it queues and is due with it.
        assert!(q.must_wait(Duration::ZERO));
        q.push(t0 + ms(1), Duration::ZERO, 'c');
        // A short wait behind a long one.
        q.push(t0 + ms(2), ms(3), 'd');
        q.push(t0 + ms(12), ms(5), 'e');
        assert_eq!(q.next_due(), Some(t0 + ms(10)));
        assert_eq!(q.pop_due(t0 + ms(9)), None);
        let at10: Vec<char> = std::iter::from_fn(|| q.pop_due(t0 + ms(10))).collect();
        assert_eq!(at10, ['b', 'c', 'd']);
        assert_eq!(q.next_due(), Some(t0 + ms(17)));
        assert_eq!(q.pop_due(t0 + ms(17)), Some('e'));
        assert_eq!(q.next_due(), None);
        assert!(!q.must_wait(Duration::ZERO), "empty again");
    }
}
