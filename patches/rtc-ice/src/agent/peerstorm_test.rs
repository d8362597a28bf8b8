//! peerstorm patch: `AgentConfig::aggressive_nomination`, libwebrtc's nomination.

use super::*;
use crate::attributes::{
    control::{AttrControlled, AttrControlling},
    priority::PriorityAttr,
    use_candidate::UseCandidateAttr,
};
use crate::candidate::candidate_host::*;
use crate::candidate::*;
use sansio::Protocol as _;
use std::str::FromStr;
use stun::message::*;
use stun::textattrs::Username;
use stun::xoraddr::XorMappedAddress;

const REMOTE_PWD: &str = "remote-password-0123456789";

fn agent(is_controlling: bool, aggressive_nomination: bool) -> Result<Agent> {
    let config = AgentConfig {
        is_controlling,
        aggressive_nomination,
        ..Default::default()
    };
    let provider = crypto::default_provider().expect("a built-in crypto provider");
    let mut a = Agent::new(Instant::now(), Arc::new(config), provider)?;
    let local = CandidateHostConfig {
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
    a.add_local_candidate(local)?;
    a.ufrag_pwd.remote_credentials = Some(Credentials {
        ufrag: "remote".to_string(),
        pwd: REMOTE_PWD.to_string(),
    });
    Ok(a)
}

fn sent(a: &mut Agent) -> Vec<Message> {
    std::iter::from_fn(|| a.poll_write())
        .map(|t| {
            let mut m = Message::new();
            m.raw = t.message.to_vec();
            m.decode().expect("the agent sends STUN");
            m
        })
        .collect()
}

fn remote_addr() -> SocketAddr {
    SocketAddr::from_str("172.17.0.3:999").unwrap()
}

/// The peer's success response to `request`, saying it came from `mapped`.
fn success(a: &Agent, request: Message, mapped: SocketAddr) -> Result<Message> {
    let mut response = Message::new();
    response.build(&[
        Box::new(request),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: mapped.ip(),
            port: mapped.port(),
        }),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            REMOTE_PWD.to_string(),
            a.crypto_provider.crypto(),
        )),
        Box::new(FINGERPRINT),
    ])?;
    Ok(response)
}

/// A controlling peer's check on a pair the controlled agent has not validated yet, with
/// USE-CANDIDATE.
fn nominating_check(a: &Agent) -> Result<Message> {
    let mut msg = Message::new();
    msg.build(&[
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(
            ATTR_USERNAME,
            a.ufrag_pwd.local_credentials.ufrag.clone() + ":remote",
        )),
        Box::new(UseCandidateAttr::new()),
        Box::new(AttrControlling(a.tie_breaker.wrapping_add(1))),
        Box::new(PriorityAttr(a.local_candidates[0].priority())),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            a.ufrag_pwd.local_credentials.pwd.clone(),
            a.crypto_provider.crypto(),
        )),
        Box::new(FINGERPRINT),
    ])?;
    Ok(msg)
}

/// Upstream leaves a nominating check on an unvalidated pair unanswered (it sends a triggered
/// check only), so the controlling agent learns nothing until its next check; with aggressive
/// nomination the check is answered, and the triggered check's success selects the pair.
#[test]
fn controlled_agent_answers_a_nominating_check_and_selects_on_its_own_success() -> Result<()> {
    for aggressive in [false, true] {
        let mut a = agent(false, aggressive)?;
        let now = Instant::now();
        let mut check = nominating_check(&a)?;
        a.handle_inbound(now, &mut check, 0, remote_addr())?;
        let out = sent(&mut a);
        let answered = out.iter().any(|m| m.typ == BINDING_SUCCESS);
        assert_eq!(answered, aggressive, "aggressive = {aggressive}");
        let triggered = out
            .iter()
            .find(|m| m.typ == BINDING_REQUEST)
            .expect("a triggered check goes out either way")
            .clone();
        assert!(a.get_selected_pair().is_none(), "not selected before our own check succeeds");

        // The peer answers the triggered check.
        let mut response = success(&a, triggered, "192.168.0.2:777".parse().unwrap())?;
        a.handle_inbound(now, &mut response, 0, remote_addr())?;
        assert_eq!(
            a.get_selected_pair().is_some(),
            aggressive,
            "the peer-nominated pair is selected on success only with aggressive nomination"
        );
    }
    Ok(())
}

