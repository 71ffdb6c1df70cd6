// SPDX-License-Identifier: GPL-2.0-only
//! SSH brute force to an XDP block, end to end: failed-login lines from the peer's
//! address are appended to a watched sshd log; after the scenario's capacity the
//! agent blocks the peer in XDP and its TCP connect to a service in the agent's
//! namespace is dropped. In dry run the same burst is a finding only. The log is
//! rotated in between; offsets survive a restart (no line read twice).

use std::{io::Write, path::Path, time::Duration};

use integration_test::{harness::Harness, tcp_connects, wait_for, Listener};

fn append(p: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .expect("open log");
    for l in lines {
        writeln!(f, "{l}").expect("append");
    }
}

fn ssh_findings(h: &Harness) -> Vec<serde_json::Value> {
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    f.as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["check"] == "ssh_bruteforce")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn logs_stat(h: &Harness, key: &str) -> u64 {
    let (_, v) = h.get("/api/v1/health", &h.read.clone());
    v["logs"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("logs.{key} in {v}"))
}

#[test]
fn ssh_bruteforce_dry_run_then_blocked_in_xdp() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let (mut h, dir, log) = Harness::with_sshd_log(
        net,
        "auto_response:\n  enabled: true\n  dry_run: true\n  ban_secs: 600\n",
    );
    let peer = h.net.ip_b;
    let svc: std::net::SocketAddr = format!("{}:8022", h.net.ip_a).parse().expect("addr");
    let _listener = Listener::start(&h.net.ns_a.clone(), svc);
    assert!(
        tcp_connects(&h.net.ns_b, svc),
        "peer reaches the service before"
    );

    // Dry run: five failures are below capacity; the sixth overflows → finding only.
    append(&log, &integration_test::sshd_failures(peer, 5, "dry"));
    assert!(wait_for(Duration::from_secs(10), || logs_stat(
        &h, "failures"
    ) == 5));
    assert!(ssh_findings(&h).is_empty(), "below capacity: no finding");
    append(&log, &integration_test::sshd_failures(peer, 1, "dry-last"));
    assert!(
        wait_for(Duration::from_secs(10), || !ssh_findings(&h).is_empty()),
        "no ssh_bruteforce finding; log:\n{}",
        h.log()
    );
    let f = &ssh_findings(&h)[0];
    assert_eq!(f["ip"], peer);
    let d = f["details"].as_str().unwrap_or_default();
    assert!(
        d.contains("dry run: would block for 600 s") && d.contains("dry0"),
        "{f}"
    );
    assert!(tcp_connects(&h.net.ns_b, svc), "dry run blocks nothing");
    let (_, st) = h.get(
        &format!("/api/v1/firewall/check?ip={peer}"),
        &h.admin.clone(),
    );
    assert_eq!(st["blocked"], false, "{st}");

    // Enforce. Restart: the offsets were saved, old lines are not read again.
    let cfg = std::fs::read_to_string(&h.config).expect("config");
    std::fs::write(
        &h.config,
        cfg.replace("dry_run: true\n  ban_secs", "dry_run: false\n  ban_secs"),
    )
    .expect("config");
    h.stop();
    h.restart();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        logs_stat(&h, "lines"),
        0,
        "no line read twice after a restart"
    );

    // logrotate in the middle of the burst: rename + new file.
    append(&log, &integration_test::sshd_failures(peer, 3, "real"));
    std::fs::rename(&log, dir.path().join("auth.log.1")).expect("rotate");
    append(&log, &integration_test::sshd_failures(peer, 3, "rotated"));
    assert!(
        wait_for(Duration::from_secs(10), || !tcp_connects(&h.net.ns_b, svc)),
        "peer not blocked; log:\n{}",
        h.log()
    );
    assert_eq!(
        logs_stat(&h, "failures"),
        6,
        "every line of both files, once"
    );
    let (_, st) = h.get(
        &format!("/api/v1/firewall/check?ip={peer}"),
        &h.admin.clone(),
    );
    assert_eq!(st["blocked"], true, "{st}");
    assert_eq!(st["blocked_by"]["source"], "auto_response", "{st}");
    assert!(
        st["blocked_by"]["expires_at"].is_string(),
        "a ban has a TTL: {st}"
    );
    let blocked = ssh_findings(&h)
        .into_iter()
        .find(|f| {
            f["details"]
                .as_str()
                .is_some_and(|d| d.contains("blocked in XDP"))
        })
        .expect("a finding for the block");
    assert_eq!(blocked["ip"], peer);

    // The threat database saw every failure and both triggers (dry run and block).
    let admin = h.admin.clone();
    let (s, t) = h.get(&format!("/api/v1/threat/ip?ip={peer}"), &admin);
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["summary"]["events"], 14, "12 failures + 2 triggers: {t}");
    assert_eq!(t["summary"]["triggers"], 2, "{t}");
    assert_eq!(
        t["summary"]["score"], 78,
        "14 events × 2 + 2 triggers × 25: {t}"
    );
    assert_eq!(t["blocked"], true, "{t}");
    let (_, top) = h.get("/api/v1/threat/top-attackers", &admin);
    assert_eq!(top[0]["ip"], peer, "{top}");
    assert_eq!(top[0]["blocked"], true, "{top}");
    let (_, evs) = h.get(&format!("/api/v1/threat/events?ip={peer}&limit=2"), &admin);
    assert_eq!(evs.as_array().map(Vec::len), Some(2), "{evs}");
    assert_eq!(evs[0]["kind"], "ssh_bruteforce", "newest first: {evs}");
    let (_, st) = h.get("/api/v1/threat/stats", &admin);
    assert_eq!(
        (st["events_24h"].as_i64(), st["unique_ips_24h"].as_i64()),
        (Some(14), Some(1)),
        "{st}"
    );
    assert_eq!(st["hourly"].as_array().map(Vec::len), Some(24), "{st}");
    assert_eq!(h.get("/api/v1/threat/ip?ip=nope", &admin).0, 400);
    assert_eq!(
        h.get("/api/v1/threat/stats", &h.read.clone()).0,
        401,
        "threat detail is admin-only"
    );
    // Whitelist (another address: allowing the peer would unblock it).
    let other = "203.0.113.77";
    assert_eq!(
        h.post(
            "/api/v1/threat/temp-whitelist-ip",
            serde_json::json!({ "ip": other })
        )
        .0,
        400
    );
    let (s, w) = h.post(
        "/api/v1/threat/temp-whitelist-ip",
        serde_json::json!({ "ip": other, "duration": 600, "reason": "support session" }),
    );
    assert_eq!(s, 200, "{w}");
    let (_, wl) = h.get("/api/v1/threat/whitelist", &admin);
    assert!(
        wl.as_array().is_some_and(|a| a
            .iter()
            .any(|e| e["ip"] == other && e["expires_at"].is_string())),
        "{wl}"
    );
    assert_eq!(
        h.post(
            "/api/v1/threat/unwhitelist-ip",
            serde_json::json!({ "ip": other })
        )
        .0,
        200
    );
    assert_eq!(
        h.post(
            "/api/v1/threat/unwhitelist-ip",
            serde_json::json!({ "ip": other })
        )
        .0,
        404
    );
    let (s, c) = h.post("/api/v1/threat/clear-ip", serde_json::json!({ "ip": peer }));
    assert_eq!((s, c["cleared"].as_i64()), (200, Some(14)), "{c}");
    let (_, t) = h.get(&format!("/api/v1/threat/ip?ip={peer}"), &admin);
    assert_eq!(t["known"], false, "{t}");
    let (_, db) = h.get("/api/v1/threat/db-stats", &admin);
    assert_eq!(db["events"], 0, "{db}");

    // Hostile lines: counted, never fatal.
    append(
        &log,
        &["\u{0}\u{1}garbage".to_string(), "x".repeat(100_000)],
    );
    assert!(wait_for(Duration::from_secs(10), || logs_stat(
        &h,
        "malformed"
    ) >= 2));
    h.stop();
}

