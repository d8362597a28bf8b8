//! mDNS-style multicast in the lab: a datagram to 224.0.0.251:5353 from one host on a LAN
//! reaches the other host on that LAN and not a host behind another NAT.

use peerstorm_lab::LabBuilder;
use peerstorm_netsim::{Firewall, LinkConfig, NatConfig, RouterSpec};
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

const LISTEN: &str = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5353))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("224.0.0.251"), socket.inet_aton("0.0.0.0")))
s.settimeout(3)
n = 0
try:
    while True:
        d, a = s.recvfrom(2048)
        if d.startswith(b"mdns-query"):
            n += 1
except socket.timeout:
    pass
print(n, flush=True)
"#;

const SEND: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
time.sleep(0.5)
for i in range(3):
    s.sendto(b"mdns-query %d" % i, ("224.0.0.251", 5353))
    time.sleep(0.1)
"#;

#[test]
fn multicast_reaches_the_lan_and_not_across_a_nat() {
    let mut b = LabBuilder::new(4);
    let net = b.network_mut();
    let internet = net.add_segment("internet");
    let lan = |net: &mut peerstorm_netsim::Network, third: u8, ext: u8| {
        let seg = net.add_segment("home");
        net.add_router(RouterSpec {
            inside: seg,
            outside: internet,
            inside_ip: Ipv4Addr::new(10, 0, third, 1),
            external_ips: vec![Ipv4Addr::new(203, 0, 113, ext)],
            nat: NatConfig::default(),
            firewall: Firewall::default(),
            outside_link: LinkConfig::default(),
        });
        seg
    };
    let home = lan(net, 0, 1);
    let other = lan(net, 1, 2);
    let sender = b.add_host("msend", home, Ipv4Addr::new(10, 0, 0, 2), LinkConfig::latency(2));
    let neighbour = b.add_host("mlan", home, Ipv4Addr::new(10, 0, 0, 3), LinkConfig::latency(2));
    let stranger = b.add_host("mfar", other, Ipv4Addr::new(10, 0, 1, 2), LinkConfig::latency(2));
    let mut lab = b.build().expect("the lab needs root, iproute2 and /dev/net/tun");
    let listen = |h| lab.command(h, "python3").unwrap().args(["-c", LISTEN]).stdout(Stdio::piped()).spawn().unwrap();
    let (near, far) = (listen(neighbour), listen(stranger));
    let mut send = lab.command(sender, "python3").unwrap().args(["-c", SEND]).spawn().unwrap();
    lab.run_for(Duration::from_secs(4)).unwrap();
    assert!(send.wait().unwrap().success());
    let count =
        |c: std::process::Child| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).trim().to_string();
    assert_eq!(count(near), "3", "the host on the same LAN got every query");
    assert_eq!(count(far), "0", "the host behind the other NAT got none");
}
