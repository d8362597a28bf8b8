//! Batched UDP: `recvmmsg(2)` reads every datagram waiting on a socket (up to a batch) in one
//! system call, `sendmmsg(2)` writes a queue of datagrams to many destinations in one. The
//! shell reads client and peer traffic with [`RecvBatch`] and queues what it relays to clients
//! in a [`SendBatch`] per listen socket, flushed once the tasks woken together have run, so a
//! burst of relayed datagrams costs a few system calls instead of two per datagram. Datagrams
//! queued one after another for the same destination, of one size, go as one UDP GSO send
//! (`UDP_SEGMENT`, Linux 4.18): the kernel routes and builds them once and cuts them on the way.

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendmsg};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call at most.
pub(crate) const BATCH: usize = 32;

/// Segments in one GSO send at most (the kernel's UDP_MAX_SEGMENTS is 64), and its bytes.
const GSO_SEGMENTS: usize = 64;
const GSO_BYTES: usize = 65_000;

/// The address as socket2 takes it.
trait IntoSocket2 {
    fn into_socket2(self) -> socket2::SockAddr;
}

impl IntoSocket2 for SockaddrStorage {
    fn into_socket2(self) -> socket2::SockAddr {
        match to_std(&self) {
            Some(a) => a.into(),
            None => SocketAddr::from(([0, 0, 0, 0], 0)).into(),
        }
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// Buffers for one `recvmmsg` call and what it read.
pub(crate) struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    headers: MultiHeaders<SockaddrStorage>,
    /// Per datagram read: its length and sender (`None`: cut short or from an unknown family,
    /// to be skipped).
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl RecvBatch {
    /// `n` buffers of `size` bytes (a datagram longer than `size` is dropped).
    pub(crate) fn new(n: usize, size: usize) -> Self {
        RecvBatch { bufs: vec![vec![0; size]; n], headers: MultiHeaders::preallocate(n, None), got: Vec::new() }
    }

    /// Reads what is waiting on `sock`, up to a batch: how many datagrams (`WouldBlock`: none).
    pub(crate) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        let fd = sock.as_raw_fd();
        let (bufs, headers, got) = (&mut self.bufs, &mut self.headers, &mut self.got);
        got.clear();
        sock.try_io(Interest::READABLE, || {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let results = recvmmsg(fd, headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
            for r in results {
                let whole = !r.flags.contains(MsgFlags::MSG_TRUNC);
                got.push((r.bytes, r.address.as_ref().and_then(to_std).filter(|_| whole)));
            }
            Ok(())
        })?;
        Ok(self.got.len())
    }

    /// Datagram `i` of the last read and its sender, unless it must be skipped.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (n, from) = self.got[i];
        Some((&self.bufs[i][..n], from?))
    }
}

/// Datagrams queued for one socket, sent together.
pub(crate) struct SendBatch {
    data: Vec<u8>,
    msgs: Vec<(std::ops::Range<usize>, SockaddrStorage)>,
    /// `sendmmsg`'s headers (6 KiB), made the first time two datagrams go in one call: a relay
    /// whose allocation sits idle holds none.
    headers: Option<MultiHeaders<SockaddrStorage>>,
    /// GSO sends work here (cleared after the kernel refuses one).
    gso: bool,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch { data: Vec::new(), msgs: Vec::new(), headers: None, gso: true }
    }
}

