// SPDX-License-Identifier: GPL-2.0-only
//! The file sensor decides by the file the kernel opened, not by the name the process
//! typed (#17). A customer (`nobody` here) copies a webshell into the watched tree
//! spelled every way that used to hide it: a leading `//`, `..` from outside, a
//! relative name from a writer gone before /proc could say where it was, a directory
//! symlinked into the tree, /proc/self/cwd, and a bind mount of a directory in the
//! tree made in the customer's own namespaces. Each is a `signature_match` finding on
//! the file's real path.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use integration_test::{as_nobody, harness::Harness, nobody, run_ok, wait_for};

const WEBSHELL: &str = "<?php system($_GET['cmd']); ?>\n";

#[test]
fn a_webshell_is_found_however_its_path_is_spelled() {
    webshell_spellings(Backend::Tracepoint);
}

/// The same table through the fanotify backend (the last fallback): its events name
/// the real file (directory handle + name), so every spelling resolves there too; a
/// hard link or an O_TMPFILE named by linkat is a create of a name with content. What
/// it cannot see (truncate by name) is named in `/health` with its mitigation.
#[test]
fn the_fanotify_backend_finds_the_same_spellings() {
    webshell_spellings(Backend::Fanotify);
}

/// The same table through the BPF-LSM file backend (`file_open` to
/// `file_free_security`), where the kernel runs LSM programs (the vmtest guests),
/// plus a shell written entirely through io_uring, which it sees. Where BPF-LSM does
/// not run, forcing it starts no file sensor, and says why.
#[test]
fn the_lsm_file_backend_finds_the_same_spellings() {
    webshell_spellings(Backend::Lsm);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Tracepoint,
    Fanotify,
    Lsm,
}

/// Is the running kernel at least `major.minor`?
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    (nums.next().unwrap_or(0), nums.next().unwrap_or(0)) >= (major, minor)
}

/// A rule that matches only a small file holding the marker: the big file it
/// starts as is clean until a truncate(2) cuts it down.
const SMALL_MARKER_RULE: &str = "rule rampart_test_truncated_marker {\n  strings:\n    $m = \"RAMPART-TRUNCATION-MARKER\"\n  condition:\n    $m and filesize < 100\n}\n";

