// SPDX-License-Identifier: GPL-2.0-only
//! Detection: file activity → scan pool → signature findings (and auto-quarantine for
//! rules marked so); sensitive reads → findings; scheduled scans and retention.
//!
//! file events --(bounded)--> [file_activity] --(bounded)--> scan workers
//!     --(bounded)--> [scan_results] --> findings (store, JSONL, SSE)

pub mod behaviour;
pub mod dbobjects;
pub mod forwardguard;
pub mod hardening;
pub mod mailav;
pub mod packs;
pub mod perf;
pub mod phpfold;
pub mod quarantine;
pub mod scan;
pub mod signatures;

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use agent_common::egress::Decision;
use anyhow::{Context, Result};
use api::model::Severity;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::{
    config::{Config, Retention},
    findings::Findings,
    sensors::{procfs::resolve_uids, FileActivity, FileOp},
    store::{NewFinding, Store},
    supervisor::{Shared, Supervisor},
};
use behaviour::Behaviour;
use quarantine::Quarantine;
use scan::{Engine, Jobs, Origin, ScanOutcome, ScanPool, ScanRequest};
use signatures::RuleMatch;

/// The running detection: the shared state and its tasks.
pub struct DetectionHandle {
    pub detection: Arc<Detection>,
    /// File activity from the sensors (bounded; a full queue is a counted drop).
    pub files: mpsc::Sender<FileActivity>,
    activity: JoinHandle<()>,
    scan_results: JoinHandle<()>,
    scheduler: JoinHandle<()>,
}

