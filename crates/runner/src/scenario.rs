//! Scenario files (TOML). Unknown keys are errors that name the key and its line; see
//! `scenarios/README.md` for the schema.

use peerstorm_peer::IceMode;
use std::collections::BTreeMap;

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub servers: Servers,
    pub peers: Peers,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The live runner's load model.
    #[serde(default)]
    pub load: Option<Load>,
    #[serde(default)]
    pub signaling: Signaling,
    /// Metric path → condition (`"setup.dc_open.p95" = "< 800ms"`), checked by the report
    /// layer; dotted keys written unquoted are nested tables, flattened back into paths.
    #[serde(default)]
    pub thresholds: toml::Table,
}

fn default_seed() -> u64 {
    1
}

fn default_mode() -> String {
    "sim".into()
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Round-trip time between two peers (each access link carries a quarter of it each way).
    #[serde(default = "default_rtt")]
    pub rtt_ms: u64,
    /// Random loss on every access link, per direction.
    #[serde(default)]
    pub loss: f64,
    /// Access-link bandwidth per direction, kbit/s (a drop-tail queue of 256 KiB); none: unlimited.
    #[serde(default)]
    pub bandwidth_kbps: Option<u64>,
    /// Extra one-way delay per access link, uniform in 0..=jitter (packets keep their order).
    #[serde(default)]
    pub jitter_ms: u64,
    /// NAT presets by share of peers (`open`, `full-cone`, ...).
    #[serde(default = "default_mix")]
    pub nat_mix: BTreeMap<String, f64>,
    /// `mix`: each peer draws its preset by share (a seeded shuffle of exact counts); `matrix`:
    /// pair after pair walks every (offerer, answerer) combination of the presets in `nat_mix`.
    #[serde(default = "default_pairing")]
    pub pairing: String,
    /// Run the scenario once per RTT here (each value sets `rtt_ms` and the broker RTT), for
    /// trickle-vs-vanilla across distances; empty runs `rtt_ms` once.
    #[serde(default)]
    pub rtt_sweep_ms: Vec<u64>,
    /// Every NAT layer hairpins (RFC 4787 §6, REQ-9); `false` turns it off everywhere.
    #[serde(default = "yes")]
    pub hairpinning: bool,
    /// All `cgnat` peers sit behind one carrier NAT (198.51.100.100), so two of them meet
    /// only by hairpinning through it (or a relay).
    #[serde(default)]
    pub shared_cgnat: bool,
}

fn yes() -> bool {
    true
}

fn default_pairing() -> String {
    "mix".into()
}

fn default_rtt() -> u64 {
    40
}

fn default_mix() -> BTreeMap<String, f64> {
    BTreeMap::from([("open".to_string(), 1.0)])
}

