// SPDX-License-Identifier: GPL-2.0-only
//! Behaviour checks that join exec events with file events:
//! - `web_shell_spawn`: a web-server user runs a shell (or netcat/socat), other than
//!   the `sh -c sendmail ...` that PHP's mail() runs;
//! - `dropped_and_executed`: a file written in a watched tree is executed from a
//!   world-writable tree within the hour;
//! - `deleted_after_exec`: an executed file is deleted while its process still runs
//!   (droppers that clean up after themselves): joined with the file sensor's unlink
//!   events, and found by [`Behaviour::sweep_running`] however it was deleted.
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
/// How often [`Behaviour::sweep_running`] runs.
pub const RUNNING_SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Descriptors of one interpreter looked through for its deleted script.
const MAX_FDS: usize = 4096;
/// The work of one [`Behaviour::sweep_running`]: the processes and the descriptors it
/// reads at most. Beyond that the next pass goes on where this one stopped, so a
/// customer who floods execs (each holding many descriptors) delays the check of
/// the rest by a few passes and cannot make one pass cost the agent more.
const SWEEP_PROCESSES: usize = 1024;
const SWEEP_FDS: usize = 32768;

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
    /// Where the next [`Behaviour::sweep_running`] starts in the recent execs, so a
    /// flood of them is covered over successive passes within the work bound.
    sweep_from: std::sync::atomic::AtomicUsize,
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
            sweep_from: std::sync::atomic::AtomicUsize::new(0),
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

impl Behaviour {
    /// The execs of the last ten minutes (`EXEC_WINDOW`, as for the unlink join) that
    /// `scope` keeps, whose process still runs a file that no name holds any more:
    /// `deleted_after_exec` however the file was removed. The file sensor reports an
    /// unlink by the name typed, so an unlink through a symlinked directory from
    /// outside the watched trees, an io_uring unlink whose completion the ring skips,
    /// or a rename over the file reached no join. What is checked is the kernel's own
    /// view: the image (`/proc/<pid>/exe`), or a script's open descriptor in its
    /// interpreter, names the exec'd path as deleted and the inode has no link left
    /// (so a file renamed away is not deleted, and a reused pid running something
    /// else is not this exec). A script its interpreter has closed (php, python read
    /// it whole) is out of reach here; its unlink event still joins. Blocking (reads
    /// of /proc): run it off the async workers.
    pub fn sweep_running(&self, scope: impl Fn(&Exec) -> bool) -> Vec<NewFinding> {
        use std::sync::atomic::Ordering;
        let now = Instant::now();
        let mut recent: Vec<(Instant, Exec)> = self.with(|s| {
            s.execs
                .map
                .values()
                .filter(|(at, e)| now.duration_since(*at) <= EXEC_WINDOW && !e.fileless && scope(e))
                .cloned()
                .collect()
        });
        // Oldest first, from where the last pass stopped (wrapping).
        recent.sort_by_key(|(at, _)| *at);
        let start = match recent.len() {
            0 => 0,
            n => self.sweep_from.load(Ordering::Relaxed) % n,
        };
        recent.rotate_left(start);
        let mut fds = SWEEP_FDS;
        let mut out = Vec::new();
        let mut checked = 0;
        for (at, e) in &recent {
            if checked == SWEEP_PROCESSES || fds == 0 {
                break;
            }
            checked += 1;
            let Some(how) = runs_deleted(e, &mut fds) else {
                continue;
            };
            // Still the same exec (not one taken by an unlink's join meanwhile, nor a
            // newer exec of the path): taken, so it is reported once.
            let ours = self.with(|s| match s.execs.get(&e.path) {
                Some((a, _)) if a == at => s.execs.take(&e.path).is_some(),
                _ => false,
            });
            if ours {
                out.push(deleted_unseen(e, how));
            }
        }
        if checked < recent.len() {
            tracing::debug!(
                checked,
                recent = recent.len(),
                "Running images: the rest is checked by the next passes."
            );
        }
        self.sweep_from
            .store(start.wrapping_add(checked), Ordering::Relaxed);
        out
    }
}

/// Where the process of `e` still holds the file it ran, now deleted: its image, or
/// (a script) the interpreter's open descriptor of it. None when it is gone, holds a
/// name, or the process no longer runs it.
/// `fds`: descriptors this pass may still read; spent here.
fn runs_deleted(e: &Exec, fds: &mut usize) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let proc = PathBuf::from(format!("/proc/{}", e.tgid));
    let mut wanted = e.path.clone().into_os_string();
    wanted.push(" (deleted)");
    // The link names the path as deleted, and the inode behind it (opened through
    // the link, so the one the process holds) has no name left.
    let deleted = |link: &Path| {
        std::fs::read_link(link).is_ok_and(|t| t.as_os_str() == wanted)
            && std::fs::metadata(link).is_ok_and(|m| m.nlink() == 0)
    };
    // An image is the process's exe; a script (also one run by its `#!` line, whose
    // exec may be reported as the image) is open in its interpreter.
    if deleted(&proc.join("exe")) {
        return Some("its image".to_string());
    }
    let dir = std::fs::read_dir(proc.join("fd")).ok()?;
    for fd in dir.flatten().take(MAX_FDS) {
        if *fds == 0 {
            return None;
        }
        *fds -= 1;
        if deleted(&fd.path()) {
            return Some(format!(
                "the script, open on descriptor {}",
                fd.file_name().to_string_lossy()
            ));
        }
    }
    None
}

fn deleted_unseen(e: &Exec, how: String) -> NewFinding {
    deleted_finding(
        e,
        &format!(
            "found deleted while it runs ({how} has no name left) by the check of running processes: no unlink of it was reported (removed through a name outside the watched trees, by io_uring, or replaced by a rename)"
        ),
    )
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
    deleted_finding(
        e,
        &format!("deleted by {} (pid {}) while it ran", by.comm, by.pid),
    )
}

