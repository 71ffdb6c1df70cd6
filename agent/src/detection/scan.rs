// SPDX-License-Identifier: GPL-2.0-only
//! Scanning files with the signature engine: the reloadable [`Engine`], one-file
//! [`scan_file`], the bounded worker pool and on-demand scan jobs.

use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    io::Read,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, SystemTime},
};

use serde::Serialize;
use tokio::sync::mpsc;

use super::{
    perf,
    signatures::{self, RuleError, RuleErrors, RuleMatch, RuleSet, Target},
};

/// The last reload that failed (the rule set before it stayed active).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LastError {
    pub at: String,
    pub errors: Vec<RuleError>,
}

/// The active rule set, swapped whole on reload.
pub struct Engine {
    dir: Option<PathBuf>,
    builtin: bool,
    /// Compiled YARA rules kept between runs (see [`signatures::load_cached`]).
    cache: Option<PathBuf>,
    /// Rule packs' directories, loaded after `dir`.
    packs: Vec<PathBuf>,
    /// The first fetched rule pack's URL and how often packs are fetched (seconds),
    /// for `/rules/status`.
    update: (String, u64),
    current: RwLock<Arc<RuleSet>>,
    generation: AtomicU64,
    last_error: Mutex<Option<LastError>>,
    /// What the performance checks look for in the files scanned (a settings write
    /// of `performance` applies live).
    perf: RwLock<perf::Limits>,
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    match l.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

impl Engine {
    /// Compile the rules. If the rules directory has errors the engine starts with
    /// the builtin rules only and keeps the errors for `/rules/status` (protection
    /// must not wait for a typo to be fixed).
    pub fn new(dir: Option<PathBuf>, builtin: bool) -> Result<Self, RuleErrors> {
        Self::new_cached(dir, Vec::new(), builtin, None)
    }

    /// [`Engine::new`] with the rule packs' directories after `dir`, keeping
    /// compiled YARA rules in `cache` between runs and reloads (see
    /// [`signatures::load_cached`]).
    pub fn new_cached(
        dir: Option<PathBuf>,
        packs: Vec<PathBuf>,
        builtin: bool,
        cache: Option<PathBuf>,
    ) -> Result<Self, RuleErrors> {
        let dirs: Vec<&Path> = dir.iter().chain(&packs).map(PathBuf::as_path).collect();
        let (set, err) = match signatures::load_dirs(&dirs, builtin, cache.as_deref()) {
            Ok(s) => (s, None),
            Err(e) => {
                tracing::error!(error = %e, "Rule files have errors; starting with the builtin rules only.");
                (
                    signatures::load_cached(None, builtin, cache.as_deref())?,
                    Some(e),
                )
            }
        };
        let me = Self {
            dir,
            packs,
            update: (String::new(), 0),
            builtin,
            cache,
            current: RwLock::new(Arc::new(set)),
            generation: AtomicU64::new(1),
            last_error: Mutex::new(None),
            perf: RwLock::new(perf::Limits::default()),
        };
        if let Some(e) = err {
            me.set_error(e.0);
        }
        Ok(me)
    }

    fn set_error(&self, errors: Vec<RuleError>) {
        let e = Some(LastError {
            at: crate::store::now_rfc3339(),
            errors,
        });
        match self.last_error.lock() {
            Ok(mut g) => *g = e,
            Err(p) => *p.into_inner() = e,
        }
    }

    /// Turn the performance checks on (`performance` in the config).
    pub fn with_perf(self, limits: perf::Limits) -> Self {
        self.set_perf(limits);
        self
    }

    pub fn set_perf(&self, limits: perf::Limits) {
        match self.perf.write() {
            Ok(mut g) => *g = limits,
            Err(p) => *p.into_inner() = limits,
        }
    }

    pub fn perf(&self) -> perf::Limits {
        read(&self.perf)
    }

