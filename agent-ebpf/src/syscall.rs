// SPDX-License-Identifier: GPL-2.0-only
//! One program at the end of every syscall (x86_64) for the file sensor's syscalls,
//! 64-bit and 32-bit, in place of a tracepoint per syscall.
//!
//! - **32-bit (ia32) syscalls.** The kernel's per-syscall tracepoints ignore them
//!   (`ARCH_TRACE_IGNORE_COMPAT_SYSCALLS`), so a 32-bit binary, or a 64-bit one that
//!   enters the kernel with `int $0x80`, would open, write, rename and link in a
//!   watched tree unseen. The raw `sys_exit` tracepoint fires for every syscall:
//!   with `TS_COMPAT` set for the task, the number is from the i386 table and the
//!   arguments are ebx, ecx, edx, esi, edi (32 bits each; a caller's upper halves
//!   are ignored, by the kernel and so here).
//! - **64-bit syscalls** (when the agent sets [`syscall_parts::NATIVE`]): the same
//!   work the per-syscall `sys_exit_*` and `sys_enter_*` programs do, with the
//!   arguments read from the saved registers (rdi, rsi, rdx, r10, r8) at the exit,
//!   so no enter program and no in-flight map entry is needed, and no per-syscall
//!   perf record is built. close(2) stays on its enter tracepoint: at the exit its fd
//!   is free again, and another thread may already have a new file on it (the exit
//!   can tell that by the inode, as the 32-bit close does, but the check costs
//!   every close of a watched file about as much as the enter tracepoint did).
//!
//! Everything is done at the exit: a write-open is told by the file the kernel
//! opened (the returned fd); a 32-bit close, or a dup2/dup3 onto a session's fd,
//! ends the session with its entry (kept from the open, file metadata included)
//! unless the fd already holds that session's file again (another thread's newer
//! open of it, whose exit replaced the session; a session an open replaces is
//! reported by that open, see `file::track_write`); and a path operation reads its
//! names as the per-syscall exits do. Cost for every other syscall of the host:
//! one run, one load of `orig_ax` and two compare chains (docs/src/benchmarks.md).

use agent_common::{path_op, syscall_parts, FileStat, PendingPath};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel, bpf_probe_read_user,
    },
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::Array,
    programs::{BtfTracePointContext, RawTracePointContext},
};

use crate::{
    exec,
    file::{self, Seen, AT_FDCWD, EXEC_BITS, O_CREAT, O_TRUNC, O_WRONLY},
    kstruct,
};

/// [`agent_common::syscall_parts`]: what this program serves (0: nothing).
#[map(name = "RAMPART_SYSCALL_PARTS")]
static SYSCALL_PARTS: Array<u32> = Array::with_max_entries(1, 0);

/// x86's `TS_COMPAT` in `thread_info.status`: a 32-bit syscall is running.
const TS_COMPAT: u32 = 0x0002;

/// `struct pt_regs` on x86_64 (its layout is the user ABI of ptrace): the offsets
/// of the registers a syscall takes its number and arguments from.
mod regs {
    pub const R10: usize = 56;
    pub const R8: usize = 72;
    pub const BX: usize = 40;
    pub const CX: usize = 88;
    pub const DX: usize = 96;
    pub const SI: usize = 104;
    pub const DI: usize = 112;
    pub const ORIG_AX: usize = 120;
}

/// The file sensor's syscalls, whatever their number in either table.
mod op {
    pub const OPEN: u8 = 1;
    pub const CREAT: u8 = 2;
    pub const OPENAT: u8 = 3;
    pub const OPENAT2: u8 = 4;
    pub const CLOSE: u8 = 5;
    /// dup2 and dup3 (oldfd, newfd[, flags]): newfd's file is closed first.
    pub const DUP: u8 = 6;
    /// mmap (64-bit) and mmap2 (32-bit): (addr, len, prot, flags, fd, off).
    pub const MMAP: u8 = 7;
    /// The 32-bit old_mmap: one pointer to six 32-bit arguments.
    pub const OLD_MMAP: u8 = 8;
    /// The ops above belong to write sessions, the ones below to path operations.
    pub const LAST_SESSION: u8 = OLD_MMAP;
    pub const UNLINK: u8 = 9;
    pub const UNLINKAT: u8 = 10;
    pub const RENAME: u8 = 11;
    pub const RENAMEAT: u8 = 12;
    pub const RENAMEAT2: u8 = 13;
    pub const LINK: u8 = 14;
    pub const LINKAT: u8 = 15;
    pub const TRUNCATE: u8 = 16;
    pub const CHMOD: u8 = 17;
    pub const FCHMODAT: u8 = 18;
    pub const FCHMOD: u8 = 19;
}

