// SPDX-License-Identifier: GPL-2.0-only
//! The packages (#13), installed for real into scratch roots: the .deb with dpkg
//! (`--root`, maintainer scripts run outside a chroot with `$DPKG_ROOT` set, as dpkg
//! supports), the .rpm with rpm. Files, owners and modes; the installed unit checked
//! by `systemd-analyze verify` and scored by `systemd-analyze security`; an upgrade to
//! the second revision keeps an edited config, the drop-ins and the state; purge takes
//! them. `cargo xtask test` builds the packages and names their directory in
//! RAMPART_PACKAGES.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use integration_test::{feature_available, is_root};

/// The revision 1 and 2 packages with extension `ext`, or None to skip.
fn packages(ext: &str) -> Option<(PathBuf, PathBuf)> {
    if !feature_available("root", is_root()) {
        return None;
    }
    let found = std::env::var_os("RAMPART_PACKAGES")
        .ok_or_else(|| "RAMPART_PACKAGES unset (cargo xtask test builds the packages)".to_string())
        .and_then(|dir| {
            let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{dir:?}: {e}"))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect();
            all.sort();
            match all.as_slice() {
                [a, b] => Ok((a.clone(), b.clone())),
                _ => Err(format!("expected two .{ext} in {dir:?}, found {all:?}")),
            }
        });
    match found {
        Ok(p) => Some(p),
        Err(e) => {
            assert!(feature_available("built packages", Err(e)));
            None
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{text}",
        out.status
    );
    text
}

/// (mode & 0o7777, uid, gid) of `p`.
fn mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

/// What both packages must install, with owner root and these modes.
const FILES: &[(&str, u32)] = &[
    ("usr/bin/rampart", 0o755),
    ("usr/lib/systemd/system/rampart.service", 0o644),
    ("etc/rampart/rampart.yaml", 0o600),
    ("etc/rampart/conf.d/README", 0o644),
    ("usr/share/rampart/rules/rampart.yml", 0o644),
    ("usr/share/rampart/rules/rampart.yar", 0o644),
    ("usr/share/rampart/exim/forward-guard.conf", 0o644),
    ("usr/share/doc/rampart/rampart.yaml.default", 0o644),
    ("usr/share/doc/rampart/README.md", 0o644),
    ("usr/share/doc/rampart/docs/operations.md", 0o644),
    ("usr/share/man/man1/rampart.1.gz", 0o644),
    ("usr/share/man/man1/rampart-token-create.1.gz", 0o644),
];

fn check_files(root: &Path) {
    for (f, want) in FILES {
        assert_eq!(mode(&root.join(f)), (*want, 0, 0), "{f}");
    }
    let man = run(Command::new("zcat").arg(root.join("usr/share/man/man1/rampart.1.gz")));
    assert!(man.contains(".TH rampart 1"), "not a man page:\n{man}");
    // The installed binary runs and accepts the installed config.
    let bin = root.join("usr/bin/rampart");
    let out = run(Command::new(&bin)
        .arg("validate")
        .arg("--config")
        .arg(root.join("etc/rampart/rampart.yaml")));
    assert!(out.contains("configuration OK"), "{out}");
}

/// `systemd-analyze verify` on the installed unit, inside the root (which gets the
/// host's targets the unit orders itself against), and its security score.
fn check_unit(root: &Path) {
    let units = root.join("usr/lib/systemd/system");
    for e in std::fs::read_dir("/lib/systemd/system")
        .expect("host units")
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "target") {
            let dst = units.join(e.file_name());
            if !dst.exists() {
                std::fs::copy(&p, &dst).expect("copy a target");
            }
        }
    }
    let out = Command::new("systemd-analyze")
        .arg(format!("--root={}", root.display()))
        .args([
            "verify",
            "--man=no",
            "/usr/lib/systemd/system/rampart.service",
        ])
        .output()
        .expect("systemd-analyze verify");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && said.trim().is_empty(),
        "verify: {said}"
    );
    // Exposure 0-100 (shown /10): the unit must stay at 5.0 "OK" or better.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=50"])
        .arg(units.join("rampart.service"))
        .output()
        .expect("systemd-analyze security");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exposure over 5.0:\n{}",
        said.lines().last().unwrap_or_default()
    );
}

/// The admin's edits that an upgrade must keep.
fn edit(root: &Path) -> String {
    let cfg = root.join("etc/rampart/rampart.yaml");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("# edited by the admin: keep me\n");
    std::fs::write(&cfg, &text).expect("edit config");
    std::fs::write(
        root.join("etc/rampart/conf.d/50-local.yaml"),
        "watch:\n  paths: [/srv/www]\n",
    )
    .expect("drop-in");
    std::fs::write(root.join("var/lib/rampart/rampart.db"), b"state").expect("state");
    text
}

