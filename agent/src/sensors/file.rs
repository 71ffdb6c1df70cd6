// SPDX-License-Identifier: GPL-2.0-only
//! The file sensor's kernel side: the watched trees, the syscall tracepoints, and
//! the sensitive files (by path and by inode) for the sensitive-read report.

use std::path::Path;

use agent_common::{
    maps, maps::progs, syscall_parts, KernelOffsets, NAME_MAX_LEN, PREFIX_MAX_LEN, WATCH_INCLUDE,
};
use aya::{
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
    Ebpf,
};

use super::event::kernel_dev;
use crate::config::SyscallHook;
use crate::kernel::{
    insert_path_prefixes, insert_set, prog_err, program, set_single, Component, ComponentState,
    LoaderError,
};

/// Write the watched trees into the kernel: by identity (device, inode) for the walk
/// up from an opened file, and by name ("/var/www" -> "/var/www/") for the path
/// events and kernels without struct offsets. Returns the trees that do not exist
/// (nothing to identify; watched by name only until the next start).
pub fn set_watch_prefixes(
    ebpf: &mut Ebpf,
    paths: &[std::path::PathBuf],
) -> Result<Vec<std::path::PathBuf>, LoaderError> {
    insert_path_prefixes(
        ebpf,
        maps::WATCH_PREFIXES,
        paths.iter().map(|p| watch_key(p)),
        WATCH_INCLUDE,
    )?;
    // By identity: learned from the directories themselves (`roots::learn`).
    Ok(paths
        .iter()
        .filter(|p| !std::fs::metadata(p).is_ok_and(|md| md.is_dir()))
        .cloned()
        .collect())
}

/// The watch-trie key for a tree: its path with a trailing '/', as a bit prefix.
/// Config validation keeps paths shorter than PREFIX_MAX_LEN; longer ones are cut
/// (which only widens the match; userspace filters again).
pub fn watch_key(p: &std::path::Path) -> (u32, [u8; PREFIX_MAX_LEN]) {
    let mut s = p.to_string_lossy().into_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    let b = s.as_bytes();
    let n = b.len().min(PREFIX_MAX_LEN);
    let mut data = [0u8; PREFIX_MAX_LEN];
    data[..n].copy_from_slice(&b[..n]);
    ((n * 8) as u32, data)
}

/// What a file-sensor tracepoint serves: write sessions (open to close: the LSM
/// backend replaces these) or the path operations (every backend but fanotify).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Part {
    Sessions,
    Paths,
}

/// The programs of write sessions (the rest of `FILE_TRACEPOINTS` and the exit
/// program serve path operations or sessions as listed there).
const SESSION_PROGRAMS: &[&str] = &[
    progs::SYS_EXIT_OPENAT,
    progs::SYS_ENTER_OPENAT,
    progs::SYS_ENTER_CLOSE,
    progs::SYS_EXIT_DUP,
    progs::SYS_ENTER_CLOSE_RANGE,
    progs::SYS_ENTER_OPEN,
    progs::SYS_ENTER_CREAT,
    progs::SYS_ENTER_OPENAT2,
    progs::SYS_ENTER_MMAP,
    progs::FILE_EXIT,
];

