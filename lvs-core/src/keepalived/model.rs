//! The health-check and quorum settings read from `virtual_server` blocks, with every default
//! resolved through keepalived's cascade (virtual_server → real_server → checker).

use core::net::IpAddr;

use crate::rules::{Forward, ServiceKey, TunnelConfig};
use crate::time::Duration;

/// How a `virtual_server` was named in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirtualServerName {
    /// `virtual_server IP PORT`.
    Addr {
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port (0 when omitted).
        port: u16,
    },
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(String),
}

/// A real server added when quorum is lost (`sorry_server`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SorryServer {
    /// Address.
    pub addr: IpAddr,
    /// Port (the virtual port when omitted, as for real servers).
    pub port: u16,
    /// Whether the port was written (when not, each service of a group uses its own port).
    pub port_given: bool,
    /// `sorry_server_lvs_method`, else the virtual server's method.
    pub forward: Forward,
    /// Tunnel settings (`sorry_server_lvs_method TUN type …`).
    pub tunnel: TunnelConfig,
    /// `sorry_server_inhibit`: the sorry server stays in the service with weight 0 while
    /// quorum is up, instead of being absent.
    pub inhibit: bool,
}

/// One `virtual_server` block: the IPVS services it makes and its pool settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServerSettings {
    /// How the block named the service.
    pub name: VirtualServerName,
    /// The IPVS services this block creates (one, or one per address/port and fwmark of its
    /// group), in creation order.
    pub keys: Vec<ServiceKey>,
    /// File of the `virtual_server` keyword.
    pub file: String,
    /// Line of the `virtual_server` keyword.
    pub line: usize,
    /// `delay_loop`: default check interval (default 60 s).
    pub delay_loop: Duration,
    /// `quorum`: minimum live weight (default 1; keepalived lowers it to the total configured
    /// weight of the real servers when higher, so it is 0 when every weight is 0).
    pub quorum: u32,
    /// `hysteresis` (default 0; keepalived lowers it to `quorum - 1` when not below quorum).
    pub hysteresis: u32,
    /// Whether the virtual server starts with quorum: the starting live weight (real servers
    /// with [`RealServerSettings::initially_up`]) is at least `quorum + hysteresis`. When not,
    /// and a sorry server is configured, the initial rule set holds the sorry server (weight 1)
    /// and the real servers are out of the pool (absent, or weight 0 with
    /// `inhibit_on_failure`).
    pub initial_quorum_up: bool,
    /// `quorum_up` script: its words joined by one space, quotes removed.
    pub quorum_up: Option<String>,
    /// `quorum_down` script: its words joined by one space, quotes removed.
    pub quorum_down: Option<String>,
    /// `alpha` (default off): real servers start down until their first successful check.
    pub alpha: bool,
    /// `omega` (default off): run quorum_down / notify_down scripts on shutdown.
    pub omega: bool,
    /// `ha_suspend`: checks run only while the virtual address is configured locally.
    pub ha_suspend: bool,
    /// `lvs_method` / `lb_kind` of the block (NAT when not given: keepalived's default,
    /// `validate_check_config` in keepalived/check/check_data.c).
    pub forward: Forward,
    /// `sorry_server` and its options.
    pub sorry_server: Option<SorryServer>,
    /// `virtualhost` default for HTTP checks.
    pub virtualhost: Option<String>,
    /// Real servers in file order.
    pub real_servers: Vec<RealServerSettings>,
}

/// One `real_server` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServerSettings {
    /// Address.
    pub addr: IpAddr,
    /// Port. When omitted: the virtual port (of the first service, for a group; in the rule
    /// set each service of the group then gets its own port). A DR / TUN real server of a
    /// single service always has the virtual port (0 for fwmark), as keepalived resets it.
    pub port: u16,
    /// Whether the port was written.
    pub port_given: bool,
    /// Line of the `real_server` keyword.
    pub line: usize,
    /// `weight` 0..=65535 (default: the virtual server's `weight`, itself default 1).
    pub weight: u32,
    /// `lvs_method` override, else the virtual server's.
    pub forward: Forward,
    /// Tunnel settings (`lvs_method TUN type gue port N csum`).
    pub tunnel: TunnelConfig,
    /// `uthreshold` (0 = none).
    pub u_threshold: u32,
    /// `lthreshold` (0 = none).
    pub l_threshold: u32,
    /// `inhibit_on_failure` (real server, else virtual server; default off): on failure set
    /// weight 0 instead of removing the real server.
    pub inhibit_on_failure: bool,
    /// `alpha` (real server, else virtual server).
    pub alpha: bool,
    /// `notify_up` script: its words joined by one space, quotes removed.
    pub notify_up: Option<String>,
    /// `notify_down` script: its words joined by one space, quotes removed.
    pub notify_down: Option<String>,
    /// Whether the initial rule set contains this real server with its weight: true unless a
    /// checker starts in alpha mode (then it is absent, or present with weight 0 when
    /// `inhibit_on_failure`).
    pub initially_up: bool,
    /// Health checkers in file order.
    pub checkers: Vec<CheckerConfig>,
}

