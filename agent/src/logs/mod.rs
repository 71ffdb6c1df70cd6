// SPDX-License-Identifier: GPL-2.0-only
//! Log watchers: follow log files (inotify on their directories), parse each line
//! with its source's grammar, feed the events into leaky-bucket scenarios per source
//! IP and per account, hand overflows to the [`Responder`](respond::Responder) (findings, XDP blocks),
//! and keep what the API reports on (threat, ModSecurity and mail events) in the store.
//!
//! Sources: OpenSSH, exim, dovecot, pure-ftpd/proftpd, cPanel/WHM, Apache/nginx
//! access logs and ModSecurity (see [`Source`]). Offsets are saved in the store every
//! few seconds and at shutdown, so a restart neither re-reads nor skips lines.

pub mod access;
pub mod bucket;
pub mod cpanel;
pub mod crawlers;
pub mod dns;
pub mod dovecot;
pub mod event;
pub mod exim;
pub mod ftp;
pub mod fuzz;
pub mod grammar;
pub mod journal;
pub mod mail;
pub mod modsec;
pub mod modsec_rules;
#[cfg(test)]
mod recall;
pub mod respond;
pub mod scenario;
pub mod sshd;
pub mod stats;
pub mod syslog;
pub mod tail;

use std::{
    collections::HashMap,
    ffi::OsString,
    os::fd::{AsFd, AsRawFd, RawFd},
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::{io::unix::AsyncFd, sync::watch};

pub use event::{Event, Parser, Source};
pub use grammar::ParseError;
pub use scenario::{Outputs, Scenarios};
pub use stats::LogStats;

use crate::{
    config::{Config, Logs},
    findings::Findings,
    firewall::Firewall,
    store::Store,
    supervisor::Supervisor,
};
use respond::Responder;
use tail::{Start, Tailer};

const SAVE_EVERY: Duration = Duration::from_secs(5);

/// An inotify instance tokio can wait on (shared with the mail AV's spool watch).
pub(crate) struct InotifyFd(pub Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

struct Followed {
    source: Source,
    parser: Parser,
    tailer: Tailer,
    dir: WatchDescriptor,
    name: OsString,
    /// `tailer.stats.untrusted` already added to the pipeline's counter.
    untrusted_counted: u64,
}

fn setting_key(source: Source, p: &std::path::Path) -> String {
    format!("logs.offset.{}.{}", source.name(), p.display())
}

/// One would-be action of a replay.
pub struct Replayed {
    /// The line's own timestamp text, as far as the source has one.
    pub at: String,
    pub outputs: Outputs,
}

/// `rampart replay`: run historical logs of one source through the same parser and
/// scenarios, at the pace of their own timestamps, and return what would have
/// triggered (blocks and account findings), in order.
pub fn replay(
    source: Source,
    files: &[PathBuf],
    cfg: &Logs,
) -> std::io::Result<(Vec<Replayed>, LogStats)> {
    use std::io::BufRead;
    let mut sc = Scenarios::new(cfg);
    let mut parser = Parser::for_logs(source, cfg);
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
            if let Some(t) = parser.seconds(&line) {
                let f0 = *first.get_or_insert(t);
                last = last.max(t - f0);
            }
            let now = base + Duration::from_secs_f64(last.max(0.0));
            let Some(ev) = stats.parse(&mut parser, &line) else {
                continue;
            };
            let mut o = Outputs::default();
            sc.event(source, ev, &line, &stats, now, &mut o);
            if !o.triggers.is_empty() || !o.alerts.is_empty() {
                let at = parser.timestamp(&line).unwrap_or("").to_string();
                out.push(Replayed {
                    at,
                    outputs: Outputs {
                        triggers: o.triggers,
                        alerts: o.alerts,
                        ..Outputs::default()
                    },
                });
            }
        }
    }
    Ok((out, stats))
}

/// The running log watchers.
pub struct LogsHandle {
    pub responder: Arc<Responder>,
    pub stats: Arc<LogStats>,
    task: tokio::task::JoinHandle<()>,
    /// The crawler check, where access logs are followed.
    crawlers: Option<tokio::task::JoinHandle<()>>,
}

