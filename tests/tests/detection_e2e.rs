// SPDX-License-Identifier: GPL-2.0-only
//! The detection pipeline end to end, through the real agent and its API:
//! - a webshell and the EICAR file written into a watched dir reach SSE as
//!   signature findings naming their rules;
//! - /fix quarantines the webshell; /quarantine-restore puts it back byte-identical
//!   with its owner, mode and mtime; the actions are in the finding's history;
//! - dismiss, suppressions, history filters and the CSV export;
//! - a rule added on disk + /rules/reload is live (and auto-quarantines, as marked);
//!   a broken rule file is refused (`ok: false`) with file and line, and the previous rules stay;
//! - SSE resume with Last-Event-ID replays what was missed;
//! - kill -9: every finding and quarantine record acknowledged before is still there.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    time::Duration,
};

use integration_test::{harness::Harness, net_or_skip, wait_for};
use serde_json::{json, Value};

const WEBSHELL: &str = "<?php system($_GET['cmd']); ?>\n";
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn active(h: &Harness) -> Vec<Value> {
    let (s, v) = h.get("/api/v1/findings", &h.read.clone());
    assert_eq!(s, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

fn with_path<'a>(v: &'a [Value], path: &str) -> Vec<&'a Value> {
    v.iter().filter(|f| f["path"] == path).collect()
}

