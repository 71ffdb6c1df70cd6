// SPDX-License-Identifier: GPL-2.0-only
//! The fanotify file-sensor backend: the last fallback, for kernels where neither
//! BPF-LSM nor the syscall tracepoints can be used (or when `sensors.file_backend:
//! fanotify` forces it). It produces the same [`FileActivity`] as the kernel
//! programs: write-close (with `created`), unlink, rename (old and new name) and
//! chmod to executable, with pid, uid, comm, exe and inode metadata.
//!
//! One fanotify group in FID mode (`FAN_REPORT_DFID_NAME`) with a filesystem mark
//! per watched root: every event names the parent directory by file handle plus the
//! entry name, and all event types arrive in order on one queue. Directory handles
//! are resolved with open_by_handle_at (needs CAP_DAC_READ_SEARCH) and cached.
//! The filter is in userspace, so unwatched activity on the same filesystem costs a
//! context switch here: the reason this backend comes last.

use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
};

use tokio::io::unix::AsyncFd;

use super::{
    event::{self as events, FileActivity, FileMeta, FileOp, PipelineStats, Sinks},
    procfs::ProcCache,
};

// include/uapi/linux/fanotify.h values the libc crate may not have.
const FAN_RENAME: u64 = 0x1000_0000;
const FAN_EVENT_INFO_TYPE_DFID_NAME: u8 = 2;
const FAN_EVENT_INFO_TYPE_OLD_DFID_NAME: u8 = 10;
const FAN_EVENT_INFO_TYPE_NEW_DFID_NAME: u8 = 12;
const FAN_Q_OVERFLOW: u64 = 0x4000;
const METADATA_LEN: usize = 24;
/// Directory handles remembered; the cache is cleared when full or when a
/// directory is renamed (its cached path would be stale).
const DIR_CACHE_MAX: usize = 4096;
/// Created-but-not-yet-closed entries remembered for the `created` flag.
const CREATED_MAX: usize = 65536;
/// How long a name created with content already in it waits for its own
/// close-write before it is reported as a new name for existing content.
const NAMED_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
/// Such names waiting at once; the oldest is reported early past this.
const NAMED_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FanotifyError {
    #[error("fanotify_init: {0}")]
    Init(std::io::Error),
    #[error("fanotify_mark {path}: {source}")]
    Mark {
        path: String,
        source: std::io::Error,
    },
    #[error("opening watched root {path}: {source}")]
    Root {
        path: String,
        source: std::io::Error,
    },
}

/// What this backend cannot see, named in `/health`.
pub const UNSEEN: [&str; 2] = [
    "files truncated by name (truncate(2) is a FAN_MODIFY, which would report every write on the filesystem); the sweep scans such files within detection.sweep_interval_minutes",
    "files on another filesystem mounted inside a watched tree (the marks are on each tree's own filesystem); the sweep scans them within detection.sweep_interval_minutes",
];

