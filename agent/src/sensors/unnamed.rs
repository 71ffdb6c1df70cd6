// SPDX-License-Identifier: GPL-2.0-only
//! Writes the kernel could not name. The file sensor builds a write session's path
//! by walking up from the opened file; a file deeper than the walk goes
//! (`MAX_WALK_DEPTH`) or with a path longer than an event holds arrives with only its
//! last components, its device and its inode. Such a file is never scanned by a
//! wrong name: it is looked up here by inode in the watched trees and scanned under
//! the name found.
//!
//! A customer can make such paths at will, so the lookup is bounded: pending
//! inodes are collected (at most [`PENDING_MAX`]; more are counted and left to the
//! sweep) and found together by one walk of the trees that reads directories only
//! (`d_ino`, no stat per file). Walks are at least [`MIN_GAP`] apart, and at least
//! [`GAP_FACTOR`] times the last walk's duration, so they cost at most about 5% of
//! a core however many such writes are made.

use std::{
    collections::HashMap,
    os::unix::fs::{DirEntryExt, MetadataExt},
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};

pub use super::event::Unnamed;
use super::event::{send_activity, FileMeta, PipelineStats, Sinks};

/// Inodes waiting for a walk; more are counted in `pipeline.unnamed_dropped`.
pub const PENDING_MAX: usize = 4096;
/// Least time between two walks ...
pub const MIN_GAP: Duration = Duration::from_secs(5);
/// ... and at least this many times the last walk's duration.
pub const GAP_FACTOR: u32 = 20;
/// Directory entries one walk reads at most (a bind-mount loop cannot spin it).
const ENTRIES_MAX: u64 = 10_000_000;

/// Collect unnamed writes and find them by inode in `roots`, until `shutdown`.
pub async fn run(
    rx: &mut mpsc::Receiver<Unnamed>,
    roots: Vec<PathBuf>,
    sinks: Sinks,
    stats: Arc<PipelineStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_walk = Instant::now();
    loop {
        let mut pending: HashMap<(u64, u64), Unnamed> = HashMap::new();
        tokio::select! {
            first = rx.recv() => match first {
                Some(u) => add(&mut pending, u, &stats),
                None => return,
            },
            _ = shutdown.changed() => return,
        }
        // Whatever else arrives before the walk may start goes into the same walk.
        let start = tokio::time::Instant::from_std(next_walk.max(Instant::now()));
        loop {
            tokio::select! {
                more = rx.recv() => match more {
                    Some(u) => add(&mut pending, u, &stats),
                    None => break,
                },
                _ = tokio::time::sleep_until(start) => break,
                _ = shutdown.changed() => return,
            }
        }
        let wanted: Vec<(u64, u64)> = pending.keys().copied().collect();
        let roots2 = roots.clone();
        let began = Instant::now();
        let found = tokio::task::spawn_blocking(move || find(&roots2, &wanted))
            .await
            .unwrap_or_default();
        let took = began.elapsed();
        next_walk = Instant::now() + MIN_GAP.max(took * GAP_FACTOR);
        for (key, u) in pending {
            match found.get(&key) {
                Some((path, meta)) => {
                    stats.unnamed_found.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(path = %path.display(), tail = %u.tail, ino = u.ino, pid = u.act.tgid, "A write the kernel could not name was found by its inode.");
                    let mut act = u.act;
                    act.meta = Some(*meta);
                    act.path = path.clone();
                    send_activity(&sinks, &stats, act);
                }
                None => {
                    stats.unnamed_not_found.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(tail = %u.tail, ino = u.ino, "A write the kernel could not name is not in a watched tree (or is gone).");
                }
            }
        }
        tracing::debug!(
            took_ms = took.as_millis() as u64,
            "Looked up unnamed writes by inode."
        );
    }
}

