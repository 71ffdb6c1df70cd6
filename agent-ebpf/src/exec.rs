// SPDX-License-Identifier: GPL-2.0-only
//! Exec sensor on `sched_process_exec`: the new image is loaded, its first
//! instruction has not run. With BTF (the raw tracepoint `rampart_exec`), the file
//! the kernel is about to run (`bprm->file`) is walked up to its real path and
//! matched against the world-writable roots by identity, so `//tmp/x`,
//! `/tmp/../tmp/x`, symlinks and `./x` resolve by construction; an image with no
//! name (memfd, deleted) or run by fd is flagged. An interpreter (by inode, or the
//! image a `#!` line named) is followed to its script: the first of its read-opens
//! that names one of its arguments is walked and matched the same way, before the
//! interpreter has read a byte of it. Without BTF, the typed name from the
//! tracepoint record is all there is (`sched_process_exec`).
//!
//! An exec (or script) from a world-writable tree by a process in scope is
//! reported; when enforcing, it is killed with SIGKILL here (Tetragon's way), so not
//! one line of it runs.
//!
//! Error policy: on our own errors nothing is killed (fail open) and nothing emitted.

use agent_common::{
    egress::{mode, Decision},
    exec::{
        flags as exec_flags, ExecConfig, ExecEvent, ExecStat, ScriptWatch, ARGS_MAX_LEN,
        FNV_OFFSET, FNV_PRIME, MAX_SCRIPT_ARGS, SCRIPT_OPEN_BUDGET,
    },
    EventHeader, EventKind, KernelOffsets, OpenInfo, RootKey, EVENT_VERSION, PATH_MAX_LEN,
    PREFIX_MAX_LEN, ROOT_EXEC, WATCH_INCLUDE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_str_bytes, bpf_send_signal, generated,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
    programs::{RawTracePointContext, TracePointContext},
    EbpfContext,
};

use crate::{file, file::EVENTS, kstruct};

#[map(name = "RAMPART_EXEC_CONFIG")]
static EXEC_CONFIG: Array<ExecConfig> = Array::with_max_entries(1, 0);
/// Cgroup ids in scope (when `scoped`).
#[map(name = "RAMPART_EXEC_SCOPE")]
static EXEC_SCOPE: HashMap<u64, u32> = HashMap::with_max_entries(64, 0);
/// World-writable trees ("/tmp/" as a 40-bit prefix), like the watch trie.
#[map(name = "RAMPART_EXEC_DENY_PREFIXES")]
static EXEC_DENY_PREFIXES: LpmTrie<[u8; PREFIX_MAX_LEN], u32> = LpmTrie::with_max_entries(64, 0);
#[map(name = "RAMPART_EXEC_STATS_TOTAL")]
static EXEC_STATS_TOTAL: PerCpuArray<u64> = PerCpuArray::with_max_entries(ExecStat::COUNT, 0);
#[map(name = "RAMPART_EXEC_SCRATCH")]
static EXEC_SCRATCH: PerCpuArray<OpenInfo> = PerCpuArray::with_max_entries(1, 0);
/// Interpreters by identity, written by the agent at start.
#[map(name = "RAMPART_INTERPRETERS")]
static INTERPRETERS: HashMap<RootKey, u32> = HashMap::with_max_entries(128, 0);
/// Freshly exec'd interpreters (tgid) and the hashes of their argv. LRU: one that
/// never opens its budget's worth of files cannot fill it. Sized at load.
#[map(name = "RAMPART_SCRIPT_WATCH")]
static SCRIPT_WATCH: LruHashMap<u32, ScriptWatch> = LruHashMap::with_max_entries(1, 0);

/// An exec's argv while it is hashed.
#[repr(C)]
pub struct ArgvScratch {
    watch: ScriptWatch,
    buf: [u8; ARGS_MAX_LEN],
}
#[map(name = "RAMPART_ARGV_SCRATCH")]
static ARGV_SCRATCH: PerCpuArray<ArgvScratch> = PerCpuArray::with_max_entries(1, 0);