fn webshell_spellings(backend: Backend) {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let top = match backend {
        // Forced: where BPF-LSM runs, auto would take it.
        Backend::Tracepoint => {
            "egress:\n  enabled: false\nexec:\n  enabled: false\nsensors:\n  file_backend: tracepoint\n"
        }
        Backend::Fanotify => {
            "egress:\n  enabled: false\nexec:\n  enabled: false\nsensors:\n  file_backend: fanotify\n"
        }
        Backend::Lsm => {
            "egress:\n  enabled: false\nexec:\n  enabled: false\nsensors:\n  file_backend: lsm\n"
        }
    };
    let h = Harness::start_with(net, "", top);
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    let file = sensor(&health, "file");
    if backend == Backend::Lsm && !h.lsm_runs() {
        // This kernel refuses LSM programs: the forced backend is not started, and
        // /health says why (the rest of the agent runs).
        assert_eq!(file["backend"], "none", "{health}");
        assert!(
            file["reason"]
                .as_str()
                .is_some_and(|r| r.contains("forced by sensors.file_backend: lsm")
                    && r.contains("BPF-LSM unavailable")),
            "{file}"
        );
        eprintln!(
            "SKIP (allowed): the LSM file backend needs BPF-LSM; proven in cargo xtask vmtest"
        );
        return;
    }
    let want = match backend {
        Backend::Tracepoint => "tracepoint",
        Backend::Fanotify => "fanotify",
        Backend::Lsm => "lsm",
    };
    assert_eq!(file["backend"], want, "{health}");
    let dir = h.dir.path().to_path_buf();
    std::fs::write(dir.join("rules/small-marker.yar"), SMALL_MARKER_RULE).expect("rule");
    let (s, r) = h.post("/api/v1/rules/reload", serde_json::json!({}));
    assert_eq!(s, 200, "{r}");
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
    // Another filesystem mounted inside the tree (by the host, as a cache often is):
    // it holds no root, so the walk passes it in one step to where it is mounted.
    let nested = www.join("cache");
    std::fs::create_dir(&nested).expect("mkdir");
    let _nested = integration_test::TmpfsMount::new(&nested, "4m").expect("tmpfs in the tree");
    std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::write(home.join("fds.py"), FDS_PY).expect("write fds.py");
    let (w, hm, s) = (www.display(), home.display(), src.display());
    let cases = [
        ("cache/mounted.php", format!("cp {s} {w}/cache/mounted.php")),
        ("slashes.php", format!("cp {s} /{w}/slashes.php")),
        ("dotdot.php", format!("cp {s} {hm}/../www/dotdot.php")),
        ("relative.php", format!("cd {w} && cp {s} relative.php")),
        ("symlinked.php", format!("cp {s} {hm}/site/symlinked.php")),
        (
            "proc-cwd.php",
            format!("cd {w} && cp {s} /proc/self/cwd/proc-cwd.php"),
        ),
        // Through a bind mount of a directory inside the tree, made in the customer's
        // own user and mount namespaces (unprivileged): the mount's root is `sub`,
        // so a walk that only crossed mounts would go from `sub` to the mountpoint
        // in the customer's home and never pass the watched root.
        (
            "sub/bound.php",
            format!(
                "mkdir {w}/sub {hm}/bx && unshare -Urm sh -c 'mount --bind {w}/sub {hm}/bx && cp {s} {hm}/bx/bound.php'"
            ),
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
        // Renamed and hard-linked in from the customer's own corner under names that
        // are outside the tree as typed: through the symlink, and through `..`.
        (
            "renamed-via-symlink.php",
            format!("cp {s} {hm}/r1.txt && mv {hm}/r1.txt {hm}/site/renamed-via-symlink.php"),
        ),
        (
            "renamed-via-dotdot.php",
            format!("cp {s} {hm}/r2.txt && mv {hm}/r2.txt {hm}/../www/renamed-via-dotdot.php"),
        ),
        (
            "linked-via-symlink.php",
            format!("cp {s} {hm}/r3.txt && ln {hm}/r3.txt {hm}/site/linked-via-symlink.php"),
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
        // Zeros when its fd is closed; the shell arrives through a shared mapping
        // afterwards, and the writer's exit ends the session again.
        (
            "mapped.php",
            format!(
                "/usr/bin/python3 -c 'import mmap, os, time; \
                 d = open(\"{s}\", \"rb\").read(); \
                 fd = os.open(\"{w}/mapped.php\", os.O_RDWR | os.O_CREAT, 0o644); \
                 os.ftruncate(fd, len(d)); \
                 m = mmap.mmap(fd, len(d), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE); \
                 os.close(fd); time.sleep(0.5); m[:] = d; os._exit(0)'"
            ),
        ),
        // Clean when made; then rewritten in place through a read-write open of the
        // existing file (no O_CREAT, no O_TRUNC): only the open's mode says written.
        (
            "edited.php",
            format!(
                "echo hello > {w}/edited.php && sleep 0.5 && \
                 /usr/bin/python3 -c 'f = open(\"{w}/edited.php\", \"r+b\"); \
                 f.write(open(\"{s}\", \"rb\").read()); f.close()'"
            ),
        ),
        // Closed by a dup2 over its fd, not by close(2), by a writer that stays
        // alive (its exit would end the session too late for this test's wait).
        (
            "duped.php",
            format!("/usr/bin/python3 {hm}/fds.py duped {w}/duped.php {s} </dev/null >/dev/null 2>&1 &"),
        ),
        // Closed by close_range(2) by a writer that stays alive and opens nothing.
        (
            "ranged.php",
            format!("/usr/bin/python3 {hm}/fds.py ranged {w}/ranged.php {s} </dev/null >/dev/null 2>&1 &"),
        ),
        // A close_range(2) that fails (unknown flags) must not end the session: the
        // clean start written before it would be all that is scanned.
        (
            "range-flags.php",
            format!("/usr/bin/python3 {hm}/fds.py flags {w}/range-flags.php {s}"),
        ),
        // Closed by a close_range(2) past the sessions it ends (four, in fd order),
        // then its fd number taken by a write-open: the session on it is reported,
        // not replaced unreported.
        (
            "fd-reused.php",
            format!("/usr/bin/python3 {hm}/fds.py many {w}/fd-reused.php {s}"),
        ),
        // Clean while 4 KiB long; a truncate(2) by name leaves only the marker.
        (
            "truncated.php",
            format!(
                "{{ printf RAMPART-TRUNCATION-MARKER; head -c 4096 /dev/zero; }} > {w}/truncated.php && \
                 sleep 0.5 && /usr/bin/python3 -c 'import os; os.truncate(\"{w}/truncated.php\", 25)'"
            ),
        ),
        // The same truncate through the customer's symlink into the tree.
        (
            "truncated-via-symlink.php",
            format!(
                "{{ printf RAMPART-TRUNCATION-MARKER; head -c 4096 /dev/zero; }} > {w}/truncated-via-symlink.php && \
                 sleep 0.5 && /usr/bin/python3 -c 'import os; os.truncate(\"{hm}/site/truncated-via-symlink.php\", 25)'"
            ),
        ),
    ];
    // Deeper than the kernel's walk goes, and a path longer than an event holds:
    // the kernel sends the inode, and the agent finds the name in the tree.
    let deep = (0..60)
        .map(|i| format!("d{i:02}"))
        .collect::<Vec<_>>()
        .join("/");
    let long = (0..4)
        .map(|i| format!("{i}{}", "l".repeat(70)))
        .collect::<Vec<_>>()
        .join("/");
    let mut cases: Vec<(String, String)> =
        cases.into_iter().map(|(n, c)| (n.to_string(), c)).collect();
    for (dir, name) in [(&deep, "deep.php"), (&long, "long.php")] {
        cases.push((
            format!("{dir}/{name}"),
            format!("mkdir -p {w}/{dir} && cp {s} {w}/{dir}/{name}"),
        ));
    }
    // Written, renamed and linked into the tree with 32-bit syscalls (int 0x80 from a
    // 64-bit process, as a 32-bit binary would): no per-syscall tracepoint sees them.
    let compat = env!("CARGO_BIN_EXE_compat-syscalls");
    cases.extend([
        (
            "compat-written.php".to_string(),
            format!("{compat} write {s} {w}/compat-written.php"),
        ),
        (
            "compat-renamed.php".to_string(),
            format!(
                "{compat} write {s} {hm}/c1.txt && {compat} rename {hm}/c1.txt {w}/compat-renamed.php"
            ),
        ),
        (
            "compat-linked.php".to_string(),
            format!(
                "{compat} write {s} {hm}/c2.txt && {compat} link {hm}/c2.txt {w}/compat-linked.php"
            ),
        ),
    ]);
    // Opened, written and closed by io_uring: no syscall tracepoint sees it (the
    // tracepoint backend follows it at its completions).
    let uring = integration_test::io_uring_open_to_users();
    if uring {
        let uw = env!("CARGO_BIN_EXE_uring-write");
        cases.push(("uring.php".to_string(), format!("{uw} {s} {w}/uring.php")));
        // Written by write(2), closed by io_uring, the writer alive after.
        cases.push((
            "uring-closed.php".to_string(),
            format!("{uw} --close-only {s} {w}/uring-closed.php </dev/null >/dev/null 2>&1 &"),
        ));
        // Renamed in through the customer's symlink, and hard-linked in, by io_uring.
        cases.push((
            "uring-renamed.php".to_string(),
            format!("cp {s} {hm}/u1.txt && {uw} --rename {hm}/u1.txt {hm}/site/uring-renamed.php"),
        ));
        cases.push((
            "uring-linked.php".to_string(),
            format!("cp {s} {hm}/u2.txt && {uw} --link {hm}/u2.txt {w}/uring-linked.php"),
        ));
        if kernel_at_least(6, 8) {
            // Opened into the ring's own slot, then given an fd (6.8+).
            cases.push((
                "uring-fixed.php".to_string(),
                format!("{uw} --fixed {s} {w}/uring-fixed.php </dev/null >/dev/null 2>&1 &"),
            ));
        }
    }
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
    // What a backend cannot see must be named, with its mitigation: truncate(2) by
    // fanotify (asserted below).
    let unseen_here = |name: &str| match backend {
        // fanotify marks the tree's own filesystem, not one mounted inside it (named
        // in /health, asserted below).
        Backend::Fanotify => name.starts_with("truncated") || name == "cache/mounted.php",
        Backend::Tracepoint | Backend::Lsm => false,
    };
    let cases: Vec<(String, String)> = cases
        .into_iter()
        .chain([("exited.php".to_string(), String::new())])
        .filter(|(n, _)| !unseen_here(n))
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
        .map(|(n, _)| n.as_str())
        .filter(|n| !found(n))
        .collect();
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    assert!(
        all,
        "{backend:?}: not found: {missing:?}; kernel: {}; pipeline: {}; log:\n{}",
        health["kernel"],
        health["pipeline"],
        h.log()
    );
    let file = sensor(&health, "file");
    let unseen = |word: &str| {
        file["unseen"].as_array().is_some_and(|u| {
            u.iter()
                .any(|x| x.as_str().is_some_and(|x| x.contains(word)))
        })
    };
    if backend != Backend::Fanotify {
        // The 32-bit calls above went through the raw sys_exit program (the write
        // sessions' three calls only where the tracepoints hold them), and nothing
        // is named unseen for them.
        let compat = health["kernel"]["file_sensor"]["compat_syscalls"]
            .as_u64()
            .unwrap_or(0);
        let least = if backend == Backend::Tracepoint { 8 } else { 2 };
        assert!(
            compat >= least,
            "{backend:?}: {compat} 32-bit calls: {health}"
        );
        assert!(!unseen("32-bit"), "{file}");
    }
    if backend != Backend::Fanotify && uring {
        // The io_uring cases' opens, closes, renames and links, followed at their
        // completions (the opens and closes by the tracepoint backend only: LSM sees
        // the files themselves).
        let calls = health["kernel"]["file_sensor"]["uring_calls"]
            .as_u64()
            .unwrap_or(0);
        let least = if backend == Backend::Tracepoint { 5 } else { 2 };
        assert!(calls >= least, "{calls} io_uring calls: {health}");
        assert!(unseen("renames, links and unlinks followed"), "{file}");
        assert_eq!(
            unseen("fixed-file slots"),
            backend == Backend::Tracepoint,
            "{file}"
        );
    }
    if backend == Backend::Fanotify {
        assert!(unseen("truncate(2)"), "{file}");
        assert!(unseen("mounted inside a watched tree"), "{file}");
        assert!(!unseen("io_uring"), "fanotify sees io_uring opens: {file}");
        return;
    }
    // The two the kernel could not name (too deep, too long), and only they, were
    // found by inode. The write through the customer's bind mount is named by the
    // walk below the watched root, where the agent looks (asserted above). A file
    // too deep for the walk is unnamed to every agent on the machine, so one that
    // another test writes meanwhile (the other backends run these same spellings)
    // reaches this agent too, and is not found in its trees: only those are
    // taken off.
    let unresolved = health["pipeline"]["unresolved"].as_u64().unwrap_or(0);
    let elsewhere = health["pipeline"]["unnamed"]["not_found"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        unresolved.saturating_sub(elsewhere),
        2,
        "every other path was built by the kernel: {health}"
    );
    assert_eq!(health["pipeline"]["unnamed"]["found"], 2, "{health}");
    if backend == Backend::Lsm {
        // A session ends in the kernel with the file's last reference: the agent had
        // nothing to end after an exit.
        assert_eq!(health["pipeline"]["exit_closed"], 0, "{health}");
    } else {
        assert!(
            health["pipeline"]["exit_closed"].as_u64() >= Some(2),
            "the sessions _exit closed and the mapped one were ended by the agent: {health}"
        );
    }
    // What the syscall tracepoints cannot see is named, with its mitigation (io_uring:
    // opens for the tracepoint backend, renames and links for the LSM one), unless
    // kernel.io_uring_disabled keeps users from it.
    let open_to_users = uring;
    let (_, caps) = h.get("/api/v1/capabilities", &h.read.clone());
    let named = caps["capabilities"]
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c == "sensors.file.unseen.io_uring"));
    assert_eq!(named, open_to_users, "{caps}");
    assert_eq!(unseen("io_uring"), open_to_users, "{file}");
}

