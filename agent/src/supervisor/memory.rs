// SPDX-License-Identifier: GPL-2.0-only
//! Giving memory back after the agent's peaks. Compiling the rules at start and at a
//! reload, and the scan workers' buffers during a sweep, allocate tens of MB that are
//! freed when the work ends. glibc's allocator keeps freed memory for reuse: after a
//! large free it raises its own trim threshold, so the pages of the start's peak stayed
//! resident for the agent's whole life (about 18 MB of the idle agent's 69 MB, measured
//! with `malloc_trim` called from a debugger). After each peak the free pages are now
//! returned to the kernel; what is in use is untouched.

/// Return the allocator's free pages to the kernel (glibc `malloc_trim(0)`: the top of
/// each arena and every whole free page inside it). Blocking for a few milliseconds at
/// most: call it off the async workers. `after` names the peak, for the log.
pub fn release_freed(after: &str) {
    let before = resident_kib();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists (under its locks).
    let released = unsafe { libc::malloc_trim(0) } == 1;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let released = false;
    tracing::debug!(
        after,
        released,
        rss_kib_before = before,
        rss_kib_after = resident_kib(),
        "Freed memory returned to the kernel."
    );
}

/// This process's resident set (`VmRSS`, KiB), 0 when /proc cannot say.
pub fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status_field(&status, "VmRSS:")
}

/// The number a `/proc/<pid>/status` line starting with `key` holds (`VmRSS:` in
/// KiB, `Threads:`), 0 when the line is missing or unreadable.
pub fn status_field(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory allocated and freed is given back: the resident set after the release is
    /// well below what it was while the memory was in use. 64 MiB in 4 KiB blocks
    /// (below the mmap threshold, so they live in the heap the trim works on), every
    /// other one kept until the end so the heap's top cannot simply shrink.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_heap_pages_go_back_to_the_kernel() {
        const BLOCK: usize = 4096;
        const COUNT: usize = 64 * 1024 * 1024 / BLOCK;
        let mut blocks: Vec<Vec<u8>> = (0..COUNT).map(|i| vec![i as u8 | 1; BLOCK]).collect();
        let peak = resident_kib();
        // Free all but every 64th block: the heap is full of holes with a few blocks
        // in use between them (the kept ones stop the top from shrinking).
        let kept: Vec<Vec<u8>> = blocks
            .drain(..)
            .enumerate()
            .filter_map(|(i, b)| (i % 64 == 0).then_some(b))
            .collect();
        let freed = resident_kib();
        release_freed("test");
        let after = resident_kib();
        assert!(kept.iter().all(|b| b[0] & 1 == 1));
        assert!(peak > 60 * 1024, "the blocks were resident: {peak} KiB");
        assert!(
            after + 32 * 1024 < freed,
            "about 63 MiB free in holes: resident {freed} KiB before the release, {after} KiB after"
        );
    }
}
