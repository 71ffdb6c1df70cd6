// SPDX-License-Identifier: GPL-2.0-only
//! Events written to the `RAMPART_EVENTS` ring buffer.

/// File events do not wake the reader until this much is pending; the agent drains
/// the ring every `DRAIN_INTERVAL_MS` as well, bounding a lone event's wait.
pub const DRAIN_INTERVAL_MS: u64 = 2;

/// Wire format version carried in every header; bump on any layout change.
pub const EVENT_VERSION: u8 = 1;
/// Bytes of a path the kernel copies (including the NUL).
pub const PATH_MAX_LEN: usize = 256;
/// Bytes of a path the watch LPM trie keys on: watched prefixes are at most this long.
pub const PREFIX_MAX_LEN: usize = 128;
/// Capacity of the watch trie (watched trees + exclusions).
pub const MAX_WATCH_PREFIXES: u32 = 256;
/// Value in `RAMPART_WATCH_PREFIXES`: the tree is watched.
pub const WATCH_INCLUDE: u32 = 1;
/// Value in `RAMPART_WATCH_PREFIXES`: the tree is excluded (longest prefix wins).
pub const WATCH_EXCLUDE: u32 = 2;
/// `comm` length, as in the kernel's TASK_COMM_LEN.
pub const COMM_LEN: usize = 16;

/// Stable wire codes. Never renumber. 1..=31 process/file, 32.. network.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A file opened for writing under a watched root was closed.
    FileWriteClose = 2,
    /// An outbound connect (cgroup connect4/connect6).
    Connect = 3,
    /// A program was exec'd (sched_process_exec).
    Exec = 1,
    /// XDP dropped a packet (sampled, rate-bounded).
    XdpDrop = 32,
    /// XDP saw a source cross the port-scan threshold.
    PortScan = 33,
}

impl EventKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            2 => Some(Self::FileWriteClose),
            3 => Some(Self::Connect),
            1 => Some(Self::Exec),
            32 => Some(Self::XdpDrop),
            33 => Some(Self::PortScan),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// [`EventKind`] as u16; userspace decodes with `EventKind::from_u16`, never transmute.
    pub kind: u16,
    pub version: u8,
    pub _pad: u8,
    /// Total length of the event in bytes, header included.
    pub len: u32,
    /// `bpf_ktime_get_ns()` at emission.
    pub ktime_ns: u64,
}
const _: () = assert!(core::mem::size_of::<EventHeader>() == 16);

/// Flags in [`FileEvent::flags`].
pub mod file_flags {
    /// The path given to openat() was relative (to the cwd or to a directory fd);
    /// userspace resolves it.
    pub const RELATIVE: u32 = 1 << 0;
    /// The path was longer than `PATH_MAX_LEN` and was cut.
    pub const TRUNCATED: u32 = 1 << 1;
}

/// A write session on a watched file ended (close of an fd opened for writing).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileEvent {
    pub header: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    /// openat() flags (O_WRONLY, O_CREAT, ...).
    pub open_flags: u32,
    /// The fd being closed.
    pub fd: i32,
    /// openat() dirfd (AT_FDCWD = -100) for relative paths.
    pub dirfd: i32,
    /// [`file_flags`].
    pub flags: u32,
    pub comm: [u8; COMM_LEN],
    /// Bytes of `path` in use, without the NUL.
    pub path_len: u32,
    pub _pad: u32,
    pub path: [u8; PATH_MAX_LEN],
}
const _: () = assert!(core::mem::size_of::<FileEvent>() == 16 + 32 + 16 + 8 + PATH_MAX_LEN);

/// What the kernel keeps for an open-for-write session.
///
/// `lpm_bits` directly precedes `path` so that `&lpm_bits` *is* an LPM trie key
/// (`{prefix_len: u32, data: [u8; PREFIX_MAX_LEN]}`) over the path's first bytes:
/// the watch lookup needs no copy and no loop.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenInfo {
    pub open_flags: u32,
    pub dirfd: i32,
    pub flags: u32,
    pub path_len: u32,
    pub lpm_bits: u32,
    pub path: [u8; PATH_MAX_LEN],
}
const _: () = assert!(core::mem::size_of::<OpenInfo>() == 20 + PATH_MAX_LEN);
const _: () =
    assert!(core::mem::offset_of!(OpenInfo, path) == core::mem::offset_of!(OpenInfo, lpm_bits) + 4);

/// An openat() in flight (sys_enter -> sys_exit). Only the user pointer is kept: the
/// path is read at sys_exit, when the kernel has already faulted the page in.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PendingOpen {
    pub filename: u64,
    pub open_flags: u32,
    pub dirfd: i32,
}

/// Key of `RAMPART_OPEN_WRITES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenKey {
    pub tgid: u32,
    pub fd: u32,
}

/// Indexes of `RAMPART_FILE_STATS_TOTAL`. Stable numbers.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStat {
    /// Events submitted to the ring buffer.
    Emitted = 0,
    /// Ring buffer full: event lost.
    RingbufFull = 1,
    /// Could not read the path from user memory.
    PathReadError = 2,
    /// An open-tracking map was full: session not tracked.
    MapFull = 3,
}

impl FileStat {
    pub const COUNT: u32 = 4;
    pub const ALL: [FileStat; 4] = [
        Self::Emitted,
        Self::RingbufFull,
        Self::PathReadError,
        Self::MapFull,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Emitted => "emitted",
            Self::RingbufFull => "ringbuf_full",
            Self::PathReadError => "path_read_error",
            Self::MapFull => "map_full",
        }
    }
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all are repr(C), Copy, with explicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for OpenKey {}
    unsafe impl aya::Pod for PendingOpen {}
    unsafe impl aya::Pod for OpenInfo {}
}
