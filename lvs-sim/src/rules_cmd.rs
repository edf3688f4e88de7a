//! `lvs-sim rules --keepalived FILE`: what a keepalived configuration means for IPVS.
//!
//! Prints the rules exactly as `ipvsadm -S -n` would print them once keepalived has installed
//! them, then, as `#` comment lines (so the output is still an `ipvsadm -R` input), the pool
//! and checker settings of every real server
//! ([`KeepalivedConfig::describe`](lvs_core::keepalived::KeepalivedConfig::describe)). The
//! health monitor's input is built from the same configuration
//! ([`KeepalivedConfig::health_specs`]) and checked, so a configuration that prints here is
//! one the simulator and the runtime can monitor.
//!
//! Warnings (unknown keywords skipped, values adjusted, other keepalived blocks noted) go to
//! the error stream with file, line and column; a structural error stops with its position.
//!
//! `include` patterns are resolved relative to the including file's directory (by the parser);
//! glob characters are honoured in the last path component, matches read in sorted order.

use std::io::Write;
use std::path::Path;

use lvs_core::health::{HealthError, HealthMonitor};
use lvs_core::keepalived::{
    glob_match, parse_with, KeepalivedConfig, KeepalivedError, Level, Loader, MAX_FILES,
    MAX_FILE_BYTES,
};

/// Why `lvs-sim rules` failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The main file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The system's message.
        message: String,
    },
    /// The configuration is malformed (the error names file, line and column).
    #[error("{0}")]
    Config(#[from] KeepalivedError),
    /// The health monitor refuses the settings.
    #[error("{path}: health settings: {error}")]
    Health {
        /// The main file.
        path: String,
        /// The monitor's error.
        error: HealthError,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl RulesError {
    /// The exit status: 2 for a file that cannot be read, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        match self {
            RulesError::Read { .. } => 2,
            _ => 1,
        }
    }
}

/// Reads included files from the file system: a plain path is read (an error when missing);
/// a pattern with `*`, `?` or `[` in its last component lists that directory and reads the
/// matching regular files in name order (none: an empty list). Files larger than the parser's
/// per-file limit are refused before reading; at most [`MAX_FILES`] matches are read.
pub fn fs_loader(pattern: &str) -> Result<Vec<(String, String)>, String> {
    let read = |p: &Path| -> Result<String, String> {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.len() > MAX_FILE_BYTES as u64 {
            return Err(format!(
                "{}: {} bytes, more than {MAX_FILE_BYTES}",
                p.display(),
                meta.len()
            ));
        }
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let path = Path::new(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?', '[']) {
        return Ok(vec![(pattern.to_string(), read(path)?)]);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // keepalived: a glob in a missing directory matches nothing.
        Err(_) => return Ok(Vec::new()),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| glob_match(name, n))
        .collect();
    names.sort();
    names.truncate(MAX_FILES);
    names
        .into_iter()
        .map(|n| {
            let p = dir.join(&n);
            let text = read(&p)?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// Reads and checks a configuration given as text (`name` resolves its includes through
/// `loader`): the parsed configuration, its health settings accepted by [`HealthMonitor`].
pub fn load(
    name: &str,
    text: &str,
    loader: &mut dyn Loader,
) -> Result<KeepalivedConfig, RulesError> {
    let cfg = parse_with(name, text, loader)?;
    // Only the validation matters here: no probe is ever started.
    let mut rng = NoRandom;
    HealthMonitor::new(lvs_core::Instant::ZERO, cfg.health_specs(), &mut rng).map_err(|error| {
        RulesError::Health {
            path: name.to_string(),
            error,
        }
    })?;
    Ok(cfg)
}

/// Writes the output of `lvs-sim rules` for a configuration text to `out` and its warnings to
/// `err`, one `file:line:column: level: message` line each.
pub fn run_text(
    name: &str,
    text: &str,
    loader: &mut dyn Loader,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), RulesError> {
    let cfg = load(name, text, loader)?;
    for w in &cfg.warnings {
        let level = match w.level {
            Level::Warning => "warning",
            Level::Info => "note",
        };
        writeln!(
            err,
            "{}:{}:{}: {level}: {}",
            w.file, w.line, w.column, w.message
        )?;
    }
    out.write_all(cfg.describe().as_bytes())?;
    Ok(())
}

/// `lvs-sim rules --keepalived FILE` on the file system.
pub fn run_file(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), RulesError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| RulesError::Read {
        path: name.clone(),
        message: e.to_string(),
    })?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(RulesError::Read {
            path: name,
            message: format!("{} bytes, more than {MAX_FILE_BYTES}", meta.len()),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
        path: name.clone(),
        message: e.to_string(),
    })?;
    run_text(&name, &text, &mut fs_loader, out, err)
}

/// The monitor draws warmup delays from its generator; validation draws nothing useful.
struct NoRandom;

impl rand_core::RngCore for NoRandom {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(0)
    }
}
