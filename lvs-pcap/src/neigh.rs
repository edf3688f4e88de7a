//! The `--neigh` file: the neighbour table the director's direct-routing frames need.
//!
//! One entry per line, `<ip> <mac>` (IPv4 or IPv6, MAC as six hex pairs separated by `:` or
//! `-`); `#` starts a comment; blank lines are skipped. Errors name the line and column.
//!
//! ```
//! use lvs_pcap::neigh::{parse, NeighErrorKind};
//! let t = parse("# real servers\n10.0.0.2 02:00:00:00:00:02\nfd00::2 02-00-00-00-00-03\n").unwrap();
//! assert_eq!(t.get(&"10.0.0.2".parse().unwrap()), Some(&[2, 0, 0, 0, 0, 2]));
//! let e = parse("10.0.0.2 02:00:00:00:00\n").unwrap_err();
//! assert_eq!((e.line, e.column), (1, 10));
//! assert!(matches!(e.kind, NeighErrorKind::BadMac(_)));
//! ```

use core::net::IpAddr;
use std::collections::BTreeMap;

use crate::link::Mac;

/// The neighbour table: IP address to MAC.
pub type NeighTable = BTreeMap<IpAddr, Mac>;

/// A malformed `--neigh` line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct NeighError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters) of the offending word.
    pub column: usize,
    /// What is wrong.
    pub kind: NeighErrorKind,
}

/// What is wrong with a `--neigh` line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NeighErrorKind {
    /// The first word is not a numeric IPv4 or IPv6 address.
    #[error("expected an IP address, found `{0}`")]
    BadIp(String),
    /// The second word is missing.
    #[error("expected a MAC address after the IP address")]
    MissingMac,
    /// The second word is not six hex pairs.
    #[error("expected a MAC address like 02:00:5e:00:00:01, found `{0}`")]
    BadMac(String),
    /// Something follows the MAC.
    #[error("unexpected `{0}` after the MAC address")]
    Trailing(String),
    /// The address was given twice with different MACs.
    #[error("{0} was already given another MAC on line {1}")]
    Duplicate(IpAddr, usize),
}

/// Parses a MAC written as six hex pairs separated by `:` or `-`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in m.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// Words of a line with their 1-based character columns.
fn words(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = line;
    let mut col = 1;
    core::iter::from_fn(move || {
        let skip = rest.len() - rest.trim_start().len();
        col += rest[..skip].chars().count();
        rest = &rest[skip..];
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (w, r) = rest.split_at(end);
        let at = col;
        col += w.chars().count();
        rest = r;
        Some((at, w))
    })
}

/// Parses a whole `--neigh` file.
pub fn parse(text: &str) -> Result<NeighTable, NeighError> {
    let mut table = NeighTable::new();
    let mut lines_of: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or("");
        let mut w = words(content);
        let Some((c_ip, ip)) = w.next() else { continue };
        let err = |column, kind| NeighError { line, column, kind };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| err(c_ip, NeighErrorKind::BadIp(ip.into())))?;
        let Some((c_mac, m)) = w.next() else {
            return Err(err(content.chars().count() + 1, NeighErrorKind::MissingMac));
        };
        let m = parse_mac(m).ok_or_else(|| err(c_mac, NeighErrorKind::BadMac(m.into())))?;
        if let Some((c, t)) = w.next() {
            return Err(err(c, NeighErrorKind::Trailing(t.into())));
        }
        if let Some(old) = table.insert(ip, m) {
            if old != m {
                return Err(err(c_ip, NeighErrorKind::Duplicate(ip, lines_of[&ip])));
            }
        }
        lines_of.entry(ip).or_insert(line);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("\n  10.0.0.x 02:00:00:00:00:01").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        let e = parse("10.0.0.1").unwrap_err();
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, 9, NeighErrorKind::MissingMac)
        );
        let e = parse("10.0.0.1  02:00:00:00:00:01 extra").unwrap_err();
        assert_eq!((e.line, e.column), (1, 29));
        let e = parse("10.0.0.1 02:00:00:00:00:01\n10.0.0.1 02:00:00:00:00:02").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(parse("10.0.0.1 02:00:00:00:00:01\n10.0.0.1 02:00:00:00:00:01").is_ok());
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("aa:BB:cc:00:11:22"),
            Some([0xaa, 0xbb, 0xcc, 0, 0x11, 0x22])
        );
        assert_eq!(parse_mac("aa:bb:cc:00:11:22:33"), None);
        assert_eq!(parse_mac("a:bb:cc:00:11:22"), None);
        assert_eq!(parse_mac("+a:bb:cc:00:11:22"), None);
    }
}
