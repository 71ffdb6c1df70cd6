// SPDX-License-Identifier: GPL-2.0-only
//! The XDP firewall end to end between two network namespaces (RFC 5737 addresses):
//! block/unblock over the API and CLI, allow beats block, enforcement through
//! kill -9, reconciliation with the store at restart, rate limits through a
//! tentative policy that reverts unless confirmed.

use std::{net::SocketAddr, time::Duration};

use integration_test::{harness::Harness, pings_answered, tcp_connects, wait_for, Listener};
use serde_json::json;

fn reachable(h: &Harness, svc: SocketAddr) -> (bool, bool) {
    (
        pings_answered(&h.net.ns_b, h.net.ip_a, 2, "0.2") > 0,
        tcp_connects(&h.net.ns_b, svc),
    )
}

#[test]
fn block_unblock_allow_kill9_and_reconcile() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let svc: SocketAddr = format!("{}:8080", net.ip_a).parse().expect("addr");
    let _listener = Listener::start(&net.ns_a, svc);
    let mut h = Harness::start(net, "");
    let b = h.net.ip_b;
    assert_eq!(reachable(&h, svc), (true, true), "baseline");

    // A port scan from the peer becomes a port_scan finding (default: 24 ports in 10 s).
    let ip_a: std::net::IpAddr = h.net.ip_a.parse().expect("ip");
    for port in 20000..20040u16 {
        let _ = tcp_connects(&h.net.ns_b, SocketAddr::new(ip_a, port));
    }
    let read = h.read.clone();
    let scan_seen = wait_for(Duration::from_secs(10), || {
        let (_, f) = h.get("/api/v1/findings", &read);
        f.as_array()
            .is_some_and(|a| a.iter().any(|x| x["check"] == "port_scan" && x["ip"] == b))
    });
    assert!(scan_seen, "no port_scan finding for {b}; log:\n{}", h.log());

    // Block: ping and TCP connect fail, the counter rises.
    let before = h.counter("blocked");
    assert_eq!(
        h.post("/api/v1/block-ip", json!({"ip": b, "reason": "test"}))
            .0,
        200
    );
    assert_eq!(reachable(&h, svc), (false, false), "blocked");
    assert!(h.counter("blocked") > before, "blocked counter must rise");
    let admin = h.admin.clone();
    let sampled = wait_for(Duration::from_secs(10), || {
        let (_, st) = h.get("/api/v1/firewall/status", &admin);
        st["top_dropped"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["ip"] == b))
    });
    assert!(sampled, "sampled drops of {b} must reach top_dropped");
    let (_, c) = h.get(&format!("/api/v1/firewall/check?ip={b}"), &h.admin.clone());
    assert_eq!(c["verdict"], "drop", "{c}");

    // Unblock: traffic flows; a second unblock is a 404.
    assert_eq!(h.post("/api/v1/unblock-ip", json!({"ip": b})).0, 200);
    assert_eq!(reachable(&h, svc), (true, true), "unblocked");
    assert_eq!(h.post("/api/v1/unblock-ip", json!({"ip": b})).0, 404);

    // Expiry: a timed block lifts by itself (swept from the store and the kernel).
    let (s, v) = h.post("/api/v1/block-ip", json!({"ip": b, "duration": 4}));
    assert_eq!(s, 200, "{v}");
    assert!(v["expires_at"].is_string(), "{v}");
    assert_eq!(
        pings_answered(&h.net.ns_b, h.net.ip_a, 1, "0.2"),
        0,
        "timed block applies"
    );
    assert!(
        wait_for(Duration::from_secs(20), || pings_answered(
            &h.net.ns_b,
            h.net.ip_a,
            1,
            "0.2"
        ) == 1),
        "timed block must expire"
    );
    let (_, audit) = h.get("/api/v1/firewall/audit?limit=5", &h.admin.clone());
    assert!(
        audit
            .as_array()
            .expect("audit")
            .iter()
            .any(|a| a["action"] == "unblock" && a["actor"] == "expiry"),
        "{audit}"
    );

    // Allow beats block in the kernel; blocking an allowed address is refused.
    assert_eq!(h.post("/api/v1/block-ip", json!({"ip": b})).0, 200);
    let allowed_before = h.counter("allowed");
    assert_eq!(
        h.post(
            "/api/v1/firewall/allow-ip",
            json!({"ip": b, "reason": "monitoring"})
        )
        .0,
        200
    );
    assert_eq!(reachable(&h, svc), (true, true), "allow beats block");
    assert!(h.counter("allowed") > allowed_before);
    let (s, v) = h.post("/api/v1/block-ip", json!({"ip": b}));
    assert_eq!(s, 422, "blocking an allowed address: {v}");
    assert_eq!(
        h.post("/api/v1/firewall/remove-allow", json!({"ip": b})).0,
        200
    );
    assert_eq!(
        reachable(&h, svc),
        (false, false),
        "block applies again without the allow"
    );

    // Charon decisions list what is in force.
    let (s, d) = h.post(
        "/api/v1/security/decisions",
        json!({"ip": "203.0.113.50", "action": "block", "details": "manual"}),
    );
    assert_eq!(s, 201, "{d}");
    let (_, list) = h.get("/api/v1/security/decisions?limit=10", &h.admin.clone());
    let ips: Vec<&str> = list["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter_map(|d| d["ip"].as_str())
        .collect();
    assert!(ips.contains(&"203.0.113.50") && ips.contains(&b), "{list}");

    // The CLI acts on the running agent's pinned maps at once; bad input changes nothing.
    let bad = h.dir.path().join("bad.txt");
    std::fs::write(&bad, "203.0.113.1\nnot-an-ip\n").expect("write");
    let (code, _, err) = h.cli(&["import", bad.to_str().expect("utf8")]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("line 2"), "{err}");
    let (_, c) = h.get("/api/v1/firewall/check?ip=203.0.113.1", &h.admin.clone());
    assert_eq!(c["verdict"], "pass", "nothing half-imported: {c}");
    let (code, out, err) = h.cli(&["unblock", b]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        reachable(&h, svc),
        (true, true),
        "CLI unblock is enforced at once"
    );
    let good = h.dir.path().join("good.txt");
    std::fs::write(
        &good,
        format!("# attackers\n{b}\n203.0.113.128/25 # scanners\n"),
    )
    .expect("write");
    let (code, out, err) = h.cli(&["import", good.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        reachable(&h, svc),
        (false, false),
        "CLI import is enforced at once"
    );

    // kill -9: the pinned link keeps XDP attached with the pinned blocklist.
    h.kill9();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        reachable(&h, svc),
        (false, false),
        "still blocked with the agent dead"
    );

    // While it is down, make the store and the kernel disagree: the store wins.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let store = agent::store::Store::open(&h.state().join("rampart.db"), 8).expect("store");
        assert!(store.delete_block(b.to_string()).await.expect("delete"));
        let e = api::model::BlockEntry {
            ip: "203.0.113.77".into(),
            reason: "added offline".into(),
            source: "test".into(),
            blocked_at: agent::store::now_rfc3339(),
            expires_at: None,
        };
        store.upsert_block(e, None).await.expect("upsert");
        store.flush().await.expect("flush");
    });
    h.restart();
    assert_eq!(
        reachable(&h, svc),
        (true, true),
        "reconciled: the block removed from the store is gone"
    );
    let (_, comps) = h.get("/api/v1/components", &h.read.clone());
    let xdp = comps
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["kind"] == "xdp")
        .cloned();
    let xdp = xdp.expect("xdp component");
    assert_eq!(xdp["state"], "attached", "{xdp}");
    assert!(
        xdp["mode"] == "native" || xdp["mode"] == "generic",
        "mode remembered for the reused link: {xdp}"
    );
    assert!(
        h.in_block_map(32, [203, 0, 113, 77]),
        "store-only block added to the kernel"
    );
    assert!(h.in_block_map(25, [203, 0, 113, 128]), "kept");
    let (_, st) = h.get("/api/v1/firewall/status", &h.admin.clone());
    assert_eq!(st["blocked"], 3, "{st}"); // 203.0.113.50, 203.0.113.128/25, 203.0.113.77
    assert_eq!(st["blocked_subnets"], 1, "{st}");
    let (_, audit) = h.get("/api/v1/firewall/audit?limit=100", &h.admin.clone());
    assert!(
        audit
            .as_array()
            .expect("audit")
            .iter()
            .any(|a| a["action"] == "import"),
        "{audit}"
    );

    // Flush removes every block.
    let (s, v) = h.post("/api/v1/firewall/flush", json!({}));
    assert_eq!((s, v["removed"].as_u64()), (200, Some(3)), "{v}");
    h.stop();
}

