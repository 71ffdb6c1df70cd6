// SPDX-License-Identifier: GPL-2.0-only
//! Events written to the `RAMPART_EVENTS` ring buffer.

/// The reader, woken by the first record after it caught up, waits this long before
/// it drains, so a burst costs one wakeup per this interval, and idle costs none.
pub const BATCH_DELAY_MS: u64 = 2;

/// Wire format version carried in every header; bump on any layout change.
pub const EVENT_VERSION: u8 = 4;
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
/// Bit in a `RAMPART_WATCH_ROOTS` value: a world-writable tree of the exec sensor.
/// A root's value is a mask: a directory can be a watched tree and an exec tree.
pub const ROOT_EXEC: u32 = 4;
/// The bits of a `RAMPART_WATCH_ROOTS` value the file sensor's walk looks for.
pub const ROOT_FILE: u32 = WATCH_INCLUDE | WATCH_EXCLUDE;
/// Bytes of a base name the sensitive-name map keys on (longer names never match).
pub const NAME_MAX_LEN: usize = 64;
/// Capacity of the sensitive-file maps.
pub const MAX_SENSITIVE: u32 = 256;

/// Slots of `RAMPART_SENSITIVE_MODE` (`Array<u32>`). Agent writes.
pub mod sensitive {
    /// The enforcement mode of sensitive reads (`egress::mode`).
    pub const MODE: u32 = 0;
    /// 1 once the LSM file_open hook is attached: it reports (and, enforcing,
    /// denies) the files it knows by identity, and the openat tracepoints leave
    /// those to it (one report per read).
    pub const LSM_ATTACHED: u32 = 1;
    /// 1 when the file sensor runs on BPF-LSM (no openat tracepoints): the LSM
    /// file_open hook also matches base names and trees, on the resolved path.
    pub const LSM_NAMES: u32 = 2;
    pub const SLOTS: u32 = 3;
}
/// Bits of `RAMPART_SYSCALL_PARTS`: which of the file sensor's parts the `sys_exit`
/// program serves (the write sessions are the LSM backend's where it runs), and
/// whether for 64-bit syscalls too or only the 32-bit ones.
pub mod syscall_parts {
    /// open/creat/openat/openat2, close, mmap: write sessions.
    pub const SESSIONS: u32 = 1 << 0;
    /// unlink, rename, link, truncate, chmod: the path operations.
    pub const PATHS: u32 = 1 << 1;
    /// The 64-bit syscalls of those parts as well (their per-syscall tracepoints,
    /// all but `sys_enter_close`, are then not attached). Without it, only the
    /// 32-bit ones, which no per-syscall tracepoint sees.
    pub const NATIVE: u32 = 1 << 2;
}
/// `comm` length, as in the kernel's TASK_COMM_LEN.
pub const COMM_LEN: usize = 16;
/// Capacity of the watched-roots map (by device and inode).
pub const MAX_WATCH_ROOTS: u32 = 256;
/// Directories the kernel walks up from an opened file (its dentry's parents and
/// the mounts it crosses) to find a watched root and build the path. A file deeper
/// than this is reported unresolved, never silently dropped.
pub const MAX_WALK_DEPTH: usize = 48;

/// A watched root by identity: the kernel's `s_dev` of its superblock (not the
/// userspace encoding) and its inode number. Key of `RAMPART_WATCH_ROOTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RootKey {
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

/// `RAMPART_LEARN`: what the agent is teaching the kernel while it `fstatfs`es a
/// file it opened (only calls by `tgid` count). `learned` is bumped by the kernel
/// for each file learned, so the agent can check every one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learn {
    pub tgid: u32,
    /// [`learn_kind`].
    pub kind: u32,
    /// For a root: its bits (`WATCH_INCLUDE`, `ROOT_EXEC`, ...).
    pub bits: u32,
    pub learned: u32,
    /// For a root: the agent's number for it (1-based; 0 for none), which file
    /// events under it carry ([`OpenInfo::root`]) so the agent can put the root's
    /// own path in front of the names the walk built below it.
    pub root_id: u32,
    pub _pad: u32,
}

/// What a file being learned is.
pub mod learn_kind {
    /// A watched or world-writable root: its dentry's address goes into
    /// `RAMPART_ROOT_DENTRIES` with the bits.
    pub const ROOT: u32 = 1;
    /// An interpreter: its identity as the exec program reads it goes into
    /// `RAMPART_INTERPRETERS`.
    pub const INTERPRETER: u32 = 2;
}

