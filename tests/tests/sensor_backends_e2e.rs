// SPDX-License-Identifier: GPL-2.0-only
//! The agent end to end with each file backend, and the sensitive-read sensor:
//! - forced fanotify (`sensors.file_backend: fanotify`): a webshell written into the
//!   watched dir is still a `signature_match` finding with the writer's uid, and
//!   /health, /components and /capabilities say fanotify serves files and why;
//! - tracepoints: a web-server user (uid 33 here) reading a sensitive file, by path
//!   or by base name, is a `sensitive_read` finding; root reading it is not, and an
//!   exempt comm is not;
//! - BPF-LSM, where it runs (the vmtest guests): the configured file is reported by
//!   its `file_open` hook, once, and when enforcing the web user is denied it however
//!   it is named (a symlink), an exempt comm too, and root is not.

use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use integration_test::{harness::Harness, wait_for};

fn findings(h: &Harness, check: &str) -> Vec<serde_json::Value> {
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    f.as_array()
        .map(|a| a.iter().filter(|x| x["check"] == check).cloned().collect())
        .unwrap_or_default()
}

fn sensor<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["sensors"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sensor"] == name))
        .unwrap_or_else(|| panic!("sensor {name} in {v}"))
}

fn has_cap(h: &Harness, cap: &str) -> bool {
    let (_, caps) = h.get("/api/v1/capabilities", &h.read.clone());
    caps["capabilities"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == cap))
}

#[test]
fn forced_fanotify_backend_still_reports_webshells() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let top =
        "egress:\n  enabled: false\nexec:\n  enabled: false\nsensors:\n  file_backend: fanotify\n";
    let h = Harness::start_with(net, "", top);
    let (s, health) = h.get("/api/v1/health", &h.read.clone());
    assert_eq!(s, 200);
    let file = sensor(&health, "file");
    assert_eq!(file["backend"], "fanotify", "{health}");
    assert!(
        file["reason"]
            .as_str()
            .is_some_and(|r| r.contains("forced")),
        "{file}"
    );
    // BPF-LSM, where it runs, reports sensitive files by identity whatever the file
    // backend; fanotify itself does not report reads.
    assert_eq!(
        sensor(&health, "sensitive_read")["backend"],
        if h.lsm_runs() { "lsm" } else { "none" },
        "{health}"
    );
    let (_, comps) = h.get("/api/v1/components", &h.read.clone());
    let comps = comps.as_array().cloned().unwrap_or_default();
    assert!(comps.iter().any(|c| c["kind"] == "fanotify"), "{comps:?}");
    assert!(
        !comps.iter().any(|c| c["name"] == "sys_enter_openat"),
        "tracepoints must not be attached when fanotify is forced: {comps:?}"
    );
    assert!(has_cap(&h, "sensors.file.fanotify.v1"));
    assert!(!has_cap(&h, "sensors.file.tracepoint.v1"));
    // What the missing BPF-LSM costs is a finding (this kernel refuses LSM programs).
    let lsm_missing = comps
        .iter()
        .any(|c| c["kind"] == "lsm" && c["state"] == "unavailable");
    if lsm_missing {
        let lost = findings(&h, "bpf_unavailable");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(
            lost[0]["details"]
                .as_str()
                .is_some_and(|d| d.contains("BPF_PROG_LOAD") && d.contains("file on fanotify")),
            "{lost:?}"
        );
    }

    let shell = h.www.join("shell.php");
    std::fs::write(&shell, "<?php system($_GET['cmd']); ?>").expect("write");
    let found = wait_for(Duration::from_secs(10), || {
        !findings(&h, "signature_match").is_empty()
    });
    assert!(
        found,
        "fanotify backend must still produce the webshell finding"
    );
    let f = &findings(&h, "signature_match")[0];
    assert_eq!(f["path"], shell.display().to_string(), "{f}");
    assert_eq!(f["uid"], 0, "{f}");
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    assert!(
        health["pipeline"]["file_ops"]["write_close"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{health}"
    );
}

