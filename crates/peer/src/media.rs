//! Synthetic media for a PeerJS `MediaConnection`, sans-IO: what a call sends (Opus-shaped audio
//! packets, VP8-shaped video frames packetized as RFC 7741 says) and what its receiving side
//! measures from RTP headers alone (first packet, first complete keyframe, bitrate, loss, RFC
//! 3550 jitter, freezes), so it measures a browser's streams as well as a virtual peer's.
//!
//! Sizes follow libwebrtc (`../shared/research/media-turn-production.md` §1): Opus 20 ms frames,
//! 50 packets a second; video RTP packets at most 1,200 bytes. Every packet's payload ends with
//! a 28-byte mark (stream index, frame, send time) that a virtual receiver reads for one-way
//! delay on a shared clock; a VP8 frame starts with a real (tiny) VP8 frame, so a browser can
//! decode it: the decoder stops when the picture is done and never reads the padding after it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Opus's RTP clock (RFC 7587) and VP8's (RFC 7741).
pub const AUDIO_CLOCK: u32 = 48_000;
pub const VIDEO_CLOCK: u32 = 90_000;
/// The largest RTP packet sent (header and payload), libwebrtc's `kVideoMtu`... as 1,200 bytes.
pub const MAX_RTP_PACKET: usize = 1200;
const RTP_HEADER: usize = 12;
/// The VP8 payload descriptor sent: one byte (no extension fields).
const VP8_DESCRIPTOR: usize = 1;
/// Audio frame length (Opus in libwebrtc: 20 ms).
pub const AUDIO_PTIME: Duration = Duration::from_millis(20);
const MARK_MAGIC: [u8; 4] = *b"PSM1";
pub const MARK_LEN: usize = 28;

/// A 16×16 VP8 key frame and inter frame (grey, every macroblock skipped), made once with
/// `vpxenc` 1.12 from a raw 16×16 grey clip (see `media/README.md`): what a real decoder needs at
/// the start of a frame. Bytes after them are padding the decoder never reads.
const VP8_KEY: &[u8] = include_bytes!("media/key.vp8");
const VP8_DELTA: &[u8] = include_bytes!("media/delta.vp8");

/// What one side of a call sends (PeerJS's `call(id, stream)` / `call.answer(stream)`).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaWorkload {
    pub audio: Option<AudioSpec>,
    pub video: Option<VideoSpec>,
    /// How long each side sends once the call is connected.
    pub duration: Duration,
    /// A DataConnection between the same two peers alongside the call.
    pub with_data: bool,
    /// A clock both ends share (the simulator's; a live run's peers in one process): the mark's
    /// send time counts from it, and one-way delay is measured. `None`: not measured.
    pub epoch: Option<Instant>,
    /// PeerJS's `metadata` a call carries in its OFFER (`peer.call(id, stream, { metadata })`).
    pub metadata: Option<serde_json::Value>,
}

impl Default for MediaWorkload {
    fn default() -> Self {
        Self {
            audio: Some(AudioSpec::default()),
            video: Some(VideoSpec::default()),
            duration: Duration::from_secs(10),
            with_data: false,
            epoch: None,
            metadata: None,
        }
    }
}

/// Opus-shaped audio: one packet every 20 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpec {
    /// The Opus payload's size (80 bytes is 32 kbit/s, libwebrtc's default rate).
    pub payload_bytes: usize,
}

impl Default for AudioSpec {
    fn default() -> Self {
        Self { payload_bytes: 80 }
    }
}

/// VP8-shaped video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSpec {
    pub bitrate_kbps: u32,
    pub fps: u32,
    /// A key frame every this many frames (and on PLI).
    pub keyframe_interval: u32,
    /// A key frame's size as a multiple of a delta frame's.
    pub keyframe_ratio: u32,
}

impl Default for VideoSpec {
    fn default() -> Self {
        Self { bitrate_kbps: 1500, fps: 30, keyframe_interval: 120, keyframe_ratio: 5 }
    }
}

