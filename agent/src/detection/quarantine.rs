// SPDX-License-Identifier: GPL-2.0-only
//! The quarantine: a file is copied into a root-only directory (sha256 computed on
//! the way), recorded with its path, owner, mode and mtime, then removed from where it
//! was. Restore writes it back byte-identical with the same owner, mode and mtime,
//! never over an existing file.
//!
//! Paths come from findings, and a local user owns the directories they name: every
//! operation goes through a directory fd reached without following a symlink at
//! any component ([`open_dir_nofollow`]), so a directory swapped for a symlink after
//! the finding is refused, never followed. The file removed is the one copied (same
//! device and inode, checked against the directory fd just before `unlinkat`).
//!
//! Also refused: a path outside the configured trees (`quarantine.roots`, default the
//! watched trees), content other than what the detection saw ([`Expect`]: a file
//! swapped or hard-linked in under the same name since), and a file larger than
//! `quarantine.max_bytes` (apparent size: a 1 TB sparse file is refused, not copied).
//! Copies keep holes ([`copy_sparse`]), and leave the quarantine's filesystem a
//! reserve of free space.

use std::{
    io::{Read, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use nix::{
    fcntl::{OFlag, RenameFlags},
    sys::stat::Mode,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{QuarantineRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> QuarantineError {
    let context = context.into();
    move |source| QuarantineError::Io { context, source }
}

fn nix_io(context: impl Into<String>) -> impl FnOnce(nix::Error) -> QuarantineError {
    let context = context.into();
    move |e| QuarantineError::Io {
        context,
        source: std::io::Error::from(e),
    }
}

/// A quarantine entry as listed (csm-api.md "Cleanup fields").
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Entry {
    #[serde(flatten)]
    pub row: QuarantineRow,
    /// original_missing, live_differs, original_not_file, archive_missing,
    /// archive_not_file or unknown.
    pub live_state: &'static str,
}

/// Preview of a quarantined file.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Preview {
    pub id: String,
    pub original_path: String,
    pub size: u64,
    /// The first bytes, as text (invalid UTF-8 replaced).
    pub content: String,
    pub truncated: bool,
    pub binary: bool,
}

/// What the detection saw of a file; a quarantine refuses anything else.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// SHA-256 of the content scanned (whole files only).
    pub sha256: Option<String>,
    /// (device, inode) of the file scanned.
    pub file: Option<(u64, u64)>,
}

/// Free space a quarantine copy must leave on the quarantine's filesystem.
const FREE_RESERVE: u64 = 64 * 1024 * 1024;

pub struct Quarantine {
    dir: PathBuf,
    store: Store,
    /// Trees a quarantine or restore may touch.
    roots: Vec<PathBuf>,
    /// Largest file (apparent size) quarantined (`quarantine.max_bytes`, applied
    /// live by the settings API).
    max_bytes: std::sync::atomic::AtomicU64,
}

/// Is `path` strictly inside one of `roots`, by plain components (no `.`/`..`)?
pub fn within(path: &Path, roots: &[PathBuf]) -> bool {
    use std::path::Component;
    let plain = |p: &Path| {
        p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    };
    plain(path)
        && roots
            .iter()
            .any(|r| plain(r) && path != r.as_path() && path.starts_with(r))
}

fn sha256_file(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Copy `size` bytes of `src` to `dst` at the same offsets, hashing all of them:
/// data extents are copied, holes (SEEK_DATA/SEEK_HOLE) are hashed as zeros and
/// left as holes, so a sparse file takes no more room in the quarantine than where
/// it was. Returns (sha256, bytes).
fn copy_sparse(
    src: &mut std::fs::File,
    dst: &mut std::fs::File,
    size: u64,
) -> std::io::Result<(String, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut h = Sha256::new();
    let zeros = vec![0u8; 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let fd = src.as_raw_fd();
    let mut pos = 0u64;
    let hash_zeros = |h: &mut Sha256, mut n: u64| {
        while n > 0 {
            let k = n.min(zeros.len() as u64) as usize;
            h.update(&zeros[..k]);
            n -= k as u64;
        }
    };
    while pos < size {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        let data = if data < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                // No data after `pos`: the rest is a hole.
                Some(libc::ENXIO) => size,
                // No SEEK_DATA on this filesystem: everything is data.
                Some(libc::EINVAL) => pos,
                _ => return Err(e),
            }
        } else {
            (data as u64).min(size)
        };
        hash_zeros(&mut h, data - pos);
        pos = data;
        if pos >= size {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            size
        } else {
            (hole as u64).min(size)
        };
        src.seek(SeekFrom::Start(pos))?;
        dst.seek(SeekFrom::Start(pos))?;
        while pos < end {
            let want = ((end - pos) as usize).min(buf.len());
            let n = src.read(&mut buf[..want])?;
            if n == 0 {
                // Shrunk while copying: the hash then differs from any expectation.
                return Ok((hex::encode(h.finalize()), pos));
            }
            h.update(&buf[..n]);
            dst.write_all(&buf[..n])?;
            pos += n as u64;
        }
    }
    dst.set_len(size)?;
    Ok((hex::encode(h.finalize()), size))
}

fn fsync_dir(p: &Path) {
    if let Ok(d) = std::fs::File::open(p) {
        let _ = d.sync_all();
    }
}

impl Quarantine {
    pub fn new(
        dir: PathBuf,
        store: Store,
        roots: Vec<PathBuf>,
        max_bytes: u64,
    ) -> Result<Self, QuarantineError> {
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("chmod 0700 {}", dir.display())))?;
        Ok(Self {
            dir,
            store,
            roots,
            max_bytes: max_bytes.into(),
        })
    }

    /// Change the largest file quarantined (the settings API).
    pub fn set_max_bytes(&self, n: u64) {
        self.max_bytes
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The trees a quarantine, a restore or a fix may touch.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn check_within(&self, path: &Path) -> Result<(), QuarantineError> {
        if within(path, &self.roots) {
            return Ok(());
        }
        Err(QuarantineError::Invalid(format!(
            "{} is outside the trees the quarantine may touch (quarantine.roots: {})",
            path.display(),
            self.roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Move `path` into the quarantine. Returns the record.
    pub async fn quarantine(
        &self,
        path: &Path,
        reason: &str,
        rule: Option<String>,
        finding_id: Option<i64>,
        actor: &str,
        expect: Expect,
    ) -> Result<QuarantineRow, QuarantineError> {
        if !path.is_absolute() {
            return Err(QuarantineError::Invalid(format!(
                "{} is not an absolute path",
                path.display()
            )));
        }
        self.check_within(path)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(QuarantineError::Invalid(format!(
                "{} names no file",
                path.display()
            )));
        };
        let parent_fd = open_dir_nofollow(parent)?;
        let parent_dir = dir_identity(&parent_fd)?;
        let name = name.to_os_string();
        let id = hex::encode(rand::random::<[u8; 8]>());
        let archive = self.dir.join(format!("{id}.bin"));
        let (p, a) = (path.to_path_buf(), archive.clone());
        let (dirfd, n) = (parent_fd.as_raw_fd(), name.clone());
        let (max_bytes, qdir) = (
            self.max_bytes.load(std::sync::atomic::Ordering::Relaxed),
            self.dir.clone(),
        );
        let copied = tokio::task::spawn_blocking(move || -> Result<_, QuarantineError> {
            let fd = nix::fcntl::openat(
                Some(dirfd),
                n.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                nix::Error::ENOENT => {
                    QuarantineError::NotFound(format!("{} does not exist", p.display()))
                }
                e => nix_io(format!("opening {}", p.display()))(e),
            })?;
            let mut src = std::fs::File::from(unsafe_owned(fd));
            let meta = src.metadata().map_err(io("fstat"))?;
            if !meta.is_file() {
                return Err(QuarantineError::Invalid(format!(
                    "{} is not a regular file",
                    p.display()
                )));
            }
            if let Some((dev, ino)) = expect.file {
                if (meta.dev(), meta.ino()) != (dev, ino) {
                    return Err(QuarantineError::Conflict(format!(
                        "{} is no longer the file that was detected (another inode now)",
                        p.display()
                    )));
                }
            }
            if meta.len() > max_bytes {
                return Err(QuarantineError::Invalid(format!(
                    "{} is {} bytes, over quarantine.max_bytes ({max_bytes})",
                    p.display(),
                    meta.len()
                )));
            }
            let needed = meta.blocks().saturating_mul(512);
            let fs = nix::sys::statvfs::statvfs(&qdir)
                .map_err(nix_io(format!("statvfs {}", qdir.display())))?;
            let free = fs.blocks_available() as u64 * fs.fragment_size() as u64;
            if free < needed.saturating_add(FREE_RESERVE) {
                return Err(QuarantineError::Invalid(format!(
                    "{} needs {needed} bytes; {} has {free} free, keeping {FREE_RESERVE} in reserve",
                    p.display(),
                    qdir.display()
                )));
            }
            let mut dst = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&a)
                .map_err(io(format!("creating {}", a.display())))?;
            let (sha, n) = copy_sparse(&mut src, &mut dst, meta.len())
                .map_err(io("copying into the quarantine"))?;
            dst.sync_all().map_err(io("fsync"))?;
            if let Some(want) = &expect.sha256 {
                if *want != sha {
                    return Err(QuarantineError::Conflict(format!(
                        "{} no longer holds what was detected (sha256 {sha}, detected {want})",
                        p.display()
                    )));
                }
            }
            if meta.nlink() > 1 {
                tracing::warn!(path = %p.display(), links = meta.nlink(),
                    "Quarantined file has other hard links; only this name is removed.");
            }
            Ok((meta, sha, n))
        })
        .await
        .map_err(|e| QuarantineError::Invalid(format!("quarantine task failed: {e}")))?;
        let (meta, sha, size) = match copied {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&archive);
                return Err(e);
            }
        };
        fsync_dir(&self.dir);
        let row = QuarantineRow {
            id: id.clone(),
            original_path: path.display().to_string(),
            archive: archive.display().to_string(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            size,
            sha256: sha,
            quarantined_at: crate::store::now_rfc3339(),
            reason: reason.to_string(),
            rule,
            finding_id,
            actor: actor.to_string(),
            kind: "quarantine".into(),
            restored_at: None,
            parent_dir: Some(parent_dir),
        };
        // Record first, then remove the original: a crash in between leaves both
        // copies, never neither.
        if let Err(e) = self.store.insert_quarantine(row.clone()).await {
            let _ = std::fs::remove_file(&archive);
            return Err(e.into());
        }
        // The name in the same directory (the fd, not the path) must still be the
        // file copied: a swap since is refused, and nothing else is ever unlinked.
        let still_same = nix::sys::stat::fstatat(
            Some(parent_fd.as_raw_fd()),
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|m| m.st_dev == meta.dev() && m.st_ino == meta.ino());
        let removed = if still_same {
            nix::unistd::unlinkat(
                Some(parent_fd.as_raw_fd()),
                name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .map_err(nix_io(format!("removing {}", path.display())))
        } else {
            Err(QuarantineError::Conflict(format!(
                "{} changed while it was being quarantined",
                path.display()
            )))
        };
        if let Err(e) = removed {
            let _ = self.store.delete_quarantine(id).await;
            let _ = std::fs::remove_file(&archive);
            return Err(e);
        }
        let _ = nix::unistd::fsync(parent_fd.as_raw_fd());
        tracing::info!(id = %row.id, path = %row.original_path, sha256 = %row.sha256, "Quarantined.");
        Ok(row)
    }

    async fn row(&self, id: &str) -> Result<QuarantineRow, QuarantineError> {
        self.store
            .quarantine_rows(Some(id.to_string()), false)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| QuarantineError::NotFound(format!("no quarantined file {id:?}")))
    }

    /// Put a quarantined file back where it was, with its owner, mode and mtime.
    /// Refuses when something exists at that path now (409) or its directory is gone.
    pub async fn restore(&self, id: &str) -> Result<QuarantineRow, QuarantineError> {
        let row = self.row(id).await?;
        self.check_within(Path::new(&row.original_path))?;
        let r = row.clone();
        tokio::task::spawn_blocking(move || restore_file(&r))
            .await
            .map_err(|e| QuarantineError::Invalid(format!("restore task failed: {e}")))??;
        self.store.mark_restored(row.id.clone()).await?;
        let _ = std::fs::remove_file(&row.archive);
        tracing::info!(id = %row.id, path = %row.original_path, "Restored from quarantine.");
        Ok(row)
    }

    /// Entries still in quarantine with their live state. An entry whose original
    /// path holds a byte-identical file again is hidden.
    pub async fn list(&self) -> Result<Vec<Entry>, QuarantineError> {
        let rows = self.store.quarantine_rows(None, false).await?;
        tokio::task::spawn_blocking(move || {
            rows.into_iter()
                .filter_map(|row| {
                    let state = live_state(&row);
                    (state != "identical").then_some(Entry {
                        row,
                        live_state: state,
                    })
                })
                .collect()
        })
        .await
        .map_err(|e| QuarantineError::Invalid(format!("list task failed: {e}")))
    }

    pub async fn preview(&self, id: &str, max: usize) -> Result<Preview, QuarantineError> {
        let row = self.row(id).await?;
        let mut f = std::fs::File::open(&row.archive)
            .map_err(io(format!("opening the archive of {id}")))?;
        let mut buf = Vec::new();
        (&mut f)
            .take(max as u64)
            .read_to_end(&mut buf)
            .map_err(io("reading the archive"))?;
        let binary = buf.iter().take(8192).any(|b| *b == 0);
        Ok(Preview {
            id: row.id,
            original_path: row.original_path,
            size: row.size,
            truncated: (buf.len() as u64) < row.size,
            content: String::from_utf8_lossy(&buf).into_owned(),
            binary,
        })
    }

    /// Delete quarantined files for good. Returns (deleted, not found).
    pub async fn delete(
        &self,
        ids: Vec<String>,
    ) -> Result<(Vec<String>, Vec<String>), QuarantineError> {
        let (mut deleted, mut missing) = (Vec::new(), Vec::new());
        for id in ids {
            match self.row(&id).await {
                Ok(row) => {
                    match std::fs::remove_file(&row.archive) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(format!("removing {}", row.archive))(e)),
                    }
                    self.store.delete_quarantine(id.clone()).await?;
                    deleted.push(id);
                }
                Err(QuarantineError::NotFound(_)) => missing.push(id),
                Err(e) => return Err(e),
            }
        }
        Ok((deleted, missing))
    }
}

