// SPDX-License-Identifier: GPL-2.0-only
//! The fanotify exec-sensor backend: the last fallback, for kernels where neither
//! BPF-LSM nor the `sched_process_exec` tracepoint can be used (or when
//! `sensors.exec_backend: fanotify` forces it). It applies the same policy as the
//! kernel program (`exec.cgroup` scope, `exec.world_writable` trees, `all_execs`,
//! web-server users) and produces the same [`Exec`] into the same queue.
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
    egress::Decision,
    exec::{ExecStat, ARGS_MAX_LEN},
    COMM_LEN, PATH_MAX_LEN,
};

use super::{
    event::{Ancestor, Exec, PipelineStats, SensorEvent, Sinks},
    exec::ExecPolicy,
    fanotify::{mark_filesystem, path_by_handle, FanotifyError},
    procfs::{comm_of, proc_identity, proc_stat, ProcStat},
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

/// What this backend cannot see, named in `/health` and `/capabilities`: fanotify
/// reports the files the kernel opens to exec (`FMODE_EXEC`), on marked filesystems.
pub const UNSEEN: [&str; 2] = [
    "scripts named to an interpreter (sh x, python3 x.py) or to the dynamic loader (ld.so x): the kernel execs the interpreter and the script is an ordinary read; #! scripts are seen",
    "fileless execs (a memfd run by descriptor or by /proc/self/fd): no file on a marked filesystem",
];

/// An initialized group with its marks, ready to run.
pub struct FanotifyExec {
    fd: OwnedFd,
    policy: ExecPolicy,
    /// The roots whose filesystems are marked (for /components).
    pub marked: Vec<PathBuf>,
    /// A directory fd on each marked filesystem, by device: where a file is found
    /// again by handle (see [`State::real_path`]).
    mounts: Vec<(u64, OwnedFd)>,
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
        let mut mounts = Vec::new();
        for root in policy.world_writable.iter().chain(roots) {
            let Ok(meta) = std::fs::metadata(root) else {
                continue;
            };
            if !devs.insert(meta.dev()) {
                continue;
            }
            mark_filesystem(fd.as_raw_fd(), root, libc::FAN_OPEN_EXEC_PERM)?;
            marked.push(root.clone());
            // open_by_handle_at refuses O_PATH fds: a plain directory open.
            if let Ok(dir) = File::open(root) {
                mounts.push((meta.dev(), OwnedFd::from(dir)));
            }
        }
        Ok(Self {
            fd,
            policy,
            marked,
            mounts,
        })
    }

    /// The exec policy it applies (to open the sensor again after a failure).
    pub fn policy(&self) -> &ExecPolicy {
        &self.policy
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
            mounts: self.mounts,
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
    event: Option<Box<Exec>>,
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
    mounts: Vec<(u64, OwnedFd)>,
}

/// The kernel's handle of an open file (`name_to_handle_at` with `AT_EMPTY_PATH`),
/// as `struct file_handle` in 4-byte words.
fn handle_of(file: &File) -> Option<Vec<u32>> {
    const MAX_HANDLE_SZ: u32 = 128;
    // handle_bytes, handle_type, then the handle.
    let mut words = vec![0u32; 2 + MAX_HANDLE_SZ as usize / 4];
    words[0] = MAX_HANDLE_SZ;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `words` is a struct file_handle with room for MAX_HANDLE_SZ bytes, as
    // its handle_bytes says; the empty path with AT_EMPTY_PATH names `file` itself.
    let r = unsafe {
        libc::name_to_handle_at(
            file.as_raw_fd(),
            c"".as_ptr(),
            words.as_mut_ptr().cast(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    (r == 0).then_some(words)
}

/// Does `path` name `m`'s file here (device and inode)?
fn names(path: &Path, m: &std::fs::Metadata) -> bool {
    std::fs::metadata(path).is_ok_and(|p| p.dev() == m.dev() && p.ino() == m.ino())
}

impl State {
    /// The path of an exec'd file as the agent's mounts show it. /proc/self/fd names
    /// a file through the mounts it was opened by, which can be mounts of another
    /// namespace: a customer's bind mount of a directory inside a watched tree,
    /// made in user and mount namespaces of their own, names it outside the tree.
    /// When that name is not this file here, the file is found again by its handle
    /// through a directory on its filesystem, which names it by where it is.
    fn real_path(&self, file: &File, path: PathBuf) -> PathBuf {
        let Ok(m) = file.metadata() else {
            return path;
        };
        if names(&path, &m) {
            return path;
        }
        let Some(mut handle) = handle_of(file) else {
            return path;
        };
        self.mounts
            .iter()
            .filter(|(dev, _)| *dev == m.dev())
            .filter_map(|(_, dir)| path_by_handle(dir, &mut handle))
            .find(|p| names(p, &m))
            .unwrap_or(path)
    }

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
        let path = self.real_path(file, path);
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
        let (uid, gid) = proc_identity(pid).map_or((u32::MAX, u32::MAX), |(u, g, _)| (u, g));
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

fn send(sinks: &Sinks, stats: &PipelineStats, ev: Exec) {
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

/// `name` as the kernel names a new image: its first 15 bytes.
fn comm_of_name(name: &[u8]) -> String {
    String::from_utf8_lossy(&name[..name.len().min(COMM_LEN - 1)]).into_owned()
}

/// argv from /proc/<pid>/cmdline, cut where the kernel program cuts its copy.
fn set_args(ev: &mut Exec, cmdline: &[u8]) {
    let n = cmdline.len().min(ARGS_MAX_LEN);
    ev.args = cmdline[..n]
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ev.args_truncated = cmdline.len() > ARGS_MAX_LEN;
}

/// The exec as the kernel program would report it, from what /proc says while the
/// exec is held: the process is still its old image, its parent and grandparent are
/// final.
fn exec_event(
    pid: u32,
    uid: u32,
    gid: u32,
    pst: &ProcStat,
    path: &Path,
    decision: Decision,
    world_writable: bool,
) -> Exec {
    let ancestor = |tgid: u32| Ancestor {
        tgid,
        comm: comm_of(tgid).unwrap_or_default(),
    };
    Exec {
        pid,
        tgid: pid,
        uid,
        gid,
        // The kernel names the new image after the exec'd file; /proc's comm replaces
        // this once the exec is done.
        comm: comm_of_name(path.file_name().map(|n| n.as_bytes()).unwrap_or_default()),
        path: path.to_path_buf(),
        decision,
        relative: false,
        world_writable,
        script: false,
        fileless: false,
        lsm: false,
        parent: (pst.ppid != 0).then(|| ancestor(pst.ppid)),
        grandparent: proc_stat(pst.ppid)
            .map(|s| s.ppid)
            .filter(|p| *p != 0)
            .map(ancestor),
        args: Vec::new(),
        args_truncated: false,
    }
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
    use agent_common::egress::mode;

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
    fn hostile_event_buffers_are_counted_never_a_panic() {
        let (files, _f) = tokio::sync::mpsc::channel(4);
        let (net, mut net_rx) = tokio::sync::mpsc::channel(4);
        let sinks = Sinks {
            files,
            net,
            unnamed: None,
        };
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
            mounts: Vec::new(),
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
}
