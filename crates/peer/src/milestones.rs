//! Milestones a virtual peer records on the virtual clock, and why a connection failed.

use std::collections::BTreeMap;
use std::time::Duration;

/// The stages of a connection, in the order they usually happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    SignalingConnected,
    Open,
    OfferSent,
    OfferReceived,
    FirstLocalCandidate,
    FirstSrflx,
    FirstRelay,
    GatheringComplete,
    AnswerReceived,
    /// The TURN server granted the first permission (CreatePermission answered): relayed
    /// connections only.
    TurnPermission,
    IceConnected,
    DtlsConnected,
    DataChannelOpen,
    FirstEcho,
    /// The offerer got its last echo back.
    WorkloadDone,
}

impl Milestone {
    pub fn as_str(self) -> &'static str {
        match self {
            Milestone::SignalingConnected => "signaling_connected",
            Milestone::Open => "open",
            Milestone::OfferSent => "offer_sent",
            Milestone::OfferReceived => "offer_received",
            Milestone::FirstLocalCandidate => "first_local_candidate",
            Milestone::FirstSrflx => "first_srflx",
            Milestone::FirstRelay => "first_relay",
            Milestone::GatheringComplete => "gathering_complete",
            Milestone::AnswerReceived => "answer_received",
            Milestone::TurnPermission => "turn_permission",
            Milestone::IceConnected => "ice_connected",
            Milestone::DtlsConnected => "dtls_connected",
            Milestone::DataChannelOpen => "dc_open",
            Milestone::FirstEcho => "first_echo",
            Milestone::WorkloadDone => "workload_done",
        }
    }
}

/// Why a peer's connection failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    IceFailed,
    DtlsFailed,
    Expire,
    IdTaken,
    BrokerError(String),
    Timeout,
    /// A lab host's program ended without saying how its connection went (its exit status
    /// was not 0).
    HostExited,
}

/// When each milestone first happened (time since the peer started). In JSON, times are
/// milliseconds (fractions down to the microsecond); read back the same way (what a lab host
/// other than a virtual peer reports).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Milestones {
    #[serde(serialize_with = "ms_map", deserialize_with = "ms_map_de", default)]
    pub at: BTreeMap<Milestone, Duration>,
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The selected candidate pair's types (local, remote: `host`, `srflx`, `prflx`, `relay`),
    /// read when the data channel opens.
    #[serde(default)]
    pub selected: Option<(String, String)>,
    /// When `failure` happened (time since the peer started).
    #[serde(serialize_with = "ms_opt", deserialize_with = "ms_opt_de", default)]
    pub failed_at: Option<Duration>,
    /// Why the TURN allocation failed, as the server or the client said (`437`, `timeout`, ...):
    /// the connection may still succeed without a relay.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub turn_error: Option<String>,
    /// Relayed candidates gathered (one per TURN server that allocated).
    #[serde(default)]
    pub relays: u32,
    /// The DTLS version the handshake negotiated (`DTLS 1.2`, `DTLS 1.3`), read when the data
    /// channel opens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dtls: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn ms_map<S: serde::Serializer>(m: &BTreeMap<Milestone, Duration>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, &ms(*v))?;
    }
    map.end()
}

pub(crate) fn ms_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&ms(*d)),
        None => s.serialize_none(),
    }
}

/// Milliseconds back to a time: finite and from zero to a day, or an error.
fn from_ms<E: serde::de::Error>(v: f64) -> Result<Duration, E> {
    if v.is_finite() && (0.0..=86_400_000.0).contains(&v) {
        Ok(Duration::from_micros((v * 1000.0).round() as u64))
    } else {
        Err(E::custom(format!("{v} ms: expected milliseconds from 0 to a day")))
    }
}

fn ms_map_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<Milestone, Duration>, D::Error> {
    let raw: BTreeMap<Milestone, f64> = serde::Deserialize::deserialize(d)?;
    raw.into_iter().map(|(k, v)| Ok((k, from_ms(v)?))).collect()
}

pub(crate) fn ms_opt_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let raw: Option<f64> = serde::Deserialize::deserialize(d)?;
    raw.map(from_ms).transpose()
}

impl Milestones {
    /// Records `m` at `t` unless it happened already.
    pub fn mark(&mut self, m: Milestone, t: Duration) {
        self.at.entry(m).or_insert(t);
    }

    pub fn get(&self, m: Milestone) -> Option<Duration> {
        self.at.get(&m).copied()
    }

    /// Records the first failure and when it happened.
    pub fn fail(&mut self, f: Failure, t: Duration) {
        if self.failure.is_none() {
            self.failure = Some(f);
            self.failed_at = Some(t);
        }
    }
}
