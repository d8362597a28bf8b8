//! peerstorm patch: `AgentConfig::paced_checks`, libwebrtc's check pacing.

use super::*;
use crate::attributes::{control::AttrControlling, priority::PriorityAttr};
use crate::candidate::candidate_host::*;
use crate::candidate::candidate_server_reflexive::*;
use crate::candidate::*;
use sansio::Protocol as _;
use std::time::Duration;
use stun::message::*;
use stun::textattrs::Username;

const TICK: Duration = Duration::from_micros(62_500);
const REMOTE_PWD: &str = "remote-password-0123456789";

fn agent(now: Instant, is_controlling: bool, paced: bool) -> Result<Agent> {
    agent_with(now, AgentConfig {
        is_controlling,
        paced_checks: paced,
        aggressive_nomination: true,
        check_interval: TICK,
        ..Default::default()
    })
}

fn agent_with(now: Instant, config: AgentConfig) -> Result<Agent> {
    let provider = crypto::default_provider().expect("a built-in crypto provider");
    let mut a = Agent::new(now, Arc::new(config), provider)?;
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: "192.168.0.2".to_owned(),
            port: 777,
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    a.add_local_candidate(host)?;
    Ok(a)
}

/// An agent with three remote host candidates (172.17.0.1, .2, .3 with priorities 100, 300,
/// 200) whose checks have started at `now`.
fn started(now: Instant, is_controlling: bool, paced: bool) -> Result<Agent> {
    let mut a = agent(now, is_controlling, paced)?;
    for (last, prio) in [(1, 100), (2, 300), (3, 200)] {
        a.add_remote_candidate(remote(last, prio)?)?;
    }
    a.start_connectivity_checks(now, is_controlling, "remote".into(), REMOTE_PWD.into())?;
    Ok(a)
}

/// A check from the peer, signed with our credentials, carrying `role`.
fn peer_check(a: &Agent, role: Box<dyn Setter>) -> Result<Message> {
    let mut check = Message::new();
    check.build(&[
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(ATTR_USERNAME, a.ufrag_pwd.local_credentials.ufrag.clone() + ":remote")),
        role,
        Box::new(PriorityAttr(100)),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            a.ufrag_pwd.local_credentials.pwd.clone(),
            a.crypto_provider.crypto(),
        )),
        Box::new(FINGERPRINT),
    ])?;
    Ok(check)
}

/// A remote host candidate at 172.17.0.`last`:999 with the given priority.
fn remote(last: u8, priority: u32) -> Result<Candidate> {
    CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: format!("172.17.0.{last}"),
            port: 999,
            component: 1,
            priority,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
}

/// The Binding requests the agent sent since the last call: (to, PRIORITY attribute).
fn checks(a: &mut Agent) -> Vec<(SocketAddr, u32)> {
    std::iter::from_fn(|| a.poll_write())
        .filter_map(|t| {
            let mut m = Message::new();
            m.raw = t.message.to_vec();
            m.decode().expect("the agent sends STUN");
            let mut prio = PriorityAttr::default();
            (m.typ == BINDING_REQUEST).then(|| {
                prio.get_from(&m).expect("a check carries PRIORITY");
                (t.transport.peer_addr, prio.0)
            })
        })
        .collect()
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([172, 17, 0, last], 999))
}

/// Runs the agent's timers up to `now` the way a driver does.
fn tick(a: &mut Agent, now: Instant) -> Result<()> {
    if a.poll_timeout().is_some_and(|t| t <= now) {
        a.handle_timeout(now)?;
    }
    Ok(())
}

/// Upstream checks every pair on each tick; paced, one pair per tick, the highest priority
/// first, and each pair once before any pair twice.
#[test]
fn paced_checks_go_one_per_tick_in_priority_order() -> Result<()> {
    for paced in [false, true] {
        let t0 = Instant::now();
        let mut a = started(t0, true, paced)?;
        let mut seen = vec![];
        for k in 0..4 {
            tick(&mut a, t0 + TICK * k)?;
            seen.push(checks(&mut a).into_iter().map(|(to, _)| to).collect::<Vec<_>>());
        }
        if paced {
            assert_eq!(seen, vec![vec![addr(2)], vec![addr(3)], vec![addr(1)], vec![addr(2)]]);
        } else {
            assert_eq!(seen[0].len(), 3, "upstream checks all three pairs at once: {seen:?}");
        }
    }
    Ok(())
}

