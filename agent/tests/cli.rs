// SPDX-License-Identifier: GPL-2.0-only
//! `rampart validate`: exit 0 on a good config, 64 with the key and reason on a bad one.

use std::process::Command;

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

#[test]
fn validate_accepts_the_embedded_default() {
    let out = rampart()
        .args(["validate", "--default-config"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

#[test]
fn validate_reports_key_and_reason_with_exit_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("rampart.yaml");
    for (yaml, key) in [
        (
            "sensors:\n  ringbuf_bytes: 12345\n",
            "sensors.ringbuf_bytes",
        ),
        ("webui:\n  listn: 127.0.0.1:1\n", "listn"),
        ("firewall: [\n", "invalid YAML"),
    ] {
        std::fs::write(&cfg, yaml).expect("write");
        let out = rampart()
            .args(["validate", "--config"])
            .arg(&cfg)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(64), "{yaml:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{yaml:?}: {err}");
    }
    // A drop-in breaks an otherwise good config: the drop-in's file is named.
    std::fs::write(&cfg, "state_dir: /tmp/x\n").expect("write");
    std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("conf.d/50-bad.yaml"),
        "watch:\n  paths: [relative]\n",
    )
    .expect("write");
    let out = rampart()
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("50-bad.yaml") && err.contains("watch.paths"),
        "{err}"
    );
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let out = rampart()
        .args(["validate", "--config", "/nonexistent/rampart.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rampart.yaml"));
}

/// `rampart replay`: historical sshd lines at their own pace. Six failures in one
/// second from one address would block it; six failures 20 s apart would not; hostile
/// lines are counted. Exit 3 when something would have been blocked, 0 when not.
#[test]
fn replay_prints_what_would_have_been_blocked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("auth.log");
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&format!(
            "Nov 23 15:00:0{i} web1 sshd[7]: Failed password for invalid user u{i} from 203.0.113.5 port 4{i} ssh2\n"
        ));
    }
    // Six failures 20 s apart leak away: no block (only if replay keeps the lines' time).
    for m in 0..6 {
        text.push_str(&format!(
            "Nov 23 16:{:02}:{:02} web1 sshd[7]: Failed password for root from 198.51.100.7 port 1 ssh2\n",
            m / 3,
            (m % 3) * 20
        ));
    }
    text.push_str("\u{0}garbage\n");
    std::fs::write(&log, &text).expect("write");
    let out = rampart()
        .args(["replay", "--default-config", "--source", "sshd"])
        .arg(&log)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("would block 203.0.113.5") && stdout.contains("u0,u1,u2,u3,u4,u5"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"malformed\":1"));

    std::fs::write(
        &log,
        "Nov 23 16:00:01 web1 sshd[7]: Accepted publickey for a from 198.51.100.7 port 1 ssh2\n",
    )
    .expect("write");
    let out = rampart()
        .args(["replay", "--default-config"])
        .arg(&log)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let out = rampart()
        .args(["replay", "--default-config", "--source", "smtp"])
        .arg(&log)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(64),
        "unknown source is a usage error"
    );
}

/// Every source replays through its own grammar into its scenario: six mail logins
/// from one address (dovecot and exim), a cPanel burst, an access-log probe of
/// distinct paths, ModSecurity denials in a serial audit log, and a mail flood from
/// one account (a finding, not a block).
#[test]
fn replay_reads_every_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let burst = |f: &dyn Fn(usize) -> String, n: usize| (0..n).map(f).collect::<String>();
    let modsec = |i: usize| {
        format!(
            "--r{i}-A--\n[23/Nov/2026:15:00:0{} +0000] U{i} 203.0.113.20 1 192.0.2.2 443\n--r{i}-B--\nGET /?q=union+select HTTP/1.1\nHost: shop.example\n--r{i}-H--\nMessage: Access denied with code 403 (phase 2). [id \"942100\"] [msg \"SQLi\"]\n--r{i}-Z--\n",
            i % 10
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "dovecot",
            burst(
                &|i| {
                    format!("Nov 23 15:00:0{i} m dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u{i}@example.com>, method=PLAIN, rip=203.0.113.10, lip=192.0.2.2, TLS\n")
                },
                6,
            ),
            "would block 203.0.113.10 (mail_bruteforce)",
        ),
        (
            "exim",
            burst(
                &|i| {
                    format!("2026-11-23 15:00:0{i} dovecot_login authenticator failed for (x) [203.0.113.11]:1: 535 Incorrect authentication data (set_id=u{i})\n")
                },
                6,
            ),
            "would block 203.0.113.11 (mail_bruteforce)",
        ),
        (
            "ftp",
            burst(
                &|i| {
                    format!("Nov 23 15:00:0{i} w pure-ftpd: (?@203.0.113.12) [WARNING] Authentication failed for user [u{i}]\n")
                },
                6,
            ),
            "would block 203.0.113.12 (ftp_bruteforce)",
        ),
        (
            "cpanel",
            burst(
                &|i| {
                    format!("203.0.113.13 - root [11/23/2026:15:00:0{i} -0000] \"POST /login/?login_only=1 HTTP/1.1\" FAILED LOGIN whostmgrd: login attempt to root account\n")
                },
                6,
            ),
            "would block 203.0.113.13 (cpanel_bruteforce)",
        ),
        (
            "access",
            burst(
                &|i| {
                    format!("203.0.113.14 - - [23/Nov/2026:15:00:0{} +0000] \"GET /probe{i}.php HTTP/1.1\" 404 0 \"-\" \"x\"\n", i % 10)
                },
                11,
            ),
            "would block 203.0.113.14 (http_probing)",
        ),
        (
            "modsec",
            burst(&modsec, 6),
            "would block 203.0.113.20 (modsec_blocks)",
        ),
        (
            "exim",
            burst(
                &|i| {
                    format!("2026-11-23 15:00:0{i} 1tAbcD-00012{i}-Ab <= shop@h.example U=shop P=local S=1 for {}\n", (0..50).map(|r| format!("r{r}@example.net")).collect::<Vec<_>>().join(" "))
                },
                5,
            ),
            "would report mail_relay_abuse",
        ),
    ];
    for (source, text, want) in cases {
        let log = dir.path().join(format!("{source}.log"));
        std::fs::write(&log, &text).expect("write");
        let out = rampart()
            .args(["replay", "--default-config", "--source", source])
            .arg(&log)
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{source}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(want), "{source}: want {want:?} in {stdout}");
        assert_eq!(stdout.lines().count(), 1, "{source}: one action: {stdout}");
    }
}
