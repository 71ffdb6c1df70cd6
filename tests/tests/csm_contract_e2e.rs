// SPDX-License-Identifier: GPL-2.0-only
//! A CSM client against the real agent: every response shape of
//! `shared/spec/csm-contract.md` (read from the table, see `integration_test::contract`)
//! and the request bodies CSM clients send, on a host with findings, blocks, an
//! attacker and a quarantined file to show.

use std::time::Duration;

use integration_test::{
    contract::{check, response_shapes, spec_path, Shape},
    harness::Harness,
    wait_for,
};
use serde_json::json;

const SHELL: &str = "<?php system($_GET['cmd']); ?>";

#[test]
fn a_csm_client_gets_csms_shapes_and_its_bodies_are_understood() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let (h, _logs, log) = Harness::with_sshd_log(
        net,
        "auto_response:\n  enabled: true\n  dry_run: false\n  ban_secs: 600\n",
    );
    let admin = h.admin.clone();

    // CSM's request bodies.
    let (s, v) = h.post(
        "/api/v1/block-ip",
        json!({"ip": "203.0.113.7", "reason": "csm", "duration": "24h"}),
    );
    assert_eq!(s, 200, "block-ip with a Go duration: {v}");
    let (s, v) = h.post(
        "/api/v1/block-ip",
        json!({"ip": "203.0.113.8", "reason": "csm", "duration": ""}),
    );
    assert_eq!(s, 200, "block-ip permanent: {v}");
    let (s, v) = h.post(
        "/api/v1/block-ip",
        json!({"ip": "203.0.113.9", "reason": "csm", "duration": "soon"}),
    );
    assert_eq!(s, 400, "a duration that is not one: {v}");
    let (_, blocked) = h.get("/api/v1/blocked-ips", &h.read.clone());
    let entry = |ip: &str| {
        blocked
            .as_array()
            .and_then(|a| a.iter().find(|b| b["ip"] == ip))
            .cloned()
            .unwrap_or_else(|| panic!("{ip} in {blocked}"))
    };
    let day = entry("203.0.113.7");
    assert!(
        day["expires_in"]
            .as_str()
            .is_some_and(|s| s.starts_with("23h") || s == "24h0m"),
        "{day}"
    );
    let forever = entry("203.0.113.8");
    assert_eq!(forever["expires_at"], "", "{forever}");
    assert_eq!(forever["expires_in"], "permanent", "{forever}");
    let (s, v) = h.post(
        "/api/v1/threat/temp-whitelist-ip",
        json!({"ip": "198.51.100.9", "hours": 2}),
    );
    assert_eq!(s, 200, "temp-whitelist-ip with hours: {v}");

    // Something to show: a webshell, an attacker blocked by the auto-responder.
    let shell = h.www.join("shell.php");
    std::fs::write(&shell, SHELL).expect("webshell");
    std::fs::write(
        &log,
        integration_test::sshd_failures("203.0.113.20", 12, "u").join("\n") + "\n",
    )
    .expect("log");
    let finding_of = |check: &str| {
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.as_array()
            .and_then(|a| a.iter().find(|x| x["check"] == check).cloned())
    };
    assert!(
        wait_for(Duration::from_secs(20), || finding_of("signature_match")
            .is_some()
            && finding_of("ssh_bruteforce").is_some()),
        "findings; log:\n{}",
        h.log()
    );
    let f = finding_of("signature_match").expect("shell finding");
    assert_eq!(f["severity"], 2, "critical is CSM's 2: {f}");
    assert_eq!(f["severity_label"], "critical", "{f}");
    assert_eq!(f["file_path"], shell.display().to_string(), "{f}");
    assert_eq!(f["has_fix"], true, "a file finding can be quarantined: {f}");
    let ssh = finding_of("ssh_bruteforce").expect("ssh finding");
    assert_eq!(ssh["source_ip"], "203.0.113.20", "{ssh}");
    // `fix` with CSM's body quarantines the file.
    let key = format!(
        "{}:{}",
        f["check"].as_str().unwrap_or(""),
        f["message"].as_str().unwrap_or("")
    );
    let (s, v) = h.post(
        "/api/v1/fix",
        json!({"check": f["check"], "message": f["message"], "file_path": f["file_path"], "key": key}),
    );
    assert_eq!(s, 200, "fix with CSM's body: {v}");
    assert!(!shell.exists(), "the fix quarantined {}", shell.display());
    // `dismiss {key}` takes the ssh finding off the active list.
    let key = format!(
        "{}:{}",
        ssh["check"].as_str().unwrap_or(""),
        ssh["message"].as_str().unwrap_or("")
    );
    let (s, v) = h.post("/api/v1/dismiss", json!({ "key": key }));
    assert_eq!(s, 200, "dismiss with CSM's key: {v}");
    assert!(finding_of("ssh_bruteforce").is_none(), "dismissed");
    let (s, v) = h.post("/api/v1/dismiss", json!({"key": "no-colon"}));
    assert_eq!(s, 400, "a key that is not check:message: {v}");

    // Every shape of the contract's table.
    let spec = std::fs::read_to_string(spec_path()).expect("csm-contract.md");
    let shapes = response_shapes(&spec).expect("the contract parses");
    let mut wrong = Vec::new();
    for r in &shapes {
        // The findings row gives each finding's shape; the route lists them.
        let shape = if r.path == "/api/v1/findings" {
            Shape::Array(Box::new(r.shape.clone()), None)
        } else {
            r.shape.clone()
        };
        let (s, v) = match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/api/v1/rules/reload") => h.post(&r.path, json!({})),
            ("POST", "/api/v1/threat/bulk-action") => h.post(
                &r.path,
                json!({"action": "block", "ips": ["198.51.100.30", "198.51.100.31"], "reason": "csm"}),
            ),
            ("POST", "/api/v1/unblock-bulk") => {
                h.post(&r.path, json!({"ips": ["198.51.100.30", "198.51.100.31"]}))
            }
            ("GET", p) => h.get(p, &admin),
            (m, p) => panic!("no request for {m} {p}"),
        };
        assert_eq!(s, 200, "{} {}: {v}", r.method, r.path);
        if r.path == "/metrics" {
            let text = v.as_str().unwrap_or_default();
            for name in [
                "csm_findings_total",
                "csm_blocked_ips",
                "csm_uptime_seconds",
            ] {
                if !text.lines().any(|l| l.starts_with(name)) {
                    wrong.push(format!("/metrics: no {name}"));
                }
            }
            continue;
        }
        // Lists the setup filled are checked item by item, so they must not be empty.
        if let Shape::Array(..) = shape {
            if v.as_array().is_some_and(Vec::is_empty) {
                wrong.push(format!("{} {}: empty, nothing checked", r.method, r.path));
            }
        }
        for e in check(&shape, &v) {
            wrong.push(format!("{} {}: {e}", r.method, r.path));
        }
    }
    // The findings row holds for SSE items too (replayed from the start).
    let item = shapes
        .iter()
        .find(|r| r.path == "/api/v1/findings")
        .map(|r| r.shape.clone())
        .expect("findings row");
    let events = h.sse(Some(0), || {}, |evs| !evs.is_empty());
    for (_, d) in &events {
        for e in check(&item, d) {
            wrong.push(format!("SSE data: {e}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "departures from csm-contract.md: {wrong:#?}"
    );

    // /status says what CSM says, in CSM's units.
    let (_, st) = h.get("/api/v1/status", &h.read.clone());
    let uptime = st["uptime"].as_str().unwrap_or_default();
    assert!(
        uptime.ends_with('s') && uptime.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "a Go duration: {st}"
    );
    assert!(st["uptime_sec"].as_u64().is_some(), "{st}");
    // The shell was fixed and the ssh finding dismissed: none active, both kept.
    assert_eq!(st["severities"]["critical"], 0, "{st}");
    assert!(st["history_count"].as_i64() >= Some(2), "{st}");
    assert_eq!(
        st["incidents_open_by_severity"]["critical"], 1,
        "the shell's incident: {st}"
    );
    let (_, caps) = h.get("/api/v1/capabilities", &h.read.clone());
    for flag in [
        "firewall.rollback.v1",
        "token.scope.readonly.v1",
        "incidents.v1",
        "capabilities.v1",
    ] {
        assert!(
            caps["capabilities"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c == flag)),
            "{flag} in {caps}"
        );
    }
    // History's severity filter is CSM's int.
    let (s, hist) = h.get("/api/v1/history?severity=2", &h.read.clone());
    assert_eq!(s, 200, "{hist}");
    let items = hist["findings"].as_array().cloned().unwrap_or_default();
    assert!(
        !items.is_empty() && items.iter().all(|x| x["severity"] == 2),
        "{hist}"
    );

    // tentative-apply with CSM's body and the config hash in If-Match.
    let hash = st["config_hash"].as_str().unwrap_or_default().to_string();
    let body = json!({"changes": {"tcp_in": [22, 443]}, "timeout_min": 5});
    let (s, v) = h.request_with(
        "POST",
        "/api/v1/settings/firewall/tentative-apply",
        &admin,
        Some(body.clone()),
        &[("if-match", "\"not-the-hash\"")],
    );
    assert_eq!(s, 412, "a stale If-Match: {v}");
    let (s, v) = h.request_with(
        "POST",
        "/api/v1/settings/firewall/tentative-apply",
        &admin,
        Some(body),
        &[("if-match", &format!("\"{hash}\""))],
    );
    assert_eq!(s, 200, "{v}");
    let (_, rb) = h.get("/api/v1/settings/firewall/rollback", &admin);
    let left = rb["seconds_remaining"].as_i64().unwrap_or_default();
    assert!(
        rb["pending"] == true && (240..=300).contains(&left),
        "timeout_min 5: {rb}"
    );
    let (s, v) = h.post("/api/v1/settings/firewall/revert", json!({}));
    assert_eq!(s, 200, "{v}");
}

/// Each operator's UI preferences and saved views (csm-api.md "Operator
/// preferences"): kept apart per token, sanitised, bounded, and kept across a restart.
#[test]
fn operator_preferences_are_per_token_sanitised_and_kept() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let mut h = Harness::start(net, "");
    let (code, other, err) = h.rampart(
        "token",
        &["create", "--name", "second-op", "--scope", "admin"],
    );
    assert_eq!(code, 0, "{err}");
    let other = other.trim().to_string();
    let admin = h.admin.clone();
    let put =
        |tok: &str, path: &str, body: serde_json::Value| h.request("PUT", path, tok, Some(body));
    let (s, v) = put(
        &admin,
        "/api/v1/prefs/user",
        json!({"density": "compact", "timezone": "../../etc/shadow", "auto_refresh": "off",
               "table_columns": {"findings-table": ["check", "<img>", "when"]}}),
    );
    assert_eq!((s, &v["status"]), (200, &json!("ok")), "{v}");
    let (_, p) = h.get("/api/v1/prefs/user", &admin);
    assert_eq!(
        p,
        json!({"density": "compact", "timezone": "", "auto_refresh": "off",
               "table_columns": {"findings-table": ["check", "when"]}}),
        "unknown values dropped"
    );
    // Another operator has their own (none yet).
    assert!(
        wait_for(Duration::from_secs(5), || h
            .get("/api/v1/prefs/user", &other)
            .0
            == 200),
        "the minted token works"
    );
    let (_, p2) = h.get("/api/v1/prefs/user", &other);
    assert_eq!(p2["density"], "", "{p2}");
    // Saved views: upsert by (page, name), filter by page, delete.
    let view = |name: &str, page: &str, sev: &str| json!({"name": name, "page": page, "params": {"severity": sev}});
    for body in [
        view("Critical SSH", "findings", "critical"),
        view("Critical SSH", "findings", "high"),
        view("Blocks", "firewall", "x"),
    ] {
        let (s, v) = put(&admin, "/api/v1/prefs/views", body);
        assert_eq!(s, 200, "{v}");
    }
    let (_, views) = h.get("/api/v1/prefs/views?page=findings", &admin);
    let views = views.as_array().cloned().unwrap_or_default();
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!(
        views[0]["params"]["severity"], "high",
        "replaced: {views:?}"
    );
    assert!(
        views[0]["updated"].as_i64() > Some(1_700_000_000),
        "{views:?}"
    );
    let (_, theirs) = h.get("/api/v1/prefs/views", &other);
    assert_eq!(theirs, json!([]), "views are per operator");
    for bad in [
        json!({"name": "n", "page": "../x", "params": {}}),
        json!({"name": "", "page": "findings", "params": {}}),
        json!({"name": "n", "page": "findings", "params": {"k": "v".repeat(300)}}),
    ] {
        let (s, v) = put(&admin, "/api/v1/prefs/views", bad.clone());
        assert_eq!(s, 422, "{bad}: {v}");
    }
    let (s, v) = put(&admin, "/api/v1/prefs/views", json!("not an object"));
    assert_eq!(s, 400, "{v}");
    let del =
        |body: serde_json::Value| h.request("DELETE", "/api/v1/prefs/views", &admin, Some(body));
    assert_eq!(del(json!({"page": "firewall", "name": "Blocks"})).0, 200);
    assert_eq!(
        del(json!({"page": "firewall", "name": "Blocks"})).0,
        404,
        "gone"
    );
    // A read token has no preferences to keep.
    assert_eq!(h.get("/api/v1/prefs/user", &h.read.clone()).0, 401);
    h.restart();
    let (_, p) = h.get("/api/v1/prefs/user", &admin);
    assert_eq!(p["density"], "compact", "kept across a restart: {p}");
    let (_, views) = h.get("/api/v1/prefs/views", &admin);
    assert_eq!(views.as_array().map(Vec::len), Some(1), "{views}");
}

/// `verify-finding` scans the finding's file again; `cphulk-clear` says cPHulk is
/// missing on a host without cPanel; `challenge/stats` says nothing is routed.
#[test]
fn a_finding_is_verified_again_and_missing_host_components_are_named() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let shell = h.www.join("v.php");
    std::fs::write(&shell, SHELL).expect("webshell");
    let id = || {
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.as_array().and_then(|a| {
            a.iter()
                .find(|x| x["file_path"] == shell.display().to_string())
                .and_then(|x| x["id"].as_i64())
        })
    };
    assert!(
        wait_for(Duration::from_secs(15), || id().is_some()),
        "finding; log:\n{}",
        h.log()
    );
    let id = id().expect("id");
    let verify = || h.post("/api/v1/verify-finding", json!({ "id": id }));
    let (s, v) = verify();
    assert_eq!(
        (s, &v["state"], &v["verified"]),
        (200, &json!("present"), &json!(true)),
        "{v}"
    );
    // Another shell in the same file: still a finding. "changed" until the real-time
    // scan of the rewrite records the new content on the finding, "present" after.
    std::fs::write(&shell, format!("{SHELL}\n<?php echo 1;")).expect("rewrite");
    let (_, v) = verify();
    assert!(
        matches!(v["state"].as_str(), Some("changed" | "present")) && v["verified"] == true,
        "{v}"
    );
    std::fs::write(&shell, "<?php echo 'hello';").expect("clean");
    let (_, v) = verify();
    assert_eq!(
        (&v["state"], &v["verified"]),
        (&json!("clean"), &json!(false)),
        "{v}"
    );
    std::fs::remove_file(&shell).expect("rm");
    let (_, v) = verify();
    assert_eq!(
        (&v["state"], &v["verified"]),
        (&json!("gone"), &json!(false)),
        "{v}"
    );
    // A finding without a file has nothing to check again.
    let (_, all) = h.get("/api/v1/history?limit=100", &h.read.clone());
    let other = all["findings"].as_array().and_then(|a| {
        a.iter()
            .find(|x| x["file_path"].is_null())
            .and_then(|x| x["id"].as_i64())
    });
    if let Some(other) = other {
        let (s, v) = h.post("/api/v1/verify-finding", json!({ "id": other }));
        assert_eq!(s, 422, "{v}");
    }
    assert_eq!(
        h.post("/api/v1/verify-finding", json!({"id": 999_999})).0,
        404
    );

    let (s, v) = h.post(
        "/api/v1/firewall/cphulk-clear",
        json!({"ip": "203.0.113.5"}),
    );
    if std::path::Path::new("/usr/local/cpanel/bin/hulk-unban-ip").exists() {
        assert_eq!(s, 200, "{v}");
    } else {
        assert_eq!(s, 503, "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("cPHulk")),
            "{v}"
        );
    }
    assert_eq!(
        h.post("/api/v1/firewall/cphulk-clear", json!({"ip": "-rf"}))
            .0,
        400
    );
    let (s, v) = h.get("/api/v1/challenge/stats", &h.read.clone());
    assert_eq!(
        (s, &v["enabled"], &v["pending"]),
        (200, &json!(false), &json!(0)),
        "{v}"
    );
}