/// The x86_64 table (arch/x86/entry/syscalls/syscall_64.tbl). close(2) is not
/// here: it stays on its enter tracepoint (see the module's documentation).
#[inline(always)]
fn native_op(call: u64) -> u8 {
    match call {
        33 | 292 => op::DUP,
        2 => op::OPEN,
        85 => op::CREAT,
        257 => op::OPENAT,
        437 => op::OPENAT2,
        9 => op::MMAP,
        87 => op::UNLINK,
        263 => op::UNLINKAT,
        82 => op::RENAME,
        264 => op::RENAMEAT,
        316 => op::RENAMEAT2,
        86 => op::LINK,
        265 => op::LINKAT,
        76 => op::TRUNCATE,
        90 => op::CHMOD,
        268 | 452 => op::FCHMODAT,
        91 => op::FCHMOD,
        _ => 0,
    }
}

/// The i386 table (arch/x86/entry/syscalls/syscall_32.tbl).
#[inline(always)]
fn compat_op(call: u64) -> u8 {
    match call {
        5 => op::OPEN,
        8 => op::CREAT,
        295 => op::OPENAT,
        437 => op::OPENAT2,
        6 => op::CLOSE,
        63 | 330 => op::DUP,
        192 => op::MMAP,
        90 => op::OLD_MMAP,
        10 => op::UNLINK,
        301 => op::UNLINKAT,
        38 => op::RENAME,
        302 => op::RENAMEAT,
        353 => op::RENAMEAT2,
        9 => op::LINK,
        303 => op::LINKAT,
        92 | 193 => op::TRUNCATE,
        15 => op::CHMOD,
        306 | 452 => op::FCHMODAT,
        94 => op::FCHMOD,
        _ => 0,
    }
}

/// The saved registers of the exiting syscall.
trait Regs {
    /// The register at `off` (a constant from [`regs`]).
    fn reg(&self, off: usize) -> Result<u64, FileStat>;
}

/// tp_btf: `regs` is a typed pointer, so a register is one load the verifier
/// checks against `struct pt_regs` (offset and size), not a helper call.
struct Typed(*const u8);

impl Regs for Typed {
    #[inline(always)]
    fn reg(&self, off: usize) -> Result<u64, FileStat> {
        // SAFETY: the kernel's `struct pt_regs *` of the exiting syscall; a constant
        // offset inside it, checked by the verifier.
        Ok(unsafe { core::ptr::read_volatile(self.0.add(off).cast::<u64>()) })
    }
}

/// Raw tracepoint: the same through probe reads.
struct Probed(u64);

impl Regs for Probed {
    #[inline(always)]
    fn reg(&self, off: usize) -> Result<u64, FileStat> {
        // SAFETY: probe read; the helper validates the address.
        unsafe { bpf_probe_read_kernel((self.0 + off as u64) as *const u64) }
            .map_err(|_| FileStat::PathReadError)
    }
}

/// `sys_exit(struct pt_regs *regs, long ret)` through BTF.
#[btf_tracepoint(function = "sys_exit")]
pub fn rampart_syscall_exit(ctx: BtfTracePointContext) -> i32 {
    let regs = Typed(ctx.arg(0));
    if let Err(stat) = syscall_exit(&regs, ctx.arg(1)) {
        file::bump(stat);
    }
    0
}

/// The same on a raw tracepoint, for kernels where tp_btf does not load.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn rampart_syscall_exit_raw(ctx: RawTracePointContext) -> i32 {
    let regs = Probed(ctx.arg(0));
    if let Err(stat) = syscall_exit(&regs, ctx.arg(1)) {
        file::bump(stat);
    }
    0
}