/// An initialized fanotify group with its marks, ready to run.
pub struct FanotifySensor {
    fd: OwnedFd,
    /// Fds of the watched roots: mount fds for open_by_handle_at (which refuses
    /// O_PATH fds with EBADF).
    roots: Vec<OwnedFd>,
    watched: Vec<PathBuf>,
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Mark the whole filesystem that `path` is on for `mask` events of group `fd`.
/// Returns the path as a C string for further calls.
pub(crate) fn mark_filesystem(fd: RawFd, path: &Path, mask: u64) -> Result<CString, FanotifyError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| FanotifyError::Root {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    // SAFETY: valid C string; result checked.
    let rc = unsafe {
        libc::fanotify_mark(
            fd,
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            mask,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if rc < 0 {
        return Err(FanotifyError::Mark {
            path: path.display().to_string(),
            source: errno(),
        });
    }
    Ok(c)
}

impl FanotifySensor {
    /// Create the group and mark the filesystem of every watched root that exists.
    pub fn new(watched: &[PathBuf]) -> Result<Self, FanotifyError> {
        // SAFETY: plain syscall; the result is checked and owned.
        let fd = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_NOTIF
                    | libc::FAN_CLOEXEC
                    | libc::FAN_NONBLOCK
                    | libc::FAN_REPORT_DFID_NAME,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
            )
        };
        if fd < 0 {
            return Err(FanotifyError::Init(errno()));
        }
        // SAFETY: fd was just returned to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mask = libc::FAN_CLOSE_WRITE
            | libc::FAN_CREATE
            | libc::FAN_DELETE
            | libc::FAN_ATTRIB
            | FAN_RENAME
            | libc::FAN_ONDIR;
        let mut roots = Vec::new();
        let mut kept = Vec::new();
        for root in watched {
            if !root.exists() {
                continue;
            }
            let c = mark_filesystem(fd.as_raw_fd(), root, mask)?;
            // SAFETY: valid C string; result checked and owned.
            let rfd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if rfd < 0 {
                return Err(FanotifyError::Root {
                    path: root.display().to_string(),
                    source: errno(),
                });
            }
            // SAFETY: just opened.
            roots.push(unsafe { OwnedFd::from_raw_fd(rfd) });
            kept.push(root.clone());
        }
        Ok(Self {
            fd,
            roots,
            watched: kept,
        })
    }

    /// Read events until `shutdown`, sending activity in the watched trees to `sinks`.
    pub async fn run(
        self,
        sinks: Sinks,
        stats: Arc<PipelineStats>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let Self { fd, roots, watched } = self;
        // The group's fd sits in the runtime's epoll only while the reader waits for
        // a first event. fanotify wakes its waiters on every event it queues (unlike
        // the BPF ring, which wakes only a reader that had caught up), so a reader
        // left registered through its batching delay would be woken, an IPI and
        // under a hypervisor a VM exit in the writer's syscall, once per event.
        // Out of epoll, the burst queues silently and is drained in one pass; the
        // fd is registered again after the drain, and a registration finds an
        // event queued meanwhile at once (epoll polls the fd when it is added).
        let batch = std::time::Duration::from_millis(agent_common::BATCH_DELAY_MS);
        let mut st = State {
            roots,
            watched,
            dirs: HashMap::new(),
            created: HashSet::new(),
            named: std::collections::VecDeque::new(),
            procs: ProcCache::default(),
        };
        let mut buf = vec![0u8; 256 * 1024];
        let mut fd = fd;
        loop {
            // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open until
            // `into_inner` hands it back.
            let afd =
                unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
            // Far in the future when nothing waits: the branch is then disabled anyway.
            let due = st
                .named
                .front()
                .map(|(at, _)| *at + NAMED_GRACE)
                .unwrap_or_else(|| {
                    std::time::Instant::now() + std::time::Duration::from_secs(3600)
                });
            let woken = tokio::select! {
                _ = tokio::time::sleep_until(due.into()), if !st.named.is_empty() => false,
                g = afd.readable() => {
                    drop(g?);
                    true
                }
                _ = shutdown.changed() => return Ok(()),
            };
            fd = afd.into_inner();
            if woken {
                tokio::time::sleep(batch).await;
                // A read takes what fits the buffer (some 3,000 events); the stages
                // after this one get to run between reads rather than find their
                // bounded channel filled by one long drain.
                while st.read_once(fd.as_raw_fd(), &mut buf, &sinks, &stats)? {
                    tokio::task::yield_now().await;
                }
            }
            for act in st.named_due(std::time::Instant::now()) {
                events::send_activity(&sinks, &stats, act);
            }
        }
    }
}

struct State {
    roots: Vec<OwnedFd>,
    watched: Vec<PathBuf>,
    dirs: HashMap<Vec<u8>, PathBuf>,
    created: HashSet<PathBuf>,
    /// Names created with content already in them, oldest first, waiting
    /// [`NAMED_GRACE`] for a close-write of their own (see `named_with_content`).
    named: std::collections::VecDeque<(std::time::Instant, FileActivity)>,
    /// /proc identity and exe, within one read batch.
    procs: ProcCache,
}

/// One `DFID_NAME`-style info record: directory handle bytes and entry name.
struct DirEntry<'a> {
    kind: u8,
    handle: &'a [u8],
    name: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The metadata of the file an event names, None when the same (merged) event
/// deleted that name. The kernel merges every queued event on one directory entry
/// into one mask, so a file created, written and deleted between two reads arrives
/// as one event; its name is gone by then, or holds another file. It is not looked
/// up: on tmpfs a missing name is not cached, and each such lookup took the
/// directory's lock against the writer creating and deleting there (a writer's
/// time 0.27 s → 0.55 s for 50k files in the bench).
fn metadata(mask: u64, path: &Path) -> Option<std::fs::Metadata> {
    if mask & libc::FAN_DELETE != 0 {
        return None;
    }
    std::fs::symlink_metadata(path).ok()
}

/// Parse the info records of one event (after the metadata). Malformed records end
/// the parse of this event; nothing panics.
fn records(info: &[u8]) -> Vec<DirEntry<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= info.len() {
        let kind = info[at];
        let len = u16::from_ne_bytes([info[at + 2], info[at + 3]]) as usize;
        if len < 4 || at + len > info.len() {
            break;
        }
        let rec = &info[at..at + len];
        at += len;
        if !matches!(
            kind,
            FAN_EVENT_INFO_TYPE_DFID_NAME
                | FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
                | FAN_EVENT_INFO_TYPE_NEW_DFID_NAME
        ) {
            continue;
        }
        // header(4) fsid(8) file_handle{handle_bytes u32, handle_type i32, f_handle[]} name\0
        let Some(hb) = u32_at(rec, 12) else { continue };
        let hend = 20 + hb as usize;
        let (Some(handle), Some(rest)) = (rec.get(12..hend), rec.get(hend..)) else {
            continue;
        };
        let nlen = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        out.push(DirEntry {
            kind,
            handle,
            name: &rest[..nlen],
        });
    }
    out
}