/// A check from the peer is answered at once; paced, our triggered check on its pair waits for
/// the next tick and goes before the pairs never checked.
#[test]
fn a_triggered_check_waits_for_the_next_tick_and_goes_first() -> Result<()> {
    for paced in [false, true] {
        let t0 = Instant::now();
        let mut a = started(t0, false, paced)?;
        tick(&mut a, t0)?;
        let first = checks(&mut a);
        let now = t0 + TICK / 2;
        let mut check = peer_check(&a, Box::new(AttrControlling(a.tie_breaker.wrapping_add(1))))?;
        a.handle_inbound(now, &mut check, 0, addr(1))?;
        let out: Vec<_> = std::iter::from_fn(|| a.poll_write()).collect();
        let answered = out.iter().any(|t| {
            let mut m = Message::new();
            m.raw = t.message.to_vec();
            m.decode().is_ok() && m.typ == BINDING_SUCCESS
        });
        assert!(answered, "the check is answered at once (paced = {paced})");
        let requests = out.iter().filter(|t| {
            let mut m = Message::new();
            m.raw = t.message.to_vec();
            m.decode().is_ok() && m.typ == BINDING_REQUEST
        });
        if paced {
            assert_eq!(first.iter().map(|c| c.0).collect::<Vec<_>>(), vec![addr(2)]);
            assert_eq!(requests.count(), 0, "no check goes out between ticks");
            tick(&mut a, t0 + TICK)?;
            let next: Vec<_> = checks(&mut a).into_iter().map(|c| c.0).collect();
            assert_eq!(next, vec![addr(1)], "the triggered check goes first, before 172.17.0.3");
        } else {
            assert_eq!(requests.count(), 1, "upstream sends its triggered check at once");
        }
    }
    Ok(())
}

/// Paced, a local server-reflexive candidate (which sends from its host base) gets no checks of
/// its own; upstream checks its pairs as well.
#[test]
fn a_local_server_reflexive_candidate_gets_no_checks_of_its_own() -> Result<()> {
    for paced in [false, true] {
        let t0 = Instant::now();
        let mut a = agent(t0, true, paced)?;
        let host_priority = a.local_candidates[0].priority();
        let srflx = CandidateServerReflexiveConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: "203.0.113.9".to_owned(),
                port: 40000,
                component: 1,
                ..Default::default()
            },
            rel_addr: "192.168.0.2".to_owned(),
            rel_port: 777,
            ..Default::default()
        }
        .new_candidate_server_reflexive()?;
        a.add_local_candidate(srflx)?;
        a.add_remote_candidate(remote(1, 100)?)?;
        a.start_connectivity_checks(t0, true, "remote".into(), REMOTE_PWD.into())?;
        let mut priorities = vec![];
        for k in 0..3 {
            tick(&mut a, t0 + TICK * k)?;
            priorities.extend(checks(&mut a).into_iter().map(|c| c.1));
        }
        let from_srflx = priorities.iter().filter(|&&p| p != host_priority).count();
        if paced {
            assert_eq!(priorities, vec![host_priority; 3]);
        } else {
            assert!(from_srflx > 0, "upstream checks the srflx pair too: {priorities:?}");
        }
    }
    Ok(())
}

/// Before the first check a new candidate starts the checks at once (libwebrtc's
/// `MaybeStartPinging`); paced, after it a new candidate waits for the next tick.
#[test]
fn a_new_candidate_waits_for_the_tick_once_checks_have_started() -> Result<()> {
    for paced in [false, true] {
        let t0 = Instant::now();
        let mut a = agent(t0, true, paced)?;
        a.start_connectivity_checks(t0, true, "remote".into(), REMOTE_PWD.into())?;
        tick(&mut a, t0)?;
        assert!(checks(&mut a).is_empty(), "no pair, no check");
        let t1 = t0 + Duration::from_millis(5);
        a.add_remote_candidate(remote(1, 100)?)?;
        assert!(a.poll_timeout().is_some_and(|t| t <= t1), "the first candidate starts checks at once");
        tick(&mut a, t1)?;
        assert_eq!(checks(&mut a).len(), 1);
        let t2 = t1 + Duration::from_millis(5);
        a.add_remote_candidate(remote(2, 300)?)?;
        assert_eq!(
            a.poll_timeout().is_some_and(|t| t <= t2),
            !paced,
            "paced = {paced}: a later candidate waits for the tick"
        );
    }
    Ok(())
}

