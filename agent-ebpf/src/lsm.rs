// SPDX-License-Identifier: GPL-2.0-only
//! BPF-LSM programs: the enforcing backend where the kernel allows LSM programs
//! (many do not: this CI kernel refuses every trampoline program with EPERM). The
//! agent loads `rampart_lsm_probe` first; only if that loads does it load and attach
//! the sensors below. Each one:
//! - returns the verdict of earlier LSM programs when it is already a denial (never
//!   overturns one),
//! - fails open on its own errors (returns 0),
//! - denies only in enforce mode with dry run off; otherwise reports the decision.

use agent_common::{
    egress::{mode, Decision},
    file_flags, sensitive, EventHeader, EventKind, FileEvent, FileStat, LsmWrite, Writer,
    EVENT_VERSION,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    macros::{lsm, map},
    maps::{LruHashMap, PerCpuArray},
    programs::LsmContext,
};

use crate::file::FMODE_WRITE;
use crate::{exec, file, kstruct};

const EPERM: i32 = 1;

/// `bprm_check_security(struct linux_binprm *bprm, int ret)`: arg 1 is the verdict so far.
#[lsm(hook = "bprm_check_security")]
pub fn rampart_lsm_probe(ctx: LsmContext) -> i32 {
    // Never overturn an earlier denial; never deny ourselves.
    ctx.arg::<i32>(1)
}

/// Exec from a world-writable tree: denied with EPERM before the new image exists
/// (the tracepoint backend can only kill it after).
#[lsm(hook = "bprm_check_security")]
pub fn rampart_lsm_bprm_check(ctx: LsmContext) -> i32 {
    let ret: i32 = ctx.arg(1);
    if ret != 0 {
        return ret;
    }
    let Some(o) = kstruct::offsets() else {
        return 0;
    };
    let bprm: u64 = ctx.arg(0);
    // The file being checked: for a script, this hook runs for the script and then
    // for its interpreter, so a script in a world-writable tree is denied by itself.
    let image = match (
        kstruct::ptr(bprm, o.bprm_file),
        kstruct::ptr(bprm, o.bprm_filename),
    ) {
        (Some(file), Some(filename)) => exec::Image::File { file, filename },
        (None, Some(filename)) => exec::Image::Typed(filename as *const u8),
        _ => return 0,
    };
    match exec::exec_decision(image, exec::Hook::Lsm) {
        Ok(Decision::Denied) => -EPERM,
        _ => 0,
    }
}

/// A web-server user opening a sensitive file (matched by device and inode, which
/// the agent resolved from the configured paths), however it is named: by a symlink,
/// a hard link, a relative name, through io_uring. Reported with the path the kernel
/// resolved and the decision, and denied when enforcing. The openat tracepoints leave
/// these files to this hook (`file::lsm_reported`). The comm is the reader's to
/// choose, so no comm is exempt from a denial. `file_open(struct file *file, int ret)`.
#[lsm(hook = "file_open")]
pub fn rampart_lsm_file_open(ctx: LsmContext) -> i32 {
    let ret: i32 = ctx.arg(1);
    if ret != 0 {
        return ret;
    }
    match try_file_open(ctx.arg(0)) {
        Some(Decision::Denied) => -EPERM,
        _ => 0,
    }
}

fn try_file_open(f: u64) -> Option<Decision> {
    let uid_gid = bpf_get_current_uid_gid();
    if !file::is_web_uid(uid_gid as u32) {
        return None;
    }
    let o = kstruct::offsets()?;
    // Identity as `stat` shows it (the agent keyed the map so), overlayfs included.
    let k = kstruct::root_key(o, f)?;
    // SAFETY: plain lookup.
    let by_identity = unsafe { file::SENSITIVE_INODES.get(&[k.dev as u64, k.ino]) }.is_some();
    // With the LSM file backend no openat tracepoint runs: base names and trees are
    // matched here, on the path the kernel resolved (reported, never denied).
    let named = if by_identity {
        None
    } else if file::SENSITIVE_MODE.get(sensitive::LSM_NAMES).copied() == Some(1)
        && kstruct::file_mode(o, f).is_some_and(|m| m & FMODE_WRITE == 0)
    {
        let s = LSM_WRITE_SCRATCH.get_ptr_mut(0)?;
        // SAFETY: per-CPU scratch, exclusively ours during this run.
        let info = unsafe { &mut (*s).info };
        let w = kstruct::walk(o, f, 0, kstruct::Names::Always, &mut info.path)?;
        if w.truncated {
            return None;
        }
        info.path_len = w.len;
        if !file::sensitive(info) {
            return None;
        }
        Some(&*info)
    } else {
        return None;
    };
    let decision = match (named, file::SENSITIVE_MODE.get(sensitive::MODE).copied()) {
        (Some(_), _) => Decision::Observed,
        (None, Some(mode::ENFORCE)) => Decision::Denied,
        (None, Some(mode::DRY_RUN)) => Decision::DryRun,
        _ => Decision::Observed,
    };
    let Some(mut entry) = file::EVENTS.reserve::<FileEvent>(0) else {
        file::bump(FileStat::RingbufFull);
        // The decision stands without its report (it is counted).
        return Some(decision);
    };
    let ev = entry.as_mut_ptr();
    let id = bpf_get_current_pid_tgid();
    let m = kstruct::inode_meta(o, f);
    // SAFETY: reserved ring memory of size_of::<FileEvent>(); every field written
    // (the path by the walk, or zeroed when it fails).
    unsafe {
        (*ev).header = EventHeader {
            kind: EventKind::SensitiveRead as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: core::mem::size_of::<FileEvent>() as u32,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*ev).pid = id as u32;
        (*ev).tgid = (id >> 32) as u32;
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).open_flags = decision as u32;
        (*ev).fd = -1;
        (*ev).dirfd = 0;
        (*ev).flags = file_flags::META | file_flags::DECIDED;
        (*ev).ino = k.ino;
        (*ev).size = m.as_ref().map_or(0, |m| m.size);
        (*ev).dev = k.dev;
        (*ev).mode = m.as_ref().map_or(0, |m| m.mode);
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
        (*ev).root = 0;
        let walked = match named {
            Some(info) => {
                (*ev).path = info.path;
                Some(kstruct::Walked {
                    verdict: 0,
                    complete: true,
                    truncated: false,
                    len: info.path_len,
                    root_id: 0,
                })
            }
            None => kstruct::walk(o, f, 0, kstruct::Names::Always, &mut (*ev).path),
        };
        match walked {
            Some(w) => {
                (*ev).path_len = w.len;
                (*ev).flags |= file_flags::RESOLVED;
                if w.truncated {
                    (*ev).flags |= file_flags::TRUNCATED;
                }
            }
            None => {
                (*ev).path_len = 0;
                (*ev).flags |= file_flags::UNRESOLVED;
                (*ev).path = [0u8; agent_common::PATH_MAX_LEN];
            }
        }
    }
    entry.submit(0);
    file::bump(FileStat::SensitiveEmitted);
    Some(decision)
}