/// Compile the rules (a broken rules dir runs the builtin set and says so in a
/// `rules_error` finding), start the scan workers, and the tasks that turn file
/// activity into scans and scans into findings.
pub async fn start(
    cfg: &Config,
    store: Store,
    findings: Arc<Findings>,
    sup: &Supervisor,
    shutdown: watch::Receiver<bool>,
) -> Result<DetectionHandle> {
    let rules_dir =
        (!cfg.detection.rules_dir.as_os_str().is_empty()).then(|| cfg.detection.rules_dir.clone());
    let engine = Arc::new(
        tokio::task::spawn_blocking({
            let (dir, builtin) = (rules_dir, cfg.detection.builtin_rules);
            let cache = Some(cfg.rules_cache_dir());
            let packs = cfg.rule_pack_dirs();
            let fetched = cfg
                .detection
                .rule_packs
                .iter()
                .filter(|p| !p.url.is_empty());
            let update = (
                fetched
                    .clone()
                    .map(|p| p.url.clone())
                    .next()
                    .unwrap_or_default(),
                fetched.map(|p| p.refresh_hours * 3600).min().unwrap_or(0),
            );
            let limits = perf::Limits::from(&cfg.performance);
            move || {
                Engine::new_cached(dir, packs, builtin, cache)
                    .map(|e| e.with_perf(limits).with_update(update.0, update.1))
            }
        })
        .await
        .context("compiling rules")?
        .context("the builtin rules do not compile")?,
    );
    let (outcome_tx, outcome_rx) = mpsc::channel(cfg.detection.scan_queue);
    let pool = ScanPool::start(
        engine.clone(),
        cfg.detection.scan_workers,
        cfg.detection.scan_queue,
        cfg.watch.max_scan_bytes,
        outcome_tx,
    )
    .context("starting scan workers")?;
    let store_for_db = store.clone();
    let quarantine = Arc::new(
        Quarantine::new(
            cfg.quarantine_dir(),
            store,
            cfg.quarantine_roots(),
            cfg.quarantine.max_bytes,
        )
        .context("preparing the quarantine")?,
    );
    let (web_uids, _) = resolve_uids(&cfg.sensors.sensitive.web_users);
    let detection = Arc::new(Detection::new(
        cfg,
        engine.clone(),
        pool,
        quarantine,
        findings.clone(),
        Behaviour::new(web_uids, cfg.detection.web_shell_allow.clone()),
        store_for_db,
    ));
    if let Some(e) = engine.last_error() {
        let f = NewFinding {
            details: e
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            ..NewFinding::new(
                "rules_error",
                Severity::Warning,
                format!(
                    "{} rule error(s) in {}: running with the builtin rules only",
                    e.errors.len(),
                    cfg.detection.rules_dir.display()
                ),
            )
        };
        findings.report(f).await;
    }
    let (files, files_rx) = mpsc::channel::<FileActivity>(cfg.sensors.event_channel_size);
    let activity = {
        let (rx, det) = (Shared::new(files_rx), detection.clone());
        let exempt = cfg.sensors.sensitive.exempt_comms.clone();
        sup.spawn("detection", "file activity", true, move || {
            let (rx, det, exempt) = (rx.clone(), det.clone(), exempt.clone());
            async move { file_activity(&mut *rx.take().await, det, exempt).await }
        })
    };
    let scan_results = {
        let (rx, det) = (Shared::new(outcome_rx), detection.clone());
        sup.spawn("detection", "scan results", true, move || {
            let (rx, det) = (rx.clone(), det.clone());
            async move { scan_results(&mut *rx.take().await, det).await }
        })
    };
    {
        let (dir, packs) = (cfg.rule_packs_dir(), cfg.detection.rule_packs.clone());
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        sup.spawn("detection", "rule packs", false, move || {
            packs::run(dir.clone(), packs.clone(), engine.clone(), shutdown.clone())
        });
    }
    {
        let (g, shutdown) = (detection.forward_guard.clone(), shutdown.clone());
        sup.spawn("detection", "forward guard", false, move || {
            forwardguard::run(g.clone(), shutdown.clone())
        });
    }
    {
        let (db, shutdown) = (detection.databases.clone(), shutdown.clone());
        sup.spawn("detection", "database objects", false, move || {
            dbobjects::run(db.clone(), shutdown.clone())
        });
    }
    {
        let (av, shutdown) = (detection.mail_av.clone(), shutdown.clone());
        sup.spawn("detection", "mail av", false, move || {
            mailav::run(av.clone(), shutdown.clone())
        });
    }
    {
        // Execs whose file was deleted by a way no unlink event reported.
        let (det, shutdown) = (detection.clone(), shutdown.clone());
        let trees: Vec<PathBuf> = cfg
            .watch
            .paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        sup.spawn("detection", "running images", false, move || {
            running_images(det.clone(), trees.clone(), shutdown.clone())
        });
    }
    let scheduler = {
        let det = detection.clone();
        let roots = cfg.watch.paths.clone();
        let d = &cfg.detection;
        let every = ScanEvery {
            full: (d.full_scan_interval_hours > 0)
                .then(|| Duration::from_secs(d.full_scan_interval_hours * 3600)),
            sweep: (d.sweep_interval_minutes > 0)
                .then(|| Duration::from_secs(d.sweep_interval_minutes * 60)),
        };
        sup.spawn("detection", "scheduler", false, move || {
            schedule(det.clone(), roots.clone(), every, shutdown.clone())
        })
    };
    Ok(DetectionHandle {
        detection,
        files,
        activity,
        scan_results,
        scheduler,
    })
}

impl DetectionHandle {
    /// After the sensors stopped (every file-activity sender is gone): drain what is
    /// queued, then close the scan queue; the workers finish what is queued and the
    /// results become findings (bounded: a stuck scan cannot hold shutdown).
    pub async fn stop(self) {
        drop(self.files);
        let _ = self.activity.await;
        tracing::info!("Sensors stopped; draining scans.");
        let _ = self.scheduler.await;
        self.detection.pool.close();
        if tokio::time::timeout(Duration::from_secs(10), self.scan_results)
            .await
            .is_err()
        {
            tracing::warn!("Scans still running after 10 s at shutdown; their results are lost.");
        }
        tracing::info!("Scans drained.");
    }
}