/// CSM's scan-job routes: start, read one, its findings, cancel.
#[test]
fn scan_jobs_start_report_their_findings_and_cancel() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    // Outside the watched tree: only the job finds it.
    let tree = h.dir.path().join("site");
    std::fs::create_dir_all(tree.join("a/b")).expect("mkdir");
    std::fs::write(tree.join("a/b/x.php"), SHELL).expect("shell");
    std::fs::write(tree.join("a/clean.php"), "<?php echo 1;").expect("clean");
    let (s, v) = h.post("/api/v1/scan-jobs", json!({"path": tree}));
    assert_eq!(s, 202, "{v}");
    let id = v["job"]["id"].as_u64().expect("id");
    let job = || h.get(&format!("/api/v1/scan-jobs/{id}"), &h.read.clone()).1;
    assert!(
        wait_for(Duration::from_secs(20), || job()["status"] == "done"),
        "{}",
        job()
    );
    let (s, found) = h.get(&format!("/api/v1/scan-jobs/{id}/findings"), &h.read.clone());
    assert_eq!(s, 200, "{found}");
    let found = found.as_array().cloned().unwrap_or_default();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["file_path"],
        tree.join("a/b/x.php").display().to_string()
    );
    assert_eq!(
        h.post(&format!("/api/v1/scan-jobs/{id}/cancel"), json!({}))
            .0,
        409,
        "finished"
    );
    assert_eq!(h.get("/api/v1/scan-jobs/999999", &h.read.clone()).0, 404);
    assert_eq!(
        h.get("/api/v1/scan-jobs/x/findings", &h.read.clone()).0,
        404
    );
    assert_eq!(h.post("/api/v1/scan-jobs/999999/cancel", json!({})).0, 404);
    // A long job, cancelled at once: it stops queueing.
    let big = h.dir.path().join("big");
    for d in 0..40 {
        let dir = big.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..500 {
            std::fs::write(dir.join(format!("{f}.txt")), "x").expect("file");
        }
    }
    let (s, v) = h.post("/api/v1/scan-jobs", json!({"path": big}));
    assert_eq!(s, 202, "{v}");
    let id = v["job"]["id"].as_u64().expect("id");
    let (s, v) = h.post(&format!("/api/v1/scan-jobs/{id}/cancel"), json!({}));
    if s == 409 {
        eprintln!("the job finished before the cancel; nothing to stop: {v}");
        return;
    }
    assert_eq!((s, &v["status"]), (200, &json!("cancelled")), "{v}");
    assert!(
        wait_for(Duration::from_secs(20), || job_of(&h, id)["finished_at"]
            .is_string()),
        "{}",
        job_of(&h, id)
    );
    let j = job_of(&h, id);
    assert_eq!(j["status"], "cancelled", "{j}");
    assert!(
        j["files_found"].as_u64() < Some(20_000),
        "the walk stopped: {j}"
    );
}

