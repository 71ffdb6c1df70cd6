// SPDX-License-Identifier: GPL-2.0-only
//! File sensor on syscall tracepoints (BPF-LSM and fentry are refused on the kernels
//! we must support; see docs/kernel.md). One event per open-for-write session:
//! sys_enter_openat remembers write-opens (flags, filename pointer); sys_exit_openat
//! reads the path, keeps it if it is under a watched tree (or relative, which
//! userspace resolves) and binds it to the returned fd; and
//! sys_enter_close emits the event.
//!
//! Error policy: on our own errors we emit nothing and count why; the syscall is
//! never affected (tracepoints cannot deny).

use agent_common::{
    file_flags, EventHeader, EventKind, FileEvent, FileStat, OpenInfo, OpenKey, PendingOpen,
    EVENT_VERSION, MAX_WATCH_PREFIXES, PATH_MAX_LEN, PREFIX_MAX_LEN, WATCH_INCLUDE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_user_str_bytes,
    },
    macros::{map, tracepoint},
    maps::{lpm_trie::Key, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};

/// Events to userspace. Real size set at load from `sensors.ringbuf_bytes`.
#[map(name = "RAMPART_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Watched trees ("/var/www/" as a 72-bit prefix), written by the agent at start.
/// Longest prefix wins, so an exclusion inside a watched tree takes effect.
#[map(name = "RAMPART_WATCH_PREFIXES")]
static WATCH_PREFIXES: LpmTrie<[u8; PREFIX_MAX_LEN], u32> =
    LpmTrie::with_max_entries(MAX_WATCH_PREFIXES, 0);

/// openat() for writing in flight: pid_tgid -> filename pointer and flags.
#[map(name = "RAMPART_OPEN_PENDING")]
static OPEN_PENDING: HashMap<u64, PendingOpen> = HashMap::with_max_entries(1, 0);

/// Open-for-write sessions: (tgid, fd) -> path. LRU so fds closed by exit() cannot leak it full.
#[map(name = "RAMPART_OPEN_WRITES")]
static OPEN_WRITES: LruHashMap<OpenKey, OpenInfo> = LruHashMap::with_max_entries(1, 0);

/// Per-CPU counters indexed by `FileStat`.
#[map(name = "RAMPART_FILE_STATS_TOTAL")]
static FILE_STATS_TOTAL: PerCpuArray<u64> = PerCpuArray::with_max_entries(FileStat::COUNT, 0);

/// Scratch buffer: an OpenInfo is too large for the 512-byte BPF stack.
#[map(name = "RAMPART_PATH_SCRATCH")]
static PATH_SCRATCH: PerCpuArray<OpenInfo> = PerCpuArray::with_max_entries(1, 0);

// bpf_ringbuf_query / submit flags (include/uapi/linux/bpf.h).
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
/// Pending bytes that wake the reader (≈200 file events).
const WAKEUP_BYTES: u64 = 64 * 1024;

const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const WRITE_FLAGS: u32 = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC;

// Offsets from /sys/kernel/tracing/events/syscalls/*/format (stable ABI).
const ARG0: usize = 16;
const ARG1: usize = 24;
const ARG2: usize = 32;

