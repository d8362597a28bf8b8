//! Counters the core keeps, rendered in the Prometheus text format for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Why a frame or a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rejection {
    MissingParams,
    InvalidKey,
    IdTaken,
    ConcurrentLimit,
    InvalidId,
    NotIssued,
    Malformed,
    UnknownType,
    NoDestination,
    ForgedControl,
    RateLimited,
    QueueFull,
    FrameTooLarge,
    /// Hardened: the ID is reserved for the token of a client whose connection was lost.
    IdReserved,
    /// Hardened: a client read too slowly and its connection was dropped.
    SlowReader,
    /// Hardened with server-issued IDs: too many IDs handed out and not yet claimed.
    TooManyIssuedIds,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MissingParams => "missing_params",
            Rejection::InvalidKey => "invalid_key",
            Rejection::IdTaken => "id_taken",
            Rejection::ConcurrentLimit => "concurrent_limit",
            Rejection::InvalidId => "invalid_id",
            Rejection::NotIssued => "id_not_issued",
            Rejection::Malformed => "malformed",
            Rejection::UnknownType => "unknown_type",
            Rejection::NoDestination => "no_destination",
            Rejection::ForgedControl => "forged_control",
            Rejection::RateLimited => "rate_limited",
            Rejection::QueueFull => "queue_full",
            Rejection::FrameTooLarge => "frame_too_large",
            Rejection::IdReserved => "id_reserved",
            Rejection::SlowReader => "slow_reader",
            Rejection::TooManyIssuedIds => "too_many_issued_ids",
        }
    }
}

/// The broker's counters.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub connections_total: u64,
    pub registered_total: u64,
    pub relayed: BTreeMap<&'static str, u64>,
    pub queued_total: u64,
    pub delivered_from_queue: u64,
    pub expired_queues: u64,
    pub expire_sent: u64,
    pub alive_timeouts: u64,
    pub rejected: BTreeMap<Rejection, u64>,
    pub undelivered_requeued: u64,
}

impl Metrics {
    pub(crate) fn reject(&mut self, r: Rejection) {
        *self.rejected.entry(r).or_default() += 1;
    }

    /// Renders the counters and the gauges passed in.
    pub fn render(&self, connected_peers: usize, open_connections: usize, queued_now: usize) -> String {
        let mut s = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        };
        metric(
            "peerstorm_broker_connected_peers",
            "gauge",
            "Registered peer IDs.",
            &[(String::new(), connected_peers as u64)],
        );
        metric(
            "peerstorm_broker_open_connections",
            "gauge",
            "Open WebSocket connections.",
            &[(String::new(), open_connections as u64)],
        );
        metric(
            "peerstorm_broker_queued_messages",
            "gauge",
            "Messages held for offline peers.",
            &[(String::new(), queued_now as u64)],
        );
        metric(
            "peerstorm_broker_connections_total",
            "counter",
            "WebSocket connections accepted.",
            &[(String::new(), self.connections_total)],
        );
        metric(
            "peerstorm_broker_registrations_total",
            "counter",
            "Peer IDs registered (OPEN sent).",
            &[(String::new(), self.registered_total)],
        );
        let relayed: Vec<(String, u64)> = ["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"]
            .iter()
            .map(|t| (format!("{{type=\"{t}\"}}"), self.relayed.get(t).copied().unwrap_or(0)))
            .collect();
        metric(
            "peerstorm_broker_frames_relayed_total",
            "counter",
            "Frames relayed to an online peer, by type.",
            &relayed,
        );
        metric(
            "peerstorm_broker_frames_queued_total",
            "counter",
            "Frames queued for an offline peer.",
            &[(String::new(), self.queued_total)],
        );
        metric(
            "peerstorm_broker_frames_delivered_from_queue_total",
            "counter",
            "Queued frames delivered when their peer connected.",
            &[(String::new(), self.delivered_from_queue)],
        );
        metric(
            "peerstorm_broker_queues_expired_total",
            "counter",
            "Queues dropped after the expire timeout.",
            &[(String::new(), self.expired_queues)],
        );
        metric(
            "peerstorm_broker_expire_sent_total",
            "counter",
            "EXPIRE frames generated.",
            &[(String::new(), self.expire_sent)],
        );
        metric(
            "peerstorm_broker_alive_timeouts_total",
            "counter",
            "Clients dropped for missing heartbeats.",
            &[(String::new(), self.alive_timeouts)],
        );
        metric(
            "peerstorm_broker_undelivered_requeued_total",
            "counter",
            "Frames a closing socket could not take, queued again.",
            &[(String::new(), self.undelivered_requeued)],
        );
        let rejected: Vec<(String, u64)> =
            self.rejected.iter().map(|(r, v)| (format!("{{reason=\"{}\"}}", r.as_str()), *v)).collect();
        metric("peerstorm_broker_rejected_total", "counter", "Frames or connections refused, by reason.", &rejected);
        s
    }
}