impl VideoSpec {
    /// Frame sizes (key, delta) in bytes that average to the bitrate over a keyframe interval.
    pub fn frame_bytes(&self) -> (usize, usize) {
        let per_frame = f64::from(self.bitrate_kbps) * 1000.0 / 8.0 / f64::from(self.fps.max(1));
        let n = f64::from(self.keyframe_interval.max(1));
        let r = f64::from(self.keyframe_ratio.max(1));
        let delta = per_frame * n / (n - 1.0 + r);
        ((delta * r).round() as usize, delta.round() as usize)
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    pub fn clock(self) -> u32 {
        match self {
            Kind::Audio => AUDIO_CLOCK,
            Kind::Video => VIDEO_CLOCK,
        }
    }
}

/// One RTP packet a [`Source`] made; the connection adds the SSRC and payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// What a source sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendStats {
    pub packets: u64,
    pub payload_bytes: u64,
    pub frames: u64,
    pub keyframes: u64,
    /// PLIs received, and key frames sent because of one.
    pub plis: u64,
}

/// One synthetic stream's sender.
#[derive(Debug, Clone)]
pub struct Source {
    kind: Kind,
    audio: AudioSpec,
    video: VideoSpec,
    start: Instant,
    end: Instant,
    next: Instant,
    frame: u32,
    index: u32,
    seq: u16,
    ts_base: u32,
    epoch: Option<Instant>,
    keyframe_asked: bool,
    pub stats: SendStats,
}

impl Source {
    /// A stream that starts sending at `now` for `w.duration`; `seed` picks its first sequence
    /// number and timestamp (RFC 3550 §5.1 wants them random).
    pub fn new(kind: Kind, w: &MediaWorkload, now: Instant, seed: u64) -> Self {
        Self {
            kind,
            audio: w.audio.unwrap_or_default(),
            video: w.video.unwrap_or_default(),
            start: now,
            end: now + w.duration,
            next: now,
            frame: 0,
            index: 0,
            seq: (seed >> 16) as u16,
            ts_base: (seed >> 32) as u32,
            epoch: w.epoch,
            keyframe_asked: false,
            stats: SendStats::default(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// When the next frame is due; `None` once the stream has sent for its duration.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.next < self.end).then_some(self.next)
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.end
    }

    /// A PLI: the next frame is a key frame.
    pub fn on_pli(&mut self) {
        self.stats.plis += 1;
        self.keyframe_asked = true;
    }

    /// Every frame due at `now`, packetized.
    pub fn poll(&mut self, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        while self.next <= now && self.next < self.end {
            let at = self.next;
            self.frame_packets(at, now, &mut out);
            self.frame += 1;
            // Whole seconds times frames over the rate: exact, so 30 fps sends 300 frames in
            // 10 s (33.333333 ms steps would fit a 301st in).
            self.next = self.start
                + match self.kind {
                    Kind::Audio => AUDIO_PTIME * self.frame,
                    Kind::Video => Duration::from_secs(u64::from(self.frame)) / self.video.fps.max(1),
                };
        }
        out
    }

    fn frame_packets(&mut self, at: Instant, now: Instant, out: &mut Vec<Packet>) {
        let elapsed = at.saturating_duration_since(self.start);
        let ticks = (elapsed.as_micros() * u128::from(self.kind.clock()) / 1_000_000) as u32;
        let timestamp = self.ts_base.wrapping_add(ticks);
        let send_us = self.epoch.map_or(0, |e| now.saturating_duration_since(e).as_micros() as u64);
        self.stats.frames += 1;
        match self.kind {
            Kind::Audio => {
                // An Opus TOC byte (config 31: CELT full band, 20 ms, one frame), then the frame.
                let len = self.audio.payload_bytes.max(MARK_LEN + 1);
                let mut p = vec![0u8; len];
                p[0] = 0xF8;
                self.mark(&mut p, false, 0, 1, send_us);
                self.push(out, timestamp, true, p);
            }
            Kind::Video => {
                let key = self.frame % self.video.keyframe_interval.max(1) == 0 || self.keyframe_asked;
                self.keyframe_asked = false;
                if key {
                    self.stats.keyframes += 1;
                }
                let (key_bytes, delta_bytes) = self.video.frame_bytes();
                let head = if key { VP8_KEY } else { VP8_DELTA };
                let size = if key { key_bytes } else { delta_bytes }.max(head.len() + MARK_LEN);
                let chunk = MAX_RTP_PACKET - RTP_HEADER - VP8_DESCRIPTOR;
                // Parts of equal size (libwebrtc balances them too), each with room for a mark.
                let parts = size.div_ceil(chunk - MARK_LEN).max(1);
                let base = size / parts;
                for part in 0..parts {
                    let len = if part + 1 == parts { size - base * (parts - 1) } else { base };
                    let mut p = vec![0u8; VP8_DESCRIPTOR + len.max(MARK_LEN)];
                    // RFC 7741 §4.2: S (start of partition) on the first packet, partition 0.
                    p[0] = if part == 0 { 0x10 } else { 0x00 };
                    if part == 0 {
                        p[1..1 + head.len()].copy_from_slice(head);
                    }
                    self.mark(&mut p, key, part as u16, parts as u16, send_us);
                    self.push(out, timestamp, part + 1 == parts, p);
                }
            }
        }
    }

    fn mark(&self, p: &mut [u8], key: bool, part: u16, parts: u16, send_us: u64) {
        let n = p.len();
        let m = &mut p[n - MARK_LEN..];
        m[0..4].copy_from_slice(&MARK_MAGIC);
        m[4..8].copy_from_slice(&self.index.to_be_bytes());
        m[8..12].copy_from_slice(&self.frame.to_be_bytes());
        m[12..14].copy_from_slice(&part.to_be_bytes());
        m[14..16].copy_from_slice(&parts.to_be_bytes());
        m[16] = u8::from(key);
        m[20..28].copy_from_slice(&send_us.to_be_bytes());
    }

    fn push(&mut self, out: &mut Vec<Packet>, timestamp: u32, marker: bool, payload: Vec<u8>) {
        self.stats.packets += 1;
        self.stats.payload_bytes += payload.len() as u64;
        out.push(Packet { sequence_number: self.seq, timestamp, marker, payload });
        self.seq = self.seq.wrapping_add(1);
        self.index = self.index.wrapping_add(1);
    }
}

/// A peerstorm mark at the end of a payload: (stream index, frame, send time in µs from the
/// shared epoch).
pub fn read_mark(payload: &[u8]) -> Option<(u32, u32, u64)> {
    let m = payload.get(payload.len().checked_sub(MARK_LEN)?..)?;
    if m[0..4] != MARK_MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([m[i], m[i + 1], m[i + 2], m[i + 3]]);
    let mut t = [0u8; 8];
    t.copy_from_slice(&m[20..28]);
    Some((u32_at(4), u32_at(8), u64::from_be_bytes(t)))
}

/// A VP8 RTP payload's descriptor length and whether the packet starts a key frame
/// (RFC 7741 §4.2–4.3); `None` if the descriptor is cut short.
pub fn vp8_descriptor(payload: &[u8]) -> Option<(usize, bool, bool)> {
    let b0 = *payload.first()?;
    let mut len = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(1)?;
        len = 2;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            len += if payload.get(len)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            len += 1;
        }
        if x & 0x30 != 0 {
            len += 1;
        }
    }
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let key = start && payload.get(len).is_some_and(|h| h & 0x01 == 0);
    (len <= payload.len()).then_some((len, start, key))
}

