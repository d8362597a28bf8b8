//! The TURN core alone, no sockets: Binding responses and ChannelData relays per second
//! (`cargo bench -p peerstorm-benches --bench turn`), with 10,000 allocations live.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use peerstorm_model::stun::{Class, Message, attr};
use peerstorm_turn::auth::{encode_with_integrity, long_term_key};
use peerstorm_turn::server::{AnyPort, FiveTuple, Output, Transport, method, tattr};
use peerstorm_turn::{TurnConfig, TurnServer};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

fn core(c: &mut Criterion) {
    let now = Instant::now();
    let server: SocketAddr = "198.51.100.1:3478".parse().unwrap();
    let mut cfg = TurnConfig::new("r", server);
    cfg.add_user("u", "p");
    cfg.max_allocations_per_user = 100_000;
    cfg.relay_ports = (1024, 65535);
    let mut s = TurnServer::new(cfg, now, [1; 16]);
    let key = long_term_key("u", "r", "p");
    // A nonce, then 10,000 allocations, the last with a channel to a permitted peer.
    let t0 = FiveTuple { client: "203.0.113.1:1".parse().unwrap(), server, transport: Transport::Udp };
    s.handle_client(now, t0, &Message::new(method::ALLOCATE, Class::Request, [0; 12]).encode(true), &mut AnyPort);
    let nonce = match s.poll_output() {
        Some(Output::ToClient { data, .. }) => Message::decode(&data).unwrap().attribute(attr::NONCE).unwrap().to_vec(),
        other => panic!("{other:?}"),
    };
    let signed = |method: u16, tid: u32, f: &dyn Fn(&mut Message)| {
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&tid.to_be_bytes());
        let mut m = Message::new(method, Class::Request, t);
        f(&mut m);
        m.push(attr::USERNAME, b"u".to_vec());
        m.push(attr::REALM, b"r".to_vec());
        m.push(attr::NONCE, nonce.clone());
        encode_with_integrity(&m, &key, true)
    };
    let mut tuple = t0;
    for i in 0..10_000u32 {
        tuple = FiveTuple {
            client: SocketAddr::from(([203, 0, 113, (i % 200) as u8 + 1], 10_000 + (i / 200) as u16)),
            server,
            transport: Transport::Udp,
        };
        let req = signed(method::ALLOCATE, i + 1, &|m| {
            m.push(tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
        });
        s.handle_client(now, tuple, &req, &mut AnyPort);
        while s.poll_output().is_some() {}
    }
    assert_eq!(s.allocations(), 10_000);
    let peer: SocketAddr = "198.51.100.50:5000".parse().unwrap();
    s.handle_client(
        now,
        tuple,
        &signed(method::CHANNEL_BIND, 1_000_000, &|m| {
            m.push(tattr::CHANNEL_NUMBER, vec![0x40, 0x01, 0, 0]);
            m.push_address(tattr::XOR_PEER_ADDRESS, peer);
        }),
        &mut AnyPort,
    );
    match s.poll_output() {
        Some(Output::ToClient { data, .. }) => {
            assert_eq!(Message::decode(&data).unwrap().class, Class::Success, "channel bound")
        }
        other => panic!("{other:?}"),
    }
    let mut channel_data = vec![0x40, 0x01, 0, 160];
    channel_data.extend_from_slice(&[7u8; 160]);
    // No FINGERPRINT, so the transaction ID can change in place without re-encoding.
    let binding = Message::binding_request([9; 12]).encode(false);
    let mut g = c.benchmark_group("turn-core");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    g.bench_function("binding response", |b| {
        b.iter(|| {
            // A new transaction each time, so the retransmission cache does not answer.
            i = i.wrapping_add(1);
            let mut req = binding.clone();
            req[8..12].copy_from_slice(&i.to_be_bytes());
            s.handle_client(now, t0, black_box(&req), &mut AnyPort);
            black_box(s.poll_output().expect("a response"));
        })
    });
    g.bench_function("ChannelData client → peer (160 B)", |b| {
        b.iter(|| {
            s.handle_client(now, tuple, black_box(&channel_data), &mut AnyPort);
            match s.poll_output() {
                Some(Output::ToPeer { data, .. }) => black_box(data),
                other => panic!("{other:?}"),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