impl Default for Network {
    fn default() -> Self {
        Self {
            rtt_ms: default_rtt(),
            loss: 0.0,
            bandwidth_kbps: None,
            jitter_ms: 0,
            nat_mix: default_mix(),
            pairing: default_pairing(),
            rtt_sweep_ms: Vec::new(),
            hairpinning: true,
            shared_cgnat: false,
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Servers {
    /// `"embedded"` (the simulator's core, or in live mode peerstorm's broker on a free loopback
    /// port), `"reference"` (live: `peer@1.0.2` from tools/js), or a PeerServer
    /// `{ host, port, path = "/", key = "peerjs", secure = false }` (live).
    #[serde(default = "embedded_broker")]
    pub broker: BrokerSpec,
    /// Round-trip time between a peer and the broker.
    #[serde(default = "default_rtt")]
    pub broker_rtt_ms: u64,
    /// `embedded` (the STUN/TURN core as a host of the simulated network) or `none`.
    #[serde(default = "embedded")]
    pub stun: String,
    #[serde(default = "embedded")]
    pub turn: String,
    /// Extra time the STUN/TURN server takes before each answer (STUN/TURN responses; relayed
    /// data is not held): a slow srflx/relay server, the case trickle ICE is for.
    #[serde(default)]
    pub answer_delay_ms: u64,
    /// Live: credentials for `turn = "turn:HOST:PORT"` (`NAME:PASSWORD`) and its realm.
    #[serde(default)]
    pub turn_user: Option<String>,
    #[serde(default)]
    pub turn_realm: Option<String>,
    /// Gather relayed candidates only (`iceTransportPolicy: "relay"`); needs `turn`.
    #[serde(default)]
    pub relay_only: bool,
    /// How peers reach the TURN server: `"udp"`, or `"tcp"` (in the simulator on port 443,
    /// which a `udp-blocked` network lets through). A `turn:` URI may say `?transport=tcp` too.
    #[serde(default = "udp")]
    pub turn_transport: String,
}

fn udp() -> String {
    "udp".into()
}

impl Servers {
    /// The TURN transport: `turn_transport`, or a `turn:` URI's `?transport=`.
    pub fn turn_transport(&self) -> peerstorm_peer::TurnTransport {
        let uri_tcp = self.turn.starts_with("turn:") && self.turn.contains("transport=tcp");
        if uri_tcp || self.turn_transport == "tcp" {
            peerstorm_peer::TurnTransport::Tcp
        } else {
            peerstorm_peer::TurnTransport::Udp
        }
    }
}

fn embedded() -> String {
    "embedded".into()
}

fn embedded_broker() -> BrokerSpec {
    BrokerSpec::Named("embedded".into())
}

/// Which PeerServer a run talks to.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum BrokerSpec {
    Named(String),
    Url(PeerServer),
}

/// A PeerServer's address, as PeerJS's `host`, `port`, `path`, `key` and `secure` options.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerServer {
    pub host: String,
    pub port: u16,
    #[serde(default = "slash")]
    pub path: String,
    #[serde(default = "peerjs_key")]
    pub key: String,
    #[serde(default)]
    pub secure: bool,
}

fn slash() -> String {
    "/".into()
}

fn peerjs_key() -> String {
    "peerjs".into()
}

/// The live runner's load model (`[load]`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// `open` (pairs start at `rate_per_s` whatever the broker does), `closed` (`concurrency`
    /// pairs at a time), `ramp` (the rate from `rate_per_s` to `rate_to_per_s`), `churn`
    /// (`pairs` held; `churn_per_s` of them leave and are replaced each second).
    #[serde(default = "default_model")]
    pub model: String,
    /// `signaling` (PeerJS frames only: OFFER, CANDIDATEs, ANSWER, CANDIDATEs) or `full`
    /// (virtual peers with the rtc stack on loopback UDP, the data-channel workload, TURN).
    #[serde(default = "signaling_stack")]
    pub stack: String,
    #[serde(default)]
    pub rate_per_s: f64,
    #[serde(default)]
    pub rate_to_per_s: f64,
    #[serde(default)]
    pub concurrency: usize,
    #[serde(default)]
    pub pairs: usize,
    #[serde(default)]
    pub churn_per_s: f64,
    /// How long pairs keep starting (and churn goes on).
    pub duration_s: f64,
}

fn default_model() -> String {
    "open".into()
}

fn signaling_stack() -> String {
    "signaling".into()
}

/// The live signaling exchange (`[signaling]`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Signaling {
    /// CANDIDATE frames each side sends after its OFFER or ANSWER.
    #[serde(default = "two")]
    pub candidates: usize,
    /// How long each pair stays connected after its exchange, sending HEARTBEATs.
    #[serde(default)]
    pub hold_s: f64,
    /// `GET /<key>/id` before joining, as PeerJS does when no ID is given.
    #[serde(default)]
    pub id_request: bool,
    /// The most one step (a join, a relay) may take before the pair fails.
    #[serde(default = "ten")]
    pub step_timeout_s: f64,
}

fn two() -> usize {
    2
}

fn ten() -> f64 {
    10.0
}

