// SPDX-License-Identifier: GPL-2.0-only
//! The mail AV: every message exim queues is read from its spool files (`<id>-H`:
//! envelope and headers, `<id>-D`: body), decoded (MIME parts, nested messages, zip
//! archives one level down) and scanned with the signature rules, the attachment
//! checks below and clamd when one answers. An infected message is moved out of the
//! queue into the mail quarantine, if exim is not already delivering it, and reported
//! as an `email_malware` finding.
//!
//! Holding a message: exim locks the first line of a message's `-D` file while a
//! process works on it (reception, delivery). The scan takes the same lock (an open
//! file description lock, which conflicts with exim's fcntl lock) before it looks,
//! and keeps it while it moves the files away, so a queue runner or a delivery
//! started meanwhile finds the message busy and then gone. When exim holds the lock
//! (an immediate delivery already running), the message is scanned all the same and
//! the finding says it could not be held.
//!
//! Everything here is written by strangers: every read is bounded (header file,
//! data file, parts, archive entries, nesting), no symlink is followed, a message
//! that does not parse is counted and left alone, and only ids of exim's own form
//! name files.

use std::{
    collections::{HashMap, HashSet},
    io::{Read, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use api::model::Severity;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::{io::unix::AsyncFd, sync::watch};

use super::{scan::Engine, signatures::Target};
use crate::{
    config::MailAv as Config,
    findings::Findings,
    logs::{mail, InotifyFd},
    store::NewFinding,
};

pub const CHECK_EMAIL_MALWARE: &str = "email_malware";
/// clamd's sockets on cPanel/RHEL and on Debian, tried in order.
pub const CLAMD_SOCKETS: &[&str] = &["/var/run/clamd.scan/clamd.sock", "/run/clamav/clamd.ctl"];
/// Bytes of a `-H` file read (envelope and headers).
const MAX_HEADER_FILE: u64 = 1 << 20;
/// Parts scanned per message, at most (archive entries included).
const MAX_PARTS: usize = 500;
/// Nested messages followed, at most.
const MAX_DEPTH: usize = 4;
/// Entries of one archive read, and bytes of one entry and of all together.
const MAX_ZIP_ENTRIES: usize = 200;
const MAX_ZIP_ENTRY: u64 = 16 << 20;
const MAX_ZIP_TOTAL: u64 = 64 << 20;
/// Messages remembered as scanned (id → data file inode).
const SEEN_MAX: usize = 200_000;
/// Ids queued for the scan thread; more wait for the next listing.
const QUEUE: usize = 4096;
const CLAMD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an infected message whose lock exim holds is tried again.
const HOLD_TRIES: u32 = 20;
const HOLD_WAIT: Duration = Duration::from_millis(250);
const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// Attachment names that run when opened on a mail client's desktop.
const RISKY_EXTENSIONS: &[&str] = &[
    "exe", "scr", "pif", "com", "cpl", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "wsh",
    "hta", "lnk", "jar", "ps1", "msi", "msc", "reg", "sct", "iso", "img", "vhd", "vhdx",
];

/// One detection in one part of a message (CSM's shape).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MailDetection {
    /// The part's name (`archive.zip/inner.exe` inside an archive).
    pub filename: String,
    /// `rampart-rules`, `attachment-checks` or `clamav`.
    pub engine: String,
    pub signature: String,
    /// critical, high, warning or info.
    pub severity: String,
}

/// A quarantined message: `metadata.json` beside its spool files (CSM's fields,
/// then Rampart's).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuarantinedMail {
    pub message_id: String,
    /// `outbound` when the sender's domain is hosted here, else `inbound`.
    pub direction: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// RFC 3339.
    pub quarantined_at: String,
    pub original_spool_dir: String,
    pub findings: Vec<MailDetection>,
    /// Only part of the message was scanned (size or part limits, a part that did
    /// not decode).
    pub partial_scan: bool,
    pub engines_used: Vec<String>,
    /// Bytes of the data file.
    pub size: u64,
    /// SHA-256 of the data file.
    pub sha256: String,
}

/// `GET /email/av/status` (CSM's fields, then Rampart's counters).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AvStatus {
    pub enabled: bool,
    pub clamd_available: bool,
    pub clamd_socket: String,
    /// The signature rules run (YARA-X and YAML).
    pub yarax_available: bool,
    pub yarax_rule_count: usize,
    /// `inotify` (with a listing every `mail.av.rescan_secs`) or `disabled`.
    pub watcher_mode: String,
    /// Messages in the mail quarantine now.
    pub quarantined: usize,
    /// Why the watcher is off, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub spool: String,
    pub quarantine_dir: String,
    pub scanned: u64,
    pub infected: u64,
    /// Infected messages moved out of the queue since start.
    pub held: u64,
    /// Infected messages exim was already delivering (reported, not held).
    pub not_held: u64,
    /// Messages that could not be read or parsed (left alone).
    pub unreadable: u64,
    /// Scans that had to stop short (size or part limits).
    pub partial: u64,
}

