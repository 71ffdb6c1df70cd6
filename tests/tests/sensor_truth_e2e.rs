// SPDX-License-Identifier: GPL-2.0-only
//! The file sensor decides by the file the kernel opened, not by the name the process
//! typed (#17). A customer (`nobody` here) copies a webshell into the watched tree
//! spelled every way that used to hide it: a leading `//`, `..` from outside, a
//! relative name from a writer gone before /proc could say where it was, a directory
//! symlinked into the tree, and /proc/self/cwd. Each is a `signature_match` finding
//! on the file's real path.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use integration_test::{as_nobody, harness::Harness, nobody, run_ok, wait_for};

const WEBSHELL: &str = "<?php system($_GET['cmd']); ?>\n";

#[test]
fn a_webshell_is_found_however_its_path_is_spelled() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let dir = h.dir.path().to_path_buf();
    let www = h.www.clone();
    // The customer's own corner: a source file, a directory outside the tree, and a
    // symlink into the tree, all theirs.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&www, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let home = dir.join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let src = home.join("src.txt");
    std::fs::write(&src, WEBSHELL).expect("write");
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::symlink(&www, home.join("site")).expect("symlink");
    let (w, hm, s) = (www.display(), home.display(), src.display());
    let cases = [
        ("slashes.php", format!("cp {s} /{w}/slashes.php")),
        ("dotdot.php", format!("cp {s} {hm}/../www/dotdot.php")),
        ("relative.php", format!("cd {w} && cp {s} relative.php")),
        ("symlinked.php", format!("cp {s} {hm}/site/symlinked.php")),
        (
            "proc-cwd.php",
            format!("cd {w} && cp {s} /proc/self/cwd/proc-cwd.php"),
        ),
        // A hard link of the customer's own file, and an unnamed O_TMPFILE file given
        // a name in the tree through /proc/self/fd (linkat).
        (
            "hardlinked.php",
            format!("cp {s} {hm}/own.txt && ln {hm}/own.txt {w}/hardlinked.php"),
        ),
        (
            "tmpfile.php",
            format!(
                "/usr/bin/python3 -c 'import ctypes, os, sys; \
                 fd = os.open(\"{w}\", os.O_TMPFILE | os.O_WRONLY, 0o644); \
                 os.write(fd, open(\"{s}\", \"rb\").read()); \
                 r = ctypes.CDLL(None).linkat(-100, b\"/proc/self/fd/%d\" % fd, -100, b\"{w}/tmpfile.php\", 0x400); \
                 sys.exit(r != 0)'"
            ),
        ),
        // A harmless file in the tree swapped with the shell outside it
        // (renameat2 RENAME_EXCHANGE): the tree's old name now holds the shell.
        (
            "exchanged.php",
            format!(
                "echo hello > {w}/exchanged.php && cp {s} {hm}/swap.php && \
                 /usr/bin/python3 -c 'import ctypes, sys; \
                 r = ctypes.CDLL(None).renameat2(-100, b\"{w}/exchanged.php\", -100, b\"{hm}/swap.php\", 2); \
                 sys.exit(r != 0)'"
            ),
        ),
    ];
    for (_, script) in &cases {
        as_nobody(script);
    }
    // A writer that exits without closing: its exit ends the session (the kernel
    // reports the exit, the agent ends what the exit closed).
    run_ok(
        integration_test::nobody("/usr/bin/python3").args([
            "-c",
            &format!(
                "import os\nfd = os.open('{w}/exited.php', os.O_WRONLY | os.O_CREAT, 0o644)\nos.write(fd, {:?}.encode())\nos._exit(0)\n",
                WEBSHELL
            ),
        ]),
        "write and _exit",
    );
    let cases: Vec<(&str, String)> = cases
        .into_iter()
        .chain([("exited.php", String::new())])
        .collect();
    let found = |name: &str| {
        let want = www.join(name).display().to_string();
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["check"] == "signature_match" && x["path"] == want.as_str())
        })
    };
    let all = wait_for(Duration::from_secs(15), || {
        cases.iter().all(|(name, _)| found(name))
    });
    let missing: Vec<&str> = cases
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !found(n))
        .collect();
    assert!(all, "not found: {missing:?}; log:\n{}", h.log());
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    assert_eq!(
        health["pipeline"]["unresolved"], 0,
        "every path was built by the kernel: {health}"
    );
    assert!(
        health["pipeline"]["exit_closed"].as_u64() >= Some(1),
        "the session _exit closed was ended by the agent: {health}"
    );
    // What the tracepoints cannot see is named, with its mitigation: io_uring opens,
    // unless kernel.io_uring_disabled keeps users from it.
    let open_to_users = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|v| v.trim() == "0")
        .unwrap_or(true);
    let (_, caps) = h.get("/api/v1/capabilities", &h.read.clone());
    let named = caps["capabilities"]
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c == "sensors.file.unseen.io_uring"));
    assert_eq!(named, open_to_users, "{caps}");
    let file = health["sensors"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sensor"] == "file"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        file["unseen"].as_array().is_some_and(|u| u
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains("io_uring")))),
        open_to_users,
        "{file}"
    );
}