/// What one received stream measured. Times are from the connection's peer's start.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamStats {
    pub kind: Option<Kind>,
    #[serde(serialize_with = "crate::milestones::ms_opt", deserialize_with = "crate::milestones::ms_opt_de", default)]
    pub first_packet: Option<Duration>,
    /// The first complete key frame (video), the first packet (audio).
    #[serde(serialize_with = "crate::milestones::ms_opt", deserialize_with = "crate::milestones::ms_opt_de", default)]
    pub first_frame: Option<Duration>,
    #[serde(serialize_with = "crate::milestones::ms_opt", deserialize_with = "crate::milestones::ms_opt_de", default)]
    pub last_packet: Option<Duration>,
    /// Distinct RTP packets received (duplicates, such as NACK retransmissions of packets that
    /// had arrived, are not counted twice).
    pub packets: u64,
    /// Packets the sequence numbers said were sent, from the first to the highest received.
    pub expected: u64,
    /// Media bytes received: RTP payloads without the VP8 descriptor.
    pub bytes: u64,
    /// RFC 3550 §6.4.1 interarrival jitter at the end, ms.
    pub jitter_ms: f64,
    pub frames: u64,
    pub keyframes: u64,
    /// Gaps of more than two frame intervals between complete frames (video), and their total.
    pub freezes: u64,
    pub freeze_ms: f64,
    /// One-way delay from the marks (shared clock only): mean and largest, ms.
    pub delay_mean_ms: Option<f64>,
    pub delay_max_ms: Option<f64>,
    /// PLIs this side sent.
    pub plis_sent: u64,
}

