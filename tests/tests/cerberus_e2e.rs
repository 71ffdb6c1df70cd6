// SPDX-License-Identifier: GPL-2.0-only
//! Charon's Cerberus suite against the real agent, XDP on a veth of a test
//! namespace: break-glass turns enforcement off for a bounded time (and it comes
//! back by itself), the config's admin whitelist bypasses blocks, rulesets compile
//! or change nothing, and the live-logs WebSocket streams the agent's log.

use std::{net::SocketAddr, time::Duration};

use integration_test::{harness::Harness, pings_answered, tcp_connects, wait_for, Listener};
use serde_json::json;

fn reachable(h: &Harness, svc: SocketAddr) -> bool {
    pings_answered(&h.net.ns_b, h.net.ip_a, 1, "0.2") > 0 && tcp_connects(&h.net.ns_b, svc)
}

#[test]
fn break_glass_whitelist_rulesets_and_live_logs() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let svc: SocketAddr = format!("{}:8080", net.ip_a).parse().expect("addr");
    let _listener = Listener::start(&net.ns_a, svc);
    let h = Harness::start(net, "  disable_max_secs: 60\n");
    let (admin, read) = (h.admin.clone(), h.read.clone());
    let b = h.net.ip_b;
    assert_eq!(h.post("/api/v1/block-ip", json!({"ip": b})).0, 200);
    assert!(!reachable(&h, svc), "blocked");
    let (_, st) = h.get("/api/v1/security/status", &read);
    assert_eq!(st["enabled"], true, "{st}");

    // Break-glass: a one-time token turns enforcement off; the block stays stored.
    let (s, bg) = h.post("/api/v1/security/breakglass/generate", json!({}));
    assert_eq!(s, 200, "{bg}");
    let token = bg["token"].as_str().expect("token").to_string();
    let (s, v) = h.request("GET", "/api/v1/security/breakglass/generate", &admin, None);
    assert_eq!(s, 405, "generate is POST only: {v}");
    let monitored = h.counter("monitored");
    let (s, v) = h.post(
        "/api/v1/security/disable",
        json!({"break_glass_token": token, "duration": 5}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["enabled"], false, "{v}");
    assert!(
        reachable(&h, svc),
        "enforcement off: the blocked peer gets through"
    );
    assert!(
        h.counter("monitored") > monitored,
        "what would drop is counted"
    );
    let (_, st) = h.get("/api/v1/security/status", &read);
    assert_eq!(
        (&st["enabled"], &st["disabled_via"], &st["firewall"]["mode"]),
        (&json!(false), &json!("break_glass"), &json!("monitor")),
        "{st}"
    );
    let (_, blocks) = h.get("/api/v1/blocked-ips", &admin);
    assert!(
        blocks.to_string().contains(b),
        "the block is kept: {blocks}"
    );
    // The token was used once.
    let (s, v) = h.post(
        "/api/v1/security/disable",
        json!({"break_glass_token": token}),
    );
    assert_eq!(s, 403, "{v}");
    // A read token cannot touch it.
    let (s, _) = h.request("POST", "/api/v1/security/enable", &read, Some(json!({})));
    assert_eq!(s, 401, "read scope answers CSM's 401");
    // Bounded: enforcement returns by itself at the deadline.
    assert!(
        wait_for(Duration::from_secs(20), || !reachable(&h, svc)),
        "enforcement must come back after the break-glass window; log:\n{}",
        h.log()
    );
    let (_, audit) = h.get("/api/v1/firewall/audit?limit=20", &admin);
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|a| Some((a["action"].as_str()?, a["actor"].as_str()?)))
        .collect();
    for want in [
        ("break_glass_generate", "op"),
        ("cerberus_disable", "op"),
        ("cerberus_disable_refused", "op"),
        ("cerberus_enable", "break_glass_timer"),
    ] {
        assert!(actions.contains(&want), "audit lacks {want:?}: {actions:?}");
    }

    // From localhost an admin needs no token; enable is immediate. Past the maximum
    // is refused.
    let (s, v) = h.post("/api/v1/security/disable", json!({"duration": 3600}));
    assert_eq!(s, 400, "over firewall.disable_max_secs: {v}");
    let (s, v) = h.post("/api/v1/security/disable", json!({}));
    assert_eq!(s, 200, "{v}");
    assert!(reachable(&h, svc));
    assert_eq!(h.post("/api/v1/security/enable", json!({})).0, 200);
    assert!(!reachable(&h, svc), "enable applies at once");

    // Config: the admin whitelist bypasses every drop rule, as allow entries.
    let (s, c) = h.get("/api/v1/security/config", &admin);
    assert_eq!((s, &c), (200, &json!({"config": null})));
    let (s, v) = h.post("/api/v1/security/config", json!({"crowdsec_mode": "local"}));
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("crowdsec_mode")),
        "{v}"
    );
    let (s, v) = h.post(
        "/api/v1/security/config",
        json!({"name": "default", "admin_whitelist": format!("{b}, 198.51.100.0/24"), "waf_mode": "monitor"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["config"]["enabled"], true, "{v}");
    assert!(reachable(&h, svc), "whitelisted");
    let (_, st) = h.get("/api/v1/security/status", &read);
    assert_eq!(st["waf"]["mode"], "monitor", "{st}");
    let (s, v) = h.post("/api/v1/security/config", json!({"name": "default"}));
    assert_eq!(s, 200, "{v}");
    assert!(!reachable(&h, svc), "whitelist cleared: blocked again");

    // Rulesets: compiled and reloaded, or refused with nothing changed.
    let (_, before) = h.get("/api/v1/rules/status", &admin);
    let rule = "rules:\n  - name: api_ruleset_marker\n    severity: high\n    category: test\n    description: test\n    patterns: ['rampart-api-ruleset-marker']\n";
    let (s, v) = h.post(
        "/api/v1/security/rulesets",
        json!({"name": "local-marker", "mode": "yaml", "content": rule}),
    );
    assert_eq!(s, 200, "{v}");
    let id = v["ruleset"]["id"].as_i64().expect("id");
    let (_, after) = h.get("/api/v1/rules/status", &admin);
    assert_eq!(
        after["yaml_rules"].as_u64(),
        before["yaml_rules"].as_u64().map(|n| n + 1),
        "{before} -> {after}"
    );
    let (s, v) = h.post(
        "/api/v1/security/rulesets",
        json!({"name": "broken", "mode": "yaml", "content": "rules: [ {name: x, severity: nope"}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = h.post(
        "/api/v1/security/rulesets",
        json!({"name": "../escape", "mode": "yaml", "content": rule}),
    );
    assert_eq!(s, 400, "a name is never a path: {v}");
    let (_, list) = h.get("/api/v1/security/rulesets", &admin);
    let names: Vec<&str> = list["rulesets"]
        .as_array()
        .expect("rulesets")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["local-marker"], "{list}");
    let (_, st) = h.get("/api/v1/rules/status", &admin);
    assert_eq!(
        st["yaml_rules"], after["yaml_rules"],
        "the broken set changed nothing"
    );
    let path = format!("/api/v1/security/rulesets/{id}");
    assert_eq!(h.request("DELETE", &path, &admin, None).0, 200);
    assert_eq!(h.request("DELETE", &path, &admin, None).0, 404);
    let (_, st) = h.get("/api/v1/rules/status", &admin);
    assert_eq!(st["yaml_rules"], before["yaml_rules"]);

    // Live logs: admin only, an upgrade only, filtered by level and source.
    assert_eq!(h.live_log("", &read).err(), Some(401));
    let (s, v) = h.get("/api/v1/logs/live", &admin);
    assert_eq!(s, 400, "no upgrade: {v}");
    assert_eq!(h.live_log("?level=loud", &admin).err(), Some(400));
    let live = h
        .live_log("?source=agent&level=info", &admin)
        .expect("socket");
    assert_eq!(
        h.post("/api/v1/block-ip", json!({"ip": "203.0.113.99"})).0,
        200
    );
    let e = live
        .until(|e| e["fields"]["ip"] == "203.0.113.99")
        .expect("the block's log line on the socket");
    assert_eq!(
        (&e["source"], &e["level"]),
        (&json!("agent"), &json!("info")),
        "{e}"
    );
    assert!(
        e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{e}"
    );
    let warn_only = h.live_log("?level=warn", &admin).expect("socket");
    assert_eq!(
        h.post("/api/v1/block-ip", json!({"ip": "203.0.113.98"})).0,
        200
    );
    let got = warn_only.drain(Duration::from_secs(2));
    assert!(
        got.iter()
            .all(|e| e["level"] == "warn" || e["level"] == "error"),
        "{got:?}"
    );
}
