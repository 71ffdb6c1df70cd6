// SPDX-License-Identifier: GPL-2.0-only
//! The exec sensor: the `sched_process_exec` program with its policy, scope and
//! world-writable trees; the same policy in userspace (for the fanotify backend and
//! relative names); and what an exec becomes (behaviour checks, findings).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
};

use agent_common::{
    egress::{mode, Decision},
    exec::ExecStat,
    maps,
    maps::progs,
};
use api::model::Severity;
use aya::{
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
    Ebpf,
};

use super::{
    event::{Exec, PipelineStats},
    file::{tracepoint_exists, watch_key},
    procfs::lineage,
};
use crate::{
    config,
    detection::Detection,
    kernel::{
        cgroup2_root, enforcement_mode, insert_path_prefixes, insert_set, mode_label, prog_err,
        program, set_single, Component, ComponentState, LoaderError,
    },
    store::NewFinding,
};

/// Attach the exec sensor with its policy, scope and world-writable trees: the raw
/// tracepoint that walks the file the kernel runs when the kernel's struct offsets
/// are known (`resolved`), else the `sched:sched_process_exec` tracepoint and the
/// typed name.
pub fn attach_exec(
    ebpf: &mut Ebpf,
    cfg: &config::Exec,
    resolved: bool,
) -> Result<Vec<Component>, LoaderError> {
    use std::os::unix::fs::MetadataExt;

    use agent_common::{exec::ExecConfig, WATCH_INCLUDE};
    let policy = ExecConfig {
        mode: enforcement_mode(cfg.enforce, cfg.dry_run),
        scoped: u32::from(!cfg.cgroup.as_os_str().is_empty()),
        all_execs: u32::from(cfg.all_execs),
        _pad: 0,
    };
    if policy.scoped != 0 {
        // A cgroup v2 id is its directory's inode number.
        let id = std::fs::metadata(&cfg.cgroup)
            .map_err(|e| LoaderError::Pin {
                path: cfg.cgroup.display().to_string(),
                reason: e.to_string(),
            })?
            .ino();
        insert_set(ebpf, maps::EXEC_SCOPE, [id])?;
    }
    insert_path_prefixes(
        ebpf,
        maps::EXEC_DENY_PREFIXES,
        cfg.world_writable.iter().map(|p| watch_key(p)),
        WATCH_INCLUDE,
    )?;
    set_single(ebpf, maps::EXEC_CONFIG, policy)?;
    let mode = Some(mode_label(policy.mode));
    if resolved {
        let name = progs::EXEC_RESOLVED;
        let prog: &mut RawTracePoint = program(ebpf, name)?;
        prog.load().map_err(prog_err(name))?;
        prog.attach("sched_process_exec").map_err(prog_err(name))?;
        let image = Component {
            name: name.to_string(),
            kind: "raw_tracepoint",
            target: "sched_process_exec".into(),
            state: ComponentState::Attached,
            mode,
            reason: None,
        };
        let mut out = vec![image, attach_script_follow(ebpf, mode)?];
        out.extend(attach_script_follow32(ebpf, mode));
        return Ok(out);
    }
    let name = progs::SCHED_PROCESS_EXEC;
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load().map_err(prog_err(name))?;
    prog.attach("sched", "sched_process_exec")
        .map_err(prog_err(name))?;
    Ok(vec![Component {
        name: name.to_string(),
        kind: "tracepoint",
        target: "sched:sched_process_exec".into(),
        state: ComponentState::Attached,
        mode,
        reason: Some("no kernel struct offsets: execs matched by the name typed".into()),
    }])
}

/// The opens of a freshly exec'd interpreter, followed to its script: exits first
/// (an enter without its exit would only leave stale pending entries).
const SCRIPT_TRACEPOINTS: &[(&str, &[&str])] = &[
    (
        progs::SCRIPT_EXIT,
        &["sys_exit_openat", "sys_exit_open", "sys_exit_openat2"],
    ),
    (
        progs::SCRIPT_OPENAT,
        &["sys_enter_openat", "sys_enter_openat2"],
    ),
    (progs::SCRIPT_OPEN, &["sys_enter_open"]),
];