pub use crate::store::CHECK_SIGNATURE;
pub const CHECK_SENSITIVE_READ: &str = "sensitive_read";
/// A file whose scan panicked: unchecked content, and maybe made to be.
pub const CHECK_SCAN_FAILED: &str = "scan_failed";
/// Write → finding latencies kept for `/health` percentiles.
const LATENCY_SAMPLES: usize = 4096;

/// Everything detection shares with the API.
pub struct Detection {
    pub engine: Arc<Engine>,
    pub pool: ScanPool,
    pub jobs: Arc<Jobs>,
    pub quarantine: Arc<Quarantine>,
    pub findings: Arc<Findings>,
    /// `quarantine.auto`: quarantine matches of `auto_quarantine` rules at once
    /// (applied live by the settings API).
    pub auto_quarantine: AtomicBool,
    /// `retention`, read by the scheduler at each pass (applied live).
    pub retention: std::sync::RwLock<Retention>,
    /// Joins of exec and file events (web shells, dropped/deleted executables).
    pub behaviour: Behaviour,
    /// The mail AV (exim's queue scanned, infected mail quarantined).
    pub mail_av: Arc<mailav::MailAv>,
    /// Malicious database objects: the pass, the drop, the restore.
    pub databases: Arc<dbobjects::Databases>,
    /// Forwarded copies exim held.
    pub forward_guard: Arc<forwardguard::ForwardGuard>,
    /// Recent realtime scan latencies (queued → outcome handled), milliseconds.
    latencies: Mutex<std::collections::VecDeque<f64>>,
}

impl Detection {
    /// `cfg` gives what the settings API may change later (`quarantine.auto`,
    /// `retention`) and the mail AV's section.
    pub fn new(
        cfg: &Config,
        engine: Arc<Engine>,
        pool: ScanPool,
        quarantine: Arc<Quarantine>,
        findings: Arc<Findings>,
        behaviour: Behaviour,
        store: Store,
    ) -> Self {
        Self {
            behaviour,
            databases: Arc::new(dbobjects::Databases::new(cfg, findings.clone(), store)),
            forward_guard: Arc::new(forwardguard::ForwardGuard::new(cfg, findings.clone())),
            mail_av: Arc::new(mailav::MailAv::new(cfg, engine.clone(), findings.clone())),
            engine,
            pool,
            jobs: Arc::new(Jobs::default()),
            quarantine,
            findings,
            auto_quarantine: AtomicBool::new(cfg.quarantine.auto),
            retention: std::sync::RwLock::new(cfg.retention.clone()),
            latencies: Mutex::new(Default::default()),
        }
    }

    fn note_latency(&self, ms: f64) {
        let mut g = match self.latencies.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() == LATENCY_SAMPLES {
            g.pop_front();
        }
        g.push_back(ms);
    }

    /// p50 and p99 of recent realtime scans (queued → handled), ms.
    pub fn latency_percentiles(&self) -> Option<(f64, f64)> {
        let g = match self.latencies.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = g.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99)))
    }
}

/// A web-server user read a sensitive file (the kernel matched path and uid).
pub fn sensitive_read(act: &FileActivity) -> NewFinding {
    let path = act.path.display().to_string();
    let exe = act
        .exe
        .as_ref()
        .map(|e| e.display().to_string())
        .unwrap_or_else(|| "unknown".into());
    let (verb, decided) = match act.decision {
        Some(Decision::Denied) => ("was denied", "; decision: denied (BPF-LSM)"),
        Some(Decision::DryRun) => ("read", "; decision: dry_run (BPF-LSM would deny)"),
        Some(_) => ("read", "; decision: observed (BPF-LSM)"),
        None => ("read", ""),
    };
    NewFinding {
        details: format!(
            "reader: {} (pid {}, exe {exe}){decided}",
            act.comm, act.tgid
        ),
        path: Some(path.clone()),
        pid: Some(act.tgid),
        uid: Some(act.uid),
        process: Some(act.comm.clone()),
        // A denial and a read of the same file are two findings.
        key: act
            .decision
            .filter(|d| *d == Decision::Denied)
            .map(|d| format!("{}|{path}|{}", act.uid, d.as_str())),
        ..NewFinding::new(
            CHECK_SENSITIVE_READ,
            Severity::High,
            format!("Web-server user {} {verb} {path}", act.uid),
        )
    }
}

