// SPDX-License-Identifier: GPL-2.0-only
//! 32-bit (ia32) syscalls on x86_64. The kernel's per-syscall tracepoints ignore
//! them (`ARCH_TRACE_IGNORE_COMPAT_SYSCALLS`), so a 32-bit binary, or a 64-bit one
//! that enters the kernel with `int $0x80`, would open, write, rename and link in a
//! watched tree without the tracepoint backend seeing it. The raw `sys_exit`
//! tracepoint fires for every syscall, compat ones included: this program picks the
//! 32-bit file syscalls (`TS_COMPAT` set for the task, the number from the i386
//! table) and hands them to the same code the 64-bit tracepoints use, with the
//! arguments read from the saved registers as the kernel read them (ebx, ecx, edx,
//! esi, edi: 32 bits each; a caller's upper halves are ignored, by the kernel and so
//! here).
//!
//! Everything is done at the exit: a write-open is told by the file the kernel
//! opened (the returned fd), a close ends its session with the fd's session entry
//! (kept from the open, file metadata included), and a path operation reads its
//! names as the 64-bit exits do. Cost for every other syscall of the host: one run
//! and one load of `orig_ax` (docs/src/benchmarks.md).

use agent_common::{compat_parts, path_op, FileStat, PendingPath};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel},
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::Array,
    programs::{BtfTracePointContext, RawTracePointContext},
};

use crate::{
    file::{self, AT_FDCWD, EXEC_BITS, O_CREAT, O_TRUNC, O_WRONLY},
    kstruct,
};

/// [`agent_common::compat_parts`]: what this program serves (0: nothing).
#[map(name = "RAMPART_COMPAT_PARTS")]
static COMPAT_PARTS: Array<u32> = Array::with_max_entries(1, 0);

/// x86's `TS_COMPAT` in `thread_info.status`: a 32-bit syscall is running.
const TS_COMPAT: u32 = 0x0002;

/// `struct pt_regs` on x86_64 (its layout is the user ABI of ptrace): the offsets
/// of the registers an ia32 syscall takes its number and arguments from.
mod regs {
    pub const BX: u64 = 40;
    pub const CX: u64 = 88;
    pub const DX: u64 = 96;
    pub const SI: u64 = 104;
    pub const DI: u64 = 112;
    pub const ORIG_AX: u64 = 120;
}

/// The i386 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl) of the
/// file sensor's syscalls.
mod nr {
    pub const LINK: u64 = 9;
    pub const OPEN: u64 = 5;
    pub const CLOSE: u64 = 6;
    pub const CREAT: u64 = 8;
    pub const UNLINK: u64 = 10;
    pub const CHMOD: u64 = 15;
    pub const RENAME: u64 = 38;
    /// old_mmap: one pointer to six 32-bit arguments.
    pub const OLD_MMAP: u64 = 90;
    pub const TRUNCATE: u64 = 92;
    pub const FCHMOD: u64 = 94;
    pub const MMAP2: u64 = 192;
    pub const TRUNCATE64: u64 = 193;
    pub const OPENAT: u64 = 295;
    pub const UNLINKAT: u64 = 301;
    pub const RENAMEAT: u64 = 302;
    pub const LINKAT: u64 = 303;
    pub const FCHMODAT: u64 = 306;
    pub const RENAMEAT2: u64 = 353;
    pub const OPENAT2: u64 = 437;
    pub const FCHMODAT2: u64 = 452;
}

/// `sys_exit(struct pt_regs *regs, long ret)` through BTF: `regs` is a typed
/// pointer, so the syscall number is one load, checked by the verifier against
/// `struct pt_regs`, not a helper call (this runs at the end of every syscall of the
/// host).
#[btf_tracepoint(function = "sys_exit")]
pub fn rampart_compat_exit(ctx: BtfTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    // SAFETY: `regs` is the kernel's `struct pt_regs *` of the exiting syscall; the
    // verifier checks the load (offset and size) against its BTF type.
    let call = unsafe { core::ptr::read_volatile(regs.add(regs::ORIG_AX as usize).cast::<u64>()) };
    if let Err(stat) = compat_exit(regs as u64, call, ctx.arg(1)) {
        file::bump(stat);
    }
    0
}

