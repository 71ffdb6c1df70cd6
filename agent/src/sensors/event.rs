// SPDX-License-Identifier: GPL-2.0-only
//! What the sensors produce, whichever backend saw it: file activity, execs, and the
//! network events; the queues they go into; the pipeline's counters.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use agent_common::{egress::ConnectEvent, egress::Decision, xdp::XdpEvent, EVENT_VERSION};
use tokio::sync::mpsc;

/// What happened to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileOp {
    /// A write session ended (close of an fd opened for writing).
    WriteClose,
    Unlink,
    /// `path` is the new name, `old_path` the old one.
    Rename,
    /// Made executable; `new_mode` is the mode set.
    Chmod,
    /// A web-server user opened a sensitive file for reading.
    SensitiveRead,
}

impl FileOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteClose => "write_close",
            Self::Unlink => "unlink",
            Self::Rename => "rename",
            Self::Chmod => "chmod",
            Self::SensitiveRead => "sensitive_read",
        }
    }
}

/// Inode facts, read by the kernel from the open file (or by fanotify's fstat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub ino: u64,
    /// Userspace `st_dev` encoding (as `stat` reports it).
    pub dev: u64,
    pub mode: u32,
    pub size: i64,
}

impl FileMeta {
    /// From `lstat` of `path` now (None when it is gone): for events whose backend
    /// had no open file to read it from.
    pub fn of(path: &Path) -> Option<Self> {
        Some(Self::from(&std::fs::symlink_metadata(path).ok()?))
    }
}

impl From<&std::fs::Metadata> for FileMeta {
    fn from(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            ino: m.ino(),
            dev: m.dev(),
            mode: m.mode(),
            size: m.size() as i64,
        }
    }
}

/// File activity in a watched tree, as the agent sees it, whichever backend saw it.
/// Absent options mean unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileActivity {
    pub op: FileOp,
    pub path: PathBuf,
    pub old_path: Option<PathBuf>,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    /// The writer's executable (/proc/<tgid>/exe when the event arrived).
    pub exe: Option<PathBuf>,
    pub open_flags: u32,
    /// The open that began this write session created the file.
    pub created: bool,
    pub truncated: bool,
    pub meta: Option<FileMeta>,
    pub new_mode: Option<u32>,
    /// A rename that swapped the two names (`RENAME_EXCHANGE`): both hold new
    /// content, and both are scanned.
    pub exchange: bool,
    /// A sensitive read the LSM file_open hook decided (observed, dry run, denied);
    /// None when a tracepoint only saw it.
    pub decision: Option<Decision>,
    /// When userspace got the event (write → finding latency).
    pub received_at: std::time::Instant,
}

impl FileActivity {
    /// An activity with everything but the essentials unknown.
    pub fn new(op: FileOp, path: PathBuf, tgid: u32, uid: u32, comm: String) -> Self {
        Self {
            op,
            path,
            old_path: None,
            pid: tgid,
            tgid,
            uid,
            gid: 0,
            comm,
            exe: None,
            open_flags: 0,
            created: false,
            truncated: false,
            meta: None,
            new_mode: None,
            exchange: false,
            decision: None,
            received_at: std::time::Instant::now(),
        }
    }
}

/// The kernel's `dev_t` (major << 20 | minor) in userspace `st_dev` encoding.
pub fn kernel_dev_to_user(dev: u32) -> u64 {
    libc::makedev(dev >> 20, dev & 0xf_ffff)
}

/// Userspace `st_dev` -> the kernel's `dev_t` (major << 20 | minor), as `s_dev` holds
/// it: the inverse of [`kernel_dev_to_user`].
pub fn kernel_dev(dev: u64) -> u64 {
    (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u16),
    #[error("event version {0}, expected {EVENT_VERSION}")]
    Version(u8),
    #[error("event says {claimed} bytes, ring buffer item has {actual}")]
    Length { claimed: u32, actual: usize },
    #[error("path length {0} out of range")]
    PathLen(u32),
    #[error("unknown exec decision {0}")]
    Decision(u32),
}

/// Pipeline counters, exported in /api/v1/health and /metrics.
#[derive(Default, Debug)]
pub struct PipelineStats {
    pub received: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Events dropped because the detection queue was full.
    pub queue_dropped: AtomicU64,
    /// Relative paths that resolved outside the watched trees (filtered here).
    pub unwatched: AtomicU64,
    /// Paths that could not be named: the kernel's walk gave up (too deep, too long),
    /// or fanotify could not open the entry.
    pub unresolved: AtomicU64,
    /// Relative names (unlink, rename, chmod, link, exec) whose process was gone
    /// before /proc could resolve them. Any process on the host adds to this one, so
    /// it is kept apart from `unresolved`.
    pub relative_gone: AtomicU64,
    /// Write sessions ended by their process's exit (no close(2)), ended here.
    pub exit_closed: AtomicU64,
    /// Write-closes the kernel could not name, found by inode in a watched tree ...
    pub unnamed_found: AtomicU64,
    /// ... not found there (outside the watched trees, or gone) ...
    pub unnamed_not_found: AtomicU64,
    /// ... and not looked up (too many at once: left to the sweep).
    pub unnamed_dropped: AtomicU64,
    /// File activity by operation (write_close, unlink, rename, chmod, sensitive_read).
    pub file_ops: [AtomicU64; 5],
    /// Exec outcomes counted in userspace (the fanotify exec backend), indexed like
    /// the kernel's [`agent_common::exec::ExecStat`].
    pub exec: [AtomicU64; agent_common::exec::ExecStat::COUNT as usize],
}

