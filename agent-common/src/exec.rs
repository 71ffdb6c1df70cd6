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
    /// The name was relative to the cwd (`./x`): the kernel program cannot match it
    /// against the trees, so the agent resolves it through /proc and decides.
    pub const RELATIVE: u32 = 2;
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
        /// Denied before the new image existed (the fanotify backend's FAN_DENY; the
        /// LSM's -EPERM). Counted in userspace.
        Denied = 4 => "denied",
    }
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: repr(C), Copy, explicit padding, any bit pattern valid.
    unsafe impl aya::Pod for ExecConfig {}
}