/// `POST /email/quarantine/{id}/release` and `DELETE /email/quarantine/{id}`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct MailAction {
    /// `released` or `deleted`.
    pub status: &'static str,
    pub message_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailAvError {
    #[error("the mail AV is off: {0}")]
    Off(String),
    #[error("no quarantined message {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> MailAvError {
    let context = context.into();
    move |source| MailAvError::Io { context, source }
}

#[derive(Default)]
struct Counters {
    scanned: AtomicU64,
    infected: AtomicU64,
    held: AtomicU64,
    not_held: AtomicU64,
    unreadable: AtomicU64,
    partial: AtomicU64,
}

/// The mail AV shared with the API.
pub struct MailAv {
    cfg: Config,
    /// exim's spool (holding `input/`), None without exim.
    spool: Option<PathBuf>,
    qdir: PathBuf,
    local_domains: PathBuf,
    engine: Arc<Engine>,
    findings: Arc<Findings>,
    counters: Counters,
    /// (id, sha256 of the data file) released by an operator: never held again.
    released: Mutex<HashSet<(String, String)>>,
}

impl MailAv {
    pub fn new(cfg: &crate::config::Config, engine: Arc<Engine>, findings: Arc<Findings>) -> Self {
        let qdir = cfg.mail_quarantine_dir();
        let released = std::fs::read(qdir.join("released.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(String, String)>>(&b).ok())
            .unwrap_or_default();
        Self {
            cfg: cfg.mail.av.clone(),
            spool: mail::spool_dir(&cfg.mail.exim_spool),
            qdir,
            local_domains: cfg.mail.local_domains.clone(),
            engine,
            findings,
            counters: Counters::default(),
            released: Mutex::new(released.into_iter().collect()),
        }
    }

    /// Why the watcher does not run, if it does not.
    pub fn off_reason(&self) -> Option<String> {
        if !self.cfg.enabled {
            return Some("mail.av.enabled is false".into());
        }
        if self.spool.is_none() {
            return Some(format!(
                "no exim spool on this host (tried {})",
                mail::SPOOLS.join(", ")
            ));
        }
        None
    }

    /// The clamd socket to use: the configured one, else the first that exists.
    fn clamd_socket(&self) -> PathBuf {
        if !self.cfg.clamd_socket.as_os_str().is_empty() {
            return self.cfg.clamd_socket.clone();
        }
        CLAMD_SOCKETS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(CLAMD_SOCKETS[0]))
    }

    pub fn status(&self) -> AvStatus {
        let set = self.engine.current();
        let c = &self.counters;
        let sock = self.clamd_socket();
        let reason = self.off_reason();
        AvStatus {
            enabled: self.cfg.enabled,
            clamd_available: clamd_ping(&sock),
            clamd_socket: sock.display().to_string(),
            yarax_available: true,
            yarax_rule_count: set.rules().len(),
            watcher_mode: if reason.is_some() {
                "disabled".into()
            } else {
                "inotify".into()
            },
            quarantined: self.list().map(|l| l.len()).unwrap_or(0),
            reason,
            spool: self
                .spool
                .as_ref()
                .map(|s| s.display().to_string())
                .unwrap_or_default(),
            quarantine_dir: self.qdir.display().to_string(),
            scanned: c.scanned.load(Ordering::Relaxed),
            infected: c.infected.load(Ordering::Relaxed),
            held: c.held.load(Ordering::Relaxed),
            not_held: c.not_held.load(Ordering::Relaxed),
            unreadable: c.unreadable.load(Ordering::Relaxed),
            partial: c.partial.load(Ordering::Relaxed),
        }
    }

    /// Every quarantined message, newest first; an entry whose metadata is
    /// unreadable is skipped (and logged).
    pub fn list(&self) -> Result<Vec<QuarantinedMail>, MailAvError> {
        let rd = match std::fs::read_dir(&self.qdir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("reading the mail quarantine")(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().filter(|n| mail::is_message_id(n)) else {
                continue;
            };
            match self.get(id) {
                Ok(m) => out.push(m),
                Err(err) => tracing::warn!(id, error = %err, "Unreadable mail quarantine entry."),
            }
        }
        out.sort_by(|a, b| b.quarantined_at.cmp(&a.quarantined_at));
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<QuarantinedMail, MailAvError> {
        if !mail::is_message_id(id) {
            return Err(MailAvError::NotFound(id.into()));
        }
        let p = self.qdir.join(id).join("metadata.json");
        let b = mail::read_bounded(&p, 1 << 20).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => MailAvError::NotFound(id.into()),
            _ => io_err(format!("reading {}", p.display()))(e),
        })?;
        serde_json::from_slice(&b).map_err(|e| MailAvError::Io {
            context: format!("parsing {}", p.display()),
            source: std::io::Error::other(e),
        })
    }

    /// Put a message back in exim's queue, where it came from; it is not held again.
    pub fn release(&self, id: &str) -> Result<MailAction, MailAvError> {
        let meta = self.get(id)?;
        let spool = self
            .spool
            .as_ref()
            .ok_or_else(|| MailAvError::Off("no exim spool to release into".into()))?;
        // The directory recorded must be the spool's input (or a split subdirectory).
        let dir = PathBuf::from(&meta.original_spool_dir);
        let input = spool.join("input");
        let ok_dir = dir == input
            || (dir.parent() == Some(input.as_path())
                && dir.file_name().is_some_and(|n| n.len() == 1));
        if !ok_dir || !dir.is_dir() {
            return Err(MailAvError::Conflict(format!(
                "{} is not a directory of the spool {}",
                dir.display(),
                input.display()
            )));
        }
        {
            let mut r = self.released.lock().unwrap_or_else(|p| p.into_inner());
            r.insert((id.to_string(), meta.sha256.clone()));
            self.save_released(&r);
        }
        let from = self.qdir.join(id);
        // The data file first: exim sees a message once its -H file is there.
        for suffix in ["-D", "-H"] {
            let name = format!("{id}{suffix}");
            move_file(&from.join(&name), &dir.join(&name)).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    MailAvError::Conflict(format!("{name} is in the queue already"))
                } else {
                    io_err(format!("moving {name} back to {}", dir.display()))(e)
                }
            })?;
        }
        std::fs::remove_dir_all(&from).map_err(io_err("removing the quarantine entry"))?;
        tracing::info!(id, "Quarantined mail released to the queue.");
        Ok(MailAction {
            status: "released",
            message_id: id.into(),
        })
    }

    pub fn delete(&self, id: &str) -> Result<MailAction, MailAvError> {
        self.get(id)?;
        std::fs::remove_dir_all(self.qdir.join(id))
            .map_err(io_err("removing the quarantine entry"))?;
        tracing::info!(id, "Quarantined mail deleted.");
        Ok(MailAction {
            status: "deleted",
            message_id: id.into(),
        })
    }

    fn save_released(&self, r: &HashSet<(String, String)>) {
        // Bounded: the newest matter; order is lost in a set, so keep at most 10k.
        let v: Vec<&(String, String)> = r.iter().take(10_000).collect();
        let res = std::fs::create_dir_all(&self.qdir).and_then(|()| {
            crate::config::replace_file(
                &self.qdir.join("released.json"),
                &serde_json::to_vec(&v).unwrap_or_default(),
                0o600,
            )
        });
        if let Err(e) = res {
            tracing::error!(error = %e, "Saving the released mail list failed; a restart may hold those messages again.");
        }
    }

    fn is_released(&self, id: &str, sha: &str) -> bool {
        self.released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(id.to_string(), sha.to_string()))
    }

    /// Scan one queued message; hold it when infected. Runs on the scan thread.
    fn scan_message(&self, dir: &Path, id: &str, rt: &tokio::runtime::Handle) {
        let data_path = dir.join(format!("{id}-D"));
        let data_file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&data_path)
        {
            Ok(f) => f,
            // Delivered (and removed) before we came: nothing to hold.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id, error = %e, "Mail data file unreadable; not scanned.");
                return;
            }
        };
        let Ok(meta) = data_file.metadata() else {
            return;
        };
        if !meta.is_file() {
            self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut locked = try_lock(&data_file, id);
        let max = self.cfg.max_message_mb << 20;
        let mut body = Vec::with_capacity(meta.len().min(max) as usize);
        if (&data_file).take(max).read_to_end(&mut body).is_err() {
            self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let header_text = match mail::read_bounded(&dir.join(format!("{id}-H")), MAX_HEADER_FILE) {
            Ok(t) => t,
            Err(_) => return, // gone meanwhile: delivered
        };
        let Some((env, headers)) = mail::parse_spool_headers(id, &header_text) else {
            self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id, "Mail header file does not parse; not scanned.");
            return;
        };
        // The data file's first line is its own name.
        let first = body
            .iter()
            .position(|b| *b == b'\n')
            .map_or(body.len(), |i| i + 1);
        let sha = hex::encode(Sha256::digest(&body));
        if self.is_released(id, &sha) {
            return;
        }
        let mut raw = headers;
        raw.push(b'\n');
        raw.extend_from_slice(&body[first..]);
        let truncated = meta.len() > body.len() as u64;
        let mut scan = self.scan_raw(id, &raw);
        scan.partial |= truncated;
        self.counters.scanned.fetch_add(1, Ordering::Relaxed);
        if scan.partial {
            self.counters.partial.fetch_add(1, Ordering::Relaxed);
        }
        let holdable: Vec<&MailDetection> = scan
            .found
            .iter()
            .filter(|d| d.severity == "critical" || d.severity == "high")
            .collect();
        if scan.found.is_empty() {
            return;
        }
        self.counters.infected.fetch_add(1, Ordering::Relaxed);
        let subject = mail_parser::MessageParser::default()
            .parse_headers(&raw)
            .and_then(|m| m.subject().map(str::to_string))
            .unwrap_or_default();
        let local = mail::local_domains(&self.local_domains);
        let sender_domain = env
            .sender
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase());
        let outbound = sender_domain.as_ref().is_some_and(|d| local.contains(d));
        let mut outcome = if !self.cfg.quarantine || holdable.is_empty() {
            Held::Off
        } else {
            // exim may hold the lock a moment (reception finishing): try a while.
            let mut tries = 0;
            while !locked && tries < HOLD_TRIES && data_path.exists() {
                std::thread::sleep(HOLD_WAIT);
                locked = try_lock(&data_file, id);
                tries += 1;
            }
            if !locked {
                Held::Busy
            } else {
                let q = QuarantinedMail {
                    message_id: id.into(),
                    direction: if outbound { "outbound" } else { "inbound" }.into(),
                    from: env.sender.clone(),
                    to: env.pending.clone(),
                    subject: subject.clone(),
                    quarantined_at: crate::store::rfc3339_unix(crate::store::now_unix()),
                    original_spool_dir: dir.display().to_string(),
                    findings: scan.found.clone(),
                    partial_scan: scan.partial,
                    engines_used: scan.engines.clone(),
                    size: meta.len(),
                    sha256: sha.clone(),
                };
                match self.hold(dir, id, &q) {
                    Ok(()) => Held::Yes,
                    Err(e) => Held::Failed(e.to_string()),
                }
            }
        };
        // Nothing moved while the lock is ours: now exim may look again.
        drop(data_file);
        if matches!(outcome, Held::Busy) && !data_path.exists() {
            outcome = Held::Delivered;
        }
        match outcome {
            Held::Yes => self.counters.held.fetch_add(1, Ordering::Relaxed),
            Held::Busy | Held::Delivered | Held::Failed(_) => {
                self.counters.not_held.fetch_add(1, Ordering::Relaxed)
            }
            Held::Off => 0,
        };
        let about = About {
            id,
            dir,
            env: &env,
            subject: &subject,
            outbound,
        };
        let f = finding(&about, &scan, &outcome);
        tracing::warn!(id, from = %env.sender, outcome = outcome.word(), signatures = %f.rule.as_deref().unwrap_or(""), "Infected mail.");
        rt.block_on(self.findings.report(f));
    }

    /// Move the message's files into `<qdir>/<id>/` with its metadata.
    fn hold(&self, dir: &Path, id: &str, q: &QuarantinedMail) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.qdir)?;
        let to = self.qdir.join(id);
        std::fs::DirBuilder::new().mode(0o700).create(&to)?;
        crate::config::replace_file(
            &to.join("metadata.json"),
            &serde_json::to_vec_pretty(q).map_err(std::io::Error::other)?,
            0o600,
        )?;
        // The header file first: without it exim no longer lists the message.
        for suffix in ["-H", "-D"] {
            let name = format!("{id}{suffix}");
            if let Err(e) = move_file(&dir.join(&name), &to.join(&name)) {
                // Put back what moved, so the queue is whole again.
                let _ = move_file(&to.join(format!("{id}-H")), &dir.join(format!("{id}-H")));
                let _ = std::fs::remove_dir_all(&to);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Decode and scan a message (headers and body as one RFC 5322 text).
    fn scan_raw(&self, id: &str, raw: &[u8]) -> ScanResult {
        let mut parts = Vec::new();
        let mut partial = false;
        match MessageParser::default().parse(raw) {
            Some(m) => collect_parts(&m, "", 0, &mut parts, &mut partial),
            None => {
                partial = true;
                parts.push(Part {
                    name: "message".into(),
                    data: raw.to_vec(),
                });
            }
        }
        let mut expanded = Vec::new();
        for p in parts {
            if is_zip(&p.data) {
                partial |= unzip(&p, &mut expanded);
            }
            expanded.push(p);
            if expanded.len() >= MAX_PARTS {
                partial = true;
                break;
            }
        }
        let set = self.engine.current();
        let mut scanner = set.scanner();
        let mut found = Vec::new();
        let mut engines = vec!["rampart-rules".to_string(), "attachment-checks".to_string()];
        for p in &expanded {
            let path = PathBuf::from(format!("/mail/{id}/{}", p.name.replace('/', "_")));
            let target = Target {
                path: &path,
                size: p.data.len() as u64,
                owner: "mail".into(),
            };
            let mut ms = set.scan_yaml(&target, &p.data);
            if let Some(s) = scanner.as_mut() {
                match set.scan_yara(s, &target, &p.data) {
                    Ok(m) => ms.extend(m),
                    Err(e) => {
                        partial = true;
                        tracing::debug!(id, part = %p.name, error = %e, "YARA scan of a mail part failed.");
                    }
                }
            }
            for m in ms {
                found.push(MailDetection {
                    filename: p.name.clone(),
                    engine: "rampart-rules".into(),
                    signature: m.rule,
                    severity: m.severity.as_str().into(),
                });
            }
            found.extend(attachment_checks(&p.name, &p.data));
        }
        let sock = self.clamd_socket();
        if sock.exists() {
            match clamd_scan(&sock, raw) {
                Ok(Some(sig)) => {
                    engines.push("clamav".into());
                    found.push(MailDetection {
                        filename: "message".into(),
                        engine: "clamav".into(),
                        signature: sig,
                        severity: "critical".into(),
                    });
                }
                Ok(None) => engines.push("clamav".into()),
                Err(e) => {
                    tracing::warn!(id, socket = %sock.display(), error = %e, "clamd did not scan the message; the other engines did.")
                }
            }
        }
        found.dedup();
        ScanResult {
            found,
            partial,
            engines,
        }
    }
}

struct ScanResult {
    found: Vec<MailDetection>,
    partial: bool,
    engines: Vec<String>,
}

/// What became of an infected message.
enum Held {
    Yes,
    /// `mail.av.quarantine` off, or only low-severity detections.
    Off,
    /// exim kept the lock (a delivery running) and the message is still there.
    Busy,
    /// exim delivered it before it could be held.
    Delivered,
    Failed(String),
}

impl Held {
    fn word(&self) -> &'static str {
        match self {
            Held::Yes => "quarantined",
            Held::Off => "reported",
            Held::Busy => "busy",
            Held::Delivered => "delivered",
            Held::Failed(_) => "failed",
        }
    }
}