impl StreamStats {
    /// Packets lost, as a fraction of those expected.
    pub fn loss(&self) -> f64 {
        if self.expected == 0 { 0.0 } else { self.expected.saturating_sub(self.packets) as f64 / self.expected as f64 }
    }

    /// Media bit rate from the first packet to the last, bit/s.
    pub fn bitrate(&self) -> Option<f64> {
        let (a, b) = (self.first_packet?, self.last_packet?);
        let span = b.checked_sub(a)?.as_secs_f64();
        (span > 0.0).then(|| self.bytes as f64 * 8.0 / span)
    }
}

/// A video frame being put together from its packets.
#[derive(Debug, Clone, Default)]
struct Assembly {
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    received: u64,
    key: bool,
    started: Option<Instant>,
}

/// One received stream: counts from RTP headers (and the VP8 descriptor).
#[derive(Debug, Clone)]
pub struct Receiver {
    kind: Kind,
    start: Instant,
    epoch: Option<Instant>,
    /// Highest extended sequence number, and the first.
    first_seq: Option<u64>,
    highest: u64,
    /// Which extended sequence numbers (from the first) arrived.
    seen: Vec<u64>,
    last_transit: Option<f64>,
    jitter: f64,
    frames: BTreeMap<u32, Assembly>,
    last_frame: Option<(Instant, u32)>,
    delay_sum: f64,
    delay_n: u64,
    pli_at: Option<Instant>,
    /// A frame is missing packets: until a key frame completes, nothing decodes.
    broken: bool,
    pub stats: StreamStats,
}

/// How long a receiver waits for a frame's missing packets (NACK's chance) before asking for a
/// key frame, and the least time between two PLIs.
const PLI_AFTER: Duration = Duration::from_millis(200);
const PLI_SPACING: Duration = Duration::from_millis(500);

impl Receiver {
    pub fn new(kind: Kind, start: Instant, epoch: Option<Instant>) -> Self {
        Self {
            kind,
            start,
            epoch,
            first_seq: None,
            highest: 0,
            seen: Vec::new(),
            last_transit: None,
            jitter: 0.0,
            frames: BTreeMap::new(),
            last_frame: None,
            delay_sum: 0.0,
            delay_n: 0,
            pli_at: None,
            broken: false,
            stats: StreamStats { kind: Some(kind), ..StreamStats::default() },
        }
    }

    fn since_start(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// The extended sequence number of `seq`, next to the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let Some(_) = self.first_seq else { return u64::from(seq) + (1 << 16) };
        let cycle = self.highest & !0xFFFF;
        let candidates = [cycle.wrapping_sub(1 << 16), cycle, cycle + (1 << 16)];
        candidates
            .into_iter()
            .map(|c| c.wrapping_add(u64::from(seq)))
            .min_by_key(|e| e.abs_diff(self.highest))
            .unwrap_or(u64::from(seq))
    }