/// Value of `RAMPART_ROOT_DENTRIES`: a watched root's bits (as in
/// `RAMPART_WATCH_ROOTS`) and identity, learned by its directory's dentry address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootDentry {
    pub bits: u32,
    pub dev: u32,
    pub ino: u64,
    /// [`Learn::root_id`] of the first learning of this directory.
    pub id: u32,
    pub _pad: u32,
}

/// Stable wire codes. Never renumber. 1..=31 process/file, 32.. network.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A file opened for writing under a watched root was closed.
    FileWriteClose = 2,
    /// A file under a watched root was unlinked ([`PathEvent`]).
    FileUnlink = 4,
    /// A file was renamed into, out of or within a watched root ([`PathEvent`], two paths).
    FileRename = 5,
    /// A file under a watched root was made executable ([`PathEvent`], `mode` set).
    FileChmod = 6,
    /// A web-server user opened a sensitive file ([`FileEvent`]).
    SensitiveRead = 7,
    /// A new name (hard link) appeared in a watched root ([`PathEvent`]: old, new).
    FileLink = 9,
    /// A file under a watched root was truncated by name ([`PathEvent`]).
    FileTruncate = 10,
    /// An outbound connect (cgroup connect4/connect6).
    Connect = 3,
    /// A program was exec'd (sched_process_exec).
    Exec = 1,
    /// A process with write sessions on watched files still open exited: its exit
    /// closes them without close(2), and the agent ends them ([`ExitEvent`]).
    WriterExit = 8,
    /// XDP dropped a packet (sampled, rate-bounded).
    XdpDrop = 32,
    /// XDP saw a source cross the port-scan threshold.
    PortScan = 33,
}

impl EventKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            2 => Some(Self::FileWriteClose),
            4 => Some(Self::FileUnlink),
            5 => Some(Self::FileRename),
            6 => Some(Self::FileChmod),
            7 => Some(Self::SensitiveRead),
            8 => Some(Self::WriterExit),
            9 => Some(Self::FileLink),
            10 => Some(Self::FileTruncate),
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
    /// This open created the file (the kernel's FMODE_CREATED).
    pub const CREATED: u32 = 1 << 2;
    /// `ino`, `dev`, `mode` and `size` were read from the inode (needs BTF offsets).
    pub const META: u32 = 1 << 3;
    /// [`super::PathEvent`]: the second path is relative (to `dirfd2`).
    pub const RELATIVE2: u32 = 1 << 4;
    /// [`super::PathEvent`]: the second path was cut.
    pub const TRUNCATED2: u32 = 1 << 5;
    /// The path was built by the kernel from the opened file (its dentries and mounts),
    /// and the file is under a watched root by device and inode: however the process
    /// spelled the name (`//`, `..`, relative, through symlinks or /proc/self/cwd).
    pub const RESOLVED: u32 = 1 << 6;
    /// The kernel's walk up from the opened file ended before the root (deeper than
    /// `MAX_WALK_DEPTH`): `path` holds only its last components.
    pub const UNRESOLVED: u32 = 1 << 7;
    /// The session's fd was mapped shared (`mmap(MAP_SHARED)`): the mapping can
    /// change the file after close, so the session outlives the close (under
    /// [`super::MAPPED_FD`]) and is ended again by the process's exit.
    pub const MAPPED: u32 = 1 << 8;
    /// A sensitive read from the LSM file_open hook: `open_flags` carries its
    /// decision (`egress::Decision`: observed, dry run, denied).
    pub const DECIDED: u32 = 1 << 9;
    /// [`super::PathEvent`] of a rename or link: the new name is absolute and not
    /// under a watched tree as typed, yet may reach one through a symlink or `..`
    /// (which a name alone cannot tell). Userspace resolves its directory and keeps
    /// the event only if that is in a watched tree.
    pub const SPELLED2: u32 = 1 << 10;
    /// [`super::PathEvent`] of a truncate or a chmod to executable: the name is
    /// absolute and not under a watched tree as typed (see [`SPELLED2`]); userspace
    /// resolves it whole (both follow a symlink at the end).
    pub const SPELLED: u32 = 1 << 11;
}

