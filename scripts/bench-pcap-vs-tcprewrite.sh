#!/usr/bin/env bash
# Times `lvs-pcap replay` (read, director with connection tracking, validation, write) against
# `tcprewrite --dstipmap` (static address map, no connection tracking) on the same synthetic
# capture, and prints both rates in packets per second.
#
#   scripts/bench-pcap-vs-tcprewrite.sh [FLOWS] [PACKETS_PER_FLOW]   (default 10000 x 10)
#
# Installs tcpreplay (for tcprewrite) with apt-get when it is missing; uses hyperfine when
# present, else bash's `time` over 5 runs each.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOWS=${1:-10000}
PER_FLOW=${2:-10}
PACKETS=$((FLOWS * PER_FLOW))

if ! command -v tcprewrite >/dev/null 2>&1; then
  # tcprewrite comes with tcpreplay.
  apt-get update -qq && apt-get install -y --no-install-recommends tcpreplay >/dev/null
fi

cargo build --release -q -p lvs-pcap --bin lvs-pcap --example synth-capture
BIN=target/release/lvs-pcap
# Input and outputs on tmpfs when there is one: both tools write 10 MB per run, and disk
# writeback of one run's output landing in another's timing was most of the spread.
TMP=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$TMP"' EXIT
target/release/examples/synth-capture "$TMP/in.pcap" "$TMP/nat.rules" "$FLOWS" "$PER_FLOW"
echo "capture: $PACKETS packets, $(stat -c %s "$TMP/in.pcap") bytes (page cache warm)"

LVS="$BIN replay --rules $TMP/nat.rules --in $TMP/in.pcap --out $TMP/lvs.pcap"
TCPREWRITE="tcprewrite --dstipmap=10.99.0.10/32:10.100.0.1/32 --infile=$TMP/in.pcap --outfile=$TMP/tcprewrite.pcap"
# Both must work before they are timed.
$LVS >/dev/null
$TCPREWRITE >/dev/null

rate() { # rate SECONDS -> "X.XX Mpps"
  awk -v p="$PACKETS" -v s="$1" 'BEGIN { printf "%.2f Mpps (%.1f ms)", p / s / 1e6, s * 1000 }'
}

if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 3 --runs 30 --export-json "$TMP/h.json" \
    -n lvs-pcap "$LVS" -n tcprewrite "$TCPREWRITE" >&2
  read -r lvs_s tcp_s < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(r[0]["median"], r[1]["median"])' "$TMP/h.json")
  how="hyperfine median of 30"
else
  best() {
    local best=""
    for _ in 1 2 3 4 5; do
      local t0 t1
      t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
      best=$(awk -v a="$best" -v b="$(echo "$t1 - $t0" | bc)" 'BEGIN { if (a == "" || b < a) print b; else print a }')
    done
    echo "$best"
  }
  lvs_s=$(best $LVS)
  tcp_s=$(best $TCPREWRITE)
  how="best of 5"
fi
echo "lvs-pcap replay:        $(rate "$lvs_s")  [$how]"
echo "tcprewrite --dstipmap:  $(rate "$tcp_s")  [$how]"
awk -v a="$lvs_s" -v b="$tcp_s" 'BEGIN { printf "lvs-pcap is %.2fx the speed of tcprewrite\n", b / a }'
