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
        .args(["replay", "--default-config", "--source", "exim"])
        .arg(&log)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(64),
        "unknown source is a usage error"
    );
}
