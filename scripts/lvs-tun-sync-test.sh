#!/usr/bin/env bash
# Director failover with connection sync, in network namespaces (run as root; called by
# scripts/lvs-tun-netns-test.sh, which CI runs).
#
#   client 10.0.0.2 --[brc]-- d1 (10.0.0.11 | 10.0.1.21)  --[brs]-- rs1 10.0.1.11, rs2 10.0.1.12
#                     \------ d2 (10.0.0.12 | 10.0.1.22) ---/
#   Both bridges live in a switch namespace. The active director holds the gateway addresses
#   10.0.0.1 and 10.0.1.1 (what keepalived's VRRP instance would move); VIP 10.100.0.1:80, NAT.
#
# d1 runs `lvs-tun run --role master --sync-dev eS`, d2 `--role backup --sync-dev eS`; sync
# datagrams go to 224.0.0.81:8848 over brs. A rate-limited 20 MB download starts through d1;
# d2's table (`ctl -L -n -c`) shows the synced connection with the same real server; the roles
# switch as keepalived's notify hooks would switch them (`ctl --role backup` on d1, the
# gateway addresses move, `ctl --role master` on d2) and the download completes through d2.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${LVS_TUN_BIN:-$ROOT/target/debug/lvs-tun}
SETUP=$ROOT/scripts/lvs-tun-setup.sh
SERVER=$ROOT/scripts/lvs-tun-testserver.py
ID=$$
SW=lss$ID C=lsc$ID D1=lsd1$ID D2=lsd2$ID R1=lsr1$ID R2=lsr2$ID
ALL=("$SW" "$C" "$D1" "$D2" "$R1" "$R2")
WORK=$(mktemp -d /tmp/lvs-tun-sync.XXXXXX)
PASS=0 FAIL=0

if [[ ! -x $BIN ]]; then cargo build -q -p lvs-tun; fi

