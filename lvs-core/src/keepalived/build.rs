//! Statement tree → settings and rule set, with keepalived's keywords, defaults and checks.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::BTreeMap;

use super::error::{ErrorKind, KeepalivedError, Level, Warning};
use super::lexer::{Pos, Stmt, Word};
use super::model::*;
use super::{KeepalivedConfig, MAX_DESTS, MAX_GROUP_SERVICES, MAX_REAL_SERVERS, MAX_SERVICES};
use crate::protocol::Protocol;
use crate::rules::{
    Command, DestConfig, Family, Forward, PersistMask, Persistence, RuleSet, ServiceConfig,
    ServiceKey, TunnelConfig, TunnelCsum, TunnelType,
};
use crate::sched::{SchedFlags, SchedKind};
use crate::time::Duration;

type Res<T> = Result<T, KeepalivedError>;

/// Schedulers keepalived accepts (`lvs_schedulers[]` in keepalived/check/check_parser.c);
/// `twos` is not among them.
const KEEPALIVED_SCHEDULERS: [&str; 13] = [
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq",
];

/// Top-level blocks of keepalived.conf that belong to other parts of keepalived (VRRP, BFD,
/// global settings, …): skipped with an info note.
const OTHER_TOP_LEVEL: [&str; 22] = [
    "global_defs",
    "vrrp_instance",
    "vrrp_sync_group",
    "vrrp_script",
    "vrrp_track_process",
    "vrrp_track_file",
    "track_file",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_interfaces",
    "net_namespace",
    "net_namespace_ipvs",
    "instance",
    "use_pid_dir",
    "bfd_instance",
    "SSL",
    "garp_group",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "lvs_sync_daemon",
    "lvs_flush",
];

pub(crate) struct Ctx<'a> {
    pub files: &'a [String],
    pub warnings: Vec<Warning>,
}

