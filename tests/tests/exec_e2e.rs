// SPDX-License-Identifier: GPL-2.0-only
//! The exec sensor's stop rule end to end, scoped to a test cgroup and a test
//! "world-writable" directory: in dry run a script there runs and is reported; when
//! enforcing it is killed before its first line runs (it would create a file);
//! outside the cgroup, or outside the tree, nothing is touched. Every exec backend:
//! BPF-LSM where it runs (the vmtest guests; execve fails with EPERM), the
//! sched_process_exec tracepoint (kill) and the fanotify fallback (deny).

use std::{
    os::unix::fs::PermissionsExt, os::unix::process::ExitStatusExt, path::Path, process::Command,
    time::Duration,
};

use integration_test::{harness::Harness, wait_for};

/// Run `script` through `sh -c 'exec SCRIPT'`, first joining `cgroup` when given.
fn run(cgroup: Option<&Path>, script: &Path) -> std::process::ExitStatus {
    sh_in_cgroup(cgroup, &format!("exec {}", script.display()))
}

/// Run `script` by a relative name, `cd DIR && exec ./NAME`, in `cgroup`.
fn run_relative(cgroup: &Path, script: &Path) -> std::process::ExitStatus {
    let (dir, name) = (
        script.parent().expect("dir"),
        script.file_name().expect("name"),
    );
    sh_in_cgroup(
        Some(cgroup),
        &format!("cd {} && exec ./{}", dir.display(), name.to_string_lossy()),
    )
}

fn sh_in_cgroup(cgroup: Option<&Path>, cmd: &str) -> std::process::ExitStatus {
    let join = cgroup
        .map(|c| format!("echo $$ > {}/cgroup.procs && ", c.display()))
        .unwrap_or_default();
    Command::new("sh")
        .arg("-c")
        .arg(format!("{join}{cmd}"))
        .status()
        .expect("sh")
}

/// A script in `dir` that sleeps `secs`, then creates `marker`.
fn slow_script(dir: &Path, name: &str, secs: &str, marker: &Path) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("#!/bin/sh\nsleep {secs}\ntouch {}\n", marker.display()),
    )
    .expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn exec_findings(h: &Harness) -> Vec<serde_json::Value> {
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    f.as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["check"] == "exec_world_writable")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// What every exec backend reports for a dry run of `script` run by this process
/// through `sh -c 'exec SCRIPT'`: decision, argv naming the script, the parent
/// (this test process, its pid and exe) and the world-writable flag.
fn assert_same_dry_run_finding(h: &Harness, script: &Path) {
    let f = exec_findings(h)
        .into_iter()
        .find(|f| f["path"] == script.display().to_string())
        .expect("finding");
    assert!(
        f["details"].as_str().is_some_and(|d| d.contains("dry_run")),
        "{f}"
    );
    assert_eq!(f["severity_label"], "high");
    // The interpreter's argv names the script, and the parent is this test process
    // (the `sh -c` that exec'd it was replaced).
    let d = f["details"].as_str().unwrap_or("");
    let argv = d
        .split_once("argv: ")
        .and_then(|(_, r)| r.split_once("; parent"))
        .map(|(a, _)| a)
        .unwrap_or_else(|| panic!("argv and parent in details: {d}"));
    assert!(
        argv.contains(&script.display().to_string()),
        "{d} {}",
        h.log()
    );
    assert!(
        d.contains(&format!("({}, exe ", std::process::id())),
        "parent pid and exe in: {d}"
    );
    assert!(d.contains("world_writable: true"), "{d}");
    // The same lineage, structured: this process first, then its own parent.
    assert_eq!(
        f["lineage"][0]["pid"],
        std::process::id(),
        "lineage starts at the parent: {f}"
    );
    let grandparent = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(") ")?.1.to_string();
            rest.split(' ').nth(1)?.parse::<u32>().ok()
        })
        .expect("our ppid");
    assert_eq!(
        f["lineage"][1]["pid"], grandparent,
        "then the grandparent: {f}"
    );
}

/// After an enforced exec of `script` (by the caller): it ran not a line, a denied
/// finding arrives, and nothing is stopped outside the tree (`safe`) or outside the
/// test cgroup.
fn assert_stopped_only_in_scope(h: &Harness, cg: &Path, script: &Path, safe: &Path, marker: &Path) {
    assert!(
        !marker.exists(),
        "the script must not have run a single line"
    );
    assert!(
        wait_for(Duration::from_secs(10), || exec_findings(h).iter().any(
            |f| f["details"].as_str().is_some_and(|d| d.contains("denied"))
        )),
        "no denied finding"
    );
    assert!(
        run(Some(cg), safe).success(),
        "a script outside the world-writable tree runs"
    );
    assert!(
        run(None, script).success(),
        "outside the test cgroup nothing is checked"
    );
    assert!(marker.exists());
}

