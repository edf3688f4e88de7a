//! keepalived.conf `virtual_server` configuration read into the rule model.
//!
//! [`parse`] reads the `virtual_server`, `virtual_server_group`, `real_server` and checker
//! blocks of a keepalived configuration (and the files it `include`s, through a caller's
//! [`Loader`]: the core does no I/O) into:
//! - a [`RuleSet`] built with [`RuleSet::apply`], so every service and real server passes the
//!   kernel's checks, holding the **initial** IPVS state keepalived installs at start-up;
//! - per virtual server, the quorum, sorry-server and health-check settings
//!   ([`VirtualServerSettings`], [`RealServerSettings`], [`CheckerConfig`]) with every default
//!   resolved through keepalived's cascade (virtual_server → real_server → checker);
//! - [`Warning`]s for what keepalived would log and skip or adjust (unknown keywords, real
//!   servers of the wrong family, ops on TCP, …), each with file, line and column.
//!
//! [`KeepalivedConfig::describe`] prints what was understood: the rules exactly as
//! `ipvsadm -S -n` would list them, then the checker settings.
//! [`KeepalivedConfig::health_specs`] turns the settings into the
//! [`HealthMonitor`](crate::health::HealthMonitor)'s input ([`health`]).
//!
//! ## Keywords (keepalived/check/check_parser.c, check_api.c, doc/man/man5/keepalived.conf.5)
//! Old and new names are synonyms: `lb_algo` = `lvs_sched`, `lb_kind` = `lvs_method`,
//! `nb_get_retry` = `retry` (HTTP_GET / SSL_GET). `persistence_timeout` without a value is
//! 360 s. `lvs_method TUN type ipip|gue|gre [port N] [nocsum|csum|remcsum]` sets the tunnel.
//! Scheduler flags `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback` count only after
//! `lvs_sched sh` / `mh` (keepalived reads them in order); `flag-1..3` always; `ops`
//! (reset with a warning for TCP/SCTP); `hashed` is accepted and ignored (kernel-internal).
//!
//! ## Defaults when omitted
//! Scheduler `wlc` (`IPVS_DEF_SCHED` in keepalived/include/ipvswrapper.h), forwarding method
//! NAT and protocol UDP for address services (`validate_check_config` in
//! keepalived/check/check_data.c, which logs "no forwarding method set, setting default NAT"
//! and "no protocol set - defaulting to UDP"), quorum 1, hysteresis 0, delay_loop 60 s,
//! connect_timeout 5 s, retry 1 (DNS_CHECK 3, MISC_CHECK 0), delay_before_retry 1 s (DNS_CHECK:
//! its delay_loop), warmup = delay_loop, weight 1, real-server port = the virtual port.
//! A DR or TUN real server or sorry server written with another port than the virtual port
//! gets the virtual port, and one of a fwmark virtual server port 0, with a warning
//! (keepalived's corrections in `validate_check_config`); its checkers still probe the port
//! written. A group's real servers are left as written.
//!
//! ## Initial state in the rule set
//! keepalived installs every real server at start-up with its weight. A real server one of
//! whose checkers is in `alpha` mode starts failed: it is absent, or present with weight 0
//! when `inhibit_on_failure` is set ([`RealServerSettings::initially_up`] is false). When the
//! starting live weight is below `quorum + hysteresis` and a sorry server is configured, the
//! sorry server is in (weight 1) and the real servers are out of the pool (absent, or weight 0
//! when inhibited); a `sorry_server_inhibit` sorry server is otherwise present with weight 0
//! (keepalived/check/ipwrapper.c, [`VirtualServerSettings::initial_quorum_up`]). A
//! `virtual_server` without real servers is ignored, as keepalived ignores it.
//!
//! ## Errors and warnings
//! Structural problems stop the whole read with a [`KeepalivedError`] naming file, line and
//! column (unbalanced braces, a bad address, a missing or malformed value, a service or real
//! server the rule model refuses); nothing is half-built. **Deviation from keepalived:**
//! keepalived logs a malformed value (`weight abc`, `lvs_sched foo`) and keeps the default;
//! we refuse it, because running a configuration other than the one written is worse than
//! stopping. Unknown keywords inside known blocks are skipped (with their sub-block) with a
//! [`Level::Warning`]; top-level blocks of other keepalived parts (`global_defs`,
//! `vrrp_instance`, …) with a [`Level::Info`] note.
//!
//! ## Bounds
//! Include depth [`MAX_INCLUDE_DEPTH`], [`MAX_FILES`] files, [`MAX_FILE_BYTES`] per file and
//! [`MAX_TOTAL_BYTES`] in all, [`MAX_WORDS`] words, block nesting [`MAX_NESTING`],
//! [`MAX_GROUP_SERVICES`] services per group, [`MAX_REAL_SERVERS`] real servers per virtual
//! server, [`MAX_SERVICES`] services and [`MAX_DESTS`] real-server entries in all. Only
//! numeric addresses and ports are read; nothing is resolved.
//!
//! ```
//! use lvs_core::keepalived::{parse, MemoryFiles};
//! let conf = r#"
//! virtual_server 192.0.2.10 80 {
//!     lb_algo rr
//!     lb_kind DR
//!     protocol TCP
//!     real_server 192.0.2.21 80 {
//!         weight 3
//!         TCP_CHECK { connect_timeout 3 }
//!     }
//! }
//! "#;
//! let cfg = parse("keepalived.conf", conf, &mut MemoryFiles::new()).unwrap();
//! assert_eq!(
//!     cfg.rules.save(),
//!     "-A -t 192.0.2.10:80 -s rr\n-a -t 192.0.2.10:80 -r 192.0.2.21:80 -g -w 3\n"
//! );
//! let chk = &cfg.services[0].real_servers[0].checkers[0];
//! assert_eq!(chk.connect_timeout.as_secs(), 3);
//! assert_eq!(chk.delay_loop.as_secs(), 60);
//! ```

