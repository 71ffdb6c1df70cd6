// SPDX-License-Identifier: GPL-2.0-only
//! Log watchers: follow log files (inotify on their directories), parse each line
//! with its source's grammar, feed failures into leaky-bucket scenarios per source
//! IP, and hand overflows to the [`Responder`](crate::respond::Responder).
//!
//! Sources so far: OpenSSH (`logs.sshd`). Offsets are saved in the store every few
//! seconds and at shutdown, so a restart neither re-reads nor skips lines.

pub mod bucket;
pub mod sshd;
pub mod tail;

use std::{
    collections::HashMap,
    ffi::OsString,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd, RawFd},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::{io::unix::AsyncFd, sync::watch};

use crate::{
    config::Logs,
    respond::{Responder, Trigger},
    store::Store,
};
use bucket::{Buckets, Outcome, Spec};
use tail::{Start, Tailer};

const SAVE_EVERY: Duration = Duration::from_secs(5);
/// User names remembered per source IP for a finding, at most.
const USERS_PER_IP: usize = 20;

#[derive(Debug, Default)]
pub struct LogStats {
    pub lines: AtomicU64,
    pub parsed: AtomicU64,
    /// Lines of the right program that are not authentication events.
    pub ignored: AtomicU64,
    /// Lines that are not syslog lines at all (counted, never fatal).
    pub malformed: AtomicU64,
    pub failures: AtomicU64,
    pub triggers: AtomicU64,
}

impl LogStats {
    pub fn json(&self) -> serde_json::Value {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "lines": l(&self.lines),
            "parsed": l(&self.parsed),
            "ignored": l(&self.ignored),
            "malformed": l(&self.malformed),
            "failures": l(&self.failures),
            "triggers": l(&self.triggers),
        })
    }
}

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

struct Followed {
    tailer: Tailer,
    dir: WatchDescriptor,
    name: OsString,
}

fn setting_key(p: &std::path::Path) -> String {
    format!("logs.offset.{}", p.display())
}

/// The SSH brute-force scenario over parsed sshd events.
pub struct SshScenario {
    buckets: Buckets<IpAddr>,
    users: HashMap<IpAddr, Vec<String>>,
    /// Failures seen since the last [`SshScenario::take_failures`]: (ip, user), for
    /// the threat database.
    failures: Vec<(IpAddr, String)>,
}

impl SshScenario {
    pub fn new(spec: Spec, max_keys: usize) -> Self {
        Self {
            buckets: Buckets::new(spec, max_keys),
            users: HashMap::new(),
            failures: Vec::new(),
        }
    }

    pub fn take_failures(&mut self) -> Vec<(IpAddr, String)> {
        std::mem::take(&mut self.failures)
    }