fn metric(h: &Harness, prefix: &str) -> u64 {
    let (_, metrics) = h.get("/metrics", &h.admin.clone());
    metrics
        .as_str()
        .expect("metrics")
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in metrics"))
}

#[test]
fn exec_from_world_writable_dir_reported_then_killed_before_first_line() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let Some(cg) = integration_test::cgroup_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ww = dir.path().join("ww");
    std::fs::create_dir(&ww).expect("mkdir");
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let marker = dir.path().join("ran");
    let script = ww.join("dropper.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let safe = dir.path().join("safe.sh");
    std::fs::write(
        &safe,
        format!("#!/bin/sh\ntouch {}.safe\n", marker.display()),
    )
    .expect("script");
    std::fs::set_permissions(&safe, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: true\n  cgroup: {}\n  world_writable: [{}]\n  enforce: true\n  dry_run: true\n",
        cg.0.display(),
        ww.display()
    );
    let mut h = Harness::start_with(net, "", &top);

    // Dry run: the script runs and is reported with its path and decision.
    assert!(run(Some(&cg.0), &script).success());
    assert!(marker.exists(), "dry run must not stop the script");
    assert!(
        wait_for(Duration::from_secs(10), || exec_findings(&h)
            .iter()
            .any(|f| f["path"] == script.display().to_string())),
        "no exec_world_writable finding; log:\n{}",
        h.log()
    );
    assert_same_dry_run_finding(&h, &script);
    // A relative name (`cd ww && exec ./rel.sh`): the kernel follows the interpreter
    // to the file it opens and reports the script by its real path.
    let rel_marker = dir.path().join("rel-ran");
    let rel = slow_script(&ww, "rel.sh", "0.5", &rel_marker);
    assert!(run_relative(&cg.0, &rel).success());
    assert!(
        wait_for(Duration::from_secs(10), || exec_findings(&h).iter().any(
            |f| f["path"] == rel.display().to_string()
                && f["details"].as_str().is_some_and(|d| d.contains("dry_run"))
        )),
        "no finding for the relative exec; log:\n{}",
        h.log()
    );
    // Enforce: stopped before its first line; the file is never created. Where
    // BPF-LSM runs, bprm_check_security denies the exec (execve fails with EPERM,
    // the image never exists); elsewhere the exec tracepoint kills it with SIGKILL
    // once the image is loaded, before its first instruction.
    let cfg = std::fs::read_to_string(&h.config).expect("config");
    std::fs::write(&h.config, cfg.replace("dry_run: true", "dry_run: false")).expect("config");
    h.stop();
    h.restart();
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    let lsm = h.lsm_runs();
    assert_eq!(
        integration_test::sensor_backend(&health, "exec"),
        if lsm { "lsm" } else { "tracepoint" },
        "{health}"
    );
    let stopped = |st: std::process::ExitStatus, what: &str| {
        if lsm {
            assert!(!st.success(), "{what}: execve must fail: {st}");
            assert_eq!(st.signal(), None, "{what}: denied, not killed: {st}");
        } else {
            assert_eq!(st.signal(), Some(9), "{what}: killed by SIGKILL, got {st}");
        }
    };
    std::fs::remove_file(&marker).expect("rm marker");
    stopped(run(Some(&cg.0), &script), "the enforced exec");
    assert_stopped_only_in_scope(&h, &cg.0, &script, &safe, &marker);
    // Enforcing, a relative name is stopped in the kernel too: the LSM walks the
    // file it checks; the tracepoints follow the interpreter the `#!` line named to
    // the script it opens, which the kernel walks to its real path, so it is
    // stopped before it has read a line.
    let slow_marker = dir.path().join("slow-ran");
    let slow = slow_script(&ww, "slow.sh", "3", &slow_marker);
    stopped(run_relative(&cg.0, &slow), "the relative exec");
    assert!(!slow_marker.exists(), "stopped before its first line");
    let said = if lsm {
        "denied before the image existed: BPF-LSM"
    } else {
        "stopped before it read the script"
    };
    assert!(
        wait_for(Duration::from_secs(10), || exec_findings(&h).iter().any(
            |f| {
                f["path"] == slow.display().to_string()
                    && f["message"].as_str().is_some_and(|m| m.contains(said))
            }
        )),
        "no kernel finding ({said}) for the relative name: {:?}",
        exec_findings(&h)
    );
    let (killed, denied) = (
        metric(&h, "rampart_exec_total{outcome=\"killed\"} "),
        metric(&h, "rampart_exec_total{outcome=\"denied\"} "),
    );
    assert_eq!(
        (killed, denied),
        if lsm { (0, 2) } else { (2, 0) },
        "the enforced exec and the relative one, both in the kernel (killed, denied)"
    );
    h.stop();
}

