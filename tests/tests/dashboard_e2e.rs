// SPDX-License-Identifier: GPL-2.0-only
//! The dashboard in a real browser (headless Chromium over WebDriver) against the
//! real agent: log in, a finding arriving live, a block that lands in the XDP map, a
//! quarantined file restored, a read-only session without write controls, a write
//! without the CSRF token refused, log out. Screenshots of every page go to
//! target/dashboard/.

use std::{path::PathBuf, time::Duration};

use integration_test::{browser::Browser, harness::Harness, wait_for};
use serde_json::json;

const BASE: &str = "https://127.0.0.1:9443";
const SHELL: &str = "<?php system($_GET['cmd']); ?>";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard")
}

/// Chromium and a test network pair, or None: a skip here, a failure in CI.
fn browser_and_net() -> Option<integration_test::NetPair> {
    if !integration_test::feature_available(
        "Chromium and chromedriver",
        integration_test::browser::available(),
    ) {
        return None;
    }
    integration_test::net_or_skip()
}

/// Wait for the undo banner with its button; its text.
fn undo_banner(b: &Browser) -> String {
    assert!(
        b.wait("#undo:not([hidden]) #undo-run", 10),
        "the undo banner: {}",
        b.text("body")
    );
    b.text("#undo")
}

fn login(b: &Browser, token: &str) {
    assert!(
        b.login(BASE, token),
        "the overview after login; at {}",
        b.url()
    );
}

fn page(b: &Browser, name: &str) {
    // Already there: the same hash would not render the page again, so go by
    // another page first (what the test checks next must be fresh).
    if b.url().ends_with(&format!("#{name}")) {
        let other = if name == "overview" {
            "rules"
        } else {
            "overview"
        };
        b.goto(&format!("{BASE}/#{other}"));
        assert!(b.wait(&format!("body[data-ready={other}]"), 20));
    }
    b.goto(&format!("{BASE}/#{name}"));
    assert!(
        b.wait(&format!("body[data-ready={name}]"), 20),
        "page {name} did not render: {}",
        b.text("body")
    );
}

