// SPDX-License-Identifier: GPL-2.0-only
//! Findings (dedup, lifecycle, history queries), suppressions, the operator audit log
//! and quarantine records.

use api::model::{Ancestor, Finding, Severity};
use rusqlite::{params, params_from_iter, types::Value, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::db::{now_rfc3339, rfc3339, Store, StoreError};

/// A finding before it has an id. Correlation fields are `None` when unknown.
#[derive(Clone, Debug, Default)]
pub struct NewFinding {
    pub check: String,
    pub severity: Severity,
    pub message: String,
    pub details: String,
    pub path: Option<String>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub process: Option<String>,
    pub ip: Option<String>,
    pub account: Option<String>,
    pub tenant_id: Option<String>,
    pub domain: Option<String>,
    pub mailbox: Option<String>,
    pub rule: Option<String>,
    /// SHA-256 of the file content the finding is about (signature findings).
    pub content_sha256: Option<String>,
    /// What makes two findings of one check "the same" (dedup). Default: the rule and
    /// path, else the IP, account, mailbox, domain, process and uid, else the message.
    pub key: Option<String>,
    /// The process's ancestors, nearest first (see [`Finding::lineage`]).
    pub lineage: Vec<Ancestor>,
}

impl NewFinding {
    pub fn new(check: &str, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            severity,
            message: message.into(),
            ..Default::default()
        }
    }

    pub fn dedup_key(&self) -> String {
        if let Some(k) = &self.key {
            return k.clone();
        }
        let parts: Vec<String> = [
            self.rule.clone(),
            self.path.clone(),
            self.ip.clone(),
            self.account.clone(),
            self.mailbox.clone(),
            self.domain.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !parts.is_empty() {
            return parts.join("|");
        }
        match (&self.process, self.uid) {
            (Some(p), Some(u)) => format!("{p}|{u}"),
            (Some(p), None) => p.clone(),
            (None, Some(u)) => u.to_string(),
            (None, None) => self.message.clone(),
        }
    }
}

/// What recording a finding did.
#[derive(Clone, Debug)]
pub enum Recorded {
    /// A new finding (dispatched to SSE).
    New(Box<Finding>),
    /// The same (check, key) was active within the window: counted on it.
    Repeat { id: i64, count: u32 },
}

/// History and list filters, all applied in SQL.
#[derive(Clone, Debug, Default)]
pub struct FindingQuery {
    pub status: Option<String>,
    pub from_unix: Option<i64>,
    pub to_unix: Option<i64>,
    pub severity: Option<Severity>,
    /// Substring of check, message, details, path, ip, account, rule (case-insensitive).
    pub search: Option<String>,
    pub check: Option<String>,
    pub message: Option<String>,
    pub account: Option<String>,
    pub ip: Option<String>,
    /// Only findings with a larger id (SSE resume).
    pub after_id: Option<i64>,
    pub limit: u32,
    pub offset: u32,
    pub oldest_first: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Suppression {
    pub id: i64,
    #[serde(rename = "check", skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_glob: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub reason: String,
    pub created_at: String,
    pub created_by: String,
    pub hits: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct UiAuditEntry {
    pub id: i64,
    pub timestamp: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<i64>,
}

/// A quarantined file's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct QuarantineRow {
    pub id: String,
    pub original_path: String,
    #[serde(skip)]
    pub archive: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub size: u64,
    pub sha256: String,
    pub quarantined_at: String,
    pub reason: String,
    pub rule: Option<String>,
    pub finding_id: Option<i64>,
    pub actor: String,
    pub kind: String,
    pub restored_at: Option<String>,
    /// Device and inode of the original directory ("dev:ino"); None for records
    /// from before it was kept.
    #[serde(skip)]
    pub parent_dir: Option<String>,
}

pub(super) const FINDING_COLS: &str =
    "id, check_name, severity, message, details, ts, path, pid, uid, process, ip, account, \
     tenant_id, domain, mailbox, rule, status, count, last_seen, content_sha256, lineage";

/// See [`Store::stats_since`].
#[derive(Debug, Default)]
pub struct StatsRows {
    pub severities: Vec<(String, i64)>,
    pub checks: Vec<(String, i64)>,
    /// (account, CSM severity of the worst: 2 critical, 1 high, findings).
    pub at_risk: Vec<(String, u8, i64)>,
    pub top_accounts: Vec<(String, i64)>,
    /// RFC 3339.
    pub last_critical: Option<String>,
}

/// See [`Store::status_summary`].
#[derive(Debug, Default)]
pub struct StoreSummary {
    pub history_count: i64,
    /// (severity, open or contained incidents).
    pub incidents_open: Vec<(String, i64)>,
    pub bytes: i64,
}

/// The check of signature matches: a file whose fix is its quarantine. Defined here
/// (re-exported by detection) because every finding row says whether it has a fix.
pub const CHECK_SIGNATURE: &str = "signature_match";

/// What `POST /api/v1/fix` does for a finding, if anything: a signature match on a
/// file is quarantined.
pub fn fix_action(check: &str, path: Option<&str>) -> Option<&'static str> {
    match check {
        CHECK_SIGNATURE if path.is_some() => Some("quarantine"),
        // A malicious database object: dropped, its CREATE statement kept.
        "db_malicious_object" => Some("drop"),
        _ => None,
    }
}

pub(super) fn finding_row(r: &Row<'_>) -> rusqlite::Result<Finding> {
    let sev: String = r.get(2)?;
    let severity = Severity::parse(&sev).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown severity {sev:?}").into(),
        )
    })?;
    Ok(Finding {
        id: r.get(0)?,
        check: r.get(1)?,
        severity,
        message: r.get(3)?,
        details: r.get(4)?,
        timestamp: r.get(5)?,
        path: r.get(6)?,
        pid: r.get(7)?,
        uid: r.get(8)?,
        process: r.get(9)?,
        ip: r.get(10)?,
        account: r.get(11)?,
        tenant_id: r.get(12)?,
        domain: r.get(13)?,
        mailbox: r.get(14)?,
        rule: r.get(15)?,
        status: r.get(16)?,
        count: r.get(17)?,
        last_seen: r.get(18)?,
        content_sha256: r.get(19)?,
        has_fix: false,
        // Written by us as JSON; a row that does not parse loses only its lineage.
        lineage: r
            .get::<_, String>(20)
            .ok()
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
    })
    .map(|mut f| {
        f.has_fix = f.status == "active" && fix_action(&f.check, f.path.as_deref()).is_some();
        f
    })
}