/// The fanotify fallback (`sensors.exec_backend: fanotify`), on a tmpfs of the
/// test's own (the only filesystem marked): the same dry-run finding as the
/// tracepoint; the interpreter the script names, on the same filesystem, is followed
/// as part of the exec and not counted as one; enforcing, the exec is denied before
/// the new image exists (execve fails, no signal) and the script never runs.
#[test]
fn fanotify_exec_backend_reports_the_same_and_denies_before_the_image_exists() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let Some(cg) = integration_test::cgroup_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = dir.path().join("fs");
    std::fs::create_dir(&fs).expect("mkdir");
    let _mnt = integration_test::TmpfsMount::new(&fs, "64m").expect("tmpfs");
    let ww = fs.join("ww");
    std::fs::create_dir(&ww).expect("mkdir");
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    // The interpreter lives on the marked filesystem too, outside the tree.
    let bin = fs.join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let interp = bin.join("sh");
    std::fs::copy(std::fs::canonicalize("/bin/sh").expect("sh"), &interp).expect("cp sh");
    let marker = dir.path().join("ran");
    let script = ww.join("dropper.sh");
    // It lives long enough for its argv to be read (the fallback reads it from /proc).
    std::fs::write(
        &script,
        format!(
            "#!{}\ntouch {}\nsleep 0.2\n",
            interp.display(),
            marker.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let safe = fs.join("safe.sh");
    std::fs::write(
        &safe,
        format!("#!{}\ntouch {}.safe\n", interp.display(), marker.display()),
    )
    .expect("script");
    std::fs::set_permissions(&safe, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let top = format!(
        "egress:\n  enabled: false\nsensors:\n  exec_backend: fanotify\nexec:\n  enabled: true\n  cgroup: {}\n  world_writable: [{}]\n  fanotify_roots: [{}]\n  enforce: true\n  dry_run: true\n",
        cg.0.display(),
        ww.display(),
        fs.display()
    );
    let mut h = Harness::start_with(net, "", &top);
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    let exec = health["sensors"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sensor"] == "exec"))
        .cloned()
        .unwrap_or_else(|| panic!("exec sensor in {health}"));
    assert_eq!(exec["backend"], "fanotify", "{health}");
    assert!(
        exec["reason"]
            .as_str()
            .is_some_and(|r| r.contains("forced")),
        "{exec}"
    );
    let (_, caps) = h.get("/api/v1/capabilities", &h.read.clone());
    assert!(
        caps["capabilities"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == "sensors.exec.fanotify.v1")),
        "{caps}"
    );

    assert!(run(Some(&cg.0), &script).success());
    assert!(marker.exists(), "dry run must not stop the script");
    assert!(
        wait_for(Duration::from_secs(10), || exec_findings(&h)
            .iter()
            .any(|f| f["path"] == script.display().to_string())),
        "no exec_world_writable finding; log:\n{}",
        h.log()
    );
    assert_same_dry_run_finding(&h, &script);
    // One exec checked: the interpreter's open was part of it.
    assert_eq!(metric(&h, "rampart_exec_total{outcome=\"checked\"} "), 1);
    assert_eq!(metric(&h, "rampart_exec_total{outcome=\"violations\"} "), 1);

    let cfg = std::fs::read_to_string(&h.config).expect("config");
    std::fs::write(&h.config, cfg.replace("dry_run: true", "dry_run: false")).expect("config");
    h.stop();
    h.restart();
    std::fs::remove_file(&marker).expect("rm marker");
    let st = run(Some(&cg.0), &script);
    assert!(!st.success(), "the exec must fail: {st}");
    assert_eq!(st.signal(), None, "denied, not killed: {st}");
    assert_stopped_only_in_scope(&h, &cg.0, &script, &safe, &marker);
    assert_eq!(metric(&h, "rampart_exec_total{outcome=\"denied\"} "), 1);
    assert_eq!(
        metric(&h, "rampart_exec_total{outcome=\"checked\"} "),
        2,
        "the denied script and the safe one"
    );
    h.stop();
}
