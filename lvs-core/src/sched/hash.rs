//! Kernel hash functions used by the hashing schedulers (spec §1.7–§1.11).
//!
//! - [`hash_32`]: `include/linux/hash.h`, the high `bits` of `x * GOLDEN_RATIO_32` (current
//!   kernels' bucket hash of dh, sh, lblc and lblcr);
//! - [`legacy_hash`]: `(x * 2654435761) & mask`, the low bits (3.x / 4.x era kernels);
//! - [`addr_fold`]: the 32-bit key of an address (IPv6: XOR of its four big-endian words);
//! - [`hsiphash`] / [`hsiphash_u32`]: `hsiphash` as built on 64-bit little-endian kernels, i.e.
//!   SipHash-1-3 with a 64-bit state, keys zero-extended to 64 bits, the result truncated to
//!   32 bits (mh).
//!
//! All of them are pure, allocation-free and total (no input panics).

use core::net::IpAddr;

use super::HashVariant;

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`.
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The multiplier of the legacy bucket hash (`2654435761UL`, the golden ratio prime of 2^32).
pub const LEGACY_MULTIPLIER: u32 = 2_654_435_761;

/// `hash_32(x, bits)`: the high `bits` bits of `x * 0x61C88647 mod 2^32`.
///
/// `bits` outside `1..=32` is clamped into that range (the kernel only uses 8 and 10 here).
///
/// ```
/// use lvs_core::sched::hash::hash_32;
/// // 192.168.1.10 lands in bucket 248 of a 256-bucket sh/dh table (spec vector H1).
/// assert_eq!(hash_32(0xC0A8_010A, 8), 248);
/// ```
#[inline]
pub const fn hash_32(x: u32, bits: u32) -> u32 {
    let bits = if bits == 0 {
        1
    } else if bits > 32 {
        32
    } else {
        bits
    };
    let h = x.wrapping_mul(GOLDEN_RATIO_32);
    // `>> 32` would overflow for bits == 32; widen instead.
    ((h as u64) >> (32 - bits)) as u32
}

/// The legacy bucket hash `(x * 2654435761) & mask`.
///
/// The kernel multiplies in `unsigned long`; only the low bits are kept, which are the same as
/// those of the 32-bit wrapping product.
///
/// ```
/// use lvs_core::sched::hash::legacy_hash;
/// assert_eq!(legacy_hash(0xC0A8_010A, 0xFF), 234);
/// ```
#[inline]
pub const fn legacy_hash(x: u32, mask: u32) -> u32 {
    x.wrapping_mul(LEGACY_MULTIPLIER) & mask
}

/// The bucket of `x` in a table of `2^bits` buckets under the given hash generation.
///
/// ```
/// use lvs_core::sched::hash::bucket;
/// use lvs_core::sched::HashVariant;
/// assert_eq!(bucket(HashVariant::Current, 0x0A00_0001, 8), 39);
/// assert_eq!(bucket(HashVariant::Legacy, 0x0A00_0001, 8), 177);
/// ```
#[inline]
pub const fn bucket(variant: HashVariant, x: u32, bits: u32) -> u32 {
    match variant {
        HashVariant::Current => hash_32(x, bits),
        HashVariant::Legacy => {
            let mask = if bits >= 32 {
                u32::MAX
            } else {
                (1u32 << bits) - 1
            };
            legacy_hash(x, mask)
        }
    }
}

/// The 32-bit key of an address in host order: IPv4 as is, IPv6 the XOR of its four 32-bit
/// words read big-endian (`ntohl(ip6[0] ^ ip6[1] ^ ip6[2] ^ ip6[3])`).
///
/// ```
/// use lvs_core::sched::hash::addr_fold;
/// let v6: core::net::IpAddr = "2001:db8::1".parse().unwrap();
/// assert_eq!(addr_fold(v6), 0x2001_0DB9);
/// let v4: core::net::IpAddr = "10.0.0.1".parse().unwrap();
/// assert_eq!(addr_fold(v4), 0x0A00_0001);
/// ```
#[inline]
pub fn addr_fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// An `hsiphash_key_t` of a 64-bit kernel: two `unsigned long` words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HsiphashKey {
    /// `key[0]`.
    pub k0: u64,
    /// `key[1]`.
    pub k1: u64,
}

