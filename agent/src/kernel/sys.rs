// SPDX-License-Identifier: GPL-2.0-only
//! BPF commands aya has no API for, through libbpf: batch map updates and
//! BPF_PROG_TEST_RUN.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// libbpf's convention: 0 or a count on success, `-errno` on failure.
fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        return Err(std::io::Error::from_raw_os_error(-rc));
    }
    Ok(())
}

/// BPF_MAP_UPDATE_BATCH: insert `count` keys/values (packed arrays) in one syscall.
/// Returns how many the kernel applied; Err(EINVAL/ENOTSUPP) where the map type has
/// no batch operations.
pub fn map_update_batch(
    map_fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> std::io::Result<u32> {
    let mut applied = count;
    let opts = libbpf_sys::bpf_map_batch_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: keys/values outlive the call and hold `count` packed elements (the
    // caller's contract, checked by the kernel against the map's sizes); `applied`
    // and `opts` are valid for the call.
    let rc = unsafe {
        libbpf_sys::bpf_map_update_batch(
            map_fd.as_raw_fd(),
            keys.as_ptr().cast(),
            values.as_ptr().cast(),
            &mut applied,
            &opts,
        )
    };
    check(rc)?;
    Ok(applied)
}

/// Result of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, Copy)]
pub struct TestRun {
    pub retval: u32,
    /// Mean ns per run as measured by the kernel.
    pub duration_ns: u32,
}

/// Run a loaded program on `data` `repeat` times in the kernel (BPF_PROG_TEST_RUN).
pub fn test_run(prog_fd: RawFd, data: &[u8], repeat: u32) -> std::io::Result<TestRun> {
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: data.as_ptr().cast(),
        data_size_in: u32::try_from(data.len())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::E2BIG))?,
        repeat: i32::try_from(repeat).unwrap_or(i32::MAX),
        ..Default::default()
    };
    // SAFETY: data outlives the call; opts is a zero-initialised, sized options struct.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog_fd, &mut opts) };
    check(rc)?;
    Ok(TestRun {
        retval: opts.retval,
        duration_ns: opts.duration,
    })
}