mod build;
mod describe;
pub mod error;
pub mod health;
mod lexer;
pub mod model;

pub use error::{ErrorKind, KeepalivedError, Level, Warning};
pub use lexer::glob_match;
pub use model::{
    CheckerConfig, CheckerKind, RealServerSettings, SorryServer, UrlCheck, VirtualServerName,
    VirtualServerSettings, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DELAY_BEFORE_RETRY, DEFAULT_DELAY_LOOP,
};

use std::collections::BTreeMap;

use crate::rules::RuleSet;

/// Deepest `include` nesting accepted (the main file is depth 0). keepalived follows includes
/// without a documented bound; 8 is far beyond real configurations and stops include loops.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files read in all (main file included).
pub const MAX_FILES: usize = 256;
/// Largest single file, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Largest total of all files, in bytes.
pub const MAX_TOTAL_BYTES: usize = 4 << 20;
/// Most words (and braces) in all files together.
pub const MAX_WORDS: usize = 500_000;
/// Most real servers in one `virtual_server`.
pub const MAX_REAL_SERVERS: usize = 4096;
/// Most IPVS services in all.
pub const MAX_SERVICES: usize = 65_536;
/// Most real-server entries (over all services) in the rule set.
pub const MAX_DESTS: usize = 65_536;
/// Deepest block nesting.
pub const MAX_NESTING: usize = 32;
/// Most IPVS services one `virtual_server_group` may expand to.
pub const MAX_GROUP_SERVICES: usize = 4096;

/// Reads included files: given a path or glob pattern already resolved against the including
/// file's directory, returns the matching files as `(name, text)` in the order to read them
/// (keepalived reads glob matches in sorted order), an empty list when nothing matches, or an
/// error message. Any `FnMut(&str) -> Result<Vec<(String, String)>, String>` is a loader.
pub trait Loader: FnMut(&str) -> Result<Vec<(String, String)>, String> {}

impl<F: FnMut(&str) -> Result<Vec<(String, String)>, String>> Loader for F {}

/// An in-memory file system for [`parse`]'s includes (tests, fuzzing, embedding).
///
/// ```
/// use lvs_core::keepalived::MemoryFiles;
/// let mut fs = MemoryFiles::new();
/// fs.insert("/etc/keepalived/conf.d/b.conf", "b");
/// fs.insert("/etc/keepalived/conf.d/a.conf", "a");
/// let mut load = fs.loader();
/// let got = load("/etc/keepalived/conf.d/*.conf").unwrap();
/// assert_eq!(got[0].0, "/etc/keepalived/conf.d/a.conf");
/// assert_eq!(got.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryFiles {
    files: BTreeMap<String, String>,
}

impl MemoryFiles {
    /// No files.
    pub fn new() -> Self {
        MemoryFiles::default()
    }

    /// Adds or replaces a file.
    pub fn insert(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.files.insert(name.into(), text.into());
    }