#[inline(always)]
fn bump(stat: FileStat) {
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

/// Is the path in `info` under a watched tree? One LPM lookup over its first
/// PREFIX_MAX_LEN bytes; `lpm_bits` + `path` form the key in place.
#[inline(always)]
fn watched(info: &mut OpenInfo) -> bool {
    info.lpm_bits = (PREFIX_MAX_LEN * 8) as u32;
    // SAFETY: OpenInfo is repr(C) with `path` right after `lpm_bits` (asserted in
    // agent-common), so these 4 + PREFIX_MAX_LEN bytes are a valid packed Key.
    let key = unsafe { &*(&info.lpm_bits as *const u32).cast::<Key<[u8; PREFIX_MAX_LEN]>>() };
    matches!(WATCH_PREFIXES.get(key), Some(v) if *v == WATCH_INCLUDE)
}

fn try_sys_enter_openat(ctx: &TracePointContext) -> Result<(), FileStat> {
    // SAFETY: offsets from the tracepoint format.
    let flags: u64 = unsafe { ctx.read_at(ARG2) }.map_err(|_| FileStat::PathReadError)?;
    let flags = flags as u32;
    if flags & WRITE_FLAGS == 0 {
        return Ok(());
    }
    let dirfd: u64 = unsafe { ctx.read_at(ARG0) }.map_err(|_| FileStat::PathReadError)?;
    let filename: u64 = unsafe { ctx.read_at(ARG1) }.map_err(|_| FileStat::PathReadError)?;
    let pending = PendingOpen {
        filename,
        open_flags: flags,
        dirfd: dirfd as i32,
    };
    OPEN_PENDING
        .insert(&bpf_get_current_pid_tgid(), &pending, 0)
        .map_err(|_| FileStat::MapFull)
}

fn try_sys_exit_openat(ctx: &TracePointContext) -> Result<(), FileStat> {
    let id = bpf_get_current_pid_tgid();
    let Some(pending) = OPEN_PENDING.get_ptr(&id) else {
        return Ok(());
    };
    // SAFETY: value pointer from a successful lookup; copied before the remove.
    let pending = unsafe { *pending };
    let _ = OPEN_PENDING.remove(&id);
    let ret: i64 = unsafe { ctx.read_at(ARG0) }.unwrap_or(-1);
    if ret < 0 {
        return Ok(());
    }
    let scratch = PATH_SCRATCH.get_ptr_mut(0).ok_or(FileStat::MapFull)?;
    // SAFETY: per-CPU scratch entry, exclusively ours for the duration of this program.
    let info = unsafe { &mut *scratch };
    // Read at exit: openat() has copied the name in, so the page is resident.
    let n = unsafe { bpf_probe_read_user_str_bytes(pending.filename as *const u8, &mut info.path) }
        .map_err(|_| FileStat::PathReadError)?
        .len();
    info.path_len = n as u32;
    info.open_flags = pending.open_flags;
    info.dirfd = pending.dirfd;
    info.flags = 0;
    if n >= PATH_MAX_LEN - 1 {
        info.flags |= file_flags::TRUNCATED;
    }
    if info.path[0] != b'/' {
        // Relative to cwd or dirfd: the kernel cannot resolve it without walking
        // task structs, so userspace does (see docs/kernel.md).
        info.flags |= file_flags::RELATIVE;
    } else if !watched(info) {
        return Ok(());
    }
    let key = OpenKey {
        tgid: (id >> 32) as u32,
        fd: ret as u32,
    };
    OPEN_WRITES
        .insert(&key, &*info, 0)
        .map_err(|_| FileStat::MapFull)
}

fn try_sys_enter_close(ctx: &TracePointContext) -> Result<(), FileStat> {
    let id = bpf_get_current_pid_tgid();
    let fd: u64 = unsafe { ctx.read_at(ARG0) }.map_err(|_| FileStat::PathReadError)?;
    let key = OpenKey {
        tgid: (id >> 32) as u32,
        fd: fd as u32,
    };
    let Some(info) = OPEN_WRITES.get_ptr(&key) else {
        return Ok(());
    };
    let res = emit(id, fd as i32, info);
    let _ = OPEN_WRITES.remove(&key);
    res
}

fn emit(id: u64, fd: i32, info: *const OpenInfo) -> Result<(), FileStat> {
    let Some(mut entry) = EVENTS.reserve::<FileEvent>(0) else {
        return Err(FileStat::RingbufFull);
    };
    let ev = entry.as_mut_ptr();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: `ev` points at reserved ring buffer memory of size_of::<FileEvent>();
    // `info` at a live map value.
    unsafe {
        (*ev).header = EventHeader {
            kind: EventKind::FileWriteClose as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: core::mem::size_of::<FileEvent>() as u32,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*ev).pid = id as u32;
        (*ev).tgid = (id >> 32) as u32;
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).open_flags = (*info).open_flags;
        (*ev).fd = fd;
        (*ev).dirfd = (*info).dirfd;
        (*ev).flags = (*info).flags;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
        (*ev).path_len = (*info).path_len;
        (*ev)._pad = 0;
        (*ev).path = (*info).path;
    }
    // Adaptive wakeup: file events come in bursts, and waking the reader for each one
    // costs a context switch per event. Wake it only once WAKEUP_BYTES are pending;
    // the agent drains the ring on a short timer too, so a lone event waits at most
    // that long.
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags);
    bump(FileStat::Emitted);
    Ok(())
}