impl Default for Signaling {
    fn default() -> Self {
        Self { candidates: 2, hold_s: 0.0, id_request: false, step_timeout_s: 10.0 }
    }
}

impl Default for Servers {
    fn default() -> Self {
        Self {
            broker: embedded_broker(),
            broker_rtt_ms: default_rtt(),
            stun: embedded(),
            turn: embedded(),
            turn_user: None,
            turn_realm: None,
            answer_delay_ms: 0,
            relay_only: false,
            turn_transport: udp(),
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    pub count: usize,
    /// `pairs`: peer 2k opens a DataConnection to peer 2k+1. `star`: groups of `group_size`,
    /// every other member connecting to the group's hub. `rooms`: groups of `group_size` in a
    /// full mesh.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Peers per star (the hub and its leaves) or room; 2 for pairs.
    #[serde(default)]
    pub group_size: Option<usize>,
    #[serde(default)]
    pub arrival: Arrival,
    /// `["trickle"]`, `["vanilla"]`, or both: an A/B on the same peers and seed.
    #[serde(default = "default_ice")]
    pub ice: Vec<IceMode>,
}

fn default_pattern() -> String {
    "pairs".into()
}

fn default_ice() -> Vec<IceMode> {
    vec![IceMode::Trickle]
}

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// Pairs started per second; 0 or absent starts everyone at once.
    #[serde(default)]
    pub rate_per_s: f64,
}

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default)]
    pub datachannel: DataChannel,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataChannel {
    #[serde(default = "default_bytes")]
    pub message_bytes: usize,
    /// Messages each offerer sends (one at a time, each after the previous echo); 10 unless
    /// `duration_s` is given.
    #[serde(default)]
    pub messages: Option<u32>,
    /// Instead of a count: keep sending this long after the channel opens.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// The DataConnection's serialization: `binary`, `binary-utf8`, `json`, `raw` or `MsgPack`.
    #[serde(default = "default_serialization")]
    pub serialization: String,
    /// PeerJS's `reliable` (it becomes the channel's `ordered`).
    #[serde(default = "yes")]
    pub reliable: bool,
}

fn default_bytes() -> usize {
    1000
}

fn default_serialization() -> String {
    "binary".into()
}

impl Default for DataChannel {
    fn default() -> Self {
        Self {
            message_bytes: default_bytes(),
            messages: None,
            duration_s: None,
            serialization: default_serialization(),
            reliable: true,
        }
    }
}

impl DataChannel {
    /// The virtual peers' workload.
    pub fn workload(&self) -> peerstorm_peer::Workload {
        peerstorm_peer::Workload {
            messages: self.messages.unwrap_or(if self.duration_s.is_some() { 0 } else { 10 }),
            duration: self.duration_s.map(std::time::Duration::from_secs_f64),
            message_bytes: self.message_bytes,
            serialization: self.serialization.clone().into(),
            reliable: self.reliable,
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// A pair not done this long after it started has failed (`timeout`).
    #[serde(default = "default_setup")]
    pub setup_s: u64,
}

fn default_setup() -> u64 {
    30
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { setup_s: default_setup() }
    }
}

/// A scenario that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Toml(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("[thresholds] {0}")]
    Threshold(String),
}