/// The finding for one rule match on one file.
pub fn signature_finding(req: &ScanRequest, m: &RuleMatch, truncated: bool) -> NewFinding {
    let path = req.path.display().to_string();
    let mut details = format!(
        "rule {} ({}, {}) matched at offset {}: {}",
        m.rule,
        match m.kind {
            signatures::RuleKind::Yaml => "yaml",
            signatures::RuleKind::Yara => "yara",
        },
        m.file,
        m.offset,
        m.pattern
    );
    if !m.category.is_empty() {
        details.push_str(&format!("; category {}", m.category));
    }
    if !m.description.is_empty() {
        details.push_str(&format!("; {}", m.description));
    }
    if truncated {
        details.push_str("; only the first watch.max_scan_bytes were scanned");
    }
    let mut f = NewFinding {
        path: Some(path.clone()),
        rule: Some(m.rule.clone()),
        ..NewFinding::new(
            CHECK_SIGNATURE,
            m.severity,
            format!("Signature {} matched {path}", m.rule),
        )
    };
    match &req.origin {
        Origin::Realtime {
            pid,
            uid,
            comm,
            exe,
        } => {
            details.push_str(&format!(
                "; writer: {comm} (pid {pid}, uid {uid}, exe {})",
                exe.as_ref()
                    .map(|e| e.display().to_string())
                    .unwrap_or_else(|| "unknown".into())
            ));
            f.pid = Some(*pid);
            f.uid = Some(*uid);
            f.process = Some(comm.clone());
            // Read now, while a long-lived writer (php-fpm, a shell) is still there;
            // a writer already gone leaves it empty.
            f.lineage =
                crate::sensors::procfs::ancestors(*pid, crate::sensors::procfs::LINEAGE_DEPTH);
        }
        Origin::Job(id) => details.push_str(&format!("; scan job {id}")),
    }
    f.account = account_of(&req.path);
    f.details = details;
    f
}

/// A performance issue of a scanned file: one finding per file (keyed by its path).
fn perf_finding(path: &std::path::Path, issue: &perf::Issue, r: &scan::ScanReport) -> NewFinding {
    let p = path.display().to_string();
    NewFinding {
        path: Some(p.clone()),
        key: Some(p),
        uid: Some(r.uid),
        account: account_of(path),
        details: format!(
            "{} bytes, owner uid {}; POST /api/v1/perf/fix-{} fixes it",
            r.size,
            r.uid,
            match issue {
                perf::Issue::ErrorLog { .. } => "error-log",
                perf::Issue::DisplayErrors { .. } => "display-errors",
                perf::Issue::WpCron => "wp-cron",
            }
        ),
        ..NewFinding::new(issue.check(), Severity::Warning, issue.message(path))
    }
}

/// The hosting account a path belongs to: `/home/<account>/...`.
pub fn account_of(p: &std::path::Path) -> Option<String> {
    let mut it = p.components();
    it.next()?; // root
    match (it.next(), it.next(), it.next()) {
        (Some(h), Some(a), Some(_)) if h.as_os_str() == "home" => {
            Some(a.as_os_str().to_string_lossy().into_owned())
        }
        _ => None,
    }
}