fn attach_script_follow(
    ebpf: &mut Ebpf,
    mode: Option<&'static str>,
) -> Result<Component, LoaderError> {
    let mut attached = Vec::new();
    let name = progs::EXEC_EXIT;
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load().map_err(prog_err(name))?;
    prog.attach("sched", "sched_process_exit")
        .map_err(prog_err(name))?;
    attached.push("sched:sched_process_exit".to_string());
    for (name, events) in SCRIPT_TRACEPOINTS {
        let name: &'static str = name;
        let prog: &mut TracePoint = program(ebpf, name)?;
        prog.load().map_err(prog_err(name))?;
        for event in events.iter().filter(|e| tracepoint_exists(e)) {
            prog.attach("syscalls", event).map_err(prog_err(name))?;
            attached.push(format!("syscalls:{event}"));
        }
    }
    Ok(Component {
        name: "exec_scripts".into(),
        kind: "tracepoint",
        target: attached.join(","),
        state: ComponentState::Attached,
        mode,
        reason: None,
    })
}

/// The 32-bit opens of the interpreters followed to their scripts, where one of them
/// is a 32-bit program (libc6-i386's `/lib/ld-linux.so.2`): the script tracepoints
/// above are per-syscall ones, which never see 32-bit calls. Its program runs at the
/// end of every syscall on the host, so it is attached only where it has work; None
/// where no 32-bit interpreter is installed.
pub fn attach_script_follow32(ebpf: &mut Ebpf, mode: Option<&'static str>) -> Option<Component> {
    let ia32: Vec<PathBuf> = interpreter_paths()
        .into_iter()
        .filter(|p| is_elf32(p))
        .collect();
    if ia32.is_empty() || !cfg!(target_arch = "x86_64") {
        return None;
    }
    let name = progs::SCRIPT_EXIT32;
    let attached = (|| -> Result<(), String> {
        let btf = crate::kernel::kernel_btf()?;
        let prog: &mut BtfTracePoint = program(ebpf, name).map_err(|e| e.to_string())?;
        prog.load("sys_exit", &btf).map_err(|e| e.to_string())?;
        prog.attach().map_err(|e| e.to_string())?;
        Ok(())
    })();
    let (state, reason) = match attached {
        Ok(()) => (
            ComponentState::Attached,
            format!("32-bit interpreters followed to their scripts: {ia32:?}"),
        ),
        Err(e) => {
            tracing::warn!(error = %e, interpreters = ?ia32, "The 32-bit script program did not attach: scripts run by these interpreters are not followed.");
            (
                ComponentState::Failed,
                format!("scripts run by the 32-bit interpreters {ia32:?} are not followed: {e}"),
            )
        }
    };
    Some(Component {
        name: name.to_string(),
        kind: "tp_btf",
        target: "sys_exit".into(),
        state,
        mode,
        reason: Some(reason),
    })
}

/// An ELF file of class ELFCLASS32 (a 32-bit program), by its first five bytes.
fn is_elf32(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 5];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == *b"\x7fELF\x01")
}

/// Interpreters whose exec the kernel follows to the script they open: the shells,
/// the script languages a hosting server has, and the dynamic loader (`ld.so
/// /tmp/x`), wherever they are installed (each by its inode, so every name of one
/// is covered).
pub fn interpreter_paths() -> Vec<PathBuf> {
    const NAMES: &[&str] = &[
        "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "perl",
        "python", "python2", "python3", "php", "ruby", "node", "nodejs", "lua", "tclsh", "awk",
        "gawk", "mawk", "expect", "pwsh",
    ];
    // Versioned names: php8.2, python3.11, perl5.36.0, lua5.4, ...
    const VERSIONED: &[&str] = &["php", "python", "perl", "ruby", "lua", "node", "tclsh"];
    let mut out = Vec::new();
    for dir in [
        "/bin",
        "/usr/bin",
        "/usr/local/bin",
        "/opt/cpanel/bin",
        "/usr/sbin",
    ] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let versioned = VERSIONED.iter().any(|v| {
                name.strip_prefix(v).is_some_and(|rest| {
                    rest.starts_with(|c: char| c.is_ascii_digit())
                        && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
                })
            });
            if NAMES.contains(&name.as_str()) || versioned {
                out.push(e.path());
            }
        }
    }
    // The dynamic loaders: `ld.so /tmp/x` runs x without exec'ing it.
    for dir in [
        "/lib64",
        "/lib",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
    ] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("ld-linux") {
                out.push(e.path());
            }
        }
    }
    out
}