/// Start following every configured log; overflows go to the auto-responder, which
/// blocks through `firewall` and reports through `findings`.
pub fn start(
    cfg: &Config,
    store: Store,
    firewall: Arc<Firewall>,
    findings: Arc<Findings>,
    sup: &Supervisor,
    shutdown: watch::Receiver<bool>,
) -> LogsHandle {
    let responder = Arc::new(Responder::new(
        cfg.auto_response.clone(),
        firewall,
        findings,
    ));
    let stats = Arc::new(LogStats::default());
    // A restart reads on from the saved offsets and journal cursor (the ones a dying
    // run could save), with fresh scenario buckets.
    let crawlers = (!cfg.logs.access.is_empty()).then(|| {
        let resolver = dns::Resolver::new(
            &cfg.verified_bots.nameservers,
            std::time::Duration::from_secs(2),
        );
        let (store, rx) = (store.clone(), shutdown.clone());
        sup.spawn("logs", "crawler check", false, move || {
            crawlers::verify_loop(store.clone(), resolver.clone(), rx.clone())
        })
    });
    let task = sup.spawn("logs", "log watcher", true, {
        let (logs, responder, stats) = (cfg.logs.clone(), responder.clone(), stats.clone());
        move || {
            run(
                logs.clone(),
                store.clone(),
                responder.clone(),
                stats.clone(),
                shutdown.clone(),
            )
        }
    });
    LogsHandle {
        responder,
        stats,
        task,
        crawlers,
    }
}

impl LogsHandle {
    /// After shutdown fired: wait for the watcher to save its offsets and end.
    pub async fn stop(self) {
        let _ = self.task.await;
        if let Some(c) = self.crawlers {
            let _ = c.await;
        }
    }
}