/// File activity from the sensors: written and renamed files go to the scan pool,
/// sensitive reads become findings.
pub async fn file_activity(
    rx: &mut mpsc::Receiver<FileActivity>,
    det: Arc<Detection>,
    exempt_comms: Vec<String>,
) {
    while let Some(act) = rx.recv().await {
        for f in det.behaviour.on_file(&act) {
            det.findings.report(f).await;
        }
        match act.op {
            FileOp::WriteClose | FileOp::Rename => {
                // An exchange put new content under the old name too.
                let swapped = act.old_path.as_ref().filter(|_| act.exchange);
                for path in std::iter::once(&act.path).chain(swapped) {
                    let req = ScanRequest {
                        path: path.clone(),
                        origin: Origin::Realtime {
                            pid: act.tgid,
                            uid: act.uid,
                            comm: act.comm.clone(),
                            exe: act.exe.clone(),
                        },
                        queued_at: act.received_at,
                    };
                    if !det.pool.submit(req).await {
                        return;
                    }
                }
            }
            FileOp::SensitiveRead => {
                // A denial is always reported: the comm is the reader's to choose.
                let denied = act.decision == Some(Decision::Denied);
                if !denied
                    && exempt_comms
                        .iter()
                        .any(|c| act.comm.starts_with(c.as_str()))
                {
                    continue;
                }
                det.findings.report(sensitive_read(&act)).await;
            }
            FileOp::Unlink | FileOp::Chmod => {
                tracing::debug!(op = act.op.as_str(), path = %act.path.display(), pid = act.tgid, uid = act.uid, comm = %act.comm, "File activity.");
            }
        }
    }
}

/// Scan outcomes → findings; auto-quarantine for rules marked so.
pub async fn scan_results(rx: &mut mpsc::Receiver<ScanOutcome>, det: Arc<Detection>) {
    while let Some(o) = rx.recv().await {
        let scanned = o.result.is_ok();
        let matches = o.result.as_ref().map(|r| r.matches.len()).unwrap_or(0);
        // A job's outcome is counted after its findings are recorded, so a job that
        // says done lists all of them.
        let job = match o.req.origin {
            Origin::Job(id) => Some(id),
            Origin::Realtime { .. } => None,
        };
        let mut found = Vec::new();
        let record = |found: Vec<i64>| {
            if let Some(id) = job {
                det.jobs.record(id, scanned, matches, found);
            }
        };
        let report = match o.result {
            Ok(r) => r,
            Err(scan::ScanSkip::Panicked(why)) => {
                let path = o.req.path.display().to_string();
                let f = NewFinding {
                    path: Some(path.clone()),
                    details: format!("{why}; the file was not scanned"),
                    ..NewFinding::new(
                        CHECK_SCAN_FAILED,
                        Severity::High,
                        format!("Scanning {path} crashed the scanner: its content is unchecked"),
                    )
                };
                found.extend(det.findings.report(f).await.map(|f| f.id));
                record(found);
                continue;
            }
            Err(_) => {
                record(found);
                continue;
            }
        };
        let mut quarantined: Option<String> = None;
        for m in &report.matches {
            let mut f = signature_finding(&o.req, m, report.truncated);
            f.content_sha256 = report.sha256.clone();
            if m.auto_quarantine
                && det.auto_quarantine.load(Ordering::Relaxed)
                && quarantined.is_none()
            {
                // Only the very file scanned (inode and content): never what was
                // swapped in under its name since.
                let expect = quarantine::Expect {
                    sha256: report.sha256.clone(),
                    file: Some((report.dev, report.ino)),
                };
                match det
                    .quarantine
                    .quarantine(
                        &o.req.path,
                        &format!("auto: rule {}", m.rule),
                        Some(m.rule.clone()),
                        None,
                        "auto_quarantine",
                        expect,
                    )
                    .await
                {
                    Ok(row) => {
                        f.details
                            .push_str(&format!("; auto-quarantined as {}", row.id));
                        quarantined = Some(row.id);
                    }
                    Err(e) => {
                        tracing::error!(path = %o.req.path.display(), error = %e, "Auto-quarantine failed.");
                        f.details
                            .push_str(&format!("; auto-quarantine failed: {e}"));
                    }
                }
            }
            if let Some(reported) = det.findings.report(f).await {
                found.push(reported.id);
                let found = reported;
                if let Some(qid) = &quarantined {
                    let _ = det
                        .findings
                        .store()
                        .ui_audit(
                            "auto_quarantine",
                            "quarantine",
                            &found.path.clone().unwrap_or_default(),
                            qid,
                            Some(found.id),
                        )
                        .await;
                }
            }
        }
        if let Some(issue) = &report.perf {
            if let Some(reported) = det
                .findings
                .report(perf_finding(&o.req.path, issue, &report))
                .await
            {
                found.push(reported.id);
            }
        }
        if matches!(o.req.origin, Origin::Realtime { .. }) {
            det.note_latency(o.req.queued_at.elapsed().as_secs_f64() * 1000.0);
        }
        record(found);
    }
}

