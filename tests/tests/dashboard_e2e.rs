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

fn login(b: &Browser, token: &str) {
    assert!(
        b.login(BASE, token),
        "the overview after login; at {}",
        b.url()
    );
}

fn page(b: &Browser, name: &str) {
    b.goto(&format!("{BASE}/#{name}"));
    assert!(
        b.wait(&format!("body[data-ready={name}]"), 20),
        "page {name} did not render: {}",
        b.text("body")
    );
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    if !integration_test::feature_available(
        "Chromium and chromedriver",
        integration_test::browser::available(),
    ) {
        return;
    }
    let Some(net) = integration_test::net_or_skip() else {
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
    b.screenshot(&shots().join("findings.png"));

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
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    let id = f
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["file_path"] == shell.display().to_string())
        })
        .and_then(|x| x["id"].as_i64())
        .expect("finding id");
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
