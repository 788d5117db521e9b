//! How the process's allocator is set up.
//!
//! glibc raises its mmap threshold each time a large block (a list response of thousands of
//! objects, tens of MB) is freed, up to 32 MiB, after which such blocks come from the heap and
//! leave it fragmented between the caches' small, long-lived entries: at 1 000 tenants / 10 000
//! workloads the operator's peak RSS was ~170 MiB for ~110 MiB of heap, and ~150 MiB with the
//! threshold fixed (README, Scale). Fixing it sends every block over 128 KiB to mmap, returned to
//! the system when freed.

/// Blocks at least this large are mapped on their own.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Fixes glibc's mmap threshold (see the module docs). Other C libraries: nothing to do.
pub fn limit_fragmentation() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets one tunable of the allocator, under its own locks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
