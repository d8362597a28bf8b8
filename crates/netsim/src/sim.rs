//! A small driver: the network, its event queue and the virtual clock, run until a condition
//! holds, with a bound on steps so a livelock becomes an error.

use crate::net::{Delivery, HostId, NetEvent, Network, Packet};
use crate::time::{EventQueue, VirtualClock};
use std::time::Duration;

/// What the delivery callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The run could not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("more than {0} events without finishing (livelock?) at virtual time {1:?}")]
    TooManySteps(u64, Duration),
}

/// Network + queue + clock.
#[derive(Debug)]
pub struct Sim {
    pub net: Network,
    pub queue: EventQueue<NetEvent>,
    pub clock: VirtualClock,
    pub max_steps: u64,
    steps: u64,
}

impl Sim {
    pub fn new(net: Network) -> Self {
        Self { net, queue: EventQueue::default(), clock: VirtualClock::new(), max_steps: 50_000_000, steps: 0 }
    }

    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// A host sends at the current virtual time.
    pub fn send(&mut self, host: HostId, pkt: Packet) {
        let now = self.now();
        self.net.send(&mut self.queue, now, host, pkt);
    }

    /// Handles events up to `deadline`, calling `on_delivery` for packets that reach hosts. Stops
    /// early when it returns [`Flow::Stop`]; the clock ends at `deadline` otherwise.
    pub fn run_until(
        &mut self,
        deadline: Duration,
        mut on_delivery: impl FnMut(&mut Sim, Delivery) -> Flow,
    ) -> Result<Flow, SimError> {
        while let Some(at) = self.queue.peek_time() {
            if at > deadline {
                break;
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                return Err(SimError::TooManySteps(self.max_steps, at));
            }
            let (at, ev) = self.queue.pop().expect("peeked");
            self.clock.advance_to(at);
            if let Some(d) = self.net.handle(&mut self.queue, at, ev)
                && on_delivery(self, d) == Flow::Stop
            {
                return Ok(Flow::Stop);
            }
        }
        self.clock.advance_to(deadline);
        Ok(Flow::Continue)
    }
}