#[test]
fn rate_limit_by_tentative_policy_reverts_unless_confirmed() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let mut h = Harness::start(net, "  tentative_timeout_secs: 3\n");
    let (ns_b, ip_a) = (h.net.ns_b.clone(), h.net.ip_a);
    let flood = || pings_answered(&ns_b, ip_a, 30, "0.01");
    assert!(flood() >= 28, "baseline flood is answered");

    // Invalid policy values: 422, nothing changes.
    let (s, v) = h.post(
        "/api/v1/settings/firewall/tentative-apply",
        json!({"rate_limit": {"pps": 5, "burst": 0}}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        h.post("/api/v1/settings/firewall/confirm", json!({})).0,
        409,
        "nothing pending"
    );

    // Tentative rate limit: the flood's excess is dropped.
    let (s, v) = h.post(
        "/api/v1/settings/firewall/tentative-apply",
        json!({"rate_limit": {"pps": 2, "burst": 2}}),
    );
    assert_eq!(s, 200, "{v}");
    let before = h.counter("rate_limited");
    let answered = flood();
    assert!(
        answered <= 8,
        "rate limit must drop most of a 100 pps flood ({answered}/30 answered)"
    );
    assert!(
        h.counter("rate_limited") - before >= u64::from(30 - answered),
        "every drop is counted"
    );
    let (_, rb) = h.get("/api/v1/settings/firewall/rollback", &h.admin.clone());
    assert_eq!(rb["pending"], true, "{rb}");

    // Not confirmed: reverted by the timer.
    let admin = h.admin.clone();
    assert!(
        wait_for(Duration::from_secs(10), || h
            .get("/api/v1/settings/firewall/rollback", &admin)
            .1["pending"]
            == false),
        "tentative policy was not reverted"
    );
    assert!(
        flood() >= 28,
        "after the revert the flood is answered again"
    );
    let (_, audit) = h.get("/api/v1/firewall/audit", &admin);
    let a = &audit[0];
    assert_eq!(
        (a["action"].as_str(), a["actor"].as_str()),
        (Some("policy_revert"), Some("rollback_timer")),
        "{audit}"
    );

    // Confirmed: kept past the timer, and across a restart.
    assert_eq!(
        h.post(
            "/api/v1/settings/firewall/tentative-apply",
            json!({"rate_limit": {"pps": 2, "burst": 2}})
        )
        .0,
        200
    );
    assert_eq!(
        h.post("/api/v1/settings/firewall/confirm", json!({})).0,
        200
    );
    std::thread::sleep(Duration::from_secs(4));
    let (_, st) = h.get("/api/v1/firewall/status", &admin);
    assert_eq!(st["policy"]["rate_limit"]["pps"], 2, "{st}");
    h.stop();
    h.restart();
    assert!(flood() <= 8, "confirmed policy survives a restart");

    // Pending across a restart: reverted when the deadline passes while down.
    assert_eq!(
        h.post(
            "/api/v1/settings/firewall/tentative-apply",
            json!({"rate_limit": {"pps": 0, "burst": 0}})
        )
        .0,
        200
    );
    h.kill9();
    std::thread::sleep(Duration::from_secs(4));
    h.restart();
    let (_, st) = h.get("/api/v1/firewall/status", &admin);
    assert_eq!(
        st["policy"]["rate_limit"]["pps"], 2,
        "expired tentative change reverted at start: {st}"
    );
    assert_eq!(st["rollback"], serde_json::Value::Null, "{st}");
    h.stop();
}