/// The kernel's name of an exec by fd (`execveat(fd, "", AT_EMPTY_PATH)`).
const DEV_FD: [u8; 8] = *b"/dev/fd/";

const SIGKILL: u32 = 9;
/// Offset of `__data_loc char[] filename` in the tracepoint record (format file).
const FILENAME_LOC: usize = 8;

#[inline(always)]
fn bump(s: ExecStat) {
    if let Some(c) = EXEC_STATS_TOTAL.get_ptr_mut(s as u32) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let _ = try_sched_process_exec(&ctx);
    0
}

fn try_sched_process_exec(ctx: &TracePointContext) -> Result<(), ()> {
    // __data_loc: low 16 bits = offset of the string in the record.
    // SAFETY: offset from the tracepoint format.
    let loc: u32 = unsafe { ctx.read_at(FILENAME_LOC) }.map_err(|_| ())?;
    let src = (ctx.as_ptr() as usize + (loc & 0xffff) as usize) as *const u8;
    enforce(exec_decision(Image::Typed(src), Hook::Tracepoint)?);
    Ok(())
}

/// Remember `file` as an interpreter (see `file::rampart_learn_root`).
#[inline(always)]
pub fn learn_interpreter(o: &KernelOffsets, file: u64) -> Option<()> {
    INTERPRETERS
        .insert(&kstruct::root_key(o, file)?, &1, 0)
        .ok()
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn rampart_exec(ctx: RawTracePointContext) -> i32 {
    let _ = try_rampart_exec(&ctx);
    0
}

fn try_rampart_exec(ctx: &RawTracePointContext) -> Result<(), ()> {
    let o = kstruct::offsets().ok_or(())?;
    let bprm: u64 = ctx.arg(2);
    let file = kstruct::ptr(bprm, o.bprm_file).ok_or(())?;
    let filename = kstruct::ptr(bprm, o.bprm_filename).ok_or(())?;
    enforce(exec_decision(
        Image::File { file, filename },
        Hook::Tracepoint,
    )?);
    // A `#!` line named the image (bprm->interp is no longer the name exec'd), or
    // the image is a known interpreter: follow it to its script.
    let interp = kstruct::ptr(bprm, o.bprm_interp).unwrap_or(filename);
    // SAFETY: plain lookup.
    let interpreter = interp != filename
        || kstruct::root_key(o, file).is_some_and(|k| unsafe { INTERPRETERS.get(&k) }.is_some());
    if interpreter && in_scope().is_some() {
        watch_for_script(o);
    } else {
        // Whatever this tgid ran before is gone, and so is its watch.
        let _ = SCRIPT_WATCH.remove(&((bpf_get_current_pid_tgid() >> 32) as u32));
    }
    Ok(())
}

/// `sched:sched_process_exit`: a process that ends takes its script watch with it, so
/// a pid reused by a forked process that never execs inherits nothing. The group
/// leader's exit ends it (a leader gone before its threads only stops the watch).
#[tracepoint]
pub fn rampart_exec_exit(_ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if id as u32 == (id >> 32) as u32 {
        let _ = SCRIPT_WATCH.remove(&((id >> 32) as u32));
    }
    0
}

/// Kill the exec'ing task when the decision is a denial (enforce mode).
#[inline(always)]
fn enforce(decision: Decision) {
    if decision == Decision::Denied {
        // SAFETY: plain helper call; signals the current (exec'ing) task.
        if unsafe { bpf_send_signal(SIGKILL) } == 0 {
            bump(ExecStat::Killed);
        }
    }
}

/// What an exec is known by: the file the kernel runs (walked; `filename` is the
/// kernel's `bprm->filename`, only looked at for `/dev/fd/`), or, without struct
/// offsets, the name the process typed (a kernel string).
pub(crate) enum Image {
    File { file: u64, filename: u64 },
    Typed(*const u8),
}

/// The policy and the current task's cgroup when the sensor is on and the task is in
/// scope.
#[inline(always)]
fn in_scope() -> Option<(&'static ExecConfig, u64)> {
    let cfg = EXEC_CONFIG.get(0)?;
    if cfg.mode == mode::OFF {
        return None;
    }
    // SAFETY: plain helper call.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: plain lookup.
    if cfg.scoped != 0 && unsafe { EXEC_SCOPE.get(&cgroup_id) }.is_none() {
        return None;
    }
    Some((cfg, cgroup_id))
}

/// The decision for an exec (or script) of `info`: a violation in a world-writable
/// tree; `Allowed` to report one that is otherwise of interest (flagged, relative,
/// every exec, a web user's); None when there is nothing to report.
#[inline(always)]
fn decide(cfg: &ExecConfig, info: &OpenInfo, world_writable: bool) -> Option<Decision> {
    if world_writable {
        bump(ExecStat::Violations);
        return Some(match cfg.mode {
            mode::ENFORCE => Decision::Denied,
            mode::DRY_RUN => Decision::DryRun,
            _ => Decision::Observed,
        });
    }
    let flagged = exec_flags::RELATIVE | exec_flags::FILELESS | exec_flags::FD_EXEC;
    (info.flags & flagged != 0
        || cfg.all_execs != 0
        || crate::file::is_web_uid(bpf_get_current_uid_gid() as u32))
    .then_some(Decision::Allowed)
}

/// Where an exec is decided.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    /// The exec tracepoints, after the new image is loaded: every decision is
    /// reported (with argv), a denial is a SIGKILL before the first instruction.
    Tracepoint,
    /// BPF-LSM's `bprm_check_security`, before the new image exists: acts only on a
    /// denial, which becomes -EPERM (the tracepoints never run for that exec, so it
    /// is reported once, here); everything else is left to the tracepoints.
    Lsm,
}