    pub fn current(&self) -> Arc<RuleSet> {
        read(&self.current)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Say where rule packs are fetched from and how often (seconds).
    pub fn with_update(mut self, url: String, every_secs: u64) -> Self {
        self.update = (url, every_secs);
        self
    }

    /// The first fetched rule pack's URL ("" for none) and the fetch interval
    /// (seconds; 0 = never).
    pub fn update(&self) -> (&str, u64) {
        (&self.update.0, self.update.1)
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn last_error(&self) -> Option<LastError> {
        match self.last_error.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Recompile from disk (blocking: call from a blocking thread). On error the
    /// active set stays and the errors are kept.
    pub fn reload(&self) -> Result<Arc<RuleSet>, RuleErrors> {
        let dirs: Vec<&Path> = self
            .dir
            .iter()
            .chain(&self.packs)
            .map(PathBuf::as_path)
            .collect();
        match signatures::load_dirs(&dirs, self.builtin, self.cache.as_deref()) {
            Ok(set) => {
                let set = Arc::new(set);
                match self.current.write() {
                    Ok(mut g) => *g = set.clone(),
                    Err(p) => *p.into_inner() = set.clone(),
                }
                self.generation.fetch_add(1, Ordering::AcqRel);
                match self.last_error.lock() {
                    Ok(mut g) => *g = None,
                    Err(p) => *p.into_inner() = None,
                }
                tracing::info!(version = %set.version, rules = set.rules().len(), "Rules reloaded.");
                // The compile's working memory (and the previous set, once its last
                // scan ends) is free now.
                crate::supervisor::memory::release_freed("rules reload");
                Ok(set)
            }
            Err(e) => {
                tracing::error!(error = %e, "Rule reload failed; the previous rules stay active.");
                self.set_error(e.0.clone());
                Err(e)
            }
        }
    }
}

/// Why a file was not scanned (counted, never silent).
#[derive(Debug, thiserror::Error)]
pub enum ScanSkip {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("not a regular file")]
    NotRegular,
    #[error("YARA-X: {0}")]
    Yara(String),
    /// The scan panicked (a scanner bug this file triggers); the worker goes on with a
    /// fresh scanner.
    #[error("the scan panicked: {0}")]
    Panicked(String),
}

#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    pub matches: Vec<RuleMatch>,
    /// A performance issue of the file (`performance` in the config).
    pub perf: Option<perf::Issue>,
    pub scanned_bytes: u64,
    pub size: u64,
    /// Only the first `max_bytes` were scanned.
    pub truncated: bool,
    pub uid: u32,
    pub gid: u32,
    /// SHA-256 of the whole file, when it was read whole (not truncated).
    pub sha256: Option<String>,
    /// Device and inode of the file scanned.
    pub dev: u64,
    pub ino: u64,
    /// ctime (seconds, nanoseconds) when the file was opened for this scan.
    pub ctime: (i64, i64),
}

fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Scan one file: at most `max_bytes` are read; a symlink at the final component is
/// never followed (a link to /etc/shadow must not be read as root), and a FIFO never
/// blocks the scan.
pub fn scan_file(
    set: &RuleSet,
    scanner: Option<&mut yara_x::Scanner<'_>>,
    path: &Path,
    max_bytes: u64,
    limits: &perf::Limits,
) -> Result<ScanReport, ScanSkip> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(ScanSkip::Open)?;
    let meta = f.metadata().map_err(ScanSkip::Open)?;
    if !meta.is_file() {
        return Err(ScanSkip::NotRegular);
    }
    let mut buf = Vec::with_capacity(meta.len().min(max_bytes) as usize);
    f.take(max_bytes)
        .read_to_end(&mut buf)
        .map_err(ScanSkip::Open)?;
    let target = Target {
        path,
        size: meta.len(),
        owner: owner_name(meta.uid()),
    };
    let mut matches = set.scan_yaml(&target, &buf);
    if let Some(s) = scanner {
        matches.extend(set.scan_yara(s, &target, &buf).map_err(ScanSkip::Yara)?);
    }
    let truncated = meta.len() > buf.len() as u64;
    let perf = perf::inspect(path, meta.len(), &buf, !truncated, limits);
    Ok(ScanReport {
        perf,
        sha256: (!matches.is_empty() && !truncated).then(|| hex::encode(Sha256::digest(&buf))),
        matches,
        scanned_bytes: buf.len() as u64,
        size: meta.len(),
        truncated,
        uid: meta.uid(),
        gid: meta.gid(),
        dev: meta.dev(),
        ino: meta.ino(),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// Who asked for a scan.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A file event: the writer.
    Realtime {
        pid: u32,
        uid: u32,
        comm: String,
        exe: Option<PathBuf>,
    },
    /// An on-demand or scheduled job.
    Job(u64),
}

#[derive(Clone, Debug)]
pub struct ScanRequest {
    pub path: PathBuf,
    pub origin: Origin,
    /// When the request was made (write → finding latency).
    pub queued_at: std::time::Instant,
}

#[derive(Debug)]
pub struct ScanOutcome {
    pub req: ScanRequest,
    pub result: Result<ScanReport, ScanSkip>,
}

#[derive(Debug, Default)]
pub struct ScanStats {
    pub submitted: AtomicU64,
    pub scanned: AtomicU64,
    pub bytes: AtomicU64,
    pub matches: AtomicU64,
    pub skipped: AtomicU64,
    pub truncated: AtomicU64,
    /// Submissions that found the queue full and waited.
    pub backpressure: AtomicU64,
    /// Scans that panicked (each costs one file, never a worker).
    pub panicked: AtomicU64,
}

/// The scan pool's counters as /health shows them.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ScanStatsView {
    pub submitted: u64,
    pub scanned: u64,
    pub bytes: u64,
    pub matches: u64,
    pub skipped: u64,
    pub truncated: u64,
    pub backpressure: u64,
    pub panicked: u64,
}

impl ScanStats {
    pub fn view(&self) -> ScanStatsView {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ScanStatsView {
            submitted: l(&self.submitted),
            scanned: l(&self.scanned),
            bytes: l(&self.bytes),
            matches: l(&self.matches),
            skipped: l(&self.skipped),
            truncated: l(&self.truncated),
            backpressure: l(&self.backpressure),
            panicked: l(&self.panicked),
        }
    }
}

/// A fixed pool of scan threads behind a bounded queue. Memory is bounded by
/// `workers × max_bytes` plus the queue of paths.
#[derive(Clone)]
pub struct ScanPool {
    /// Shared by every clone, so [`ScanPool::close`] closes the queue for all.
    tx: Arc<RwLock<Option<mpsc::Sender<ScanRequest>>>>,
    pub stats: Arc<ScanStats>,
    scanned: Arc<Scanned>,
    engine: Arc<Engine>,
    /// Bytes of a file scanned, at most (`watch.max_scan_bytes`).
    pub max_bytes: u64,
}

/// Files scanned lately: (st_dev, inode) -> (ctime at the scan, rule generation).
/// The sweep skips a file whose inode has not changed since a scan with the current
/// rules (a file written in real time is otherwise scanned again by the next sweep,
/// its ctime having moved). Cleared when full: at worst a file is scanned twice.
#[derive(Default)]
struct Scanned(Mutex<HashMap<(u64, u64), ScannedAs>>);

/// A scan's ctime (seconds, nanoseconds) and rule generation.
type ScannedAs = ((i64, i64), u64);

/// Entries [`Scanned`] holds at most (about 3 MB).
const SCANNED_MAX: usize = 65_536;

impl Scanned {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<(u64, u64), ScannedAs>) -> T) -> T {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn record(&self, r: &ScanReport, generation: u64) {
        self.with(|m| {
            if m.len() >= SCANNED_MAX {
                m.clear();
            }
            m.insert((r.dev, r.ino), (r.ctime, generation));
        });
    }
}

impl ScanPool {
    pub fn start(
        engine: Arc<Engine>,
        workers: usize,
        queue: usize,
        max_bytes: u64,
        out: mpsc::Sender<ScanOutcome>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<ScanRequest>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(ScanStats::default());
        let scanned = Arc::new(Scanned::default());
        for i in 0..workers.max(1) {
            let (engine, rx, out, stats) = (engine.clone(), rx.clone(), out.clone(), stats.clone());
            let scanned = scanned.clone();
            std::thread::Builder::new()
                .name(format!("rampart-scan-{i}"))
                .spawn(move || worker(&engine, &rx, &out, &stats, &scanned, max_bytes))?;
        }
        Ok(Self {
            tx: Arc::new(RwLock::new(Some(tx))),
            stats,
            scanned,
            engine,
            max_bytes,
        })
    }

