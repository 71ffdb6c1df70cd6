// SPDX-License-Identifier: GPL-2.0-only
//! The fanotify exec-sensor backend: the last fallback, for kernels where neither
//! BPF-LSM nor the `sched_process_exec` tracepoint can be used (or when
//! `sensors.exec_backend: fanotify` forces it). It applies the same policy as the
//! kernel program (`exec.cgroup` scope, `exec.world_writable` trees, `all_execs`,
//! web-server users) and produces the same [`ExecEvent`] into the same queue.
//!
//! One content-class fanotify group with `FAN_OPEN_EXEC_PERM` filesystem marks on
//! the world-writable trees and on `exec.fanotify_roots`. The kernel holds each exec
//! of a file on a marked filesystem in `open_exec` until this thread answers, so the
//! process is still its old image while we read its lineage from /proc; then:
//! - enforcing (`exec.enforce` without `dry_run`): `FAN_DENY` for a violation, and
//!   execve fails with EPERM before the new image exists: a real deny, not a kill;
//! - otherwise `FAN_ALLOW`, always. Our own errors answer `FAN_ALLOW` (fail open).
//!
//! If the agent dies, closing the group answers every held exec with allow.
//!
//! One exec opens several files: a script, its interpreter, the ELF interpreter
//! (ld.so). The file header says which interpreter comes next, so those opens by
//! the same process are followed as part of the exec, not reported as execs of
//! their own (unless one lives in a world-writable tree). argv exists only once the
//! exec has replaced the image and laid out its stack: it is read from /proc once
//! the end of the process's environment area (`env_end` in /proc/<pid>/stat, the
//! last thing the kernel sets) moved, at most [`ARGV_WAIT`] later.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::FileExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use agent_common::{
    egress::{mode, Decision},
    exec::{ExecEvent, ExecStat, ARGS_MAX_LEN},
    EventHeader, EventKind, COMM_LEN, EVENT_VERSION, PATH_MAX_LEN,
};

use crate::{
    config,
    events::{PipelineStats, SensorEvent, Sinks},
    fanotify::{mark_filesystem, FanotifyError},
};