/// The message a finding is about.
struct About<'a> {
    id: &'a str,
    dir: &'a Path,
    env: &'a mail::Queued,
    subject: &'a str,
    outbound: bool,
}

fn finding(m: &About<'_>, scan: &ScanResult, outcome: &Held) -> NewFinding {
    let About {
        id,
        dir,
        env,
        subject,
        outbound,
    } = *m;
    let sev = if scan.found.iter().any(|d| d.severity == "critical") {
        Severity::Critical
    } else if scan.found.iter().any(|d| d.severity == "high") {
        Severity::High
    } else {
        Severity::Warning
    };
    let sigs: Vec<String> = {
        let mut s: Vec<String> = scan.found.iter().map(|d| d.signature.clone()).collect();
        s.dedup();
        s
    };
    let what = match outcome {
        Held::Yes => "quarantined".to_string(),
        Held::Off => {
            "left in the queue (mail.av.quarantine is off, or nothing high enough to hold)".into()
        }
        Held::Busy => "not held: exim was delivering it".into(),
        Held::Delivered => "not held: exim delivered it before it could be held".into(),
        Held::Failed(e) => format!("not held: moving it failed: {e}"),
    };
    let rcpt = env.pending.first().cloned().unwrap_or_default();
    let mailbox = if outbound {
        env.sender.clone()
    } else {
        rcpt.clone()
    };
    NewFinding {
        details: serde_json::json!({
            "message_id": id,
            "from": env.sender,
            "to": env.pending,
            "subject": subject,
            "direction": if outbound { "outbound" } else { "inbound" },
            "detections": scan.found,
            "partial_scan": scan.partial,
            "engines_used": scan.engines,
            "outcome": outcome.word(),
        })
        .to_string(),
        path: Some(dir.join(format!("{id}-D")).display().to_string()),
        domain: mailbox
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase()),
        mailbox: Some(mailbox).filter(|m| !m.is_empty()),
        rule: Some(sigs.join(", ")),
        key: Some(format!("{CHECK_EMAIL_MALWARE}:{id}")),
        ..NewFinding::new(
            CHECK_EMAIL_MALWARE,
            sev,
            format!(
                "Infected mail {id} from <{}> to <{rcpt}>: {} ({what})",
                env.sender,
                sigs.join(", ")
            ),
        )
    }
}