fn job_of(h: &Harness, id: u64) -> serde_json::Value {
    h.get(&format!("/api/v1/scan-jobs/{id}"), &h.read.clone()).1
}

/// The hardening audit reads this host: its verdict on a sysctl matches the sysctl.
#[test]
fn the_hardening_audit_reads_this_host_and_is_kept() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let mut h = Harness::start(net, "");
    let admin = h.admin.clone();
    assert_eq!(h.get("/api/v1/hardening", &admin).0, 404, "none ran yet");
    let (s, r) = h.post("/api/v1/hardening/run", json!({}));
    assert_eq!(s, 200, "{r}");
    let checks = r["checks"].as_array().cloned().unwrap_or_default();
    let of = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {r}"))
    };
    let symlinks: i64 = std::fs::read_to_string("/proc/sys/fs/protected_symlinks")
        .expect("sysctl")
        .trim()
        .parse()
        .expect("int");
    let c = of("fs.protected_symlinks");
    assert_eq!(
        c["status"],
        if symlinks >= 1 { "pass" } else { "fail" },
        "{c}"
    );
    assert_eq!(c["detail"], format!("fs.protected_symlinks = {symlinks}"));
    for c in &checks {
        assert!(
            matches!(c["status"].as_str(), Some("pass" | "fail" | "warn" | "na")),
            "{c}"
        );
        if matches!(c["status"].as_str(), Some("fail" | "warn")) {
            assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
        }
    }
    // What the host measures, against what this test reads itself.
    let (s, perf) = h.get("/api/v1/performance", &admin);
    assert_eq!(s, 200, "{perf}");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(perf["cpus"], cpus, "{perf}");
    let total_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .expect("meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("MemTotal");
    assert_eq!(perf["memory"]["total_mb"], total_kb / 1024, "{perf}");
    assert!(perf["agent"]["rss_mb"].as_f64() > Some(1.0), "{perf}");
    assert!(
        perf["disks"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["path"] == h.www.display().to_string())),
        "the watched tree's disk: {perf}"
    );
    h.restart();
    let (s, kept) = h.get("/api/v1/hardening", &admin);
    assert_eq!((s, &kept["ran_at"]), (200, &r["ran_at"]), "{kept}");
    assert_eq!(
        h.get("/api/v1/hardening", &h.read.clone()).0,
        401,
        "admin only"
    );
}