const METADATA_LEN: usize = 24;
const FAN_Q_OVERFLOW: u64 = 0x4000;
/// How long after an exec was allowed its argv is waited for.
pub const ARGV_WAIT: Duration = Duration::from_millis(500);
/// Poll step when nothing is followed (bounds how late shutdown is seen) ...
const IDLE_POLL: Duration = Duration::from_millis(200);
/// ... and while an exec is followed.
const FOLLOW_POLL: Duration = Duration::from_micros(100);
/// Execs followed at once (older ones are reported without argv when full).
const INFLIGHT_MAX: usize = 4096;
/// Bytes of a file header read to find its interpreter (the kernel's BINPRM_BUF_SIZE).
const HEADER_LEN: usize = 256;
/// Program headers looked at for PT_INTERP.
const MAX_PHDRS: usize = 64;

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
    pub fn new(cfg: &config::Exec, web_uids: &[u32]) -> Result<Self, FanotifyError> {
        let scope = if cfg.cgroup.as_os_str().is_empty() {
            None
        } else {
            let root = crate::loader::cgroup2_root().ok_or_else(|| FanotifyError::Root {
                path: cfg.cgroup.display().to_string(),
                source: std::io::Error::other("no cgroup2 mount"),
            })?;
            let rel = cfg
                .cgroup
                .strip_prefix(&root)
                .map_err(|_| FanotifyError::Root {
                    path: cfg.cgroup.display().to_string(),
                    source: std::io::Error::other(format!(
                        "not under the cgroup2 mount {}",
                        root.display()
                    )),
                })?;
            Some(format!("/{}", rel.display()))
        };
        Ok(Self {
            mode: crate::loader::enforcement_mode(cfg.enforce, cfg.dry_run),
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

    fn in_scope(&self, pid: u32) -> bool {
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

    fn world_writable(&self, path: &Path) -> bool {
        self.world_writable.iter().any(|w| path.starts_with(w))
    }

    /// The decision for an exec of `path` by a process of `uid`; None: not reported.
    fn decide(&self, path: &Path, uid: u32) -> Option<(Decision, bool)> {
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
    /// A kernel exec event whose name was relative (`cd /tmp; ./x`): the kernel
    /// program cannot match it against the trees, so resolve it against the
    /// process's cwd and decide here, as the kernel would have. Enforcing, the process
    /// is killed now: later than the kernel's kill (it has started), but stopped.
    pub fn resolve_relative(&self, ev: &mut ExecEvent) -> Relative {
        use agent_common::exec::flags;
        if ev.flags & flags::RELATIVE == 0 {
            return Relative::NotRelative;
        }
        let Ok(cwd) = std::fs::read_link(format!("/proc/{}/cwd", ev.tgid)) else {
            return Relative::Unresolved;
        };
        let joined = cwd.join(crate::events::exec_path(ev));
        // A file removed since cannot be canonicalized: `components` drops the `./`.
        let path = std::fs::canonicalize(&joined)
            .unwrap_or_else(|_| joined.components().collect::<PathBuf>());
        set_path(ev, &path);
        ev.flags &= !flags::RELATIVE;
        if !self.world_writable(&path) {
            return Relative::Resolved { killed: false };
        }
        ev.flags |= flags::WORLD_WRITABLE;
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
        ev.decision = decision as u32;
        Relative::Resolved { killed }
    }
}

/// An initialized group with its marks, ready to run.
pub struct FanotifyExec {
    fd: OwnedFd,
    policy: ExecPolicy,
    /// The roots whose filesystems are marked (for /components).
    pub marked: Vec<PathBuf>,
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

impl FanotifyExec {
    /// Create the group and mark the filesystem of every world-writable tree and
    /// every root in `roots` that exists (each filesystem once).
    pub fn new(policy: ExecPolicy, roots: &[PathBuf]) -> Result<Self, FanotifyError> {
        // SAFETY: plain syscall; the result is checked and owned.
        let fd = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
            )
        };
        if fd < 0 {
            return Err(FanotifyError::Init(errno()));
        }
        // SAFETY: fd was just returned to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut devs = HashSet::new();
        let mut marked = Vec::new();
        for root in policy.world_writable.iter().chain(roots) {
            let Ok(meta) = std::fs::metadata(root) else {
                continue;
            };
            if !devs.insert(meta.dev()) {
                continue;
            }
            mark_filesystem(fd.as_raw_fd(), root, libc::FAN_OPEN_EXEC_PERM)?;
            marked.push(root.clone());
        }
        Ok(Self { fd, policy, marked })
    }

    /// Answer and report execs until `shutdown`. Blocking: run it on its own thread
    /// (`spawn_blocking`), so answers never wait for the async runtime.
    pub fn run(
        self,
        sinks: Sinks,
        stats: Arc<PipelineStats>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let mut st = State {
            policy: self.policy,
            inflight: HashMap::new(),
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // While an exec is followed, look at it every 100 µs: its argv can only
            // be read between the new image and the process's exit.
            let timeout = if st.inflight.is_empty() {
                IDLE_POLL
            } else {
                FOLLOW_POLL
            };
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, a valid timeout, no signal mask.
            if unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) } < 0 {
                let e = errno();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // Execs whose image was replaced are finished once the queue is drained:
            // their interpreter opens were queued before the replacement.
            let done = st.finished();
            loop {
                // SAFETY: reading into a buffer we own, of its length.
                let n =
                    unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    let e = errno();
                    match e.kind() {
                        std::io::ErrorKind::WouldBlock => break,
                        std::io::ErrorKind::Interrupted => continue,
                        _ => return Err(e),
                    }
                }
                if n == 0 {
                    break;
                }
                st.parse(self.fd.as_raw_fd(), &buf[..n as usize], &sinks, &stats);
            }
            for (pid, since) in done {
                if st.inflight.get(&pid).is_some_and(|f| f.since == since) {
                    if let Some(f) = st.inflight.remove(&pid) {
                        f.finish(pid, &sinks, &stats);
                    }
                }
            }
        }
    }
}

/// An exec being followed: allowed, its image not yet replaced (or just replaced).
struct Inflight {
    /// The files whose exec-open by this process is part of this exec.
    expect: Vec<PathBuf>,
    /// `env_end` before the exec: it moves when the new image's stack is laid out.
    env_end: u64,
    since: Instant,
    /// The event to send when argv is known (None: the exec is not reported).
    event: Option<Box<ExecEvent>>,
}

impl Inflight {
    fn finish(self, pid: u32, sinks: &Sinks, stats: &PipelineStats) {
        let Some(mut ev) = self.event else { return };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if proc_stat(pid).is_some_and(|s| s.replaced(self.env_end)) {
                set_args(&mut ev, &cmdline);
                if let Some(comm) = comm_of(pid) {
                    ev.comm = comm;
                }
            }
        }
        send(sinks, stats, *ev);
    }
}