/// Check an exec against the policy, report it, and return the decision (the
/// caller enforces: SIGKILL in the tracepoints, -EPERM in the LSM). `Allowed` also
/// when nothing applies.
pub(crate) fn exec_decision(image: Image, hook: Hook) -> Result<Decision, ()> {
    let Some((cfg, cgroup_id)) = in_scope() else {
        return Ok(Decision::Allowed);
    };
    if hook == Hook::Lsm && cfg.mode != mode::ENFORCE {
        // Nothing to deny: the tracepoints report what this exec is.
        return Ok(Decision::Allowed);
    }
    // The LSM counts only what it denies (the tracepoints count the rest, once).
    let counted = hook == Hook::Tracepoint;
    if counted {
        bump(ExecStat::Checked);
    }
    let scratch = EXEC_SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: per-CPU scratch, exclusively ours during this run.
    let info = unsafe { &mut *scratch };
    info.flags = 0;
    let world_writable = match image {
        Image::File { file, filename } => {
            let o = kstruct::offsets().ok_or(())?;
            let world_writable = walk_into(o, file, info, 0).ok_or(())?;
            if kstruct::nlink(o, file) == Some(0) {
                info.flags |= exec_flags::FILELESS;
            }
            // SAFETY: probe read of the kernel's name string.
            if unsafe { bpf_probe_read_kernel(filename as *const [u8; 8]) } == Ok(DEV_FD) {
                info.flags |= exec_flags::FD_EXEC;
            }
            if counted && info.flags & (exec_flags::FILELESS | exec_flags::FD_EXEC) != 0 {
                bump(ExecStat::Fileless);
            }
            world_writable
        }
        Image::Typed(src) => {
            // SAFETY: a kernel string (tracepoint record or bprm->filename).
            let n = unsafe { bpf_probe_read_kernel_str_bytes(src, &mut info.path) }
                .map_err(|_| ())?
                .len();
            info.path_len = n.min(PATH_MAX_LEN - 1) as u32;
            info.lpm_bits = (PREFIX_MAX_LEN * 8) as u32;
            // SAFETY: `path` follows `lpm_bits` (asserted in agent-common): a packed LPM key.
            let key =
                unsafe { &*(&info.lpm_bits as *const u32).cast::<Key<[u8; PREFIX_MAX_LEN]>>() };
            if info.path[0] != b'/' {
                // `cd /tmp; ./x`: the agent resolves it against the cwd and decides.
                info.flags = exec_flags::RELATIVE;
                false
            } else {
                matches!(EXEC_DENY_PREFIXES.get(key), Some(v) if *v == WATCH_INCLUDE)
            }
        }
    };
    if world_writable {
        info.flags |= exec_flags::WORLD_WRITABLE;
    } else if hook == Hook::Lsm {
        return Ok(Decision::Allowed);
    }
    let Some(decision) = decide(cfg, info, world_writable) else {
        return Ok(Decision::Allowed);
    };
    if !counted {
        info.flags |= exec_flags::LSM;
        bump(ExecStat::Checked);
        bump(ExecStat::Denied);
    }
    emit(info, cgroup_id, decision, hook == Hook::Tracepoint);
    Ok(decision)
}

