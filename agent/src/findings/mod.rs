// SPDX-License-Identifier: GPL-2.0-only
//! Where every finding goes: suppressions, dedup by (check, key) within a window, the
//! store, the JSONL log on disk and the SSE broadcast.

pub mod alerts;

use std::{
    io::Write,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, RwLock,
    },
};

use api::model::Finding;
use tokio::sync::broadcast;

use crate::store::{NewFinding, Recorded, Store, StoreError, Suppression};

/// A suppression with its glob and network compiled.
struct Matcher {
    rule: Suppression,
    glob: Option<globset::GlobMatcher>,
    net: Option<ipnet::IpNet>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("a suppression needs at least one of check, path_glob, account, ip")]
    Empty,
    #[error("path_glob {0:?}: {1}")]
    Glob(String, String),
    #[error("ip {0:?} is not an address or CIDR")]
    Ip(String),
}

fn compile(rule: Suppression) -> Result<Matcher, SuppressionError> {
    if rule.check.is_none()
        && rule.path_glob.is_none()
        && rule.account.is_none()
        && rule.ip.is_none()
    {
        return Err(SuppressionError::Empty);
    }
    let glob = match &rule.path_glob {
        Some(g) => Some(
            globset::GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| SuppressionError::Glob(g.clone(), e.to_string()))?
                .compile_matcher(),
        ),
        None => None,
    };
    let net = match &rule.ip {
        Some(ip) => Some(
            ip.parse::<ipnet::IpNet>()
                .or_else(|_| ip.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| SuppressionError::Ip(ip.clone()))?,
        ),
        None => None,
    };
    Ok(Matcher { rule, glob, net })
}

/// Check that a suppression is well formed (API input) before storing it.
pub fn validate(rule: &Suppression) -> Result<(), SuppressionError> {
    compile(rule.clone()).map(|_| ())
}

impl Matcher {
    /// Every field the suppression sets must match; an unknown field never matches.
    fn matches(&self, f: &NewFinding) -> bool {
        if self.rule.check.as_ref().is_some_and(|c| *c != f.check) {
            return false;
        }
        if let Some(g) = &self.glob {
            match &f.path {
                Some(p) if g.is_match(p) => {}
                _ => return false,
            }
        }
        if self.rule.account.is_some() && self.rule.account != f.account {
            return false;
        }
        if let Some(net) = &self.net {
            match f
                .ip
                .as_deref()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            {
                Some(ip) if net.contains(&ip) => {}
                _ => return false,
            }
        }
        true
    }
}

/// The correlation key of a finding, in the spec's order: account, mailbox, domain,
/// process, remote IP. Findings with none (agent health) start no incident.
pub fn correlation(f: &Finding) -> Option<(&'static str, String)> {
    if let Some(a) = &f.account {
        return Some(("account", a.clone()));
    }
    if let Some(m) = &f.mailbox {
        return Some(("mailbox", m.clone()));
    }
    if let Some(d) = &f.domain {
        return Some(("domain", d.clone()));
    }
    if let Some(p) = &f.process {
        return Some((
            "process",
            match f.uid {
                Some(u) => format!("{p} (uid {u})"),
                None => p.clone(),
            },
        ));
    }
    f.ip.as_ref().map(|ip| ("ip", ip.clone()))
}

#[derive(Debug, Default)]
pub struct FindingStats {
    pub new: AtomicU64,
    pub repeats: AtomicU64,
    pub suppressed: AtomicU64,
    pub store_errors: AtomicU64,
}

pub struct Findings {
    store: Store,
    tx: broadcast::Sender<Finding>,
    window_secs: u64,
    suppressions: RwLock<Vec<Matcher>>,
    log: Mutex<Option<JsonlLog>>,
    pub stats: FindingStats,
}

