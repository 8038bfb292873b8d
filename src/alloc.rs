//! The process allocator: the system allocator, except that very large requests are served by
//! `mmap(MAP_NORESERVE)` so that memory is committed only when touched.
//!
//! Why: kafka-protocol (0.17, `protocol/types.rs`) reserves `Vec::with_capacity(n)` from array
//! counts read off the wire before decoding the elements. A forged count (say 0x7fffffff
//! elements of 96 bytes) asks for hundreds of GB; the kernel's overcommit heuristic refuses, and
//! Rust aborts the process on allocation failure. With MAP_NORESERVE the reservation is only
//! address space, decoding then fails on the missing bytes, the request is refused and the
//! mapping is released. Legitimate large buffers behave as with malloc, which also maps large
//! blocks lazily.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this many bytes are mapped with MAP_NORESERVE.
pub const LAZY_MAPPING_MIN_BYTES: usize = 64 << 20;
const PAGE_BYTES: usize = 4096;

/// See the module documentation. Install with `#[global_allocator]` in the binary.
pub struct LazyHugeAllocator;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_MAPPING_MIN_BYTES && layout.align() <= PAGE_BYTES
}

unsafe impl GlobalAlloc for LazyHugeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_lazy(&layout) {
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            // Fresh anonymous mappings are zero-filled.
            return unsafe { self.alloc(layout) };
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            // SAFETY: `ptr` came from our mmap of exactly `layout.size()` bytes.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_lazy(&layout) && !is_lazy(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

/// Requests below this size come from glibc's arenas instead of a fresh `mmap` each (glibc's
/// largest allowed threshold, `DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit).
pub const SYSTEM_MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
/// Free memory an arena keeps at its top before returning it to the kernel.
pub const SYSTEM_TRIM_THRESHOLD_BYTES: i32 = 256 << 20;

const _: () = assert!((SYSTEM_MMAP_THRESHOLD_BYTES as usize) < LAZY_MAPPING_MIN_BYTES);

/// Makes glibc reuse freed memory for the broker's per-request buffers (socket reads, pending
/// chunks, fetch responses: 64 KiB to a few MiB, allocated and freed continuously).
///
/// With glibc's defaults, blocks above the dynamic mmap threshold (128 KiB, raised only up to the
/// largest block freed so far) are mmap'd and munmap'd each time, and an arena's free top beyond
/// 128 KiB is trimmed: every new buffer then costs page faults and the kernel zeroing its pages
/// (`clear_page_erms` was 29% of the broker's CPU with 1,000 partitions). Fixed thresholds keep
/// that memory in the arenas; blocks of [`LAZY_MAPPING_MIN_BYTES`] and more still go to
/// [`LazyHugeAllocator`]'s own mappings. Call once at start-up, before the shards start.
pub fn tune_system_allocator() {
    // SAFETY: mallopt only sets glibc tunables; it has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, SYSTEM_MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, SYSTEM_TRIM_THRESHOLD_BYTES);
    }
}
