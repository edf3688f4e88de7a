#!/usr/bin/env bash
# lvs-tun-setup.sh: the routing an operator needs around lvs-tun (README "lvs-tun").
# Run as root on the machine named by the first argument, after `lvs-tun run` (or
# `lvs-tun decap`) has created its device. Addresses containing ':' are IPv6.
#
#   director-nat DEV RS_IF RS_NET[,RS_NET6] VIP...
#       VIPs routed into DEV; replies from the real servers (RS_NET arriving on RS_IF) routed
#       into DEV through policy table 100 so lvs-tun rewrites them back to the VIP.
#   director-tun DEV VIP...
#       VIPs routed into DEV; DEV may hand back packets from the director's own address
#       (the tunnel source), so accept_local is set on it.
#   director-dr TAP BRIDGE NEXTHOP[,NEXTHOP6] MAC VIP...
#       TAP joins BRIDGE (the real servers' segment); VIPs routed via NEXTHOP, an unused
#       address of the segment whose neighbour entry is lvs-tun's MAC (`lvs-tun run --mac`).
#   rs-dr VIP...
#       On a real server (DR, spec 3.3): VIPs on lo, arp_ignore=1 and arp_announce=2.
#   rs-tun DEV TUNADDR[,TUNADDR6] VIP...
#       On a real server (TUN, spec 3.4) with `lvs-tun decap --dev DEV --local TUNADDR`:
#       TUNADDR routed into DEV (the director tunnels to TUNADDR, routed via the server's own
#       address), VIPs on lo, forwarding on, reverse-path filtering off for the decapsulated
#       packets, arp_ignore / arp_announce as for DR.
set -euo pipefail

is6() { [[ $1 == *:* ]]; }
ipf() { if is6 "$1"; then echo "-6"; else echo "-4"; fi; }
plen() { if is6 "$1"; then echo 128; else echo 32; fi; }
sc() { sysctl -qw "$1=$2"; }

wait_dev() {
  for _ in $(seq 100); do ip link show "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "lvs-tun-setup: device $1 did not appear" >&2; return 1
}

forwarding() {
  sc net.ipv4.ip_forward 1
  sc net.ipv6.conf.all.forwarding 1
}

no_rpf() {
  sc net.ipv4.conf.all.rp_filter 0
  sc net.ipv4.conf.default.rp_filter 0
  for d in "$@"; do sc "net.ipv4.conf.$d.rp_filter" 0; done
}

arp_settings() {
  sc net.ipv4.conf.all.arp_ignore 1
  sc net.ipv4.conf.all.arp_announce 2
  sc net.ipv4.conf.lo.arp_ignore 1
  sc net.ipv4.conf.lo.arp_announce 2
}

vip_on_lo() {
  for v in "$@"; do ip "$(ipf "$v")" addr replace "$v/$(plen "$v")" dev lo $(is6 "$v" && echo nodad); done
}

cmd=${1:?usage: see the header of $0}; shift
case "$cmd" in
  director-nat)
    dev=$1 rsif=$2 nets=$3; shift 3
    wait_dev "$dev"; ip link set "$dev" up
    forwarding; no_rpf "$dev" "$rsif"
    for v in "$@"; do ip "$(ipf "$v")" route replace "$v/$(plen "$v")" dev "$dev"; done
    for n in ${nets//,/ }; do
      ip "$(ipf "$n")" rule add pref 100 iif "$rsif" from "$n" lookup 100
      ip "$(ipf "$n")" route replace default dev "$dev" table 100
    done
    ;;
  director-tun)
    dev=$1; shift
    wait_dev "$dev"; ip link set "$dev" up
    forwarding; no_rpf "$dev"
    sc "net.ipv4.conf.$dev.accept_local" 1
    for v in "$@"; do ip "$(ipf "$v")" route replace "$v/$(plen "$v")" dev "$dev"; done
    ;;
  director-dr)
    tap=$1 br=$2 hops=$3 mac=$4; shift 4
    wait_dev "$tap"; ip link set "$tap" master "$br" up
    forwarding
    for h in ${hops//,/ }; do ip "$(ipf "$h")" neigh replace "$h" lladdr "$mac" dev "$br" nud permanent; done
    for v in "$@"; do
      for h in ${hops//,/ }; do
        if [[ $(ipf "$v") == "$(ipf "$h")" ]]; then
          ip "$(ipf "$v")" route replace "$v/$(plen "$v")" via "$h" dev "$br"
        fi
      done
    done
    ;;
  rs-dr)
    arp_settings; vip_on_lo "$@"
    ;;
  rs-tun)
    dev=$1 addrs=$2; shift 2
    wait_dev "$dev"; ip link set "$dev" up
    forwarding; no_rpf "$dev"; arp_settings
    for a in ${addrs//,/ }; do ip "$(ipf "$a")" route replace "$a/$(plen "$a")" dev "$dev"; done
    vip_on_lo "$@"
    ;;
  *)
    echo "lvs-tun-setup: unknown command $cmd" >&2; exit 2
    ;;
esac
