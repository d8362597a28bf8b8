//! The HTTP API of `peer@1.0.2` (protocol.md §1.2), sans-IO: a parsed request in, a response out.
//!
//! Under the mount path: `GET /` (the server description), `GET /<key>/id` (a fresh ID; the key
//! is not checked, as in the reference), `GET /<key>/peers` (401 unless discovery is on), with
//! the `cors` middleware's headers. `GET /metrics` (peerstorm's own, outside the mount) serves
//! the Prometheus counters. Anything else gets Express's 404 page.

use crate::core::Broker;
use std::fmt::Write as _;
use std::time::Instant;

/// The parts of a request the API looks at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent (path and query).
    pub target: &'a str,
    pub origin: Option<&'a str>,
    pub access_control_request_headers: Option<&'a str>,
}

/// A response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// HEAD: headers only.
    pub head_only: bool,
}

const APP_JSON: &str = r#"{"name":"PeerJS Server","description":"A server side element to broker connections between PeerJS clients.","website":"https://peerjs.com/"}"#;

/// The reason phrase of every status the broker sends (RFC 9110 §15).
fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self { status, headers: vec![("Content-Type", content_type.to_string())], body: body.into(), head_only: false }
    }

    /// ws's answer to an upgrade it will not take (wrong path, bad handshake).
    pub fn bad_request() -> Self {
        let mut r = Self::new(400, "text/html", "Bad Request");
        r.headers.push(("Connection", "close".into()));
        r
    }

    /// The bytes on the wire.
    pub fn write_to(&self, out: &mut Vec<u8>, keep_alive: bool) {
        let mut head = String::with_capacity(256);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        if !self.headers.iter().any(|(k, _)| *k == "Connection") {
            head.push_str(if keep_alive { "Connection: keep-alive\r\n" } else { "Connection: close\r\n" });
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Express's `finalhandler` 404 page.
fn not_found(method: &str, target: &str) -> Response {
    let escaped = target
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot {method} {escaped}</pre>\n</body>\n</html>\n"
    );
    let mut r = Response::new(404, "text/html; charset=utf-8", body);
    r.headers.push(("Content-Security-Policy", "default-src 'none'".into()));
    r.headers.push(("X-Content-Type-Options", "nosniff".into()));
    r
}

/// What the `cors` package adds for this origin.
fn cors_headers(broker: &Broker, req: &Request<'_>, out: &mut Vec<(&'static str, String)>) {
    let allowed =
        broker.config().cors.is_empty() || req.origin.is_some_and(|o| broker.config().cors.iter().any(|c| c == o));
    if let Some(origin) = req.origin.filter(|_| allowed) {
        out.push(("Access-Control-Allow-Origin", origin.to_string()));
    }
    out.push(("Vary", "Origin".into()));
}