/// "identical" (hidden from lists) or one of the spec's live states.
fn live_state(row: &QuarantineRow) -> &'static str {
    match std::fs::symlink_metadata(&row.archive) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return "archive_missing",
        Err(_) => return "unknown",
        Ok(m) if !m.is_file() => return "archive_not_file",
        Ok(_) => {}
    }
    match std::fs::symlink_metadata(&row.original_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "original_missing",
        Err(_) => "unknown",
        Ok(m) if !m.is_file() => "original_not_file",
        Ok(m) if m.len() != row.size => "live_differs",
        Ok(_) => match sha256_file(Path::new(&row.original_path)) {
            Ok(s) if s == row.sha256 => "identical",
            Ok(_) => "live_differs",
            Err(_) => "unknown",
        },
    }
}

/// A directory's identity ("dev:ino"), from its open descriptor.
fn dir_identity(dir: &std::os::fd::OwnedFd) -> Result<String, QuarantineError> {
    let st = nix::sys::stat::fstat(dir.as_raw_fd()).map_err(nix_io("fstat of a directory"))?;
    Ok(format!("{}:{}", st.st_dev, st.st_ino))
}

fn restore_file(row: &QuarantineRow) -> Result<(), QuarantineError> {
    let target = Path::new(&row.original_path);
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(QuarantineError::Invalid(format!(
            "bad original path {:?}",
            row.original_path
        )));
    };
    // The original directory, reached without symlinks: one swapped for a symlink
    // since (into /etc, say) is refused, never written through.
    let dir = open_dir_nofollow(parent).map_err(|e| match e {
        QuarantineError::NotFound(_) => {
            QuarantineError::Conflict(format!("directory {} no longer exists", parent.display()))
        }
        e => e,
    })?;
    if let Some(want) = &row.parent_dir {
        if dir_identity(&dir)? != *want {
            return Err(QuarantineError::Conflict(format!(
                "{} is not the directory the file was quarantined from (it was replaced since); restore refused",
                parent.display()
            )));
        }
    }
    if nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .is_ok()
    {
        return Err(QuarantineError::Conflict(format!(
            "{} exists; move it away first",
            target.display()
        )));
    }
    let tmp_name = format!(".{}.rampart-restore-{}", name.to_string_lossy(), row.id);
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        tmp_name.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(nix_io(format!(
        "creating a temporary file in {}",
        parent.display()
    )))?;
    let mut out = std::fs::File::from(unsafe_owned(fd));
    let cleanup = |e: QuarantineError| {
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            tmp_name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        e
    };
    let mut src = std::fs::File::open(&row.archive)
        .map_err(|e| cleanup(io(format!("opening the archive {}", row.archive))(e)))?;
    let (sha, _) =
        copy_sparse(&mut src, &mut out, row.size).map_err(|e| cleanup(io("copying back")(e)))?;
    if sha != row.sha256 {
        return Err(cleanup(QuarantineError::Conflict(format!(
            "archive of {} is corrupt (sha256 {sha}, recorded {})",
            row.id, row.sha256
        ))));
    }
    let fd = out.as_raw_fd();
    let r = (|| -> Result<(), QuarantineError> {
        nix::unistd::fchown(fd, Some(row.uid.into()), Some(row.gid.into()))
            .map_err(nix_io("fchown"))?;
        // After fchown: chown clears setuid/setgid bits.
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(row.mode)).map_err(nix_io("fchmod"))?;
        let mtime = nix::sys::time::TimeSpec::new(row.mtime_sec, row.mtime_nsec);
        nix::sys::stat::futimens(fd, &mtime, &mtime).map_err(nix_io("futimens"))?;
        out.sync_all().map_err(io("fsync"))?;
        nix::fcntl::renameat2(
            Some(dir.as_raw_fd()),
            tmp_name.as_str(),
            Some(dir.as_raw_fd()),
            name,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(|e| match e {
            nix::Error::EEXIST => QuarantineError::Conflict(format!(
                "{} appeared during the restore",
                target.display()
            )),
            e => nix_io("renaming into place")(e),
        })
    })();
    r.map_err(cleanup)?;
    let _ = nix::unistd::fsync(dir.as_raw_fd());
    Ok(())
}

