//! Where peerstorm's broker deliberately differs from `peer@1.0.2` (protocol.md §4.5, §4.6): each
//! test shows the reference's failure and that ours does not have it.

mod support;

use serde_json::json;
use support::{Broker, Opts, Step::*, j, run};

fn offer(dst: &str, id: &str) -> String {
    j(json!({"type":"OFFER","payload":{"connectionId":id},"dst":dst}))
}

fn run_on(b: &Broker, o: &Opts, steps: &[support::Step], settle: u64) -> support::Transcript {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run(b.addr(), o, steps, settle))
}

/// §4.5: on the reference CLI, one invalid JSON frame wedges the socket: nothing it sends later
/// is handled. Ours drops the bad frame and keeps going.
#[test]
fn malformed_json_neither_crashes_nor_wedges() {
    let o = Opts::default();
    let steps = [
        Join("a", "alice", "tA"),
        Join("b", "bob", "tB"),
        Send("a", "{not json".into()),
        Send("a", "null".into()),
        Send("a", "42".into()),
        Send("a", offer("bob", "after-junk")),
    ];
    let reference = run_on(&Broker::reference(&o), &o, &steps, 200);
    assert_eq!(
        reference.plain()["b"].len(),
        1,
        "the reference's wedged socket relays nothing: {:?}",
        reference.plain()
    );
    let ours = run_on(&Broker::ours(&o), &o, &steps, 200);
    assert!(ours.plain()["b"][1].contains("after-junk"), "{:?}", ours.plain());
}

/// §4.6 eviction primitive: attacker registers X, sends LEAVE without dst, the victim registers
/// X, the attacker closes: the reference removes the victim's registration. Ours does not.
#[test]
fn closing_a_socket_never_deregisters_someone_else() {
    let o = Opts { expire_ms: 1000, ..Opts::default() };
    let steps = [
        Join("attacker", "x", "tA"),
        Send("attacker", r#"{"type":"LEAVE"}"#.into()),
        Join("victim", "x", "tV"),
        Close("attacker"),
        Wait(150),
        Join("c", "carol", "tC"),
        Send("c", offer("x", "dc_1")),
    ];
    let reference = run_on(&Broker::reference(&o), &o, &steps, 2400);
    assert_eq!(reference.plain()["victim"].len(), 1, "the reference's victim is unreachable: {:?}", reference.plain());
    assert!(reference.plain()["c"].iter().any(|e| e.contains("EXPIRE")));
    let ours = run_on(&Broker::ours(&o), &o, &steps, 2400);
    assert!(ours.plain()["victim"][1].contains("dc_1"), "{:?}", ours.plain());
    assert!(!ours.plain()["c"].iter().any(|e| e.contains("EXPIRE")));
}

/// §4.6 also lets a deregistered socket evict the next holder with another LEAVE; ours only
/// lets a client deregister its own registration.
#[test]
fn leave_without_dst_only_removes_the_senders_own_registration() {
    let o = Opts::default();
    let steps = [
        Join("attacker", "x", "tA"),
        Send("attacker", r#"{"type":"LEAVE"}"#.into()),
        Join("victim", "x", "tV"),
        Send("attacker", r#"{"type":"LEAVE"}"#.into()),
        Join("c", "carol", "tC"),
        Send("c", offer("x", "dc_1")),
    ];
    let ours = run_on(&Broker::ours(&o), &o, &steps, 200);
    assert!(ours.plain()["victim"][1].contains("dc_1"), "{:?}", ours.plain());
}

/// §4.5: the reference relays frames up to 100 MiB, buffering each whole; ours closes a sender
/// of a frame above 16 MiB with 1009 in the default mode too, and keeps relaying for everyone
/// else. A 10 MiB frame, as the reference measured, still goes through.
#[test]
fn a_frame_above_16_mib_closes_its_sender_and_10_mib_still_goes_through() {
    let o = Opts::default();
    let big = |mib: usize| {
        j(json!({"type":"OFFER","payload":{"connectionId":"big","sdp":"x".repeat(mib << 20)},"dst":"bob"}))
    };
    let steps = [
        Join("a", "alice", "tA"),
        Join("b", "bob", "tB"),
        Join("c", "carol", "tC"),
        Send("a", big(10)),
        Wait(1500),
        Send("a", big(20)),
        Wait(2000),
        Send("c", offer("bob", "after-big")),
    ];
    let sizes = |t: &support::Transcript, who: &str| -> Vec<usize> {
        t.plain().get(who).map(|v| v.iter().map(String::len).collect()).unwrap_or_default()
    };
    let reference = run_on(&Broker::reference(&o), &o, &steps, 1000);
    assert_eq!(sizes(&reference, "b").iter().filter(|n| **n > 20 << 20).count(), 1, "the reference relays 20 MiB");
    let ours = run_on(&Broker::ours(&o), &o, &steps, 1000);
    let b = ours.plain()["b"].clone();
    assert_eq!(b.iter().filter(|f| f.len() > 10 << 20 && f.len() < 11 << 20).count(), 1, "10 MiB relayed");
    assert!(!b.iter().any(|f| f.len() > 20 << 20), "20 MiB not relayed");
    assert!(b.last().is_some_and(|f| f.contains("after-big")), "bob still gets carol's offer");
    assert_eq!(ours.plain()["a"].last().map(String::as_str), Some("close 1009"), "the sender is closed with 1009");
}