/// Answers one request.
pub fn handle(broker: &mut Broker, now: Instant, req: &Request<'_>) -> Response {
    let path = req.target.split_once('?').map_or(req.target, |(p, _)| p);
    let method = req.method;
    let get_like = method == "GET" || method == "HEAD";
    if path == "/metrics" && get_like {
        let mut r = Response::new(200, "text/plain; version=0.0.4; charset=utf-8", broker.render_metrics());
        r.head_only = method == "HEAD";
        return r;
    }
    let mount = broker.config().mount();
    let rest = if path.len() + 1 == mount.len() && mount.starts_with(path) && mount != "/" {
        Some("/")
    } else {
        path.strip_prefix(mount.trim_end_matches('/')).filter(|r| r.is_empty() || r.starts_with('/'))
    };
    let Some(rest) = rest.map(|r| if r.is_empty() { "/" } else { r }) else {
        return not_found(method, req.target);
    };
    let mut headers = Vec::new();
    cors_headers(broker, req, &mut headers);
    if method == "OPTIONS" {
        let mut r = Response { status: 204, headers, body: Vec::new(), head_only: false };
        r.headers.push(("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE".into()));
        if let Some(h) = req.access_control_request_headers {
            r.headers.push(("Access-Control-Allow-Headers", h.to_string()));
            r.headers.push(("Vary", "Access-Control-Request-Headers".into()));
        }
        return r;
    }
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let mut r = match (get_like, segments.as_slice()) {
        (true, [""]) => Response::new(200, "application/json; charset=utf-8", APP_JSON),
        (true, [_key, last]) if last.eq_ignore_ascii_case("id") => match broker.generate_id(now) {
            Some(id) => Response::new(200, "text/html; charset=utf-8", id),
            None => Response::new(503, "text/plain; charset=utf-8", "Too many unclaimed IDs; try again shortly"),
        },
        (true, [_key, last]) if last.eq_ignore_ascii_case("peers") => match broker.peer_ids() {
            Some(ids) => Response::new(
                200,
                "application/json; charset=utf-8",
                serde_json::to_string(&ids).expect("strings serialize"),
            ),
            None => Response::new(401, "text/plain; charset=utf-8", "Unauthorized"),
        },
        _ => {
            // The cors middleware ran before the router fell through to Express's 404.
            let mut r = not_found(method, req.target);
            headers.append(&mut r.headers);
            r.headers = headers;
            return r;
        }
    };
    r.head_only = method == "HEAD";
    headers.append(&mut r.headers);
    r.headers = headers;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn req<'a>(method: &'a str, target: &'a str, origin: Option<&'a str>) -> Request<'a> {
        Request { method, target, origin, access_control_request_headers: None }
    }

    fn header<'r>(r: &'r Response, k: &str) -> Option<&'r str> {
        r.headers.iter().find(|(h, _)| *h == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn reference_routes() {
        let now = Instant::now();
        let mut b = Broker::new(Config::default(), now, 1);
        let r = handle(&mut b, now, &req("GET", "/", None));
        assert_eq!((r.status, r.body.as_slice()), (200, APP_JSON.as_bytes()));
        let r = handle(&mut b, now, &req("GET", "/wrongkey/id?ts=1&version=1.5.5", None));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 36);
        assert_eq!(header(&r, "Content-Type"), Some("text/html; charset=utf-8"));
        let r = handle(&mut b, now, &req("GET", "/peerjs/peers", None));
        assert_eq!((r.status, r.body.as_slice()), (401, b"Unauthorized".as_slice()));
        let r = handle(&mut b, now, &req("GET", "/x", None));
        assert_eq!(r.status, 404);
        assert!(String::from_utf8(r.body).unwrap().contains("<pre>Cannot GET /x</pre>"));
        let r = handle(&mut b, now, &req("GET", "/peerjs", None));
        assert_eq!(r.status, 404, "a plain GET of the WebSocket path is Express's 404");
    }

    #[test]
    fn cors_reflects_the_origin_and_answers_preflight() {
        let now = Instant::now();
        let mut b = Broker::new(Config::default(), now, 1);
        let r = handle(&mut b, now, &req("GET", "/", Some("http://a.example")));
        assert_eq!(header(&r, "Access-Control-Allow-Origin"), Some("http://a.example"));
        assert_eq!(header(&r, "Vary"), Some("Origin"));
        let pre = Request {
            method: "OPTIONS",
            target: "/peerjs/id",
            origin: Some("http://a.example"),
            access_control_request_headers: Some("x-y"),
        };
        let r = handle(&mut b, now, &pre);
        assert_eq!(r.status, 204);
        assert_eq!(header(&r, "Access-Control-Allow-Methods"), Some("GET,HEAD,PUT,PATCH,POST,DELETE"));
        assert_eq!(header(&r, "Access-Control-Allow-Headers"), Some("x-y"));
        let cfg = Config { cors: vec!["http://ok.example".into()], ..Config::default() };
        let mut b = Broker::new(cfg, now, 1);
        assert_eq!(
            header(&handle(&mut b, now, &req("GET", "/", Some("http://evil.example"))), "Access-Control-Allow-Origin"),
            None
        );
        assert!(
            header(&handle(&mut b, now, &req("GET", "/", Some("http://ok.example"))), "Access-Control-Allow-Origin")
                .is_some()
        );
    }

    #[test]
    fn mount_path_and_discovery() {
        let now = Instant::now();
        let cfg = Config { path: "/myapp".into(), allow_discovery: true, ..Config::default() };
        let mut b = Broker::new(cfg, now, 1);
        assert_eq!(handle(&mut b, now, &req("GET", "/myapp/sekret/id", None)).status, 200);
        assert_eq!(handle(&mut b, now, &req("GET", "/myapp/anything/id", None)).status, 200);
        assert_eq!(handle(&mut b, now, &req("GET", "/myapp", None)).status, 200);
        assert_eq!(handle(&mut b, now, &req("GET", "/peerjs/id", None)).status, 404);
        let r = handle(&mut b, now, &req("GET", "/myapp/k/peers", None));
        assert_eq!((r.status, r.body.as_slice()), (200, b"[]".as_slice()));
        assert_eq!(b.config().ws_path(), "/myapp/peerjs");
    }

    #[test]
    fn metrics_endpoint() {
        let now = Instant::now();
        let mut b = Broker::new(Config::default(), now, 1);
        let r = handle(&mut b, now, &req("GET", "/metrics", None));
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.contains("peerstorm_broker_connected_peers 0"));
        assert!(text.contains("# TYPE peerstorm_broker_frames_relayed_total counter"));
    }
}