/// The same on a raw tracepoint, for kernels without `tp_btf`: the number through a
/// probe read.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn rampart_compat_raw(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    // SAFETY: probe read; the helper validates the address.
    let r = unsafe { bpf_probe_read_kernel((regs + regs::ORIG_AX) as *const u64) }
        .map_err(|_| FileStat::PathReadError)
        .and_then(|call| compat_exit(regs, call, ctx.arg(1)));
    if let Err(stat) = r {
        file::bump(stat);
    }
    0
}

/// A saved register of the syscall, as the 32-bit syscall reads it.
#[inline(always)]
fn reg32(regs: u64, off: u64) -> Result<u64, FileStat> {
    // SAFETY: probe read; the helper validates the address.
    unsafe { bpf_probe_read_kernel((regs + off) as *const u64) }
        .map(|v| v & 0xffff_ffff)
        .map_err(|_| FileStat::PathReadError)
}

/// A 32-bit register holding a signed int (a dirfd, an fd).
#[inline(always)]
fn int32(regs: u64, off: u64) -> Result<i32, FileStat> {
    reg32(regs, off).map(|v| v as u32 as i32)
}

/// Syscall `call` ended with `ret`; `regs` holds its arguments.
#[inline(always)]
fn compat_exit(regs: u64, call: u64, ret: i64) -> Result<(), FileStat> {
    // The numbers first (one compare chain, no helper): most syscalls of the host
    // end here. A 64-bit syscall with the same number is told apart next.
    let sessions = matches!(
        call,
        nr::OPEN | nr::CREAT | nr::OPENAT | nr::OPENAT2 | nr::CLOSE | nr::MMAP2 | nr::OLD_MMAP
    );
    let paths = matches!(
        call,
        nr::UNLINK
            | nr::UNLINKAT
            | nr::RENAME
            | nr::RENAMEAT
            | nr::RENAMEAT2
            | nr::LINK
            | nr::LINKAT
            | nr::TRUNCATE
            | nr::TRUNCATE64
            | nr::CHMOD
            | nr::FCHMODAT
            | nr::FCHMODAT2
            | nr::FCHMOD
    );
    if !sessions && !paths {
        return Ok(());
    }
    let Some(o) = kstruct::offsets().filter(|o| o.task_thread_status != 0) else {
        return Ok(());
    };
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: probe read; the helper validates the address.
    let status: u32 =
        unsafe { bpf_probe_read_kernel((task + o.task_thread_status as u64) as *const u32) }
            .map_err(|_| FileStat::PathReadError)?;
    if status & TS_COMPAT == 0 {
        return Ok(());
    }
    let want = COMPAT_PARTS.get(0).copied().unwrap_or(0);
    let part = if sessions {
        compat_parts::SESSIONS
    } else {
        compat_parts::PATHS
    };
    if want & part == 0 {
        return Ok(());
    }
    file::bump(FileStat::CompatSyscall);
    let id = bpf_get_current_pid_tgid();
    let (bx, cx, dx) = (
        reg32(regs, regs::BX)?,
        reg32(regs, regs::CX)?,
        reg32(regs, regs::DX)?,
    );
    match call {
        nr::OPEN => opened(id, AT_FDCWD, bx, cx as u32, ret),
        nr::CREAT => opened(id, AT_FDCWD, bx, O_CREAT | O_WRONLY | O_TRUNC, ret),
        nr::OPENAT => opened(id, bx as u32 as i32, cx, dx as u32, ret),
        nr::OPENAT2 => {
            // struct open_how { u64 flags; ... } in user memory, at edx.
            // SAFETY: probe read of user memory.
            let flags: u64 = unsafe { aya_ebpf::helpers::bpf_probe_read_user(dx as *const u64) }
                .map_err(|_| FileStat::PathReadError)?;
            opened(id, bx as u32 as i32, cx, flags as u32, ret)
        }
        // Closed even when close(2) says otherwise: the fd is gone either way.
        nr::CLOSE => file::end_session(id, bx),
        nr::MMAP2 if !(-4095..0).contains(&ret) => {
            // mmap2(addr, len, prot, flags, fd, pgoff): a mapping's address can
            // look negative, only -4095..-1 are errors.
            file::mapped(reg32(regs, regs::SI)?, int32(regs, regs::DI)? as i64);
            Ok(())
        }
        nr::OLD_MMAP if !(-4095..0).contains(&ret) => {
            // struct mmap_arg_struct32 { u32 addr, len, prot, flags, fd, offset; }.
            // SAFETY: probe read of user memory.
            let a: [u32; 6] = unsafe { aya_ebpf::helpers::bpf_probe_read_user(bx as *const _) }
                .map_err(|_| FileStat::PathReadError)?;
            file::mapped(a[3] as u64, a[4] as i32 as i64);
            Ok(())
        }
        _ => match path_operation(call, regs, bx, cx, dx)? {
            Some(p) => file::exit_path(id, &p, ret),
            None => Ok(()),
        },
    }
}