struct Part {
    name: String,
    data: Vec<u8>,
}

fn collect_parts(
    m: &mail_parser::Message<'_>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Part>,
    partial: &mut bool,
) {
    for (i, p) in m.parts.iter().enumerate() {
        if out.len() >= MAX_PARTS {
            *partial = true;
            return;
        }
        if p.is_encoding_problem {
            *partial = true;
        }
        let name = p
            .attachment_name()
            .map(|n| n.replace(['/', '\\', '\0'], "_"))
            .unwrap_or_else(|| format!("part-{i}"));
        let name = format!("{prefix}{name}");
        match &p.body {
            PartType::Multipart(_) => {}
            PartType::Message(inner) => {
                if depth + 1 >= MAX_DEPTH {
                    *partial = true;
                    out.push(Part {
                        name,
                        data: inner.raw_message().to_vec(),
                    });
                } else {
                    collect_parts(inner, &format!("{name}/"), depth + 1, out, partial);
                }
            }
            _ => out.push(Part {
                name,
                data: p.contents().to_vec(),
            }),
        }
    }
}

fn is_zip(d: &[u8]) -> bool {
    d.starts_with(b"PK\x03\x04")
}

/// Add a zip's entries (bounded) to `out`; true when something was left out.
fn unzip(p: &Part, out: &mut Vec<Part>) -> bool {
    let Ok(mut z) = zip::ZipArchive::new(std::io::Cursor::new(&p.data[..])) else {
        return true;
    };
    let mut partial = z.len() > MAX_ZIP_ENTRIES;
    let mut total = 0u64;
    for i in 0..z.len().min(MAX_ZIP_ENTRIES) {
        let (name, encrypted, dir) = match z.by_index_raw(i) {
            Ok(f) => (
                f.name().map(|n| n.to_string()).unwrap_or_default(),
                f.encrypted(),
                f.is_dir(),
            ),
            Err(_) => {
                partial = true;
                continue;
            }
        };
        if dir {
            continue;
        }
        let name = format!("{}/{}", p.name, name.replace(['\\', '\0'], "_"));
        if encrypted {
            // Unreadable here, but its name still says what it is.
            partial = true;
            out.push(Part {
                name,
                data: Vec::new(),
            });
            continue;
        }
        let Ok(f) = z.by_index(i) else {
            partial = true;
            continue;
        };
        let mut data = Vec::new();
        let budget = MAX_ZIP_ENTRY.min(MAX_ZIP_TOTAL.saturating_sub(total));
        if f.take(budget + 1).read_to_end(&mut data).is_err() {
            partial = true;
        }
        if data.len() as u64 > budget {
            data.truncate(budget as usize);
            partial = true;
        }
        total += data.len() as u64;
        out.push(Part { name, data });
        if total >= MAX_ZIP_TOTAL {
            return true;
        }
    }
    partial
}

