//! pcap output: each captured packet as an IPv4 header + UDP (or a minimal TCP) header + the
//! payload, `LINKTYPE_RAW` (101), microsecond timestamps from virtual time. Debian's `tshark -r`
//! reads the files and dissects STUN and DTLS in them (tests/pcap_tshark.rs).

use crate::nat::Proto;
use std::net::SocketAddrV4;
use std::time::Duration;

/// A pcap file being built in memory.
#[derive(Debug, Clone)]
pub struct Pcap {
    bytes: Vec<u8>,
    ip_id: u16,
    pub packets: usize,
}

impl Default for Pcap {
    fn default() -> Self {
        Self::new()
    }
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Pcap {
    pub fn new() -> Self {
        let mut bytes = Vec::with_capacity(1 << 16);
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
        Self { bytes, ip_id: 0, packets: 0 }
    }

    /// Appends one packet seen at virtual time `at`.
    pub fn record(&mut self, at: Duration, proto: Proto, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
        let l4 = match proto {
            Proto::Udp => 8,
            Proto::Tcp => 20,
        };
        let total = 20 + l4 + payload.len();
        let Ok(total16) = u16::try_from(total) else { return };
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total16.to_be_bytes());
        ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64;
        ip[9] = match proto {
            Proto::Udp => 17,
            Proto::Tcp => 6,
        };
        ip[12..16].copy_from_slice(&src.ip().octets());
        ip[16..20].copy_from_slice(&dst.ip().octets());
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        self.bytes.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&at.subsec_micros().to_le_bytes());
        self.bytes.extend_from_slice(&(total as u32).to_le_bytes());
        self.bytes.extend_from_slice(&(total as u32).to_le_bytes());
        self.bytes.extend_from_slice(&ip);
        self.bytes.extend_from_slice(&src.port().to_be_bytes());
        self.bytes.extend_from_slice(&dst.port().to_be_bytes());
        match proto {
            Proto::Udp => {
                self.bytes.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                self.bytes.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
            }
            Proto::Tcp => {
                // Sequence numbers are not modelled; PSH|ACK with an open window.
                self.bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
            }
        }
        self.bytes.extend_from_slice(payload);
        self.packets += 1;
    }

    /// Appends an IPv4 packet as it is (the lab records what its hosts' kernels sent and got).
    pub fn record_raw(&mut self, at: Duration, ip_packet: &[u8]) {
        let n = ip_packet.len() as u32;
        self.bytes.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&at.subsec_micros().to_le_bytes());
        self.bytes.extend_from_slice(&n.to_le_bytes());
        self.bytes.extend_from_slice(&n.to_le_bytes());
        self.bytes.extend_from_slice(ip_packet);
        self.packets += 1;
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv4_header_checksum() {
        // RFC 1071-style check: a header with its checksum sums to 0xffff.
        let mut p = super::Pcap::new();
        p.record(
            std::time::Duration::from_millis(1500),
            crate::nat::Proto::Udp,
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            b"x",
        );
        let ip = &p.bytes()[24 + 16..24 + 16 + 20];
        assert_eq!(super::checksum(ip), 0);
        assert_eq!(&p.bytes()[24..28], &1u32.to_le_bytes(), "seconds");
        assert_eq!(&p.bytes()[28..32], &500_000u32.to_le_bytes(), "microseconds");
    }
}