/// A login user made for the test, removed again even when an assertion fails.
struct TestUser(String);

impl TestUser {
    fn create(name: &str, home: &std::path::Path) -> Self {
        let st = std::process::Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--home-dir",
            ])
            .arg(home)
            .arg(name)
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {name}");
        TestUser(name.to_string())
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).status();
    }
}

/// Hosting accounts are this host's users (no cPanel here).
#[test]
fn accounts_are_the_hosts_users() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let home = h.dir.path().join("home-rtacct");
    let _user = TestUser::create("rtacct", &home);
    let admin = h.admin.clone();
    let (s, list) = h.get("/api/v1/accounts", &admin);
    assert_eq!(s, 200, "{list}");
    let me = list
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "rtacct").cloned())
        .unwrap_or_else(|| panic!("rtacct in {list}"));
    assert_eq!(
        (me["home"].as_str(), me["source"].as_str()),
        (home.to_str(), Some("passwd")),
        "{me}"
    );
    assert!(
        list.as_array().is_some_and(|a| a
            .iter()
            .all(|x| x["name"] != "root" && x["name"] != "nobody")),
        "system users are no accounts: {list}"
    );
    let (s, one) = h.get("/api/v1/account?name=rtacct", &admin);
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["account"]["name"], "rtacct");
    assert!(
        one["findings"].is_array() && one["quarantine"].is_array(),
        "{one}"
    );
    assert_eq!(
        h.get("/api/v1/account?name=root", &admin).0,
        404,
        "not an account"
    );
    assert_eq!(h.get("/api/v1/account?name=../etc", &admin).0, 400);
    assert_eq!(h.get("/api/v1/account", &admin).0, 400, "name required");
    assert_eq!(
        h.get("/api/v1/accounts", &h.read.clone()).0,
        401,
        "admin only"
    );
}

/// `/export` then `/import` round-trips suppressions and the whitelist; a bundle
/// with one bad entry changes nothing.
#[test]
fn state_exports_and_imports_whole_or_not_at_all() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let admin = h.admin.clone();
    let (s, v) = h.post(
        "/api/v1/suppressions",
        json!({"check": "signature_match", "path_glob": "/var/www/*/cache/*", "reason": "cache"}),
    );
    assert_eq!(s, 201, "{v}");
    for body in [
        json!({"ip": "198.51.100.0/24", "reason": "office"}),
        json!({"ip": "203.0.113.44", "reason": "vendor", "duration": "2h"}),
    ] {
        let (s, v) = h.post("/api/v1/firewall/allow-ip", body);
        assert_eq!(s, 200, "{v}");
    }
    let (s, bundle) = h.get("/api/v1/export", &admin);
    assert_eq!(s, 200, "{bundle}");
    assert_eq!(bundle["format"], "rampart-state");
    assert_eq!(
        bundle["suppressions"].as_array().map(Vec::len),
        Some(1),
        "{bundle}"
    );
    assert_eq!(
        bundle["whitelist"].as_array().map(Vec::len),
        Some(2),
        "{bundle}"
    );
    // Forget it all, then import.
    let id = h.get("/api/v1/suppressions", &admin).1[0]["id"].clone();
    assert_eq!(
        h.post(
            "/api/v1/suppressions",
            json!({"action": "delete", "id": id})
        )
        .0,
        200
    );
    for ip in ["198.51.100.0/24", "203.0.113.44"] {
        assert_eq!(
            h.post("/api/v1/firewall/remove-allow", json!({ "ip": ip }))
                .0,
            200
        );
    }
    // One bad entry: nothing of it is applied.
    let mut bad = bundle.clone();
    bad["whitelist"][1]["ip"] = json!("0.0.0.0/0");
    let (s, v) = h.post("/api/v1/import", bad);
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("whitelist[1]")),
        "{v}"
    );
    assert_eq!(
        h.get("/api/v1/suppressions", &admin).1,
        json!([]),
        "nothing applied"
    );
    let (s, v) = h.post("/api/v1/import", bundle.clone());
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["suppressions"], &v["whitelist"], &v["skipped"]),
        (&json!(1), &json!(2), &json!(0)),
        "{v}"
    );
    let (_, allowed) = h.get("/api/v1/firewall/allowed", &admin);
    let vendor = allowed
        .as_array()
        .and_then(|a| a.iter().find(|e| e["ip"] == "203.0.113.44").cloned())
        .unwrap_or_else(|| panic!("{allowed}"));
    assert!(
        vendor["expires_at"].as_str().is_some_and(|e| !e.is_empty()),
        "still temporary: {vendor}"
    );
    let (_, v) = h.post("/api/v1/import", bundle);
    assert_eq!(
        (&v["suppressions"], &v["whitelist"], &v["skipped"]),
        (&json!(0), &json!(0), &json!(3)),
        "{v}"
    );
    let (s, v) = h.post("/api/v1/import", json!({"format": "csm", "version": 9}));
    assert_eq!(s, 400, "{v}");
}