/// One URL of an `HTTP_GET` / `SSL_GET` checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlCheck {
    /// `path`.
    pub path: String,
    /// `digest` (MD5 hex of the body), if any.
    pub digest: Option<String>,
    /// `status_code` ranges accepted; empty = any 2xx (keepalived's default).
    pub status_codes: Vec<(u16, u16)>,
    /// `virtualhost` for this URL.
    pub virtualhost: Option<String>,
}

/// The kind of a health checker and its own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckerKind {
    /// `TCP_CHECK`: a TCP connect.
    Tcp,
    /// `HTTP_GET`.
    HttpGet {
        /// `url` blocks (those without `path` are dropped, as keepalived does).
        urls: Vec<UrlCheck>,
        /// `virtualhost` of the checker.
        virtualhost: Option<String>,
    },
    /// `SSL_GET`.
    SslGet {
        /// `url` blocks.
        urls: Vec<UrlCheck>,
        /// `virtualhost` of the checker.
        virtualhost: Option<String>,
    },
    /// `MISC_CHECK`: run a script. Exit 0 = up, 1 = down, with `misc_dynamic` 2..=255 = up
    /// with weight `code - 2`.
    Misc {
        /// `misc_path`: the command line, as written.
        path: String,
        /// `misc_timeout` (default: the checker's delay_loop).
        timeout: Duration,
        /// `misc_dynamic`.
        dynamic: bool,
    },
    /// `SMTP_CHECK`.
    Smtp {
        /// `helo_name`, if given.
        helo_name: Option<String>,
    },
    /// `DNS_CHECK`.
    Dns {
        /// `type` (default A).
        query_type: String,
        /// `name` (default the root, ".").
        name: String,
    },
    /// `BFD_CHECK`: follows a BFD session.
    Bfd {
        /// The BFD instance name.
        name: Option<String>,
    },
}

impl CheckerKind {
    /// The keepalived keyword of the checker.
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckerKind::Tcp => "TCP_CHECK",
            CheckerKind::HttpGet { .. } => "HTTP_GET",
            CheckerKind::SslGet { .. } => "SSL_GET",
            CheckerKind::Misc { .. } => "MISC_CHECK",
            CheckerKind::Smtp { .. } => "SMTP_CHECK",
            CheckerKind::Dns { .. } => "DNS_CHECK",
            CheckerKind::Bfd { .. } => "BFD_CHECK",
        }
    }

    /// keepalived's default `retry` for the kind when neither checker, real server nor virtual
    /// server sets one: 1, except DNS_CHECK 3 and MISC_CHECK 0 (spec §5.2).
    pub fn default_retry(&self) -> u32 {
        match self {
            CheckerKind::Dns { .. } => 3,
            CheckerKind::Misc { .. } => 0,
            _ => 1,
        }
    }
}

/// One health checker with every setting resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerConfig {
    /// Kind and kind-specific settings.
    pub kind: CheckerKind,
    /// `connect_ip` (default: the real server's address).
    pub connect_ip: IpAddr,
    /// `connect_port` (default: the real server's port).
    pub connect_port: u16,
    /// `bindto` source address.
    pub bindto: Option<IpAddr>,
    /// `bind_port` source port.
    pub bind_port: Option<u16>,
    /// `connect_timeout` (checker → real server → virtual server → 5 s).
    pub connect_timeout: Duration,
    /// `retry` / `nb_get_retry` (checker → real server → virtual server → kind default).
    pub retry: u32,
    /// `delay_before_retry` (checker → real server → virtual server → 1 s; `DNS_CHECK`: the
    /// checker's delay_loop).
    pub delay_before_retry: Duration,
    /// `delay_loop` (checker → real server → virtual server → 60 s).
    pub delay_loop: Duration,
    /// `warmup`: the first check waits a random time up to this (checker → real server →
    /// virtual server → the checker's delay_loop).
    pub warmup: Duration,
    /// `alpha` (checker → real server → virtual server): starts failed.
    pub alpha: bool,
    /// The real server's `inhibit_on_failure`.
    pub inhibit_on_failure: bool,
    /// `fwmark` put on the check's packets (`SO_MARK`).
    pub fwmark: Option<u32>,
}

/// keepalived's default check interval (`KEEPALIVED_DEFAULT_DELAY`, 60 s).
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default connect timeout (5 s, `queue_checker` in check_api.c).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default delay before a retry (1 s, spec §5.2; `DNS_CHECK` uses its delay_loop).
pub const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
