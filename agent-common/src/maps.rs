// SPDX-License-Identifier: GPL-2.0-only
//! The only place userspace spells a map or program name.

/// Ring buffer carrying every event (file, XDP) to userspace. Kernel writes, agent reads.
pub const EVENTS: &str = "RAMPART_EVENTS";
/// IPv4 CIDRs to drop in XDP (`LpmTrie<[u8; 4], u32>`, value = reason code). Agent writes, XDP reads.
pub const BLOCK_V4: &str = "RAMPART_BLOCK_V4";
/// IPv6 CIDRs to drop in XDP (`LpmTrie<[u8; 16], u32>`). Agent writes, XDP reads.
pub const BLOCK_V6: &str = "RAMPART_BLOCK_V6";
/// IPv4 CIDRs never dropped (`LpmTrie<[u8; 4], u32>`). Agent writes, XDP reads.
pub const ALLOW_V4: &str = "RAMPART_ALLOW_V4";
/// IPv6 CIDRs never dropped. Agent writes, XDP reads.
pub const ALLOW_V6: &str = "RAMPART_ALLOW_V6";
/// Firewall policy (`Array<XdpConfig>`, one entry). Agent writes, XDP reads.
pub const XDP_CONFIG: &str = "RAMPART_XDP_CONFIG";
/// Per-source packet token buckets (`LruHashMap<[u8; 16], RateState>`). XDP only.
pub const RATE_STATE: &str = "RAMPART_RATE_STATE";
/// Per-source SYN token buckets. XDP only.
pub const SYN_STATE: &str = "RAMPART_SYN_STATE";
/// Per-source port-scan windows (`LruHashMap<[u8; 16], ScanState>`). XDP only.
pub const SCAN_STATE: &str = "RAMPART_SCAN_STATE";
/// Allowed inbound TCP ports, a 65536-bit bitmap (`Array<u64>`). Agent writes, XDP reads.
pub const PORTS_TCP: &str = "RAMPART_PORTS_TCP";
/// Allowed inbound UDP ports bitmap. Agent writes, XDP reads.
pub const PORTS_UDP: &str = "RAMPART_PORTS_UDP";
/// Per-CPU token bucket for sampled drop events (`PerCpuArray<RateState>`). XDP only.
pub const XDP_SAMPLE: &str = "RAMPART_XDP_SAMPLE";
/// Per-CPU XDP verdict counters, indexed by [`crate::xdp::XdpReason`]. XDP writes, agent reads.
pub const XDP_STATS_TOTAL: &str = "RAMPART_XDP_STATS_TOTAL";
/// Watched trees for the file sensor: `LpmTrie<[u8; PREFIX_MAX_LEN], u32>` keyed on path
/// bytes ("/var/www/" = 72 bits), value `WATCH_INCLUDE`/`WATCH_EXCLUDE`. Agent writes, kernel reads.
pub const WATCH_PREFIXES: &str = "RAMPART_WATCH_PREFIXES";
/// The watched and world-writable roots by the address of their directory's dentry
/// (`HashMap<u64, RootDentry>`, bits 1 watched, 2 excluded, 4 exec), learned at
/// start by `rampart_learn_root` while the agent holds each root open (which keeps
/// the dentry, and so the address, alive): the walk's membership test is one lookup
/// per level, no reads. Kernel writes.
pub const ROOT_DENTRIES: &str = "RAMPART_ROOT_DENTRIES";
/// The filesystems that hold a root (`HashMap<u64, u32>`: superblock addresses, also
/// learned by `rampart_learn_root`): the walk crosses any other filesystem in one
/// step. Kernel writes.
pub const ROOT_SBS: &str = "RAMPART_ROOT_SBS";
/// Interpreters by identity (`HashMap<RootKey, u32>`: sh, bash, php, python, perl,
/// ld.so, ...) as the exec program reads it from the file (which on overlayfs is not
/// what `stat` shows): an exec of one is followed to the script it opens. Learned
/// by `rampart_learn_root`.
pub const INTERPRETERS: &str = "RAMPART_INTERPRETERS";
/// What is being learned (`Array<Learn>`, one entry). Agent writes, kernel counts.
pub const LEARN: &str = "RAMPART_LEARN";
/// Freshly exec'd interpreters, by tgid (`LruHashMap<u32, ScriptWatch>`). Kernel only.
pub const SCRIPT_WATCH: &str = "RAMPART_SCRIPT_WATCH";
/// Opens by those interpreters in flight (`LruHashMap<u64, u64>`: pid_tgid -> name
/// pointer). Kernel only.
pub const SCRIPT_PENDING: &str = "RAMPART_SCRIPT_PENDING";
/// Scratch for an exec's argv while it is hashed (per-CPU). Kernel only.
pub const ARGV_SCRATCH: &str = "RAMPART_ARGV_SCRATCH";
/// Scratch for the path built by that walk (per-CPU, `[u8; 2 * PATH_MAX_LEN]`). Kernel only.
pub const WALK_SCRATCH: &str = "RAMPART_WALK_SCRATCH";
/// What close_range's lookup loop found (per-CPU, `[u32; 5]`). Kernel only.
pub const CLOSE_RANGE_SCRATCH: &str = "RAMPART_CLOSE_RANGE_SCRATCH";
/// openat() calls in flight (`PendingOpen`), keyed by pid_tgid, between sys_enter and sys_exit. Kernel only.
pub const OPEN_PENDING: &str = "RAMPART_OPEN_PENDING";
/// Open-for-write sessions under watched roots, keyed by [`crate::OpenKey`]. Kernel only.
pub const OPEN_WRITES: &str = "RAMPART_OPEN_WRITES";
/// The LSM file backend's write sessions (`LruHashMap<u64, LsmWrite>`, keyed by the
/// `struct file` address). Kernel only; sized at load like `OPEN_WRITES`.
pub const LSM_WRITES: &str = "RAMPART_LSM_WRITES";
/// Scratch for one LSM write session (per-CPU, one entry). Kernel only.
pub const LSM_WRITE_SCRATCH: &str = "RAMPART_LSM_WRITE_SCRATCH";
/// Processes with write sessions open (`LruHashMap<u32, u64>`: tgid -> count), so
/// their exit is reported. Kernel only.
pub const WRITERS: &str = "RAMPART_WRITERS";
/// Per-CPU file sensor counters, indexed by [`crate::FileStat`]. Kernel writes, agent reads.
pub const FILE_STATS_TOTAL: &str = "RAMPART_FILE_STATS_TOTAL";
/// Scratch space for building a file path (per-CPU, one entry). Kernel only.
pub const PATH_SCRATCH: &str = "RAMPART_PATH_SCRATCH";
/// Unlink/rename/chmod calls in flight (`PendingPath`), keyed by pid_tgid. Kernel only.
pub const PATH_PENDING: &str = "RAMPART_PATH_PENDING";
/// io_uring renames and links in flight: the `PathEvent` built from the request's
/// names at submission, keyed by the request's address, sent at its completion.
/// Kernel only.
pub const URING_PATHS: &str = "RAMPART_URING_PATHS";
/// What the io_uring programs serve (`Array<u32>`, one entry of `syscall_parts`
/// bits). Agent writes.
pub const URING_PARTS: &str = "RAMPART_URING_PARTS";
/// How many [`URING_PATHS`] holds: io_uring renames and links in flight at once.
pub const URING_PATHS_MAX: u32 = 256;
/// Scratch `PathEvent` (per-CPU, one entry). Kernel only.
pub const PATH_EVENT_SCRATCH: &str = "RAMPART_PATH_EVENT_SCRATCH";
/// Struct offsets from the kernel's BTF (`Array<KernelOffsets>`, one entry). Agent writes.
pub const KERNEL_OFFSETS: &str = "RAMPART_KERNEL_OFFSETS";
/// UIDs of web-server users whose reads of sensitive files are reported (`HashMap<u32, u32>`).
pub const WEB_UIDS: &str = "RAMPART_WEB_UIDS";
/// Sensitive files and trees by absolute path (`LpmTrie<[u8; PREFIX_MAX_LEN], u32>`; a
/// file's key includes its NUL so "/etc/shadow" does not match "/etc/shadow-"). Agent writes.
pub const SENSITIVE_PREFIXES: &str = "RAMPART_SENSITIVE_PREFIXES";
/// Sensitive files by base name, anywhere (`HashMap<[u8; NAME_MAX_LEN], u32>`, zero-padded).
pub const SENSITIVE_NAMES: &str = "RAMPART_SENSITIVE_NAMES";
/// Sensitive files by identity, for the LSM file_open hook (`HashMap<[u64; 2], u32>`,
/// key = [kernel dev_t, inode]). Agent writes (stat of each configured path).
pub const SENSITIVE_INODES: &str = "RAMPART_SENSITIVE_INODES";
/// Sensitive-read enforcement mode and LSM hand-off (`Array<u32>`, slots in
/// [`crate::sensitive`]). Agent writes.
pub const SENSITIVE_MODE: &str = "RAMPART_SENSITIVE_MODE";
/// Scratch for a base-name key (per-CPU, one entry). Kernel only.
pub const NAME_SCRATCH: &str = "RAMPART_NAME_SCRATCH";
/// What the `sys_exit` program serves (`Array<u32>`, one entry: bits of
/// [`crate::syscall_parts`]). Agent writes, `rampart_syscall_exit` reads.
pub const SYSCALL_PARTS: &str = "RAMPART_SYSCALL_PARTS";

