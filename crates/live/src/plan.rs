//! Load models as schedules: when each pair is meant to start (open and ramp), how many run at
//! once (closed), how often held peers reconnect (churn). Every plan is bounded in count and in
//! time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use peerstorm_scenario::LoadModel;

/// A bounded load plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub model: LoadModel,
    pub duration: Duration,
    /// The most pairs the run starts (all shards together).
    pub max_pairs: usize,
    /// This process's shard: pairs `index`, `index + count`, ...
    pub shard: (usize, usize),
}

impl Plan {
    /// Intended start offsets (from the run's start) of this shard's pairs for the open and ramp
    /// models, with their global pair numbers; empty for the others.
    pub fn schedule(&self) -> Vec<(usize, Duration)> {
        let d = self.duration.as_secs_f64();
        let starts: Vec<f64> = match self.model {
            LoadModel::Open { rate } => {
                let n = ((rate * d).floor() as usize).min(self.max_pairs);
                (0..n).map(|i| i as f64 / rate).collect()
            }
            LoadModel::Ramp { from, to } => {
                // Pair i starts when the integral of the rate reaches i:
                // from·t + (to−from)·t²/(2d) = i.
                let total = ((from + to) / 2.0 * d).floor() as usize;
                let a = (to - from) / (2.0 * d);
                (0..total.min(self.max_pairs))
                    .map(|i| {
                        let i = i as f64;
                        if a.abs() < 1e-12 {
                            i / from
                        } else {
                            (-from + (from * from + 4.0 * a * i).sqrt()) / (2.0 * a)
                        }
                    })
                    .collect()
            }
            LoadModel::Closed { .. } | LoadModel::Churn { .. } => Vec::new(),
        };
        let (index, count) = self.shard;
        starts
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % count == index)
            .map(|(i, t)| (i, Duration::from_secs_f64(t)))
            .collect()
    }

    /// Pair slots this shard runs at once (closed), or pairs it holds (churn).
    pub fn slots(&self) -> usize {
        let (index, count) = self.shard;
        let total = match self.model {
            LoadModel::Closed { concurrency } => concurrency,
            LoadModel::Churn { pairs, .. } => pairs,
            LoadModel::Open { .. } | LoadModel::Ramp { .. } => 0,
        }
        .min(self.max_pairs);
        (index..total).step_by(count).count()
    }
}

impl Plan {
    /// A scenario's plan for one shard (`[load]`, and `peers.count` / 2 pairs at most).
    pub fn of(s: &peerstorm_scenario::Scenario, shard: peerstorm_scenario::Shard) -> Option<Plan> {
        let l = s.load.as_ref()?;
        Some(Plan {
            model: l.model.clone(),
            duration: l.duration,
            max_pairs: s.peers.count / 2,
            shard: (shard.index, shard.count),
        })
    }

