// SPDX-License-Identifier: GPL-2.0-only
//! The mail AV against the real agent and a real clamd: messages in exim's spool
//! format (the `-D` file written first, the `-H` file renamed into place, as exim
//! does), scanned by the builtin rules inside a zip, by the attachment checks and by
//! clamd with a signature of this test's own; infected ones moved out of the queue
//! with their owner and mode, one that exim "is delivering" (its lock held) reported
//! and left alone, and the quarantine released back into the queue and deleted
//! through the API. Then the forward guard with a real exim.

use std::{
    io::Write,
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_test::{harness::Harness, wait_for};
use serde_json::{json, Value};

/// A string only this test's clamd signature matches.
const CLAMD_MARKER: &str = "rampart-clamd-test-marker";
const EICAR: &str = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// exim's user on Debian is a system user; any non-root uid shows ownership is kept.
const EXIM_UID: u32 = 65534;

/// clamd on a private socket with one signature database: this test's.
struct Clamd {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Clamd {
    fn start() -> Option<Self> {
        let bin = ["/usr/sbin/clamd", "/usr/bin/clamd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(bin) = bin else {
            assert!(!integration_test::feature_available(
                "clamd (Debian's clamav-daemon)",
                Err("no clamd binary".into())
            ));
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db");
        let hex: String = CLAMD_MARKER.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            db.join("rampart-test.ndb"),
            format!("Rampart.Test.Marker:0:*:{hex}\n"),
        )
        .expect("signature");
        let sock = dir.path().join("clamd.sock");
        let conf = dir.path().join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nLocalSocket {}\nDatabaseDirectory {}\nLogFile {}\nUser root\n",
                sock.display(),
                db.display(),
                dir.path().join("clamd.log").display()
            ),
        )
        .expect("conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd starts");
        let c = Clamd {
            child,
            sock,
            _dir: dir,
        };
        assert!(
            wait_for(Duration::from_secs(60), || c.sock.exists()),
            "clamd socket up"
        );
        Some(c)
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message in exim's spool: `<id>-D` (its name line, then the body), then
/// `<id>-H` (envelope, headers with their lengths) renamed into place.
fn spool(input: &Path, id: &str, from: &str, to: &str, headers: &[&str], body: &str) {
    let d = input.join(format!("{id}-D"));
    std::fs::write(&d, format!("{id}-D\n{body}")).expect("-D");
    let mut h = format!(
        "{id}-H\nDebian-exim {EXIM_UID} {EXIM_UID}\n<{from}>\n{} 0\n-ident Debian-exim\n-received_protocol esmtp\nXX\n1\n{to}\n\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    );
    for line in headers {
        let text = format!("{line}\n");
        h.push_str(&format!("{:03}  {text}", text.len()));
    }
    let tmp = input.join(format!("hdr.{id}"));
    std::fs::write(&tmp, h).expect("-H");
    for p in [&d, &tmp] {
        std::os::unix::fs::chown(p, Some(EXIM_UID), Some(EXIM_UID)).expect("chown");
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    }
    std::fs::rename(&tmp, input.join(format!("{id}-H"))).expect("rename -H");
}

/// A multipart message with one base64 attachment.
fn with_attachment(input: &Path, id: &str, from: &str, to: &str, name: &str, data: &[u8]) {
    let b64 = base64_encode(data);
    let body = format!(
        "--B\nContent-Type: text/plain\n\nPlease see the attachment.\n--B\nContent-Type: application/octet-stream; name=\"{name}\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"{name}\"\n\n{b64}\n--B--\n"
    );
    spool(
        input,
        id,
        from,
        to,
        &[
            &format!("From: <{from}>"),
            &format!("To: <{to}>"),
            "Subject: Your invoice",
            "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=\"B\"",
        ],
        &body,
    );
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(data);
    // Mail lines stay short (RFC 2045: at most 76 characters).
    b.as_bytes()
        .chunks(76)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn zip_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .expect("zip entry");
    z.write_all(data).expect("zip write");
    z.finish().expect("zip");
    buf.into_inner()
}

fn mail_findings(h: &Harness) -> Vec<Value> {
    h.findings_of("email_malware")
}

fn finding_for<'a>(fs: &'a [Value], id: &str) -> Option<&'a Value> {
    fs.iter()
        .find(|f| f["message"].as_str().is_some_and(|m| m.contains(id)))
}

#[test]
fn infected_mail_is_held_out_of_the_queue_and_released_back() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let Some(clamd) = Clamd::start() else {
        return;
    };
    let mail = tempfile::tempdir().expect("tempdir");
    let input = mail.path().join("spool/input");
    std::fs::create_dir_all(&input).expect("spool");
    let domains = mail.path().join("localdomains");
    std::fs::write(&domains, "shop.test\n").expect("domains");

    // Queued before the agent starts: found by the first listing. A PHP web shell
    // inside a zip, found by the builtin rules.
    let dropper = "1aaaaa-000001-Ab";
    with_attachment(
        &input,
        dropper,
        "billing@example.net",
        "owner@shop.test",
        "invoice.zip",
        &zip_with("invoice.php", b"<?php eval(base64_decode($_POST['x'])); ?>"),
    );
    let clean = "1aaaaa-000002-Ab";
    with_attachment(
        &input,
        clean,
        "friend@example.net",
        "owner@shop.test",
        "notes.txt",
        b"See you on Monday.\n",
    );

    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nmail:\n  exim_spool: {}\n  exim_bin: /nonexistent/exim\n  local_domains: {}\n  av:\n    clamd_socket: {}\n    rescan_secs: 1\n",
        mail.path().join("spool").display(),
        domains.display(),
        clamd.sock.display()
    );
    let h = Harness::start_with(net, "", &top);
    let admin = h.admin.clone();
    let qdir = h.state().join("mail-quarantine");

    assert!(
        wait_for(Duration::from_secs(30), || qdir
            .join(dropper)
            .join(format!("{dropper}-D"))
            .exists()),
        "the queued dropper is held"
    );
    assert!(
        !input.join(format!("{dropper}-H")).exists(),
        "out of the queue"
    );
    let held = std::fs::metadata(qdir.join(dropper).join(format!("{dropper}-H"))).expect("held -H");
    assert_eq!(
        (held.uid(), held.mode() & 0o777),
        (EXIM_UID, 0o640),
        "owner and mode kept"
    );

    // Arriving while the agent runs: found through inotify. clamd's signature (only
    // clamd knows it) in an outbound message, and the EICAR file in one that exim
    // is "delivering" (this test holds its lock, as exim does).
    let outbound = "1aaaaa-000003-Ab";
    with_attachment(
        &input,
        outbound,
        "sales@shop.test",
        "customer@example.org",
        "offer.txt",
        format!("Best prices {CLAMD_MARKER} today").as_bytes(),
    );
    let busy = "1aaaaa-000004-Ab";
    let busy_d = input.join(format!("{busy}-D"));
    std::fs::write(&busy_d, format!("{busy}-D\n")).expect("-D");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&busy_d)
        .expect("open -D");
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: (busy.len() + 3) as libc::off_t,
        l_pid: 0,
    };
    // SAFETY: a valid fd and flock. exim takes this lock with F_SETLK; an open file
    // description lock conflicts with it the same way, and survives this test
    // process writing the file again through another descriptor.
    assert_eq!(
        unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_OFD_SETLK, &fl) },
        0
    );
    with_attachment(
        &input,
        busy,
        "x@example.net",
        "owner@shop.test",
        "eicar.txt",
        EICAR.as_bytes(),
    );

    assert!(
        wait_for(Duration::from_secs(30), || qdir.join(outbound).exists()
            && finding_for(&mail_findings(&h), busy).is_some()),
        "the outbound message held and the busy one reported: {:?}",
        mail_findings(&h)
    );
    drop(lock);
    assert!(
        input.join(format!("{busy}-H")).exists() && input.join(format!("{busy}-D")).exists(),
        "a message exim is delivering is left where it is"
    );
    assert!(
        input.join(format!("{clean}-H")).exists(),
        "clean mail stays queued"
    );
    assert!(!qdir.join(clean).exists());

    let fs = mail_findings(&h);
    let f = finding_for(&fs, busy).expect("busy finding");
    assert_eq!(f["severity"], 2, "critical: {f}");
    assert!(
        f["message"]
            .as_str()
            .is_some_and(|m| m.contains("not held: exim was delivering it")
                && m.contains("Rampart.Mail.EICAR-Test-File")),
        "{f}"
    );
    let f = finding_for(&fs, outbound).expect("outbound finding");
    assert_eq!(
        f["mailbox"], "sales@shop.test",
        "outbound: the sender's mailbox: {f}"
    );
    assert!(
        f["message"]
            .as_str()
            .is_some_and(|m| m.contains("(quarantined)")),
        "{f}"
    );

    let (s, l) = h.get("/api/v1/email/quarantine", &admin);
    assert_eq!(s, 200, "{l}");
    let ids: Vec<&str> = l
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{l}");
    assert!(ids.contains(&dropper) && ids.contains(&outbound), "{l}");
    let (s, m) = h.get(&format!("/api/v1/email/quarantine/{outbound}"), &admin);
    assert_eq!(s, 200, "{m}");
    assert_eq!(
        (&m["direction"], &m["from"], &m["to"][0], &m["subject"]),
        (
            &json!("outbound"),
            &json!("sales@shop.test"),
            &json!("customer@example.org"),
            &json!("Your invoice")
        ),
        "{m}"
    );
    assert_eq!(m["findings"][0]["engine"], "clamav", "{m}");
    assert!(
        m["findings"][0]["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("Rampart.Test.Marker")),
        "{m}"
    );
    let (_, m) = h.get(&format!("/api/v1/email/quarantine/{dropper}"), &admin);
    assert_eq!(
        (&m["findings"][0]["engine"], &m["findings"][0]["filename"]),
        (&json!("rampart-rules"), &json!("invoice.zip/invoice.php")),
        "found inside the zip by the builtin rules: {m}"
    );

    let (s, st) = h.get("/api/v1/email/av/status", &admin);
    assert_eq!(s, 200, "{st}");
    assert_eq!(
        (
            &st["enabled"],
            &st["watcher_mode"],
            &st["clamd_available"],
            &st["quarantined"],
            &st["held"],
            &st["not_held"]
        ),
        (
            &json!(true),
            &json!("inotify"),
            &json!(true),
            &json!(2),
            &json!(2),
            &json!(1)
        ),
        "{st}"
    );
    assert!(st["scanned"].as_u64().is_some_and(|n| n >= 4), "{st}");

    // Release: back in the queue with its owner, and not held again by the next
    // listings (rescan_secs is 1).
    let (s, r) = h.request(
        "POST",
        &format!("/api/v1/email/quarantine/{dropper}/release"),
        &admin,
        Some(json!({})),
    );
    assert_eq!((s, &r["status"]), (200, &json!("released")), "{r}");
    let back = std::fs::metadata(input.join(format!("{dropper}-D"))).expect("back in the queue");
    assert_eq!(back.uid(), EXIM_UID);
    assert!(input.join(format!("{dropper}-H")).exists());
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        input.join(format!("{dropper}-H")).exists() && !qdir.join(dropper).exists(),
        "a released message is not held again"
    );
    // A second release of what is no longer there: 404.
    let (s, _) = h.request(
        "POST",
        &format!("/api/v1/email/quarantine/{dropper}/release"),
        &admin,
        Some(json!({})),
    );
    assert_eq!(s, 404);

    // Delete.
    let (s, r) = h.request(
        "DELETE",
        &format!("/api/v1/email/quarantine/{outbound}"),
        &admin,
        None,
    );
    assert_eq!((s, &r["status"]), (200, &json!("deleted")), "{r}");
    assert!(!qdir.join(outbound).exists());
    let (s, _) = h.get(&format!("/api/v1/email/quarantine/{outbound}"), &admin);
    assert_eq!(s, 404);

    // Hostile ids and actions.
    for (method, path, want) in [
        ("GET", "/api/v1/email/quarantine/..%2F..%2Fetc", 404),
        ("GET", "/api/v1/email/quarantine/released.json", 404),
        ("DELETE", "/api/v1/email/quarantine/mail-quarantine", 404),
        (
            "POST",
            "/api/v1/email/quarantine/1aaaaa-000004-Ab/explode",
            400,
        ),
    ] {
        let (s, v) = h.request(method, path, &admin, Some(json!({})));
        assert_eq!(s, want, "{method} {path}: {v}");
    }
    assert!(qdir.exists(), "nothing removed by a hostile id");
    let (s, _) = h.get("/api/v1/email/quarantine", &h.read.clone());
    assert_ne!(s, 200, "a read token does not see quarantined mail");
}