/// The file sensor's programs and the syscall tracepoints each one serves. The
/// first three are required; the others are attached where the syscall exists on
/// this architecture (arm64 has no open/creat/unlink/rename/chmod, older kernels no
/// openat2/fchmodat2). Exits are listed before enters: an enter without its exit
/// would only leave stale pending entries (LRU maps, so harmless, but pointless).
const FILE_TRACEPOINTS: &[(&str, &[&str], bool)] = &[
    (progs::SYS_EXIT_OPENAT, &["sys_exit_openat"], true),
    (progs::SYS_ENTER_OPENAT, &["sys_enter_openat"], true),
    (progs::SYS_ENTER_CLOSE, &["sys_enter_close"], true),
    (
        progs::SYS_EXIT_DUP,
        &["sys_exit_dup2", "sys_exit_dup3"],
        false,
    ),
    (
        progs::SYS_ENTER_CLOSE_RANGE,
        &["sys_enter_close_range"],
        false,
    ),
    (
        progs::SYS_EXIT_OPENAT,
        &["sys_exit_open", "sys_exit_creat", "sys_exit_openat2"],
        false,
    ),
    (progs::SYS_ENTER_OPEN, &["sys_enter_open"], false),
    (progs::SYS_ENTER_CREAT, &["sys_enter_creat"], false),
    (progs::SYS_ENTER_OPENAT2, &["sys_enter_openat2"], false),
    (
        progs::SYS_EXIT_PATH,
        &[
            "sys_exit_unlinkat",
            "sys_exit_unlink",
            "sys_exit_renameat",
            "sys_exit_renameat2",
            "sys_exit_rename",
            "sys_exit_linkat",
            "sys_exit_link",
            "sys_exit_fchmodat",
            "sys_exit_fchmodat2",
            "sys_exit_chmod",
            "sys_exit_fchmod",
            "sys_exit_truncate",
        ],
        false,
    ),
    (progs::SYS_ENTER_UNLINKAT, &["sys_enter_unlinkat"], false),
    (progs::SYS_ENTER_UNLINK, &["sys_enter_unlink"], false),
    (progs::SYS_ENTER_RENAMEAT, &["sys_enter_renameat"], false),
    (progs::SYS_ENTER_RENAMEAT2, &["sys_enter_renameat2"], false),
    (progs::SYS_ENTER_RENAME, &["sys_enter_rename"], false),
    (progs::SYS_ENTER_LINKAT, &["sys_enter_linkat"], false),
    (progs::SYS_ENTER_LINK, &["sys_enter_link"], false),
    (
        progs::SYS_ENTER_FCHMODAT,
        &["sys_enter_fchmodat", "sys_enter_fchmodat2"],
        false,
    ),
    (progs::SYS_ENTER_CHMOD, &["sys_enter_chmod"], false),
    (progs::SYS_ENTER_FCHMOD, &["sys_enter_fchmod"], false),
    (progs::SYS_ENTER_TRUNCATE, &["sys_enter_truncate"], false),
    (progs::SYS_ENTER_MMAP, &["sys_enter_mmap"], false),
];

/// Does this kernel have the syscall tracepoint `event`?
pub fn tracepoint_exists(event: &str) -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|t| Path::new(t).join("events/syscalls").join(event).exists())
}

fn part_of(prog: &str) -> Part {
    if SESSION_PROGRAMS.contains(&prog) {
        Part::Sessions
    } else {
        Part::Paths
    }
}

/// Load and attach the file sensor's programs for `parts`; one component per
/// program. Called once per part: the `sys_exit` program is attached by the first
/// call and serves the parts of both.
pub fn attach_file_sensor(
    ebpf: &mut Ebpf,
    parts: &[Part],
    hook: SyscallHook,
) -> Result<Vec<Component>, LoaderError> {
    let mut out: Vec<Component> = Vec::new();
    let (dispatcher, serves) = attach_dispatcher(ebpf, parts, hook);
    // The 64-bit syscalls go through it when it took them; all but close, whose
    // enter is race-free (see agent-ebpf syscall.rs), and close_range, a rare call
    // that loops over fds: on its own tracepoint, it costs only itself.
    let native = serves & syscall_parts::NATIVE != 0;
    out.extend(dispatcher);
    for (name, events, required) in FILE_TRACEPOINTS {
        let name: &'static str = name;
        if !parts.contains(&part_of(name))
            || (native && name != progs::SYS_ENTER_CLOSE && name != progs::SYS_ENTER_CLOSE_RANGE)
        {
            continue;
        }
        let prog: &mut TracePoint = program(ebpf, name)?;
        if prog.fd().is_err() {
            if let Err(e) = prog.load() {
                if *required {
                    return Err(prog_err(name)(e));
                }
                // An optional program this kernel's verifier refuses costs only what
                // it serves (named here), not the sensor.
                let why: String = e.to_string().chars().take(200).collect();
                tracing::warn!(program = name, error = %why, "An optional file sensor program did not load.");
                out.push(Component {
                    name: name.to_string(),
                    kind: "tracepoint",
                    target: String::new(),
                    state: ComponentState::Unavailable,
                    mode: None,
                    reason: Some(format!("did not load: {why}")),
                });
                continue;
            }
        }
        let mut attached = Vec::new();
        let mut missing = Vec::new();
        for event in *events {
            if !required && !tracepoint_exists(event) {
                missing.push(*event);
                continue;
            }
            prog.attach("syscalls", event).map_err(prog_err(name))?;
            attached.push(format!("syscalls:{event}"));
        }
        let reason =
            (!missing.is_empty()).then(|| format!("not on this kernel: {}", missing.join(", ")));
        match out.iter_mut().find(|c| c.name == name) {
            Some(c) => {
                if !attached.is_empty() {
                    c.target = format!("{},{}", c.target, attached.join(","));
                }
                if reason.is_some() {
                    c.reason = reason;
                }
            }
            None => out.push(Component {
                name: name.to_string(),
                kind: "tracepoint",
                target: attached.join(","),
                state: if attached.is_empty() {
                    ComponentState::Unavailable
                } else {
                    ComponentState::Attached
                },
                mode: None,
                reason,
            }),
        }
    }
    out.extend(attach_uring(ebpf, parts));
    if !parts.contains(&Part::Sessions) {
        return Ok(out);
    }
    // A writer that exits with sessions open: its exit closes them without close(2).
    let name = progs::FILE_EXIT;
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load().map_err(prog_err(name))?;
    prog.attach("sched", "sched_process_exit")
        .map_err(prog_err(name))?;
    out.push(Component {
        name: name.to_string(),
        kind: "tracepoint",
        target: "sched:sched_process_exit".into(),
        state: ComponentState::Attached,
        mode: None,
        reason: None,
    });
    Ok(out)
}

