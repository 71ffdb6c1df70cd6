// SPDX-License-Identifier: GPL-2.0-only
//! Alerts leave the box (#13), against real receivers the test starts: an HTTPS
//! endpoint (Python's http.server over TLS, its own certificate) standing in for a
//! webhook and a Slack-style hook, and a local syslog socket. A finding reaches each
//! channel in its format (the webhook signed with HMAC-SHA256, syslog as RFC 5424);
//! `test-alert` reports every channel's result; a receiver that is down gets
//! retries, and the delivery survives a kill -9 of the agent.

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use hmac::{Hmac, Mac};
use integration_test::{harness::Harness, net_or_skip, wait_for};
use serde_json::{json, Value};
use sha2::Sha256;

const WEBSHELL: &str = "<?php system($_GET['cmd']); ?>\n";
const SECRET: &str = "a-webhook-signing-secret-of-the-admin";
const PORT: u16 = 18443;

/// The HTTPS receiver, inside the agent's network namespace.
struct Receiver {
    child: Child,
    dir: PathBuf,
}

impl Receiver {
    /// A plain-HTTP receiver on `port`.
    fn plain(ns: &str, dir: &Path, port: u16) -> Self {
        std::fs::create_dir_all(dir).expect("receiver dir");
        Self::spawn(ns, dir, port, Path::new("-"), Path::new("-"))
    }