impl Ctx<'_> {
    fn err(&self, pos: Pos, kind: ErrorKind) -> KeepalivedError {
        KeepalivedError {
            file: self.files[pos.file].clone(),
            line: pos.line,
            column: pos.column,
            kind,
        }
    }

    fn note(&mut self, level: Level, pos: Pos, message: String) {
        self.warnings.push(Warning {
            level,
            file: self.files[pos.file].clone(),
            line: pos.line,
            column: pos.column,
            message,
        });
    }

    fn warn(&mut self, pos: Pos, message: String) {
        self.note(Level::Warning, pos, message);
    }

    fn unknown(&mut self, st: &Stmt, within: &str) {
        let extra = if st.block.is_some() {
            " (its block is skipped)"
        } else {
            ""
        };
        self.warn(
            st.pos(),
            format!(
                "unknown keyword '{}' in {within}, ignored{extra}",
                st.keyword()
            ),
        );
    }

    fn not_modelled(&mut self, st: &Stmt) {
        self.note(
            Level::Info,
            st.pos(),
            format!(
                "'{}' is accepted but not part of the LVS model, ignored",
                st.keyword()
            ),
        );
    }

    /// Warns about words past the `n` a keyword takes (keepalived reads only its slots).
    fn at_most(&mut self, st: &Stmt, n: usize) {
        if st.words.len() > n + 1 {
            let w = &st.words[n + 1];
            self.warn(
                w.pos,
                format!(
                    "'{}' takes {n} value{}; extra words from {:?} on are ignored",
                    st.keyword(),
                    if n == 1 { "" } else { "s" },
                    w.text
                ),
            );
        }
    }

    fn no_block(&mut self, st: &Stmt) {
        if st.block.is_some() {
            self.warn(
                st.pos(),
                format!("'{}' takes no block; the block is ignored", st.keyword()),
            );
        }
    }

    fn arg<'s>(&self, st: &'s Stmt, i: usize, expected: &'static str) -> Res<&'s Word> {
        st.words.get(i).ok_or_else(|| {
            self.err(
                st.pos(),
                ErrorKind::MissingValue {
                    keyword: st.keyword().to_string(),
                    expected,
                },
            )
        })
    }

    fn bad(&self, st: &Stmt, w: &Word, expected: &'static str) -> KeepalivedError {
        self.err(
            w.pos,
            ErrorKind::BadValue {
                keyword: st.keyword().to_string(),
                expected,
                found: w.text.clone(),
            },
        )
    }

    /// One number in `min..=max` (plain decimal digits).
    fn num(&mut self, st: &Stmt, min: u64, max: u64, expected: &'static str) -> Res<u64> {
        let w = self.arg(st, 1, expected)?;
        let v = parse_u64(&w.text)
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| self.bad(st, w, expected))?;
        self.at_most(st, 1);
        self.no_block(st);
        Ok(v)
    }

    fn num32(&mut self, st: &Stmt, min: u32, max: u32, expected: &'static str) -> Res<u32> {
        // `num` checks the range, so the value fits.
        Ok(self.num(st, min.into(), max.into(), expected)? as u32)
    }

    /// A time in seconds, decimals allowed to the microsecond (keepalived's `read_timer`).
    fn timer(&mut self, st: &Stmt, positive: bool) -> Res<Duration> {
        let expected = if positive {
            "a time in seconds greater than 0 (decimals allowed)"
        } else {
            "a time in seconds (decimals allowed)"
        };
        let w = self.arg(st, 1, expected)?;
        let d = parse_timer(&w.text)
            .filter(|d| !positive || d.as_nanos() > 0)
            .ok_or_else(|| self.bad(st, w, expected))?;
        self.at_most(st, 1);
        self.no_block(st);
        Ok(d)
    }

    /// An optional `true|false|yes|no|on|off` (absent = true), as `check_true_false`.
    fn flag(&mut self, st: &Stmt) -> Res<bool> {
        self.no_block(st);
        let Some(w) = st.words.get(1) else {
            return Ok(true);
        };
        self.at_most(st, 1);
        match w.text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(true),
            "false" | "no" | "off" => Ok(false),
            _ => Err(self.bad(st, w, "true, false, yes, no, on or off")),
        }
    }

    /// The rest of the line as one string (keepalived's `set_value` / script command lines).
    fn rest(&mut self, st: &Stmt, expected: &'static str) -> Res<String> {
        self.arg(st, 1, expected)?;
        self.no_block(st);
        Ok(st.words[1..]
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" "))
    }

    fn ip(&self, st: &Stmt, w: &Word) -> Res<IpAddr> {
        parse_ip(&w.text).ok_or_else(|| self.bad(st, w, "a numeric IPv4 or IPv6 address"))
    }

    fn port(&self, st: &Stmt, w: &Word) -> Res<u16> {
        parse_u64(&w.text)
            .filter(|p| *p <= 65535)
            .map(|p| p as u16)
            .ok_or_else(|| self.bad(st, w, "a port number 0..=65535"))
    }

    /// Once-only string settings: a second one is ignored with a warning, as keepalived does
    /// for notify scripts.
    fn once(&mut self, st: &Stmt, slot: &mut Option<String>, value: String) {
        if slot.is_some() {
            self.warn(
                st.pos(),
                format!("'{}' already specified, this one is ignored", st.keyword()),
            );
        } else {
            *slot = Some(value);
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// `S[.ffffff]` seconds → a duration; at most 6 decimals and `u32::MAX` seconds.
fn parse_timer(s: &str) -> Option<Duration> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let secs = if int.is_empty() { 0 } else { parse_u64(int)? };
    if secs > u64::from(u32::MAX) || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros = 0u64;
    for i in 0..6 {
        micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
    }
    Some(Duration::from_nanos(secs * 1_000_000_000 + micros * 1000))
}

/// `lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`
/// (`svr_forwarding_handler` in keepalived/check/check_parser.c).
fn forwarding(ctx: &mut Ctx<'_>, st: &Stmt) -> Res<(Forward, TunnelConfig)> {
    let w = ctx.arg(st, 1, "NAT, DR or TUN")?;
    ctx.no_block(st);
    let forward = match w.text.as_str() {
        "NAT" => Forward::Masq,
        "DR" => Forward::DirectRoute,
        "TUN" => Forward::Tunnel,
        _ => return Err(ctx.bad(st, w, "NAT, DR or TUN")),
    };
    let mut t = TunnelConfig::default();
    let mut i = 2;
    while i < st.words.len() {
        let w = &st.words[i];
        match w.text.as_str() {
            "type" => {
                let v = st
                    .words
                    .get(i + 1)
                    .ok_or_else(|| ctx.bad(st, w, "a tunnel type after 'type'"))?;
                t.kind = match v.text.as_str() {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(ctx.bad(st, v, "tunnel type ipip, gue or gre")),
                };
                i += 2;
            }
            "port" => {
                let v = st
                    .words
                    .get(i + 1)
                    .ok_or_else(|| ctx.bad(st, w, "a GUE port after 'port'"))?;
                t.port = parse_u64(&v.text)
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or_else(|| ctx.bad(st, v, "a GUE port 1..=65535"))?
                    as u16;
                i += 2;
            }
            "nocsum" => {
                t.csum = TunnelCsum::NoCsum;
                i += 1;
            }
            "csum" => {
                t.csum = TunnelCsum::Csum;
                i += 1;
            }
            "remcsum" => {
                t.csum = TunnelCsum::RemCsum;
                i += 1;
            }
            _ => return Err(ctx.bad(st, w, "tunnel option type, port, nocsum, csum or remcsum")),
        }
    }
    let at = st.words[1].clone();
    if (t.kind == TunnelType::Gue) != (t.port != 0) {
        return Err(ctx.bad(st, &at, "a port with 'type gue', and no port otherwise"));
    }
    if t.kind == TunnelType::Ipip && t.csum != TunnelCsum::NoCsum {
        return Err(ctx.bad(st, &at, "no checksum option with an ipip tunnel"));
    }
    if t.kind == TunnelType::Gre && t.csum == TunnelCsum::RemCsum {
        return Err(ctx.bad(st, &at, "no remcsum with a gre tunnel"));
    }
    if forward != Forward::Tunnel {
        if t != TunnelConfig::default() {
            ctx.warn(
                at.pos,
                format!("tunnel options with {} are ignored", at.text),
            );
        }
        t = TunnelConfig::default();
    }
    Ok((forward, t))
}

// ---------------------------------------------------------------------------------------------
// Raw (unresolved) settings, as written.

#[derive(Default)]
struct Common {
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
}

impl Common {
    /// The keywords virtual servers, real servers and checkers share.
    fn keyword(&mut self, ctx: &mut Ctx<'_>, st: &Stmt) -> Res<bool> {
        match st.keyword() {
            "retry" | "nb_get_retry" => {
                // keepalived refuses 0 for the virtual/real server `retry` but a checker's own
                // `retry 0` means "no retry"; we take 0 everywhere.
                self.retry = Some(ctx.num32(st, 0, u32::MAX, "a retry count")?)
            }
            "delay_before_retry" => self.delay_before_retry = Some(ctx.timer(st, false)?),
            "warmup" => self.warmup = Some(ctx.timer(st, false)?),
            "delay_loop" => self.delay_loop = Some(ctx.timer(st, true)?),
            "connect_timeout" => self.connect_timeout = Some(ctx.timer(st, true)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

struct RawChecker {
    kind: CheckerKind,
    misc_timeout: Option<Duration>,
    common: Common,
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
    alpha: Option<bool>,
    fwmark: Option<u32>,
}

struct RawRs {
    addr: IpAddr,
    port: Option<u16>,
    pos: Pos,
    weight: Option<u32>,
    forward: Option<(Forward, TunnelConfig)>,
    u_threshold: u32,
    l_threshold: u32,
    inhibit: Option<bool>,
    alpha: Option<bool>,
    notify_up: Option<String>,
    notify_down: Option<String>,
    common: Common,
    checkers: Vec<RawChecker>,
}

struct RawSorry {
    addr: IpAddr,
    port: Option<u16>,
    pos: Pos,
    forward: Option<(Forward, TunnelConfig)>,
    inhibit: bool,
}

struct RawVs {
    name: VirtualServerName,
    pos: Pos,
    family: Option<Family>,
    protocol: Option<(Protocol, Pos)>,
    sched: Option<SchedKind>,
    flags: SchedFlags,
    one_packet: Option<Pos>,
    persistence_timeout: Option<u32>,
    granularity: Option<(Word, Stmt)>,
    pe: Option<String>,
    forward: Option<(Forward, TunnelConfig)>,
    common: Common,
    inhibit: bool,
    alpha: bool,
    omega: bool,
    quorum: u32,
    hysteresis: u32,
    quorum_up: Option<String>,
    quorum_down: Option<String>,
    weight: u32,
    ha_suspend: bool,
    virtualhost: Option<String>,
    sorry: Option<RawSorry>,
    rs: Vec<RawRs>,
}

/// One entry of a `virtual_server_group`.
#[derive(Clone)]
enum GroupEntry {
    Addr(IpAddr, u16),
    Fwmark(u32, Option<Family>),
}

// ---------------------------------------------------------------------------------------------

/// Interprets the top-level statements.
pub(crate) fn build(ctx: &mut Ctx<'_>, stmts: &[Stmt]) -> Res<KeepalivedConfig> {
    // Groups first: keepalived resolves `virtual_server group NAME` after reading everything.
    let mut groups: BTreeMap<String, Vec<GroupEntry>> = BTreeMap::new();
    for st in stmts {
        if st.keyword() == "virtual_server_group" {
            if let Some((name, entries)) = group(ctx, st)? {
                if groups.insert(name.clone(), entries).is_some() {
                    ctx.warn(
                        st.pos(),
                        format!(
                            "virtual_server_group {name:?} defined again; this one replaces it"
                        ),
                    );
                }
            }
        }
    }
    let mut raws = Vec::new();
    for st in stmts {
        match st.keyword() {
            "virtual_server_group" => {}
            "virtual_server" => raws.push(virtual_server(ctx, st)?),
            k if OTHER_TOP_LEVEL.contains(&k) || k.starts_with("vrrp_") => ctx.note(
                Level::Info,
                st.pos(),
                format!("'{k}' is not part of the LVS configuration, skipped"),
            ),
            _ => ctx.unknown(st, "the top level"),
        }
    }
    let mut rules = RuleSet::new();
    let mut services = Vec::new();
    // An upper bound of the real-server entries so far (for MAX_DESTS).
    let mut dest_total = 0;
    for raw in raws {
        if let Some(vs) = resolve(ctx, raw, &groups, &mut rules, &mut dest_total)? {
            services.push(vs);
        }
    }
    Ok(KeepalivedConfig {
        rules,
        services,
        warnings: Vec::new(),
        files: Vec::new(),
    })
}

fn group(ctx: &mut Ctx<'_>, st: &Stmt) -> Res<Option<(String, Vec<GroupEntry>)>> {
    let name = ctx.arg(st, 1, "a group name")?.text.clone();
    ctx.at_most(st, 1);
    let Some(block) = &st.block else {
        return Err(ctx.err(
            st.pos(),
            ErrorKind::ExpectedBlock {
                keyword: st.keyword().into(),
            },
        ));
    };
    let mut entries = Vec::new();
    let mut count = 0usize;
    for e in block {
        if e.keyword() == "fwmark" {
            let w = ctx.arg(e, 1, "a firewall mark 1..=4294967295")?;
            let mark = parse_u64(&w.text)
                .filter(|m| (1..=u64::from(u32::MAX)).contains(m))
                .ok_or_else(|| ctx.bad(e, w, "a firewall mark 1..=4294967295"))?
                as u32;
            let fam = match e.words.get(2).map(|w| w.text.as_str()) {
                None => None,
                Some("inet") => Some(Family::V4),
                Some("inet6") => Some(Family::V6),
                Some(_) => return Err(ctx.bad(e, &e.words[2], "inet or inet6")),
            };
            ctx.at_most(e, 2);
            entries.push(GroupEntry::Fwmark(mark, fam));
            count += 1;
        } else {
            let w = &e.words[0];
            let (first, last) = addr_range(w).ok_or_else(|| {
                ctx.bad(
                    e,
                    w,
                    "an address, an address range (10.0.0.1-10, 2001:db8::1-ff) or 'fwmark N'",
                )
            })?;
            let port = match e.words.get(1) {
                Some(p) => ctx.port(e, p)?,
                None => 0,
            };
            ctx.at_most(e, 1);
            let mut a = first;
            loop {
                count += 1;
                if count > MAX_GROUP_SERVICES {
                    return Err(ctx.bad(e, w, "at most 4096 services per group"));
                }
                entries.push(GroupEntry::Addr(a, port));
                if a == last {
                    break;
                }
                a = next_addr(a);
            }
        }
        if e.block.is_some() {
            ctx.no_block(e);
        }
    }
    if entries.is_empty() {
        ctx.warn(
            st.pos(),
            format!("virtual server group {name:?} has no entries - removing"),
        );
        return Ok(None);
    }
    Ok(Some((name, entries)))
}

/// `A` or `A-N`: IPv4 ranges vary the last octet (decimal), IPv6 ranges the last 16-bit group
/// (hex), as keepalived's `inet_stor`.
fn addr_range(w: &Word) -> Option<(IpAddr, IpAddr)> {
    let Some((a, end)) = w.text.rsplit_once('-') else {
        let a = parse_ip(&w.text)?;
        return Some((a, a));
    };
    match parse_ip(a)? {
        IpAddr::V4(v4) => {
            let end: u8 = parse_u64(end).filter(|e| *e <= 255)? as u8;
            let o = v4.octets();
            if end < o[3] {
                return None;
            }
            Some((
                IpAddr::V4(v4),
                IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], end)),
            ))
        }
        IpAddr::V6(v6) => {
            if end.is_empty() || end.len() > 4 {
                return None;
            }
            let end = u16::from_str_radix(end, 16).ok()?;
            let mut s = v6.segments();
            if end < s[7] {
                return None;
            }
            s[7] = end;
            Some((IpAddr::V6(v6), IpAddr::V6(Ipv6Addr::from(s))))
        }
    }
}

fn next_addr(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let mut o = v.octets();
            o[3] = o[3].wrapping_add(1);
            IpAddr::V4(Ipv4Addr::from(o))
        }
        IpAddr::V6(v) => {
            let mut s = v.segments();
            s[7] = s[7].wrapping_add(1);
            IpAddr::V6(Ipv6Addr::from(s))
        }
    }
}