fn add(pending: &mut HashMap<(u64, u64), Unnamed>, u: Unnamed, stats: &PipelineStats) {
    if pending.len() >= PENDING_MAX && !pending.contains_key(&(u.dev, u.ino)) {
        stats.unnamed_dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // The latest write of an inode stands for the others.
    pending.insert((u.dev, u.ino), u);
}

/// Paths of the wanted (dev, inode) pairs under `roots`, with their metadata: one
/// walk reading directories only, each candidate confirmed by lstat (device and
/// inode).
pub fn find(roots: &[PathBuf], wanted: &[(u64, u64)]) -> HashMap<(u64, u64), (PathBuf, FileMeta)> {
    let mut by_ino: HashMap<u64, Vec<u64>> = HashMap::new();
    for (dev, ino) in wanted {
        by_ino.entry(*ino).or_default().push(*dev);
    }
    let mut out = HashMap::new();
    let mut budget = ENTRIES_MAX;
    for root in roots {
        let mut stack: Vec<PathBuf> = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if budget == 0 || out.len() == wanted.len() {
                    return out;
                }
                budget -= 1;
                let ino = e.ino();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if let Some(devs) = by_ino.get(&ino) {
                    confirm(&e.path(), ino, devs, &mut out);
                }
                if is_dir {
                    stack.push(e.path());
                }
            }
        }
    }
    out
}

fn confirm(
    path: &Path,
    ino: u64,
    devs: &[u64],
    out: &mut HashMap<(u64, u64), (PathBuf, FileMeta)>,
) {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    if m.ino() == ino && m.file_type().is_file() && devs.contains(&m.dev()) {
        out.entry((m.dev(), ino))
            .or_insert_with(|| (path.to_path_buf(), FileMeta::from(&m)));
    }
}

/// Route an unnamed write to the finder (a full queue is a counted drop).
pub fn submit(tx: &mpsc::Sender<Unnamed>, stats: &PipelineStats, u: Unnamed) {
    if tx.try_send(u).is_err() {
        stats.unnamed_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::event::{FileActivity, FileOp};

    #[test]
    fn a_deep_file_is_found_by_inode_and_nothing_else_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut deep = dir.path().to_path_buf();
        for i in 0..60 {
            deep.push(format!("level-{i:02}-{}", "d".repeat(20)));
        }
        std::fs::create_dir_all(&deep).expect("mkdir");
        let file = deep.join("shell.php");
        std::fs::write(&file, "x").expect("write");
        let m = std::fs::metadata(&file).expect("stat");
        let other = dir.path().join("other");
        std::fs::write(&other, "y").expect("write");
        let o = std::fs::metadata(&other).expect("stat");
        let roots = vec![dir.path().to_path_buf()];
        // Found under its real name; the wrong device for the same inode is not it.
        let found = find(&roots, &[(m.dev(), m.ino()), (m.dev() + 1, o.ino())]);
        assert_eq!(found.get(&(m.dev(), m.ino())).map(|f| &f.0), Some(&file));
        assert_eq!(found.len(), 1, "{found:?}");
        // Outside the roots: not found.
        let elsewhere = tempfile::tempdir().expect("tempdir");
        assert!(find(&[elsewhere.path().to_path_buf()], &[(m.dev(), m.ino())]).is_empty());
    }

    #[tokio::test]
    async fn pending_inodes_are_bounded_and_counted() {
        let stats = PipelineStats::default();
        let mut pending = HashMap::new();
        let act = FileActivity::new(FileOp::WriteClose, PathBuf::new(), 1, 1, String::new());
        for ino in 0..(PENDING_MAX as u64 + 10) {
            add(
                &mut pending,
                Unnamed::new(1, ino, String::new(), act.clone()),
                &stats,
            );
        }
        // The same inode again takes no new slot.
        add(&mut pending, Unnamed::new(1, 0, String::new(), act), &stats);
        assert_eq!(pending.len(), PENDING_MAX);
        assert_eq!(stats.unnamed_dropped.load(Ordering::Relaxed), 10);
    }
}