    /// A loader answering from these files: the names matching the pattern
    /// ([`glob_match`]), sorted; a pattern without glob characters naming no file is an error
    /// ("No such file"), as opening a missing file is.
    pub fn loader(&self) -> impl FnMut(&str) -> Result<Vec<(String, String)>, String> + '_ {
        move |pattern: &str| {
            let is_glob = pattern.contains(['*', '?', '[']);
            let found: Vec<(String, String)> = self
                .files
                .iter()
                .filter(|(name, _)| {
                    if is_glob {
                        glob_match(pattern, name)
                    } else {
                        name.as_str() == pattern
                    }
                })
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect();
            if found.is_empty() && !is_glob {
                return Err(format!("{pattern}: No such file"));
            }
            Ok(found)
        }
    }
}

/// Reads a keepalived configuration: `text` is the main file, named `name` (includes are
/// resolved relative to its directory), `files` answers the includes.
pub fn parse(
    name: &str,
    text: &str,
    files: &mut MemoryFiles,
) -> Result<KeepalivedConfig, KeepalivedError> {
    let mut loader = files.loader();
    parse_with(name, text, &mut loader)
}

/// [`parse`] with any [`Loader`] for the includes (a real file system, for instance).
pub fn parse_with(
    name: &str,
    text: &str,
    loader: &mut dyn Loader,
) -> Result<KeepalivedConfig, KeepalivedError> {
    let tree = lexer::parse_tree(name, text, loader)?;
    let mut ctx = build::Ctx {
        files: &tree.files,
        warnings: Vec::new(),
    };
    for (pos, pattern) in &tree.empty_includes {
        ctx.warnings.push(Warning {
            level: Level::Warning,
            file: tree.files[pos.file].clone(),
            line: pos.line,
            column: pos.column,
            message: format!("include {pattern:?} matched no file"),
        });
    }
    let mut cfg = build::build(&mut ctx, &tree.stmts)?;
    cfg.warnings = ctx.warnings;
    cfg.files = tree.files;
    Ok(cfg)
}

/// What a keepalived configuration means for IPVS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepalivedConfig {
    /// The initial IPVS rules (see the module docs for how alpha and quorum shape them).
    pub rules: RuleSet,
    /// One entry per `virtual_server` block that made services, in file order.
    pub services: Vec<VirtualServerSettings>,
    /// Everything skipped or adjusted, in reading order.
    pub warnings: Vec<Warning>,
    /// Every file read, main file first, in reading order.
    pub files: Vec<String>,
}

impl KeepalivedConfig {
    /// What was understood: the rules exactly as `ipvsadm -S -n` prints them, then the pool
    /// and checker settings, one `#` comment line each, in file order (so the whole text is
    /// still an `ipvsadm -R` input):
    ///
    /// ```text
    /// # virtual_server <name> (<file>:<line>)
    /// #   services <key>[, <key>...]
    /// #   quorum Q hysteresis H initial_quorum up|down delay_loop Ds alpha on|off omega on|off ha_suspend on|off method M
    /// #   quorum_up <script>            (when set; likewise quorum_down)
    /// #   sorry_server <addr:port> method M inhibit on|off
    /// #   real_server <addr:port> weight W method M uthreshold U lthreshold L inhibit_on_failure on|off alpha on|off initially up|down
    /// #     notify_up <script>          (when set; likewise notify_down)
    /// #     <CHECKER> connect <addr:port> [bind <addr>[:port] | bind_port P] timeout Ts retry R delay_before_retry Ds delay_loop Ds warmup Ds alpha on|off [fwmark N] <kind settings>
    /// #       url <path> status <codes|2xx> [digest <hex>] [virtualhost <host>]
    /// ```
    ///
    /// ```
    /// use lvs_core::keepalived::{parse, MemoryFiles};
    /// let conf = "virtual_server fwmark 5 {\n lvs_method DR\n real_server 10.0.0.2 0 { MISC_CHECK { misc_path /bin/true } }\n}\n";
    /// let text = parse("k.conf", conf, &mut MemoryFiles::new()).unwrap().describe();
    /// assert!(text.starts_with("-A -f 5 -s wlc\n-a -f 5 -r 10.0.0.2:0 -g -w 1\n# virtual_server fwmark 5 (k.conf:1)\n"));
    /// assert!(text.contains("#     MISC_CHECK connect 10.0.0.2:0 timeout 5s retry 0 "));
    /// ```
    pub fn describe(&self) -> String {
        describe::describe(self)
    }
}