fn virtual_server(ctx: &mut Ctx<'_>, st: &Stmt) -> Res<RawVs> {
    let w1 = ctx.arg(st, 1, "an address and port, 'fwmark N' or 'group NAME'")?;
    let (name, family) = match w1.text.as_str() {
        "fwmark" => {
            let w = ctx.arg(st, 2, "a firewall mark after 'fwmark'")?;
            let mark = parse_u64(&w.text)
                .filter(|m| (1..=u64::from(u32::MAX)).contains(m))
                .ok_or_else(|| ctx.bad(st, w, "a firewall mark 1..=4294967295"))?;
            (VirtualServerName::Fwmark(mark as u32), None)
        }
        "group" => {
            let w = ctx.arg(st, 2, "a group name after 'group'")?;
            (VirtualServerName::Group(w.text.clone()), None)
        }
        _ => {
            let addr = ctx.ip(st, w1)?;
            let port = match st.words.get(2) {
                Some(p) => ctx.port(st, p)?,
                None => 0,
            };
            (
                VirtualServerName::Addr { addr, port },
                Some(Family::of(&addr)),
            )
        }
    };
    ctx.at_most(st, 2);
    let Some(block) = &st.block else {
        return Err(ctx.err(
            st.pos(),
            ErrorKind::ExpectedBlock {
                keyword: "virtual_server".into(),
            },
        ));
    };
    let mut vs = RawVs {
        name,
        pos: st.pos(),
        family,
        protocol: None,
        sched: None,
        flags: SchedFlags::empty(),
        one_packet: None,
        persistence_timeout: None,
        granularity: None,
        pe: None,
        forward: None,
        common: Common::default(),
        inhibit: false,
        alpha: false,
        omega: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        weight: 1,
        ha_suspend: false,
        virtualhost: None,
        sorry: None,
        rs: Vec::new(),
    };
    for s in block {
        vs_keyword(ctx, &mut vs, s)?;
    }
    Ok(vs)
}