    /// Was this inode (its `lstat`) scanned with the current rules since it last
    /// changed?
    pub fn scanned_as_is(&self, md: &std::fs::Metadata) -> bool {
        let generation = self.engine.generation();
        self.scanned.with(|m| {
            m.get(&(md.dev(), md.ino()))
                .is_some_and(|(c, g)| *c == (md.ctime(), md.ctime_nsec()) && *g == generation)
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<ScanRequest>> {
        read(&self.tx)
    }

    /// Stop taking requests: the workers finish what is queued, then exit, and the
    /// outcome channel closes after the last outcome.
    pub fn close(&self) {
        match self.tx.write() {
            Ok(mut g) => *g = None,
            Err(p) => *p.into_inner() = None,
        }
    }

    /// Queue a scan. When the queue is full this waits (counted as back-pressure):
    /// the file-event queue upstream absorbs it, and drops there are counted too.
    pub async fn submit(&self, req: ScanRequest) -> bool {
        match self.try_submit(req) {
            Submitted::Done(ok) => ok,
            Submitted::Wait(tx, req) => tx.send(req).await.is_ok(),
        }
    }

    /// Queue from a blocking thread (directory walks of scan jobs).
    pub fn submit_blocking(&self, req: ScanRequest) -> bool {
        match self.try_submit(req) {
            Submitted::Done(ok) => ok,
            Submitted::Wait(tx, req) => tx.blocking_send(req).is_ok(),
        }
    }

    /// The part of a submission that never waits: queued, closed, or full (counted
    /// as back-pressure; the caller waits its own way).
    fn try_submit(&self, req: ScanRequest) -> Submitted {
        let Some(tx) = self.sender() else {
            return Submitted::Done(false);
        };
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(req) {
            Ok(()) => Submitted::Done(true),
            Err(mpsc::error::TrySendError::Full(req)) => {
                self.stats.backpressure.fetch_add(1, Ordering::Relaxed);
                Submitted::Wait(tx, req)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Submitted::Done(false),
        }
    }
}

enum Submitted {
    /// Queued (true), or the pool is closed (false).
    Done(bool),
    /// The queue is full: wait on this sender.
    Wait(mpsc::Sender<ScanRequest>, ScanRequest),
}

fn worker(
    engine: &Engine,
    rx: &Mutex<mpsc::Receiver<ScanRequest>>,
    out: &mpsc::Sender<ScanOutcome>,
    stats: &ScanStats,
    recent: &Scanned,
    max_bytes: u64,
) {
    let mut pending: Option<ScanRequest> = None;
    loop {
        // One scanner per rule set generation; a reload is picked up between files.
        let set = engine.current();
        let generation = engine.generation();
        let mut scanner = set.scanner();
        loop {
            let req = match pending.take() {
                Some(r) => r,
                None => {
                    let next = match rx.lock() {
                        Ok(mut g) => g.blocking_recv(),
                        Err(p) => p.into_inner().blocking_recv(),
                    };
                    match next {
                        Some(r) => r,
                        None => return,
                    }
                }
            };
            if engine.generation() != generation {
                pending = Some(req);
                break;
            }
            // A panic in the scanner costs this file (reported), never the worker:
            // a file crafted to crash it must not shrink the pool until nothing scans.
            let scanned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scan_file(&set, scanner.as_mut(), &req.path, max_bytes, &engine.perf())
            }));
            let (result, broken) = match scanned {
                Ok(r) => (r, false),
                Err(p) => {
                    let why = crate::supervisor::panic_message(&*p);
                    stats.panicked.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(path = %req.path.display(), panic = %why, "Scan panicked; the worker goes on with a fresh scanner.");
                    (Err(ScanSkip::Panicked(why)), true)
                }
            };
            match &result {
                Ok(r) => {
                    recent.record(r, generation);
                    stats.scanned.fetch_add(1, Ordering::Relaxed);
                    stats.bytes.fetch_add(r.scanned_bytes, Ordering::Relaxed);
                    stats
                        .matches
                        .fetch_add(r.matches.len() as u64, Ordering::Relaxed);
                    if r.truncated {
                        stats.truncated.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    tracing::trace!(path = %req.path.display(), reason = %e, "Not scanned.");
                }
            }
            if out.blocking_send(ScanOutcome { req, result }).is_err() {
                return;
            }
            if broken {
                break;
            }
        }
    }
}

/// An on-demand or scheduled scan of a tree.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct JobInfo {
    pub id: u64,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// queued, running, done, failed.
    pub status: String,
    pub files_found: u64,
    pub files_scanned: u64,
    pub files_skipped: u64,
    pub matches: u64,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An incremental sweep: only files whose inode changed (ctime) at or after this
    /// time are scanned; the others are `files_unchanged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_since: Option<String>,
    pub files_unchanged: u64,
    /// Whether the walk has listed every file.
    #[serde(skip)]
    walked: bool,
    /// Set by [`Jobs::cancel`]: the walk stops and submits nothing more.
    #[serde(skip)]
    cancelled: bool,
    /// The findings this job's scans reported (at most `MAX_JOB_FINDINGS`).
    #[serde(skip)]
    pub finding_ids: Vec<i64>,
}

/// Finding ids a job keeps for `/scan-jobs/{id}/findings`.
const MAX_JOB_FINDINGS: usize = 5000;

/// Scan jobs, newest kept (at most `MAX_JOBS`).
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<HashMap<u64, JobInfo>>,
}

const MAX_JOBS: usize = 200;

impl Jobs {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<u64, JobInfo>) -> T) -> T {
        match self.jobs.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub fn list(&self) -> Vec<JobInfo> {
        let mut v: Vec<JobInfo> = self.with(|j| j.values().cloned().collect());
        v.sort_by_key(|j| std::cmp::Reverse(j.id));
        v
    }

