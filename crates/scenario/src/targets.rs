//! The servers a run talks to, as typed values: which broker, which STUN and TURN server.
//! Each parses from the text a scenario file or a command line gives, with an error that says
//! what was expected.

use peerstorm_peer::TurnTransport;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which PeerServer a run talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BrokerText", into = "BrokerText")]
pub enum BrokerTarget {
    /// peerstorm's broker: the core inside the simulator, or started on a free loopback port.
    Embedded,
    /// Live: `peer@1.0.2` from tools/js, started on a free loopback port.
    Reference,
    /// Live: somebody's PeerServer.
    Server(PeerServer),
}

/// A PeerServer's address, as PeerJS's `host`, `port`, `path`, `key` and `secure` options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerServer {
    pub host: String,
    pub port: u16,
    #[serde(default = "slash")]
    pub path: String,
    #[serde(default = "peerjs_key")]
    pub key: String,
    /// `wss://`: TLS, the certificate checked against the system's roots and `ca`.
    #[serde(default)]
    pub secure: bool,
    /// A PEM file of extra trusted roots for a `secure` server (a private CA, a self-signed
    /// certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    /// Do not check a `secure` server's certificate at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

impl PeerServer {
    /// A server at `host:port` with PeerJS's defaults (path `/`, key `peerjs`, plain).
    pub fn at(host: impl Into<String>, port: u16) -> Self {
        PeerServer {
            host: host.into(),
            port,
            path: slash(),
            key: peerjs_key(),
            secure: false,
            ca: None,
            insecure: false,
        }
    }

    /// A PeerServer from a URL: `ws://` or `wss://` (the WebSocket endpoint `serve broker`
    /// prints, `…/peerjs?key=K`), or `http://`/`https://` (the server's mount, `…/PATH/`). A path
    /// ending in `peerjs` is the WebSocket endpoint under the PeerJS `path` before it; any other
    /// path is the `path` itself. The port defaults to 80 or 443, the key to `peerjs`.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "{url:?}: {why} (expected ws://HOST:PORT/PATH/peerjs?key=KEY, wss://…, http(s)://HOST:PORT/PATH/)"
            ))
        };
        let Some((scheme, rest)) = url.split_once("://") else { return bad("no scheme") };
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return bad("the scheme is not ws, wss, http or https"),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return bad("user names in the URL are not supported");
        }
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = match authority.strip_prefix('[') {
            // [IPv6]:PORT
            Some(v6) => match v6.split_once(']') {
                Some((h, "")) => (h, Some(default_port)),
                Some((h, p)) => (h, p.strip_prefix(':').and_then(|p| p.parse().ok())),
                None => return bad("an IPv6 address without its closing ]"),
            },
            None => match authority.split_once(':') {
                Some((h, p)) => (h, p.parse().ok()),
                None => (authority, Some(default_port)),
            },
        };
        let Some(port) = port else { return bad("the port is not a number from 0 to 65535") };
        if host.is_empty() {
            return bad("no host");
        }
        let path = match path.strip_suffix("peerjs") {
            Some(mount) if mount.ends_with('/') => mount.to_string(),
            _ if path.ends_with('/') => path.to_string(),
            _ => format!("{path}/"),
        };
        let mut server = PeerServer { path, secure, ..PeerServer::at(host, port) };
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("key", k)) if !k.is_empty() => server.key = k.to_string(),
                // What a PeerJS client adds itself (id, token, version) is not the server's.
                Some(("id" | "token" | "version", _)) => {}
                _ => return bad(&format!("unknown query {kv:?} (only key=KEY)")),
            }
        }
        Ok(server)
    }

    /// The WebSocket URL a PeerJS client opens (without its id and token).
    pub fn ws_url(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let path = if self.path.ends_with('/') { self.path.clone() } else { format!("{}/", self.path) };
        format!("{}://{host}:{}{path}peerjs?key={}", if self.secure { "wss" } else { "ws" }, self.port, self.key)
    }
}

fn slash() -> String {
    "/".into()
}

fn peerjs_key() -> String {
    "peerjs".into()
}

/// How a broker is written in a file: a name or a table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum BrokerText {
    Name(String),
    Server(PeerServer),
}

impl TryFrom<BrokerText> for BrokerTarget {
    type Error = String;

    fn try_from(t: BrokerText) -> Result<Self, String> {
        match t {
            BrokerText::Name(n) => n.parse(),
            BrokerText::Server(p) => Ok(BrokerTarget::Server(p)),
        }
    }
}