impl Findings {
    /// `log`: the JSONL file every new finding is appended to, rotated at its size
    /// bound (None: no log).
    pub async fn open(
        store: Store,
        tx: broadcast::Sender<Finding>,
        window_secs: u64,
        log: Option<JsonlLog>,
    ) -> Result<Self, StoreError> {
        let log = log.and_then(|mut l| match l.open() {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::error!(path = %l.path.display(), error = %e, "Cannot open the findings log; findings go to the store only.");
                None
            }
        });
        let me = Self {
            store,
            tx,
            window_secs,
            suppressions: RwLock::new(Vec::new()),
            log: Mutex::new(log),
            stats: FindingStats::default(),
        };
        me.reload_suppressions().await?;
        Ok(me)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Finding> {
        self.tx.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Re-read the suppressions from the store (after an API change). A stored rule
    /// that no longer compiles is skipped and logged, never fatal.
    pub async fn reload_suppressions(&self) -> Result<(), StoreError> {
        let rules = self.store.suppressions().await?;
        let compiled: Vec<Matcher> = rules
            .into_iter()
            .filter_map(|r| match compile(r) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "Skipping a stored suppression.");
                    None
                }
            })
            .collect();
        match self.suppressions.write() {
            Ok(mut g) => *g = compiled,
            Err(p) => *p.into_inner() = compiled,
        }
        Ok(())
    }

    fn suppressed_by(&self, f: &NewFinding) -> Option<i64> {
        let g = match self.suppressions.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.iter().find(|m| m.matches(f)).map(|m| m.rule.id)
    }

    /// Report a finding. Returns it when it is new (stored, logged and broadcast);
    /// `None` when suppressed, a repeat within the dedup window, or not storable
    /// (logged and counted).
    pub async fn report(&self, f: NewFinding) -> Option<Finding> {
        if let Some(id) = self.suppressed_by(&f) {
            self.stats.suppressed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(check = %f.check, suppression = id, "Finding suppressed.");
            if let Err(e) = self.store.bump_suppression_hits(id).await {
                tracing::warn!(error = %e, "Counting a suppression hit failed.");
            }
            return None;
        }
        let check = f.check.clone();
        match self.store.record_finding(f, self.window_secs).await {
            Ok(Recorded::New(f)) => {
                let f = *f;
                self.stats.new.fetch_add(1, Ordering::Relaxed);
                tracing::info!(id = f.id, check = %f.check, severity = f.severity.as_str(), ip = f.ip.as_deref().unwrap_or(""), path = f.path.as_deref().unwrap_or(""), rule = f.rule.as_deref().unwrap_or(""), "Finding.");
                self.append_log(&f);
                if let Some((kind, source)) = correlation(&f) {
                    let title = format!("{} on {kind} {source}", f.check);
                    if let Err(e) = self
                        .store
                        .attach_incident(f.id, kind, source, f.severity, f.check.clone(), title)
                        .await
                    {
                        tracing::error!(id = f.id, error = %e, "Attaching a finding to its incident failed.");
                    }
                }
                // No subscribers is fine.
                let _ = self.tx.send(f.clone());
                Some(f)
            }
            Ok(Recorded::Repeat { id, count }) => {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id, count, check, "Repeat of an active finding.");
                None
            }
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(check, error = %e, "Storing a finding failed.");
                None
            }
        }
    }

    fn append_log(&self, f: &Finding) {
        let mut g = match self.log.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(log) = g.as_mut() {
            let mut line = match serde_json::to_vec(f) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "Serializing a finding failed.");
                    return;
                }
            };
            line.push(b'\n');
            if let Err(e) = log.append(&line) {
                tracing::error!(path = %log.path.display(), error = %e, "Appending to the findings log failed.");
            }
        }
    }
}

/// `findings.jsonl`: one JSON finding per line, rotated to `.1` (the previous `.1`
/// to `.2`, ...) once it reaches `max_bytes`, `keep` rotated files kept.
pub struct JsonlLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<std::fs::File>,
    size: u64,
}

impl JsonlLog {
    pub fn new(path: PathBuf, max_bytes: u64, keep: u32) -> Self {
        Self {
            path,
            max_bytes,
            keep: keep.max(1),
            file: None,
            size: 0,
        }
    }