struct State {
    policy: ExecPolicy,
    inflight: HashMap<u32, Inflight>,
}

impl State {
    /// The followed execs whose image was replaced, whose process is gone, or whose
    /// wait is over.
    /// Each with its start, so an exec begun since by the same process stays.
    fn finished(&self) -> Vec<(u32, Instant)> {
        self.inflight
            .iter()
            .filter(|(pid, f)| {
                f.since.elapsed() >= ARGV_WAIT
                    || proc_stat(**pid).is_none_or(|s| s.replaced(f.env_end))
            })
            .map(|(pid, f)| (*pid, f.since))
            .collect()
    }

    fn parse(&mut self, group: i32, buf: &[u8], sinks: &Sinks, stats: &PipelineStats) {
        let mut at = 0;
        while at + METADATA_LEN <= buf.len() {
            let event_len =
                u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            if event_len < METADATA_LEN || at + event_len > buf.len() {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let ev = &buf[at..at + event_len];
            at += event_len;
            let mask = u64::from_ne_bytes(ev[8..16].try_into().unwrap_or([0; 8]));
            let fd = i32::from_ne_bytes(ev[16..20].try_into().unwrap_or([0; 4]));
            let pid = u32::from_ne_bytes(ev[20..24].try_into().unwrap_or([0; 4]));
            if mask & FAN_Q_OVERFLOW != 0 {
                stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
            }
            if fd < 0 {
                continue;
            }
            // SAFETY: the kernel handed us this fd; it is ours to close.
            let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            let decision = if mask & libc::FAN_OPEN_EXEC_PERM != 0 {
                stats.received.fetch_add(1, Ordering::Relaxed);
                self.on_exec(&file, pid, sinks, stats)
            } else {
                Decision::Allowed
            };
            // Every permission event is answered, whatever happened above.
            respond(group, fd, decision == Decision::Denied);
            if decision == Decision::Denied {
                stats.exec[ExecStat::Denied as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Check one exec-open and start following or report it. Never fails: what
    /// cannot be read is allowed.
    fn on_exec(&mut self, file: &File, pid: u32, sinks: &Sinks, stats: &PipelineStats) -> Decision {
        let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) else {
            stats.unresolved.fetch_add(1, Ordering::Relaxed);
            return Decision::Allowed;
        };
        let next = interpreter(file);
        // The interpreter of an exec already followed: part of it.
        if let Some(f) = self.inflight.get_mut(&pid) {
            if f.expect.contains(&path) && !self.policy.world_writable(&path) {
                f.expect = next.into_iter().collect();
                return Decision::Allowed;
            }
        }
        if !self.policy.in_scope(pid) {
            return Decision::Allowed;
        }
        stats.exec[ExecStat::Checked as usize].fetch_add(1, Ordering::Relaxed);
        let Some(pst) = proc_stat(pid) else {
            return Decision::Allowed;
        };
        let (uid, gid) =
            crate::events::proc_identity(pid).map_or((u32::MAX, u32::MAX), |(u, g, _)| (u, g));
        let reported = self.policy.decide(&path, uid);
        let event = reported.map(|(decision, ww)| {
            if ww {
                stats.exec[ExecStat::Violations as usize].fetch_add(1, Ordering::Relaxed);
            }
            Box::new(exec_event(pid, uid, gid, &pst, &path, decision, ww))
        });
        let decision = reported.map_or(Decision::Allowed, |(d, _)| d);
        if decision == Decision::Denied {
            // The exec fails here: nothing more to follow; argv never existed.
            if let Some(ev) = event {
                send(sinks, stats, *ev);
            }
            return decision;
        }
        if self.inflight.len() >= INFLIGHT_MAX {
            // Full: report the oldest without waiting for its argv.
            if let Some(old) = self
                .inflight
                .iter()
                .min_by_key(|(_, f)| f.since)
                .map(|(p, _)| *p)
            {
                if let Some(f) = self.inflight.remove(&old) {
                    f.finish(old, sinks, stats);
                }
            }
        }
        // A new exec by a process still followed (its earlier one failed): report that.
        if let Some(f) = self.inflight.remove(&pid) {
            f.finish(pid, sinks, stats);
        }
        self.inflight.insert(
            pid,
            Inflight {
                expect: next.into_iter().collect(),
                env_end: pst.env_end,
                since: Instant::now(),
                event,
            },
        );
        decision
    }
}

fn send(sinks: &Sinks, stats: &PipelineStats, ev: ExecEvent) {
    if sinks.net.try_send(SensorEvent::Exec(ev)).is_err() {
        stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn respond(group: i32, fd: i32, deny: bool) {
    let resp = libc::fanotify_response {
        fd,
        response: if deny {
            libc::FAN_DENY
        } else {
            libc::FAN_ALLOW
        },
    };
    // SAFETY: writing a complete fanotify_response to the group fd.
    let n = unsafe {
        libc::write(
            group,
            (&resp as *const libc::fanotify_response).cast(),
            std::mem::size_of::<libc::fanotify_response>(),
        )
    };
    if n < 0 {
        tracing::warn!(error = %errno(), fd, "fanotify exec response failed.");
    }
}

/// The fields of /proc/<pid>/stat used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) ppid: u32,
    env_end: u64,
}

impl ProcStat {
    /// The image was replaced since `before` was read, and its stack laid out:
    /// between the two the mm is new but `env_end` still 0.
    fn replaced(&self, before: u64) -> bool {
        self.env_end != before && self.env_end != 0
    }
}

pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// comm may hold spaces and parens: the fields after the last ')' are fixed
/// (field 3 is the state; ppid is field 4, env_end field 51).
fn parse_stat(s: &str) -> Option<ProcStat> {
    let rest: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some(ProcStat {
        ppid: rest.get(1)?.parse().ok()?,
        env_end: rest.get(48)?.parse().ok()?,
    })
}

/// A process's comm (None when it has exited).
fn comm_of(pid: u32) -> Option<[u8; COMM_LEN]> {
    let c = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    Some(comm_bytes(c.strip_suffix(b"\n").unwrap_or(&c)))
}

/// `name` as a kernel comm: cut to 15 bytes, NUL-padded.
fn comm_bytes(name: &[u8]) -> [u8; COMM_LEN] {
    let mut out = [0u8; COMM_LEN];
    let n = name.len().min(COMM_LEN - 1);
    out[..n].copy_from_slice(&name[..n]);
    out
}

/// The event's path, cut to what the wire type holds.
fn set_path(ev: &mut ExecEvent, path: &Path) {
    let p = path.as_os_str().as_bytes();
    let n = p.len().min(PATH_MAX_LEN - 1);
    ev.path = [0; PATH_MAX_LEN];
    ev.path[..n].copy_from_slice(&p[..n]);
    ev.path_len = n as u32;
}

fn set_args(ev: &mut ExecEvent, cmdline: &[u8]) {
    let n = cmdline.len().min(ARGS_MAX_LEN);
    ev.args[..n].copy_from_slice(&cmdline[..n]);
    ev.args_len = n as u32;
    ev.args_truncated = u32::from(cmdline.len() > ARGS_MAX_LEN);
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The event the kernel program would send, from what /proc says while the exec is
/// held: the process is still its old image, its parent and grandparent are final.
fn exec_event(
    pid: u32,
    uid: u32,
    gid: u32,
    pst: &ProcStat,
    path: &Path,
    decision: Decision,
    world_writable: bool,
) -> ExecEvent {
    // SAFETY: ExecEvent is plain repr(C) data; all-zero is a valid value.
    let mut ev: ExecEvent = unsafe { std::mem::zeroed() };
    ev.header = EventHeader {
        kind: EventKind::Exec as u16,
        version: EVENT_VERSION,
        _pad: 0,
        len: std::mem::size_of::<ExecEvent>() as u32,
        ktime_ns: monotonic_ns(),
    };
    ev.pid = pid;
    ev.tgid = pid;
    ev.uid = uid;
    ev.gid = gid;
    // The kernel names the new image after the exec'd file; /proc's comm replaces
    // this once the exec is done.
    ev.comm = comm_bytes(path.file_name().map(|n| n.as_bytes()).unwrap_or_default());
    ev.cgroup_id = 0;
    ev.decision = decision as u32;
    set_path(&mut ev, path);
    ev.flags = if world_writable {
        agent_common::exec::flags::WORLD_WRITABLE
    } else {
        0
    };
    ev.ppid = pst.ppid;
    ev.parent_comm = comm_of(pst.ppid).unwrap_or_default();
    if let Some(gp) = proc_stat(pst.ppid).map(|s| s.ppid).filter(|p| *p != 0) {
        ev.gppid = gp;
        ev.gp_comm = comm_of(gp).unwrap_or_default();
    }
    ev
}

/// The interpreter the kernel opens next for this file: a script's `#!` line, or
/// an ELF's PT_INTERP (ld.so). Resolved like the event paths.
fn interpreter(file: &File) -> Option<PathBuf> {
    let mut head = [0u8; HEADER_LEN];
    let n = file.read_at(&mut head, 0).ok()?;
    let raw = parse_interpreter(&head[..n], |off, len| {
        let mut v = vec![0u8; len];
        let got = file.read_at(&mut v, off).ok()?;
        v.truncate(got);
        Some(v)
    })?;
    let p = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    Some(std::fs::canonicalize(&p).unwrap_or(p))
}

/// The interpreter named by a file header; `read(off, len)` reads more of the file
/// (ELF program headers). Malformed headers name none.
fn parse_interpreter(head: &[u8], read: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|b| *b == b'\n').next()?;
        let word = line
            .split(|b| *b == b' ' || *b == b'\t')
            .find(|w| !w.is_empty())?;
        return Some(word.to_vec());
    }
    if head.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = *head.get(5)? == 1;
    let u16_at = |b: &[u8], o: usize| -> Option<u64> {
        let a: [u8; 2] = b.get(o..o + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        } as u64)
    };
    let u32_at = |b: &[u8], o: usize| -> Option<u64> {
        let a: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        } as u64)
    };
    let u64_at = |b: &[u8], o: usize| -> Option<u64> {
        let a: [u8; 8] = b.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    };
    let (phoff, phentsize, phnum) = if wide {
        (u64_at(head, 32)?, u16_at(head, 54)?, u16_at(head, 56)?)
    } else {
        (u32_at(head, 28)?, u16_at(head, 42)?, u16_at(head, 44)?)
    };
    let min_ent = if wide { 56 } else { 32 };
    if (phentsize as usize) < min_ent || phentsize > 256 || phnum as usize > MAX_PHDRS {
        return None;
    }
    let table = read(phoff, (phentsize * phnum) as usize)?;
    for ph in table.chunks_exact(phentsize as usize) {
        if u32_at(ph, 0)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if wide {
            (u64_at(ph, 8)?, u64_at(ph, 32)?)
        } else {
            (u32_at(ph, 4)?, u32_at(ph, 16)?)
        };
        if size == 0 || size > PATH_MAX_LEN as u64 {
            return None;
        }
        let mut s = read(off, size as usize)?;
        if let Some(z) = s.iter().position(|b| *b == 0) {
            s.truncate(z);
        }
        return (!s.is_empty()).then_some(s);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(p: &str) -> Option<Vec<u8>> {
        let f = File::open(p).ok()?;
        let mut head = [0u8; HEADER_LEN];
        let n = f.read_at(&mut head, 0).ok()?;
        parse_interpreter(&head[..n], |off, len| {
            let mut v = vec![0u8; len];
            let got = f.read_at(&mut v, off).ok()?;
            v.truncate(got);
            Some(v)
        })
    }

    #[test]
    fn interpreters_of_scripts_and_elf_binaries() {
        let none = |_: u64, _: usize| None;
        assert_eq!(
            parse_interpreter(b"#!/bin/sh\necho", none).as_deref(),
            Some(&b"/bin/sh"[..])
        );
        assert_eq!(
            parse_interpreter(b"#! \t/usr/bin/env python3 -u\n", none).as_deref(),
            Some(&b"/usr/bin/env"[..])
        );
        assert_eq!(parse_interpreter(b"#!\n", none), None);
        assert_eq!(parse_interpreter(b"echo hi\n", none), None);
        // A real dynamic executable names ld.so; the agent's test binary is one.
        let me = std::env::current_exe().expect("exe");
        let interp = from_file(me.to_str().expect("utf8")).expect("PT_INTERP");
        assert!(
            interp.starts_with(b"/lib") && interp.windows(3).any(|w| w == b"ld-"),
            "{}",
            String::from_utf8_lossy(&interp)
        );
    }

    #[test]
    fn hostile_elf_headers_name_no_interpreter_and_never_panic() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        // phentsize too small, too many headers, a table that cannot be read.
        h[54] = 8;
        h[56] = 1;
        assert_eq!(parse_interpreter(&h, |_, _| None), None);
        h[54] = 56;
        h[56] = 200;
        assert_eq!(parse_interpreter(&h, |_, _| None), None);
        h[56] = 1;
        assert_eq!(parse_interpreter(&h, |_, _| None), None);
        // A PT_INTERP whose size is absurd.
        let mut ph = vec![0u8; 56];
        ph[0] = 3;
        ph[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_interpreter(&h, |_, _| Some(ph.clone())), None);
        // Short tables and every truncation of the header.
        assert_eq!(parse_interpreter(&h, |_, _| Some(vec![3, 0, 0])), None);
        for n in 0..h.len() {
            let _ = parse_interpreter(&h[..n], |_, _| None);
        }
        h[4] = 9;
        assert_eq!(parse_interpreter(&h, |_, _| None), None);
    }

    #[test]
    fn proc_stat_fields_survive_hostile_comms() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = "R".into(); // state
        fields[1] = "4242".into(); // ppid
        fields[48] = "140737488347136".into(); // env_end
        let line = format!("77 (a) b) (c ) {}", fields.join(" "));
        assert_eq!(
            parse_stat(&line),
            Some(ProcStat {
                ppid: 4242,
                env_end: 140737488347136
            })
        );
        assert_eq!(parse_stat("77 (x) R 1"), None);
        assert_eq!(parse_stat("no parens at all"), None);
        let own = proc_stat(std::process::id()).expect("own stat");
        assert_eq!(own.ppid, std::os::unix::process::parent_id());
        assert_ne!(own.env_end, 0);
        assert!(own.replaced(1) && !own.replaced(own.env_end));
        assert!(
            !ProcStat {
                ppid: 1,
                env_end: 0
            }
            .replaced(5),
            "new mm, stack not laid out"
        );
    }

