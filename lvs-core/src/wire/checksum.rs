//! The Internet checksum (RFC 1071) as small composable functions, and the RFC 1624
//! incremental update.
//!
//! Vocabulary: a *sum* is the folded one's-complement sum of 16-bit big-endian words (what
//! [`data`] returns, never inverted); a *checksum* is the inverted sum as stored in a header
//! (`!sum`). Sums compose with [`combine`]; a header checksum is `!combine(&[pseudo, data])`.
//!
//! ```
//! use lvs_core::wire::checksum;
//! // The RFC 1071 example: the words 0x0001 0xf203 0xf4f5 0xf6f7 sum to 0xddf2.
//! let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
//! assert_eq!(checksum::data(&bytes), 0xddf2);
//! // Sums of the halves combine into the sum of the whole.
//! assert_eq!(checksum::combine(&[checksum::data(&bytes[..4]), checksum::data(&bytes[4..])]), 0xddf2);
//! // Changing one word: the incremental update equals a recomputation.
//! let check = !checksum::data(&bytes);
//! let mut changed = bytes;
//! changed[2..4].copy_from_slice(&0x1234u16.to_be_bytes());
//! assert_eq!(checksum::update_u16(check, 0xf203, 0x1234), !checksum::data(&changed));
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Folds a wide one's-complement accumulator to 16 bits (end-around carry).
#[inline(always)]
pub const fn fold(sum: u64) -> u16 {
    // 64 -> 32 -> 16 bits, each an addition with the carry added back (end-around carry).
    // After an overflow the wrapped sum is at most 2^n - 2, so adding the carry cannot
    // overflow again.
    let (s, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + carry as u32;
    let (t, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    t + carry as u16
}

/// The 64-bit one's-complement sum of `a` and `b` (the carry out added back). [`fold`] of
/// the result is the folded sum of the two; the result is 0 only if both are.
#[inline(always)]
pub(crate) const fn add64(a: u64, b: u64) -> u64 {
    // After an overflow the wrapped sum is at most 2^64 - 2: adding the carry cannot overflow.
    let (s, carry) = a.overflowing_add(b);
    s + carry as u64
}

/// Unfolded one's-complement accumulation of `data` as big-endian 16-bit words (a trailing odd
/// byte is padded with a zero byte). Add several and [`fold`] once. The value is congruent
/// to the sum of the words modulo 0xffff, and 0 only for all-zero data (what folding needs),
/// not necessarily the plain sum.
#[inline]
pub fn accumulate(data: &[u8]) -> u64 {
    // Bulk: native-endian 64-bit words added with end-around carry (one addition per 8
    // bytes). The one's-complement sum does not depend on byte order except for a swap of
    // its two bytes (RFC 1071 2.B), undone after folding; the sum stays non-zero once a
    // non-zero word was added (an addition that wraps leaves at most 2^64 - 2, plus 1).
    let mut chunks = data.chunks_exact(8);
    let mut wide: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        wide = add64(wide, u64::from_ne_bytes(w));
    }
    let mut acc = u64::from(u16::from_be(fold(wide)));
    // The tail (fewer than 8 bytes, at an even offset): big-endian words.
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// The folded one's-complement sum of `data` (not inverted).
#[inline]
pub fn data(data: &[u8]) -> u16 {
    fold(accumulate(data))
}

/// One's-complement sum of several folded sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    let mut acc: u64 = 0;
    for &s in sums {
        acc += u64::from(s);
    }
    fold(acc)
}

/// Sum of the IPv4 pseudo-header (source, destination, zero, protocol, L4 length).
#[inline]
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, len: u32) -> u16 {
    let acc = u64::from(u32::from_be_bytes(src.octets()))
        + u64::from(u32::from_be_bytes(dst.octets()))
        + u64::from(protocol)
        + u64::from(len);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (source, destination, 32-bit upper-layer length, next header).
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u16 {
    let acc = accumulate(&src.octets())
        + accumulate(&dst.octets())
        + u64::from(next_header)
        + u64::from(len);
    fold(acc)
}

/// Sum of the pseudo-header for either family.
///
/// When the families differ (a caller error, never produced by the views) the IPv4 address is
/// taken in its IPv4-mapped IPv6 form, so the function never panics.
#[inline]
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, len: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, protocol, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, protocol, len),
        (s, d) => pseudo_header_v6(&to_v6(s), &to_v6(d), protocol, len),
    }
}

/// The folded sum (not inverted) of a whole transport segment `seg` and its pseudo-header
/// with `seg`'s length: 0xffff when a checksum in it verifies. This is the sum over the IP
/// payload as received, which the kernel's full checksum computations cover (for UDP
/// whatever its length field says).
#[inline]
pub fn segment(src: &IpAddr, dst: &IpAddr, protocol: u8, seg: &[u8]) -> u16 {
    let len = u32::try_from(seg.len()).unwrap_or(u32::MAX);
    combine(&[pseudo_header(src, dst, protocol, len), data(seg)])
}

