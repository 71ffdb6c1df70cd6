// SPDX-License-Identifier: GPL-2.0-only
//! File sensor on syscall tracepoints (BPF-LSM and fentry are refused on the kernels
//! we must support; see docs/kernel.md). One event per open-for-write session:
//! sys_enter_openat remembers write-opens (flags, filename pointer); sys_exit_openat
//! reads the path, keeps it if it is under a watched tree (or relative, which
//! userspace resolves) and binds it to the returned fd; and
//! sys_enter_close emits the event (or a dup2/dup3 over the fd, or the next open
//! that gets the fd number, when close(2) did not end it). creat/open/openat2 feed the same sessions.
//! unlink/rename/chmod(+x) of watched paths are reported at their syscall exits (only
//! when they succeeded), and read-only opens of sensitive files by web-server users at
//! sys_exit_openat. Inode metadata comes from the open file through struct offsets
//! the agent resolved from BTF (`kstruct`).
//!
//! Error policy: on our own errors we emit nothing and count why; the syscall is
//! never affected (tracepoints cannot deny).

use agent_common::{
    file_flags, learn_kind, path_op, sensitive, syscall_parts, uring, EventHeader, EventKind,
    ExitEvent, FileEvent, FileStat, KernelOffsets, Learn, OpenInfo, OpenKey, PathEvent,
    PendingOpen, PendingPath, Writer, EVENT_VERSION, FMODE_CREATED, MAPPED_FD, MAX_SENSITIVE,
    MAX_WATCH_PREFIXES, NAME_MAX_LEN, PATH_MAX_LEN, PREFIX_MAX_LEN, ROOT_FILE, WATCH_EXCLUDE,
    WATCH_INCLUDE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user, bpf_probe_read_user_str_bytes,
    },
    macros::{map, tracepoint},
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
    EbpfContext,
};

use crate::kstruct;

/// What the agent is teaching `rampart_learn_root` (one entry).
#[map(name = "RAMPART_LEARN")]
static LEARN: Array<Learn> = Array::with_max_entries(1, 0);

/// Events to userspace. Real size set at load from `sensors.ringbuf_bytes`.
#[map(name = "RAMPART_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Watched trees ("/var/www/" as a 72-bit prefix), written by the agent at start.
/// Longest prefix wins, so an exclusion inside a watched tree takes effect.
#[map(name = "RAMPART_WATCH_PREFIXES")]
static WATCH_PREFIXES: LpmTrie<[u8; PREFIX_MAX_LEN], u32> =
    LpmTrie::with_max_entries(MAX_WATCH_PREFIXES, 0);

/// openat() for writing in flight: pid_tgid -> filename pointer and flags. LRU: a
/// thread killed inside the syscall never reaches the exit that removes its entry.
#[map(name = "RAMPART_OPEN_PENDING")]
static OPEN_PENDING: LruHashMap<u64, PendingOpen> = LruHashMap::with_max_entries(1, 0);

/// Open-for-write sessions: (tgid, fd) -> path. LRU so fds closed by exit() cannot leak it full.
#[map(name = "RAMPART_OPEN_WRITES")]
static OPEN_WRITES: LruHashMap<OpenKey, OpenInfo> = LruHashMap::with_max_entries(1, 0);

/// Processes that opened write sessions: tgid -> sessions still open (a count kept
/// loosely: fds closed by exec leave it high until a later open gets the fd, which
/// only costs an exit event). An entry stays at zero after its last close; the process's exit removes it.
#[map(name = "RAMPART_WRITERS")]
static WRITERS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1, 0);

/// Per-CPU counters indexed by `FileStat`.
#[map(name = "RAMPART_FILE_STATS_TOTAL")]
static FILE_STATS_TOTAL: PerCpuArray<u64> = PerCpuArray::with_max_entries(FileStat::COUNT, 0);

/// Scratch buffer: an OpenInfo is too large for the 512-byte BPF stack.
#[map(name = "RAMPART_PATH_SCRATCH")]
static PATH_SCRATCH: PerCpuArray<OpenInfo> = PerCpuArray::with_max_entries(1, 0);

/// unlink/rename/chmod in flight: pid_tgid -> user pointers. Sized like OPEN_PENDING.
#[map(name = "RAMPART_PATH_PENDING")]
static PATH_PENDING: LruHashMap<u64, PendingPath> = LruHashMap::with_max_entries(1, 0);

#[map(name = "RAMPART_PATH_EVENT_SCRATCH")]
static PATH_EVENT_SCRATCH: PerCpuArray<PathEvent> = PerCpuArray::with_max_entries(1, 0);

/// Web-server UIDs: their read-only opens are checked against the sensitive maps.
#[map(name = "RAMPART_WEB_UIDS")]
static WEB_UIDS: HashMap<u32, u32> = HashMap::with_max_entries(64, 0);

#[map(name = "RAMPART_SENSITIVE_PREFIXES")]
static SENSITIVE_PREFIXES: LpmTrie<[u8; PREFIX_MAX_LEN], u32> =
    LpmTrie::with_max_entries(MAX_SENSITIVE, 0);

#[map(name = "RAMPART_SENSITIVE_NAMES")]
static SENSITIVE_NAMES: HashMap<[u8; NAME_MAX_LEN], u32> =
    HashMap::with_max_entries(MAX_SENSITIVE, 0);

/// Sensitive files by identity (`[dev, ino]` as `stat` shows them), for the LSM
/// file_open hook; the tracepoints leave these to it where it is attached.
#[map(name = "RAMPART_SENSITIVE_INODES")]
pub(crate) static SENSITIVE_INODES: HashMap<[u64; 2], u32> = HashMap::with_max_entries(256, 0);

/// [`agent_common::sensitive`]: the enforcement mode, and whether the LSM file_open
/// hook is attached.
#[map(name = "RAMPART_SENSITIVE_MODE")]
pub(crate) static SENSITIVE_MODE: Array<u32> = Array::with_max_entries(sensitive::SLOTS, 0);

#[map(name = "RAMPART_NAME_SCRATCH")]
static NAME_SCRATCH: PerCpuArray<[u8; NAME_MAX_LEN]> = PerCpuArray::with_max_entries(1, 0);

pub(crate) const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
pub(crate) const O_CREAT: u32 = 0o100;
pub(crate) const O_TRUNC: u32 = 0o1000;
const WRITE_FLAGS: u32 = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC;
/// The kernel's FMODE_READ and FMODE_WRITE (include/linux/fs.h).
const FMODE_READ: u32 = 1 << 0;
pub(crate) const FMODE_WRITE: u32 = 1 << 1;

// Offsets from /sys/kernel/tracing/events/syscalls/*/format (stable ABI).
pub(crate) const ARG0: usize = 16;
pub(crate) const ARG1: usize = 24;
const ARG2: usize = 32;
const ARG3: usize = 40;
const ARG4: usize = 48;
pub(crate) const AT_FDCWD: i32 = -100;
/// Any execute bit: chmod to executable.
pub(crate) const EXEC_BITS: u32 = 0o111;
/// Map update flag: insert only, fail with -EEXIST when the key is there.
const BPF_NOEXIST: u64 = 1;
const EEXIST: i64 = -17;

#[inline(always)]
pub(crate) fn bump(stat: FileStat) {
    if let Some(c) = FILE_STATS_TOTAL.get_ptr_mut(stat as u32) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
}

#[tracepoint]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_sys_enter_openat(&ctx) {
        bump(stat);
    }
    0
}

