// SPDX-License-Identifier: GPL-2.0-only
//! Ring buffer reader: decode kernel events and pass them on through bounded queues.

use std::{
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
};

use agent_common::{
    egress::{ConnectEvent, Decision},
    exec::ExecEvent,
    file_flags,
    xdp::XdpEvent,
    EventHeader, EventKind, ExitEvent, FileEvent, OpenInfo, OpenKey, PathEvent, EVENT_VERSION,
};
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use super::{
    event::{
        cstr, kernel_dev_to_user, send_activity, until_nul, Ancestor, DecodeError, Exec,
        FileActivity, FileMeta, FileOp, PipelineStats, SensorEvent, Sinks,
    },
    procfs::ProcCache,
    unnamed::{self, Unnamed},
};

fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is a repr(C) Copy wire type valid for any bit pattern.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// renameat2's flag that swaps the two names (include/uapi/linux/fs.h).
const RENAME_EXCHANGE: u32 = 2;

/// The exec'd path of an exec event.
pub fn exec_path(ev: &ExecEvent) -> String {
    cstr(&ev.path[..(ev.path_len as usize).min(ev.path.len())])
}

/// argv of an exec event (NUL-separated in the kernel's copy).
pub fn exec_args(ev: &ExecEvent) -> Vec<String> {
    let n = (ev.args_len as usize).min(ev.args.len());
    ev.args[..n]
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// A kernel exec event as the agent's [`Exec`]; Err for a decision the agent does
/// not know (a newer kernel object).
impl TryFrom<&ExecEvent> for Exec {
    type Error = DecodeError;

    fn try_from(ev: &ExecEvent) -> Result<Self, DecodeError> {
        use agent_common::exec::flags;
        let decision = Decision::from_u32(ev.decision).ok_or(DecodeError::Decision(ev.decision))?;
        let ancestor = |tgid: u32, comm: &[u8]| {
            (tgid != 0).then(|| Ancestor {
                tgid,
                comm: cstr(comm),
            })
        };
        Ok(Exec {
            pid: ev.pid,
            tgid: ev.tgid,
            uid: ev.uid,
            gid: ev.gid,
            comm: cstr(&ev.comm),
            path: PathBuf::from(exec_path(ev)),
            decision,
            relative: ev.flags & flags::RELATIVE != 0,
            world_writable: ev.flags & flags::WORLD_WRITABLE != 0,
            script: ev.flags & flags::SCRIPT != 0,
            fileless: ev.flags & (flags::FILELESS | flags::FD_EXEC) != 0,
            lsm: ev.flags & flags::LSM != 0,
            parent: ancestor(ev.ppid, &ev.parent_comm),
            grandparent: ancestor(ev.gppid, &ev.gp_comm),
            args: exec_args(ev),
            args_truncated: ev.args_truncated != 0,
        })
    }
}
/// A decoded kernel event.
#[derive(Clone, Copy)]
pub enum Decoded {
    File(FileEvent),
    WriterExit(ExitEvent),
    Path(PathEvent),
    Xdp(XdpEvent),
    Connect(ConnectEvent),
    Exec(ExecEvent),
}

fn exact<T: Copy>(h: &EventHeader, bytes: &[u8]) -> Result<T, DecodeError> {
    let want = std::mem::size_of::<T>();
    if h.len as usize != want || bytes.len() < want {
        return Err(DecodeError::Length {
            claimed: h.len,
            actual: bytes.len(),
        });
    }
    read(bytes).ok_or(DecodeError::Short(bytes.len()))
}

/// Decode one ring buffer item. Never panics on hostile or truncated input.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let h: EventHeader = read(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    let kind = EventKind::from_u16(h.kind).ok_or(DecodeError::UnknownKind(h.kind))?;
    if h.version != EVENT_VERSION {
        return Err(DecodeError::Version(h.version));
    }
    match kind {
        EventKind::FileUnlink
        | EventKind::FileRename
        | EventKind::FileChmod
        | EventKind::FileLink
        | EventKind::FileTruncate => {
            let ev: PathEvent = exact(&h, bytes)?;
            for len in [ev.path_len, ev.path2_len] {
                if len as usize >= agent_common::PATH_MAX_LEN {
                    return Err(DecodeError::PathLen(len));
                }
            }
            Ok(Decoded::Path(ev))
        }
        EventKind::FileWriteClose | EventKind::SensitiveRead => {
            let ev: FileEvent = exact(&h, bytes)?;
            if ev.path_len as usize >= agent_common::PATH_MAX_LEN {
                return Err(DecodeError::PathLen(ev.path_len));
            }
            if ev.flags & file_flags::DECIDED != 0 && Decision::from_u32(ev.open_flags).is_none() {
                return Err(DecodeError::Decision(ev.open_flags));
            }
            Ok(Decoded::File(ev))
        }
        EventKind::XdpDrop | EventKind::PortScan => Ok(Decoded::Xdp(exact(&h, bytes)?)),
        EventKind::Connect => Ok(Decoded::Connect(exact(&h, bytes)?)),
        EventKind::WriterExit => Ok(Decoded::WriterExit(exact(&h, bytes)?)),
        EventKind::Exec => {
            let ev: ExecEvent = exact(&h, bytes)?;
            if ev.path_len as usize >= agent_common::PATH_MAX_LEN {
                return Err(DecodeError::PathLen(ev.path_len));
            }
            Ok(Decoded::Exec(ev))
        }
    }
}

