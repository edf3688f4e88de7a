#!/usr/bin/env bash
# Benchmark of lvs-tun in network namespaces (root; not in CI). Same topology as
# lvs-tun-netns-test.sh: client -- director -- rs1..rs3. In one run it measures
#   1. small-UDP packets per second through the tun: the raw ceiling (`lvs-tun run --raw`:
#      every packet written back unchanged, the kernel routes it to rs1 as DR would) and
#      lvs-tun NAT (one flow per sender thread, one queue);
#   2. HTTP requests per second (wrk, 50 connections) and latency (wrk --latency, one
#      connection, so no queueing) directly to rs1 (the baseline: plain kernel forwarding
#      through the director), through lvs-tun NAT, and through HAProxy `mode tcp` in the
#      director namespace; added latency = p50 / p99 minus the baseline's.
# The real servers answer HTTP with HAProxy (`http-request return`), so the backends are not
# the bottleneck. Needs: wrk, haproxy (apt install wrk haproxy), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-5}
QUEUES=${QUEUES:-1}
cargo build -q --release -p lvs-tun --bins --example udpblast
BIN=$ROOT/target/release/lvs-tun
BLAST=$ROOT/target/release/examples/udpblast
SETUP=$ROOT/scripts/lvs-tun-setup.sh
ID=$$
C=lbc$ID D=lbd$ID
RS=(lbr1$ID lbr2$ID lbr3$ID)
WORK=$(mktemp -d /tmp/lvs-tun-bench.XXXXXX)
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
  for ns in "$C" "$D" "${RS[@]}"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  sleep 0.3
  for ns in "$C" "$D" "${RS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

for ns in "$C" "$D" "${RS[@]}"; do ip netns add "$ns"; inns "$ns" ip link set lo up; done
ip link add c0 netns "$C" type veth peer name d0 netns "$D"
inns "$C" ip addr add 10.0.0.2/24 dev c0
inns "$C" ip link set c0 up
inns "$C" ip route add default via 10.0.0.1
inns "$D" ip addr add 10.0.0.1/24 dev d0
inns "$D" ip link set d0 up
inns "$D" ip link add br0 type bridge
inns "$D" ip addr add 10.0.1.1/24 dev br0
inns "$D" ip link set br0 up
inns "$D" sysctl -qw net.ipv4.ip_forward=1
for i in 1 2 3; do
  ns=${RS[$((i - 1))]}
  ip link add eth0 netns "$ns" type veth peer name dr$i netns "$D"
  inns "$D" ip link set dr$i master br0 up
  inns "$ns" ip addr add 10.0.1.1$i/24 dev eth0
  inns "$ns" ip link set eth0 up
  inns "$ns" ip route add default via 10.0.1.1
  cat >"$WORK/rs$i.cfg" <<CFG
global
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend web
  bind :80
  http-request return status 200 content-type text/plain string "rs$i\n"
CFG
  inns "$ns" haproxy -D -f "$WORK/rs$i.cfg"
  # UDP sink: a bound socket nobody reads (datagrams beyond its buffer are dropped quietly).
  inns "$ns" python3 -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",9000)); time.sleep(3600)' &
done
# rs1 also owns the VIP (for the raw ceiling, where the kernel delivers the packet as DR).
inns "${RS[0]}" "$SETUP" rs-dr 10.100.0.1

cat >"$WORK/rules" <<'R'
-A -u 10.100.0.1:9000 -s rr
-a -u 10.100.0.1:9000 -r 10.0.1.11:9000 -m
-A -t 10.100.0.1:80 -s rr
-a -t 10.100.0.1:80 -r 10.0.1.11:80 -m
-a -t 10.100.0.1:80 -r 10.0.1.12:80 -m
-a -t 10.100.0.1:80 -r 10.0.1.13:80 -m
R

metric() {
  inns "$D" curl -s -m 2 http://127.0.0.1:9101/metrics | awk -v k="$1" 'index($0, k) == 1 {s += $2} END {print s + 0}'
}

start() { # extra args
  ip netns exec "$D" "$BIN" run --rules "$WORK/rules" --dev lvs0 --queues "$QUEUES" --busy-poll-us "${BUSY_POLL_US:-0}" \
    --local 10.0.1.1 --socket "$WORK/ctl.sock" --metrics 127.0.0.1:9101 "$@" 2> >(tee -a "$WORK/director.log" >&2) &
  DPID=$!
}

