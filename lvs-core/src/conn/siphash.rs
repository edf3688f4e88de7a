//! SipHash-1-3 over whole 64-bit words, keyed by the caller.
//!
//! The connection table hashes 5-tuples chosen by remote hosts; with a secret 128-bit key
//! they cannot aim many flows at one probe sequence. (The newest kernels moved the conn table
//! to siphash for the same reason.) The core has no RNG: the driver passes the key.

/// A 128-bit SipHash key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashKey {
    k0: u64,
    k1: u64,
}

impl core::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret.
        f.write_str("HashKey(..)")
    }
}

impl HashKey {
    /// A key from 16 bytes (little-endian halves, as in the SipHash reference).
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        HashKey {
            k0: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            k1: u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        }
    }

    /// A key from a `u128` (low half is `k0`).
    pub const fn from_u128(k: u128) -> Self {
        HashKey {
            k0: k as u64,
            k1: (k >> 64) as u64,
        }
    }
}

/// A key's SipHash starting point, computed once per key: the four state words after the
/// key is mixed in, with the part of the first compression round that does not depend on
/// the message already run (that round's first half only reads `v0` and `v1`). Every hash
/// the connection table computes starts from it ([`Sip::start_word`]), which saves the key
/// mixing and those four operations on each.
#[derive(Clone, Copy)]
pub(crate) struct SipStart {
    /// `rotl(v0 + v1, 32)`.
    v0: u64,
    /// `rotl(v1, 13) ^ (v0 + v1)`.
    v1: u64,
    v2: u64,
    v3: u64,
}

impl HashKey {
    /// The starting point of this key's hashes.
    pub(crate) const fn sip_start(&self) -> SipStart {
        let (v0, v1) = (
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
        );
        let s = v0.wrapping_add(v1);
        SipStart {
            v0: s.rotate_left(32),
            v1: v1.rotate_left(13) ^ s,
            v2: self.k0 ^ 0x6c79_6765_6e65_7261,
            v3: self.k1 ^ 0x7465_6462_7974_6573,
        }
    }
}

/// SipHash state with `C` compression and `D` finalisation rounds.
#[derive(Clone, Copy)]
pub(crate) struct Sip<const C: usize, const D: usize> {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
    len: u64,
}

/// SipHash-1-3, the variant Rust's std uses for `HashMap`.
pub(crate) type Sip13 = Sip<1, 3>;

impl<const C: usize, const D: usize> Sip<C, D> {
    /// The state after the key is mixed in: the reference that [`Sip::start_word`] follows.
    #[cfg(test)]
    fn new(key: &HashKey) -> Self {
        Sip {
            v0: key.k0 ^ 0x736f_6d65_7073_6575,
            v1: key.k1 ^ 0x646f_7261_6e64_6f6d,
            v2: key.k0 ^ 0x6c79_6765_6e65_7261,
            v3: key.k1 ^ 0x7465_6462_7974_6573,
            len: 0,
        }
    }

    /// [`Sip::new`] then [`Sip::word`]`(m)`, from the key's [`SipStart`] (`C` >= 1).
    #[inline(always)]
    pub(crate) fn start_word(start: &SipStart, m: u64) -> Self {
        const { assert!(C >= 1) };
        let mut s = Sip {
            v0: start.v0,
            v1: start.v1,
            v2: start.v2,
            v3: start.v3 ^ m,
            len: 8,
        };
        // The rest of the first round.
        s.round_rest();
        for _ in 1..C {
            s.round();
        }
        s.v0 ^= m;
        s
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13);
        self.v1 ^= self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.round_rest();
    }

    /// A SipRound from its fifth operation on: what follows the first half that
    /// [`SipStart`] runs ahead for the first round.
    #[inline(always)]
    fn round_rest(&mut self) {
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16);
        self.v3 ^= self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21);
        self.v3 ^= self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17);
        self.v1 ^= self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        for _ in 0..C {
            self.round();
        }
        self.v0 ^= m;
    }

    /// Absorbs 8 message bytes (the word's little-endian encoding).
    #[inline(always)]
    pub(crate) fn word(&mut self, m: u64) {
        self.compress(m);
        self.len = self.len.wrapping_add(8);
    }

    /// Finishes with `tail_len` (< 8) trailing bytes held in the low bytes of `tail`.
    #[inline(always)]
    pub(crate) fn finish_with_tail(mut self, tail: u64, tail_len: u64) -> u64 {
        let b = ((self.len.wrapping_add(tail_len) & 0xff) << 56) | tail;
        self.compress(b);
        self.v2 ^= 0xff;
        for _ in 0..D {
            self.round();
        }
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }

    /// Finishes a message made of whole words.
    #[inline(always)]
    pub(crate) fn finish(self) -> u64 {
        self.finish_with_tail(0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_bytes<const C: usize, const D: usize>(key: &HashKey, msg: &[u8]) -> u64 {
        let mut s = Sip::<C, D>::new(key);
        let mut chunks = msg.chunks_exact(8);
        for c in &mut chunks {
            s.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        let mut tail = 0u64;
        for (i, b) in rest.iter().enumerate() {
            tail |= (*b as u64) << (8 * i);
        }
        s.finish_with_tail(tail, rest.len() as u64)
    }

    fn ref_key() -> HashKey {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        HashKey::from_bytes(k)
    }

    #[test]
    fn siphash24_reference_vector() {
        // The example of the SipHash paper (appendix A): key 00..0f, message 00..0e.
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(hash_bytes::<2, 4>(&ref_key(), &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn siphash24_reference_vector_empty() {
        // First entry of the reference implementation's vectors.h (output bytes).
        assert_eq!(
            hash_bytes::<2, 4>(&ref_key(), &[]).to_le_bytes(),
            [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]
        );
    }

    #[test]
    fn start_word_is_new_then_word() {
        for k in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            let key = HashKey::from_u128(k);
            for m in [0u64, 1, u64::MAX, 0x8000_0000_0000_0001] {
                let mut a = Sip13::new(&key);
                a.word(m);
                let b = Sip13::start_word(&key.sip_start(), m);
                assert_eq!(a.finish_with_tail(7, 3), b.finish_with_tail(7, 3));
                let mut a = Sip::<2, 4>::new(&key);
                a.word(m);
                let b = Sip::<2, 4>::start_word(&key.sip_start(), m);
                assert_eq!(a.finish(), b.finish());
            }
        }
    }

    #[test]
    fn key_changes_hash() {
        let a = HashKey::from_u128(1);
        let b = HashKey::from_u128(2);
        let mut x = Sip13::new(&a);
        x.word(42);
        let mut y = Sip13::new(&b);
        y.word(42);
        assert_ne!(x.finish(), y.finish());
        assert_eq!(format!("{a:?}"), "HashKey(..)");
    }
}