#[test]
fn web_user_reading_a_sensitive_file_is_a_finding() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("shadow-copy");
    let site = dir.path().join("site");
    std::fs::create_dir(&site).expect("site");
    let wpconfig = site.join("wp-config.php");
    std::fs::write(&secret, "root:$6$x:19000::::::\n").expect("secret");
    std::fs::write(&wpconfig, "<?php define('DB_PASSWORD', 'x');").expect("wp-config");
    use std::os::unix::fs::PermissionsExt;
    for p in [dir.path(), site.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    for p in [&secret, &wpconfig] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nsensors:\n  sensitive:\n    web_users: ['33']\n    paths: [{}]\n    exempt_comms: [rampart-exempt]\n",
        secret.display()
    );
    let mut h = Harness::start_with(net, "", &top);
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    // Where BPF-LSM runs, its file_open hook reports the configured file by
    // identity (and the tracepoints leave it to it); the base name stays on the
    // tracepoints.
    let lsm = h.lsm_runs();
    let backend = if lsm { "lsm" } else { "tracepoint" };
    let file_on_lsm = sensor(&health, "file")["backend"] == "lsm";
    assert_eq!(
        file_on_lsm, lsm,
        "auto takes BPF-LSM where it runs: {health}"
    );
    assert_eq!(
        sensor(&health, "sensitive_read")["backend"],
        backend,
        "{health}"
    );
    assert!(has_cap(&h, &format!("sensors.sensitive_read.{backend}.v1")));

    let read_as = |uid: u32, path: &std::path::Path, argv0: &str| {
        let st = Command::new("cat")
            .arg0(argv0)
            .arg(path)
            .uid(uid)
            .gid(uid)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("cat");
        assert!(st.success(), "cat {} as {uid}", path.display());
    };
    // Root (not a web user) reads: nothing.
    read_as(0, &secret, "cat");
    // The web user reads by full path, then by base name.
    read_as(33, &secret, "cat");
    read_as(33, &wpconfig, "cat");
    let got = wait_for(Duration::from_secs(10), || {
        findings(&h, "sensitive_read").len() >= 2
    });
    let f = findings(&h, "sensitive_read");
    assert!(got, "two sensitive_read findings expected, got {f:?}");
    let paths: Vec<&str> = f.iter().filter_map(|x| x["path"].as_str()).collect();
    assert!(paths.contains(&secret.to_str().expect("utf8")), "{f:?}");
    assert!(paths.contains(&wpconfig.to_str().expect("utf8")), "{f:?}");
    for x in &f {
        assert_eq!(x["uid"], 33, "{x}");
        assert_eq!(x["process_info"], "cat", "{x}");
        assert_eq!(x["severity_label"], "high", "{x}");
        let by_lsm = x["details"]
            .as_str()
            .is_some_and(|d| d.contains("decision: observed (BPF-LSM)"));
        // The configured file by identity; the base name too when the file
        // sensor itself runs on BPF-LSM (no openat tracepoints then).
        assert_eq!(
            by_lsm,
            lsm && (file_on_lsm || x["path"] == secret.to_str().expect("utf8")),
            "{x}"
        );
    }
    // The kernel counted exactly the two web-user reads (root's was never emitted,
    // and where the LSM reported one the tracepoints did not report it again).
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    assert_eq!(
        health["kernel"]["file_sensor"]["sensitive_emitted"], 2,
        "{health}"
    );
    // A read by an exempt comm is an event, not a finding.
    std::fs::copy("/usr/bin/cat", dir.path().join("rampart-exempt")).expect("copy cat");
    let st = Command::new(dir.path().join("rampart-exempt"))
        .arg(&wpconfig)
        .uid(33)
        .gid(33)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("exempt cat");
    assert!(st.success());
    assert!(wait_for(Duration::from_secs(5), || {
        let (_, h2) = h.get("/api/v1/health", &h.read.clone());
        h2["pipeline"]["file_ops"]["sensitive_read"] == 3
    }));
    assert_eq!(
        findings(&h, "sensitive_read").len(),
        2,
        "exempt comm is no finding"
    );
    if !lsm {
        // Tracepoints cannot deny (`sensors.sensitive.enforce` says so): the rest is
        // BPF-LSM's, proven in `cargo xtask vmtest`'s guests.
        return;
    }
    // Enforcing: the web user is denied the file however it is named (here through
    // a symlink of its own), root is not, and a denial is a finding even for an
    // exempt comm (the reader chooses its comm).
    let cfg = std::fs::read_to_string(&h.config).expect("config");
    std::fs::write(
        &h.config,
        cfg.replace(
            "    exempt_comms: [rampart-exempt]\n",
            "    exempt_comms: [rampart-exempt]\n    enforce: true\n    dry_run: false\n",
        ),
    )
    .expect("config");
    h.stop();
    h.restart();
    let link = site.join("innocent.txt");
    std::os::unix::fs::symlink(&secret, &link).expect("symlink");
    let denied = |uid: u32, program: &std::path::Path, path: &std::path::Path| {
        let out = Command::new(program)
            .arg(path)
            .uid(uid)
            .gid(uid)
            .output()
            .expect("cat");
        assert!(
            !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
            "{} as {uid} must be denied: {out:?}",
            path.display()
        );
    };
    denied(33, std::path::Path::new("cat"), &link);
    denied(33, &dir.path().join("rampart-exempt"), &secret);
    read_as(0, &secret, "cat");
    let denials = || {
        findings(&h, "sensitive_read")
            .into_iter()
            .filter(|x| {
                x["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("was denied"))
                    && x["path"] == secret.to_str().expect("utf8")
            })
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(10), || denials() >= 1),
        "no denial finding: {:?}",
        findings(&h, "sensitive_read")
    );
    // Both denials were reported by the kernel, under the file's real path.
    assert!(wait_for(Duration::from_secs(5), || {
        let (_, h2) = h.get("/api/v1/health", &h.read.clone());
        h2["kernel"]["file_sensor"]["sensitive_emitted"] == 2
    }));
    h.stop();
}