impl State {
    /// Read one buffer of the events queued on the group (non-blocking) and route
    /// them; false once the queue was empty.
    fn read_once(
        &mut self,
        fd: RawFd,
        buf: &mut [u8],
        sinks: &Sinks,
        stats: &PipelineStats,
    ) -> std::io::Result<bool> {
        let n = loop {
            // SAFETY: reading into a buffer we own, of its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                break n as usize;
            }
            let e = errno();
            match e.kind() {
                std::io::ErrorKind::WouldBlock => return Ok(false),
                std::io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        };
        self.procs.clear();
        let mut acts = self.parse(&buf[..n], stats);
        acts.extend(self.named_due(std::time::Instant::now()));
        for act in acts {
            events::send_activity(sinks, stats, act);
        }
        Ok(true)
    }

    /// Resolve a directory file handle to its path (cached).
    fn dir_path(&mut self, handle: &[u8]) -> Option<PathBuf> {
        if let Some(p) = self.dirs.get(handle) {
            return Some(p.clone());
        }
        // struct file_handle is 4-byte aligned: copy into u32 words.
        let mut words = vec![0u32; handle.len().div_ceil(4)];
        for (i, chunk) in handle.chunks(4).enumerate() {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            words[i] = u32::from_ne_bytes(w);
        }
        let path = self
            .roots
            .iter()
            .find_map(|root| path_by_handle(root, &mut words))?;
        if self.dirs.len() >= DIR_CACHE_MAX {
            self.dirs.clear();
        }
        self.dirs.insert(handle.to_vec(), path.clone());
        Some(path)
    }

    fn entry_path(&mut self, e: &DirEntry<'_>) -> Option<PathBuf> {
        let dir = self.dir_path(e.handle)?;
        Some(dir.join(std::ffi::OsStr::from_bytes(e.name)))
    }

    fn watched(&self, p: &Path) -> bool {
        self.watched.iter().any(|w| p.starts_with(w))
    }

