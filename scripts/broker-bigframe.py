#!/usr/bin/env python3
# Measures what one large WebSocket frame, sent in 16 KiB writes, costs a broker in CPU
# (hostile-client issue, item 10): starts `PEERSTORM serve broker` on a free loopback port,
# joins, sends one binary frame of SIZE bytes, and reads the broker's CPU from /proc.
#   python3 scripts/broker-bigframe.py target/release/peerstorm 50000000
import os, socket, struct, subprocess, sys, time, base64
if len(sys.argv) != 3:
    sys.exit("usage: broker-bigframe.py PEERSTORM_BINARY SIZE_BYTES")
exe = sys.argv[1]
size = int(sys.argv[2])
p = subprocess.Popen([exe, "serve", "broker", "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
line = p.stdout.readline().decode()
addr = line.split()[4].rstrip(":")
host, port = addr.rsplit(":", 1)
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
s = socket.create_connection((host, int(port)))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(f"GET /peerjs?key=peerjs&id=big&token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
time.sleep(0.3)
s.recv(65536)
c0 = cpu(p.pid); t0 = time.time()
hdr = bytes([0x82, 0xFF]) + struct.pack(">Q", size) + b"\0\0\0\0"
s.sendall(hdr)
chunk = b"\0" * 16384
sent = 0
while sent < size:
    n = min(16384, size - sent)
    s.sendall(chunk[:n]); sent += n
time.sleep(1.0)
c1 = cpu(p.pid)
print(f"{size/1e6:.0f} MB frame in 16 KiB writes: broker CPU {c1-c0:.2f} s, wall {time.time()-t0:.1f} s")
p.kill()
p.wait()