    #[test]
    fn hostile_event_buffers_are_counted_never_a_panic() {
        let (files, _f) = tokio::sync::mpsc::channel(4);
        let (net, mut net_rx) = tokio::sync::mpsc::channel(4);
        let sinks = Sinks { files, net };
        let stats = PipelineStats::default();
        let mut st = State {
            policy: ExecPolicy {
                mode: mode::ENFORCE,
                scope: None,
                world_writable: vec![PathBuf::from("/tmp")],
                all_execs: true,
                web_uids: HashSet::new(),
            },
            inflight: HashMap::new(),
        };
        // event_len shorter than the metadata, then longer than the buffer.
        let mut ev = vec![0u8; METADATA_LEN];
        ev[0] = 8;
        st.parse(-1, &ev, &sinks, &stats);
        ev[0] = 200;
        st.parse(-1, &ev, &sinks, &stats);
        assert_eq!(stats.decode_errors.load(Ordering::Relaxed), 2);
        // A permission event without an fd (nothing to answer), and an overflow.
        ev[0] = METADATA_LEN as u8;
        ev[8..16].copy_from_slice(&(libc::FAN_OPEN_EXEC_PERM | FAN_Q_OVERFLOW).to_ne_bytes());
        ev[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        st.parse(-1, &ev, &sinks, &stats);
        assert_eq!(stats.queue_dropped.load(Ordering::Relaxed), 1);
        for n in 0..ev.len() {
            st.parse(-1, &ev[..n], &sinks, &stats);
        }
        assert!(net_rx.try_recv().is_err(), "no event from garbage");
        assert!(st.inflight.is_empty());
    }

    #[test]
    fn relative_names_resolve_against_the_cwd() {
        use agent_common::exec::flags;
        let cwd = std::env::current_dir().expect("cwd");
        let cwd = std::fs::canonicalize(&cwd).expect("canonical");
        let ev = |pid: u32| {
            // SAFETY: plain repr(C) data; all-zero is valid.
            let mut ev: ExecEvent = unsafe { std::mem::zeroed() };
            ev.tgid = pid;
            ev.flags = flags::RELATIVE;
            ev.path[..10].copy_from_slice(b"./dropper\0");
            ev.path_len = 9;
            ev
        };
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
        assert_eq!(
            crate::events::exec_path(&e),
            cwd.join("dropper").display().to_string()
        );
        assert_eq!(e.flags, flags::WORLD_WRITABLE);
        assert_eq!(e.decision, Decision::DryRun as u32);
        // Outside the trees: resolved, not a violation.
        p.world_writable = vec![PathBuf::from("/nonexistent-tree")];
        let mut e = ev(std::process::id());
        assert_eq!(
            p.resolve_relative(&mut e),
            Relative::Resolved { killed: false }
        );
        assert_eq!(e.flags, 0);
        assert_eq!(e.decision, Decision::Allowed as u32);
        // A process that is gone, and an absolute name: nothing to do.
        let mut gone = ev(u32::MAX - 1);
        assert_eq!(p.resolve_relative(&mut gone), Relative::Unresolved);
        let mut abs = ev(std::process::id());
        abs.flags = 0;
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
