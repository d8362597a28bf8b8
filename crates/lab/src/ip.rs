//! IPv4 and UDP on the wire, as a TUN device hands them over: the raw packet parsed into the
//! simulated network's [`Packet`] (addresses, ports, payload), and a [`Packet`] written back
//! with fresh headers and checksums (RFC 791, RFC 768). What the simulator rewrites (NAT
//! addresses and ports) is therefore exactly what the receiving host sees.

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

/// An IPv4 packet from a TUN device as a UDP [`Packet`].
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
    if b[9] != UDP {
        return Err(Skip::Protocol(b[9]));
    }
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    let udp = &b[ihl..total];
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

/// A UDP [`Packet`] as an IPv4 packet for a TUN device; `None` for what cannot be one (TCP is
/// not carried yet; a payload over 65,507 bytes).
pub fn emit(p: &Packet) -> Option<Vec<u8>> {
    if p.proto != Proto::Udp || p.payload.len() > 65_507 {
        return None;
    }
    let udp_len = 8 + p.payload.len();
    let total = 20 + udp_len;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, UDP, 0, 0]);
    b.extend_from_slice(&p.src.ip().octets());
    b.extend_from_slice(&p.dst.ip().octets());
    let h = checksum(&[&b[..20]]);
    b[10..12].copy_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&p.src.port().to_be_bytes());
    b.extend_from_slice(&p.dst.port().to_be_bytes());
    b.extend_from_slice(&(udp_len as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&p.payload);
    // RFC 768: over the pseudo-header (addresses, protocol, length) and the datagram; an
    // all-zero result is sent as all ones.
    let pseudo = [&b[12..20], &[0, UDP], &(udp_len as u16).to_be_bytes()[..]].concat();
    let c = match checksum(&[&pseudo, &b[20..]]) {
        0 => 0xffff,
        c => c,
    };
    b[26..28].copy_from_slice(&c.to_be_bytes());
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
    fn what_is_not_carried_is_named() {
        let mut b = emit(&udp("10.0.0.2:1", "10.0.0.3:2", b"x")).unwrap();
        b[9] = 6;
        assert_eq!(parse(&b), Err(Skip::Protocol(6)));
        assert_eq!(parse(&[0x60, 0, 0, 0]), Err(Skip::NotIpv4(6)));
        assert_eq!(parse(&b[..10]), Err(Skip::Malformed));
        let mut frag = emit(&udp("10.0.0.2:1", "10.0.0.3:2", b"x")).unwrap();
        frag[6] = 0x20;
        assert_eq!(parse(&frag), Err(Skip::Fragment));
        assert_eq!(parse(&[]), Err(Skip::Malformed));
    }
}