/// What the fanotify backend enforces and reports: the kernel program's policy.
#[derive(Debug, Clone)]
pub struct ExecPolicy {
    pub mode: u32,
    /// `/proc/<pid>/cgroup` path of the scope cgroup (processes directly in it).
    pub scope: Option<String>,
    pub world_writable: Vec<PathBuf>,
    pub all_execs: bool,
    pub web_uids: HashSet<u32>,
}

impl ExecPolicy {
    pub fn new(cfg: &config::Exec, web_uids: &[u32]) -> Result<Self, ScopeError> {
        let scope = if cfg.cgroup.as_os_str().is_empty() {
            None
        } else {
            let root = cgroup2_root().ok_or_else(|| ScopeError {
                path: cfg.cgroup.clone(),
                reason: "no cgroup2 mount".into(),
            })?;
            let rel = cfg.cgroup.strip_prefix(&root).map_err(|_| ScopeError {
                path: cfg.cgroup.clone(),
                reason: format!("not under the cgroup2 mount {}", root.display()),
            })?;
            Some(format!("/{}", rel.display()))
        };
        Ok(Self {
            mode: enforcement_mode(cfg.enforce, cfg.dry_run),
            scope,
            // Compare resolved paths: the event names the file, not the name used.
            world_writable: cfg
                .world_writable
                .iter()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                .collect(),
            all_execs: cfg.all_execs,
            web_uids: web_uids.iter().copied().collect(),
        })
    }

    pub fn in_scope(&self, pid: u32) -> bool {
        let Some(scope) = &self.scope else {
            return true;
        };
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("0::").map(|c| c == scope))
            })
            .unwrap_or(false)
    }

    pub fn world_writable(&self, path: &Path) -> bool {
        self.world_writable.iter().any(|w| path.starts_with(w))
    }

    /// The decision for an exec of `path` by a process of `uid`; None: not reported.
    pub fn decide(&self, path: &Path, uid: u32) -> Option<(Decision, bool)> {
        if self.world_writable(path) {
            return Some((
                match self.mode {
                    mode::ENFORCE => Decision::Denied,
                    mode::DRY_RUN => Decision::DryRun,
                    _ => Decision::Observed,
                },
                true,
            ));
        }
        (self.all_execs || self.web_uids.contains(&uid)).then_some((Decision::Allowed, false))
    }
}

/// What the agent made of an exec event's relative name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relative {
    /// The kernel matched an absolute name itself.
    NotRelative,
    /// The process was gone before its cwd could be read: nothing decided.
    Unresolved,
    /// Resolved; `killed` when a violation was stopped here, after the start.
    Resolved { killed: bool },
}

impl ExecPolicy {
    /// An exec whose name was relative (`cd /tmp; ./x`): the kernel program cannot
    /// match it against the trees, so resolve it against the process's cwd and decide
    /// here, as the kernel would have. Enforcing, the process is killed now: later
    /// than the kernel's kill (it has started), but stopped.
    pub fn resolve_relative(&self, ev: &mut Exec) -> Relative {
        if !ev.relative {
            return Relative::NotRelative;
        }
        let Ok(cwd) = std::fs::read_link(format!("/proc/{}/cwd", ev.tgid)) else {
            return Relative::Unresolved;
        };
        let joined = cwd.join(&ev.path);
        // A file removed since cannot be canonicalized: `components` drops the `./`.
        ev.path = std::fs::canonicalize(&joined)
            .unwrap_or_else(|_| joined.components().collect::<PathBuf>());
        ev.relative = false;
        if !self.world_writable(&ev.path) {
            return Relative::Resolved { killed: false };
        }
        ev.world_writable = true;
        let mut decision = match self.mode {
            mode::ENFORCE => Decision::Denied,
            mode::DRY_RUN => Decision::DryRun,
            _ => Decision::Observed,
        };
        let mut killed = false;
        if decision == Decision::Denied {
            let pid = nix::unistd::Pid::from_raw(ev.tgid as i32);
            killed = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok();
            if !killed {
                // It ran to its end already: a violation seen, not stopped.
                decision = Decision::Observed;
            }
        }
        ev.decision = decision;
        Relative::Resolved { killed }
    }
}

/// The exec scope cgroup could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("exec.cgroup {path}: {reason}")]
pub struct ScopeError {
    pub path: PathBuf,
    pub reason: String,
}