fn findings_of(h: &Harness, check: &str) -> Vec<serde_json::Value> {
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    f.as_array()
        .map(|a| a.iter().filter(|x| x["check"] == check).cloned().collect())
        .unwrap_or_default()
}

fn blocked(h: &Harness, ip: &str) -> bool {
    let (_, st) = h.get(&format!("/api/v1/firewall/check?ip={ip}"), &h.admin.clone());
    st["blocked"] == true
}

/// Mail, ModSecurity and the operator's undo, end to end: a dovecot line reporting
/// six failed attempts from the peer (IPv4-mapped, as dual-stack dovecot logs it)
/// blocks it in XDP; ModSecurity records and exim
/// deferrals written to their logs show in `/modsec/*` and `/email/*` (503 while the
/// host has no such log); a bulk block and a bulk unblock are undone within 30 s, a
/// second undo of the same token is 410.
#[test]
fn mail_bruteforce_reports_and_bulk_undo() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (maillog, exim, modsec) = (
        dir.path().join("maillog"),
        dir.path().join("exim_mainlog"),
        dir.path().join("modsec_audit.log"),
    );
    std::fs::write(&maillog, "").expect("log");
    std::fs::write(&exim, "").expect("log");
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nlogs:\n  dovecot: [{}]\n  exim: [{}]\n  modsec: [{}]\nauto_response:\n  enabled: true\n  dry_run: false\n  ban_secs: 600\n",
        maillog.display(),
        exim.display(),
        modsec.display()
    );
    let h = Harness::start_with(net, "", &top);
    let (admin, read) = (h.admin.clone(), h.read.clone());
    let peer = h.net.ip_b;
    let svc: std::net::SocketAddr = format!("{}:8025", h.net.ip_a).parse().expect("addr");
    let _listener = Listener::start(&h.net.ns_a.clone(), svc);
    assert!(
        tcp_connects(&h.net.ns_b, svc),
        "peer reaches the service before"
    );

    // No ModSecurity log on this "host" yet: 503 with the paths looked at.
    let (s, e) = h.get("/api/v1/modsec/stats", &read);
    assert_eq!(s, 503, "{e}");
    assert!(e.to_string().contains("modsec_audit.log"), "{e}");
    let (s, st) = h.get("/api/v1/email/stats", &admin);
    assert_eq!((s, st["deferrals"].as_i64()), (200, Some(0)), "{st}");

    // One dovecot line stands for six attempts: over the capacity of five. A
    // dual-stack dovecot logs the IPv4 peer IPv4-mapped; the block is its IPv4
    // address (the firewall refuses mapped ones).
    append(&maillog, &[format!("Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (auth failed, 6 attempts in 14 secs): user=<info@example.com>, method=PLAIN, rip=::ffff:{peer}, lip=::ffff:192.0.2.2, TLS, session=<x>")]);
    assert!(
        wait_for(Duration::from_secs(10), || !tcp_connects(&h.net.ns_b, svc)),
        "peer not blocked; log:\n{}",
        h.log()
    );
    let f = findings_of(&h, "mail_bruteforce");
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0]["details"]
            .as_str()
            .is_some_and(|d| d.contains("info@example.com") && d.contains("blocked in XDP")),
        "{}",
        f[0]
    );

    // ModSecurity (serial audit log, created after the start) and exim deferrals.
    append(&modsec, &[
        "--a1-A--".into(),
        "[23/Nov/2026:15:00:01 +0000] Uq1 203.0.113.50 5000 192.0.2.2 443".into(),
        "--a1-B--".into(),
        "GET /?id=1+union+select HTTP/1.1".into(),
        "Host: shop.example".into(),
        "--a1-H--".into(),
        "Message: Access denied with code 403 (phase 2). [id \"942100\"] [msg \"SQL Injection Attack\"] [severity \"CRITICAL\"]".into(),
        "--a1-Z--".into(),
    ]);
    append(&exim, &[
        "2026-11-23 15:00:02 1tAbcD-000123-Ab == bob@gmail.com R=lookuphost T=remote_smtp defer (-44) H=gmail-smtp-in.l.google.com [142.250.1.27] I=[192.0.2.2]:40000: SMTP error from remote mail server after RCPT TO:<bob@gmail.com>: 421-4.7.28 Unusual rate".into(),
    ]);
    assert!(
        wait_for(Duration::from_secs(10), || {
            let (s, v) = h.get("/api/v1/modsec/stats", &read);
            s == 200 && v["total_blocked"] == 1
        }),
        "modsec record not reported; log:\n{}",
        h.log()
    );
    let (_, b) = h.get("/api/v1/modsec/blocks", &read);
    assert_eq!(
        (b[0]["ip"].as_str(), b[0]["rules"][0].as_str()),
        (Some("203.0.113.50"), Some("942100")),
        "{b}"
    );
    let (_, ev) = h.get("/api/v1/modsec/events?ip=203.0.113.50", &read);
    assert_eq!(
        (ev[0]["host"].as_str(), ev[0]["action"].as_str()),
        (Some("shop.example"), Some("blocked")),
        "{ev}"
    );
    assert_eq!(
        h.get("/api/v1/modsec/rules", &read).0,
        401,
        "rules need admin"
    );
    assert!(wait_for(Duration::from_secs(10), || {
        let (_, d) = h.get("/api/v1/email/deferrals", &read);
        d[0]["provider"] == "gmail"
    }));
    let (_, d) = h.get("/api/v1/email/deferrals", &read);
    assert_eq!(
        (
            d[0]["sending_ip"].as_str(),
            d[0]["codes"][0]["code"].as_str()
        ),
        (Some("192.0.2.2"), Some("421 4.7.28")),
        "{d}"
    );
    let (_, g) = h.get("/api/v1/email/groups?kind=auth_failure", &read);
    assert_eq!(
        (g[0]["kind"].as_str(), g[0]["ip"].as_str()),
        (Some("auth_failure"), Some(peer)),
        "{g}"
    );

    // Bulk block two addresses, see the pending undo, run it: both unblocked.
    let (s, r) = h.post("/api/v1/threat/bulk-action", serde_json::json!({"action": "block", "ips": ["203.0.113.60", "203.0.113.61", "not-an-ip"], "reason": "campaign"}));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["succeeded"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["failed"][0]["ip"], "not-an-ip", "{r}");
    let token = r["undo_token"].as_str().expect("undo_token").to_string();
    assert!(blocked(&h, "203.0.113.60") && blocked(&h, "203.0.113.61"));
    let (_, p) = h.get("/api/v1/undo/pending", &admin);
    assert_eq!(
        (
            p["id"].as_str(),
            p["inverse"].as_str(),
            p["summary"].as_str()
        ),
        (
            Some(token.as_str()),
            Some("threat_bulk_unblock"),
            Some("Blocked 2 IPs")
        ),
        "{p}"
    );
    assert_eq!(
        h.get("/api/v1/undo/pending", &read).0,
        401,
        "undo is admin-only"
    );
    let (s, u) = h.post("/api/v1/undo/run", serde_json::json!({"id": token}));
    assert_eq!(
        (s, u["count"].as_i64(), u["action"].as_str()),
        (200, Some(2), Some("threat_bulk_block")),
        "{u}"
    );
    assert!(!blocked(&h, "203.0.113.60") && !blocked(&h, "203.0.113.61"));
    let (s, _) = h.post("/api/v1/undo/run", serde_json::json!({"id": token}));
    assert_eq!(s, 410, "a token is good once");

    // Bulk unblock the auto-blocked peer, then undo: it is blocked again, with a TTL.
    let (s, r) = h.post("/api/v1/unblock-bulk", serde_json::json!({"ips": [peer]}));
    assert_eq!(s, 200, "{r}");
    assert!(
        wait_for(Duration::from_secs(5), || tcp_connects(&h.net.ns_b, svc)),
        "unblocked"
    );
    assert!(r["undo_token"].is_string(), "{r}");
    let (s, u) = h.post("/api/v1/undo/run", serde_json::json!({}));
    assert_eq!(
        (s, u["inverse"].as_str(), u["count"].as_i64()),
        (200, Some("firewall_bulk_reblock"), Some(1)),
        "{u}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || !tcp_connects(&h.net.ns_b, svc)),
        "reblocked"
    );
    let (_, st) = h.get(&format!("/api/v1/firewall/check?ip={peer}"), &admin);
    assert!(
        st["blocked_by"]["expires_at"].is_string(),
        "the ban keeps its TTL: {st}"
    );
    let (_, audit) = h.get("/api/v1/audit", &admin);
    for action in [
        "threat_bulk_block",
        "undo_threat_bulk_block",
        "undo_firewall_bulk_unblock",
    ] {
        assert!(
            audit
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["action"] == action)),
            "{action} in {audit}"
        );
    }
}