/// The exec sensor decides by the file the kernel runs, and follows interpreters to
/// the script they open (#17). A customer (`nobody`) runs programs from a
/// world-writable tree every way that used to hide them: `//`, `..`, a symlinked
/// directory, a relative name; scripts through `sh`, a `#!` line, python and the
/// dynamic loader; and code with no file at all (a memfd, run by descriptor and by
/// /proc/self/fd). Dry run: each runs, and each is a finding on its real path.
#[test]
fn an_exec_from_a_world_writable_tree_is_seen_however_it_is_spelled() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let (python, perl) = ("/usr/bin/python3", "/usr/bin/perl");
    for p in [python, perl] {
        assert!(
            std::path::Path::new(p).exists(),
            "{p} (cargo xtask bootstrap installs it)"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let ww = dir.path().join("ww");
    std::fs::create_dir(&ww).expect("mkdir");
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::os::unix::fs::symlink(&ww, home.join("link")).expect("symlink");
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: true\n  world_writable: [{}]\n  enforce: true\n  dry_run: true\n",
        ww.display()
    );
    let h = Harness::start_with(net, "", &top);
    let (w, hm) = (ww.display(), home.display());
    let true_bin = std::fs::canonicalize("/bin/true").expect("true");
    let t = true_bin.display();
    // Programs and scripts the customer drops into the tree.
    let mut setup = String::new();
    for name in ["slashes", "dotdot", "symlinked", "relative", "ldso"] {
        setup.push_str(&format!("cp {t} {w}/{name} && "));
    }
    setup.push_str(&format!(
        "printf 'exit 0\\n' > {w}/by-sh.sh && \
         printf '#!/bin/sh\\nexit 0\\n' > {w}/shebang.sh && chmod +x {w}/shebang.sh && \
         printf 'pass\\n' > {w}/by-python.py && true"
    ));
    as_nobody(&setup);
    let ldso = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").expect("ld.so");
    let cases = [
        ("slashes", format!("/{w}/slashes")),
        ("dotdot", format!("{hm}/../ww/dotdot")),
        ("symlinked", format!("{hm}/link/symlinked")),
        ("relative", format!("cd {w} && ./relative")),
        ("by-sh.sh", format!("sh {w}/by-sh.sh")),
        ("shebang.sh", format!("cd {w} && ./shebang.sh")),
        ("by-python.py", format!("{python} {w}/by-python.py")),
        ("ldso", format!("{} {w}/ldso", ldso.display())),
    ];
    for (_, script) in &cases {
        as_nobody(script);
    }
    // Code with no file: a memfd run by descriptor (fexecve) and by /proc/self/fd.
    let fexecve = format!(
        "import os\nfd = os.memfd_create('payload')\nos.write(fd, open('{t}', 'rb').read())\nos.execve(fd, ['payload'], {{}})\n"
    );
    run_ok(nobody(python).args(["-c", &fexecve]), "fexecve of a memfd");
    let procfd = format!(
        "my $n = 'payload2'; my $fd = syscall(319, $n, 0); die 'memfd' if $fd < 0; \
         open(my $in, '<', '{t}') or die; binmode $in; local $/; my $b = <$in>; \
         open(my $out, '>&=', $fd) or die; binmode $out; syswrite($out, $b) or die; \
         exec {{\"/proc/self/fd/$fd\"}} 'payload2' or die \"exec: $!\";"
    );
    run_ok(
        nobody(perl).args(["-e", &procfd]),
        "exec of a memfd by /proc/self/fd",
    );

    let findings = || {
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.as_array().cloned().unwrap_or_default()
    };
    let seen = |f: &[serde_json::Value], name: &str| {
        let want = ww.join(name).display().to_string();
        f.iter().any(|x| {
            x["check"] == "exec_world_writable"
                && x["path"] == want.as_str()
                && x["details"].as_str().is_some_and(|d| d.contains("dry_run"))
        })
    };
    let fileless = |f: &[serde_json::Value], name: &str| {
        f.iter().any(|x| {
            x["check"] == "exec_fileless"
                && x["uid"] == 65534
                && x["path"].as_str().is_some_and(|p| p.ends_with(name))
        })
    };
    let all = wait_for(Duration::from_secs(15), || {
        let f = findings();
        cases.iter().all(|(n, _)| seen(&f, n))
            && fileless(&f, "memfd:payload")
            && fileless(&f, "memfd:payload2")
    });
    let f = findings();
    let missing: Vec<&str> = cases
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !seen(&f, n))
        .chain(
            ["memfd:payload", "memfd:payload2"]
                .into_iter()
                .filter(|n| !fileless(&f, n)),
        )
        .collect();
    assert!(
        all,
        "not found: {missing:?}; findings: {f:?}\nlog:\n{}",
        h.log()
    );
    // The interpreter is named, the script is the path.
    let py = f
        .iter()
        .find(|x| x["path"] == ww.join("by-python.py").display().to_string())
        .expect("python finding");
    assert!(
        py["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Script in a world-writable tree run by python3")),
        "{py}"
    );
    // A shell that execs a reader of a file named in its own argv: the shell's watch
    // ends with its image, so cat reading data is not taken for a script.
    as_nobody(&format!(
        "echo data > {w}/data.txt && sh -c 'exec cat \"$0\" > /dev/null' {w}/data.txt"
    ));
    // Outside the tree nothing is reported: the same binary, copied to home.
    as_nobody(&format!(
        "cp {t} {hm}/fine && {hm}/fine && cd {hm} && ./fine"
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !findings()
            .iter()
            .any(|x| x["path"].as_str().is_some_and(|p| p.ends_with("/fine"))),
        "an exec outside the tree is not a finding"
    );
    assert!(
        !findings()
            .iter()
            .any(|x| x["path"].as_str().is_some_and(|p| p.ends_with("/data.txt"))),
        "a file read by a program a shell exec'd is not a script"
    );
}