    pub fn get(&self, id: u64) -> Option<JobInfo> {
        self.with(|j| j.get(&id).cloned())
    }

    /// Is any of `ids` still running (kept and not finished)?
    pub fn any_running(&self, ids: &[u64]) -> bool {
        self.with(|j| {
            ids.iter()
                .any(|id| j.get(id).is_some_and(|job| job.finished_at.is_none()))
        })
    }

    /// Start a job walking `path` on a blocking thread, feeding `pool`: every file,
    /// or with `since` only the files whose inode changed since then (see `changed`).
    pub fn start(
        self: &Arc<Self>,
        path: PathBuf,
        account: Option<String>,
        since: Option<SystemTime>,
        pool: ScanPool,
    ) -> JobInfo {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let info = JobInfo {
            id,
            path: path.display().to_string(),
            account,
            status: "running".into(),
            files_found: 0,
            files_scanned: 0,
            files_skipped: 0,
            matches: 0,
            started_at: crate::store::now_rfc3339(),
            finished_at: None,
            error: None,
            changed_since: since.map(|t| crate::store::rfc3339(t.into())),
            files_unchanged: 0,
            walked: false,
            cancelled: false,
            finding_ids: Vec::new(),
        };
        self.with(|j| {
            if j.len() >= MAX_JOBS {
                if let Some(oldest) = j.keys().min().copied() {
                    j.remove(&oldest);
                }
            }
            j.insert(id, info.clone());
        });
        let me = self.clone();
        std::thread::spawn(move || {
            let (mut found, mut unchanged) = (0u64, 0u64);
            let err = walk(&path, &mut |p| {
                if me.with(|j| j.get(&id).is_none_or(|job| job.cancelled)) {
                    return false;
                }
                if let Some(since) = since {
                    if !changed(&p, since, &pool) {
                        unchanged += 1;
                        if unchanged % 1024 == 0 {
                            me.with(|j| {
                                if let Some(job) = j.get_mut(&id) {
                                    job.files_unchanged = unchanged;
                                }
                            });
                        }
                        return true;
                    }
                }
                found += 1;
                me.with(|j| {
                    if let Some(job) = j.get_mut(&id) {
                        job.files_found = found;
                    }
                });
                pool.submit_blocking(ScanRequest {
                    path: p,
                    origin: Origin::Job(id),
                    queued_at: std::time::Instant::now(),
                })
            })
            .err();
            me.with(|j| {
                if let Some(job) = j.get_mut(&id) {
                    job.files_unchanged = unchanged;
                    job.walked = true;
                    if let Some(e) = err {
                        job.error = Some(e.to_string());
                    }
                    finish_if_done(job);
                }
            });
        });
        info
    }