impl PipelineStats {
    pub fn count_op(&self, op: FileOp) {
        self.file_ops[op as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A kernel `comm` as text.
pub fn comm_str(comm: &[u8]) -> String {
    cstr(comm)
}

pub(crate) fn cstr(bytes: &[u8]) -> String {
    String::from_utf8_lossy(until_nul(bytes)).into_owned()
}

/// The bytes of a kernel C string, up to its NUL (all of them without one).
pub(crate) fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Events for the sensor task (network, egress, exec).
#[derive(Clone, Debug)]
pub enum SensorEvent {
    Xdp(XdpEvent),
    Connect(ConnectEvent),
    Exec(Exec),
}

/// A process in an exec's lineage: tgid and comm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ancestor {
    pub tgid: u32,
    pub comm: String,
}

/// An exec as the agent sees it, whichever backend saw it (the `sched_process_exec`
/// program or fanotify's `FAN_OPEN_EXEC_PERM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The new image's comm (fanotify: the file's name until /proc says otherwise).
    pub comm: String,
    /// The exec'd file. Relative (`./x`) while `relative` is set.
    pub path: PathBuf,
    pub decision: Decision,
    /// The name was relative: the kernel program could not match it against the
    /// trees, so the agent resolves and decides it (`sensors::exec::ExecPolicy`).
    pub relative: bool,
    /// The file is under one of `exec.world_writable`.
    pub world_writable: bool,
    /// `path` is the script an interpreter (`comm`) opened, not the exec'd image.
    pub script: bool,
    /// The image has no name on any filesystem (memfd, deleted) or ran by fd.
    pub fileless: bool,
    /// Denied by BPF-LSM (`bprm_check_security`, -EPERM): the image never existed.
    pub lsm: bool,
    /// From the kernel (or /proc for fanotify); None when unknown.
    pub parent: Option<Ancestor>,
    pub grandparent: Option<Ancestor>,
    /// argv; empty when unknown.
    pub args: Vec<String>,
    pub args_truncated: bool,
}

impl Exec {
    /// "comm (tgid)" of the parent, for findings.
    pub fn parent_label(&self) -> String {
        match &self.parent {
            Some(p) => format!("{} ({})", p.comm, p.tgid),
            None => "unknown".into(),
        }
    }
}

/// Where decoded events go; each a bounded queue.
#[derive(Clone)]
pub struct Sinks {
    pub files: mpsc::Sender<FileActivity>,
    pub net: mpsc::Sender<SensorEvent>,
    /// Write-closes the kernel could not name, to be found by inode.
    pub unnamed: Option<mpsc::Sender<Unnamed>>,
}

/// A write-close whose path the kernel could not build.
#[derive(Clone, Debug)]
pub struct Unnamed {
    /// The written file, by (userspace `st_dev`, inode).
    pub dev: u64,
    pub ino: u64,
    /// The last components the kernel could build (for the log).
    pub tail: String,
    /// The writer, as the event reported it.
    pub act: FileActivity,
}

impl Unnamed {
    /// The activity this becomes once found.
    pub fn new(dev: u64, ino: u64, tail: String, mut act: FileActivity) -> Self {
        act.op = FileOp::WriteClose;
        Self {
            dev,
            ino,
            tail,
            act,
        }
    }
}

/// Count and queue one file activity (a full queue is a counted drop, never a wait).
pub fn send_activity(sinks: &Sinks, stats: &PipelineStats, act: FileActivity) {
    stats.count_op(act.op);
    if sinks.files.try_send(act).is_err() {
        stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Destination of a connect event.
pub fn connect_dest(ev: &ConnectEvent) -> std::net::IpAddr {
    if ev.family == 4 {
        std::net::IpAddr::from([ev.daddr[0], ev.daddr[1], ev.daddr[2], ev.daddr[3]])
    } else {
        std::net::IpAddr::from(ev.daddr)
    }
}

/// Source address of an XDP event.
pub fn xdp_source(ev: &XdpEvent) -> std::net::IpAddr {
    if ev.family == 4 {
        std::net::IpAddr::from([ev.src[12], ev.src[13], ev.src[14], ev.src[15]])
    } else {
        std::net::IpAddr::from(ev.src)
    }
}