/// `fds.py HOW PATH SRC`: PATH written with SRC's content by a writer that ends it
/// without close(2): `duped` (a dup2 of /dev/null over its fd, then stays alive),
/// `ranged` (close_range, then stays alive), `flags` (a failing
/// close_range between a clean start and the content, then close_range), `many`
/// (four clean sessions below it, one close_range over all five, then five
/// write-opens, the last of which takes PATH's fd number).
const FDS_PY: &str = r#"import ctypes, os, sys, time
how, path, src = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
def close_range(first, last, flags):
    return libc.syscall(436, first, last, flags)
data = open(src, "rb").read()
def create(p):
    return os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
if how == "many":
    below = [create("%s-%d.txt" % (path, i)) for i in range(4)]
fd = create(path)
if how == "duped":
    os.write(fd, data)
    os.dup2(os.open("/dev/null", os.O_RDONLY), fd)
    time.sleep(30)
elif how == "ranged":
    os.write(fd, data)
    assert close_range(fd, fd, 0) == 0
    time.sleep(30)
elif how == "flags":
    os.write(fd, b"hello\n")
    assert close_range(fd, fd, 1 << 30) == -1
    time.sleep(1)
    os.write(fd, data)
    assert close_range(fd, fd, 0) == 0
elif how == "many":
    os.write(fd, data)
    assert below == list(range(below[0], fd)), (below, fd)
    assert close_range(below[0], fd, 0) == 0
    again = [create("%s-again-%d.txt" % (path, i)) for i in range(5)]
    assert again[4] == fd, (again, fd)
