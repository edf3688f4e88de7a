#!/usr/bin/env bash
# End-to-end test of lvs-tun in network namespaces (run as root; CI runs it from .ci/run).
#
#   client (10.0.0.2, fd00::2) -- director (10.0.0.1 | br0 10.0.1.1, fd00:1::1) -- rs1..rs3
#   (10.0.1.11-13, fd00:1::11-13), each running a tiny HTTP server answering its own name.
#   VIPs 10.100.0.1:80 and [fd00:100::1]:80, scheduler rr.
#
# For each method (NAT on a tun, TUN on a tun with `lvs-tun decap` on the real servers, DR on a
# tap bridged to the real servers' segment), v4 and v6: 30 requests are spread 10/10/10;
# random bytes written into the device don't stop the daemon. NAT also checks ctl, SIGHUP,
# metrics, and a 20 MB download that survives its server's weight going to 0. `sync` runs
# scripts/lvs-tun-sync-test.sh: master and backup directors, connection sync, failover.
# Traffic goes only to addresses inside the namespaces created here; everything is removed
# on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${LVS_TUN_BIN:-$ROOT/target/debug/lvs-tun}
SETUP=$ROOT/scripts/lvs-tun-setup.sh
SERVER=$ROOT/scripts/lvs-tun-testserver.py
RAW=$ROOT/scripts/lvs-tun-rawwrite.py
ID=$$
C=ltc$ID D=ltd$ID
RS=(ltr1$ID ltr2$ID ltr3$ID)
WORK=$(mktemp -d /tmp/lvs-tun-test.XXXXXX)
SOCK=$WORK/ctl.sock
MAC=02:1b:5f:00:00:01
PASS=0 FAIL=0

if [[ ! -x $BIN ]]; then cargo build -q -p lvs-tun; fi