#[tracepoint]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_sys_exit_openat(&ctx) {
        bump(stat);
    }
    0
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_sys_enter_close(&ctx) {
        bump(stat);
    }
    0
}

/// close_range(first, last, flags): every fd in [first, last] is closed at once, with
/// no close(2) each. Taken at the enter, like close: the fds still hold their files.
/// Only for a process with write sessions (`RAMPART_WRITERS`), and only when the call
/// will close (valid flags, no `CLOSE_RANGE_CLOEXEC`, `first <= last`): ending a
/// session for a call that fails would let the writer go on unseen.
#[tracepoint]
pub fn sys_enter_close_range(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_sys_enter_close_range(&ctx) {
        bump(stat);
    }
    0
}

const CLOSE_RANGE_UNSHARE: u32 = 1 << 1;
/// How many fds from `first` are looked up (a lookup each).
const CLOSE_RANGE_SCAN: u32 = 1024;
/// How many sessions one call ends; more in the range are left to the next open of
/// their fd numbers, the exit, or the sweep.
const CLOSE_RANGE_ENDS: u32 = 4;

/// close_range's findings while it looks: `[found, fd0, fd1, fd2, fd3]`. In a map
/// value, which the verifier does not track, so the lookup loop's iterations do not
/// multiply its states (one per count found) and it walks the loop once.
#[map(name = "RAMPART_CLOSE_RANGE_SCRATCH")]
static CLOSE_RANGE_SCRATCH: PerCpuArray<[u32; 1 + CLOSE_RANGE_ENDS as usize]> =
    PerCpuArray::with_max_entries(1, 0);

fn try_sys_enter_close_range(ctx: &TracePointContext) -> Result<(), FileStat> {
    let (first, last, flags) = (
        arg(ctx, ARG0)? as u32,
        arg(ctx, ARG1)? as u32,
        arg(ctx, ARG2)? as u32,
    );
    // An unknown flag fails the call; CLOSE_RANGE_CLOEXEC only marks the fds.
    if first > last || flags & !CLOSE_RANGE_UNSHARE != 0 {
        return Ok(());
    }
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    // SAFETY: read of a plain u64 map value.
    if unsafe { WRITERS.get(&tgid) }.is_none() {
        return Ok(());
    }
    let Some(st) = CLOSE_RANGE_SCRATCH.get_ptr_mut(0) else {
        return Ok(());
    };
    let st = st.cast::<u32>();
    // SAFETY: `st` is this CPU's scratch value, 1 + CLOSE_RANGE_ENDS u32s; every
    // index below is masked or constant inside it.
    unsafe {
        core::ptr::write_volatile(st, 0);
        for i in 0..CLOSE_RANGE_SCAN {
            let fd = first.wrapping_add(i);
            if fd < first || fd > last {
                break;
            }
            if OPEN_WRITES.get(&OpenKey { tgid, fd }).is_none() {
                continue;
            }
            let n = core::ptr::read_volatile(st);
            if n >= CLOSE_RANGE_ENDS {
                break;
            }
            core::ptr::write_volatile(st.add(1 + (n & (CLOSE_RANGE_ENDS - 1)) as usize), fd);
            core::ptr::write_volatile(st, n + 1);
        }
        let n = core::ptr::read_volatile(st);
        // Each ends whatever the one before it met (a full ring buffer is counted
        // per session, not left to stop the rest).
        for k in 0..CLOSE_RANGE_ENDS {
            if k < n {
                let fd = core::ptr::read_volatile(st.add(1 + k as usize));
                if let Err(stat) = end_session(id, fd as u64, Seen::Enter) {
                    bump(stat);
                }
            }
        }
    }
    Ok(())
}

/// dup2/dup3 (per-syscall hook): on success newfd (the return value) holds oldfd's
/// file, and the file it held before was closed: a session on it ends.
#[tracepoint]
pub fn sys_exit_dup(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_sys_exit_dup(&ctx) {
        bump(stat);
    }
    0
}

fn try_sys_exit_dup(ctx: &TracePointContext) -> Result<(), FileStat> {
    let ret = arg(ctx, ARG0)? as i64;
    if ret < 0 {
        return Ok(());
    }
    end_session(bpf_get_current_pid_tgid(), ret as u64, Seen::Exit)
}

/// io_uring's completions (`io_uring:io_uring_complete`): what a ring did that no
/// syscall tracepoint sees. With the tracepoint session backend (`SESSIONS` in
/// `RAMPART_URING_PARTS`), an open that put a file on an fd starts a write session as
/// openat's exit does (from the file the kernel opened), and a close ends one as a
/// close seen at its exit does. With `PATHS`, a rename, link or unlink sends the event its
/// submission kept ([`rampart_uring_submit`]). Every completion on the host passes
/// here: a read of the opcode and a compare for all but these. A ring's work runs in
/// its owner's threads (io-wq workers, the SQPOLL thread: one process, one fd
/// table), so the fd is the owner's.
#[tracepoint]
pub fn rampart_uring_complete(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_uring_complete(&ctx) {
        bump(stat);
    }
    0
}

fn try_uring_complete(ctx: &TracePointContext) -> Result<(), FileStat> {
    // SAFETY: offsets from the tracepoint's format, checked by the agent before it
    // attached this program; aligned, inside the record.
    let res = unsafe {
        core::ptr::read(
            (ctx.as_ptr() as *const u8)
                .add(uring::COMPLETE_RES)
                .cast::<i32>(),
        )
    };
    let Some(o) = kstruct::offsets().filter(|o| o.uring_opcode != 0) else {
        return Ok(());
    };
    let req = arg(ctx, uring::COMPLETE_REQ)?;
    let op: u8 = kstruct::read(req, o.uring_opcode).ok_or(FileStat::PathReadError)?;
    if op == uring::OP_RENAMEAT || op == uring::OP_LINKAT || op == uring::OP_UNLINKAT {
        // An unlink's submission keeps only names that may be watched.
        return uring_path_done(req, res, op != uring::OP_UNLINKAT);
    }
    if res < 0 || URING_PARTS.get(0).copied().unwrap_or(0) & syscall_parts::SESSIONS == 0 {
        return Ok(());
    }
    let id = bpf_get_current_pid_tgid();
    match op {
        uring::OP_OPENAT | uring::OP_OPENAT2 | uring::OP_FIXED_FD_INSTALL => {
            // An open into one of the ring's own slots returns no fd (named unseen).
            if op != uring::OP_FIXED_FD_INSTALL
                && kstruct::read::<u32>(req, o.uring_open_slot) != Some(0)
            {
                return Ok(());
            }
            bump(FileStat::UringCalls);
            exit_open(id, None, res as i64)
        }
        uring::OP_CLOSE => {
            if kstruct::read::<u32>(req, o.uring_close_slot) != Some(0) {
                return Ok(());
            }
            let fd: i32 = kstruct::read(req, o.uring_close_fd).ok_or(FileStat::PathReadError)?;
            bump(FileStat::UringCalls);
            end_session(id, fd as u32 as u64, Seen::Exit)
        }
        _ => Ok(()),
    }
}

/// What the io_uring programs serve ([`syscall_parts`] bits, written by the agent
/// before it attaches them): `SESSIONS` (opens and closes; the tracepoint session
/// backend) and `PATHS` (renames, links and unlinks; every backend but fanotify).
#[map(name = "RAMPART_URING_PARTS")]
static URING_PARTS: Array<u32> = Array::with_max_entries(1, 0);

/// io_uring renames, links and unlinks in flight: the event built from the
/// request's names at its submission (they are freed when it runs), sent at its completion.
#[map(name = "RAMPART_URING_PATHS")]
static URING_PATHS: LruHashMap<u64, PathEvent> = LruHashMap::with_max_entries(1, 0);