/// Write `content` owned by 33:33, mode 0640, mtime 1.6e9 in `staging` (outside the
/// watched tree), then rename it to `dst` (the rename is the event; the metadata is
/// final by then).
fn plant_at(staging: &std::path::Path, dst: &std::path::Path, content: &[u8]) {
    std::fs::write(staging, content).expect("write");
    nix::unistd::chown(staging, Some(33.into()), Some(33.into())).expect("chown");
    std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let t = nix::sys::time::TimeSpec::new(1_600_000_000, 250_000_000);
    nix::sys::stat::utimensat(
        None,
        staging,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat");
    std::fs::rename(staging, dst).expect("rename into the watched dir");
}

fn plant(h: &Harness, name: &str, content: &[u8]) -> std::path::PathBuf {
    let dst = h.www.join(name);
    plant_at(&h.dir.path().join(format!("staging-{name}")), &dst, content);
    dst
}

#[test]
fn signatures_quarantine_restore_rules_and_sse_resume() {
    let Some(net) = net_or_skip() else { return };
    let mut h = Harness::start(net, "");

    // 1. Webshell + EICAR → two signature findings on SSE, with their rules.
    let (www, dir) = (h.www.clone(), h.dir.path().to_path_buf());
    let events = {
        let (w, d) = (www.clone(), dir.clone());
        h.sse(
            None,
            move || {
                // Written in place (write-close) and planted by rename.
                std::fs::write(w.join("eicar.com"), EICAR).expect("eicar");
                plant_at(
                    &d.join("staging-shell.php"),
                    &w.join("shell.php"),
                    WEBSHELL.as_bytes(),
                );
            },
            |ev| {
                let rules: Vec<&str> = ev.iter().filter_map(|(_, f)| f["rule"].as_str()).collect();
                rules.contains(&"php_exec_request_input") && rules.contains(&"eicar_test_file")
            },
        )
    };
    let shell = www.join("shell.php");
    let eicar = www.join("eicar.com");
    let find = |rule: &str| {
        events
            .iter()
            .find(|(_, f)| f["rule"] == rule)
            .cloned()
            .unwrap_or_else(|| panic!("{rule} in {events:?}"))
    };
    let (shell_id, shell_f) = find("php_exec_request_input");
    let (eicar_id, eicar_f) = find("eicar_test_file");
    assert_eq!(shell_f["check"], "signature_match");
    assert_eq!(shell_f["severity_label"], "critical");
    assert_eq!(shell_f["path"], shell.display().to_string());
    assert_eq!(shell_f["id"], shell_id);
    assert!(
        shell_f["details"]
            .as_str()
            .is_some_and(|d| d.contains("offset 6")),
        "{shell_f}"
    );
    assert_eq!(eicar_f["path"], eicar.display().to_string());
    assert_eq!(
        eicar_f["uid"], 0,
        "the writer (root) is attributed: {eicar_f}"
    );

    // A repeat write of the same file within the window is one finding with a count.
    std::fs::write(&eicar, EICAR).expect("rewrite");
    assert!(
        wait_for(Duration::from_secs(10), || {
            with_path(&active(&h), &eicar.display().to_string())
                .first()
                .is_some_and(|f| f["count"] == 2)
        }),
        "repeat must count on the active finding: {:?}",
        active(&h)
    );
    assert_eq!(
        with_path(&active(&h), &eicar.display().to_string()).len(),
        1
    );

    // Both came from this test's process as root: one incident keyed on it.
    // Incidents carry the operators' audit trail: admin only, as in CSM.
    let (s, _) = h.get("/api/v1/incidents", &h.read.clone());
    assert_eq!(s, 401, "a read token is refused");
    let (s, incs) = h.get("/api/v1/incidents", &h.admin.clone());
    assert_eq!(s, 200, "{incs}");
    let inc = incs
        .as_array()
        .and_then(|a| a.iter().find(|i| i["kind"] == "process"))
        .unwrap_or_else(|| panic!("a process incident in {incs}"))
        .clone();
    let inc_id = inc["id"].as_i64().expect("id");
    assert_eq!(inc["status"], "open");
    assert_eq!(
        inc["severity"], "critical",
        "the worst of its findings: {inc}"
    );
    let (s, one) = h.get(&format!("/api/v1/incidents/{inc_id}"), &h.admin.clone());
    assert_eq!(s, 200, "{one}");
    let ids: Vec<i64> = one["findings"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&shell_id) && ids.contains(&eicar_id), "{one}");
    assert_eq!(h.get("/api/v1/incidents/999999", &h.admin.clone()).0, 404);
    assert_eq!(h.get("/api/v1/incidents/nope", &h.admin.clone()).0, 404);
    assert_eq!(
        h.get(&format!("/api/v1/incidents/{inc_id}"), &h.read.clone())
            .0,
        401
    );
    let (_, groups) = h.get("/api/v1/incidents/groups", &h.read.clone());
    assert!(
        groups
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["latest_id"] == inc_id)),
        "{groups}"
    );
    let status_path = format!("/api/v1/incidents/{inc_id}/status");
    assert_eq!(h.post(&status_path, json!({ "status": "bogus" })).0, 400);
    let (s, r) = h.post(
        &status_path,
        json!({ "status": "resolved", "details": "operator-marked" }),
    );
    assert_eq!((s, r["status"].as_str()), (200, Some("resolved")), "{r}");

    // 2. Quarantine through the API (/fix) and restore, byte-identical.
    let before = std::fs::metadata(&shell).expect("stat");
    let (s, fixed) = h.post("/api/v1/fix", json!({ "id": shell_id }));
    assert_eq!(s, 200, "{fixed}");
    assert_eq!(fixed["action"], "quarantine");
    let qid = fixed["quarantine_id"]
        .as_str()
        .expect("quarantine id")
        .to_string();
    assert!(
        !shell.exists(),
        "quarantined file is gone from the web root"
    );
    let (s, q) = h.get("/api/v1/quarantine", &h.admin.clone());
    assert_eq!(s, 200, "{q}");
    let entry = q
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == qid.as_str()))
        .unwrap_or_else(|| panic!("{qid} in {q}"))
        .clone();
    assert_eq!(entry["original_path"], shell.display().to_string());
    assert_eq!(
        (
            entry["uid"].clone(),
            entry["gid"].clone(),
            entry["mode"].clone()
        ),
        (json!(33), json!(33), json!(0o640))
    );
    assert_eq!(entry["live_state"], "original_missing");
    assert_eq!(entry["rule"], "php_exec_request_input");
    let (s, p) = h.get(
        &format!("/api/v1/quarantine-preview?id={qid}"),
        &h.admin.clone(),
    );
    assert_eq!((s, p["content"].as_str()), (200, Some(WEBSHELL)), "{p}");
    // The read token may not see the quarantine (admin-only per the spec).
    assert_eq!(h.get("/api/v1/quarantine", &h.read.clone()).0, 401);
    // Fixed findings leave the active list and stay in the history.
    assert!(with_path(&active(&h), &shell.display().to_string()).is_empty());
    let (_, hist) = h.get(
        "/api/v1/history?status=fixed&search=shell.php",
        &h.read.clone(),
    );
    assert_eq!(hist["total"], 1, "{hist}");
    assert_eq!(hist["findings"][0]["id"], shell_id);

    let (s, r) = h.post("/api/v1/quarantine-restore", json!({ "id": qid }));
    assert_eq!(s, 200, "{r}");
    assert_eq!(std::fs::read_to_string(&shell).expect("restored"), WEBSHELL);
    let after = std::fs::metadata(&shell).expect("stat");
    assert_eq!(
        (
            after.uid(),
            after.gid(),
            after.mode(),
            after.mtime(),
            after.mtime_nsec()
        ),
        (
            before.uid(),
            before.gid(),
            before.mode(),
            before.mtime(),
            before.mtime_nsec()
        ),
        "owner, mode and mtime restored"
    );
    let (s, again) = h.post("/api/v1/quarantine-restore", json!({ "id": qid }));
    assert_eq!(s, 404, "{again}");
    // The action history is the operators' audit trail: admin only, checked before
    // the query is looked at.
    assert_eq!(
        h.get("/api/v1/finding-detail?id=not-a-number", &h.read.clone())
            .0,
        401
    );
    let (_, detail) = h.get(
        &format!("/api/v1/finding-detail?id={shell_id}"),
        &h.admin.clone(),
    );
    let actions: Vec<&str> = detail["actions"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        actions.contains(&"fix") && actions.contains(&"quarantine_restore"),
        "{detail}"
    );
    assert_eq!(detail["finding"]["status"], "fixed");

    // 3. Dismiss by CSM's (check, message) identity; bad bodies are 400s.
    let (s, d) = h.post(
        "/api/v1/dismiss",
        json!({ "check": "signature_match", "message": eicar_f["message"] }),
    );
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["dismissed"], json!([eicar_id]));
    assert!(with_path(&active(&h), &eicar.display().to_string()).is_empty());
    assert_eq!(h.post("/api/v1/dismiss", json!({ "id": eicar_id })).0, 404);
    assert_eq!(h.post("/api/v1/dismiss", json!({})).0, 400);
    assert_eq!(h.post("/api/v1/dismiss", json!({ "nope": 1 })).0, 400);
    assert_eq!(
        h.get("/api/v1/history?severity=loud", &h.read.clone()).0,
        400
    );
    assert_eq!(
        h.get("/api/v1/history?from=yesterday", &h.read.clone()).0,
        400
    );

    // 4. Suppression by check + path glob: a webshell under cache/ is not a finding.
    let cache = www.join("cache");
    std::fs::create_dir(&cache).expect("mkdir");
    let (s, sup) = h.post(
        "/api/v1/suppressions",
        json!({ "check": "signature_match", "path_glob": format!("{}/**", cache.display()), "reason": "vendor cache" }),
    );
    assert_eq!(s, 201, "{sup}");
    assert_eq!(
        h.post(
            "/api/v1/suppressions",
            json!({ "reason": "matches everything" })
        )
        .0,
        400
    );
    std::fs::write(cache.join("x.php"), WEBSHELL).expect("write");
    let sup_id = sup["suppression"]["id"].clone();
    assert!(
        wait_for(Duration::from_secs(10), || {
            let (_, list) = h.get("/api/v1/suppressions", &h.admin.clone());
            list.as_array()
                .and_then(|a| a.iter().find(|s| s["id"] == sup_id))
                .is_some_and(|s| s["hits"] == 1)
        }),
        "the suppression must count its hit"
    );
    assert!(with_path(&active(&h), &cache.join("x.php").display().to_string()).is_empty());

    // 5. A rule added on disk is live after a reload; it is marked auto_quarantine.
    let rules = dir.join("rules");
    std::fs::write(
        rules.join("local.yml"),
        "rules:\n  - name: local_marker\n    severity: high\n    patterns: [RAMPART-LOCAL-MARKER]\n    auto_quarantine: true\n",
    )
    .expect("rule file");
    let (s, r) = h.post("/api/v1/rules/reload", json!({}));
    assert_eq!(s, 200, "{r}");
    let version = r["version"].clone();
    let marked = plant(&h, "marked.txt", b"xx RAMPART-LOCAL-MARKER xx");
    assert!(
        wait_for(Duration::from_secs(10), || {
            active(&h).iter().any(|f| {
                f["rule"] == "local_marker"
                    && f["details"]
                        .as_str()
                        .is_some_and(|d| d.contains("auto-quarantined"))
            })
        }),
        "local rule must fire and auto-quarantine: {:?}",
        active(&h)
    );
    assert!(!marked.exists(), "auto-quarantined");

    // A broken file: CSM's 200 with ok false, naming file and line; the previous set
    // stays active.
    std::fs::write(rules.join("broken.yar"), "rule broken {\n  condition:\n}\n").expect("write");
    let (s, r) = h.post("/api/v1/rules/reload", json!({}));
    assert_eq!((s, &r["ok"]), (200, &json!(false)), "{r}");
    let err = &r["errors"][0];
    assert!(
        err["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("broken.yar")),
        "{r}"
    );
    assert_eq!(err["line"], 3, "{r}");
    let (_, st) = h.get("/api/v1/rules/status", &h.admin.clone());
    assert_eq!(st["version"], version, "{st}");
    assert!(st["last_error"]["errors"][0]["line"] == 3, "{st}");
    plant(&h, "marked2.txt", b"RAMPART-LOCAL-MARKER");
    assert!(
        wait_for(Duration::from_secs(10), || {
            active(&h).iter().any(|f| {
                f["rule"] == "local_marker"
                    && f["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("marked2.txt"))
            })
        }),
        "the previous rules keep working after a failed reload"
    );
    std::fs::remove_file(rules.join("broken.yar")).expect("rm");

    // The resolved incident stays closed: later findings of the same process opened
    // a fresh one, and reopening the old one while that is open is a conflict.
    let (_, incs) = h.get(
        "/api/v1/incidents?status=open&kind=process",
        &h.admin.clone(),
    );
    let fresh = incs
        .as_array()
        .and_then(|a| a.iter().find(|i| i["source"] == inc["source"]))
        .unwrap_or_else(|| panic!("a fresh incident for {} in {incs}", inc["source"]))
        .clone();
    assert_ne!(fresh["id"], inc_id);
    assert_eq!(h.post(&status_path, json!({ "status": "open" })).0, 409);
    let (s, tl) = h.get(
        "/api/v1/incident?account=nobody-here&hours=1",
        &h.admin.clone(),
    );
    assert_eq!((s, tl["total"].as_i64()), (200, Some(0)), "{tl}");
    assert_eq!(h.get("/api/v1/incident", &h.admin.clone()).0, 400);

    // 6. Stats, CSV export, audit.
    let (_, stats) = h.get("/api/v1/stats", &h.read.clone());
    assert!(
        stats["last_24h"]["critical"]
            .as_i64()
            .is_some_and(|n| n >= 1),
        "{stats}"
    );
    assert!(
        stats["auto_response"]["quarantined_24h"]
            .as_i64()
            .is_some_and(|n| n >= 2),
        "{stats}"
    );
    let (_, trend) = h.get("/api/v1/stats/trend", &h.read.clone());
    assert_eq!(trend.as_array().map(Vec::len), Some(30), "{trend}");
    let (s, csv) = h.get("/api/v1/history/csv?search=eicar", &h.admin.clone());
    let csv = csv.as_str().unwrap_or_default().to_string();
    assert_eq!(s, 200);
    assert!(
        csv.starts_with("id,timestamp,last_seen,severity,check,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 2, "header + the EICAR finding: {csv}");
    let (_, audit) = h.get("/api/v1/audit", &h.admin.clone());
    let acts: Vec<&str> = audit
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["action"].as_str()).collect())
        .unwrap_or_default();
    for a in [
        "fix",
        "quarantine_restore",
        "dismiss",
        "suppression_add",
        "rules_reload",
        "rules_reload_failed",
        "export_history_csv",
    ] {
        assert!(acts.contains(&a), "{a} in {acts:?}");
    }

    // 7. SSE resume: a client that saw up to shell_id - 1 gets everything after it.
    let replay = h.sse(Some(shell_id - 1), || {}, |ev| ev.len() >= 2);
    assert_eq!(replay[0].0, shell_id, "first replayed id");
    assert!(
        replay.windows(2).all(|w| w[0].0 < w[1].0),
        "in order, no duplicates"
    );

    // 8. kill -9, restart: everything acknowledged is still there.
    let (_, hist_before) = h.get("/api/v1/history?limit=1000", &h.read.clone());
    h.kill9();
    h.restart();
    let (_, hist_after) = h.get("/api/v1/history?limit=1000", &h.read.clone());
    let ids = |v: &Value| -> Vec<i64> {
        v["findings"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["id"].as_i64()).collect())
            .unwrap_or_default()
    };
    let after_ids = ids(&hist_after);
    assert!(
        ids(&hist_before).iter().all(|i| after_ids.contains(i)),
        "{hist_before}\n{hist_after}"
    );
    let (_, q) = h.get("/api/v1/quarantine", &h.admin.clone());
    assert!(
        q.as_array()
            .is_some_and(|a| a.iter().any(|e| e["rule"] == "local_marker")),
        "{q}"
    );
    h.stop();
}