/// Every few seconds, the recent execs from a world-writable or watched tree whose
/// process runs a file that has since been deleted ([`Behaviour::sweep_running`]).
async fn running_images(
    det: Arc<Detection>,
    trees: Vec<PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(behaviour::RUNNING_SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (d, t) = (det.clone(), trees.clone());
                let found = tokio::task::spawn_blocking(move || {
                    d.behaviour.sweep_running(|e| {
                        e.world_writable || t.iter().any(|w| e.path.starts_with(w))
                    })
                })
                .await;
                match found {
                    Ok(found) => {
                        for f in found {
                            det.findings.report(f).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "The check of running images failed."),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Scheduled full scans and incremental sweeps of the watched trees, and retention.
pub async fn schedule(
    det: Arc<Detection>,
    roots: Vec<PathBuf>,
    every: ScanEvery,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut retain = tokio::time::interval(RETENTION_EVERY);
    let mut last_full = tokio::time::Instant::now();
    // The first sweep runs at start: files changed while the agent was down.
    let mut sweep = tokio::time::interval(every.sweep.unwrap_or(Duration::from_secs(86400)));
    let mut sweeping: Vec<u64> = Vec::new();
    loop {
        tokio::select! {
            _ = retain.tick() => {
                let retention = det
                    .retention
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                enforce_retention(&det.findings, &retention).await;
                if let Some(every) = every.full {
                    if last_full.elapsed() >= every {
                        last_full = tokio::time::Instant::now();
                        for r in &roots {
                            let j = det.jobs.start(r.clone(), None, None, det.pool.clone());
                            tracing::info!(job = j.id, root = %r.display(), "Scheduled full scan started.");
                        }
                    }
                }
            }
            _ = sweep.tick(), if every.sweep.is_some() => {
                // One sweep at a time: a tree slower to walk than the interval is
                // swept back to back, not in parallel.
                if !det.jobs.any_running(&sweeping) {
                    sweeping = sweep_changed(&det, &roots).await;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// How often the scheduler scans the watched trees: all files, changed files.
#[derive(Debug, Clone, Copy)]
pub struct ScanEvery {
    pub full: Option<Duration>,
    pub sweep: Option<Duration>,
}

/// The store setting holding the start of the last sweep (unix nanoseconds).
const SWEEP_MARK: &str = "detection.sweep_mark_ns";
/// ctime is taken from the kernel's coarse clock (a tick behind the fine one): a
/// file changed just before a sweep started is still "since" it.
const SWEEP_SLACK: Duration = Duration::from_secs(2);

/// One incremental sweep: scan every file of the watched trees whose inode changed
/// since the previous sweep started (all of them the first time). When all its
/// files are scanned, the start of this sweep becomes the mark for the next, kept in
/// the store: a restart picks up what changed while the agent was down, and a sweep
/// cut short by a stop is done again. Returns the jobs started.
pub async fn sweep_changed(det: &Arc<Detection>, roots: &[PathBuf]) -> Vec<u64> {
    let started = std::time::SystemTime::now();
    let since = match det.findings.store().setting(SWEEP_MARK).await {
        Ok(v) => v
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ns| std::time::UNIX_EPOCH + Duration::from_nanos(ns) - SWEEP_SLACK),
        Err(e) => {
            tracing::warn!(error = %e, "Sweep mark unreadable: this sweep scans everything.");
            None
        }
    };
    let ids: Vec<u64> = roots
        .iter()
        .map(|r| {
            let since = since.unwrap_or(std::time::UNIX_EPOCH);
            let j = det.jobs.start(r.clone(), None, Some(since), det.pool.clone());
            tracing::info!(job = j.id, root = %r.display(), since = ?j.changed_since, "Sweep of changed files started.");
            j.id
        })
        .collect();
    let (det, jobs) = (det.clone(), ids.clone());
    tokio::spawn(async move {
        while det.jobs.any_running(&jobs) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The scan workers' read buffers of the sweep are free now.
        let _ =
            tokio::task::spawn_blocking(|| crate::supervisor::memory::release_freed("sweep")).await;
        let ns = started
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        if let Err(e) = det
            .findings
            .store()
            .set_settings(vec![(SWEEP_MARK.into(), Some(ns.to_string()))])
            .await
        {
            tracing::warn!(error = %e, "Sweep mark not saved: the next sweep repeats this one.");
        }
    });
    ids
}

/// How often retention is enforced (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(600);
pub const CHECK_FINDINGS_CAPPED: &str = "findings_capped";

/// One retention sweep; active findings deleted over the cap are said in a finding.
pub async fn enforce_retention(findings: &Findings, r: &Retention) -> Option<crate::store::Pruned> {
    let bounds = crate::store::Bounds {
        before_unix: (r.days > 0).then(|| crate::store::now_unix() - i64::from(r.days) * 86400),
        max_findings: r.max_findings,
        max_rows: r.max_rows,
    };
    let p = match findings.store().enforce_retention(bounds).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "Enforcing retention failed.");
            return None;
        }
    };
    if p.total() > 0 {
        tracing::info!(?p, "Retention: old and excess rows deleted.");
    }
    if p.active_findings > 0 {
        let f = NewFinding {
            details: format!(
                "{} active findings deleted (least severe and oldest first); raise retention.max_findings or work through the findings",
                p.active_findings
            ),
            ..NewFinding::new(
                CHECK_FINDINGS_CAPPED,
                Severity::Warning,
                format!("More than {} findings: the least severe active ones were deleted", r.max_findings),
            )
        };
        findings.report(f).await;
    }
    Some(p)
}

/// Counters for `/health` and `/metrics`.
/// Detection's counters as /health shows them.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct DetectionStats {
    pub scan: scan::ScanStatsView,
    pub findings: FindingCounts,
    pub rules_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_to_scan_ms: Option<Percentiles>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct FindingCounts {
    pub new: u64,
    pub repeats: u64,
    pub suppressed: u64,
    pub store_errors: u64,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
}

pub fn stats(det: &Detection) -> DetectionStats {
    let f = &det.findings.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    DetectionStats {
        scan: det.pool.stats.view(),
        findings: FindingCounts {
            new: l(&f.new),
            repeats: l(&f.repeats),
            suppressed: l(&f.suppressed),
            store_errors: l(&f.store_errors),
        },
        rules_version: det.engine.current().version.clone(),
        write_to_scan_ms: det
            .latency_percentiles()
            .map(|(p50, p99)| Percentiles { p50, p99 }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn accounts_come_from_home_paths_only() {
        assert_eq!(
            account_of(Path::new("/home/alice/public_html/x.php")).as_deref(),
            Some("alice")
        );
        assert_eq!(account_of(Path::new("/home/alice")), None);
        assert_eq!(account_of(Path::new("/var/www/x.php")), None);
    }
}