/// io_uring's submissions (`io_uring:io_uring_submit_req`, after the request's
/// preparation copied its names in): a rename or link keeps its event for the
/// completion ([`rampart_uring_complete`]), and so does an unlink of a name that
/// may be watched (filtered by name as unlink(2)'s are). Every submission on the
/// host passes here: a compare of the opcode in the record for all but these three.
#[tracepoint]
pub fn rampart_uring_submit(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_uring_submit(&ctx) {
        bump(stat);
    }
    0
}

fn try_uring_submit(ctx: &TracePointContext) -> Result<(), FileStat> {
    // SAFETY: offset from the tracepoint's format, checked by the agent.
    let op = unsafe { *(ctx.as_ptr() as *const u8).add(uring::SUBMIT_OPCODE) };
    let (op, kind) = match op {
        uring::OP_RENAMEAT => (path_op::RENAME, EventKind::FileRename),
        uring::OP_LINKAT => (path_op::LINK, EventKind::FileLink),
        uring::OP_UNLINKAT => (path_op::UNLINK, EventKind::FileUnlink),
        _ => return Ok(()),
    };
    if URING_PARTS.get(0).copied().unwrap_or(0) & syscall_parts::PATHS == 0 {
        return Ok(());
    }
    // `filename.name` is at 0; the request's fields never are (its file comes first).
    // The agent writes the rename's, link's and unlink's offsets together or none.
    let Some(o) = kstruct::offsets().filter(|o| o.uring_path_new != 0) else {
        return Ok(());
    };
    let req = arg(ctx, uring::SUBMIT_REQ)?;
    let scratch = PATH_EVENT_SCRATCH.get_ptr_mut(0).ok_or(FileStat::MapFull)?;
    // SAFETY: per-CPU scratch, exclusively ours for this run.
    let ev = unsafe { &mut *scratch };
    ev.flags = 0;
    ev.root = 0;
    ev.mode = 0;
    ev.dirfd2 = 0;
    ev.path2_len = 0;
    ev.path2[0] = 0;
    if op == path_op::UNLINK {
        ev.dirfd = kstruct::read(req, o.uring_unlink_dfd).ok_or(FileStat::PathReadError)?;
        ev.path_len = kernel_name(
            o,
            kstruct::read(req, o.uring_unlink_name).ok_or(FileStat::PathReadError)?,
            &mut ev.path,
            file_flags::RELATIVE,
            file_flags::TRUNCATED,
            &mut ev.flags,
        );
        if ev.path_len == 0 {
            return Err(FileStat::PathReadError);
        }
        // Filtered by name, as unlink(2)'s are: relative names go to userspace.
        if ev.flags & file_flags::RELATIVE == 0 && !watched_at(&mut ev.lpm_bits) {
            return Ok(());
        }
    } else {
        ev.dirfd = kstruct::read(req, o.uring_path_old_dfd).ok_or(FileStat::PathReadError)?;
        ev.dirfd2 = kstruct::read(req, o.uring_path_new_dfd).ok_or(FileStat::PathReadError)?;
        if op == path_op::RENAME {
            ev.mode = kstruct::read(req, o.uring_path_flags).unwrap_or(0);
        }
        ev.path_len = kernel_name(
            o,
            kstruct::read(req, o.uring_path_old).unwrap_or(0),
            &mut ev.path,
            file_flags::RELATIVE,
            file_flags::TRUNCATED,
            &mut ev.flags,
        );
        ev.path2_len = kernel_name(
            o,
            kstruct::read(req, o.uring_path_new).ok_or(FileStat::PathReadError)?,
            &mut ev.path2,
            file_flags::RELATIVE2,
            file_flags::TRUNCATED2,
            &mut ev.flags,
        );
        if ev.path2_len == 0 {
            return Err(FileStat::PathReadError);
        }
        spell_two_names(op, ev);
    }
    stamp_path_event(ev, kind, bpf_get_current_pid_tgid());
    URING_PATHS
        .insert(&req, &*ev, 0)
        .map_err(|_| FileStat::MapFull)
}

/// A kernel `struct filename`'s name into `dst` (an empty one when there is none:
/// a link of an O_TMPFILE fd); returns its length and sets flag bits.
#[inline(always)]
fn kernel_name(
    o: &KernelOffsets,
    filename: u64,
    dst: &mut [u8; PATH_MAX_LEN],
    relative: u32,
    truncated: u32,
    flags: &mut u32,
) -> u32 {
    dst[0] = 0;
    let Some(name) = kstruct::read::<u64>(filename, o.filename_name).filter(|p| *p != 0) else {
        return 0;
    };
    // SAFETY: probe read of kernel memory into a buffer we own.
    let n = match unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, dst) } {
        Ok(s) => s.len(),
        Err(_) => {
            dst[0] = 0;
            return 0;
        }
    };
    name_flags(n, dst, relative, truncated, flags);
    n as u32
}

/// The flags of a name of `n` bytes read into `dst` (a user or a kernel one):
/// `truncated` when it filled the buffer, `relative` when it does not start at `/`.
#[inline(always)]
fn name_flags(n: usize, dst: &[u8; PATH_MAX_LEN], relative: u32, truncated: u32, flags: &mut u32) {
    if n >= PATH_MAX_LEN - 1 {
        *flags |= truncated;
    }
    if dst[0] != b'/' {
        *flags |= relative;
    }
}

/// An io_uring rename, link or unlink completed with `res`: its event (kept at
/// submission) goes out if it succeeded. `kept`: the submission kept every such
/// request (a missing one was lost to the LRU).
#[inline(always)]
fn uring_path_done(req: u64, res: i32, kept: bool) -> Result<(), FileStat> {
    let Some(ev) = URING_PATHS.get_ptr_mut(&req) else {
        if kept && res == 0 && URING_PARTS.get(0).copied().unwrap_or(0) & syscall_parts::PATHS != 0
        {
            return Err(FileStat::UringPathsLost);
        }
        return Ok(());
    };
    let out = if res == 0 {
        // SAFETY: live map value; the output copies it before the remove.
        let ev = unsafe { &mut *ev };
        // SAFETY: plain helper call.
        ev.header.ktime_ns = unsafe { bpf_ktime_get_ns() };
        bump(FileStat::UringCalls);
        EVENTS
            .output::<PathEvent>(&*ev, 0)
            .map_err(|_| FileStat::RingbufFull)
            .map(|()| bump(FileStat::PathEmitted))
    } else {
        Ok(())
    };
    let _ = URING_PATHS.remove(&req);
    out
}

/// The LPM key formed in place by a `lpm_bits: u32` directly followed by a path.
///
/// # Safety
/// `bits` must be immediately followed by at least PREFIX_MAX_LEN bytes of the same
/// object (asserted for OpenInfo and PathEvent in agent-common).
#[inline(always)]
unsafe fn key_at(bits: &mut u32) -> &Key<[u8; PREFIX_MAX_LEN]> {
    *bits = (PREFIX_MAX_LEN * 8) as u32;
    unsafe { &*(bits as *const u32).cast::<Key<[u8; PREFIX_MAX_LEN]>>() }
}

/// Is the path after `bits` under a watched tree (and not excluded)? One LPM lookup
/// over its first PREFIX_MAX_LEN bytes.
#[inline(always)]
fn watched_at(bits: &mut u32) -> bool {
    // SAFETY: callers pass `lpm_bits` of an OpenInfo or PathEvent (see key_at).
    let key = unsafe { key_at(bits) };
    matches!(WATCH_PREFIXES.get(key), Some(v) if *v == WATCH_INCLUDE)
}