/// The attachment checks: what mail should not carry, whatever the rules say.
fn attachment_checks(name: &str, data: &[u8]) -> Vec<MailDetection> {
    let mut out = Vec::new();
    let mut hit = |sig: &str, sev: &str| {
        out.push(MailDetection {
            filename: name.into(),
            engine: "attachment-checks".into(),
            signature: sig.into(),
            severity: sev.into(),
        })
    };
    let head = &data[..data.len().min(256)];
    if head.windows(EICAR.len()).any(|w| w == EICAR) {
        hit("Rampart.Mail.EICAR-Test-File", "critical");
    }
    if is_pe(data) {
        hit("Rampart.Mail.Executable.PE", "high");
    } else if data.starts_with(b"\x7fELF") {
        hit("Rampart.Mail.Executable.ELF", "high");
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    if let Some((_, ext)) = base.rsplit_once('.') {
        let ext = ext.trim().to_ascii_lowercase();
        if RISKY_EXTENSIONS.contains(&ext.as_str()) {
            hit(&format!("Rampart.Mail.RiskyAttachment.{ext}"), "high");
        }
    }
    if is_zip(data) && memchr_slice(data, b"vbaProject.bin") {
        hit("Rampart.Mail.OfficeMacro", "high");
    } else if data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        let vba: Vec<u8> = "_VBA_PROJECT".bytes().flat_map(|b| [b, 0]).collect();
        if memchr_slice(data, &vba) {
            hit("Rampart.Mail.OfficeMacro", "high");
        }
    }
    out
}