/// Walk `file` (an image or a script) into `info`: its real path, `flags` with
/// RESOLVED (and TRUNCATED), and whether it is under a world-writable root.
#[inline(always)]
fn walk_into(o: &KernelOffsets, file: u64, info: &mut OpenInfo, flags: u32) -> Option<bool> {
    let w = kstruct::walk(o, file, ROOT_EXEC, kstruct::Names::Always, &mut info.path)?;
    info.path_len = w.len;
    info.flags = flags | exec_flags::RESOLVED;
    if w.truncated {
        info.flags |= exec_flags::TRUNCATED;
    }
    Some(w.verdict & ROOT_EXEC != 0)
}

/// Remember the current task, a freshly exec'd interpreter, with the hashes of its
/// argv: one of its next read-opens that names an argument is its script.
#[inline(always)]
fn watch_for_script(o: &KernelOffsets) {
    let Some((start, len)) = kstruct::current_args(o) else {
        return;
    };
    let Some(sc) = ARGV_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let n = (len as usize).min(ARGS_MAX_LEN);
    // SAFETY: probe read of the new image's argv (user memory) into our scratch; the
    // length is masked below the buffer's size for the verifier.
    let read = unsafe {
        generated::bpf_probe_read_user(
            core::ptr::addr_of_mut!((*sc).buf).cast(),
            (n & (ARGS_MAX_LEN * 2 - 1)).min(ARGS_MAX_LEN) as u32,
            start as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return;
    }
    set!(sc, watch.n, 0);
    set!(sc, watch.cur, FNV_OFFSET);
    for i in 0..ARGS_MAX_LEN {
        if i >= n {
            break;
        }
        // SAFETY: i < ARGS_MAX_LEN, inside our scratch.
        let b = unsafe { (*sc).buf[i] };
        if b == 0 {
            let k: u32 = get!(sc, watch.n);
            if (k as usize) < MAX_SCRIPT_ARGS {
                let h: u64 = get!(sc, watch.cur);
                // SAFETY: k < MAX_SCRIPT_ARGS (masked again for the verifier).
                unsafe { (*sc).watch.hashes[k as usize & (MAX_SCRIPT_ARGS - 1)] = h };
                set!(sc, watch.n, k + 1);
            }
            set!(sc, watch.cur, FNV_OFFSET);
        } else {
            let h: u64 = get!(sc, watch.cur);
            set!(sc, watch.cur, (h ^ b as u64).wrapping_mul(FNV_PRIME));
        }
    }
    set!(sc, watch.budget, SCRIPT_OPEN_BUDGET);
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: our scratch, fully written above (hashes past `n` are never compared).
    let _ = SCRIPT_WATCH.insert(&tgid, unsafe { &(*sc).watch }, 0);
}

/// An open by a watched interpreter in flight: pid_tgid -> the user pointer of the
/// name. Sized at load like the file sensor's pending opens.
#[map(name = "RAMPART_SCRIPT_PENDING")]
static SCRIPT_PENDING: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1, 0);