#[inline(always)]
fn watched(info: &mut OpenInfo) -> bool {
    watched_at(&mut info.lpm_bits)
}

/// Is the absolute path in `info` a sensitive file: by full path or tree (LPM), or by
/// base name anywhere (hash of the zero-padded last component)?
#[inline(always)]
pub(crate) fn sensitive(info: &mut OpenInfo) -> bool {
    let n = info.path_len as usize;
    if info.path[0] == b'/' {
        // SAFETY: see key_at.
        let key = unsafe { key_at(&mut info.lpm_bits) };
        if SENSITIVE_PREFIXES.get(key).is_some() {
            return true;
        }
    }
    let Some(name) = NAME_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch, ours for this run.
    let name = unsafe { &mut *name };
    // Find the last '/'. The running result is kept in map memory (`lpm_bits`, whose
    // key use is over), which the verifier does not track: both branches of each
    // iteration then reach the same state and are pruned. Kept in a register, every
    // possible value was explored separately, past the 1M-instruction limit.
    // Volatile, so LLVM cannot carry the value in a register instead.
    let slot: *mut u32 = &mut info.lpm_bits;
    // SAFETY: `slot` points into our per-CPU scratch value.
    unsafe { core::ptr::write_volatile(slot, 0) };
    for i in 0..PATH_MAX_LEN {
        if i >= n {
            break;
        }
        if info.path[i] == b'/' {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(slot, i as u32 + 1) };
        }
    }
    // SAFETY: as above.
    let start = (unsafe { core::ptr::read_volatile(slot) } as usize) & (PATH_MAX_LEN - 1);
    if n <= start || n - start >= NAME_MAX_LEN {
        return false;
    }
    // Zeroed first, then one helper copy of exactly the name: no data-dependent loop
    // (zeroing the tail in a loop took 6.1's verifier past its 1M-instruction
    // limit). The length goes through map memory and is masked right before the
    // call, so the verifier sees it bounded (LLVM otherwise hands the helper a
    // value derived another way, with no lower bound).
    *name = [0u8; NAME_MAX_LEN];
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(slot, (n - start) as u32) };
    // SAFETY: as above.
    let len = unsafe { core::ptr::read_volatile(slot) } & (NAME_MAX_LEN as u32 - 1);
    // SAFETY: probe read of `len` < NAME_MAX_LEN bytes into a buffer we own; the
    // source is our own map value.
    let r = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            name.as_mut_ptr().cast(),
            len,
            info.path.as_ptr().add(start).cast(),
        )
    };
    if r != 0 {
        return false;
    }
    // SAFETY: map lookup with a key of the map's size.
    unsafe { SENSITIVE_NAMES.get(&*name) }.is_some()
}

#[tracepoint]
pub fn sys_enter_creat(ctx: TracePointContext) -> u32 {
    // creat(pathname, mode) == open(pathname, O_CREAT|O_WRONLY|O_TRUNC, mode).
    let r = arg(&ctx, ARG0).and_then(|p| remember_open(AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC));
    if let Err(stat) = r {
        bump(stat);
    }
    0
}

#[tracepoint]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    // open(pathname, flags, mode).
    let r = arg(&ctx, ARG0).and_then(|p| remember_open(AT_FDCWD, p, arg(&ctx, ARG1)? as u32));
    if let Err(stat) = r {
        bump(stat);
    }
    0
}

#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_sys_enter_openat2(&ctx) {
        bump(stat);
    }
    0
}

/// A syscall tracepoint's u64 field at `off`: a direct load from the record (the
/// verifier allows aligned constant-offset reads of a tracepoint context), not a
/// bpf_probe_read_kernel helper call per argument.
#[inline(always)]
pub(crate) fn arg(ctx: &TracePointContext, off: usize) -> Result<u64, FileStat> {
    // SAFETY: offsets from the tracepoint format (stable ABI), 8-byte aligned, inside
    // the record.
    Ok(unsafe { core::ptr::read((ctx.as_ptr() as *const u8).add(off).cast::<u64>()) })
}

fn try_sys_enter_openat(ctx: &TracePointContext) -> Result<(), FileStat> {
    let flags = arg(ctx, ARG2)? as u32;
    remember_open(arg(ctx, ARG0)? as i32, arg(ctx, ARG1)?, flags)
}

fn try_sys_enter_openat2(ctx: &TracePointContext) -> Result<(), FileStat> {
    // struct open_how { u64 flags; u64 mode; u64 resolve; } in user memory.
    let how = arg(ctx, ARG2)?;
    // SAFETY: probe read of user memory.
    let flags: u64 =
        unsafe { bpf_probe_read_user(how as *const u64) }.map_err(|_| FileStat::PathReadError)?;
    remember_open(arg(ctx, ARG0)? as i32, arg(ctx, ARG1)?, flags as u32)
}

/// Is `uid` a web-server user (for the sensitive-read checks)?
#[inline(always)]
pub(crate) fn is_web_uid(uid: u32) -> bool {
    // SAFETY: plain lookup.
    unsafe { WEB_UIDS.get(&uid) }.is_some()
}

/// Enter-side filter: false when the path at user address `ptr` is absolute and
/// not under a watched tree, so there is nothing to remember for the exit. Any doubt
/// (unreadable yet, relative) is true and the exit decides, as it always did. Most
/// file activity on a host is outside the watched trees: this spares it the pending
/// map's insert and remove (measured in docs/src/benchmarks.md).
#[inline(always)]
fn may_be_watched(ptr: u64) -> bool {
    let Some(scratch) = PATH_SCRATCH.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: per-CPU scratch entry, exclusively ours for the duration of this program.
    let info = unsafe { &mut *scratch };
    // SAFETY: probe read of user memory into a buffer we own.
    let n = match unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, &mut info.path) } {
        Ok(s) => s.len(),
        Err(_) => return true,
    };
    n == 0 || info.path[0] != b'/' || watched(info)
}

/// Remember an open in flight if it is for writing (under a watched tree, or maybe),
/// or a read by a web-server user (a candidate sensitive read).
#[inline(always)]
fn remember_open(dirfd: i32, filename: u64, flags: u32) -> Result<(), FileStat> {
    let Some(pending) = open_to_remember(dirfd, filename, flags, true) else {
        return Ok(());
    };
    OPEN_PENDING
        .insert(&bpf_get_current_pid_tgid(), &pending, 0)
        .map_err(|_| FileStat::MapFull)
}

/// What the exit of an open needs from its arguments, if anything. `filter`: test
/// the typed name against the watched trees now (at the enter; the exit tests it
/// anyway, so a caller already at the exit passes false).
#[inline(always)]
pub(crate) fn open_to_remember(
    dirfd: i32,
    filename: u64,
    flags: u32,
    filter: bool,
) -> Option<PendingOpen> {
    if flags & WRITE_FLAGS == 0 {
        if !is_web_uid(bpf_get_current_uid_gid() as u32) {
            return None;
        }
    } else if kstruct::offsets().is_none() {
        if filter && !may_be_watched(filename) {
            // Without struct offsets the typed name is all there is to go on.
            return None;
        }
    } else if flags & (O_WRONLY | O_RDWR | O_CREAT) != 0 {
        // With them the exit reads what the open made of the file (its mode says
        // written or created): nothing to carry over, so no pending entry to insert
        // here and find and delete there (the in-flight map's operations were the
        // largest part of a write-open's cost; docs/src/benchmarks.md). Only a
        // read-only open with O_TRUNC, whose mode says neither, still needs one.
        return None;
    }
    Some(PendingOpen {
        filename,
        open_flags: flags,
        dirfd,
    })
}