    /// Count one outcome of job `id`, with the findings it reported.
    pub fn record(&self, id: u64, scanned: bool, matches: usize, found: Vec<i64>) {
        self.with(|j| {
            if let Some(job) = j.get_mut(&id) {
                if scanned {
                    job.files_scanned += 1;
                } else {
                    job.files_skipped += 1;
                }
                job.matches += matches as u64;
                for f in found {
                    if job.finding_ids.len() < MAX_JOB_FINDINGS && !job.finding_ids.contains(&f) {
                        job.finding_ids.push(f);
                    }
                }
                finish_if_done(job);
            }
        });
    }

    /// Stop job `id`: its walk submits nothing more; files already queued are still
    /// scanned (and counted). None when there is no such job; Some(false) when it
    /// had finished already.
    pub fn cancel(&self, id: u64) -> Option<bool> {
        self.with(|j| {
            let job = j.get_mut(&id)?;
            if job.finished_at.is_some() {
                return Some(false);
            }
            job.cancelled = true;
            job.status = "cancelled".into();
            Some(true)
        })
    }
}

fn finish_if_done(job: &mut JobInfo) {
    if job.walked
        && job.files_scanned + job.files_skipped >= job.files_found
        && job.finished_at.is_none()
    {
        job.status = if job.cancelled {
            "cancelled".into()
        } else if job.error.is_some() && job.files_found == 0 {
            "failed".into()
        } else {
            "done".into()
        };
        job.finished_at = Some(crate::store::now_rfc3339());
    }
}