/// `OpenKey.fd` bit of a session kept past its close because its file is mapped
/// shared: `fd | MAPPED_FD` (an fd is a non-negative int, below 2^31).
pub const MAPPED_FD: u32 = 1 << 31;

/// The kernel's FMODE_CREATED (include/linux/fs.h), set in `file->f_mode` by an
/// open that created the file.
pub const FMODE_CREATED: u32 = 1 << 20;

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
    /// Inode number, size in bytes at close, device (kernel `dev_t`: major << 20 |
    /// minor) and `i_mode`; valid when `flags` has [`file_flags::META`].
    pub ino: u64,
    pub size: i64,
    pub dev: u32,
    pub mode: u32,
    pub comm: [u8; COMM_LEN],
    /// Bytes of `path` in use, without the NUL.
    pub path_len: u32,
    /// [`OpenInfo::root`]: when not 0, `path` is below that watched root.
    pub root: u32,
    pub path: [u8; PATH_MAX_LEN],
}
const _: () = assert!(core::mem::size_of::<FileEvent>() == 16 + 32 + 24 + 16 + 8 + PATH_MAX_LEN);

/// The leader of a process with open write sessions on watched files exited
/// (`sched_process_exit`, before its files are closed). Its sessions are the
/// `RAMPART_OPEN_WRITES` entries of `tgid`, which the agent reads and ends.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExitEvent {
    pub header: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 16 + 16 + COMM_LEN);

/// Unlink, rename or chmod of a watched path. Each path is preceded by a u32 so that
/// `&lpm_bits` / `&lpm_bits2` are LPM trie keys in place, as in [`OpenInfo`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PathEvent {
    pub header: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    /// New mode for chmod; renameat2's flags for a rename; 0 otherwise.
    pub mode: u32,
    /// [`file_flags`] (RELATIVE/TRUNCATED for `path`, RELATIVE2/TRUNCATED2 for `path2`).
    pub flags: u32,
    /// Directory fd of each path (AT_FDCWD = -100).
    pub dirfd: i32,
    pub dirfd2: i32,
    pub comm: [u8; COMM_LEN],
    pub path_len: u32,
    pub path2_len: u32,
    pub lpm_bits: u32,
    /// Unlinked / chmod'ed path; the old name for rename.
    pub path: [u8; PATH_MAX_LEN],
    pub lpm_bits2: u32,
    /// The new name for rename; empty otherwise.
    pub path2: [u8; PATH_MAX_LEN],
    /// [`OpenInfo::root`] of the write session an fchmod's path comes from: when
    /// not 0, `path` is below that watched root. 0 for every typed name.
    pub root: u32,
    pub _pad: u32,
}
const _: () = assert!(
    core::mem::offset_of!(PathEvent, path) == core::mem::offset_of!(PathEvent, lpm_bits) + 4
);
const _: () = assert!(
    core::mem::offset_of!(PathEvent, path2) == core::mem::offset_of!(PathEvent, lpm_bits2) + 4
);
const _: () =
    assert!(core::mem::size_of::<PathEvent>() == 16 + 32 + 16 + 12 + 2 * PATH_MAX_LEN + 12);

/// Operations in [`PendingPath::op`].
pub mod path_op {
    pub const UNLINK: u32 = 1;
    pub const RENAME: u32 = 2;
    pub const CHMOD: u32 = 3;
    /// fchmod(fd): the path comes from the open-for-write session of that fd.
    pub const FCHMOD: u32 = 4;
    /// link/linkat: a new name for an existing inode (`ptr` the old name, `ptr2` the
    /// new one, which is what matters; linkat of an O_TMPFILE fd has an empty old name).
    pub const LINK: u32 = 5;
    /// truncate(path, length): content changed without a write session.
    pub const TRUNCATE: u32 = 6;
}

/// An unlink/rename/chmod in flight (sys_enter -> sys_exit), keyed by pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PendingPath {
    pub op: u32,
    pub mode: u32,
    pub dirfd: i32,
    pub dirfd2: i32,
    /// User pointers to the path(s); for FCHMOD `ptr` is the fd.
    pub ptr: u64,
    pub ptr2: u64,
}

