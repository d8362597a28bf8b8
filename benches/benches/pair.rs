//! What one pair of peers costs: the bare `rtc` stack against the simulator
//! (`cargo bench -p peerstorm-benches --bench pair`).
//!
//! - `bare pair`: two bare `rtc` stacks with the `chrome` profile's settings open a data channel
//!   at 60 ms RTT, host candidates, no servers ([`peerstorm_benches::bare_pair`]): the protocol
//!   work of a pair and nothing else.
//! - `simulated pair`: the same pair as the simulator runs it (one `World`: the broker, netsim,
//!   the virtual peers' PeerJS signaling and gathering), open NATs, no STUN or TURN, no loss,
//!   setup only: the harness's own cost is the difference.
//! - `simulated pair, storm-10k's`: storm-10k's per-pair work, 500 pairs of it a run (its NAT
//!   mix, STUN and TURN gathering, 0.1 % loss, ten 1,000-byte messages echoed), per pair: the
//!   figure to hold against `bare pair` measured in the same run (this machine's speed varies
//!   by half from hour to hour; the ratio does not).
//! - `a bare pair's work in storm-10k's world`: storm-10k's arrivals (500 pairs a run, 500 a
//!   second), broker and netsim, doing only what `bare pair` does (open NATs, no STUN or TURN,
//!   no loss, no messages): per pair against `bare pair`, the harness's own overhead.

use criterion::{Criterion, criterion_group, criterion_main};
use peerstorm_peer::Profile;
use peerstorm_scenario::{NatMix, Scenario, StunTarget, TurnTarget};
use std::hint::black_box;
use std::time::Duration;

/// The allocator the `peerstorm` binary simulates with, for the bare pair and the simulator's
/// pairs alike.
#[global_allocator]
static GLOBAL: peerstorm_alloc::Chosen = peerstorm_alloc::Chosen;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text).expect("a valid scenario")
}

fn pair(c: &mut Criterion) {
    let rtt = Duration::from_millis(60);
    c.bench_function("bare pair (rtc, chrome profile, 60 ms, host candidates)", |b| {
        b.iter(|| black_box(peerstorm_benches::bare_pair(Profile::Chrome, rtt, 1)))
    });
    let bare = scenario(
        "name = \"pair\"\nseed = 1\n[network]\nrtt_ms = 60\nnat_mix = { open = 1 }\n[servers]\nstun = \"none\"\nturn = \"none\"\nbroker_rtt_ms = 60\n[peers]\ncount = 2\n[workload.datachannel]\nmessages = 0\n",
    );
    c.bench_function("simulated pair (open NATs, no STUN/TURN, setup only)", |b| {
        b.iter(|| {
            let s = peerstorm_runner::run(&bare).expect("the pair runs");
            assert_eq!(s.modes[0].pairs_ok, 1);
            black_box(s)
        })
    });
    let storm = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/storm-10k.toml"))
        .expect("storm-10k.toml");
    let mut storm = scenario(&storm);
    storm.peers.count = 1000;
    // storm-10k's arrivals, broker and netsim doing a bare pair's protocol work: open NATs, no
    // STUN or TURN, no loss, no messages. Per pair against `bare pair`: the harness's own cost.
    let mut harness = storm.clone();
    harness.network.loss = 0.0;
    harness.network.nat_mix = NatMix::default();
    harness.servers.stun = StunTarget::None;
    harness.servers.turn = TurnTarget::None;
    harness.workload.datachannel.messages = Some(0);
    let mut g = c.benchmark_group("storm-10k's pairs");
    g.sample_size(10);
    g.bench_function("a bare pair's work in storm-10k's world (per pair, 500 pairs a run)", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                let s = peerstorm_runner::run(&harness).expect("the pairs run");
                assert_eq!(s.modes[0].pairs_ok, 500, "every bare pair opens");
                black_box(s);
            }
            start.elapsed() / 500
        })
    });
    g.bench_function("simulated pair, storm-10k's (per pair, 500 pairs a run)", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                let s = peerstorm_runner::run(&storm).expect("storm-10k's pairs run");
                black_box(s);
            }
            start.elapsed() / 500
        })
    });
    g.finish();
}

criterion_group!(benches, pair);
criterion_main!(benches);