/// io_uring's work, which no syscall tracepoint sees: its opens and closes
/// ([`Part::Sessions`]) and renames, links and unlinks ([`Part::Paths`]), followed at
/// their completions (`rampart_uring_complete`; their names are kept at the
/// submission, `rampart_uring_submit`). Called once per part like the syscall
/// programs: the first call attaches, a second adds its part to what they serve
/// (and returns no component). Never fatal: what does not attach is named unseen
/// ([`uring_unseen`]).
fn attach_uring(ebpf: &mut Ebpf, parts: &[Part]) -> Vec<Component> {
    let mut bits = parts_bits(ebpf, maps::URING_PARTS);
    let first = bits == 0;
    for part in parts {
        bits |= match part {
            Part::Sessions => syscall_parts::SESSIONS,
            Part::Paths => syscall_parts::PATHS,
        };
    }
    // Written before the programs run: they serve nothing until then.
    if let Err(e) = set_single(ebpf, maps::URING_PARTS, bits) {
        tracing::warn!(error = %e, "The io_uring programs' parts could not be set.");
        return Vec::new();
    }
    if !first {
        return Vec::new();
    }
    // The offsets the agent resolved from BTF at start (all 0 without them).
    let o = single::<KernelOffsets>(ebpf, maps::KERNEL_OFFSETS)
        .filter(|o| o.valid != 0)
        .unwrap_or_default();
    let mut attach = |name: &'static str, ready: Result<&'static str, String>| {
        let event = *ready.as_ref().unwrap_or(&"");
        let attached = ready.and_then(|event| {
            let prog: &mut TracePoint = program(ebpf, name).map_err(|e| e.to_string())?;
            prog.load().map_err(|e| e.to_string())?;
            prog.attach("io_uring", event).map_err(|e| e.to_string())?;
            Ok(())
        });
        if let Err(why) = &attached {
            tracing::warn!(program = name, reason = %why, "io_uring is not followed there.");
        }
        Component {
            name: name.to_string(),
            kind: "tracepoint",
            target: if event.is_empty() {
                String::new()
            } else {
                format!("io_uring:{event}")
            },
            state: if attached.is_ok() {
                ComponentState::Attached
            } else {
                ComponentState::Unavailable
            },
            mode: None,
            reason: attached.err(),
        }
    };
    let complete = attach(
        progs::URING_COMPLETE,
        uring_followable(&o).map(|()| "io_uring_complete"),
    );
    // The names are of no use without the completion that sends them.
    let submit_ready = match &complete.reason {
        None => uring_paths_followable(&o),
        Some(_) => Err(format!("{} is not attached", progs::URING_COMPLETE)),
    };
    let submit = attach(progs::URING_SUBMIT, submit_ready);
    vec![complete, submit]
}

/// Can io_uring's completions be followed on this kernel? Its completion tracepoint
/// must keep the request and the result where `rampart_uring_complete` reads them,
/// and the offsets resolved from BTF (`o`) must say where a request keeps its
/// opcode, an open's slot and a close's fd. The reason when not.
pub fn uring_followable(o: &KernelOffsets) -> Result<(), String> {
    let format = tracefs_format("io_uring/io_uring_complete")
        .ok_or("this kernel has no io_uring:io_uring_complete tracepoint")?;
    check_uring_format(&format)?;
    if o.uring_opcode == 0 {
        return Err(btf_reason("io_uring's requests", |b| {
            b.uring_offsets().map(drop)
        }));
    }
    Ok(())
}