/// Execs from either backend become behaviour checks and, for a violation, an
/// `exec_world_writable` finding. Relative names from the kernel program are
/// resolved and decided here first.
#[derive(Clone)]
pub struct ExecFindings {
    pub policy: Option<ExecPolicy>,
    pub detection: Arc<Detection>,
    pub stats: Arc<PipelineStats>,
}

impl ExecFindings {
    pub async fn handle(&self, mut ev: Exec) {
        let relative = self
            .policy
            .as_ref()
            .map_or(Relative::NotRelative, |p| p.resolve_relative(&mut ev));
        let late_kill = match relative {
            Relative::Resolved { killed } => {
                if killed {
                    self.stats.exec[ExecStat::Killed as usize].fetch_add(1, Ordering::Relaxed);
                }
                killed
            }
            Relative::Unresolved => {
                self.stats.relative_gone.fetch_add(1, Ordering::Relaxed);
                false
            }
            Relative::NotRelative => false,
        };
        let findings = &self.detection.findings;
        let path = ev.path.display().to_string();
        for f in self.detection.behaviour.on_exec(&ev) {
            findings.report(f).await;
        }
        if ev.fileless && ev.uid != 0 {
            // A customer or web user running code that is on no filesystem (a memfd,
            // a file deleted first) or by descriptor: how droppers hide from scans.
            findings
                .report(NewFinding {
                    check: "exec_fileless".into(),
                    severity: Severity::High,
                    message: format!(
                        "Ran a program with no file on disk (memfd or deleted) or by file descriptor: {path}"
                    ),
                    details: exec_details(&ev),
                    lineage: exec_lineage(&ev),
                    key: Some(format!("{}|{path}", ev.uid)),
                    path: Some(path.clone()),
                    pid: Some(ev.tgid),
                    uid: Some(ev.uid),
                    process: Some(ev.comm.clone()),
                    ..Default::default()
                })
                .await;
        }
        let decision = ev.decision;
        if decision == Decision::Allowed {
            return; // all_execs / web-user reporting: behaviour checks only
        }
        let what = if ev.script {
            format!("Script in a world-writable tree run by {}", ev.comm)
        } else {
            "Executed from a world-writable tree".to_string()
        };
        let f = NewFinding {
            check: "exec_world_writable".into(),
            severity: Severity::High,
            message: format!(
                "{what}: {path}{}",
                match decision {
                    Decision::Denied if late_kill => {
                        " (killed after it started: a relative name, resolved by the agent)"
                    }
                    Decision::Denied if ev.lsm => " (denied before the image existed: BPF-LSM)",
                    Decision::Denied if ev.script => " (stopped before it read the script)",
                    Decision::Denied => " (stopped before its first instruction)",
                    _ => "",
                }
            ),
            details: exec_details(&ev),
            lineage: exec_lineage(&ev),
            // A dry run and a kill of the same file are two findings.
            key: Some(format!("{path}|{}", decision.as_str())),
            path: Some(path),
            pid: Some(ev.tgid),
            uid: Some(ev.uid),
            process: Some(ev.comm),
            ..Default::default()
        };
        findings.report(f).await;
    }
}

/// The exec's ancestors, nearest first: parent and grandparent as the kernel saw
/// them at the exec, then /proc for the rest (all of it from /proc when the kernel
/// had no offsets).
fn exec_lineage(ev: &Exec) -> Vec<api::model::Ancestor> {
    use super::procfs::{ancestors, LINEAGE_DEPTH};
    let known: Vec<api::model::Ancestor> = [&ev.parent, &ev.grandparent]
        .into_iter()
        .map_while(|a| a.as_ref())
        .map(|a| api::model::Ancestor {
            pid: a.tgid,
            name: a.comm.clone(),
        })
        .collect();
    let Some(last) = known.last() else {
        return ancestors(ev.tgid, LINEAGE_DEPTH);
    };
    let more = ancestors(last.pid, LINEAGE_DEPTH - known.len());
    known.into_iter().chain(more).collect()
}

