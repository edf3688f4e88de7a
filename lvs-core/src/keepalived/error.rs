//! Errors and warnings of the keepalived.conf reader; each names file, line and column.

use core::fmt;

use crate::rules::RuleError;

/// Why a keepalived configuration was refused. Nothing is built when this is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {kind}")]
pub struct KeepalivedError {
    /// The file at fault (as named by the caller or the loader).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters, of the word at fault.
    pub column: usize,
    /// What was expected or found.
    pub kind: ErrorKind,
}

/// The reasons a configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// A `"` without its closing `"` on the same line.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A `}` with no open block.
    #[error("unexpected '}}': no block is open")]
    UnexpectedClose,
    /// A block still open at the end of the input (the position is its `{`).
    #[error("block of '{keyword}' opened here is never closed (expected '}}')")]
    UnclosedBlock {
        /// The keyword that opened the block.
        keyword: String,
    },
    /// A `{` with no keyword before it.
    #[error("expected a keyword before '{{'")]
    BlockWithoutKeyword,
    /// Blocks nested deeper than the bound.
    #[error("blocks nested deeper than {limit}")]
    TooDeep {
        /// The bound ([`super::MAX_NESTING`]).
        limit: usize,
    },
    /// `include` nested deeper than the bound.
    #[error("include nested deeper than {limit} files")]
    IncludeDepth {
        /// The bound ([`super::MAX_INCLUDE_DEPTH`]).
        limit: usize,
    },
    /// More files than the bound.
    #[error("more than {limit} configuration files")]
    TooManyFiles {
        /// The bound ([`super::MAX_FILES`]).
        limit: usize,
    },
    /// A file (or all files together) larger than the bound.
    #[error("configuration text larger than {limit} bytes")]
    TooLarge {
        /// The bound in bytes.
        limit: usize,
    },
    /// More words, real servers, services or real-server entries than the bounds allow.
    #[error("too many {what} (at most {limit})")]
    TooMany {
        /// What overflowed.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The loader could not read an included file or pattern.
    #[error("include {pattern:?} failed: {reason}")]
    IncludeFailed {
        /// The pattern, resolved against the including file's directory.
        pattern: String,
        /// The loader's message.
        reason: String,
    },
    /// A keyword without a value it needs.
    #[error("'{keyword}' needs {expected}")]
    MissingValue {
        /// The keyword.
        keyword: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A value that does not parse or is out of range.
    #[error("'{keyword}': expected {expected}, found {found:?}")]
    BadValue {
        /// The keyword.
        keyword: String,
        /// What was expected.
        expected: &'static str,
        /// The text found.
        found: String,
    },
    /// A keyword that must open a block has none.
    #[error("'{keyword}' needs a block '{{ ... }}'")]
    ExpectedBlock {
        /// The keyword.
        keyword: String,
    },
    /// `virtual_server group NAME` naming no `virtual_server_group`.
    #[error("no virtual_server_group named {0:?}")]
    UnknownGroup(String),
    /// The rule model refused a service or real server (position: its keyword).
    #[error("{0}")]
    Rule(RuleError),
}

/// How serious a [`Warning`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something outside the LVS model (another daemon's block) was skipped, as designed.
    Info,
    /// Something keepalived would log and ignore or adjust: an unknown keyword, a value it
    /// resets, a real server it skips.
    Warning,
}

/// A note about something skipped or adjusted while reading; the configuration was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// [`Level::Info`] or [`Level::Warning`].
    pub level: Level,
    /// File of the word concerned.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// What happened.
    pub message: String,
}

/// `file:line:column: warning: message` (or `info:`).
impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lvl = match self.level {
            Level::Info => "info",
            Level::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {lvl}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}