    /// One log line; returns a trigger when it overflows its source's bucket.
    pub fn line(&mut self, line: &str, stats: &LogStats, now: Instant) -> Option<Trigger> {
        stats.lines.fetch_add(1, Ordering::Relaxed);
        let ev = match sshd::parse_line(line) {
            Ok(ev) => ev,
            Err(sshd::ParseError::Framing(_)) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(sshd::ParseError::NotAuth) => {
                stats.ignored.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        stats.parsed.fetch_add(1, Ordering::Relaxed);
        if !ev.is_failure() {
            return None;
        }
        stats.failures.fetch_add(1, Ordering::Relaxed);
        let ip = ev.ip();
        if self.failures.len() < 100_000 {
            self.failures
                .push((ip, ev.user().unwrap_or("").chars().take(64).collect()));
        }
        if self.users.len() >= self.buckets.spec().capacity as usize * 10_000 {
            self.users.clear();
        }
        let users = self.users.entry(ip).or_default();
        if let Some(u) = ev.user() {
            if users.len() < USERS_PER_IP && !users.iter().any(|x| x == u) {
                users.push(u.chars().take(64).collect());
            }
        }
        match self.buckets.add(ip, now) {
            Outcome::Overflow(n) => {
                stats.triggers.fetch_add(1, Ordering::Relaxed);
                let spec = self.buckets.spec();
                Some(Trigger {
                    check: "ssh_bruteforce",
                    ip,
                    events: n,
                    summary: format!(
                        "{n} failed SSH logins (bucket of {} leaking one per {} s)",
                        spec.capacity,
                        spec.leak.as_secs()
                    ),
                    sample: line.chars().take(300).collect(),
                    users: self.users.remove(&ip).unwrap_or_default(),
                })
            }
            Outcome::Filling(_) | Outcome::Blackholed => None,
        }
    }
}

fn ssh_spec(cfg: &Logs) -> Spec {
    let s = cfg.ssh_bruteforce;
    Spec {
        capacity: s.capacity,
        leak: Duration::from_secs(s.leak_secs),
        blackhole: Duration::from_secs(s.blackhole_secs),
    }
}

/// `rampart replay`: run historical sshd logs through the same parser and scenario,
/// at the pace of their own timestamps, and return what would have triggered.
pub fn replay(
    files: &[PathBuf],
    cfg: &Logs,
) -> std::io::Result<(Vec<(Trigger, String)>, LogStats)> {
    use std::io::BufRead;
    let mut sc = SshScenario::new(ssh_spec(cfg), cfg.max_keys);
    let stats = LogStats::default();
    let base = Instant::now();
    let (mut first, mut last) = (None::<f64>, 0.0f64);
    let mut out = Vec::new();
    for f in files {
        let reader = std::io::BufReader::new(std::fs::File::open(f)?);
        for line in reader.split(b'\n') {
            let line = line?;
            let line =
                String::from_utf8_lossy(&line[..line.len().min(tail::MAX_LINE)]).into_owned();
            // The line's own time; lines without one (or going back) keep the last.
            if let Some(t) = sshd::syslog(&line).ok().and_then(|s| s.seconds()) {
                let f0 = *first.get_or_insert(t);
                last = last.max(t - f0);
            }
            let now = base + Duration::from_secs_f64(last.max(0.0));
            if let Some(t) = sc.line(&line, &stats, now) {
                let ts = sshd::syslog(&line)
                    .map(|s| s.timestamp.to_string())
                    .unwrap_or_default();
                out.push((t, ts));
            }
        }
    }
    Ok((out, stats))
}

/// Follow `cfg.sshd` until shutdown.
pub async fn run(
    cfg: Logs,
    store: Store,
    responder: Arc<Responder>,
    stats: Arc<LogStats>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let inotify =
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).context("inotify_init")?;
    let mask = AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE;
    let mut followed = Vec::new();
    for path in &cfg.sshd {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let wd = match inotify.add_watch(dir, mask) {
            Ok(wd) => wd,
            Err(e) => {
                tracing::info!(path = %path.display(), error = %e, "Log directory not watchable; source skipped.");
                continue;
            }
        };
        let start = match store.setting(&setting_key(path)).await {
            Ok(Some(v)) => v
                .split_once(':')
                .and_then(|(i, o)| {
                    Some(Start::Saved {
                        ino: i.parse().ok()?,
                        offset: o.parse().ok()?,
                    })
                })
                .unwrap_or(Start::End),
            _ => Start::End,
        };
        tracing::info!(path = %path.display(), ?start, "Following log.");
        followed.push(Followed {
            tailer: Tailer::new(path.clone(), start),
            dir: wd,
            name: name.to_os_string(),
        });
    }
    if followed.is_empty() {
        tracing::info!("No log sources to follow.");
        let _ = shutdown.changed().await;
        return Ok(());
    }
    let mut scenario = SshScenario::new(ssh_spec(&cfg), cfg.max_keys);
    // SAFETY: the Inotify owns its fd, which stays open and unchanged until the
    // AsyncFd (which owns the Inotify) is dropped.
    let afd = unsafe {
        AsyncFd::register_with_interest(InotifyFd(inotify), tokio::io::Interest::READABLE)
    }
    .map_err(std::io::Error::from)
    .context("registering inotify with tokio")?;
    let mut saved: HashMap<PathBuf, (u64, u64)> = HashMap::new();
    let mut save_tick = tokio::time::interval(SAVE_EVERY);
    let mut all = true; // first round: read whatever arrived before the watch
    loop {
        if all {
            for f in &mut followed {
                process(f, &mut scenario, &stats, &responder).await;
            }
            all = false;
        }
        tokio::select! {
            ready = afd.readable() => {
                let mut guard = ready.context("inotify readiness")?;
                let events = match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                    Ok(Ok(evs)) => evs,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Ok(Err(e)) => return Err(e).context("reading inotify events"),
                    Err(_would_block) => continue,
                };
                let mut touched = vec![false; followed.len()];
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        all = true;
                    }
                    for (i, f) in followed.iter().enumerate() {
                        if ev.wd == f.dir && ev.name.as_deref() == Some(f.name.as_os_str()) {
                            touched[i] = true;
                        }
                    }
                }
                for (i, f) in followed.iter_mut().enumerate() {
                    if touched[i] {
                        process(f, &mut scenario, &stats, &responder).await;
                    }
                }
            }
            _ = save_tick.tick() => save(&store, &followed, &mut saved).await,
            _ = shutdown.changed() => {
                save(&store, &followed, &mut saved).await;
                return Ok(());
            }
        }
    }
}