/// Details of an exec finding: decision, argv, lineage (from the kernel; /proc when
/// the kernel had no offsets), cwd and exe of the parent (best effort from /proc).
fn exec_details(ev: &Exec) -> String {
    let argv = if ev.args.is_empty() {
        "unknown".to_string()
    } else {
        format!(
            "{:?}{}",
            ev.args,
            if ev.args_truncated { " (cut)" } else { "" }
        )
    };
    let lineage = match &ev.parent {
        Some(p) => {
            let pexe = std::fs::read_link(format!("/proc/{}/exe", p.tgid))
                .map(|x| format!(", exe {}", x.display()))
                .unwrap_or_default();
            let mut s = format!("parent {} ({}{pexe})", p.comm, p.tgid);
            if let Some(g) = &ev.grandparent {
                s.push_str(&format!(", grandparent {} ({})", g.comm, g.tgid));
            }
            s
        }
        None => lineage(ev.tgid),
    };
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", ev.tgid))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "unknown (process gone)".into());
    format!(
        "decision: {}; world_writable: {}; script: {}; fileless: {}; argv: {argv}; {lineage}; cwd: {cwd}",
        ev.decision.as_str(),
        ev.world_writable,
        ev.script,
        ev.fileless
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_32_bit_elf_files_are_32_bit_interpreters() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert!(is_elf32(&file("ld32", b"\x7fELF\x01\x01\x01\0rest")));
        assert!(!is_elf32(&file("ld64", b"\x7fELF\x02\x01\x01\0rest")));
        assert!(!is_elf32(&file("script", b"#!/bin/sh\necho\n")));
        assert!(!is_elf32(&file("short", b"\x7fEL")));
        assert!(!is_elf32(&dir.path().join("missing")));
        assert!(!is_elf32(dir.path()), "a directory");
    }

    fn exec(pid: u32, path: &str, relative: bool) -> Exec {
        Exec {
            pid,
            tgid: pid,
            uid: 0,
            gid: 0,
            comm: String::new(),
            path: PathBuf::from(path),
            decision: Decision::Allowed,
            relative,
            world_writable: false,
            script: false,
            fileless: false,
            lsm: false,
            parent: None,
            grandparent: None,
            args: vec![],
            args_truncated: false,
        }
    }

    #[test]
    fn relative_names_resolve_against_the_cwd() {
        let cwd = std::env::current_dir().expect("cwd");
        let cwd = std::fs::canonicalize(&cwd).expect("canonical");
        let ev = |pid: u32| exec(pid, "./dropper", true);
        let mut p = ExecPolicy {
            mode: mode::DRY_RUN,
            scope: None,
            world_writable: vec![cwd.clone()],
            all_execs: false,
            web_uids: HashSet::new(),
        };
        let mut e = ev(std::process::id());
        assert_eq!(
            p.resolve_relative(&mut e),
            Relative::Resolved { killed: false }
        );
        assert_eq!(e.path, cwd.join("dropper"));
        assert!(e.world_writable && !e.relative);
        assert_eq!(e.decision, Decision::DryRun);
        // Outside the trees: resolved, not a violation.
        p.world_writable = vec![PathBuf::from("/nonexistent-tree")];
        let mut e = ev(std::process::id());
        assert_eq!(
            p.resolve_relative(&mut e),
            Relative::Resolved { killed: false }
        );
        assert!(!e.world_writable && !e.relative);
        assert_eq!(e.decision, Decision::Allowed);
        // A process that is gone, and an absolute name: nothing to do.
        let mut gone = ev(u32::MAX - 1);
        assert_eq!(p.resolve_relative(&mut gone), Relative::Unresolved);
        let mut abs = exec(std::process::id(), "/bin/true", false);
        assert_eq!(p.resolve_relative(&mut abs), Relative::NotRelative);
    }

    #[test]
    fn policy_matches_the_kernel_programs() {
        let p = ExecPolicy {
            mode: mode::DRY_RUN,
            scope: None,
            world_writable: vec![PathBuf::from("/tmp")],
            all_execs: false,
            web_uids: [33].into_iter().collect(),
        };
        assert_eq!(
            p.decide(Path::new("/tmp/x/dropper"), 1000),
            Some((Decision::DryRun, true))
        );
        assert_eq!(p.decide(Path::new("/tmpfoo/x"), 1000), None);
        assert_eq!(
            p.decide(Path::new("/usr/bin/dash"), 33),
            Some((Decision::Allowed, false))
        );
        assert_eq!(p.decide(Path::new("/usr/bin/dash"), 0), None);
        let enforce = ExecPolicy {
            mode: mode::ENFORCE,
            all_execs: true,
            ..p
        };
        assert_eq!(
            enforce.decide(Path::new("/tmp/a"), 0),
            Some((Decision::Denied, true))
        );
        assert_eq!(
            enforce.decide(Path::new("/bin/ls"), 0),
            Some((Decision::Allowed, false))
        );
    }
}