/// openat(dfd, filename, ...) and openat2(dfd, filename, how, size) by a watched
/// interpreter: remember the name for the exit.
#[tracepoint]
pub fn rampart_script_openat(ctx: TracePointContext) -> u32 {
    if let Ok(name) = file::arg(&ctx, file::ARG1) {
        remember_script_open(name);
    }
    0
}

/// open(filename, flags, mode) by a watched interpreter.
#[tracepoint]
pub fn rampart_script_open(ctx: TracePointContext) -> u32 {
    if let Ok(name) = file::arg(&ctx, file::ARG0) {
        remember_script_open(name);
    }
    0
}

#[inline(always)]
fn remember_script_open(name: u64) {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: plain lookup.
    if unsafe { SCRIPT_WATCH.get(&((id >> 32) as u32)) }.is_some() {
        let _ = SCRIPT_PENDING.insert(&id, &name, 0);
    }
}

/// The exit of those opens: is the opened name one of the interpreter's arguments?
#[tracepoint]
pub fn rampart_script_exit(ctx: TracePointContext) -> u32 {
    let _ = try_rampart_script_exit(&ctx);
    0
}

fn try_rampart_script_exit(ctx: &TracePointContext) -> Result<(), ()> {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: value copied before the remove.
    let name = unsafe { *SCRIPT_PENDING.get(&id).ok_or(())? };
    let _ = SCRIPT_PENDING.remove(&id);
    let fd = file::arg(ctx, file::ARG0).map_err(|_| ())? as i64;
    script_open_done(id, name, fd)
}

/// A 32-bit open of the name at `name` that returned `fd` (see
/// `syscall::rampart_script_exit32`; the per-syscall tracepoints above never see
/// 32-bit calls): followed like theirs when a watched interpreter made it (a 32-bit
/// `ld-linux.so.2 /tmp/x`).
#[inline(always)]
pub(crate) fn compat_open(name: u64, fd: i64) -> Result<(), ()> {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: plain lookup.
    if unsafe { SCRIPT_WATCH.get(&((id >> 32) as u32)) }.is_none() {
        return Ok(());
    }
    script_open_done(id, name, fd)
}

/// A watched interpreter's open of the name at user address `name` returned `fd`:
/// if the name is one of its arguments, its script is decided.
#[inline(always)]
fn script_open_done(id: u64, name: u64, fd: i64) -> Result<(), ()> {
    if fd < 0 {
        return Ok(());
    }
    let o = kstruct::offsets().ok_or(())?;
    let scratch = EXEC_SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: per-CPU scratch, exclusively ours during this run.
    let info = unsafe { &mut *scratch };
    // SAFETY: probe read of the name the process passed (the kernel copied it in, so
    // the page is resident).
    let n = unsafe { bpf_probe_read_user_str_bytes(name as *const u8, &mut info.path) }
        .map_err(|_| ())?
        .len();
    if is_script((id >> 32) as u32, &info.path, n) {
        let f = kstruct::current_file(o, fd as u32).ok_or(())?;
        script_opened(o, f)?;
    }
    Ok(())
}

/// A read-open by a watched interpreter of the name in `path` (`n` bytes): is it one
/// of its arguments (its script)? The watch ends at the script or when the budget
/// runs out.
#[inline(always)]
pub(crate) fn is_script(tgid: u32, path: &[u8; PATH_MAX_LEN], n: usize) -> bool {
    let Some(sw) = SCRIPT_WATCH.get_ptr_mut(&tgid) else {
        return false;
    };
    set!(sw, cur, FNV_OFFSET);
    for (i, b) in path.iter().enumerate() {
        if i >= n {
            break;
        }
        let h: u64 = get!(sw, cur);
        set!(sw, cur, (h ^ *b as u64).wrapping_mul(FNV_PRIME));
    }
    let h: u64 = get!(sw, cur);
    // SAFETY: live map value.
    let (count, hashes) = unsafe { ((*sw).n, (*sw).hashes) };
    let mut hit = false;
    for (k, x) in hashes.iter().enumerate() {
        if (k as u32) < count && *x == h {
            hit = true;
        }
    }
    let budget: u32 = get!(sw, budget);
    if hit || budget <= 1 {
        let _ = SCRIPT_WATCH.remove(&tgid);
    } else {
        set!(sw, budget, budget - 1);
    }
    if hit {
        bump(ExecStat::Scripts);
    }
    hit
}

