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
    file_flags, sensitive, EventHeader, EventKind, FileEvent, FileStat, EVENT_VERSION,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    macros::lsm,
    programs::LsmContext,
};

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
    unsafe { file::SENSITIVE_INODES.get(&[k.dev as u64, k.ino]) }?;
    let decision = match file::SENSITIVE_MODE.get(sensitive::MODE).copied() {
        Some(mode::ENFORCE) => Decision::Denied,
        Some(mode::DRY_RUN) => Decision::DryRun,
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
        (*ev)._pad = 0;
        match kstruct::walk(o, f, 0, kstruct::Names::Always, &mut (*ev).path) {
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