fn try_sys_exit_openat(ctx: &TracePointContext) -> Result<(), FileStat> {
    let id = bpf_get_current_pid_tgid();
    let pending = OPEN_PENDING.get_ptr(&id).map(|p| {
        // SAFETY: value pointer from a successful lookup; copied before the remove.
        let p = unsafe { *p };
        let _ = OPEN_PENDING.remove(&id);
        p
    });
    exit_open(id, pending, arg(ctx, ARG0)? as i64)
}

/// The exit of an open (returned `ret`) by task `id`, with what its enter kept.
#[inline(always)]
pub(crate) fn exit_open(id: u64, pending: Option<PendingOpen>, ret: i64) -> Result<(), FileStat> {
    if ret < 0 {
        return Ok(());
    }
    let scratch = PATH_SCRATCH.get_ptr_mut(0).ok_or(FileStat::MapFull)?;
    // SAFETY: per-CPU scratch entry, exclusively ours for the duration of this program.
    let info = unsafe { &mut *scratch };
    let Some(pending) = pending else {
        // No entry: with struct offsets a write-open is told by the file it made
        // (see remember_open); anything else is none of the sensor's business.
        return opened_for_writing(id, ret as u32, info);
    };
    info.open_flags = pending.open_flags;
    info.dirfd = pending.dirfd;
    info.flags = 0;
    info.inode = 0;
    info.root = 0;
    let write = pending.open_flags & WRITE_FLAGS != 0;
    if write {
        // The file the kernel opened decides, not the name the process typed (which
        // is not even read: a name the writer unmaps in time cannot hide the write).
        let opened =
            kstruct::offsets().and_then(|o| Some((o, kstruct::current_file(o, ret as u32)?)));
        if let Some((o, f)) = opened {
            // An unreadable mode reads as not created, as it always did.
            let mode = kstruct::file_mode(o, f).unwrap_or(0);
            return start_session(o, f, mode, id, ret as u32, info);
        }
    }
    // The typed name: sensitive reads, and writes where the opened file cannot be
    // walked (no struct offsets). Read at exit: openat() has copied the name in, so
    // the page is resident.
    let n = unsafe { bpf_probe_read_user_str_bytes(pending.filename as *const u8, &mut info.path) }
        .map_err(|_| FileStat::PathReadError)?
        .len();
    info.path_len = n as u32;
    if n >= PATH_MAX_LEN - 1 {
        info.flags |= file_flags::TRUNCATED;
    }
    if !write {
        // A read by a web-server user (remember_open checked the uid).
        if sensitive(info) && !lsm_reported(ret as u32) {
            emit_file(
                EventKind::SensitiveRead,
                id,
                ret as i32,
                info,
                FileStat::SensitiveEmitted,
            )?;
        }
        return Ok(());
    }
    if info.path[0] != b'/' {
        // Relative to cwd or dirfd: userspace resolves it through /proc (see
        // docs/kernel.md).
        info.flags |= file_flags::RELATIVE;
    } else if !watched(info) {
        return Ok(());
    }
    track_write(id, ret as u32, info)
}

/// An open the entry kept nothing for: a write session if the kernel opened the file
/// for writing or created it (its `f_mode`), with the open flags told from that mode
/// (O_TRUNC is not in it: a read-only O_TRUNC open keeps its pending entry).
#[inline(always)]
fn opened_for_writing(id: u64, fd: u32, info: &mut OpenInfo) -> Result<(), FileStat> {
    let Some(o) = kstruct::offsets() else {
        return Ok(());
    };
    let Some(f) = kstruct::current_file(o, fd) else {
        return Ok(());
    };
    let mode = kstruct::file_mode(o, f).ok_or(FileStat::PathReadError)?;
    if mode & (FMODE_WRITE | FMODE_CREATED) == 0 {
        return Ok(());
    }
    let access = match (mode & FMODE_READ != 0, mode & FMODE_WRITE != 0) {
        (true, true) => O_RDWR,
        (_, true) => O_WRONLY,
        _ => 0,
    };
    let created = if mode & FMODE_CREATED != 0 {
        O_CREAT
    } else {
        0
    };
    info.open_flags = access | created;
    info.dirfd = AT_FDCWD;
    start_session(o, f, mode, id, fd, info)
}

/// A write session on `f` (opened with `mode`), bound to `fd`, when the file is in a
/// watched tree (`write_session` fills the rest of `info`).
#[inline(always)]
fn start_session(
    o: &KernelOffsets,
    f: u64,
    mode: u32,
    id: u64,
    fd: u32,
    info: &mut OpenInfo,
) -> Result<(), FileStat> {
    match write_session(o, f, mode, info) {
        Some(true) => track_write(id, fd, info),
        // Outside every watched tree, or excluded.
        Some(false) => Ok(()),
        None => Err(FileStat::PathReadError),
    }
}

/// A write-open of `f`: walk the opened file up to the watched roots and fill `info`
/// (its canonical path, RESOLVED/TRUNCATED/UNRESOLVED/CREATED, the inode) for a write
/// session. Some(false) when the file is outside every watched tree (or excluded),
/// None when the walk failed. `mode` is the file's `f_mode`, which every caller has
/// already read. Shared by the openat exit and the LSM file backend.
#[inline(always)]
pub(crate) fn write_session(
    o: &KernelOffsets,
    f: u64,
    mode: u32,
    info: &mut OpenInfo,
) -> Option<bool> {
    let w = kstruct::walk(
        o,
        f,
        ROOT_FILE,
        kstruct::Names::UnlessOutside,
        &mut info.path,
    )?;
    if w.verdict == WATCH_EXCLUDE || (w.complete && w.verdict != WATCH_INCLUDE) {
        return Some(false);
    }
    info.path_len = w.len;
    // The names below the root the walk found (the agent puts the root's path in
    // front: the one it watches, also when the writer reached the file through a
    // bind mount, a chroot or a mount namespace of its own).
    info.root = w.root_id;
    info.flags = file_flags::RESOLVED;
    if w.truncated {
        info.flags |= file_flags::TRUNCATED;
    }
    if !w.complete && w.verdict != WATCH_INCLUDE {
        // Deeper than the walk goes: membership unknown, reported as such.
        info.flags |= file_flags::UNRESOLVED;
        bump(FileStat::WalkTooDeep);
    }
    if mode & FMODE_CREATED != 0 {
        info.flags |= file_flags::CREATED;
    }
    info.inode = kstruct::file_inode(o, f).unwrap_or(0);
    Some(true)
}

/// Did the LSM file_open hook already report (and, enforcing, deny) this open? It
/// does for the files it knows by identity, wherever it is attached.
#[inline(always)]
fn lsm_reported(fd: u32) -> bool {
    if SENSITIVE_MODE.get(sensitive::LSM_ATTACHED).copied() != Some(1) {
        return false;
    }
    let Some(o) = kstruct::offsets() else {
        return false;
    };
    kstruct::current_file(o, fd)
        .and_then(|f| kstruct::root_key(o, f))
        // SAFETY: plain lookup.
        .is_some_and(|k| unsafe { SENSITIVE_INODES.get(&[k.dev as u64, k.ino]) }.is_some())
}

