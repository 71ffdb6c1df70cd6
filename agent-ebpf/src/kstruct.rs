// SPDX-License-Identifier: GPL-2.0-only
//! Reading kernel structs at offsets the agent resolved from BTF (no CO-RE for Rust
//! programs yet). Every read goes through bpf_probe_read_kernel, so a wrong offset
//! yields an error or garbage, never a fault; callers treat both as "unknown".

use agent_common::KernelOffsets;
use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel},
    macros::map,
    maps::Array,
};

#[map(name = "RAMPART_KERNEL_OFFSETS")]
static KERNEL_OFFSETS: Array<KernelOffsets> = Array::with_max_entries(1, 0);

/// The offsets, if the agent found BTF for this kernel.
#[inline(always)]
pub fn offsets() -> Option<&'static KernelOffsets> {
    KERNEL_OFFSETS.get(0).filter(|o| o.valid != 0)
}

#[inline(always)]
fn read<T>(base: u64, off: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: probe read; the helper validates the address.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }.ok()
}

/// `current->files->fdt->fd[fd]`, bounds-checked against `max_fds`.
#[inline(always)]
pub fn current_file(o: &KernelOffsets, fd: u32) -> Option<u64> {
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read(task, o.task_files)?;
    let fdt: u64 = read(files, o.files_fdt)?;
    let max: u32 = read(fdt, o.fdt_max_fds)?;
    if fd >= max {
        return None;
    }
    let arr: u64 = read(fdt, o.fdt_fd)?;
    let file: u64 = read(arr, fd * 8)?;
    (file != 0).then_some(file)
}

/// `file->f_mode`.
#[inline(always)]
pub fn file_mode(o: &KernelOffsets, file: u64) -> Option<u32> {
    read(file, o.file_f_mode)
}

/// Inode number, size, device and mode of an open file.
pub struct InodeMeta {
    pub ino: u64,
    pub size: i64,
    pub dev: u32,
    pub mode: u32,
}

#[inline(always)]
pub fn inode_meta(o: &KernelOffsets, file: u64) -> Option<InodeMeta> {
    let inode: u64 = read(file, o.file_f_inode)?;
    let sb: u64 = read(inode, o.inode_i_sb)?;
    Some(InodeMeta {
        ino: read(inode, o.inode_i_ino)?,
        size: read(inode, o.inode_i_size)?,
        dev: read(sb, o.sb_s_dev)?,
        mode: read::<u16>(inode, o.inode_i_mode)? as u32,
    })
}

/// argv of the current task: user address and length of `mm->arg_start..arg_end`.
#[inline(always)]
pub fn current_args(o: &KernelOffsets) -> Option<(u64, u64)> {
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() };
    let mm: u64 = read(task, o.task_mm)?;
    let start: u64 = read(mm, o.mm_arg_start)?;
    let end: u64 = read(mm, o.mm_arg_end)?;
    (end > start).then_some((start, end - start))
}

/// tgid and comm of `task->real_parent` (of the current task when `task` is 0).
#[inline(always)]
pub fn parent(o: &KernelOffsets, task: u64) -> Option<(u64, u32, [u8; 16])> {
    let task = if task == 0 {
        // SAFETY: plain helper call.
        unsafe { bpf_get_current_task() }
    } else {
        task
    };
    let p: u64 = read(task, o.task_real_parent)?;
    Some((p, read(p, o.task_tgid)?, read(p, o.task_comm)?))
}
