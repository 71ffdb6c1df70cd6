// SPDX-License-Identifier: GPL-2.0-only
//! Exec sensor (sched:sched_process_exec) wire types.

use crate::{EventHeader, COMM_LEN, PATH_MAX_LEN};

/// Bytes of argv the exec event carries (NUL-separated, cut beyond this).
pub const ARGS_MAX_LEN: usize = 256;

/// The single entry of `RAMPART_EXEC_CONFIG`. Modes as in [`crate::egress::mode`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecConfig {
    pub mode: u32,
    /// 1: only processes in a cgroup listed in `RAMPART_EXEC_SCOPE`.
    pub scoped: u32,
    /// 1: report every exec, not only from world-writable trees.
    pub all_execs: u32,
    pub _pad: u32,
}

/// Bits of [`ExecEvent::flags`].
pub mod flags {
    /// The path is under a world-writable tree (`exec.world_writable`).
    pub const WORLD_WRITABLE: u32 = 1;
    /// The name was relative to the cwd (`./x`) and the kernel had no struct offsets
    /// to walk the file: the agent resolves it through /proc and decides.
    pub const RELATIVE: u32 = 2;
    /// `path` is a script an interpreter opened (its argument, `sh /tmp/x`, or the
    /// file a `#!` line handed it), not the exec'd image.
    pub const SCRIPT: u32 = 4;
    /// The image has no name on any filesystem (no links: a memfd, or a file
    /// deleted before it ran).
    pub const FILELESS: u32 = 8;
    /// Exec'd by file descriptor (`execveat`/`fexecve`: the kernel's name for it is
    /// `/dev/fd/N`).
    pub const FD_EXEC: u32 = 16;
    /// `path` was built by the kernel's walk up from the file, not typed by anyone.
    pub const RESOLVED: u32 = 32;
    /// The walked path's leading components did not fit.
    pub const TRUNCATED: u32 = 64;
    /// Denied by BPF-LSM (`bprm_check_security`) with -EPERM: the new image never
    /// existed (no argv is read there).
    pub const LSM: u32 = 128;
}

/// argv elements of an interpreter whose hashes the kernel keeps, to recognise the
/// open of its script among its first opens.
pub const MAX_SCRIPT_ARGS: usize = 8;
/// Read-opens of a freshly exec'd interpreter checked for its script before the
/// kernel stops looking (php, python and ld.so open their libraries first).
pub const SCRIPT_OPEN_BUDGET: u32 = 96;

/// A freshly exec'd interpreter (by inode in `RAMPART_INTERPRETERS`, or the image a
/// `#!` line named), keyed by tgid in `RAMPART_SCRIPT_WATCH`: its next read-opens
/// are compared (FNV-1a of the name) against its argv, and the one that names an
/// argument is its script, walked and matched like an exec'd image.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ScriptWatch {
    /// Read-opens left to check.
    pub budget: u32,
    /// Hashes in use.
    pub n: u32,
    /// Running state of the hashing loop (kept in map memory for the verifier).
    pub cur: u64,
    pub hashes: [u64; MAX_SCRIPT_ARGS],
}

/// FNV-1a, the hash of argv elements and opened names (kernel and tests agree).
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a of `bytes` (what the kernel computes for a name).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// An exec.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    /// `comm` of the new image (the kernel sets it before this tracepoint).
    pub comm: [u8; COMM_LEN],
    pub cgroup_id: u64,
    /// [`crate::egress::Decision`] as u32 (Allowed for plain reporting).
    pub decision: u32,
    pub path_len: u32,
    /// Parent and grandparent (real_parent chain) tgid and comm, read in the kernel;
    /// 0 and empty when the BTF offsets are unavailable.
    pub ppid: u32,
    pub gppid: u32,
    pub parent_comm: [u8; COMM_LEN],
    pub gp_comm: [u8; COMM_LEN],
    /// Bytes of `args` in use (argv, NUL-separated); `args_truncated` when cut.
    pub args_len: u32,
    pub args_truncated: u32,
    /// [`flags`] bits: under a world-writable tree; a relative name for userspace.
    pub flags: u32,
    pub _pad: u32,
    pub args: [u8; ARGS_MAX_LEN],
    pub path: [u8; PATH_MAX_LEN],
}
const _: () = assert!(
    core::mem::size_of::<ExecEvent>()
        == 16 + 16 + 16 + 8 + 8 + 8 + 32 + 16 + ARGS_MAX_LEN + PATH_MAX_LEN
);

crate::counters! {
    /// Indexes of `RAMPART_EXEC_STATS_TOTAL`. Stable numbers.
    pub enum ExecStat {
        Checked = 0 => "checked",
        Violations = 1 => "violations",
        Killed = 2 => "killed",
        RingbufFull = 3 => "ringbuf_full",
        /// Denied before the new image existed: the LSM's -EPERM (counted here), the
        /// fanotify backend's FAN_DENY (counted in userspace).
        Denied = 4 => "denied",
        /// A freshly exec'd interpreter opened its script (matched or not).
        Scripts = 5 => "scripts",
        /// An image with no name on any filesystem (memfd, deleted) or exec'd by fd.
        Fileless = 6 => "fileless",
    }
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: repr(C), Copy, explicit padding, any bit pattern valid.
    unsafe impl aya::Pod for ExecConfig {}
    unsafe impl aya::Pod for ScriptWatch {}
}