/// A test network is settled when it is handed out: each veth has its IPv6
/// link-local address, not tentative. One arriving later (after the carrier event,
/// after duplicate address detection) is an address change that makes Chromium fail
/// the navigation in flight with ERR_NETWORK_CHANGED; CI saw it on the first
/// browser test of a fresh machine.
#[test]
fn a_test_network_has_no_address_still_to_come() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    for (ns, ifc) in [(&net.ns_a, &net.if_a), (&net.ns_b, &net.if_b)] {
        let out = integration_test::sh("ip", &["-n", ns, "-6", "addr", "show", "dev", ifc])
            .expect("ip addr");
        assert!(
            out.contains("fe80::") && !out.contains("tentative"),
            "{ifc} in {ns}: {out}"
        );
    }
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some(net) = browser_and_net() else {
        return;
    };
    let h = Harness::start(net, "");
    let b = Browser::start(&h.net.ns_a);

    // Not logged in: the page sends the browser to the login form; a wrong token is
    // refused there.
    b.goto(&format!("{BASE}/"));
    assert!(
        b.wait("#token", 10),
        "redirected to /login; at {}: {}",
        b.url(),
        b.source()
    );
    b.type_into("#token", "wrong-token-wrong-token-wrong");
    b.click("form button[type=submit]");
    assert!(
        b.wait("#login-error", 10),
        "a refused token says so; at {}: {}",
        b.url(),
        b.source()
    );

    login(&b, &h.admin);
    assert!(b.text("#who").contains("admin"), "{}", b.text("#who"));
    b.screenshot(&shots().join("overview.png"));

    // A webshell written now appears in the findings list live (SSE).
    page(&b, "findings");
    assert!(b.wait("#live.on", 10), "the live stream is open");
    let shell = h.www.join("dash.php");
    std::fs::write(&shell, SHELL).expect("webshell");
    let row = "tr[data-id] td.wrap";
    assert!(
        wait_for(Duration::from_secs(20), || b.exists(row)
            && b.text("#page-findings")
                .contains(&shell.display().to_string())),
        "the finding arrives live; page:\n{}",
        b.text("#main")
    );
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    let id = f
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["file_path"] == shell.display().to_string())
        })
        .and_then(|x| x["id"].as_i64())
        .expect("finding id");
    let this = format!("tr[data-id='{id}']");
    // Its detail: every field, and the filters narrow the list.
    b.click(&format!("{this} a.open"));
    assert!(
        b.wait("#finding-detail:not([hidden]) dl.kv", 10),
        "the detail opens"
    );
    let detail = b.text("#finding-detail");
    assert!(
        detail.contains(&shell.display().to_string())
            && detail.contains("Actions")
            && detail.contains("lineage"),
        "the detail names the file, the writer's lineage (this test, alive) and has the action history: {detail}"
    );
    b.type_into("#f-path", "/no/such/tree");
    assert!(
        !b.exists("tr[data-id]"),
        "a path filter that matches nothing"
    );
    b.fill("#f-path", "");
    assert!(b.exists("tr[data-id]"), "the filter cleared");
    b.screenshot(&shots().join("findings.png"));
    // Dismissed in bulk, then put back from the undo banner.
    let listed = |h: &Harness| {
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["file_path"] == shell.display().to_string())
        })
    };
    b.click(&format!("{this} input.pick"));
    b.click("#f-dismiss-selected");
    let banner = undo_banner(&b);
    assert!(banner.contains("Dismissed 1 finding"), "{banner}");
    assert!(
        wait_for(Duration::from_secs(10), || !listed(&h)),
        "dismissed: no longer active"
    );
    b.click("#undo-run");
    assert!(
        wait_for(Duration::from_secs(10), || listed(&h)),
        "the undo made it active again"
    );
    assert!(
        b.wait(&format!("{this} a.open"), 10),
        "listed again on the page"
    );

    // Block from the page: the row appears and the address is in the XDP map.
    page(&b, "firewall");
    b.type_into("#block-form input[name=ip]", "203.0.113.77");
    b.type_into("#block-form input[name=reason]", "from the dashboard");
    b.click("#block-form button[type=submit]");
    assert!(
        b.wait("tr[data-ip='203.0.113.77']", 15),
        "the block is listed"
    );
    assert!(
        h.in_block_map(32, [203, 0, 113, 77]),
        "the block is in the XDP map"
    );
    b.screenshot(&shots().join("firewall.png"));

    // Quarantine the webshell (through its finding), then restore it from the page.
    let (s, v) = h.post("/api/v1/fix", json!({ "id": id }));
    assert_eq!(s, 200, "{v}");
    assert!(!shell.exists(), "quarantined");
    page(&b, "quarantine");
    assert!(b.wait("button.restore", 10), "a restore button");
    b.click("button.restore");
    assert!(
        wait_for(Duration::from_secs(10), || shell.exists()),
        "restored from the page"
    );
    b.screenshot(&shots().join("quarantine.png"));

    // The fixed finding under its status, with who fixed it in its history.
    page(&b, "findings");
    b.select("#f-status", "fixed");
    assert!(
        b.wait("tr[data-status=fixed] a.open", 10),
        "the fixed finding is listed: {}",
        b.text("#main")
    );
    b.click("tr[data-status=fixed] a.open");
    assert!(b.wait("#finding-detail:not([hidden]) table", 10));
    let detail = b.text("#finding-detail");
    assert!(
        detail.contains("fix") && detail.contains("op"),
        "the fix and its actor in the history: {detail}"
    );
    for p in ["threats", "rules", "settings"] {
        page(&b, p);
        b.screenshot(&shots().join(format!("{p}.png")));
    }

    // A write without the CSRF token is refused, even with the session cookie.
    let status = b.run_async(
        "const done = arguments[arguments.length - 1];
         fetch('/api/v1/block-ip', {method: 'POST', credentials: 'same-origin',
           headers: {'content-type': 'application/json'}, body: '{\"ip\":\"203.0.113.78\"}'})
         .then(r => done(r.status), e => done(String(e)));",
    );
    assert_eq!(status, json!(403), "CSRF-less write");

    // Log out: back at the form, and the session is gone.
    b.click("#logout");
    assert!(b.wait("#token", 10), "the login form after logout");
    let status = b.run_async(
        "const done = arguments[arguments.length - 1];
         fetch('/api/v1/status', {credentials: 'same-origin'}).then(r => done(r.status));",
    );
    assert_eq!(status, json!(401), "the session ended");

    // A read session sees everything and no write control.
    login(&b, &h.read);
    assert!(b.text("#who").contains("read"));
    page(&b, "firewall");
    assert!(!b.exists("#block-form"), "no block form for a read session");
    assert!(!b.exists("tr[data-ip] button"), "no unblock buttons");
    page(&b, "findings");
    assert!(b.exists("tr[data-id]"), "findings are shown");
    assert!(!b.exists("tr[data-id] button"), "no dismiss or fix buttons");
    page(&b, "quarantine");
    assert!(!b.exists("button.restore"), "no restore for a read session");
}