/// Has the inode at `p` changed at or after `since`, and not been scanned (with the
/// current rules) since? By ctime: the kernel sets it to the current time on every
/// write, truncate, chmod, rename and link, and no user can set it (utimes sets
/// mtime and atime, not ctime), so a file cannot be made to look unchanged. A file
/// that cannot be stat'ed counts as changed (the scan will say why it cannot be
/// read).
pub fn changed(p: &Path, since: SystemTime, pool: &ScanPool) -> bool {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return true;
    };
    let ctime = std::time::UNIX_EPOCH
        + Duration::new(
            md.ctime().max(0) as u64,
            md.ctime_nsec().clamp(0, 999_999_999) as u32,
        );
    ctime >= since && !pool.scanned_as_is(&md)
}

/// Every regular file under `root`, without following symlinks or leaving its
/// filesystem. `f` returns false to stop.
pub fn walk(root: &Path, f: &mut dyn FnMut(PathBuf) -> bool) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(root)?;
    if meta.is_file() {
        f(root.to_path_buf());
        return Ok(());
    }
    let dev = meta.dev();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "Scan walk: unreadable directory skipped.");
                continue;
            }
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if e.metadata().map(|m| m.dev() == dev).unwrap_or(false) {
                    stack.push(e.path());
                }
            } else if ft.is_file() && !f(e.path()) {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_file_reads_a_bounded_prefix_and_never_follows_links() {
        let set = signatures::load(None, true).expect("rules");
        let dir = tempfile::tempdir().expect("tempdir");
        let shell = dir.path().join("x.php");
        std::fs::write(&shell, "<?php system($_GET['cmd']); ?>").expect("write");
        let mut sc = set.scanner();
        let r =
            scan_file(&set, sc.as_mut(), &shell, 1 << 20, &perf::Limits::default()).expect("scan");
        assert!(r.matches.iter().any(|m| m.rule == "php_exec_request_input"));
        assert!(!r.truncated);

        let big = dir.path().join("big.php");
        let mut content = vec![b' '; 4096];
        content.extend_from_slice(b"<?php system($_GET['c']);");
        std::fs::write(&big, &content).expect("write");
        let r = scan_file(&set, sc.as_mut(), &big, 4096, &perf::Limits::default()).expect("scan");
        assert!(r.matches.is_empty() && r.truncated && r.scanned_bytes == 4096);

        let link = dir.path().join("link.php");
        std::os::unix::fs::symlink(&shell, &link).expect("symlink");
        assert!(matches!(
            scan_file(&set, sc.as_mut(), &link, 1 << 20, &perf::Limits::default()),
            Err(ScanSkip::Open(_))
        ));
        assert!(matches!(
            scan_file(
                &set,
                sc.as_mut(),
                dir.path(),
                1 << 20,
                &perf::Limits::default()
            ),
            Err(ScanSkip::Open(_) | ScanSkip::NotRegular)
        ));
    }

    #[tokio::test]
    async fn a_file_dated_back_still_counts_as_changed_and_a_scan_as_is_does_not() {
        let rules = tempfile::tempdir().expect("tempdir");
        let engine =
            Arc::new(Engine::new(Some(rules.path().to_path_buf()), false).expect("engine"));
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let pool = ScanPool::start(engine.clone(), 1, 2, 1 << 20, out_tx).expect("pool");
        let changed = |p: &Path, since| changed(p, since, &pool);
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.php");
        std::fs::write(&p, "x").expect("write");
        let before = SystemTime::now() - Duration::from_secs(5);
        // mtime set to 2001: ctime moves to now all the same.
        let old = std::time::UNIX_EPOCH + Duration::from_secs(978_307_200);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(old))
            .expect("utimes");
        assert!(changed(&p, before));
        assert!(!changed(&p, SystemTime::now() + Duration::from_secs(60)));
        // Gone: changed (the scan says why it cannot be read).
        assert!(changed(&dir.path().join("nope"), SystemTime::now()));
        // Scanned since it changed (a real-time scan): the sweep leaves it ...
        let scan = |p: &Path| {
            pool.submit_blocking(ScanRequest {
                path: p.to_path_buf(),
                origin: Origin::Job(0),
                queued_at: std::time::Instant::now(),
            })
        };
        assert!(scan(&p));
        assert!(out_rx.recv().await.expect("outcome").result.is_ok());
        assert!(!changed(&p, before), "scanned as it is");
        // ... until it changes again ...
        std::fs::write(&p, "y").expect("write");
        assert!(changed(&p, before));
        assert!(scan(&p));
        assert!(out_rx.recv().await.expect("outcome").result.is_ok());
        assert!(!changed(&p, before));
        // ... or the rules do.
        std::fs::write(
            rules.path().join("a.yml"),
            "rules:\n  - name: mine\n    severity: info\n    patterns: [zzz-marker]\n",
        )
        .expect("rule");
        engine.reload().expect("reload");
        assert!(changed(&p, before), "scanned with older rules");
    }

    #[test]
    fn a_broken_reload_keeps_the_previous_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.yml"),
            "rules:\n  - name: mine\n    severity: info\n    patterns: [zzz-marker]\n",
        )
        .expect("write");
        let engine = Engine::new(Some(dir.path().to_path_buf()), false).expect("engine");
        assert_eq!(engine.current().rules().len(), 1);
        let g = engine.generation();
        std::fs::write(dir.path().join("b.yar"), "rule broken {\n condition:\n }\n")
            .expect("write");
        let e = engine.reload().expect_err("broken");
        assert_eq!(e.0[0].file, dir.path().join("b.yar").display().to_string());
        assert_eq!(engine.generation(), g);
        assert_eq!(engine.current().rules()[0].name, "mine");
        assert!(engine.last_error().is_some());
        std::fs::write(dir.path().join("b.yar"), "rule fixed { condition: true }\n")
            .expect("write");
        assert_eq!(engine.reload().expect("fixed").rules().len(), 2);
        assert!(engine.generation() > g && engine.last_error().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_and_jobs_scan_a_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("ok{i}.php")), "<?php echo 1;").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(
            dir.path().join("sub/bad.php"),
            "<?php eval(base64_decode($x));",
        )
        .expect("write");
        let engine = Arc::new(Engine::new(None, true).expect("engine"));
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let pool = ScanPool::start(engine, 2, 2, 1 << 20, out_tx).expect("pool");
        let jobs = Arc::new(Jobs::default());
        let info = jobs.start(dir.path().to_path_buf(), None, None, pool.clone());
        let mut matched = Vec::new();
        for _ in 0..21 {
            let o = out_rx.recv().await.expect("outcome");
            let Origin::Job(id) = o.req.origin else {
                panic!("job origin")
            };
            let r = o.result.expect("scanned");
            jobs.record(id, true, r.matches.len(), Vec::new());
            if !r.matches.is_empty() {
                matched.push(o.req.path.clone());
            }
        }
        assert_eq!(matched, vec![dir.path().join("sub/bad.php")]);
        // The walker marks the job done once it has finished listing the tree,
        // which can come after the last file's outcome: wait for it (bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while jobs
            .get(info.id)
            .is_some_and(|j| j.status.as_str() != "done")
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let done = jobs.get(info.id).expect("job");
        assert_eq!(
            (
                done.status.as_str(),
                done.files_found,
                done.files_scanned,
                done.matches
            ),
            ("done", 21, 21, 1)
        );
        assert_eq!(pool.stats.scanned.load(Ordering::Relaxed), 21);
    }
}