/// A 32-bit path operation as the 64-bit enters keep it (the arguments in ebx, ecx,
/// edx, then esi and edi read here); None for a chmod that adds no execute bit.
#[inline(always)]
fn path_operation(
    call: u64,
    regs: u64,
    bx: u64,
    cx: u64,
    dx: u64,
) -> Result<Option<PendingPath>, FileStat> {
    let fd = |v: u64| v as u32 as i32;
    let p = |op, dirfd, ptr, dirfd2, ptr2, mode| {
        Some(file::pending(op, dirfd, ptr, dirfd2, ptr2, mode))
    };
    Ok(match call {
        nr::UNLINK => p(path_op::UNLINK, AT_FDCWD, bx, 0, 0, 0),
        nr::UNLINKAT => p(path_op::UNLINK, fd(bx), cx, 0, 0, 0),
        nr::RENAME => p(path_op::RENAME, AT_FDCWD, bx, AT_FDCWD, cx, 0),
        nr::RENAMEAT => p(
            path_op::RENAME,
            fd(bx),
            cx,
            fd(dx),
            reg32(regs, regs::SI)?,
            0,
        ),
        // The flags travel in `mode` (RENAME_EXCHANGE: both names scanned).
        nr::RENAMEAT2 => p(
            path_op::RENAME,
            fd(bx),
            cx,
            fd(dx),
            reg32(regs, regs::SI)?,
            reg32(regs, regs::DI)? as u32,
        ),
        nr::LINK => p(path_op::LINK, AT_FDCWD, bx, AT_FDCWD, cx, 0),
        nr::LINKAT => p(path_op::LINK, fd(bx), cx, fd(dx), reg32(regs, regs::SI)?, 0),
        nr::TRUNCATE | nr::TRUNCATE64 => p(path_op::TRUNCATE, AT_FDCWD, bx, 0, 0, 0),
        nr::CHMOD if cx as u32 & EXEC_BITS != 0 => p(path_op::CHMOD, AT_FDCWD, bx, 0, 0, cx as u32),
        nr::FCHMODAT | nr::FCHMODAT2 if dx as u32 & EXEC_BITS != 0 => {
            p(path_op::CHMOD, fd(bx), cx, 0, 0, dx as u32)
        }
        nr::FCHMOD if cx as u32 & EXEC_BITS != 0 => p(path_op::FCHMOD, 0, bx, 0, 0, cx as u32),
        _ => None,
    })
}

/// A 32-bit open: what the 64-bit enter would have kept, then its exit.
#[inline(always)]
fn opened(id: u64, dirfd: i32, filename: u64, flags: u32, ret: i64) -> Result<(), FileStat> {
    if ret < 0 {
        return Ok(());
    }
    file::exit_open(
        id,
        file::open_to_remember(dirfd, filename, flags, false),
        ret,
    )
}
