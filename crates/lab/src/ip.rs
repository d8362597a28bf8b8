//! IPv4, UDP and TCP on the wire, as a TUN device hands them over: the raw packet parsed into
//! the simulated network's [`Packet`] (addresses, ports, payload), and a [`Packet`] written
//! back with fresh headers and checksums (RFC 791, RFC 768, RFC 9293). What the simulator
//! rewrites (NAT addresses and ports) is therefore exactly what the receiving host sees.
//!
//! A UDP packet's payload is the datagram's data. A TCP packet's payload is the whole segment
//! after its two ports (sequence numbers, flags, window, options and data): the simulator moves
//! and NATs it, the kernels at both ends run TCP.

use peerstorm_netsim::{Packet, Proto};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Why a packet from a TUN device is not carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Skip {
    #[error("not IPv4 (version {0})")]
    NotIpv4(u8),
    #[error("IP protocol {0} is not carried yet")]
    Protocol(u8),
    #[error("a fragment")]
    Fragment,
    #[error("truncated or inconsistent lengths")]
    Malformed,
}

const UDP: u8 = 17;
const TCP: u8 = 6;

/// An IPv4 packet from a TUN device as a UDP or TCP [`Packet`].
pub fn parse(b: &[u8]) -> Result<Packet, Skip> {
    let first = *b.first().ok_or(Skip::Malformed)?;
    if first >> 4 != 4 {
        return Err(Skip::NotIpv4(first >> 4));
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || b.len() < ihl {
        return Err(Skip::Malformed);
    }
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if total < ihl || total > b.len() {
        return Err(Skip::Malformed);
    }
    // More fragments, or a fragment offset: reassembly is not done here.
    if b[6] & 0x20 != 0 || u16::from_be_bytes([b[6], b[7]]) & 0x1fff != 0 {
        return Err(Skip::Fragment);
    }
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    let l4 = &b[ihl..total];
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    if b[9] == TCP {
        // RFC 9293 §3.1: a 20-byte header at least, its data offset within the segment.
        if l4.len() < 20 || usize::from(l4[12] >> 4) * 4 < 20 || usize::from(l4[12] >> 4) * 4 > l4.len() {
            return Err(Skip::Malformed);
        }
        return Ok(Packet {
            proto: Proto::Tcp,
            src: SocketAddrV4::new(src, port(0)),
            dst: SocketAddrV4::new(dst, port(2)),
            payload: l4[4..].to_vec(),
        });
    }
    if b[9] != UDP {
        return Err(Skip::Protocol(b[9]));
    }
    let udp = l4;
    if udp.len() < 8 {
        return Err(Skip::Malformed);
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if len < 8 || len > udp.len() {
        return Err(Skip::Malformed);
    }
    Ok(Packet {
        proto: Proto::Udp,
        src: SocketAddrV4::new(src, u16::from_be_bytes([udp[0], udp[1]])),
        dst: SocketAddrV4::new(dst, u16::from_be_bytes([udp[2], udp[3]])),
        payload: udp[8..len].to_vec(),
    })
}

/// The one's-complement sum of `data` as 16-bit words, folded (RFC 1071).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A UDP or TCP [`Packet`] as an IPv4 packet for a TUN device; `None` for what cannot be one
/// (a payload over what IPv4 carries, a TCP payload shorter than a header).
pub fn emit(p: &Packet) -> Option<Vec<u8>> {
    let (proto, l4_len) = match p.proto {
        Proto::Udp => (UDP, 8 + p.payload.len()),
        Proto::Tcp if p.payload.len() >= 16 => (TCP, 4 + p.payload.len()),
        Proto::Tcp => return None,
    };
    if l4_len > 65_515 {
        return None;
    }
    let total = 20 + l4_len;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, proto, 0, 0]);
    b.extend_from_slice(&p.src.ip().octets());
    b.extend_from_slice(&p.dst.ip().octets());
    let h = checksum(&[&b[..20]]);
    b[10..12].copy_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&p.src.port().to_be_bytes());
    b.extend_from_slice(&p.dst.port().to_be_bytes());
    // Where the transport checksum goes: UDP's after its length, TCP's at offset 16.
    let at = if proto == UDP {
        b.extend_from_slice(&(l4_len as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&p.payload);
        26
    } else {
        b.extend_from_slice(&p.payload);
        b[36..38].copy_from_slice(&[0, 0]);
        36
    };
    // Over the pseudo-header (addresses, protocol, length) and the segment; UDP sends an
    // all-zero result as all ones (RFC 768).
    let pseudo = [&b[12..20], &[0, proto], &(l4_len as u16).to_be_bytes()[..]].concat();
    let c = match checksum(&[&pseudo, &b[20..]]) {
        0 if proto == UDP => 0xffff,
        c => c,
    };
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: &str, dst: &str, payload: &[u8]) -> Packet {
        Packet { proto: Proto::Udp, src: src.parse().unwrap(), dst: dst.parse().unwrap(), payload: payload.to_vec() }
    }

    #[test]
    fn a_datagram_round_trips_with_valid_checksums() {
        let p = udp("10.0.0.2:40000", "198.51.100.20:7", b"odd length!");
        let b = emit(&p).unwrap();
        assert_eq!(parse(&b).unwrap(), p);
        assert_eq!(checksum(&[&b[..20]]), 0, "the IPv4 header sums to zero with its checksum");
        let pseudo = [&b[12..20], &[0, UDP], &b[24..26]].concat();
        assert_eq!(checksum(&[&pseudo, &b[20..]]), 0, "so does the UDP datagram");
    }

    #[test]
    fn a_tcp_segment_round_trips_and_its_checksum_verifies() {
        // SYN from 10.0.0.2:40000 to 198.51.100.20:80: seq, ack, offset 5, flags, window,
        // checksum (left for emit), urgent pointer, then two bytes of data.
        let mut seg = vec![0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, b'h', b'i'];
        seg[12..14].copy_from_slice(&[0xde, 0xad]);
        let p = Packet {
            proto: Proto::Tcp,
            src: "10.0.0.2:40000".parse().unwrap(),
            dst: "198.51.100.20:80".parse().unwrap(),
            payload: seg,
        };
        let b = emit(&p).unwrap();
        assert_eq!(b[9], TCP);
        let pseudo = [&b[12..20], &[0, TCP], &((b.len() - 20) as u16).to_be_bytes()[..]].concat();
        assert_eq!(checksum(&[&pseudo, &b[20..]]), 0, "the TCP checksum verifies (the old one was replaced)");
        let back = parse(&b).unwrap();
        assert_eq!((back.proto, back.src, back.dst), (p.proto, p.src, p.dst));
        assert_eq!(&back.payload[..12], &p.payload[..12]);
        assert_eq!(&back.payload[14..], &p.payload[14..]);
    }

    #[test]
    fn what_is_not_carried_is_named() {
        let mut b = emit(&udp("10.0.0.2:1", "10.0.0.3:2", b"x")).unwrap();
        b[9] = 1;
        assert_eq!(parse(&b), Err(Skip::Protocol(1)), "ICMP");
        b[9] = 6;
        assert_eq!(parse(&b), Err(Skip::Malformed), "9 bytes are not a TCP header");
        assert_eq!(parse(&[0x60, 0, 0, 0]), Err(Skip::NotIpv4(6)));
        assert_eq!(parse(&b[..10]), Err(Skip::Malformed));
        let mut frag = emit(&udp("10.0.0.2:1", "10.0.0.3:2", b"x")).unwrap();
        frag[6] = 0x20;
        assert_eq!(parse(&frag), Err(Skip::Fragment));
        assert_eq!(parse(&[]), Err(Skip::Malformed));
    }
}