/// exim's user on this host (Debian, then cPanel/RHEL names).
fn exim_user() -> Option<nix::unistd::User> {
    ["Debian-exim", "mailnull", "exim"]
        .iter()
        .find_map(|n| nix::unistd::User::from_name(n).ok().flatten())
}

/// The forward guard with a real exim running the router and transport Rampart
/// ships: bounces and spam to a forwarder are held, other mail is delivered; the
/// agent lists and reports what is held, releases a copy through exim without its
/// control headers, deletes one, and discards one past retention.
#[test]
fn forwards_exim_held_are_listed_reported_released_and_deleted() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let exim = ["/usr/sbin/exim4", "/usr/sbin/exim"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let (Some(exim), Some(user)) = (exim, exim_user()) else {
        assert!(!integration_test::feature_available(
            "exim (Debian's exim4-daemon-light)",
            Err("no exim binary or exim user".into())
        ));
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (spool, held, out) = (
        tmp.path().join("spool"),
        tmp.path().join("held"),
        tmp.path().join("out"),
    );
    for d in [&spool, &held, &out] {
        std::fs::create_dir(d).expect("mkdir");
        std::os::unix::fs::chown(d, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .expect("chown");
    }
    // exim delivers as its own user, into a directory of that user's.
    let outbox = out.join("outbox");
    let aliases = tmp.path().join("aliases");
    std::fs::write(&aliases, "info: owner@gmail.example\n").expect("aliases");
    let (router, transport) = agent::detection::forwardguard::exim_snippet(&held);
    let conf = tmp.path().join("exim.conf");
    std::fs::write(
        &conf,
        format!(
            "primary_hostname = mail.shop.test\ndomainlist local_domains = shop.test\n\
             spool_directory = {spool}\nlog_file_path = {spool}/%slog\nkeep_environment =\n\
             begin routers\n{router}\n\
             aliases:\n  driver = redirect\n  domains = +local_domains\n  data = ${{lookup{{$local_part}}lsearch{{{aliases}}}}}\n\
             remote:\n  driver = accept\n  domains = ! +local_domains\n  transport = outbox\n\
             begin transports\n{transport}\n\
             outbox:\n  driver = appendfile\n  file = {outbox}\n  user = ${{exim_uid}}\n  group = ${{exim_gid}}\n",
            spool = spool.display(),
            aliases = aliases.display(),
            outbox = outbox.display(),
        ),
    )
    .expect("exim.conf");
    // What the agent runs as exim: this exim with this test's configuration.
    let wrapper = tmp.path().join("exim");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {exim} -C {} \"$@\"\n", conf.display()),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let send = |sender: &str, headers: &str, body: &str| {
        let mut c = Command::new(&wrapper)
            .args(["-odi", "-f", sender, "info@shop.test"])
            .stdin(Stdio::piped())
            // "exim user lost privilege for using -C option": expected, and noise.
            .stderr(Stdio::null())
            .spawn()
            .expect("exim");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(format!("{headers}\n{body}\n").as_bytes())
            .expect("write");
        assert!(c.wait().expect("exim").success());
    };
    send(
        "",
        "From: MAILER-DAEMON@remote.example\nSubject: Undelivered Mail",
        "bounce body",
    );
    send(
        "seller@spam.example",
        "From: seller@spam.example\nSubject: cheap\nX-Spam-Flag: YES",
        "spam body",
    );
    send(
        "friend@mail.example",
        "From: friend@mail.example\nSubject: hello",
        "friendly body",
    );
    let held_files = || {
        std::fs::read_dir(held.join("new"))
            .map(|rd| rd.count())
            .unwrap_or(0)
    };
    assert_eq!(held_files(), 2, "the bounce and the spam are held");
    let delivered = std::fs::read_to_string(&outbox).expect("outbox");
    assert!(
        delivered.contains("friendly body") && !delivered.contains("bounce body"),
        "{delivered}\n{}",
        std::fs::read_to_string(spool.join("mainlog")).unwrap_or_default()
    );
    // A copy past retention, held 30 days ago.
    let old = held.join("new/1700000000.M1P1.mail.shop.test");
    std::fs::write(
        &old,
        "X-Rampart-Forwarder: info@shop.test\nX-Rampart-Recipient: owner@gmail.example\nX-Rampart-Sender: \nX-Rampart-Reasons: bounce_backscatter\n\nold\n",
    )
    .expect("old copy");
    let t = nix::sys::time::TimeSpec::new(1_700_000_000, 0);
    nix::sys::stat::utimensat(
        None,
        &old,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat");

    let top = format!(
        "egress:\n  enabled: false\nexec:\n  enabled: false\nmail:\n  exim_spool: /nonexistent/rampart-test-spool\n  exim_bin: {}\n  forward_guard:\n    held_dir: {}\n    scan_secs: 1\n",
        wrapper.display(),
        held.display()
    );
    let h = Harness::start_with(net, "", &top);
    let admin = h.admin.clone();
    assert!(
        wait_for(Duration::from_secs(20), || !old.exists()),
        "the copy past retention is discarded"
    );
    let (s, l) = h.get("/api/v1/email/held", &admin);
    assert_eq!(s, 200, "{l}");
    let list = l.as_array().expect("array").clone();
    assert_eq!(list.len(), 2, "{l}");
    let bounce = list
        .iter()
        .find(|m| m["reasons"] == json!(["bounce_backscatter"]))
        .expect("the bounce");
    assert_eq!(
        (
            &bounce["forwarder"],
            &bounce["recipient"],
            &bounce["sender"]
        ),
        (
            &json!("info@shop.test"),
            &json!("owner@gmail.example"),
            &json!("")
        ),
        "{bounce}"
    );
    let spam = list
        .iter()
        .find(|m| m["reasons"] == json!(["spam_flagged"]))
        .expect("the spam");
    assert_eq!(spam["sender"], "seller@spam.example", "{spam}");

    assert!(
        wait_for(Duration::from_secs(20), || h
            .findings_of("forward_held")
            .iter()
            .any(|x| x["mailbox"] == "info@shop.test")),
        "the forwarder is reported"
    );

    // Release: exim takes the copy, without the control headers, from <>.
    let id = bounce["id"].as_str().expect("id").to_string();
    let (s, r) = h.request(
        "POST",
        &format!("/api/v1/email/held/{id}/release"),
        &admin,
        Some(json!({})),
    );
    assert_eq!((s, &r["status"]), (200, &json!("released")), "{r}");
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_to_string(&outbox)
            .is_ok_and(|o| o.contains("bounce body"))),
        "delivered after release"
    );
    let out = std::fs::read_to_string(&outbox).expect("outbox");
    assert!(
        !out.contains("X-Rampart-"),
        "control headers stripped: {out}"
    );
    let log = std::fs::read_to_string(spool.join("mainlog")).expect("mainlog");
    assert!(
        log.lines()
            .any(|l| l.contains("<= <>") && l.contains("U=root")),
        "re-injected with the null sender: {log}"
    );
    assert_eq!(held_files(), 1);

    // Delete, then the same id again.
    let sid = spam["id"].as_str().expect("id").to_string();
    let (s, r) = h.request("DELETE", &format!("/api/v1/email/held/{sid}"), &admin, None);
    assert_eq!((s, &r["status"]), (200, &json!("deleted")), "{r}");
    assert_eq!(held_files(), 0);
    let (s, _) = h.request("DELETE", &format!("/api/v1/email/held/{sid}"), &admin, None);
    assert_eq!(s, 404);
    for path in [
        "/api/v1/email/held/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/email/held/.hidden",
    ] {
        let (s, _) = h.request("DELETE", path, &admin, None);
        assert_eq!(s, 404, "{path}");
    }
    assert!(
        !out.contains("spam body"),
        "a deleted copy is never sent: {out}"
    );
}