fn memchr_slice(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn is_pe(d: &[u8]) -> bool {
    if !d.starts_with(b"MZ") || d.len() < 0x40 {
        return false;
    }
    let off = u32::from_le_bytes([d[0x3c], d[0x3d], d[0x3e], d[0x3f]]) as usize;
    d.get(off..off.saturating_add(4)) == Some(b"PE\0\0")
}

/// Take exim's lock on the data file's first line (its id), without waiting.
fn try_lock(f: &std::fs::File, id: &str) -> bool {
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        // exim's SPOOL_DATA_START_OFFSET: the id, "-D" and the newline.
        l_len: (id.len() + 3) as libc::off_t,
        l_pid: 0,
    };
    // SAFETY: a valid fd and a fully initialised flock.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) == 0 }
}

/// Move a file, never over an existing one; across filesystems by copy (owner,
/// mode and contents kept), synced, then unlink.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EXDEV) => {}
        Err(e) => return Err(e.into()),
    }
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)?;
    let md = src.metadata()?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(md.mode() & 0o7777)
        .open(to)?;
    std::io::copy(&mut src, &mut dst)?;
    std::os::unix::fs::fchown(&dst, Some(md.uid()), Some(md.gid()))?;
    dst.sync_all()?;
    std::fs::remove_file(from)
}

/// Does clamd answer on `sock`?
pub fn clamd_ping(sock: &Path) -> bool {
    clamd_command(sock, b"zPING\0", &[]).is_ok_and(|r| r == "PONG")
}

/// Scan `data` with clamd (INSTREAM): Some(signature) when it found something.
fn clamd_scan(sock: &Path, data: &[u8]) -> std::io::Result<Option<String>> {
    let r = clamd_command(sock, b"zINSTREAM\0", data)?;
    // "stream: OK", "stream: <name> FOUND", "... ERROR".
    let r = r.strip_prefix("stream: ").unwrap_or(&r);
    if r == "OK" {
        Ok(None)
    } else if let Some(sig) = r.strip_suffix(" FOUND") {
        Ok(Some(sig.to_string()))
    } else {
        Err(std::io::Error::other(format!("clamd: {r}")))
    }
}