cleanup() {
  for ns in "$C" "$D" "${RS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  sleep 0.2
  for ns in "$C" "$D" "${RS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

topology() {
  for ns in "$C" "$D" "${RS[@]}"; do ip netns add "$ns"; inns "$ns" ip link set lo up; done
  ip link add c0 netns "$C" type veth peer name d0 netns "$D"
  inns "$C" ip addr add 10.0.0.2/24 dev c0
  inns "$C" ip addr add fd00::2/64 dev c0 nodad
  inns "$C" ip link set c0 up
  inns "$C" ip route add default via 10.0.0.1
  inns "$C" ip -6 route add default via fd00::1
  inns "$D" ip addr add 10.0.0.1/24 dev d0
  inns "$D" ip addr add fd00::1/64 dev d0 nodad
  inns "$D" ip link set d0 up
  inns "$D" ip link add br0 type bridge
  inns "$D" ip addr add 10.0.1.1/24 dev br0
  inns "$D" ip addr add fd00:1::1/64 dev br0 nodad
  inns "$D" ip link set br0 up
  local i=0
  for ns in "${RS[@]}"; do
    i=$((i + 1))
    ip link add eth0 netns "$ns" type veth peer name dr$i netns "$D"
    inns "$D" ip link set dr$i master br0 up
    inns "$ns" ip addr add 10.0.1.1$i/24 dev eth0
    inns "$ns" ip addr add fd00:1::1$i/64 dev eth0 nodad
    inns "$ns" ip link set eth0 up
    inns "$ns" ip route add default via 10.0.1.1
    inns "$ns" ip -6 route add default via fd00:1::1
    inns "$ns" python3 "$SERVER" rs$i >/dev/null 2>&1 &
  done
  # The real servers answer before the director starts (health checks see them up).
  for ns in "${RS[@]}"; do
    for _ in $(seq 100); do inns "$ns" curl -s -m 1 -o /dev/null http://127.0.0.1/ && break; sleep 0.1; done
  done
}

rules() { # method flag, real-server address prefixes
  local m=$1 p4=$2 p6=$3
  echo "-A -t 10.100.0.1:80 -s rr"
  for i in 1 2 3; do echo "-a -t 10.100.0.1:80 -r $p4$i:80 $m"; done
  echo "-A -t [fd00:100::1]:80 -s rr"
  for i in 1 2 3; do echo "-a -t [fd00:100::1]:80 -r [$p6$i]:80 $m"; done
}

keepalived_conf() {
  echo "virtual_server 10.100.0.1 80 {"
  echo "  delay_loop 1"
  echo "  lb_algo rr"
  echo "  lb_kind NAT"
  echo "  protocol TCP"
  for i in 1 2 3; do
    echo "  real_server 10.0.1.1$i 80 {"
    echo "    HTTP_GET {"
    echo "      url {"
    echo "        path /"
    echo "        status_code 200"
    echo "      }"
    echo "      connect_timeout 1"
    echo "      retry 0"
    echo "    }"
    echo "  }"
  done
  echo "}"
}

dests_listed() { # count of real servers in the v4 listing
  ctl -L -n | grep -c -- "-> 10.0.1.1" || true
}

health_checks() {
  local t=0
  while [[ $(dests_listed) != 3 && $t -lt 50 ]]; do sleep 0.2; t=$((t + 1)); done
  check "health: all three real servers added after their first check" test "$(dests_listed)" = 3
  spread http://10.100.0.1/ "health v4"
  # Stop rs2's HTTP server mid-run; requests keep flowing while the checker notices.
  ip netns pids "${RS[1]}" | xargs -r kill
  local t0=$SECONDS
  t=0
  while [[ $(dests_listed) != 2 && $t -lt 100 ]]; do
    inns "$C" curl -s -m 1 -o /dev/null http://10.100.0.1/ || true
    sleep 0.1; t=$((t + 1))
  done
  check "health: stopped rs2 detected and removed ($((SECONDS - t0)) s)" bash -c "! grep -q 10.0.1.12 <<<'$(ctl -L -n)'"
  check "health: the log says so" grep -q "real server down" "$WORK/director.log"
  local out
  out=$(for _ in $(seq 30); do inns "$C" curl -s -m 3 http://10.100.0.1/ || echo failed; done | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')
  check "health: no failed request after detection, rr over the two left [$out]" test "$out" = "rs1=15 rs3=15 "
  inns "${RS[1]}" python3 "$SERVER" rs2 >/dev/null 2>&1 &
  local t=0
  while [[ $(dests_listed) != 3 && $t -lt 50 ]]; do sleep 0.2; t=$((t + 1)); done
  check "health: rs2 back after its server restarts" test "$(dests_listed)" = 3
}

start_director() { # rules option, extra lvs-tun arguments
  ip netns exec "$D" env LVS_TUN_LOG=info "$BIN" run --socket "$SOCK" \
    --local 10.0.1.1 --local fd00:1::1 --metrics 127.0.0.1:9101 "$@" 2>>"$WORK/director.log" &
  DPID=$!
}

stop_director() {
  kill -TERM "$DPID" 2>/dev/null || true
  local rc=0
  wait "$DPID" || rc=$?
  check "director stops cleanly on SIGTERM (exit $rc)" test "$rc" = 0
}

wait_http() { # url
  local n
  for n in $(seq 50); do
    if inns "$C" curl -s -m 1 -o /dev/null "$1"; then
      # A timed-out attempt may still have a SYN queued in the device: let the director
      # schedule it before anything is counted, so it cannot land among the counted requests.
      [[ $n == 1 ]] || sleep 1
      return 0
    fi
    sleep 0.2
  done
  return 1
}

spread() { # url label
  local url=$1 label=$2 out
  wait_http "$url" || { bad "$label: VIP answers"; return; }
  # The wait above scheduled connections too: start the count on a fresh rr position by
  # counting whole rounds.
  out=$(for _ in $(seq 30); do inns "$C" curl -s -m 3 "$url" || echo "failed$?"; done | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')
  check "$label: 30 requests spread rr 10/10/10 [$out]" test "$out" = "rs1=10 rs2=10 rs3=10 "
}

metric() { # name{labels} -> value
  inns "$D" curl -s -m 2 http://127.0.0.1:9101/metrics | awk -v k="$1" 'index($0, k" ") == 1 {print $2}'
}

garbage() { # device label [eth]
  local before after sent
  before=$(metric 'lvs_tun_drops_total{reason="malformed"}')
  sent=$(inns "$D" python3 "$RAW" "$1" 3000 "$ID" "${3:-}")
  # Wait until the daemon has drained what was written (the counter stops moving), so a slow
  # machine does not time out the requests counted next.
  local prev=-1
  for _ in $(seq 50); do
    sleep 0.2
    after=$(metric 'lvs_tun_drops_total{reason="malformed"}')
    [[ $after == "$prev" ]] && break
    prev=$after
  done
  check "$2: $sent random packets written into the device, daemon alive" kill -0 "$DPID"
  check "$2: malformed drops counted ($before -> $after)" test "${after:-0}" -gt "${before:-0}"
}

ctl() { inns "$D" "$BIN" ctl --socket "$SOCK" "$@"; }

nat_extras() {
  local l
  l=$(ctl -L -n)
  check "ctl -L -n lists the service" grep -q "TCP  10.100.0.1:80 rr" <<<"$l"
  check "ctl socket mode 0600" test "$(stat -c %a "$SOCK")" = 600
  l=$(ctl -L -n --stats)
  check "ctl -L -n --stats counts connections" grep -Eq "10.0.1.11:80 +[1-9][0-9]" <<<"$l"
  check "metrics: node_ipvs_backend_weight" test "$(metric 'node_ipvs_backend_weight{local_address="10.100.0.1",local_port="80",local_mark="",proto="TCP",remote_address="10.0.1.11",remote_port="80"}')" = 1
  check "metrics: node_ipvs_connections_total > 0" test "$(metric node_ipvs_connections_total)" -gt 0

  # Quiesce: a 20 MB download continues while its server's weight goes to 0.
  inns "$C" curl -s -m 60 --limit-rate 8M -D "$WORK/big.h" -o "$WORK/big" http://10.100.0.1/big &
  local cpid=$! srv=""
  for _ in $(seq 50); do
    srv=$(awk -F': ' 'tolower($1)=="x-server" {print $2}' "$WORK/big.h" 2>/dev/null | tr -d '\r' || true)
    [[ -n $srv ]] && break
    sleep 0.1
  done
  local n=${srv#rs}
  check "quiesce: download started on a real server ($srv)" test -n "$n"
  check "quiesce: ctl -e weight 0" ctl -e -t 10.100.0.1:80 -r 10.0.1.1$n:80 -m -w 0
  check "quiesce: the listing shows weight 0" grep -Eq "10.0.1.1$n:80 +Masq +0 " <<<"$(ctl -L -n)"
  local others
  others=$(for _ in $(seq 6); do inns "$C" curl -s -m 3 http://10.100.0.1/; done | sort -u | tr '\n' ' ')
  check "quiesce: new requests avoid $srv [$others]" bash -c "! grep -q '$srv ' <<<'$others'"
  local rc=0
  wait "$cpid" || rc=$?
  check "quiesce: the 20 MB download completed (curl exit $rc, $(stat -c %s "$WORK/big" 2>/dev/null) bytes)" \
    test "$rc" = 0 -a "$(stat -c %s "$WORK/big" 2>/dev/null)" = $((20 * 1024 * 1024))

  # SIGHUP: reload the file (drops rs3 from the v4 service), atomically.
  grep -v "10.0.1.13:80" "$WORK/rules" >"$WORK/rules.new" && mv "$WORK/rules.new" "$WORK/rules"
  kill -HUP "$DPID"; sleep 0.3
  check "SIGHUP reload removes rs3" bash -c "! grep -q 10.0.1.13 <<<'$(ctl -S -n)'"
  echo "-A -t 10.100.0.1:80 -s nosuchsched" >>"$WORK/rules"
  kill -HUP "$DPID"; sleep 0.3
  check "SIGHUP with a bad file keeps the rules" grep -q "10.0.1.12" <<<"$(ctl -S -n)"
  # -R: atomic restore from stdin.
  printf -- '-C\n-A -t 10.100.0.1:80 -s rr\n-a -t 10.100.0.1:80 -r 10.0.1.12:80 -m\n' | ctl -R
  check "ctl -R replaces the rules" test "$(ctl -S -n | grep -c -- '-a ')" = 1
}

run_method() { # name lvs-tun-args...
  local name=$1; shift
  topology
  case $name in
    nat)
      rules -m 10.0.1.1 fd00:1::1 >"$WORK/rules"
      start_director --rules "$WORK/rules" --dev lvs0 --queues 2
      inns "$D" "$SETUP" director-nat lvs0 br0 10.0.1.0/24,fd00:1::/64 10.100.0.1 fd00:100::1
      ;;
    health)
      keepalived_conf >"$WORK/keepalived.conf"
      start_director --keepalived "$WORK/keepalived.conf" --dev lvs0
      inns "$D" "$SETUP" director-nat lvs0 br0 10.0.1.0/24 10.100.0.1
      health_checks
      stop_director
      cleanup_ns
      return
      ;;
    tun)
      rules -i 10.0.2.1 fd00:2::1 >"$WORK/rules"
      start_director --rules "$WORK/rules" --dev lvs0
      inns "$D" "$SETUP" director-tun lvs0 10.100.0.1 fd00:100::1
      for i in 1 2 3; do
        inns "$D" ip route add 10.0.2.1$i/32 via 10.0.1.1$i
        inns "$D" ip -6 route add fd00:2::1$i/128 via fd00:1::1$i
        inns "${RS[$((i - 1))]}" "$BIN" decap --dev dc0 --local 10.0.2.1$i --local fd00:2::1$i \
          2>>"$WORK/decap.log" &
        inns "${RS[$((i - 1))]}" "$SETUP" rs-tun dc0 10.0.2.1$i,fd00:2::1$i 10.100.0.1 fd00:100::1
      done
      ;;
    dr)
      rules -g 10.0.1.1 fd00:1::1 >"$WORK/rules"
      start_director --rules "$WORK/rules" --dev lvs1 --tap --mac "$MAC" --user nobody
      inns "$D" "$SETUP" director-dr lvs1 br0 10.0.1.254,fd00:1::fe "$MAC" 10.100.0.1 fd00:100::1
      for ns in "${RS[@]}"; do inns "$ns" "$SETUP" rs-dr 10.100.0.1 fd00:100::1; done
      sleep 0.3
      check "dr: the daemon runs as nobody after start-up" test "$(ps -o user= -p "$DPID")" = nobody
      ;;
  esac
  spread http://10.100.0.1/ "$name v4"
  spread "http://[fd00:100::1]/" "$name v6"
  if [[ $name == dr ]]; then garbage lvs1 "$name" eth; else garbage lvs0 "$name"; fi
  spread http://10.100.0.1/ "$name v4 after garbage"
  if [[ $name == nat ]]; then nat_extras; fi
  stop_director
  cleanup_ns
}

cleanup_ns() {
  for ns in "$C" "$D" "${RS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  sleep 0.2
  for ns in "$C" "$D" "${RS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}

for m in ${LVS_TUN_METHODS:-nat tun dr health sync}; do
  echo "--- $m"
  if [[ $m == sync ]]; then
    # Two directors (master and backup) with connection sync: its own topology and script.
    if LVS_TUN_BIN=$BIN "$ROOT/scripts/lvs-tun-sync-test.sh"; then ok "sync: failover script"; else bad "sync: failover script"; fi
    continue
  fi
  run_method "$m"
done
if [[ $FAIL -gt 0 ]]; then
  echo "--- director log"; tail -n 30 "$WORK/director.log" || true
  [[ -f $WORK/decap.log ]] && { echo "--- decap log"; tail -n 10 "$WORK/decap.log"; }
fi
echo "lvs-tun netns: $PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