/// Why BTF gave no offsets for `what` (none are 0 once resolved): asked of BTF again,
/// only on this path, for the member it lacks.
fn btf_reason(
    what: &str,
    resolve: impl Fn(&crate::kernel::btf::Btf) -> Result<(), crate::kernel::btf::BtfError>,
) -> String {
    let why = crate::kernel::btf::Btf::from_file(Path::new(crate::kernel::btf::VMLINUX))
        .and_then(|b| resolve(&b))
        .map_or_else(|e| e.to_string(), |()| "no struct offsets were set".into());
    format!("{what} are not in this kernel's BTF: {why}")
}

/// Can io_uring's renames, links and unlinks be followed: does its submission
/// tracepoint keep the request and its opcode where `rampart_uring_submit` reads
/// them, and does BTF say where those requests keep their names? The tracepoint's name (`io_uring_submit_req`;
/// `io_uring_submit_sqe` before 6.4, the same record), or the reason when not.
pub fn uring_paths_followable(o: &KernelOffsets) -> Result<&'static str, String> {
    let (event, format) = ["io_uring_submit_req", "io_uring_submit_sqe"]
        .into_iter()
        .find_map(|e| Some((e, tracefs_format(&format!("io_uring/{e}"))?)))
        .ok_or("this kernel has no io_uring:io_uring_submit_req (or _sqe) tracepoint")?;
    check_format(
        &format!("io_uring:{event}"),
        &format,
        &[
            ("req", agent_common::uring::SUBMIT_REQ, 8),
            ("opcode", agent_common::uring::SUBMIT_OPCODE, 1),
        ],
    )?;
    // `filename.name` is at 0; the request's fields never are.
    if o.uring_path_new == 0 {
        return Err(btf_reason("io_uring's renames", |b| {
            b.uring_path_offsets().map(drop)
        }));
    }
    Ok(event)
}

/// The `format` file of the trace event `event` ("system/name"), where tracefs is.
fn tracefs_format(event: &str) -> Option<String> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|t| {
            std::fs::read_to_string(Path::new(t).join("events").join(event).join("format")).ok()
        })
}

/// Does the completion tracepoint's `format` put `req` and `res` where the program
/// reads them?
fn check_uring_format(format: &str) -> Result<(), String> {
    check_format(
        "io_uring:io_uring_complete",
        format,
        &[
            ("req", agent_common::uring::COMPLETE_REQ, 8),
            ("res", agent_common::uring::COMPLETE_RES, 4),
        ],
    )
}

/// Does the trace event `event`'s `format` hold each (field, offset, size)?
fn check_format(event: &str, format: &str, wanted: &[(&str, usize, usize)]) -> Result<(), String> {
    for &(field, offset, size) in wanted {
        // "\tfield:int res;\toffset:32;\tsize:4;\tsigned:1;"
        let found = format.lines().find_map(|l| {
            let mut parts = l.trim().split(';').map(str::trim);
            let decl = parts.next()?.strip_prefix("field:")?;
            if decl.split_whitespace().last()? != field {
                return None;
            }
            let mut num = |key: &str| parts.next()?.strip_prefix(key)?.parse::<usize>().ok();
            Some((num("offset:")?, num("size:")?))
        });
        if found != Some((offset, size)) {
            return Err(format!(
                "{event} keeps {field} at {found:?} (offset, size), not ({offset}, {size})"
            ));
        }
    }
    Ok(())
}

