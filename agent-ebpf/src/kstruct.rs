// SPDX-License-Identifier: GPL-2.0-only
//! Reading kernel structs at offsets the agent resolved from BTF (no CO-RE for Rust
//! programs yet). Every read goes through bpf_probe_read_kernel, so a wrong offset
//! yields an error or garbage, never a fault; callers treat both as "unknown".

use agent_common::{
    KernelOffsets, RootDentry, RootKey, DENTRY_CHUNK, MAX_WALK_DEPTH, MAX_WATCH_ROOTS,
    PATH_MAX_LEN, WATCH_EXCLUDE,
};
use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel, generated},
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};

#[map(name = "RAMPART_KERNEL_OFFSETS")]
static KERNEL_OFFSETS: Array<KernelOffsets> = Array::with_max_entries(1, 0);

/// The watched and world-writable roots by their directory's dentry address,
/// learned at start ([`learn_root`]) while the agent holds each root open.
#[map(name = "RAMPART_ROOT_DENTRIES")]
static ROOT_DENTRIES: HashMap<u64, RootDentry> = HashMap::with_max_entries(MAX_WATCH_ROOTS, 0);

/// The filesystems (superblock addresses) that hold a root, so a walk passes through
/// a filesystem without one at a single step instead of climbing it level by level.
#[map(name = "RAMPART_ROOT_SBS")]
static ROOT_SBS: HashMap<u64, u32> = HashMap::with_max_entries(MAX_WATCH_ROOTS, 0);

/// Remember `file`'s dentry address as a root with `bits` (added to any it has).
#[inline(always)]
pub fn learn_root(o: &KernelOffsets, file: u64, bits: u32, id: u32) -> Option<()> {
    let dentry: u64 = ptr(file, o.file_f_path_dentry)?;
    let key = dentry_key(o, dentry)?;
    // SAFETY: plain lookup.
    let (had, had_id) = unsafe { ROOT_DENTRIES.get(&dentry) }.map_or((0, 0), |r| (r.bits, r.id));
    let v = RootDentry {
        bits: had | bits,
        dev: key.dev,
        ino: key.ino,
        // The same directory under two names: the first (a watched tree's) keeps it.
        id: if had_id != 0 { had_id } else { id },
        _pad: 0,
    };
    ROOT_SBS
        .insert(&read::<u64>(dentry, o.dentry_d_sb)?, &1, 0)
        .ok()?;
    ROOT_DENTRIES.insert(&dentry, &v, 0).ok()
}

/// A walk's state and the path it builds, right to left, ending at `PATH_END` (the
/// buffer is twice the path size, so a masked offset plus a masked length always
/// stays inside). The loop's variables live here, not in registers: the verifier
/// does not track map memory, so every iteration reaches the same state and is
/// pruned instead of explored once per possible value.
#[repr(C)]
pub struct WalkState {
    dentry: u64,
    mnt: u64,
    pos: u64,
    /// `mnt->mnt_root` of the current mount, 0 until read (once per mount).
    mnt_root: u64,
    /// The root the search found (its dentry), where the names stop; 0 for names up
    /// to the top of the mount tree.
    root: u64,
    /// The mount whose root the search climbed above to find the root (a bind
    /// mount's), which the names climb above too; 0 when none.
    detour_mnt: u64,
    /// The root bits this walk looks for.
    mask: u32,
    verdict: u32,
    /// The found root's id.
    root_id: u32,
    /// bit 0: complete, bit 1: truncated.
    done: u32,
    /// 1 while the search climbs above the root of a mount of a directory (a bind
    /// mount), inside its filesystem.
    detour: u32,
    /// 1 once the search checked the current mount's filesystem for roots.
    sb_checked: u32,
    /// The current dentry's fields, from one read of `DENTRY_CHUNK` bytes.
    chunk: [u64; DENTRY_CHUNK / 8],
    buf: [u8; 2 * PATH_MAX_LEN],
}

#[map(name = "RAMPART_WALK_SCRATCH")]
static WALK_SCRATCH: PerCpuArray<WalkState> = PerCpuArray::with_max_entries(1, 0);

const COMPLETE: u32 = 1;
const TRUNCATED: u32 = 2;

/// Where a built path ends in the scratch (its NUL is there).
const PATH_END: usize = PATH_MAX_LEN - 1;
/// Masks that keep offsets and lengths below `PATH_MAX_LEN` for the verifier.
const MASK: usize = PATH_MAX_LEN - 1;

/// The offsets, if the agent found BTF for this kernel.
#[inline(always)]
pub fn offsets() -> Option<&'static KernelOffsets> {
    KERNEL_OFFSETS.get(0).filter(|o| o.valid != 0)
}

