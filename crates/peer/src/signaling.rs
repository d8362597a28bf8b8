//! The PeerJS signaling client of a virtual peer, sans-IO, behaving like `peerjs@1.5.5`
//! (protocol.md §5): it joins with `key`, `id`, `token` and `version=1.5.5`, sends HEARTBEAT every
//! `heartbeat` from the moment the socket opens, waits for OPEN before sending anything else,
//! and turns the broker's frames into events.

use peerstorm_model::peerjs::payload::{AnswerPayload, CandidatePayload, ErrorPayload, OfferPayload};
use peerstorm_model::peerjs::{Frame, FrameError, MessageType};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the broker told this client.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalEvent {
    Open,
    Offer {
        src: String,
        payload: OfferPayload,
    },
    Answer {
        src: String,
        payload: AnswerPayload,
    },
    Candidate {
        src: String,
        payload: CandidatePayload,
    },
    /// The destination `src` could not be reached (the broker's EXPIRE).
    Expire {
        src: String,
    },
    Leave {
        src: String,
    },
    IdTaken,
    Error(String),
    /// A frame the client has no use for (or one it could not read), counted, not fatal.
    Ignored(String),
}

/// One peer's signaling session.
#[derive(Debug)]
pub struct SignalingClient {
    pub id: String,
    pub token: String,
    heartbeat: Duration,
    next_heartbeat: Option<Instant>,
    open: bool,
    out: VecDeque<String>,
    pub sent_frames: u64,
    pub received_frames: u64,
}

impl SignalingClient {
    pub fn new(id: &str, token: &str, heartbeat: Duration) -> Self {
        Self {
            id: id.into(),
            token: token.into(),
            heartbeat,
            next_heartbeat: None,
            open: false,
            out: VecDeque::new(),
            sent_frames: 0,
            received_frames: 0,
        }
    }

    /// The WebSocket query as the PeerJS client builds it.
    pub fn query(&self, key: &str) -> String {
        format!("key={key}&id={}&token={}&version=1.5.5", self.id, self.token)
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The WebSocket is connected: heartbeats start now.
    pub fn handle_connected(&mut self, now: Instant) {
        self.next_heartbeat = Some(now + self.heartbeat);
    }

    /// A text frame from the broker.
    pub fn handle_frame(&mut self, text: &str) -> SignalEvent {
        self.received_frames += 1;
        let f = match Frame::parse(text) {
            Ok(f) => f,
            Err(e) => return SignalEvent::Ignored(format!("unreadable frame: {e}")),
        };
        let src = f.src.clone().unwrap_or_default();
        let payload_error = |e: FrameError| SignalEvent::Ignored(e.to_string());
        match f.kind {
            Some(MessageType::Open) => {
                self.open = true;
                SignalEvent::Open
            }
            Some(MessageType::Offer) => {
                f.payload_as().map(|payload| SignalEvent::Offer { src, payload }).unwrap_or_else(payload_error)
            }
            Some(MessageType::Answer) => {
                f.payload_as().map(|payload| SignalEvent::Answer { src, payload }).unwrap_or_else(payload_error)
            }
            Some(MessageType::Candidate) => {
                f.payload_as().map(|payload| SignalEvent::Candidate { src, payload }).unwrap_or_else(payload_error)
            }
            Some(MessageType::Expire) => SignalEvent::Expire { src },
            Some(MessageType::Leave) => SignalEvent::Leave { src },
            Some(MessageType::IdTaken) => SignalEvent::IdTaken,
            Some(MessageType::Error) => {
                SignalEvent::Error(f.payload_as::<ErrorPayload>().map(|p| p.msg).unwrap_or_default())
            }
            other => SignalEvent::Ignored(format!("unexpected frame type {other:?}")),
        }
    }

    fn push(&mut self, f: Frame) {
        self.sent_frames += 1;
        self.out.push_back(f.to_server_json());
    }

    pub fn send_offer(&mut self, dst: &str, p: &OfferPayload) {
        self.push(Frame::to_peer(MessageType::Offer, dst, p));
    }

    pub fn send_answer(&mut self, dst: &str, p: &AnswerPayload) {
        self.push(Frame::to_peer(MessageType::Answer, dst, p));
    }

    pub fn send_candidate(&mut self, dst: &str, p: &CandidatePayload) {
        self.push(Frame::to_peer(MessageType::Candidate, dst, p));
    }

    /// The next frame to send on the WebSocket.
    pub fn poll_frame(&mut self) -> Option<String> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_heartbeat
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.next_heartbeat
            && now >= at
        {
            self.push(Frame::heartbeat());
            self.next_heartbeat = Some(at + self.heartbeat);
        }
    }
}
