//! The control plane: Allocate (with even ports and reservations), Refresh, CreatePermission
//! and ChannelBind (RFC 8656 §7–§12).

use super::*;

impl TurnServer {
    /// RFC 8656 §7.2: LIFETIME is min(requested, maximum), but never below the default.
    pub(super) fn lifetime(&self, req: &Message) -> Duration {
        let requested = req
            .attribute(tattr::LIFETIME)
            .filter(|v| v.len() == 4)
            .map(|v| Duration::from_secs(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))));
        match requested {
            Some(r) => r.min(self.cfg.max_lifetime).max(self.cfg.default_lifetime),
            None => self.cfg.default_lifetime,
        }
    }

    pub(super) fn allocate(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        req: &Message,
        user: &str,
        ports: &mut dyn RelayPorts,
    ) -> Result<Message, Reject> {
        if let Some(a) = self.allocs.get(&tuple) {
            if a.tid != req.transaction_id {
                return Err(Reject(437, "Allocation Mismatch"));
            }
            return Ok(self.allocate_success(tuple, req));
        }
        match req.attribute(tattr::REQUESTED_TRANSPORT) {
            None => return Err(Reject(400, "Bad Request")),
            Some(v) if v.first() != Some(&17) => return Err(Reject(442, "Unsupported Transport Protocol")),
            Some(_) => {}
        }
        if req.attribute(tattr::REQUESTED_ADDRESS_FAMILY).is_some_and(|v| v.first() != Some(&1))
            || !self.cfg.relay_ip.is_ipv4()
        {
            return Err(Reject(440, "Address Family not Supported"));
        }
        let even = req.attribute(tattr::EVEN_PORT);
        let token = req.attribute(tattr::RESERVATION_TOKEN);
        // A reserved port counts against its user's quota like an allocation (an EVEN-PORT
        // request with R holds two ports); using one's own reservation moves that count to
        // the new allocation.
        let reserving = even.is_some_and(|e| e.first().is_some_and(|b| b & 0x80 != 0));
        let own_reservation = token
            .and_then(|t| <[u8; 8]>::try_from(t).ok())
            .and_then(|t| self.reservations.get(&t))
            .is_some_and(|r| r.2 == user);
        let needs = (if reserving { 2 } else { 1 }) - usize::from(own_reservation);
        if self.per_user.get(user).copied().unwrap_or(0) + needs > self.cfg.max_allocations_per_user {
            return Err(Reject(486, "Allocation Quota Reached"));
        }
        let mut reserved_token = None;
        let relay = match (even, token) {
            (Some(_), Some(_)) => return Err(Reject(400, "Bad Request")),
            (None, Some(t)) => {
                let t: [u8; 8] = t.try_into().map_err(|_| Reject(400, "Bad Request"))?;
                match self.reservations.remove(&t) {
                    Some((addr, exp, owner)) if exp > now => {
                        self.uncount(&owner);
                        addr
                    }
                    Some((addr, _, owner)) => {
                        self.uncount(&owner);
                        self.out.push_back(Output::RelayClosed { relay: addr });
                        return Err(Reject(508, "Insufficient Capacity"));
                    }
                    None => return Err(Reject(508, "Insufficient Capacity")),
                }
            }
            (Some(e), None) => {
                let reserve = e.first().is_some_and(|b| b & 0x80 != 0);
                let (relay, next) = self.take_even_port(ports, reserve).ok_or(Reject(508, "Insufficient Capacity"))?;
                if let Some(next) = next {
                    let mut t = [0u8; 8];
                    t[..2].copy_from_slice(&next.port().to_be_bytes());
                    t[2..].copy_from_slice(&req.transaction_id[..6]);
                    let until = now + Duration::from_secs(30);
                    self.reservations.insert(t, (next, until, user.to_string()));
                    self.expire_at(until, Expiring::Reservation(t));
                    *self.per_user.entry(user.to_string()).or_default() += 1;
                    reserved_token = Some(t);
                }
                relay
            }
            (None, None) => self.take_port(ports).ok_or(Reject(508, "Insufficient Capacity"))?,
        };
        let expires = now + self.lifetime(req);
        self.allocs.insert(
            tuple,
            Allocation {
                user: user.to_string(),
                relay,
                expires,
                tid: req.transaction_id,
                perms: FxHashMap::default(),
                channels: FxHashMap::default(),
                peer_channel: FxHashMap::default(),
            },
        );
        self.by_relay.insert(relay, tuple);
        self.expire_at(expires, Expiring::Allocation(tuple));
        *self.per_user.entry(user.to_string()).or_default() += 1;
        self.stats.allocations += 1;
        let mut m = self.allocate_success(tuple, req);
        if let Some(t) = reserved_token {
            m.push(tattr::RESERVATION_TOKEN, t.to_vec());
        }
        Ok(m)
    }

    pub(super) fn allocate_success(&self, tuple: FiveTuple, req: &Message) -> Message {
        let a = &self.allocs[&tuple];
        let mut m = Message::new(method::ALLOCATE, Class::Success, req.transaction_id);
        m.push_address(tattr::XOR_RELAYED_ADDRESS, a.relay);
        m.push(tattr::LIFETIME, (self.lifetime(req).as_secs() as u32).to_be_bytes().to_vec());
        m.push_address(attr::XOR_MAPPED_ADDRESS, tuple.client);
        m
    }

    pub(super) fn take_port(&mut self, ports: &mut dyn RelayPorts) -> Option<SocketAddr> {
        let (lo, hi) = self.cfg.relay_ports;
        let span = u32::from(hi - lo) + 1;
        if self.by_relay.len() + self.reservations.len() >= span as usize {
            // Every port is taken: answer at once instead of scanning the whole range.
            return None;
        }
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= hi { lo } else { p + 1 };
            let addr = SocketAddr::new(self.cfg.relay_ip, p);
            let reserved = self.reservations.values().any(|(r, _, _)| *r == addr);
            if !self.by_relay.contains_key(&addr) && !reserved && ports.open(addr) {
                return Some(addr);
            }
        }
        None
    }

    /// An even relay port (RFC 8656 §7.2 EVEN-PORT); with `reserve`, the next port is held too.
    pub(super) fn take_even_port(
        &mut self,
        ports: &mut dyn RelayPorts,
        reserve: bool,
    ) -> Option<(SocketAddr, Option<SocketAddr>)> {
        let (lo, hi) = self.cfg.relay_ports;
        let span = u32::from(hi - lo) + 1;
        let in_use =
            |s: &Self, a: SocketAddr| s.by_relay.contains_key(&a) || s.reservations.values().any(|(r, _, _)| *r == a);
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= hi { lo } else { p + 1 };
            if p % 2 != 0 || (reserve && p >= hi) {
                continue;
            }
            let addr = SocketAddr::new(self.cfg.relay_ip, p);
            let next = SocketAddr::new(self.cfg.relay_ip, p + 1);
            if in_use(self, addr) || (reserve && in_use(self, next)) {
                continue;
            }
            if !ports.open(addr) {
                continue;
            }
            if reserve {
                if !ports.open(next) {
                    self.out.push_back(Output::RelayClosed { relay: addr });
                    continue;
                }
                return Some((addr, Some(next)));
            }
            return Some((addr, None));
        }
        None
    }

    pub(super) fn delete(&mut self, tuple: FiveTuple) {
        if let Some(a) = self.allocs.remove(&tuple) {
            self.by_relay.remove(&a.relay);
            if let Some(n) = self.per_user.get_mut(&a.user) {
                *n = n.saturating_sub(1);
            }
            self.out.push_back(Output::RelayClosed { relay: a.relay });
        }
    }

    pub(super) fn refresh(&mut self, now: Instant, tuple: FiveTuple, req: &Message) -> Result<Message, Reject> {
        if !self.allocs.contains_key(&tuple) {
            return Err(Reject(437, "Allocation Mismatch"));
        }
        let zero = req.attribute(tattr::LIFETIME).is_some_and(|v| v == [0, 0, 0, 0]);
        let mut m = Message::new(method::REFRESH, Class::Success, req.transaction_id);
        if zero {
            self.delete(tuple);
            m.push(tattr::LIFETIME, vec![0, 0, 0, 0]);
        } else {
            let life = self.lifetime(req);
            self.allocs.get_mut(&tuple).expect("checked").expires = now + life;
            self.expire_at(now + life, Expiring::Allocation(tuple));
            m.push(tattr::LIFETIME, (life.as_secs() as u32).to_be_bytes().to_vec());
        }
        Ok(m)
    }

    pub(super) fn peers(req: &Message) -> Result<Vec<SocketAddr>, Reject> {
        let v: Vec<SocketAddr> = req
            .addresses(tattr::XOR_PEER_ADDRESS)
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|_| Reject(400, "Bad Request"))?;
        if v.is_empty() { Err(Reject(400, "Bad Request")) } else { Ok(v) }
    }

    pub(super) fn create_permission(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        req: &Message,
    ) -> Result<Message, Reject> {
        if !self.allocs.contains_key(&tuple) {
            return Err(Reject(437, "Allocation Mismatch"));
        }
        let peers = Self::peers(req)?;
        if peers.iter().any(|p| is_forbidden(p.ip(), &self.cfg)) {
            return Err(Reject(403, "Forbidden"));
        }
        let relay = self.allocs[&tuple].relay;
        if peers.iter().any(|p| p.is_ipv4() != relay.is_ipv4()) {
            // RFC 8656 §9.1 (an IPv4-mapped IPv6 address is IPv6 on the wire).
            return Err(Reject(443, "Peer Address Family Mismatch"));
        }
        let (life, cap) = (self.cfg.permission_lifetime, self.cfg.max_permissions_per_allocation);
        let a = self.allocs.get_mut(&tuple).expect("checked");
        let mut new: Vec<IpAddr> = peers.iter().map(SocketAddr::ip).filter(|ip| !a.perms.contains_key(ip)).collect();
        new.sort_unstable();
        new.dedup();
        if a.perms.len() + new.len() > cap {
            return Err(Reject(508, "Insufficient Capacity"));
        }
        for p in &peers {
            a.perms.insert(p.ip(), now + life);
        }
        for p in peers {
            self.expire_at(now + life, Expiring::Permission(tuple, p.ip()));
        }
        Ok(Message::new(method::CREATE_PERMISSION, Class::Success, req.transaction_id))
    }

    pub(super) fn channel_bind(&mut self, now: Instant, tuple: FiveTuple, req: &Message) -> Result<Message, Reject> {
        if !self.allocs.contains_key(&tuple) {
            return Err(Reject(437, "Allocation Mismatch"));
        }
        let ch =
            req.attribute(tattr::CHANNEL_NUMBER).filter(|v| v.len() == 4).map(|v| u16::from_be_bytes([v[0], v[1]]));
        let top = if self.cfg.rfc5766_channels { 0x7FFF } else { 0x4FFF };
        let Some(ch) = ch.filter(|c| (0x4000..=top).contains(c)) else {
            return Err(Reject(400, "Bad Request"));
        };
        let peers = Self::peers(req)?;
        let peer = peers[0];
        if is_forbidden(peer.ip(), &self.cfg) {
            return Err(Reject(403, "Forbidden"));
        }
        if peer.is_ipv4() != self.allocs[&tuple].relay.is_ipv4() {
            return Err(Reject(443, "Peer Address Family Mismatch"));
        }
        let (clife, plife) = (self.cfg.channel_lifetime, self.cfg.permission_lifetime);
        let a = self.allocs.get_mut(&tuple).expect("checked");
        // RFC 8656 §12.2: a channel is bound to one peer and a peer to one channel; rebinding the
        // same pair refreshes it.
        if let Some((bound, exp)) = a.channels.get(&ch)
            && *exp > now
            && *bound != peer
        {
            return Err(Reject(400, "Bad Request"));
        }
        if let Some(other) = a.peer_channel.get(&peer)
            && *other != ch
            && a.channels.get(other).is_some_and(|(_, exp)| *exp > now)
        {
            return Err(Reject(400, "Bad Request"));
        }
        let new_channel = !a.channels.contains_key(&ch);
        let new_permission = !a.perms.contains_key(&peer.ip());
        if (new_channel && a.channels.len() >= self.cfg.max_channels_per_allocation)
            || (new_permission && a.perms.len() >= self.cfg.max_permissions_per_allocation)
        {
            return Err(Reject(508, "Insufficient Capacity"));
        }
        // A channel rebound to another peer (its binding had expired) is no longer that peer's.
        if let Some((old, _)) = a.channels.insert(ch, (peer, now + clife))
            && old != peer
            && a.peer_channel.get(&old) == Some(&ch)
        {
            a.peer_channel.remove(&old);
        }
        a.peer_channel.insert(peer, ch);
        a.perms.insert(peer.ip(), now + plife);
        self.expire_at(now + clife, Expiring::Channel(tuple, ch));
        self.expire_at(now + plife, Expiring::Permission(tuple, peer.ip()));
        Ok(Message::new(method::CHANNEL_BIND, Class::Success, req.transaction_id))
    }

    /// One allocation or reservation of `user` is gone.
    pub(super) fn uncount(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n = n.saturating_sub(1);
        }
    }
}
