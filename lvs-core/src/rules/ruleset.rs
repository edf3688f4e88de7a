//! [`RuleSet`]: services and real servers with the kernel's semantics and errors.

use core::net::IpAddr;

use hashbrown::HashMap;

use super::error::{Inexpressible, RuleError, RulesError};
use super::model::{
    Command, DestConfig, Family, Forward, PersistMask, Persistence, ServiceConfig, ServiceKey,
    Timeouts, TunnelCsum, TunnelType,
};
use crate::protocol::Protocol;
use crate::sched::{SchedFlags, SchedKind};

/// One service and its real servers in kernel list order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    config: ServiceConfig,
    dests: Vec<DestConfig>,
}

/// A whole IPVS configuration: services in creation order, each with its real servers in
/// kernel list order (a new real server goes to the head, spec §0.2), and the protocol
/// timeouts.
///
/// [`RuleSet::apply`] changes it one [`Command`] at a time with the kernel's checks and errors;
/// [`RuleSet::apply_text`] applies a whole ipvsadm rule text atomically; [`RuleSet::save`]
/// prints what `ipvsadm -S -n` prints.
///
/// ```
/// use lvs_core::rules::RuleSet;
/// let rules = RuleSet::from_text(
///     "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m\n",
/// ).unwrap();
/// let (svc, dests) = rules.services().next().unwrap();
/// assert_eq!(svc.scheduler.name(), "rr");
/// // kernel list order: the last added is first
/// assert_eq!(dests[0].addr.to_string(), "10.1.0.2");
/// assert_eq!(
///     rules.save(),
///     "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1\n",
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    services: Vec<Entry>,
    /// Position of each service in `services`.
    index: HashMap<ServiceKey, usize>,
    timeouts: Timeouts,
}

impl PartialEq for RuleSet {
    fn eq(&self, other: &Self) -> bool {
        // `index` is derived from `services`.
        self.services == other.services && self.timeouts == other.timeouts
    }
}

impl Eq for RuleSet {}

impl RuleSet {
    /// An empty rule set with the default timeouts (900 120 300).
    pub fn new() -> Self {
        RuleSet::default()
    }

    /// Parses and applies `text` to an empty rule set.
    pub fn from_text(text: &str) -> Result<RuleSet, RulesError> {
        let mut rules = RuleSet::new();
        rules.apply_text(text)?;
        Ok(rules)
    }