/// Append entries to a journal file in `dir`, as journald would: the export format
/// through systemd-journal-remote (the real journal file writer), read back by the
/// agent's `journalctl --directory`.
/// Each entry is written by its daemon: root, `/usr/sbin/<ident>`.
fn journal_append(dir: &Path, entries: &[(&str, String)]) {
    journal_write(dir, entries, None)
}

/// Entries a local user wrote with `logger -t <ident>` (journald's trusted fields
/// say so).
fn journal_forge(dir: &Path, entries: &[(&str, String)]) {
    journal_write(
        dir,
        entries,
        Some("_UID=65534\n_GID=65534\n_COMM=logger\n_EXE=/usr/bin/logger\n"),
    )
}

fn journal_write(dir: &Path, entries: &[(&str, String)], writer: Option<&str>) {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut export = String::new();
    for (ident, msg) in entries {
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let trusted = match writer {
            Some(w) => w.to_string(),
            None => format!("_UID=0\n_GID=0\n_COMM={ident}\n_EXE=/usr/sbin/{ident}\n"),
        };
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=web1\nSYSLOG_IDENTIFIER={ident}\n_PID=4242\n{trusted}MESSAGE={msg}\n\n",
            1_795_446_000_000_000u64 + n * 1_000_000,
            n * 1000
        ));
    }
    let f = dir.join("export.txt");
    std::fs::write(&f, export).expect("export");
    let out = std::process::Command::new("/lib/systemd/systemd-journal-remote")
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg(&f)
        .output()
        .expect("systemd-journal-remote (apt package systemd-journal-remote)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&f).expect("rm export");
}

