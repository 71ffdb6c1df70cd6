// SPDX-License-Identifier: GPL-2.0-only
//! The file sensor decides by the file the kernel opened, not by the name the process
//! typed (#17). A customer (`nobody` here) copies a webshell into the watched tree
//! spelled every way that used to hide it: a leading `//`, `..` from outside, a
//! relative name from a writer gone before /proc could say where it was, a directory
//! symlinked into the tree, and /proc/self/cwd. Each is a `signature_match` finding
//! on the file's real path.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use integration_test::{as_nobody, harness::Harness, wait_for};

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
    ];
    for (_, script) in &cases {
        as_nobody(script);
    }
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
}