fn to_v6(a: &IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => *a,
    }
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed from
/// `old` to `new`: `HC' = ~(~HC + ~m + m')`.
///
/// The result equals a full recomputation whenever the covered data is not all zeros (always
/// true for IP, TCP and UDP, whose headers or pseudo-headers have non-zero words). A field at an
/// odd offset is updated through the 16-bit word containing it (for example TTL and protocol
/// of IPv4 together).
#[inline]
pub const fn update_u16(check: u16, old: u16, new: u16) -> u16 {
    !fold(!check as u64 + !old as u64 + new as u64)
}

/// RFC 1624 update for a 32-bit field (an IPv4 address, a TCP sequence number).
#[inline]
pub const fn update_u32(check: u16, old: u32, new: u32) -> u16 {
    let acc = (!check) as u64
        + (!(old >> 16) & 0xffff) as u64
        + (!old & 0xffff) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(acc)
}

/// RFC 1624 update for a 128-bit field (an IPv6 address), given as bytes.
#[inline]
pub fn update_u128(check: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    update_bytes(check, old, new)
}

/// RFC 1624 update for any field of `old.len()` bytes starting at an even offset of the
/// covered data. `old` and `new` have the same length; an odd trailing byte is the high half of
/// its word (the next byte must be unchanged).
///
/// # Panics
/// If `old.len() != new.len()` (a programmer error).
#[inline]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    assert_eq!(old.len(), new.len(), "update_bytes: field lengths differ");
    // ~m summed word by word equals (number of words * 0xffff) - sum(m); with end-around carry
    // this is the one's-complement negation of the folded sum of m.
    let neg_old = !data(old);
    !fold(u64::from(!check) + u64::from(neg_old) + accumulate(new))
}

/// The UDP transmit rule: a computed checksum of 0 is sent as 0xFFFF (0 means "no checksum").
#[inline]
pub const fn udp_nonzero(check: u16) -> u16 {
    if check == 0 {
        0xffff
    } else {
        check
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: sum of 16-bit words, one at a time.
    fn slow_sum(d: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in d.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn fold_handles_large_values() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0x1_fffe), 0xffff);
    }

    #[test]
    fn pseudo_header_matches_layout() {
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let d = Ipv4Addr::new(192, 0, 2, 7);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&[0, 6, 0, 40]);
        assert_eq!(pseudo_header_v4(&s, &d, 6, 40), slow_sum(&bytes));
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::ff:2".parse().unwrap();
        let mut b6 = Vec::new();
        b6.extend_from_slice(&s6.octets());
        b6.extend_from_slice(&d6.octets());
        b6.extend_from_slice(&70_000u32.to_be_bytes());
        b6.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 17, 70_000), slow_sum(&b6));
        assert_eq!(
            pseudo_header(&IpAddr::V6(s6), &IpAddr::V6(d6), 17, 70_000),
            slow_sum(&b6)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Folding keeps the value modulo 0xffff, and gives 0 only for 0.
        #[test]
        fn fold_is_congruent(x in any::<u64>()) {
            let f = fold(x);
            prop_assert_eq!(u64::from(f) % 0xffff, x % 0xffff);
            prop_assert_eq!(f == 0, x == 0);
        }

        #[test]
        fn data_matches_reference(d in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(data(&d), slow_sum(&d));
        }

        #[test]
        fn combine_of_even_split_is_whole(d in proptest::collection::vec(any::<u8>(), 0..200), at in 0usize..100) {
            let at = (at * 2).min(d.len() & !1);
            prop_assert_eq!(combine(&[data(&d[..at]), data(&d[at..])]), data(&d));
        }

        /// Incremental update of a 16-, 32- or 128-bit field at any even offset equals the
        /// recomputed checksum (data with a non-zero first word, as every real header has).
        #[test]
        fn incremental_equals_full(
            mut d in proptest::collection::vec(any::<u8>(), 20..120),
            at in 0usize..50,
            width in prop_oneof![Just(2usize), Just(4), Just(16)],
            new in proptest::collection::vec(any::<u8>(), 16),
        ) {
            d[0] |= 0x40;
            let at = ((at * 2 % (d.len() - 16)) & !1).max(2);
            let check = !data(&d);
            let old = d[at..at + width].to_vec();
            d[at..at + width].copy_from_slice(&new[..width]);
            let full = !data(&d);
            let inc = match width {
                2 => update_u16(check, u16::from_be_bytes([old[0], old[1]]), u16::from_be_bytes([new[0], new[1]])),
                4 => update_u32(check, u32::from_be_bytes([old[0], old[1], old[2], old[3]]), u32::from_be_bytes([new[0], new[1], new[2], new[3]])),
                _ => update_u128(check, &old[..].try_into().unwrap(), &new[..16].try_into().unwrap()),
            };
            prop_assert_eq!(inc, full);
            prop_assert_eq!(update_bytes(check, &old, &new[..width]), full);
        }
    }
}
