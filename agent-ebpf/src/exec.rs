// SPDX-License-Identifier: GPL-2.0-only
//! Exec sensor on `sched:sched_process_exec`: the new image is loaded, its first
//! instruction has not run. An exec from a world-writable tree (by path prefix) by a
//! process in scope is reported; when enforcing, it is killed with SIGKILL here
//! (Tetragon's way), so not one line of it runs.
//!
//! Error policy: on our own errors nothing is killed (fail open) and nothing emitted.

use agent_common::{
    egress::{mode, Decision},
    exec::{flags as exec_flags, ExecConfig, ExecEvent, ExecStat, ARGS_MAX_LEN},
    EventHeader, EventKind, OpenInfo, EVENT_VERSION, PATH_MAX_LEN, PREFIX_MAX_LEN, WATCH_INCLUDE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_kernel_str_bytes,
        bpf_send_signal,
    },
    macros::{map, tracepoint},
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, PerCpuArray},
    programs::TracePointContext,
    EbpfContext,
};

use crate::{file::EVENTS, kstruct};

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
    if exec_decision(src, true)? == Decision::Denied {
        // SAFETY: plain helper call; signals the current (exec'ing) task.
        if unsafe { bpf_send_signal(SIGKILL) } == 0 {
            bump(ExecStat::Killed);
        }
    }
    Ok(())
}

/// Check an exec of the path at kernel address `src` against the policy, report it,
/// and return the decision (the caller enforces: SIGKILL here, -EPERM in the LSM).
/// `Allowed` also when nothing applies. `new_image`: current's mm is the exec'd image
/// (true after exec; false in the LSM hook, where argv is not read).
pub(crate) fn exec_decision(src: *const u8, new_image: bool) -> Result<Decision, ()> {
    let cfg = EXEC_CONFIG.get(0).ok_or(())?;
    if cfg.mode == mode::OFF {
        return Ok(Decision::Allowed);
    }
    // SAFETY: plain helper call.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if cfg.scoped != 0 && unsafe { EXEC_SCOPE.get(&cgroup_id) }.is_none() {
        return Ok(Decision::Allowed);
    }
    bump(ExecStat::Checked);
    let scratch = EXEC_SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: per-CPU scratch, exclusively ours during this run.
    let info = unsafe { &mut *scratch };
    // SAFETY: a kernel string (tracepoint record or bprm->filename).
    let n = unsafe { bpf_probe_read_kernel_str_bytes(src, &mut info.path) }
        .map_err(|_| ())?
        .len();
    info.path_len = n.min(PATH_MAX_LEN - 1) as u32;
    info.lpm_bits = (PREFIX_MAX_LEN * 8) as u32;
    // SAFETY: `path` follows `lpm_bits` (asserted in agent-common): a packed LPM key.
    let key = unsafe { &*(&info.lpm_bits as *const u32).cast::<Key<[u8; PREFIX_MAX_LEN]>>() };
    let relative = info.path[0] != b'/';
    let world_writable =
        !relative && matches!(EXEC_DENY_PREFIXES.get(key), Some(v) if *v == WATCH_INCLUDE);
    info.flags = if world_writable {
        exec_flags::WORLD_WRITABLE
    } else if relative {
        exec_flags::RELATIVE
    } else {
        0
    };
    let decision = if world_writable {
        bump(ExecStat::Violations);
        match cfg.mode {
            mode::ENFORCE => Decision::Denied,
            mode::DRY_RUN => Decision::DryRun,
            _ => Decision::Observed,
        }
    } else if relative
        || cfg.all_execs != 0
        || crate::file::is_web_uid(bpf_get_current_uid_gid() as u32)
    {
        // A relative name (`cd /tmp; ./x`) goes to the agent, which resolves it against
        // the cwd and applies the trees. Every exec of a web-server user is reported:
        // userspace looks for shells.
        Decision::Allowed
    } else {
        return Ok(Decision::Allowed);
    };
    emit(info, cgroup_id, decision, new_image);
    Ok(decision)
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