impl From<BrokerTarget> for BrokerText {
    fn from(b: BrokerTarget) -> Self {
        match b {
            BrokerTarget::Server(p) => BrokerText::Server(p),
            named => BrokerText::Name(named.to_string()),
        }
    }
}

impl FromStr for BrokerTarget {
    type Err = String;

    /// `embedded`, `reference`, a `ws://`/`wss://`/`http(s)://` URL ([`PeerServer::from_url`]),
    /// or `HOST:PORT` (a plain PeerServer at path `/` with key `peerjs`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" => Ok(BrokerTarget::Embedded),
            "reference" => Ok(BrokerTarget::Reference),
            url if url.contains("://") => PeerServer::from_url(url).map(BrokerTarget::Server),
            hp => match hp.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
                Some((host, port)) if !host.is_empty() => {
                    Ok(BrokerTarget::Server(PeerServer::at(host.trim_matches(['[', ']']), port)))
                }
                _ => Err(format!(
                    "{hp:?}: expected \"embedded\", \"reference\", a ws:// or wss:// URL, HOST:PORT or {{ host, port, path, key, secure }}"
                )),
            },
        }
    }
}

impl fmt::Display for BrokerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerTarget::Embedded => f.write_str("embedded"),
            BrokerTarget::Reference => f.write_str("reference"),
            BrokerTarget::Server(p) => f.write_str(&p.ws_url()),
        }
    }
}

/// Where peers send their STUN Binding for a server-reflexive candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StunTarget {
    /// The embedded STUN/TURN server (live: the run's TURN server answers STUN too).
    Embedded,
    /// No STUN: no srflx candidates.
    None,
}

/// The TURN server peers gather relayed candidates from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TurnTarget {
    /// peerstorm's TURN core (a host of the simulated network, or started on a free loopback port).
    Embedded,
    /// Live: Debian's coturn, started on a free loopback port.
    Coturn,
    /// No TURN: no relayed candidates.
    None,
    /// Live: a TURN server by address (`turn:HOST:PORT[?transport=udp|tcp]`, `turns:HOST:PORT`).
    Uri(TurnUri),
}

/// `turn:HOST:PORT[?transport=udp|tcp]` or `turns:HOST:PORT[?transport=tcp]` (RFC 7065; `turns:`
/// is TLS over TCP, `transport` then `Tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnUri {
    pub host: String,
    pub port: u16,
    /// `?transport=`, when the URI gives one.
    pub transport: Option<TurnTransport>,
}

impl FromStr for TurnUri {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (secure, rest) = match (s.strip_prefix("turns:"), s.strip_prefix("turn:")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => return Err(format!("{s:?}: a TURN URI starts with turn: or turns:")),
        };
        let (hp, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, port) = match hp.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{s:?}: the port {p:?} is not a number"))?),
            // RFC 7065 §3: the default port of turn: is 3478, of turns: 5349.
            None => (hp, if secure { 5349 } else { 3478 }),
        };
        if host.is_empty() {
            return Err(format!("{s:?}: no host"));
        }
        let mut transport = secure.then_some(TurnTransport::Tls);
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            transport = Some(match (kv, secure) {
                ("transport=udp", false) => TurnTransport::Udp,
                ("transport=tcp", false) => TurnTransport::Tcp,
                ("transport=tcp", true) => TurnTransport::Tls,
                ("transport=udp", true) => {
                    return Err(format!(
                        "{s:?}: turns: over UDP is DTLS, which this build does not speak; use turns:…?transport=tcp (TLS)"
                    ));
                }
                (other, _) => return Err(format!("{s:?}: {other:?}: expected transport=udp or transport=tcp")),
            });
        }
        Ok(TurnUri { host: host.trim_matches(['[', ']']).to_string(), port, transport })
    }
}

impl fmt::Display for TurnUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.transport == Some(TurnTransport::Tls) { "turns" } else { "turn" };
        write!(f, "{scheme}:{}:{}", self.host, self.port)?;
        match self.transport {
            Some(TurnTransport::Udp) => f.write_str("?transport=udp"),
            Some(TurnTransport::Tcp | TurnTransport::Tls) => f.write_str("?transport=tcp"),
            None => Ok(()),
        }
    }
}

impl FromStr for TurnTarget {
    type Err = String;

