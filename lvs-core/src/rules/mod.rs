//! The rule model and the ipvsadm rule language.
//!
//! - [`model`]: virtual services ([`ServiceConfig`], keyed by [`ServiceKey`]), real servers
//!   ([`DestConfig`]) and the [`Command`]s that change them, with ipvsadm's defaults (wlc,
//!   weight 1, direct routing, a bare `-p` = 360 s).
//! - [`RuleSet`]: a whole configuration with the kernel's semantics: real servers kept in
//!   kernel list order (a new one goes to the head, spec §0.2), `-E` / `-e` replacing the whole
//!   configuration, and the kernel's errors as [`RuleError`] (each with its `errno()`).
//! - [`parse`](parse()) / [`parse_line`]: what `ipvsadm -R` reads; errors name line and column.
//!   **Only numeric addresses and ports are accepted: nothing is resolved through DNS or
//!   `/etc/services`.**
//! - [`RuleSet::save`]: exactly what `ipvsadm -S -n` prints, sorted as ipvsadm sorts it.
//!   Parsing a saved text and saving again gives the same bytes.
//! - [`listing`]: the `ipvsadm -L -n` listings from a snapshot of counters.
//!
//! ```
//! use lvs_core::rules::{RuleSet, RuleError};
//! let mut rules = RuleSet::from_text("-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.1.0.1\n").unwrap();
//! // a bad text leaves the rule set as it was, and says where
//! let err = rules.apply_text("-a -u 10.0.0.1:53 -r 10.1.0.2\n-a -u 10.0.0.1:53 -r 10.1.0.1\n").unwrap_err();
//! assert_eq!((err.line(), err.column()), (2, 1));
//! assert_eq!(rules.services().next().unwrap().1.len(), 1);
//! ```

pub mod error;
pub mod listing;
pub mod model;
pub mod parse;
mod ruleset;
pub mod save;

pub use error::{Inexpressible, ParseError, ParseErrorKind, RuleError, RulesError};
pub use model::{
    Command, DestConfig, Family, Forward, PersistMask, Persistence, ServiceConfig, ServiceKey,
    Timeouts, TunnelConfig, TunnelCsum, TunnelType,
};
pub use parse::{parse, parse_line};
pub use ruleset::RuleSet;