    /// Starts this shard's pairs as the plan says and waits for every one: open and ramp at
    /// their intended starts (whatever the pairs before them do), closed and churn as
    /// [`Plan::slots`] workers each running pairs back to back until the plan's end or its last
    /// pair. `run_pair(n, intended, slot)` runs pair `n` (`slot` is the worker's, for the
    /// closed and churn models); `on_start(n, in_flight)` is called as each open or ramp pair
    /// starts; spawning ends early once `stop()` says so.
    pub async fn dispatch<F, Fut>(
        &self,
        start: Instant,
        stop: Arc<dyn Fn() -> bool + Send + Sync>,
        run_pair: F,
        mut on_start: impl FnMut(usize, usize),
    ) where
        F: Fn(usize, Instant, Option<usize>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let end = start + self.duration;
        let mut set = tokio::task::JoinSet::new();
        match self.model {
            LoadModel::Open { .. } | LoadModel::Ramp { .. } => {
                for (n, at) in self.schedule() {
                    let intended = start + at;
                    tokio::time::sleep_until(tokio::time::Instant::from_std(intended)).await;
                    if stop() {
                        break;
                    }
                    set.spawn(run_pair(n, intended, None));
                    on_start(n, set.len());
                }
            }
            LoadModel::Closed { .. } | LoadModel::Churn { .. } => {
                let (index, count) = self.shard;
                let max_pairs = self.max_pairs;
                let next = Arc::new(AtomicUsize::new(0));
                for slot in 0..self.slots() {
                    let (next, stop, run_pair) = (next.clone(), stop.clone(), run_pair.clone());
                    set.spawn(async move {
                        loop {
                            let n = index + count * next.fetch_add(1, Ordering::Relaxed);
                            if Instant::now() >= end || n >= max_pairs || stop() {
                                break;
                            }
                            // The next pair starts when this one ends, so the intended start is
                            // the actual one (no correction is possible or meant).
                            run_pair(n, Instant::now(), Some(slot)).await;
                        }
                    });
                }
            }
        }
        while set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(model: LoadModel, secs: u64, shard: (usize, usize)) -> Plan {
        Plan { model, duration: Duration::from_secs(secs), max_pairs: 1_000_000, shard }
    }

    #[test]
    fn open_starts_evenly_and_shards_split_it() {
        let s = plan(LoadModel::Open { rate: 10.0 }, 2, (0, 1)).schedule();
        assert_eq!(s.len(), 20);
        assert_eq!(s[3].1, Duration::from_millis(300));
        let a = plan(LoadModel::Open { rate: 10.0 }, 2, (0, 2)).schedule();
        let b = plan(LoadModel::Open { rate: 10.0 }, 2, (1, 2)).schedule();
        assert_eq!(a.len() + b.len(), 20);
        assert!(a.iter().all(|(i, _)| i % 2 == 0) && b.iter().all(|(i, _)| i % 2 == 1));
        let capped = Plan { max_pairs: 7, ..plan(LoadModel::Open { rate: 10.0 }, 2, (0, 1)) };
        assert_eq!(capped.schedule().len(), 7);
    }

    #[test]
    fn a_ramp_starts_slow_and_ends_fast() {
        let s = plan(LoadModel::Ramp { from: 10.0, to: 30.0 }, 10, (0, 1)).schedule();
        assert_eq!(s.len(), 200, "the mean rate 20/s for 10 s");
        let first_second = s.iter().filter(|(_, t)| *t < Duration::from_secs(1)).count();
        let last_second = s.iter().filter(|(_, t)| *t >= Duration::from_secs(9)).count();
        assert!((9..=12).contains(&first_second), "{first_second}");
        assert!((28..=31).contains(&last_second), "{last_second}");
        assert!(s.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn slots_split_between_shards() {
        assert_eq!(plan(LoadModel::Closed { concurrency: 5 }, 1, (0, 2)).slots(), 3);
        assert_eq!(plan(LoadModel::Closed { concurrency: 5 }, 1, (1, 2)).slots(), 2);
        assert_eq!(plan(LoadModel::Churn { pairs: 4, rate: 1.0 }, 1, (0, 1)).slots(), 4);
    }
    #[test]
    fn dispatch_starts_each_pair_of_the_shard_once() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cases = [
            (LoadModel::Closed { concurrency: 2 }, 10, (0, 1), vec![0, 1, 2, 3, 4]),
            (LoadModel::Open { rate: 500.0 }, 0, (1, 2), vec![1, 3]),
        ];
        for (model, secs, shard, want) in cases {
            // Open: 500/s for 10 ms is 5 pairs, of which shard 2/2 runs the odd ones.
            let duration = if secs == 0 { Duration::from_millis(10) } else { Duration::from_secs(secs) };
            let plan = Plan { model, duration, max_pairs: 5, shard };
            let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
            let r = ran.clone();
            let run = move |n: usize, _: Instant, _: Option<usize>| {
                let r = r.clone();
                async move { r.lock().unwrap().push(n) }
            };
            rt.block_on(plan.dispatch(Instant::now(), Arc::new(|| false), run, |_, _| {}));
            let mut got = ran.lock().unwrap().clone();
            got.sort_unstable();
            assert_eq!(got, want, "{:?}", plan.model);
        }
    }
}