    /// `embedded`, `coturn`, `none` or a `turn:` URI.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" => Ok(TurnTarget::Embedded),
            "coturn" => Ok(TurnTarget::Coturn),
            "none" => Ok(TurnTarget::None),
            uri if uri.starts_with("turn") => uri.parse().map(TurnTarget::Uri),
            other => Err(format!("{other:?}: expected \"embedded\", \"coturn\", \"none\" or \"turn:HOST:PORT\"")),
        }
    }
}

impl TryFrom<String> for TurnTarget {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for TurnTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TurnTarget::Embedded => f.write_str("embedded"),
            TurnTarget::Coturn => f.write_str("coturn"),
            TurnTarget::None => f.write_str("none"),
            TurnTarget::Uri(u) => u.fmt(f),
        }
    }
}

impl From<TurnTarget> for String {
    fn from(t: TurnTarget) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_as_peerjs_options() {
        let p = |u: &str| PeerServer::from_url(u);
        // What `serve broker` prints.
        let s = p("ws://127.0.0.1:9000/peerjs?key=peerjs").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.path.as_str(), s.key.as_str(), s.secure),
            ("127.0.0.1", 9000, "/", "peerjs", false)
        );
        let s = p("wss://example.org/myapp/peerjs?key=k1").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.path.as_str(), s.key.as_str(), s.secure),
            ("example.org", 443, "/myapp/", "k1", true)
        );
        let s = p("https://example.org:8443/myapp").unwrap();
        assert_eq!((s.port, s.path.as_str(), s.secure), (8443, "/myapp/", true));
        let s = p("http://[::1]:9000/").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.path.as_str()), ("::1", 9000, "/"));
        // A client's own query parameters are not the server's.
        assert_eq!(p("ws://h:1/peerjs?key=a&id=x&token=t&version=1.5.5").unwrap().key, "a");
        for (bad, why) in [
            ("ftp://h:1/", "scheme"),
            ("ws://h:port/", "port"),
            ("ws://:9000/", "no host"),
            ("ws://[::1:9000/", "closing ]"),
            ("ws://h:1/?colour=blue", "unknown query"),
            ("ws://u@h:1/", "user names"),
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // Printed back as the URL a client opens, parsed again to the same server.
        for url in [
            "ws://127.0.0.1:9000/peerjs?key=peerjs",
            "wss://example.org:443/a/b/peerjs?key=k",
            "ws://[::1]:80/peerjs?key=peerjs",
        ] {
            let t: BrokerTarget = url.parse().unwrap();
            assert_eq!(t.to_string(), url);
            assert_eq!(t.to_string().parse::<BrokerTarget>().unwrap(), t);
        }
        assert_eq!(
            "127.0.0.1:9000".parse::<BrokerTarget>().unwrap(),
            BrokerTarget::Server(PeerServer::at("127.0.0.1", 9000))
        );
    }

    #[test]
    fn turn_targets_parse_and_print_back() {
        for text in [
            "embedded",
            "coturn",
            "none",
            "turn:127.0.0.1:3478",
            "turn:example.org:443?transport=tcp",
            "turns:example.org:443?transport=tcp",
        ] {
            let t: TurnTarget = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        let TurnTarget::Uri(u) = "turn:h?transport=udp".parse().unwrap() else { panic!("a URI") };
        assert_eq!((u.host.as_str(), u.port, u.transport), ("h", 3478, Some(TurnTransport::Udp)));
        let e = "turn:h:1?transport=sctp".parse::<TurnTarget>().unwrap_err();
        assert!(e.contains("transport=sctp"), "{e}");
        // turns: is TLS over TCP, on 5349 unless a port is given; over UDP it would be DTLS.
        let TurnTarget::Uri(u) = "turns:h".parse().unwrap() else { panic!("a URI") };
        assert_eq!((u.port, u.transport), (5349, Some(TurnTransport::Tls)));
        let e = "turns:h:443?transport=udp".parse::<TurnTarget>().unwrap_err();
        assert!(e.contains("DTLS"), "{e}");
        assert!("cotrun".parse::<TurnTarget>().unwrap_err().contains("expected"));
    }

    #[test]
    fn brokers_parse_from_names_and_addresses() {
        assert_eq!("embedded".parse::<BrokerTarget>(), Ok(BrokerTarget::Embedded));
        let BrokerTarget::Server(p) = "127.0.0.1:9000".parse().unwrap() else { panic!("an address") };
        assert_eq!((p.host.as_str(), p.port, p.path.as_str(), p.key.as_str()), ("127.0.0.1", 9000, "/", "peerjs"));
        assert!("localhost".parse::<BrokerTarget>().unwrap_err().contains("HOST:PORT"));
    }
}