fn clamd_command(sock: &Path, cmd: &[u8], stream: &[u8]) -> std::io::Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.set_read_timeout(Some(CLAMD_TIMEOUT))?;
    s.set_write_timeout(Some(CLAMD_TIMEOUT))?;
    s.write_all(cmd)?;
    if cmd.starts_with(b"zINSTREAM") {
        for chunk in stream.chunks(64 * 1024) {
            s.write_all(&(chunk.len() as u32).to_be_bytes())?;
            s.write_all(chunk)?;
        }
        s.write_all(&0u32.to_be_bytes())?;
    }
    let mut r = Vec::new();
    (&s).take(64 * 1024).read_to_end(&mut r)?;
    let end = r.iter().position(|b| *b == 0).unwrap_or(r.len());
    Ok(String::from_utf8_lossy(&r[..end]).trim().to_string())
}

/// Every message of the queue: (directory, id).
fn list_queue(input: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for d in mail::queue_dirs(input) {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix("-H"))
                .filter(|i| mail::is_message_id(i))
            {
                out.push((d.clone(), id.to_string()));
            }
        }
    }
    out
}

/// The scan thread: one message at a time, each once per data file.
fn scan_thread(
    av: Arc<MailAv>,
    rx: std::sync::mpsc::Receiver<Vec<(PathBuf, String)>>,
    rt: tokio::runtime::Handle,
) {
    let mut seen: HashMap<String, u64> = HashMap::new();
    while let Ok(batch) = rx.recv() {
        let full_listing = batch.len() != 1;
        if full_listing && seen.len() > SEEN_MAX / 2 {
            let listed: HashSet<&String> = batch.iter().map(|(_, i)| i).collect();
            seen.retain(|id, _| listed.contains(id));
        }
        for (dir, id) in batch {
            let Ok(md) = std::fs::symlink_metadata(dir.join(format!("{id}-D"))) else {
                continue;
            };
            if seen.get(&id) == Some(&md.ino()) {
                continue;
            }
            if seen.len() >= SEEN_MAX {
                seen.clear();
            }
            seen.insert(id.clone(), md.ino());
            av.scan_message(&dir, &id, &rt);
        }
    }
}