/// What io_uring does that the file sensor's programs do not see, for a backend
/// that sees io_uring's opens itself (`lsm`) or not, given what the io_uring
/// programs follow there (`opens`: opens and closes, `rampart_uring_complete`;
/// `paths`: renames, links and unlinks, with `rampart_uring_submit`); `why` names
/// the sysctl's state and its mitigation.
pub fn uring_unseen(lsm: bool, opens: bool, paths: bool, why: &str) -> String {
    let skipped = "whose completion the ring skips (IOSQE_CQE_SKIP_SUCCESS)";
    let paths_part = if paths {
        format!("io_uring renames, links and unlinks {skipped}")
    } else {
        "renames, links and unlinks through io_uring".to_string()
    };
    let (what, seen) = match (lsm, opens) {
        (true, _) => (paths_part, "opens are seen"),
        (false, true) => (
            format!("io_uring opens into a ring's fixed-file slots or {skipped}; {paths_part}"),
            "its other opens and closes are followed",
        ),
        (false, false) => (format!("files opened through io_uring; {paths_part}"), ""),
    };
    let seen = match (seen.is_empty(), paths) {
        (true, true) => "renames, links and unlinks are followed; ".to_string(),
        (true, false) => String::new(),
        (false, true) => format!("{seen}, renames, links and unlinks followed; "),
        (false, false) => format!("{seen}; "),
    };
    format!("{what} ({seen}{why})")
}

/// The `sys_exit` program for `parts` (x86_64; it needs `thread_info.status` from
/// BTF to tell a 32-bit syscall from a 64-bit one): the 32-bit (ia32) syscalls,
/// which no per-syscall tracepoint sees, and with [`SyscallHook::SysExit`] the
/// 64-bit ones too. A second call adds its part to what the program serves (and
/// no second component is returned). Never fatal: where it does not attach, the
/// per-syscall tracepoints take the 64-bit syscalls and the 32-bit ones are named
/// unseen (`compat_unseen`). Returns its component and what it serves after this
/// call ([`syscall_parts`] bits; 0 when it is not attached).
fn attach_dispatcher(
    ebpf: &mut Ebpf,
    parts: &[Part],
    hook: SyscallHook,
) -> (Option<Component>, u32) {
    let name = progs::SYSCALL_EXIT;
    let failed = |why: String| Component {
        name: name.to_string(),
        kind: "raw_tracepoint",
        target: "sys_exit".into(),
        state: ComponentState::Unavailable,
        mode: None,
        reason: Some(why),
    };
    if !cfg!(target_arch = "x86_64") {
        return (
            Some(failed(
                "32-bit syscalls are told apart on x86_64 only".into(),
            )),
            0,
        );
    }
    let status = crate::kernel::btf::Btf::from_file(Path::new(crate::kernel::btf::VMLINUX))
        .and_then(|b| b.kernel_offsets())
        .map(|o| o.task_thread_status);
    match status {
        Ok(0) => {
            return (
                Some(failed("this kernel's BTF has no thread_info.status".into())),
                0,
            )
        }
        Err(e) => return (Some(failed(format!("no struct offsets from BTF: {e}"))), 0),
        Ok(_) => {}
    }
    let loaded = |ebpf: &mut Ebpf, n| match ebpf.program(n) {
        Some(aya::programs::Program::BtfTracePoint(p)) => p.fd().is_ok(),
        Some(aya::programs::Program::RawTracePoint(p)) => p.fd().is_ok(),
        _ => false,
    };
    let first = !loaded(ebpf, name) && !loaded(ebpf, progs::SYSCALL_EXIT_RAW);
    // What a first call attached it for (0 when it failed then, or on a first call).
    let before = syscall_bits(ebpf);
    let mut bits = before;
    if first && hook == SyscallHook::SysExit {
        bits |= syscall_parts::NATIVE;
    }
    for part in parts {
        bits |= match part {
            Part::Sessions => syscall_parts::SESSIONS,
            Part::Paths => syscall_parts::PATHS,
        };
    }
    if !first {
        if before == 0 {
            return (None, 0);
        }
        return match set_single(ebpf, maps::SYSCALL_PARTS, bits) {
            Ok(()) => (None, bits),
            Err(e) => {
                tracing::warn!(error = %e, "The sys_exit program could not take a second part.");
                (None, before)
            }
        };
    }
    // The parts are written before the program runs: it serves nothing until then.
    if let Err(e) = set_single(ebpf, maps::SYSCALL_PARTS, bits) {
        return (Some(failed(e.to_string())), 0);
    }
    // Through BTF (registers by direct loads), else a raw tracepoint.
    let btf = (|| -> Result<(), String> {
        let btf = crate::kernel::kernel_btf()?;
        let prog: &mut BtfTracePoint = program(ebpf, name).map_err(|e| e.to_string())?;
        prog.load("sys_exit", &btf).map_err(|e| e.to_string())?;
        prog.attach().map_err(|e| e.to_string())?;
        Ok(())
    })();
    let attached = match btf {
        Ok(()) => Ok(("tp_btf", name)),
        Err(why) => {
            tracing::info!(reason = %why, "tp_btf sys_exit did not load; the sys_exit program goes on a raw tracepoint.");
            let raw = progs::SYSCALL_EXIT_RAW;
            (|| -> Result<(), LoaderError> {
                let prog: &mut RawTracePoint = program(ebpf, raw)?;
                prog.load().map_err(prog_err(raw))?;
                prog.attach("sys_exit").map_err(prog_err(raw))?;
                Ok(())
            })()
            .map(|()| ("raw_tracepoint", raw))
        }
    };
    match attached {
        Ok((kind, name)) => (
            Some(Component {
                name: name.to_string(),
                kind,
                target: if bits & syscall_parts::NATIVE != 0 {
                    "sys_exit (64-bit and 32-bit file syscalls)".into()
                } else {
                    "sys_exit (32-bit file syscalls)".into()
                },
                state: ComponentState::Attached,
                mode: None,
                reason: None,
            }),
            bits,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "The sys_exit program did not attach; per-syscall tracepoints instead, 32-bit syscalls unseen.");
            let _ = set_single(ebpf, maps::SYSCALL_PARTS, 0u32);
            (Some(failed(e.to_string())), 0)
        }
    }
}

