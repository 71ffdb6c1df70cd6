// SPDX-License-Identifier: GPL-2.0-only
//! Following a log file: complete lines only, across rotation (rename + create: the
//! old file is read to its end first), truncation and copy-truncate (size below our
//! offset: start over), and a file that does not exist yet. Driven by inotify events
//! on the parent directory; no polling loop.
//!
//! A file is read only while root or a system daemon owns it and no user account can
//! write to it ([`writer_trusted`]): a log a customer can append to would let them
//! write "failed login from <anyone>" lines. Such a file is refused, said once, and
//! counted; it is looked at again when it is replaced (rotation).

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Lines longer than this are cut (and counted); the rest of such a line is skipped.
pub const MAX_LINE: usize = 16 * 1024;
/// Bytes read per call at most, so one busy file cannot starve the others.
const READ_CHUNK: usize = 1 << 20;

/// Where to start reading a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// At the end (first start: history is `rampart replay`'s job).
    End,
    /// At a saved position, if the file is still the same inode and at least that
    /// long; else from the beginning of the (rotated) new file.
    Saved { ino: u64, offset: u64 },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailStats {
    pub lines: u64,
    pub bytes: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub long_lines: u64,
    /// Opens refused because a user account could write the file.
    pub untrusted: u64,
}

/// First id of user accounts (`UID_MIN`/`GID_MIN` on Debian and RHEL): below are
/// root and the system daemons, whose writing is believed (files and journal alike).
pub const USER_ID_START: u32 = 1000;

/// May lines in a file with this owner and mode be believed? Only when no user
/// account can write it: owned by root or a system account, not world-writable,
/// group-writable only for a system group (Debian's `adm`, `syslog`).
pub fn writer_trusted(meta: &std::fs::Metadata) -> Result<(), &'static str> {
    if meta.uid() >= USER_ID_START {
        return Err("owned by a user account");
    }
    if meta.mode() & 0o002 != 0 {
        return Err("writable by every user");
    }
    if meta.mode() & 0o020 != 0 && meta.gid() >= USER_ID_START {
        return Err("writable by a user group");
    }
    Ok(())
}

/// Syslog daemons: what they write into a file may come from any local process.
const SYSLOG_DAEMONS: [&str; 3] = ["rsyslogd", "syslog-ng", "syslogd"];

/// The files a syslog daemon holds open for writing now (their /proc fd targets),
/// found under `proc` (`/proc`). A daemon's own log file (proftpd's, dovecot's
/// `log_path`) is not among them.
pub fn syslog_written(proc: &Path) -> std::collections::HashSet<PathBuf> {
    let mut files = std::collections::HashSet::new();
    let Ok(pids) = std::fs::read_dir(proc) else {
        return files;
    };
    for p in pids.flatten() {
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        if !SYSLOG_DAEMONS.contains(&comm.trim_end()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // Opened for writing: the flags in fdinfo (O_WRONLY or O_RDWR).
            let writes = std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                })
                .is_some_and(|f| f & 0o3 != 0);
            if let (true, Ok(target)) = (writes, std::fs::read_link(fd.path())) {
                files.insert(target);
            }
        }
    }
    files
}

pub struct Tailer {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    offset: u64,
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    pending_start: Option<Start>,
    /// The last bytes read before `offset`: if they are not there any more, the file
    /// was truncated and rewritten past our offset before we looked (copy-truncate
    /// under load), which its size alone cannot show.
    sig: Vec<u8>,
    /// The inode last refused as untrusted (said once per file).
    refused_ino: Option<u64>,
    pub stats: TailStats,
}

const SIG_LEN: usize = 32;