async fn process(f: &mut Followed, sc: &mut SshScenario, stats: &LogStats, responder: &Responder) {
    loop {
        let mut lines = Vec::new();
        f.tailer.poll(&mut lines);
        if lines.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut triggers = Vec::new();
        for line in &lines {
            if let Some(t) = sc.line(line, stats, now) {
                triggers.push(t);
            }
        }
        // The batch's failures go to the threat database in one transaction, before
        // the triggers they caused.
        let events = sc
            .take_failures()
            .into_iter()
            .map(|(ip, user)| {
                (
                    ip.to_string(),
                    "sshd",
                    "auth_failure",
                    format!("user {user}"),
                )
            })
            .collect();
        if let Err(e) = responder.store().add_threat_events(events).await {
            tracing::warn!(error = %e, "Recording threat events failed.");
        }
        for t in triggers {
            responder.trigger(t).await;
        }
    }
}

async fn save(store: &Store, followed: &[Followed], saved: &mut HashMap<PathBuf, (u64, u64)>) {
    let mut kv = Vec::new();
    for f in followed {
        let pos = f.tailer.position();
        if pos.0 != 0 && saved.get(f.tailer.path()) != Some(&pos) {
            saved.insert(f.tailer.path().to_path_buf(), pos);
            kv.push((
                setting_key(f.tailer.path()),
                Some(format!("{}:{}", pos.0, pos.1)),
            ));
        }
    }
    if !kv.is_empty() {
        if let Err(e) = store.set_settings(kv).await {
            tracing::warn!(error = %e, "Saving log offsets failed.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_failures_from_one_ip_trigger_once_with_the_users_tried() {
        let stats = LogStats::default();
        let mut sc = SshScenario::new(
            Spec {
                capacity: 5,
                leak: Duration::from_secs(10),
                blackhole: Duration::from_secs(60),
            },
            1000,
        );
        let t0 = Instant::now();
        let line = |u: &str, ip: &str| {
            format!("Nov 23 15:00:01 web1 sshd[9]: Failed password for invalid user {u} from {ip} port 4242 ssh2")
        };
        for u in ["a", "b", "c", "d", "e"] {
            assert!(sc.line(&line(u, "198.51.100.2"), &stats, t0).is_none());
        }
        assert!(
            sc.line(&line("x", "203.0.113.9"), &stats, t0).is_none(),
            "another source"
        );
        let t = sc
            .line(&line("f", "198.51.100.2"), &stats, t0)
            .expect("sixth overflows");
        assert_eq!(t.ip.to_string(), "198.51.100.2");
        assert_eq!(t.users, ["a", "b", "c", "d", "e", "f"]);
        assert!(
            sc.line(&line("g", "198.51.100.2"), &stats, t0).is_none(),
            "black-holed"
        );
        sc.line("not syslog", &stats, t0);
        sc.line(
            "Nov 23 15:00:01 web1 sshd[9]: Server listening on :: port 22.",
            &stats,
            t0,
        );
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
        assert_eq!(stats.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failures.load(Ordering::Relaxed), 8);
        assert_eq!(stats.triggers.load(Ordering::Relaxed), 1);
    }
}