/// Bulk actions with their undo, bulk import with its progress, the policy on trial
/// with its countdown, and an address's timeline: each through the page, each
/// checked where it takes effect (the XDP map, the API).
#[test]
fn the_dashboards_bulk_actions_import_policy_trial_and_timeline() {
    let Some(net) = browser_and_net() else {
        return;
    };
    let (h, _logs, log) = Harness::with_sshd_log(net, "auto_response:\n  enabled: false\n");
    let b = Browser::start(&h.net.ns_a);
    login(&b, &h.admin);

    // Bulk unblock from the list, then undo it from the banner.
    for ip in ["203.0.113.80", "203.0.113.81"] {
        let (s, v) = h.post(
            "/api/v1/block-ip",
            json!({ "ip": ip, "reason": "bulk test" }),
        );
        assert_eq!(s, 200, "{v}");
    }
    page(&b, "firewall");
    b.click("tr[data-ip='203.0.113.80'] input.pick");
    b.click("tr[data-ip='203.0.113.81'] input.pick");
    assert!(b.text("#fw-unblock-selected").contains("(2)"));
    b.click("#fw-unblock-selected");
    let banner = undo_banner(&b);
    assert!(
        wait_for(Duration::from_secs(10), || !h
            .in_block_map(32, [203, 0, 113, 80])
            && !h.in_block_map(32, [203, 0, 113, 81])),
        "unblocked in the XDP map"
    );
    assert!(banner.contains("Unblocked 2 addresses"), "{banner}");
    b.screenshot(&shots().join("undo.png"));
    b.click("#undo-run");
    assert!(
        wait_for(Duration::from_secs(10), || h
            .in_block_map(32, [203, 0, 113, 80])
            && h.in_block_map(32, [203, 0, 113, 81])),
        "the undo blocked both again"
    );
    assert!(b.wait("tr[data-ip='203.0.113.81']", 10), "listed again");
    let (_, list) = h.get("/api/v1/blocked-ips", &h.admin.clone());
    let back = list
        .as_array()
        .and_then(|a| a.iter().find(|e| e["ip"] == "203.0.113.80"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&back["reason"], &back["source"]),
        (&json!("bulk test"), &json!("api")),
        "restored as it was: {back}"
    );
    assert!(
        b.exists("#undo[hidden]"),
        "the banner is gone after the undo"
    );

    // Bulk import: 255 + 50 addresses, a CIDR, a comment, a bad line; two batches.
    let mut lines: Vec<String> = (1..=255).map(|i| format!("192.0.2.{i}")).collect();
    lines.extend((100..150).map(|i| format!("203.0.113.{i}, from a CSV")));
    lines.push("203.0.113.192/26   # a network".into());
    lines.push("# only a comment".into());
    lines.push("not-an-ip".into());
    b.click("#import-open");
    b.fill("#import-list", &lines.join("\n"));
    b.fill("#import-reason", "imported in the test");
    b.click("#import-go");
    assert!(
        wait_for(Duration::from_secs(120), || b
            .text("#import-result")
            .contains("Done.")),
        "the import finished: {}",
        b.text("#fw-import")
    );
    assert_eq!(
        b.text("#import-result"),
        "307 of 307 sent: 306 blocked, 1 failed. Done."
    );
    assert!(b.text("#import-failures").contains("not-an-ip"));
    let progress = b.run_async(
        "const done = arguments[arguments.length - 1];
         const p = document.querySelector('#import-progress');
         done([p.value, p.max]);",
    );
    assert_eq!(progress, json!([307, 307]), "the bar is full");
    assert!(h.in_block_map(32, [192, 0, 2, 200]), "an imported address");
    assert!(h.in_block_map(26, [203, 0, 113, 192]), "the imported CIDR");
    assert!(
        b.exists("tr[data-ip='203.0.113.149']"),
        "the list was reloaded"
    );
    assert_eq!(
        b.text(".cards .card b"),
        "308",
        "the count follows the list"
    );
    b.run_async(
        "const done = arguments[arguments.length - 1];
         document.querySelector('#fw-import').scrollIntoView(); done(true);",
    );
    b.screenshot(&shots().join("import.png"));

    // A policy change on trial: the countdown runs; reverting restores the old.
    let (_, before) = h.get("/api/v1/firewall/status", &h.admin.clone());
    page(&b, "firewall");
    b.click("#policy-open");
    b.fill("#policy-changes", r#"{"drop_samples_per_sec": 7}"#);
    b.fill("#policy-minutes", "2");
    b.click("#policy-try");
    assert!(
        b.wait("#rollback-pending", 15),
        "the trial is shown: {}",
        b.text("#fw-policy")
    );
    let (_, rb) = h.get("/api/v1/settings/firewall/rollback", &h.admin.clone());
    assert_eq!(rb["pending"], true, "{rb}");
    assert_eq!(rb["proposed"]["drop_samples_per_sec"], 7, "{rb}");
    let first = b.text("#rollback-left");
    assert!(
        first.starts_with("1:") || first.starts_with("2:"),
        "two minutes or a little less: {first}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || b.text("#rollback-left") != first),
        "the countdown runs"
    );
    b.screenshot(&shots().join("policy-trial.png"));
    b.click("#rollback-revert");
    assert!(
        b.wait("#policy-try", 15),
        "the form is back after the revert"
    );
    let (_, rb) = h.get("/api/v1/settings/firewall/rollback", &h.admin.clone());
    assert_eq!(rb["pending"], false, "{rb}");
    let (_, after) = h.get("/api/v1/firewall/status", &h.admin.clone());
    assert_eq!(after["policy"], before["policy"], "the old policy again");

    // Allow from the form, then remove the allow from its list.
    page(&b, "firewall");
    b.type_into("#block-form input[name=ip]", "203.0.113.90");
    b.type_into("#block-form input[name=reason]", "monitoring");
    b.click("#allow-submit");
    assert!(
        b.wait("tr[data-allow='203.0.113.90'] button", 15),
        "listed as allowed: {}",
        b.text("#main")
    );
    let allowed = |h: &Harness| {
        let (_, c) = h.get("/api/v1/firewall/check?ip=203.0.113.90", &h.admin.clone());
        c["allowed"] == true
    };
    assert!(allowed(&h), "the API says allowed");
    b.click("tr[data-allow='203.0.113.90'] button");
    assert!(
        wait_for(Duration::from_secs(10), || !allowed(&h)),
        "the allow was removed"
    );

    // Two webshells from this process: an incident, whose status the page changes.
    for n in ["inc1.php", "inc2.php"] {
        std::fs::write(h.www.join(n), SHELL).expect("webshell");
    }
    let admin = h.admin.clone();
    let incident = || {
        let (_, v) = h.get("/api/v1/incidents", &admin);
        v.as_array()
            .and_then(|a| a.iter().find(|i| i["kind"] == "process").cloned())
    };
    assert!(
        wait_for(Duration::from_secs(20), || incident().is_some()),
        "a process incident"
    );
    let id = incident().and_then(|i| i["id"].as_i64()).expect("id");
    page(&b, "threats");
    b.select(&format!("tr[data-incident='{id}'] select"), "contained");
    assert!(
        wait_for(Duration::from_secs(10), || incident()
            .is_some_and(|i| i["status"] == "contained")),
        "the status changed: {:?}",
        incident()
    );

    // Threats: an address's timeline, then a bulk block undone.
    let mut l = integration_test::sshd_failures("203.0.113.50", 3, "x");
    l.extend(integration_test::sshd_failures("203.0.113.51", 2, "y"));
    std::fs::write(&log, l.join("\n") + "\n").expect("log lines");
    let admin = h.admin.clone();
    assert!(
        wait_for(Duration::from_secs(20), || {
            let (_, top) = h.get("/api/v1/threat/top-attackers", &admin);
            top.as_array().is_some_and(|a| a.len() >= 2)
        }),
        "both addresses are threats"
    );
    page(&b, "threats");
    b.click("tr[data-ip='203.0.113.50'] a.open");
    assert!(
        b.wait("#ip-timeline:not([hidden]) svg.chart", 10),
        "the timeline opens with its chart: {}",
        b.text("#main")
    );
    let t = b.text("#ip-timeline");
    assert!(t.contains("Timeline of 203.0.113.50"), "{t}");
    assert_eq!(t.matches("sshd").count(), 3, "one row per event: {t}");
    b.run_async(
        "const done = arguments[arguments.length - 1];
         document.querySelector('#ip-timeline').scrollIntoView(); done(true);",
    );
    b.screenshot(&shots().join("timeline.png"));
    b.click("tr[data-ip='203.0.113.50'] input.pick");
    b.click("tr[data-ip='203.0.113.51'] input.pick");
    b.click("#threat-block-selected");
    undo_banner(&b);
    assert!(
        wait_for(Duration::from_secs(10), || h
            .in_block_map(32, [203, 0, 113, 50])
            && h.in_block_map(32, [203, 0, 113, 51])),
        "both blocked in the XDP map"
    );
    b.click("#undo-run");
    assert!(
        wait_for(Duration::from_secs(10), || !h
            .in_block_map(32, [203, 0, 113, 50])
            && !h.in_block_map(32, [203, 0, 113, 51])),
        "the undo unblocked both"
    );
}

/// The quarantine page's mail sections: a message the mail AV quarantined is
/// released back into exim's queue, and a forwarded copy the forward guard held is
/// discarded, both from the page (the state the agent itself writes, set up here).
#[test]
fn the_quarantine_page_releases_mail_and_discards_held_forwards() {
    let Some(net) = browser_and_net() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("spool/input");
    let held = tmp.path().join("held/new");
    std::fs::create_dir_all(&input).expect("spool");
    std::fs::create_dir_all(&held).expect("held");
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nmail:\n  exim_spool: {}\n  exim_bin: /nonexistent/exim\n  forward_guard:\n    held_dir: {}\n    scan_secs: 1\n",
        tmp.path().join("spool").display(),
        tmp.path().join("held").display()
    );
    let h = Harness::start_with(net, "", &top);

    // A quarantined message, as the mail AV leaves one.
    let id = "1bbbbb-000001-Ab";
    let q = h.state().join("mail-quarantine").join(id);
    std::fs::create_dir_all(&q).expect("quarantine entry");
    std::fs::write(q.join(format!("{id}-D")), format!("{id}-D\nhello\n")).expect("-D");
    std::fs::write(
        q.join(format!("{id}-H")),
        format!("{id}-H\nDebian-exim 101 101\n<a@example.net>\n1700000000 0\nXX\n1\nb@shop.test\n\n015  Subject: hi\n"),
    )
    .expect("-H");
    std::fs::write(
        q.join("metadata.json"),
        json!({
            "message_id": id, "direction": "inbound", "from": "a@example.net",
            "to": ["b@shop.test"], "subject": "Quarterly <b>report</b>",
            "quarantined_at": "2026-12-01T10:00:00Z",
            "original_spool_dir": input.display().to_string(),
            "findings": [{"filename": "report.zip/run.exe", "engine": "attachment-checks",
                          "signature": "Rampart.Mail.Executable.PE", "severity": "high"}],
            "partial_scan": false, "engines_used": ["rampart-rules", "attachment-checks"],
            "size": 29, "sha256": "0"
        })
        .to_string(),
    )
    .expect("metadata");
    // A held forward, as the shipped exim transport writes one.
    let copy = held.join("1764590000.M1P1.mail.shop.test");
    std::fs::write(
        &copy,
        "X-Rampart-Forwarder: info@shop.test\nX-Rampart-Recipient: owner@gmail.example\nX-Rampart-Sender: \nX-Rampart-Reasons: bounce_backscatter\nSubject: Undelivered\n\nbounce\n",
    )
    .expect("held copy");

    let b = Browser::start(&h.net.ns_a);
    login(&b, &h.admin);
    page(&b, "quarantine");
    assert!(
        b.wait(&format!("tr[data-mail='{id}']"), 10) && b.wait("tr[data-held]", 10),
        "{}",
        b.text("body")
    );
    let row = b.text(&format!("tr[data-mail='{id}']"));
    assert!(
        row.contains("Quarterly <b>report</b>") && row.contains("Rampart.Mail.Executable.PE"),
        "the subject as text, the detection: {row}"
    );
    assert!(
        b.text("#mail-av-state").contains("inotify"),
        "{}",
        b.text("#mail-av-state")
    );
    assert!(b.text("tr[data-held]").contains("info@shop.test"));
    b.screenshot(&shots().join("quarantine-mail.png"));

    b.click(&format!("tr[data-mail='{id}'] .release"));
    assert!(
        wait_for(Duration::from_secs(10), || input
            .join(format!("{id}-H"))
            .exists()
            && input.join(format!("{id}-D")).exists()),
        "released into the queue"
    );
    // The files go back first, then the entry is removed: wait for both.
    assert!(
        wait_for(Duration::from_secs(10), || !q.exists()),
        "the quarantine entry is gone"
    );
    assert!(b.wait(
        &format!("body[data-ready=quarantine]:not(:has(tr[data-mail='{id}']))"),
        10
    ));

    b.run_async("window.confirm = () => true; arguments[arguments.length - 1](true);");
    b.click("tr[data-held] .danger");
    assert!(
        wait_for(Duration::from_secs(10), || !copy.exists()),
        "the held copy is discarded"
    );
    assert!(b.wait("body[data-ready=quarantine]:not(:has(tr[data-held]))", 10));
}