/// Settings: read by section with secrets hidden, written through the API's drop-in
/// after a check with every layer, applied by a restart in place.
#[test]
fn settings_are_checked_written_and_applied_by_a_restart_in_place() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let admin = h.admin.clone();
    let pid = h.agent.as_ref().and_then(|a| a.pid()).expect("pid");
    let drop_in = h.dir.path().join("conf.d/zz-api-settings.yaml");
    let (s, idx) = h.get("/api/v1/settings", &admin);
    assert_eq!(s, 200, "{idx}");
    let editable = |name: &str| {
        idx["sections"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .map(|x| x["editable"].clone())
    };
    assert_eq!(editable("auto_response"), Some(json!(true)), "{idx}");
    assert_eq!(editable("webui"), Some(json!(false)), "{idx}");
    let (s, webui) = h.get("/api/v1/settings/webui", &admin);
    assert_eq!(s, 200, "{webui}");
    assert!(
        !webui.to_string().contains(&admin),
        "the admin token is shown: {webui}"
    );
    assert!(webui.to_string().contains("********"), "{webui}");
    assert_eq!(h.get("/api/v1/settings/nope", &admin).0, 404);
    let (_, ar) = h.get("/api/v1/settings/auto_response", &admin);
    let was = ar["dry_run"].as_bool().expect("dry_run");
    // Refused whole, with the key; nothing written.
    let (s, v) = h.post(
        "/api/v1/settings/auto_response",
        json!({"ban_secs": "soon"}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["key"], "auto_response.ban_secs", "{v}");
    assert!(!drop_in.exists(), "nothing written");
    assert_eq!(
        h.post("/api/v1/settings/webui", json!({"listen": "0.0.0.0:1"}))
            .0,
        422
    );
    let (_, st) = h.get("/api/v1/status", &admin);
    let (hash, token) = (st["config_hash"].clone(), st["started_at_token"].clone());
    // auto_response applies live.
    let (s, v) = h.post("/api/v1/settings/auto_response", json!({"dry_run": !was}));
    assert_eq!((s, &v["restart_required"]), (200, &json!(false)), "{v}");
    assert!(drop_in.exists(), "the drop-in");
    let (_, ar) = h.get("/api/v1/settings/auto_response", &admin);
    assert_eq!(ar["dry_run"], !was, "on disk: {ar}");
    let (_, st) = h.get("/api/v1/status", &admin);
    assert_ne!(st["config_hash"], hash, "the hash follows the files");
    assert_eq!(
        st["automation"]["auto_response_dry_run"], !was,
        "applied at once: {st}"
    );
    let (_, idx) = h.get("/api/v1/settings", &admin);
    assert_eq!(idx["restart_pending"], false, "{idx}");
    // Sections that name programs the agent runs are never written through the API.
    let (s, v) = h.post(
        "/api/v1/settings/modsec",
        json!({"reload_command": ["/bin/sh", "-c", "id"]}),
    );
    assert_eq!(s, 422, "{v}");
    // retention, alerts and quarantine's limits apply live too.
    let (s, v) = h.post("/api/v1/settings/retention", json!({"days": 45}));
    assert_eq!((s, &v["restart_required"]), (200, &json!(false)), "{v}");
    let channel = json!({"channels": [{"name": "ops-hook", "type": "webhook",
        "url": "https://192.0.2.10/hook", "min_severity": "high"}]});
    let (s, v) = h.post("/api/v1/settings/alerts", channel);
    assert_eq!((s, &v["restart_required"]), (200, &json!(false)), "{v}");
    let (_, health) = h.get("/api/v1/health", &admin);
    assert!(
        health["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["name"] == "ops-hook")),
        "the new channel is in force at once: {}",
        health["alerts"]
    );
    let (s, v) = h.post(
        "/api/v1/settings/quarantine",
        json!({"max_bytes": 1048576, "auto": false}),
    );
    assert_eq!((s, &v["restart_required"]), (200, &json!(false)), "{v}");
    // infra_ips (a list: it replaces) are allowed in XDP at once.
    let (s, v) = h.post("/api/v1/settings/infra_ips", json!(["203.0.113.200"]));
    assert_eq!((s, &v["restart_required"]), (200, &json!(false)), "{v}");
    let (_, c) = h.get("/api/v1/firewall/check?ip=203.0.113.200", &admin);
    assert_eq!(
        (&c["allowed"], &c["verdict"]),
        (&json!(true), &json!("pass")),
        "{c}"
    );
    let (_, idx) = h.get("/api/v1/settings", &admin);
    assert_eq!(idx["restart_pending"], false, "{idx}");
    // Where the quarantine lives cannot change under it: that waits for a restart.
    let qdir = h.dir.path().join("q2");
    let (s, v) = h.post(
        "/api/v1/settings/quarantine",
        json!({"dir": qdir.display().to_string()}),
    );
    assert_eq!((s, &v["restart_required"]), (200, &json!(true)), "{v}");
    let (_, idx) = h.get("/api/v1/settings", &admin);
    assert_eq!(idx["restart_pending"], true, "{idx}");
    let (s, v) = h.post("/api/v1/settings/restart", json!({}));
    assert_eq!((s, &v["started_at_token"]), (202, &token), "{v}");
    let restarted = || {
        let (s, st) = h.get("/api/v1/status", &admin);
        s == 200 && st["started_at_token"] != token
    };
    assert!(
        wait_for(Duration::from_secs(60), restarted),
        "no restart; log:\n{}",
        h.log()
    );
    let (_, st) = h.get("/api/v1/status", &admin);
    assert_eq!(
        st["automation"]["auto_response_dry_run"], !was,
        "kept across the restart: {st}"
    );
    let (_, idx) = h.get("/api/v1/settings", &admin);
    assert_eq!(idx["restart_pending"], false, "the restart took it: {idx}");
    let (_, r) = h.get("/api/v1/settings/retention", &admin);
    assert_eq!(r["days"], 45, "{r}");
    let (_, q) = h.get("/api/v1/settings/quarantine", &admin);
    assert_eq!(q["dir"], qdir.display().to_string(), "{q}");
    let (_, st) = h.get("/api/v1/status", &admin);
    assert!(
        qdir.is_dir(),
        "the restarted agent keeps its quarantine there: {st}"
    );
    assert_eq!(
        h.agent.as_ref().and_then(|a| a.pid()),
        Some(pid),
        "in place"
    );
}

/// GeoIP from MaxMind databases (written here with mmdb-writer), 503 without, and
/// databases set through the settings API in force at once.
#[test]
fn geoip_answers_from_the_maxmind_databases_and_says_when_there_are_none() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let dbs = tempfile::tempdir().expect("tmp");
    let write = |name: &str, kind: &str, net: &str, v: serde_json::Value| {
        let mut w = mmdb_writer::Writer::new(kind);
        w.insert(net.parse::<ipnet::IpNet>().expect("net"), &v)
            .expect("insert");
        let p = dbs.path().join(name);
        std::fs::write(&p, w.to_bytes().expect("bytes")).expect("write");
        p
    };
    let city = write(
        "city.mmdb",
        "GeoIP2-City",
        "198.51.100.0/24",
        json!({"country": {"iso_code": "NL", "names": {"en": "Netherlands"}},
               "city": {"names": {"en": "Amsterdam"}},
               "subdivisions": [{"names": {"en": "North Holland"}}]}),
    );
    let asn = write(
        "asn.mmdb",
        "GeoLite2-ASN",
        "198.51.100.0/24",
        json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Net"}),
    );
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\ngeoip:\n  city_db: {}\n  asn_db: {}\n",
        city.display(),
        asn.display()
    );
    let h = Harness::start_with(net, "", &top);
    let admin = h.admin.clone();
    let (s, v) = h.get("/api/v1/geoip?ip=198.51.100.7&detail=1", &admin);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["country"], &v["city"], &v["asn"], &v["as_org"]),
        (
            &json!("NL"),
            &json!("Amsterdam"),
            &json!(64500),
            &json!("Example Net")
        ),
        "{v}"
    );
    assert_eq!(v["detail"]["subdivisions"], json!(["North Holland"]), "{v}");
    let (_, v) = h.get("/api/v1/geoip?ip=192.0.2.1", &admin);
    assert_eq!(v["found"], false, "{v}");
    assert_eq!(h.get("/api/v1/geoip?ip=x", &admin).0, 400);
    let (s, v) = h.post(
        "/api/v1/geoip/batch",
        json!(["198.51.100.1", "nope", "2001:db8::1"]),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["country"], "NL", "{v}");
    assert!(v[1]["error"].is_string(), "{v}");
    assert_eq!(v[2]["found"], false, "{v}");
    let too_many: Vec<String> = (0..1001).map(|i| format!("192.0.2.{}", i % 256)).collect();
    assert_eq!(h.post("/api/v1/geoip/batch", json!(too_many)).0, 400);
    drop(h);
    // No database: 503, saying what is missing.
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let (s, v) = h.get("/api/v1/geoip?ip=198.51.100.7", &h.admin.clone());
    assert_eq!(s, 503, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("geoip.city_db")),
        "{v}"
    );
    // Databases named through the settings API answer at once, no restart.
    let (s, v) = h.post(
        "/api/v1/settings/geoip",
        json!({"city_db": city.display().to_string(), "asn_db": asn.display().to_string()}),
    );
    assert_eq!((s, &v["restart_required"]), (200, &json!(false)), "{v}");
    let (s, v) = h.get("/api/v1/geoip?ip=198.51.100.7", &h.admin.clone());
    assert_eq!(
        (s, &v["country"], &v["asn"]),
        (200, &json!("NL"), &json!(64500)),
        "{v}"
    );
}

