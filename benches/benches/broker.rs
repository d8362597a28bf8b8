//! The broker core alone, no sockets: how many frames per second its state machine relays.
//! `cargo bench -p peerstorm-benches --bench broker`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use peerstorm_broker::{Broker, Config, ConnId, ConnectParams, OutputRef};
use std::hint::black_box;
use std::time::Instant;

fn join(b: &mut Broker, now: Instant, conn: u64, id: &str) {
    let p = ConnectParams { id: Some(id.into()), token: Some("t".into()), key: Some("peerjs".into()) };
    b.handle_connect(now, ConnId(conn), &p);
    while b.poll_output().is_some() {}
}

fn core(c: &mut Criterion) {
    let now = Instant::now();
    let mut b = Broker::new(Config { concurrent_limit: 20_000, ..Config::default() }, now, 1);
    // 10,000 registered peers, so lookups are not into an empty map.
    for i in 0..10_000u64 {
        join(&mut b, now, i, &format!("peer-{i:05}"));
    }
    let offer = peerstorm_loadgen::offer_frame("peer-00001");
    let heartbeat = r#"{"type":"HEARTBEAT"}"#;
    let mut g = c.benchmark_group("broker-core");
    g.throughput(Throughput::Elements(1));
    g.bench_function("relay OFFER (~700 B) to an online peer", |bench| {
        bench.iter(|| {
            b.handle_text(now, ConnId(0), black_box(&offer));
            let mut bytes = 0;
            b.drain_outputs(|o| match o {
                OutputRef::Send { text, .. } => bytes += black_box(text).len(),
                OutputRef::Close { .. } => panic!("expected a relayed frame"),
            });
            assert!(bytes > 600, "the OFFER was relayed");
        })
    });
    g.bench_function("HEARTBEAT", |bench| {
        bench.iter(|| {
            b.handle_text(now, ConnId(0), black_box(heartbeat));
            assert!(b.poll_output().is_none());
        })
    });
    g.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