impl SendBatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Queues `bytes` for `to`.
    pub(crate) fn push(&mut self, to: SocketAddr, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.msgs.push((start..self.data.len(), SockaddrStorage::from(to)));
    }

    /// How many messages from `i` on make one GSO send: the same destination, the same size
    /// (the last may be shorter), contiguous in `data`.
    fn gso_run(&self, i: usize) -> usize {
        let (first, to) = &self.msgs[i];
        let size = first.len();
        let mut n = 1;
        let mut bytes = size;
        while let Some((r, a)) = self.msgs.get(i + n) {
            if a != to || r.len() > size || n == GSO_SEGMENTS || bytes + r.len() > GSO_BYTES {
                break;
            }
            n += 1;
            bytes += r.len();
            if r.len() < size {
                break;
            }
        }
        n
    }

    /// Sends everything queued on `sock`: runs of datagrams for one destination as one GSO send
    /// each, the rest a batch per system call. What the socket cannot take now is dropped, as a
    /// full send buffer drops a single `send_to` (UDP: the sender's retransmission or the
    /// application copes). The calls go to the socket directly, not through tokio's readiness
    /// (nothing here waits for a socket to be writable, and a socket the reactor has not seen
    /// writable yet would refuse without trying).
    pub(crate) fn flush(&mut self, sock: &UdpSocket) {
        let fd = sock.as_raw_fd();
        let mut i = 0;
        let mut singles = 0;
        while i + singles < self.msgs.len() {
            let at = i + singles;
            let run = if self.gso { self.gso_run(at) } else { 1 };
            if run < 2 {
                singles += 1;
                continue;
            }
            self.send_each(sock, i..at);
            let (range, to) = (self.msgs[at].0.start..self.msgs[at + run - 1].0.end, self.msgs[at].1);
            let seg = self.msgs[at].0.len() as u16;
            let payload = [IoSlice::new(&self.data[range])];
            let r = sendmsg(fd, &payload, &[ControlMessage::UdpGsoSegments(&seg)], MsgFlags::MSG_DONTWAIT, Some(&to))
                .map_err(io::Error::from);
            match r {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                    // No GSO here (EIO, EINVAL): these and all later go one by one.
                    self.gso = false;
                    i = at;
                }
                _ => i = at + run,
            }
            singles = 0;
        }
        self.send_each(sock, i..self.msgs.len());
        self.msgs.clear();
        self.data.clear();
    }

    /// Sends queued messages `range`, a batch per system call.
    fn send_each(&mut self, sock: &UdpSocket, range: std::ops::Range<usize>) {
        if range.len() == 1 {
            let (r, to) = &self.msgs[range.start];
            let _ = socket2::SockRef::from(sock).send_to(&self.data[r.clone()], &(*to).into_socket2());
            return;
        }
        let fd = sock.as_raw_fd();
        let mut sent = range.start;
        while sent < range.end {
            let chunk = &self.msgs[sent..(sent + BATCH).min(range.end)];
            let slices: Vec<[IoSlice<'_>; 1]> =
                chunk.iter().map(|(r, _)| [IoSlice::new(&self.data[r.clone()])]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = chunk.iter().map(|(_, a)| Some(*a)).collect();
            let headers = self.headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
            let r = sendmmsg(fd, headers, slices.iter(), &addrs, [], MsgFlags::MSG_DONTWAIT).map(Iterator::count);
            match r {
                // At least one went: go on from the first that did not.
                Ok(n) if n > 0 => sent += n,
                // Would block, or an error for the first datagram (a destination the kernel
                // refuses): that one is dropped and the rest go on.
                _ => sent += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receiver() -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    fn drain(s: &std::net::UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 2048];
        (0..n).map(|_| s.recv(&mut buf).map(|k| buf[..k].to_vec()).unwrap()).collect()
    }

    fn payload(tag: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
    }

    /// Runs of one destination and one size make one GSO send each; anything else breaks a run.
    #[test]
    fn runs_are_one_destination_one_size_the_last_shorter() {
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        let mut q = SendBatch::default();
        for len in [100, 100, 100, 40, 100] {
            q.push(a, &payload(1, len));
        }
        q.push(b, &payload(2, 100));
        q.push(a, &payload(3, 100));
        q.push(a, &payload(4, 120));
        // 100, 100, 100, 40 | 100 | (b) | 100 | 120 (longer: a run of its own)
        assert_eq!([q.gso_run(0), q.gso_run(4), q.gso_run(5), q.gso_run(6), q.gso_run(7)], [4, 1, 1, 1, 1]);
        let mut many = SendBatch::default();
        for _ in 0..100 {
            many.push(a, &payload(5, 1000));
        }
        assert_eq!(many.gso_run(0), 64, "at most 64 segments");
    }

    /// Everything queued arrives whole and in order at each destination, through GSO runs and
    /// `sendmmsg` batches alike.
    #[tokio::test]
    async fn queued_datagrams_arrive_whole_and_in_order() {
        let (ra, rb) = (receiver(), receiver());
        let (a, b) = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut q = SendBatch::default();
        let mut to_a = Vec::new();
        let mut to_b = Vec::new();
        for i in 0..70u8 {
            // Ten for A of one size (a GSO run), its last shorter, then alternating A and B
            // (singles in sendmmsg batches), more than a batch of them.
            let (to, len) = if i < 10 {
                (a, if i == 9 { 33 } else { 500 })
            } else if i % 2 == 0 {
                (a, 80)
            } else {
                (b, 90)
            };
            let p = payload(i, len);
            q.push(to, &p);
            if to == a { to_a.push(p) } else { to_b.push(p) }
        }
        q.flush(&sock);
        assert!(q.is_empty());
        assert_eq!(drain(&ra, to_a.len()), to_a);
        assert_eq!(drain(&rb, to_b.len()), to_b);
        assert!(q.gso, "this kernel takes UDP GSO");
    }

    /// A batch read takes up to a batch at a time with each sender; a datagram longer than the
    /// buffers is skipped, not cut, and the others are still read.
    #[tokio::test]
    async fn reads_come_in_batches_and_long_datagrams_are_skipped() {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = sock.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            let len = if i == 2 { 300 } else { 50 };
            sender.send_to(&payload(i, len), to).unwrap();
        }
        sock.readable().await.unwrap();
        let mut rx = RecvBatch::new(4, 256);
        let mut got = Vec::new();
        let mut skipped = 0;
        while got.len() + skipped < 5 {
            let n = rx.recv(&sock).unwrap();
            assert!(n <= 4);
            for i in 0..n {
                match rx.get(i) {
                    Some((data, from)) => {
                        assert_eq!(from, sender.local_addr().unwrap());
                        got.push(data.to_vec());
                    }
                    None => skipped += 1,
                }
            }
        }
        assert_eq!(skipped, 1);
        assert_eq!(got, [0u8, 1, 3, 4].map(|i| payload(i, 50)));
        assert_eq!(rx.recv(&sock).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