#[test]
fn on_demand_account_scan_is_a_job() {
    let Some(net) = net_or_skip() else { return };
    let h = Harness::start(net, "");
    let tree = h.dir.path().join("acct");
    std::fs::create_dir_all(tree.join("public_html/wp")).expect("mkdir");
    for i in 0..50 {
        std::fs::write(
            tree.join(format!("public_html/wp/f{i}.php")),
            "<?php echo 1;",
        )
        .expect("write");
    }
    std::fs::write(
        tree.join("public_html/wp/z.php"),
        "<?php eval(gzinflate(base64_decode('x')));",
    )
    .expect("write");
    let (s, r) = h.post(
        "/api/v1/scan-account",
        json!({ "path": tree.display().to_string() }),
    );
    assert_eq!(s, 202, "{r}");
    let id = r["job"]["id"].as_u64().expect("job id");
    let done = wait_for(Duration::from_secs(30), || {
        let (_, j) = h.get(&format!("/api/v1/scan-jobs?id={id}"), &h.admin.clone());
        j["status"] == "done"
    });
    let (_, j) = h.get(&format!("/api/v1/scan-jobs?id={id}"), &h.admin.clone());
    assert!(done, "{j}");
    assert_eq!(
        (
            j["files_found"].clone(),
            j["files_scanned"].clone(),
            j["matches"].clone()
        ),
        (json!(51), json!(51), json!(1)),
        "{j}"
    );
    let found = active(&h);
    let z = tree.join("public_html/wp/z.php").display().to_string();
    let f = with_path(&found, &z);
    assert_eq!(f.len(), 1, "{found:?}");
    assert_eq!(f[0]["rule"], "php_eval_decoded");
    assert!(f[0]["details"]
        .as_str()
        .is_some_and(|d| d.contains(&format!("scan job {id}"))));
    assert_eq!(
        h.post("/api/v1/scan-account", json!({ "path": "/nonexistent/x" }))
            .0,
        404
    );
    assert_eq!(
        h.post("/api/v1/scan-account", json!({ "account": "../etc" }))
            .0,
        400
    );
    assert_eq!(h.post("/api/v1/scan-account", json!({})).0, 400);
}