fn vs_keyword(ctx: &mut Ctx<'_>, vs: &mut RawVs, st: &Stmt) -> Res<()> {
    if vs.common.keyword(ctx, st)? {
        return Ok(());
    }
    match st.keyword() {
        "ip_family" => {
            let w = ctx.arg(st, 1, "inet or inet6")?;
            ctx.at_most(st, 1);
            let fam = match w.text.as_str() {
                "inet" => Family::V4,
                "inet6" => Family::V6,
                _ => return Err(ctx.bad(st, w, "inet or inet6")),
            };
            match vs.family {
                Some(f) if f != fam => ctx.warn(
                    w.pos,
                    format!(
                        "ip_family {} conflicts with the virtual server's family, ignored",
                        w.text
                    ),
                ),
                _ => vs.family = Some(fam),
            }
        }
        "lb_algo" | "lvs_sched" => {
            let expected = "a scheduler: rr wrr lc wlc lblc sh mh dh fo ovf lblcr sed nq";
            let w = ctx.arg(st, 1, expected)?;
            ctx.at_most(st, 1);
            if !KEEPALIVED_SCHEDULERS.contains(&w.text.as_str()) {
                return Err(ctx.bad(st, w, expected));
            }
            vs.sched = SchedKind::from_name(&w.text);
        }
        "ops" => {
            ctx.at_most(st, 0);
            vs.one_packet = Some(st.pos());
        }
        "hashed" => {
            ctx.at_most(st, 0);
            ctx.warn(
                st.pos(),
                "'hashed' is a kernel-internal service flag; ignored".into(),
            );
        }
        "flag-1" => vs.flags = vs.flags | SchedFlags::SCHED1,
        "flag-2" => vs.flags = vs.flags | SchedFlags::SCHED2,
        "flag-3" => vs.flags = vs.flags | SchedFlags::SCHED3,
        k @ ("sh-port" | "sh-fallback" | "mh-port" | "mh-fallback") => {
            ctx.at_most(st, 0);
            // keepalived looks at the scheduler chosen so far (`lbflags_handler`): the flag
            // must come after `lvs_sched sh` / `lvs_sched mh`.
            let want = if k.starts_with("sh") {
                SchedKind::Sh
            } else {
                SchedKind::Mh
            };
            if vs.sched == Some(want) {
                let bit = if k.ends_with("fallback") {
                    SchedFlags::SCHED1
                } else {
                    SchedFlags::SCHED2
                };
                vs.flags = vs.flags | bit;
            } else {
                ctx.warn(
                    st.pos(),
                    format!(
                        "{k} only applies to the {} scheduler (set before it) - ignoring",
                        want.name()
                    ),
                );
            }
        }
        "lb_kind" | "lvs_method" => vs.forward = Some(forwarding(ctx, st)?),
        "persistence_engine" => {
            let w = ctx.arg(st, 1, "a persistence engine name")?;
            ctx.at_most(st, 1);
            vs.pe = Some(w.text.clone());
        }
        "persistence_timeout" => {
            vs.persistence_timeout = Some(if st.words.len() < 2 {
                Persistence::DEFAULT_TIMEOUT_SECS
            } else {
                ctx.num32(
                    st,
                    1,
                    Persistence::MAX_TIMEOUT_SECS,
                    "a persistence timeout 1..=2678400 s",
                )?
            });
        }
        "persistence_granularity" => {
            let w = ctx.arg(st, 1, "a netmask (IPv4) or prefix length (IPv6)")?;
            ctx.at_most(st, 1);
            vs.granularity = Some((w.clone(), st.clone()));
            // keepalived: granularity without timeout makes the service persistent (360 s).
            if vs.persistence_timeout.is_none() {
                vs.persistence_timeout = Some(Persistence::DEFAULT_TIMEOUT_SECS);
            }
        }
        "protocol" => {
            let w = ctx.arg(st, 1, "TCP, UDP or SCTP")?;
            ctx.at_most(st, 1);
            let p = match w.text.to_ascii_uppercase().as_str() {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => return Err(ctx.bad(st, w, "TCP, UDP or SCTP")),
            };
            vs.protocol = Some((p, w.pos));
        }
        "ha_suspend" => {
            ctx.at_most(st, 0);
            vs.ha_suspend = true;
        }
        "inhibit_on_failure" => vs.inhibit = ctx.flag(st)?,
        "alpha" => vs.alpha = ctx.flag(st)?,
        "omega" => vs.omega = ctx.flag(st)?,
        "quorum_up" => {
            let v = ctx.rest(st, "a script")?;
            ctx.once(st, &mut vs.quorum_up, v);
        }
        "quorum_down" => {
            let v = ctx.rest(st, "a script")?;
            ctx.once(st, &mut vs.quorum_down, v);
        }
        "quorum" => vs.quorum = ctx.num32(st, 1, u32::MAX, "a quorum 1..=4294967295")?,
        "hysteresis" => vs.hysteresis = ctx.num32(st, 0, u32::MAX, "a hysteresis")?,
        "weight" => vs.weight = ctx.num32(st, 1, 65535, "a default weight 1..=65535")?,
        "virtualhost" => {
            let w = ctx.arg(st, 1, "a host name")?;
            ctx.at_most(st, 1);
            vs.virtualhost = Some(w.text.clone());
        }
        "smtp_alert" | "snmp_name" => ctx.not_modelled(st),
        "sorry_server" => {
            let a = ctx.arg(st, 1, "an address and port")?;
            let addr = ctx.ip(st, a)?;
            let port = match st.words.get(2) {
                Some(p) => Some(ctx.port(st, p)?),
                None => None,
            };
            ctx.at_most(st, 2);
            ctx.no_block(st);
            vs.sorry = Some(RawSorry {
                addr,
                port,
                pos: st.pos(),
                forward: None,
                inhibit: false,
            });
        }
        "sorry_server_inhibit" => {
            let on = ctx.flag(st)?;
            match &mut vs.sorry {
                Some(s) => s.inhibit = on,
                None => ctx.warn(
                    st.pos(),
                    "sorry_server_inhibit used before or without sorry_server - ignoring".into(),
                ),
            }
        }
        "sorry_server_lvs_method" => {
            let f = forwarding(ctx, st)?;
            match &mut vs.sorry {
                Some(s) => s.forward = Some(f),
                None => ctx.warn(
                    st.pos(),
                    "sorry_server_lvs_method used without sorry_server - ignoring".into(),
                ),
            }
        }
        "real_server" => {
            if vs.rs.len() >= MAX_REAL_SERVERS {
                return Err(ctx.err(
                    st.pos(),
                    ErrorKind::TooMany {
                        what: "real servers in one virtual_server",
                        limit: MAX_REAL_SERVERS,
                    },
                ));
            }
            vs.rs.push(real_server(ctx, st)?)
        }
        _ => ctx.unknown(st, "virtual_server"),
    }
    if matches!(st.keyword(), "flag-1" | "flag-2" | "flag-3") {
        ctx.at_most(st, 0);
    }
    Ok(())
}