    fn spawn(ns: &str, dir: &Path, port: u16, cert: &Path, key: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/alert_receiver.py");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["--", "python3"])
            .arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .arg(cert)
            .arg(key)
            .arg(dir)
            .stdin(Stdio::null())
            .spawn()
            .expect("receiver");
        assert!(
            wait_for(Duration::from_secs(10), || dir.join("ready").exists()),
            "receiver did not start"
        );
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn start(ns: &str, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("receiver dir");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            // A server certificate, not a CA (rustls refuses a CA as the peer).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::spawn(ns, dir, PORT, &cert, &key)
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn down(&self, down: bool) {
        let p = self.dir.join("down");
        if down {
            std::fs::write(p, "").expect("down");
        } else {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A local SMTP server with STARTTLS required (aiosmtpd), delivering into a
/// maildir, inside the agent's network namespace.
struct MailServer {
    child: Child,
    maildir: PathBuf,
}

const SMTP_PORT: u16 = 18025;

impl MailServer {
    fn start(ns: &str, dir: &Path, cert: &Path, key: &Path) -> Self {
        let maildir = dir.join("maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["--", "python3", "-m", "aiosmtpd", "-n"])
            .args(["-l", &format!("127.0.0.1:{SMTP_PORT}")])
            .arg("--tlscert")
            .arg(cert)
            .arg("--tlskey")
            .arg(key)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .spawn()
            .expect("aiosmtpd (cargo xtask test installs it with pip)");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{SMTP_PORT}").parse().expect("addr");
        assert!(
            wait_for(Duration::from_secs(20), || integration_test::tcp_connects(
                ns, addr
            )),
            "aiosmtpd did not start"
        );
        Self { child, maildir }
    }

    /// Every message delivered so far, as text.
    fn mails(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(d) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in d.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hmac_hex(ts: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook posts whose event is `check` and whose finding's path ends in `name`.
fn hooks<'a>(got: &'a [Value], path: &str, check: &str, name: &str) -> Vec<&'a Value> {
    got.iter()
        .filter(|r| r["path"] == path)
        .filter(|r| {
            let body: Value =
                serde_json::from_str(r["body"].as_str().unwrap_or("")).unwrap_or(json!({}));
            body["event_type"] == check
                && body["details"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(name))
        })
        .collect()
}

fn plant(h: &Harness, name: &str) {
    let staging = h.dir.path().join(format!("staging-{name}"));
    std::fs::write(&staging, WEBSHELL).expect("write");
    std::fs::rename(&staging, h.www.join(name)).expect("rename into the watched dir");
}

fn channel<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no channel {name} in {}", health["alerts"]))
}

#[test]
fn findings_reach_webhook_chat_and_syslog_and_a_receiver_down_loses_nothing() {
    let Some(net) = net_or_skip() else { return };
    let ns = net.ns_a.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&ns, &dir.path().join("receiver"));
    let cert = receiver.dir.join("cert.pem");
    let smtp = MailServer::start(&ns, dir.path(), &cert, &receiver.dir.join("key.pem"));
    let sock = dir.path().join("syslog.sock");
    let syslog = UnixDatagram::bind(&sock).expect("syslog socket");
    syslog
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\n\
         alerts:\n  channels:\n\
         \x20   - {{name: siem, type: webhook, url: 'https://127.0.0.1:{PORT}/hook', secret: {SECRET}, ca_file: {cert}}}\n\
         \x20   - {{name: chat, type: slack, url: 'https://127.0.0.1:{PORT}/slack', ca_file: {cert}, min_severity: high}}\n\
         \x20   - {{name: local, type: syslog, target: 'unix:{sock}', facility: local3}}\n\
         \x20   - {{name: mail, type: email, smtp_host: 127.0.0.1, smtp_port: {SMTP_PORT}, from: rampart@example.org, to: [admin@example.org], ca_file: {cert}, min_severity: high}}\n",
        cert = cert.display(),
        sock = sock.display(),
    );
    let mut h = Harness::start_with(net, "", &top);

    // test-alert: straight through every channel, each one's result reported.
    let (code, sent) = h.post("/api/v1/test-alert", json!({}));
    assert_eq!(code, 200, "{sent}");
    assert_eq!(sent["status"], "sent", "{sent}");
    let results: Vec<(&str, &str, bool)> = sent["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["type"].as_str().unwrap_or(""),
                c["ok"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("siem", "webhook", true),
            ("chat", "slack", true),
            ("local", "syslog", true),
            ("mail", "email", true)
        ],
        "{sent}"
    );
    let mut buf = vec![0u8; 8192];
    let mut next_line = |check: &str| loop {
        let n = syslog.recv(&mut buf).expect("a syslog line");
        let l = String::from_utf8_lossy(&buf[..n]).into_owned();
        // Findings of the agent's own start (bpf_unavailable here) come too.
        if l.contains(&format!(" {check} [rampart@32473 ")) {
            break l;
        }
    };
    let line = next_line("test_alert");
    // local3 (19) * 8 + info (6)
    assert!(line.starts_with("<158>1 "), "{line}");
    assert!(line.contains(" test_alert [rampart@32473 "), "{line}");

    // A real finding: a webshell written into the watched tree.
    plant(&h, "shell.php");
    let got = || receiver.received();
    assert!(
        wait_for(Duration::from_secs(30), || !hooks(
            &got(),
            "/hook",
            "signature_match",
            "shell.php"
        )
        .is_empty()),
        "webhook got {:?}; log:\n{}",
        got(),
        h.log()
    );
    let post = hooks(&got(), "/hook", "signature_match", "shell.php")[0].clone();
    let body = post["body"].as_str().expect("body");
    let ts = post["headers"]["x-rampart-timestamp"]
        .as_str()
        .expect("timestamp");
    assert_eq!(
        post["headers"]["x-rampart-signature"].as_str(),
        Some(hmac_hex(ts, body).as_str()),
        "the signature does not verify"
    );
    let event: Value = serde_json::from_str(body).expect("json");
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["source"], "rampart");
    assert!(event["details"]["id"].as_i64().is_some(), "{event}");
    // The chat channel got it as text, Slack markup escaped.
    assert!(
        wait_for(Duration::from_secs(10), || got().iter().any(|r| {
            r["path"] == "/slack" && r["body"].as_str().unwrap_or("").contains("shell.php")
        })),
        "slack got {:?}",
        got()
    );
    let line = next_line("signature_match");
    // local3 * 8 + crit (2)
    assert!(line.starts_with("<154>1 "), "{line}");
    assert!(line.contains("path=\""), "{line}");
    // The mail went over STARTTLS (aiosmtpd refuses MAIL before it).
    assert!(
        wait_for(Duration::from_secs(30), || smtp.mails().iter().any(|m| m
            .contains("CRITICAL signature_match")
            && m.contains("shell.php"))),
        "mails: {:?}",
        smtp.mails()
    );
    assert!(
        smtp.mails()
            .iter()
            .any(|m| m.contains("Subject: [Rampart ") && m.contains("Test alert from Rampart")),
        "no test mail: {:?}",
        smtp.mails()
    );

    // Charon's notification settings: read from the channels, written through.
    let (code, n) = h.get("/api/v1/security/notifications/settings", &h.admin.clone());
    assert_eq!(code, 200, "{n}");
    assert_eq!(n["enabled"], true);
    assert_eq!(n["min_log_level"], "warn", "the lowest of the channels");
    assert_eq!(n["webhook_url"], format!("https://127.0.0.1:{PORT}/hook"));
    assert_eq!(n["email_recipients"], "admin@example.org");
    let (code, _) = h.get("/api/v1/security/notifications/settings", &h.read.clone());
    assert_eq!(code, 401, "read scope");
    for (body, why) in [
        (
            json!({"min_log_level": "loud"}),
            "Invalid min_log_level. Must be one of: debug, info, warn, error",
        ),
        (json!({"webhook_url": "file:///etc/passwd"}), "webhook_url"),
        (
            json!({"email_recipients": "a@b.example\r\nBcc: c@d.example"}),
            "email_recipients",
        ),
        (json!({"enabled": "yes"}), "invalid JSON body"),
    ] {
        let (code, e) = h.request(
            "PUT",
            "/api/v1/security/notifications/settings",
            &h.admin.clone(),
            Some(body.clone()),
        );
        assert_eq!(code, 400, "{body}: {e}");
        assert!(e.to_string().contains(why), "{body}: {e}");
    }
    let plain = Receiver::plain(&ns, &dir.path().join("charon"), 18080);
    let (code, r) = h.request(
        "PUT",
        "/api/v1/security/notifications/settings",
        &h.admin.clone(),
        Some(json!({"webhook_url": "http://127.0.0.1:18080/charon", "notify_waf_blocks": false})),
    );
    assert_eq!(
        (code, &r["message"]),
        (200, &json!("Settings updated successfully")),
        "{r}"
    );
    let (_, n) = h.get("/api/v1/security/notifications/settings", &h.admin.clone());
    assert_eq!(n["webhook_url"], "http://127.0.0.1:18080/charon");
    assert_eq!(n["notify_waf_blocks"], false);
    plant(&h, "third.php");
    assert!(
        wait_for(Duration::from_secs(30), || !hooks(
            &plain.received(),
            "/charon",
            "signature_match",
            "third.php"
        )
        .is_empty()),
        "the webhook_url set through the settings got {:?}",
        plain.received()
    );

    // The receiver goes down: the delivery is retried, and kept.
    receiver.down(true);
    plant(&h, "second.php");
    assert!(
        wait_for(Duration::from_secs(30), || got()
            .iter()
            .any(|r| r["answered"] == 503 && r["path"] == "/hook")),
        "no attempt while down: {:?}",
        got()
    );
    let (_, health) = h.get("/api/v1/health", &h.read.clone());
    let siem = channel(&health, "siem");
    assert!(siem["pending"].as_u64() >= Some(1), "{siem}");
    assert!(
        siem["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{siem}"
    );
    // kill -9 with the delivery pending; the receiver comes back; the agent restarts.
    h.kill9();
    receiver.down(false);
    h.restart();
    assert!(
        wait_for(Duration::from_secs(60), || got().iter().any(|r| {
            r["answered"] == 200
                && !hooks(
                    std::slice::from_ref(r),
                    "/hook",
                    "signature_match",
                    "second.php",
                )
                .is_empty()
        })),
        "the pending delivery was lost across the restart: {:?}; log:\n{}",
        got(),
        h.log()
    );
    let delivered = wait_for(Duration::from_secs(10), || {
        let (_, health) = h.get("/api/v1/health", &h.read.clone());
        channel(&health, "siem")["pending"] == 0
    });
    assert!(delivered, "still pending");
    // The settings written through the API outlive the restart.
    let (_, n) = h.get("/api/v1/security/notifications/settings", &h.admin.clone());
    assert_eq!(n["webhook_url"], "http://127.0.0.1:18080/charon", "{n}");
    // The master switch: nothing is sent while off.
    let (code, _) = h.request(
        "PUT",
        "/api/v1/security/notifications/settings",
        &h.admin.clone(),
        Some(json!({"enabled": false})),
    );
    assert_eq!(code, 200);
    plant(&h, "fourth.php");
    let stored = wait_for(Duration::from_secs(30), || {
        let (_, f) = h.get("/api/v1/findings", &h.read.clone());
        f.to_string().contains("fourth.php")
    });
    assert!(stored, "no finding for fourth.php");
    // The router runs every second: three passes without a delivery.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        hooks(&got(), "/hook", "signature_match", "fourth.php").is_empty()
            && hooks(
                &plain.received(),
                "/charon",
                "signature_match",
                "fourth.php"
            )
            .is_empty(),
        "sent while notifications are off"
    );
    // Each finding went to the webhook once it was taken (200), never twice.
    let taken = hooks(&got(), "/hook", "signature_match", "shell.php")
        .iter()
        .filter(|r| r["answered"] == 200)
        .count();
    assert_eq!(taken, 1, "{:?}", got());
}
