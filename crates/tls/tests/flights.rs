//! The simulator's TLS cost model (`peerstorm_netsim::tls`) against a real TLS 1.3 handshake:
//! rustls client and server in memory (no sockets), as peerstorm's live peers and TURN server
//! run it, with a self-signed P-256 certificate. The model must have the same flights in the
//! same order (client, server, client; the first application data leaves with the client's
//! second flight, one round trip after the connection opens) and flight sizes within a quarter
//! of the real ones, and the same per-record overhead.

use peerstorm_netsim::tls as model;
use std::io::{Read, Write};
use std::sync::Arc;

/// Everything `from` has to send, as bytes on the wire.
fn flight(from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>) -> Vec<u8> {
    let mut out = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut out).unwrap();
    }
    out
}

#[test]
fn the_model_has_a_real_handshakes_flights_sizes_and_record_overhead() {
    let dir = std::env::temp_dir().join(format!("peerstorm-tls-flights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["turn.example.org".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let server_cfg = peerstorm_tls::server_config(&cert, &key).unwrap();
    let client_cfg =
        peerstorm_tls::client_config(&peerstorm_tls::Trust { ca: Some(cert.clone()), insecure: false }).unwrap();
    let mut client = rustls::ClientConnection::new(client_cfg, "turn.example.org".try_into().unwrap()).unwrap();
    let mut server = rustls::ServerConnection::new(Arc::clone(&server_cfg)).unwrap();

    // Flight 1: the ClientHello.
    let hello = flight(&mut client);
    server.read_tls(&mut hello.as_slice()).unwrap();
    server.process_new_packets().unwrap();
    // Flight 2: ServerHello … Finished, all at once.
    let server_flight = flight(&mut server);
    client.read_tls(&mut server_flight.as_slice()).unwrap();
    client.process_new_packets().unwrap();
    assert!(!client.is_handshaking(), "the client is done after one round trip (TLS 1.3)");
    // Flight 3: the client's Finished, then its first data in the same flight.
    let finished = flight(&mut client);
    let message = [0u8; 100];
    client.writer().write_all(&message).unwrap();
    let data = flight(&mut client);
    server.read_tls(&mut finished.as_slice()).unwrap();
    server.read_tls(&mut data.as_slice()).unwrap();
    server.process_new_packets().unwrap();
    assert!(!server.is_handshaking());
    let mut got = Vec::new();
    let _ = server.reader().read_to_end(&mut got);
    assert_eq!(got, message);

    let near = |what: &str, real: usize, modelled: usize| {
        let off = (modelled as f64 - real as f64).abs() / real as f64;
        eprintln!("{what}: real {real} B, model {modelled} B");
        assert!(off <= 0.25, "{what}: the model's {modelled} B is more than 25 % from the real {real} B");
    };
    near("ClientHello", hello.len(), model::client_hello().len());
    near("server flight", server_flight.len(), model::server_flight().len());
    near("client Finished", finished.len(), model::client_finished().len());
    assert_eq!(data.len() - message.len(), model::RECORD_OVERHEAD, "per-record overhead");
    assert_eq!(model::seal(&message).len(), data.len());
    assert_eq!(model::open(&model::seal(&message)).unwrap(), message);
    std::fs::remove_dir_all(&dir).ok();
}