impl Tailer {
    pub fn new(path: PathBuf, start: Start) -> Self {
        let mut t = Self {
            path,
            file: None,
            ino: 0,
            offset: 0,
            partial: Vec::new(),
            skipping: false,
            pending_start: Some(start),
            sig: Vec::new(),
            refused_ino: None,
            stats: TailStats::default(),
        };
        t.reopen();
        if t.file.is_none() {
            // Not there yet: when it appears, all of it is new.
            t.pending_start = Some(Start::Saved { ino: 0, offset: 0 });
        }
        t
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (inode, offset of the next unread byte): what to save for a restart. Bytes of
    /// an incomplete last line are not counted as read.
    pub fn position(&self) -> (u64, u64) {
        (self.ino, self.offset - self.partial.len() as u64)
    }

    /// Open the file at `path` (if it exists) according to the pending start.
    fn reopen(&mut self) {
        let Ok(f) = File::open(&self.path) else {
            self.file = None;
            return;
        };
        let Ok(meta) = f.metadata() else { return };
        if let Err(why) = writer_trusted(&meta) {
            if self.refused_ino != Some(meta.ino()) {
                self.refused_ino = Some(meta.ino());
                self.stats.untrusted += 1;
                tracing::warn!(path = %self.path.display(), uid = meta.uid(),
                    mode = format!("{:o}", meta.mode() & 0o7777), why,
                    "Log file not read: a user account could forge its lines.");
            }
            self.file = None;
            return;
        }
        self.refused_ino = None;
        let start = self.pending_start.take();
        let offset = match start {
            Some(Start::End) => meta.len(),
            Some(Start::Saved { ino, offset }) if ino == meta.ino() && offset <= meta.len() => {
                offset
            }
            // Rotated while we were away, or a file created after we started: all new.
            _ => 0,
        };
        let mut f = f;
        if f.seek(SeekFrom::Start(offset)).is_err() {
            return;
        }
        self.file = Some(f);
        self.ino = meta.ino();
        self.offset = offset;
        self.partial.clear();
        self.skipping = false;
        self.sig.clear();
    }

    /// Was the file truncated (below our offset, or rewritten past it)?
    fn truncated(&self) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(f) = &self.file else { return false };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            return false;
        };
        if len < self.offset {
            return true;
        }
        if self.sig.is_empty() {
            return false;
        }
        let mut now = vec![0u8; self.sig.len()];
        match f.read_exact_at(&mut now, self.offset - self.sig.len() as u64) {
            Ok(()) => now != self.sig,
            Err(_) => true,
        }
    }

    /// Read what is there now; push complete lines (without the newline) to `out`.
    pub fn poll(&mut self, out: &mut Vec<String>) {
        if self.file.is_none() {
            self.reopen();
        }
        // Truncated (copy-truncate): start over.
        if self.truncated() {
            self.stats.truncations += 1;
            self.pending_start = Some(Start::Saved { ino: 0, offset: 0 });
            self.reopen();
        }
        self.drain(out);
        // Rotated: the path is another inode now. The old one was read to its end
        // above; continue with the new one from its start.
        let now = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if now.is_some() && now != Some(self.ino) {
            self.stats.rotations += 1;
            self.flush_partial(out);
            self.pending_start = Some(Start::Saved { ino: 0, offset: 0 });
            self.reopen();
            self.drain(out);
        }
    }

    fn drain(&mut self, out: &mut Vec<String>) {
        // Taken out while reading, so lines can be emitted through `self`.
        let Some(mut f) = self.file.take() else {
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        while total < READ_CHUNK {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            total += n;
            self.offset += n as u64;
            let keep = SIG_LEN.saturating_sub(n).min(self.sig.len());
            self.sig.drain(..self.sig.len() - keep);
            self.sig
                .extend_from_slice(&buf[n.saturating_sub(SIG_LEN)..n]);
            self.stats.bytes += n as u64;
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|b| *b == b'\n') {
                if !self.skipping {
                    self.partial.extend_from_slice(&rest[..i]);
                    self.emit(out);
                }
                self.skipping = false;
                self.partial.clear();
                rest = &rest[i + 1..];
            }
            if !self.skipping {
                self.partial.extend_from_slice(rest);
                if self.partial.len() > MAX_LINE {
                    // Emit the cut line now; skip the rest up to its newline.
                    self.emit(out);
                    self.partial.clear();
                    self.skipping = true;
                }
            }
        }
        self.file = Some(f);
    }

    /// A rotated file's last line without a newline is still a line.
    fn flush_partial(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() && !self.skipping {
            self.emit(out);
        }
        self.partial.clear();
        self.skipping = false;
    }

    fn emit(&mut self, out: &mut Vec<String>) {
        let mut line = std::mem::take(&mut self.partial);
        if line.len() > MAX_LINE {
            line.truncate(MAX_LINE);
            self.stats.long_lines += 1;
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.stats.lines += 1;
        out.push(String::from_utf8_lossy(&line).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open");
        f.write_all(s.as_bytes()).expect("write");
    }

    fn lines(t: &mut Tailer) -> Vec<String> {
        let mut v = Vec::new();
        t.poll(&mut v);
        v
    }

    #[test]
    fn starts_at_end_and_yields_complete_lines_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("auth.log");
        append(&p, "old line\n");
        let mut t = Tailer::new(p.clone(), Start::End);
        assert!(lines(&mut t).is_empty());
        append(&p, "one\ntw");
        assert_eq!(lines(&mut t), ["one"]);
        append(&p, "o\r\nthree\n");
        assert_eq!(lines(&mut t), ["two", "three"]);
        assert_eq!(t.position().1, std::fs::metadata(&p).expect("stat").len());
    }

    #[test]
    fn rotation_truncation_missing_file_and_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("auth.log");
        let mut t = Tailer::new(p.clone(), Start::End);
        assert!(lines(&mut t).is_empty(), "a missing file is waited for");
        append(&p, "created\n");
        assert_eq!(
            lines(&mut t),
            ["created"],
            "a file created later is read from its start"
        );

        // logrotate: rename, then a new file; the old one's tail is not lost.
        append(&p, "last of old\nunterminated");
        std::fs::rename(&p, dir.path().join("auth.log.1")).expect("rename");
        append(&p, "first of new\n");
        assert_eq!(
            lines(&mut t),
            ["last of old", "unterminated", "first of new"]
        );
        assert_eq!(t.stats.rotations, 1);

        // copytruncate: the file shrinks below our offset.
        std::fs::write(&p, "").expect("truncate");
        append(&p, "after truncate\n");
        assert_eq!(lines(&mut t), ["after truncate"]);
        assert_eq!(t.stats.truncations, 1);

        // Restart: resume where we were; a different inode means start over.
        let (ino, off) = t.position();
        append(&p, "while down\n");
        let mut t2 = Tailer::new(p.clone(), Start::Saved { ino, offset: off });
        assert_eq!(lines(&mut t2), ["while down"]);
        let mut t3 = Tailer::new(
            p.clone(),
            Start::Saved {
                ino: ino + 1,
                offset: off,
            },
        );
        assert_eq!(lines(&mut t3), ["after truncate", "while down"]);
    }

    #[test]
    fn overlong_lines_are_cut_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.log");
        std::fs::write(&p, "").expect("create");
        let mut t = Tailer::new(p.clone(), Start::End);
        append(&p, &format!("{}\nshort\n", "a".repeat(MAX_LINE * 3)));
        let v = lines(&mut t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].len(), MAX_LINE);
        assert_eq!(v[1], "short");
        assert_eq!(t.stats.long_lines, 1);
    }

    #[test]
    fn a_log_a_user_can_write_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("auth.log");
        std::fs::write(&p, "").expect("create");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let mut t = Tailer::new(p.clone(), Start::End);
        std::fs::write(&p, "forged line\n").expect("write");
        let mut out = Vec::new();
        t.poll(&mut out);
        assert!(out.is_empty() && t.stats.untrusted == 1, "{out:?}");
        t.poll(&mut out);
        assert_eq!(t.stats.untrusted, 1, "said once per file");
        // Owned by a customer: refused too.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        nix::unistd::chown(&p, Some(1001.into()), None).expect("chown (root)");
        let mut t = Tailer::new(p.clone(), Start::Saved { ino: 0, offset: 0 });
        t.poll(&mut out);
        assert!(out.is_empty() && t.stats.untrusted == 1);
        // Root's own 0640 file with group adm-like system group: read.
        nix::unistd::chown(&p, Some(0.into()), Some(4.into())).expect("chown");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let mut t = Tailer::new(p.clone(), Start::Saved { ino: 0, offset: 0 });
        t.poll(&mut out);
        assert_eq!(out, ["forged line"]);
    }
}
