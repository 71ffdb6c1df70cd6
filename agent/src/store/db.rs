// SPDX-License-Identifier: GPL-2.0-only
//! The store thread: one SQLite connection owned by one thread, jobs sent to it over
//! a bounded queue; the schema migrations; the firewall lists and settings.

use std::{path::Path, thread};

use api::model::BlockEntry;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store thread has stopped")]
    Closed,
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the store thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
}

/// Schema migrations; index + 1 = `PRAGMA user_version` after applying.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE findings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        check_name TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '',
        ts TEXT NOT NULL,
        path TEXT, pid INTEGER, uid INTEGER, process TEXT, ip TEXT, account TEXT,
        status TEXT NOT NULL DEFAULT 'active'
     );
     CREATE INDEX findings_ts ON findings(ts);
     CREATE TABLE blocks (
        ip TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        blocked_at TEXT NOT NULL,
        expires_at TEXT,
        expires_unix INTEGER
     );",
    "CREATE TABLE allows (
        ip TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        expires_unix INTEGER
     );
     CREATE TABLE firewall_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        actor TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT ''
     );
     CREATE TABLE drop_samples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        ts_unix INTEGER NOT NULL,
        ip TEXT NOT NULL,
        reason TEXT NOT NULL,
        proto INTEGER NOT NULL,
        dport INTEGER NOT NULL
     );
     CREATE INDEX drop_samples_ts ON drop_samples(ts_unix);
     CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
     );",
    // Detection: dedup and lifecycle of findings, correlation fields, suppressions,
    // the operator audit log and the quarantine.
    "ALTER TABLE findings ADD COLUMN dedup_key TEXT NOT NULL DEFAULT '';
     ALTER TABLE findings ADD COLUMN ts_unix INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE findings ADD COLUMN last_seen TEXT NOT NULL DEFAULT '';
     ALTER TABLE findings ADD COLUMN last_seen_unix INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE findings ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE findings ADD COLUMN rule TEXT;
     ALTER TABLE findings ADD COLUMN tenant_id TEXT;
     ALTER TABLE findings ADD COLUMN domain TEXT;
     ALTER TABLE findings ADD COLUMN mailbox TEXT;
     ALTER TABLE findings ADD COLUMN status_at TEXT;
     ALTER TABLE findings ADD COLUMN status_by TEXT;
     UPDATE findings SET ts_unix = COALESCE(CAST(strftime('%s', ts) AS INTEGER), 0),
        last_seen = ts, last_seen_unix = COALESCE(CAST(strftime('%s', ts) AS INTEGER), 0),
        dedup_key = COALESCE(path, ip, account, message);
     CREATE INDEX findings_dedup ON findings(check_name, dedup_key, status);
     CREATE INDEX findings_ts_unix ON findings(ts_unix);
     CREATE INDEX findings_status ON findings(status, id);
     CREATE TABLE suppressions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        check_name TEXT,
        path_glob TEXT,
        account TEXT,
        ip TEXT,
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE ui_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '',
        finding_id INTEGER
     );
     CREATE INDEX ui_audit_finding ON ui_audit(finding_id);
     CREATE TABLE quarantine (
        id TEXT PRIMARY KEY,
        original_path TEXT NOT NULL,
        archive TEXT NOT NULL,
        uid INTEGER NOT NULL,
        gid INTEGER NOT NULL,
        mode INTEGER NOT NULL,
        mtime_sec INTEGER NOT NULL,
        mtime_nsec INTEGER NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        quarantined_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        rule TEXT,
        finding_id INTEGER,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'quarantine',
        restored_at TEXT
     );",
    // Incidents: findings grouped by correlation key; one open per key.
    "CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_unix INTEGER NOT NULL,
        finding_count INTEGER NOT NULL DEFAULT 0,
        checks TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '',
        status_by TEXT
     );
     CREATE UNIQUE INDEX incidents_one_open ON incidents(kind, source)
        WHERE status IN ('open', 'contained');
     CREATE INDEX incidents_updated ON incidents(updated_unix);
     CREATE TABLE incident_findings (
        incident_id INTEGER NOT NULL,
        finding_id INTEGER NOT NULL,
        PRIMARY KEY (incident_id, finding_id)
     );",
    // The threat database: per-IP events from log watchers and the responder.
    "CREATE TABLE threat_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        ts_unix INTEGER NOT NULL,
        ip TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
     );
     CREATE INDEX threat_events_ip ON threat_events(ip, ts_unix);
     CREATE INDEX threat_events_ts ON threat_events(ts_unix);",
    // What the log watchers parsed for the ModSecurity and email reports.
    "CREATE TABLE waf_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        ts_unix INTEGER NOT NULL,
        ip TEXT NOT NULL,
        host TEXT NOT NULL,
        method TEXT NOT NULL,
        uri TEXT NOT NULL,
        status INTEGER,
        denied INTEGER NOT NULL,
        unique_id TEXT NOT NULL
     );
     CREATE INDEX waf_events_ts ON waf_events(ts_unix);
     CREATE INDEX waf_events_ip ON waf_events(ip, ts_unix);
     CREATE TABLE waf_rule_hits (
        event_id INTEGER NOT NULL,
        ts_unix INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        msg TEXT NOT NULL,
        severity TEXT NOT NULL
     );
     CREATE INDEX waf_rule_hits_event ON waf_rule_hits(event_id);
     CREATE INDEX waf_rule_hits_rule ON waf_rule_hits(rule_id, ts_unix);
     CREATE TABLE mail_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        ts_unix INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ip TEXT,
        account TEXT,
        provider TEXT,
        code TEXT,
        count INTEGER NOT NULL DEFAULT 1,
        detail TEXT NOT NULL DEFAULT ''
     );
     CREATE INDEX mail_events_kind ON mail_events(kind, ts_unix);",
    // What a signature finding's file held (CSM's content_sha256): a fix quarantines
    // only that content, never what a local user swapped in under the same name.
    "ALTER TABLE findings ADD COLUMN content_sha256 TEXT;",
    // The directory a file was quarantined from ("dev:ino"): a restore writes only
    // into that same directory, never into one a customer put in its place.
    "ALTER TABLE quarantine ADD COLUMN parent_dir TEXT;",
    // API tokens minted by `rampart token create`: only the SHA-256 of each.
    "CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        created_at TEXT NOT NULL
     );",
    // Alert deliveries: one row per (channel, finding), kept until sent.
    "CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        finding_id INTEGER NOT NULL,
        finding TEXT NOT NULL,
        created_unix INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_unix INTEGER NOT NULL,
        last_error TEXT,
        sent_unix INTEGER,
        failed INTEGER NOT NULL DEFAULT 0,
        UNIQUE(channel, finding_id)
     );
     CREATE INDEX alert_outbox_due ON alert_outbox(channel, sent_unix, failed, next_unix);",
    // Crawler claims from the access logs and their DNS verdicts (store/bots.rs).
    "CREATE TABLE bot_claims (
        ip TEXT PRIMARY KEY,
        bot TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        last_unix INTEGER NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0,
        verdict TEXT NOT NULL DEFAULT 'pending',
        hostname TEXT NOT NULL DEFAULT '',
        checked_at TEXT NOT NULL DEFAULT '',
        checked_unix INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX bot_claims_seen ON bot_claims(last_unix);",
    // The process lineage of a finding (a JSON array, nearest ancestor first).
    "ALTER TABLE findings ADD COLUMN lineage TEXT NOT NULL DEFAULT '[]';",
    // Database objects dropped by a fix, with the statement that makes them again
    // (store/dbobjects.rs).
    "CREATE TABLE db_object_backups (
        key TEXT PRIMARY KEY,
        account TEXT NOT NULL DEFAULT '',
        schema_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        create_sql TEXT NOT NULL,
        sql_mode TEXT NOT NULL DEFAULT '',
        finding_id INTEGER,
        dropped_by TEXT NOT NULL,
        dropped_at TEXT NOT NULL,
        dropped_unix INTEGER NOT NULL,
        restored_at TEXT NOT NULL DEFAULT ''
     );
     CREATE INDEX db_object_backups_dropped ON db_object_backups(dropped_unix);",
];