impl HsiphashKey {
    /// A key from its two words.
    pub const fn new(k0: u64, k1: u64) -> Self {
        HsiphashKey { k0, k1 }
    }
}

/// The SipHash state: four 64-bit words.
#[derive(Clone, Copy)]
struct SipState {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl SipState {
    #[inline(always)]
    fn new(key: &HsiphashKey) -> Self {
        // "somepseudorandomlygeneratedbytes"
        SipState {
            v0: 0x736f_6d65_7073_6575 ^ key.k0,
            v1: 0x646f_7261_6e64_6f6d ^ key.k1,
            v2: 0x6c79_6765_6e65_7261 ^ key.k0,
            v3: 0x7465_6462_7974_6573 ^ key.k1,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    /// One compression round (the "1" of SipHash-1-3).
    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.v0 ^= m;
    }

    /// The last block, then three finalisation rounds (the "3"); the 64-bit result.
    #[inline(always)]
    fn finish(mut self, b: u64) -> u64 {
        self.compress(b);
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        (self.v0 ^ self.v1) ^ (self.v2 ^ self.v3)
    }
}

/// `hsiphash(data, len, key)` of a 64-bit kernel: SipHash-1-3 truncated to 32 bits.
///
/// ```
/// use lvs_core::sched::hash::{hsiphash, HsiphashKey};
/// // The kernel's self-test key and its vector for the empty input.
/// let key = HsiphashKey::new(0x0706050403020100, 0x0f0e0d0c0b0a0908);
/// assert_eq!(hsiphash(&[], &key), 0x050fc4dc);
/// ```
pub fn hsiphash(data: &[u8], key: &HsiphashKey) -> u32 {
    let mut s = SipState::new(key);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        s.compress(m);
    }
    // The length byte in the top 8 bits (`len << 56`, the length mod 256), the trailing
    // bytes little-endian below it.
    let mut b = (data.len() as u64) << 56;
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        b |= (byte as u64) << (8 * i);
    }
    s.finish(b) as u32
}

/// `hsiphash(&v, 4, key)` of a 64-bit little-endian kernel: the 4 bytes of `v` in memory are
/// `v.to_le_bytes()`, so this is the same as `hsiphash(&v.to_le_bytes(), key)`, without the
/// byte loop.
///
/// ```
/// use lvs_core::sched::hash::{hsiphash, hsiphash_u32, HsiphashKey};
/// let key = HsiphashKey::new(2654435761, 2654435761);
/// let v = 0x0A00_0001u32 + 80;
/// assert_eq!(hsiphash_u32(v, &key), hsiphash(&v.to_le_bytes(), &key));
/// ```
#[inline]
pub fn hsiphash_u32(v: u32, key: &HsiphashKey) -> u32 {
    let s = SipState::new(key);
    s.finish((4u64 << 56) | v as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_bounds() {
        assert_eq!(
            hash_32(u32::MAX, 32),
            u32::MAX.wrapping_mul(GOLDEN_RATIO_32)
        );
        assert!(hash_32(12345, 8) < 256);
        assert!(hash_32(12345, 10) < 1024);
        assert_eq!(hash_32(0, 8), 0);
        // Clamped, never panics.
        assert!(hash_32(7, 0) < 2);
        assert_eq!(hash_32(7, 40), hash_32(7, 32));
    }

    #[test]
    fn legacy_only_low_byte_matters_for_8_bits() {
        for x in [0xC0A8_010Au32, 0x0A00_0001, 0xAC10_054D, 0xCB00_71C8] {
            assert_eq!(legacy_hash(x, 0xFF), ((x & 0xFF) * 0xB1) & 0xFF);
        }
    }

    #[test]
    fn fold_v4_mapped_differs_from_v4() {
        let v6: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(addr_fold(v6), 0x0000_ffff ^ 0x0A00_0001);
    }
}
