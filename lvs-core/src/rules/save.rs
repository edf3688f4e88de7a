//! `ipvsadm -S -n`: the save format, ipvsadm's sort order and glibc's IPv6 text form.
//!
//! Each service prints as one `-A` line followed by its real servers' `-a` lines:
//! ```text
//! -A <key> -s <sched>[ -p <timeout>[ -M <mask>]][ --pe <name>][ -o][ -b <flags>]
//! -a <key> -r <addr:port> <-m|-g|-i> -w <weight>[ --tun-type ipip | --tun-type gue --tun-port <p> <csum> | --tun-type gre <csum>]
//! ```
//! `-M` appears only when the mask is not /32 (IPv6: not 128); thresholds are not saved; a
//! local-node real server saves as `-g`. Services are sorted by ipvsadm's `ipvs_cmp_services`
//! (fwmark, family, protocol, address, port) and real servers by `ipvs_cmp_dests` (address,
//! port), with ipvsadm's 32-bit wrapping differences and glibc's merge sort, so even the odd
//! orders those give (addresses more than 2^31 apart compare "backwards": 192.168.1.1 is
//! listed before 10.0.0.1) come out the same.
//!
//! One choice where ipvsadm has no fixed answer: when those wrapping comparisons are not
//! transitive on a set (three addresses spread over more than 2^31, or real servers of both
//! families), ipvsadm's order depends on the order the kernel returned the entries in (hash
//! buckets for services, list order for real servers), so a save restored and saved again
//! can come out differently. We first put the entries in plain numeric order and then run the
//! same merge sort, so the output depends only on the set of rules: where ipvsadm's result is
//! well defined it is reproduced exactly, and saving is always a fixed point of restoring.
//! The protocol timeouts are not part of the save, as with ipvsadm.

use core::fmt::{self, Write as _};
use core::net::{IpAddr, Ipv6Addr};

use super::model::{
    DestConfig, Family, Forward, PersistMask, ServiceConfig, ServiceKey, TunnelType,
};
use super::ruleset::RuleSet;
use crate::protocol::Protocol;
use crate::sched::{SchedFlags, SchedKind};

/// `a.b.c.d:port` or `[v6]:port`: a real server or virtual address as `ipvsadm -n` prints it.
///
/// ```
/// use lvs_core::rules::save::addr_port;
/// assert_eq!(addr_port("10.0.0.1".parse().unwrap(), 80), "10.0.0.1:80");
/// assert_eq!(addr_port("::ffff:10.0.0.1".parse().unwrap(), 0), "[::ffff:10.0.0.1]:0");
/// ```
pub fn addr_port(addr: IpAddr, port: u16) -> String {
    super::error::fmt_addr_port(addr, port).to_string()
}

/// Writes the rule set as `ipvsadm -S -n` does.
pub(crate) fn save(rules: &RuleSet) -> String {
    let mut services: Vec<(&ServiceConfig, &[DestConfig])> = rules.services().collect();
    sort_services_by(&mut services, |s| &s.0.key);
    let mut out = String::new();
    for (svc, dests) in services {
        write_service(&mut out, svc);
        let mut dests: Vec<&DestConfig> = dests.iter().collect();
        sort_dests_by(&mut dests, |d| (&d.addr, d.port));
        for d in dests {
            write_dest(&mut out, &svc.key, d);
        }
    }
    out
}

fn write_service(out: &mut String, svc: &ServiceConfig) {
    // Writing into a String cannot fail.
    let _ = write!(out, "-A {} -s {}", svc.key, svc.scheduler.name());
    if let Some(p) = &svc.persistence {
        let _ = write!(out, " -p {}", p.timeout_secs);
        if !p.mask.is_default() {
            match p.mask {
                PersistMask::V4(m) => {
                    let _ = write!(out, " -M {m}");
                }
                PersistMask::V6(plen) => {
                    let _ = write!(out, " -M {plen}");
                }
            }
        }
    }
    if let Some(pe) = &svc.pe {
        let _ = write!(out, " --pe {pe}");
    }
    if svc.one_packet {
        out.push_str(" -o");
    }
    if !svc.flags.is_empty() {
        out.push_str(" -b ");
        out.push_str(&sched_flags_text(svc.scheduler, svc.flags));
    }
    out.push('\n');
}

fn write_dest(out: &mut String, key: &ServiceKey, d: &DestConfig) {
    let _ = write!(
        out,
        "-a {key} -r {} {} -w {}",
        super::error::fmt_addr_port(d.addr, d.port),
        d.forward.switch(),
        d.weight
    );
    if d.forward == Forward::Tunnel {
        let t = d.tunnel;
        let _ = match t.kind {
            TunnelType::Ipip => write!(out, " --tun-type ipip"),
            TunnelType::Gue => {
                write!(
                    out,
                    " --tun-type gue --tun-port {} {}",
                    t.port,
                    t.csum.option()
                )
            }
            TunnelType::Gre => write!(out, " --tun-type gre {}", t.csum.option()),
        };
    }
    out.push('\n');
}