/// Egress policy (`Array<EgressConfig>`, one entry). Agent writes, connect programs read.
pub const EGRESS_CONFIG: &str = "RAMPART_EGRESS_CONFIG";
/// UIDs allowed direct SMTP egress (`HashMap<u32, u32>`). Agent writes, connect programs read.
pub const SAFE_UIDS: &str = "RAMPART_SAFE_UIDS";
/// Per-CPU egress counters indexed by `EgressStat`. Kernel writes, agent reads.
pub const EGRESS_STATS_TOTAL: &str = "RAMPART_EGRESS_STATS_TOTAL";

/// Exec policy (`Array<ExecConfig>`, one entry). Agent writes, exec program reads.
pub const EXEC_CONFIG: &str = "RAMPART_EXEC_CONFIG";
/// Cgroup ids the exec policy is scoped to (`HashMap<u64, u32>`). Agent writes.
pub const EXEC_SCOPE: &str = "RAMPART_EXEC_SCOPE";
/// World-writable trees (`LpmTrie<[u8; PREFIX_MAX_LEN], u32>`, like the watch trie).
pub const EXEC_DENY_PREFIXES: &str = "RAMPART_EXEC_DENY_PREFIXES";
/// Per-CPU exec counters indexed by `ExecStat`. Kernel writes, agent reads.
pub const EXEC_STATS_TOTAL: &str = "RAMPART_EXEC_STATS_TOTAL";
/// Scratch for the exec path (per-CPU `OpenInfo`). Kernel only.
pub const EXEC_SCRATCH: &str = "RAMPART_EXEC_SCRATCH";