/// sshd logging only to the journal: failed logins in journal entries trigger like
/// log lines, other identifiers are ignored, and the cursor survives a restart.
#[test]
fn journald_entries_trigger_and_resume_after_restart() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let jdir = tempfile::tempdir().expect("tempdir");
    journal_append(jdir.path(), &[("cron", "before the agent".into())]);
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nlogs:\n  journald:\n    mode: on\n    directory: {}\nauto_response:\n  enabled: true\n  dry_run: true\n",
        jdir.path().display()
    );
    let mut h = Harness::start_with(net, "", &top);
    assert!(
        wait_for(Duration::from_secs(10), || h
            .log()
            .contains("Following the journal.")),
        "{}",
        h.log()
    );
    // The first start reads from the end of the journal, and journalctl is ready
    // only once it has opened the files: write a harmless sshd entry until the
    // agent reads one (a busy CI machine can take seconds).
    let ready = (0..20).any(|_| {
        journal_append(
            jdir.path(),
            &[("sshd", "Server listening on 0.0.0.0 port 22.".into())],
        );
        wait_for(Duration::from_secs(1), || logs_stat(&h, "lines") >= 1)
    });
    assert!(ready, "the journal is never read; log:\n{}", h.log());
    let base = logs_stat(&h, "lines");
    let peer = h.net.ip_b;
    // A local user's forgeries naming a third party come first: counted as
    // untrusted, charged to nobody.
    let forged: Vec<(&str, String)> = (0..10)
        .map(|i| {
            (
                "sshd",
                format!(
                    "Failed password for root from 198.51.100.77 port {} ssh2",
                    50000 + i
                ),
            )
        })
        .collect();
    journal_forge(jdir.path(), &forged);
    let mut entries: Vec<(&str, String)> = (0..6)
        .map(|i| {
            (
                "sshd",
                format!(
                    "Failed password for invalid user j{i} from {peer} port {} ssh2",
                    40000 + i
                ),
            )
        })
        .collect();
    entries.push((
        "cron",
        format!("Failed password for root from {peer} port 1 ssh2"),
    ));
    journal_append(jdir.path(), &entries);
    assert!(
        wait_for(Duration::from_secs(10), || !findings_of(
            &h,
            "ssh_bruteforce"
        )
        .is_empty()),
        "no finding from the journal; log:\n{}",
        h.log()
    );
    let f = &findings_of(&h, "ssh_bruteforce")[0];
    assert_eq!(f["ip"], peer, "{f}");
    assert!(
        f["details"]
            .as_str()
            .is_some_and(|d| d.contains("j0") && d.contains("dry run")),
        "{f}"
    );
    assert_eq!(logs_stat(&h, "failures"), 6, "the cron entry is not sshd's");
    assert_eq!(logs_stat(&h, "untrusted"), 10, "the forged entries");
    assert_eq!(
        logs_stat(&h, "lines"),
        base + 16,
        "cron's entries are filtered out by journalctl"
    );
    assert!(
        findings_of(&h, "ssh_bruteforce")
            .iter()
            .all(|f| f["ip"] != "198.51.100.77"),
        "a forged line is charged to nobody"
    );

    // Restart: the cursor was saved; nothing is read twice, new entries are read.
    h.stop();
    h.restart();
    assert!(wait_for(Duration::from_secs(10), || h
        .log()
        .contains("Following the journal.")));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        logs_stat(&h, "lines"),
        0,
        "no entry read twice after a restart"
    );
    journal_append(
        jdir.path(),
        &[(
            "sshd",
            format!("Failed password for root from {peer} port 2 ssh2"),
        )],
    );
    assert!(
        wait_for(Duration::from_secs(10), || logs_stat(&h, "failures") == 1),
        "{}",
        h.log()
    );
    h.stop();
}