/// Bind a write session on a watched file to its fd, for the close.
#[inline(always)]
fn track_write(id: u64, fd: u32, info: &OpenInfo) -> Result<(), FileStat> {
    let key = OpenKey {
        tgid: (id >> 32) as u32,
        fd,
    };
    // A session already on this fd belongs to a file the fd no longer holds (the
    // kernel gave this open a free fd): closed without a close(2) that ended it
    // (close_range, exec's close-on-exec, a close whose exit another thread's open
    // overtook). Its write is reported now, before the new session replaces it.
    match OPEN_WRITES.insert(&key, info, BPF_NOEXIST) {
        Ok(()) => {}
        Err(e) if i64::from(e) == EEXIST => {
            if let Some(old) = OPEN_WRITES.get_ptr(&key) {
                bump(FileStat::ClosedUnseen);
                // SAFETY: live map value.
                let _ = end_entry(id, key, unsafe { &*old });
            }
            OPEN_WRITES
                .insert(&key, info, 0)
                .map_err(|_| FileStat::MapFull)?;
        }
        Err(_) => return Err(FileStat::MapFull),
    }
    // Not atomic (this target has no atomic add in core): threads of one process
    // racing here can lose a count, so an exit may go unreported and be left to the
    // sweep, or be reported with nothing left to end.
    match WRITERS.get_ptr_mut(&key.tgid) {
        // SAFETY: live map value.
        Some(n) => unsafe { *n += 1 },
        None => {
            let _ = WRITERS.insert(&key.tgid, &1u64, 0);
        }
    }
    Ok(())
}

fn try_sys_enter_close(ctx: &TracePointContext) -> Result<(), FileStat> {
    end_session(bpf_get_current_pid_tgid(), arg(ctx, ARG0)?, Seen::Enter)
}

/// Where a session's end is seen, which decides whether the fd still tells.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// close(2)'s enter tracepoint: the fd still holds the session's file.
    Enter,
    /// The exit of a close or a dup2/dup3 onto the fd (the `sys_exit` program): the
    /// fd is free or holds another file, and another thread of the process may
    /// already have opened a file on it, whose exit replaced the session.
    Exit,
}

/// The session on `fd` of task `id`'s process ends (its fd was closed), if one is
/// tracked. Seen at an exit, it stays when the fd holds the session's inode again:
/// it is then that newer open's (or the same file's again, ended by its own close,
/// or the fd dup'ed onto itself).
#[inline(always)]
pub(crate) fn end_session(id: u64, fd: u64, seen: Seen) -> Result<(), FileStat> {
    let key = OpenKey {
        tgid: (id >> 32) as u32,
        fd: fd as u32,
    };
    let Some(info) = OPEN_WRITES.get_ptr(&key) else {
        return Ok(());
    };
    // SAFETY: live map value.
    let info = unsafe { &*info };
    if seen == Seen::Exit
        && info.inode != 0
        && kstruct::offsets()
            .and_then(|o| kstruct::file_inode(o, kstruct::current_file(o, fd as u32)?))
            == Some(info.inode)
    {
        return Ok(());
    }
    end_entry(id, key, info)
}

/// Session `info` (the live entry at `key`) ends: its write-close event, and the
/// entry is removed (or moved aside while a shared mapping can still write).
#[inline(always)]
fn end_entry(id: u64, key: OpenKey, info: &OpenInfo) -> Result<(), FileStat> {
    let res = emit_file(
        EventKind::FileWriteClose,
        id,
        key.fd as i32,
        info,
        FileStat::Emitted,
    );
    if info.flags & file_flags::MAPPED != 0 {
        // A shared mapping outlives the fd and can still change the file: the
        // session moves aside (still counted in WRITERS) for the exit to end again.
        let kept = OpenKey {
            tgid: key.tgid,
            fd: key.fd | MAPPED_FD,
        };
        // The insert copies the live value before the remove frees it.
        let _ = OPEN_WRITES.insert(&kept, info, 0);
        let _ = OPEN_WRITES.remove(&key);
        return res;
    }
    let _ = OPEN_WRITES.remove(&key);
    if let Some(n) = WRITERS.get_ptr_mut(&key.tgid) {
        // SAFETY: live map value (see track_write). Left at zero, not removed: a
        // process writing many files (tar, cp, an upload handler) would otherwise
        // insert and delete its entry once a file; the exit removes it.
        unsafe { *n = (*n).saturating_sub(1) };
    }
    res
}

/// fstatfs(fd, buf), attached only while the agent learns: the agent fstatfs'es
/// each root and interpreter it opened, having said in `RAMPART_LEARN` what the file
/// is; calls by any other process are ignored. The file's identity is taken as the
/// other programs will read it (see `kstruct::learn_root`,
/// `exec::learn_interpreter`), and `learned` counts each success.
#[tracepoint]
pub fn rampart_learn_root(ctx: TracePointContext) -> u32 {
    let (Ok(fd), Some(o), Some(cfg)) = (arg(&ctx, ARG0), kstruct::offsets(), LEARN.get_ptr_mut(0))
    else {
        return 0;
    };
    // SAFETY: the one entry of an array map.
    let cfg = unsafe { &mut *cfg };
    if cfg.tgid != (bpf_get_current_pid_tgid() >> 32) as u32 {
        return 0;
    }
    let Some(f) = kstruct::current_file(o, fd as u32) else {
        return 0;
    };
    let ok = match cfg.kind {
        learn_kind::ROOT => kstruct::learn_root(o, f, cfg.bits, cfg.root_id),
        learn_kind::INTERPRETER => crate::exec::learn_interpreter(o, f),
        _ => None,
    };
    if ok.is_some() {
        cfg.learned += 1;
    }
    0
}

/// mmap(addr, len, prot, flags, fd, off): a shared mapping of a write session's
/// fd marks the session, so its close keeps it for the exit (see
/// `end_entry`). Shared whatever `prot` says: mprotect can add write later.
#[tracepoint]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    if let (Ok(flags), Ok(fd)) = (arg(&ctx, ARG3), arg(&ctx, ARG4)) {
        mapped(flags, fd as i64);
    }
    0
}

/// An mmap of `fd` with `flags` by the current task: a shared mapping of a write
/// session's fd marks the session.
#[inline(always)]
pub(crate) fn mapped(flags: u64, fd: i64) {
    const MAP_SHARED: u64 = 0x1; // also set in MAP_SHARED_VALIDATE (0x3)
    if flags & MAP_SHARED == 0 || fd < 0 {
        return;
    }
    let key = OpenKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        fd: fd as u32,
    };
    if let Some(info) = OPEN_WRITES.get_ptr_mut(&key) {
        // SAFETY: live map value.
        unsafe { (*info).flags |= file_flags::MAPPED };
    }
}