    fn open(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)?;
        self.size = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// Shift the rotated files up one (the oldest falls off) and start a new file.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.open()
    }

    /// One write(2) of a whole line on an O_APPEND file: lines never interleave.
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            if let Err(e) = self.rotate() {
                tracing::error!(path = %self.path.display(), error = %e, "Rotating the findings log failed; appending on.");
                if self.file.is_none() {
                    self.open()?;
                }
            }
        }
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => {
                self.open()?;
                self.file
                    .as_mut()
                    .ok_or_else(|| std::io::Error::other("findings log not open"))?
            }
        };
        file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use api::model::Severity;

    use super::*;

    fn supp(check: Option<&str>, glob: Option<&str>, ip: Option<&str>) -> Suppression {
        Suppression {
            id: 1,
            check: check.map(Into::into),
            path_glob: glob.map(Into::into),
            account: None,
            ip: ip.map(Into::into),
            reason: String::new(),
            created_at: String::new(),
            created_by: "t".into(),
            hits: 0,
        }
    }

    fn f(check: &str, path: Option<&str>, ip: Option<&str>) -> NewFinding {
        NewFinding {
            path: path.map(Into::into),
            ip: ip.map(Into::into),
            ..NewFinding::new(check, Severity::High, "m")
        }
    }

    #[test]
    fn suppressions_match_every_field_they_set() {
        let m = compile(supp(
            Some("signature_match"),
            Some("/home/*/public_html/cache/**"),
            None,
        ))
        .expect("compile");
        assert!(m.matches(&f(
            "signature_match",
            Some("/home/a/public_html/cache/x/y.php"),
            None
        )));
        assert!(!m.matches(&f(
            "signature_match",
            Some("/home/a/b/public_html/cache/y.php"),
            None
        )));
        assert!(!m.matches(&f("other", Some("/home/a/public_html/cache/y.php"), None)));
        assert!(
            !m.matches(&f("signature_match", None, None)),
            "unknown path never matches"
        );
        let m = compile(supp(None, None, Some("198.51.100.0/24"))).expect("compile");
        assert!(m.matches(&f("port_scan", None, Some("198.51.100.7"))));
        assert!(!m.matches(&f("port_scan", None, Some("203.0.113.7"))));
        assert!(matches!(
            compile(supp(None, None, None)),
            Err(SuppressionError::Empty)
        ));
        assert!(matches!(
            compile(supp(None, Some("a[b"), None)),
            Err(SuppressionError::Glob(..))
        ));
        assert!(matches!(
            compile(supp(None, None, Some("nope"))),
            Err(SuppressionError::Ip(_))
        ));
    }

    #[tokio::test]
    async fn report_suppresses_dedups_logs_and_broadcasts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let (tx, mut rx) = broadcast::channel(8);
        let log = dir.path().join("findings.jsonl");
        let fs = Findings::open(
            store.clone(),
            tx,
            3600,
            Some(JsonlLog::new(log.clone(), 1 << 20, 2)),
        )
        .await
        .expect("open");
        let first = fs.report(f("a", Some("/w/x"), None)).await.expect("new");
        assert!(
            fs.report(f("a", Some("/w/x"), None)).await.is_none(),
            "repeat"
        );
        store
            .add_suppression(supp(Some("a"), Some("/w/**"), None))
            .await
            .expect("add");
        fs.reload_suppressions().await.expect("reload");
        assert!(
            fs.report(f("a", Some("/w/y"), None)).await.is_none(),
            "suppressed"
        );
        assert!(fs.report(f("b", Some("/w/y"), None)).await.is_some());
        assert_eq!(rx.recv().await.expect("broadcast").id, first.id);
        let lines = std::fs::read_to_string(&log).expect("log");
        let parsed: Vec<Finding> = lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON finding per line"))
            .collect();
        assert_eq!(
            parsed.iter().map(|f| f.check.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(store.suppressions().await.expect("list")[0].hits, 1);
        assert_eq!(fs.stats.repeats.load(Ordering::Relaxed), 1);
        assert_eq!(fs.stats.suppressed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_findings_log_rotates_at_its_bound_and_keeps_so_many_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let mut log = JsonlLog::new(path.clone(), 100, 2);
        log.open().expect("open");
        let line = |i: u32| format!("{{\"n\":{i:0>30}}}\n");
        for i in 0..10 {
            log.append(line(i).as_bytes()).expect("append");
        }
        // 10 lines of 37 bytes, two per 100-byte file: the newest two files and the
        // current one are kept.
        let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("read");
        assert_eq!(read(&path), format!("{}{}", line(8), line(9)));
        assert_eq!(read(&log.rotated(1)), format!("{}{}", line(6), line(7)));
        assert_eq!(read(&log.rotated(2)), format!("{}{}", line(4), line(5)));
        assert!(!log.rotated(3).exists(), "only `keep` rotated files");
        for p in [&path, &log.rotated(1)] {
            assert!(std::fs::metadata(p).expect("meta").len() <= 100);
        }
        // A reopened log goes on from the current size.
        let mut again = JsonlLog::new(path.clone(), 100, 2);
        again.open().expect("open");
        again.append(line(10).as_bytes()).expect("append");
        assert_eq!(
            read(&path),
            format!("{}{}", line(10), ""),
            "rotated first: 74 + 37 > 100"
        );
        assert_eq!(read(&again.rotated(1)), format!("{}{}", line(8), line(9)));
    }
}