/// ipvsadm's `print_sched_flags`: `sh-fallback,sh-port` for sh, `mh-*` for mh, `flag-N`
/// otherwise (comma separated, no trailing comma).
pub(crate) fn sched_flags_text(sched: SchedKind, flags: SchedFlags) -> String {
    let names: [(SchedFlags, &str); 3] = match sched {
        SchedKind::Sh => [
            (SchedFlags::SCHED1, "sh-fallback"),
            (SchedFlags::SCHED2, "sh-port"),
            (SchedFlags::empty(), ""),
        ],
        SchedKind::Mh => [
            (SchedFlags::SCHED1, "mh-fallback"),
            (SchedFlags::SCHED2, "mh-port"),
            (SchedFlags::empty(), ""),
        ],
        _ => [
            (SchedFlags::SCHED1, "flag-1"),
            (SchedFlags::SCHED2, "flag-2"),
            (SchedFlags::SCHED3, "flag-3"),
        ],
    };
    let mut s = String::new();
    for (bit, name) in names {
        if !bit.is_empty() && flags.contains(bit) {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(name);
        }
    }
    s
}

/// Sorts services as ipvsadm does (see the module docs): a canonical numeric order first, so
/// the result never depends on creation order, then glibc's merge sort with
/// [`cmp_services`].
pub(crate) fn sort_services_by<T: Copy>(v: &mut [T], key: impl Fn(&T) -> &ServiceKey) {
    v.sort_by_key(|t| canonical_service(key(t)));
    glibc_msort(v, |a, b| cmp_services(key(a), key(b)));
}

/// Sorts real servers as ipvsadm does: a canonical numeric order first (so the result never
/// depends on the kernel list order), then glibc's merge sort with `ipvs_cmp_dests`.
pub(crate) fn sort_dests_by<T: Copy>(v: &mut [T], key: impl Fn(&T) -> (&IpAddr, u16)) {
    v.sort_by_key(|t| {
        let (a, p) = key(t);
        (a.is_ipv6(), words(a), p)
    });
    glibc_msort(v, |a, b| {
        let ((a, ap), (b, bp)) = (key(a), key(b));
        cmp_dest_addrs(a, ap, b, bp)
    });
}

fn canonical_service(k: &ServiceKey) -> (u32, u16, u8, [u32; 4], u16) {
    match k {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => (
            0,
            Family::of(addr).af(),
            protocol.number(),
            words(addr),
            *port,
        ),
        ServiceKey::Fwmark { mark, family } => (*mark, family.af(), 6, [0; 4], 0),
    }
}

/// An address as four host-order 32-bit words, as in `union nf_inet_addr` (IPv4 in the first
/// word, the rest zero).
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

/// `a - b` on 32-bit unsigned values, read as a C `int` (what ipvsadm's comparators do).
fn wrap_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// `ipvs_cmp_services` from libipvs: fwmark, then family, protocol, address, port, each as a
/// wrapping 32-bit difference. fwmark services carry protocol TCP and address 0, as ipvsadm
/// creates them.
pub(crate) fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i32 {
    fn parts(k: &ServiceKey) -> (u32, Family, u8, [u32; 4], u16) {
        match k {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => (0, Family::of(addr), protocol.number(), words(addr), *port),
            ServiceKey::Fwmark { mark, family } => {
                (*mark, *family, Protocol::Tcp.number(), [0; 4], 0)
            }
        }
    }
    let (ma, fa, pa, wa, qa) = parts(a);
    let (mb, fb, pb, wb, qb) = parts(b);
    let r = wrap_diff(ma, mb);
    if r != 0 {
        return r;
    }
    let r = i32::from(fa.af()) - i32::from(fb.af());
    if r != 0 {
        return r;
    }
    let r = i32::from(pa) - i32::from(pb);
    if r != 0 {
        return r;
    }
    let r = if fa == Family::V6 {
        (0..4)
            .map(|i| wrap_diff(wa[i], wb[i]))
            .find(|&r| r != 0)
            .unwrap_or(0)
    } else {
        wrap_diff(wa[0], wb[0])
    };
    if r != 0 {
        return r;
    }
    i32::from(qa) - i32::from(qb)
}