cleanup() {
  for ns in "${ALL[@]}"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  sleep 0.2
  for ns in "${ALL[@]}"; do
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
ctl() { local ns=$1; shift; inns "$ns" "$BIN" ctl --socket "$WORK/$ns.sock" "$@"; }
metric() { # ns name{labels} -> value
  inns "$1" curl -s -m 2 http://127.0.0.1:9101/metrics | awk -v k="$2" 'index($0, k" ") == 1 {print $2}'
}

# --- topology
for ns in "${ALL[@]}"; do ip netns add "$ns"; inns "$ns" ip link set lo up; done
for br in brc brs; do
  inns "$SW" ip link add $br type bridge mcast_snooping 0
  inns "$SW" ip link set $br up
done
K=0
port() { # ns ifname bridge
  K=$((K + 1))
  ip link add "$2" netns "$1" type veth peer name "s$K" netns "$SW"
  inns "$SW" ip link set "s$K" master "$3" up
  inns "$1" ip link set "$2" up
}
port "$C" c0 brc
inns "$C" ip addr add 10.0.0.2/24 dev c0
inns "$C" ip route add default via 10.0.0.1
# A small receive window: the rate-limited download's bytes cross the directors as curl reads
# them, instead of piling up in the client's socket buffer before the switch.
inns "$C" sysctl -qw net.ipv4.tcp_rmem="4096 65536 131072"
i=0
for d in "$D1" "$D2"; do
  i=$((i + 1))
  port "$d" eC brc
  port "$d" eS brs
  inns "$d" ip addr add 10.0.0.1$i/24 dev eC
  inns "$d" ip addr add 10.0.1.2$i/24 dev eS
done
i=0
for r in "$R1" "$R2"; do
  i=$((i + 1))
  port "$r" eth0 brs
  inns "$r" ip addr add 10.0.1.1$i/24 dev eth0
  inns "$r" ip route add default via 10.0.1.1
  inns "$r" python3 "$SERVER" rs$i >/dev/null 2>&1 &
done
for r in "$R1" "$R2"; do
  for _ in $(seq 100); do inns "$r" curl -s -m 1 -o /dev/null http://127.0.0.1/ && break; sleep 0.1; done
done

# The gateway addresses keepalived's VRRP instance would hold: on d1 first.
gateway() { # ns add|del
  inns "$1" ip addr "$2" 10.0.0.1/24 dev eC
  inns "$1" ip addr "$2" 10.0.1.1/24 dev eS
}

printf -- '-A -t 10.100.0.1:80 -s rr\n-a -t 10.100.0.1:80 -r 10.0.1.11:80 -m\n-a -t 10.100.0.1:80 -r 10.0.1.12:80 -m\n' >"$WORK/rules"
i=0
for d in "$D1" "$D2"; do
  i=$((i + 1))
  role=backup; [[ $d == "$D1" ]] && role=master
  inns "$d" env LVS_TUN_LOG=info "$BIN" run --rules "$WORK/rules" --dev lvs0 --local 10.0.1.2$i \
    --socket "$WORK/$d.sock" --metrics 127.0.0.1:9101 --role $role --sync-dev eS --sync-syncid 7 \
    2>>"$WORK/$d.log" &
  inns "$d" "$SETUP" director-nat lvs0 eS 10.0.1.0/24 10.100.0.1
done
gateway "$D1" add
for d in "$D1" "$D2"; do
  for _ in $(seq 50); do [[ -S $WORK/$d.sock ]] && break; sleep 0.1; done
done

# --- a download through the master
inns "$C" curl -s -m 60 --limit-rate 2M -D "$WORK/big.h" -o "$WORK/big" http://10.100.0.1/big &
CPID=$!
srv=""
for _ in $(seq 50); do
  srv=$(awk -F': ' 'tolower($1)=="x-server" {print $2}' "$WORK/big.h" 2>/dev/null | tr -d '\r' || true)
  [[ -n $srv ]] && break
  sleep 0.1
done
n=${srv#rs}
check "sync: download started through the master on a real server ($srv)" test -n "$n"
conn_re="TCP .* 10\.0\.0\.2:[0-9]+ +10\.100\.0\.1:80 +10\.0\.1\.1$n:80"
check "sync: the master's table holds the connection" grep -Eq "$conn_re" <<<"$(ctl "$D1" -L -n -c)"
# The master closes a partly filled datagram within 2 s; the backup applies it.
synced=""
for _ in $(seq 40); do
  synced=$(ctl "$D2" -L -n -c | grep -E "$conn_re" || true)
  [[ -n $synced ]] && break
  sleep 0.1
done
check "sync: the backup's ctl -L -n -c shows the synced connection to the same real server [$synced]" \
  grep -q ESTABLISHED <<<"$synced"
check "sync: master counts sent datagrams" test "$(metric "$D1" lvs_tun_sync_sent_datagrams_total)" -gt 0
check "sync: backup counts applied datagrams" test "$(metric "$D2" lvs_tun_sync_applied_datagrams_total)" -gt 0
check "sync: backup role in metrics" test "$(metric "$D2" 'lvs_tun_role{role="backup"}')" = 1
# The backup forwards nothing: a request from its own namespace into its device is dropped.
inns "$D2" curl -s -m 1 -o /dev/null http://10.100.0.1/ || true
check "sync: the backup drops traffic under reason backup" \
  test "$(metric "$D2" 'lvs_tun_drops_total{reason="backup"}')" -gt 0

# --- failover, as keepalived's notify hooks and VRRP would do it
at=$(stat -c %s "$WORK/big" 2>/dev/null || echo 0)
check "sync: the download is still running at the switch ($at bytes so far)" \
  bash -c "kill -0 $CPID && test $at -lt $((16 * 1024 * 1024))"
if r=$(ctl "$D1" --role backup); then ok "sync: ctl --role backup on the master: $r"; else bad "sync: ctl --role backup on the master"; fi
gateway "$D1" del
gateway "$D2" add
if r=$(ctl "$D2" --role master); then ok "sync: ctl --role master on the backup: $r"; else bad "sync: ctl --role master on the backup"; fi
inns "$C" ip neigh flush dev c0
for r in "$R1" "$R2"; do inns "$r" ip neigh flush dev eth0; done
check "sync: the role change is logged" grep -q "role change" "$WORK/$D2.log"
check "sync: repeated notification is a no-op" bash -c "'$BIN' ctl --socket '$WORK/$D2.sock' --role MASTER | grep -q unchanged"
check "sync: a bad role word is refused" bash -c "! ip netns exec '$D2' '$BIN' ctl --socket '$WORK/$D2.sock' --role primary 2>/dev/null"
rc=0
wait "$CPID" || rc=$?
size=$(stat -c %s "$WORK/big" 2>/dev/null || echo 0)
check "sync: the 20 MB download completed through the new master (curl exit $rc, $size bytes)" \
  test "$rc" = 0 -a "$size" = $((20 * 1024 * 1024))
out_bytes=$(metric "$D2" node_ipvs_outgoing_bytes_total)
check "sync: the new master carried the rest of it ($out_bytes bytes out, $((20 * 1024 * 1024 - at)) left at the switch)" \
  test "${out_bytes:-0}" -ge $((20 * 1024 * 1024 - at - 1024 * 1024))
check "sync: the new master's table still names $srv" grep -Eq "$conn_re" <<<"$(ctl "$D2" -L -n -c)"
out=$(for _ in 1 2 3 4; do inns "$C" curl -s -m 3 http://10.100.0.1/ || echo failed; done | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')
check "sync: new requests go through the new master, rr [$out]" test "$out" = "rs1=2 rs2=2 "
check "sync: the old master is backup and applies the new master's sync ($(metric "$D1" lvs_tun_sync_applied_datagrams_total) datagrams)" \
  test "$(metric "$D1" 'lvs_tun_role{role="backup"}')" = 1 -a "$(metric "$D1" lvs_tun_sync_applied_datagrams_total)" -gt 0

if [[ $FAIL -gt 0 ]]; then
  for d in "$D1" "$D2"; do echo "--- $d log"; tail -n 20 "$WORK/$d.log" || true; done
fi
echo "lvs-tun sync: $PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