/// What the `sys_exit` program serves so far (0: nothing, or not attached).
fn syscall_bits(ebpf: &Ebpf) -> u32 {
    parts_bits(ebpf, maps::SYSCALL_PARTS)
}

/// The `syscall_parts` bits in the one-entry array `map` (0 when unreadable).
fn parts_bits(ebpf: &Ebpf, map: &str) -> u32 {
    single(ebpf, map).unwrap_or(0)
}

/// The value of the one-entry array `map`, if readable.
fn single<V: aya::Pod>(ebpf: &Ebpf, map: &str) -> Option<V> {
    ebpf.map(map)
        .and_then(|m| aya::maps::Array::<_, V>::try_from(m).ok())
        .and_then(|a| a.get(&0, 0).ok())
}

/// What no file program sees when `rampart_syscall_exit` is not attached: the
/// 32-bit syscalls, named with what closes them. None when it is attached.
pub fn compat_unseen(comps: &[Component]) -> Option<String> {
    let c = comps
        .iter()
        .find(|c| c.name == progs::SYSCALL_EXIT || c.name == progs::SYSCALL_EXIT_RAW)?;
    (c.state != ComponentState::Attached).then(|| {
        format!(
            "files written through 32-bit (ia32) syscalls ({}; the ia32_emulation=0 boot parameter closes this; the sweep scans such files within detection.sweep_interval_minutes)",
            c.reason.as_deref().unwrap_or("not attached")
        )
    })
}

/// Does this kernel run x32 syscalls (x86_64 with the x32 bit in the number)? They
/// reach no syscall tracepoint, and the 32-bit program takes only the ia32 ones.
/// Asked of the kernel itself, in a forked child: an x32 `getpid` answers the pid
/// where x32 runs and ENOSYS where it is compiled out or off (Debian builds it, off
/// unless booted with `syscall.x32=y`). In a child because the agent's own seccomp
/// filter may kill the caller of a non-native syscall (the unit's
/// `SystemCallArchitectures=native`); a child killed that way says nothing about the
/// customers' processes, so the kernel's build configuration answers instead.
pub fn x32_syscalls_run() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
        // SAFETY: the child makes one raw syscall and _exits, both async-signal-safe
        // (nothing allocates or takes a lock after the fork).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: getpid takes no arguments and changes nothing.
            let runs = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) } > 0;
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(i32::from(runs)) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        if pid < 0 || unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return x32_configured();
        }
        if libc::WIFEXITED(status) {
            return libc::WEXITSTATUS(status) == 1;
        }
        x32_configured()
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The kernel's build configuration and command line on x32: built in
/// (`CONFIG_X86_X32_ABI=y`) and not left off (Debian's `CONFIG_X86_X32_DISABLED=y`
/// unless booted with `syscall.x32=y`). False when the configuration cannot be read.
fn x32_configured() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let config =
        std::fs::read_to_string(format!("/boot/config-{}", release.trim())).unwrap_or_default();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    x32_from_config(&config, &cmdline)
}

