// SPDX-License-Identifier: GPL-2.0-only
//! Behaviour checks that join exec events with file events:
//! - `web_shell_spawn`: a web-server user runs a shell (or netcat/socat), other than
//!   the `sh -c sendmail ...` that PHP's mail() runs;
//! - `dropped_and_executed`: a file written in a watched tree is executed from a
//!   world-writable tree within the hour;
//! - `deleted_after_exec`: an executed file is deleted while its process still runs
//!   (droppers that clean up after themselves).
//!
//! The joins are symmetric (an exec and its file event can arrive in either order:
//! they travel through different queues) and bounded (oldest entries go first).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use api::model::Severity;

use crate::{
    sensors::{Exec, FileActivity, FileOp},
    store::NewFinding,
};

pub const CHECK_WEB_SHELL: &str = "web_shell_spawn";
pub const CHECK_DROPPED: &str = "dropped_and_executed";
pub const CHECK_DELETED: &str = "deleted_after_exec";

/// Entries each join keeps.
const MAX_ENTRIES: usize = 8192;
const WRITE_WINDOW: Duration = Duration::from_secs(3600);
const EXEC_WINDOW: Duration = Duration::from_secs(600);
/// An unlink processed before its exec: the two crossed queues. Real reorderings are
/// sub-second; a stale unlink must not join a later exec of a new file.
const REORDER_WINDOW: Duration = Duration::from_secs(30);

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "ash", "busybox", "nc", "ncat",
    "netcat", "socat",
];

#[derive(Clone, Debug)]
struct Writer {
    at: Instant,
    pid: u32,
    uid: u32,
    comm: String,
}