// ---- the LSM file backend ------------------------------------------------------

/// Write sessions by `struct file` address. LRU: a file whose free this program
/// never saw (attached after its open) cannot leak it full. Sized at load.
#[map(name = "RAMPART_LSM_WRITES")]
static LSM_WRITES: LruHashMap<u64, LsmWrite> = LruHashMap::with_max_entries(1, 0);

#[map(name = "RAMPART_LSM_WRITE_SCRATCH")]
static LSM_WRITE_SCRATCH: PerCpuArray<LsmWrite> = PerCpuArray::with_max_entries(1, 0);

/// Every open for writing, however it was made (openat, openat2, creat,
/// open_by_handle_at, io_uring, `O_TMPFILE`): a file under a watched tree starts a
/// write session, keyed by the file, that `rampart_lsm_file_free` ends. Observes
/// only. `file_open(struct file *file, int ret)`.
#[lsm(hook = "file_open")]
pub fn rampart_lsm_file_write(ctx: LsmContext) -> i32 {
    let ret: i32 = ctx.arg(1);
    if ret != 0 {
        return ret;
    }
    if let Err(stat) = try_file_write(ctx.arg(0)) {
        file::bump(stat);
    }
    0
}

fn try_file_write(f: u64) -> Result<(), FileStat> {
    let Some(o) = kstruct::offsets() else {
        return Ok(());
    };
    let mode = kstruct::file_mode(o, f).unwrap_or(0);
    if mode & FMODE_WRITE == 0 {
        return Ok(());
    }
    let s = LSM_WRITE_SCRATCH.get_ptr_mut(0).ok_or(FileStat::MapFull)?;
    // SAFETY: per-CPU scratch, exclusively ours during this run.
    let s = unsafe { &mut *s };
    s.info.open_flags = 0;
    s.info.dirfd = 0;
    s.info.flags = 0;
    s.info.inode = 0;
    s.info.root = 0;
    match file::write_session(o, f, mode, &mut s.info) {
        Some(true) => {}
        Some(false) => return Ok(()),
        None => return Err(FileStat::PathReadError),
    }
    s.writer = Writer {
        pid_tgid: bpf_get_current_pid_tgid(),
        uid_gid: bpf_get_current_uid_gid(),
        comm: bpf_get_current_comm().unwrap_or([0u8; 16]),
    };
    LSM_WRITES.insert(&f, s, 0).map_err(|_| FileStat::MapFull)
}

/// The last reference to a file is gone: a write session on it ends, with what the
/// file holds now (every write, through any fd or mapping, is in). Runs in whichever
/// task dropped it, so the event carries the writer from the open.
/// `file_free_security(struct file *file)`.
#[lsm(hook = "file_free_security")]
pub fn rampart_lsm_file_free(ctx: LsmContext) -> i32 {
    let f: u64 = ctx.arg(0);
    let Some(s) = LSM_WRITES.get_ptr(&f) else {
        return 0;
    };
    // SAFETY: live map value.
    let s = unsafe { &*s };
    if let Err(stat) = file::emit_file_as(
        EventKind::FileWriteClose,
        &s.writer,
        -1,
        &s.info,
        FileStat::Emitted,
    ) {
        file::bump(stat);
    }
    let _ = LSM_WRITES.remove(&f);
    0
}
