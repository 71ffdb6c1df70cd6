// SPDX-License-Identifier: GPL-2.0-only
//! Attacks by a local user (run as `nobody`) on the running agent that must fail:
//! idle connections must neither blind the sensors nor lock the admin out, and
//! guessing at the login is throttled.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use integration_test::{as_nobody, harness::Harness, wait_for};

const WEBSHELL: &str = "<?php system($_GET['cmd']); ?>\n";

/// The soft and hard "Max open files" of a process.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let mut n = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (n.next().expect("soft"), n.next().expect("hard"))
}

#[test]
fn idle_connections_from_a_local_user_neither_blind_the_agent_nor_lock_out_the_admin() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let pid = h.agent.as_ref().and_then(|a| a.pid()).expect("agent pid");
    let (soft, hard) = nofile(pid);
    assert_eq!(soft, hard, "the agent raised its open-file limit from 1024");

    // 5,000 connections from an unprivileged user, each from its own loopback
    // address, held idle and re-opened as the agent closes them.
    let mut flood = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", h.net.ns_a))
        .args([
            "--",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_idle-conns"))
        .args(["127.0.0.1:9443", "5000", "spread"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("idle-conns");
    let mut first = String::new();
    BufReader::new(flood.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("idle-conns reports");
    assert!(first.starts_with("open "), "{first}");

    // The agent's own descriptors stay far from its limit.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count() as u64;
    assert!(
        fds < 1024,
        "the agent holds {fds} descriptors under the flood"
    );

    // A webshell written meanwhile is still found...
    std::fs::write(h.www.join("flood-shell.php"), WEBSHELL).expect("webshell");
    let admin = h.admin.clone();
    let found = wait_for(Duration::from_secs(30), || {
        let (s, v) = h.request_from(Some("127.0.0.2"), "GET", "/api/v1/findings", &admin, None);
        s == 200
            && v.as_array().is_some_and(|a| {
                a.iter().any(|f| {
                    f["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("flood-shell.php"))
                })
            })
    });
    assert!(
        found,
        "webshell not found under the flood; log:\n{}",
        h.log()
    );
    // ...and the admin, from another address, is answered.
    let (s, _) = h.request_from(Some("127.0.0.2"), "GET", "/api/v1/status", &admin, None);
    assert_eq!(s, 200);
    let (s, metrics) = h.request_from(Some("127.0.0.2"), "GET", "/metrics", &admin, None);
    assert_eq!(s, 200);
    let text = metrics.as_str().expect("metrics text");
    let metric = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    // Every loopback address is one client: the flood made room for itself by closing
    // its own idle connections (and nobody else's) far more often than 4,000 times.
    let evicted = metric("rampart_api_connections_evicted_total");
    assert!(evicted >= 4000, "{evicted} evicted of 5000");
    assert!(
        metric("rampart_api_connections_open") <= 64,
        "the loopback client holds at most its per-client cap"
    );

    drop(flood.stdin.take());
    let _ = flood.kill();
    let _ = flood.wait();
}

#[test]
fn guessing_at_the_login_is_throttled_per_client() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let codes: Vec<u16> = (0..12)
        .map(|i| h.login(&format!("wrong-guess-number-{i:04}-xxxxxxxx")).0)
        .collect();
    assert_eq!(&codes[..5], &[401; 5], "{codes:?}");
    assert_eq!(&codes[5..], &[429; 7], "{codes:?}");
    // A guessed Bearer token is refused without even being checked now.
    let (s, _) = h.get("/api/v1/status", "another-wrong-guess-0000000000");
    assert_eq!(s, 429);
    // The admin's Bearer token still works: only guesses are limited.
    let (s, _) = h.get("/api/v1/status", &h.admin.clone());
    assert_eq!(s, 200);
}

/// The id of the active finding for `path`, once there is one.
fn finding_for(h: &Harness, path: &std::path::Path) -> i64 {
    let want = path.display().to_string();
    let mut id = None;
    let found = wait_for(Duration::from_secs(30), || {
        let (_, v) = h.get("/api/v1/findings", &h.admin.clone());
        id = v.as_array().and_then(|a| {
            a.iter()
                .find(|f| f["path"] == want.as_str())
                .and_then(|f| f["id"].as_i64())
        });
        id.is_some()
    });
    assert!(found, "no finding for {want}; log:\n{}", h.log());
    id.expect("id")
}

/// A customer's webshell is found; before the operator presses "fix", the customer
/// swaps its directory for a symlink to a root directory holding a file of the
/// same name, then (second round) swaps the file itself for a hard link to a file
/// outside the tree. Neither time may the fix remove or quarantine anything else.
#[test]
fn a_customer_cannot_point_the_fix_at_another_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    // The customer's site inside the watched tree, theirs to change.
    let chmod = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    chmod(h.dir.path(), 0o711);
    chmod(&h.www, 0o755);
    let site = h.www.join("site");
    std::fs::create_dir(&site).expect("mkdir site");
    nix::unistd::chown(&site, Some(65534.into()), Some(65534.into())).expect("chown");
    let (d, shell) = (site.join("d"), site.join("d/x.php"));
    let src = h.dir.path().join("download.php");
    std::fs::write(&src, WEBSHELL).expect("source");
    chmod(&src, 0o644);
    as_nobody(&format!(
        "mkdir {d} && cp {src} {shell}",
        d = d.display(),
        src = src.display(),
        shell = shell.display()
    ));
    let id = finding_for(&h, &shell);

    // Round 1: the directory becomes a symlink to root's directory.
    let victim = h.dir.path().join("victim");
    std::fs::create_dir(&victim).expect("mkdir victim");
    std::fs::write(victim.join("x.php"), b"root's file").expect("victim file");
    as_nobody(&format!(
        "mv {d} {d}-moved && ln -s {v} {d}",
        d = d.display(),
        v = victim.display()
    ));
    let (s, r) = h.post("/api/v1/fix", serde_json::json!({ "id": id }));
    assert_eq!(s, 409, "{r}");
    assert_eq!(
        std::fs::read(victim.join("x.php")).expect("victim intact"),
        b"root's file"
    );

    // Round 2: the same name, now a hard link to a file outside the tree.
    let outside = h.dir.path().join("outside.txt");
    std::fs::write(&outside, b"not the webshell").expect("outside file");
    nix::unistd::chown(&outside, Some(65534.into()), Some(65534.into())).expect("chown");
    as_nobody(&format!(
        "rm {d} && mv {d}-moved {d} && rm {shell} && ln {o} {shell}",
        d = d.display(),
        shell = shell.display(),
        o = outside.display()
    ));
    let (s, r) = h.post("/api/v1/fix", serde_json::json!({ "id": id }));
    assert_eq!(s, 409, "{r}");
    assert!(shell.exists(), "the link is left alone");
    assert_eq!(
        std::fs::read(&outside).expect("intact"),
        b"not the webshell"
    );
    let (_, q) = h.get("/api/v1/quarantine", &h.admin.clone());
    assert_eq!(
        q.as_array().map(Vec::len),
        Some(0),
        "nothing quarantined: {q}"
    );
}

/// Unmounts on drop, also when the test fails.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The file sensor cannot start (its watched tree is on a filesystem fanotify
/// cannot mark, as on Debian 12's 9p root): the agent reports it (failed
/// component, backend "none", a finding) and runs on, firewall and API included.
#[test]
fn a_sensor_that_cannot_start_is_reported_and_skipped() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let mut h = Harness::start_with(
        net,
        "",
        "egress:\n  enabled: false\nexec:\n  enabled: false\nsensors:\n  file_backend: fanotify\n",
    );
    h.stop();
    // procfs has no file handles: fanotify's filesystem mark refuses it.
    let st = Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&h.www)
        .status()
        .expect("mount");
    assert!(st.success(), "mount proc over the watched tree");
    let _mounted = Mounted(h.www.clone());
    h.restart();
    let (s, health) = h.get("/api/v1/health", &h.admin.clone());
    assert_eq!(s, 200, "{health}");
    let text = health.to_string();
    assert!(
        text.contains("\"none\""),
        "the file backend is none: {health}"
    );
    let (s, comps) = h.get("/api/v1/components", &h.admin.clone());
    assert_eq!(s, 200);
    assert!(
        comps.to_string().contains("\"failed\""),
        "a failed component: {comps}"
    );
    let (_, findings) = h.get("/api/v1/findings", &h.admin.clone());
    assert!(
        findings
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["check"] == "sensor_failed")),
        "{findings}"
    );
    // The firewall still answers.
    let (s, fw) = h.get("/api/v1/firewall/status", &h.admin.clone());
    assert_eq!(s, 200, "{fw}");
    h.stop();
}
