//! A cache prefetch hint for the table's read-ahead ([`ConnTable::prefetch`] and
//! [`ConnTable::prefetch_entries`]).
//!
//! [`ConnTable::prefetch`]: super::table::ConnTable
//! [`ConnTable::prefetch_entries`]: super::table::ConnTable

/// Starts bringing the cache line that holds `r` into every cache level, without waiting
/// for it: a prefetch instruction has no effect on the program's results, and unlike a
/// load it does not hold up the instructions after it until the line arrives. A driver
/// can therefore read ahead for packets it will handle later (a software pipeline) rather
/// than only for a group it is about to handle. Where the target has no prefetch
/// instruction (safely exposed), the value is read instead.
#[inline(always)]
pub(crate) fn prefetch<T: Copy>(r: &T) {
    #[cfg(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse"
    ))]
    safe_arch::prefetch_t0(r);
    #[cfg(not(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse"
    )))]
    core::hint::black_box(*r);
}