"#;

fn sensor(health: &serde_json::Value, name: &str) -> serde_json::Value {
    health["sensors"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sensor"] == name))
        .cloned()
        .unwrap_or_default()
}

/// The exec sensor decides by the file the kernel runs, and follows interpreters to
/// the script they open (#17). A customer (`nobody`) runs programs from a
/// world-writable tree every way that used to hide them: `//`, `..`, a symlinked
/// directory, a relative name; scripts through `sh`, a `#!` line, python and the
/// dynamic loader; and code with no file at all (a memfd, run by descriptor and by
/// /proc/self/fd). Dry run: each runs, and each is a finding on its real path.
#[test]
fn an_exec_from_a_world_writable_tree_is_seen_however_it_is_spelled() {
    exec_spellings(Backend::Tracepoint);
}

/// The same execs through the fanotify exec backend: it sees every file the kernel
/// opens to run (the image, a `#!` script), by its real path. A script named to an
/// interpreter or the loader, and a memfd, are not such opens: each is named in
/// `/health` and `/capabilities` instead.
#[test]
fn the_fanotify_exec_backend_sees_the_images_and_names_the_rest() {
    exec_spellings(Backend::Fanotify);
}

fn exec_spellings(backend: Backend) {
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
    let forced = match backend {
        Backend::Tracepoint => "",
        Backend::Fanotify => "sensors:\n  exec_backend: fanotify\n",
        Backend::Lsm => "sensors:\n  exec_backend: lsm\n",
    };
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: true\n  world_writable: [{}]\n  enforce: true\n  dry_run: true\n{forced}",
        ww.display()
    );
    let h = Harness::start_with(net, "", &top);
    let (w, hm) = (ww.display(), home.display());
    let true_bin = std::fs::canonicalize("/bin/true").expect("true");
    let t = true_bin.display();
    // Programs and scripts the customer drops into the tree.
    let mut setup = String::new();
    for name in [
        "slashes",
        "dotdot",
        "symlinked",
        "relative",
        "ldso",
        "ldso32",
    ] {
        setup.push_str(&format!("cp {t} {w}/{name} && "));
    }
    setup.push_str(&format!(
        "printf 'exit 0\\n' > {w}/by-sh.sh && \
         printf '#!/bin/sh\\nexit 0\\n' > {w}/shebang.sh && chmod +x {w}/shebang.sh && \
         printf 'pass\\n' > {w}/by-python.py && true"
    ));
    as_nobody(&setup);
    let ldso = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").expect("ld.so");
    let mut cases = vec![
        ("slashes", format!("/{w}/slashes")),
        ("dotdot", format!("{hm}/../ww/dotdot")),
        ("symlinked", format!("{hm}/link/symlinked")),
        ("relative", format!("cd {w} && ./relative")),
        ("by-sh.sh", format!("sh {w}/by-sh.sh")),
        ("shebang.sh", format!("cd {w} && ./shebang.sh")),
        ("by-python.py", format!("{python} {w}/by-python.py")),
        ("ldso", format!("{} {w}/ldso", ldso.display())),
    ];
    // The 32-bit loader opens what it is given with 32-bit syscalls, which no
    // per-syscall tracepoint sees (it then refuses a 64-bit file: the open is what
    // counts). Installed by the bootstrap (libc6-i386), so required in CI.
    let ldso32 = std::path::Path::new("/lib/ld-linux.so.2");
    if ldso32.exists() {
        let ldso32 = std::fs::canonicalize(ldso32).expect("ld.so (32-bit)");
        cases.push(("ldso32", format!("{} {w}/ldso32 || true", ldso32.display())));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI requires /lib/ld-linux.so.2"
        );
    }
    for (_, script) in &cases {
        as_nobody(script);
    }
    // Run through a bind mount of a directory in the tree, made in the customer's own
    // user and mount namespaces: the mount's root is `sub`, below the tree's root.
    as_nobody(&format!(
        "mkdir {w}/sub {hm}/bx && cp {t} {w}/sub/bound && \
         unshare -Urm sh -c 'mount --bind {w}/sub {hm}/bx && {hm}/bx/bound'"
    ));
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
    // fanotify sees the files the kernel opens to run; the rest must be named.
    let fanotify = backend == Backend::Fanotify;
    let unseen_here =
        |n: &str| fanotify && matches!(n, "by-sh.sh" | "by-python.py" | "ldso" | "ldso32");
    let cases: Vec<_> = cases.iter().filter(|(n, _)| !unseen_here(n)).collect();
    let memfds: &[&str] = if fanotify {
        &[]
    } else {
        &["memfd:payload", "memfd:payload2"]
    };
    // The bound program is judged by where it is, in the tree; its path is the one
    // the customer's mounts show (the mount exists only in their namespace).
    let bound = |f: &[serde_json::Value]| {
        f.iter().any(|x| {
            x["check"] == "exec_world_writable"
                && x["path"].as_str().is_some_and(|p| p.ends_with("/bound"))
                && x["details"].as_str().is_some_and(|d| d.contains("dry_run"))
        })
    };
    let all = wait_for(Duration::from_secs(15), || {
        let f = findings();
        cases.iter().all(|(n, _)| seen(&f, n))
            && memfds.iter().all(|n| fileless(&f, n))
            && bound(&f)
    });
    let f = findings();
    let missing: Vec<&str> = cases
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !seen(&f, n))
        .chain(memfds.iter().copied().filter(|n| !fileless(&f, n)))
        .chain((!bound(&f)).then_some("bound (through a bind mount)"))
        .collect();
    assert!(
        all,
        "{backend:?}: not found: {missing:?}; findings: {f:?}\nlog:\n{}",
        h.log()
    );
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    let exec = sensor(&health, "exec");
    let (_, caps) = h.get("/api/v1/capabilities", &h.read.clone());
    let cap = |c: &str| {
        caps["capabilities"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == c))
    };
    let unseen = |word: &str| {
        exec["unseen"].as_array().is_some_and(|u| {
            u.iter()
                .any(|x| x.as_str().is_some_and(|x| x.contains(word)))
        })
    };
    for (word, c) in [
        ("interpreter", "sensors.exec.unseen.interpreted"),
        ("fileless", "sensors.exec.unseen.fileless"),
    ] {
        assert_eq!(unseen(word), fanotify, "{exec}");
        assert_eq!(cap(c), fanotify, "{caps}");
    }
    if fanotify {
        assert_eq!(exec["backend"], "fanotify", "{exec}");
    } else {
        // The interpreter is named, the script is the path.
        interpreter_named(&f, &ww);
    }
    outside_and_data_are_quiet(&findings, w, hm, t);
}

fn interpreter_named(f: &[serde_json::Value], ww: &std::path::Path) {
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
}

fn outside_and_data_are_quiet(
    findings: &dyn Fn() -> Vec<serde_json::Value>,
    w: impl std::fmt::Display,
    hm: impl std::fmt::Display,
    t: impl std::fmt::Display,
) {
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