#[inline(always)]
pub(crate) fn read<T>(base: u64, off: u32) -> Option<T> {
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
    of_inode(o, read(file, o.file_f_inode)?)
}

/// `file->f_inode`.
#[inline(always)]
pub fn file_inode(o: &KernelOffsets, file: u64) -> Option<u64> {
    ptr(file, o.file_f_inode)
}

/// Inode number, size, device and mode of an inode.
#[inline(always)]
pub fn of_inode(o: &KernelOffsets, inode: u64) -> Option<InodeMeta> {
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

/// `inode->i_nlink` of an open file: 0 for a memfd or a file deleted since.
#[inline(always)]
pub fn nlink(o: &KernelOffsets, file: u64) -> Option<u32> {
    let inode: u64 = read(file, o.file_f_inode)?;
    read(inode, o.inode_i_nlink)
}

/// A pointer field of a kernel struct (`bprm->file`, `bprm->interp`, ...).
#[inline(always)]
pub fn ptr(base: u64, off: u32) -> Option<u64> {
    read::<u64>(base, off).filter(|p| *p != 0)
}

/// The identity of an open file: the inode number and superblock device of the
/// dentry it was opened by (`RAMPART_INTERPRETERS`, learned from files the agent
/// opens, so the agent never has to guess it: on overlayfs neither this device nor
/// `f_inode`'s is the one `stat` shows).
#[inline(always)]
pub fn root_key(o: &KernelOffsets, file: u64) -> Option<RootKey> {
    dentry_key(o, ptr(file, o.file_f_path_dentry)?)
}

/// (s_dev, i_ino) of a dentry, as `stat` reports them.
#[inline(always)]
fn dentry_key(o: &KernelOffsets, dentry: u64) -> Option<RootKey> {
    let inode: u64 = read(dentry, o.dentry_d_inode)?;
    let sb: u64 = read(dentry, o.dentry_d_sb)?;
    Some(RootKey {
        dev: read(sb, o.sb_s_dev)?,
        _pad: 0,
        ino: read(inode, o.inode_i_ino)?,
    })
}

/// What a walk up from an opened file found.
pub struct Walked {
    /// The bits of `mask` set on the nearest root above the file that has any
    /// (`WATCH_INCLUDE`/`WATCH_EXCLUDE` for the file sensor, `ROOT_EXEC`), or 0.
    pub verdict: u32,
    /// That root's [`RootDentry::id`] (0 when none was found).
    pub root_id: u32,
    /// Membership is decided: the search found a root or reached the top of the
    /// mount tree (else it ran out of depth).
    pub complete: bool,
    /// The path lacks leading components (they did not fit, or were deeper than
    /// the walk goes).
    pub truncated: bool,
    /// Length of the path now in `out` (without its NUL).
    pub len: u32,
}

/// One step up: check the dentry against the watched roots, then either cross to
/// the mount below or prepend the dentry's name. False when the walk is over.
/// A u64 field of the current dentry, from the chunk (`off` from BTF; the mask
/// keeps the index inside the chunk for the verifier).
#[inline(always)]
fn chunk_u64(o: &KernelOffsets, st: *mut WalkState, off: u32) -> u64 {
    let i = ((off - o.dentry_chunk) as usize / 8) & (DENTRY_CHUNK / 8 - 1);
    // SAFETY: `i` < DENTRY_CHUNK / 8, inside our scratch's chunk.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*st).chunk[i])) }
}

/// A u32 field of the current dentry (little-endian halves of the chunk's words).
#[inline(always)]
fn chunk_u32(o: &KernelOffsets, st: *mut WalkState, off: u32) -> u32 {
    (chunk_u64(o, st, off & !7) >> ((off & 4) * 8)) as u32
}

/// Add `flag` (COMPLETE, TRUNCATED) to the walk's outcome.
#[inline(always)]
fn mark(st: *mut WalkState, flag: u32) {
    let done: u32 = get!(st, done);
    set!(st, done, done | flag);
}

/// Step up from `dentry` to its parent `up`. False when there is none: a dentry
/// that is its own parent without being a mount's root is a file with no place in
/// any tree (a memfd, a pipe), which ends the walk complete.
#[inline(always)]
fn climb(st: *mut WalkState, dentry: u64, up: u64) -> Option<bool> {
    if up == dentry {
        mark(st, COMPLETE);
        return Some(false);
    }
    set!(st, dentry, up);
    Some(true)
}

/// Cross from the root of the current mount to where it is mounted. False at the
/// top of the mount tree (the walk is complete).
#[inline(always)]
fn cross_mount(o: &KernelOffsets, st: *mut WalkState) -> Option<bool> {
    let mount = get!(st, mnt) - o.mount_mnt as u64;
    let parent: u64 = read(mount, o.mount_mnt_parent)?;
    if parent == mount {
        mark(st, COMPLETE);
        return Some(false);
    }
    set!(st, dentry, read::<u64>(mount, o.mount_mnt_mountpoint)?);
    set!(st, mnt, parent + o.mount_mnt as u64);
    set!(st, mnt_root, 0);
    set!(st, sb_checked, 0);
    Some(true)
}

/// Is the current dentry the root of its mount (read once per mount)?
#[inline(always)]
fn at_mount_root(o: &KernelOffsets, st: *mut WalkState) -> Option<bool> {
    if get!(st, mnt_root) == 0 {
        let mnt: u64 = get!(st, mnt);
        set!(st, mnt_root, read::<u64>(mnt, o.vfsmount_mnt_root)?);
    }
    Some(get!(st, dentry) == get!(st, mnt_root))
}

/// One step of the search for the nearest root: a lookup by dentry address, then up
/// one level (one read) or across a mount. False when the search is over.
///
/// Membership is a matter of the filesystem, not of the mounts a process sees: a
/// mount of a directory inside a watched tree (a bind mount, which an unprivileged
/// user can make in a user and mount namespace of their own) has that directory as
/// its root, and crossing from there straight to the mountpoint would never pass
/// the watched root above it. So at such a mount's root the search first climbs on
/// inside the filesystem to its top (the detour), then crosses the mount.
#[inline(always)]
fn search_step(o: &KernelOffsets, st: *mut WalkState) -> Option<bool> {
    let dentry: u64 = get!(st, dentry);
    if dentry == 0 {
        return None;
    }
    if get!(st, sb_checked) == 0 {
        // Once a mount: a filesystem that holds no root has none to meet, not even
        // above a bind mount's root, so the search goes on from where it is mounted.
        set!(st, sb_checked, 1);
        let sb: u64 = read(dentry, o.dentry_d_sb)?;
        // SAFETY: plain lookup.
        if unsafe { ROOT_SBS.get(&sb) }.is_none() {
            return cross_mount(o, st);
        }
    }
    // SAFETY: plain lookup.
    if let Some(r) = unsafe { ROOT_DENTRIES.get(&dentry) } {
        let v = r.bits & get!(st, mask);
        if v != 0 {
            set!(st, verdict, v);
            set!(st, root, dentry);
            set!(st, root_id, r.id);
            if get!(st, detour) == 0 {
                set!(st, detour_mnt, 0);
            }
            return Some(false);
        }
    }
    if get!(st, detour) != 0 {
        let up: u64 = read(dentry, o.dentry_d_parent)?;
        if up != dentry {
            set!(st, dentry, up);
            return Some(true);
        }
        // The top of the filesystem: back to the mount the detour left.
        set!(st, detour, 0);
        return cross_mount(o, st);
    }
    if at_mount_root(o, st)? {
        let up: u64 = read(dentry, o.dentry_d_parent)?;
        if up != dentry {
            set!(st, detour, 1);
            let mnt: u64 = get!(st, mnt);
            set!(st, detour_mnt, mnt);
            set!(st, dentry, up);
            return Some(true);
        }
        return cross_mount(o, st);
    }
    climb(st, dentry, read(dentry, o.dentry_d_parent)?)
}

/// One step of building the path: prepend the dentry's name (its fields from one
/// read), then up one level or across a mount. False when the walk is over.
#[inline(always)]
fn name_step(o: &KernelOffsets, st: *mut WalkState) -> Option<bool> {
    let dentry: u64 = get!(st, dentry);
    if dentry == 0 {
        return None;
    }
    if dentry == get!(st, root) {
        // The root: the agent puts its path in front (the root's name and what is
        // above it are the same for every file below, so they are not built again).
        mark(st, COMPLETE);
        return Some(false);
    }
    // Above a bind mount's root the names go on inside its filesystem, as the
    // search did, to the root the search found there.
    if at_mount_root(o, st)? && get!(st, mnt) != get!(st, detour_mnt) {
        return cross_mount(o, st);
    }
    // d_parent and d_name in one read (the agent checked they fit).
    // SAFETY: into our scratch's chunk; the helper checks the kernel address.
    let r = unsafe {
        generated::bpf_probe_read_kernel(
            core::ptr::addr_of_mut!((*st).chunk).cast(),
            DENTRY_CHUNK as u32,
            (dentry + o.dentry_chunk as u64) as *const core::ffi::c_void,
        )
    };
    if r != 0 {
        return None;
    }
    let up: u64 = chunk_u64(o, st, o.dentry_d_parent);
    let len = chunk_u32(o, st, o.dentry_d_name_len) as u64;
    let name: u64 = chunk_u64(o, st, o.dentry_d_name_name);
    let pos: u64 = get!(st, pos);
    if len + 1 > pos {
        // The rest cannot fit: the path is cut here.
        mark(st, TRUNCATED);
        return Some(false);
    }
    let pos = pos - len - 1;
    set!(st, pos, pos);
    let at = (pos as usize) & MASK;
    // SAFETY: our scratch; `at` < PATH_MAX_LEN and the copy below is at most
    // PATH_MAX_LEN - 1 bytes past at + 1, inside a buffer of 2 * PATH_MAX_LEN; the
    // helper checks the kernel source address.
    unsafe {
        let buf = core::ptr::addr_of_mut!((*st).buf) as *mut u8;
        *buf.add(at) = b'/';
        generated::bpf_probe_read_kernel(
            buf.add((at + 1) & MASK).cast(),
            (len as usize & MASK) as u32,
            name as *const core::ffi::c_void,
        );
    }
    // Its own parent (a memfd, a pipe): named by itself, like d_path does.
    climb(st, dentry, up)
}

/// When a walk builds the path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Always (the exec sensor reports every image it is asked about).
    Always,
    /// Unless the search proved the file outside every root (the file sensor).
    UnlessOutside,
}