/// The agent's own `journalctl` children (by parent pid and name).
fn journalctl_children(agent: u32) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm.ends_with("(journalctl") && ppid == Some(agent) {
            found.push(pid);
        }
    }
    found
}

fn log_watcher(h: &Harness) -> serde_json::Value {
    let (_, v) = h.get("/api/v1/health", &h.read.clone());
    v["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "log watcher").cloned())
        .unwrap_or_else(|| panic!("no log watcher task in {v}"))
}

/// Supervision: the log watcher loses its journal reader (journalctl killed); the
/// watcher dies, is restarted, and says so in /health, /components, /metrics and a
/// finding; entries written meanwhile are read after the restart (from the cursor).
#[test]
fn killed_journal_reader_restarts_the_log_watcher_visibly() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let jdir = tempfile::tempdir().expect("tempdir");
    journal_append(jdir.path(), &[("cron", "before the agent".into())]);
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nlogs:\n  journald:\n    mode: on\n    directory: {}\n",
        jdir.path().display()
    );
    let mut h = Harness::start_with(net, "", &top);
    let ready = (0..20).any(|_| {
        journal_append(
            jdir.path(),
            &[("sshd", "Server listening on 0.0.0.0 port 22.".into())],
        );
        wait_for(Duration::from_secs(1), || logs_stat(&h, "lines") >= 1)
    });
    assert!(ready, "the journal is never read; log:\n{}", h.log());
    let w = log_watcher(&h);
    assert_eq!(
        (w["state"].as_str(), w["restarts"].as_u64()),
        (Some("running"), Some(0)),
        "{w}"
    );
    let agent = h.agent.as_ref().and_then(|a| a.pid()).expect("agent pid");
    let children = journalctl_children(agent);
    assert_eq!(children.len(), 1, "one journalctl child: {children:?}");
    // Let the cursor of what was read be saved (every 5 s), then kill the reader.
    std::thread::sleep(Duration::from_secs(6));
    let base = logs_stat(&h, "lines");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(children[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill journalctl");
    // Written while the watcher is down or restarting: read after the restart.
    let peer = h.net.ip_b;
    journal_append(
        jdir.path(),
        &[(
            "sshd",
            format!("Failed password for root from {peer} port 3 ssh2"),
        )],
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            let w = log_watcher(&h);
            w["restarts"] == 1 && w["state"] == "running"
        }),
        "never restarted: {}; log:\n{}",
        log_watcher(&h),
        h.log()
    );
    let w = log_watcher(&h);
    let why = w["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("journalctl ended") && why.contains("signal: 9"),
        "{w}"
    );
    assert!(
        wait_for(Duration::from_secs(15), || logs_stat(&h, "failures") == 1),
        "the entry written while the watcher was down is never read; log:\n{}",
        h.log()
    );
    assert_eq!(logs_stat(&h, "lines"), base + 1, "nothing read twice");
    let new_children = journalctl_children(agent);
    assert_eq!(new_children.len(), 1, "{new_children:?}");
    assert_ne!(new_children[0], children[0], "a new journalctl");

    let (_, c) = h.get("/api/v1/components", &h.read.clone());
    let comp = c
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "log watcher").cloned())
        .unwrap_or_else(|| panic!("{c}"));
    assert_eq!(comp["kind"], "task", "{comp}");
    assert_eq!(comp["state"], "running", "{comp}");
    assert!(
        comp["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("restarted 1 time(s); last: journalctl ended")),
        "{comp}"
    );
    let f = findings_of(&h, "task_failed");
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"log watcher\"")),
        "{}",
        f[0]
    );
    let (_, metrics) = h.get("/metrics", &h.admin.clone());
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("rampart_task_restarts_total{task=\"log watcher\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_task_up{task=\"log watcher\"} 1"),
        "{metrics}"
    );
    h.stop();
}