/// A watched interpreter opened its script (`file`): walked and decided like an
/// exec'd image, reported as the script, and killed before it reads a byte of it
/// when enforcing.
#[inline(always)]
pub(crate) fn script_opened(o: &KernelOffsets, file: u64) -> Result<(), ()> {
    let Some((cfg, cgroup_id)) = in_scope() else {
        return Ok(());
    };
    let scratch = EXEC_SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: per-CPU scratch, exclusively ours during this run.
    let info = unsafe { &mut *scratch };
    let world_writable = walk_into(o, file, info, exec_flags::SCRIPT).ok_or(())?;
    if world_writable {
        info.flags |= exec_flags::WORLD_WRITABLE;
    }
    if let Some(decision) = decide(cfg, info, world_writable) {
        emit(info, cgroup_id, decision, true);
        enforce(decision);
    }
    Ok(())
}

fn emit(info: &OpenInfo, cgroup_id: u64, decision: Decision, new_image: bool) {
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        bump(ExecStat::RingbufFull);
        return;
    };
    let ev = entry.as_mut_ptr();
    let id = bpf_get_current_pid_tgid();
    let ug = bpf_get_current_uid_gid();
    let lineage = kstruct::offsets().map(|o| {
        let p = kstruct::parent(o, 0);
        let gp = p.and_then(|(task, _, _)| kstruct::parent(o, task));
        (
            p,
            gp,
            if new_image {
                kstruct::current_args(o)
            } else {
                None
            },
        )
    });
    // SAFETY: reserved ring buffer memory of size_of::<ExecEvent>(); every field written.
    unsafe {
        (*ev).ppid = 0;
        (*ev).gppid = 0;
        (*ev).parent_comm = [0; 16];
        (*ev).gp_comm = [0; 16];
        (*ev).args_len = 0;
        (*ev).args_truncated = 0;
        (*ev).flags = info.flags;
        (*ev)._pad = 0;
        if let Some((p, gp, args)) = lineage {
            if let Some((_, tgid, comm)) = p {
                (*ev).ppid = tgid;
                (*ev).parent_comm = comm;
            }
            if let Some((_, tgid, comm)) = gp {
                (*ev).gppid = tgid;
                (*ev).gp_comm = comm;
            }
            if let Some((start, len)) = args {
                // The new image's argv, already on its stack: bounded, masked length so
                // the verifier sees it within the buffer.
                let n = if len as usize >= ARGS_MAX_LEN {
                    (*ev).args_truncated = 1;
                    ARGS_MAX_LEN as u32
                } else {
                    len as u32
                };
                let n = n & (ARGS_MAX_LEN as u32 * 2 - 1);
                if n > 0
                    && n <= ARGS_MAX_LEN as u32
                    && aya_ebpf::helpers::generated::bpf_probe_read_user(
                        (*ev).args.as_mut_ptr().cast(),
                        n,
                        start as *const core::ffi::c_void,
                    ) == 0
                {
                    (*ev).args_len = n;
                }
            }
        }
        (*ev).header = EventHeader {
            kind: EventKind::Exec as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: core::mem::size_of::<ExecEvent>() as u32,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*ev).pid = id as u32;
        (*ev).tgid = (id >> 32) as u32;
        (*ev).uid = ug as u32;
        (*ev).gid = (ug >> 32) as u32;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
        (*ev).cgroup_id = cgroup_id;
        (*ev).decision = decision as u32;
        (*ev).path_len = info.path_len;
        (*ev).path = info.path;
    }
    entry.submit(0);
}
