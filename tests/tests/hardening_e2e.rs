// SPDX-License-Identifier: GPL-2.0-only
//! Attacks by a local user (run as `nobody`) on the running agent that must fail:
//! idle connections must neither blind the sensors nor lock the admin out, and
//! guessing at the login is throttled.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use integration_test::{harness::Harness, wait_for};

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

    // 5,000 connections from an unprivileged user, held idle and re-opened as the
    // agent closes them.
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
        .args(["127.0.0.1:9443", "5000"])
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
    let refused: u64 = text
        .lines()
        .find(|l| l.starts_with("rampart_api_connections_refused_total{cap=\"per_client\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("per-client refusals in /metrics");
    assert!(refused >= 4000, "{refused} refused of 5000");

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