/// Which firewall list a row lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwList {
    Blocks,
    Allows,
}

impl FwList {
    fn table(self) -> &'static str {
        match self {
            Self::Blocks => "blocks",
            Self::Allows => "allows",
        }
    }
    fn time_col(self) -> &'static str {
        match self {
            Self::Blocks => "blocked_at",
            Self::Allows => "created_at",
        }
    }
}

/// How `query_entries` filters and orders.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryQuery {
    pub subnets_only: bool,
    pub newest_first: bool,
    pub limit: Option<u32>,
}

/// One firewall audit record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub timestamp: String,
    pub action: String,
    pub target: String,
    pub actor: String,
    pub details: String,
}

pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// Unix seconds now (UTC).
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Unix seconds as RFC 3339 ("" when out of range).
pub fn rfc3339_unix(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(rfc3339)
        .unwrap_or_default()
}

/// One setting, on a connection or inside a transaction.
pub(super) fn get_setting(c: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?,
    )
}

/// Set one setting, on a connection or inside a transaction.
pub(super) fn put_setting(c: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now_rfc3339()],
    )?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "Applied store migration.");
    }
    Ok(())
}

impl Store {
    /// Open (creating and migrating) the database at `path` and start its thread.
    pub fn open(path: &Path, queue: usize) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a finding or block acknowledged to a caller survives power loss / kill -9.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let (tx, mut rx) = mpsc::channel::<Job>(queue);
        thread::Builder::new()
            .name("rampart-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    // A panic costs its one call (the caller sees the store closed for
                    // it), never the thread every feature writes through.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job(&mut conn);
                    }));
                    if let Err(p) = ran {
                        tracing::error!(panic = %crate::supervisor::panic::panic_message(&*p), "A store call panicked; it was rolled back.");
                        if !conn.is_autocommit() {
                            if let Err(e) = conn.execute_batch("ROLLBACK") {
                                tracing::error!(error = %e, "Rolling back after a panic failed.");
                            }
                        }
                    }
                }
                if let Err((_, e)) = conn.close() {
                    tracing::error!(error = %e, "Closing the store failed.");
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("spawning store thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Run `f` on the store thread and return its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Insert or replace entries of `list` in one transaction (all or nothing).
    pub async fn upsert_entries(
        &self,
        list: FwList,
        entries: Vec<(BlockEntry, Option<i64>)>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            {
                let sql = format!(
                    "INSERT INTO {t} (ip, reason, source, {tc}, expires_at, expires_unix)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(ip) DO UPDATE SET reason = excluded.reason, source = excluded.source,
                       {tc} = excluded.{tc}, expires_at = excluded.expires_at,
                       expires_unix = excluded.expires_unix",
                    t = list.table(),
                    tc = list.time_col()
                );
                let mut st = tx.prepare_cached(&sql)?;
                for (e, exp) in &entries {
                    st.execute(params![e.ip, e.reason, e.source, e.blocked_at, e.expires_at, exp])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Insert or replace a block; returns the stored entry.
    pub async fn upsert_block(
        &self,
        e: BlockEntry,
        expires_unix: Option<i64>,
    ) -> Result<BlockEntry, StoreError> {
        self.upsert_entries(FwList::Blocks, vec![(e.clone(), expires_unix)])
            .await?;
        Ok(e)
    }

    /// Delete entries; returns those that existed.
    pub async fn delete_entries(
        &self,
        list: FwList,
        ips: Vec<String>,
    ) -> Result<Vec<String>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut gone = Vec::new();
            {
                let mut st =
                    tx.prepare_cached(&format!("DELETE FROM {} WHERE ip = ?1", list.table()))?;
                for ip in ips {
                    if st.execute([&ip])? > 0 {
                        gone.push(ip);
                    }
                }
            }
            tx.commit()?;
            Ok(gone)
        })
        .await
    }

    pub async fn delete_block(&self, ip: String) -> Result<bool, StoreError> {
        Ok(!self
            .delete_entries(FwList::Blocks, vec![ip])
            .await?
            .is_empty())
    }

    /// Every entry of `list`, oldest first.
    pub async fn entries(&self, list: FwList) -> Result<Vec<BlockEntry>, StoreError> {
        self.query_entries(list, EntryQuery::default()).await
    }

    /// Entries of `list` filtered and ordered in SQL (lists can hold millions).
    pub async fn query_entries(
        &self,
        list: FwList,
        q: EntryQuery,
    ) -> Result<Vec<BlockEntry>, StoreError> {
        self.call(move |c| {
            let sql = format!(
                "SELECT ip, reason, source, {tc}, expires_at FROM {t} {filter} ORDER BY {tc} {dir}, ip {limit}",
                t = list.table(),
                tc = list.time_col(),
                // Canonical entries carry a '/' exactly when they are subnets.
                filter = if q.subnets_only { "WHERE ip LIKE '%/%'" } else { "" },
                dir = if q.newest_first { "DESC" } else { "ASC" },
                limit = q.limit.map(|n| format!("LIMIT {n}")).unwrap_or_default(),
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([], |r| {
                Ok(BlockEntry {
                    ip: r.get(0)?,
                    reason: r.get(1)?,
                    source: r.get(2)?,
                    blocked_at: r.get(3)?,
                    expires_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Number of subnet (CIDR) entries in `list`.
    pub async fn count_subnets(&self, list: FwList) -> Result<i64, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &format!("SELECT COUNT(*) FROM {} WHERE ip LIKE '%/%'", list.table()),
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    pub async fn count(&self, list: FwList) -> Result<i64, StoreError> {
        self.call(move |c| {
            Ok(
                c.query_row(&format!("SELECT COUNT(*) FROM {}", list.table()), [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }

    /// Entries whose expiry is at or before `now_unix`.
    pub async fn expired(&self, list: FwList, now_unix: i64) -> Result<Vec<String>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT ip FROM {} WHERE expires_unix IS NOT NULL AND expires_unix <= ?1",
                list.table()
            ))?;
            let rows = st.query_map([now_unix], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// One entry by canonical address/CIDR.
    pub async fn entry(&self, list: FwList, ip: String) -> Result<Option<BlockEntry>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT ip, reason, source, {tc}, expires_at FROM {t} WHERE ip = ?1",
                    t = list.table(),
                    tc = list.time_col()
                ),
                [ip],
                |r| {
                    Ok(BlockEntry {
                        ip: r.get(0)?,
                        reason: r.get(1)?,
                        source: r.get(2)?,
                        blocked_at: r.get(3)?,
                        expires_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    pub async fn block(&self, ip: String) -> Result<Option<BlockEntry>, StoreError> {
        self.entry(FwList::Blocks, ip).await
    }

    pub async fn audit(
        &self,
        action: &str,
        target: &str,
        actor: &str,
        details: &str,
    ) -> Result<(), StoreError> {
        let (action, target, actor, details) = (
            action.to_string(),
            target.to_string(),
            actor.to_string(),
            details.to_string(),
        );
        self.call(move |c| {
            c.execute(
                "INSERT INTO firewall_audit (ts, action, target, actor, details) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now_rfc3339(), action, target, actor, details],
            )?;
            Ok(())
        })
        .await
    }

    /// Newest first.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT id, ts, action, target, actor, details FROM firewall_audit ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = st.query_map([limit], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    timestamp: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    actor: r.get(4)?,
                    details: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.call(move |c| get_setting(c, &key)).await
    }

    /// Read-modify-write one setting in a transaction on the store's thread, so no
    /// other write interleaves. `f` gets the current value and returns the new one
    /// (None deletes) with a result, or an error of its own, which leaves the
    /// setting as it was.
    pub async fn update_setting<T, E>(
        &self,
        key: &str,
        f: impl FnOnce(Option<String>) -> Result<(Option<String>, T), E> + Send + 'static,
    ) -> Result<Result<T, E>, StoreError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let key = key.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            let (new, out) = match f(get_setting(&tx, &key)?) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            match new {
                Some(v) => put_setting(&tx, &key, &v)?,
                None => {
                    tx.execute("DELETE FROM settings WHERE key = ?1", [&key])?;
                }
            }
            tx.commit()?;
            Ok(Ok(out))
        })
        .await
    }

    /// Set (Some) or delete (None) several settings in one transaction.
    pub async fn set_settings(&self, kv: Vec<(String, Option<String>)>) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            for (k, v) in kv {
                match v {
                    Some(v) => put_setting(&tx, &k, &v)?,
                    None => {
                        tx.execute("DELETE FROM settings WHERE key = ?1", [k])?;
                    }
                };
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Record sampled XDP drops; keeps at most `keep` newest rows.
    pub async fn add_drop_samples(
        &self,
        rows: Vec<(String, String, u8, u16)>,
        keep: i64,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let now = time::OffsetDateTime::now_utc();
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO drop_samples (ts, ts_unix, ip, reason, proto, dport) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (ip, reason, proto, dport) in rows {
                    st.execute(params![rfc3339(now), now.unix_timestamp(), ip, reason, proto, dport])?;
                }
            }
            tx.execute(
                "DELETE FROM drop_samples WHERE id <= (SELECT MAX(id) FROM drop_samples) - ?1",
                [keep],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Sources with the most sampled drops: (ip, count, last seen).
    pub async fn top_dropped(&self, limit: u32) -> Result<Vec<(String, i64, String)>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT ip, COUNT(*), MAX(ts) FROM drop_samples GROUP BY ip ORDER BY COUNT(*) DESC, ip LIMIT ?1",
            )?;
            let rows = st.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Wait until every job queued before this call has run (used at shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(PASSIVE);")?;
            Ok(())
        })
        .await
    }
}