/// A map that forgets its oldest entries beyond `MAX_ENTRIES`.
struct Recent<V> {
    map: HashMap<PathBuf, V>,
    order: VecDeque<PathBuf>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> Recent<V> {
    fn insert(&mut self, k: PathBuf, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        // Keys taken out stay in `order` until they come up; compact it before it
        // grows past twice the map's bound.
        if self.order.len() > 2 * MAX_ENTRIES {
            let map = &self.map;
            let mut seen = HashSet::new();
            self.order
                .retain(|k| map.contains_key(k) && seen.insert(k.clone()));
        }
        while self.map.len() > MAX_ENTRIES {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }
    fn get(&self, k: &Path) -> Option<&V> {
        self.map.get(k)
    }
    fn take(&mut self, k: &Path) -> Option<V> {
        // The order queue keeps a stale key; it is skipped when it comes up.
        self.map.remove(k)
    }
}

#[derive(Default)]
struct State {
    writes: Recent<Writer>,
    execs: Recent<(Instant, Exec)>,
    unlinks: Recent<Writer>,
}

pub struct Behaviour {
    web_uids: HashSet<u32>,
    /// `sh -c <command>` commands starting with one of these are not web shells.
    shell_allow: Vec<String>,
    state: Mutex<State>,
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Behaviour {
    pub fn new(web_uids: impl IntoIterator<Item = u32>, shell_allow: Vec<String>) -> Self {
        Self {
            web_uids: web_uids.into_iter().collect(),
            shell_allow,
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// An exec: web-user shells, and the joins with earlier file events.
    pub fn on_exec(&self, e: &Exec) -> Vec<NewFinding> {
        let mut out = Vec::new();
        let path = e.path.display().to_string();
        if self.web_uids.contains(&e.uid) && SHELLS.contains(&base(&path)) {
            // `sh -c CMD`: CMD is args[2]. PHP's mail() runs `sh -c "sendmail ..."`.
            let cmd = match e.args.iter().position(|a| a == "-c") {
                Some(i) => e.args.get(i + 1).cloned(),
                None => None,
            };
            let allowed = cmd.as_deref().is_some_and(|c| {
                let c = c.trim_start();
                self.shell_allow.iter().any(|a| c.starts_with(a.as_str()))
            });
            if !allowed {
                let interactive = cmd.is_none();
                out.push(NewFinding {
                    details: format!(
                        "argv {:?}; parent {}; {}",
                        e.args,
                        e.parent_label(),
                        if interactive {
                            "no -c command: an interactive or piped shell"
                        } else {
                            "command not in detection.web_shell_allow"
                        }
                    ),
                    path: Some(path.clone()),
                    pid: Some(e.tgid),
                    uid: Some(e.uid),
                    process: Some(e.comm.clone()),
                    key: Some(format!("{}|{}", e.uid, cmd.clone().unwrap_or_default())),
                    ..NewFinding::new(
                        CHECK_WEB_SHELL,
                        if interactive {
                            Severity::Critical
                        } else {
                            Severity::High
                        },
                        format!("Web-server user {} started {path}", e.uid),
                    )
                });
            }
        }
        let now = Instant::now();
        let (written, unlinked) = self.with(|s| {
            let w = s
                .writes
                .take(&e.path)
                .filter(|w| now.duration_since(w.at) <= WRITE_WINDOW);
            let u = s
                .unlinks
                .take(&e.path)
                .filter(|u| now.duration_since(u.at) <= REORDER_WINDOW && alive(e.tgid));
            s.execs.insert(e.path.clone(), (now, e.clone()));
            (w, u)
        });
        if let Some(w) = written.filter(|_| e.world_writable) {
            out.push(dropped(e, &w));
        }
        if let Some(u) = unlinked {
            out.push(deleted(e, &u));
        }
        out
    }

    /// A file event: remember writes; join unlinks with earlier execs.
    pub fn on_file(&self, act: &FileActivity) -> Vec<NewFinding> {
        let w = Writer {
            at: act.received_at,
            pid: act.tgid,
            uid: act.uid,
            comm: act.comm.clone(),
        };
        match act.op {
            FileOp::WriteClose | FileOp::Rename | FileOp::Chmod => {
                let late = self.with(|s| {
                    // A new file at a deleted path: the old unlink joins nothing.
                    s.unlinks.take(&act.path);
                    // File events pass a queue the exec path does not, so the exec of
                    // a file written just before may be handled first. The write's
                    // ring receipt time orders them: read off its ring before the
                    // exec was handled means written before it was run.
                    let ran = s
                        .execs
                        .get(&act.path)
                        .filter(|(at, e)| e.world_writable && act.received_at <= *at)
                        .map(|(_, e)| e.clone());
                    if ran.is_none() {
                        s.writes.insert(act.path.clone(), w.clone());
                    }
                    ran
                });
                match late {
                    Some(e) => vec![dropped(&e, &w)],
                    None => Vec::new(),
                }
            }
            FileOp::Unlink => {
                let exec = self.with(|s| {
                    s.writes.take(&act.path);
                    match s.execs.take(&act.path) {
                        Some((at, e)) if at.elapsed() <= EXEC_WINDOW => Some(e),
                        Some(_) => None,
                        None => {
                            s.unlinks.insert(act.path.clone(), w.clone());
                            None
                        }
                    }
                });
                match exec {
                    Some(e) if alive(e.tgid) => vec![deleted(&e, &w)],
                    _ => Vec::new(),
                }
            }
            FileOp::SensitiveRead => Vec::new(),
        }
    }
}

fn dropped(e: &Exec, w: &Writer) -> NewFinding {
    let path = e.path.display().to_string();
    NewFinding {
        details: format!(
            "written by {} (pid {}, uid {}) {}s before; run by {} (pid {}, uid {}), argv {:?}, parent {}",
            w.comm,
            w.pid,
            w.uid,
            w.at.elapsed().as_secs(),
            e.comm,
            e.tgid,
            e.uid,
            e.args,
            e.parent_label()
        ),
        path: Some(path.clone()),
        pid: Some(e.tgid),
        uid: Some(e.uid),
        process: Some(e.comm.clone()),
        ..NewFinding::new(
            CHECK_DROPPED,
            Severity::Critical,
            format!("File dropped into a world-writable tree and executed: {path}"),
        )
    }
}

fn deleted(e: &Exec, by: &Writer) -> NewFinding {
    let path = e.path.display().to_string();
    NewFinding {
        details: format!(
            "executed by pid {} ({}, uid {}), argv {:?}, parent {}; deleted by {} (pid {}) while it ran",
            e.tgid, e.comm, e.uid, e.args, e.parent_label(), by.comm, by.pid
        ),
        path: Some(path.clone()),
        pid: Some(e.tgid),
        uid: Some(e.uid),
        process: Some(e.comm.clone()),
        ..NewFinding::new(
            CHECK_DELETED,
            Severity::Critical,
            format!("Executed file deleted while its process runs: {path}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(path: &str, pid: u32, uid: u32, args: &[&str]) -> Exec {
        Exec {
            path: path.into(),
            pid,
            tgid: pid,
            uid,
            gid: uid,
            comm: base(path).into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            args_truncated: false,
            parent: Some(crate::sensors::Ancestor {
                tgid: 1,
                comm: "php-fpm".into(),
            }),
            grandparent: None,
            decision: agent_common::egress::Decision::Allowed,
            relative: false,
            world_writable: path.starts_with("/tmp/"),
            script: false,
            fileless: false,
            lsm: false,
        }
    }

    fn act(op: FileOp, path: &str, pid: u32) -> FileActivity {
        FileActivity::new(op, path.into(), pid, 33, "php-fpm".into())
    }

    fn checks(v: &[NewFinding]) -> Vec<&str> {
        v.iter().map(|f| f.check.as_str()).collect()
    }

    #[test]
    fn web_user_shells_except_sendmail() {
        let b = Behaviour::new([33], vec!["/usr/sbin/sendmail".into()]);
        let f = b.on_exec(&exec("/bin/sh", 10, 33, &["sh", "-c", "id; uname -a"]));
        assert_eq!(checks(&f), [CHECK_WEB_SHELL]);
        assert_eq!(f[0].severity, Severity::High);
        let f = b.on_exec(&exec("/usr/bin/bash", 11, 33, &["bash", "-i"]));
        assert_eq!(
            (checks(&f), f[0].severity),
            (vec![CHECK_WEB_SHELL], Severity::Critical)
        );
        assert!(b
            .on_exec(&exec(
                "/bin/sh",
                12,
                33,
                &["sh", "-c", "/usr/sbin/sendmail -t -i"]
            ))
            .is_empty());
        assert!(
            b.on_exec(&exec("/bin/sh", 13, 1000, &["sh"])).is_empty(),
            "not a web user"
        );
        assert!(b
            .on_exec(&exec("/usr/bin/convert", 14, 33, &["convert"]))
            .is_empty());
    }

    #[test]
    fn dropped_then_run_and_deleted_while_running_in_either_order() {
        let b = Behaviour::new([], vec![]);
        assert!(b.on_file(&act(FileOp::WriteClose, "/tmp/x", 5)).is_empty());
        let f = b.on_exec(&exec("/tmp/x", std::process::id(), 33, &["/tmp/x"]));
        assert_eq!(checks(&f), [CHECK_DROPPED]);
        assert!(f[0].details.contains("written by php-fpm (pid 5"));
        // Deleted while our (live) process runs it.
        let f = b.on_file(&act(FileOp::Unlink, "/tmp/x", std::process::id()));
        assert_eq!(checks(&f), [CHECK_DELETED]);
        // Unlink seen before the exec (queues reorder): the exec completes the join.
        assert!(b.on_file(&act(FileOp::Unlink, "/tmp/y", 77)).is_empty());
        let f = b.on_exec(&exec("/tmp/y", std::process::id(), 33, &["/tmp/y"]));
        assert_eq!(checks(&f), [CHECK_DELETED]);
        // A new file at a deleted path clears the stale unlink.
        b.on_file(&act(FileOp::Unlink, "/tmp/w", 77));
        b.on_file(&act(FileOp::WriteClose, "/tmp/w", 78));
        assert_eq!(
            checks(&b.on_exec(&exec("/tmp/w", std::process::id(), 33, &["/tmp/w"]))),
            [CHECK_DROPPED]
        );
        // The write read off its ring before the exec, but handled after it (the file
        // pipeline's queue): still written, then run.
        let early = act(FileOp::WriteClose, "/tmp/v", 79);
        assert!(b.on_exec(&exec("/tmp/v", 80, 33, &["/tmp/v"])).is_empty());
        assert_eq!(checks(&b.on_file(&early)), [CHECK_DROPPED]);
        // A write after the run is not a drop.
        assert!(b.on_exec(&exec("/tmp/u", 81, 33, &["/tmp/u"])).is_empty());
        assert!(b.on_file(&act(FileOp::WriteClose, "/tmp/u", 82)).is_empty());
        // Not world-writable: written then run is no finding.
        b.on_file(&act(FileOp::WriteClose, "/home/a/bin/tool", 5));
        assert!(b
            .on_exec(&exec("/home/a/bin/tool", 6, 1000, &["tool"]))
            .is_empty());
        // A process that is gone: its file being deleted is normal clean-up.
        b.on_exec(&exec("/tmp/z", u32::MAX - 1, 33, &["/tmp/z"]));
        assert!(b.on_file(&act(FileOp::Unlink, "/tmp/z", 1)).is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let b = Behaviour::new([], vec![]);
        for i in 0..(MAX_ENTRIES + 100) {
            b.on_file(&act(FileOp::WriteClose, &format!("/tmp/f{i}"), 1));
        }
        assert_eq!(b.with(|s| s.writes.map.len()), MAX_ENTRIES);
        assert!(b.with(|s| !s.writes.map.contains_key(Path::new("/tmp/f0"))));
    }
}