/// `sched:sched_process_exit` of a group leader that still has write sessions: its
/// exit closes them without close(2), so the agent is told to end them.
#[tracepoint]
pub fn rampart_file_exit(_ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if id as u32 != tgid {
        return 0;
    }
    // SAFETY: plain lookup. An entry at zero is a writer whose sessions all closed.
    let Some(open) = (unsafe { WRITERS.get(&tgid) }).copied() else {
        return 0;
    };
    let _ = WRITERS.remove(&tgid);
    if open == 0 {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<ExitEvent>(0) else {
        bump(FileStat::RingbufFull);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let ug = bpf_get_current_uid_gid();
    // SAFETY: reserved ring buffer memory of size_of::<ExitEvent>(); every field written.
    unsafe {
        (*ev).header = EventHeader {
            kind: EventKind::WriterExit as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: core::mem::size_of::<ExitEvent>() as u32,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*ev).pid = id as u32;
        (*ev).tgid = tgid;
        (*ev).uid = ug as u32;
        (*ev).gid = (ug >> 32) as u32;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
    }
    entry.submit(0);
    0
}

fn emit_file(
    kind: EventKind,
    id: u64,
    fd: i32,
    info: &OpenInfo,
    counter: FileStat,
) -> Result<(), FileStat> {
    let who = Writer {
        pid_tgid: id,
        uid_gid: bpf_get_current_uid_gid(),
        comm: bpf_get_current_comm().unwrap_or([0u8; 16]),
    };
    emit_file_as(kind, &who, fd, info, counter)
}

/// Emit a file event for `who` (the writer, which is not always the current task:
/// the LSM backend ends a session where its file's last reference is dropped).
#[inline(always)]
pub(crate) fn emit_file_as(
    kind: EventKind,
    who: &Writer,
    fd: i32,
    info: &OpenInfo,
    counter: FileStat,
) -> Result<(), FileStat> {
    let id = who.pid_tgid;
    // The inode kept from the open when there is one (five reads), else the fd's
    // file looked up again (eleven).
    let meta = kstruct::offsets().and_then(|o| match info.inode {
        0 => kstruct::current_file(o, fd as u32).and_then(|f| kstruct::inode_meta(o, f)),
        inode => kstruct::of_inode(o, inode),
    });
    let Some(mut entry) = EVENTS.reserve::<FileEvent>(0) else {
        return Err(FileStat::RingbufFull);
    };
    let ev = entry.as_mut_ptr();
    let uid_gid = who.uid_gid;
    // SAFETY: `ev` points at reserved ring buffer memory of size_of::<FileEvent>();
    // `info` at a live map value.
    unsafe {
        (*ev).header = EventHeader {
            kind: kind as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: core::mem::size_of::<FileEvent>() as u32,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*ev).pid = id as u32;
        (*ev).tgid = (id >> 32) as u32;
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).open_flags = info.open_flags;
        (*ev).fd = fd;
        (*ev).dirfd = info.dirfd;
        (*ev).flags = info.flags;
        match &meta {
            Some(m) => {
                (*ev).flags |= file_flags::META;
                (*ev).ino = m.ino;
                (*ev).size = m.size;
                (*ev).dev = m.dev;
                (*ev).mode = m.mode;
            }
            None => {
                (*ev).ino = 0;
                (*ev).size = 0;
                (*ev).dev = 0;
                (*ev).mode = 0;
            }
        }
        (*ev).comm = who.comm;
        (*ev).path_len = info.path_len;
        (*ev).root = info.root;
        (*ev).path = info.path;
    }
    // Wakeups: the ring's default wakes the reader only for a record submitted
    // when it had caught up (the first of a batch); the reader then waits
    // BATCH_DELAY_MS and drains the lot. Never forced: a forced wakeup is an
    // irq_work, a self-IPI (a VM exit under a hypervisor) per record, and the
    // reader is asleep in its batching delay, not waiting on the ring, anyway.
    entry.submit(0);
    bump(counter);
    Ok(())
}

// ---- unlink / rename / chmod ---------------------------------------------------

#[inline(always)]
fn remember_path(p: PendingPath) -> u32 {
    // fchmod names an fd, not a path. A rename or link is kept whatever its names:
    // a new name outside the trees as typed can still reach one through a symlink or
    // `..` (the exit marks it SPELLED2 for userspace to resolve).
    // The same for a truncate (new content by name) and a chmod to executable;
    // unlinks stay filtered by name (a removal adds nothing to scan).
    let skip = match p.op {
        path_op::UNLINK => !may_be_watched(p.ptr),
        _ => false,
    };
    if skip {
        return 0;
    }
    if PATH_PENDING
        .insert(&bpf_get_current_pid_tgid(), &p, 0)
        .is_err()
    {
        bump(FileStat::MapFull);
    }
    0
}

#[inline(always)]
pub(crate) fn pending(
    op: u32,
    dirfd: i32,
    ptr: u64,
    dirfd2: i32,
    ptr2: u64,
    mode: u32,
) -> PendingPath {
    PendingPath {
        op,
        mode,
        dirfd,
        dirfd2,
        ptr,
        ptr2,
    }
}

/// unlinkat(dfd, pathname, flag)
#[tracepoint]
pub fn sys_enter_unlinkat(ctx: TracePointContext) -> u32 {
    match (arg(&ctx, ARG0), arg(&ctx, ARG1)) {
        (Ok(dfd), Ok(p)) => remember_path(pending(path_op::UNLINK, dfd as i32, p, 0, 0, 0)),
        _ => 0,
    }
}

/// unlink(pathname)
#[tracepoint]
pub fn sys_enter_unlink(ctx: TracePointContext) -> u32 {
    match arg(&ctx, ARG0) {
        Ok(p) => remember_path(pending(path_op::UNLINK, AT_FDCWD, p, 0, 0, 0)),
        Err(_) => 0,
    }
}

/// The calls naming (olddfd, oldname, newdfd, newname): renameat, renameat2, linkat.
#[inline(always)]
fn remember_name_pair(ctx: &TracePointContext, op: u32, mode: u32) -> u32 {
    match (
        arg(ctx, ARG0),
        arg(ctx, ARG1),
        arg(ctx, ARG2),
        arg(ctx, ARG3),
    ) {
        (Ok(d1), Ok(p1), Ok(d2), Ok(p2)) => {
            remember_path(pending(op, d1 as i32, p1, d2 as i32, p2, mode))
        }
        _ => 0,
    }
}

/// renameat(olddfd, oldname, newdfd, newname)
#[tracepoint]
pub fn sys_enter_renameat(ctx: TracePointContext) -> u32 {
    remember_name_pair(&ctx, path_op::RENAME, 0)
}

/// renameat2(olddfd, oldname, newdfd, newname, flags): the flags travel in `mode`
/// (RENAME_EXCHANGE swaps the names: both get scanned).
#[tracepoint]
pub fn sys_enter_renameat2(ctx: TracePointContext) -> u32 {
    match arg(&ctx, ARG4) {
        Ok(flags) => remember_name_pair(&ctx, path_op::RENAME, flags as u32),
        Err(_) => 0,
    }
}

/// linkat(olddfd, oldname, newdfd, newname, flags)
#[tracepoint]
pub fn sys_enter_linkat(ctx: TracePointContext) -> u32 {
    remember_name_pair(&ctx, path_op::LINK, 0)
}

/// link(oldname, newname)
#[tracepoint]
pub fn sys_enter_link(ctx: TracePointContext) -> u32 {
    match (arg(&ctx, ARG0), arg(&ctx, ARG1)) {
        (Ok(p1), Ok(p2)) => remember_path(pending(path_op::LINK, AT_FDCWD, p1, AT_FDCWD, p2, 0)),
        _ => 0,
    }
}

/// rename(oldname, newname)
#[tracepoint]
pub fn sys_enter_rename(ctx: TracePointContext) -> u32 {
    match (arg(&ctx, ARG0), arg(&ctx, ARG1)) {
        (Ok(p1), Ok(p2)) => remember_path(pending(path_op::RENAME, AT_FDCWD, p1, AT_FDCWD, p2, 0)),
        _ => 0,
    }
}

/// truncate(path, length): content changed by name, no write session.
#[tracepoint]
pub fn sys_enter_truncate(ctx: TracePointContext) -> u32 {
    match arg(&ctx, ARG0) {
        Ok(p) => remember_path(pending(path_op::TRUNCATE, AT_FDCWD, p, 0, 0, 0)),
        Err(_) => 0,
    }
}

/// fchmodat(dfd, filename, mode) and fchmodat2(..., flags): only to executable.
#[tracepoint]
pub fn sys_enter_fchmodat(ctx: TracePointContext) -> u32 {
    match (arg(&ctx, ARG0), arg(&ctx, ARG1), arg(&ctx, ARG2)) {
        (Ok(d), Ok(p), Ok(m)) if m as u32 & EXEC_BITS != 0 => {
            remember_path(pending(path_op::CHMOD, d as i32, p, 0, 0, m as u32))
        }
        _ => 0,
    }
}

/// chmod(filename, mode)
#[tracepoint]
pub fn sys_enter_chmod(ctx: TracePointContext) -> u32 {
    match (arg(&ctx, ARG0), arg(&ctx, ARG1)) {
        (Ok(p), Ok(m)) if m as u32 & EXEC_BITS != 0 => {
            remember_path(pending(path_op::CHMOD, AT_FDCWD, p, 0, 0, m as u32))
        }
        _ => 0,
    }
}

/// fchmod(fd, mode): reported when the fd is a tracked write session (a dropper
/// writing a file, then making it executable before closing it).
#[tracepoint]
pub fn sys_enter_fchmod(ctx: TracePointContext) -> u32 {
    match (arg(&ctx, ARG0), arg(&ctx, ARG1)) {
        (Ok(fd), Ok(m)) if m as u32 & EXEC_BITS != 0 => {
            remember_path(pending(path_op::FCHMOD, 0, fd, 0, 0, m as u32))
        }
        _ => 0,
    }
}

/// Exit of every unlink/rename/chmod syscall: on success, read the path(s) and
/// report if either is watched.
#[tracepoint]
pub fn sys_exit_path(ctx: TracePointContext) -> u32 {
    if let Err(stat) = try_sys_exit_path(&ctx) {
        bump(stat);
    }
    0
}

/// A rename or link is always reported. After its two names are read into `ev`
/// (RELATIVE/RELATIVE2 set): SPELLED2 when neither is in a tree as typed (an
/// absolute name outside every tree can still reach one through a symlink or `..`:
/// userspace resolves it). Relative names go to userspace, which resolves them. A
/// link is about its new name only (the old one may be empty: an O_TMPFILE fd).
#[inline(always)]
fn spell_two_names(op: u32, ev: &mut PathEvent) {
    let hit = (op != path_op::LINK
        && (ev.flags & file_flags::RELATIVE != 0 || watched_at(&mut ev.lpm_bits)))
        || ev.flags & file_flags::RELATIVE2 != 0
        || watched_at(&mut ev.lpm_bits2);
    if !hit {
        ev.flags |= file_flags::SPELLED2;
    }
}

/// `ev`'s header (`kind`, now) and the calling task `id` with its identity.
#[inline(always)]
fn stamp_path_event(ev: &mut PathEvent, kind: EventKind, id: u64) {
    let ug = bpf_get_current_uid_gid();
    ev.header = EventHeader {
        kind: kind as u16,
        version: EVENT_VERSION,
        _pad: 0,
        len: core::mem::size_of::<PathEvent>() as u32,
        // SAFETY: plain helper call.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    };
    ev.pid = id as u32;
    ev.tgid = (id >> 32) as u32;
    ev.uid = ug as u32;
    ev.gid = (ug >> 32) as u32;
    ev.comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
}

/// Read a user path into `dst`; returns its length and sets flag bits.
#[inline(always)]
fn read_path(
    ptr: u64,
    dst: &mut [u8; PATH_MAX_LEN],
    relative: u32,
    truncated: u32,
    flags: &mut u32,
) -> Result<u32, FileStat> {
    // SAFETY: probe read of user memory into a buffer we own.
    let n = unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, dst) }
        .map_err(|_| FileStat::PathReadError)?
        .len();
    name_flags(n, dst, relative, truncated, flags);
    Ok(n as u32)
}

