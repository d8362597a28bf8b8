//! The data plane: Send and Data indications, ChannelData, and what peers send to relay
//! addresses (RFC 8656 §10–§12).

use super::*;

impl TurnServer {
    pub(super) fn send_indication(&mut self, now: Instant, tuple: FiveTuple, msg: &Message) {
        let (Some(Ok(peer)), Some(data)) = (msg.address(tattr::XOR_PEER_ADDRESS), msg.attribute(tattr::DATA)) else {
            return;
        };
        let Some(a) = self.allocs.get(&tuple) else { return };
        if self.own.contains(&peer) {
            self.stats.dropped_own_address += 1;
            return;
        }
        if a.perms.get(&peer.ip()).is_some_and(|exp| *exp > now) {
            self.stats.to_peer += 1;
            self.out.push_back(Output::ToPeer { relay: a.relay, peer, data: data.to_vec() });
        } else {
            self.stats.dropped_no_permission += 1;
        }
    }

    pub(super) fn client_channel_data(&mut self, now: Instant, tuple: FiveTuple, data: &[u8]) {
        if let Some((relay, peer, payload)) = self.route_channel_data(now, tuple, data) {
            self.out.push_back(Output::ToPeer { relay, peer, data: payload.to_vec() });
        }
    }

    /// The allocation-free form of ChannelData from a client: where it goes (relay address,
    /// peer) and the payload to send, or `None` to drop it. A driver may call this for bytes whose
    /// first byte is 0x40–0x7F instead of [`TurnServer::handle_client`].
    pub fn route_channel_data<'d>(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        data: &'d [u8],
    ) -> Option<(SocketAddr, SocketAddr, &'d [u8])> {
        if data.len() < 4 {
            return None;
        }
        let ch = u16::from_be_bytes([data[0], data[1]]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let payload = data.get(4..4 + len)?;
        let a = self.allocs.get(&tuple)?;
        let (peer, exp) = a.channels.get(&ch)?;
        if self.own.contains(peer) {
            self.stats.dropped_own_address += 1;
            return None;
        }
        if *exp <= now || a.perms.get(&peer.ip()).is_none_or(|e| *e <= now) {
            self.stats.dropped_no_permission += 1;
            return None;
        }
        self.stats.to_peer += 1;
        Some((a.relay, *peer, payload))
    }

    /// A TCP client connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn handle_client_closed(&mut self, tuple: FiveTuple) {
        self.delete(tuple);
    }

    /// The addresses the server answers clients on: the primary, and with an alternate the three
    /// other IP/port combinations RFC 5780 needs.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        let p = self.cfg.primary;
        let mut v = match self.cfg.alternate {
            None => vec![p],
            Some(a) => vec![p, SocketAddr::new(a.ip(), p.port()), SocketAddr::new(p.ip(), a.port()), a],
        };
        v.extend(self.cfg.extra_listen.iter().copied());
        v
    }

    /// A datagram from `peer` reached the relay address `relay`: to the client as ChannelData
    /// when a channel is bound to the peer, as a Data indication otherwise; dropped without a
    /// permission.
    pub fn handle_peer(&mut self, now: Instant, relay: SocketAddr, peer: SocketAddr, data: &[u8]) {
        let mut out = Vec::new();
        if let Some((tuple, from)) = self.route_peer_data(now, relay, peer, data, &mut out) {
            self.out.push_back(Output::ToClient { tuple, from, data: out });
        }
    }

    /// The allocation-free form of [`TurnServer::handle_peer`]: writes what the client gets
    /// (ChannelData, or a Data indication) into `out` and says where it goes (the 5-tuple, and
    /// the local address to send from), or `None` to drop it.
    pub fn route_peer_data(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<(FiveTuple, SocketAddr)> {
        out.clear();
        let &tuple = self.by_relay.get(&relay)?;
        let a = &self.allocs[&tuple];
        if a.perms.get(&peer.ip()).is_none_or(|exp| *exp <= now) {
            self.stats.dropped_no_permission += 1;
            return None;
        }
        match a.peer_channel.get(&peer).filter(|ch| a.channels.get(ch).is_some_and(|(p, e)| *p == peer && *e > now)) {
            Some(&ch) => {
                out.extend_from_slice(&ch.to_be_bytes());
                out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                out.extend_from_slice(data);
                if tuple.transport == Transport::Tcp {
                    // RFC 8656 §12.5: over TCP, ChannelData is padded to a multiple of four.
                    out.resize(out.len().next_multiple_of(4), 0);
                }
            }
            None => {
                let mut m = Message::new(method::DATA, Class::Indication, self.tid_for_indication());
                m.push_address(tattr::XOR_PEER_ADDRESS, peer);
                m.push(tattr::DATA, data.to_vec());
                out.extend_from_slice(&m.encode(false));
            }
        }
        self.stats.to_client += 1;
        Some((tuple, tuple.server))
    }

    pub(super) fn tid_for_indication(&mut self) -> [u8; 12] {
        let n = self.stats.to_client.to_be_bytes();
        let mut t = [0u8; 12];
        t[4..].copy_from_slice(&n);
        t
    }
}