/// Open the absolute directory `dir` for `*at()` calls without following a symlink
/// (or a /proc magic link) at any component: each component is opened with
/// `O_NOFOLLOW | O_DIRECTORY` relative to the one before, so a symlink fails with
/// ENOTDIR instead of being followed. `.` and `..` are refused. Works on every
/// kernel (openat2's `RESOLVE_NO_SYMLINKS` needs 5.6).
pub fn open_dir_nofollow(dir: &Path) -> Result<std::os::fd::OwnedFd, QuarantineError> {
    use std::path::Component;
    if !dir.is_absolute() {
        return Err(QuarantineError::Invalid(format!(
            "{} is not an absolute path",
            dir.display()
        )));
    }
    let names: Vec<&std::ffi::OsStr> = dir
        .components()
        .filter_map(|c| match c {
            Component::RootDir => None,
            Component::Normal(n) => Some(Ok(n)),
            _ => Some(Err(())),
        })
        .collect::<Result<_, ()>>()
        .map_err(|()| {
            QuarantineError::Invalid(format!("{} has . or .. components", dir.display()))
        })?;
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = unsafe_owned(
        nix::fcntl::open("/", flags | OFlag::O_RDONLY, Mode::empty())
            .map_err(nix_io("opening /"))?,
    );
    for (i, n) in names.iter().enumerate() {
        // Intermediate directories as O_PATH (search only); the last one readable, so
        // it can be fsync'ed.
        let last = i + 1 == names.len();
        let how = if last {
            flags | OFlag::O_RDONLY
        } else {
            flags | OFlag::O_PATH
        };
        let next = nix::fcntl::openat(Some(fd.as_raw_fd()), *n, how, Mode::empty()).map_err(
            |e| match e {
                nix::Error::ENOENT => {
                    QuarantineError::NotFound(format!("{} does not exist", dir.display()))
                }
                nix::Error::ENOTDIR | nix::Error::ELOOP => QuarantineError::Conflict(format!(
                    "{} is not a directory reached without symlinks (a component is a symlink or a file)",
                    dir.display()
                )),
                e => nix_io(format!("opening {}", dir.display()))(e),
            },
        )?;
        fd = unsafe_owned(next);
    }
    Ok(fd)
}