/// The selected pair keeps the address the peer saw its check come from (the success
/// response's XOR-MAPPED-ADDRESS): a NAT's mapping, not the host candidate's address.
#[test]
fn the_selected_pair_keeps_the_mapped_address_of_its_success() -> Result<()> {
    let mut a = agent(false, true)?;
    let now = Instant::now();
    let mut check = nominating_check(&a)?;
    a.handle_inbound(now, &mut check, 0, remote_addr())?;
    assert_eq!(a.get_selected_candidate_pair_mapped_address(), None, "nothing selected yet");
    let triggered = sent(&mut a)
        .into_iter()
        .find(|m| m.typ == BINDING_REQUEST)
        .expect("a triggered check");
    let nat: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    let mut response = success(&a, triggered, nat)?;
    a.handle_inbound(now, &mut response, 0, remote_addr())?;
    assert!(a.get_selected_pair().is_some());
    assert_eq!(a.get_selected_candidate_pair_mapped_address(), Some(nat));
    Ok(())
}

/// The controlling agent puts USE-CANDIDATE on every check with aggressive nomination, never
/// on a plain check without it.
#[test]
fn controlling_agent_nominates_with_every_check_when_aggressive() -> Result<()> {
    for aggressive in [false, true] {
        let mut a = agent(true, aggressive)?;
        // A remote candidate the checks go to (it arrives as a peer-reflexive one through a
        // controlled peer's check).
        let mut msg = Message::new();
        msg.build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(
                ATTR_USERNAME,
                a.ufrag_pwd.local_credentials.ufrag.clone() + ":remote",
            )),
            Box::new(AttrControlled(a.tie_breaker.wrapping_add(1))),
            Box::new(PriorityAttr(a.local_candidates[0].priority())),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                a.ufrag_pwd.local_credentials.pwd.clone(),
                a.crypto_provider.crypto(),
            )),
            Box::new(FINGERPRINT),
        ])?;
        a.handle_inbound(Instant::now(), &mut msg, 0, remote_addr())?;
        let _ = sent(&mut a);
        a.ping_candidate(Instant::now(), 0, 0);
        let checks: Vec<_> = sent(&mut a)
            .into_iter()
            .filter(|m| m.typ == BINDING_REQUEST)
            .collect();
        assert!(!checks.is_empty(), "a check goes out");
        for check in checks {
            assert_eq!(check.contains(ATTR_USE_CANDIDATE), aggressive, "aggressive = {aggressive}");
        }
    }
    Ok(())
}

/// A check that arrives before the remote credentials (the answer still in signaling) is
/// dropped upstream; with `answer_early_checks` it is answered when it is addressed to our ufrag
/// and signed with our password, and a check signed with anything else still is not.
#[test]
fn an_early_check_is_answered_only_when_asked_and_only_if_it_verifies() -> Result<()> {
    for answer_early in [false, true] {
        let config = AgentConfig {
            answer_early_checks: answer_early,
            ..Default::default()
        };
        let provider = crypto::default_provider().expect("a built-in crypto provider");
        let mut a = Agent::new(Instant::now(), Arc::new(config), provider)?;
        let local = CandidateHostConfig {
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
        a.add_local_candidate(local)?;
        assert!(a.ufrag_pwd.remote_credentials.is_none());

        for (pwd, verifies) in [
            (a.ufrag_pwd.local_credentials.pwd.clone(), true),
            ("not-our-password-at-all".to_string(), false),
        ] {
            let mut check = Message::new();
            check.build(&[
                Box::new(BINDING_REQUEST),
                Box::new(TransactionId::new()),
                Box::new(Username::new(
                    ATTR_USERNAME,
                    a.ufrag_pwd.local_credentials.ufrag.clone() + ":remote",
                )),
                Box::new(AttrControlled(1)),
                Box::new(PriorityAttr(1)),
                Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                    pwd,
                    a.crypto_provider.crypto(),
                )),
                Box::new(FINGERPRINT),
            ])?;
            let _ = a.handle_inbound(Instant::now(), &mut check, 0, remote_addr());
            let answers: Vec<_> = sent(&mut a)
                .into_iter()
                .filter(|m| m.typ == BINDING_SUCCESS && m.transaction_id == check.transaction_id)
                .collect();
            assert_eq!(
                answers.len(),
                usize::from(answer_early && verifies),
                "answer_early = {answer_early}, verifies = {verifies}"
            );
        }
        assert!(a.remote_candidates.is_empty(), "nothing is remembered");
    }
    Ok(())
}