/// Follow every configured log until shutdown.
pub async fn run(
    cfg: Logs,
    store: Store,
    responder: Arc<Responder>,
    stats: Arc<LogStats>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    match store.setting(modsec_rules::WAF_ESCALATION_KEY).await {
        Ok(Some(v)) => match serde_json::from_str(&v) {
            Ok(m) => responder.waf_escalation.replace(m),
            Err(e) => {
                tracing::error!(error = %e, "Stored ModSecurity escalation overrides are corrupt; none apply.")
            }
        },
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "Reading the ModSecurity escalation overrides failed.")
        }
    }
    let inotify =
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).context("inotify_init")?;
    let mask = AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE;
    let idents = cfg.journal_identifiers(journal::kept(&cfg.journald.directory));
    let from_journal: std::collections::HashSet<Source> = idents.values().copied().collect();
    // A journal source's files that a syslog daemon writes are its journal entries
    // again (and carry no writer): skipped. A daemon's own log file is still read.
    let syslog_files = if from_journal.is_empty() {
        Default::default()
    } else {
        tail::syslog_written(std::path::Path::new("/proc"))
    };
    let mut followed = Vec::new();
    for source in Source::ALL {
        for path in cfg.paths(source) {
            if from_journal.contains(&source) {
                let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                if syslog_files.contains(&real) {
                    tracing::info!(source = source.name(), path = %path.display(), "Written by the syslog daemon: read from the journal instead.");
                    continue;
                }
            }
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let wd = match inotify.add_watch(dir, mask) {
                Ok(wd) => wd,
                Err(e) => {
                    tracing::debug!(source = source.name(), path = %path.display(), error = %e, "Log directory not watchable; file skipped.");
                    continue;
                }
            };
            let start = match store.setting(&setting_key(source, path)).await {
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
            tracing::info!(source = source.name(), path = %path.display(), ?start, "Following log.");
            followed.push(Followed {
                source,
                parser: Parser::for_logs(source, &cfg),
                tailer: Tailer::new(path.clone(), start),
                dir: wd,
                name: name.to_os_string(),
                untrusted_counted: 0,
            });
        }
    }
    let mut journal = None;
    let mut jcursor: Option<String> = None;
    if !idents.is_empty() {
        let saved = store.setting(journal::CURSOR_KEY).await.ok().flatten();
        match journal::Journal::spawn(&idents, &cfg.journald.directory, saved.as_deref()) {
            Ok(j) => {
                tracing::info!(identifiers = ?idents.keys().collect::<Vec<_>>(), resume = saved.is_some(), "Following the journal.");
                jcursor = saved;
                journal = Some(j);
            }
            Err(e) => {
                tracing::warn!(error = %e, "journalctl could not start; the journal is not read.")
            }
        }
    }
    // The cursor last written to the store (an unchanged one is not rewritten).
    let mut jsaved = jcursor.clone();
    let mut jparsers: HashMap<Source, Parser> = HashMap::new();
    if followed.is_empty() && journal.is_none() {
        tracing::info!("No log sources to follow.");
        let _ = shutdown.changed().await;
        return Ok(());
    }
    let mut scenario = Scenarios::new(&cfg).with_escalation(responder.waf_escalation.clone());
    // SAFETY: the Inotify owns its fd, which stays open and unchanged until the
    // AsyncFd (which owns the Inotify) is dropped.
    let afd = unsafe {
        AsyncFd::register_with_interest(InotifyFd(inotify), tokio::io::Interest::READABLE)
    }
    .map_err(std::io::Error::from)
    .context("registering inotify with tokio")?;
    let mut saved: HashMap<String, (u64, u64)> = HashMap::new();
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
            line = async {
                match journal.as_mut() {
                    Some(j) => j.next_line().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(first) = line else {
                    // The run ends as failed: the supervisor starts it again, and the
                    // journal is read on from the cursor saved here.
                    save(&store, &followed, &mut saved).await;
                    save_cursor(&store, jcursor.as_deref(), &mut jsaved).await;
                    let status = match journal.take() {
                        Some(j) => j.exit_status().await,
                        None => "gone".into(),
                    };
                    anyhow::bail!("journalctl ended ({status}); the journal is not read until the log watcher restarts");
                };
                // What is already buffered joins the batch (one store transaction).
                let mut batch = vec![first];
                while batch.len() < 1000 {
                    let Some(j) = journal.as_mut() else { break };
                    match tokio::time::timeout(Duration::ZERO, j.next_line()).await {
                        Ok(Some(l)) => batch.push(l),
                        _ => break,
                    }
                }
                let mut by_source: Vec<(Source, Vec<String>)> = Vec::new();
                for json in &batch {
                    match journal::entry(json, &idents) {
                        Ok(Some((source, line, cursor))) => {
                            if cursor.is_some() {
                                jcursor = cursor;
                            }
                            match by_source.last_mut() {
                                Some((s, lines)) if *s == source => lines.push(line),
                                _ => by_source.push((source, vec![line])),
                            }
                        }
                        Ok(None) => {}
                        Err(journal::Skip::Malformed(why)) => {
                            stats.lines.fetch_add(1, Ordering::Relaxed);
                            stats.malformed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(why, "Unreadable journal entry.");
                        }
                        Err(journal::Skip::Untrusted(why)) => {
                            stats.lines.fetch_add(1, Ordering::Relaxed);
                            stats.untrusted.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(why, "Journal entry not written by its daemon; ignored.");
                        }
                    }
                }
                for (source, lines) in by_source {
                    let parser = jparsers.entry(source).or_insert_with(|| Parser::for_logs(source, &cfg));
                    feed(source, parser, &lines, &mut scenario, &stats, &responder).await;
                }
            }
            _ = save_tick.tick() => {
                save(&store, &followed, &mut saved).await;
                save_cursor(&store, jcursor.as_deref(), &mut jsaved).await;
            }
            _ = shutdown.changed() => {
                save(&store, &followed, &mut saved).await;
                save_cursor(&store, jcursor.as_deref(), &mut jsaved).await;
                if let Some(j) = journal.take() {
                    j.stop().await;
                }
                return Ok(());
            }
        }
    }
}

async fn process(f: &mut Followed, sc: &mut Scenarios, stats: &LogStats, responder: &Responder) {
    loop {
        let mut lines = Vec::new();
        f.tailer.poll(&mut lines);
        let refused = f.tailer.stats.untrusted;
        if refused > f.untrusted_counted {
            stats
                .untrusted
                .fetch_add(refused - f.untrusted_counted, Ordering::Relaxed);
            f.untrusted_counted = refused;
        }
        if lines.is_empty() {
            return;
        }
        feed(f.source, &mut f.parser, &lines, sc, stats, responder).await;
    }
}

