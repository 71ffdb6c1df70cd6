// SPDX-License-Identifier: GPL-2.0-only
//! Event loss is counted exactly: a ring buffer far too small for a burst of writes
//! loses events, and every write session is either delivered or counted as lost; the
//! agent keeps running and raises an `event_loss` finding.

use std::time::Duration;

use integration_test::{harness::Harness, wait_for};

fn file_counters(h: &Harness) -> (u64, u64, u64) {
    let (s, v) = h.get("/api/v1/health", &h.read.clone());
    assert_eq!(s, 200, "{v}");
    let k = &v["kernel"]["file_sensor"];
    (
        k["emitted"].as_u64().expect("emitted"),
        k["ringbuf_full"].as_u64().expect("ringbuf_full"),
        v["pipeline"]["received"].as_u64().expect("received"),
    )
}

#[test]
fn tiny_ring_buffer_losses_are_counted_exactly() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let top = "egress:\n  enabled: false\nexec:\n  enabled: false\nsensors:\n  ringbuf_bytes: 4096\n  loss_window_secs: 1\n";
    let h = Harness::start_with(net, "", top);
    let (e0, l0, r0) = file_counters(&h);
    const N: u64 = 3000;
    // Freeze the agent so nothing drains the ring during the burst: the overflow is
    // certain, not a race against the reader.
    let pid = nix::unistd::Pid::from_raw(
        h.agent.as_ref().and_then(|a| a.pid()).expect("agent pid") as i32,
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    for i in 0..N {
        // Absolute paths under the watched tree: one write session each.
        std::fs::write(h.www.join(format!("f{i}.txt")), b"x").expect("write");
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    let settled = wait_for(Duration::from_secs(15), || {
        let (e, l, _) = file_counters(&h);
        (e - e0) + (l - l0) >= N
    });
    let (e, l, r) = file_counters(&h);
    assert!(
        settled,
        "sessions unaccounted for: emitted {} + lost {} < {N}",
        e - e0,
        l - l0
    );
    assert!(
        l - l0 > 0,
        "a 4 KiB ring must overflow under {N} writes (emitted {})",
        e - e0
    );
    // Exactly once each (other processes' relative-path writes could add to emitted;
    // the test machine runs none during this burst).
    assert_eq!(
        (e - e0) + (l - l0),
        N,
        "each session is either delivered or counted lost"
    );
    assert!(
        wait_for(Duration::from_secs(5), || file_counters(&h).2 - r0
            >= e - e0),
        "userspace must receive every emitted event (received {}, emitted {})",
        r - r0,
        e - e0
    );
    let read = h.read.clone();
    let found = wait_for(Duration::from_secs(10), || {
        let (_, f) = h.get("/api/v1/findings", &read);
        f.as_array()
            .is_some_and(|a| a.iter().any(|x| x["check"] == "event_loss"))
    });
    assert!(found, "an event_loss finding must be raised");
    let (s, health) = h.get("/api/v1/health", &read);
    assert_eq!(s, 200, "agent keeps running");
    assert!(
        health["losses"]["file_ringbuf_full"]
            .as_u64()
            .is_some_and(|n| n >= l - l0),
        "{health}"
    );
}