/// A path from an event: absolute as sent, or relative to the process's cwd or
/// `dirfd`, resolved through /proc (None when the process is gone).
fn resolve(raw: &[u8], relative: bool, tgid: u32, dirfd: i32) -> Option<PathBuf> {
    let raw = cstr(raw);
    if !relative {
        return Some(PathBuf::from(raw));
    }
    base_dir(tgid, dirfd).map(|b| normalize(&b.join(raw)))
}

/// The directory a relative name of process `tgid` starts from: its cwd, or the
/// directory `dirfd` holds (as the agent sees it). None when the process is gone.
fn base_dir(tgid: u32, dirfd: i32) -> Option<PathBuf> {
    if dirfd == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{tgid}/cwd")).ok()
    } else {
        std::fs::read_link(format!("/proc/{tgid}/fd/{dirfd}")).ok()
    }
}

/// The name an unlink removed, as the process reached it: its directory resolved
/// (a symlink or `..` on the way followed, through the process's root while it
/// lives), the last component kept (unlink removes a symlink there, it does not
/// follow it). Lexical only when the directory is gone as well; None when a
/// relative name's process is.
fn resolve_unlinked(raw: &[u8], relative: bool, tgid: u32, dirfd: i32) -> Option<PathBuf> {
    if !relative {
        return Some(
            resolve_spelled(raw, tgid).unwrap_or_else(|| normalize(Path::new(&cstr(raw)))),
        );
    }
    let typed = base_dir(tgid, dirfd)?.join(cstr(raw));
    // Already as the agent sees it (/proc's links are): no root to go through.
    let real = typed
        .file_name()
        .zip(typed.parent())
        .and_then(|(name, dir)| std::fs::canonicalize(dir).ok().map(|d| d.join(name)));
    Some(real.unwrap_or_else(|| normalize(&typed)))
}

/// A new name the kernel marked [`file_flags::SPELLED2`]: absolute, outside every
/// tree as typed. Its directory is resolved as the process saw it (through its root
/// while it lives, else the agent's), so a symlink or `..` on the way is followed;
/// the last component is not (rename and link replace a symlink there, they do not
/// follow it). None when the directory is gone.
fn resolve_spelled(raw: &[u8], tgid: u32) -> Option<PathBuf> {
    let typed = PathBuf::from(cstr(raw));
    let name = typed.file_name()?.to_owned();
    let dir = typed.parent()?;
    canonical_in_root(dir, tgid).map(|d| d.join(name))
}

/// `p` with every symlink and `..` resolved, as process `tgid` sees it. The
/// process may end between finding its root and resolving through it (its root
/// goes early in its exit): then resolved as the agent sees it.
fn canonical_in_root(p: &Path, tgid: u32) -> Option<PathBuf> {
    std::fs::canonicalize(in_root(p, tgid))
        .or_else(|_| std::fs::canonicalize(p))
        .ok()
}

/// An absolute name as process `tgid` sees it: under its root while it lives
/// (a chroot), else as the agent sees it.
fn in_root(p: &Path, tgid: u32) -> PathBuf {
    let root = PathBuf::from(format!("/proc/{tgid}/root"));
    match p.strip_prefix("/") {
        Ok(rel) if root.exists() => root.join(rel),
        _ => p.to_path_buf(),
    }
}

/// `trees`, then the real path of each that a symlink leads to (names resolved
/// here are real paths: `/var/www` configured as a link to `/srv/www` must still
/// hold `/srv/www/x`).
fn with_real_paths(mut trees: Vec<PathBuf>) -> Vec<PathBuf> {
    let real: Vec<PathBuf> = trees
        .iter()
        .filter_map(|t| std::fs::canonicalize(t).ok())
        .collect();
    for r in real {
        if !trees.contains(&r) {
            trees.push(r);
        }
    }
    trees
}

fn is_watched(p: &Path, watched: &Watched) -> bool {
    watched.trees.iter().any(|w| p.starts_with(w))
}

/// What the reader knows of the watched trees.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    /// As configured, and each one's real path where a symlink leads there: the
    /// filter for names the processes typed (relative ones, and every name where the
    /// kernel cannot walk), which are resolved to real paths here.
    pub trees: Vec<PathBuf>,
    /// The roots the kernel learned, by the id its walks put in events.
    pub roots: super::roots::RootPaths,
}

impl Watched {
    /// Trees by name only (no walk: no roots learned).
    pub fn trees(trees: Vec<PathBuf>) -> Self {
        Self {
            trees: with_real_paths(trees),
            roots: Default::default(),
        }
    }

    /// The configured trees and the roots the kernel learned for them.
    pub fn new(trees: Vec<PathBuf>, roots: super::roots::RootPaths) -> Self {
        Self {
            trees: with_real_paths(trees),
            roots,
        }
    }

