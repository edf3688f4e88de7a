//! Traffic counters with a zero point, and the kernel's rate estimator (spec §6.5).

use crate::rules::listing::{Rates, Stats};

/// The estimator's period: every stats object is sampled every 2 s.
pub const ESTIMATOR_PERIOD: crate::time::Duration = crate::time::Duration::from_secs(2);

/// The rate estimator of one stats object (`struct ip_vs_estimator`), with the kernel's
/// fixed-point arithmetic: connection and packet rates ×2^10, byte rates ×2^5.
///
/// ```
/// use lvs_core::director::stats::Estimator;
/// use lvs_core::rules::listing::Stats;
/// // A steady 100 connections per second: 200 per 2 s tick.
/// let mut est = Estimator::default();
/// let mut s = Stats::default();
/// let mut cps = Vec::new();
/// for _ in 0..4 {
///     s.conns += 200;
///     est.tick(&s);
///     cps.push(est.rates().cps);
/// }
/// assert_eq!(cps, [25, 44, 58, 68]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    /// Connections per second ×2^10.
    pub cps: i64,
    /// Input packets per second ×2^10.
    pub inpps: i64,
    /// Output packets per second ×2^10.
    pub outpps: i64,
    /// Input bytes per second ×2^5.
    pub inbps: i64,
    /// Output bytes per second ×2^5.
    pub outbps: i64,
}

/// `avg += (rate - avg) >> 2`, signed, on the kernel's 64-bit fields.
fn ewma(avg: &mut i64, now: u64, last: u64, shift: u32) {
    let rate = (now.wrapping_sub(last) << shift) as i64;
    *avg = avg.wrapping_add(rate.wrapping_sub(*avg) >> 2);
}

impl Estimator {
    /// One 2 s sample of the raw counters `s` (`ip_vs_estimation` / `ip_vs_chain_estimation`).
    pub fn tick(&mut self, s: &Stats) {
        ewma(&mut self.cps, s.conns, self.last.conns, 9);
        ewma(&mut self.inpps, s.inpkts, self.last.inpkts, 9);
        ewma(&mut self.outpps, s.outpkts, self.last.outpkts, 9);
        ewma(&mut self.inbps, s.inbytes, self.last.inbytes, 4);
        ewma(&mut self.outbps, s.outbytes, self.last.outbytes, 4);
        self.last = *s;
    }

    /// `ip_vs_zero_estimator`: the next sample starts from `s`, the averages restart at 0.
    pub fn zero(&mut self, s: &Stats) {
        *self = Estimator {
            last: *s,
            ..Estimator::default()
        };
    }

    /// Restarts sampling from `s` without touching the averages. (A revived real server does
    /// not: the kernel keeps its last sample.)
    pub fn resync(&mut self, s: &Stats) {
        self.last = *s;
    }

    /// The rates as reported (`ip_vs_read_estimator`): rounded to nearest,
    /// `(cps + 0x1FF) >> 10` and `(bps + 0xF) >> 5`.
    pub fn rates(&self) -> Rates {
        let r10 = |v: i64| (v as u64).wrapping_add(0x1FF) >> 10;
        let r5 = |v: i64| (v as u64).wrapping_add(0xF) >> 5;
        Rates {
            cps: r10(self.cps),
            inpps: r10(self.inpps),
            outpps: r10(self.outpps),
            inbps: r5(self.inbps),
            outbps: r5(self.outbps),
        }
    }
}

/// The counters of a service, a real server or the whole director: raw 64-bit counters, the
/// zero point set by `ipvsadm -Z` (readings subtract it) and the estimator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsCell {
    raw: Stats,
    zero: Stats,
    est: Estimator,
}

impl StatsCell {
    /// The counters since the last zeroing.
    pub fn read(&self) -> Stats {
        Stats {
            conns: self.raw.conns.wrapping_sub(self.zero.conns),
            inpkts: self.raw.inpkts.wrapping_sub(self.zero.inpkts),
            outpkts: self.raw.outpkts.wrapping_sub(self.zero.outpkts),
            inbytes: self.raw.inbytes.wrapping_sub(self.zero.inbytes),
            outbytes: self.raw.outbytes.wrapping_sub(self.zero.outbytes),
        }
    }

    /// The current rates.
    pub fn rates(&self) -> Rates {
        self.est.rates()
    }

    /// The estimator state.
    pub fn estimator(&self) -> &Estimator {
        &self.est
    }

    pub(crate) fn conn(&mut self) {
        self.raw.conns = self.raw.conns.wrapping_add(1);
    }

    pub(crate) fn inpkt(&mut self, len: u32) {
        self.raw.inpkts = self.raw.inpkts.wrapping_add(1);
        self.raw.inbytes = self.raw.inbytes.wrapping_add(len as u64);
    }

    pub(crate) fn outpkt(&mut self, len: u32) {
        self.raw.outpkts = self.raw.outpkts.wrapping_add(1);
        self.raw.outbytes = self.raw.outbytes.wrapping_add(len as u64);
    }

    pub(crate) fn tick(&mut self) {
        self.est.tick(&self.raw);
    }

    pub(crate) fn zero(&mut self) {
        self.zero = self.raw;
        self.est.zero(&self.raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_and_convergence() {
        let mut c = StatsCell::default();
        let mut seen = Vec::new();
        for _ in 0..40 {
            for _ in 0..200 {
                c.conn();
            }
            c.tick();
            seen.push(c.rates().cps);
        }
        assert_eq!(&seen[..4], &[25, 44, 58, 68]);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        assert!(seen[39] == 100 || seen[39] == 99, "{}", seen[39]);
    }

    #[test]
    fn bytes_scale_and_zero() {
        let mut c = StatsCell::default();
        c.inpkt(1000);
        c.tick();
        // 1000 bytes in 2 s = 500 B/s; ×32 = 16000; avg = 16000 / 4 = 4000 → (4000+15)>>5 = 125
        assert_eq!(c.estimator().inbps, 4000);
        assert_eq!(c.rates().inbps, 125);
        // 1 packet in 2 s: rate 512, avg 128, reported (128 + 511) >> 10 = 0
        assert_eq!(c.estimator().inpps, 128);
        assert_eq!(c.rates().inpps, 0);
        c.zero();
        assert_eq!(c.read(), Stats::default());
        assert_eq!(c.rates(), Rates::default());
        c.tick();
        assert_eq!(
            c.estimator().inbps,
            0,
            "zero restarts from the current counters"
        );
        c.outpkt(10);
        assert_eq!(c.read().outbytes, 10);
    }

    #[test]
    fn decay_is_signed() {
        let mut c = StatsCell::default();
        for _ in 0..100 {
            c.conn();
        }
        c.tick();
        let a = c.estimator().cps; // 100 << 9 >> 2
        assert_eq!(a, 12800);
        c.tick(); // rate 0: avg += (0 - 12800) >> 2
        assert_eq!(c.estimator().cps, 9600);
    }
}