fn real_server(ctx: &mut Ctx<'_>, st: &Stmt) -> Res<RawRs> {
    let a = ctx.arg(st, 1, "an address and port")?;
    let addr = ctx.ip(st, a)?;
    let port = match st.words.get(2) {
        Some(p) => Some(ctx.port(st, p)?),
        None => None,
    };
    ctx.at_most(st, 2);
    let mut rs = RawRs {
        addr,
        port,
        pos: st.pos(),
        weight: None,
        forward: None,
        u_threshold: 0,
        l_threshold: 0,
        inhibit: None,
        alpha: None,
        notify_up: None,
        notify_down: None,
        common: Common::default(),
        checkers: Vec::new(),
    };
    for s in st.block.iter().flatten() {
        if rs.common.keyword(ctx, s)? {
            continue;
        }
        match s.keyword() {
            "weight" => rs.weight = Some(ctx.num32(s, 0, 65535, "a weight 0..=65535")?),
            "lvs_method" => rs.forward = Some(forwarding(ctx, s)?),
            "uthreshold" => rs.u_threshold = ctx.num32(s, 0, u32::MAX, "a connection threshold")?,
            "lthreshold" => rs.l_threshold = ctx.num32(s, 0, u32::MAX, "a connection threshold")?,
            "inhibit_on_failure" => rs.inhibit = Some(ctx.flag(s)?),
            "alpha" => rs.alpha = Some(ctx.flag(s)?),
            "notify_up" => {
                let v = ctx.rest(s, "a script")?;
                ctx.once(s, &mut rs.notify_up, v);
            }
            "notify_down" => {
                let v = ctx.rest(s, "a script")?;
                ctx.once(s, &mut rs.notify_down, v);
            }
            "smtp_alert" | "virtualhost" | "snmp_name" => ctx.not_modelled(s),
            k @ ("TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK"
            | "DNS_CHECK" | "BFD_CHECK") => {
                if let Some(c) = checker(ctx, s, k)? {
                    rs.checkers.push(c);
                }
            }
            "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" => ctx.warn(
                s.pos(),
                format!("checker {} is not modelled; skipped", s.keyword()),
            ),
            _ => ctx.unknown(s, "real_server"),
        }
    }
    Ok(rs)
}

fn checker(ctx: &mut Ctx<'_>, st: &Stmt, kw: &str) -> Res<Option<RawChecker>> {
    let mut c = RawChecker {
        kind: match kw {
            "TCP_CHECK" => CheckerKind::Tcp,
            "HTTP_GET" => CheckerKind::HttpGet {
                urls: Vec::new(),
                virtualhost: None,
            },
            "SSL_GET" => CheckerKind::SslGet {
                urls: Vec::new(),
                virtualhost: None,
            },
            "MISC_CHECK" => CheckerKind::Misc {
                path: String::new(),
                timeout: Duration::ZERO,
                dynamic: false,
            },
            "SMTP_CHECK" => CheckerKind::Smtp { helo_name: None },
            "DNS_CHECK" => CheckerKind::Dns {
                query_type: "A".into(),
                name: ".".into(),
            },
            _ => CheckerKind::Bfd { name: None },
        },
        misc_timeout: None,
        common: Common::default(),
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        alpha: None,
        fwmark: None,
    };
    ctx.at_most(st, 0);
    // MISC_CHECK and BFD_CHECK have no connection options (`install_checker_common_keywords
    // (false)` in check_misc.c).
    let conn = !matches!(c.kind, CheckerKind::Misc { .. } | CheckerKind::Bfd { .. });
    let http = matches!(
        c.kind,
        CheckerKind::HttpGet { .. } | CheckerKind::SslGet { .. }
    );
    for s in st.block.iter().flatten() {
        let k = s.keyword();
        if k == "nb_get_retry" && !http {
            ctx.unknown(s, kw);
            continue;
        }
        if (k == "connect_timeout" && !conn) || !c.common.keyword(ctx, s)? {
            match (k, &mut c.kind) {
                ("alpha", _) => c.alpha = Some(ctx.flag(s)?),
                ("log_all_failures", _) => ctx.not_modelled(s),
                ("connect_ip", _) if conn => {
                    let w = ctx.arg(s, 1, "an address")?;
                    c.connect_ip = Some(ctx.ip(s, w)?);
                    ctx.at_most(s, 1);
                }
                ("connect_port", _) if conn => {
                    let w = ctx.arg(s, 1, "a port")?;
                    c.connect_port = Some(ctx.port(s, w)?);
                    ctx.at_most(s, 1);
                }
                ("bindto", _) if conn => {
                    let w = ctx.arg(s, 1, "an address")?;
                    c.bindto = Some(ctx.ip(s, w)?);
                    ctx.at_most(s, 1);
                }
                ("bind_port", _) if conn => {
                    let w = ctx.arg(s, 1, "a port")?;
                    c.bind_port = Some(ctx.port(s, w)?);
                    ctx.at_most(s, 1);
                }
                ("fwmark", _) if conn => {
                    c.fwmark = Some(ctx.num32(s, 0, u32::MAX, "a firewall mark")?)
                }
                ("bind_if", _) if conn => ctx.not_modelled(s),
                ("url", CheckerKind::HttpGet { urls, .. } | CheckerKind::SslGet { urls, .. }) => {
                    if let Some(u) = url(ctx, s)? {
                        urls.push(u);
                    }
                }
                (
                    "virtualhost",
                    CheckerKind::HttpGet { virtualhost, .. }
                    | CheckerKind::SslGet { virtualhost, .. },
                ) => {
                    let w = ctx.arg(s, 1, "a host name")?;
                    ctx.at_most(s, 1);
                    *virtualhost = Some(w.text.clone());
                }
                (
                    "http_protocol" | "enable_sni" | "fast_recovery",
                    CheckerKind::HttpGet { .. } | CheckerKind::SslGet { .. },
                ) => ctx.not_modelled(s),
                ("misc_path", CheckerKind::Misc { path, .. }) => {
                    *path = ctx.rest(s, "a script")?;
                }
                ("misc_timeout", CheckerKind::Misc { .. }) => {
                    c.misc_timeout = Some(ctx.timer(s, true)?)
                }
                ("misc_dynamic", CheckerKind::Misc { dynamic, .. }) => *dynamic = ctx.flag(s)?,
                ("user", CheckerKind::Misc { .. }) => ctx.not_modelled(s),
                ("helo_name", CheckerKind::Smtp { helo_name }) => {
                    let w = ctx.arg(s, 1, "a HELO name")?;
                    ctx.at_most(s, 1);
                    *helo_name = Some(w.text.clone());
                }
                ("host", CheckerKind::Smtp { .. }) => ctx.not_modelled(s),
                ("type", CheckerKind::Dns { query_type, .. }) => {
                    let w = ctx.arg(s, 1, "a DNS query type")?;
                    ctx.at_most(s, 1);
                    *query_type = w.text.to_ascii_uppercase();
                }
                ("name", CheckerKind::Dns { name, .. }) => {
                    let w = ctx.arg(s, 1, "a DNS name")?;
                    ctx.at_most(s, 1);
                    *name = w.text.clone();
                }
                ("name", CheckerKind::Bfd { name }) => {
                    let w = ctx.arg(s, 1, "a BFD instance name")?;
                    ctx.at_most(s, 1);
                    *name = Some(w.text.clone());
                }
                ("weight", CheckerKind::Bfd { .. }) => ctx.not_modelled(s),
                _ => ctx.unknown(s, kw),
            }
        }
    }
    if let CheckerKind::Misc { path, .. } = &c.kind {
        if path.is_empty() {
            ctx.warn(
                st.pos(),
                "MISC_CHECK without misc_path - skipping the checker".into(),
            );
            return Ok(None);
        }
    }
    Ok(Some(c))
}