    /// A kernel-built path below root `root`: the root's path, then the names (each
    /// after a `/`). None for a root the agent did not teach (never from its own
    /// kernel programs).
    fn below(&self, root: u32, names: &[u8]) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let mut p = self.roots.get(&root)?.clone().into_os_string();
        p.push(std::ffi::OsStr::from_bytes(until_nul(names)));
        Some(PathBuf::from(p))
    }
}

/// A write-close or sensitive read the kernel could not name where the agent looks:
/// deeper than its walk, longer than an event holds, or below a root the agent
/// never taught. Such a file is found by inode ([`unnamed_of`]), never by a wrong name.
fn kernel_unnamed(ev: &FileEvent, watched: &Watched) -> bool {
    let has = |f: u32| ev.flags & f != 0;
    has(file_flags::UNRESOLVED)
        || (has(file_flags::RESOLVED) && has(file_flags::TRUNCATED))
        || (ev.root != 0 && !watched.roots.contains_key(&ev.root))
}

/// Turn a write-close or sensitive-read event into a [`FileActivity`], resolving
/// relative paths through /proc and applying the watch filter the kernel could not.
pub fn to_activity(
    ev: &FileEvent,
    watched: &Watched,
    stats: &PipelineStats,
    procs: &mut ProcCache,
) -> Option<FileActivity> {
    let relative = ev.flags & file_flags::RELATIVE != 0;
    if kernel_unnamed(ev, watched) {
        // Counted, with what is known, never scanned by a wrong name.
        stats.unresolved.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(tail = %cstr(&ev.path[..ev.path_len as usize]), ino = ev.ino, pid = ev.tgid, "Write to a file whose path the kernel could not build.");
        return None;
    }
    let names = &ev.path[..ev.path_len as usize];
    let path = match ev.root {
        0 => resolve(names, relative, ev.tgid, ev.dirfd),
        root => watched.below(root, names),
    };
    let Some(path) = path else {
        stats.relative_gone.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let act = file_activity(ev, path, procs);
    // Sensitive files are matched by the kernel wherever they are.
    if relative && act.op == FileOp::WriteClose && !is_watched(&act.path, watched) {
        stats.unwatched.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(act)
}

/// A write-close the kernel could not name ([`kernel_unnamed`]), for the lookup by
/// inode ([`super::unnamed`]). None without inode metadata.
pub fn unnamed_of(ev: &FileEvent, watched: &Watched, procs: &mut ProcCache) -> Option<Unnamed> {
    if !kernel_unnamed(ev, watched)
        || ev.flags & file_flags::META == 0
        || ev.header.kind != EventKind::FileWriteClose as u16
    {
        return None;
    }
    let tail = cstr(&ev.path[..(ev.path_len as usize).min(ev.path.len())]);
    let act = file_activity(ev, PathBuf::new(), procs);
    let meta = act.meta?;
    Some(Unnamed::new(meta.dev, meta.ino, tail, act))
}

/// The activity of a file event under `path`.
fn file_activity(ev: &FileEvent, path: PathBuf, procs: &mut ProcCache) -> FileActivity {
    let op = if ev.header.kind == EventKind::SensitiveRead as u16 {
        FileOp::SensitiveRead
    } else {
        FileOp::WriteClose
    };
    FileActivity {
        op,
        path,
        old_path: None,
        pid: ev.pid,
        tgid: ev.tgid,
        uid: ev.uid,
        gid: ev.gid,
        comm: cstr(&ev.comm),
        exe: procs.exe(ev.tgid),
        open_flags: ev.open_flags,
        created: ev.flags & file_flags::CREATED != 0,
        truncated: ev.flags & file_flags::TRUNCATED != 0,
        meta: (ev.flags & file_flags::META != 0).then(|| FileMeta {
            ino: ev.ino,
            dev: kernel_dev_to_user(ev.dev),
            mode: ev.mode,
            size: ev.size,
        }),
        new_mode: None,
        exchange: false,
        decision: (ev.flags & file_flags::DECIDED != 0)
            .then(|| Decision::from_u32(ev.open_flags))
            .flatten(),
        received_at: std::time::Instant::now(),
    }
}

/// Turn an unlink/rename/chmod event into a [`FileActivity`]. A rename is kept when
/// either name is watched (moving a file into a web root matters as much as out).
pub fn path_activity(
    ev: &PathEvent,
    watched: &Watched,
    stats: &PipelineStats,
    procs: &mut ProcCache,
) -> Option<FileActivity> {
    let rel1 = ev.flags & file_flags::RELATIVE != 0;
    // A truncate or chmod +x by a name outside the trees as typed (SPELLED): the
    // file it reached, whole (both follow a symlink at the end).
    let spelled1 = spelled(ev, file_flags::SPELLED);
    let raw1 = &ev.path[..ev.path_len as usize];
    let unlink = ev.header.kind == EventKind::FileUnlink as u16;
    let p1 = match ev.root {
        _ if spelled1 => canonical_in_root(&PathBuf::from(cstr(raw1)), ev.tgid),
        0 if unlink => resolve_unlinked(raw1, rel1, ev.tgid, ev.dirfd),
        0 => resolve(raw1, rel1, ev.tgid, ev.dirfd),
        root => watched.below(root, raw1),
    };
    let (op, path, old_path) = if ev.header.kind == EventKind::FileLink as u16 {
        // A new name for an existing inode: scanned like a file renamed in. Only the
        // new name matters (the old may be empty: an O_TMPFILE fd given a name).
        let rel2 = ev.flags & file_flags::RELATIVE2 != 0;
        let Some(new) = new_name(ev, rel2) else {
            stats.relative_gone.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if (rel2 || spelled(ev, file_flags::SPELLED2)) && !is_watched(&new, watched) {
            stats.unwatched.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        (
            FileOp::Rename,
            new,
            p1.filter(|p| !p.as_os_str().is_empty()),
        )
    } else if ev.header.kind == EventKind::FileRename as u16 {
        let rel2 = ev.flags & file_flags::RELATIVE2 != 0;
        let p2 = new_name(ev, rel2);
        let (Some(old), Some(new)) = (p1, p2) else {
            stats.relative_gone.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if (rel1 || rel2 || spelled(ev, file_flags::SPELLED2))
            && !is_watched(&old, watched)
            && !is_watched(&new, watched)
        {
            stats.unwatched.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        (FileOp::Rename, new, Some(old))
    } else {
        let Some(p) = p1 else {
            stats.relative_gone.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // An unlink's name was matched by the kernel as typed; resolved, it may lie
        // elsewhere (`..`, a symlinked directory).
        if (rel1 || spelled1 || unlink) && !is_watched(&p, watched) {
            stats.unwatched.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let op = if unlink {
            FileOp::Unlink
        } else if ev.header.kind == EventKind::FileTruncate as u16 {
            // New content by name: scanned like a write session's end.
            FileOp::WriteClose
        } else {
            FileOp::Chmod
        };
        (op, p, None)
    };
    // The kernel has no open file here: stat the result (the renamed or chmod'ed file,
    // if it still exists). Unlinked files have no metadata (unknown).
    let meta = (op != FileOp::Unlink)
        .then(|| FileMeta::of(&path))
        .flatten();
    Some(FileActivity {
        op,
        path,
        old_path,
        pid: ev.pid,
        tgid: ev.tgid,
        uid: ev.uid,
        gid: ev.gid,
        comm: cstr(&ev.comm),
        exe: procs.exe(ev.tgid),
        open_flags: 0,
        created: false,
        truncated: ev.flags & (file_flags::TRUNCATED | file_flags::TRUNCATED2) != 0,
        meta,
        new_mode: (op == FileOp::Chmod).then_some(ev.mode),
        exchange: op == FileOp::Rename && ev.mode & RENAME_EXCHANGE != 0,
        decision: None,
        received_at: std::time::Instant::now(),
    })
}

/// The new name of a rename or link: resolved as the process typed it, or through
/// the filesystem where the kernel could not tell ([`resolve_spelled`]).
fn new_name(ev: &PathEvent, rel2: bool) -> Option<PathBuf> {
    let raw = &ev.path2[..ev.path2_len as usize];
    if spelled(ev, file_flags::SPELLED2) {
        resolve_spelled(raw, ev.tgid)
    } else {
        resolve(raw, rel2, ev.tgid, ev.dirfd2)
    }
}

/// Did the kernel leave a name to be resolved here (`SPELLED`: the first name of a
/// truncate or chmod; `SPELLED2`: the new name of a rename or link)?
fn spelled(ev: &PathEvent, flag: u32) -> bool {
    ev.flags & flag != 0
}

/// Lexical normalization ("a/./b/../c" -> "a/c") without touching the filesystem.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The kernel's open write sessions (`RAMPART_OPEN_WRITES`), to end those of a
/// process whose exit closed them without close(2).
#[derive(Clone)]
pub struct Sessions(Arc<std::sync::Mutex<aya::maps::HashMap<MapData, OpenKey, OpenInfo>>>);

impl Sessions {
    pub fn new(map: aya::maps::Map) -> Result<Self, aya::maps::MapError> {
        Ok(Self(Arc::new(std::sync::Mutex::new(
            aya::maps::HashMap::try_from(map)?,
        ))))
    }

    /// Remove and return the sessions of `tgid`.
    pub fn take(&self, tgid: u32) -> Vec<(OpenKey, OpenInfo)> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<OpenKey> = m
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.tgid == tgid)
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let v = m.get(&k, 0).ok()?;
                let _ = m.remove(&k);
                Some((k, v))
            })
            .collect()
    }
}

/// The write-close the kernel would have sent for a session `exit` closed.
pub fn exit_close(exit: &ExitEvent, key: &OpenKey, info: &OpenInfo) -> FileEvent {
    FileEvent {
        header: EventHeader {
            kind: EventKind::FileWriteClose as u16,
            len: std::mem::size_of::<FileEvent>() as u32,
            ..exit.header
        },
        pid: exit.pid,
        tgid: exit.tgid,
        uid: exit.uid,
        gid: exit.gid,
        open_flags: info.open_flags,
        fd: (key.fd & !agent_common::MAPPED_FD) as i32,
        dirfd: info.dirfd,
        // No inode metadata: the file is looked at by path.
        flags: info.flags & !file_flags::META,
        ino: 0,
        size: 0,
        dev: 0,
        mode: 0,
        comm: exit.comm,
        path_len: info.path_len.min(agent_common::PATH_MAX_LEN as u32 - 1),
        root: info.root,
        path: info.path,
    }
}

/// Read the ring buffer until `shutdown` fires, routing events to `sinks`.
pub async fn run_reader(
    ring: RingBuf<MapData>,
    watched: Watched,
    sinks: Sinks,
    stats: Arc<PipelineStats>,
    sessions: Option<Sessions>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    // SAFETY: the RingBuf owns its map fd; it stays open and unchanged until the
    // AsyncFd (which owns the RingBuf) is dropped.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }?;
    // The kernel wakes the reader for the first record after it caught up (the
    // ring's default, see agent-ebpf file.rs); the reader then waits a bounded
    // batching delay so a burst is drained in one pass, clears the readiness and
    // drains. A record submitted after that drain finds the ring caught up and wakes
    // it again, so none waits for the next one. Idle, nothing runs; the slow timer
    // is only a safety net.
    let batch = std::time::Duration::from_millis(agent_common::BATCH_DELAY_MS);
    let mut safety = tokio::time::interval(std::time::Duration::from_secs(1));
    safety.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut procs = ProcCache::default();
    loop {
        tokio::select! {
            g = fd.readable_mut() => {
                let mut g = g?;
                tokio::time::sleep(batch).await;
                g.clear_ready();
                drain_ring(g.get_inner_mut(), &watched, &sinks, &stats, sessions.as_ref(), &mut procs);
            }
            _ = safety.tick() => drain_ring(fd.get_mut(), &watched, &sinks, &stats, sessions.as_ref(), &mut procs),
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Decode and route everything pending in the ring.
fn drain_ring(
    ring: &mut RingBuf<MapData>,
    watched: &Watched,
    sinks: &Sinks,
    stats: &PipelineStats,
    sessions: Option<&Sessions>,
    procs: &mut ProcCache,
) {
    procs.clear();
    while let Some(item) = ring.next() {
        stats.received.fetch_add(1, Ordering::Relaxed);
        match decode(&item) {
            Ok(Decoded::File(ev)) => {
                if let Some(act) = to_activity(&ev, watched, stats, procs) {
                    send_activity(sinks, stats, act);
                } else if let (Some(tx), Some(u)) =
                    (&sinks.unnamed, unnamed_of(&ev, watched, procs))
                {
                    unnamed::submit(tx, stats, u);
                }
            }
            Ok(Decoded::Path(ev)) => {
                if let Some(act) = path_activity(&ev, watched, stats, procs) {
                    send_activity(sinks, stats, act);
                }
            }
            Ok(Decoded::WriterExit(ev)) => {
                for (key, info) in sessions.map(|s| s.take(ev.tgid)).unwrap_or_default() {
                    stats.exit_closed.fetch_add(1, Ordering::Relaxed);
                    let fe = exit_close(&ev, &key, &info);
                    if let Some(act) = to_activity(&fe, watched, stats, procs) {
                        send_activity(sinks, stats, act);
                    }
                }
            }
            Ok(Decoded::Xdp(ev)) => {
                if sinks.net.try_send(SensorEvent::Xdp(ev)).is_err() {
                    stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Decoded::Exec(ev)) => match Exec::try_from(&ev) {
                Ok(exec) => {
                    if sinks.net.try_send(SensorEvent::Exec(exec)).is_err() {
                        stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "Undecodable exec event.");
                }
            },
            Ok(Decoded::Connect(ev)) => {
                if sinks.net.try_send(SensorEvent::Connect(ev)).is_err() {
                    stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "Undecodable kernel event.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{COMM_LEN, PATH_MAX_LEN};

    fn event(path: &str, flags: u32) -> FileEvent {
        let mut ev = FileEvent {
            header: EventHeader {
                kind: EventKind::FileWriteClose as u16,
                version: EVENT_VERSION,
                _pad: 0,
                len: std::mem::size_of::<FileEvent>() as u32,
                ktime_ns: 1,
            },
            pid: 10,
            tgid: std::process::id(),
            uid: 33,
            gid: 33,
            open_flags: 0o101,
            fd: 3,
            dirfd: libc::AT_FDCWD,
            flags,
            ino: 0,
            size: 0,
            dev: 0,
            mode: 0,
            comm: [0; COMM_LEN],
            path_len: path.len() as u32,
            root: 0,
            path: [0; PATH_MAX_LEN],
        };
        ev.path[..path.len()].copy_from_slice(path.as_bytes());
        ev.comm[..3].copy_from_slice(b"php");
        ev
    }

    fn bytes(ev: &FileEvent) -> Vec<u8> {
        // SAFETY: FileEvent is repr(C) plain data.
        unsafe {
            std::slice::from_raw_parts(
                (ev as *const FileEvent).cast::<u8>(),
                std::mem::size_of::<FileEvent>(),
            )
        }
        .to_vec()
    }

    /// `ev` through the decoder and into an activity, as the reader does.
    fn activity(ev: &FileEvent) -> FileActivity {
        let Ok(Decoded::File(d)) = decode(&bytes(ev)) else {
            panic!("not a file event")
        };
        to_activity(
            &d,
            &Watched::default(),
            &PipelineStats::default(),
            &mut ProcCache::default(),
        )
        .expect("activity")
    }

    #[test]
    fn decodes_a_file_event() {
        let act = activity(&event("/var/www/a.php", 0));
        assert_eq!(act.path, PathBuf::from("/var/www/a.php"));
        assert_eq!(act.comm, "php");
        assert_eq!(act.uid, 33);
    }

    #[test]
    fn hostile_input_is_an_error_never_a_panic() {
        let good = bytes(&event("/x", 0));
        assert!(matches!(decode(&[]), Err(DecodeError::Short(0))));
        assert!(matches!(decode(&good[..10]), Err(DecodeError::Short(10))));
        assert!(matches!(
            decode(&good[..100]),
            Err(DecodeError::Length { .. })
        ));
        let mut bad_kind = good.clone();
        bad_kind[0] = 0xff;
        assert!(matches!(
            decode(&bad_kind),
            Err(DecodeError::UnknownKind(_))
        ));
        let mut bad_ver = good.clone();
        bad_ver[2] = 99;
        assert!(matches!(decode(&bad_ver), Err(DecodeError::Version(99))));
        let mut bad_len = event("/x", 0);
        bad_len.path_len = 9999;
        assert!(matches!(
            decode(&bytes(&bad_len)),
            Err(DecodeError::PathLen(9999))
        ));
        // Every truncation of a valid event is rejected cleanly.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "accepted a {n}-byte prefix");
        }
    }

    #[test]
    fn an_lsm_sensitive_read_carries_its_decision_and_a_bad_one_is_rejected() {
        let mut ev = event("/etc/shadow", 0);
        ev.header.kind = EventKind::SensitiveRead as u16;
        ev.flags = file_flags::DECIDED | file_flags::RESOLVED;
        ev.open_flags = Decision::Denied as u32;
        let act = activity(&ev);
        assert_eq!(act.op, FileOp::SensitiveRead);
        assert_eq!(act.decision, Some(Decision::Denied));
        // A tracepoint's read carries no decision, whatever its open flags say.
        ev.flags = file_flags::RESOLVED;
        assert_eq!(activity(&ev).decision, None);
        ev.flags = file_flags::DECIDED;
        ev.open_flags = 77;
        assert!(matches!(
            decode(&bytes(&ev)),
            Err(DecodeError::Decision(77))
        ));
    }

    /// An all-zero path event of `kind` with a valid header.
    fn path_event(kind: EventKind) -> PathEvent {
        // SAFETY: PathEvent is plain data; all-zero is a valid value.
        let mut ev: PathEvent = unsafe { std::mem::zeroed() };
        ev.header = EventHeader {
            kind: kind as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: std::mem::size_of::<PathEvent>() as u32,
            ktime_ns: 1,
        };
        ev
    }

    #[test]
    fn path_events_decode_and_reject_bad_lengths() {
        let mut ev = path_event(EventKind::FileRename);
        ev.tgid = std::process::id();
        ev.path[..6].copy_from_slice(b"/w/a.x");
        ev.path_len = 6;
        ev.path2[..6].copy_from_slice(b"/w/b.x");
        ev.path2_len = 6;
        let raw = |ev: &PathEvent| {
            // SAFETY: repr(C) plain data.
            unsafe {
                std::slice::from_raw_parts(
                    (ev as *const PathEvent).cast::<u8>(),
                    std::mem::size_of::<PathEvent>(),
                )
            }
            .to_vec()
        };
        let activity = |ev: &PathEvent| {
            let Ok(Decoded::Path(d)) = decode(&raw(ev)) else {
                panic!("not a path event")
            };
            path_activity(
                &d,
                &Watched::default(),
                &PipelineStats::default(),
                &mut ProcCache::default(),
            )
            .expect("activity")
        };
        let act = activity(&ev);
        assert_eq!(act.op, FileOp::Rename);
        assert_eq!(act.path, PathBuf::from("/w/b.x"));
        assert_eq!(act.old_path, Some(PathBuf::from("/w/a.x")));
        // A truncate by name is new content at that name: scanned like a write-close.
        let mut t = ev;
        t.header.kind = EventKind::FileTruncate as u16;
        t.path2_len = 0;
        let act = activity(&t);
        assert_eq!(
            (act.op, act.path),
            (FileOp::WriteClose, PathBuf::from("/w/a.x"))
        );
        ev.path2_len = 4096;
        assert!(matches!(decode(&raw(&ev)), Err(DecodeError::PathLen(4096))));
        let good = raw(&{
            ev.path2_len = 6;
            ev
        });
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "accepted a {n}-byte prefix");
        }
    }

    /// A rename or link whose new name is outside the trees as typed (SPELLED2)
    /// is kept when its directory resolves into one (a symlink, `..`), under the
    /// real name, and dropped as unwatched otherwise.
    #[test]
    fn spelled_new_names_resolve_through_symlinks_and_dotdot() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (www, home) = (dir.path().join("www"), dir.path().join("home"));
        std::fs::create_dir(&www).expect("mkdir");
        std::fs::create_dir(&home).expect("mkdir");
        std::os::unix::fs::symlink(&www, home.join("site")).expect("symlink");
        let watched = Watched::trees(vec![www.canonicalize().expect("real")]);
        let stats = PipelineStats::default();
        let activity = |kind: EventKind, new: &Path| {
            let mut ev = path_event(kind);
            // No such process: resolved in the agent's own root.
            ev.tgid = u32::MAX - 1;
            ev.flags = file_flags::SPELLED2;
            let old = home.join("a.txt");
            let (o, n) = (old.as_os_str().as_bytes(), new.as_os_str().as_bytes());
            ev.path[..o.len()].copy_from_slice(o);
            ev.path_len = o.len() as u32;
            ev.path2[..n.len()].copy_from_slice(n);
            ev.path2_len = n.len() as u32;
            path_activity(&ev, &watched, &stats, &mut ProcCache::default())
        };
        let real = www.canonicalize().expect("real");
        for kind in [EventKind::FileRename, EventKind::FileLink] {
            let act = activity(kind, &home.join("site/x.php")).expect("via the symlink");
            assert_eq!(act.path, real.join("x.php"));
            let act = activity(kind, &home.join("../www/y.php")).expect("via ..");
            assert_eq!(act.path, real.join("y.php"));
            assert!(activity(kind, &home.join("z.php")).is_none());
        }
        assert_eq!(stats.unwatched.load(Ordering::Relaxed), 2);
        // A truncate by a spelled name: the file it reached, through a final symlink
        // too, scanned as new content; one outside the trees is dropped.
        std::fs::write(www.join("t.php"), "x").expect("write");
        std::os::unix::fs::symlink(www.join("t.php"), home.join("t-link")).expect("symlink");
        std::fs::write(home.join("own.txt"), "x").expect("write");
        let truncate = |typed: &Path| {
            let mut ev = path_event(EventKind::FileTruncate);
            ev.tgid = u32::MAX - 1;
            ev.flags = file_flags::SPELLED;
            let t = typed.as_os_str().as_bytes();
            ev.path[..t.len()].copy_from_slice(t);
            ev.path_len = t.len() as u32;
            path_activity(&ev, &watched, &stats, &mut ProcCache::default())
        };
        for typed in [home.join("site/t.php"), home.join("t-link")] {
            let act = truncate(&typed).expect("reached the tree");
            assert_eq!((act.op, act.path), (FileOp::WriteClose, real.join("t.php")));
        }
        assert!(truncate(&home.join("own.txt")).is_none());
        assert_eq!(stats.unwatched.load(Ordering::Relaxed), 3);
        // Without the flag the name is taken as typed (the kernel found it watched).
        let mut ev = path_event(EventKind::FileRename);
        let n = home.join("site/x.php");
        ev.path2[..n.as_os_str().len()].copy_from_slice(n.as_os_str().as_bytes());
        ev.path2_len = n.as_os_str().len() as u32;
        ev.path[..2].copy_from_slice(b"/a");
        ev.path_len = 2;
        let act = path_activity(&ev, &watched, &stats, &mut ProcCache::default()).expect("kept");
        assert_eq!(act.path, n);
    }

    /// An unlink's name is resolved by its directory, never followed at its end:
    /// through a symlinked directory it is the real file's, `..` out of the tree
    /// leaves it, a removed symlink is the link's own name, and a name whose
    /// directory went too stays as typed.
    #[test]
    fn unlinked_names_resolve_their_directory() {
        use std::os::{fd::AsRawFd, unix::ffi::OsStrExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let (www, home) = (dir.path().join("www"), dir.path().join("home"));
        std::fs::create_dir(&www).expect("mkdir");
        std::fs::create_dir(&home).expect("mkdir");
        std::os::unix::fs::symlink(&www, home.join("site")).expect("symlink");
        std::os::unix::fs::symlink(&home, www.join("out")).expect("symlink");
        let real = www.canonicalize().expect("real");
        // Configured through a symlink: the real tree is watched too.
        let watched = Watched::trees(vec![home.join("site")]);
        let stats = PipelineStats::default();
        let unlink = |typed: &Path, flags: u32, tgid: u32, dirfd: i32| {
            let mut ev = path_event(EventKind::FileUnlink);
            ev.tgid = tgid;
            ev.flags = flags;
            ev.dirfd = dirfd;
            let t = typed.as_os_str().as_bytes();
            ev.path[..t.len()].copy_from_slice(t);
            ev.path_len = t.len() as u32;
            path_activity(&ev, &watched, &stats, &mut ProcCache::default())
        };
        let gone = u32::MAX - 1;
        let act = unlink(&home.join("site/x.php"), 0, gone, libc::AT_FDCWD).expect("kept");
        assert_eq!((act.op, act.path), (FileOp::Unlink, real.join("x.php")));
        // The link itself was removed: named as the link, inside the tree.
        let act = unlink(&www.join("out"), 0, gone, libc::AT_FDCWD).expect("kept");
        assert_eq!(act.path, real.join("out"));
        // Typed inside, resolved outside.
        assert!(unlink(&www.join("out/own.txt"), 0, gone, libc::AT_FDCWD).is_none());
        assert!(unlink(&www.join("../home/own.txt"), 0, gone, libc::AT_FDCWD).is_none());
        assert_eq!(stats.unwatched.load(Ordering::Relaxed), 2);
        // Its directory removed as well: as typed, normalized.
        let act = unlink(&www.join("gone/./y.php"), 0, gone, libc::AT_FDCWD).expect("kept");
        assert_eq!(act.path, www.join("gone/y.php"));
        // Relative to a directory fd of a live process (this one).
        let fd = std::fs::File::open(&home).expect("open");
        let act = unlink(
            Path::new("site/r.php"),
            file_flags::RELATIVE,
            std::process::id(),
            fd.as_raw_fd(),
        )
        .expect("kept");
        assert_eq!(act.path, real.join("r.php"));
    }

    #[test]
    fn exec_args_split_on_nul_and_never_overrun() {
        // SAFETY: ExecEvent is plain data; all-zero is a valid value.
        let mut ev: ExecEvent = unsafe { std::mem::zeroed() };
        let argv = b"/bin/sh\0/tmp/x.sh\0-c\0";
        ev.args[..argv.len()].copy_from_slice(argv);
        ev.args_len = argv.len() as u32;
        assert_eq!(exec_args(&ev), ["/bin/sh", "/tmp/x.sh", "-c"]);
        ev.args_len = u32::MAX; // hostile length: clamped to the buffer
        assert_eq!(exec_args(&ev), ["/bin/sh", "/tmp/x.sh", "-c"]);
    }

    #[test]
    fn relative_paths_resolve_against_cwd_and_filter() {
        let cwd = std::env::current_dir().expect("cwd");
        let stats = PipelineStats::default();
        let ev = event("sub/../x.php", file_flags::RELATIVE);
        let procs = &mut ProcCache::default();
        let act =
            to_activity(&ev, &Watched::trees(vec![cwd.clone()]), &stats, procs).expect("resolved");
        assert_eq!(act.path, cwd.join("x.php"));
        assert!(to_activity(
            &ev,
            &Watched::trees(vec!["/nonexistent-root".into()]),
            &stats,
            procs
        )
        .is_none());
        assert_eq!(stats.unwatched.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_gone_process_and_an_unnamed_file_are_counted_apart() {
        let stats = PipelineStats::default();
        let procs = &mut ProcCache::default();
        // A relative name from a process that has exited: any process on the host
        // can cause this one.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let gone = child.id();
        child.wait().expect("wait");
        let mut ev = event("x.php", file_flags::RELATIVE);
        ev.tgid = gone;
        assert!(to_activity(&ev, &Watched::trees(vec!["/".into()]), &stats, procs).is_none());
        assert_eq!(stats.relative_gone.load(Ordering::Relaxed), 1);
        assert_eq!(stats.unresolved.load(Ordering::Relaxed), 0);
        // The kernel's walk gave up on this one.
        let ev = event("tail.php", file_flags::UNRESOLVED);
        assert!(to_activity(&ev, &Watched::trees(vec!["/".into()]), &stats, procs).is_none());
        assert_eq!(stats.unresolved.load(Ordering::Relaxed), 1);
        assert_eq!(stats.relative_gone.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn names_below_a_root_get_the_roots_path_in_front() {
        let stats = PipelineStats::default();
        let procs = &mut ProcCache::default();
        let watched = Watched {
            trees: vec!["/srv/www".into()],
            roots: [(1, PathBuf::from("/srv/www")), (2, PathBuf::from("/"))].into(),
        };
        // What the walk builds below the root, whatever the writer's mounts showed.
        let mut ev = event("/wp-content/up/x.php", file_flags::RESOLVED);
        ev.root = 1;
        let act = to_activity(&ev, &watched, &stats, procs).expect("named");
        assert_eq!(act.path, PathBuf::from("/srv/www/wp-content/up/x.php"));
        // Nothing is lost to a `/` root, and the names are taken up to their NUL.
        ev.root = 2;
        ev.path[3] = 0;
        let act = to_activity(&ev, &watched, &stats, procs).expect("named");
        assert_eq!(act.path, PathBuf::from("/wp"));
        // A root the agent never taught is never guessed at: counted as unnamed and
        // left to the lookup by inode.
        ev.root = 9;
        ev.flags |= file_flags::META;
        ev.ino = 42;
        assert!(to_activity(&ev, &watched, &stats, procs).is_none());
        assert_eq!(stats.unresolved.load(Ordering::Relaxed), 1);
        assert!(unnamed_of(&ev, &watched, procs).is_some());
        // An fchmod of a session's fd carries the session's root too.
        let mut pe = path_event(EventKind::FileChmod);
        pe.path[..6].copy_from_slice(b"/a.php");
        pe.path_len = 6;
        pe.root = 1;
        let act = path_activity(&pe, &watched, &stats, procs).expect("chmod");
        assert_eq!(act.path, PathBuf::from("/srv/www/a.php"));
    }
}