fn try_sys_exit_path(ctx: &TracePointContext) -> Result<(), FileStat> {
    let id = bpf_get_current_pid_tgid();
    let Some(p) = PATH_PENDING.get_ptr(&id) else {
        return Ok(());
    };
    // SAFETY: value pointer from a successful lookup; copied before the remove.
    let p = unsafe { *p };
    let _ = PATH_PENDING.remove(&id);
    exit_path(id, &p, arg(ctx, ARG0)? as i64)
}

/// The exit of a path operation `p` (returned `ret`) by task `id`: on success, read
/// the name(s) and report if either is watched.
#[inline(always)]
pub(crate) fn exit_path(id: u64, p: &PendingPath, ret: i64) -> Result<(), FileStat> {
    if ret != 0 {
        return Ok(());
    }
    let scratch = PATH_EVENT_SCRATCH.get_ptr_mut(0).ok_or(FileStat::MapFull)?;
    // SAFETY: per-CPU scratch, exclusively ours for this run.
    let ev = unsafe { &mut *scratch };
    ev.flags = 0;
    ev.mode = p.mode;
    ev.dirfd = p.dirfd;
    ev.dirfd2 = p.dirfd2;
    ev.path2_len = 0;
    ev.path2[0] = 0;
    ev.root = 0;
    let kind = match p.op {
        path_op::UNLINK => EventKind::FileUnlink,
        path_op::RENAME => EventKind::FileRename,
        path_op::LINK => EventKind::FileLink,
        path_op::TRUNCATE => EventKind::FileTruncate,
        _ => EventKind::FileChmod,
    };
    let interesting = if p.op == path_op::FCHMOD {
        // The path of a tracked write session on that fd (already known watched).
        let key = OpenKey {
            tgid: (id >> 32) as u32,
            fd: p.ptr as u32,
        };
        let Some(info) = OPEN_WRITES.get_ptr(&key) else {
            return Ok(());
        };
        // SAFETY: live map value.
        let info = unsafe { &*info };
        ev.path = info.path;
        ev.path_len = info.path_len;
        ev.root = info.root;
        ev.flags = info.flags & (file_flags::RELATIVE | file_flags::TRUNCATED);
        ev.dirfd = info.dirfd;
        true
    } else {
        ev.path_len = match read_path(
            p.ptr,
            &mut ev.path,
            file_flags::RELATIVE,
            file_flags::TRUNCATED,
            &mut ev.flags,
        ) {
            Ok(n) => n,
            // A link's old name is only context (linkat of an fd may pass none).
            Err(_) if p.op == path_op::LINK => {
                ev.path[0] = 0;
                0
            }
            Err(e) => return Err(e),
        };
        if p.op == path_op::RENAME || p.op == path_op::LINK {
            ev.path2_len = read_path(
                p.ptr2,
                &mut ev.path2,
                file_flags::RELATIVE2,
                file_flags::TRUNCATED2,
                &mut ev.flags,
            )?;
            spell_two_names(p.op, ev);
            true
        } else {
            // Relative paths go to userspace, which resolves and filters them.
            let hit = ev.flags & file_flags::RELATIVE != 0 || watched_at(&mut ev.lpm_bits);
            if !hit && p.op != path_op::UNLINK {
                // A truncate or chmod +x by an absolute name outside every tree as
                // typed: resolved in userspace like a rename's new name.
                ev.flags |= file_flags::SPELLED;
            }
            hit || p.op != path_op::UNLINK
        }
    };
    if !interesting {
        return Ok(());
    }
    stamp_path_event(ev, kind, id);
    EVENTS
        .output::<PathEvent>(&*ev, 0)
        .map_err(|_| FileStat::RingbufFull)?;
    bump(FileStat::PathEmitted);
    Ok(())
}
