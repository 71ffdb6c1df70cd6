// SPDX-License-Identifier: GPL-2.0-only
//! The agent as a systemd service (#13): the notify protocol against a real
//! `NOTIFY_SOCKET`, and the operator's CLI (`rampart token`, `rampart status`)
//! against a running agent.

use std::{os::unix::net::UnixDatagram, time::Duration};

use integration_test::{harness::Harness, net_or_skip, AgentProcess};

/// Messages on the socket until `stop` says enough or `timeout` passes.
fn messages_until(
    sock: &UnixDatagram,
    timeout: Duration,
    mut stop: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = stop(&m);
            got.push(m);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn systemd_hears_ready_after_the_api_listens_then_watchdog_pings_then_stopping() {
    let Some(net) = net_or_skip() else { return };
    let mut h = Harness::start(net, "");
    h.stop();
    let sock_path = h.dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    let log = h.dir.path().join("agent-notify.log");
    let agent = AgentProcess::start_env(
        Some(&h.net.ns_a),
        &h.config,
        log,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8 path")),
            // 2 s: fed every second.
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let pid = agent.pid().expect("pid").to_string();
    h.agent = Some(agent);

    let start = messages_until(&systemd, Duration::from_secs(90), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    let ready = start
        .last()
        .filter(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {start:?}; log:\n{}", h.log()));
    // READY comes only once the API answers: asked at once, without a retry.
    let (code, health) = h.get("/api/v1/health", &h.read.clone());
    assert_eq!(code, 200, "READY before the API answered: {health}");
    assert!(ready.contains("STATUS=Protecting"), "{ready}");
    let statuses: Vec<&String> = start
        .iter()
        .filter(|m| m.starts_with("STATUS=Starting"))
        .collect();
    assert!(
        statuses.iter().any(|m| m.contains("firewall")),
        "start-up STATUS lines: {start:?}"
    );

    // The watchdog: WATCHDOG_PID unset means the main process, and it is fed.
    let mut pings = 0;
    let after = messages_until(&systemd, Duration::from_secs(6), |m| {
        pings += usize::from(m == "WATCHDOG=1");
        pings >= 3
    });
    assert!(pings >= 3, "watchdog pings in 6 s: {after:?}");

    // A WATCHDOG_PID naming another process: not ours to feed.
    h.stop();
    let log = h.dir.path().join("agent-notify-2.log");
    h.agent = Some(AgentProcess::start_env(
        Some(&h.net.ns_a),
        &h.config,
        log,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "2000000"),
            ("WATCHDOG_PID", &pid),
        ],
    ));
    let start = messages_until(&systemd, Duration::from_secs(90), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    assert!(
        start.iter().any(|m| m.contains("READY=1")),
        "no READY the second time: {start:?}"
    );
    let after = messages_until(&systemd, Duration::from_secs(3), |_| false);
    assert!(
        !after.iter().any(|m| m == "WATCHDOG=1"),
        "fed a watchdog meant for pid {pid}: {after:?}"
    );

    // SIGTERM: STOPPING first, then a clean exit.
    h.stop();
    let stopping = messages_until(&systemd, Duration::from_secs(2), |m| {
        m.starts_with("STOPPING=1")
    });
    assert!(
        stopping.iter().any(|m| m.starts_with("STOPPING=1")),
        "no STOPPING=1 at shutdown: {stopping:?}"
    );
}