/// `ipvs_cmp_dests` from libipvs: address (all four words when the *first* one is IPv6, else
/// the first word only), then port.
pub(crate) fn cmp_dest_addrs(a: &IpAddr, ap: u16, b: &IpAddr, bp: u16) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let r = if a.is_ipv6() {
        (0..4)
            .map(|i| wrap_diff(wa[i], wb[i]))
            .find(|&r| r != 0)
            .unwrap_or(0)
    } else {
        wrap_diff(wa[0], wb[0])
    };
    if r != 0 {
        return r;
    }
    i32::from(ap) - i32::from(bp)
}

/// glibc's `qsort` (`msort_with_tmp`): a top-down merge sort whose left half has `n / 2`
/// elements and which takes from the left run while `cmp(left, right) <= 0`. Reproducing it
/// gives ipvsadm's order even when its comparators are not a total order; it never panics
/// whatever `cmp` answers.
pub(crate) fn glibc_msort<T: Copy>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> i32) {
    let mut tmp = Vec::with_capacity(v.len());
    msort_rec(v, &mut tmp, &mut cmp);
}

fn msort_rec<T: Copy>(v: &mut [T], tmp: &mut Vec<T>, cmp: &mut impl FnMut(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    msort_rec(&mut v[..n1], tmp, cmp);
    msort_rec(&mut v[n1..], tmp, cmp);
    tmp.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            tmp.push(v[i]);
            i += 1;
        } else {
            tmp.push(v[j]);
            j += 1;
        }
    }
    // What is left of the left run goes next; what is left of the right run is in place.
    tmp.extend_from_slice(&v[i..n1]);
    v[..tmp.len()].copy_from_slice(tmp);
}

/// An IPv6 address in glibc `inet_ntop` form: lowercase hex, the first longest run of two or
/// more zero groups as `::`, and a dotted IPv4 tail for `::a.b.c.d` and `::ffff:a.b.c.d`.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Text(pub Ipv6Addr);

impl fmt::Display for Ipv6Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.0.segments();
        // First longest run of zero words, if at least 2 long.
        let (mut best_base, mut best_len) = (usize::MAX, 0usize);
        let mut i = 0;
        while i < 8 {
            if w[i] == 0 {
                let start = i;
                while i < 8 && w[i] == 0 {
                    i += 1;
                }
                if i - start > best_len {
                    best_base = start;
                    best_len = i - start;
                }
            } else {
                i += 1;
            }
        }
        if best_len < 2 {
            best_base = usize::MAX;
            best_len = 0;
        }
        let in_best =
            |i: usize| best_base != usize::MAX && i >= best_base && i < best_base + best_len;
        for i in 0..8 {
            if in_best(i) {
                if i == best_base {
                    f.write_str(":")?;
                }
                continue;
            }
            if i != 0 {
                f.write_str(":")?;
            }
            if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
                let o = self.0.octets();
                return write!(f, "{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
            }
            write!(f, "{:x}", w[i])?;
        }
        if best_base != usize::MAX && best_base + best_len == 8 {
            f.write_str(":")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> String {
        Ipv6Text(s.parse().unwrap()).to_string()
    }

    #[test]
    fn ipv6_text_matches_glibc_forms() {
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("2001:db8::1"), "2001:db8::1");
        assert_eq!(v6("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(v6("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
        assert_eq!(v6("1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7");
        assert_eq!(v6("::ffff:10.1.2.3"), "::ffff:10.1.2.3");
        assert_eq!(v6("::10.1.2.3"), "::10.1.2.3");
        assert_eq!(v6("::2"), "::2");
        assert_eq!(v6("fe80::"), "fe80::");
        assert_eq!(v6("1::"), "1::");
        assert_eq!(v6("0:0:1::"), "0:0:1::");
        assert_eq!(v6("ABCD:EF::"), "abcd:ef::");
    }

    #[test]
    fn msort_sorts_and_survives_bad_comparators() {
        let mut v = [5, 3, 9, 1, 1, 7, 0];
        glibc_msort(&mut v, |a, b| a - b);
        assert_eq!(v, [0, 1, 1, 3, 5, 7, 9]);
        let mut v: Vec<u32> = (0..50u32)
            .map(|i| i.wrapping_mul(2654435761) ^ 0x5555)
            .collect();
        glibc_msort(&mut v, |a, b| wrap_diff(*a, *b)); // not transitive: must not panic
        let mut w = v.clone();
        w.sort();
        let mut v2 = v.clone();
        v2.sort();
        assert_eq!(v2, w);
    }

    #[test]
    fn wrapping_comparator_orders_far_addresses_backwards() {
        // 10.0.0.1 - 192.168.1.1 wraps to a positive int: ipvsadm lists 192.168.1.1 first.
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "192.168.1.1".parse().unwrap();
        assert!(cmp_dest_addrs(&a, 80, &b, 80) > 0);
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(cmp_dest_addrs(&a, 80, &c, 80) < 0);
    }
}