    /// Parses and applies `text` line by line, in order. Atomic: on any error (a line that
    /// does not parse, or a command refused) `self` is left unchanged, and the error names the
    /// first line at fault and the column.
    pub fn apply_text(&mut self, text: &str) -> Result<(), RulesError> {
        let mut next = self.clone();
        // One line at a time, as `ipvsadm -R` reads them, so that a refused command is
        // reported before a later line that does not parse.
        for c in super::parse::commands(text) {
            let (line, column, cmd) = c?;
            next.apply(&cmd).map_err(|source| RulesError::Apply {
                line,
                column,
                source,
            })?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one command with the kernel's semantics. On error nothing changed.
    pub fn apply(&mut self, cmd: &Command) -> Result<(), RuleError> {
        match cmd {
            Command::AddService(cfg) => {
                check_service(cfg)?;
                if self.index.contains_key(&cfg.key) {
                    return Err(RuleError::ServiceExists(cfg.key));
                }
                check_service_kernel(cfg)?;
                self.index.insert(cfg.key, self.services.len());
                self.services.push(Entry {
                    config: cfg.clone(),
                    dests: Vec::new(),
                });
                Ok(())
            }
            Command::EditService(cfg) => {
                check_service(cfg)?;
                let pos = self.position(&cfg.key)?;
                check_service_kernel(cfg)?;
                self.services[pos].config = cfg.clone();
                Ok(())
            }
            Command::DeleteService(key) => {
                let pos = self.position(key)?;
                self.services.remove(pos);
                self.index.remove(key);
                for (i, e) in self.services.iter().enumerate().skip(pos) {
                    self.index.insert(e.config.key, i);
                }
                Ok(())
            }
            Command::AddDest(key, dest) => {
                check_dest(key, dest)?;
                let pos = self.position(key)?;
                check_dest_kernel(dest)?;
                let entry = &mut self.services[pos];
                if find_dest(&entry.dests, dest.addr, dest.port).is_some() {
                    return Err(RuleError::DestExists {
                        service: *key,
                        addr: dest.addr,
                        port: dest.port,
                    });
                }
                check_dest_addr(dest.addr)?;
                // `list_add_rcu`: a new (or restored) real server goes to the head.
                entry.dests.insert(0, *dest);
                Ok(())
            }
            Command::EditDest(key, dest) => {
                check_dest(key, dest)?;
                let pos = self.position(key)?;
                check_dest_kernel(dest)?;
                let entry = &mut self.services[pos];
                let Some(i) = find_dest(&entry.dests, dest.addr, dest.port) else {
                    return Err(RuleError::NoSuchDest {
                        service: *key,
                        addr: dest.addr,
                        port: dest.port,
                    });
                };
                entry.dests[i] = *dest;
                Ok(())
            }
            Command::DeleteDest {
                service,
                addr,
                port,
            } => {
                let pos = self.position(service)?;
                let entry = &mut self.services[pos];
                let Some(i) = find_dest(&entry.dests, *addr, *port) else {
                    return Err(RuleError::NoSuchDest {
                        service: *service,
                        addr: *addr,
                        port: *port,
                    });
                };
                entry.dests.remove(i);
                Ok(())
            }
            Command::Clear => {
                // `ipvsadm -C` flushes services; the timeouts stay.
                self.services.clear();
                self.index.clear();
                Ok(())
            }
            Command::SetTimeouts(t) => {
                for v in [t.tcp_secs, t.tcpfin_secs, t.udp_secs] {
                    if v > Persistence::MAX_TIMEOUT_SECS {
                        return Err(RuleError::BadTimeout(v));
                    }
                }
                // 0 keeps the current value (`ip_vs_set_timeout`).
                if t.tcp_secs > 0 {
                    self.timeouts.tcp_secs = t.tcp_secs;
                }
                if t.tcpfin_secs > 0 {
                    self.timeouts.tcpfin_secs = t.tcpfin_secs;
                }
                if t.udp_secs > 0 {
                    self.timeouts.udp_secs = t.udp_secs;
                }
                Ok(())
            }
            Command::Zero(key) => {
                if let Some(key) = key.filter(|k| !k.zeroes_all()) {
                    self.position(&key)?;
                }
                Ok(())
            }
        }
    }

    /// Every service in creation order, with its real servers in kernel list order.
    pub fn services(&self) -> impl Iterator<Item = (&ServiceConfig, &[DestConfig])> {
        self.services
            .iter()
            .map(|e| (&e.config, e.dests.as_slice()))
    }

    /// One service and its real servers in kernel list order.
    pub fn service(&self, key: &ServiceKey) -> Option<(&ServiceConfig, &[DestConfig])> {
        let e = &self.services[*self.index.get(key)?];
        Some((&e.config, e.dests.as_slice()))
    }

    /// The number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether there is no service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The protocol timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Exactly what `ipvsadm -S -n` prints for this rule set (see [`super::save`]).
    pub fn save(&self) -> String {
        super::save::save(self)
    }

    /// The checks of `-a` / `-e` that come before the kernel's own: what ipvsadm refuses to
    /// send, then a missing service (`ESRCH`). The director checks its own state after these.
    pub(crate) fn precheck_dest(
        &self,
        key: &ServiceKey,
        dest: &DestConfig,
    ) -> Result<(), RuleError> {
        check_dest(key, dest)?;
        self.position(key).map(|_| ())
    }

    fn position(&self, key: &ServiceKey) -> Result<usize, RuleError> {
        self.index
            .get(key)
            .copied()
            .ok_or(RuleError::NoSuchService(*key))
    }
}

/// `ip_vs_lookup_dest`: by family, address and port.
fn find_dest(dests: &[DestConfig], addr: IpAddr, port: u16) -> Option<usize> {
    dests.iter().position(|d| d.addr == addr && d.port == port)
}

/// What ipvsadm refuses to send for a service, or could not print back.
fn check_service(cfg: &ServiceConfig) -> Result<(), RuleError> {
    let inexpressible = |e| Err(RuleError::Inexpressible(e));
    match cfg.key {
        ServiceKey::Addr { protocol, port, .. } => {
            if !matches!(protocol, Protocol::Tcp | Protocol::Udp | Protocol::Sctp) {
                // `do_ip_vs_set_ctl`: "invalid protocol" → -EFAULT.
                return Err(RuleError::BadProtocol);
            }
            if port == 0 && cfg.persistence.is_none() {
                return inexpressible(Inexpressible::ZeroPortNotPersistent);
            }
            if cfg.one_packet && protocol != Protocol::Udp {
                return inexpressible(Inexpressible::OpsNotUdp);
            }
        }
        ServiceKey::Fwmark { mark, .. } => {
            if mark == 0 {
                return inexpressible(Inexpressible::ZeroFwmark);
            }
        }
    }
    if let Some(p) = &cfg.persistence {
        if p.timeout_secs == 0 || p.timeout_secs > Persistence::MAX_TIMEOUT_SECS {
            return inexpressible(Inexpressible::PersistTimeout);
        }
        if p.mask.family() != cfg.key.family() {
            return inexpressible(Inexpressible::MaskFamily);
        }
    }
    // ipvsadm prints only sh-*/mh-* names for sh and mh, so flag-3 would be lost on save.
    if matches!(cfg.scheduler, SchedKind::Sh | SchedKind::Mh)
        && cfg.flags.contains(SchedFlags::SCHED3)
    {
        return inexpressible(Inexpressible::SchedFlags);
    }
    Ok(())
}

/// The kernel's own checks in `ip_vs_add_service` / `ip_vs_edit_service`, after the lookup.
fn check_service_kernel(cfg: &ServiceConfig) -> Result<(), RuleError> {
    if let Some(pe) = &cfg.pe {
        // `ip_vs_pe_getbyname` fails → -ENOENT; the kernel has one engine, sip.
        if pe != "sip" {
            return Err(RuleError::UnknownPe(pe.clone()));
        }
    }
    if let Some(Persistence {
        mask: PersistMask::V6(plen),
        ..
    }) = cfg.persistence
    {
        if plen == 0 || plen > 128 {
            return Err(RuleError::BadNetmask(plen));
        }
    }
    Ok(())
}

/// What ipvsadm refuses to send for a real server (or could not print back): weight and
/// threshold ranges, tunnel options that do not fit, mixed families without tunnelling (the
/// kernel refuses those too, `ip_vs_genl_set_cmd`), and a -g / -i port other than the
/// service port of an address service (ipvsadm forces the service port).
fn check_dest(key: &ServiceKey, d: &DestConfig) -> Result<(), RuleError> {
    let inexpressible = |e| Err(RuleError::Inexpressible(e));
    if d.weight > 65535 {
        return Err(RuleError::WeightRange(d.weight));
    }
    if d.u_threshold > i32::MAX as u32 || d.l_threshold > i32::MAX as u32 {
        return inexpressible(Inexpressible::Threshold);
    }
    let t = d.tunnel;
    let fits = match (d.forward, t.kind) {
        (Forward::Tunnel, TunnelType::Ipip) => t.port == 0 && t.csum == TunnelCsum::NoCsum,
        (Forward::Tunnel, TunnelType::Gue) => true,
        // ipvsadm reads only --tun-nocsum / --tun-csum for gre, so a remote checksum could be
        // saved but not restored.
        (Forward::Tunnel, TunnelType::Gre) => t.port == 0 && t.csum != TunnelCsum::RemCsum,
        _ => t == Default::default(),
    };
    if !fits {
        return inexpressible(Inexpressible::TunnelOptions);
    }
    if Family::of(&d.addr) != key.family() && d.forward != Forward::Tunnel {
        return Err(RuleError::MixedFamily(d.addr));
    }
    if !key.is_fwmark() && d.forward != Forward::Masq && d.port != key.port() {
        return inexpressible(Inexpressible::DestPort);
    }
    Ok(())
}

/// The kernel's checks in `ip_vs_add_dest` / `ip_vs_edit_dest`, in its order: thresholds,
/// then the GUE port (the weight check, negative → ERANGE, is covered by [`check_dest`]).
fn check_dest_kernel(d: &DestConfig) -> Result<(), RuleError> {
    if d.l_threshold > d.u_threshold {
        return Err(RuleError::ThresholdRange {
            lower: d.l_threshold,
            upper: d.u_threshold,
        });
    }
    if d.forward == Forward::Tunnel && d.tunnel.kind == TunnelType::Gue && d.tunnel.port == 0 {
        return Err(RuleError::GueWithoutPort);
    }
    Ok(())
}

/// `ip_vs_new_dest`: an IPv4 real server must be unicast or local (`inet_addr_type`), an
/// IPv6 one unicast and not link-local (`ipv6_addr_type`), unless local. Without a routing
/// table we refuse what is never unicast: IPv4 0.0.0.0/8 and 255.255.255.255
/// (`RTN_BROADCAST`) and multicast; IPv6 `::` (`IPV6_ADDR_ANY`), multicast, link-local
/// `fe80::/10` and IPv4-mapped `::ffff:0:0/96` (`IPV6_ADDR_MAPPED`, which carries no UNICAST
/// bit). A local address in those ranges, which the kernel would accept, is refused too.
fn check_dest_addr(addr: IpAddr) -> Result<(), RuleError> {
    let bad = match addr {
        IpAddr::V4(a) => a.octets()[0] == 0 || a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || (s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff)
        }
    };
    if bad {
        Err(RuleError::BadDestAddress(addr))
    } else {
        Ok(())
    }
}