    /// One RTP packet. Returns whether a PLI should go out now.
    pub fn on_rtp(&mut self, now: Instant, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> bool {
        let ext = self.extend(seq);
        let first = *self.first_seq.get_or_insert(ext);
        if ext < first {
            // Older than the first packet seen: counts as a late arrival only.
            return false;
        }
        let offset = (ext - first) as usize;
        if offset > 1 << 24 {
            return false; // a jump no real stream makes; ignored rather than allocated for
        }
        let (word, bit) = (offset / 64, offset % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            return false; // a duplicate
        }
        self.seen[word] |= 1 << bit;
        // Jitter from packets in order only: a late arrival (a NACK's retransmission of a lost
        // packet, on the same SSRC here) is not network jitter; libwebrtc leaves RTX out too.
        let in_order = self.stats.packets == 0 || ext > self.highest;
        self.highest = self.highest.max(ext);
        let t = self.since_start(now);
        self.stats.first_packet.get_or_insert(t);
        self.stats.last_packet = Some(t);
        self.stats.packets += 1;
        self.stats.expected = self.highest - first + 1;
        // RFC 3550 §6.4.1 / A.8: transit in timestamp units.
        let clock = f64::from(self.kind.clock());
        let arrival = now.saturating_duration_since(self.start).as_secs_f64() * clock;
        let transit = arrival - f64::from(timestamp);
        if in_order {
            if let Some(prev) = self.last_transit {
                let mut d = transit - prev;
                // A timestamp wrap moves transit by 2^32.
                if d.abs() > 2f64.powi(31) {
                    d -= d.signum() * 2f64.powi(32);
                }
                self.jitter += (d.abs() - self.jitter) / 16.0;
                self.stats.jitter_ms = self.jitter / clock * 1000.0;
            }
            self.last_transit = Some(transit);
        }
        if let (Some(epoch), Some((_, _, sent_us))) = (self.epoch, read_mark(payload)) {
            let d = now.saturating_duration_since(epoch).as_micros() as f64 - sent_us as f64;
            let ms = d.max(0.0) / 1000.0;
            self.delay_sum += ms;
            self.delay_n += 1;
            self.stats.delay_mean_ms = Some(self.delay_sum / self.delay_n as f64);
            self.stats.delay_max_ms = Some(self.stats.delay_max_ms.map_or(ms, |m| m.max(ms)));
        }
        match self.kind {
            Kind::Audio => {
                self.stats.bytes += payload.len() as u64;
                self.stats.frames += 1;
                self.stats.first_frame.get_or_insert(t);
                false
            }
            Kind::Video => self.on_video(now, ext, timestamp, marker, payload),
        }
    }

    fn on_video(&mut self, now: Instant, ext: u64, timestamp: u32, marker: bool, payload: &[u8]) -> bool {
        let Some((desc, start, key)) = vp8_descriptor(payload) else { return false };
        self.stats.bytes += (payload.len() - desc) as u64;
        let a = self.frames.entry(timestamp).or_default();
        a.started.get_or_insert(now);
        a.received += 1;
        if start {
            a.first_seq = Some(ext);
            a.key = key;
        }
        if marker {
            a.last_seq = Some(ext);
        }
        if let (Some(f), Some(l)) = (a.first_seq, a.last_seq)
            && l >= f
            && a.received == l - f + 1
        {
            let key = a.key;
            self.frames.remove(&timestamp);
            self.on_frame(now, timestamp, key);
        }
        // Frames older than the newest complete one that are still missing packets.
        let stale =
            self.frames.iter().any(|(_, a)| a.started.is_some_and(|s| now.saturating_duration_since(s) > PLI_AFTER));
        if stale {
            self.broken = true;
            self.frames.retain(|_, a| a.started.is_some_and(|s| now.saturating_duration_since(s) <= PLI_AFTER));
        }
        // Bounded: a sender that never completes a frame cannot grow this.
        while self.frames.len() > 64 {
            self.frames.pop_first();
        }
        if self.broken && self.pli_at.is_none_or(|t| now.saturating_duration_since(t) >= PLI_SPACING) {
            self.pli_at = Some(now);
            self.stats.plis_sent += 1;
            return true;
        }
        false
    }

    fn on_frame(&mut self, now: Instant, timestamp: u32, key: bool) {
        if key {
            self.broken = false;
            self.stats.keyframes += 1;
            self.stats.first_frame.get_or_insert(self.since_start(now));
        }
        if self.broken || self.stats.first_frame.is_none() {
            return; // not decodable: it refers to a frame that never arrived whole
        }
        self.stats.frames += 1;
        if let Some((at, ts)) = self.last_frame {
            let interval = f64::from(timestamp.wrapping_sub(ts)) / f64::from(VIDEO_CLOCK);
            let gap = now.saturating_duration_since(at).as_secs_f64();
            if interval > 0.0 && interval < 10.0 && gap > 2.0 * interval {
                self.stats.freezes += 1;
                self.stats.freeze_ms += (gap - interval) * 1000.0;
            }
        }
        self.last_frame = Some((now, timestamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bitrate_kbps: u32) -> MediaWorkload {
        MediaWorkload {
            audio: None,
            video: Some(VideoSpec { bitrate_kbps, fps: 30, keyframe_interval: 30, keyframe_ratio: 4 }),
            duration: Duration::from_secs(10),
            with_data: false,
            epoch: None,
            metadata: None,
        }
    }

    #[test]
    fn video_frames_average_to_the_bitrate_in_packets_of_at_most_1200_bytes() {
        let t0 = Instant::now();
        let mut s = Source::new(Kind::Video, &video(1500), t0, 7);
        let mut packets = Vec::new();
        let mut t = t0;
        while let Some(next) = s.poll_timeout() {
            t = t.max(next);
            packets.extend(s.poll(t));
        }
        assert_eq!(s.stats.frames, 300);
        assert_eq!(s.stats.keyframes, 10);
        assert!(packets.iter().all(|p| p.payload.len() + RTP_HEADER <= MAX_RTP_PACKET));
        let media: usize = packets.iter().map(|p| p.payload.len() - VP8_DESCRIPTOR).sum();
        let kbps = media as f64 * 8.0 / 10.0 / 1000.0;
        assert!((kbps - 1500.0).abs() / 1500.0 < 0.01, "{kbps} kbit/s");
        // Key frames are four times a delta frame, and each frame ends on a marked packet.
        let (key, delta) =
            VideoSpec { bitrate_kbps: 1500, fps: 30, keyframe_interval: 30, keyframe_ratio: 4 }.frame_bytes();
        assert!((key as f64 / delta as f64 - 4.0).abs() < 0.01);
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 300);
        assert_eq!(vp8_descriptor(&packets[0].payload), Some((1, true, true)));
    }

    #[test]
    fn a_receiver_counts_loss_jitter_and_a_complete_key_frame() {
        let t0 = Instant::now();
        let w = MediaWorkload { epoch: Some(t0), ..video(800) };
        let mut s = Source::new(Kind::Video, &w, t0, 0xFFFF_0000_FFF0_0000);
        let mut r = Receiver::new(Kind::Video, t0, Some(t0));
        let mut sent = 0u64;
        let mut t = t0;
        let delay = Duration::from_millis(40);
        while let Some(next) = s.poll_timeout() {
            t = t.max(next);
            for p in s.poll(t) {
                sent += 1;
                // Every 50th packet lost, but none of the first key frame's.
                if sent > 10 && sent % 50 == 0 {
                    continue;
                }
                r.on_rtp(t + delay, p.sequence_number, p.timestamp, p.marker, &p.payload);
            }
        }
        let st = &r.stats;
        assert_eq!(st.first_frame, Some(delay), "the first key frame completes when its last packet arrives");
        assert!(st.expected >= sent - 1 && st.expected <= sent, "{} of {sent}", st.expected);
        assert_eq!(st.expected - st.packets, sent / 50);
        assert!(st.jitter_ms < 0.01, "a constant delay has no jitter: {}", st.jitter_ms);
        assert!((st.delay_mean_ms.unwrap() - 40.0).abs() < 0.01);
        assert!(st.plis_sent > 0, "lost packets break frames: the receiver asks for a key frame");
    }

    #[test]
    fn a_pli_makes_the_next_frame_a_key_frame() {
        let t0 = Instant::now();
        let mut s = Source::new(Kind::Video, &video(500), t0, 1);
        let first = s.poll(t0);
        assert_eq!(vp8_descriptor(&first[0].payload).map(|d| d.2), Some(true));
        let second = s.poll(t0 + Duration::from_millis(34));
        assert_eq!(vp8_descriptor(&second[0].payload).map(|d| d.2), Some(false));
        s.on_pli();
        let third = s.poll(t0 + Duration::from_millis(67));
        assert_eq!(vp8_descriptor(&third[0].payload).map(|d| d.2), Some(true));
        assert_eq!((s.stats.keyframes, s.stats.plis), (2, 1));
    }

    #[test]
    fn sequence_numbers_wrap_and_duplicates_count_once() {
        let t0 = Instant::now();
        let mut r = Receiver::new(Kind::Audio, t0, None);
        for (i, seq) in [65534u16, 65535, 0, 1, 1, 3].into_iter().enumerate() {
            r.on_rtp(t0 + Duration::from_millis(20 * i as u64), seq, 960 * i as u32, true, &[0xF8; 40]);
        }
        assert_eq!((r.stats.packets, r.stats.expected), (5, 6));
        assert!((r.stats.loss() - 1.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn foreign_and_short_payloads_never_panic() {
        let t0 = Instant::now();
        let mut r = Receiver::new(Kind::Video, t0, Some(t0));
        for p in [&[][..], &[0x80], &[0x90, 0x80], &[0x90, 0x80, 0x80], &[0x10]] {
            r.on_rtp(t0, 1, 0, true, p);
        }
        assert_eq!(read_mark(&[1, 2, 3]), None);
    }
}
