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
