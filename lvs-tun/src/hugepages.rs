//! The system layer's memory: a global allocator that asks the kernel to back large
//! allocations with transparent huge pages.
//!
//! A director's connection table is a few large arrays (an entry slab, two indexes, the
//! timer wheel) read at random, one or two cache lines per packet. With 4 KiB pages a table of
//! a million flows spans some 15,000 pages, far more than the CPU's TLB holds, so nearly
//! every lookup also walks the page tables (in a virtual machine, twice over), and a
//! prefetch that misses the TLB waits for that walk before its line can start to arrive.
//! Backed by 2 MiB pages the same table needs some 30 TLB entries. lvs-core allocates
//! through the global allocator and has no `unsafe`; this is where a process that embeds
//! it can add the advice: [`HugePageAlloc`] passes every request to the system allocator
//! and, for an allocation that covers at least one whole 2 MiB-aligned range, calls
//! `madvise(MADV_HUGEPAGE)` on the aligned part. That is advice: with transparent huge pages
//! set to `never` (or a kernel without them) it changes nothing, and a page the kernel
//! cannot make huge stays small. With the setting at `always` the kernel already does this
//! for every large mapping.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// The huge page size the advice aligns to (x86-64 and arm64 with 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// The system allocator, with `madvise(MADV_HUGEPAGE)` on the 2 MiB-aligned part of every
/// allocation that has one (see the module docs). Install it with `#[global_allocator]`.
///
/// ```
/// use lvs_tun::hugepages::HugePageAlloc;
///
/// #[global_allocator]
/// static ALLOC: HugePageAlloc = HugePageAlloc::new(true);
/// # fn main() {
/// let table = vec![0u32; 4 << 20]; // 16 MiB: advised
/// assert_eq!(table.len(), 4 << 20);
/// # }
/// ```
#[derive(Debug)]
pub struct HugePageAlloc {
    advise: AtomicBool,
}

impl HugePageAlloc {
    /// An allocator that advises large allocations when `advise` is true (see
    /// [`HugePageAlloc::set_advise`]).
    pub const fn new(advise: bool) -> Self {
        HugePageAlloc {
            advise: AtomicBool::new(advise),
        }
    }

    /// Advises the allocations made from now on (`true`) or stops advising (`false`); an
    /// allocation keeps the advice it had. For comparing both in one process.
    pub fn set_advise(&self, advise: bool) {
        self.advise.store(advise, Ordering::Relaxed);
    }

    /// Whether allocations made now are advised.
    pub fn advises(&self) -> bool {
        self.advise.load(Ordering::Relaxed)
    }

    /// The advice for `len` bytes at `p`, on their whole 2 MiB-aligned ranges. Errors are
    /// ignored: the advice is an optimisation the kernel may decline.
    fn advise(&self, p: *mut u8, len: usize) {
        if len < HUGE_PAGE || !self.advises() {
            return;
        }
        let start = (p as usize).next_multiple_of(HUGE_PAGE);
        let end = (p as usize).saturating_add(len) & !(HUGE_PAGE - 1);
        let Some(aligned) = NonNull::new(start as *mut core::ffi::c_void) else {
            return;
        };
        if end > start {
            // SAFETY: `start..end` lies within the allocation of `len` bytes at `p` the system
            // allocator just returned, which this process owns; MADV_HUGEPAGE only changes
            // how the kernel backs those pages, never their contents, so no Rust object
            // observes it.
            let _ = unsafe {
                nix::sys::mman::madvise(
                    aligned,
                    end - start,
                    nix::sys::mman::MmapAdvise::MADV_HUGEPAGE,
                )
            };
        }
    }
}

// SAFETY: every method passes its request to `System` unchanged and returns what `System`
// returned; `advise` only gives the kernel advice about memory of the allocation just made.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `GlobalAlloc::alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.advise(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 && layout.size() >= HUGE_PAGE && self.advises() {
            // `System` zeroes an over-aligned allocation by writing it, which would fault its
            // pages in as small ones before the advice: advise first, then zero.
            // SAFETY: the caller's contract for `GlobalAlloc::alloc_zeroed` (a layout of
            // non-zero size) is the one `alloc` needs.
            let p = unsafe { self.alloc(layout) };
            if !p.is_null() {
                // SAFETY: `p` points to `layout.size()` bytes just allocated for the caller.
                unsafe { p.write_bytes(0, layout.size()) };
            }
            return p;
        }
        // SAFETY: the caller's contract for `GlobalAlloc::alloc_zeroed`, passed on. For
        // the alignments of `Vec`s of plain data this is `calloc`, which leaves the fresh
        // pages of a large allocation untouched until the advice below.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.advise(p, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `GlobalAlloc::dealloc`; `ptr` came from
        // `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `GlobalAlloc::realloc`; `ptr` came from
        // `System` through this allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.advise(p, new_size);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping of `/proc/self/smaps` that holds `addr`: its `AnonHugePages` in kB and
    /// whether its `VmFlags` has `hg` (advised with MADV_HUGEPAGE).
    fn mapping_at(addr: usize) -> Option<(u64, bool)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let (mut inside, mut huge) = (false, None);
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
            if !inside {
                continue;
            }
            if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                huge = kb.trim().trim_end_matches("kB").trim().parse().ok();
            } else if let Some(flags) = line.strip_prefix("VmFlags:") {
                return Some((huge?, flags.split_whitespace().any(|f| f == "hg")));
            }
        }
        None
    }

    /// An advised 32 MiB zeroed allocation, plainly aligned or page-aligned, is marked for
    /// huge pages (`hg`) and reads as zeros, and an unadvised one is not marked. Where the
    /// kernel backs the plainly aligned one with huge pages, it backs the page-aligned one
    /// too: that one is advised before it is zeroed (zeroing first would fault its pages in
    /// small). A kernel built without transparent huge pages has nothing to check.
    #[test]
    fn large_allocations_get_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            return;
        }
        let len = 32 << 20;
        let mut plain_huge = 0;
        for (advise, align) in [(true, 8), (true, 4096), (false, 8)] {
            let layout = Layout::from_size_align(len, align).unwrap();
            let a = HugePageAlloc::new(advise);
            assert_eq!(a.advises(), advise);
            // SAFETY: a non-zero-sized layout; the memory is freed below with the same one.
            let p = unsafe { a.alloc_zeroed(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` points to `len` zeroed bytes this test owns until `dealloc`.
            let bytes = unsafe { std::slice::from_raw_parts_mut(p, len) };
            for page in bytes.chunks_mut(4096) {
                assert_eq!(page[0], 0);
                page[0] = 1;
            }
            let seen = mapping_at(p as usize + len / 2);
            // SAFETY: `p` came from `a.alloc_zeroed(layout)`.
            unsafe { a.dealloc(p, layout) };
            let (huge_kb, marked) = seen.expect("the allocation's mapping in /proc/self/smaps");
            assert_eq!(marked, advise, "align {align}: VmFlags hg");
            match (advise, align) {
                (true, 8) => plain_huge = huge_kb,
                (true, _) if plain_huge >= 2048 => {
                    assert!(huge_kb >= 2048, "align {align}: AnonHugePages {huge_kb} kB");
                }
                _ => {}
            }
        }
    }
}
