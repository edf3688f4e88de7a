#!/usr/bin/env bash
# Replays the committed real capture through NAT rules with `lvs-pcap replay --sync-out` and
# checks with tshark that every frame of the sync capture dissects as "IP Virtual Services Sync
# Daemon" (UDP 8848 to 224.0.0.81, TTL 1) with good IPv4 and UDP checksums, then that
# `lvs-pcap sync` applies it. Needs tshark.
set -euo pipefail
cd "$(dirname "$0")/.."
F=lvs-pcap/tests/fixtures
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build -q -p lvs-pcap
bin=target/debug/lvs-pcap
"$bin" replay --side client --local 10.99.0.2 --rules "$F/nat-v4.rules" --in "$F/real-v4.pcap" \
  --sync-out "$out/sync.pcap" --sync-threshold 1 >/dev/null
frames=$(tshark -r "$out/sync.pcap" | wc -l)
good=$(tshark -r "$out/sync.pcap" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE \
  -Y 'ipvs && ip.dst == 224.0.0.81 && ip.ttl == 1 && udp.srcport == 8848 && udp.dstport == 8848 && ip.checksum.status == 1 && udp.checksum.status == 1' | wc -l)
echo "sync frames: $frames, decoded as ipvs with good checksums: $good"
[ "$frames" -ge 1 ] && [ "$frames" -eq "$good" ]
tshark -r "$out/sync.pcap" -V -Y ipvs | grep -E 'Connection Count|Client Address|Destination Address' | sed 's/^/  /'
"$bin" sync --rules "$F/nat-v4.rules" --in "$out/sync.pcap"