fn get_finding(c: &Connection, id: i64) -> Result<Option<Finding>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {FINDING_COLS} FROM findings WHERE id = ?1"),
        [id],
        finding_row,
    )
    .optional()?)
}

/// WHERE clause and parameters of a query.
fn where_of(q: &FindingQuery) -> (String, Vec<Value>) {
    let mut conds = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut push = |cond: &str, v: Value| {
        args.push(v);
        conds.push(cond.replace('?', &format!("?{}", args.len())));
    };
    if let Some(s) = &q.status {
        push("status = ?", Value::Text(s.clone()));
    }
    if let Some(t) = q.from_unix {
        push("last_seen_unix >= ?", Value::Integer(t));
    }
    if let Some(t) = q.to_unix {
        push("ts_unix <= ?", Value::Integer(t));
    }
    if let Some(s) = q.severity {
        push("severity = ?", Value::Text(s.as_str().into()));
    }
    if let Some(c) = &q.check {
        push("check_name = ?", Value::Text(c.clone()));
    }
    if let Some(m) = &q.message {
        push("message = ?", Value::Text(m.clone()));
    }
    if let Some(a) = &q.account {
        push("account = ?", Value::Text(a.clone()));
    }
    if let Some(ip) = &q.ip {
        push("ip = ?", Value::Text(ip.clone()));
    }
    if let Some(id) = q.after_id {
        push("id > ?", Value::Integer(id));
    }
    if let Some(s) = &q.search {
        // LIKE with our own escape: the operator's % and _ are literal.
        let pat = format!(
            "%{}%",
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        args.push(Value::Text(pat));
        let n = args.len();
        let cols = [
            "check_name",
            "message",
            "details",
            "COALESCE(path, '')",
            "COALESCE(ip, '')",
            "COALESCE(account, '')",
            "COALESCE(rule, '')",
        ];
        let ors: Vec<String> = cols
            .iter()
            .map(|c| format!("{c} LIKE ?{n} ESCAPE '\\'"))
            .collect();
        conds.push(format!("({})", ors.join(" OR ")));
    }
    let w = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (w, args)
}

impl Store {
    /// Record a finding: if the same (check, key) is active and was last seen within
    /// `window_secs`, count it there; otherwise insert a new one. One transaction, on
    /// the store thread, so concurrent reporters cannot both insert.
    pub async fn record_finding(
        &self,
        f: NewFinding,
        window_secs: u64,
    ) -> Result<Recorded, StoreError> {
        self.call(move |c| {
            let now = time::OffsetDateTime::now_utc();
            let (ts, ts_unix) = (rfc3339(now), now.unix_timestamp());
            let key = f.dedup_key();
            let lineage = serde_json::to_string(&f.lineage).unwrap_or_else(|_| "[]".into());
            let tx = c.transaction()?;
            let since = ts_unix - i64::try_from(window_secs).unwrap_or(i64::MAX / 2);
            let prior: Option<(i64, u32)> = tx
                .query_row(
                    "SELECT id, count FROM findings WHERE check_name = ?1 AND dedup_key = ?2
                     AND status = 'active' AND last_seen_unix >= ?3 ORDER BY id DESC LIMIT 1",
                    params![f.check, key, since],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let out = if let Some((id, count)) = prior {
                tx.execute(
                    "UPDATE findings SET count = count + 1, last_seen = ?2, last_seen_unix = ?3,
                     pid = COALESCE(?4, pid), details = ?5,
                     content_sha256 = COALESCE(?6, content_sha256),
                     lineage = CASE WHEN ?7 = '[]' THEN lineage ELSE ?7 END WHERE id = ?1",
                    params![id, ts, ts_unix, f.pid, f.details, f.content_sha256, lineage],
                )?;
                Recorded::Repeat {
                    id,
                    count: count.saturating_add(1),
                }
            } else {
                tx.execute(
                    "INSERT INTO findings (check_name, severity, message, details, ts, ts_unix, last_seen,
                       last_seen_unix, path, pid, uid, process, ip, account, tenant_id, domain, mailbox,
                       rule, dedup_key, content_sha256, lineage)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                    params![
                        f.check,
                        f.severity.as_str(),
                        f.message,
                        f.details,
                        ts,
                        ts_unix,
                        f.path,
                        f.pid,
                        f.uid,
                        f.process,
                        f.ip,
                        f.account,
                        f.tenant_id,
                        f.domain,
                        f.mailbox,
                        f.rule,
                        key,
                        f.content_sha256,
                        lineage
                    ],
                )?;
                let id = tx.last_insert_rowid();
                let fresh = get_finding(&tx, id)?
                    .ok_or_else(|| StoreError::Corrupt(format!("finding {id} vanished")))?;
                Recorded::New(Box::new(fresh))
            };
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    pub async fn finding(&self, id: i64) -> Result<Option<Finding>, StoreError> {
        self.call(move |c| get_finding(c, id)).await
    }

    /// Findings matching `q` (newest first unless `oldest_first`) and the total count
    /// without limit/offset.
    pub async fn query_findings(&self, q: FindingQuery) -> Result<(Vec<Finding>, i64), StoreError> {
        self.call(move |c| {
            let (w, args) = where_of(&q);
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM findings {w}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT {FINDING_COLS} FROM findings {w} ORDER BY id {} LIMIT {} OFFSET {}",
                if q.oldest_first { "ASC" } else { "DESC" },
                q.limit,
                q.offset
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params_from_iter(args.iter()), finding_row)?;
            Ok((rows.collect::<Result<_, _>>()?, total))
        })
        .await
    }

    /// Active findings, newest first, at most `limit`.
    pub async fn active_findings(&self, limit: u32) -> Result<Vec<Finding>, StoreError> {
        Ok(self
            .query_findings(FindingQuery {
                status: Some("active".into()),
                limit,
                ..Default::default()
            })
            .await?
            .0)
    }

    /// Move findings to `status` (dismissed, fixed, active). Returns the ids that
    /// existed and changed.
    pub async fn set_finding_status(
        &self,
        ids: Vec<i64>,
        status: &'static str,
        actor: String,
    ) -> Result<Vec<i64>, StoreError> {
        self.move_findings(ids, None, status, actor).await
    }

    /// Put dismissed findings back to active (a dismiss undone); those fixed or
    /// active since are left alone. Returns the ids changed.
    pub async fn undismiss(&self, ids: Vec<i64>, actor: String) -> Result<Vec<i64>, StoreError> {
        self.move_findings(ids, Some("dismissed"), "active", actor)
            .await
    }

    /// Move findings to `to`, only those now in `from` when given; returns the ids
    /// that changed.
    async fn move_findings(
        &self,
        ids: Vec<i64>,
        from: Option<&'static str>,
        to: &'static str,
        actor: String,
    ) -> Result<Vec<i64>, StoreError> {
        self.call(move |c| {
            let ts = now_rfc3339();
            let tx = c.transaction()?;
            let mut changed = Vec::new();
            {
                let mut st = tx.prepare_cached(
                    "UPDATE findings SET status = ?2, status_at = ?3, status_by = ?4
                     WHERE id = ?1 AND status != ?2 AND (?5 IS NULL OR status = ?5)",
                )?;
                for id in ids {
                    if st.execute(params![id, to, ts, actor, from])? > 0 {
                        changed.push(id);
                    }
                }
            }
            tx.commit()?;
            Ok(changed)
        })
        .await
    }

    /// What `/status` says of the store: every finding kept (history), open
    /// incidents per severity, and the database's size in bytes.
    pub async fn status_summary(&self) -> Result<StoreSummary, StoreError> {
        self.call(|c| {
            let history_count = c.query_row("SELECT COUNT(*) FROM findings", [], |r| r.get(0))?;
            let mut st = c.prepare(
                "SELECT severity, COUNT(*) FROM incidents WHERE status IN ('open', 'contained')
                 GROUP BY severity",
            )?;
            let incidents_open = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let bytes: i64 = c.query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )?;
            Ok(StoreSummary {
                history_count,
                incidents_open,
                bytes,
            })
        })
        .await
    }

    /// Active findings per account (those attributed to one).
    pub async fn active_by_account(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(|c| {
            let mut st = c.prepare(
                "SELECT account, COUNT(*) FROM findings
                 WHERE status = 'active' AND account IS NOT NULL GROUP BY account",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Active findings per severity.
    pub async fn severity_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(|c| {
            let mut st = c.prepare(
                "SELECT severity, COUNT(*) FROM findings WHERE status = 'active' GROUP BY severity",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Findings first seen at or after `since_unix`: per severity, per check, the
    /// accounts (account, else `uid:N`) with an active critical/high one (worst
    /// severity and count), the accounts with the most; and the newest critical
    /// finding's time, ever.
    pub async fn stats_since(&self, since_unix: i64) -> Result<StatsRows, StoreError> {
        self.call(move |c| {
            let pairs = |sql: &str| -> rusqlite::Result<Vec<(String, i64)>> {
                let mut st = c.prepare(sql)?;
                let rows = st.query_map([since_unix], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            };
            let severities =
                pairs("SELECT severity, COUNT(*) FROM findings WHERE ts_unix >= ?1 GROUP BY severity")?;
            let checks = pairs(
                "SELECT check_name, COUNT(*) FROM findings WHERE ts_unix >= ?1
                 GROUP BY check_name ORDER BY 2 DESC, 1 LIMIT 100",
            )?;
            let top_accounts = pairs(
                "SELECT COALESCE(account, 'uid:' || uid) AS a, COUNT(*) FROM findings
                 WHERE ts_unix >= ?1 AND (account IS NOT NULL OR uid IS NOT NULL)
                 GROUP BY a ORDER BY 2 DESC, 1 LIMIT 10",
            )?;
            let mut st = c.prepare(
                "SELECT COALESCE(account, 'uid:' || uid) AS a,
                        MAX(CASE severity WHEN 'critical' THEN 2 ELSE 1 END), COUNT(*)
                 FROM findings
                 WHERE ts_unix >= ?1 AND status = 'active' AND severity IN ('critical', 'high')
                   AND (account IS NOT NULL OR uid IS NOT NULL)
                 GROUP BY a ORDER BY 2 DESC, 3 DESC, 1",
            )?;
            let at_risk = st
                .query_map([since_unix], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let last_critical = c
                .query_row(
                    "SELECT ts FROM findings WHERE severity = 'critical' ORDER BY ts_unix DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(StatsRows {
                severities,
                checks,
                at_risk,
                top_accounts,
                last_critical,
            })
        })
        .await
    }

    /// (bucket start unix, severity, count) for findings first seen at or after
    /// `since_unix`, in buckets of `bucket_secs`.
    pub async fn bucket_counts(
        &self,
        since_unix: i64,
        bucket_secs: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT (ts_unix / ?2) * ?2 AS b, severity, COUNT(*) FROM findings
                 WHERE ts_unix >= ?1 GROUP BY b, severity ORDER BY b",
            )?;
            let rows = st.query_map(params![since_unix, bucket_secs.max(1)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        self.call(|c| {
            let mut st = c.prepare(
                "SELECT id, check_name, path_glob, account, ip, reason, created_at, created_by, hits
                 FROM suppressions ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Suppression {
                    id: r.get(0)?,
                    check: r.get(1)?,
                    path_glob: r.get(2)?,
                    account: r.get(3)?,
                    ip: r.get(4)?,
                    reason: r.get(5)?,
                    created_at: r.get(6)?,
                    created_by: r.get(7)?,
                    hits: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn add_suppression(&self, s: Suppression) -> Result<i64, StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO suppressions (check_name, path_glob, account, ip, reason, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![s.check, s.path_glob, s.account, s.ip, s.reason, s.created_at, s.created_by],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    pub async fn delete_suppression(&self, id: i64) -> Result<bool, StoreError> {
        self.call(move |c| Ok(c.execute("DELETE FROM suppressions WHERE id = ?1", [id])? > 0))
            .await
    }

    pub async fn bump_suppression_hits(&self, id: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE suppressions SET hits = hits + 1 WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })
        .await
    }

    /// Append to the operator audit log.
    pub async fn ui_audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        details: &str,
        finding_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let (actor, action, target, details) = (
            actor.to_string(),
            action.to_string(),
            target.to_string(),
            details.to_string(),
        );
        self.call(move |c| {
            c.execute(
                "INSERT INTO ui_audit (ts, actor, action, target, details, finding_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_rfc3339(), actor, action, target, details, finding_id],
            )?;
            Ok(())
        })
        .await
    }

    /// The operator audit log, newest first; only one finding's actions if given.
    pub async fn ui_audit_log(
        &self,
        limit: u32,
        finding_id: Option<i64>,
    ) -> Result<Vec<UiAuditEntry>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT id, ts, actor, action, target, details, finding_id FROM ui_audit
                 WHERE ?1 IS NULL OR finding_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![finding_id, limit], |r| {
                Ok(UiAuditEntry {
                    id: r.get(0)?,
                    timestamp: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    details: r.get(5)?,
                    finding_id: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn insert_quarantine(&self, q: QuarantineRow) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO quarantine (id, original_path, archive, uid, gid, mode, mtime_sec, mtime_nsec,
                   size, sha256, quarantined_at, reason, rule, finding_id, actor, kind, restored_at,
                   parent_dir)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    q.id,
                    q.original_path,
                    q.archive,
                    q.uid,
                    q.gid,
                    q.mode,
                    q.mtime_sec,
                    q.mtime_nsec,
                    q.size as i64,
                    q.sha256,
                    q.quarantined_at,
                    q.reason,
                    q.rule,
                    q.finding_id,
                    q.actor,
                    q.kind,
                    q.restored_at,
                    q.parent_dir
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Quarantine records, newest first (restored ones only if asked).
    pub async fn quarantine_rows(
        &self,
        id: Option<String>,
        include_restored: bool,
    ) -> Result<Vec<QuarantineRow>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT id, original_path, archive, uid, gid, mode, mtime_sec, mtime_nsec, size, sha256,
                   quarantined_at, reason, rule, finding_id, actor, kind, restored_at, parent_dir
                 FROM quarantine WHERE (?1 IS NULL OR id = ?1) AND (?2 OR restored_at IS NULL)
                 ORDER BY quarantined_at DESC, id",
            )?;
            let rows = st.query_map(params![id, include_restored], |r| {
                Ok(QuarantineRow {
                    id: r.get(0)?,
                    original_path: r.get(1)?,
                    archive: r.get(2)?,
                    uid: r.get(3)?,
                    gid: r.get(4)?,
                    mode: r.get(5)?,
                    mtime_sec: r.get(6)?,
                    mtime_nsec: r.get(7)?,
                    size: r.get::<_, i64>(8)?.max(0) as u64,
                    sha256: r.get(9)?,
                    quarantined_at: r.get(10)?,
                    reason: r.get(11)?,
                    rule: r.get(12)?,
                    finding_id: r.get(13)?,
                    actor: r.get(14)?,
                    kind: r.get(15)?,
                    restored_at: r.get(16)?,
                    parent_dir: r.get(17)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn mark_restored(&self, id: String) -> Result<bool, StoreError> {
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE quarantine SET restored_at = ?2 WHERE id = ?1 AND restored_at IS NULL",
                params![id, now_rfc3339()],
            )? > 0)
        })
        .await
    }

    pub async fn delete_quarantine(&self, id: String) -> Result<bool, StoreError> {
        self.call(move |c| Ok(c.execute("DELETE FROM quarantine WHERE id = ?1", [id])? > 0))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(check: &str, path: &str) -> NewFinding {
        NewFinding {
            path: Some(path.into()),
            pid: Some(1),
            uid: Some(33),
            process: Some("php-fpm".into()),
            ..NewFinding::new(check, Severity::Critical, format!("m {path}"))
        }
    }

    fn new(r: Recorded) -> Finding {
        match r {
            Recorded::New(f) => *f,
            r => panic!("expected a new finding, got {r:?}"),
        }
    }

    /// A finding's lineage is kept, read back in order, and kept by a repeat that
    /// knows none (its writer already gone); a repeat that knows one replaces it.
    #[tokio::test]
    async fn a_findings_lineage_is_stored_and_kept_by_repeats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let anc = |pid, name: &str| Ancestor {
            pid,
            name: name.into(),
        };
        let first = NewFinding {
            lineage: vec![anc(10, "sh"), anc(9, "php-fpm8.2")],
            ..finding("a", "/w/1")
        };
        let f = new(s.record_finding(first, 60).await.expect("rec"));
        assert_eq!(f.lineage, [anc(10, "sh"), anc(9, "php-fpm8.2")]);
        s.record_finding(finding("a", "/w/1"), 60)
            .await
            .expect("repeat");
        let kept = s.finding(f.id).await.expect("get").expect("there");
        assert_eq!(kept.lineage, [anc(10, "sh"), anc(9, "php-fpm8.2")]);
        let later = NewFinding {
            lineage: vec![anc(20, "bash")],
            ..finding("a", "/w/1")
        };
        s.record_finding(later, 60).await.expect("repeat");
        let now = s.finding(f.id).await.expect("get").expect("there");
        assert_eq!(now.lineage, [anc(20, "bash")]);
        let wire = serde_json::to_value(&now).expect("json");
        assert_eq!(
            wire["lineage"],
            serde_json::json!([{"pid": 20, "name": "bash"}])
        );
    }

    #[tokio::test]
    async fn findings_dedup_survive_reopen_and_change_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("s.db");
        let (a, b);
        {
            let s = Store::open(&db, 8).expect("open");
            a = new(s
                .record_finding(finding("a", "/w/1"), 60)
                .await
                .expect("rec"));
            b = new(s
                .record_finding(finding("b", "/w/1"), 60)
                .await
                .expect("rec"));
            assert!(b.id > a.id);
            match s
                .record_finding(finding("a", "/w/1"), 60)
                .await
                .expect("rec")
            {
                Recorded::Repeat { id, count } => assert_eq!((id, count), (a.id, 2)),
                r => panic!("expected a repeat, got {r:?}"),
            }
            // Another path is another finding; window 0 still dedups within the second.
            new(s
                .record_finding(finding("a", "/w/2"), 60)
                .await
                .expect("rec"));
            s.flush().await.expect("flush");
        }
        let s = Store::open(&db, 8).expect("reopen");
        let all = s.active_findings(10).await.expect("list");
        assert_eq!(
            all.iter()
                .map(|f| (f.check.as_str(), f.count))
                .collect::<Vec<_>>(),
            [("a", 1), ("b", 1), ("a", 2)]
        );
        assert_eq!(all[2].path.as_deref(), Some("/w/1"));
        assert_eq!(
            s.set_finding_status(vec![a.id, 9999], "dismissed", "op".into())
                .await
                .expect("dismiss"),
            vec![a.id]
        );
        // Dismissed: the next occurrence is a new finding.
        new(s
            .record_finding(finding("a", "/w/1"), 60)
            .await
            .expect("rec"));
        let (hist, total) = s
            .query_findings(FindingQuery {
                search: Some("W/1".into()),
                limit: 2,
                ..Default::default()
            })
            .await
            .expect("history");
        assert_eq!(total, 3);
        assert_eq!(hist.len(), 2);
        let (d, n) = s
            .query_findings(FindingQuery {
                status: Some("dismissed".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("dismissed");
        assert_eq!((n, d[0].id, d[0].status.as_str()), (1, a.id, "dismissed"));
        // LIKE wildcards in a search are literal.
        let (_, n) = s
            .query_findings(FindingQuery {
                search: Some("%".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("search");
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn corrupt_rows_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        new(s
            .record_finding(finding("a", "/w/1"), 60)
            .await
            .expect("rec"));
        s.call(|c| {
            c.execute("UPDATE findings SET severity = 'loud'", [])?;
            Ok(())
        })
        .await
        .expect("corrupt");
        assert!(s.active_findings(10).await.is_err());
    }
}