fn x32_from_config(config: &str, cmdline: &str) -> bool {
    let set = |key: &str| config.lines().any(|l| l.trim() == format!("{key}=y"));
    let switched_on = cmdline
        .split_whitespace()
        .any(|w| matches!(w, "syscall.x32=y" | "syscall.x32=1"));
    set("CONFIG_X86_X32_ABI") && (!set("CONFIG_X86_X32_DISABLED") || switched_on)
}

/// What no file program sees where x32 syscalls run, named with what closes it.
pub fn x32_unseen(runs: bool) -> Option<String> {
    runs.then(|| {
        "files written through x32 syscalls (this kernel runs them: boot without syscall.x32=y to close this; the sweep scans such files within detection.sweep_interval_minutes)".to_string()
    })
}

/// The LSM file backend's write sessions: from `file_open` to `file_free_security`
/// (every open for writing, io_uring's included; ended when the file's last
/// reference goes, so exits, shared mappings and passed fds are covered). The path
/// operations stay on their tracepoints (`Part::Paths`). All or nothing: a hook that
/// does not attach detaches the other.
pub fn attach_lsm_sessions(ebpf: &mut Ebpf) -> Result<Vec<Component>, String> {
    use aya::programs::Lsm;
    let btf = crate::kernel::kernel_btf()?;
    let mut out = Vec::new();
    let mut links = Vec::new();
    for &(name, hook) in super::lsm::LSM_FILE_SESSIONS {
        let attached = super::lsm::load_lsm(ebpf, &btf, name, hook).and_then(|()| {
            let prog: &mut Lsm = program(ebpf, name).map_err(|e| e.to_string())?;
            prog.attach()
                .map_err(|e| format!("attaching {name} to {hook}: {e}"))
        });
        match attached {
            Ok(link) => links.push((name, link)),
            Err(e) => {
                for (name, link) in links {
                    if let Ok(prog) = program::<Lsm>(ebpf, name) {
                        let _ = prog.detach(link);
                    }
                }
                return Err(e);
            }
        }
        out.push(Component {
            name: name.to_string(),
            kind: "lsm",
            target: hook.to_string(),
            state: ComponentState::Attached,
            mode: None,
            reason: None,
        });
    }
    Ok(out)
}

/// Web-server UIDs and sensitive files for the sensitive-read report.
pub fn set_sensitive(
    ebpf: &mut Ebpf,
    web_uids: &[u32],
    paths: &[std::path::PathBuf],
    names: &[String],
) -> Result<(), LoaderError> {
    insert_set(ebpf, maps::WEB_UIDS, web_uids.iter().copied())?;
    insert_path_prefixes(
        ebpf,
        maps::SENSITIVE_PREFIXES,
        paths.iter().map(|p| sensitive_key(p)),
        1,
    )?;
    insert_set(
        ebpf,
        maps::SENSITIVE_NAMES,
        names.iter().map(|n| {
            let mut key = [0u8; NAME_MAX_LEN];
            let b = n.as_bytes();
            // Config validation keeps names shorter than NAME_MAX_LEN.
            let len = b.len().min(NAME_MAX_LEN - 1);
            key[..len].copy_from_slice(&b[..len]);
            key
        }),
    )
}

/// Sensitive files by (kernel dev_t, inode) for the LSM file_open hook, and the
/// enforcement mode. Paths that do not exist (yet) are skipped and returned.
pub fn set_sensitive_inodes(
    ebpf: &mut Ebpf,
    paths: &[std::path::PathBuf],
    mode: u32,
) -> Result<Vec<std::path::PathBuf>, LoaderError> {
    use std::os::unix::fs::MetadataExt;
    let mut missing = Vec::new();
    let mut keys = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(md) if md.is_file() => {
                keys.push([kernel_dev(md.dev()), md.ino()]);
            }
            _ => missing.push(p.clone()),
        }
    }
    insert_set(ebpf, maps::SENSITIVE_INODES, keys)?;
    set_single(ebpf, maps::SENSITIVE_MODE, mode)?;
    Ok(missing)
}

/// LPM key for a sensitive path: a tree ("/root/.ssh/", trailing slash) matches
/// everything under it; a file ("/etc/shadow") matches exactly, its NUL included.
pub fn sensitive_key(p: &std::path::Path) -> (u32, [u8; PREFIX_MAX_LEN]) {
    let s = p.to_string_lossy();
    let mut b = s.as_bytes().to_vec();
    if !s.ends_with('/') {
        b.push(0);
    }
    let n = b.len().min(PREFIX_MAX_LEN);
    let mut data = [0u8; PREFIX_MAX_LEN];
    data[..n].copy_from_slice(&b[..n]);
    ((n * 8) as u32, data)
}