/// The exec sensor's view of the end of every syscall, where a 32-bit interpreter
/// is installed (the agent attaches it only then): a 32-bit open by an interpreter it
/// watches may be its script (`/lib/ld-linux.so.2 /tmp/x`), which the per-syscall
/// script tracepoints never see. A program of its own, not part of
/// `rampart_syscall_exit`: there its name hashing made the program too large (E2BIG
/// inlined; as a BPF-to-BPF call, 6.1 refused the combined stack). Every other
/// syscall of the host ends at the number's compare.
#[btf_tracepoint(function = "sys_exit")]
pub fn rampart_script_exit32(ctx: BtfTracePointContext) -> i32 {
    let regs = Typed(ctx.arg(0));
    let _ = script_exit32(&regs, ctx.arg(1));
    0
}

#[inline(always)]
fn script_exit32<R: Regs>(r: &R, ret: i64) -> Result<(), FileStat> {
    // open(name, ...) and openat/openat2(dirfd, name, ...) in the i386 table.
    let name_reg = match r.reg(regs::ORIG_AX)? {
        5 => regs::BX,
        295 | 437 => regs::CX,
        _ => return Ok(()),
    };
    if ret < 0 {
        return Ok(());
    }
    let Some(o) = kstruct::offsets().filter(|o| o.task_thread_status != 0) else {
        return Ok(());
    };
    let status = thread_status(o)?;
    if status & TS_COMPAT == 0 {
        return Ok(());
    }
    let name = r.reg(name_reg)? & 0xffff_ffff;
    exec::compat_open(name, ret).map_err(|()| FileStat::PathReadError)
}

/// The current task's `thread_info.status` (its `TS_COMPAT` bit: a 32-bit syscall).
#[inline(always)]
fn thread_status(o: &agent_common::KernelOffsets) -> Result<u32, FileStat> {
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: probe read; the helper validates the address.
    unsafe { bpf_probe_read_kernel((task + o.task_thread_status as u64) as *const u32) }
        .map_err(|_| FileStat::PathReadError)
}

/// A syscall ended with `ret`; `r` holds its number and arguments.
#[inline(always)]
fn syscall_exit<R: Regs>(r: &R, ret: i64) -> Result<(), FileStat> {
    let call = r.reg(regs::ORIG_AX)?;
    // The numbers first (compare chains, no helper): most syscalls of the host end
    // here. Which table applies is told next.
    let (native, compat) = (native_op(call), compat_op(call));
    if native == 0 && compat == 0 {
        return Ok(());
    }
    let want = SYSCALL_PARTS.get(0).copied().unwrap_or(0);
    if want == 0 {
        return Ok(());
    }
    let Some(o) = kstruct::offsets().filter(|o| o.task_thread_status != 0) else {
        return Ok(());
    };
    let status = thread_status(o)?;
    let is_compat = status & TS_COMPAT != 0;
    let op = if is_compat {
        compat
    } else if want & syscall_parts::NATIVE != 0 {
        native
    } else {
        0
    };
    if op == 0 {
        return Ok(());
    }
    let part = if op <= op::LAST_SESSION {
        syscall_parts::SESSIONS
    } else {
        syscall_parts::PATHS
    };
    if want & part == 0 {
        return Ok(());
    }
    // Five arguments in one ABI's registers (32 bits each for ia32). Pointers keep
    // all 64 bits of a 64-bit call; ints (fds, flags, modes) are their low 32 bits
    // either way, as the kernel takes them.
    let a = if is_compat {
        file::bump(FileStat::CompatSyscall);
        const LOW: u64 = 0xffff_ffff;
        [
            r.reg(regs::BX)? & LOW,
            r.reg(regs::CX)? & LOW,
            r.reg(regs::DX)? & LOW,
            r.reg(regs::SI)? & LOW,
            r.reg(regs::DI)? & LOW,
        ]
    } else {
        [
            r.reg(regs::DI)?,
            r.reg(regs::SI)?,
            r.reg(regs::DX)?,
            r.reg(regs::R10)?,
            r.reg(regs::R8)?,
        ]
    };
    dispatch(op, a, ret)
}

/// An int argument (a dirfd, an fd, flags, a mode): its low 32 bits.
#[inline(always)]
fn int(v: u64) -> i32 {
    v as u32 as i32
}