/// Clients whose user agent claims a crawler are checked by forward-confirmed
/// reverse DNS (against a DNS server of the test's own), listed, and applied.
#[test]
fn crawlers_claimed_in_the_access_log_are_verified_by_dns() {
    use integration_test::dns::{ptr_name, DnsServer, Record};
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let v4 = |s: &str| s.parse::<std::net::Ipv4Addr>().expect("ip");
    let mut table = std::collections::HashMap::new();
    let real = "crawl-198-51-100-10.googlebot.com";
    table.insert(
        ptr_name(v4("198.51.100.10")),
        vec![Record::Ptr(real.into())],
    );
    table.insert(
        real.to_string(),
        vec![Record::Addr("198.51.100.10".parse().expect("ip"))],
    );
    table.insert(
        ptr_name(v4("203.0.113.66")),
        vec![Record::Ptr("host.evil.example".into())],
    );
    // Under bing's domain, but it does not resolve back.
    let msn = "msnbot-1.search.msn.com";
    table.insert(ptr_name(v4("198.51.100.11")), vec![Record::Ptr(msn.into())]);
    table.insert(
        msn.to_string(),
        vec![Record::Addr("198.51.100.99".parse().expect("ip"))],
    );
    let dns = DnsServer::start(&net.ns_a, "127.0.0.1:5353".parse().expect("addr"), table);
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").expect("log");
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nlogs:\n  access: [{}]\nverified_bots:\n  nameservers: [\"{}\"]\n",
        log.display(),
        dns.addr
    );
    let h = Harness::start_with(net, "", &top);
    let google = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let bing = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
    let line = |ip: &str, ua: &str| {
        format!("{ip} - - [23/Nov/2026:15:00:01 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"{ua}\"\n")
    };
    let text: String = [
        line("198.51.100.10", google),
        line("198.51.100.10", google),
        line("203.0.113.66", google),
        line("198.51.100.11", bing),
        line("198.51.100.12", google),
        line("192.0.2.50", "Mozilla/5.0 (X11; Linux x86_64)"),
    ]
    .concat();
    std::fs::write(&log, text).expect("append");
    let admin = h.admin.clone();
    let verdicts = || {
        let (_, v) = h.get("/api/v1/verified-bots", &admin);
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["ip"].as_str().unwrap_or("").to_string(),
                            x["verdict"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect::<std::collections::BTreeMap<_, _>>()
            })
            .unwrap_or_default()
    };
    let want: std::collections::BTreeMap<String, String> = [
        ("198.51.100.10", "verified"),
        ("198.51.100.11", "fake"),
        ("198.51.100.12", "fake"),
        ("203.0.113.66", "fake"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert!(
        wait_for(Duration::from_secs(20), || verdicts() == want),
        "{:?}; log:\n{}",
        verdicts(),
        h.log()
    );
    let (_, list) = h.get("/api/v1/verified-bots?verdict=verified", &admin);
    assert_eq!(list[0]["hostname"], real, "{list}");
    assert_eq!(list[0]["hits"], 2, "{list}");
    assert_eq!(h.get("/api/v1/verified-bots?verdict=maybe", &admin).0, 400);
    let (s, v) = h.post("/api/v1/verified-bots/apply", json!({"block_fake": true}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["allowed"], &v["blocked"]),
        (&json!(1), &json!(3)),
        "{v}"
    );
    let (_, allowed) = h.get("/api/v1/firewall/allowed", &admin);
    assert!(
        allowed.as_array().is_some_and(|a| a
            .iter()
            .any(|e| e["ip"] == "198.51.100.10" && e["source"] == "verified_bot")),
        "{allowed}"
    );
    let (_, blocked) = h.get("/api/v1/blocked-ips", &admin);
    assert!(
        blocked.as_array().is_some_and(|a| a
            .iter()
            .any(|e| e["ip"] == "203.0.113.66" && e["source"] == "fake_crawler")),
        "{blocked}"
    );
    let (_, v) = h.post("/api/v1/verified-bots/apply", json!({"block_fake": true}));
    assert_eq!(v["skipped"], 4, "applied once: {v}");
    drop(dns);
}

/// Performance findings from the files the scanner reads, and CSM's `/perf/fix-*`
/// acting on them in place; a customer who swaps the file for a symlink to a host
/// file between finding and fix gets a refusal, and the host file is untouched.
#[test]
fn performance_findings_are_fixed_in_place_and_never_through_a_link() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let top = "egress:\n  enabled: false\nexec:\n  enabled: false\nperformance:\n  error_log_max_mb: 1\n  display_errors: true\n  wp_cron: true\n";
    let h = Harness::start_with(net, "", top);
    let site = h.www.join("site");
    std::fs::create_dir(&site).expect("mkdir");
    let log = site.join("error_log");
    std::fs::write(&log, vec![b'e'; 3 << 20]).expect("error_log");
    let ini = site.join(".user.ini");
    std::fs::write(&ini, "memory_limit = 256M\ndisplay_errors = On\n").expect("ini");
    let wp = site.join("wp-config.php");
    std::fs::write(
        &wp,
        "<?php\ndefine('DB_NAME', 'wp');\nrequire_once ABSPATH . 'wp-settings.php';\n",
    )
    .expect("wp-config");
    let id_of = |check: &str, path: &std::path::Path| {
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.as_array().and_then(|a| {
            a.iter()
                .find(|x| x["check"] == check && x["file_path"] == path.display().to_string())
                .and_then(|x| x["id"].as_i64())
        })
    };
    for (check, path) in [
        ("perf_error_log", &log),
        ("perf_display_errors", &ini),
        ("perf_wp_cron", &wp),
    ] {
        assert!(
            wait_for(Duration::from_secs(20), || id_of(check, path).is_some()),
            "no {check} finding for {}; log:\n{}",
            path.display(),
            h.log()
        );
    }

    // By file path, as CSM's UI sends it.
    let (s, v) = h.post(
        "/api/v1/perf/fix-error-log",
        json!({"file_path": log.display().to_string()}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["action"], &v["freed_bytes"]),
        (&json!("truncated"), &json!(3 << 20))
    );
    assert_eq!(std::fs::metadata(&log).expect("log").len(), 0);
    // The wrong route for a finding is refused.
    let ini_id = id_of("perf_display_errors", &ini).expect("ini finding");
    let (s, v) = h.post("/api/v1/perf/fix-wp-cron", json!({"id": ini_id}));
    assert_eq!(s, 422, "{v}");
    let (s, v) = h.post("/api/v1/perf/fix-display-errors", json!({"id": ini_id}));
    assert_eq!(s, 200, "{v}");
    let text = std::fs::read_to_string(&ini).expect("ini");
    assert!(
        text.contains("display_errors = Off") && !text.contains("= On"),
        "{text}"
    );
    let (s, v) = h.post(
        "/api/v1/perf/fix-wp-cron",
        json!({"file_path": wp.display().to_string()}),
    );
    assert_eq!(s, 200, "{v}");
    assert!(
        v["note"]
            .as_str()
            .is_some_and(|n| n.contains("wp-cron.php")),
        "{v}"
    );
    assert!(std::fs::read_to_string(&wp)
        .expect("wp")
        .contains("define( 'DISABLE_WP_CRON', true );"));
    let (_, f) = h.get(
        &format!("/api/v1/finding-detail?id={ini_id}"),
        &h.admin.clone(),
    );
    assert!(f.to_string().contains("fixed"), "the finding is fixed: {f}");

    // The swap: a big error_log is found, then replaced by a symlink to a host file.
    let other = h.www.join("other");
    std::fs::create_dir(&other).expect("mkdir");
    let big = other.join("error_log");
    std::fs::write(&big, vec![b'e'; 2 << 20]).expect("error_log");
    assert!(
        wait_for(Duration::from_secs(20), || id_of("perf_error_log", &big)
            .is_some()),
        "no finding for the second error_log"
    );
    let host_file = h.dir.path().join("host-file");
    std::fs::write(&host_file, "precious").expect("host file");
    std::fs::remove_file(&big).expect("rm");
    std::os::unix::fs::symlink(&host_file, &big).expect("symlink");
    let (s, v) = h.post(
        "/api/v1/perf/fix-error-log",
        json!({"file_path": big.display().to_string()}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        std::fs::read_to_string(&host_file).expect("host file"),
        "precious"
    );
    let (s, _) = h.post("/api/v1/perf/fix-error-log", json!({}));
    assert_eq!(s, 400, "a body naming no finding");
}

/// exim's queue read from its spool files, cPanel's forwarders, and the held and
/// quarantined mail empty where there is none.
#[test]
fn the_mail_queue_and_forwarders_are_read_from_the_host_files() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let mail = tempfile::tempdir().expect("tempdir");
    let input = mail.path().join("spool/input");
    std::fs::create_dir_all(&input).expect("spool");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let msg = |id: &str, sender: &str, frozen: bool, rcpt: &str| {
        let frozen = if frozen { "-frozen 1\n" } else { "" };
        std::fs::write(
            input.join(format!("{id}-H")),
            format!("{id}-H\nmailnull 47 12\n<{sender}>\n{} 0\n-ident mailnull\n{frozen}XX\n1\n{rcpt}\n\n045P Received: x\n", now - 3600),
        )
        .expect("message");
    };
    msg("1aaaaa-000001-Ab", "", true, "victim@example.net");
    msg("1aaaaa-000002-Ab", "", true, "victim@example.net");
    msg(
        "1aaaaa-000003-Ab",
        "shop@shop.test",
        false,
        "buyer@example.org",
    );
    let valiases = mail.path().join("valiases");
    std::fs::create_dir(&valiases).expect("valiases");
    std::fs::write(
        valiases.join("shop.test"),
        "info@shop.test: owner@gmail.com, info@shop.test\n*: :fail: No Such User Here\n",
    )
    .expect("aliases");
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nmail:\n  exim_spool: {}\n  exim_bin: /nonexistent/exim\n  valiases_dir: {}\n  local_domains: /nonexistent\n",
        mail.path().join("spool").display(),
        valiases.display()
    );
    let h = Harness::start_with(net, "", &top);
    let read = h.read.clone();
    let (s, q) = h.get("/api/v1/email/queue-composition", &read);
    assert_eq!(s, 200, "{q}");
    assert_eq!(
        (
            &q["total"],
            &q["backscatter"],
            &q["frozen_backscatter"],
            &q["real"]
        ),
        (&json!(3), &json!(2), &json!(2), &json!(1)),
        "{q}"
    );
    assert!(
        q["oldest_age_secs"].as_u64().is_some_and(|a| a >= 3600),
        "{q}"
    );
    assert_eq!(q["top_recipients"][0]["name"], "victim@example.net", "{q}");
    let (s, v) = h.post("/api/v1/email/queue/flush-backscatter", json!({}));
    assert_eq!(s, 503, "without exim: {v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("exim")),
        "{v}"
    );
    assert!(input.join("1aaaaa-000001-Ab-H").exists(), "nothing removed");
    let (s, f) = h.get("/api/v1/email/forwarders", &read);
    assert_eq!(s, 200, "{f}");
    let info = &f["forwarders"][0];
    assert_eq!(
        (
            &info["address"],
            &info["local_copy"],
            &info["destinations"][0]["provider"]
        ),
        (&json!("info@shop.test"), &json!(true), &json!("google")),
        "{f}"
    );
    // Nothing held or quarantined here: CSM's empty answers.
    for path in ["/api/v1/email/held", "/api/v1/email/quarantine"] {
        let (s, v) = h.get(path, &h.admin.clone());
        assert_eq!((s, &v), (200, &json!([])), "{path}");
    }
}

