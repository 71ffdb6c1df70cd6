// SPDX-License-Identifier: GPL-2.0-only
//! BPF commands aya has no API for: batch map updates and BPF_PROG_TEST_RUN.

use std::os::fd::AsRawFd;

/// BPF_MAP_UPDATE_BATCH: insert `count` keys/values (packed arrays) in one syscall.
/// Returns how many the kernel applied; Err(EINVAL/ENOTSUPP) where the map type has
/// no batch operations.
pub fn map_update_batch(
    map_fd: std::os::fd::BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> std::io::Result<u32> {
    // union bpf_attr, `batch` member.
    #[repr(C)]
    #[derive(Default)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
        _pad: [u64; 8],
    }
    const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: map_fd.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: keys/values outlive the call and hold `count` packed elements (the
    // caller's contract); attr is the command's zero-padded bpf_attr member.
    unsafe { sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) }?;
    Ok(attr.count)
}

/// The bpf(2) syscall with `attr` as the command's `union bpf_attr` member.
///
/// # Safety
/// `attr` must be the repr(C), zero-padded member `cmd` expects, and every pointer in
/// it must be valid for what the kernel reads or writes during the call.
unsafe fn sys_bpf<A>(cmd: libc::c_long, attr: &mut A) -> std::io::Result<()> {
    // SAFETY: the caller's contract.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A,
            std::mem::size_of::<A>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Result of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, Copy)]
pub struct TestRun {
    pub retval: u32,
    /// Mean ns per run as measured by the kernel.
    pub duration_ns: u32,
}

/// Run a loaded program on `data` `repeat` times in the kernel (BPF_PROG_TEST_RUN).
pub fn test_run(prog_fd: std::os::fd::RawFd, data: &[u8], repeat: u32) -> std::io::Result<TestRun> {
    // union bpf_attr, `test` member (include/uapi/linux/bpf.h).
    #[repr(C)]
    #[derive(Default)]
    struct TestAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: [u32; 9],
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = TestAttr {
        prog_fd: prog_fd as u32,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: data outlives the call; attr is the command's zero-padded member.
    unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}