/// Walk up from `file` through its dentries' parents and the mounts they sit on, as
/// the kernel resolved them: the nearest watched root (by device and inode) decides
/// membership, and the names on the way build the canonical path into `out`. Nothing
/// the process typed is used, so `//`, `..`, relative names, symlinks and
/// /proc/self/cwd resolve by construction.
#[inline(always)]
pub fn walk(
    o: &KernelOffsets,
    file: u64,
    mask: u32,
    names: Names,
    out: &mut [u8; PATH_MAX_LEN],
) -> Option<Walked> {
    let st = WALK_SCRATCH.get_ptr_mut(0)?;
    let dentry = read::<u64>(file, o.file_f_path_dentry)?;
    let mnt = read::<u64>(file, o.file_f_path_mnt)?;
    // First the nearest root: a lookup per level, no reads but the parent's address.
    set!(st, mask, mask);
    set!(st, dentry, dentry);
    set!(st, mnt, mnt);
    set!(st, mnt_root, 0);
    set!(st, verdict, 0);
    set!(st, root_id, 0);
    set!(st, root, 0);
    set!(st, detour_mnt, 0);
    set!(st, done, 0);
    set!(st, detour, 0);
    set!(st, sb_checked, 0);
    for _ in 0..MAX_WALK_DEPTH {
        if !search_step(o, st)? {
            break;
        }
    }
    let verdict = get!(st, verdict);
    let searched = get!(st, done);
    // The search reached the top without a root: outside every one.
    let outside = verdict == 0 && searched & COMPLETE != 0;
    let mut done = 0;
    let mut n = 0;
    if verdict != WATCH_EXCLUDE && !(outside && names == Names::UnlessOutside) {
        // Then the names, from the file up, as the kernel resolved them: to the root
        // the search found, or (exec, which reports every image) to the top.
        if names == Names::Always || verdict == 0 || get!(st, root_id) == 0 {
            set!(st, root, 0);
            set!(st, detour_mnt, 0);
        }
        set!(st, dentry, dentry);
        set!(st, mnt, mnt);
        set!(st, mnt_root, 0);
        set!(st, pos, PATH_END as u64);
        set!(st, done, 0);
        // SAFETY: our scratch.
        unsafe { (*st).buf[PATH_END] = 0 };
        for _ in 0..MAX_WALK_DEPTH {
            if !name_step(o, st)? {
                break;
            }
        }
        let pos = (get!(st, pos) as usize) & MASK;
        n = (PATH_END - pos) & MASK;
        // SAFETY: n + 1 <= PATH_MAX_LEN bytes into `out`, from inside the scratch.
        unsafe {
            let buf = core::ptr::addr_of!((*st).buf) as *const u8;
            generated::bpf_probe_read_kernel(
                out.as_mut_ptr().cast(),
                (n + 1) as u32,
                buf.add(pos).cast(),
            );
        }
        done = get!(st, done);
        if done & COMPLETE == 0 {
            done |= TRUNCATED;
        }
    }
    Some(Walked {
        verdict,
        complete: searched & COMPLETE != 0 || verdict != 0,
        truncated: done & TRUNCATED != 0,
        len: n as u32,
        root_id: if get!(st, root) != 0 {
            get!(st, root_id)
        } else {
            0
        },
    })
}
