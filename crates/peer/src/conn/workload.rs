//! The echo workload: the offerer sends its messages one at a time in the connection's
//! serialization, each after the previous echo; the answerer echoes what it gets.

use super::*;

impl Connection {
    /// The message the offerer sends, `message_bytes` long in its serialization's own terms.
    pub(super) fn workload_message(&self) -> Message {
        let n = self.cfg.workload.message_bytes;
        match self.serialization {
            Serialization::Json => Message::Json(serde_json::Value::String("Z".repeat(n))),
            Serialization::Raw => Message::Raw(vec![0x5a; n]),
            _ => Message::Packed(Value::Bin(vec![0x5a; n])),
        }
    }

    pub(super) fn on_message(&mut self, now: Instant, data: &[u8]) {
        if self.call.is_some() {
            return; // a call's channel carries nothing peerstorm sends
        }
        self.bytes_moved += data.len() as u64;
        let Some(codec) = self.codec.as_mut() else { return };
        // One message may complete several values (MsgPack is a byte stream).
        let mut next = codec.decode(data);
        while let Ok(Some(r)) = next {
            if let Received::Data(m) = r {
                self.on_value(now, &m);
            }
            let Some(codec) = self.codec.as_mut() else { return };
            next = codec.next_buffered();
        }
    }

    pub(super) fn on_value(&mut self, now: Instant, m: &Message) {
        if self.offerer {
            self.echoed += 1;
            self.mark(Milestone::FirstEcho, now);
            self.check_workload_done(now);
        } else {
            // The answerer echoes what it gets, as the interop tests' PeerJS pages do.
            self.send(now, m);
        }
    }

    pub(super) fn send(&mut self, now: Instant, m: &Message) {
        let (Some(id), Some(pc), Some(codec)) = (self.dc, self.pc.as_mut(), self.codec.as_mut()) else { return };
        let Ok(msgs) = codec.encode(m) else { return };
        if let Some(mut dc) = pc.data_channel(id) {
            for m in msgs {
                self.bytes_moved += m.len() as u64;
                let _ = dc.send(now, BytesMut::from(&m[..]));
            }
        }
    }

    /// Whether the offerer has sent all it will: its count, or its duration since the channel
    /// opened.
    pub(super) fn workload_sent(&self, now: Instant) -> bool {
        match (self.cfg.workload.duration, self.dc_open_at) {
            (Some(d), Some(open)) => now.saturating_duration_since(open) >= d,
            (Some(_), None) => false,
            (None, _) => self.sent >= self.cfg.workload.messages,
        }
    }

    pub(super) fn check_workload_done(&mut self, now: Instant) {
        // A call's channel only carries PeerJS's close signal; its work is the media.
        if self.call.is_some() {
            return;
        }
        if self.offerer && self.dc.is_some() && self.echoed >= self.sent && self.workload_sent(now) {
            self.mark(Milestone::WorkloadDone, now);
        }
    }

    /// The offerer sends its messages one at a time, each after the previous echo.
    pub(super) fn pump_workload(&mut self, now: Instant) -> bool {
        if self.call.is_some()
            || !self.offerer
            || self.dc.is_none()
            || self.sent > self.echoed
            || self.workload_sent(now)
        {
            return false;
        }
        self.sent += 1;
        let m = self.workload_message();
        self.send(now, &m);
        true
    }
}
