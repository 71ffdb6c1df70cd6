// SPDX-License-Identifier: GPL-2.0-only
//! Behaviour checks end to end, through the real agent with the exec sensor scoped to
//! a test cgroup and the watched test directory as its world-writable tree:
//! - a web-server user (www-data) starting a shell is `web_shell_spawn`; PHP mail()'s
//!   `sh -c /usr/sbin/sendmail ...` is not;
//! - a script written there and then run is `dropped_and_executed`, naming the writer;
//! - a script that deletes itself while it runs is `deleted_after_exec`, also through
//!   a name outside every watched tree (found by the check of running processes).

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command, time::Duration};

use integration_test::{harness::Harness, wait_for};

/// Run `sh -c CMD` after joining `cgroup`.
fn in_cgroup(cgroup: &Path, cmd: &str) -> std::process::ExitStatus {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && {cmd}",
            cgroup.display()
        ))
        .status()
        .expect("sh")
}

fn findings(h: &Harness, check: &str) -> Vec<serde_json::Value> {
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    f.as_array()
        .map(|a| a.iter().filter(|x| x["check"] == check).cloned().collect())
        .unwrap_or_default()
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn web_shells_dropped_executables_and_self_deleting_droppers() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let Some(cg) = integration_test::cgroup_or_skip() else {
        return;
    };
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: true\n  cgroup: {}\n  world_writable: [@WWW@]\n  enforce: false\n  dry_run: true\n",
        cg.0.display()
    );
    let h = Harness::start_with(net, "", &top);
    std::fs::set_permissions(&h.www, std::fs::Permissions::from_mode(0o1777)).expect("chmod");

    // PHP mail() as www-data: not a finding. Then a real shell: a finding. Both go
    // through one ring and one queue in order, so once the second is seen the first
    // was already judged.
    let as_www = |cmd: &str| {
        in_cgroup(
            &cg.0,
            &format!("exec setpriv --reuid 33 --regid 33 --clear-groups /bin/sh -c '{cmd}'"),
        )
    };
    assert!(as_www("/usr/sbin/sendmail -t -i < /dev/null || true").success());
    assert!(as_www("id > /dev/null").success());
    assert!(
        wait_for(Duration::from_secs(10), || !findings(&h, "web_shell_spawn")
            .is_empty()),
        "no web_shell_spawn; log:\n{}",
        h.log()
    );
    let shells = findings(&h, "web_shell_spawn");
    assert_eq!(shells.len(), 1, "sendmail is allowed: {shells:?}");
    assert_eq!(shells[0]["uid"], 33);
    assert!(
        shells[0]["details"]
            .as_str()
            .is_some_and(|d| d.contains("id > /dev/null")),
        "{}",
        shells[0]
    );

    // Dropped into the world-writable tree by one process, run by another.
    let dropper = h.www.join("dropper.sh");
    script(&dropper, "true");
    assert!(in_cgroup(&cg.0, &format!("exec {}", dropper.display())).success());
    assert!(
        wait_for(Duration::from_secs(10), || !findings(
            &h,
            "dropped_and_executed"
        )
        .is_empty()),
        "no dropped_and_executed; log:\n{}",
        h.log()
    );
    let d = &findings(&h, "dropped_and_executed")[0];
    assert_eq!(d["path"], dropper.display().to_string());
    assert!(
        d["details"]
            .as_str()
            .is_some_and(|s| s.contains("written by")),
        "{d}"
    );

    // Deletes itself, then keeps running.
    let ghost = h.www.join("ghost.sh");
    script(&ghost, "rm -f \"$0\"\nsleep 3");
    assert!(in_cgroup(&cg.0, &format!("exec {}", ghost.display())).success());
    assert!(!ghost.exists());
    let found = wait_for(Duration::from_secs(10), || {
        findings(&h, "deleted_after_exec")
            .iter()
            .any(|f| f["path"] == ghost.display().to_string())
    });
    assert!(found, "no deleted_after_exec; log:\n{}", h.log());
    // The same through io_uring (IORING_OP_UNLINKAT), where users may make rings:
    // no syscall tracepoint sees that unlink; its submission and completion do.
    if integration_test::io_uring_open_to_users() {
        let ringed = h.www.join("ringed.sh");
        let uw = env!("CARGO_BIN_EXE_uring-write");
        script(&ringed, &format!("{uw} --unlink \"$0\"\nsleep 3"));
        assert!(in_cgroup(&cg.0, &format!("exec {}", ringed.display())).success());
        assert!(!ringed.exists());
        let found = wait_for(Duration::from_secs(10), || {
            findings(&h, "deleted_after_exec")
                .iter()
                .any(|f| f["path"] == ringed.display().to_string())
        });
        assert!(
            found,
            "no deleted_after_exec by io_uring; log:\n{}",
            h.log()
        );
    }
    // Deleted through a symlinked directory from outside every tree: the kernel
    // filters unlinks by the name typed, so no unlink event; the check of running
    // processes finds the script deleted under its shell.
    let outside = tempfile::tempdir().expect("tempdir");
    let link = outside.path().join("site");
    std::os::unix::fs::symlink(&h.www, &link).expect("symlink");
    let hidden = h.www.join("hidden.sh");
    script(
        &hidden,
        &format!("rm -f {}/hidden.sh\nsleep 15", link.display()),
    );
    // In the background: it must still run when the check comes.
    assert!(in_cgroup(&cg.0, &format!("{{ {} & }}", hidden.display())).success());
    assert!(wait_for(Duration::from_secs(10), || !hidden.exists()));
    let by_check = |f: &serde_json::Value| {
        f["path"] == hidden.display().to_string()
            && f["details"]
                .as_str()
                .is_some_and(|d| d.contains("check of running processes"))
    };
    let found = wait_for(Duration::from_secs(20), || {
        findings(&h, "deleted_after_exec").iter().any(by_check)
    });
    assert!(
        found,
        "no deleted_after_exec by the check of running processes: {:?}; log:\n{}",
        findings(&h, "deleted_after_exec"),
        h.log()
    );
    // A script that runs and exits, deleted afterwards: clean-up, not a finding.
    let tidy = h.www.join("tidy.sh");
    script(&tidy, "true");
    assert!(in_cgroup(&cg.0, &format!("exec {}", tidy.display())).success());
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(&tidy).expect("rm");
    // Settle: a later event through the same queues must be seen first.
    let marker = h.www.join("later.sh");
    script(&marker, "true");
    assert!(in_cgroup(&cg.0, &format!("exec {}", marker.display())).success());
    assert!(wait_for(Duration::from_secs(10), || {
        findings(&h, "dropped_and_executed")
            .iter()
            .any(|f| f["path"] == marker.display().to_string())
    }));
    assert!(
        !findings(&h, "deleted_after_exec")
            .iter()
            .any(|f| f["path"] == tidy.display().to_string()),
        "deleting a finished program's file is no finding"
    );
}