stop() { kill "$DPID"; wait "$DPID" || true; }

udp_pps() { # label
  local before after sent
  before=$(metric lvs_tun_queue_tx_packets_total)
  # PERF=DIR: profile the daemon during the blast (perf record -g).
  if [[ -n ${PERF:-} ]]; then perf record -q -g -p "$DPID" -o "$PERF/$1.data" -- sleep 2 >/dev/null 2>&1 & fi
  sent=$(inns "$C" "$BLAST" 10.100.0.1:9000 "$QUEUES" "$SECS")
  after=$(metric lvs_tun_queue_tx_packets_total)
  local pps=$(((after - before) / SECS))
  echo "$1: sent $((sent / SECS)) pps, forwarded $pps pps ($QUEUES queue(s), $((pps / QUEUES)) per queue)"
  echo "$pps"
}

wrk_run() { # label url: throughput with 50 connections, latency with one (no queueing)
  inns "$C" wrk -t2 -c50 -d"${SECS}s" "$2" >"$WORK/wrk.out" 2>&1 || true
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  inns "$C" wrk -t1 -c1 -d"${SECS}s" --latency "$2" >"$WORK/wrk1.out" 2>&1 || true
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk1.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk1.out")
  echo "$1: $rps req/s (50 connections), latency p50 $p50, p99 $p99 (1 connection)" >&2
  echo "$rps $p50 $p99"
}

to_us() { # wrk latency (123.45us / 1.23ms / 1.2s) -> microseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'
}

echo "=== baseline: direct to rs1 (kernel forwarding only)"
BASE=$(wrk_run "direct to rs1 (baseline)" http://10.0.1.11/)

echo "=== raw tun ceiling (no director)"
start --raw
inns "$D" "$SETUP" director-tun lvs0 10.100.0.1
inns "$D" ip rule add pref 50 iif lvs0 lookup 200
inns "$D" ip route add 10.100.0.1/32 via 10.0.1.11 dev br0 table 200
sleep 0.5
RAW_PPS=$(udp_pps "raw" | tee /dev/stderr | tail -n 1)
stop
inns "$D" ip rule del pref 50
inns "$D" ip route flush table 200

echo "=== lvs-tun NAT"
start
inns "$D" "$SETUP" director-nat lvs0 br0 10.0.1.0/24 10.100.0.1
sleep 0.5
LVS_PPS=$(udp_pps "lvs-tun" | tee /dev/stderr | tail -n 1)
inns "$C" curl -s -m 2 http://10.100.0.1/ >/dev/null
LVS=$(wrk_run "lvs-tun NAT" http://10.100.0.1/)
stop

echo "=== HAProxy mode tcp"
cat >"$WORK/lb.cfg" <<'CFG'
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend lb
  bind 10.0.0.1:8080
  default_backend rs
backend rs
  balance roundrobin
  server rs1 10.0.1.11:80
  server rs2 10.0.1.12:80
  server rs3 10.0.1.13:80
CFG
inns "$D" haproxy -D -f "$WORK/lb.cfg"
sleep 0.3
HAP=$(wrk_run "haproxy mode tcp" http://10.0.0.1:8080/)

read -r b_rps b_p50 b_p99 <<<"$BASE"
read -r l_rps l_p50 l_p99 <<<"$LVS"
read -r h_rps h_p50 h_p99 <<<"$HAP"
added() { awk -v a="$(to_us "$1")" -v b="$(to_us "$2")" 'BEGIN { printf "%.0fus", a - b }'; }
echo
echo "| measure | raw tun | lvs-tun | HAProxy mode tcp | direct |"
echo "|---|---|---|---|---|"
echo "| small UDP pps ($QUEUES queue) | $RAW_PPS | $LVS_PPS ($(awk -v a="$LVS_PPS" -v b="$RAW_PPS" 'BEGIN { printf "%.0f%%", b ? 100 * a / b : 0 }') of raw) | | |"
echo "| HTTP req/s | | $l_rps | $h_rps | $b_rps |"
echo "| latency p50 / p99 | | $l_p50 / $l_p99 | $h_p50 / $h_p99 | $b_p50 / $b_p99 |"
echo "| added latency p50 / p99 | | $(added "$l_p50" "$b_p50") / $(added "$l_p99" "$b_p99") | $(added "$h_p50" "$b_p50") / $(added "$h_p99" "$b_p99") | |"