/// Struct member offsets resolved from the running kernel's BTF by the agent (see
/// agent/src/btf.rs): the single entry of `RAMPART_KERNEL_OFFSETS`. `valid == 0`
/// (no BTF) means the programs skip everything that walks kernel structs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub valid: u32,
    pub task_files: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_f_mode: u32,
    pub file_f_inode: u32,
    pub inode_i_mode: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub inode_i_size: u32,
    pub sb_s_dev: u32,
    /// `linux_binprm.filename` (the LSM exec hook).
    pub bprm_filename: u32,
    /// `task_struct.mm`, `mm_struct.arg_start`/`arg_end` (argv of an exec).
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `file.f_path.dentry` / `.mnt`.
    pub file_f_path_dentry: u32,
    pub file_f_path_mnt: u32,
    /// `dentry.d_parent`, `.d_name.len`, `.d_name.name`, `.d_inode`, `.d_sb`.
    pub dentry_d_parent: u32,
    pub dentry_d_name_len: u32,
    pub dentry_d_name_name: u32,
    pub dentry_d_inode: u32,
    pub dentry_d_sb: u32,
    /// `vfsmount.mnt_root`.
    pub vfsmount_mnt_root: u32,
    /// `mount.mnt` (the embedded vfsmount), `.mnt_parent`, `.mnt_mountpoint`.
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    /// `linux_binprm.file` (the image about to run) and `.interp` (the name the
    /// image was found by; differs from `filename` when a `#!` line named it).
    pub bprm_file: u32,
    pub bprm_interp: u32,
    /// `inode.i_nlink` (0: a memfd or a deleted file).
    pub inode_i_nlink: u32,
    /// `task_struct.thread_info.status` (x86: TS_COMPAT while a 32-bit syscall
    /// runs); 0 where the architecture has none, and the 32-bit program stays off.
    pub task_thread_status: u32,
    /// Start (8-aligned) of the [`DENTRY_CHUNK`] bytes of `struct dentry` that hold
    /// `d_parent`, `d_name`, `d_inode` and `d_sb`: the walk reads them in one go.
    pub dentry_chunk: u32,
    /// `io_kiocb.opcode`, and in the request's command area (`io_kiocb.cmd`, offsets
    /// from the request) `io_open.file_slot`, `io_close.fd`, `io_close.file_slot`:
    /// what the io_uring completion program reads (see [`uring`]). 0 where this
    /// kernel's BTF has no io_uring (the program is then not attached).
    pub uring_opcode: u32,
    pub uring_open_slot: u32,
    pub uring_close_fd: u32,
    pub uring_close_slot: u32,
    /// A rename's or link's (`io_rename`, `io_link`: the same layout) dirfds, names
    /// (`struct filename *`) and flags, from the request; `filename.name` (at 0 in
    /// every kernel so far). The request's are 0 where BTF lacks them: the
    /// submission program is then not attached.
    pub uring_path_old_dfd: u32,
    pub uring_path_new_dfd: u32,
    pub uring_path_old: u32,
    pub uring_path_new: u32,
    pub uring_path_flags: u32,
    pub filename_name: u32,
    /// An unlink's (`io_unlink`) dirfd and name (`struct filename *`), from the
    /// request; 0 with the rename's where BTF lacks them.
    pub uring_unlink_dfd: u32,
    pub uring_unlink_name: u32,
}

/// io_uring, as the completion program reads it: the opcodes it follows (uapi, stable
/// numbers) and where `io_uring:io_uring_complete` keeps the request and its result
/// (the same in every kernel since 6.0; the agent checks the tracepoint's format
/// before it attaches).
pub mod uring {
    pub const OP_OPENAT: u8 = 18;
    pub const OP_CLOSE: u8 = 19;
    pub const OP_OPENAT2: u8 = 28;
    pub const OP_RENAMEAT: u8 = 35;
    pub const OP_UNLINKAT: u8 = 36;
    pub const OP_LINKAT: u8 = 39;
    /// A fixed file (a ring's own slot) installed into the fd table (6.8+).
    pub const OP_FIXED_FD_INSTALL: u8 = 54;
    /// `void *req` in the tracepoint's record.
    pub const COMPLETE_REQ: usize = 16;
    /// `int res` in the tracepoint's record.
    pub const COMPLETE_RES: usize = 32;
    /// `void *req` and `u8 opcode` in `io_uring:io_uring_submit_req`'s record.
    pub const SUBMIT_REQ: usize = 16;
    pub const SUBMIT_OPCODE: usize = 32;
}