    fn parse(&mut self, buf: &[u8], stats: &PipelineStats) -> Vec<FileActivity> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + METADATA_LEN <= buf.len() {
            let Some(event_len) = u32_at(buf, at).map(|l| l as usize) else {
                break;
            };
            if event_len < METADATA_LEN || at + event_len > buf.len() {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            let ev = &buf[at..at + event_len];
            at += event_len;
            stats.received.fetch_add(1, Ordering::Relaxed);
            let meta_len = u16::from_ne_bytes([ev[6], ev[7]]) as usize;
            let mask = u64::from_ne_bytes(ev[8..16].try_into().unwrap_or([0; 8]));
            let fd = i32::from_ne_bytes(ev[16..20].try_into().unwrap_or([0; 4]));
            let pid = u32::from_ne_bytes(ev[20..24].try_into().unwrap_or([0; 4]));
            if fd >= 0 {
                // FID mode never passes fds; close one defensively rather than leak it.
                // SAFETY: the kernel handed us this fd.
                drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            }
            if mask & FAN_Q_OVERFLOW != 0 {
                // The kernel queue overflowed: events were lost (counted like a full ring).
                stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let recs = records(ev.get(meta_len.max(METADATA_LEN)..).unwrap_or_default());
            self.activity(mask, pid, &recs, stats, &mut out);
        }
        out
    }

    /// The activity in one event. The kernel merges queued events on the same
    /// directory entry into one mask (CREATE|CLOSE_WRITE when we read late), so every
    /// bit counts. The mask does not say in which order they happened: a DELETE with
    /// a CREATE is a file made and removed, or a name removed and made anew (a file
    /// replaced). The unlink is then reported first, so what stays recorded is the
    /// newer content (a write the behaviour checks keep, a scan), never the
    /// forgetting of it; a DELETE without a CREATE came after the write it is merged
    /// with (a write after it would have needed a CREATE).
    fn activity(
        &mut self,
        mask: u64,
        pid: u32,
        recs: &[DirEntry<'_>],
        stats: &PipelineStats,
        out: &mut Vec<FileActivity>,
    ) {
        if let Some(a) = self.rename(mask, pid, recs, stats) {
            out.push(a);
        }
        if mask & libc::FAN_ONDIR != 0 || mask & !FAN_RENAME == 0 {
            return;
        }
        let Some(rec) = recs
            .iter()
            .find(|r| r.kind == FAN_EVENT_INFO_TYPE_DFID_NAME)
        else {
            return;
        };
        let Some(path) = self.entry_path(rec) else {
            stats.unresolved.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !self.watched(&path) {
            stats.unwatched.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let deleted_first = mask & libc::FAN_DELETE != 0 && mask & libc::FAN_CREATE != 0;
        if deleted_first {
            out.push(self.unlinked(path.clone(), pid));
        }
        if mask & libc::FAN_CREATE != 0 {
            if self.created.len() >= CREATED_MAX {
                self.created.clear();
            }
            self.created.insert(path.clone());
            if mask & libc::FAN_CLOSE_WRITE == 0 {
                if let Some(act) = self.named_with_content(mask, &path, pid) {
                    out.push(act);
                }
            }
        }
        if mask & libc::FAN_CLOSE_WRITE != 0 {
            // Its own close-write came: the content is reported by that.
            self.named.retain(|(_, a)| a.path != path);
            let created = self.created.remove(&path);
            let mut act = self.base(FileOp::WriteClose, path.clone(), pid);
            act.created = created;
            act.meta = metadata(mask, &path).as_ref().map(FileMeta::from);
            out.push(act);
        }
        if mask & libc::FAN_ATTRIB != 0 {
            // fanotify says "attributes changed", not which: report the change that
            // made a regular file executable, like the kernel sensors' chmod +x.
            if let Some(meta) = metadata(mask, &path).as_ref().map(FileMeta::from) {
                if meta.mode & libc::S_IFMT == libc::S_IFREG && meta.mode & 0o111 != 0 {
                    let mut act = self.base(FileOp::Chmod, path.clone(), pid);
                    act.new_mode = Some(meta.mode & 0o7777);
                    act.meta = Some(meta);
                    out.push(act);
                }
            }
        }
        if mask & libc::FAN_DELETE != 0 && !deleted_first {
            out.push(self.unlinked(path, pid));
        }
    }

    /// The unlink of `path`, which is no longer a name created and waiting for its
    /// close-write.
    fn unlinked(&mut self, path: PathBuf, pid: u32) -> FileActivity {
        self.created.remove(&path);
        self.base(FileOp::Unlink, path, pid)
    }

    /// A name created for content that already exists: a hard link (`ln`), or an
    /// O_TMPFILE file given its name by `linkat`. Neither is followed by a
    /// close-write under that name (the tmpfile's close reports the kernel's
    /// placeholder name), so the new name is scanned like a file renamed in. A
    /// regular file created empty by open(O_CREAT) is left to its close-write.
    /// One that got content before we read the event looks like the tmpfile case
    /// (one link, not empty), so it waits [`NAMED_GRACE`] for its own close-write,
    /// which cancels it; a hard link is reported at once.
    fn named_with_content(&mut self, mask: u64, path: &Path, pid: u32) -> Option<FileActivity> {
        use std::os::unix::fs::MetadataExt;
        let m = metadata(mask, path)?;
        if !m.file_type().is_file() || (m.nlink() < 2 && m.size() == 0) {
            return None;
        }
        let mut act = self.base(FileOp::Rename, path.to_path_buf(), pid);
        act.meta = Some(FileMeta::from(&m));
        if m.nlink() >= 2 {
            return Some(act);
        }
        if self.named.len() >= NAMED_MAX {
            // Bounded: the oldest goes out now rather than be lost.
            let (_, oldest) = self.named.pop_front()?;
            self.named.push_back((std::time::Instant::now(), act));
            return Some(oldest);
        }
        self.named.push_back((std::time::Instant::now(), act));
        None
    }

    /// The waiting names whose grace is over at `now`, oldest first.
    fn named_due(&mut self, now: std::time::Instant) -> Vec<FileActivity> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.named.front() {
            if now.duration_since(*at) < NAMED_GRACE {
                break;
            }
            if let Some((_, act)) = self.named.pop_front() {
                out.push(act);
            }
        }
        out
    }

    fn rename(
        &mut self,
        mask: u64,
        pid: u32,
        recs: &[DirEntry<'_>],
        stats: &PipelineStats,
    ) -> Option<FileActivity> {
        let is_dir = mask & libc::FAN_ONDIR != 0;
        if mask & FAN_RENAME != 0 {
            let old = recs
                .iter()
                .find(|r| r.kind == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME)?;
            let new = recs
                .iter()
                .find(|r| r.kind == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME)?;
            let (old, new) = (self.entry_path(old), self.entry_path(new));
            if is_dir {
                self.dirs.clear();
                return None;
            }
            let (Some(old), Some(new)) = (old, new) else {
                stats.unresolved.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if !self.watched(&old) && !self.watched(&new) {
                stats.unwatched.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let mut act = self.base(FileOp::Rename, new, pid);
            act.old_path = Some(old);
            return Some(act);
        }
        None
    }

    fn base(&mut self, op: FileOp, path: PathBuf, pid: u32) -> FileActivity {
        let (uid, gid, comm) =
            self.procs
                .identity(pid)
                .unwrap_or((u32::MAX, u32::MAX, String::new()));
        let mut act = FileActivity::new(op, path, pid, uid, comm);
        act.gid = gid;
        act.exe = self.procs.exe(pid);
        act
    }
}

/// The path, as this process's mounts show it, of the file whose `struct
/// file_handle` (in 4-byte words, as the kernel gave it) is `handle`, opened
/// through `mount` (a directory fd on its filesystem; not O_PATH, which
/// open_by_handle_at refuses).
pub(super) fn path_by_handle(mount: &OwnedFd, handle: &mut [u32]) -> Option<PathBuf> {
    // SAFETY: `handle` holds a complete struct file_handle as the kernel gave it; the
    // returned fd is checked and owned.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            handle.as_mut_ptr().cast(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: just opened.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    fd_path(fd.as_raw_fd())
}

fn fd_path(fd: RawFd) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(watched: &Path) -> State {
        State {
            roots: Vec::new(),
            watched: vec![watched.to_path_buf()],
            dirs: HashMap::new(),
            created: HashSet::new(),
            named: std::collections::VecDeque::new(),
            procs: ProcCache::default(),
        }
    }

    /// A state watching a new temporary directory, known to it as handle `dir`.
    fn state_in_tempdir() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut st = state(dir.path());
        st.dirs.insert(b"dir".to_vec(), dir.path().to_path_buf());
        (dir, st)
    }

    /// The activity of one event of `mask` on `name` in the directory the test
    /// state knows as handle `dir`.
    fn event(st: &mut State, stats: &PipelineStats, mask: u64, name: &[u8]) -> Vec<FileActivity> {
        let rec = DirEntry {
            kind: FAN_EVENT_INFO_TYPE_DFID_NAME,
            handle: b"dir",
            name,
        };
        let mut out = Vec::new();
        st.activity(mask, std::process::id(), &[rec], stats, &mut out);
        out
    }

    /// A create read after the writer already put content in the file looks like
    /// an O_TMPFILE given a name; its own close-write, read next, must make it one
    /// write-close, not a rename plus a write-close. A name nothing closes is
    /// reported once its grace is over; a hard link at once.
    #[test]
    fn a_create_read_late_waits_for_its_own_close_write() {
        let (dir, mut st) = state_in_tempdir();
        let stats = PipelineStats::default();
        let event = |st: &mut State, mask: u64, name: &[u8]| event(st, &stats, mask, name);
        let grace_over = || std::time::Instant::now() + NAMED_GRACE * 2;

        std::fs::write(dir.path().join("late.php"), b"<?php x(); ?>").expect("write");
        let out = event(&mut st, libc::FAN_CREATE, b"late.php");
        assert!(out.is_empty(), "{out:?}");
        let out = event(&mut st, libc::FAN_CLOSE_WRITE, b"late.php");
        let ops: Vec<_> = out.iter().map(|a| (a.op, a.created)).collect();
        assert_eq!(ops, vec![(FileOp::WriteClose, true)]);
        assert!(
            st.named_due(grace_over()).is_empty(),
            "cancelled by its close-write"
        );

        std::fs::write(dir.path().join("tmpfile.php"), b"<?php y(); ?>").expect("write");
        assert!(event(&mut st, libc::FAN_CREATE, b"tmpfile.php").is_empty());
        assert!(
            st.named_due(std::time::Instant::now()).is_empty(),
            "still in grace"
        );
        let due = st.named_due(grace_over());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].op, FileOp::Rename);
        assert_eq!(due[0].path, dir.path().join("tmpfile.php"));

        std::fs::hard_link(dir.path().join("tmpfile.php"), dir.path().join("link.php"))
            .expect("link");
        let out = event(&mut st, libc::FAN_CREATE, b"link.php");
        assert_eq!(out.len(), 1, "a hard link is reported at once");
        assert_eq!(out[0].path, dir.path().join("link.php"));
    }

    /// Events merged by the kernel while the reader waits out its batching delay: a
    /// file created, written and deleted, or a name deleted and written anew, arrives
    /// as one event. Both activities are reported, the unlink first (the newer content
    /// is what stays recorded), and the name, gone or holding another file by now, is
    /// not looked up for the written file's metadata; a write-close alone still
    /// carries it, and a write merged with a delete but no create came first.
    #[test]
    fn a_merged_event_reports_every_bit_and_looks_up_no_deleted_name() {
        let (dir, mut st) = state_in_tempdir();
        let stats = PipelineStats::default();
        // The name holds a file again (deleted and created anew): still no metadata
        // from it for the event that deleted it.
        std::fs::write(dir.path().join("again.php"), b"<?php z(); ?>").expect("write");
        let merged = libc::FAN_CREATE | libc::FAN_CLOSE_WRITE | libc::FAN_DELETE;
        let out = event(&mut st, &stats, merged, b"again.php");
        let ops: Vec<_> = out
            .iter()
            .map(|a| (a.op, a.created, a.meta.is_some()))
            .collect();
        assert_eq!(
            ops,
            vec![
                (FileOp::Unlink, false, false),
                (FileOp::WriteClose, true, false)
            ]
        );
        let merged = libc::FAN_CLOSE_WRITE | libc::FAN_DELETE;
        let ops: Vec<_> = event(&mut st, &stats, merged, b"again.php")
            .iter()
            .map(|a| a.op)
            .collect();
        assert_eq!(ops, vec![FileOp::WriteClose, FileOp::Unlink]);
        let out = event(&mut st, &stats, libc::FAN_CLOSE_WRITE, b"again.php");
        assert_eq!(out.len(), 1);
        let meta = out[0].meta.expect("a write-close alone carries metadata");
        assert_eq!(meta.size, 13);
    }

    #[test]
    fn hostile_event_buffers_are_counted_never_a_panic() {
        let stats = PipelineStats::default();
        let mut st = state(Path::new("/var/www"));
        // event_len shorter than the metadata, and longer than the buffer.
        let mut ev = vec![0u8; METADATA_LEN];
        ev[0] = 8;
        assert!(st.parse(&ev, &stats).is_empty());
        ev[0] = 200;
        assert!(st.parse(&ev, &stats).is_empty());
        assert_eq!(stats.decode_errors.load(Ordering::Relaxed), 2);
        // A well-formed header with a garbage info record: no activity, no panic.
        let mut ev = vec![0u8; METADATA_LEN + 8];
        ev[0] = (METADATA_LEN + 8) as u8;
        ev[6] = METADATA_LEN as u8;
        ev[8..16].copy_from_slice(&libc::FAN_CLOSE_WRITE.to_ne_bytes());
        ev[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        ev[METADATA_LEN] = FAN_EVENT_INFO_TYPE_DFID_NAME;
        ev[METADATA_LEN + 2] = 0xff;
        assert!(st.parse(&ev, &stats).is_empty());
        for n in 0..ev.len() {
            let _ = st.parse(&ev[..n], &stats);
        }
        // A record whose handle length runs past its end is skipped.
        let mut rec = vec![0u8; 24];
        rec[0] = FAN_EVENT_INFO_TYPE_DFID_NAME;
        rec[2] = 24;
        rec[12..16].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(records(&rec).is_empty());
    }
}