impl Scenario {
    /// Parses and checks a scenario. Errors name the key and its line.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|r| 1 + text[..r.start.min(text.len())].matches('\n').count());
            ScenarioError::Toml(match at {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_string(),
            })
        })?;
        s.check()?;
        Ok(s)
    }

    fn check_live(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Unsupported(m));
        let Some(load) = &self.load else {
            return bad("mode = \"live\" needs a [load] table (model, rate_per_s or concurrency, duration_s)".into());
        };
        if self.peers.count < 2 || self.peers.count % 2 != 0 {
            return bad(format!(
                "peers.count = {}: the most peers a live run starts, in pairs: an even count of at least 2",
                self.peers.count
            ));
        }
        match &self.servers.broker {
            BrokerSpec::Named(n) if n == "embedded" || n == "reference" => {}
            BrokerSpec::Named(n) => {
                return bad(format!(
                    "servers.broker = {n:?}: expected \"embedded\", \"reference\" or {{ host, port, path, key }}"
                ));
            }
            BrokerSpec::Url(p) if p.secure => {
                return bad("servers.broker.secure = true: this build's live client speaks ws:// only; put a TLS-terminating proxy's plain port here".into());
            }
            BrokerSpec::Url(_) => {}
        }
        if self.peers.pattern != "pairs" {
            return bad("mode = \"live\" runs pairs (peers.pattern = \"pairs\")".into());
        }
        match load.stack.as_str() {
            "signaling" => {}
            "full" => {
                if load.model == "churn" {
                    return bad("load.stack = \"full\" runs the open, ramp and closed models".into());
                }
            }
            other => return bad(format!("load.stack {other:?}: expected \"signaling\" or \"full\"")),
        }
        let t = self.servers.turn.as_str();
        if !(["embedded", "coturn", "none"].contains(&t) || t.starts_with("turn:")) {
            return bad(format!(
                "servers.turn = {t:?}: expected \"embedded\", \"coturn\", \"none\" or \"turn:HOST:PORT\""
            ));
        }
        if t.starts_with("turn:") && self.servers.turn_user.as_deref().is_none_or(|u| !u.contains(':')) {
            return bad("servers.turn = \"turn:...\" needs servers.turn_user = \"NAME:PASSWORD\"".into());
        }
        if self.servers.relay_only && t == "none" {
            return bad("servers.relay_only needs a TURN server".into());
        }
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if !(pos(load.duration_s) && load.duration_s <= 24.0 * 3600.0) {
            return bad(format!("load.duration_s = {}: expected seconds above 0, at most a day", load.duration_s));
        }
        match load.model.as_str() {
            "open" if pos(load.rate_per_s) => {}
            "ramp" if pos(load.rate_per_s) && pos(load.rate_to_per_s) => {}
            "closed" if load.concurrency > 0 => {}
            "churn" if load.pairs > 0 && pos(load.churn_per_s) => {}
            "open" => return bad("load.model = \"open\" needs rate_per_s > 0".into()),
            "ramp" => return bad("load.model = \"ramp\" needs rate_per_s and rate_to_per_s > 0".into()),
            "closed" => return bad("load.model = \"closed\" needs concurrency > 0".into()),
            "churn" => return bad("load.model = \"churn\" needs pairs > 0 and churn_per_s > 0".into()),
            m => return bad(format!("load.model {m:?}: expected open, closed, ramp or churn")),
        }
        let sig = &self.signaling;
        if !(pos(sig.step_timeout_s) && sig.step_timeout_s <= 600.0 && (0.0..=86_400.0).contains(&sig.hold_s)) {
            return bad("signaling.step_timeout_s must be in (0, 600] and hold_s in [0, 86400]".into());
        }
        if sig.candidates > 100 {
            return bad(format!("signaling.candidates = {}: at most 100", sig.candidates));
        }
        Ok(())
    }

    /// Peers per group: 2 for pairs, `group_size` for stars and rooms.
    pub fn group_size(&self) -> Result<usize, ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Unsupported(m));
        match (self.peers.pattern.as_str(), self.peers.group_size) {
            ("pairs", None | Some(2)) => Ok(2),
            ("pairs", Some(g)) => {
                bad(format!("peers.group_size = {g}: pairs have 2 (use pattern \"star\" or \"rooms\")"))
            }
            ("star" | "rooms", Some(g)) if (2..=1000).contains(&g) => Ok(g),
            ("star" | "rooms", Some(g)) => bad(format!("peers.group_size = {g}: expected 2 to 1000")),
            ("star" | "rooms", None) => bad(format!(
                "peers.pattern = {:?} needs peers.group_size (peers per {})",
                self.peers.pattern,
                if self.peers.pattern == "star" { "star: the hub and its leaves" } else { "room" }
            )),
            (p, _) => bad(format!("peers.pattern {p:?}: expected \"pairs\", \"star\" or \"rooms\"")),
        }
    }

    /// The thresholds, parsed: an unknown metric, a unit that does not fit or a malformed
    /// condition is an error here, before anything runs.
    pub fn thresholds(&self) -> Result<Vec<peerstorm_report::Threshold>, ScenarioError> {
        let v = serde_json::to_value(&self.thresholds).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        let mut pairs = Vec::new();
        let thresholds_err = |e: peerstorm_report::ThresholdError| ScenarioError::Threshold(e.to_string());
        peerstorm_report::thresholds::flatten("", &v, &mut pairs).map_err(thresholds_err)?;
        pairs.into_iter().map(|(p, c)| peerstorm_report::Threshold::parse(&p, &c).map_err(thresholds_err)).collect()
    }

    fn check(&self) -> Result<(), ScenarioError> {
        self.thresholds()?;
        let bad = |m: String| Err(ScenarioError::Unsupported(m));
        if !["udp", "tcp"].contains(&self.servers.turn_transport.as_str()) {
            return bad(format!(
                "servers.turn_transport {:?}: expected \"udp\" or \"tcp\"",
                self.servers.turn_transport
            ));
        }
        match self.mode.as_str() {
            "sim" => {}
            "live" => return self.check_live(),
            m => return bad(format!("mode {m:?}: expected \"sim\" or \"live\"")),
        }
        let group = self.group_size()?;
        if self.peers.count < group || self.peers.count % group != 0 {
            return bad(if group == 2 {
                format!("peers.count = {}: pairs need an even count of at least 2", self.peers.count)
            } else {
                format!(
                    "peers.count = {}: {} of {group} need a multiple of {group}",
                    self.peers.count, self.peers.pattern
                )
            });
        }
        if self.peers.count > 1_000_000 {
            return bad(format!(
                "peers.count = {}: the simulator's address plan holds at most 1,000,000 peers",
                self.peers.count
            ));
        }
        if self.network.pairing == "matrix" && self.peers.pattern != "pairs" {
            return bad(
                "network.pairing = \"matrix\" pairs presets pair by pair: it needs peers.pattern = \"pairs\"".into()
            );
        }
        let dc = &self.workload.datachannel;
        if !["binary", "binary-utf8", "json", "raw", "MsgPack"].contains(&dc.serialization.as_str()) {
            return bad(format!(
                "workload.datachannel.serialization {:?}: expected \"binary\", \"binary-utf8\", \"json\", \"raw\" or \"MsgPack\"",
                dc.serialization
            ));
        }
        if dc.messages.is_some() && dc.duration_s.is_some() {
            return bad("workload.datachannel: give messages or duration_s, not both".into());
        }
        if let Some(d) = dc.duration_s
            && !(d.is_finite() && d > 0.0 && d <= 3600.0)
        {
            return bad(format!("workload.datachannel.duration_s = {d}: expected seconds above 0, at most 3600"));
        }
        // PeerJS refuses a json message of 16,300 bytes or more (the string and its quotes).
        if dc.serialization == "json" && dc.message_bytes > 16_297 {
            return bad(format!(
                "workload.datachannel.message_bytes = {}: a json message must stay under 16,300 bytes (at most 16,297 here)",
                dc.message_bytes
            ));
        }
        // Raw messages are not chunked: one SCTP message each, within the 65,536 bytes browsers announce.
        if dc.serialization == "raw" && dc.message_bytes > 65_536 {
            return bad(format!(
                "workload.datachannel.message_bytes = {}: raw messages are not chunked; at most 65,536",
                dc.message_bytes
            ));
        }
        if dc.message_bytes > 16 << 20 {
            return bad(format!("workload.datachannel.message_bytes = {}: at most 16 MiB", dc.message_bytes));
        }
        if self.peers.ice.is_empty() {
            return bad("peers.ice is empty: use [\"trickle\"], [\"vanilla\"] or both".into());
        }
        for (preset, share) in &self.network.nat_mix {
            if peerstorm_netsim::Preset::parse(preset).is_none() {
                return bad(format!("network.nat_mix: unknown preset {preset:?}"));
            }
            if !(share.is_finite() && *share >= 0.0) {
                return bad(format!("network.nat_mix.{preset} = {share}: expected a share of zero or more"));
            }
        }
        if self.network.nat_mix.values().sum::<f64>() <= 0.0 {
            return bad("network.nat_mix: the shares add up to zero".into());
        }
        if !["mix", "matrix"].contains(&self.network.pairing.as_str()) {
            return bad(format!("network.pairing {:?}: expected \"mix\" or \"matrix\"", self.network.pairing));
        }
        for (key, v) in [("servers.stun", &self.servers.stun), ("servers.turn", &self.servers.turn)] {
            if !["embedded", "none"].contains(&v.as_str()) {
                return bad(format!("{key} = {v:?}: the simulator runs \"embedded\" or \"none\""));
            }
        }
        if self.servers.relay_only && self.servers.turn == "none" {
            return bad(
                "servers.relay_only needs a TURN server: servers.turn = \"none\" leaves nothing to relay through"
                    .into(),
            );
        }
        if self.servers.broker != embedded_broker() {
            return bad(
                "servers.broker: the simulator runs the embedded broker (mode = \"live\" talks to others)".into()
            );
        }
        if self.load.is_some() {
            return bad("[load] is for mode = \"live\"; the simulator's arrivals are [peers] arrival".into());
        }
        if self.network.bandwidth_kbps == Some(0) {
            return bad("network.bandwidth_kbps = 0: leave it out for an unlimited link".into());
        }
        if !(0.0..1.0).contains(&self.network.loss) {
            return bad(format!("network.loss = {}: expected a probability below 1", self.network.loss));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_their_line() {
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 2\ncolour = \"blue\"\n").unwrap_err().to_string();
        assert!(e.starts_with("line 4:") && e.contains("colour"), "{e}");
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 2\n[network]\nrtt = 5\n").unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("rtt"), "{e}");
    }

    #[test]
    fn unsupported_settings_are_refused_clearly() {
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 3\n").unwrap_err().to_string();
        assert!(e.contains("even count"), "{e}");
        let e = Scenario::parse("name = \"x\"\n[network]\nnat_mix = { symetric = 1.0 }\n[peers]\ncount = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown preset \"symetric\""), "{e}");
        let e = Scenario::parse("name = \"x\"\n[network]\npairing = \"grid\"\n[peers]\ncount = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.pairing"), "{e}");
        let e = Scenario::parse("name = \"x\"\n[servers]\nturn = \"turn:x\"\n[peers]\ncount = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("servers.turn"), "{e}");
        let s = Scenario::parse("name = \"x\"\n[peers]\ncount = 4\nice = [\"trickle\", \"vanilla\"]\n").unwrap();
        assert_eq!(s.peers.ice, [IceMode::Trickle, IceMode::Vanilla]);
        assert_eq!(s.network.rtt_ms, 40);
    }

    #[test]
    fn thresholds_parse_before_the_run() {
        let s = Scenario::parse(
            "name = \"x\"\n[peers]\ncount = 2\n[thresholds]\nsetup.dc_open.p95 = \"< 800ms\"\nsuccess_rate = \">= 99%\"\n\"relay_share{class=open ↔ symmetric}\" = \"<= 0.3\"\n",
        )
        .unwrap();
        let t = s.thresholds().unwrap();
        let texts: Vec<&str> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            ["setup.dc_open.p95 < 800ms", "success_rate >= 99%", "relay_share{class=open ↔ symmetric} <= 0.3"]
        );
        let e = Scenario::parse("name = \"x\"\n[peers]\ncount = 2\n[thresholds]\nsetup.dc_opn.p95 = \"< 800ms\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[thresholds]") && e.contains("unknown stage \"dc_opn\""), "{e}");
    }
}