/// What no event reports is caught by the sweep (#17): every file of the watched
/// trees whose inode changed (ctime, which no user can set back) since the last
/// sweep is scanned at start and every `detection.sweep_interval_minutes`. A hard
/// link into the tree, a writer that exits without closing, and a file whose mtime
/// the customer set to years ago are all found, by the sweep at the next start;
/// a file unchanged since the previous sweep is not scanned again.
#[test]
fn the_sweep_finds_what_no_event_reported() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let mut h = Harness::start(net, "");
    let www = h.www.clone();
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&www, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let sweeps = |h: &Harness| -> Vec<serde_json::Value> {
        let (_, j) = h.get("/api/v1/scan-jobs", &h.admin.clone());
        j.as_array()
            .map(|a| {
                a.iter()
                    .filter(|j| !j["changed_since"].is_null())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let swept = |h: &Harness| {
        // The start's sweep is done (and its mark saved, a second later).
        let done = wait_for(Duration::from_secs(30), || {
            sweeps(h).first().is_some_and(|j| j["status"] == "done")
        });
        std::thread::sleep(Duration::from_millis(1500));
        done
    };
    assert!(swept(&h), "the sweep at start: {:?}", sweeps(&h));
    // A file that will not change again, older than the next mark by more than its
    // slack.
    std::fs::write(www.join("old.txt"), "nothing to see\n").expect("write");
    std::thread::sleep(Duration::from_millis(2500));
    h.stop();
    h.restart();
    assert!(swept(&h), "second sweep: {:?}", sweeps(&h));
    std::thread::sleep(Duration::from_millis(2500));

    let home = h.dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (w, hm) = (www.display(), home.display());
    // A hard link (no open, no write in the tree), and a shell written in a way
    // the agent is not running to see, then dated back.
    as_nobody(&format!(
        "printf '{}' > {hm}/src.txt && ln {hm}/src.txt {w}/linked.php && \
         printf '{}' > {w}/dated.php && touch -d 2001-01-01 {w}/dated.php",
        WEBSHELL.trim_end(),
        WEBSHELL.trim_end()
    ));
    // A writer that exits without closing, while the agent is down.
    h.stop();
    let python = "/usr/bin/python3";
    run_ok(
        nobody(python).args([
            "-c",
            &format!(
                "import os\nfd = os.open('{w}/exited.php', os.O_WRONLY | os.O_CREAT, 0o644)\nos.write(fd, {:?}.encode())\nos._exit(0)\n",
                WEBSHELL
            ),
        ]),
        "write and _exit",
    );
    h.restart();
    let want = ["linked.php", "dated.php", "exited.php"];
    let found = |h: &Harness, name: &str| {
        let path = www.join(name).display().to_string();
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["check"] == "signature_match" && x["path"] == path.as_str())
        })
    };
    let all = wait_for(Duration::from_secs(30), || {
        want.iter().all(|n| found(&h, n))
    });
    let missing: Vec<&&str> = want.iter().filter(|n| !found(&h, n)).collect();
    assert!(all, "not found: {missing:?}; sweeps: {:?}", sweeps(&h));
    assert!(swept(&h), "third sweep: {:?}", sweeps(&h));
    let last = sweeps(&h).into_iter().next().expect("sweep");
    assert_eq!(
        (
            last["files_found"].as_u64(),
            last["files_unchanged"].as_u64()
        ),
        (Some(3), Some(1)),
        "the three changed files scanned, old.txt not again: {last}"
    );
}