/// `deleted_after_exec` for the exec `e`; `how` says how the deletion was seen.
fn deleted_finding(e: &Exec, how: &str) -> NewFinding {
    let path = e.path.display().to_string();
    NewFinding {
        details: format!(
            "executed by pid {} ({}, uid {}), argv {:?}, parent {}; {how}",
            e.tgid,
            e.comm,
            e.uid,
            e.args,
            e.parent_label()
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

    /// Kills its child on drop, also when an assertion fails.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A copy of sleep at `path`, running, and its exec (world-writable) as reported.
    fn running_copy(path: &Path, uid: u32) -> (Running, Exec) {
        std::fs::copy("/bin/sleep", path).unwrap();
        let run = Running(std::process::Command::new(path).arg("30").spawn().unwrap());
        let mut e = exec(path.to_str().unwrap(), run.0.id(), uid, &["copy", "30"]);
        e.world_writable = true;
        (run, e)
    }

    #[test]
    fn running_images_deleted_by_any_name_are_found_once() {
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let scope = |e: &Exec| e.world_writable;
        let b = Behaviour::new([], vec![]);
        // An image, deleted through a symlinked directory (a name no watched tree
        // holds): no unlink event, found by the check.
        let img = dir.join("dropper");
        let (_run, e) = running_copy(&img, 33);
        assert!(b.on_exec(&e).is_empty());
        assert!(b.sweep_running(scope).is_empty(), "still has its name");
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&dir, other.path().join("l")).unwrap();
        std::fs::remove_file(other.path().join("l/dropper")).unwrap();
        let f = b.sweep_running(scope);
        assert_eq!(checks(&f), [CHECK_DELETED]);
        assert!(
            f[0].details.contains("its image has no name left"),
            "{}",
            f[0].details
        );
        assert!(b.sweep_running(scope).is_empty(), "reported once");

        // Renamed away: it still has a name, so nothing. Replaced by a rename over it:
        // its inode has none.
        let img = dir.join("moved");
        let (_run2, e) = running_copy(&img, 33);
        b.on_exec(&e);
        std::fs::rename(&img, dir.join("elsewhere")).unwrap();
        assert!(b.sweep_running(scope).is_empty(), "renamed, not deleted");
        let img = dir.join("replaced");
        let (_run3, e) = running_copy(&img, 33);
        b.on_exec(&e);
        std::fs::write(dir.join("decoy"), b"x").unwrap();
        std::fs::rename(dir.join("decoy"), &img).unwrap();
        assert_eq!(checks(&b.sweep_running(scope)), [CHECK_DELETED]);

        // A script its shell holds open, deleted: found by the descriptor.
        let script = dir.join("x.sh");
        std::fs::write(&script, "sleep 30\necho done\n").unwrap();
        let run4 = Running(
            std::process::Command::new("/bin/sh")
                .arg(&script)
                .spawn()
                .unwrap(),
        );
        let mut e = exec(script.to_str().unwrap(), run4.0.id(), 33, &["sh", "x.sh"]);
        (e.world_writable, e.script) = (true, true);
        b.on_exec(&e);
        // Wait for the shell to open its script.
        let fd_open = || {
            std::fs::read_dir(format!("/proc/{}/fd", run4.0.id()))
                .unwrap()
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == script))
        };
        let t0 = Instant::now();
        while !fd_open() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(b.sweep_running(scope).is_empty());
        std::fs::remove_file(&script).unwrap();
        let f = b.sweep_running(scope);
        assert_eq!(checks(&f), [CHECK_DELETED]);
        assert!(
            f[0].details.contains("the script, open on descriptor"),
            "{}",
            f[0].details
        );

        // Out of scope (not world-writable, not watched): never looked at.
        let img = dir.join("tool");
        let (_run5, mut e) = running_copy(&img, 1000);
        e.world_writable = false;
        b.on_exec(&e);
        std::fs::remove_file(&img).unwrap();
        assert!(b.sweep_running(scope).is_empty());
        // Deleted after its process ended: normal clean-up (and its pid may be anyone's).
        let img = dir.join("ended");
        let (mut run6, e) = running_copy(&img, 33);
        b.on_exec(&e);
        run6.0.kill().unwrap();
        run6.0.wait().unwrap();
        std::fs::remove_file(&img).unwrap();
        assert!(b.sweep_running(scope).is_empty());
    }

    #[test]
    fn a_flood_of_execs_delays_the_check_by_passes_and_bounds_each() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let b = Behaviour::new([], vec![]);
        // 2,500 execs of processes that do not exist (each costs a failed read)...
        for i in 0..2500u32 {
            let mut f = exec(&format!("/tmp/flood/{i}"), u32::MAX - i, 33, &["x"]);
            f.world_writable = true;
            b.on_exec(&f);
        }
        // ... then a dropper that deletes itself: the newest, so the last looked at.
        let img = dir.join("dropper");
        let (_run, e) = running_copy(&img, 33);
        b.on_exec(&e);
        std::fs::remove_file(&img).unwrap();
        let mut found = Vec::new();
        let mut passes = 0;
        while found.is_empty() && passes < 5 {
            found = b.sweep_running(|e| e.world_writable);
            passes += 1;
            if passes == 1 {
                assert!(found.is_empty(), "one pass checks 1,024 of 2,501");
                assert_eq!(b.sweep_from.load(Ordering::Relaxed), SWEEP_PROCESSES);
            }
        }
        assert_eq!(checks(&found), [CHECK_DELETED]);
        assert_eq!(passes, 3, "2,501 execs take three passes of 1,024");
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