/// Paced, a check answered before the remote credentials (`answer_early_checks`) is remembered:
/// once the answer brings the credentials and the candidate it came from, that pair owes a
/// triggered check and goes first, ahead of a higher-priority pair never checked — as
/// libwebrtc pings the connection such a check made as soon as it is pingable.
#[test]
fn an_early_checks_pair_is_checked_first_once_the_answer_arrives() -> Result<()> {
    let t0 = Instant::now();
    let mut a = agent_with(t0, AgentConfig {
        is_controlling: true,
        paced_checks: true,
        answer_early_checks: true,
        aggressive_nomination: true,
        check_interval: TICK,
        ..Default::default()
    })?;
    let mut early = peer_check(&a, Box::new(crate::attributes::control::AttrControlled(1)))?;
    a.handle_inbound(t0, &mut early, 0, addr(1))?;
    let _ = std::iter::from_fn(|| a.poll_write()).count();
    let t1 = t0 + Duration::from_millis(30);
    for (last, prio) in [(2, 300), (1, 100)] {
        a.add_remote_candidate(remote(last, prio)?)?;
    }
    a.start_connectivity_checks(t1, true, "remote".into(), REMOTE_PWD.into())?;
    tick(&mut a, t1)?;
    let first: Vec<_> = checks(&mut a).into_iter().map(|c| c.0).collect();
    assert_eq!(first, vec![addr(1)], "the early check's pair first, before 172.17.0.2");
    tick(&mut a, t1 + TICK)?;
    let second: Vec<_> = checks(&mut a).into_iter().map(|c| c.0).collect();
    assert_eq!(second, vec![addr(2)]);
    Ok(())
}

/// With a metronome the check loop's next run waits for its first tick at or after the check
/// interval: checks that start 10 ms after a tick go again 48 ms later at the fourth tick
/// (62.5 ms in), and from then on every 62.5 ms; without one, every 48 ms.
#[test]
fn the_check_loop_waits_for_the_metronome_tick() -> Result<()> {
    let period = Duration::from_micros(15_625);
    let weak_ping = Duration::from_millis(48);
    for metronome in [false, true] {
        let tick0 = Instant::now();
        let t0 = tick0 + Duration::from_millis(10);
        let mut a = agent_with(t0, AgentConfig {
            is_controlling: true,
            paced_checks: true,
            aggressive_nomination: true,
            check_interval: weak_ping,
            metronome: metronome.then_some((tick0, period)),
            ..Default::default()
        })?;
        for (last, prio) in [(1, 100), (2, 300), (3, 200)] {
            a.add_remote_candidate(remote(last, prio)?)?;
        }
        a.start_connectivity_checks(t0, true, "remote".into(), REMOTE_PWD.into())?;
        let mut sent_at = vec![];
        let mut now = t0;
        for _ in 0..3 {
            tick(&mut a, now)?;
            if !checks(&mut a).is_empty() {
                sent_at.push(now - tick0);
            }
            now = a.poll_timeout().expect("the check loop keeps running");
        }
        let ms = |us: u64| Duration::from_micros(us);
        if metronome {
            assert_eq!(sent_at, vec![ms(10_000), ms(62_500), ms(125_000)]);
        } else {
            assert_eq!(sent_at, vec![ms(10_000), ms(58_000), ms(106_000)]);
        }
    }
    Ok(())
}

#[test]
fn snap_to_tick_finds_the_first_tick_at_or_after() {
    let tick = Instant::now() + Duration::from_secs(1);
    let p = Duration::from_micros(15_625);
    assert_eq!(snap_to_tick(tick, tick, p), tick);
    assert_eq!(snap_to_tick(tick + Duration::from_nanos(1), tick, p), tick + p);
    assert_eq!(snap_to_tick(tick + p * 3, tick, p), tick + p * 3);
    assert_eq!(snap_to_tick(tick - Duration::from_millis(1), tick, p), tick);
    assert_eq!(snap_to_tick(tick - p - Duration::from_millis(1), tick, p), tick - p);
    assert_eq!(snap_to_tick(tick - p * 2, tick, p), tick - p * 2);
    assert_eq!(snap_to_tick(tick + Duration::from_millis(7), tick, Duration::ZERO), tick + Duration::from_millis(7));
}