fn url(ctx: &mut Ctx<'_>, st: &Stmt) -> Res<Option<UrlCheck>> {
    let mut u = UrlCheck {
        path: String::new(),
        digest: None,
        status_codes: Vec::new(),
        virtualhost: None,
    };
    ctx.at_most(st, 0);
    for s in st.block.iter().flatten() {
        match s.keyword() {
            "path" => {
                let w = ctx.arg(s, 1, "a URL path")?;
                ctx.at_most(s, 1);
                u.path = w.text.clone();
            }
            "digest" => {
                let w = ctx.arg(s, 1, "an MD5 digest in hex")?;
                ctx.at_most(s, 1);
                u.digest = Some(w.text.clone());
            }
            "virtualhost" => {
                let w = ctx.arg(s, 1, "a host name")?;
                ctx.at_most(s, 1);
                u.virtualhost = Some(w.text.clone());
            }
            "status_code" => {
                ctx.arg(s, 1, "status codes 100..=999 or ranges such as 200-299")?;
                for w in &s.words[1..] {
                    let range = match w.text.split_once('-') {
                        Some((a, b)) => parse_u64(a).zip(parse_u64(b)),
                        None => parse_u64(&w.text).map(|v| (v, v)),
                    }
                    .filter(|(a, b)| (100..=999).contains(a) && (*a..=999).contains(b))
                    .ok_or_else(|| {
                        ctx.bad(s, w, "status codes 100..=999 or ranges such as 200-299")
                    })?;
                    u.status_codes.push((range.0 as u16, range.1 as u16));
                }
            }
            "regex" | "regex_no_match" | "regex_min_offset" | "regex_max_offset"
            | "regex_stack" => ctx.not_modelled(s),
            _ => ctx.unknown(s, "url"),
        }
    }
    if u.path.is_empty() {
        ctx.warn(
            st.pos(),
            "HTTP/SSL_GET checker url has no path - ignoring".into(),
        );
        return Ok(None);
    }
    Ok(Some(u))
}

// ---------------------------------------------------------------------------------------------
// Resolution: defaults, keepalived's adjustments, and the initial rule set.