fn check_edits_kept(root: &Path, config: &str) {
    assert_eq!(
        std::fs::read_to_string(root.join("etc/rampart/rampart.yaml")).expect("config"),
        config,
        "the edited config was replaced"
    );
    assert_eq!(mode(&root.join("etc/rampart/rampart.yaml")).0, 0o600);
    assert!(
        root.join("etc/rampart/conf.d/50-local.yaml").exists(),
        "drop-in lost"
    );
    assert_eq!(
        std::fs::read(root.join("var/lib/rampart/rampart.db")).expect("state"),
        b"state"
    );
}

#[test]
fn the_deb_installs_upgrades_keeping_edits_and_state_then_purges() {
    let Some((v1, v2)) = packages("deb") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let admin = root.join("var/lib/dpkg");
    std::fs::create_dir_all(admin.join("info")).expect("dpkg db");
    std::fs::create_dir_all(admin.join("updates")).expect("dpkg db");
    std::fs::write(admin.join("status"), "").expect("dpkg status");
    let dpkg = |args: &[&str], pkg: Option<&Path>| {
        let mut c = Command::new("dpkg");
        c.arg(format!("--root={}", root.display()))
            // The scripts run on this host with $DPKG_ROOT set (no shell in the root);
            // the scratch root has no libc6 package to satisfy Depends.
            .args([
                "--force-script-chrootless",
                "--force-depends",
                "--log=/dev/null",
            ])
            .args(args);
        if let Some(p) = pkg {
            c.arg(p);
        }
        run(&mut c)
    };
    let status = || {
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.display()))
            .args(["-W", "-f=${Status} ${Version}", "rampart"])
            .output()
            .expect("dpkg-query");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    dpkg(&["--install"], Some(&v1));
    assert_eq!(status(), "install ok installed 0.1.0-1");
    check_files(root);
    assert_eq!(
        mode(&root.join("var/lib/rampart")),
        (0o700, 0, 0),
        "state dir"
    );
    assert_eq!(mode(&root.join("etc/rampart/conf.d")).0, 0o755);
    let conffiles = run(Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.display()))
        .args(["-W", "-f=${Conffiles}", "rampart"]));
    assert!(
        conffiles.contains("/etc/rampart/rampart.yaml"),
        "{conffiles}"
    );
    check_unit(root);

    let config = edit(root);
    // As an admin answering dpkg's question: keep my version.
    dpkg(&["--install", "--force-confold"], Some(&v2));
    assert_eq!(status(), "install ok installed 0.1.0-2");
    check_edits_kept(root, &config);
    check_files(root);

    dpkg(&["--remove", "rampart"], None);
    assert!(
        !root.join("usr/bin/rampart").exists(),
        "binary left after remove"
    );
    assert!(
        root.join("etc/rampart/rampart.yaml").exists() && root.join("var/lib/rampart").exists(),
        "remove took the config or the state"
    );
    dpkg(&["--purge", "rampart"], None);
    assert_eq!(status(), "", "still known to dpkg after purge");
    for gone in [
        "etc/rampart",
        "var/lib/rampart",
        "usr/lib/systemd/system/rampart.service",
    ] {
        assert!(!root.join(gone).exists(), "{gone} left after purge");
    }
}

#[test]
fn the_rpm_installs_and_upgrades_keeping_an_edited_config() {
    let Some((v1, v2)) = packages("rpm") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let rpm = |args: &[&str], pkg: Option<&Path>| {
        let mut c = Command::new("rpm");
        c.arg("--root").arg(root).args(args);
        if let Some(p) = pkg {
            c.arg(p);
        }
        run(&mut c)
    };
    // The scriptlets, which rpm would run chrooted into a root with no shell, are
    // checked for syntax and content here; every file and attribute is installed.
    let scripts = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(&v1));
    for want in [
        "install -d -m 0700 /var/lib/rampart",
        "try-restart rampart.service",
        "rm -rf /sys/fs/bpf/rampart",
    ] {
        assert!(
            scripts.contains(want),
            "scriptlets lack {want:?}:\n{scripts}"
        );
    }
    for name in ["post", "preun", "postun"] {
        run(Command::new("sh").arg("-n").arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../agent/packaging/rpm")
                .join(name),
        ));
    }
    rpm(&["--initdb"], None);
    // /var/lib/rampart is made by %post; here, by hand, as it would.
    std::fs::create_dir_all(root.join("var/lib/rampart")).expect("state dir");
    rpm(&["-i", "--nodeps", "--noscripts"], Some(&v1));
    check_files(root);
    let config = edit(root);
    rpm(&["-U", "--nodeps", "--noscripts"], Some(&v2));
    let q = rpm(&["-q", "rampart"], None);
    assert!(q.trim().ends_with("0.1.0-2.x86_64"), "{q}");
    check_edits_kept(root, &config);
    rpm(&["-e", "--nodeps", "--noscripts", "rampart"], None);
    assert!(!root.join("usr/bin/rampart").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/rampart/rampart.yaml.rpmsave")).expect("rpmsave"),
        config,
        "an erase must keep the edited config aside"
    );
}
