#!/usr/bin/env bash
# Records captures of real traffic for lvs-pcap's tests, in two network namespaces joined by
# a veth pair: a client (10.99.0.1, fd99::1) and the host that owns the virtual address
# (10.99.0.10, fd99::10), which runs a real HTTP server (python3 -m http.server), a UDP echo
# server, answers pings, and refuses connections to port 81. The client runs curl, a UDP
# exchange, a ping and a refused connection, over IPv4 and over IPv6.
#
#   scripts/capture-fixtures.sh [OUTDIR]     (default: lvs-pcap/tests/fixtures; needs root,
#                                             tcpdump, iproute2, python3, curl; exit status 3
#                                             when this machine cannot run it)
#
# Writes OUTDIR/real-v4.pcap (Ethernet, captured on the VIP host's veth) and
# OUTDIR/real-v6.pcap (Linux cooked v2, captured with `-i any` in the VIP host's namespace).
# Checksum offload is turned off on the veth pair (when ethtool is present) so the captured
# checksums are the ones on the wire. Namespaces and processes are always cleaned up.
set -euo pipefail

OUT=${1:-"$(cd "$(dirname "$0")/.." && pwd)/lvs-pcap/tests/fixtures"}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
for tool in ip tcpdump python3 curl; do
  command -v "$tool" >/dev/null || { echo "capture-fixtures: $tool not found" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "capture-fixtures: needs root (network namespaces)" >&2; exit 3; }

TAG="lvsp$$"
CLI="${TAG}c"
VIP="${TAG}v"
TMP=$(mktemp -d)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  ip netns del "$VIP" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Exit status 3: this machine cannot do it (the test that runs this script then skips).
if ! ip netns add "$CLI" 2>"$TMP/err" || ! ip netns add "$VIP" 2>>"$TMP/err" ||
  ! ip link add c0 netns "$CLI" type veth peer name v0 netns "$VIP" 2>>"$TMP/err"; then
  echo "capture-fixtures: cannot create network namespaces and veth: $(cat "$TMP/err")" >&2
  exit 3
fi
# Fixed MACs so the fixtures are reproducible.
ip -n "$CLI" link set c0 address 02:00:00:99:00:01
ip -n "$VIP" link set v0 address 02:00:00:99:00:10
ip -n "$CLI" addr add 10.99.0.1/24 dev c0
ip -n "$VIP" addr add 10.99.0.10/24 dev v0
ip -n "$CLI" addr add fd99::1/64 dev c0 nodad
ip -n "$VIP" addr add fd99::10/64 dev v0 nodad
for ns in "$CLI" "$VIP"; do
  ip -n "$ns" link set lo up
done
ip -n "$CLI" link set c0 up
ip -n "$VIP" link set v0 up
if command -v ethtool >/dev/null; then
  ip netns exec "$CLI" ethtool -K c0 tx off rx off >/dev/null 2>&1 || true
  ip netns exec "$VIP" ethtool -K v0 tx off rx off >/dev/null 2>&1 || true
fi

cat >"$TMP/udp_echo.py" <<'EOF'
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"answer:" + data, peer)
EOF
cat >"$TMP/client.py" <<'EOF'
import os, socket, struct, sys, time

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def udp(addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b"query", (addr, 53))
    print("udp:", s.recvfrom(2048)[0])

def ping(addr):
    v6 = ":" in addr
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        kind = 128  # the kernel fills the ICMPv6 checksum
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        kind = 8
    s.settimeout(3)
    for seq in (1, 2):
        body = struct.pack("!HH", 0x4c56, seq) + b"lvs-pcap ping"
        hdr = struct.pack("!BBH", kind, 0, 0)
        c = 0 if v6 else csum(hdr + body)
        s.sendto(struct.pack("!BBH", kind, 0, c) + body, (addr, 0))
        s.recvfrom(2048)
        time.sleep(0.05)
    print("ping: ok")

addr = sys.argv[1]
udp(addr)
ping(addr)
EOF

capture() { # capture FILE IFACE
  ip netns exec "$VIP" tcpdump -U --immediate-mode -n -s 0 -i "$2" -w "$1" 'tcp or udp or icmp or icmp6' \
    >"$TMP/tcpdump.log" 2>&1 &
  PIDS+=($!)
  CAP_PID=$!
  # Wait until tcpdump listens.
  for _ in $(seq 50); do grep -q listening "$TMP/tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.3
}

stop_capture() {
  sleep 1
  kill -INT "$CAP_PID" 2>/dev/null || true
  wait "$CAP_PID" 2>/dev/null || true
}

serve() { # serve ADDR
  ip netns exec "$VIP" python3 -m http.server 80 --bind "$1" --directory "$TMP" \
    >/dev/null 2>&1 &
  PIDS+=($!)
  ip netns exec "$VIP" python3 "$TMP/udp_echo.py" "$1" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do
    ip netns exec "$VIP" python3 -c "import socket,sys; socket.create_connection((sys.argv[1], 80), 0.2)" "$1" \
      2>/dev/null && return 0
    sleep 0.1
  done
  echo "capture-fixtures: HTTP server on $1 did not start" >&2
  exit 1
}

echo "hello from the real server" >"$TMP/index.html"

traffic() { # traffic ADDR URLHOST
  ip netns exec "$CLI" curl -sS -o /dev/null "http://$2/index.html"
  ip netns exec "$CLI" python3 "$TMP/client.py" "$1" >/dev/null
  # Refused: nothing listens on port 81 (the kernel answers RST).
  if ip netns exec "$CLI" curl -sS -o /dev/null --max-time 3 "http://$2:81/" 2>/dev/null; then
    echo "capture-fixtures: port 81 unexpectedly answered" >&2
    exit 1
  fi
}

serve 10.99.0.10
capture "$OUT/real-v4.pcap" v0
traffic 10.99.0.10 10.99.0.10
stop_capture

serve fd99::10
capture "$OUT/real-v6.pcap" any
traffic fd99::10 '[fd99::10]'
stop_capture

for f in real-v4.pcap real-v6.pcap; do
  n=$(tcpdump -n -r "$OUT/$f" 2>/dev/null | wc -l)
  echo "capture-fixtures: $OUT/$f: $n packets"
  [ "$n" -gt 10 ] || { echo "capture-fixtures: $f has too few packets" >&2; exit 1; }
done