/// Watch the queue until shutdown: inotify for new messages, a listing every
/// `rescan_secs` (and at start) for what it missed.
pub async fn run(av: Arc<MailAv>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    if let Some(why) = av.off_reason() {
        tracing::info!(reason = %why, "Mail AV off.");
        let _ = shutdown.changed().await;
        return Ok(());
    }
    let Some(input) = av.spool.as_ref().map(|s| s.join("input")) else {
        return Ok(());
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(PathBuf, String)>>(QUEUE);
    let thread = {
        let (av, rt) = (av.clone(), tokio::runtime::Handle::current());
        std::thread::Builder::new()
            .name("mail-av".into())
            .spawn(move || scan_thread(av, rx, rt))
            .context("starting the mail AV thread")?
    };
    let inotify =
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).context("inotify_init")?;
    let mask = AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_ONLYDIR;
    let mut dirs = HashMap::new();
    for d in mail::queue_dirs(&input) {
        let wd = inotify
            .add_watch(&d, mask)
            .with_context(|| format!("watching {}", d.display()))?;
        dirs.insert(wd, d);
    }
    tracing::info!(spool = %input.display(), clamd = %av.clamd_socket().display(), "Mail AV watching the queue.");
    // SAFETY: the Inotify owns its fd, which stays open and unchanged until the
    // AsyncFd (which owns the Inotify) is dropped.
    let afd = unsafe {
        AsyncFd::register_with_interest(InotifyFd(inotify), tokio::io::Interest::READABLE)
    }
    .map_err(std::io::Error::from)
    .context("registering inotify with tokio")?;
    let mut tick = tokio::time::interval(Duration::from_secs(av.cfg.rescan_secs));
    let result = loop {
        tokio::select! {
            _ = tick.tick() => {
                let listing = {
                    let input = input.clone();
                    tokio::task::spawn_blocking(move || list_queue(&input)).await.unwrap_or_default()
                };
                if tx.try_send(listing).is_err() {
                    tracing::debug!("Mail AV busy; the next listing catches up.");
                }
            }
            ready = afd.readable() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => break Err(anyhow::Error::from(e).context("inotify readiness")),
                };
                let events = match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                    Ok(Ok(evs)) => evs,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Ok(Err(e)) => break Err(anyhow::Error::from(e).context("reading inotify events")),
                    Err(_would_block) => continue,
                };
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        tick.reset_immediately();
                        continue;
                    }
                    let (Some(dir), Some(name)) = (dirs.get(&ev.wd).cloned(), ev.name) else {
                        continue;
                    };
                    let name = name.to_string_lossy().into_owned();
                    if ev.mask.contains(AddWatchFlags::IN_ISDIR) {
                        // A split-spool subdirectory made after start.
                        if dir == input && name.len() == 1 {
                            let sub = input.join(&name);
                            if let Ok(wd) = afd.get_ref().0.add_watch(&sub, mask) {
                                dirs.insert(wd, sub);
                            }
                            tick.reset_immediately();
                        }
                        continue;
                    }
                    if let Some(id) = name.strip_suffix("-H").filter(|i| mail::is_message_id(i)) {
                        if tx.try_send(vec![(dir, id.to_string())]).is_err() {
                            tracing::debug!(id, "Mail AV queue full; the next listing catches up.");
                        }
                    }
                }
            }
            _ = shutdown.changed() => break Ok(()),
        }
    };
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_checks_name_what_mail_should_not_carry() {
        let sigs = |name: &str, data: &[u8]| -> Vec<String> {
            attachment_checks(name, data)
                .into_iter()
                .map(|d| d.signature)
                .collect()
        };
        assert_eq!(
            sigs("eicar.com", EICAR),
            [
                "Rampart.Mail.EICAR-Test-File",
                "Rampart.Mail.RiskyAttachment.com"
            ]
        );
        let mut pe = vec![0u8; 0x80];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3c] = 0x40;
        pe[0x40..0x44].copy_from_slice(b"PE\0\0");
        assert_eq!(sigs("invoice.pdf", &pe), ["Rampart.Mail.Executable.PE"]);
        // "MZ" alone (a text starting so) is not an executable.
        assert!(sigs("notes.txt", b"MZ is a postcode area").is_empty());
        assert_eq!(
            sigs("a.zip/run.JS", b"x"),
            ["Rampart.Mail.RiskyAttachment.js"]
        );
        assert!(sigs("report.pdf", b"%PDF-1.7").is_empty());
        let ole: Vec<u8> = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]
            .into_iter()
            .chain("xx_VBA_PROJECT".bytes().flat_map(|b| [b, 0]))
            .collect();
        assert_eq!(sigs("budget.xls", &ole), ["Rampart.Mail.OfficeMacro"]);
    }

    #[test]
    fn zip_entries_are_read_bounded_and_encrypted_ones_named() {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            z.start_file("docs/readme.txt", o).expect("file");
            z.write_all(b"hello").expect("write");
            z.start_file("setup.exe", o).expect("file");
            z.write_all(&vec![0u8; 1000]).expect("write");
            z.finish().expect("finish");
        }
        let p = Part {
            name: "files.zip".into(),
            data: buf.into_inner(),
        };
        let mut out = Vec::new();
        assert!(!unzip(&p, &mut out), "nothing left out");
        let names: Vec<&str> = out.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["files.zip/docs/readme.txt", "files.zip/setup.exe"]);
        assert_eq!(out[0].data, b"hello");
        // Encrypted entries (the flag set in both headers) cannot be read, but their
        // names are listed, so a locked `setup.exe` is still seen.
        let mut locked = p.data.clone();
        for i in 0..locked.len().saturating_sub(10) {
            if locked[i..].starts_with(b"PK\x03\x04") {
                locked[i + 6] |= 1;
            } else if locked[i..].starts_with(b"PK\x01\x02") {
                locked[i + 8] |= 1;
            }
        }
        let mut out = Vec::new();
        let locked = Part {
            name: "locked.zip".into(),
            data: locked,
        };
        assert!(unzip(&locked, &mut out), "encrypted: partial");
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|p| p.data.is_empty()));
        assert_eq!(
            attachment_checks(&out[1].name, &out[1].data)[0].signature,
            "Rampart.Mail.RiskyAttachment.exe"
        );
        // A zip that is not one is partial, never an error.
        let bad = Part {
            name: "x.zip".into(),
            data: b"PK\x03\x04garbage".to_vec(),
        };
        assert!(unzip(&bad, &mut Vec::new()));
    }

    #[test]
    fn nested_messages_and_attachments_become_parts() {
        let inner = "From: a@x\nSubject: in\nContent-Type: text/plain\n\ninner text\n";
        let raw = format!(
            "From: s@x\nSubject: outer\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nhello\n--B\nContent-Type: application/octet-stream; name=\"../../etc/x.php\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"../../etc/x.php\"\n\nPD9waHAgZXZhbCgkX1BPU1RbJ3gnXSk7\n--B\nContent-Type: message/rfc822\n\n{inner}\n--B--\n"
        );
        let m = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parses");
        let (mut parts, mut partial) = (Vec::new(), false);
        collect_parts(&m, "", 0, &mut parts, &mut partial);
        let att = parts
            .iter()
            .find(|p| p.name.ends_with("x.php"))
            .expect("attachment");
        assert_eq!(att.name, ".._.._etc_x.php", "no path from the sender");
        assert_eq!(att.data, b"<?php eval($_POST['x']);");
        assert!(
            parts.iter().any(|p| p.data.starts_with(b"inner text")),
            "the nested message's body is a part"
        );
        assert!(!partial);
    }
}