pub(crate) fn unsafe_owned(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by open(2)/openat(2) and is owned by no one else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A quarantine that may touch `root` only, files up to 64 MiB.
    fn q_in(dir: &Path, root: &Path) -> Quarantine {
        let store = Store::open(&dir.join("s.db"), 8).expect("store");
        Quarantine::new(dir.join("q"), store, vec![root.to_path_buf()], 64 << 20)
            .expect("quarantine")
    }

    #[tokio::test]
    async fn quarantine_and_restore_keep_bytes_owner_mode_and_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        std::fs::create_dir(&www).expect("mkdir");
        let q = q_in(dir.path(), &www);
        let f = www.join("shell.php");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, &content).expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        nix::unistd::chown(&f, Some(33.into()), Some(34.into()))
            .expect("chown (tests run as root)");
        let mt = nix::sys::time::TimeSpec::new(1_600_000_000, 123_456_789);
        nix::sys::stat::utimensat(
            None,
            &f,
            &mt,
            &mt,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .expect("utimensat");
        let before = std::fs::metadata(&f).expect("stat");

        let row = q
            .quarantine(&f, "test", Some("r".into()), None, "op", Expect::default())
            .await
            .expect("quarantine");
        assert!(!f.exists());
        assert_eq!(row.size, content.len() as u64);
        assert_eq!(row.sha256, hex::encode(Sha256::digest(&content)));
        let arch = std::fs::metadata(&row.archive).expect("archive");
        assert_eq!(arch.permissions().mode() & 0o777, 0o600);
        let list = q.list().await.expect("list");
        assert_eq!((list.len(), list[0].live_state), (1, "original_missing"));
        let p = q.preview(&row.id, 16).await.expect("preview");
        assert!(p.truncated && p.binary);

        // Something else at the path now: restore refuses, the list says so.
        std::fs::write(&f, b"new").expect("write");
        assert!(matches!(
            q.restore(&row.id).await,
            Err(QuarantineError::Conflict(_))
        ));
        assert_eq!(q.list().await.expect("list")[0].live_state, "live_differs");
        std::fs::remove_file(&f).expect("rm");

        q.restore(&row.id).await.expect("restore");
        assert_eq!(std::fs::read(&f).expect("read"), content);
        let after = std::fs::metadata(&f).expect("stat");
        assert_eq!(
            (
                after.uid(),
                after.gid(),
                after.mode(),
                after.mtime(),
                after.mtime_nsec()
            ),
            (
                before.uid(),
                before.gid(),
                before.mode(),
                before.mtime(),
                before.mtime_nsec()
            )
        );
        assert!(q.list().await.expect("list").is_empty());
        assert!(!Path::new(&row.archive).exists());
        assert!(matches!(
            q.restore(&row.id).await,
            Err(QuarantineError::NotFound(_))
        ));
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&www).expect("ls").count(), 1);
    }

    #[tokio::test]
    async fn refuses_symlinks_dirs_and_missing_files_and_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = q_in(dir.path(), dir.path());
        let target = dir.path().join("t");
        std::fs::write(&target, b"x").expect("write");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(q
            .quarantine(&link, "", None, None, "op", Expect::default())
            .await
            .is_err());
        assert!(target.exists() && link.exists());
        assert!(matches!(
            q.quarantine(dir.path(), "", None, None, "op", Expect::default())
                .await,
            Err(QuarantineError::Invalid(_))
        ));
        assert!(matches!(
            q.quarantine(
                &dir.path().join("nope"),
                "",
                None,
                None,
                "op",
                Expect::default()
            )
            .await,
            Err(QuarantineError::NotFound(_))
        ));
        assert_eq!(
            std::fs::read_dir(q.dir()).expect("ls").count(),
            0,
            "no archive left"
        );
        let row = q
            .quarantine(&target, "", None, None, "op", Expect::default())
            .await
            .expect("q");
        let (d, m) = q
            .delete(vec![row.id.clone(), "nope".into()])
            .await
            .expect("delete");
        assert_eq!((d, m), (vec![row.id.clone()], vec!["nope".to_string()]));
        assert!(!Path::new(&row.archive).exists());
    }

    /// A directory in the path swapped for a symlink after the finding: the fix
    /// refuses, and the same-named file in the symlink's target is untouched.
    #[tokio::test]
    async fn a_parent_swapped_for_a_symlink_is_refused_before_fix_and_restore() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = q_in(dir.path(), dir.path());
        let (d, moved, victim) = (
            dir.path().join("www/d"),
            dir.path().join("www/d-moved"),
            dir.path().join("etc"),
        );
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::create_dir_all(&victim).expect("mkdir");
        std::fs::write(d.join("x.php"), b"<?php system($_GET[1]);").expect("write");
        std::fs::write(victim.join("x.php"), b"root's file").expect("write");
        std::fs::rename(&d, &moved).expect("mv");
        std::os::unix::fs::symlink(&victim, &d).expect("symlink");
        assert!(matches!(
            q.quarantine(&d.join("x.php"), "", None, None, "op", Expect::default())
                .await,
            Err(QuarantineError::Conflict(_))
        ));
        assert_eq!(
            std::fs::read(victim.join("x.php")).expect("read"),
            b"root's file"
        );
        // A /proc magic link into the directory is refused the same way.
        let magic = PathBuf::from(format!("/proc/{}/root", std::process::id()))
            .join(moved.strip_prefix("/").expect("absolute"));
        assert!(q
            .quarantine(
                &magic.join("x.php"),
                "",
                None,
                None,
                "op",
                Expect::default()
            )
            .await
            .is_err());
        assert!(moved.join("x.php").exists());

        // Quarantined from the real directory; then the directory becomes a symlink
        // into the victim before the restore: nothing is written there.
        std::fs::remove_file(&d).expect("rm link");
        std::fs::rename(&moved, &d).expect("mv back");
        let row = q
            .quarantine(&d.join("x.php"), "", None, None, "op", Expect::default())
            .await
            .expect("quarantine");
        std::fs::remove_file(victim.join("x.php")).expect("rm");
        std::fs::rename(&d, &moved).expect("mv");
        std::os::unix::fs::symlink(&victim, &d).expect("symlink");
        assert!(matches!(
            q.restore(&row.id).await,
            Err(QuarantineError::Conflict(_))
        ));
        assert_eq!(std::fs::read_dir(&victim).expect("ls").count(), 0);
        assert!(matches!(
            open_dir_nofollow(Path::new("/tmp/../etc")),
            Err(QuarantineError::Invalid(_))
        ));
    }

    /// The original directory replaced by another real directory (a customer's, or
    /// one bind-mounted from elsewhere) before the restore: refused; once the
    /// original is back, the restore goes through.
    #[tokio::test]
    async fn restore_goes_only_into_the_directory_it_came_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = q_in(dir.path(), dir.path());
        let (d, moved) = (dir.path().join("www/d"), dir.path().join("www/d-orig"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("x.php"), b"<?php system($_GET[1]);").expect("write");
        let row = q
            .quarantine(&d.join("x.php"), "", None, None, "op", Expect::default())
            .await
            .expect("quarantine");
        std::fs::rename(&d, &moved).expect("mv");
        std::fs::create_dir(&d).expect("a new directory of the same name");
        let refused = q.restore(&row.id).await;
        assert!(
            matches!(&refused, Err(QuarantineError::Conflict(m)) if m.contains("not the directory")),
            "{refused:?}"
        );
        assert_eq!(
            std::fs::read_dir(&d).expect("ls").count(),
            0,
            "nothing written"
        );
        std::fs::remove_dir(&d).expect("rmdir");
        std::fs::rename(&moved, &d).expect("mv back");
        q.restore(&row.id).await.expect("the original directory");
        assert_eq!(
            std::fs::read(d.join("x.php")).expect("restored"),
            b"<?php system($_GET[1]);"
        );
    }

    #[tokio::test]
    async fn nothing_outside_the_configured_trees_is_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        std::fs::create_dir(&www).expect("mkdir");
        let q = q_in(dir.path(), &www);
        let outside = dir.path().join("shadow");
        std::fs::write(&outside, b"root:x:0").expect("write");
        for p in [outside.clone(), www.join("../shadow"), www.clone()] {
            assert!(
                matches!(
                    q.quarantine(&p, "", None, None, "op", Expect::default())
                        .await,
                    Err(QuarantineError::Invalid(_))
                ),
                "{}",
                p.display()
            );
        }
        assert_eq!(std::fs::read(&outside).expect("read"), b"root:x:0");
        assert!(within(&www.join("a/b.php"), std::slice::from_ref(&www)));
        assert!(!within(&www, std::slice::from_ref(&www)));
        assert!(!within(
            Path::new("/var/www2/x"),
            &[PathBuf::from("/var/www")]
        ));
    }

    /// The webshell's name is re-pointed (hard link) at a file outside the tree
    /// after the finding: the content is not what was detected, nothing is removed.
    #[tokio::test]
    async fn content_or_inode_other_than_detected_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        std::fs::create_dir(&www).expect("mkdir");
        let q = q_in(dir.path(), &www);
        let shell = www.join("x.php");
        let webshell = b"<?php system($_GET['c']);";
        std::fs::write(&shell, webshell).expect("write");
        let seen = std::fs::metadata(&shell).expect("stat");
        let expect = Expect {
            sha256: Some(hex::encode(Sha256::digest(webshell))),
            file: Some((seen.dev(), seen.ino())),
        };
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"root's secret").expect("write");
        std::fs::remove_file(&shell).expect("rm");
        std::fs::hard_link(&secret, &shell).expect("ln");
        for e in [
            expect.clone(),
            Expect {
                file: None,
                ..expect.clone()
            },
            Expect {
                sha256: None,
                ..expect.clone()
            },
        ] {
            assert!(matches!(
                q.quarantine(&shell, "", None, None, "op", e).await,
                Err(QuarantineError::Conflict(_))
            ));
        }
        assert_eq!(std::fs::read(&secret).expect("read"), b"root's secret");
        assert!(shell.exists(), "not even the link is removed");
        assert_eq!(std::fs::read_dir(q.dir()).expect("ls").count(), 0);
        // The detected content under a hard link: quarantined, only this name goes.
        std::fs::remove_file(&shell).expect("rm");
        std::fs::write(&shell, webshell).expect("write");
        let other = dir.path().join("other-link.php");
        std::fs::hard_link(&shell, &other).expect("ln");
        let e = Expect {
            file: None,
            ..expect
        };
        q.quarantine(&shell, "", None, None, "op", e)
            .await
            .expect("the detected content");
        assert!(!shell.exists() && other.exists());
    }

    #[tokio::test]
    async fn a_sparse_terabyte_is_refused_and_small_sparse_files_stay_sparse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        std::fs::create_dir(&www).expect("mkdir");
        let q = q_in(dir.path(), &www);
        let huge = www.join("huge.php");
        let f = std::fs::File::create(&huge).expect("create");
        std::io::Write::write_all(&mut &f, b"<?php eval($_POST['x']);").expect("write");
        f.set_len(1 << 40).expect("1 TB sparse");
        drop(f);
        let e = q
            .quarantine(&huge, "", None, None, "op", Expect::default())
            .await
            .expect_err("over max_bytes");
        assert!(e.to_string().contains("quarantine.max_bytes"), "{e}");
        assert!(huge.exists());
        assert_eq!(std::fs::read_dir(q.dir()).expect("ls").count(), 0);

        // 32 MiB with 4 KiB of data in the middle.
        let sparse = www.join("sparse.bin");
        let f = std::fs::File::create(&sparse).expect("create");
        f.set_len(32 << 20).expect("len");
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xAB; 4096], 16 << 20).expect("write");
        drop(f);
        let content = std::fs::read(&sparse).expect("read");
        let row = q
            .quarantine(&sparse, "", None, None, "op", Expect::default())
            .await
            .expect("quarantine");
        assert_eq!(row.sha256, hex::encode(Sha256::digest(&content)));
        let arch = std::fs::metadata(&row.archive).expect("archive");
        assert_eq!(arch.len(), 32 << 20);
        assert!(
            arch.blocks() * 512 < 1 << 20,
            "the archive keeps the holes: {} bytes allocated",
            arch.blocks() * 512
        );
        q.restore(&row.id).await.expect("restore");
        assert_eq!(std::fs::read(&sparse).expect("read"), content);
        assert!(std::fs::metadata(&sparse).expect("stat").blocks() * 512 < 1 << 20);
    }
}