/// Lines of one source: parse, run the scenarios, store the batch, act on triggers.
async fn feed(
    source: Source,
    parser: &mut Parser,
    lines: &[String],
    sc: &mut Scenarios,
    stats: &LogStats,
    responder: &Responder,
) {
    let now = Instant::now();
    let mut out = Outputs::default();
    for line in lines {
        // A grammar bug must cost one line, not the watcher: the line counts as
        // malformed and the source's parser starts afresh.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(ev) = stats.parse(parser, line) {
                sc.event(source, ev, line, stats, now, &mut out);
            }
        }));
        if step.is_err() {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(source = source.name(), line = %grammar::bounded(line, 200), "Log parser panicked on a line; skipped it.");
            *parser = parser.fresh();
        }
    }
    // The batch's events go to the store in one transaction, before the triggers
    // they caused.
    let Outputs {
        triggers,
        alerts,
        threat,
        waf,
        mail,
        bots,
    } = out;
    if let Err(e) = responder.store().add_log_batch(threat, waf, mail).await {
        tracing::warn!(source = source.name(), error = %e, "Recording log events failed.");
    }
    if let Err(e) = responder.store().record_bot_claims(bots).await {
        tracing::warn!(source = source.name(), error = %e, "Recording crawler claims failed.");
    }
    for t in triggers {
        responder.trigger(t).await;
    }
    for a in alerts {
        responder.alert(a).await;
    }
}

async fn save_cursor(store: &Store, cursor: Option<&str>, saved: &mut Option<String>) {
    let Some(c) = cursor else { return };
    if saved.as_deref() == Some(c) {
        return;
    }
    match store
        .set_settings(vec![(journal::CURSOR_KEY.to_string(), Some(c.to_string()))])
        .await
    {
        Ok(()) => *saved = Some(c.to_string()),
        Err(e) => tracing::warn!(error = %e, "Saving the journal cursor failed."),
    }
}

async fn save(store: &Store, followed: &[Followed], saved: &mut HashMap<String, (u64, u64)>) {
    let mut kv = Vec::new();
    for f in followed {
        let pos = f.tailer.position();
        let key = setting_key(f.source, f.tailer.path());
        if pos.0 != 0 && saved.get(&key) != Some(&pos) {
            saved.insert(key.clone(), pos);
            kv.push((key, Some(format!("{}:{}", pos.0, pos.1))));
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
    fn six_ssh_failures_from_one_ip_trigger_once_and_stats_count_every_line() {
        let cfg = crate::config::Config::embedded().expect("config").logs;
        let stats = LogStats::default();
        let mut sc = Scenarios::new(&cfg);
        let mut p = Parser::new(Source::Sshd);
        let t0 = Instant::now();
        let line = |u: &str, ip: &str| {
            format!("Nov 23 15:00:01 web1 sshd[9]: Failed password for invalid user {u} from {ip} port 4242 ssh2")
        };
        let mut feed = |l: &str| {
            let mut out = Outputs::default();
            if let Some(ev) = stats.parse(&mut p, l) {
                sc.event(Source::Sshd, ev, l, &stats, t0, &mut out);
            }
            out.triggers
        };
        for u in ["a", "b", "c", "d", "e"] {
            assert!(feed(&line(u, "198.51.100.2")).is_empty());
        }
        assert!(feed(&line("x", "203.0.113.9")).is_empty(), "another source");
        let t = feed(&line("f", "198.51.100.2"));
        assert_eq!(t.len(), 1, "sixth overflows");
        assert_eq!(t[0].ip.to_string(), "198.51.100.2");
        assert_eq!(t[0].users, ["a", "b", "c", "d", "e", "f"]);
        assert!(feed(&line("g", "198.51.100.2")).is_empty(), "black-holed");
        feed("not syslog");
        feed("Nov 23 15:00:01 web1 sshd[9]: Server listening on :: port 22.");
        assert_eq!(stats.lines.load(Ordering::Relaxed), 10);
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
        assert_eq!(stats.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failures.load(Ordering::Relaxed), 8);
        assert_eq!(stats.triggers.load(Ordering::Relaxed), 1);
        assert_eq!(stats.view().lines_by_source["sshd"], 10);
    }
}