/// The ModSecurity rules file the API manages (checked by the web server's config
/// test, put back when it fails), and per-rule escalation of WAF denials into the
/// auto-responder.
#[test]
fn modsec_rules_are_applied_tested_and_escalated() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("modsec");
    std::fs::create_dir(&conf).expect("mkdir");
    let file = conf.join("rampart.conf");
    let audit = tmp.path().join("modsec_error.log");
    std::fs::write(&audit, "").expect("log");
    // The "web server's config test": refuses a file that says deny-everything.
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nlogs:\n  modsec: [{}]\nauto_response:\n  enabled: true\n  dry_run: false\n  ban_secs: 600\nmodsec:\n  custom_rules: {}\n  test_command: [/bin/sh, -c, \"! grep -q deny-everything \\\"$0\\\"\", \"{{file}}\"]\n  reload_command: [/bin/true]\n",
        audit.display(),
        file.display()
    );
    let h = Harness::start_with(net, "", &top);
    let rules = "SecRule ARGS \"@rx rampart-test\" \"id:1000001,phase:2,deny,status:403\"\n";
    let (s, v) = h.post("/api/v1/modsec/rules/apply", json!({ "rules": rules }));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["rules"], &v["tested"], &v["reloaded"]),
        (&json!(1), &json!(true), &json!(true))
    );
    let applied = std::fs::read_to_string(&file).expect("file");
    assert!(applied.contains("id:1000001"), "{applied}");
    let (s, v) = h.post(
        "/api/v1/modsec/rules/apply",
        json!({"rules": "# deny-everything\nSecAction \"id:1000002,phase:1,deny\"\n"}),
    );
    assert_eq!(s, 422, "the config test failed: {v}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("file"),
        applied,
        "the previous file is back"
    );
    let (s, v) = h.post(
        "/api/v1/modsec/rules/apply",
        json!({"rules": "Include /etc/shadow\n"}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = h.post(
        "/api/v1/modsec/rules/escalation",
        json!({"rule_id": "942100", "action": "log", "severity": "WARNING"}),
    );
    assert_eq!(s, 200, "{v}");
    let text = std::fs::read_to_string(&file).expect("file");
    assert!(
        text.contains("SecRuleUpdateActionById 942100 \"pass,log,severity:WARNING\"")
            && text.contains("id:1000001"),
        "{text}"
    );

    // Escalation: one denial by 942100 now handles the client at once; 920350's
    // denials no longer count.
    let deny = |ip: &str, id: &str| {
        format!("[Mon Nov 23 15:00:01.123456 2026] [security2:error] [pid 1:tid 2] [client {ip}:54321] [client {ip}] ModSecurity: Access denied with code 403 (phase 2). Pattern match \"x\" at ARGS:q. [file \"/x.conf\"] [line \"1\"] [id \"{id}\"] [msg \"m\"] [severity \"CRITICAL\"] [hostname \"example.com\"] [uri \"/index.php\"] [unique_id \"Zz\"]\n")
    };
    let (s, v) = h.post(
        "/api/v1/rules/modsec-escalation",
        json!({"rule_id": "942100", "escalation": "block"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["overrides"]["942100"], "block", "{v}");
    let (s, _) = h.post(
        "/api/v1/rules/modsec-escalation",
        json!({"rule_id": "920350", "escalation": "ignore"}),
    );
    assert_eq!(s, 200);
    let (s, v) = h.post(
        "/api/v1/rules/modsec-escalation",
        json!({"rule_id": "920350", "escalation": "loud"}),
    );
    assert_eq!(s, 400, "{v}");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .expect("log");
    for _ in 0..8 {
        std::io::Write::write_all(&mut log, deny("203.0.113.61", "920350").as_bytes()).expect("w");
    }
    std::io::Write::write_all(&mut log, deny("203.0.113.60", "942100").as_bytes()).expect("w");
    let admin = h.admin.clone();
    let blocked = |ip: &str| {
        let (_, b) = h.get("/api/v1/blocked-ips", &admin);
        b.to_string().contains(ip)
    };
    assert!(
        wait_for(Duration::from_secs(15), || blocked("203.0.113.60")),
        "one denial of an escalated rule blocks; log:\n{}",
        h.log()
    );
    assert!(
        !blocked("203.0.113.61"),
        "ignored rule's denials never count"
    );
}