#[cfg(test)]
mod tests {
    /// io_uring_complete's format as 6.1, 6.12 and 6.18 print it.
    const URING_FORMAT: &str = "name: io_uring_complete
ID: 2141
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;
\tfield:u64 user_data;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int res;\toffset:32;\tsize:4;\tsigned:1;
\tfield:unsigned cflags;\toffset:36;\tsize:4;\tsigned:0;
";

    #[test]
    fn the_uring_program_attaches_only_where_the_format_is_what_it_reads() {
        assert_eq!(super::check_uring_format(URING_FORMAT), Ok(()));
        // A kernel that moved the result, or has no `req`: not followed, and said why.
        let moved = URING_FORMAT.replace("res;\toffset:32", "res;\toffset:40");
        let why = super::check_uring_format(&moved).expect_err("moved");
        assert!(why.contains("res at Some((40, 4))"), "{why}");
        let none = URING_FORMAT.replace("void * req;", "void * request;");
        let why = super::check_uring_format(&none).expect_err("no req");
        assert!(why.contains("req at None"), "{why}");
        assert!(super::check_uring_format("").is_err());
    }

    #[test]
    fn what_io_uring_hides_is_named_by_what_is_followed() {
        let why = "kernel.io_uring_disabled = 0";
        // Tracepoints, both programs attached: what they cannot follow.
        let all = super::uring_unseen(false, true, true, why);
        assert!(
            all.contains("fixed-file slots")
                && all.contains("renames, links and unlinks whose completion the ring skips")
                && !all.contains("unlinks through io_uring")
                && all.ends_with(
                    "renames, links and unlinks followed; kernel.io_uring_disabled = 0)"
                ),
            "{all}"
        );
        // Tracepoints, nothing attached: every open, rename, link and unlink.
        let none = super::uring_unseen(false, false, false, why);
        assert_eq!(
            none,
            "files opened through io_uring; renames, links and unlinks through io_uring (kernel.io_uring_disabled = 0)"
        );
        // BPF-LSM sees opens; the renames as the submission program allows.
        let lsm = super::uring_unseen(true, false, true, why);
        assert!(
            !lsm.contains("opened") && !lsm.contains("fixed-file"),
            "{lsm}"
        );
        assert!(
            lsm.contains("(opens are seen, renames, links and unlinks followed;"),
            "{lsm}"
        );
        let lsm_old = super::uring_unseen(true, false, false, why);
        assert!(
            lsm_old.starts_with("renames, links and unlinks through io_uring (opens are seen;"),
            "{lsm_old}"
        );
    }

    #[test]
    fn x32_syscalls_are_named_unseen_where_they_run() {
        let why = super::x32_unseen(true).expect("named");
        assert!(why.contains("x32") && why.contains("syscall.x32"), "{why}");
        assert_eq!(super::x32_unseen(false), None);
    }

    /// Where the probe's child is killed (a seccomp filter), the build
    /// configuration answers: Debian's builds x32 and leaves it off unless booted
    /// with `syscall.x32=y`; RHEL's does not build it; upstream's runs it when built.
    #[test]
    fn x32_from_the_kernel_config() {
        let debian = "CONFIG_X86_X32_ABI=y\nCONFIG_X86_X32_DISABLED=y\n";
        assert!(!super::x32_from_config(debian, "quiet"));
        assert!(super::x32_from_config(debian, "quiet syscall.x32=y"));
        assert!(super::x32_from_config("CONFIG_X86_X32_ABI=y\n", ""));
        assert!(!super::x32_from_config(
            "# CONFIG_X86_X32_ABI is not set\n",
            "syscall.x32=y"
        ));
        assert!(!super::x32_from_config("", ""));
    }

    /// The probe asks the kernel: where x32 is compiled out (this kernel kind's
    /// config has no CONFIG_X86_X32_ABI) it cannot answer yes.
    #[test]
    fn the_x32_probe_follows_the_kernel_config() {
        let config = std::process::Command::new("sh")
            .args([
                "-c",
                "zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r) 2>/dev/null",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if config
            .lines()
            .any(|l| l == "# CONFIG_X86_X32_ABI is not set")
        {
            assert!(!super::x32_syscalls_run());
        }
    }
}