/// Every map the kernel object must define; a test loads the object and checks each one.
pub const ALL: &[&str] = &[
    EVENTS,
    BLOCK_V4,
    BLOCK_V6,
    ALLOW_V4,
    ALLOW_V6,
    XDP_CONFIG,
    RATE_STATE,
    SYN_STATE,
    SCAN_STATE,
    PORTS_TCP,
    PORTS_UDP,
    XDP_SAMPLE,
    XDP_STATS_TOTAL,
    WATCH_PREFIXES,
    OPEN_PENDING,
    OPEN_WRITES,
    LSM_WRITES,
    LSM_WRITE_SCRATCH,
    WRITERS,
    FILE_STATS_TOTAL,
    PATH_SCRATCH,
    PATH_PENDING,
    URING_PATHS,
    URING_PARTS,
    PATH_EVENT_SCRATCH,
    KERNEL_OFFSETS,
    WEB_UIDS,
    SENSITIVE_PREFIXES,
    SENSITIVE_NAMES,
    NAME_SCRATCH,
    SYSCALL_PARTS,
    SENSITIVE_INODES,
    SENSITIVE_MODE,
    EGRESS_CONFIG,
    SAFE_UIDS,
    EGRESS_STATS_TOTAL,
    EXEC_CONFIG,
    EXEC_SCOPE,
    EXEC_DENY_PREFIXES,
    EXEC_STATS_TOTAL,
    EXEC_SCRATCH,
    ROOT_DENTRIES,
    ROOT_SBS,
    LEARN,
    WALK_SCRATCH,
    CLOSE_RANGE_SCRATCH,
    INTERPRETERS,
    SCRIPT_WATCH,
    SCRIPT_PENDING,
    ARGV_SCRATCH,
];

/// Maps pinned under the pin directory so enforcement and the blocklist survive an
/// agent restart or crash. Checked against the expected layout at start.
pub const PINNED: &[&str] = &[BLOCK_V4, BLOCK_V6, ALLOW_V4, ALLOW_V6];