/// Bytes of `struct dentry` the walk reads per step (from `dentry_chunk`).
pub const DENTRY_CHUNK: usize = 128;

/// What the kernel keeps for an open-for-write session.
///
/// `lpm_bits` directly precedes `path` so that `&lpm_bits` *is* an LPM trie key
/// (`{prefix_len: u32, data: [u8; PREFIX_MAX_LEN]}`) over the path's first bytes:
/// the watch lookup needs no copy and no loop.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenInfo {
    /// `file->f_inode` of the opened file, read at open (0 without struct offsets):
    /// the close reads the inode's facts from it instead of looking the fd up again.
    /// The fd holds the file, and so the inode, until that close; an fd replaced by
    /// dup2 leaves a stale pointer, which probe reads tolerate (wrong metadata, never
    /// a fault), like the stale session itself.
    pub inode: u64,
    pub open_flags: u32,
    pub dirfd: i32,
    pub flags: u32,
    pub path_len: u32,
    /// With [`file_flags::RESOLVED`]: the watched root the walk found (its
    /// [`Learn::root_id`]), and `path` holds the names below it, each after a `/`
    /// (the agent puts the root's path in front). 0 otherwise (`path` is then absolute, or relative as the process typed it).
    pub root: u32,
    pub lpm_bits: u32,
    pub path: [u8; PATH_MAX_LEN],
}
const _: () = assert!(core::mem::size_of::<OpenInfo>() == (32 + PATH_MAX_LEN).div_ceil(8) * 8);
const _: () =
    assert!(core::mem::offset_of!(OpenInfo, path) == core::mem::offset_of!(OpenInfo, lpm_bits) + 4);

/// Who a file event is about: taken from the current task, or, for the LSM file
/// backend, from the task that opened the file (its last reference may be dropped by
/// another: an io_uring worker, a process the fd was passed to).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Writer {
    pub pid_tgid: u64,
    pub uid_gid: u64,
    pub comm: [u8; COMM_LEN],
}

/// A write session of the LSM file backend (`RAMPART_LSM_WRITES`, keyed by the
/// `struct file` address): opened in `file_open` for a file opened for writing under
/// a watched tree, ended in `file_free_security` when the file's last reference is
/// dropped (close, exit, the end of a shared mapping, io_uring's close).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LsmWrite {
    pub writer: Writer,
    pub info: OpenInfo,
}

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

crate::counters! {
    /// Indexes of `RAMPART_FILE_STATS_TOTAL`. Stable numbers.
    pub enum FileStat {
        /// Events submitted to the ring buffer.
        Emitted = 0 => "emitted",
        /// Ring buffer full: event lost.
        RingbufFull = 1 => "ringbuf_full",
        /// Could not read the path from user memory.
        PathReadError = 2 => "path_read_error",
        /// An open-tracking map was full: session not tracked.
        MapFull = 3 => "map_full",
        /// Unlink/rename/chmod events submitted.
        PathEmitted = 4 => "path_emitted",
        /// Sensitive-file reads by web users submitted.
        SensitiveEmitted = 5 => "sensitive_emitted",
        /// A written file deeper than the kernel's walk: reported unresolved.
        WalkTooDeep = 6 => "walk_too_deep",
        /// 32-bit (ia32) file syscalls handled by `rampart_syscall_exit`: calls the
        /// syscall tracepoints never see.
        CompatSyscall = 7 => "compat_syscalls",
        /// Write sessions whose fd was closed without a close(2) that ended them
        /// (dup2/dup3 over it, close_range, exec): ended when found, by the
        /// dup's exit or by the next open that got the same fd.
        ClosedUnseen = 8 => "closed_unseen",
        /// Opens and closes done by io_uring (`rampart_uring_complete`): calls the
        /// syscall tracepoints never see.
        UringCalls = 9 => "uring_calls",
        /// io_uring renames and links that succeeded with their names lost (more
        /// in flight at once than `RAMPART_URING_PATHS` holds): left to the sweep.
        UringPathsLost = 10 => "uring_paths_lost",
    }
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all are repr(C), Copy, with explicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for OpenKey {}
    unsafe impl aya::Pod for PendingOpen {}
    unsafe impl aya::Pod for OpenInfo {}
    unsafe impl aya::Pod for PendingPath {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for RootKey {}
    unsafe impl aya::Pod for RootDentry {}
    unsafe impl aya::Pod for Learn {}
}