/// A real rsyslogd, as on a Debian/RHEL host: it writes what arrives on its socket
/// into `file`, whoever sent it. Stopped (and waited for) on drop.
struct Rsyslog {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, file: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let socket = dir.join("log.sock");
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).expect("workdir");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{}\")\nmodule(load=\"imuxsock\" SysSock.Use=\"off\")\ninput(type=\"imuxsock\" Socket=\"{}\")\n$FileCreateMode 0640\n*.* {}\n",
                work.display(),
                socket.display(),
                file.display()
            ),
        )
        .expect("rsyslog.conf");
        let child = std::process::Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("rsyslogd (apt package rsyslog)");
        assert!(
            wait_for(Duration::from_secs(10), || socket.exists()),
            "rsyslogd made no socket"
        );
        // Any local user may log, as through /dev/log.
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self { child, socket }
    }

    /// `logger -t TAG MSG` as `nobody`, through this rsyslogd.
    fn log_as_nobody(&self, tag: &str, msg: &str) {
        integration_test::run_ok(
            integration_test::nobody("logger")
                .arg("--socket-errors=on")
                .arg("-u")
                .arg(&self.socket)
                .args(["-t", tag, msg]),
            "logger",
        );
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local user logs `sshd` failures naming a third party through the system's
/// syslog daemon. Where a journal is kept, sshd is read from it, and the file the
/// syslog daemon writes is not read at all: the forgery counts nowhere. A daemon's
/// own log file (not a syslog daemon's) is still read.
#[test]
fn forged_syslog_lines_from_a_local_user_count_nowhere() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let jdir = dir.path().join("journal");
    std::fs::create_dir(&jdir).expect("mkdir");
    journal_append(&jdir, &[("cron", "before the agent".into())]);
    let (auth, own) = (dir.path().join("auth.log"), dir.path().join("proftpd.log"));
    std::fs::write(&own, "").expect("proftpd.log");
    let rsyslog = Rsyslog::start(dir.path(), &auth);
    rsyslog.log_as_nobody("sshd", "Server listening on 0.0.0.0 port 22.");
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&auth).is_ok_and(|s| s.contains("Server listening"))
    }));
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nlogs:\n  sshd: [{}]\n  ftp: [{}]\n  journald:\n    mode: auto\n    directory: {}\nauto_response:\n  enabled: true\n  dry_run: true\n",
        auth.display(),
        own.display(),
        jdir.display()
    );
    let mut h = Harness::start_with(net, "", &top);
    assert!(
        wait_for(Duration::from_secs(10), || h.log().contains(
            "Written by the syslog daemon: read from the journal instead."
        )),
        "{}",
        h.log()
    );
    for i in 0..10 {
        rsyslog.log_as_nobody(
            "sshd",
            &format!(
                "Failed password for root from 198.51.100.77 port {} ssh2",
                50000 + i
            ),
        );
    }
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&auth).is_ok_and(|s| s.matches("198.51.100.77").count() == 10)
    }));
    // proftpd's own log, written by the daemon (root) itself: read as always.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&own)
        .expect("open");
    for i in 0..3 {
        writeln!(
            f,
            "Nov 30 12:00:0{i} web1 proftpd[9]: web1 (203.0.113.8[203.0.113.8]) - USER bob: no such user found from 203.0.113.8 [203.0.113.8] to 10.0.0.1:21"
        )
        .expect("append");
    }
    drop(f);
    assert!(
        wait_for(Duration::from_secs(10), || logs_stat(&h, "lines") >= 3),
        "the daemon's own log is read; log:\n{}",
        h.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(logs_stat(&h, "lines"), 3, "none of the syslog file's lines");
    assert!(
        findings_of(&h, "ssh_bruteforce").is_empty(),
        "the forgery is charged to nobody"
    );
    h.stop();
}