/// Program names (the kernel function names).
pub mod progs {
    pub const XDP_FIREWALL: &str = "rampart_xdp";
    pub const SYS_ENTER_OPENAT: &str = "sys_enter_openat";
    pub const SYS_EXIT_OPENAT: &str = "sys_exit_openat";
    pub const SYS_ENTER_CLOSE: &str = "sys_enter_close";
    /// dup2/dup3's exit: the file newfd held was closed (per-syscall hook).
    pub const SYS_EXIT_DUP: &str = "sys_exit_dup";
    /// close_range's enter: the sessions on the fds it closes end (both hooks).
    pub const SYS_ENTER_CLOSE_RANGE: &str = "sys_enter_close_range";
    /// creat(path, mode): an open for writing with O_CREAT|O_TRUNC.
    pub const SYS_ENTER_CREAT: &str = "sys_enter_creat";
    /// open(path, flags, mode) (legacy, not on every architecture).
    pub const SYS_ENTER_OPEN: &str = "sys_enter_open";
    /// openat2(dfd, path, how, size): flags come from `how`.
    pub const SYS_ENTER_OPENAT2: &str = "sys_enter_openat2";
    pub const SYS_ENTER_UNLINKAT: &str = "sys_enter_unlinkat";
    pub const SYS_ENTER_UNLINK: &str = "sys_enter_unlink";
    pub const SYS_ENTER_RENAMEAT: &str = "sys_enter_renameat";
    /// renameat2: also its flags (RENAME_EXCHANGE).
    pub const SYS_ENTER_RENAMEAT2: &str = "sys_enter_renameat2";
    pub const SYS_ENTER_RENAME: &str = "sys_enter_rename";
    /// linkat and link: a hard link (or an O_TMPFILE given a name) in a watched tree.
    pub const SYS_ENTER_LINKAT: &str = "sys_enter_linkat";
    pub const SYS_ENTER_LINK: &str = "sys_enter_link";
    /// fchmodat and fchmodat2 (same first three arguments).
    pub const SYS_ENTER_FCHMODAT: &str = "sys_enter_fchmodat";
    pub const SYS_ENTER_CHMOD: &str = "sys_enter_chmod";
    pub const SYS_ENTER_FCHMOD: &str = "sys_enter_fchmod";
    /// truncate(path, length): a watched file's content changed by name.
    pub const SYS_ENTER_TRUNCATE: &str = "sys_enter_truncate";
    /// mmap(MAP_SHARED) of a write session's fd: ended again at exit.
    pub const SYS_ENTER_MMAP: &str = "sys_enter_mmap";
    /// sys_enter_fstatfs, attached only while the agent learns its roots' dentries.
    pub const LEARN_ROOT: &str = "rampart_learn_root";
    /// sched_process_exit: a writer that exits with sessions open.
    pub const FILE_EXIT: &str = "rampart_file_exit";
    /// `io_uring:io_uring_complete`: the opens and closes a ring did (the
    /// tracepoint session backend).
    pub const URING_COMPLETE: &str = "rampart_uring_complete";
    /// `io_uring:io_uring_submit_req`: a rename's or link's names, kept for its
    /// completion (every backend but fanotify).
    pub const URING_SUBMIT: &str = "rampart_uring_submit";
    /// The exit of every unlink/rename/chmod syscall.
    pub const SYS_EXIT_PATH: &str = "sys_exit_path";
    /// `sys_exit` through BTF (tp_btf), x86_64: the file sensor's syscalls, 64-bit
    /// (in place of the per-syscall tracepoints but close's and close_range's
    /// enters) and 32-bit
    /// (ia32, which the per-syscall tracepoints never see).
    pub const SYSCALL_EXIT: &str = "rampart_syscall_exit";
    /// The same on a raw tracepoint, where tp_btf does not load.
    pub const SYSCALL_EXIT_RAW: &str = "rampart_syscall_exit_raw";
    pub const CONNECT4: &str = "rampart_connect4";
    pub const CONNECT6: &str = "rampart_connect6";
    /// The exec sensor on kernels without BTF: the typed name from the tracepoint.
    pub const SCHED_PROCESS_EXEC: &str = "sched_process_exec";
    /// The exec sensor with BTF (raw tracepoint): the file the kernel is running,
    /// walked to its real path; interpreters followed to their scripts.
    pub const EXEC_RESOLVED: &str = "rampart_exec";
    /// The opens of an interpreter the exec sensor follows to its script.
    pub const SCRIPT_OPENAT: &str = "rampart_script_openat";
    pub const SCRIPT_OPEN: &str = "rampart_script_open";
    pub const SCRIPT_EXIT: &str = "rampart_script_exit";
    /// tp_btf `sys_exit`: a 32-bit open by a watched interpreter (its script),
    /// attached only where a 32-bit interpreter is installed.
    pub const SCRIPT_EXIT32: &str = "rampart_script_exit32";
    /// sched_process_exit: a process's script watch ends with it.
    pub const EXEC_EXIT: &str = "rampart_exec_exit";
    pub const LSM_PROBE: &str = "rampart_lsm_probe";
    /// LSM sensors: built for kernels with BPF-LSM, loaded only where the probe passes.
    pub const LSM_FILE_OPEN: &str = "rampart_lsm_file_open";
    /// The LSM file backend: write sessions opened in `file_open`, ended in
    /// `file_free_security`.
    pub const LSM_FILE_WRITE: &str = "rampart_lsm_file_write";
    pub const LSM_FILE_FREE: &str = "rampart_lsm_file_free";
    pub const LSM_BPRM_CHECK: &str = "rampart_lsm_bprm_check";
}