/// Syscall `op` with arguments `a` ended with `ret`.
#[inline(always)]
fn dispatch(op: u8, a: [u64; 5], ret: i64) -> Result<(), FileStat> {
    let id = bpf_get_current_pid_tgid();
    // A mapping's address can look negative; only -4095..-1 are errors.
    let mapped = !(-4095..0).contains(&ret);
    match op {
        op::OPEN => opened(id, AT_FDCWD, a[0], a[1] as u32, ret),
        op::CREAT => opened(id, AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, ret),
        op::OPENAT => opened(id, int(a[0]), a[1], a[2] as u32, ret),
        op::OPENAT2 => {
            if ret < 0 {
                return Ok(());
            }
            // struct open_how { u64 flags; ... } in user memory.
            // SAFETY: probe read of user memory.
            let flags: u64 = unsafe { bpf_probe_read_user(a[2] as *const u64) }
                .map_err(|_| FileStat::PathReadError)?;
            opened(id, int(a[0]), a[1], flags as u32, ret)
        }
        // Closed even when close(2) says otherwise: the fd is gone either way (unless
        // another thread has already opened a file on it: see `Seen::Exit`).
        op::CLOSE => file::end_session(id, a[0] as u32 as u64, Seen::Exit),
        // newfd's earlier file was closed, unless it was the same (dup2(fd, fd)).
        op::DUP if ret >= 0 => file::end_session(id, a[1] as u32 as u64, Seen::Exit),
        op::MMAP if mapped => {
            file::mapped(a[3] as u32 as u64, int(a[4]) as i64);
            Ok(())
        }
        op::OLD_MMAP if mapped => {
            // struct mmap_arg_struct32 { u32 addr, len, prot, flags, fd, offset; }.
            // SAFETY: probe read of user memory.
            let m: [u32; 6] = unsafe { bpf_probe_read_user(a[0] as *const _) }
                .map_err(|_| FileStat::PathReadError)?;
            file::mapped(m[3] as u64, m[4] as i32 as i64);
            Ok(())
        }
        _ => match path_operation(op, a) {
            Some(p) => file::exit_path(id, &p, ret),
            None => Ok(()),
        },
    }
}

/// A path operation as the per-syscall enters keep it; None for a chmod that adds
/// no execute bit.
#[inline(always)]
fn path_operation(o: u8, a: [u64; 5]) -> Option<PendingPath> {
    let p = |op, dirfd, ptr, dirfd2, ptr2, mode| {
        Some(file::pending(op, dirfd, ptr, dirfd2, ptr2, mode))
    };
    match o {
        op::UNLINK => p(path_op::UNLINK, AT_FDCWD, a[0], 0, 0, 0),
        op::UNLINKAT => p(path_op::UNLINK, int(a[0]), a[1], 0, 0, 0),
        op::RENAME => p(path_op::RENAME, AT_FDCWD, a[0], AT_FDCWD, a[1], 0),
        op::RENAMEAT => p(path_op::RENAME, int(a[0]), a[1], int(a[2]), a[3], 0),
        // The flags travel in `mode` (RENAME_EXCHANGE: both names scanned).
        op::RENAMEAT2 => p(
            path_op::RENAME,
            int(a[0]),
            a[1],
            int(a[2]),
            a[3],
            a[4] as u32,
        ),
        op::LINK => p(path_op::LINK, AT_FDCWD, a[0], AT_FDCWD, a[1], 0),
        op::LINKAT => p(path_op::LINK, int(a[0]), a[1], int(a[2]), a[3], 0),
        op::TRUNCATE => p(path_op::TRUNCATE, AT_FDCWD, a[0], 0, 0, 0),
        op::CHMOD if a[1] as u32 & EXEC_BITS != 0 => {
            p(path_op::CHMOD, AT_FDCWD, a[0], 0, 0, a[1] as u32)
        }
        op::FCHMODAT if a[2] as u32 & EXEC_BITS != 0 => {
            p(path_op::CHMOD, int(a[0]), a[1], 0, 0, a[2] as u32)
        }
        op::FCHMOD if a[1] as u32 & EXEC_BITS != 0 => {
            p(path_op::FCHMOD, 0, a[0] as u32 as u64, 0, 0, a[1] as u32)
        }
        _ => None,
    }
}

/// An open: what a per-syscall enter would have kept, then its exit.
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