fn resolve(
    ctx: &mut Ctx<'_>,
    mut raw: RawVs,
    groups: &BTreeMap<String, Vec<GroupEntry>>,
    rules: &mut RuleSet,
    dest_total: &mut usize,
) -> Res<Option<VirtualServerSettings>> {
    let pos = raw.pos;
    // Family of a fwmark virtual server without ip_family: from its first non-tunnelled real
    // server (keepalived's `rs_end_handler` / `vs_end_handler`), else IPv4.
    let vs_forward = raw.forward;
    let rs_forward = |rs: &RawRs| rs.forward.or(vs_forward).map(|f| f.0);
    if raw.family.is_none() && !matches!(raw.name, VirtualServerName::Group(_)) {
        raw.family = raw
            .rs
            .iter()
            .find(|rs| rs_forward(rs) != Some(Forward::Tunnel))
            .map(|rs| Family::of(&rs.addr));
    }
    // Real servers of another family, not tunnelled: keepalived skips them.
    if let Some(fam) = raw.family {
        let mut kept = Vec::new();
        for rs in core::mem::take(&mut raw.rs) {
            if rs_forward(&rs) != Some(Forward::Tunnel) && Family::of(&rs.addr) != fam {
                ctx.warn(
                    rs.pos,
                    format!(
                        "Address family of virtual server and real server {} don't match - skipping real server",
                        rs.addr
                    ),
                );
            } else {
                kept.push(rs);
            }
        }
        raw.rs = kept;
        // Likewise the sorry server (`vs_end_handler` in check_parser.c): without this it
        // would only fail when quorum is lost and it is added.
        if let Some(s) = &raw.sorry {
            let tunnelled = s.forward.or(vs_forward).map(|f| f.0) == Some(Forward::Tunnel);
            if !tunnelled && Family::of(&s.addr) != fam {
                ctx.warn(
                    s.pos,
                    format!(
                        "Address family of virtual server and sorry server {} don't match - skipping sorry server",
                        s.addr
                    ),
                );
                raw.sorry = None;
            }
        }
    }
    if raw.rs.is_empty() {
        ctx.warn(
            pos,
            "virtual server has no real servers - ignoring (as keepalived does)".into(),
        );
        return Ok(None);
    }

    // The IPVS services.
    let protocol = raw.protocol.map(|p| p.0);
    let mut addr_keys = false;
    let keys: Vec<ServiceKey> = match &raw.name {
        VirtualServerName::Addr { addr, port } => {
            addr_keys = true;
            vec![key_addr(protocol, *addr, *port)]
        }
        VirtualServerName::Fwmark(mark) => vec![ServiceKey::Fwmark {
            mark: *mark,
            family: raw.family.unwrap_or(Family::V4),
        }],
        VirtualServerName::Group(name) => {
            let Some(entries) = groups.get(name) else {
                return Err(ctx.err(pos, ErrorKind::UnknownGroup(name.clone())));
            };
            let mut keys = Vec::new();
            for e in entries {
                keys.push(match *e {
                    GroupEntry::Addr(a, p) => {
                        addr_keys = true;
                        key_addr(protocol, a, p)
                    }
                    GroupEntry::Fwmark(mark, fam) => ServiceKey::Fwmark {
                        mark,
                        family: fam.or(raw.family).unwrap_or(Family::V4),
                    },
                });
            }
            keys
        }
    };
    if addr_keys && raw.protocol.is_none() {
        // keepalived: "no protocol set - defaulting to UDP" (`validate_check_config`,
        // keepalived/check/check_data.c): the kernel treats protocol 0 as UDP.
        ctx.warn(pos, "no protocol set - defaulting to UDP".into());
    }
    if !addr_keys {
        if let Some((_, p)) = raw.protocol {
            ctx.warn(
                p,
                "protocol specified for fwmark - protocol will be ignored".into(),
            );
        }
    }
    // ha_suspend follows the virtual address, which a fwmark service does not have.
    if raw.ha_suspend && keys.iter().any(ServiceKey::is_fwmark) {
        ctx.warn(
            pos,
            "cannot use ha_suspend with fwmarks - clearing ha_suspend".into(),
        );
        raw.ha_suspend = false;
    }
    let family = raw
        .family
        .or_else(|| keys.first().map(ServiceKey::family))
        .unwrap_or(Family::V4);

    // Persistence.
    let zero_port = keys.iter().any(|k| !k.is_fwmark() && k.port() == 0);
    if zero_port && raw.persistence_timeout.is_none() {
        ctx.warn(
            pos,
            "zero port only valid for persistent services - setting persistence_timeout 360".into(),
        );
        raw.persistence_timeout = Some(Persistence::DEFAULT_TIMEOUT_SECS);
    }
    let persistence = match raw.persistence_timeout {
        None => None,
        Some(t) => {
            let mask = match &raw.granularity {
                None => PersistMask::default_for(family),
                Some((w, st)) => match family {
                    Family::V4 => PersistMask::V4(
                        w.text
                            .parse()
                            .map_err(|_| ctx.bad(st, w, "an IPv4 netmask a.b.c.d"))?,
                    ),
                    Family::V6 => PersistMask::V6(
                        parse_u64(&w.text)
                            .filter(|p| (1..=128).contains(p))
                            .ok_or_else(|| ctx.bad(st, w, "an IPv6 prefix length 1..=128"))?
                            as u8,
                    ),
                },
            };
            Some(Persistence {
                timeout_secs: t,
                mask,
            })
        }
    };
    let mut one_packet = raw.one_packet.is_some();
    if let Some(p) = raw.one_packet {
        if addr_keys && protocol.unwrap_or(Protocol::Udp) != Protocol::Udp {
            ctx.warn(p, "one packet scheduling requires UDP - resetting".into());
            one_packet = false;
        }
    }
    let scheduler = raw.sched.unwrap_or(SchedKind::Wlc);

    // Forwarding: a real server's own method, else the virtual server's, else NAT
    // (`validate_check_config` in keepalived/check/check_data.c: "no forwarding method set,
    // setting default NAT").
    let (vs_fwd, vs_tun) = raw
        .forward
        .unwrap_or((Forward::Masq, TunnelConfig::default()));

    // Quorum adjustments keepalived makes (`validate_check_config`).
    // The bound is the total configured weight of the real servers, not their number
    // (keepalived 2.x: "quorum … exceeds total weight of real servers").
    let mut quorum = raw.quorum;
    let weight_sum: u64 = raw
        .rs
        .iter()
        .map(|rs| u64::from(rs.weight.unwrap_or(raw.weight)))
        .sum();
    if u64::from(quorum) > weight_sum {
        // quorum is a u32, so a smaller sum fits.
        let sum = weight_sum as u32;
        ctx.warn(
            pos,
            format!(
                "quorum {quorum} exceeds total weight of real servers {sum}, reducing quorum to {sum}"
            ),
        );
        quorum = sum;
    }
    let mut hysteresis = raw.hysteresis;
    if hysteresis >= quorum && hysteresis > 0 {
        // keepalived's `quorum - 1` wraps when every weight is 0; 0 is what it means.
        let h = quorum.saturating_sub(1);
        ctx.warn(
            pos,
            format!("hysteresis {hysteresis} >= quorum {quorum}; setting hysteresis to {h}"),
        );
        hysteresis = h;
    }

    let vs_delay = raw.common.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
    let virt_port = keys.first().map_or(0, ServiceKey::port);
    // The checkers were set up with the real server's address as written (keepalived's
    // `checker_set_dst` runs while parsing), before the port corrections below.
    let written_ports: Vec<u16> = raw
        .rs
        .iter()
        .map(|rs| rs.port.unwrap_or(virt_port))
        .collect();
    // keepalived corrects the port of a DR or TUN real server or sorry server (the kernel
    // forwards those to the virtual port): one that differs from the virtual port is reset
    // to it, and one given to a fwmark virtual server is cleared to 0, each with a warning
    // (`validate_check_config`, keepalived/check/check_data.c). Groups are left as written.
    if !matches!(raw.name, VirtualServerName::Group(_)) {
        let fwmark = matches!(raw.name, VirtualServerName::Fwmark(_));
        let corrected = |port: Option<u16>, fwd: Forward| match port {
            Some(p) if fwd != Forward::Masq && p != virt_port => Some(virt_port),
            _ => None,
        };
        for rs in &mut raw.rs {
            let fwd = rs.forward.map_or(vs_fwd, |f| f.0);
            if let Some(p) = corrected(rs.port, fwd) {
                let written = rs.port.unwrap_or(0);
                let message = if fwmark {
                    format!(
                        "fwmark virtual server: real server {} has port {written} specified - clearing",
                        rs.addr
                    )
                } else {
                    format!(
                        "virtual server port {virt_port} and real server {} port {written} don't match - resetting",
                        rs.addr
                    )
                };
                ctx.warn(rs.pos, message);
                rs.port = Some(p);
            }
        }
        if let Some(sorry) = &mut raw.sorry {
            let fwd = sorry.forward.map_or(vs_fwd, |f| f.0);
            if let Some(p) = corrected(sorry.port, fwd) {
                ctx.warn(
                    sorry.pos,
                    if fwmark {
                        "fwmark virtual server: sorry server has port specified - clearing"
                    } else {
                        "virtual server and sorry server ports don't match - resetting"
                    }
                    .into(),
                );
                sorry.port = Some(p);
            }
        }
    }
    let mut real_servers = Vec::new();
    for (rs, &written_port) in raw.rs.iter().zip(&written_ports) {
        let (forward, tunnel) = rs.forward.unwrap_or((vs_fwd, vs_tun));
        let inhibit = rs.inhibit.unwrap_or(raw.inhibit);
        let rs_alpha = rs.alpha.unwrap_or(raw.alpha);
        let port = rs.port.unwrap_or(virt_port);
        let rs_delay = rs.common.delay_loop.unwrap_or(vs_delay);
        let mut checkers = Vec::new();
        for c in &rs.checkers {
            let delay_loop = c.common.delay_loop.unwrap_or(rs_delay);
            let pick =
                |a: Option<Duration>, b: Option<Duration>, d: Option<Duration>| a.or(b).or(d);
            let mut kind = c.kind.clone();
            if let CheckerKind::Misc { timeout, .. } = &mut kind {
                *timeout = c.misc_timeout.unwrap_or(delay_loop);
            }
            checkers.push(CheckerConfig {
                connect_ip: c.connect_ip.unwrap_or(rs.addr),
                connect_port: c.connect_port.unwrap_or(written_port),
                bindto: c.bindto,
                bind_port: c.bind_port,
                connect_timeout: pick(
                    c.common.connect_timeout,
                    rs.common.connect_timeout,
                    raw.common.connect_timeout,
                )
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                retry: c
                    .common
                    .retry
                    .or(rs.common.retry)
                    .or(raw.common.retry)
                    .unwrap_or(kind.default_retry()),
                // DNS_CHECK has no default of its own (`default_delay_before_retry = 0`
                // in check_dns.c), so `validate_check_config` gives it the delay_loop.
                delay_before_retry: pick(
                    c.common.delay_before_retry,
                    rs.common.delay_before_retry,
                    raw.common.delay_before_retry,
                )
                .unwrap_or(match kind {
                    CheckerKind::Dns { .. } => delay_loop,
                    _ => DEFAULT_DELAY_BEFORE_RETRY,
                }),
                delay_loop,
                warmup: pick(c.common.warmup, rs.common.warmup, raw.common.warmup)
                    .unwrap_or(delay_loop),
                alpha: c.alpha.unwrap_or(rs_alpha),
                inhibit_on_failure: inhibit,
                fwmark: c.fwmark,
                kind,
            });
        }
        real_servers.push(RealServerSettings {
            addr: rs.addr,
            port,
            port_given: rs.port.is_some(),
            line: rs.pos.line,
            weight: rs.weight.unwrap_or(raw.weight),
            forward,
            tunnel,
            u_threshold: rs.u_threshold,
            l_threshold: rs.l_threshold,
            inhibit_on_failure: inhibit,
            alpha: rs_alpha,
            notify_up: rs.notify_up.clone(),
            notify_down: rs.notify_down.clone(),
            initially_up: !checkers.iter().any(|c: &CheckerConfig| c.alpha),
            checkers,
        });
    }
    let sorry_server = raw.sorry.as_ref().map(|s| {
        let (forward, tunnel) = s.forward.unwrap_or((vs_fwd, vs_tun));
        SorryServer {
            addr: s.addr,
            port: s.port.unwrap_or(virt_port),
            port_given: s.port.is_some(),
            forward,
            tunnel,
            inhibit: s.inhibit,
        }
    });

    // The initial rule set: every service, each real server that starts up with its weight,
    // a real server starting failed (alpha) with weight 0 when inhibit_on_failure, else
    // absent; the sorry server when the starting live weight is below quorum.
    // No transactional copy is needed: any error abandons the whole read.
    let next = rules;
    let services_after = next.len() + keys.len();
    let dests_after = *dest_total + keys.len() * (real_servers.len() + 1);
    if services_after > MAX_SERVICES || dests_after > MAX_DESTS {
        let (what, limit) = if services_after > MAX_SERVICES {
            ("services", MAX_SERVICES)
        } else {
            ("real-server entries", MAX_DESTS)
        };
        return Err(ctx.err(pos, ErrorKind::TooMany { what, limit }));
    }
    *dest_total = dests_after;
    let live: u64 = real_servers
        .iter()
        .filter(|r| r.initially_up)
        .map(|r| u64::from(r.weight))
        .sum();
    // keepalived/check/ipwrapper.c: `set_quorum_states` starts a virtual server with quorum
    // up when the live weight reaches quorum + hysteresis; `update_quorum_state(vs, true)` then
    // brings in the sorry server when it is down, taking the live real servers out of the pool
    // (`perform_quorum_state`), and `init_service_vs` installs an inhibited sorry server with
    // weight 0 otherwise.
    let quorum_up = live >= u64::from(quorum) + u64::from(hysteresis);
    let sorry_active = sorry_server.is_some() && !quorum_up;
    for key in &keys {
        let key = match key {
            ServiceKey::Addr { addr, port, .. } => {
                key_addr(Some(protocol.unwrap_or(Protocol::Udp)), *addr, *port)
            }
            k => *k,
        };
        let cfg = ServiceConfig {
            key,
            scheduler,
            flags: raw.flags,
            persistence,
            pe: raw.pe.clone(),
            one_packet,
        };
        next.apply(&Command::AddService(cfg))
            .map_err(|e| ctx.err(pos, ErrorKind::Rule(e)))?;
        for (r, raw_rs) in real_servers.iter().zip(&raw.rs) {
            // Out of the pool: absent, or weight 0 with inhibit_on_failure (keepalived
            // quiesces instead of deleting an inhibited real server).
            let weight = match (r.initially_up && !sorry_active, r.inhibit_on_failure) {
                (true, _) => r.weight,
                (false, true) => 0,
                (false, false) => continue,
            };
            // A real server written without a port takes each service's port (a group's
            // services may differ; fwmark services have port 0).
            let d = DestConfig {
                addr: r.addr,
                port: raw_rs.port.unwrap_or(key.port()),
                forward: r.forward,
                weight,
                u_threshold: r.u_threshold,
                l_threshold: r.l_threshold,
                tunnel: r.tunnel,
            };
            next.apply(&Command::AddDest(key, d))
                .map_err(|e| ctx.err(raw_rs.pos, ErrorKind::Rule(e)))?;
        }
        if let Some(s) = &sorry_server {
            let port = match raw.sorry.as_ref().and_then(|s| s.port) {
                Some(p) => p,
                None => key.port(),
            };
            // A sorry server that is also a real server is not added twice
            // (`s_svr_duplicates_rs`).
            let duplicate = raw
                .rs
                .iter()
                .any(|r| r.addr == s.addr && r.port.unwrap_or(key.port()) == port);
            if duplicate || !(sorry_active || s.inhibit) {
                continue;
            }
            let mut d = DestConfig::new(s.addr, port);
            d.weight = u32::from(sorry_active);
            d.forward = s.forward;
            d.tunnel = s.tunnel;
            let at = raw.sorry.as_ref().map_or(pos, |s| s.pos);
            next.apply(&Command::AddDest(key, d))
                .map_err(|e| ctx.err(at, ErrorKind::Rule(e)))?;
        }
    }
    // Keys as installed (with the protocol resolved).
    let keys = keys
        .iter()
        .map(|k| match k {
            ServiceKey::Addr { addr, port, .. } => {
                key_addr(Some(protocol.unwrap_or(Protocol::Udp)), *addr, *port)
            }
            k => *k,
        })
        .collect();
    Ok(Some(VirtualServerSettings {
        initial_quorum_up: quorum_up,
        name: raw.name,
        keys,
        file: ctx.files[pos.file].clone(),
        line: pos.line,
        delay_loop: vs_delay,
        quorum,
        hysteresis,
        quorum_up: raw.quorum_up,
        quorum_down: raw.quorum_down,
        alpha: raw.alpha,
        omega: raw.omega,
        ha_suspend: raw.ha_suspend,
        forward: vs_fwd,
        sorry_server,
        virtualhost: raw.virtualhost,
        real_servers,
    }))
}

fn key_addr(protocol: Option<Protocol>, addr: IpAddr, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: protocol.unwrap_or(Protocol::Udp),
        addr,
        port,
    }
}
